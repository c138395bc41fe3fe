//! `marketer-agent run`: hold the tunnel to the control plane.
//!
//! One session is: dial (through a proxy if configured), mutual TLS,
//! WebSocket upgrade, `Hello`, `Welcome`, then heartbeats at the server's
//! interval, certificate renewal at two thirds of its lifetime, and watching
//! for a silent server. When a session ends the agent reconnects with
//! exponential backoff and full jitter, unless the control plane said it
//! must not (revoked, expired certificate, incompatible version).
//!
//! The session also reports the document index (metadata only; see
//! `documents::report`), removes documents users deleted, and applies the
//! privacy policy for the tenant's compliance mode from `Welcome`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use marketer_protocol::{
    AgentMessage, ErrorBody, Heartbeat, Hello, MAX_FRAME_BYTES, OllamaStatus, PROTOCOL_VERSION,
    RenewCertificate, ServerMessage, Welcome, close, codes, paths,
};
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::backoff::Backoff;
use crate::config::{AgentConfig, AgentFiles};
use crate::documents::Index;
use crate::documents::download::Gateway;
use crate::documents::report::Reporter;
use crate::identity::{Identity, identity_pem, new_key_and_csr};
use crate::jobs::{ExecSettings, Jobs, Outbox};
use crate::net::{self, ServerAddr};
use crate::ollama::Ollama;
use crate::privacy::PolicyFile;

/// The control plane told this agent to stop for good: an administrator
/// revoked it. `main` exits with a distinct status so service managers do
/// not restart it.
#[derive(Debug, thiserror::Error)]
#[error(
    "this agent was revoked by an administrator of its tenant: {0}. To bring the host back, ask for a new enrollment token and run `marketer-agent enroll --force`"
)]
pub struct Revoked(pub String);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub ollama_url: String,
    pub exec: ExecSettings,
    /// Other gateways of the same control plane, tried in turn after the
    /// enrolled one (`--fallback-server`).
    pub fallback_servers: Vec<String>,
}

/// On shutdown, how long to wait for the control plane to acknowledge the
/// outcomes of the jobs the agent stops; whatever is left is delivered from
/// the outbox on the next start.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// A connection that lasted this many heartbeat intervals was healthy: the
/// backoff starts again from its base.
const HEALTHY_HEARTBEATS: u32 = 3;
const WELCOME_TIMEOUT: Duration = Duration::from_secs(15);

/// How a session ended.
enum Ended {
    /// The agent is shutting down.
    Shutdown,
    /// Try again after a backoff delay.
    Retry(anyhow::Error),
    /// Do not try again.
    Fatal(anyhow::Error),
}

pub async fn run(files: AgentFiles, options: RunOptions, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = files.load_config()?;
    let mut servers = vec![ServerAddr::parse(&config.server)?];
    for url in &options.fallback_servers {
        servers.push(ServerAddr::parse(url).with_context(|| format!("--fallback-server {url}"))?);
    }
    let mut current = 0;
    let server = servers[current].clone();
    let ollama = Arc::new(Ollama::new(&options.ollama_url)?);
    let outbox = Outbox::open(&files.dir.join("outbox"))?;
    // A policy that does not parse stops the agent: running without the
    // customer's rules is not an option.
    let policy_file = PolicyFile::load(&files.dir)?;
    let compliance = files.load_state().tenant_compliance.unwrap_or_else(|| "standard".into());
    let policy = policy_file.effective(&compliance)?;
    let index = Arc::new(Index::open(&files.dir).await?);
    let gateway = Gateway { files: files.clone(), server: Arc::new(std::sync::Mutex::new(server.clone())) };
    let gateway_server = gateway.server.clone();
    let jobs = Jobs::new(ollama.clone(), outbox, options.exec.clone(), index.clone(), gateway, policy);
    tracing::info!(agent_id = %config.agent_id, server = %server.url, ollama = %ollama.url(), slots = options.exec.slots, "starting");
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        let server = &servers[current];
        // Document downloads go where the tunnel goes.
        *gateway_server.lock().unwrap_or_else(|p| p.into_inner()) = server.clone();
        let mut session = Session {
            files: &files,
            config: &config,
            server,
            ollama: &ollama,
            jobs: &jobs,
            index: &index,
            policy_file: &policy_file,
            connected_at: None,
            healthy_after: None,
            renew_at: None,
        };
        let ended = session.run(&shutdown).await;
        let healthy = session
            .connected_at
            .zip(session.healthy_after)
            .is_some_and(|(at, healthy_after)| at.elapsed() >= healthy_after);
        match ended {
            Ended::Shutdown => {
                jobs.stop_all("the agent is shutting down").await;
                return Ok(());
            }
            Ended::Fatal(e) => {
                record_error(&files, &e);
                return Err(e);
            }
            Ended::Retry(e) => {
                tracing::warn!(error = %format!("{e:#}"), server = %server.url, "disconnected from the control plane");
                record_error(&files, &e);
                // The next gateway, if there are others: the replica behind
                // this one may be gone.
                current = (current + 1) % servers.len();
            }
        }
        if healthy {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!(
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "reconnecting after a delay"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shutdown.cancelled() => {
                // Outcomes go to the outbox, for delivery after the restart.
                jobs.stop_all("the agent is shutting down").await;
                return Ok(());
            }
        }
    }
}

