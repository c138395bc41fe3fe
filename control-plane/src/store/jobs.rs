//! Persistence of LLM jobs: the queue, leases, outcomes, and each job's event
//! log (what `GET /jobs/{id}/events` streams and replays).
//!
//! Every state change of a job is a transaction that also appends its event,
//! and every change made on behalf of an agent is conditional on the job's
//! current epoch (the lease's fencing number), so a job has exactly one
//! outcome however late, duplicated or replayed the agent's messages are.

use std::time::Duration;

use async_trait::async_trait;
use marketer_protocol::{JobError, JobEvent, JobOutput, JobRef, JobSpec, Usage};
use serde::Serialize;
use uuid::Uuid;

use super::{Labels, NewAuditEvent, Page, PageRequest, Result};
use crate::domain::Timestamp;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Assigned,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobKind {
    Chat,
    Embed,
    /// A run of a marketing activity's content pipeline.
    Activity,
    /// Indexing an uploaded document on an agent.
    Ingest,
    /// Labelling inbox items.
    Classify,
    /// Drafting a suggested reply to an inbox item.
    Reply,
}

impl JobKind {
    pub fn of(spec: &JobSpec) -> Self {
        match spec {
            JobSpec::Chat { .. } => JobKind::Chat,
            JobSpec::Embed { .. } => JobKind::Embed,
            JobSpec::Activity { .. } => JobKind::Activity,
            JobSpec::Ingest { .. } => JobKind::Ingest,
            JobSpec::Classify { .. } => JobKind::Classify,
            JobSpec::Reply { .. } => JobKind::Reply,
        }
    }
}

/// Who runs a job.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Route {
    /// One of the tenant's edge agents.
    Edge,
    /// The control plane's cloud runner, on the tenant's cloud provider.
    Cloud,
}

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub spec: JobSpec,
    pub labels: Labels,
    pub priority: i64,
    pub not_before: Option<Timestamp>,
    pub timeout_seconds: i64,
    pub queue_timeout_seconds: Option<i64>,
    pub max_attempts: i64,
    pub idempotency_key: Option<String>,
    /// A hash of the request, to tell a retried POST from a different one
    /// that reuses an idempotency key.
    pub request_hash: Vec<u8>,
    /// Who submitted the job (for display).
    pub created_by: String,
    /// The activity this job is a run of.
    pub activity_id: Option<Uuid>,
    pub route: Route,
    /// Only an agent holding this project's document index may run it.
    pub index_project_id: Option<Uuid>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: JobKind,
    pub model: String,
    pub spec: JobSpec,
    pub labels: Labels,
    pub priority: i64,
    pub not_before: Option<Timestamp>,
    pub timeout_seconds: i64,
    pub queue_timeout_seconds: Option<i64>,
    pub max_attempts: i64,
    pub idempotency_key: Option<String>,
    pub created_by: String,
    pub status: JobStatus,
    pub attempts: i64,
    pub agent_id: Option<Uuid>,
    pub epoch: i64,
    pub lease_expires_at: Option<Timestamp>,
    pub retry_at: Option<Timestamp>,
    pub waiting_reason: Option<String>,
    pub agent_seq: i64,
    pub event_seq: i64,
    pub output: Option<JobOutput>,
    pub usage: Option<Usage>,
    pub error: Option<JobError>,
    pub created_at: Timestamp,
    pub assigned_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    pub activity_id: Option<Uuid>,
    pub route: Route,
    pub index_project_id: Option<Uuid>,
}

impl Job {
    /// The current lease, while one is held.
    pub fn lease(&self) -> Option<(Uuid, JobRef)> {
        let agent = self.agent_id?;
        matches!(self.status, JobStatus::Assigned | JobStatus::Running)
            .then(|| (agent, JobRef { job_id: self.id, epoch: u64::try_from(self.epoch).unwrap_or(0) }))
    }

