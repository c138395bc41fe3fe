//! Follow-up sequences in the store: the tenant's templates, a lead's
//! enrollments (a run through one template), the one e-mail each step
//! queues, the addresses no sequence of the tenant mails again, and the
//! tokens of unsubscribe links.
//!
//! A step is queued in one transaction that moves the enrollment on
//! (compare-and-set on its step), records the send (primary key: one per
//! enrollment and step, ever) and writes the message into the e-mail
//! outbox; the outbox sends it once. So however many replicas step at the
//! same moment, and whatever crashes in between, each step is one e-mail.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Job, Lead, MailState, NewAuditEvent, NewJob, NewMail, Result};
use crate::domain::Timestamp;

/// One step of a sequence: wait, then send this e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SequenceStep {
    /// Minutes after the previous step (or the start).
    pub wait_minutes: i64,
    /// With merge fields such as `{{first_name}}`.
    pub subject: String,
    pub body: String,
    /// Drafted for a person to read, change, and send or skip, instead of
    /// sent by itself; the next step waits for that decision.
    #[serde(default)]
    pub review: bool,
    /// What a personal paragraph written by the LLM for this lead should
    /// say (placed at `{{paragraph}}`, else after the template's text);
    /// `None` for a template alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paragraph: Option<String>,
}

/// A tenant's sequence template.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub steps: Vec<SequenceStep>,
    /// Started for every consenting lead a listing page brings.
    pub auto_start: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where a lead's run through a sequence stands.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EnrollmentState {
    Active,
    /// Every step was queued.
    Finished,
    /// A reply, won, lost, unsubscribed, or by hand (`stop_reason`).
    Stopped,
}

/// The e-mail a step queued, and how sending it went.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StepSend {
    /// 0-based.
    pub step: i64,
    pub mail_id: Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub queued_at: Timestamp,
    /// `None` once the outbox forgot the message.
    pub mail_state: Option<MailState>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub sent_at: Option<Timestamp>,
    /// While it is a draft waiting for review: its subject and body.
    pub draft_subject: Option<String>,
    pub draft_body: Option<String>,
}

/// A lead's run through a sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Enrollment {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub lead_id: Uuid,
    pub sequence_id: Option<Uuid>,
    pub sequence_name: String,
    /// The steps as they were at the start.
    pub steps: Vec<SequenceStep>,
    pub state: EnrollmentState,
    pub stop_reason: Option<String>,
    pub next_step: i64,
    pub next_at: Option<Timestamp>,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
    pub sends: Vec<StepSend>,
    /// While the next step's personal paragraph is being written: its job.
    pub writing: Option<Job>,
}

/// A step whose time has come, with what its e-mail is made from.
#[derive(Debug, Clone)]
pub struct DueStep {
    pub enrollment: Enrollment,
    pub lead: Lead,
    /// The street address, agent name and contact of the newest property
    /// the lead asked about.
    pub property: Option<(String, String, String)>,
    /// The sender's postal address (tenant settings).
    pub postal_address: String,
    /// The job writing this step's personal paragraph, once started (the
    /// step is due only when it has ended).
    pub paragraph_job: Option<Job>,
}

/// A step's e-mail, composed.
#[derive(Debug, Clone)]
pub struct QueuedStep {
    pub enrollment_id: Uuid,
    pub step: i64,
    /// When the next step is due; `None` after the last.
    pub next_at: Option<Timestamp>,
    pub mail: NewMail,
    /// The hash of the unsubscribe link's token the e-mail carries.
    pub token_hash: Vec<u8>,
    /// For a step drafted for review: who is told it waits.
    pub notice: Option<super::NewNotice>,
    /// Said on the lead's timeline with the step (a personal paragraph
    /// left out, and why).
    pub note: Option<String>,
}

/// What a person decided about a drafted step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DraftDecision {
    /// Send it, with this subject and body.
    Send {
        subject: String,
        body: String,
    },
    Skip,
}

/// What queuing a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    Queued,
    /// The lead must not be mailed (the reason); the enrollment stopped.
    Stopped(String),
    /// Another replica queued it, or the enrollment ended meanwhile.
    Skipped,
}

#[async_trait]
pub trait SequenceStore {
    async fn sequences(&self, tenant_id: Uuid) -> Result<Vec<Sequence>>;
    async fn sequence(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Sequence>>;
    /// Inserts or replaces (by id) a template (`Conflict` on a name in use).
    async fn save_sequence(&self, sequence: &Sequence, audit: &NewAuditEvent) -> Result<()>;
    async fn delete_sequence(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;
    /// Gives a tenant without any template these ones.
    async fn ensure_sequences(&self, tenant_id: Uuid, defaults: &[Sequence]) -> Result<()>;
    /// Starts a sequence for a lead: its first step due at `first_at`.
    /// `Conflict` while it runs for the lead already; `Invalid` when the
    /// address must not be mailed.
    async fn enroll(
        &self,
        tenant_id: Uuid,
        lead_id: Uuid,
        sequence_id: Uuid,
        started_by: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<Enrollment>;
    /// Stops a running enrollment by hand.
    async fn stop_enrollment(
        &self,
        tenant_id: Uuid,
        lead_id: Uuid,
        id: Uuid,
        actor_id: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// A lead's enrollments, newest first, with their sends.
    async fn enrollments(&self, tenant_id: Uuid, lead_id: Uuid) -> Result<Vec<Enrollment>>;
    /// Steps due at `now`, oldest first.
    async fn due_steps(&self, now: Timestamp, limit: i64) -> Result<Vec<DueStep>>;
    /// Starts the job that writes step `step`'s personal paragraph of an
    /// active enrollment, once: `false` (and no job) when the step has one
    /// already or the enrollment moved on.
    async fn start_paragraph(&self, enrollment_id: Uuid, step: i64, job: &NewJob) -> Result<bool>;
    /// Queues a step's e-mail and moves the enrollment on, once.
    async fn queue_step(&self, step: &QueuedStep, now: Timestamp) -> Result<StepOutcome>;
    /// Sends or skips a step drafted for review (`mail_id`, one of the
    /// lead's), once: `Conflict` when it is no longer a draft (decided, or
    /// dropped when the sequence stopped). The next step's wait starts now.
    async fn decide_draft(
        &self,
        tenant_id: Uuid,
        lead_id: Uuid,
        mail_id: Uuid,
        decision: &DraftDecision,
        actor_id: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// Uses an unsubscribe link: the address is never mailed by a sequence
    /// of the tenant again, its running sequences stop and its queued
    /// marketing e-mail is dropped, at once. The tenant's and the lead's
    /// ids; `None` for an unknown token.
    async fn unsubscribe(&self, token_hash: &[u8], now: Timestamp) -> Result<Option<(Uuid, Uuid)>>;
}
