//! One agent's tunnel: `GET /agent/v1/connect`, upgraded to a WebSocket.
//!
//! Before the upgrade the client certificate is mapped to an agent record;
//! a missing, unknown, expired or revoked certificate is refused with an HTTP
//! error the agent can explain to its operator. After it: `Hello`, `Welcome`,
//! then heartbeats and renewals until either side leaves.

use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use marketer_protocol::{
    Acknowledge, AgentMessage, CancelJob, CertificateRenewed, Heartbeat, Hello, JobEvent, JobRef,
    MAX_FRAME_BYTES, MIN_PROTOCOL_VERSION, ModelInfo, PROTOCOL_VERSION, RenewalRejected, ServerMessage,
    Welcome, close, codes,
};

use super::hub::{Capabilities, Control};
use super::{GatewayError, GatewayState, Peer};
use crate::domain::{Timestamp, check_labels};
use crate::store::{Agent, AgentFacts, CertifiedAgent, HeartbeatUpdate, NewAgentCertificate};

pub(super) async fn connect(
    State(state): State<GatewayState>,
    Extension(peer): Extension<Peer>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, GatewayError> {
    let found = match authenticate(&state, &peer).await {
        Ok(found) => found,
        // An erased tenant's agent, back to be told to delete.
        Err(refused) => match super::erasure::erasing_agent(&state, &peer).await {
            Some(agent) => return Ok(super::erasure::upgrade(state, agent, upgrade)),
            None => return Err(refused),
        },
    };
    let limit = state.config.max_frame_bytes;
    Ok(upgrade
        // An idle agent sends a few hundred bytes per heartbeat; start the
        // buffers small (tungstenite's default is 128 KiB each) and let them
        // grow for the occasional large message. With thousands of agents
        // that is the difference between megabytes and gigabytes.
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| async move {
            Session::run(state, found.agent, found.not_after, socket).await;
        }))
}

/// The agent a request's client certificate belongs to; a missing,
/// unknown, expired or revoked certificate is refused with an error the
/// agent can explain to its operator.
pub(super) async fn authenticate(state: &GatewayState, peer: &Peer) -> Result<CertifiedAgent, GatewayError> {
    let refuse = |status, code, message: &str, reason| {
        state.app.metrics.agent_handshake_failed(reason);
        GatewayError::new(status, code, message)
    };
    let Some(certificate) = &peer.certificate else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            codes::CERTIFICATE_REQUIRED,
            "a client certificate is required: enroll this agent with `marketer-agent enroll` first",
            "no_certificate",
        ));
    };
    let fingerprint = super::ca::fingerprint(certificate.as_ref());
    let found = state.app.store.agent_by_certificate(&fingerprint).await.map_err(|e| {
        tracing::error!(error = %e, "looking up an agent certificate failed");
        GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the control plane cannot reach its database; retrying later will work",
        )
    })?;
    let Some(found) = found else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            codes::CERTIFICATE_UNKNOWN,
            "this control plane does not know the agent's certificate; enroll the agent again",
            "unknown_certificate",
        ));
    };
    if found.agent.revoked_at.is_some() {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            codes::AGENT_REVOKED,
            "this agent was revoked by an administrator; enroll it again with a new token to reconnect",
            "revoked",
        ));
    }
    if found.not_after <= Timestamp::now() {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            codes::CERTIFICATE_EXPIRED,
            "the agent's certificate has expired; ask an administrator for a new enrollment token and enroll again",
            "certificate_expired",
        ));
    }
    Ok(found)
}

/// Why a session ended, for the agent's event history and metrics.
struct Ending {
    reason: String,
    label: &'static str,
    graceful: bool,
}

impl Ending {
    fn new(label: &'static str, reason: impl Into<String>) -> Self {
        Self { reason: reason.into(), label, graceful: false }
    }
}