    /// What the next attempt runs: the spec, and for an activity whose
    /// earlier attempt left a checkpoint (it failed retryably, timed out, or
    /// lost its agent), that checkpoint to resume from, so a retry does not
    /// redo finished steps.
    pub fn spec_for_attempt(&self) -> JobSpec {
        let mut spec = self.spec.clone();
        if let (JobSpec::Activity { activity, .. }, Some(JobOutput::Activity { result })) =
            (&mut spec, &self.output)
            && marketer_pipeline::run::completed_steps(result).next().is_some()
        {
            activity.resume = Some(result.clone());
        }
        spec
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CreateJobOutcome {
    Created(Box<Job>),
    /// A retried request with the same idempotency key and body.
    Existing(Box<Job>),
}

/// Kinds of job events, which are also the SSE event names.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum JobEventKind {
    /// A status change (queued, assigned, running, retrying, cancelling).
    Status,
    /// Streamed output text.
    Chunk,
    /// An activity's pipeline moved to a step.
    Progress,
    /// The outcome; always the last event.
    Done,
}

/// One entry of a job's event log; `seq` is its SSE id.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredJobEvent {
    pub job_id: Uuid,
    pub seq: i64,
    pub kind: JobEventKind,
    pub attempt: i64,
    pub data: serde_json::Value,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    pub agent_id: Option<Uuid>,
    pub since: Option<Timestamp>,
}

/// Delays between attempts: `base` doubling per attempt, at most `max`.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { base: Duration::from_secs(2), max: Duration::from_secs(60) }
    }
}

impl RetryPolicy {
    /// The delay before attempt `next_attempt` (2 for the first retry).
    pub fn delay(&self, next_attempt: i64) -> time::Duration {
        let exponent = u32::try_from((next_attempt - 2).clamp(0, 16)).unwrap_or(0);
        let delay = self.base.saturating_mul(1 << exponent).min(self.max);
        time::Duration::try_from(delay).unwrap_or(time::Duration::ZERO)
    }
}

/// A job an agent was just given.
#[derive(Debug, Clone)]
pub struct Claim {
    pub job: Job,
    pub event: StoredJobEvent,
}

/// What the scheduler reads of a queued job to choose its agent: not the
/// request, which only the claim returns.
#[derive(Debug, Clone)]
pub struct QueuedJob {
    pub id: Uuid,
    pub priority: i64,
    pub model: String,
    pub labels: Labels,
    pub index_project_id: Option<Uuid>,
}

/// What became of an agent's job event.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// Stored, with the events it produced (a finished event may produce a
    /// `done` event or, for a retryable failure, a `retrying` status).
    Stored { events: Vec<StoredJobEvent>, finished: bool },
    /// Already stored (a replay from the agent's outbox).
    Duplicate,
    /// For a lease that no longer holds (cancelled, requeued, or another
    /// agent's): acknowledged and discarded.
    Stale,
    /// Out of order: an earlier event is missing; the agent will replay it.
    Gap,
}

/// A state change the scheduler made on its own (timeouts, lost agents),
/// with the events to publish and the lease that ended, if any.
#[derive(Debug, Clone)]
pub struct Transition {
    pub job: Job,
    pub events: Vec<StoredJobEvent>,
    /// The lease that ended, so its agent can be told to stop.
    pub ended_lease: Option<(Uuid, JobRef)>,
}

#[derive(Debug, Clone)]
pub enum CancelOutcome {
    Cancelled(Box<Transition>),
    AlreadyFinished(Box<Job>),
}

