//! Sign-in security that is not the password: a person's TOTP secret and
//! recovery codes, their sessions as they see them, and a tenant's
//! requirement of two-factor sign-in (`service::two_factor` decides what
//! they mean).

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::cloud::crypto::Sealed;
use crate::domain::Timestamp;

/// A person's TOTP secret, sealed with the data key (the user id is its
/// associated data).
#[derive(Debug, Clone)]
pub struct TwoFactorRecord {
    pub secret: Sealed,
    /// `None` while it is being set up.
    pub confirmed_at: Option<Timestamp>,
    /// The last time step a code was accepted for.
    pub last_step: Option<i64>,
}

/// A session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: Uuid,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Timestamp,
    /// When its current token lapses unless it is used (refreshed).
    pub expires_at: Option<Timestamp>,
}

#[async_trait]
pub trait TwoFactorStore: Send + Sync {
    async fn two_factor(&self, user_id: Uuid) -> Result<Option<TwoFactorRecord>>;
    /// Starts (or restarts) setting up: a new unconfirmed secret. Fails
    /// with a conflict when two-factor sign-in is already on.
    async fn begin_two_factor(&self, user_id: Uuid, secret: &Sealed, now: Timestamp) -> Result<()>;
    /// Turns it on with the first accepted step and the recovery codes'
    /// hashes; `false` when there was nothing to confirm (already on, or
    /// never begun).
    async fn confirm_two_factor(
        &self,
        user_id: Uuid,
        step: i64,
        recovery_hashes: &[Vec<u8>],
        audit: &NewAuditEvent,
    ) -> Result<bool>;
    /// Records `step` as used, if it is later than the last one used:
    /// `false` when the code was already spent (a replay).
    async fn spend_totp_step(&self, user_id: Uuid, step: i64) -> Result<bool>;
    /// Spends one unused recovery code; `false` if there is none such.
    async fn spend_recovery_code(&self, user_id: Uuid, hash: &[u8], now: Timestamp) -> Result<bool>;
    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<i64>;
    /// Replaces every recovery code.
    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[Vec<u8>],
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// Turns it off: the secret and the codes are deleted.
    async fn delete_two_factor(&self, user_id: Uuid, audit: &NewAuditEvent) -> Result<bool>;

    /// Whether the tenant requires two-factor sign-in.
    async fn tenant_requires_two_factor(&self, tenant_id: Uuid) -> Result<bool>;
    async fn set_tenant_requires_two_factor(
        &self,
        tenant_id: Uuid,
        required: bool,
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// Whether `user_id` is kept out of `tenant_id` because it requires
    /// two-factor sign-in and the person has not turned it on (one query,
    /// asked on every signed-in request to a tenant).
    async fn two_factor_missing_for(&self, tenant_id: Uuid, user_id: Uuid) -> Result<bool>;

    /// The person's live sessions, newest first.
    async fn user_sessions(&self, user_id: Uuid, now: Timestamp) -> Result<Vec<SessionRecord>>;
    /// Ends one of the person's sessions; `false` if it is not theirs or
    /// already ended.
    async fn revoke_user_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<bool>;
    /// Sets a new password hash and ends every other session of the person.
    async fn change_password(
        &self,
        user_id: Uuid,
        hash: &str,
        keep_session: Option<Uuid>,
        audit: &NewAuditEvent,
    ) -> Result<()>;
}
