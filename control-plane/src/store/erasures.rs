//! Erasing a whole tenant, across the control plane and its edge agents
//! (`service::erasures` decides who may and how the audit log is
//! rewritten): the erasure in one transaction, its record (which agents
//! must still delete what they hold, which confirmed, and what they
//! deleted), and how a returning agent of an erased tenant is recognised.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::domain::Timestamp;

/// An erasure to carry out.
#[derive(Debug, Clone)]
pub struct TenantErasure {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The person who asked; `None` for the operator's command line.
    pub requested_by: Option<Uuid>,
    pub now: Timestamp,
}

/// How the tenant's audit entries are rewritten: the actor's label (a
/// person's address, a key's name) becomes a pseudonym of the actor's
/// kind, and the details keep no text. Decided by the service; the store
/// applies it inside the erasure's transaction.
#[derive(Debug, Clone, Copy)]
pub struct AuditRewrite {
    /// `(actor type, actor id, label)` to the pseudonym, which must start
    /// with the actor type and a dash (the audit trigger checks).
    pub relabel: fn(&str, Option<Uuid>, &str) -> String,
    /// The details (JSON text) as they are kept.
    pub details: fn(&str) -> String,
}

/// What the control plane deleted: the main kinds of the tenant's rows
/// (everything else of the tenant went with them).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TenantErasureCounts {
    pub members: u64,
    pub projects: u64,
    pub activities: u64,
    pub documents: u64,
    pub social_posts: u64,
    pub inbox_items: u64,
    pub properties: u64,
    pub leads: u64,
    pub agents: u64,
    /// Audit entries kept, now under pseudonyms and without their text.
    pub audit_entries_pseudonymised: u64,
}

/// One agent's part of an erasure.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErasureAgent {
    pub agent_id: Uuid,
    pub name: String,
    /// When the agent confirmed it deleted what it held; `None`: pending
    /// (it is told when it next connects).
    pub confirmed_at: Option<Timestamp>,
    /// What it deleted (counts), once confirmed.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    /// Why the agent cannot be told (`revoked`, `certificate_expired`):
    /// its host's data directory must be deleted by hand.
    pub unreachable: Option<String>,
}

/// The record of an erasure.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantErasureRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub requested_by: Option<Uuid>,
    pub erased_at: Timestamp,
    /// When every reachable agent had confirmed and the stored files were
    /// gone.
    pub completed_at: Option<Timestamp>,
    /// The tenant's stored files are still to be deleted (retried).
    pub files_pending: bool,
    pub control_plane: TenantErasureCounts,
    pub agents: Vec<ErasureAgent>,
}

/// An erased tenant's agent, recognised by its certificate.
#[derive(Debug, Clone, Copy)]
pub struct ErasingAgent {
    pub erasure_id: Uuid,
    pub tenant_id: Uuid,
    pub agent_id: Uuid,
}

#[async_trait]
pub trait ErasureStore: Send + Sync {
    /// Erases the tenant in one transaction: its agents (and the
    /// certificates they may return with) are recorded as pending, its
    /// audit entries are rewritten by `rewrite`, its SSO sessions end, and
    /// the tenant row goes with everything that hangs from it. `audit` is
    /// written with it. `NotFound` when the tenant is gone.
    async fn erase_tenant(
        &self,
        erasure: &TenantErasure,
        rewrite: AuditRewrite,
        audit: &NewAuditEvent,
    ) -> Result<TenantErasureCounts>;
    async fn tenant_erasure(&self, id: Uuid) -> Result<Option<TenantErasureRecord>>;
    /// The erasures a person asked for, newest first.
    async fn tenant_erasures_requested_by(&self, user_id: Uuid) -> Result<Vec<TenantErasureRecord>>;
    /// The erased tenant's agent this certificate belongs to, if any.
    async fn erasing_agent(&self, fingerprint: &[u8]) -> Result<Option<ErasingAgent>>;
    /// Records the agent's confirmation (the first one counts) and completes
    /// the erasure when nothing is pending. `audit` is written with a first
    /// confirmation. Returns whether this was the first.
    async fn confirm_agent_erasure(
        &self,
        agent: ErasingAgent,
        report: &serde_json::Value,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<bool>;
    /// Erasures whose stored files are still to delete: `(erasure, tenant)`.
    async fn erasures_with_files_pending(&self) -> Result<Vec<(Uuid, Uuid)>>;
    /// The tenant's stored files are gone.
    async fn erasure_files_deleted(&self, erasure_id: Uuid, now: Timestamp) -> Result<()>;
}
