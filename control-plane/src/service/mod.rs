//! The control plane's use cases: authentication, tenants, team, projects,
//! API keys, the audit log, agents, jobs, marketing activities and
//! documents.
//!
//! This is the one implementation of the product's rules (who may do what,
//! what is valid, what is audited). The JSON API calls it, and so will the
//! web UI; neither re-implements a rule. Services take an authenticated
//! [`Caller`] or [`TenantAccess`] and return domain types or [`Error`]s.

pub mod ab_tests;
pub mod actions;
mod activities;
mod activity_input;
mod agents;
mod analytics;
mod analytics_pdf;
mod analytics_reports;
mod api_keys;
mod audit_log;
mod auth;
mod comments;
mod costs;
mod csv_import;
pub mod data_subjects;
mod documents;
pub mod erasures;
pub mod export;
mod flyers;
pub mod inbox;
mod jobs;
mod lead_import;
mod lead_scoring;
mod leads;
mod members;
mod notifications;
pub mod people;
mod projects;
mod properties;
mod publishing;
pub mod retention;
mod reviews;
mod sequences;
pub mod sso;
pub mod tenant_exports;
mod tenants;
pub mod two_factor;
pub mod webhooks;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::auth::throttle::{LoginThrottle, ThrottlePolicy};
use crate::auth::tokens::AccessTokens;
use crate::cloud::{CloudRunner, CloudSettings, DataKey};
use crate::cluster::Cluster;
use crate::domain::{Permission, Role, Timestamp, User};
use crate::error::{Error, Result};
use crate::gateway::Hub;
use crate::jobs::{JobEngine, JobSettings};
use crate::metrics::Metrics;
use crate::storage::FileStorage;
use crate::store::{Actor, ApiKey, NewAuditEvent, Outcome, Store};

pub use activities::{
    ActivityView, Approve, CloudProviderView, ComplianceView, EditContent, RunDetail, RunView,
    SetCloudProvider, UsageTotals, UsageView, VersionView, daily_quota, request_findings,
};
pub use activity_input::{CreateActivity, ListingIn};
pub use agents::{
    AgentSettings, AgentState, AgentView, CreateEnrollmentToken, CreatedEnrollmentToken, UpdateAgent,
};
pub use analytics::{
    BestSlot, BestTimes, BestTimesSource, ENGAGEMENT_RATE, HourScore, NoLongerReported, PostMetricsView,
    engagement_rate, metric_label,
};
pub use analytics_pdf::{Kpi, ReportCharts, count, kpis, rate};
pub use analytics_reports::{AnalyticsReport, NetworkTotals, ReportQuery, SeriesPoint, TopPost, Totals};
pub use api_keys::{CreateApiKey, CreatedApiKey};
pub use audit_log::{AuditFormat, AuditQuery};
pub use auth::{BrowserSignIn, LoginRequest, RefreshRequest, TokenPair};
pub use comments::{
    AnchorIn, AnchorView, CommentQuery, CommentView, CreateComment, EditComment, MAX_COMMENT_CHARS,
    MentionView, ResolveThread, mentioned_addresses,
};
pub use costs::{CostEstimate, ModelPriceQuery, ModelPriceView, SetModelPrice, dollars};
pub use csv_import::{ImportReport, MAX_IMPORT_BYTES, RowProblem};
pub use documents::{DEFAULT_MAX_UPLOAD_BYTES, DocumentView, MULTIPART_OVERHEAD_BYTES, Upload};
pub use flyers::{FlyerParams, PdfFile};
pub use jobs::{CreateJob, DEFAULT_PRIORITY, EmbedInput, JobQuery, JobView, MessageIn, OptionsIn, Submitted};
pub use lead_import::LEAD_IMPORT_COLUMNS;
pub use lead_scoring::{FitReport, ScoringView, WeightView};
pub use leads::{
    CreateLead, DEFAULT_CONSENT, LeadParams, LeadView, ListingForm, PublicListing, PublishProperty,
    RealEstateSettingsView, UpdateLead,
};
pub use members::{
    AcceptInvitation, AcceptedInvitation, CreateInvitation, CreatedInvitation, InvitationView,
    JoinWithNewAccount, UpdateMember,
};
pub use notifications::{
    BounceOutcome, BounceReport, Done, LinkToken, MarkRead, MarkedRead, NotificationSettings, PasswordReset,
    PasswordResetRequest, PreferenceChange, PreferenceView, RESET_REQUESTED, UnreadCount, UpdatePreferences,
};
pub use projects::{CreateCampaign, CreateProject, UpdateCampaign, UpdateProject};
pub use properties::{
    IMPORT_COLUMNS, PhotoSize, PhotoView, PropertyFacts, PropertyIn, PropertyParams, PropertyView,
    UpdatePhoto, facts_line, grouped, price,
};
pub use publishing::{
    AccountView, ConnectBluesky, ConnectStarted, CreatePost, PostDetail, PostQuery, PostView, StartConnect,
    UpdateAccount, UpdatePost, When, approval_gate, check_image, check_text, normalize as normalize_text,
    rules, text_length,
};
pub use reviews::{
    CreateReviewLink, CreatedReviewLink, DecideIn, DecisionView, ExternalCommentIn, ExternalDecideIn,
    ExternalReview, ProjectWorkflowIn, ProjectWorkflowOut, ReviewLinkToken, ReviewLinkView, ReviewView,
    StepIn, StepStanding, StepView, WaitingReview, WorkflowIn, WorkflowView,
};
pub use sequences::{
    DecideDraft, DraftChoice, EnrollmentView, SequenceIn, SequenceStepIn, SequenceStepView, SequenceView,
    StartSequence,
};
pub use tenants::{CreateTenant, Me, UpdateTenant};

