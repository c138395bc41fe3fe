//! The job engine: queues LLM work per tenant and hands it to that
//! tenant's agents over the tunnel.
//!
//! - `scheduler.rs`: assignment (push, not poll) and the timers: expired
//!   leases, run and queue timeouts, why queued jobs wait.
//! - `bus.rs`: live delivery of job events to SSE subscribers.
//!
//! The rules that make a job run once (leases with epochs, conditional
//! writes, one terminal outcome per transaction) live in the store; this
//! module decides when to call them and tells agents and subscribers.

mod bus;
mod scheduler;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use marketer_protocol::{CancelJob, JobEvent, JobEventBody, JobOutcome, JobRef, ServerMessage};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::cluster::{Cluster, Signal};
use crate::domain::Timestamp;
use crate::gateway::Hub;
use crate::metrics::Metrics;
use crate::store::{JobEventKind, RecordOutcome, RetryPolicy, Store, StoreError, StoredJobEvent, Transition};

pub use bus::{EventBus, Live};

/// How to answer an agent's job event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The event is stored (or was, or is moot): the agent may forget it.
    pub acknowledge: bool,
    /// The attempt no longer holds a lease: the agent must stop it.
    pub stop: bool,
}

/// Tunables of the engine.
#[derive(Debug, Clone, Copy)]
pub struct JobSettings {
    pub retry: RetryPolicy,
    /// How long a lease outlives its agent's silence (default 60 s).
    pub lease_grace: Duration,
    /// How often the timers run and other replicas' submissions are picked up.
    pub sweep_interval: Duration,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            lease_grace: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug)]
pub struct JobEngine {
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
    pub bus: EventBus,
    wake: Notify,
    cluster: Arc<Cluster>,
    pub metrics: Arc<Metrics>,
    pub settings: JobSettings,
}

impl JobEngine {
    pub fn new(
        store: Arc<dyn Store>,
        hub: Arc<Hub>,
        cluster: Arc<Cluster>,
        metrics: Arc<Metrics>,
        settings: JobSettings,
    ) -> Self {
        Self { store, hub, bus: EventBus::default(), wake: Notify::new(), cluster, metrics, settings }
    }

    /// Counts finished jobs (a `done` event, with the attempt's wall time)
    /// and retries (a `retrying` status) in the metrics, as they are stored.
    fn count(&self, event: &StoredJobEvent) {
        let wall_time = || {
            event.data["usage"]["wall_time_ms"]
                .as_u64()
                .filter(|ms| *ms > 0)
                .map(std::time::Duration::from_millis)
        };
        match event.kind {
            JobEventKind::Done => {
                let outcome = event.data["status"].as_str().unwrap_or_default();
                self.metrics.job_finished(outcome, wall_time());
                if event.data["activity_id"].is_string() {
                    self.metrics.activity_run_finished(outcome);
                    let (store, metrics, done) = (self.store.clone(), self.metrics.clone(), event.clone());
                    tokio::spawn(async move { time_steps(store.as_ref(), &metrics, &done).await });
                }
            }
            JobEventKind::Status if event.data["status"] == "retrying" => self.metrics.job_retried(),
            _ => {}
        }
    }

    /// Asks this replica's scheduler to look at the queue now (a slot
    /// freed, an agent connected).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Jobs were queued (submitted, requeued for a retry): every replica's
    /// scheduler looks at the queue now, for its own agents.
    pub fn queued(&self) {
        self.wake();
        self.cluster.send(Signal::Queued);
    }

    /// Tells the job's followers here of `events` (stored, in order, of
    /// one job), and the other replicas that they are stored.
    pub fn publish(&self, events: &[StoredJobEvent]) {
        let Some(last) = events.last() else { return };
        for event in events {
            self.count(event);
        }
        self.bus.publish(events);
        self.cluster.send(Signal::Events { job: last.job_id, seq: last.seq });
    }

