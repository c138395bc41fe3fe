//! Sign-in security that is not the password: a person's TOTP secret and
//! recovery codes, their sessions as they see them, and a tenant's
//! sign-in rules (two factors, single sign-on) (`service::two_factor` decides what
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

/// What a tenant requires of its members' sign-ins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignInRules {
    pub require_two_factor: bool,
    /// Members sign in through the tenant's identity provider; owners may
    /// still use their password (break-glass).
    pub require_sso: bool,
}

/// A signed-in request as the tenant's rules see it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignInGate {
    pub rules: SignInRules,
    /// The person has confirmed two-factor sign-in.
    pub has_two_factor: bool,
    /// The tenant whose single sign-on opened the session, if any.
    pub sso_tenant_id: Option<Uuid>,
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

    /// The tenant's sign-in rules (both off when it never set them).
    async fn tenant_sign_in_rules(&self, tenant_id: Uuid) -> Result<SignInRules>;
    async fn set_tenant_sign_in_rules(
        &self,
        tenant_id: Uuid,
        rules: SignInRules,
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// What the tenant's rules need to know about a signed-in request: one
    /// query, asked on every such request to a tenant.
    async fn sign_in_gate(&self, tenant_id: Uuid, user_id: Uuid, session_id: Uuid) -> Result<SignInGate>;

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