/// Lifetimes and limits of credentials.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub access_token_ttl: time::Duration,
    pub refresh_token_ttl: time::Duration,
    pub invitation_ttl: time::Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            access_token_ttl: time::Duration::minutes(15),
            refresh_token_ttl: time::Duration::days(30),
            invitation_ttl: time::Duration::days(7),
        }
    }
}

/// Shared state of the use cases. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct App {
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    /// Live agent connections on this replica.
    pub hub: Arc<Hub>,
    /// What this replica tells the others (PostgreSQL only).
    pub cluster: Arc<Cluster>,
    pub agents: AgentSettings,
    /// The job queue and scheduler.
    pub jobs: Arc<JobEngine>,
    /// Runs cloud-routed activities on the tenants' providers.
    pub cloud: Arc<CloudRunner>,
    /// Publishes scheduled posts to the social platforms.
    pub publisher: Arc<crate::publishing::Publisher>,
    /// Delivers notifications and e-mail.
    pub notifier: Arc<crate::notify::Notifier>,
    /// Uploaded files.
    pub files: Arc<dyn FileStorage>,
    /// Prepares organisations' exports in the background.
    pub exports: Arc<tenant_exports::ExportWorker>,
    /// Markdown to HTML, off the async workers, cached per content.
    pub renderer: Arc<export::Renderer>,
    /// Photos checked and re-encoded, off the async workers.
    pub images: crate::images::ImageProcessor,
    /// Cancelled when the server starts shutting down: long-lived responses
    /// (event streams) end at once instead of holding the shutdown.
    pub closing: tokio_util::sync::CancellationToken,
    tokens: AccessTokens,
    throttle: LoginThrottle,
    /// Public listing pages' forms: per e-mail address and per client.
    lead_throttle: LoginThrottle,
    auth: AuthSettings,
    /// Single sign-on's HTTP client and the providers' discovery documents.
    sso: sso::SsoClient,
    /// When each API key's `last_used_at` was last written, so that a busy
    /// key costs one write a minute rather than one per request.
    api_key_touches: Mutex<HashMap<Uuid, Instant>>,
}

/// The settings of the engines that work in the background: the job
/// scheduler, the publisher and the notifier.
#[derive(Debug, Clone, Default)]
pub struct EngineSettings {
    pub jobs: JobSettings,
    pub publishing: crate::publishing::PublishingConfig,
    pub mail: crate::notify::MailSettings,
}

/// What the server keeps outside the database: the key that seals secrets
/// at rest, and the storage of uploaded files.
#[derive(Debug)]
pub struct AtRest {
    pub data_key: Arc<DataKey>,
    pub files: Arc<dyn FileStorage>,
}

