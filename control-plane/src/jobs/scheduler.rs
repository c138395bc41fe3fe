//! Assignment and the engine's timers.
//!
//! Assignment is push: a submission, a freed slot or a connecting agent
//! wakes the loop, which gives queued jobs to this replica's connected
//! agents at once. A periodic sweep also runs, to pick up jobs submitted on
//! other replicas and jobs whose retry delay or `not_before` passed, and to
//! run the timers.
//!
//! A job goes only to an agent of its own tenant whose labels include the
//! job's and which reports the job's model (and, for a job bound to a
//! project's documents, which holds that project's index); among those, to
//! the one with the most free slots. Queued jobs are taken highest priority first, then
//! oldest first. Tenants never share agents, so one tenant's queue cannot
//! starve another's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use marketer_protocol::{AssignJob, JobRef, ServerMessage, canonical_model_name};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::JobEngine;
use crate::domain::Timestamp;
use crate::gateway::hub::{AgentSlots, Capabilities};
use crate::store::{Agent, Labels, QueuedJob, WaitingKind};

/// Queued jobs read per query: a few per free slot (most jobs fit most
/// agents), between these bounds. A pass pages through a tenant's queue
/// until its agents are full or the queue ends, so jobs no agent can take
/// never hide the ones behind them.
const MIN_PAGE: i64 = 8;
const MAX_PAGE: i64 = 256;

pub(super) async fn run(engine: Arc<JobEngine>, shutdown: CancellationToken) {
    // After a restart, give agents the grace period to reconnect before
    // their jobs are given away.
    let until = engine.lease_until(Timestamp::now());
    match engine.store.extend_active_leases(until).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "extended the leases of running jobs while agents reconnect"),
        Err(e) => tracing::error!(error = %e, "could not extend job leases"),
    }
    let mut sweep = tokio::time::interval(engine.settings.sweep_interval);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_timers = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = engine.wake.notified() => {}
            _ = sweep.tick() => {}
        }
        if last_timers.elapsed() >= engine.settings.sweep_interval {
            last_timers = Instant::now();
            timers(&engine).await;
        }
        dispatch(&engine).await;
    }
}

/// Gives queued jobs to connected agents with free slots.
async fn dispatch(engine: &JobEngine) {
    let mut by_tenant: BTreeMap<Uuid, Vec<AgentSlots>> = BTreeMap::new();
    for slots in engine.hub.slots().into_iter().filter(|s| s.free > 0) {
        by_tenant.entry(slots.tenant_id).or_default().push(slots);
    }
    for (tenant_id, mut agents) in by_tenant {
        let now = Timestamp::now();
        let free: i64 = agents.iter().map(|a| i64::from(a.free)).sum();
        let page = free.saturating_mul(2).clamp(MIN_PAGE, MAX_PAGE);
        let mut after = None;
        'pages: loop {
            let queued = match engine.store.queued_jobs(tenant_id, now, after, page).await {
                Ok(queued) => queued,
                Err(e) => {
                    tracing::error!(error = %e, %tenant_id, "could not read the job queue");
                    break;
                }
            };
            let last_page = queued.len() < usize::try_from(page).unwrap_or(usize::MAX);
            after = queued.last().map(|job| (job.priority, job.id));
            for job in queued {
                if agents.iter().all(|a| a.free == 0) {
                    break 'pages;
                }
                let Some(agent) = agents
                    .iter_mut()
                    .filter(|a| a.free > 0 && eligible(&a.caps, &job))
                    .max_by_key(|a| (a.caps.ollama_reachable, a.free))
                else {
                    continue;
                };
                assign(engine, agent, &job).await;
            }
            if last_page {
                break;
            }
        }
    }
}

fn eligible(caps: &Capabilities, job: &QueuedJob) -> bool {
    job.labels.iter().all(|(k, v)| caps.labels.get(k) == Some(v))
        && caps.models.contains(&job.model)
        && job.index_project_id.is_none_or(|project| caps.projects.contains(&project))
}