fn record_error(files: &AgentFiles, e: &anyhow::Error) {
    let mut state = files.load_state();
    state.last_error = Some(format!("{e:#}"));
    if let Err(e) = files.save_state(&state) {
        tracing::warn!(error = %e, "could not save the agent state");
    }
}

type Socket = WebSocketStream<TlsStream<TcpStream>>;

struct Session<'a> {
    files: &'a AgentFiles,
    config: &'a AgentConfig,
    server: &'a ServerAddr,
    ollama: &'a Arc<Ollama>,
    jobs: &'a Arc<Jobs>,
    index: &'a Index,
    policy_file: &'a PolicyFile,
    connected_at: Option<Instant>,
    /// How long this connection must last to count as healthy.
    healthy_after: Option<Duration>,
    /// Two thirds into the presented certificate's lifetime.
    renew_at: Option<OffsetDateTime>,
}

impl Session<'_> {
    async fn run(&mut self, shutdown: &CancellationToken) -> Ended {
        let socket = tokio::select! {
            socket = self.connect() => socket,
            () = shutdown.cancelled() => return Ended::Shutdown,
        };
        let mut socket = match socket {
            Ok(socket) => socket,
            Err(ended) => return ended,
        };
        let (welcome, ollama) = match self.greet(&mut socket).await {
            Ok(greeted) => greeted,
            Err(ended) => return ended,
        };
        self.connected_at = Some(Instant::now());
        self.healthy_after = Some(Duration::from_millis(welcome.heartbeat_interval_ms) * HEALTHY_HEARTBEATS);
        let skew = welcome.server_time - OffsetDateTime::now_utc();
        if skew.abs() > time::Duration::seconds(60) {
            tracing::warn!(
                skew_seconds = skew.whole_seconds(),
                "this host's clock differs from the control plane's; certificates may be refused early or late"
            );
        }
        self.apply_compliance(&welcome.tenant_compliance);
        let mut state = self.files.load_state();
        state.last_connected_at = Some(OffsetDateTime::now_utc());
        state.last_error = None;
        state.tenant_compliance = Some(welcome.tenant_compliance.clone());
        if let Err(e) = self.files.save_state(&state) {
            tracing::warn!(error = %e, "could not save the agent state");
        }
        tracing::info!(agent_id = %welcome.agent_id, name = %welcome.name, heartbeat_ms = welcome.heartbeat_interval_ms, "connected to the control plane");
        self.serve(socket, welcome, ollama, shutdown).await
    }

    async fn connect(&mut self) -> Result<Socket, Ended> {
        let identity =
            self.files.load_identity().and_then(|pem| Identity::parse(&pem)).map_err(Ended::Fatal)?;
        if identity.is_expired(OffsetDateTime::now_utc()) {
            return Err(Ended::Fatal(anyhow::anyhow!(
                "this agent's certificate expired on {}; ask an administrator for a new enrollment token and run `marketer-agent enroll --force`",
                identity.not_after.replace_nanosecond(0).unwrap_or(identity.not_after)
            )));
        }
        self.renew_at = Some(identity.renew_at());
        let ca = self.files.load_ca().map_err(Ended::Fatal)?;
        let tls_config = net::agent_config(&ca, identity).map_err(Ended::Fatal)?;
        let (tcp, proxy) = net::dial(self.server).await.map_err(Ended::Retry)?;
        let tls = net::handshake(tcp, self.server, tls_config, proxy.as_ref()).await.map_err(|e| {
            // The server refusing our certificate will not change by retrying.
            let text = e.to_string();
            if text.contains("this agent's certificate") { Ended::Fatal(e) } else { Ended::Retry(e) }
        })?;
        let url = format!("wss://{}:{}{}", bracket(&self.server.host), self.server.port, paths::CONNECT);
        let ws_config = WebSocketConfig::default()
            .max_message_size(Some(MAX_FRAME_BYTES))
            .max_frame_size(Some(MAX_FRAME_BYTES));
        match tokio_tungstenite::client_async_with_config(url, tls, Some(ws_config)).await {
            Ok((socket, _)) => Ok(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                Err(refusal(response.status(), response.body().as_deref()))
            }
            Err(e) => Err(Ended::Retry(anyhow::anyhow!("the WebSocket upgrade failed: {e}"))),
        }
    }

    /// Sends `Hello` and waits for `Welcome`; returns it with the Ollama
    /// status `Hello` reported.
    async fn greet(&self, socket: &mut Socket) -> Result<(Welcome, OllamaStatus), Ended> {
        let ollama = self.ollama.status().await;
        let projects = self.index.projects().await.map_err(Ended::Fatal)?;
        if !ollama.reachable {
            tracing::warn!(url = %self.ollama.url(), "Ollama is not reachable; the control plane will see no models");
        }
        let hello = AgentMessage::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            agent_version: crate::VERSION.to_owned(),
            host: crate::host_info(),
            labels: self.config.labels.clone(),
            max_concurrency: self.jobs.slots(),
            ollama: self.jobs.policy().visible(ollama.clone()),
            // Running, or finished with events to deliver: the control plane
            // keeps these leases and gives the others to another attempt.
            running_jobs: self.jobs.outbox.attempts(),
            projects,
            policy: self.jobs.policy().summary(),
        });
        send(socket, &hello).await.map_err(Ended::Retry)?;
        let deadline = tokio::time::Instant::now() + WELCOME_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, socket.next()).await.map_err(|_| {
                Ended::Retry(anyhow::anyhow!(
                    "the control plane did not answer Hello within {WELCOME_TIMEOUT:?}"
                ))
            })?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return match serde_json::from_str::<ServerMessage>(text.as_str()) {
                        Ok(ServerMessage::Welcome(welcome)) => Ok((welcome, ollama)),
                        Ok(ServerMessage::EraseTenant { erasure_id, tenant_id }) => {
                            Err(self.erase(socket, erasure_id, tenant_id).await)
                        }
                        Ok(other) => Err(Ended::Retry(anyhow::anyhow!("expected Welcome, got {other:?}"))),
                        Err(e) => Err(Ended::Retry(anyhow::anyhow!(
                            "the control plane sent a malformed message: {e}"
                        ))),
                    };
                }
                Some(Ok(Message::Close(frame))) => return Err(closed(frame)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(Ended::Retry(anyhow::anyhow!("the connection failed: {e}"))),
                None => return Err(Ended::Retry(anyhow::anyhow!("the control plane closed the connection"))),
            }
        }
    }

    /// The tenant was erased: delete what this host holds for it, confirm,
    /// and (once the confirmation is recorded) forget the identity. A
    /// connection lost before that is retried; the control plane asks
    /// again, and the second pass finds nothing left to delete.
    async fn erase(&self, socket: &mut Socket, erasure_id: uuid::Uuid, tenant_id: uuid::Uuid) -> Ended {
        tracing::warn!(%tenant_id, %erasure_id, "this agent's organisation was erased: deleting what this host holds for it");
        self.jobs.stop_all("the organisation was erased").await;
        let report =
            match crate::erase::erase_data(self.files, self.index, &self.jobs.outbox, erasure_id).await {
                Ok(report) => report,
                Err(e) => return Ended::Fatal(e.context("deleting the erased organisation's data")),
            };
        tracing::info!(
            documents = report.documents,
            chunks = report.chunks,
            outbox_entries = report.outbox_entries,
            bytes = report.bytes,
            "deleted the erased organisation's data"
        );
        if let Err(e) = send(socket, &AgentMessage::TenantErased(report.clone())).await {
            return Ended::Retry(e);
        }
        let deadline = tokio::time::Instant::now() + WELCOME_TIMEOUT;
        loop {
            let message = match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(message) => message,
                Err(_) => {
                    return Ended::Retry(anyhow::anyhow!(
                        "the control plane did not record the erasure in time"
                    ));
                }
            };
            match message {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(ServerMessage::ErasureRecorded { erasure_id: recorded }) =
                        serde_json::from_str::<ServerMessage>(text.as_str())
                        && recorded == erasure_id
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(frame))) => return closed(frame),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended::Retry(anyhow::anyhow!("the connection failed: {e}")),
                None => return Ended::Retry(anyhow::anyhow!("the control plane closed the connection")),
            }
        }
        let summary = format!(
            "{} documents, {} chunks, {} undelivered job results",
            report.documents, report.chunks, report.outbox_entries
        );
        if let Err(e) = crate::erase::forget_identity(self.files) {
            return Ended::Fatal(e.context("forgetting the identity after the erasure"));
        }
        Ended::Fatal(anyhow::Error::new(crate::erase::Erased(summary)))
    }

    async fn serve(
        &self,
        mut socket: Socket,
        welcome: Welcome,
        ollama: OllamaStatus,
        shutdown: &CancellationToken,
    ) -> Ended {
        let interval = Duration::from_millis(welcome.heartbeat_interval_ms.max(100));
        let (status, mut ollama_status) = watch::channel(ollama);
        let _watcher =
            AbortOnDropHandle::new(tokio::spawn(watch_ollama(self.ollama.clone(), interval, status)));
        let offline_after =
            Duration::from_millis(welcome.offline_after_ms.max(welcome.heartbeat_interval_ms * 2));
        let mut seq = 0u64;
        let mut last_models = None;
        // What `Hello` said (with the policy before `Welcome`); heartbeats
        // carry changes.
        let mut last_projects = self.index.projects().await.unwrap_or_default();
        let mut last_policy = None;
        let mut reporter = Reporter::new(self.index, self.jobs.policy().redactor().cloned());
        if let Err(e) = self.report(&mut socket, &mut reporter).await {
            return e;
        }
        let mut last_heard = Instant::now();
        let mut next_beat = tokio::time::Instant::now() + jitter(interval);
        // The server's schedule, or earlier if this certificate needs it (an
        // earlier renewal may not have been saved).
        let mut renew_at = deadline_for(
            self.renew_at.map_or(welcome.renew_certificate_at, |own| own.min(welcome.renew_certificate_at)),
        );
        let mut pending_key: Option<String> = None;
        let mut watchdog = tokio::time::interval(interval.min(Duration::from_secs(1)));
        let outbox = &self.jobs.outbox;
        self.jobs.set_max_frame_bytes(
            usize::try_from(welcome.max_frame_bytes).unwrap_or(MAX_FRAME_BYTES).min(MAX_FRAME_BYTES),
        );
        // Replay what the control plane has not acknowledged.
        outbox.rewind();
        loop {
            tokio::select! {
                message = socket.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerMessage>(text.as_str()) {
                            Ok(ServerMessage::CertificateRenewed(renewed)) => {
                                match self.store_renewal(pending_key.take(), &renewed.certificate_pem) {
                                    Ok(identity) => {
                                        tracing::info!(not_after = %renewed.not_after, "certificate renewed; it is used from the next connection");
                                        renew_at = deadline_for(identity.renew_at());
                                    }
                                    Err(e) => {
                                        tracing::error!(error = %format!("{e:#}"), "could not store the renewed certificate; will renew again");
                                        renew_at = tokio::time::Instant::now() + Duration::from_secs(600);
                                    }
                                }
                            }
                            Ok(ServerMessage::RenewalRejected(rejected)) => {
                                pending_key = None;
                                tracing::warn!(reason = %rejected.reason, "certificate renewal refused; retrying later");
                                renew_at = tokio::time::Instant::now() + Duration::from_secs(600);
                            }
                            Ok(ServerMessage::AssignJob(assign)) => self.jobs.assign(assign),
                            Ok(ServerMessage::CancelJob(cancel)) => self.jobs.cancel(cancel.job, &cancel.reason),
                            Ok(ServerMessage::Acknowledge(ack)) => outbox.acknowledge(ack.job, ack.seq),
                            Ok(ServerMessage::DocumentsAcknowledged { seq, refused }) => {
                                if let Err(e) = reporter.acknowledged(seq, &refused).await {
                                    tracing::error!(error = %format!("{e:#}"), "could not record the document report's acknowledgement");
                                }
                                if let Err(e) = self.report(&mut socket, &mut reporter).await {
                                    return e;
                                }
                            }
                            Ok(ServerMessage::RemoveDocuments { ids }) => {
                                for id in ids {
                                    match self.index.remove(id).await {
                                        Ok(true) => tracing::info!(document_id = %id, "document removed at the control plane's request"),
                                        Ok(false) => self.index.forget(id).await.unwrap_or_else(|e| {
                                            tracing::error!(error = %format!("{e:#}"), "could not record a removal");
                                        }),
                                        Err(e) => tracing::error!(document_id = %id, error = %format!("{e:#}"), "could not remove a document"),
                                    }
                                }
                                if let Err(e) = self.report(&mut socket, &mut reporter).await {
                                    return e;
                                }
                            }
                            Ok(ServerMessage::Welcome(_)) => tracing::warn!("ignoring a second Welcome"),
                            // Only ever the answer to Hello.
                            Ok(ServerMessage::EraseTenant { .. } | ServerMessage::ErasureRecorded { .. }) => {
                                tracing::warn!("ignoring an erasure message outside the greeting");
                            }
                            Err(e) => tracing::warn!(error = %e, "ignoring a message this agent does not understand"),
                        },
                        Some(Ok(Message::Close(frame))) => return closed(frame),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Ended::Retry(anyhow::anyhow!("the connection failed: {e}")),
                        None => return Ended::Retry(anyhow::anyhow!("the control plane closed the connection")),
                    }
                }
                () = tokio::time::sleep_until(next_beat) => {
                    next_beat = tokio::time::Instant::now() + jitter(interval);
                    seq += 1;
                    let ollama = ollama_status.borrow_and_update().clone();
                    // An unreachable Ollama lists nothing; that says nothing
                    // about which models it has, so the last list stands.
                    let models = (ollama.reachable && last_models.as_ref() != Some(&ollama.models)).then(|| ollama.models.clone());
                    if models.is_some() {
                        if last_models.is_some() {
                            self.ollama.forget_models();
                        }
                        last_models = Some(ollama.models);
                    }
                    let running = self.jobs.running();
                    let projects = match self.index.projects().await {
                        Ok(projects) if projects != last_projects => {
                            last_projects.clone_from(&projects);
                            Some(projects)
                        }
                        Ok(_) => None,
                        Err(e) => {
                            tracing::error!(error = %format!("{e:#}"), "could not read the document index");
                            None
                        }
                    };
                    let policy = self.jobs.policy().summary();
                    let policy = (last_policy.as_ref() != Some(&policy)).then(|| {
                        last_policy = Some(policy.clone());
                        policy
                    });
                    let beat = AgentMessage::Heartbeat(Heartbeat {
                        seq,
                        max_concurrency: self.jobs.slots(),
                        running_jobs: running,
                        free_slots: self.jobs.slots().saturating_sub(running),
                        ollama_reachable: ollama.reachable,
                        models: models.map(|models| {
                            self.jobs.policy().visible(OllamaStatus { reachable: true, models }).models
                        }),
                        jobs: outbox.attempts(),
                        projects,
                        policy,
                    });
                    if let Err(e) = send(&mut socket, &beat).await {
                        return Ended::Retry(e);
                    }
                    // Documents ingested from the command line meanwhile.
                    if let Err(e) = self.report(&mut socket, &mut reporter).await {
                        return e;
                    }
                }
                () = tokio::time::sleep_until(renew_at) => {
                    match new_key_and_csr(&self.config.name) {
                        Ok(generated) => {
                            tracing::info!("renewing the certificate");
                            pending_key = Some(generated.key_pem);
                            let request = AgentMessage::RenewCertificate(RenewCertificate { csr_pem: generated.csr_pem });
                            if let Err(e) = send(&mut socket, &request).await {
                                return Ended::Retry(e);
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "could not generate a key for renewal"),
                    }
                    // If no answer comes, ask again later.
                    renew_at = tokio::time::Instant::now() + Duration::from_secs(600);
                }
                _ = watchdog.tick() => {
                    if last_heard.elapsed() > offline_after {
                        return Ended::Retry(anyhow::anyhow!(
                            "nothing heard from the control plane for {} s; the connection is presumed dead",
                            offline_after.as_secs()
                        ));
                    }
                }
                () = self.jobs.documents_changed.notified() => {
                    if let Err(e) = self.report(&mut socket, &mut reporter).await {
                        return e;
                    }
                }
                () = outbox.changed() => {
                    for event in outbox.unsent() {
                        if let Err(e) = send(&mut socket, &AgentMessage::JobEvent(event)).await {
                            return Ended::Retry(e);
                        }
                    }
                }
                () = shutdown.cancelled() => {
                    self.drain(&mut socket).await;
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "agent shutting down".into() };
                    let _ = tokio::time::timeout(Duration::from_secs(2), socket.close(Some(frame))).await;
                    return Ended::Shutdown;
                }
            }
        }
    }

    /// Puts the policy for the tenant's compliance mode in force.
    fn apply_compliance(&self, compliance: &str) {
        match self.policy_file.effective(compliance) {
            Ok(policy) => self.jobs.set_policy(policy),
            // The file was checked at start; its patterns compiled then.
            Err(e) => tracing::error!(error = %format!("{e:#}"), "could not apply the policy"),
        }
    }

    /// Sends the next document report, if one is due.
    async fn report(&self, socket: &mut Socket, reporter: &mut Reporter<'_>) -> Result<(), Ended> {
        match reporter.next().await {
            Ok(Some(report)) => send(socket, &AgentMessage::Documents(report)).await.map_err(Ended::Retry),
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "could not read the document index for a report");
                Ok(())
            }
        }
    }

    /// Stops the running jobs and delivers their outcomes (the control plane
    /// gives them to another agent at once), for at most `DRAIN_TIMEOUT`;
    /// then waits for the outbox's disk to catch up, so what was delivered
    /// is not sent again by the next start.
    async fn drain(&self, socket: &mut Socket) {
        self.deliver_outcomes(socket).await;
        self.jobs.outbox.flush().await;
    }

    async fn deliver_outcomes(&self, socket: &mut Socket) {
        self.jobs.stop_all("the agent is shutting down").await;
        let outbox = &self.jobs.outbox;
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while !outbox.attempts().is_empty() {
            for event in outbox.unsent() {
                if send(socket, &AgentMessage::JobEvent(event)).await.is_err() {
                    return;
                }
            }
            match tokio::time::timeout_at(deadline, socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    if let Ok(ServerMessage::Acknowledge(ack)) =
                        serde_json::from_str::<ServerMessage>(text.as_str())
                    {
                        outbox.acknowledge(ack.job, ack.seq);
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => {
                    tracing::info!(
                        attempts = outbox.attempts().len(),
                        "job outcomes stay in the outbox for the next start"
                    );
                    return;
                }
            }
        }
    }

    /// Saves the renewed certificate with the key generated for it, after
    /// checking they belong together.
    fn store_renewal(&self, key_pem: Option<String>, certificate_pem: &str) -> anyhow::Result<Identity> {
        let key_pem = key_pem.context("a certificate arrived without a pending renewal")?;
        let pem = identity_pem(&key_pem, certificate_pem);
        let identity = Identity::parse(&pem)?;
        // The TLS layer checks that key and certificate match.
        let ca = self.files.load_ca()?;
        net::agent_config(&ca, Identity::parse(&pem)?)?;
        self.files.save_identity(&pem)?;
        Ok(identity)
    }
}