impl App {
    pub fn new(
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        tokens: AccessTokens,
        auth: AuthSettings,
        agents: AgentSettings,
        engines: EngineSettings,
        at_rest: AtRest,
    ) -> anyhow::Result<Self> {
        let EngineSettings { jobs: job_settings, publishing, mail } = engines;
        let online_window =
            time::Duration::try_from(agents.timings.offline_after()).unwrap_or(time::Duration::MAX);
        let notifier = Arc::new(crate::notify::Notifier::new(
            store.clone(),
            at_rest.data_key.clone(),
            mail,
            online_window,
            at_rest.files.clone(),
        )?);
        let cluster = Arc::new(Cluster::new(store.postgres_pool(), metrics.clone()));
        let hub = Arc::new(Hub::new(metrics.clone(), cluster.clone(), agents.timings));
        let jobs = Arc::new(JobEngine::new(
            store.clone(),
            hub.clone(),
            cluster.clone(),
            metrics.clone(),
            job_settings,
        ));
        let publisher = Arc::new(crate::publishing::Publisher::new(
            store.clone(),
            at_rest.data_key.clone(),
            crate::publishing::platforms::Platforms::new(publishing.platforms)?,
            crate::publishing::PublishSettings { online_window, ..publishing.engine },
            jobs.clone(),
        ));
        let cloud = Arc::new(CloudRunner::new(jobs.clone(), at_rest.data_key, CloudSettings::default())?);
        let store_for_leads = store.clone();
        let sso = sso::SsoClient::new(notifier.webhook_settings().clone())?;
        let throttle =
            LoginThrottle::new("login", ThrottlePolicy::ACCOUNT, ThrottlePolicy::CLIENT, store.clone());
        let exports = Arc::new(tenant_exports::ExportWorker::new(store.clone(), at_rest.files.clone()));
        Ok(Self {
            store,
            files: at_rest.files,
            exports,
            renderer: Arc::new(export::Renderer::default()),
            images: crate::images::ImageProcessor::default(),
            closing: tokio_util::sync::CancellationToken::new(),
            hub,
            jobs,
            cloud,
            publisher,
            notifier,
            cluster,
            agents,
            metrics,
            tokens,
            throttle,
            lead_throttle: LoginThrottle::new(
                "lead_form",
                ThrottlePolicy::LEAD_ADDRESS,
                ThrottlePolicy::LEAD_CLIENT,
                store_for_leads,
            ),
            auth,
            sso,
            api_key_touches: Mutex::new(HashMap::new()),
        })
    }
}

impl App {
    /// For a `hipaa` tenant, records that the caller is reading content an
    /// edge agent produced (`view` says which: the activity, its runs, a
    /// job's output, an event stream). Fails closed: a read that cannot be
    /// recorded is not served.
    pub(crate) async fn audit_content_read(
        &self,
        access: &TenantAccess,
        resource_type: &'static str,
        id: Uuid,
        view: &str,
    ) -> Result<()> {
        let tenant = self.store.tenant(access.tenant_id).await?.ok_or(Error::NotFound("tenant"))?;
        if tenant.compliance_mode != crate::domain::ComplianceMode::Hipaa {
            return Ok(());
        }
        let event = access
            .audit(actions::CONTENT_READ)
            .resource(resource_type, id)
            .details(serde_json::json!({ "view": view }));
        self.store.record_audit(&event).await?;
        Ok(())
    }
}