struct Session {
    state: GatewayState,
    agent: Agent,
    /// Expiry of the certificate this connection presented.
    cert_not_after: Timestamp,
    socket: WebSocket,
    last_renewal: Option<Instant>,
    /// This connection's id in the hub, once registered.
    connection: Option<u64>,
    /// Job events received and not yet stored. They are stored together,
    /// in one transaction, once the socket has nothing more ready (or
    /// before any other message is handled, which keeps the agent's order).
    pending: Vec<JobEvent>,
}

/// A write to the agent failed: the connection is gone.
fn lost(e: &axum::Error) -> Ending {
    Ending::new("connection_lost", format!("connection lost: {e}"))
}

/// At most this many job events are stored in one transaction.
const EVENT_BATCH: usize = 64;

impl Session {
    async fn run(state: GatewayState, agent: Agent, cert_not_after: Timestamp, socket: WebSocket) {
        let agent_id = agent.id;
        let mut session = Session {
            state: state.clone(),
            agent,
            cert_not_after,
            socket,
            last_renewal: None,
            connection: None,
            pending: Vec::new(),
        };
        let hello = match session.receive_hello().await {
            Ok(hello) => hello,
            Err(ending) => {
                state.app.metrics.agent_handshake_failed(ending.label);
                tracing::info!(%agent_id, reason = %ending.reason, "agent tunnel refused");
                return;
            }
        };
        let ending = session.serve(hello).await;
        let was_current = session.connection.is_some_and(|id| state.app.hub.unregister(agent_id, id));
        state.app.metrics.agent_connection_closed(ending.label);
        tracing::info!(%agent_id, reason = %ending.reason, "agent disconnected");
        // A connection that a newer one already replaced must not mark the
        // agent offline.
        let graceful = ending.graceful && was_current;
        if let Err(e) =
            state.app.store.agent_disconnected(agent_id, &ending.reason, graceful, Timestamp::now()).await
        {
            tracing::error!(%agent_id, error = %e, "could not record an agent disconnect");
        }
        // Lost (not replaced, not stopped on purpose): its jobs wait for it,
        // and whoever follows them hears so.
        if was_current && !ending.graceful {
            state.app.jobs.agent_lost(agent_id).await;
        }
    }