/// Probes Ollama once per heartbeat interval, away from the tunnel's loop: a
/// slow Ollama (the probe may take seconds) must not hold up assignments,
/// cancellations and acknowledgements.
async fn watch_ollama(ollama: Arc<Ollama>, every: Duration, status: watch::Sender<OllamaStatus>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and `Hello` has just probed.
    tick.tick().await;
    loop {
        tick.tick().await;
        status.send_replace(ollama.status().await);
    }
}

async fn send(socket: &mut Socket, message: &AgentMessage) -> anyhow::Result<()> {
    let text = serde_json::to_string(message)?;
    socket.send(Message::Text(text.into())).await.context("sending to the control plane")
}

/// What a close frame from the control plane means for this agent.
fn closed(frame: Option<CloseFrame>) -> Ended {
    let Some(frame) = frame else {
        return Ended::Retry(anyhow::anyhow!("the control plane closed the connection"));
    };
    let reason = frame.reason.to_string();
    match u16::from(frame.code) {
        close::REVOKED => Ended::Fatal(anyhow::Error::new(Revoked(reason))),
        close::INCOMPATIBLE_VERSION => Ended::Fatal(anyhow::anyhow!(
            "the control plane does not support this agent's version: {reason}. Upgrade marketer-agent"
        )),
        close::CERTIFICATE_EXPIRED | close::UNAUTHORIZED => Ended::Fatal(anyhow::anyhow!(
            "the control plane refused this agent's identity: {reason}. Ask for a new enrollment token and run `marketer-agent enroll --force`"
        )),
        close::TENANT_ERASED => Ended::Retry(anyhow::anyhow!(
            "the control plane says this agent's organisation was erased ({reason}); reconnecting to learn what to delete"
        )),
        close::SUPERSEDED => Ended::Retry(anyhow::anyhow!(
            "another process with this agent's identity connected ({reason}); is the agent running twice?"
        )),
        code => Ended::Retry(anyhow::anyhow!("the control plane closed the connection ({code}: {reason})")),
    }
}

