//! Single sign-on with OpenID Connect, one identity provider per tenant:
//! its connection (issuer, client, sealed secret, allowed e-mail domains,
//! default role, group-to-role mapping), signing in through it, and what
//! it means for a tenant to require it.
//!
//! - **The flow** is the authorization code flow with PKCE (S256) and a
//!   nonce (`openidconnect` does the protocol: discovery, the token
//!   request, and the ID token's signature against the issuer's keys, its
//!   issuer, audience, expiry and nonce). The state, nonce and PKCE
//!   verifier are kept server-side (`sso_logins`, state as SHA-256 only)
//!   for ten minutes and taken once, so a callback cannot be replayed on
//!   any replica; the state is also in a cookie scoped to the callback, so
//!   a sign-in finishes in the browser that started it (no login CSRF).
//! - **Who comes back** is the provider account (issuer and subject),
//!   linked to a person at the first sign-in. The e-mail address must be
//!   verified by the provider and in an allowed domain. An existing
//!   account with the address is linked only if it already is a member of
//!   the tenant; otherwise a provider could claim anyone's account.
//!   Newcomers get an account (just in time) and a membership with the
//!   mapped or default role; with a group mapping, members' roles follow
//!   their groups at each sign-in (owners excepted; nobody becomes an
//!   owner through a provider).
//! - **An SSO session reaches only its tenant.** Requiring SSO keeps
//!   password sessions of members out of the tenant (`sso_required`),
//!   owners excepted (break-glass); an SSO session satisfies the tenant's
//!   two-factor requirement (the provider is responsible for factors).
//! - **The provider is an outbound destination** chosen by a tenant: the
//!   same rules as webhooks (public addresses only unless the operator
//!   allows private ones, no redirects, no proxy, 10-second limit).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, RequestMeta, TenantAccess, actions, audit_event};
use crate::auth::password;
use crate::auth::tokens::{TokenKind, hash_token};
use crate::domain::{Email, Name, Password, Role, Slug, Tenant, Timestamp, new_id};
use crate::error::{Error, Result};
use crate::notify::webhooks::{self, WebhookSettings};
use crate::store::{Actor, NewUser, Outcome, PendingSsoLogin, SsoArrival, SsoArrived, SsoConnection};

/// How long a person has at their provider before the sign-in lapses.
pub const LOGIN_TTL: time::Duration = time::Duration::minutes(10);
/// How long a provider's discovery document and keys are reused.
const METADATA_TTL: Duration = Duration::from_secs(300);
/// The callback's path, under the server's public address.
pub const CALLBACK_PATH: &str = "/sso/callback";
const MAX_DOMAINS: usize = 50;
const MAX_GROUP_ROLES: usize = 100;
/// The largest answer read from a provider.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// A group of the provider and the role its members get.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRole {
    pub group: String,
    pub role: Role,
}

/// A tenant's identity provider, as set by an owner or admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoConnectionRequest {
    /// The issuer URL, exactly as the provider names itself
    /// (`{issuer}/.well-known/openid-configuration` must answer).
    pub issuer: String,
    pub client_id: String,
    /// Required the first time; omit it to keep the stored one.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// E-mail domains whose people may sign in, such as `example.com`.
    pub allowed_domains: Vec<String>,
    /// The role of people who join through the provider [default: member].
    #[serde(default)]
    pub default_role: Option<Role>,
    /// The ID token claim with the person's groups [default: groups].
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Groups and their roles; the highest matching role wins. Empty: every
    /// newcomer gets the default role and roles are managed here.
    #[serde(default)]
    pub group_roles: Vec<GroupRole>,
    /// Whether people can sign in through it [default: true].
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// A tenant's identity provider as shown (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct SsoConnectionView {
    pub issuer: String,
    pub client_id: String,
    /// The secret's last characters, to recognise it.
    pub client_secret_hint: String,
    pub allowed_domains: Vec<String>,
    pub default_role: Role,
    pub groups_claim: String,
    pub group_roles: Vec<GroupRole>,
    pub enabled: bool,
    /// Register this as the redirect URI at the provider.
    pub redirect_uri: String,
    /// Where people start signing in (a link to give them).
    pub sign_in_url: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Where to send the browser to sign in, and the state for its cookie.
#[derive(Debug)]
pub struct SsoStart {
    pub authorize_url: String,
    pub state: String,
}

