//! The one SQL implementation of [`Store`](super::Store), generic over the
//! sqlx database: `core.rs` implements the core trait, `agents.rs`,
//! `jobs.rs`, `activities.rs`, `documents.rs`, `publishing.rs` and
//! `notifications.rs` the parts for agents, jobs, activities, documents,
//! publishing and notifications, and this module holds the rows and helpers
//! they share.
//!
//! The bounds on the impl blocks list exactly the column types the SQL binds
//! and reads; both `Sqlite` and `Postgres` satisfy them. The same list
//! appears on each impl block (Rust does not let a trait carry such bounds
//! for its users); keep the copies equal. Enumerations are stored as text
//! and parsed on the way out, so a corrupted value becomes a
//! [`StoreError::Corrupt`] instead of a panic.

mod ab_tests;
mod activities;
mod agents;
mod analytics;
mod comments;
mod core;
mod crisis;
mod documents;
mod erasures;
mod exports;
mod inbox;
mod jobs;
mod leads;
mod notifications;
mod people;
mod properties;
mod publishing;
mod rate_limits;
mod retention;
mod reviews;
mod sequences;
mod sso;
mod two_factor;
mod webhooks;

use std::fmt;

use async_trait::async_trait;
use marketer_protocol::{
    JobError, JobEvent, JobEventBody, JobOutcome, JobOutput, JobSpec, Usage, job_errors,
};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};
use time::Date;
use uuid::Uuid;

use super::{
    AcceptOutcome, Actor, Agent, AgentEventKind, ApiKey, ApiKeyGrant, AuditEvent, AuditFilter, Backend,
    Campaign, CampaignPatch, Credentials, Invitation, InvitationPreview, InvitationStatus, Labels, Member,
    MembershipSummary, NewAgentCertificate, NewApiKey, NewAuditEvent, NewCampaign, NewInvitation, NewProject,
    NewRefreshToken, NewSession, NewTenant, NewUser, OpsSnapshot, Page, PageRequest, Project, ProjectPatch,
    RefreshOutcome, Result, Store, StoreError, TenantPatch,
};
use super::{Job, JobEventKind, JobStatus, NewJob, RecordOutcome, RetryPolicy, StoredJobEvent, Transition};
use crate::domain::{
    ComplianceMode, Description, Email, LlmPolicy, LongText, ModelName, Name, Role, Slug, Tenant, Timestamp,
    User,
};

/// What differs between the backends beyond types.
pub(super) trait Dialect: Database {
    const BACKEND: Backend;
    /// Appended to a `SELECT` inside a transaction to keep other writers of
    /// the selected rows out until commit. SQLite needs nothing: its single
    /// writer connection already serialises write transactions.
    const FOR_UPDATE: &'static str;
    fn migrator() -> &'static sqlx::migrate::Migrator;
    /// `rows_affected` is an inherent method of each backend's result type.
    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// `pool` itself on PostgreSQL, `None` elsewhere.
    fn postgres_pool(pool: &Pool<Self>) -> Option<sqlx::PgPool>;
}

/// A store over one sqlx database. `write` and `read` are the same pool on
/// PostgreSQL; on SQLite, `write` has a single connection (see `sqlite.rs`).
pub(crate) struct SqlStore<DB: Database> {
    write: Pool<DB>,
    read: Pool<DB>,
}

impl<DB: Database> SqlStore<DB> {
    pub(super) fn new(write: Pool<DB>, read: Pool<DB>) -> Self {
        Self { write, read }
    }
}

impl<DB: Database> fmt::Debug for SqlStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore").field("backend", &DB::NAME).finish_non_exhaustive()
    }
}

// ----- Rows -------------------------------------------------------------------

fn corrupt<E: fmt::Display>(what: &str) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

/// A `LIKE` pattern that finds `text` anywhere, its own `%`, `_` and `\`
/// taken literally (the query says `ESCAPE '\'`).
fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
#[test]
fn like_patterns_take_wildcards_literally() {
    assert_eq!(like_pattern("a_b%c@x.io"), "%a\\_b\\%c@x.io%");
    assert_eq!(like_pattern("back\\slash"), "%back\\\\slash%");
}

/// A value as the JSON text a column keeps.
fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn unique_violation(e: sqlx::Error, code: &'static str, message: &str) -> StoreError {
    match e.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict { code, message: message.to_owned() },
        _ => StoreError::Database(e),
    }
}

