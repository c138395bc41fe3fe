//! Jobs on the agent: taking assignments, running them against the local
//! Ollama within the slot count, cancelling them, and keeping their events in
//! the outbox until the control plane has them.
//!
//! - `outbox.rs`: unacknowledged events, in memory and on disk;
//! - `run.rs`: one attempt, from `Started` to its outcome;
//! - `activity.rs`: activity jobs, the content pipeline on the local Ollama;
//! - `ingest.rs`: ingest jobs, uploaded documents fetched and indexed.
//!
//! Every attempt runs under the agent's privacy policy: models it does not
//! allow are refused, output beyond its limit stops the job, and the outbox
//! redacts what leaves.

mod activity;
mod classify;
mod ingest;
pub mod outbox;
mod reply;
mod run;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marketer_protocol::{AssignJob, JobError, JobOutcome, JobRef, job_errors};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use tokio::sync::Notify;

use crate::documents::Index;
use crate::documents::download::Gateway;
use crate::ollama::Ollama;
use crate::privacy::Policy;
pub use outbox::Outbox;

/// How attempts run.
#[derive(Debug, Clone)]
pub struct ExecSettings {
    /// Jobs run at once.
    pub slots: u32,
    /// A stream with no new output for this long has stalled.
    pub stall_timeout: Duration,
    /// The context window used when a job does not set `num_ctx`: the
    /// model's own, but at most this (a model's full window can need many
    /// gigabytes of memory), unless the prompt needs more.
    pub num_ctx_max: u64,
    /// Output is sent in batches: the first token at once, then whatever
    /// arrived within this delay.
    pub flush_delay: Duration,
    /// `num_predict` of a chat job that sets none.
    pub max_output_tokens: u32,
    /// Activity steps' output budgets, where a job sets none of its own.
    pub output_budgets: std::collections::BTreeMap<String, u32>,
}

impl Default for ExecSettings {
    fn default() -> Self {
        Self {
            slots: 2,
            stall_timeout: Duration::from_secs(180),
            num_ctx_max: 16_384,
            flush_delay: Duration::from_millis(5),
            max_output_tokens: 4096,
            output_budgets: std::collections::BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    /// Why it was cancelled, for the outcome.
    reason: Arc<Mutex<Option<String>>>,
}

/// The agent's jobs.
#[derive(Debug)]
pub struct Jobs {
    ollama: Arc<Ollama>,
    pub outbox: Arc<Outbox>,
    settings: ExecSettings,
    running: Mutex<HashMap<JobRef, Running>>,
    tasks: TaskTracker,
    /// The largest message the control plane accepts (from `Welcome`).
    max_frame_bytes: AtomicUsize,
    index: Arc<Index>,
    gateway: Gateway,
    /// The policy in force (it depends on the tenant's compliance mode,
    /// known from `Welcome`).
    policy: Mutex<Arc<Policy>>,
    /// Signalled when a job changed the document index.
    pub documents_changed: Notify,
}

impl Jobs {
    pub fn new(
        ollama: Arc<Ollama>,
        outbox: Arc<Outbox>,
        settings: ExecSettings,
        index: Arc<Index>,
        gateway: Gateway,
        policy: Policy,
    ) -> Arc<Self> {
        let jobs = Arc::new(Self {
            ollama,
            outbox,
            settings,
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            max_frame_bytes: AtomicUsize::new(marketer_protocol::MAX_FRAME_BYTES),
            index,
            gateway,
            policy: Mutex::new(Arc::new(policy.clone())),
            documents_changed: Notify::new(),
        });
        jobs.set_policy(policy);
        jobs
    }

    /// Puts `policy` in force for the attempts that start from now on, and
    /// its redaction on everything that leaves from now on.
    pub fn set_policy(&self, policy: Policy) {
        self.outbox.set_redactor(policy.redactor().cloned());
        *self.policy.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn running_map(&self) -> std::sync::MutexGuard<'_, HashMap<JobRef, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn slots(&self) -> u32 {
        self.settings.slots
    }

    /// Attempts running now.
    pub fn running(&self) -> u32 {
        u32::try_from(self.running_map().len()).unwrap_or(u32::MAX)
    }

    pub fn set_max_frame_bytes(&self, bytes: usize) {
        self.max_frame_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Takes an assignment: runs it if a slot is free, or reports the agent
    /// busy (the control plane retries it elsewhere without counting an
    /// attempt).
    pub fn assign(self: &Arc<Self>, assign: AssignJob) {
        let job = assign.job;
        let mut running = self.running_map();
        if running.contains_key(&job) || self.outbox.holds(job) {
            tracing::debug!(job_id = %job.job_id, "ignoring a repeated assignment");
            return;
        }
        // A newer attempt of a job supersedes an older one still here.
        let older: Vec<JobRef> =
            running.keys().filter(|r| r.job_id == job.job_id && r.epoch < job.epoch).copied().collect();
        for old in older {
            if let Some(r) = running.get(&old) {
                *r.reason.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some("superseded by a newer attempt".into());
                r.cancel.cancel();
            }
        }
        self.outbox.begin(job);
        if running.len() >= self.settings.slots as usize {
            drop(running);
            tracing::warn!(job_id = %job.job_id, slots = self.settings.slots, "assignment beyond this agent's slots; reporting busy");
            let outbox = self.outbox.clone();
            self.tasks.spawn(async move {
                let error = JobError {
                    code: job_errors::AGENT_BUSY.into(),
                    message: "every slot of the agent was taken".into(),
                    retryable: true,
                };
                outbox.finish(job, JobOutcome::Failed { error }).await;
            });
            return;
        }
        let cancel = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        running.insert(job, Running { cancel: cancel.clone(), reason: reason.clone() });
        drop(running);
        tracing::info!(job_id = %job.job_id, attempt = assign.attempt, model = assign.spec.model(), "job started");
        let jobs = self.clone();
        self.tasks.spawn(async move {
            let attempt = run::Attempt {
                ollama: &jobs.ollama,
                outbox: &jobs.outbox,
                settings: jobs.settings.clone(),
                max_frame_bytes: jobs.max_frame_bytes.load(Ordering::Relaxed),
                index: &jobs.index,
                gateway: &jobs.gateway,
                policy: jobs.policy(),
                output_chars: std::sync::atomic::AtomicU64::new(0),
                documents_changed: &jobs.documents_changed,
            };
            attempt.run(assign, cancel, reason).await;
            jobs.running_map().remove(&job);
        });
    }

    /// Stops an attempt; it reports itself cancelled.
    pub fn cancel(&self, job: JobRef, reason: &str) {
        if let Some(r) = self.running_map().get(&job) {
            tracing::info!(job_id = %job.job_id, reason, "cancelling a job");
            *r.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_owned());
            r.cancel.cancel();
        }
    }

    /// Stops every attempt (the agent is shutting down) and waits for them
    /// to record their outcomes.
    pub async fn stop_all(&self, reason: &str) {
        let refs: Vec<JobRef> = self.running_map().keys().copied().collect();
        for job in refs {
            self.cancel(job, reason);
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}