/// What an HTTP refusal of the upgrade means for this agent.
fn refusal(status: http::StatusCode, body: Option<&[u8]>) -> Ended {
    let detail = body.and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok()).map(|b| b.error);
    let message =
        detail.as_ref().map_or_else(|| format!("the control plane answered {status}"), |d| d.message.clone());
    match detail.as_ref().map(|d| d.code.as_str()) {
        Some(codes::AGENT_REVOKED) => Ended::Fatal(anyhow::Error::new(Revoked(message))),
        Some(codes::CERTIFICATE_EXPIRED | codes::CERTIFICATE_UNKNOWN | codes::CERTIFICATE_REQUIRED) => {
            Ended::Fatal(anyhow::anyhow!("{message}"))
        }
        _ => Ended::Retry(anyhow::anyhow!("the control plane refused the tunnel: {message}")),
    }
}

/// ±10 % around `interval`, so a fleet's heartbeats do not line up.
fn jitter(interval: Duration) -> Duration {
    interval.mul_f64(rand::random_range(0.9..1.1))
}

fn deadline_for(at: OffsetDateTime) -> tokio::time::Instant {
    let wait = at - OffsetDateTime::now_utc();
    let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + wait
}

fn bracket(host: &str) -> String {
    if host.contains(':') { format!("[{host}]") } else { host.to_owned() }
}
