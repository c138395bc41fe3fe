//! Persistence of marketing activities: the request, its runs (jobs with the
//! activity's id, the latest one current), human edits as versions of a
//! run's content, approval; and what surrounds them: the tenants' cloud
//! providers (API keys encrypted) and usage per day.
//!
//! An activity's status is not stored: it is derived from its latest run,
//! whether it has content (the last run that succeeded) and its approval
//! (see [`Activity::status`]), so it can never disagree with the jobs that
//! produce it.

use async_trait::async_trait;
use marketer_protocol::activity::{ActivityInput, Finding};
use serde::Serialize;
use uuid::Uuid;

use super::{Job, JobStatus, NewAuditEvent, NewJob, Page, PageRequest, Result};
use crate::domain::Timestamp;

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
pub enum ActivityKind {
    BlogArticle,
    SocialPostSet,
    ListingKit,
}

impl ActivityKind {
    pub fn of(input: &ActivityInput) -> Self {
        match input {
            ActivityInput::BlogArticle(_) => ActivityKind::BlogArticle,
            ActivityInput::SocialPostSet(_) => ActivityKind::SocialPostSet,
            ActivityInput::ListingKit(_) => ActivityKind::ListingKit,
        }
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
pub enum ActivityStatus {
    /// Waiting for an agent or the cloud runner.
    Queued,
    /// The pipeline is running.
    Generating,
    /// Finished; waiting for a person to approve it.
    Review,
    Approved,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct NewActivity {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub input: ActivityInput,
    pub title: String,
    pub model: String,
    pub created_by: Option<Uuid>,
    /// The property a listing kit is generated from, and its version then.
    pub property: Option<(Uuid, i64)>,
}

/// An activity with its latest run and the run whose content is current.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub kind: ActivityKind,
    pub title: String,
    pub input: ActivityInput,
    pub model: String,
    pub runs: i64,
    pub approved_at: Option<Timestamp>,
    pub approved_by: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The property a listing kit was generated from (`None` once that
    /// property is deleted), and the property's version at the time.
    pub property_id: Option<Uuid>,
    pub property_version: Option<i64>,
    /// The latest run.
    pub run: Job,
    /// The last run that succeeded: its content (and the edits of it) is
    /// the activity's content. A later run replaces it only by succeeding,
    /// so a failed or cancelled regeneration loses nothing.
    pub content_run: Option<Job>,
}

impl Activity {
    /// Queued or generating while the latest run is; otherwise in review or
    /// approved when there is content, else how the latest run ended.
    pub fn status(&self) -> ActivityStatus {
        match self.run.status {
            JobStatus::Queued | JobStatus::Assigned => ActivityStatus::Queued,
            JobStatus::Running => ActivityStatus::Generating,
            _ if self.content_run.is_some() && self.approved_at.is_some() => ActivityStatus::Approved,
            _ if self.content_run.is_some() => ActivityStatus::Review,
            // The latest run succeeded and its content is not attached: the
            // activity and its run were read on either side of the commit
            // that does both (two statements, each its own snapshot on
            // PostgreSQL). A moment later it is in review, content and all;
            // saying so now would show a review with nothing in it.
            JobStatus::Succeeded => ActivityStatus::Generating,
            JobStatus::Failed => ActivityStatus::Failed,
            JobStatus::Cancelled => ActivityStatus::Cancelled,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub status: Option<ActivityStatus>,
    pub kind: Option<ActivityKind>,
    /// Only activities generated from this property.
    pub property_id: Option<Uuid>,
}

/// A person's edit of a run's content.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActivityVersion {
    pub id: Uuid,
    /// The run whose content this edits.
    pub job_id: Uuid,
    /// 1 for the first edit of the run; the generated content is version 0.
    pub number: i64,
    pub content: String,
    pub author_id: Option<Uuid>,
    pub author_name: String,
    pub created_at: Timestamp,
    /// The compliance findings of this version's text (`None` where no
    /// content rule applies to the activity's kind).
    #[schema(value_type = Option<Vec<Object>>)]
    pub findings: Option<Vec<Finding>>,
}

#[derive(Debug, Clone)]
pub struct NewActivityVersion {
    pub id: Uuid,
    pub content: String,
    pub author_id: Option<Uuid>,
    pub author_name: String,
    pub findings: Option<Vec<Finding>>,
}

/// A tenant's OpenAI-compatible provider, its key encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudProvider {
    pub tenant_id: Uuid,
    pub base_url: String,
    pub model: String,
    pub api_key_ciphertext: Vec<u8>,
    pub api_key_nonce: Vec<u8>,
    /// The last characters of the key, for people to recognise it.
    pub api_key_hint: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a model costs per million tokens, in micro-dollars (USD ×
/// 1,000,000), for estimating what a cloud run cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    pub tenant_id: Uuid,
    pub model: String,
    pub input_micros_per_million: i64,
    pub output_micros_per_million: i64,
    pub updated_at: Timestamp,
}

/// A tenant's usage on one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Jobs finished that day, activity runs included.
    pub jobs: i64,
    /// Activity runs finished that day.
    pub activities: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub wall_time_ms: i64,
}

#[async_trait]
pub trait ActivityStore: Send + Sync {
    /// Inserts an activity and its first run.
    async fn create_activity(
        &self,
        activity: &NewActivity,
        run: &NewJob,
        audit: &NewAuditEvent,
    ) -> Result<Activity>;
    async fn activity(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Activity>>;
    /// A project's activities (or, with no project, the tenant's), newest first.
    async fn activities(
        &self,
        tenant_id: Uuid,
        project_id: Option<Uuid>,
        filter: &ActivityFilter,
        page: PageRequest,
    ) -> Result<Page<Activity>>;
    /// Starts a new run of an activity whose current run has ended
    /// (`Conflict` while it runs). The content, its versions and its
    /// approval stay until the new run succeeds (then the approval is
    /// cleared: it was for other content).
    async fn rerun_activity(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        run: &NewJob,
        audit: &NewAuditEvent,
    ) -> Result<Activity>;
    /// Every run of an activity, newest first.
    async fn activity_runs(&self, tenant_id: Uuid, id: Uuid) -> Result<Vec<Job>>;
    /// Records a person's edit of the content (`Conflict` while a run is in
    /// progress or when there is no content yet); the approval is cleared.
    async fn add_activity_version(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        version: &NewActivityVersion,
        audit: &NewAuditEvent,
    ) -> Result<ActivityVersion>;
    /// The edits of one run's content (`job_id`), oldest first.
    async fn activity_versions(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        job_id: Uuid,
    ) -> Result<Vec<ActivityVersion>>;
    /// Activity runs the tenant started since `since` (for quotas).
    async fn activity_runs_since(&self, tenant_id: Uuid, since: Timestamp) -> Result<i64>;

    async fn cloud_provider(&self, tenant_id: Uuid) -> Result<Option<CloudProvider>>;
    /// Creates or replaces the tenant's provider.
    async fn set_cloud_provider(&self, provider: &CloudProvider, audit: &NewAuditEvent) -> Result<()>;
    /// `NotFound` if there was none.
    async fn delete_cloud_provider(&self, tenant_id: Uuid, audit: &NewAuditEvent) -> Result<()>;
    /// The tenant's model prices, by model name.
    async fn model_prices(&self, tenant_id: Uuid) -> Result<Vec<ModelPrice>>;
    /// Sets a model's price (inserted or replaced).
    async fn set_model_price(&self, price: &ModelPrice, audit: &NewAuditEvent) -> Result<()>;
    /// `NotFound` when the model has no price.
    async fn delete_model_price(&self, tenant_id: Uuid, model: &str, audit: &NewAuditEvent) -> Result<()>;

    /// Usage per day from `from` to `to` (inclusive, `YYYY-MM-DD`).
    async fn usage(&self, tenant_id: Uuid, from: &str, to: &str) -> Result<Vec<UsageDay>>;
}
