//! Persistence. [`Store`] is the only way the rest of the control plane reads
//! or writes durable state, and this module is the only place that contains
//! SQL.
//!
//! One generic implementation ([`sql::SqlStore`]) serves both backends: the
//! SQL text is shared (both PostgreSQL and SQLite accept `$1` placeholders,
//! `RETURNING` and `ON CONFLICT`), and the few real differences (row locks,
//! pool shape, timestamp encoding) live in [`sqlite`] and [`postgres`].
//! [`connect`] picks the backend from the URL scheme.

mod ab_tests;
mod activities;
mod agents;
mod analytics;
mod comments;
mod crisis;
mod documents;
mod erasures;
mod exports;
mod inbox;
mod jobs;
mod leads;
mod notifications;
mod people;
mod postgres;
mod properties;
mod publishing;
mod rate_limits;
mod retention;
mod reviews;
mod sequences;
mod sql;
mod sqlite;
mod sso;
mod two_factor;
mod webhooks;

use std::fmt;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use time::Date;
use uuid::Uuid;

use crate::domain::{
    ComplianceMode, Description, Email, LlmPolicy, LongText, ModelName, Name, Plan, Role, Slug, Tenant,
    Timestamp, User,
};

pub use self::ab_tests::*;
pub use self::activities::*;
pub use self::agents::*;
pub use self::analytics::*;
pub use self::comments::*;
pub use self::crisis::*;
pub use self::documents::*;
pub use self::erasures::*;
pub use self::exports::*;
pub use self::inbox::*;
pub use self::jobs::*;
pub use self::leads::*;
pub use self::notifications::*;
pub use self::people::*;
pub use self::properties::*;
pub use self::publishing::*;
pub use self::rate_limits::*;
pub use self::retention::*;
pub use self::reviews::*;
pub use self::sequences::*;
pub use self::sso::*;
pub use self::two_factor::*;
pub use self::webhooks::*;
pub use crate::domain::{Campaign, Project};

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::Display, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database URL. Its `Debug` and `Display` hide the password so settings
/// can be logged safely.
#[derive(Clone)]
pub struct DatabaseUrl(SecretString);

impl DatabaseUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(SecretString::from(url.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub fn backend(&self) -> Result<Backend, StoreError> {
        let url = self.expose();
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL {self}: use sqlite://PATH or postgres://USER@HOST/DB"
            )))
        }
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let url = self.expose();
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        // The authority ends at the first '/', '?' or '#'; a password is the part
        // of the userinfo after ':' and before the last '@'.
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// What can go wrong in the store. `RowNotFound` never escapes: lookups return
/// `Option` and updates of a missing row return [`StoreError::NotFound`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or state conflict; `code` is stable and machine-readable.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// A write that would break a data invariant, attributed to one field.
    #[error("{field}: {message}")]
    Invalid { field: &'static str, message: String },
    #[error("invalid database configuration: {0}")]
    Config(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// The audit log refused an entry because its tenant was erased
    /// (migration 0037's trigger).
    pub fn tenant_gone(&self) -> bool {
        matches!(self, StoreError::Database(e)
            if e.as_database_error().is_some_and(|d| d.message().contains("audit_tenant_gone")))
    }

    /// PostgreSQL failed the transaction to break a deadlock: nothing was
    /// written, and it may be run again.
    pub fn deadlock(&self) -> bool {
        matches!(self, StoreError::Database(e)
            if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("40P01"))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Opens the database named by `url`, applies pending migrations, and returns
/// the store. SQLite files and their directories are created when missing.
pub async fn connect(url: &DatabaseUrl) -> Result<std::sync::Arc<dyn Store>> {
    connect_with(url, &ConnectOptions::default()).await
}

/// Knobs for [`connect_with`]; tests use `pg_schema` to give every test its
/// own PostgreSQL schema.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// Use (and create) this schema instead of the default search path.
    pub pg_schema: Option<String>,
    /// Upper bound on pooled connections (PostgreSQL) or readers (SQLite).
    pub max_connections: Option<u32>,
}

pub async fn connect_with(url: &DatabaseUrl, options: &ConnectOptions) -> Result<std::sync::Arc<dyn Store>> {
    let store: std::sync::Arc<dyn Store> = match url.backend()? {
        Backend::Sqlite => std::sync::Arc::new(sqlite::open(url, options).await?),
        Backend::Postgres => std::sync::Arc::new(postgres::open(url, options).await?),
    };
    store.migrate().await?;
    Ok(store)
}

/// The database's view of the job engine and the fleet, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpsSnapshot {
    pub queued: i64,
    pub assigned: i64,
    pub running: i64,
    /// How long the oldest queued job has waited (`None`: nothing queued).
    pub oldest_queued_age: Option<std::time::Duration>,
    /// Tenants with queued edge jobs and no agent online.
    pub tenants_waiting_without_agents: i64,
    pub agents_online: i64,
    pub agents_offline: i64,
    pub agents_revoked: i64,
}

// ----- Pagination ---------------------------------------------------------

/// Keyset pagination over UUIDv7 ids. `after` is the last id of the previous
/// page; lists run in ascending id order (creation order) except the audit
/// log, which runs newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Uuid>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to pass as `after` for the next page, or `None` at the end.
    pub next: Option<Uuid>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only tells
    /// that another page exists.
    pub(crate) fn from_rows(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> Uuid) -> Self {
        let limit = limit as usize;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(&id)
        } else {
            None
        };
        Self { items, next }
    }
}