    async fn close(&mut self, code: u16, reason: &str) {
        // Close reasons are limited to 123 bytes by the WebSocket protocol.
        let mut reason = reason.to_owned();
        while reason.len() > 123 {
            reason.pop();
        }
        let frame = CloseFrame { code, reason: reason.into() };
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.socket.send(Message::Close(Some(frame)))).await;
    }

    async fn violation(&mut self, reason: String) -> Ending {
        self.close(close::PROTOCOL_VIOLATION, &reason).await;
        Ending::new("protocol_violation", reason)
    }

    async fn receive_hello(&mut self) -> Result<Hello, Ending> {
        let timeout = self.state.config.handshake_timeout;
        let first = match tokio::time::timeout(timeout, self.socket.next()).await {
            Err(_) => {
                self.close(close::HANDSHAKE_TIMEOUT, "no Hello within the handshake timeout").await;
                return Err(Ending::new("handshake_timeout", "no Hello in time"));
            }
            Ok(None) | Ok(Some(Err(_))) => {
                return Err(Ending::new("connection_closed", "closed before Hello"));
            }
            Ok(Some(Ok(message))) => message,
        };
        if let (Some(transcript), Message::Text(text)) = (&self.state.config.transcript, &first) {
            transcript.record(self.agent.id, text.as_str());
        }
        let hello = match first {
            Message::Text(text) => match serde_json::from_str::<AgentMessage>(text.as_str()) {
                Ok(AgentMessage::Hello(hello)) => hello,
                Ok(_) => return Err(self.violation("the first message must be hello".into()).await),
                Err(e) => return Err(self.violation(format!("malformed message: {e}")).await),
            },
            _ => return Err(self.violation("the first message must be a JSON text message".into()).await),
        };
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&hello.protocol_version) {
            let reason = format!(
                "agent protocol {} is not supported; this server accepts {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}",
                hello.protocol_version
            );
            self.close(close::INCOMPATIBLE_VERSION, &reason).await;
            return Err(Ending::new("incompatible_version", reason));
        }
        if let Err(problem) = check_hello(&hello) {
            return Err(self.violation(problem).await);
        }
        Ok(hello)
    }

    async fn serve(&mut self, hello: Hello) -> Ending {
        let state = self.state.clone();
        let agent_id = self.agent.id;
        let facts = AgentFacts {
            agent_version: hello.agent_version.clone(),
            protocol_version: i64::from(hello.protocol_version),
            hostname: hello.host.hostname.clone(),
            os: hello.host.os.clone(),
            arch: hello.host.arch.clone(),
            max_concurrency: i64::from(hello.max_concurrency),
            ollama_reachable: hello.ollama.reachable,
            models: hello.ollama.models.clone(),
            running_jobs: i64::try_from(hello.running_jobs.len()).unwrap_or(i64::MAX),
            policy: hello.policy.clone(),
            projects: hello.projects.clone(),
        };
        let compliance = match state.app.store.tenant(self.agent.tenant_id).await {
            Ok(Some(tenant)) => tenant.compliance_mode,
            Ok(None) => {
                // Erased between this connection's certificate check and
                // now: reconnecting finds the erasure and its order.
                self.close(close::TENANT_ERASED, "the agent's tenant no longer exists; reconnect").await;
                return Ending::new("unauthorized", "the tenant is gone");
            }
            Err(e) => {
                tracing::error!(%agent_id, error = %e, "could not read an agent's tenant");
                self.close(1011, "the control plane could not read the tenant; retry").await;
                return Ending::new("internal_error", "could not read the tenant");
            }
        };
        if let Err(e) = state.app.store.agent_connected(agent_id, &facts, Timestamp::now()).await {
            tracing::error!(%agent_id, error = %e, "could not record an agent connection");
            self.close(1011, "the control plane could not record the connection; retry").await;
            return Ending::new("internal_error", "could not record the connection");
        }
        tracing::info!(%agent_id, tenant_id = %self.agent.tenant_id, version = %hello.agent_version, "agent connected");
        // The jobs the agent lost (it restarted) go back to the queue; those
        // it still runs keep their lease; those it runs without one (they
        // were cancelled or given away while it was gone) it must stop.
        let engine = state.app.jobs.clone();
        let (leases, stale) = match engine.agent_connected(agent_id, &hello.running_jobs).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(%agent_id, error = %e, "could not reconcile an agent's jobs");
                self.close(1011, "the control plane could not reconcile the agent's jobs; retry").await;
                return Ending::new("internal_error", "could not reconcile jobs");
            }
        };
        let caps = Capabilities {
            // The labels an administrator set, not the ones the agent claims.
            labels: self.agent.labels.clone(),
            models: model_names(&hello.ollama.models),
            capacity: hello.max_concurrency,
            ollama_reachable: hello.ollama.reachable,
            projects: hello.projects.iter().copied().collect(),
        };
        let registration = state.app.hub.register(agent_id, self.agent.tenant_id, caps, leases);
        self.connection = Some(registration.connection_id);
        let mut control = registration.control;

        let timings = state.app.hub.timings;
        // Renew when a third of the presented certificate's lifetime remains.
        let renew_at = self.cert_not_after - state.config.cert_lifetime / 3;
        let welcome = ServerMessage::Welcome(Welcome {
            agent_id,
            tenant_id: self.agent.tenant_id,
            name: self.agent.name.to_string(),
            labels: self.agent.labels.clone(),
            server_time: time::OffsetDateTime::now_utc(),
            protocol_version: hello.protocol_version,
            heartbeat_interval_ms: millis(timings.heartbeat_interval),
            offline_after_ms: millis(timings.offline_after()),
            max_frame_bytes: u64::try_from(state.config.max_frame_bytes.min(MAX_FRAME_BYTES))
                .unwrap_or(u64::MAX),
            renew_certificate_at: renew_at.as_datetime(),
            tenant_compliance: compliance.to_string(),
        });
        if let Err(ending) = self.send(&welcome).await {
            return ending;
        }
        for job in stale {
            let cancel = CancelJob { job, reason: "this job is no longer assigned to this agent".into() };
            if let Err(ending) = self.send(&ServerMessage::CancelJob(cancel)).await {
                return ending;
            }
        }
        // Documents people deleted while the agent was away.
        match state.app.store.pending_removals(agent_id).await {
            Ok(ids) if !ids.is_empty() => {
                if let Err(ending) = self.send(&ServerMessage::RemoveDocuments { ids }).await {
                    return ending;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(%agent_id, error = %e, "could not read the documents to remove"),
        }
        // Free slots: the queue may have work for this agent.
        engine.wake();

        let offline_after = timings.offline_after();
        let mut last_heard = Instant::now();
        let mut budget = MessageBudget::new(last_heard);
        let mut ping = tokio::time::interval(timings.heartbeat_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            // Biased: a message already waiting is read before the pending
            // job events are stored, so a burst goes into one transaction.
            tokio::select! {
                biased;
                message = self.socket.next() => {
                    last_heard = Instant::now();
                    if !budget.spend(last_heard) {
                        return self
                            .violation(format!(
                                "more than {MESSAGES_PER_SECOND} messages a second (bursts of {MESSAGE_BURST}); slow down"
                            ))
                            .await;
                    }
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            if let Err(ending) = self.handle(text.as_str()).await {
                                return ending;
                            }
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Ok(Message::Binary(_))) => {
                            return self.violation("binary messages are not part of the protocol".into()).await;
                        }
                        Some(Ok(Message::Close(frame))) => {
                            // What the agent sent before saying goodbye (an
                            // agent stopping gives its jobs back) is stored
                            // now, not only on its replay.
                            if let Err(ending) = self.store_pending().await {
                                return ending;
                            }
                            let (code, reason) = frame.map_or((1005, String::new()), |f| (f.code, f.reason.as_str().to_owned()));
                            return Ending {
                                reason: format!("closed by the agent ({code}{}{reason})", if reason.is_empty() { "" } else { ": " }),
                                label: "closed_by_agent",
                                graceful: code == 1000 || code == 1001,
                            };
                        }
                        Some(Err(e)) => {
                            let text = e.to_string();
                            if text.contains("too long") || text.contains("Space limit") || text.contains("size") {
                                return self.violation(format!("message larger than {} bytes", state.config.max_frame_bytes)).await;
                            }
                            return Ending::new("connection_lost", format!("connection lost: {text}"));
                        }
                        None => return Ending::new("connection_lost", "connection lost"),
                    }
                }
                () = std::future::ready(()), if !self.pending.is_empty() => {
                    if let Err(ending) = self.store_pending().await {
                        return ending;
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > offline_after {
                        self.close(close::HEARTBEAT_TIMEOUT, "nothing received within the offline threshold").await;
                        return Ending::new("heartbeat_timeout", "heartbeat missed: nothing received in time");
                    }
                    if self.socket.send(Message::Ping(Default::default())).await.is_err() {
                        return Ending::new("connection_lost", "connection lost while pinging");
                    }
                }
                command = control.recv() => {
                    let (code, reason) = match command {
                        Some(Control::Send(message)) => {
                            if let Err(ending) = self.send(&message).await {
                                return ending;
                            }
                            continue;
                        }
                        Some(Control::Close { code, reason }) => (code, reason),
                        // The hub dropped this connection's sender: a newer
                        // connection replaced it.
                        None => (close::SUPERSEDED, "a newer connection of this agent replaced this one".to_owned()),
                    };
                    self.close(code, &reason).await;
                    let label = match code {
                        close::REVOKED => "revoked",
                        close::SUPERSEDED => "superseded",
                        _ => "closed_by_server",
                    };
                    return Ending::new(label, reason);
                }
                () = state.shutdown.cancelled() => {
                    self.close(1001, "the control plane is shutting down; reconnect shortly").await;
                    return Ending::new("server_shutdown", "the control plane shut down");
                }
            }
        }
    }

    /// Queues `message` without flushing (see `store_pending`).
    async fn feed(&mut self, message: &ServerMessage) -> Result<(), Ending> {
        let text =
            serde_json::to_string(message).map_err(|e| Ending::new("internal_error", e.to_string()))?;
        self.socket.feed(Message::Text(text.into())).await.map_err(|e| lost(&e))
    }

    async fn send(&mut self, message: &ServerMessage) -> Result<(), Ending> {
        self.feed(message).await?;
        self.socket.flush().await.map_err(|e| lost(&e))
    }

    async fn handle(&mut self, text: &str) -> Result<(), Ending> {
        if let Some(transcript) = &self.state.config.transcript {
            transcript.record(self.agent.id, text);
        }
        let message = match serde_json::from_str::<AgentMessage>(text) {
            Ok(message) => message,
            Err(e) => return Err(self.violation(format!("malformed message: {e}")).await),
        };
        if let AgentMessage::JobEvent(event) = message {
            self.pending.push(event);
            if self.pending.len() >= EVENT_BATCH {
                return self.store_pending().await;
            }
            return Ok(());
        }
        self.store_pending().await?;
        match message {
            AgentMessage::Hello(_) => Err(self.violation("hello may only be sent once".into()).await),
            AgentMessage::Heartbeat(beat) => {
                if let Err(problem) = check_heartbeat(&beat) {
                    return Err(self.violation(problem).await);
                }
                let hub = &self.state.app.hub;
                hub.set_ollama(self.agent.id, beat.ollama_reachable, beat.models.as_deref().map(model_names));
                let forgotten = hub.reconcile(self.agent.id, beat.max_concurrency, &beat.jobs);
                if !forgotten.is_empty() {
                    tracing::warn!(agent_id = %self.agent.id, jobs = ?forgotten, "assignments never reached the agent; their leases will expire and the jobs run again");
                    self.state.app.jobs.wake();
                }
                if beat.models.is_some() {
                    // A newly pulled model may be what queued jobs wait for.
                    self.state.app.jobs.wake();
                }
                if beat.projects.is_some() || beat.policy.is_some() {
                    if let Some(projects) = &beat.projects {
                        hub.set_projects(self.agent.id, projects.iter().copied().collect());
                        // Jobs may wait for the agent that holds a project.
                        self.state.app.jobs.wake();
                    }
                    if let Err(e) = self
                        .state
                        .app
                        .store
                        .record_agent_index(self.agent.id, beat.policy.as_ref(), beat.projects.as_deref())
                        .await
                    {
                        tracing::error!(agent_id = %self.agent.id, error = %e, "could not record an agent's projects and policy");
                    }
                }
                hub.heartbeat(HeartbeatUpdate {
                    agent_id: self.agent.id,
                    seen_at: Timestamp::now(),
                    running_jobs: i64::from(beat.running_jobs),
                    ollama_reachable: beat.ollama_reachable,
                    models: beat.models,
                    jobs: beat.jobs,
                });
                Ok(())
            }
            // Queued above.
            AgentMessage::JobEvent(_) => Ok(()),
            AgentMessage::Documents(report) => self.documents(&report).await,
            AgentMessage::TenantErased(_) => {
                Err(self.violation("tenant_erased only answers erase_tenant".into()).await)
            }
            AgentMessage::RenewCertificate(request) => {
                let reply = self.renew(&request.csr_pem).await;
                self.send(&reply).await
            }
        }
    }

    /// Stores the pending job events and acknowledges them, so the agent
    /// can drop them from its outbox. They are stored in the order they
    /// came, which is what keeps each attempt's sequence without gaps.
    async fn store_pending(&mut self) -> Result<(), Ending> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.pending);
        let replies = match self.state.app.jobs.record(self.agent.id, &events).await {
            Ok(replies) => replies,
            Err(e) => {
                // Not acknowledged. Reconnecting makes the agent replay its
                // outbox, by which time the database may be back.
                tracing::error!(agent_id = %self.agent.id, events = events.len(), error = %e, "could not store job events");
                self.close(1011, "the control plane could not store a job event; reconnect and replay").await;
                return Err(Ending::new("internal_error", "could not store a job event"));
            }
        };
        for (event, reply) in events.iter().zip(replies) {
            if reply.stop {
                let reason = "this job is no longer assigned to this agent".to_owned();
                self.feed(&ServerMessage::CancelJob(CancelJob { job: event.job, reason })).await?;
            }
            // Not acknowledged (out of order): the agent replays from its
            // outbox on the next connection.
            if reply.acknowledge {
                self.feed(&ServerMessage::Acknowledge(Acknowledge { job: event.job, seq: event.seq }))
                    .await?;
            }
        }
        self.socket.flush().await.map_err(|e| lost(&e))
    }

    /// Stores a document report and acknowledges it. A report that cannot
    /// be stored is not acknowledged: the agent sends it again on the next
    /// connection.
    async fn documents(
        &mut self,
        report: &marketer_protocol::documents::DocumentReport,
    ) -> Result<(), Ending> {
        if let Err(problem) = super::documents::check_report(report) {
            return Err(self.violation(problem).await);
        }
        match super::documents::apply_report(&self.state, &self.agent, report).await {
            Ok(outcome) => {
                let ack = ServerMessage::DocumentsAcknowledged { seq: report.seq, refused: outcome.refused };
                self.send(&ack).await?;
                if !outcome.to_remove.is_empty() {
                    self.send(&ServerMessage::RemoveDocuments { ids: outcome.to_remove }).await?;
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(agent_id = %self.agent.id, error = %e, "could not store a document report");
                self.close(1011, "the control plane could not store the document report; reconnect").await;
                Err(Ending::new("internal_error", "could not store a document report"))
            }
        }
    }

    async fn renew(&mut self, csr_pem: &str) -> ServerMessage {
        let reject = |reason: String| ServerMessage::RenewalRejected(RenewalRejected { reason });
        // One renewal per quarter lifetime (at most a minute) is plenty; more
        // is a misbehaving agent.
        let spacing = Duration::try_from(self.state.config.cert_lifetime / 4)
            .unwrap_or_default()
            .min(Duration::from_secs(60));
        if self.last_renewal.is_some_and(|at| at.elapsed() < spacing) {
            return reject("a certificate was renewed moments ago on this connection".into());
        }
        let issued = match self.state.ca.issue_agent_certificate(
            csr_pem,
            self.agent.id,
            self.state.config.cert_lifetime,
        ) {
            Ok(issued) => issued,
            Err(e) => return reject(e.to_string()),
        };
        let record = NewAgentCertificate {
            fingerprint: issued.fingerprint.clone(),
            serial: issued.serial.clone(),
            not_before: issued.not_before,
            not_after: issued.not_after,
        };
        if let Err(e) =
            self.state.app.store.add_agent_certificate(self.agent.id, &record, Timestamp::now()).await
        {
            tracing::error!(agent_id = %self.agent.id, error = %e, "could not store a renewed certificate");
            return reject("the control plane could not store the certificate; try again later".into());
        }
        self.last_renewal = Some(Instant::now());
        tracing::info!(agent_id = %self.agent.id, not_after = %issued.not_after, "agent certificate renewed");
        ServerMessage::CertificateRenewed(CertificateRenewed {
            certificate_pem: issued.pem,
            not_after: issued.not_after.as_datetime(),
        })
    }
}