async fn assign(engine: &JobEngine, agent: &mut AgentSlots, job: &QueuedJob) {
    if !engine.hub.reserve(agent.agent_id) {
        agent.free = 0;
        return;
    }
    let now = Timestamp::now();
    let claim = match engine.store.claim_job(job.id, agent.agent_id, now, engine.lease_until(now)).await {
        Ok(Some(claim)) => claim,
        Ok(None) => {
            // Another replica got there first.
            engine.hub.settle(agent.agent_id, None);
            return;
        }
        Err(e) => {
            engine.hub.settle(agent.agent_id, None);
            tracing::error!(error = %e, job_id = %job.id, "could not claim a job");
            return;
        }
    };
    let lease = JobRef { job_id: claim.job.id, epoch: u64::try_from(claim.job.epoch).unwrap_or(0) };
    engine.hub.settle(agent.agent_id, Some(lease));
    agent.free -= 1;
    engine.publish(std::slice::from_ref(&claim.event));
    if claim.job.attempts == 1 {
        let waited = Timestamp::now().as_datetime() - claim.job.created_at.as_datetime();
        engine.metrics.job_dispatched(std::time::Duration::try_from(waited).unwrap_or_default());
    }
    engine.audit_assignment(&claim.job, agent.agent_id).await;
    let message = ServerMessage::AssignJob(AssignJob {
        job: lease,
        attempt: u32::try_from(claim.job.attempts).unwrap_or(u32::MAX),
        spec: claim.job.spec_for_attempt(),
        timeout_ms: u64::try_from(claim.job.timeout_seconds).unwrap_or(0).saturating_mul(1000),
    });
    if engine.hub.send(agent.agent_id, message) {
        tracing::debug!(job_id = %lease.job_id, agent_id = %agent.agent_id, attempt = claim.job.attempts, "job assigned");
        return;
    }
    // The agent left between the snapshot and now, or its connection is too
    // far behind to take more: the job goes back to the queue at once.
    tracing::warn!(job_id = %lease.job_id, agent_id = %agent.agent_id, "an assignment could not be sent; requeueing it");
    engine.hub.release(agent.agent_id, lease);
    agent.free = 0;
    match engine
        .store
        .requeue_undelivered(agent.agent_id, lease, Timestamp::now(), &engine.settings.retry)
        .await
    {
        Ok(Some(transition)) => engine.publish(&transition.events),
        Ok(None) => {}
        // The lease stays; the agent's heartbeats do not renew it, so it
        // expires and the job is retried then.
        Err(e) => tracing::error!(error = %e, job_id = %lease.job_id, "could not requeue an undelivered job"),
    }
}

/// Timeouts, lost agents, and why queued jobs wait.
async fn timers(engine: &JobEngine) {
    let now = Timestamp::now();
    let retry = engine.settings.retry;
    match engine.store.expire_leases(now, &retry).await {
        Ok(t) => {
            engine.metrics.job_leases_expired(t.len());
            engine.apply(&t, "the lease expired");
        }
        Err(e) => tracing::error!(error = %e, "could not expire job leases"),
    }
    match engine.store.expire_run_timeouts(now, &retry).await {
        Ok(t) => engine.apply(&t, "the job timed out"),
        Err(e) => tracing::error!(error = %e, "could not time out running jobs"),
    }
    match engine.store.expire_queue_timeouts(now).await {
        Ok(t) => engine.apply(&t, "the job timed out in the queue"),
        Err(e) => tracing::error!(error = %e, "could not time out queued jobs"),
    }
    explain_waits(engine, now).await;
}

/// Records, for the queued jobs that could start, why no agent took them.
async fn explain_waits(engine: &JobEngine, now: Timestamp) {
    let kinds = match engine.store.waiting_kinds(now).await {
        Ok(kinds) => kinds,
        Err(e) => {
            tracing::error!(error = %e, "could not read waiting jobs");
            return;
        }
    };
    let mut by_tenant: BTreeMap<Uuid, Vec<WaitingKind>> = BTreeMap::new();
    for kind in kinds {
        by_tenant.entry(kind.tenant_id).or_default().push(kind);
    }
    let window = time::Duration::try_from(engine.hub.timings.offline_after()).unwrap_or(time::Duration::MAX);
    for (tenant_id, kinds) in by_tenant {
        let agents = match engine
            .store
            .agents(tenant_id, crate::store::PageRequest { after: None, limit: 1000 })
            .await
        {
            Ok(page) => page.items,
            Err(e) => {
                tracing::error!(error = %e, %tenant_id, "could not read agents");
                continue;
            }
        };
        let online: Vec<&Agent> = agents.iter().filter(|a| a.is_online(now, window)).collect();
        for kind in kinds {
            let reason = waiting_reason(&online, &kind.labels, &kind.model, kind.index_project_id);
            if let Err(e) = engine.store.set_waiting_reason(&kind, now, &reason).await {
                tracing::error!(error = %e, "could not record why jobs wait");
            }
        }
    }
}

/// Why queued jobs asking for `labels` and `model` (and the index of
/// `project`) are still queued, given the tenant's online agents.
pub(crate) fn waiting_reason(
    online: &[&Agent],
    labels: &Labels,
    model: &str,
    project: Option<Uuid>,
) -> String {
    if online.is_empty() {
        return "no agent of this tenant is online".to_owned();
    }
    let online: Vec<&Agent> = match project {
        Some(project) => {
            let holders: Vec<&Agent> =
                online.iter().copied().filter(|a| a.projects.contains(&project)).collect();
            if holders.is_empty() {
                return "no online agent holds this project's documents (the agent that indexed them is offline)"
                    .to_owned();
            }
            holders
        }
        None => online.to_vec(),
    };
    let online = online.as_slice();
    let labelled: Vec<&&Agent> =
        online.iter().filter(|a| labels.iter().all(|(k, v)| a.labels.get(k) == Some(v))).collect();
    if labelled.is_empty() {
        let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return format!("no online agent has the labels {}", wanted.join(", "));
    }
    let with_model: Vec<&&&Agent> =
        labelled.iter().filter(|a| a.models.iter().any(|m| canonical_model_name(&m.name) == model)).collect();
    if with_model.is_empty() {
        return format!("no online agent has the model {model} (pull it with `ollama pull {model}`)");
    }
    if with_model.iter().all(|a| !a.ollama_reachable) {
        return "the Ollama of every matching agent is unreachable".to_owned();
    }
    "every matching agent is busy".to_owned()
}