// ----- Audit ----------------------------------------------------------------

/// Who did something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// A person, by account id and the e-mail address at the time.
    User { id: Uuid, email: String },
    /// An API key, by id and name.
    ApiKey { id: Uuid, name: String },
    /// An edge agent, by id and name.
    Agent { id: Uuid, name: String },
    /// The server itself or an operator at its command line.
    System { name: String },
    /// An unauthenticated caller, for example a failed login for an unknown
    /// address.
    Anonymous,
    /// An external reviewer acting through a review link, by address.
    Reviewer { email: String },
}

impl Actor {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Actor::User { .. } => "user",
            Actor::ApiKey { .. } => "api_key",
            Actor::Agent { .. } => "agent",
            Actor::System { .. } => "system",
            Actor::Anonymous => "anonymous",
            Actor::Reviewer { .. } => "external_reviewer",
        }
    }

    pub(crate) fn id(&self) -> Option<Uuid> {
        match self {
            Actor::User { id, .. } | Actor::ApiKey { id, .. } | Actor::Agent { id, .. } => Some(*id),
            Actor::System { .. } | Actor::Anonymous | Actor::Reviewer { .. } => None,
        }
    }

    pub(crate) fn label(&self) -> &str {
        match self {
            Actor::User { email, .. } | Actor::Reviewer { email } => email,
            Actor::ApiKey { name, .. } | Actor::Agent { name, .. } | Actor::System { name } => name,
            Actor::Anonymous => "",
        }
    }
}

/// How an audited action ended.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Refused for lack of authentication or permission.
    Denied,
    /// Refused because the request was invalid or conflicted with state.
    Rejected,
    /// Failed on the server's side.
    Error,
}

/// An audit event about to be written. Mutating store methods take one and
/// insert it in the same transaction as the change, so a change is never
/// committed without its audit record.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub id: Uuid,
    pub occurred_at: Timestamp,
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub action: &'static str,
    pub resource_type: Option<&'static str>,
    pub resource_id: Option<String>,
    pub outcome: Outcome,
    pub details: serde_json::Value,
    /// Notices the change causes, written in its transaction.
    pub notices: Vec<NewNotice>,
    /// E-mails the change causes (not notifications: an invitation to an
    /// address without an account), queued in its transaction.
    pub mails: Vec<NewMail>,
    /// Webhook events the change raises, written in its transaction.
    pub events: Vec<NewWebhookEvent>,
}