const MAX_MODELS: usize = 1000;
const MAX_CONCURRENCY: u32 = 1024;
/// Attempts an agent may hold: running, or finished and waiting in its
/// outbox for the control plane (which may have been away a while).
const MAX_HELD_JOBS: usize = 4096;

/// Bounds on what an agent may report, so one agent cannot bloat the store.
fn check_hello(hello: &Hello) -> Result<(), String> {
    for (field, value, max) in [
        ("agent_version", &hello.agent_version, 64),
        ("host.hostname", &hello.host.hostname, 253),
        ("host.os", &hello.host.os, 32),
        ("host.arch", &hello.host.arch, 32),
    ] {
        if value.len() > max || value.chars().any(char::is_control) {
            return Err(format!("{field} must be at most {max} printable characters"));
        }
    }
    check_labels(&hello.labels).map_err(|e| format!("labels: {e}"))?;
    super::documents::check_index(Some(&hello.projects), Some(&hello.policy))?;
    check_load(hello.max_concurrency, Some(&hello.ollama.models), &hello.running_jobs)
}

fn check_heartbeat(beat: &Heartbeat) -> Result<(), String> {
    super::documents::check_index(beat.projects.as_deref(), beat.policy.as_ref())?;
    check_load(beat.max_concurrency, beat.models.as_deref(), &beat.jobs)
}

