//! Persistence of review workflows: a tenant's ordered steps (the
//! approvers of each and its rule), the workflow each project uses, and
//! the decisions reviewers take on an activity's content version.
//!
//! Where an item stands is not stored: it is derived from the decisions on
//! its current version (`service::reviews`). A decision is written only if
//! nothing the reviewer saw has changed (the version, the decisions taken
//! so far), checked under the activity's lock, so two reviewers acting at
//! once, or an edit racing a decision, end in one consistent state.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::domain::{Role, Timestamp};

/// Whether one approver completes a step, or all of them must approve.
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
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StepRule {
    Any,
    All,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewStep {
    /// 1 for the first step.
    pub position: i64,
    pub name: String,
    pub rule: StepRule,
    /// The approvers when `members` is empty: every member with this role
    /// or above.
    pub min_role: Option<Role>,
    /// Named approvers (members of the tenant).
    pub members: Vec<Uuid>,
    /// External reviewers (people without an account), by e-mail address
    /// (lowercase); they decide through a review link.
    pub externals: Vec<String>,
    /// The step applies only to content with Fair Housing findings (a
    /// compliance step for listing kits); otherwise it is skipped.
    pub only_with_findings: bool,
}

#[derive(Debug, Clone)]
pub struct ReviewWorkflow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub steps: Vec<ReviewStep>,
    /// A pending review expires this many days after it started.
    pub expire_days: i64,
    /// The projects that use it.
    pub projects: Vec<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewReviewWorkflow {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub steps: Vec<ReviewStep>,
    pub expire_days: i64,
}

/// What a reviewer decides (`restart`: the author starts an expired review
/// again, in a new round).
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
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Decision {
    Approve,
    RequestChanges,
    Reject,
    Restart,
}

/// What is reviewed: an activity's content, or a post of its own (one not
/// covered by its activity's review).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewItem {
    Activity(Uuid),
    Post(Uuid),
}

#[derive(Debug, Clone)]
pub struct ReviewDecision {
    pub id: Uuid,
    pub item: ReviewItem,
    pub content_run_id: Uuid,
    pub version: i64,
    /// 0, then one more at every restart.
    pub round: i64,
    pub workflow_id: Option<Uuid>,
    /// 0 for a restart.
    pub step: i64,
    pub user_id: Option<Uuid>,
    pub user_name: Option<String>,
    /// An external reviewer's address (`user_id` is then `None`).
    pub reviewer_email: Option<String>,
    pub decision: Decision,
    pub comment: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewDecision {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub item: ReviewItem,
    pub round: i64,
    pub workflow_id: Option<Uuid>,
    pub step: i64,
    /// A member, or else an external reviewer.
    pub user_id: Option<Uuid>,
    pub reviewer_email: Option<String>,
    pub decision: Decision,
    pub comment: String,
}

/// What the reviewer saw: the decision is refused (`Conflict`) when any of
/// it changed before it could be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub content_run_id: Uuid,
    pub version: i64,
    /// How many decisions the version had.
    pub decisions: i64,
}

#[async_trait]
pub trait ReviewStore {
    async fn review_workflows(&self, tenant_id: Uuid) -> Result<Vec<ReviewWorkflow>>;
    async fn review_workflow(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<ReviewWorkflow>>;
    /// `Conflict` (`workflow_name_taken`) for a name the tenant uses.
    async fn create_review_workflow(
        &self,
        w: &NewReviewWorkflow,
        audit: &NewAuditEvent,
    ) -> Result<ReviewWorkflow>;
    /// Replaces a workflow's name and steps.
    async fn update_review_workflow(
        &self,
        w: &NewReviewWorkflow,
        audit: &NewAuditEvent,
    ) -> Result<ReviewWorkflow>;
    /// Deletes a workflow; its projects go back to the default review.
    async fn delete_review_workflow(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;
    /// The workflow a project uses (`None`: the default review).
    async fn project_review_workflow(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
    ) -> Result<Option<ReviewWorkflow>>;
    async fn set_project_review_workflow(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
        workflow_id: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// The decisions on one content version (a post's: its id and
    /// revision), oldest first.
    async fn review_decisions(
        &self,
        tenant_id: Uuid,
        item: ReviewItem,
        content_run_id: Uuid,
        version: i64,
    ) -> Result<Vec<ReviewDecision>>;
    /// Writes a decision if the item is still as `seen` (its content run
    /// and version, or a post's revision; the number of decisions on it),
    /// and, when `approves`, marks the item approved, with the links
    /// made for the next step's external reviewers and the audit event
    /// with its notices and mails, in one transaction.
    async fn decide(
        &self,
        decision: &NewDecision,
        seen: &Seen,
        approves: bool,
        links: &[NewReviewLink],
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// Stores review links with the audit event (and the mails carrying
    /// them) in one transaction; `NotFound` if an activity is not the
    /// tenant's.
    async fn create_review_links(&self, links: &[NewReviewLink], audit: &NewAuditEvent) -> Result<()>;
    /// A link by its token's hash, whatever its state (the caller checks
    /// expiry and revocation, to say which).
    async fn review_link_by_hash(&self, token_hash: &[u8]) -> Result<Option<ReviewLink>>;
    /// An activity's links, newest first.
    async fn review_links(&self, tenant_id: Uuid, activity_id: Uuid) -> Result<Vec<ReviewLink>>;
    /// Revokes a link; `NotFound` if it is not the activity's.
    async fn revoke_review_link(
        &self,
        tenant_id: Uuid,
        activity_id: Uuid,
        id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<()>;
}

/// A link for one external reviewer and one activity.
#[derive(Debug, Clone)]
pub struct ReviewLink {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub activity_id: Uuid,
    pub email: String,
    pub expires_at: Timestamp,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct NewReviewLink {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub activity_id: Uuid,
    pub email: String,
    pub token_hash: Vec<u8>,
    pub expires_at: Timestamp,
    pub created_by: Option<Uuid>,
}