    pub fn lease_until(&self, now: Timestamp) -> Timestamp {
        now + time::Duration::try_from(self.settings.lease_grace).unwrap_or_default()
    }

    /// Publishes the events of transitions the engine did not cause through
    /// an agent (cancellations, timeouts), and tells the agents concerned to
    /// stop.
    pub fn apply(&self, transitions: &[Transition], reason: &str) {
        for transition in transitions {
            self.publish(&transition.events);
            if let Some((agent, lease)) = transition.ended_lease {
                let cancel = CancelJob { job: lease, reason: reason.to_owned() };
                self.hub.deliver(agent, ServerMessage::CancelJob(cancel));
            }
        }
        if !transitions.is_empty() {
            // Some may be retries, queued again.
            self.queued();
        }
    }

    /// Stores events of an agent's jobs, in the order the agent sent them,
    /// in one transaction, and tells subscribers; says how to answer the
    /// agent about each.
    pub async fn record(&self, agent_id: Uuid, events: &[JobEvent]) -> Result<Vec<Reply>, StoreError> {
        let now = Timestamp::now();
        let outcomes = self
            .store
            .record_job_events(agent_id, events, now, self.lease_until(now), &self.settings.retry)
            .await?;
        let mut replies = Vec::with_capacity(events.len());
        let (mut wake, mut queued) = (false, false);
        for (event, outcome) in events.iter().zip(outcomes) {
            let finished = matches!(event.body, JobEventBody::Finished { .. });
            let reply = match outcome {
                RecordOutcome::Stored { events, .. } => {
                    self.publish(&events);
                    Reply { acknowledge: true, stop: false }
                }
                RecordOutcome::Duplicate => Reply { acknowledge: true, stop: false },
                // A late event of a cancelled, requeued or reassigned attempt:
                // acknowledged so the agent forgets it, and discarded. If the
                // attempt is still running there (the cancellation went to
                // another replica's connection, say), the agent must stop it.
                RecordOutcome::Stale => Reply { acknowledge: true, stop: !finished },
                // Out of order: the agent's replay will fill the gap.
                RecordOutcome::Gap => Reply { acknowledge: false, stop: false },
            };
            if finished && reply.acknowledge {
                self.hub.release(agent_id, event.job);
                // A failure may have been queued again for a retry.
                if matches!(&event.body, JobEventBody::Finished { outcome: JobOutcome::Failed { .. } }) {
                    queued = true;
                } else {
                    wake = true;
                }
            }
            replies.push(reply);
        }
        if queued {
            self.queued();
        } else if wake {
            self.wake();
        }
        Ok(replies)
    }

    /// An agent connected saying which jobs it still has. Jobs it lost go
    /// back to the queue; the leases it still holds are returned, and the
    /// jobs it runs without a lease (cancelled or given away while it was
    /// gone) are returned as stale, for it to stop.
    pub async fn agent_connected(
        &self,
        agent_id: Uuid,
        running: &[JobRef],
    ) -> Result<(Vec<JobRef>, Vec<JobRef>), StoreError> {
        let now = Timestamp::now();
        let released = self.store.release_lost_jobs(agent_id, running, now, &self.settings.retry).await?;
        for transition in &released {
            self.publish(&transition.events);
        }
        if !released.is_empty() {
            self.queued();
        }
        let leases = self.store.agent_leases(agent_id).await?;
        let held: HashSet<JobRef> = leases.iter().copied().collect();
        let stale = running.iter().filter(|job| !held.contains(job)).copied().collect();
        Ok((leases, stale))
    }