#[derive(FromRow)]
struct TenantRow {
    id: Uuid,
    name: String,
    slug: String,
    plan: String,
    compliance_mode: String,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<TenantRow> for Tenant {
    type Error = StoreError;
    fn try_from(r: TenantRow) -> Result<Tenant> {
        Ok(Tenant {
            id: r.id,
            name: Name::parse(&r.name).map_err(corrupt("tenants.name"))?,
            slug: Slug::parse(&r.slug).map_err(corrupt("tenants.slug"))?,
            plan: r.plan.parse().map_err(corrupt("tenants.plan"))?,
            compliance_mode: r.compliance_mode.parse().map_err(corrupt("tenants.compliance_mode"))?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const TENANT_COLUMNS: &str = "id, name, slug, plan, compliance_mode, created_at, updated_at";

#[derive(FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    display_name: String,
    disabled: bool,
    email_verified_at: Option<Timestamp>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// A user and the session one of its tokens belongs to.
#[derive(FromRow)]
struct SessionUserRow {
    session_id: Uuid,
    #[sqlx(flatten)]
    user: UserRow,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<User> {
        Ok(User {
            id: r.id,
            email: Email::parse(&r.email).map_err(corrupt("users.email"))?,
            display_name: Name::parse(&r.display_name).map_err(corrupt("users.display_name"))?,
            disabled: r.disabled,
            email_verified_at: r.email_verified_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(FromRow)]
struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

#[derive(FromRow)]
struct MembershipRow {
    tenant_id: Uuid,
    tenant_name: String,
    tenant_slug: String,
    role: String,
}

#[derive(FromRow)]
struct MemberRow {
    user_id: Uuid,
    email: String,
    display_name: String,
    role: String,
    disabled: bool,
    joined_at: Timestamp,
}

impl TryFrom<MemberRow> for Member {
    type Error = StoreError;
    fn try_from(r: MemberRow) -> Result<Member> {
        Ok(Member {
            user_id: r.user_id,
            email: Email::parse(&r.email).map_err(corrupt("users.email"))?,
            display_name: Name::parse(&r.display_name).map_err(corrupt("users.display_name"))?,
            role: r.role.parse().map_err(corrupt("memberships.role"))?,
            disabled: r.disabled,
            joined_at: r.joined_at,
        })
    }
}

const MEMBER_SELECT: &str = "SELECT u.id AS user_id, u.email, u.display_name, m.role, u.disabled, \
     m.created_at AS joined_at FROM memberships m JOIN users u ON u.id = m.user_id";

#[derive(FromRow)]
struct ProjectRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    description: String,
    brand_voice: String,
    llm_policy: String,
    default_model: Option<String>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<ProjectRow> for Project {
    type Error = StoreError;
    fn try_from(r: ProjectRow) -> Result<Project> {
        Ok(Project {
            id: r.id,
            tenant_id: r.tenant_id,
            name: Name::parse(&r.name).map_err(corrupt("projects.name"))?,
            description: Description::parse(&r.description).map_err(corrupt("projects.description"))?,
            brand_voice: LongText::parse(&r.brand_voice).map_err(corrupt("projects.brand_voice"))?,
            llm_policy: r.llm_policy.parse().map_err(corrupt("projects.llm_policy"))?,
            default_model: r
                .default_model
                .as_deref()
                .map(ModelName::parse)
                .transpose()
                .map_err(corrupt("projects.default_model"))?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const PROJECT_COLUMNS: &str = "id, tenant_id, name, description, brand_voice, llm_policy, \
     default_model, created_at, updated_at";

#[derive(FromRow)]
struct CampaignRow {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Uuid,
    name: String,
    start_date: Option<Date>,
    end_date: Option<Date>,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl TryFrom<CampaignRow> for Campaign {
    type Error = StoreError;
    fn try_from(r: CampaignRow) -> Result<Campaign> {
        Ok(Campaign {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            name: Name::parse(&r.name).map_err(corrupt("campaigns.name"))?,
            start_date: r.start_date,
            end_date: r.end_date,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const CAMPAIGN_COLUMNS: &str =
    "id, tenant_id, project_id, name, start_date, end_date, created_at, updated_at";

/// Who accepts an invitation: an existing account, or one to create.
#[derive(Clone, Copy)]
enum Joiner<'a> {
    Account(Uuid),
    New(&'a NewUser),
}

/// An invitation, and whether the token that found it is the e-mailed one.
#[derive(FromRow)]
struct PreviewRow {
    #[sqlx(flatten)]
    row: InvitationRow,
    by_mail: bool,
}

#[derive(FromRow)]
struct InvitationRow {
    id: Uuid,
    tenant_id: Uuid,
    email: String,
    role: String,
    invited_by: Option<Uuid>,
    created_at: Timestamp,
    expires_at: Timestamp,
    accepted_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

impl InvitationRow {
    fn status(&self, now: Timestamp) -> InvitationStatus {
        if self.accepted_at.is_some() {
            InvitationStatus::Accepted
        } else if self.revoked_at.is_some() {
            InvitationStatus::Revoked
        } else if self.expires_at <= now {
            InvitationStatus::Expired
        } else {
            InvitationStatus::Pending
        }
    }

    fn into_invitation(self, now: Timestamp) -> Result<Invitation> {
        Ok(Invitation {
            status: self.status(now),
            id: self.id,
            tenant_id: self.tenant_id,
            email: Email::parse(&self.email).map_err(corrupt("invitations.email"))?,
            role: self.role.parse().map_err(corrupt("invitations.role"))?,
            invited_by: self.invited_by,
            expires_at: self.expires_at,
            created_at: self.created_at,
            accepted_at: self.accepted_at,
        })
    }
}

const INVITATION_COLUMNS: &str = "id, tenant_id, email, role, invited_by, created_at, \
     expires_at, accepted_at, revoked_at";

#[derive(FromRow)]
struct ApiKeyRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    role: String,
    prefix: String,
    created_by: Option<Uuid>,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<ApiKey> {
        Ok(ApiKey {
            id: r.id,
            tenant_id: r.tenant_id,
            name: Name::parse(&r.name).map_err(corrupt("api_keys.name"))?,
            role: r.role.parse().map_err(corrupt("api_keys.role"))?,
            prefix: r.prefix,
            created_by: r.created_by,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        })
    }
}

const API_KEY_COLUMNS: &str = "id, tenant_id, name, role, prefix, created_by, created_at, \
     expires_at, last_used_at, revoked_at";

#[derive(FromRow)]
struct ApiKeyGrantRow {
    #[sqlx(flatten)]
    key: ApiKeyRow,
    creator_role: Option<String>,
    creator_disabled: Option<bool>,
}

#[derive(FromRow)]
struct AuditRow {
    id: Uuid,
    occurred_at: Timestamp,
    tenant_id: Option<Uuid>,
    actor_type: String,
    actor_id: Option<Uuid>,
    actor_label: String,
    client_ip: Option<String>,
    request_id: Option<String>,
    action: String,
    resource_type: Option<String>,
    resource_id: Option<String>,
    outcome: String,
    details: String,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;
    fn try_from(r: AuditRow) -> Result<AuditEvent> {
        let actor = match (r.actor_type.as_str(), r.actor_id) {
            ("user", Some(id)) => Actor::User { id, email: r.actor_label },
            ("api_key", Some(id)) => Actor::ApiKey { id, name: r.actor_label },
            ("agent", Some(id)) => Actor::Agent { id, name: r.actor_label },
            ("system", _) => Actor::System { name: r.actor_label },
            ("anonymous", _) => Actor::Anonymous,
            ("external_reviewer", _) => Actor::Reviewer { email: r.actor_label },
            (other, _) => return Err(StoreError::Corrupt(format!("audit actor type {other:?}"))),
        };
        Ok(AuditEvent {
            id: r.id,
            occurred_at: r.occurred_at,
            tenant_id: r.tenant_id,
            actor,
            client_ip: r.client_ip,
            request_id: r.request_id,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            outcome: r.outcome.parse().map_err(corrupt("audit_events.outcome"))?,
            details: serde_json::from_str(&r.details).map_err(corrupt("audit_events.details"))?,
        })
    }
}

#[derive(FromRow)]
struct AgentRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    labels: String,
    enrolled_at: Timestamp,
    revoked_at: Option<Timestamp>,
    agent_version: Option<String>,
    protocol_version: Option<i64>,
    hostname: String,
    os: String,
    arch: String,
    max_concurrency: i64,
    ollama_reachable: bool,
    models: String,
    running_jobs: i64,
    connected_at: Option<Timestamp>,
    disconnected_at: Option<Timestamp>,
    disconnect_reason: Option<String>,
    last_seen_at: Option<Timestamp>,
    offline_at: Option<Timestamp>,
    cert_not_before: Timestamp,
    cert_not_after: Timestamp,
    updated_at: Timestamp,
    policy: Option<String>,
    projects: String,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;
    fn try_from(r: AgentRow) -> Result<Agent> {
        Ok(Agent {
            id: r.id,
            tenant_id: r.tenant_id,
            name: Name::parse(&r.name).map_err(corrupt("agents.name"))?,
            labels: parse_labels(&r.labels)?,
            enrolled_at: r.enrolled_at,
            revoked_at: r.revoked_at,
            agent_version: r.agent_version,
            protocol_version: r.protocol_version,
            hostname: r.hostname,
            os: r.os,
            arch: r.arch,
            max_concurrency: r.max_concurrency,
            ollama_reachable: r.ollama_reachable,
            models: serde_json::from_str(&r.models).map_err(corrupt("agents.models"))?,
            running_jobs: r.running_jobs,
            connected_at: r.connected_at,
            disconnected_at: r.disconnected_at,
            disconnect_reason: r.disconnect_reason,
            last_seen_at: r.last_seen_at,
            offline_at: r.offline_at,
            cert_not_before: r.cert_not_before,
            cert_not_after: r.cert_not_after,
            updated_at: r.updated_at,
            policy: json_column(r.policy.as_deref(), "agents.policy")?,
            projects: serde_json::from_str(&r.projects).map_err(corrupt("agents.projects"))?,
        })
    }
}

const AGENT_COLUMNS: &str = "id, tenant_id, name, labels, enrolled_at, revoked_at, agent_version, \
     protocol_version, hostname, os, arch, max_concurrency, ollama_reachable, models, running_jobs, \
     connected_at, disconnected_at, disconnect_reason, last_seen_at, offline_at, cert_not_before, \
     cert_not_after, updated_at, policy, projects";

fn parse_labels(text: &str) -> Result<Labels> {
    serde_json::from_str(text).map_err(corrupt("labels"))
}

fn labels_json(labels: &Labels) -> String {
    serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
}

fn models_json(models: &[marketer_protocol::ModelInfo]) -> String {
    serde_json::to_string(models).unwrap_or_else(|_| "[]".to_owned())
}

#[derive(FromRow)]
struct JobRow {
    id: Uuid,
    tenant_id: Uuid,
    kind: String,
    model: String,
    spec: String,
    labels: String,
    priority: i64,
    not_before: Option<Timestamp>,
    timeout_seconds: i64,
    queue_timeout_seconds: Option<i64>,
    max_attempts: i64,
    idempotency_key: Option<String>,
    created_by: String,
    status: String,
    attempts: i64,
    agent_id: Option<Uuid>,
    epoch: i64,
    lease_expires_at: Option<Timestamp>,
    retry_at: Option<Timestamp>,
    waiting_reason: Option<String>,
    agent_seq: i64,
    event_seq: i64,
    output: Option<String>,
    usage: Option<String>,
    error: Option<String>,
    created_at: Timestamp,
    assigned_at: Option<Timestamp>,
    started_at: Option<Timestamp>,
    finished_at: Option<Timestamp>,
    updated_at: Timestamp,
    activity_id: Option<Uuid>,
    route: String,
    index_project_id: Option<Uuid>,
}

fn json_column<T: serde::de::DeserializeOwned>(value: Option<&str>, what: &str) -> Result<Option<T>> {
    value.map(|v| serde_json::from_str(v).map_err(corrupt(what))).transpose()
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Job> {
        Ok(Job {
            id: r.id,
            tenant_id: r.tenant_id,
            kind: r.kind.parse().map_err(corrupt("jobs.kind"))?,
            model: r.model,
            spec: serde_json::from_str(&r.spec).map_err(corrupt("jobs.spec"))?,
            labels: parse_labels(&r.labels)?,
            priority: r.priority,
            not_before: r.not_before,
            timeout_seconds: r.timeout_seconds,
            queue_timeout_seconds: r.queue_timeout_seconds,
            max_attempts: r.max_attempts,
            idempotency_key: r.idempotency_key,
            created_by: r.created_by,
            status: r.status.parse().map_err(corrupt("jobs.status"))?,
            attempts: r.attempts,
            agent_id: r.agent_id,
            epoch: r.epoch,
            lease_expires_at: r.lease_expires_at,
            retry_at: r.retry_at,
            waiting_reason: r.waiting_reason,
            agent_seq: r.agent_seq,
            event_seq: r.event_seq,
            output: json_column(r.output.as_deref(), "jobs.output")?,
            usage: json_column(r.usage.as_deref(), "jobs.usage")?,
            error: json_column(r.error.as_deref(), "jobs.error")?,
            created_at: r.created_at,
            assigned_at: r.assigned_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
            activity_id: r.activity_id,
            route: r.route.parse().map_err(corrupt("jobs.route"))?,
            index_project_id: r.index_project_id,
        })
    }
}

const JOB_COLUMNS: &str = "id, tenant_id, kind, model, spec, labels, priority, not_before, timeout_seconds, \
     queue_timeout_seconds, max_attempts, idempotency_key, created_by, status, attempts, agent_id, epoch, \
     lease_expires_at, retry_at, waiting_reason, agent_seq, event_seq, output, usage, error, created_at, \
     assigned_at, started_at, finished_at, updated_at, activity_id, route, index_project_id";

#[derive(FromRow)]
struct JobEventRow {
    job_id: Uuid,
    seq: i64,
    kind: String,
    attempt: i64,
    data: String,
    created_at: Timestamp,
}

impl TryFrom<JobEventRow> for StoredJobEvent {
    type Error = StoreError;
    fn try_from(r: JobEventRow) -> Result<StoredJobEvent> {
        Ok(StoredJobEvent {
            job_id: r.job_id,
            seq: r.seq,
            kind: r.kind.parse().map_err(corrupt("job_events.kind"))?,
            attempt: r.attempt,
            data: serde_json::from_str(&r.data).map_err(corrupt("job_events.data"))?,
            created_at: r.created_at,
        })
    }
}

fn rows_into<R, T>(rows: Vec<R>) -> Result<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The SQL of a statement built from column lists; `AssertSqlSafe` records
/// that only constants, never input, are concatenated.
fn sql(parts: &[&str]) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(parts.concat())
}

/// `$from, $from+1, …`, `count` of them: numbered parameters only, so a
/// statement built with them stays safe (`AssertSqlSafe`).
fn placeholders(from: usize, count: usize) -> String {
    (from..from + count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Fetch one row more than the page size, to know whether a next page exists.
fn fetch_limit(page: PageRequest) -> i64 {
    i64::from(page.limit) + 1
}

// ----- Helpers shared by several operations -------------------------------------

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn insert_audit(conn: &mut DB::Connection, e: &NewAuditEvent) -> Result<()> {
        let outcome: &'static str = e.outcome.into();
        sqlx::query(
            "INSERT INTO audit_events (id, occurred_at, tenant_id, actor_type, actor_id, \
             actor_label, client_ip, request_id, action, resource_type, resource_id, outcome, \
             details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(e.id)
        .bind(e.occurred_at)
        .bind(e.tenant_id)
        .bind(e.actor.kind())
        .bind(e.actor.id())
        .bind(e.actor.label().to_owned())
        .bind(e.client_ip.clone())
        .bind(e.request_id.clone())
        .bind(e.action)
        .bind(e.resource_type.map(str::to_owned))
        .bind(e.resource_id.clone())
        .bind(outcome)
        .bind(e.details.to_string())
        .execute(&mut *conn)
        .await?;
        for mail in &e.mails {
            Self::insert_mail(conn, mail, None, e.occurred_at).await?;
        }
        Self::insert_notices(conn, &e.notices, e.occurred_at).await?;
        Self::insert_webhook_events(conn, &e.events, e.occurred_at).await?;
        // Audit streaming: the entry itself, to endpoints that asked for it.
        match e.as_stream_event() {
            Some(entry) => Self::insert_webhook_events(conn, &[entry], e.occurred_at).await,
            None => Ok(()),
        }
    }

    async fn insert_refresh_token(
        conn: &mut DB::Connection,
        session_id: Uuid,
        t: &NewRefreshToken,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(t.id)
        .bind(session_id)
        .bind(t.token_hash.clone())
        .bind(now)
        .bind(t.expires_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Serialises membership and policy changes of one tenant across
    /// connections and replicas (the last-owner and hipaa rules read, then write).
    async fn lock_tenant(conn: &mut DB::Connection, tenant_id: Uuid) -> Result<()> {
        sqlx::query(sql(&["SELECT id FROM tenants WHERE id = $1", DB::FOR_UPDATE]))
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(())
    }

    async fn insert_user(conn: &mut DB::Connection, u: &NewUser, now: Timestamp) -> Result<User> {
        let row: UserRow = sqlx::query_as(
            "INSERT INTO users (id, email, email_normalized, display_name, password_hash, \
             disabled, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) \
             RETURNING id, email, display_name, disabled, email_verified_at, created_at, updated_at",
        )
        .bind(u.id)
        .bind(u.email.as_str().to_owned())
        .bind(u.email.normalized())
        .bind(u.display_name.as_str().to_owned())
        .bind(u.password_hash.clone())
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| {
            unique_violation(e, "email_taken", "an account with this e-mail address already exists")
        })?;
        row.try_into()
    }

    /// Redeems an invitation (by its shown or its e-mailed token) for an
    /// existing account, or, through the e-mailed token only, for a new one.
    async fn accept(
        &self,
        token_hash: &[u8],
        joiner: Joiner<'_>,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<AcceptOutcome> {
        let mut tx = self.write.begin().await?;
        let row: Option<PreviewRow> = sqlx::query_as(sql(&[
            "SELECT ",
            INVITATION_COLUMNS,
            ", mail_token_hash IS NOT NULL AND mail_token_hash = $1 AS by_mail FROM invitations \
             WHERE token_hash = $1 OR mail_token_hash = $1",
        ]))
        .bind(token_hash.to_vec())
        .fetch_optional(&mut *tx)
        .await?;
        let by_mail = row.as_ref().is_some_and(|r| r.by_mail);
        let row = row.map(|r| r.row);
        let Some(row) = row else { return Ok(AcceptOutcome::NotFound) };
        match row.status(now) {
            InvitationStatus::Pending => {}
            InvitationStatus::Accepted => return Ok(AcceptOutcome::AlreadyUsed),
            InvitationStatus::Revoked => return Ok(AcceptOutcome::Revoked),
            InvitationStatus::Expired => return Ok(AcceptOutcome::Expired),
        }
        let invitation = row.into_invitation(now)?;
        Self::lock_tenant(&mut tx, invitation.tenant_id).await?;

        let existing: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, display_name, disabled, email_verified_at, created_at, updated_at FROM users \
             WHERE email_normalized = $1",
        )
        .bind(invitation.email.normalized())
        .fetch_optional(&mut *tx)
        .await?;
        let user = match (existing, joiner) {
            (None, Joiner::Account(_)) => return Ok(AcceptOutcome::NeedsAccount),
            (Some(_), Joiner::New(_)) => return Ok(AcceptOutcome::AlreadyHasAccount),
            (Some(row), Joiner::Account(user_id)) if row.id != user_id => {
                return Ok(AcceptOutcome::WrongAccount { email: invitation.email });
            }
            (Some(row), Joiner::Account(_)) => User::try_from(row)?,
            (None, Joiner::New(new)) => {
                if !by_mail || new.email.normalized() != invitation.email.normalized() {
                    return Ok(AcceptOutcome::NeedsAccount);
                }
                let user = Self::insert_user(&mut tx, new, now).await?;
                sqlx::query("UPDATE users SET email_verified_at = $2 WHERE id = $1")
                    .bind(user.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                User { email_verified_at: Some(now), ..user }
            }
        };
        if Self::fetch_member(&mut tx, invitation.tenant_id, user.id).await?.is_some() {
            return Ok(AcceptOutcome::AlreadyMember);
        }
        Self::insert_membership(&mut tx, invitation.tenant_id, user.id, invitation.role, now).await?;
        let claimed = sqlx::query(
            "UPDATE invitations SET accepted_at = $2, accepted_by = $3 \
             WHERE id = $1 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(invitation.id)
        .bind(now)
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            return Ok(AcceptOutcome::AlreadyUsed);
        }
        let audit = NewAuditEvent {
            tenant_id: Some(invitation.tenant_id),
            actor: Actor::User { id: user.id, email: user.email.to_string() },
            ..audit.clone()
        }
        .resource("invitation", invitation.id)
        .details(serde_json::json!({ "role": invitation.role }));
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(AcceptOutcome::Accepted { tenant_id: invitation.tenant_id, user, role: invitation.role })
    }

    async fn insert_tenant(conn: &mut DB::Connection, t: &NewTenant, now: Timestamp) -> Result<Tenant> {
        let row: TenantRow = sqlx::query_as(sql(&[
            "INSERT INTO tenants (id, name, slug, plan, compliance_mode, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
            TENANT_COLUMNS,
        ]))
        .bind(t.id)
        .bind(t.name.as_str().to_owned())
        .bind(t.slug.as_str().to_owned())
        .bind(<&'static str>::from(t.plan))
        .bind(<&'static str>::from(t.compliance_mode))
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| unique_violation(e, "slug_taken", "this tenant slug is already taken"))?;
        row.try_into()
    }

    async fn insert_membership(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        user_id: Uuid,
        role: Role,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query("INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(tenant_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| unique_violation(e, "already_member", "the user already is a member"))?;
        Ok(())
    }

    async fn fetch_member(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<Member>> {
        let row: Option<MemberRow> =
            sqlx::query_as(sql(&[MEMBER_SELECT, " WHERE m.tenant_id = $1 AND m.user_id = $2"]))
                .bind(tenant_id)
                .bind(user_id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(Member::try_from).transpose()
    }

    /// Refuses a change that would leave `tenant_id` without an owner. Must
    /// run after [`Self::lock_tenant`] in the same transaction.
    async fn ensure_other_owner(conn: &mut DB::Connection, tenant_id: Uuid, user_id: Uuid) -> Result<()> {
        let others: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.tenant_id = $1 AND m.role = 'owner' AND m.user_id <> $2 AND u.disabled = FALSE",
        )
        .bind(tenant_id)
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
        if others == 0 {
            return Err(StoreError::Conflict {
                code: "last_owner",
                message: "a tenant must keep at least one active owner: make another member owner first"
                    .to_owned(),
            });
        }
        Ok(())
    }

    async fn compliance_mode(conn: &mut DB::Connection, tenant_id: Uuid) -> Result<ComplianceMode> {
        let mode: String = sqlx::query_scalar("SELECT compliance_mode FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(StoreError::NotFound)?;
        mode.parse().map_err(corrupt("tenants.compliance_mode"))
    }

    fn check_policy(mode: ComplianceMode, policy: LlmPolicy) -> Result<()> {
        if mode == ComplianceMode::Hipaa && policy == LlmPolicy::CloudAllowed {
            return Err(StoreError::Invalid {
                field: "llm_policy",
                message: "must be edge_only: this tenant is in hipaa compliance mode, so no \
                          project may send work to a cloud provider"
                    .to_owned(),
            });
        }
        Ok(())
    }

    async fn fetch_project(conn: &mut DB::Connection, tenant_id: Uuid, id: Uuid) -> Result<Option<Project>> {
        let row: Option<ProjectRow> = sqlx::query_as(sql(&[
            "SELECT ",
            PROJECT_COLUMNS,
            " FROM projects WHERE tenant_id = $1 AND id = $2",
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(Project::try_from).transpose()
    }

    async fn fetch_campaign(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        project_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Campaign>> {
        let row: Option<CampaignRow> = sqlx::query_as(sql(&[
            "SELECT ",
            CAMPAIGN_COLUMNS,
            " FROM campaigns WHERE tenant_id = $1 AND project_id = $2 AND id = $3",
        ]))
        .bind(tenant_id)
        .bind(project_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(Campaign::try_from).transpose()
    }

    async fn insert_agent_event(
        conn: &mut DB::Connection,
        agent_id: Uuid,
        tenant_id: Uuid,
        kind: AgentEventKind,
        details: serde_json::Value,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO agent_events (id, agent_id, tenant_id, occurred_at, kind, details) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(crate::domain::new_id())
        .bind(agent_id)
        .bind(tenant_id)
        .bind(now)
        .bind(<&'static str>::from(kind))
        .bind(details.to_string())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn insert_certificate(
        conn: &mut DB::Connection,
        agent_id: Uuid,
        c: &NewAgentCertificate,
        reason: &'static str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO agent_certificates (fingerprint, agent_id, serial, not_before, not_after, issued_at, \
             reason) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.fingerprint.clone())
        .bind(agent_id)
        .bind(c.serial.clone())
        .bind(c.not_before)
        .bind(c.not_after)
        .bind(now)
        .bind(reason)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn fetch_agent(conn: &mut DB::Connection, agent_id: Uuid) -> Result<Option<Agent>> {
        let row: Option<AgentRow> =
            sqlx::query_as(sql(&["SELECT ", AGENT_COLUMNS, " FROM agents WHERE id = $1"]))
                .bind(agent_id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(Agent::try_from).transpose()
    }

    async fn fetch_tenant_agent(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Agent>> {
        let row: Option<AgentRow> =
            sqlx::query_as(sql(&["SELECT ", AGENT_COLUMNS, " FROM agents WHERE tenant_id = $1 AND id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(Agent::try_from).transpose()
    }

    async fn fetch_job(conn: &mut DB::Connection, id: Uuid) -> Result<Option<Job>> {
        let row: Option<JobRow> = sqlx::query_as(sql(&["SELECT ", JOB_COLUMNS, " FROM jobs WHERE id = $1"]))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(Job::try_from).transpose()
    }

    /// The job, locked against other writers until the transaction ends.
    async fn lock_job(conn: &mut DB::Connection, id: Uuid) -> Result<Option<Job>> {
        let row: Option<JobRow> =
            sqlx::query_as(sql(&["SELECT ", JOB_COLUMNS, " FROM jobs WHERE id = $1", DB::FOR_UPDATE]))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(Job::try_from).transpose()
    }

    /// Inserts a queued job and its first event.
    async fn insert_job(conn: &mut DB::Connection, job: &NewJob, now: Timestamp) -> Result<()> {
        // The wait for a start begins when the job may start.
        let ready_at = job.not_before.filter(|at| *at > now).unwrap_or(now);
        let queue_deadline = job.queue_timeout_seconds.map(|s| ready_at + time::Duration::seconds(s));
        let waiting_reason = (ready_at > now).then(|| format!("scheduled to start at {ready_at}"));
        sqlx::query(
            "INSERT INTO jobs (id, tenant_id, kind, model, spec, labels, priority, not_before, timeout_seconds, \
             queue_timeout_seconds, max_attempts, idempotency_key, request_hash, created_by, status, \
             queue_deadline, waiting_reason, created_at, updated_at, activity_id, route, index_project_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'queued', $15, $17, $16, $16, $18, $19, $20)",
        )
        .bind(job.id)
        .bind(job.tenant_id)
        .bind(<&'static str>::from(super::JobKind::of(&job.spec)))
        .bind(job.spec.model().to_owned())
        .bind(serde_json::to_string(&job.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .bind(labels_json(&job.labels))
        .bind(job.priority)
        .bind(job.not_before)
        .bind(job.timeout_seconds)
        .bind(job.queue_timeout_seconds)
        .bind(job.max_attempts)
        .bind(job.idempotency_key.clone())
        .bind(job.request_hash.clone())
        .bind(job.created_by.clone())
        .bind(queue_deadline)
        .bind(now)
        .bind(waiting_reason)
        .bind(job.activity_id)
        .bind(<&'static str>::from(job.route))
        .bind(job.index_project_id)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            unique_violation(e, "idempotency_key_reused", "this idempotency_key is being used concurrently")
        })?;
        Self::append_job_event(
            conn,
            job.id,
            JobEventKind::Status,
            0,
            serde_json::json!({ "status": "queued" }),
            now,
        )
        .await?;
        Ok(())
    }

    /// One event of `record_job_events`, inside its transaction.
    async fn record_one_job_event(
        tx: &mut DB::Connection,
        agent_id: Uuid,
        event: &JobEvent,
        now: Timestamp,
        lease_until: Timestamp,
        retry: &RetryPolicy,
    ) -> Result<RecordOutcome> {
        let Some(job) = Self::lock_job(&mut *tx, event.job.job_id).await? else {
            return Ok(RecordOutcome::Stale);
        };
        if job.lease() != Some((agent_id, event.job)) {
            return Ok(RecordOutcome::Stale);
        }
        let seq = i64::try_from(event.seq).unwrap_or(i64::MAX);
        if seq <= job.agent_seq {
            return Ok(RecordOutcome::Duplicate);
        }
        if seq != job.agent_seq + 1 {
            return Ok(RecordOutcome::Gap);
        }
        let attempt = job.attempts;
        // What streams to followers (the start, output, progress): the
        // agent's sequence, the lease and the event's number in one update,
        // then the event.
        let streamed = match &event.body {
            JobEventBody::Started => {
                Some((JobEventKind::Status, serde_json::json!({ "status": "running", "attempt": attempt })))
            }
            JobEventBody::Output { text } => {
                Some((JobEventKind::Chunk, serde_json::json!({ "attempt": attempt, "text": text })))
            }
            JobEventBody::Progress { step, percent, message } => Some((
                JobEventKind::Progress,
                serde_json::json!({
                    "attempt": attempt, "step": step, "percent": percent.min(&100), "message": message,
                }),
            )),
            JobEventBody::Checkpoint { .. } | JobEventBody::Finished { .. } => None,
        };
        if let Some((kind, data)) = streamed {
            let number: i64 = if matches!(event.body, JobEventBody::Started) {
                sqlx::query_scalar(
                    "UPDATE jobs SET agent_seq = $2, lease_expires_at = $3, updated_at = $4, event_seq = event_seq + 1, \
                     status = 'running', started_at = $4, run_deadline = $5 WHERE id = $1 RETURNING event_seq",
                )
                .bind(job.id)
                .bind(seq)
                .bind(lease_until)
                .bind(now)
                .bind(now + time::Duration::seconds(job.timeout_seconds))
                .fetch_one(&mut *tx)
                .await?
            } else {
                sqlx::query_scalar(
                    "UPDATE jobs SET agent_seq = $2, lease_expires_at = $3, updated_at = $4, \
                     event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq",
                )
                .bind(job.id)
                .bind(seq)
                .bind(lease_until)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?
            };
            let stored = Self::insert_job_event(&mut *tx, job.id, number, kind, attempt, data, now).await?;
            return Ok(RecordOutcome::Stored { events: vec![stored], finished: false });
        }
        sqlx::query("UPDATE jobs SET agent_seq = $2, lease_expires_at = $3, updated_at = $4 WHERE id = $1")
            .bind(job.id)
            .bind(seq)
            .bind(lease_until)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let (events, finished) = match &event.body {
            // Stored above.
            JobEventBody::Started | JobEventBody::Output { .. } | JobEventBody::Progress { .. } => {
                (Vec::new(), false)
            }
            // What an activity has completed so far: kept on the job (its
            // output until it finishes), not an event of the stream.
            JobEventBody::Checkpoint { result, usage } => {
                if matches!(job.spec, JobSpec::Activity { .. }) {
                    let output = JobOutput::Activity { result: result.clone() };
                    sqlx::query("UPDATE jobs SET output = $2, usage = $3 WHERE id = $1")
                        .bind(job.id)
                        .bind(serde_json::to_string(&output).unwrap_or_default())
                        .bind(serde_json::to_string(usage).unwrap_or_default())
                        .execute(&mut *tx)
                        .await?;
                }
                (Vec::new(), false)
            }
            JobEventBody::Finished { outcome } => {
                let events = match outcome {
                    JobOutcome::Succeeded { output, usage } => {
                        Self::finish_job(
                            &mut *tx,
                            &job,
                            JobStatus::Succeeded,
                            Some(output),
                            Some(usage),
                            None,
                            now,
                        )
                        .await?
                    }
                    JobOutcome::Failed { error } => {
                        Self::fail_or_retry(&mut *tx, &job, error, now, retry).await?
                    }
                    // The agent gave the job up on its own (it is shutting
                    // down): another attempt, not a cancellation nobody asked for.
                    JobOutcome::Cancelled { reason } => {
                        let error = JobError {
                            code: job_errors::AGENT_LOST.into(),
                            message: format!("the agent stopped the job: {reason}"),
                            retryable: true,
                        };
                        Self::fail_or_retry(&mut *tx, &job, &error, now, retry).await?
                    }
                };
                (events, true)
            }
        };
        Ok(RecordOutcome::Stored { events, finished })
    }

    /// Appends an event to a job's log under the next sequence number.
    async fn append_job_event(
        conn: &mut DB::Connection,
        job_id: Uuid,
        kind: JobEventKind,
        attempt: i64,
        data: serde_json::Value,
        now: Timestamp,
    ) -> Result<StoredJobEvent> {
        let seq: i64 =
            sqlx::query_scalar("UPDATE jobs SET event_seq = event_seq + 1 WHERE id = $1 RETURNING event_seq")
                .bind(job_id)
                .fetch_one(&mut *conn)
                .await?;
        Self::insert_job_event(conn, job_id, seq, kind, attempt, data, now).await
    }

    /// Inserts an event under `seq`, which the caller took from the job's
    /// `event_seq` (bumped in the same transaction).
    async fn insert_job_event(
        conn: &mut DB::Connection,
        job_id: Uuid,
        seq: i64,
        kind: JobEventKind,
        attempt: i64,
        data: serde_json::Value,
        now: Timestamp,
    ) -> Result<StoredJobEvent> {
        sqlx::query(
            "INSERT INTO job_events (job_id, seq, kind, attempt, data, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(job_id)
        .bind(seq)
        .bind(<&'static str>::from(kind))
        .bind(attempt)
        .bind(data.to_string())
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(StoredJobEvent { job_id, seq, kind, attempt, data, created_at: now })
    }

    /// Gives a job its one terminal state, and the `done` event.
    async fn finish_job(
        conn: &mut DB::Connection,
        job: &Job,
        status: JobStatus,
        output: Option<&JobOutput>,
        usage: Option<&Usage>,
        error: Option<&JobError>,
        now: Timestamp,
    ) -> Result<Vec<StoredJobEvent>> {
        let json = |v: Option<String>| v;
        // A job that ends without output keeps its last checkpoint (what an
        // activity completed before it failed or was cancelled), and the
        // usage that work cost.
        let usage = usage.or(job.usage.as_ref());
        sqlx::query(
            "UPDATE jobs SET status = $2, output = COALESCE($3, output), usage = COALESCE($4, usage), error = $5, \
             finished_at = $6, lease_expires_at = NULL, run_deadline = NULL, waiting_reason = NULL, updated_at = $6 \
             WHERE id = $1",
        )
        .bind(job.id)
        .bind(<&'static str>::from(status))
        .bind(json(output.map(|o| serde_json::to_string(o).unwrap_or_default())))
        .bind(json(usage.map(|u| serde_json::to_string(u).unwrap_or_default())))
        .bind(json(error.map(|e| serde_json::to_string(e).unwrap_or_default())))
        .bind(now)
        .execute(&mut *conn)
        .await?;
        // A run's content becomes its activity's content only by succeeding
        // (and only while it is the latest run); the approval was for the
        // content before.
        if status == JobStatus::Succeeded
            && let Some(activity) = job.activity_id
        {
            sqlx::query(
                "UPDATE activities SET content_job_id = $2, approved_at = NULL, approved_by = NULL, \
                 updated_at = $3 WHERE id = $1 AND current_job_id = $2",
            )
            .bind(activity)
            .bind(job.id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        }
        let mut data = serde_json::json!({ "status": status, "attempt": job.attempts, "output": output, "usage": usage, "error": error });
        if let Some(activity) = job.activity_id {
            data["activity_id"] = serde_json::json!(activity);
        }
        let done = Self::append_job_event(conn, job.id, JobEventKind::Done, job.attempts, data, now).await?;
        Self::notify_activity_end(conn, job, status, error, now).await?;
        let succeeded = output.filter(|_| status == JobStatus::Succeeded);
        Self::classify_ended(conn, job, succeeded, error, now).await?;
        Self::reply_ended(conn, job, succeeded, error, now).await?;
        // Last: every job of the tenant that finishes today updates this one
        // row, whose lock is then held only until the commit.
        Self::count_usage(conn, job, usage, now).await?;
        Ok(vec![done])
    }

    /// Tells the person who started an activity that its latest run
    /// finished or failed (a cancelled run was someone's choice: no notice),
    /// and the organisation's webhooks.
    async fn notify_activity_end(
        conn: &mut DB::Connection,
        job: &Job,
        status: JobStatus,
        error: Option<&JobError>,
        now: Timestamp,
    ) -> Result<()> {
        let Some(activity_id) = job.activity_id else { return Ok(()) };
        let kind = match status {
            JobStatus::Succeeded => super::NoticeKind::ActivityFinished,
            JobStatus::Failed => super::NoticeKind::ActivityFailed,
            _ => return Ok(()),
        };
        let row: Option<(Option<Uuid>, String, Uuid)> = sqlx::query_as(
            "SELECT created_by, title, project_id FROM activities WHERE id = $1 AND current_job_id = $2",
        )
        .bind(activity_id)
        .bind(job.id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((author, title, project_id)) = row else { return Ok(()) };
        let (event_kind, text) = match error {
            None => (super::WebhookEventKind::ActivityFinished, format!("“{title}” finished")),
            Some(e) => (super::WebhookEventKind::ActivityFailed, format!("“{title}” failed: {}", e.message)),
        };
        let event = super::NewWebhookEvent::new(
            job.tenant_id,
            event_kind,
            text,
            serde_json::json!({
                "activity_id": activity_id,
                "project_id": project_id,
                "title": title,
                "job_id": job.id,
                "attempt": job.attempts,
                "error": error.map(|e| e.message.clone()),
            }),
        );
        Self::insert_webhook_events(conn, std::slice::from_ref(&event), now).await?;
        let Some(author) = author else { return Ok(()) };
        let (headline, body) = match error {
            None => (
                format!("“{title}” is ready"),
                "Your activity finished: read it, edit it, and send it for review.".to_owned(),
            ),
            Some(e) => (format!("“{title}” failed"), format!("Your activity failed: {}", e.message)),
        };
        let notice = super::NewNotice {
            tenant_id: Some(job.tenant_id),
            kind,
            audience: super::Audience::User(author),
            title: headline,
            body,
            link: Some(format!("/t/{}/projects/{project_id}/activities/{activity_id}", job.tenant_id)),
            dedupe_key: Some(format!("job:{}", job.id)),
        };
        Self::insert_notices(conn, std::slice::from_ref(&notice), now).await
    }

    /// Adds a finished job to its tenant's usage of the day (UTC).
    async fn count_usage(
        conn: &mut DB::Connection,
        job: &Job,
        usage: Option<&Usage>,
        now: Timestamp,
    ) -> Result<()> {
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let (prompt, completion, wall) = usage.map_or((0, 0, 0), |u| {
            (tokens(u.prompt_tokens), tokens(u.completion_tokens), tokens(u.wall_time_ms))
        });
        sqlx::query(
            "INSERT INTO usage_daily (tenant_id, day, jobs, activities, prompt_tokens, completion_tokens, wall_time_ms) \
             VALUES ($1, $2, 1, $3, $4, $5, $6) ON CONFLICT (tenant_id, day) DO UPDATE SET \
             jobs = usage_daily.jobs + 1, activities = usage_daily.activities + excluded.activities, \
             prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, \
             completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, \
             wall_time_ms = usage_daily.wall_time_ms + excluded.wall_time_ms",
        )
        .bind(job.tenant_id)
        .bind(now.date().to_string())
        .bind(i64::from(job.activity_id.is_some()))
        .bind(prompt)
        .bind(completion)
        .bind(wall)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// A failed attempt: another one after a delay if the error allows it
    /// and attempts remain, otherwise the job fails with this error.
    async fn fail_or_retry(
        conn: &mut DB::Connection,
        job: &Job,
        error: &JobError,
        now: Timestamp,
        retry: &RetryPolicy,
    ) -> Result<Vec<StoredJobEvent>> {
        // An agent that had no free slot, or never received the assignment,
        // did not run the attempt: it does not count (the scheduler's view of
        // the agent was momentarily stale).
        let uncounted = error.code == job_errors::AGENT_BUSY || error.code == job_errors::NOT_DELIVERED;
        if !(uncounted || error.retryable && job.attempts < job.max_attempts) {
            return Self::finish_job(conn, job, JobStatus::Failed, None, None, Some(error), now).await;
        }
        // An undelivered assignment goes to the next agent at once.
        let retry_at =
            if error.code == job_errors::NOT_DELIVERED { now } else { now + retry.delay(job.attempts + 1) };
        let reason = format!("retrying at {retry_at} after: {}", error.message);
        // A new epoch fences off the old lease: its late events are stale.
        sqlx::query(
            "UPDATE jobs SET status = 'queued', agent_id = NULL, epoch = epoch + 1, lease_expires_at = NULL, \
             run_deadline = NULL, retry_at = $2, error = $3, updated_at = $4, attempts = attempts - $5, \
             waiting_reason = $6 WHERE id = $1",
        )
        .bind(job.id)
        .bind(retry_at)
        .bind(serde_json::to_string(error).unwrap_or_default())
        .bind(now)
        .bind(i64::from(uncounted))
        .bind(reason)
        .execute(&mut *conn)
        .await?;
        let data = serde_json::json!({
            "status": "retrying", "attempt": job.attempts, "next_attempt": job.attempts + 1,
            "retry_at": retry_at, "error": error,
        });
        Ok(vec![Self::append_job_event(conn, job.id, JobEventKind::Status, job.attempts, data, now).await?])
    }

    /// Applies `error` (or its retry) to every job matching `condition`
    /// (which takes `now` as `$1`), each in the same transaction.
    async fn expire_where(
        &self,
        condition: &str,
        now: Timestamp,
        error: impl Fn(&Job) -> JobError + Send + Sync,
        retry: &RetryPolicy,
    ) -> Result<Vec<Transition>> {
        let mut tx = self.write.begin().await?;
        let rows: Vec<JobRow> = sqlx::query_as(sql(&[
            "SELECT ",
            JOB_COLUMNS,
            " FROM jobs WHERE ",
            condition,
            " ORDER BY id LIMIT 500",
            DB::FOR_UPDATE,
        ]))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut transitions = Vec::new();
        for job in rows_into::<JobRow, Job>(rows)? {
            let ended_lease = job.lease();
            let events = Self::fail_or_retry(&mut tx, &job, &error(&job), now, retry).await?;
            let after = Self::fetch_job(&mut tx, job.id).await?.ok_or(StoreError::NotFound)?;
            transitions.push(Transition { job: after, events, ended_lease });
        }
        tx.commit().await?;
        Ok(transitions)
    }
}