/// Facts about the request, recorded in audit events.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub client_ip: Option<IpAddr>,
    pub request_id: Option<String>,
    pub user_agent: Option<String>,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A person with a live session.
    User { user: User, session_id: Uuid },
    /// An API key, with the role it may act with: the lesser of its own role
    /// and its creator's current role.
    ApiKey { key: ApiKey, effective_role: Role },
    /// The server's operator at its command line (`marketer-server admin`).
    Operator,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub meta: RequestMeta,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        match &self.principal {
            Principal::User { user, .. } => Actor::User { id: user.id, email: user.email.to_string() },
            Principal::ApiKey { key, .. } => Actor::ApiKey { id: key.id, name: key.name.to_string() },
            Principal::Operator => Actor::System { name: "cli".into() },
        }
    }

    /// The person behind the call, for actions only a person can take.
    pub fn user(&self) -> Result<&User> {
        match &self.principal {
            Principal::User { user, .. } => Ok(user),
            Principal::ApiKey { .. } | Principal::Operator => Err(Error::Forbidden(
                "API keys are scoped to one tenant; this action needs a signed-in user".into(),
            )),
        }
    }

    /// The id recorded as the creator of things this caller makes: the
    /// person, or for an API key the person who created the key.
    pub fn creator_id(&self) -> Option<Uuid> {
        match &self.principal {
            Principal::User { user, .. } => Some(user.id),
            Principal::ApiKey { key, .. } => key.created_by,
            Principal::Operator => None,
        }
    }

    /// An audit event for `action` by this caller, outside any tenant.
    pub fn audit(&self, action: &'static str) -> NewAuditEvent {
        audit_event(None, self.actor(), &self.meta, action, Outcome::Success)
    }
}

/// A caller acting inside one tenant they belong to, with their role there.
/// Constructing one (see [`App::tenant_access`]) is the membership check.
#[derive(Debug, Clone)]
pub struct TenantAccess {
    pub caller: Caller,
    pub tenant_id: Uuid,
    pub role: Role,
}

impl TenantAccess {
    /// Refuses the call unless the caller's role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this needs the {} role or above (the {} permission); your role here is {}",
                permission.least_role().as_str(),
                permission.as_str(),
                self.role.as_str()
            )))
        }
    }

    /// An audit event for `action` by this caller in this tenant.
    pub fn audit(&self, action: &'static str) -> NewAuditEvent {
        audit_event(Some(self.tenant_id), self.caller.actor(), &self.caller.meta, action, Outcome::Success)
    }
}

pub fn audit_event(
    tenant_id: Option<Uuid>,
    actor: Actor,
    meta: &RequestMeta,
    action: &'static str,
    outcome: Outcome,
) -> NewAuditEvent {
    NewAuditEvent {
        id: crate::domain::new_id(),
        occurred_at: Timestamp::now(),
        tenant_id,
        actor,
        client_ip: meta.client_ip.map(|ip| ip.to_string()),
        request_id: meta.request_id.clone(),
        action,
        resource_type: None,
        resource_id: None,
        outcome,
        details: serde_json::json!({}),
        notices: Vec::new(),
        mails: Vec::new(),
        events: Vec::new(),
    }
}

impl App {
    /// Resolves the caller's membership in `tenant_id`. A tenant the caller
    /// does not belong to is reported exactly like a tenant that does not
    /// exist.
    pub async fn tenant_access(&self, caller: Caller, tenant_id: Uuid) -> Result<TenantAccess> {
        let role = match &caller.principal {
            Principal::User { user, session_id } => {
                let role = self.store.role(tenant_id, user.id).await?;
                if let Some(role) = role {
                    self.check_sign_in_rules(tenant_id, user, *session_id, role).await?;
                }
                role
            }
            Principal::Operator => self.store.tenant(tenant_id).await?.map(|_| Role::Owner),
            Principal::ApiKey { key, effective_role } => {
                (key.tenant_id == tenant_id).then_some(*effective_role)
            }
        };
        match role {
            Some(role) => Ok(TenantAccess { caller, tenant_id, role }),
            None => Err(Error::NotFound("tenant")),
        }
    }

    pub(crate) fn should_touch_api_key(&self, id: Uuid, now: Instant) -> bool {
        const EVERY: Duration = Duration::from_secs(60);
        let mut touches = self.api_key_touches.lock().unwrap_or_else(|p| p.into_inner());
        match touches.get(&id) {
            Some(last) if now.saturating_duration_since(*last) < EVERY => false,
            _ => {
                if touches.len() > 10_000 {
                    touches.retain(|_, last| now.saturating_duration_since(*last) < EVERY);
                }
                touches.insert(id, now);
                true
            }
        }
    }
}

/// Deserialises a field that distinguishes "absent" (`None`) from "null"
/// (`Some(None)`), for PATCH bodies where null clears a value.
pub(crate) fn double_option<'de, T, D>(deserializer: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}