impl NewAuditEvent {
    /// The entry as an `audit.event` webhook (audit streaming): an
    /// organisation's entries only, shaped as the audit log's API shows
    /// them, so a collector reads the same record as an export.
    pub fn as_stream_event(&self) -> Option<NewWebhookEvent> {
        let tenant_id = self.tenant_id?;
        let entry = AuditEvent {
            id: self.id,
            occurred_at: self.occurred_at,
            tenant_id: Some(tenant_id),
            actor: self.actor.clone(),
            client_ip: self.client_ip.clone(),
            request_id: self.request_id.clone(),
            action: self.action.to_owned(),
            resource_type: self.resource_type.map(str::to_owned),
            resource_id: self.resource_id.clone(),
            outcome: self.outcome,
            details: self.details.clone(),
        };
        let outcome: &'static str = self.outcome.into();
        let text = format!("{} {} ({outcome})", self.actor.label(), self.action);
        let data = serde_json::to_value(&entry).unwrap_or(serde_json::Value::Null);
        Some(NewWebhookEvent::new(tenant_id, WebhookEventKind::AuditEvent, text, data))
    }

    pub fn emit(mut self, event: NewWebhookEvent) -> Self {
        self.events.push(event);
        self
    }

    pub fn notify(mut self, notice: NewNotice) -> Self {
        self.notices.push(notice);
        self
    }

    pub fn notify_all(mut self, notices: Vec<NewNotice>) -> Self {
        self.notices.extend(notices);
        self
    }

    pub fn mail(mut self, mail: NewMail) -> Self {
        self.mails.push(mail);
        self
    }

    pub fn resource(mut self, resource_type: &'static str, id: Uuid) -> Self {
        self.resource_type = Some(resource_type);
        self.resource_id = Some(id.to_string());
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// A recorded audit event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub occurred_at: Timestamp,
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub client_ip: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub outcome: Outcome,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Filters for the audit log. All are optional and combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor_id: Option<Uuid>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

// ----- Inputs and records -----------------------------------------------------

#[derive(Debug, Clone)]
pub struct NewTenant {
    pub id: Uuid,
    pub name: Name,
    pub slug: Slug,
    pub plan: Plan,
    pub compliance_mode: ComplianceMode,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    pub name: Option<Name>,
    pub slug: Option<Slug>,
    pub plan: Option<Plan>,
    pub compliance_mode: Option<ComplianceMode>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub email: Email,
    pub display_name: Name,
    /// An Argon2id PHC string; never the password.
    pub password_hash: String,
}

/// What a password check needs; only the login path reads it.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

/// One of a user's tenants, as `GET /me` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MembershipSummary {
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub tenant_slug: String,
    pub role: Role,
}

/// A member of a tenant, as the team list shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: Email,
    pub display_name: Name,
    pub role: Role,
    pub disabled: bool,
    pub joined_at: Timestamp,
}

/// A signed-in browser or client: the family of rotating refresh tokens that
/// began with one login. Revoking it ends every token of the family and the
/// access tokens that name it.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: Uuid,
    pub user_id: Uuid,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The tenant whose single sign-on opened it (it reaches only that one).
    pub sso_tenant_id: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    pub id: Uuid,
    pub token_hash: Vec<u8>,
    pub expires_at: Timestamp,
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was current; it is now spent and the new one replaces it.
    Rotated { user_id: Uuid, session_id: Uuid },
    /// The token had already been used: someone is replaying a stolen token.
    /// The whole session has been revoked.
    Reused { user_id: Uuid, session_id: Uuid },
    /// Unknown, expired, or its session was revoked or its user disabled.
    Invalid,
}

#[derive(Debug, Clone)]
pub struct NewProject {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: Name,
    pub description: Description,
    pub brand_voice: LongText,
    pub llm_policy: LlmPolicy,
    pub default_model: Option<ModelName>,
}

#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    pub name: Option<Name>,
    pub description: Option<Description>,
    pub brand_voice: Option<LongText>,
    pub llm_policy: Option<LlmPolicy>,
    /// `Some(None)` clears the default model.
    pub default_model: Option<Option<ModelName>>,
}

#[derive(Debug, Clone)]
pub struct NewCampaign {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub name: Name,
    pub start_date: Option<Date>,
    pub end_date: Option<Date>,
}

#[derive(Debug, Clone, Default)]
pub struct CampaignPatch {
    pub name: Option<Name>,
    pub start_date: Option<Option<Date>>,
    pub end_date: Option<Option<Date>>,
}