/// A finished sign-in: the session token for the cookie, how long it
/// lasts, and where to go.
#[derive(Debug)]
pub struct SsoSignedIn {
    pub token: String,
    pub ttl: time::Duration,
    pub return_to: String,
}

/// The HTTP client and the providers' discovery documents (with their
/// keys), shared by every sign-in on this replica.
#[derive(Debug)]
pub struct SsoClient {
    http: reqwest::Client,
    settings: WebhookSettings,
    metadata: Mutex<HashMap<String, (Instant, CoreProviderMetadata)>>,
}

impl SsoClient {
    pub fn new(settings: WebhookSettings) -> anyhow::Result<Self> {
        let http = webhooks::guarded_client(&settings, concat!("Marketer-SSO/", env!("CARGO_PKG_VERSION")))?;
        Ok(Self { http, settings, metadata: Mutex::new(HashMap::new()) })
    }

    /// The issuer's discovery document and keys, fetched at most every five
    /// minutes (or at once with `fresh`, after a key the cache lacks).
    async fn metadata(&self, issuer: &str, fresh: bool) -> std::result::Result<CoreProviderMetadata, String> {
        if !fresh {
            let cache = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, metadata)) = cache.get(issuer)
                && at.elapsed() < METADATA_TTL
            {
                return Ok(metadata.clone());
            }
        }
        let url = IssuerUrl::new(issuer.to_owned()).map_err(|e| format!("is not a URL: {e}"))?;
        let metadata = CoreProviderMetadata::discover_async(url, self).await.map_err(|e| {
            format!(
                "could not read {}/.well-known/openid-configuration: {}",
                issuer.trim_end_matches('/'),
                chain(&e)
            )
        })?;
        let mut cache = self.metadata.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 1000 {
            cache.clear();
        }
        cache.insert(issuer.to_owned(), (Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    /// One request of the protocol, through the guarded client.
    async fn send(
        &self,
        request: openidconnect::HttpRequest,
    ) -> std::result::Result<openidconnect::HttpResponse, SendError> {
        let request = reqwest::Request::try_from(request).map_err(|e| SendError(e.to_string()))?;
        let mut answer = self.http.execute(request).await.map_err(|e| SendError(chain(&e)))?;
        let mut response = openidconnect::http::Response::builder().status(answer.status().as_u16());
        for (name, value) in answer.headers() {
            response = response.header(name.as_str(), value.as_bytes());
        }
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| SendError(chain(&e)))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(SendError(format!("the answer is larger than {MAX_ANSWER_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        response.body(body).map_err(|e| SendError(e.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(String);

impl<'c> openidconnect::AsyncHttpClient<'c> for SsoClient {
    type Error = SendError;
    type Future = Pin<
        Box<dyn Future<Output = std::result::Result<openidconnect::HttpResponse, SendError>> + Send + 'c>,
    >;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// An error and its causes, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    text
}

/// A client of a provider as discovery makes it: the authorization
/// endpoint set, the token and user info endpoints if the provider has them.
type Oidc = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in through the provider was refused: said to the person,
/// and audited.
#[derive(Debug)]
struct Refusal {
    reason: &'static str,
    message: String,
}

fn refuse(reason: &'static str, message: impl Into<String>) -> Refusal {
    Refusal { reason, message: message.into() }
}

impl App {
    /// The tenant a session opened by single sign-on is confined to; `None`
    /// for password sessions and API keys.
    pub(crate) async fn sso_scope(&self, caller: &super::Caller) -> Result<Option<Uuid>> {
        match &caller.principal {
            super::Principal::User { session_id, .. } => {
                Ok(self.store.session_sso_tenant(*session_id).await?)
            }
            _ => Ok(None),
        }
    }

    /// Refuses what reaches beyond one organisation to a session opened by
    /// an organisation's single sign-on.
    pub(crate) async fn require_password_session(&self, caller: &super::Caller, what: &str) -> Result<()> {
        if self.sso_scope(caller).await?.is_some() {
            return Err(Error::Forbidden(format!(
                "{what} needs a password sign-in: this session came through an organisation's single sign-on \
                 and reaches only that organisation"
            )));
        }
        Ok(())
    }

    fn sso_redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.notifier.public_url().trim_end_matches('/'))
    }

    fn sso_view(&self, tenant: &Tenant, c: &SsoConnection) -> SsoConnectionView {
        SsoConnectionView {
            issuer: c.issuer.clone(),
            client_id: c.client_id.clone(),
            client_secret_hint: c.secret_hint.clone(),
            allowed_domains: c.allowed_domains.clone(),
            default_role: c.default_role,
            groups_claim: c.groups_claim.clone(),
            group_roles: c
                .group_roles
                .iter()
                .map(|(group, role)| GroupRole { group: group.clone(), role: *role })
                .collect(),
            enabled: c.enabled,
            redirect_uri: self.sso_redirect_uri(),
            sign_in_url: format!("{}/sso/{}", self.notifier.public_url().trim_end_matches('/'), tenant.slug),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }

    async fn access_tenant(&self, access: &TenantAccess) -> Result<Tenant> {
        self.store.tenant(access.tenant_id).await?.ok_or(Error::NotFound("tenant"))
    }

    /// The tenant's identity provider (owners: whoever sets the provider
    /// decides who can sign in as a member).
    pub async fn sso_connection(&self, access: &TenantAccess) -> Result<SsoConnectionView> {
        require_owner(access)?;
        let tenant = self.access_tenant(access).await?;
        let connection =
            self.store.sso_connection(access.tenant_id).await?.ok_or(Error::NotFound("sso connection"))?;
        Ok(self.sso_view(&tenant, &connection))
    }

    /// Sets the tenant's identity provider (`tenant:manage`). The issuer is
    /// checked by reading its discovery document, so a typo is caught now
    /// rather than at someone's first sign-in.
    pub async fn put_sso_connection(
        &self,
        access: &TenantAccess,
        req: SsoConnectionRequest,
    ) -> Result<SsoConnectionView> {
        require_owner(access)?;
        let tenant = self.access_tenant(access).await?;
        let existing = self.store.sso_connection(access.tenant_id).await?;
        let issuer = check_issuer(&req.issuer, &self.sso.settings)?;
        let client_id = req.client_id.trim().to_owned();
        if client_id.is_empty() || client_id.len() > 255 || client_id.chars().any(char::is_control) {
            return Err(Error::invalid("client_id", "must be 1 to 255 characters, as the provider shows it"));
        }
        let secret = match req.client_secret.as_deref().map(str::trim) {
            Some(s) if s.is_empty() || s.len() > 1000 || s.chars().any(char::is_control) => {
                return Err(Error::invalid("client_secret", "must be 1 to 1000 characters"));
            }
            Some(s) => Some(s.to_owned()),
            None if existing.is_none() => {
                return Err(Error::invalid(
                    "client_secret",
                    "is required the first time: copy it from the application at your provider",
                ));
            }
            // The stored secret goes only to the provider it was given for.
            None if existing.as_ref().is_some_and(|e| e.issuer != issuer || e.client_id != client_id) => {
                return Err(Error::invalid(
                    "client_secret",
                    "is required again when the issuer or client ID changes (the stored one is only sent to \
                     the provider it was given for)",
                ));
            }
            None => None,
        };
        let allowed_domains = check_domains(&req.allowed_domains)?;
        let default_role = req.default_role.unwrap_or(Role::Member);
        if default_role == Role::Owner {
            return Err(Error::invalid(
                "default_role",
                "cannot be owner: make owners by hand, under Team (viewer, member or admin)",
            ));
        }
        let groups_claim = req.groups_claim.as_deref().map_or("groups", str::trim).to_owned();
        if groups_claim.is_empty()
            || groups_claim.len() > 100
            || !groups_claim.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c))
        {
            return Err(Error::invalid(
                "groups_claim",
                "must be a claim name of up to 100 letters, digits and _ - . : /, such as groups",
            ));
        }
        if req.group_roles.len() > MAX_GROUP_ROLES {
            return Err(Error::invalid(
                "group_roles",
                format!("must have at most {MAX_GROUP_ROLES} entries"),
            ));
        }
        let mut group_roles = Vec::with_capacity(req.group_roles.len());
        for (i, entry) in req.group_roles.iter().enumerate() {
            let group = entry.group.trim();
            if group.is_empty() || group.len() > 200 || group.chars().any(char::is_control) {
                return Err(Error::invalid(format!("group_roles[{i}].group"), "must be 1 to 200 characters"));
            }
            if entry.role == Role::Owner {
                return Err(Error::invalid(
                    format!("group_roles[{i}].role"),
                    "cannot be owner: make owners by hand, under Team",
                ));
            }
            if group_roles.iter().any(|(g, _): &(String, Role)| g == group) {
                return Err(Error::invalid(
                    format!("group_roles[{i}].group"),
                    format!("{group} is listed twice"),
                ));
            }
            group_roles.push((group.to_owned(), entry.role));
        }
        let enabled = req.enabled.unwrap_or(true);
        if !enabled && self.store.tenant_sign_in_rules(access.tenant_id).await?.require_sso {
            return Err(Error::Conflict {
                code: "sso_required",
                message: "this organisation requires single sign-on: stop requiring it (Settings → Sign-in) \
                          before turning it off"
                    .into(),
            });
        }
        self.sso.metadata(&issuer, true).await.map_err(|e| Error::invalid("issuer", e))?;

        let now = Timestamp::now();
        let (sealed, hint) = match &secret {
            Some(secret) => (
                self.cloud.key().seal(access.tenant_id, secret).map_err(Error::Internal)?,
                crate::cloud::crypto::hint(secret),
            ),
            None => {
                let existing = existing.as_ref().ok_or(Error::NotFound("sso connection"))?;
                (existing.secret.clone(), existing.secret_hint.clone())
            }
        };
        let connection = SsoConnection {
            tenant_id: access.tenant_id,
            issuer,
            client_id,
            secret: sealed,
            secret_hint: hint,
            allowed_domains,
            default_role,
            groups_claim,
            group_roles,
            enabled,
            created_at: existing.as_ref().map_or(now, |e| e.created_at),
            updated_at: now,
        };
        let audit = access
            .audit(actions::SSO_CONNECTION_UPDATE)
            .resource("tenant", access.tenant_id)
            .details(serde_json::json!({
                "issuer": connection.issuer,
                "client_id": connection.client_id,
                "allowed_domains": connection.allowed_domains,
                "default_role": connection.default_role,
                "group_roles": connection.group_roles.len(),
                "enabled": connection.enabled,
                "secret_changed": secret.is_some(),
            }));
        let stored = self.store.put_sso_connection(&connection, secret.is_none(), &audit).await?;
        if !stored.enabled {
            self.store.revoke_sso_sessions(access.tenant_id, now).await?;
        }
        Ok(self.sso_view(&tenant, &stored))
    }

    /// Removes the tenant's identity provider (`tenant:manage`): requiring
    /// SSO is turned off with it, and provider accounts are unlinked.
    pub async fn delete_sso_connection(&self, access: &TenantAccess) -> Result<()> {
        require_owner(access)?;
        let audit = access.audit(actions::SSO_CONNECTION_DELETE).resource("tenant", access.tenant_id);
        if !self.store.delete_sso_connection(access.tenant_id, &audit).await? {
            return Err(Error::NotFound("sso connection"));
        }
        Ok(())
    }

    /// The tenant a person means by what they typed on the sign-in page:
    /// its short name, or their work e-mail address (when exactly one
    /// tenant signs in people of that domain).
    pub async fn sso_tenant_for(&self, typed: &str) -> Result<Tenant> {
        let typed = typed.trim();
        if typed.is_empty() {
            return Err(Error::invalid(
                "organisation",
                "enter your work e-mail address or your organisation's short name",
            ));
        }
        if let Some((_, domain)) = typed.rsplit_once('@') {
            let tenants = self.store.sso_tenants_for_domain(&domain.to_ascii_lowercase()).await?;
            return match tenants.as_slice() {
                [] => Err(Error::invalid(
                    "organisation",
                    format!(
                        "no organisation signs in people of {domain} with single sign-on; sign in with your password"
                    ),
                )),
                [one] => self.store.tenant(*one).await?.ok_or(Error::NotFound("tenant")),
                _ => Err(Error::invalid(
                    "organisation",
                    format!(
                        "several organisations sign in people of {domain}; enter your organisation's short name instead"
                    ),
                )),
            };
        }
        let unknown = || {
            Error::invalid(
                "organisation",
                format!("no organisation called {typed} signs in with single sign-on; check the short name"),
            )
        };
        let slug = Slug::parse(typed).map_err(|_| unknown())?;
        let tenant = self.store.tenant_by_slug(&slug).await?.ok_or_else(unknown)?;
        match self.store.sso_connection(tenant.id).await? {
            Some(c) if c.enabled => Ok(tenant),
            _ => Err(unknown()),
        }
    }

    /// Starts signing in through the tenant's provider: where to send the
    /// browser, and the state for its cookie.
    pub async fn sso_start(&self, tenant: &Tenant, return_to: Option<String>) -> Result<SsoStart> {
        let unavailable = || {
            Error::invalid(
                "organisation",
                format!(
                    "{} does not sign in with single sign-on (any more); sign in with your password",
                    tenant.name
                ),
            )
        };
        let connection =
            self.store.sso_connection(tenant.id).await?.filter(|c| c.enabled).ok_or_else(unavailable)?;
        let client = self.oidc_client(&connection, false).await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge);
        if !connection.group_roles.is_empty() && connection.groups_claim == "groups" {
            request = request.add_scope(Scope::new("groups".into()));
        }
        let (url, state, nonce) = request.url();
        let now = Timestamp::now();
        self.store
            .begin_sso_login(&PendingSsoLogin {
                state_hash: hash_token(state.secret()),
                tenant_id: tenant.id,
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to: return_to.filter(|r| !r.is_empty()),
                created_at: now,
                expires_at: now + LOGIN_TTL,
            })
            .await?;
        Ok(SsoStart { authorize_url: url.to_string(), state: state.secret().clone() })
    }

    async fn oidc_client(&self, connection: &SsoConnection, fresh: bool) -> Result<Oidc> {
        let metadata = self.sso.metadata(&connection.issuer, fresh).await.map_err(|e| {
            Error::Unavailable(format!("your organisation's identity provider did not answer: {e}"))
        })?;
        let secret = self.cloud.key().open(connection.tenant_id, &connection.secret).map_err(|e| {
            Error::Internal(anyhow::anyhow!(
                "the SSO client secret of tenant {} cannot be opened: {e}",
                connection.tenant_id
            ))
        })?;
        let redirect = RedirectUrl::new(self.sso_redirect_uri())
            .map_err(|e| Error::Internal(anyhow::anyhow!("the SSO redirect URI is not a URL: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(connection.client_id.clone()),
            Some(ClientSecret::new(secret.expose_secret().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    /// Finishes a sign-in the provider sent back: `state` from the query
    /// and from the browser's cookie, and the code (or the provider's
    /// error). Refusals are audited and say what to do.
    pub async fn sso_finish(
        &self,
        query_state: &str,
        cookie_state: Option<&str>,
        code: Option<&str>,
        provider_error: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<SsoSignedIn> {
        let again = "start again from the sign-in page";
        if cookie_state != Some(query_state) {
            return Err(Error::Unauthenticated(format!(
                "this sign-in was started in another browser or has already been used; {again}"
            )));
        }
        let login = self.store.take_sso_login(&hash_token(query_state), Timestamp::now()).await?.ok_or_else(
            || Error::Unauthenticated(format!("this sign-in has expired or was already used; {again}")),
        )?;
        let tenant = self.store.tenant(login.tenant_id).await?.ok_or(Error::NotFound("tenant"))?;
        match self.sso_verify(&tenant, &login, code, provider_error, meta).await {
            Ok(signed_in) => Ok(signed_in),
            Err(Ok(refusal)) => {
                let event = audit_event(
                    Some(tenant.id),
                    Actor::Anonymous,
                    meta,
                    actions::SSO_LOGIN_REFUSED,
                    Outcome::Denied,
                )
                .details(serde_json::json!({ "reason": refusal.reason }));
                self.store.record_audit(&event).await?;
                self.metrics.login("failure");
                Err(Error::Forbidden(refusal.message))
            }
            Err(Err(error)) => Err(error),
        }
    }

    async fn sso_verify(
        &self,
        tenant: &Tenant,
        login: &PendingSsoLogin,
        code: Option<&str>,
        provider_error: Option<&str>,
        meta: &RequestMeta,
    ) -> std::result::Result<SsoSignedIn, std::result::Result<Refusal, Error>> {
        if let Some(error) = provider_error {
            return Err(Ok(refuse(
                "provider_error",
                format!(
                    "your identity provider did not sign you in ({}); try again or ask your administrator",
                    clip(error)
                ),
            )));
        }
        let code = code.filter(|c| !c.is_empty() && c.len() <= 4096).ok_or_else(|| {
            Ok(refuse("no_code", "your identity provider sent you back without a sign-in code; try again"))
        })?;
        let connection = self
            .store
            .sso_connection(tenant.id)
            .await
            .map_err(|e| Err(e.into()))?
            .filter(|c| c.enabled)
            .ok_or_else(|| Ok(refuse("disabled", "single sign-on was turned off for this organisation")))?;
        let client = self.oidc_client(&connection, false).await.map_err(Err)?;
        let request = client.exchange_code(AuthorizationCode::new(code.to_owned())).map_err(|e| {
            Err(Error::Unavailable(format!(
                "your organisation's identity provider has no token endpoint: {e}"
            )))
        })?;
        let tokens = request
            .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier.clone()))
            .request_async(&self.sso)
            .await
            .map_err(|e| {
                Ok(refuse(
                    "token_request",
                    format!(
                        "your identity provider did not accept the sign-in code ({}); start again",
                        clip(&chain(&e))
                    ),
                ))
            })?;
        let id_token = tokens.id_token().ok_or_else(|| {
            Ok(refuse("no_id_token", "your identity provider sent no ID token; ask your administrator"))
        })?;
        let nonce = Nonce::new(login.nonce.clone());
        let claims = match id_token.claims(&client.id_token_verifier(), &nonce) {
            Ok(claims) => claims.clone(),
            Err(first) => {
                // A key the cached discovery lacks (the provider rotated
                // its keys): once more with fresh keys.
                let fresh = self.oidc_client(&connection, true).await.map_err(Err)?;
                id_token.claims(&fresh.id_token_verifier(), &nonce).cloned().map_err(|_| {
                    Ok(refuse(
                        "id_token_invalid",
                        format!("the identity provider's answer could not be trusted ({first}); start again"),
                    ))
                })?
            }
        };
        let raw = raw_claims(&id_token.to_string());
        let email = claims.email().map(|e| e.as_str().to_owned()).ok_or_else(|| {
            Ok(refuse(
                "no_email",
                "your identity provider did not share your e-mail address; ask your administrator",
            ))
        })?;
        if claims.email_verified() != Some(true) {
            return Err(Ok(refuse(
                "email_unverified",
                "your identity provider has not verified your e-mail address; verify it there first",
            )));
        }
        let email = Email::parse(&email).map_err(|_| {
            Ok(refuse("email_invalid", "your identity provider gave an e-mail address that is not valid"))
        })?;
        let domain = email.normalized().rsplit_once('@').map(|(_, d)| d.to_owned()).unwrap_or_default();
        if !connection.allowed_domains.contains(&domain) {
            return Err(Ok(refuse(
                "domain_not_allowed",
                format!(
                    "people with {domain} addresses cannot sign in to {} with single sign-on; ask its administrator",
                    tenant.name
                ),
            )));
        }
        let groups = groups_of(&raw, &connection.groups_claim);
        let mapped = connection
            .group_roles
            .iter()
            .filter(|(group, _)| groups.iter().any(|g| g == group))
            .map(|(_, role)| *role)
            .max();
        let display_name = claims
            .name()
            .and_then(|n| n.get(None))
            .and_then(|n| Name::parse(n.as_str()).ok())
            .or_else(|| Name::parse(email.as_str().split('@').next().unwrap_or("")).ok())
            .or_else(|| Name::parse("Member").ok())
            .ok_or_else(|| Err(Error::Internal(anyhow::anyhow!("no display name could be made"))))?;
        let password_hash = match self.store.user_by_email(&email).await.map_err(|e| Err(e.into()))? {
            Some(_) => String::new(),
            // An account for single sign-on only: a password nobody knows.
            None => password::hash(Password::generate()).await.map_err(|e| Err(Error::Internal(e)))?,
        };
        let now = Timestamp::now();
        let arrival = SsoArrival {
            tenant_id: tenant.id,
            issuer: connection.issuer.clone(),
            subject: claims.subject().as_str().to_owned(),
            email: email.clone(),
            display_name: display_name.clone(),
            new_user: NewUser { id: new_id(), email: email.clone(), display_name, password_hash },
            joining_role: mapped.unwrap_or(connection.default_role),
            synced_role: (!connection.group_roles.is_empty())
                .then(|| mapped.unwrap_or(connection.default_role)),
            now,
        };
        let audit =
            audit_event(Some(tenant.id), Actor::Anonymous, meta, actions::SSO_PROVISION, Outcome::Success);
        let user = match self.store.sso_arrive(&arrival, &audit).await.map_err(|e| Err(e.into()))? {
            SsoArrived::SignedIn { user, .. } => user,
            SsoArrived::EmailTaken => {
                return Err(Ok(refuse(
                    "email_taken",
                    format!(
                        "an account with {email} already exists and is not a member of {}; ask its administrator \
                         to add it under Team, then sign in with single sign-on again",
                        tenant.name
                    ),
                )));
            }
            SsoArrived::OwnerNotLinked => {
                return Err(Ok(refuse(
                    "owner_password_only",
                    format!(
                        "{email} is an owner of {}: owners sign in with their password (the sign-in page), \
                         never through the identity provider",
                        tenant.name
                    ),
                )));
            }
            SsoArrived::Disabled => {
                return Err(Ok(refuse(
                    "account_disabled",
                    "this account is disabled; ask an administrator of your organisation",
                )));
            }
        };
        let (_, token) = self
            .open_session(&user, TokenKind::Browser, meta, now, super::auth::SignedInBy::Sso(tenant.id))
            .await
            .map_err(Err)?;
        Ok(SsoSignedIn {
            token,
            ttl: self.auth.refresh_token_ttl,
            return_to: login.return_to.clone().unwrap_or_else(|| format!("/t/{}", tenant.id)),
        })
    }
}

fn require_owner(access: &TenantAccess) -> Result<()> {
    if access.role == Role::Owner {
        return Ok(());
    }
    Err(Error::Forbidden(
        "only an owner can set up single sign-on: whoever sets the provider decides who signs in as a member"
            .into(),
    ))
}

/// Checks an issuer URL as it is saved; the text is kept as typed, since
/// the provider's own name for itself must match it exactly.
fn check_issuer(text: &str, settings: &WebhookSettings) -> Result<String> {
    let url = webhooks::check_url(text, settings).map_err(|e| Error::invalid("issuer", e))?;
    if url.query().is_some() {
        return Err(Error::invalid(
            "issuer",
            "must not have a ?query: give the issuer as the provider names it",
        ));
    }
    Ok(text.trim().to_owned())
}

/// E-mail domains, lowercased and checked.
fn check_domains(domains: &[String]) -> Result<Vec<String>> {
    if domains.is_empty() {
        return Err(Error::invalid(
            "allowed_domains",
            "list at least one e-mail domain whose people may sign in, such as example.com",
        ));
    }
    if domains.len() > MAX_DOMAINS {
        return Err(Error::invalid("allowed_domains", format!("must have at most {MAX_DOMAINS} domains")));
    }
    let mut out: Vec<String> = Vec::with_capacity(domains.len());
    for (i, domain) in domains.iter().enumerate() {
        let domain = domain.trim().trim_start_matches('@').to_ascii_lowercase();
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if domain.len() > 253 || !labels_ok {
            return Err(Error::invalid(
                format!("allowed_domains[{i}]"),
                "must be a domain name such as example.com (no @, no spaces)",
            ));
        }
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}

/// A provider's words, kept short for a message.
fn clip(text: &str) -> String {
    let clean: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    clean
}

/// The claims of a verified ID token, as JSON (for claims the protocol
/// library does not model, such as groups).
fn raw_claims(jwt: &str) -> serde_json::Value {
    jwt.split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// The person's groups from `claim`: a list of strings, or one string.
fn groups_of(claims: &serde_json::Value, claim: &str) -> Vec<String> {
    match &claims[claim] {
        serde_json::Value::Array(items) => {
            items.iter().filter_map(|g| g.as_str().map(str::to_owned)).take(1000).collect()
        }
        serde_json::Value::String(one) => vec![one.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lowercased_checked_and_deduplicated() {
        let ok =
            check_domains(&["Example.COM".into(), "@example.com".into(), "sub.example.org".into()]).unwrap();
        assert_eq!(ok, ["example.com", "sub.example.org"]);
        for bad in ["", "localhost", "a@b.com", "exa mple.com", "-x.com", "x..com"] {
            assert!(check_domains(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(check_domains(&[]).is_err());
    }

    #[test]
    fn groups_are_read_from_a_list_or_a_string() {
        let claims = serde_json::json!({ "groups": ["a", "b", 3], "team": "c" });
        assert_eq!(groups_of(&claims, "groups"), ["a", "b"]);
        assert_eq!(groups_of(&claims, "team"), ["c"]);
        assert!(groups_of(&claims, "missing").is_empty());
    }

    #[test]
    fn raw_claims_decode_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"sub":"x","groups":["g"]}"#);
        assert_eq!(raw_claims(&format!("h.{payload}.s"))["groups"][0], "g");
        assert_eq!(raw_claims("garbage"), serde_json::Value::Null);
    }
}
