//! A person's own data, for their rights over it: what an export of their
//! account gathers (beyond what other stores already answer), and erasing
//! them in one transaction (`service::people` decides who may).

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::domain::Timestamp;

/// A comment the person wrote, where it is.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuthoredComment {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub activity_id: Option<Uuid>,
    pub post_id: Option<Uuid>,
    pub body: String,
    pub created_at: Timestamp,
    pub deleted: bool,
}

/// An edit of content the person saved (which and when: the text is the
/// organisation's, written with others).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuthoredVersion {
    pub activity_id: Uuid,
    pub number: i64,
    pub created_at: Timestamp,
}

/// An audit entry about the person's own actions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OwnAuditEntry {
    pub id: Uuid,
    pub occurred_at: Timestamp,
    pub tenant_id: Option<Uuid>,
    pub action: String,
    pub outcome: String,
    pub client_ip: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// What an erasure takes away, and what it leaves in its place.
#[derive(Debug, Clone)]
pub struct Erasure {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The address as stored and lowercased: both forms are replaced.
    pub email: String,
    pub email_normalized: String,
    pub pseudonym: String,
    pub now: Timestamp,
}

/// What an erasure changed.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ErasureCounts {
    /// Audit entries whose person or details now read as the pseudonym.
    pub audit_entries_pseudonymised: u64,
    pub memberships_ended: u64,
    pub api_keys_revoked: u64,
    pub invitations_deleted: u64,
    pub emails_deleted: u64,
    pub content_versions_relabelled: u64,
    pub webhook_payloads_scrubbed: u64,
}

#[async_trait]
pub trait PeopleStore: Send + Sync {
    /// The comments the person wrote, newest first (at most `limit`).
    async fn authored_comments(&self, user_id: Uuid, limit: i64) -> Result<Vec<AuthoredComment>>;
    /// The content edits the person saved, newest first (at most `limit`).
    async fn authored_versions(&self, user_id: Uuid, limit: i64) -> Result<Vec<AuthoredVersion>>;
    /// Audit entries of the person's own actions, newest first.
    async fn own_audit_entries(&self, user_id: Uuid, limit: i64) -> Result<Vec<OwnAuditEntry>>;
    /// Erases the person in one transaction: their audit entries (and
    /// others' entries and webhook bodies naming their address) carry the
    /// pseudonym instead; their API keys are revoked; invitations and
    /// e-mail to their address, their edits' name, and the account (with
    /// its sessions, memberships, second factor, notifications and linked
    /// provider accounts) are gone. `Conflict` when they are an
    /// organisation's last owner. `audit` (already under the pseudonym) is
    /// written with it.
    async fn erase_user(&self, erasure: &Erasure, audit: &NewAuditEvent) -> Result<ErasureCounts>;
}
