//! Single sign-on's durable state: a tenant's OpenID Connect connection
//! (the client secret sealed), the sign-ins under way (each good once),
//! the provider accounts linked to people, and the one transaction that
//! signs a person in by their provider account (`service::sso` decides
//! what is allowed).

use async_trait::async_trait;
use uuid::Uuid;

use super::{NewAuditEvent, NewUser, Result};
use crate::cloud::crypto::Sealed;
use crate::domain::{Email, Name, Role, Timestamp, User};

/// A tenant's identity provider as stored.
#[derive(Debug, Clone)]
pub struct SsoConnection {
    pub tenant_id: Uuid,
    pub issuer: String,
    pub client_id: String,
    pub secret: Sealed,
    pub secret_hint: String,
    pub allowed_domains: Vec<String>,
    pub default_role: Role,
    pub groups_claim: String,
    /// Group name to role, in the order the admin gave them.
    pub group_roles: Vec<(String, Role)>,
    pub enabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A sign-in sent to the provider.
#[derive(Debug, Clone)]
pub struct PendingSsoLogin {
    pub state_hash: Vec<u8>,
    pub tenant_id: Uuid,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Who the provider says came back, and what they get if they are new.
#[derive(Debug, Clone)]
pub struct SsoArrival {
    pub tenant_id: Uuid,
    pub issuer: String,
    pub subject: String,
    pub email: Email,
    pub display_name: Name,
    /// The account created if nobody has this provider account or address.
    pub new_user: NewUser,
    /// The role of someone who joins the tenant now.
    pub joining_role: Role,
    /// With a group mapping: the role a member who is not an owner is
    /// brought to at each sign-in.
    pub synced_role: Option<Role>,
    pub now: Timestamp,
}

/// What the sign-in came to.
#[derive(Debug, Clone)]
pub enum SsoArrived {
    /// The person, their role in the tenant now, and what changed.
    SignedIn { user: User, role: Role, created_account: bool, joined: bool, previous_role: Option<Role> },
    /// An account with this address exists, is not linked to this provider
    /// account and is not a member of the tenant: linking it would let an
    /// identity provider take over someone else's account.
    EmailTaken,
    /// The address is an owner's of the tenant: owners sign in with their
    /// password, and are never linked to a provider account.
    OwnerNotLinked,
    /// The account is disabled.
    Disabled,
}

#[async_trait]
pub trait SsoStore: Send + Sync {
    async fn sso_connection(&self, tenant_id: Uuid) -> Result<Option<SsoConnection>>;
    /// Creates or replaces the tenant's connection; with `keep_secret`, the
    /// stored secret and hint stay (an edit that does not change it).
    async fn put_sso_connection(
        &self,
        connection: &SsoConnection,
        keep_secret: bool,
        audit: &NewAuditEvent,
    ) -> Result<SsoConnection>;
    /// Removes it, turns off requiring it, and unlinks the provider
    /// accounts; `false` if there was none.
    async fn delete_sso_connection(&self, tenant_id: Uuid, audit: &NewAuditEvent) -> Result<bool>;
    /// The tenant whose single sign-on opened the session, if any.
    async fn session_sso_tenant(&self, session_id: Uuid) -> Result<Option<Uuid>>;
    /// Ends every live session the tenant's single sign-on opened; how many.
    async fn revoke_sso_sessions(&self, tenant_id: Uuid, now: Timestamp) -> Result<u64>;
    /// Tenants with an enabled connection allowing `domain`.
    async fn sso_tenants_for_domain(&self, domain: &str) -> Result<Vec<Uuid>>;

    /// Records a sign-in sent to the provider (and forgets expired ones).
    async fn begin_sso_login(&self, login: &PendingSsoLogin) -> Result<()>;
    /// Takes the sign-in with this state: `None` if it is unknown, already
    /// taken (a replayed callback) or expired.
    async fn take_sso_login(&self, state_hash: &[u8], now: Timestamp) -> Result<Option<PendingSsoLogin>>;

    /// Finds or provisions the person, in one transaction: the linked
    /// account, else an account with the address that is already a member
    /// (then linked), else a new account; joins them to the tenant if they
    /// are not a member; brings their role to `synced_role`. `audit` is
    /// written when anything changed, with what did.
    async fn sso_arrive(&self, arrival: &SsoArrival, audit: &NewAuditEvent) -> Result<SsoArrived>;
}