/// What `Hello` and heartbeats both report: slots, models, held jobs.
fn check_load(max_concurrency: u32, models: Option<&[ModelInfo]>, jobs: &[JobRef]) -> Result<(), String> {
    if max_concurrency == 0 || max_concurrency > MAX_CONCURRENCY {
        return Err(format!("max_concurrency must be between 1 and {MAX_CONCURRENCY}"));
    }
    if models.is_some_and(|m| m.len() > MAX_MODELS) {
        return Err(format!("more than {MAX_MODELS} models"));
    }
    if jobs.len() > MAX_HELD_JOBS {
        return Err(format!("more than {MAX_HELD_JOBS} jobs"));
    }
    Ok(())
}

fn model_names(models: &[ModelInfo]) -> std::collections::HashSet<String> {
    models.iter().map(|m| marketer_protocol::canonical_model_name(&m.name)).collect()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Messages a connected agent may send in a burst, and steadily per second
/// after it: far above what a busy agent sends (its job output is batched,
/// its heartbeats come every few seconds), so only a broken or hostile
/// agent reaches it, and is disconnected before it can load the store.
const MESSAGE_BURST: u32 = 5_000;
const MESSAGES_PER_SECOND: u32 = 1_000;

/// A token bucket of [`MESSAGE_BURST`] refilled at [`MESSAGES_PER_SECOND`].
struct MessageBudget {
    tokens: f64,
    last: Instant,
}

impl MessageBudget {
    fn new(now: Instant) -> Self {
        Self { tokens: f64::from(MESSAGE_BURST), last: now }
    }

    /// Takes one message from the budget; `false` when there is none left.
    fn spend(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * f64::from(MESSAGES_PER_SECOND)).min(f64::from(MESSAGE_BURST));
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    #[test]
    fn a_burst_then_a_steady_rate_is_allowed_and_a_flood_is_not() {
        let start = Instant::now();
        let mut budget = MessageBudget::new(start);
        assert!((0..MESSAGE_BURST).all(|_| budget.spend(start)), "a burst");
        assert!(!budget.spend(start), "beyond the burst at once");
        // One second later, a second's worth again.
        let later = start + std::time::Duration::from_secs(1);
        assert!((0..MESSAGES_PER_SECOND).all(|_| budget.spend(later)));
        assert!(!budget.spend(later));
    }
}