    /// The scheduler's loop; runs until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        scheduler::run(self, shutdown).await;
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// Records in the audit log where a run of an activity went: which agent
    /// (or the cloud runner) took which attempt. Informational: a failure to
    /// write it is logged and does not stop the run.
    pub async fn audit_assignment(&self, job: &crate::store::Job, runner: Uuid) {
        let Some(activity_id) = job.activity_id else { return };
        let event = crate::service::audit_event(
            Some(job.tenant_id),
            crate::store::Actor::System { name: "scheduler".into() },
            &crate::service::RequestMeta::default(),
            crate::service::actions::ACTIVITY_ASSIGN,
            crate::store::Outcome::Success,
        )
        .resource("activity", activity_id)
        .details(serde_json::json!({
            "job_id": job.id, "attempt": job.attempts, "route": job.route, "model": job.model,
            "agent_id": (job.route == crate::store::Route::Edge).then_some(runner),
        }));
        if let Err(e) = self.store.record_audit(&event).await {
            tracing::warn!(error = %e, job_id = %job.id, "could not audit an activity assignment");
        }
    }

    /// An agent's connection ended without its saying goodbye: the jobs it
    /// holds say so to their followers (they wait out the lease grace).
    pub async fn agent_lost(&self, agent_id: Uuid) {
        match self.store.note_agent_lost(agent_id, Timestamp::now()).await {
            Ok(events) => self.publish(&events),
            Err(e) => tracing::warn!(%agent_id, error = %e, "could not note a lost agent on its jobs"),
        }
    }

    /// A subscription to a job's live events (see [`EventBus`]).
    pub fn subscribe(&self, job_id: Uuid) -> tokio::sync::broadcast::Receiver<Live> {
        self.bus.subscribe(job_id)
    }
}

/// Why no edge agent of the tenant can run `model` now (none online
/// within `window` of its last heartbeat, or none with the model), or
/// `None` if one can.
pub async fn edge_problem(
    store: &dyn Store,
    tenant_id: Uuid,
    model: &str,
    window: time::Duration,
) -> Result<Option<String>, StoreError> {
    let agents = store.agents(tenant_id, crate::store::PageRequest { after: None, limit: 1000 }).await?;
    let now = Timestamp::now();
    let online: Vec<_> = agents.items.iter().filter(|a| a.is_online(now, window)).collect();
    if online.is_empty() {
        return Ok(Some("no agent of this tenant is online".into()));
    }
    let has_model = online
        .iter()
        .any(|a| a.models.iter().any(|m| marketer_protocol::canonical_model_name(&m.name) == model));
    if !has_model {
        return Ok(Some(format!(
            "no online agent has the model {model} (pull it there with `ollama pull {model}`)"
        )));
    }
    Ok(None)
}

/// Observes how long each step of a finished activity run took, from its
/// stored progress events (whichever replicas stored them): a step lasts
/// from its first progress event until the next step's, the last one until
/// `done`. Only the finishing attempt counts.
async fn time_steps(store: &dyn Store, metrics: &Metrics, done: &StoredJobEvent) {
    const PAGE: i64 = 1000;
    let attempt = done.data["attempt"].as_i64();
    let mut steps: Vec<(String, Timestamp)> = Vec::new();
    let mut after = 0;
    loop {
        let events = match store.job_events(done.job_id, after, PAGE).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(job_id = %done.job_id, error = %e, "could not read a run's steps for the metrics");
                return;
            }
        };
        for event in &events {
            if event.kind != JobEventKind::Progress || event.data["attempt"].as_i64() != attempt {
                continue;
            }
            let Some(step) = event.data["step"].as_str() else { continue };
            if steps.last().is_none_or(|(last, _)| last != step) {
                steps.push((step.to_owned(), event.created_at));
            }
        }
        match events.last() {
            Some(last) if events.len() == usize::try_from(PAGE).unwrap_or(usize::MAX) => after = last.seq,
            _ => break,
        }
    }
    let ends = steps.iter().skip(1).map(|(_, at)| *at).chain(std::iter::once(done.created_at));
    for ((step, started), ended) in steps.iter().zip(ends) {
        let took = ended.as_datetime() - started.as_datetime();
        metrics.activity_step(step, std::time::Duration::try_from(took).unwrap_or_default());
    }
}