#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts a job with its first event, or returns the job an earlier
    /// request with the same idempotency key created (`Conflict` if that
    /// request differed).
    async fn create_job(&self, job: &NewJob, audit: &NewAuditEvent) -> Result<CreateJobOutcome>;
    async fn job(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Job>>;
    async fn jobs(&self, tenant_id: Uuid, filter: &JobFilter, page: PageRequest) -> Result<Page<Job>>;
    /// Events of a job with `seq > after`, in order.
    async fn job_events(&self, job_id: Uuid, after: i64, limit: i64) -> Result<Vec<StoredJobEvent>>;
    /// Queued edge jobs of a tenant that may start now, highest priority
    /// first, then oldest first; a page of them, after `after` (the priority
    /// and id of the previous page's last job).
    async fn queued_jobs(
        &self,
        tenant_id: Uuid,
        now: Timestamp,
        after: Option<(i64, Uuid)>,
        limit: i64,
    ) -> Result<Vec<QueuedJob>>;
    /// Queued cloud jobs of every tenant that may start now, in the same
    /// order, at most `limit`.
    async fn queued_cloud_jobs(&self, now: Timestamp, limit: i64) -> Result<Vec<Job>>;
    /// Gives a queued job to an agent (a new lease with a new epoch), unless
    /// someone else took it first.
    async fn claim_job(
        &self,
        job_id: Uuid,
        agent_id: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Claim>>;
    /// Stores an agent's job events, in order, in one transaction: each
    /// exactly once and only under the current lease. One outcome per event.
    async fn record_job_events(
        &self,
        agent_id: Uuid,
        events: &[JobEvent],
        now: Timestamp,
        lease_until: Timestamp,
        retry: &RetryPolicy,
    ) -> Result<Vec<RecordOutcome>>;
    /// Says in the event log of every job the agent holds that its agent
    /// disconnected and the job waits for it (within the lease grace); the
    /// job itself is unchanged. Returns the events, to publish.
    async fn note_agent_lost(&self, agent_id: Uuid, now: Timestamp) -> Result<Vec<StoredJobEvent>>;
    /// Extends the leases that agents say they hold, `(agent_id, attempt)`.
    /// A lease the agent no longer has (another epoch, another agent) is
    /// left alone.
    async fn renew_leases(&self, leases: &[(Uuid, JobRef)], until: Timestamp) -> Result<()>;
    /// Extends every active lease (after a control-plane restart, agents
    /// need time to reconnect before their jobs are given away).
    async fn extend_active_leases(&self, until: Timestamp) -> Result<u64>;
    /// Leases that ran out: the agent is gone past the grace period. The job
    /// is requeued (after a retry delay) or, out of attempts, failed.
    async fn expire_leases(&self, now: Timestamp, retry: &RetryPolicy) -> Result<Vec<Transition>>;
    /// Queued jobs past their queue timeout fail with why they waited. The
    /// timeout bounds the wait for a first start: once an attempt started,
    /// retries are bounded by `max_attempts` instead.
    async fn expire_queue_timeouts(&self, now: Timestamp) -> Result<Vec<Transition>>;
    /// Jobs running longer than their timeout fail (and may be retried).
    async fn expire_run_timeouts(&self, now: Timestamp, retry: &RetryPolicy) -> Result<Vec<Transition>>;
    /// An agent reconnected listing the jobs it still has; its other jobs
    /// are lost and go back to the queue (or fail).
    async fn release_lost_jobs(
        &self,
        agent_id: Uuid,
        keep: &[JobRef],
        now: Timestamp,
        retry: &RetryPolicy,
    ) -> Result<Vec<Transition>>;
    async fn cancel_job(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<CancelOutcome>;
    /// An assignment that could not be sent to its agent goes back to the
    /// queue at once, with a new epoch and without counting an attempt.
    /// `None` if the lease was no longer the agent's.
    async fn requeue_undelivered(
        &self,
        agent_id: Uuid,
        lease: JobRef,
        now: Timestamp,
        retry: &RetryPolicy,
    ) -> Result<Option<Transition>>;
    /// The leases an agent holds now.
    async fn agent_leases(&self, agent_id: Uuid) -> Result<Vec<JobRef>>;
    /// What the queued jobs that could start now ask for, one entry per
    /// tenant, labels, model and bound project: the unit of "why does it wait".
    async fn waiting_kinds(&self, now: Timestamp) -> Result<Vec<WaitingKind>>;
    /// Records why the queued jobs of `kind` that could start now wait
    /// (writing only where it changed).
    async fn set_waiting_reason(&self, kind: &WaitingKind, now: Timestamp, reason: &str) -> Result<()>;
}

/// Queued jobs that ask for the same thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingKind {
    pub tenant_id: Uuid,
    pub labels: Labels,
    pub model: String,
    /// The project whose index the jobs need, if they are bound to one.
    pub index_project_id: Option<Uuid>,
}