#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: Email,
    pub role: Role,
    pub token_hash: Vec<u8>,
    /// The token of the e-mailed link, which may create the account.
    pub mail_token_hash: Option<Vec<u8>>,
    pub invited_by: Option<Uuid>,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

/// An invitation as admins list it (never with its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: Email,
    pub role: Role,
    pub status: InvitationStatus,
    pub invited_by: Option<Uuid>,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    pub accepted_at: Option<Timestamp>,
}

/// What the holder of an invitation's token may see of it before
/// accepting: which organisation, which role, which address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationPreview {
    pub invitation: Invitation,
    pub tenant_name: String,
    /// Whether the invited address has an account.
    pub has_account: bool,
    /// Whether the token is the e-mailed link's (it may create the account).
    pub by_mail: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcceptOutcome {
    Accepted {
        tenant_id: Uuid,
        user: User,
        role: Role,
    },
    /// The invited address has no account (only the e-mailed link creates one).
    NeedsAccount,
    /// The e-mailed link was used to create an account that exists.
    AlreadyHasAccount,
    /// The accepting account is not the invited address's.
    WrongAccount {
        email: Email,
    },
    AlreadyMember,
    NotFound,
    Expired,
    AlreadyUsed,
    Revoked,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: Name,
    pub role: Role,
    pub key_hash: Vec<u8>,
    /// The first characters of the key, shown in lists so people can tell keys apart.
    pub prefix: String,
    pub created_by: Option<Uuid>,
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: Name,
    pub role: Role,
    pub prefix: String,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

/// An API key found by its hash, with what authorisation needs to know about
/// the person who created it: a key never grants more than its creator
/// currently holds, and stops working when the creator leaves the tenant or
/// is disabled.
#[derive(Debug, Clone)]
pub struct ApiKeyGrant {
    pub key: ApiKey,
    /// The creator's current role in the key's tenant, if still a member and
    /// not disabled. `None` for keys an operator created at the command line.
    pub creator_role: Option<Role>,
    pub creator_active: bool,
}

// ----- The trait --------------------------------------------------------------

/// Durable state of the control plane.
///
/// Every method that reads tenant data takes the tenant id and filters by it,
/// so a resource of another tenant is indistinguishable from a missing one.
/// Every mutating method takes the audit event to write with the change.
#[async_trait]
pub trait Store:
    AgentStore
    + JobStore
    + ActivityStore
    + DocumentStore
    + PublishingStore
    + NotificationStore
    + CommentStore
    + ReviewStore
    + PropertyStore
    + LeadStore
    + SequenceStore
    + AnalyticsStore
    + AbTestStore
    + InboxStore
    + CrisisStore
    + WebhookStore
    + RateStore
    + TwoFactorStore
    + SsoStore
    + PeopleStore
    + ErasureStore
    + ExportStore
    + RetentionStore
    + Send
    + Sync
    + fmt::Debug
    + 'static
{
    fn backend(&self) -> Backend;
    /// The PostgreSQL pool, for the replicas' `LISTEN/NOTIFY`
    /// (`crate::cluster`); `None` on SQLite.
    fn postgres_pool(&self) -> Option<sqlx::PgPool>;
    /// Applies pending migrations (idempotent).
    async fn migrate(&self) -> Result<()>;
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<()>;
    async fn close(&self);

    // Bootstrap and users.
    async fn has_users(&self) -> Result<bool>;
    /// Creates the first tenant and its owner if the database has no users.
    /// Returns `false` (and changes nothing) when users exist.
    async fn bootstrap(&self, tenant: &NewTenant, owner: &NewUser, audit: &NewAuditEvent) -> Result<bool>;
    async fn create_user(&self, user: &NewUser, audit: &NewAuditEvent) -> Result<User>;
    async fn user(&self, id: Uuid) -> Result<Option<User>>;
    async fn user_by_email(&self, email: &Email) -> Result<Option<User>>;
    async fn credentials(&self, email: &Email) -> Result<Option<Credentials>>;
    /// Disables or re-enables an account. Disabling ends every session; API
    /// keys the user created stop working while the account is disabled.
    async fn set_user_disabled(&self, user_id: Uuid, disabled: bool, audit: &NewAuditEvent) -> Result<User>;
    /// Replaces a password hash and revokes every session of the user.
    async fn set_password(&self, user_id: Uuid, hash: &str, audit: &NewAuditEvent) -> Result<()>;

    // Tenants and memberships.
    /// Creates a tenant with `owner` as its first owner.
    async fn create_tenant(&self, tenant: &NewTenant, owner: Uuid, audit: &NewAuditEvent) -> Result<Tenant>;
    async fn tenant(&self, id: Uuid) -> Result<Option<Tenant>>;
    async fn tenant_by_slug(&self, slug: &Slug) -> Result<Option<Tenant>>;
    /// Applies a patch. Switching to `hipaa` turns every project of the tenant
    /// `edge_only` in the same transaction.
    async fn update_tenant(&self, id: Uuid, patch: &TenantPatch, audit: &NewAuditEvent) -> Result<Tenant>;
    async fn role(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<Role>>;
    async fn memberships(&self, user_id: Uuid) -> Result<Vec<MembershipSummary>>;
    async fn members(&self, tenant_id: Uuid, page: PageRequest) -> Result<Page<Member>>;
    async fn member(&self, tenant_id: Uuid, user_id: Uuid) -> Result<Option<Member>>;
    /// Adds a membership; `Conflict` if the user already is a member.
    async fn add_member(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        role: Role,
        audit: &NewAuditEvent,
    ) -> Result<Member>;
    /// Changes a role; `Conflict` if it would leave the tenant without an owner.
    async fn set_role(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        role: Role,
        audit: &NewAuditEvent,
    ) -> Result<Member>;
    /// Removes a membership; `Conflict` if it is the tenant's last owner.
    async fn remove_member(&self, tenant_id: Uuid, user_id: Uuid, audit: &NewAuditEvent) -> Result<()>;

    // Sessions.
    async fn create_session(
        &self,
        session: &NewSession,
        refresh: &NewRefreshToken,
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// Spends `presented` and stores `replacement` in its session, atomically.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        replacement: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<RefreshOutcome>;
    /// Revokes the session a refresh token belongs to; returns its user and
    /// session ids, or `None` for an unknown token.
    async fn revoke_session_by_token(
        &self,
        presented: &[u8],
        audit: &NewAuditEvent,
    ) -> Result<Option<(Uuid, Uuid)>>;
    /// The user behind an access token, if the session is live and the user
    /// is not disabled.
    async fn session_user(&self, session_id: Uuid, user_id: Uuid) -> Result<Option<User>>;
    /// The user and session of a web UI session token (stored like a
    /// refresh token, never rotated): `None` once it expired, its session
    /// was ended, or the account was disabled.
    async fn browser_session(&self, token_hash: &[u8], now: Timestamp) -> Result<Option<(User, Uuid)>>;

    // Projects and campaigns.
    async fn create_project(&self, project: &NewProject, audit: &NewAuditEvent) -> Result<Project>;
    async fn project(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Project>>;
    async fn projects(&self, tenant_id: Uuid, page: PageRequest) -> Result<Page<Project>>;
    async fn update_project(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: &ProjectPatch,
        audit: &NewAuditEvent,
    ) -> Result<Project>;
    async fn delete_project(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;
    async fn create_campaign(&self, campaign: &NewCampaign, audit: &NewAuditEvent) -> Result<Campaign>;
    async fn campaign(&self, tenant_id: Uuid, project_id: Uuid, id: Uuid) -> Result<Option<Campaign>>;
    async fn campaigns(&self, tenant_id: Uuid, project_id: Uuid, page: PageRequest)
    -> Result<Page<Campaign>>;
    async fn update_campaign(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
        id: Uuid,
        patch: &CampaignPatch,
        audit: &NewAuditEvent,
    ) -> Result<Campaign>;
    async fn delete_campaign(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
        id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<()>;

    // Invitations.
    async fn create_invitation(
        &self,
        invitation: &NewInvitation,
        audit: &NewAuditEvent,
    ) -> Result<Invitation>;
    async fn invitations(
        &self,
        tenant_id: Uuid,
        page: PageRequest,
        now: Timestamp,
    ) -> Result<Page<Invitation>>;
    async fn revoke_invitation(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;
    /// The invitation a token names, for its holder to see before accepting.
    async fn invitation_preview(
        &self,
        token_hash: &[u8],
        now: Timestamp,
    ) -> Result<Option<InvitationPreview>>;
    /// Redeems an invitation token for `user_id`, which must be the account
    /// of the invited address. The audit event's actor is replaced by the
    /// accepting user and its tenant by the invitation's.
    async fn accept_invitation(
        &self,
        token_hash: &[u8],
        user_id: Uuid,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<AcceptOutcome>;
    /// Redeems an invitation's e-mailed token by creating the invited
    /// address's account (verified: the link reached it) and its
    /// membership, in one transaction. `AlreadyHasAccount` if the address
    /// has one (then sign in and accept).
    async fn join_with_new_account(
        &self,
        mail_token_hash: &[u8],
        user: &NewUser,
        audit: &NewAuditEvent,
    ) -> Result<AcceptOutcome>;

    // API keys.
    async fn create_api_key(&self, key: &NewApiKey, audit: &NewAuditEvent) -> Result<ApiKey>;
    async fn api_keys(&self, tenant_id: Uuid, page: PageRequest) -> Result<Page<ApiKey>>;
    async fn revoke_api_key(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;
    /// A usable key by hash: not revoked and not expired at `now`.
    async fn api_key_grant(&self, key_hash: &[u8], now: Timestamp) -> Result<Option<ApiKeyGrant>>;
    async fn touch_api_key(&self, id: Uuid, now: Timestamp) -> Result<()>;

    /// What `/metrics` reports from the database: the same on every replica.
    async fn ops_snapshot(&self, now: Timestamp, online_window: time::Duration) -> Result<OpsSnapshot>;

    // Throttles of failed attempts (`auth/throttle.rs`), shared by replicas.
    /// The latest `blocked_until` of `keys` that is after `now`.
    async fn throttle_blocked_until(&self, keys: &[String], now: Timestamp) -> Result<Option<Timestamp>>;
    /// Counts a failure of `key` at `now` (starting again from one if its
    /// last failure is before `forget_before`) and blocks it until `now`
    /// plus `delay(failures)`, in one transaction.
    async fn throttle_failure(
        &self,
        key: &str,
        now: Timestamp,
        forget_before: Timestamp,
        delay: &(dyn Fn(u32) -> std::time::Duration + Send + Sync),
    ) -> Result<()>;
    /// Forgets `key` (a success).
    async fn throttle_clear(&self, key: &str) -> Result<()>;
    /// Deletes keys whose last failure is before `before`; returns how many.
    async fn throttle_forget(&self, before: Timestamp) -> Result<u64>;

    // Audit log.
    /// Records an event on its own, for outcomes that change nothing else
    /// (failed logins, refused requests).
    async fn record_audit(&self, event: &NewAuditEvent) -> Result<()>;
    /// Events of a tenant, newest first, plus the sign-ins of its current
    /// members (which belong to no tenant).
    async fn audit_events(
        &self,
        tenant_id: Uuid,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_redacts_passwords() {
        for (url, shown) in [
            ("postgres://app:s3cret@db:5432/marketer", "postgres://app:***@db:5432/marketer"),
            ("postgres://app:p@ss@db/m?sslmode=require", "postgres://app:***@db/m?sslmode=require"),
            ("postgres://app@db/m", "postgres://app@db/m"),
            ("sqlite:///var/lib/marketer/marketer.db", "sqlite:///var/lib/marketer/marketer.db"),
        ] {
            let url = DatabaseUrl::new(url);
            assert_eq!(url.to_string(), shown);
            assert!(!format!("{url:?}").contains("s3cret"));
        }
    }

    #[test]
    fn backend_from_scheme() {
        assert_eq!(DatabaseUrl::new("sqlite://x.db").backend().unwrap(), Backend::Sqlite);
        assert_eq!(DatabaseUrl::new("postgresql://h/d").backend().unwrap(), Backend::Postgres);
        assert!(DatabaseUrl::new("mysql://h/d").backend().is_err());
    }
}
