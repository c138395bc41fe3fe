//! Signing in and out, token refresh, and turning a bearer token into a
//! [`Caller`].

use std::time::Instant;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{App, Caller, Principal, RequestMeta, actions, audit_event};
use crate::auth::password;
use crate::auth::tokens::{OpaqueToken, TokenKind, hash_token, looks_like};
use crate::domain::{Email, Timestamp, new_id};
use crate::error::{Error, Result};
use crate::store::{Actor, NewRefreshToken, NewSession, Outcome, RefreshOutcome};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: Email,
    /// The account's password.
    #[schema(format = Password)]
    pub password: String,
    /// For an account with two-factor sign-in: the 6-digit code its
    /// authenticator app shows now, or one of its recovery codes. Without
    /// it, such an account's sign-in answers 401 `two_factor_required`.
    #[serde(default)]
    pub code: Option<String>,
}

/// How a browser's sign-in went: a session, or a second step to take.
#[derive(Debug)]
pub enum BrowserSignIn {
    Session {
        token: String,
        ttl: time::Duration,
    },
    /// The password was right; the account needs a code. The challenge
    /// names the person for [`App::browser_second_factor`] (for a few
    /// minutes).
    SecondFactor {
        challenge: String,
    },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A new pair of credentials. The refresh token is single-use: each refresh
/// returns a new one and spends the old.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// Longest password the server will hash. Argon2 accepts more, but hashing
/// megabytes on request is a denial-of-service lever.
const MAX_PASSWORD_BYTES: usize = 1024;

/// How a session's person proved who they are (its sign-in's audit
/// details; an SSO session is confined to its tenant).
#[derive(Debug, Clone, Copy)]
pub(super) enum SignedInBy {
    Password,
    /// The password and this second factor (`totp` or `recovery_code`).
    SecondFactor(&'static str),
    /// The tenant's identity provider.
    Sso(uuid::Uuid),
}

impl From<Option<&'static str>> for SignedInBy {
    fn from(second_factor: Option<&'static str>) -> Self {
        second_factor.map_or(Self::Password, Self::SecondFactor)
    }
}

const BAD_CREDENTIALS: &str = "invalid e-mail address or password";

impl App {
    /// Signs in for the API: an access token and a single-use refresh token.
    pub async fn login(&self, req: LoginRequest, meta: &RequestMeta) -> Result<TokenPair> {
        let code = req.code.clone();
        let user = self.check_password(req, meta).await?;
        let second = match self.confirmed_two_factor(&user).await? {
            Some(record) => {
                let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
                    return Err(Error::SecondFactorRequired(
                        "this account signs in with two factors: send the 6-digit code its authenticator app \
                         shows now (or a recovery code) as code"
                            .into(),
                    ));
                };
                Some(self.check_second_factor(&user, &record, &code, meta).await?)
            }
            None => None,
        };
        self.signed_in(&user).await;
        let now = Timestamp::now();
        let (session_id, refresh) =
            self.open_session(&user, TokenKind::Refresh, meta, now, SignedInBy::from(second)).await?;
        self.token_pair(user.id, session_id, refresh, now)
    }

    /// Signs in for the web UI: the session token for its cookie, and how
    /// long it lasts. The same checks, throttling and audit as [`App::login`].
    /// An account with two-factor sign-in gets a challenge for the second
    /// step instead of a session.
    pub async fn browser_login(&self, req: LoginRequest, meta: &RequestMeta) -> Result<BrowserSignIn> {
        let user = self.check_password(req, meta).await?;
        if self.confirmed_two_factor(&user).await?.is_some() {
            return Ok(BrowserSignIn::SecondFactor { challenge: self.second_factor_challenge(user.id) });
        }
        self.signed_in(&user).await;
        let (_, token) = self
            .open_session(&user, TokenKind::Browser, meta, Timestamp::now(), SignedInBy::Password)
            .await?;
        Ok(BrowserSignIn::Session { token, ttl: self.auth.refresh_token_ttl })
    }

    /// The browser's second step: the challenge from [`App::browser_login`]
    /// and a code; a session token and how long it lasts.
    pub async fn browser_second_factor(
        &self,
        challenge: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<(String, time::Duration)> {
        let expired =
            || Error::Unauthenticated("the sign-in took too long; enter your password again".into());
        let user_id = self.challenged_user(challenge).ok_or_else(expired)?;
        let user = self.store.user(user_id).await?.ok_or_else(expired)?;
        if user.disabled {
            return Err(Error::Forbidden(
                "this account is disabled; ask an administrator of your organisation".into(),
            ));
        }
        // Turned off since the first step: the password was the sign-in.
        let second = match self.confirmed_two_factor(&user).await? {
            Some(record) => Some(self.check_second_factor(&user, &record, code, meta).await?),
            None => None,
        };
        self.signed_in(&user).await;
        let (_, token) = self
            .open_session(&user, TokenKind::Browser, meta, Timestamp::now(), SignedInBy::from(second))
            .await?;
        Ok((token, self.auth.refresh_token_ttl))
    }

    /// Clears the account's failed sign-ins once every factor passed.
    async fn signed_in(&self, user: &crate::domain::User) {
        if let Err(e) = self.throttle.record_success(&user.email.normalized()).await {
            tracing::warn!(error = %e, "could not clear the login throttle of an account");
        }
    }

    /// The caller a web UI session cookie stands for.
    pub async fn browser_caller(&self, token: &str, meta: RequestMeta) -> Result<Caller> {
        let ended = || Error::Unauthenticated("your session has ended; sign in again".into());
        if !looks_like(TokenKind::Browser, token) {
            return Err(ended());
        }
        let (user, session_id) =
            self.store.browser_session(&hash_token(token), Timestamp::now()).await?.ok_or_else(ended)?;
        Ok(Caller { principal: Principal::User { user, session_id }, meta })
    }

    /// The CSRF token of a web UI session, and the check of one.
    pub fn csrf_token(&self, session_id: uuid::Uuid) -> String {
        self.tokens.csrf_token(session_id)
    }

    pub fn check_csrf(&self, session_id: uuid::Uuid, presented: &str) -> bool {
        self.tokens.check_csrf(session_id, presented)
    }

    /// Ends a web UI session (idempotent).
    pub async fn browser_logout(&self, token: &str, meta: &RequestMeta) -> Result<()> {
        if !looks_like(TokenKind::Browser, token) {
            return Ok(());
        }
        let event = audit_event(None, Actor::Anonymous, meta, actions::LOGOUT, Outcome::Success);
        self.store.revoke_session_by_token(&hash_token(token), &event).await?;
        Ok(())
    }

    /// The account the e-mail and password belong to, or why not (audited,
    /// throttled, same answer for an unknown address and a wrong password).
    async fn check_password(&self, req: LoginRequest, meta: &RequestMeta) -> Result<crate::domain::User> {
        if req.password.len() > MAX_PASSWORD_BYTES {
            return Err(Error::invalid("password", "must be at most 1024 bytes"));
        }
        let account = req.email.normalized();
        if let Some(retry_after) = self.throttle.check(&account, meta.client_ip, Timestamp::now()).await? {
            self.metrics.login("throttled");
            return Err(Error::RateLimited { retry_after });
        }

        let credentials = self.store.credentials(&req.email).await?;
        let phc = credentials.as_ref().map_or_else(password::decoy_hash, |c| c.password_hash.clone());
        let matches = password::verify(req.password, phc).await;

        let user = match credentials {
            Some(c) if matches => c.user,
            other => {
                if let Err(e) = self.throttle.record_failure(&account, meta.client_ip, Timestamp::now()).await
                {
                    tracing::error!(error = %e, "could not count a failed login");
                }
                let actor = other.map_or(Actor::Anonymous, |c| Actor::User {
                    id: c.user.id,
                    email: c.user.email.to_string(),
                });
                let event = audit_event(None, actor, meta, actions::LOGIN, Outcome::Denied)
                    .details(serde_json::json!({ "email": account, "reason": "bad_credentials" }));
                self.store.record_audit(&event).await?;
                self.metrics.login("failure");
                return Err(Error::Unauthenticated(BAD_CREDENTIALS.into()));
            }
        };
        if user.disabled {
            let actor = Actor::User { id: user.id, email: user.email.to_string() };
            let event = audit_event(None, actor, meta, actions::LOGIN, Outcome::Denied)
                .details(serde_json::json!({ "reason": "account_disabled" }));
            self.store.record_audit(&event).await?;
            self.metrics.login("failure");
            return Err(Error::Forbidden(
                "this account is disabled; ask an administrator of your organisation".into(),
            ));
        }
        Ok(user)
    }

    /// A new session with its first token of `kind`; returns the session and
    /// the token's text (handed out once).
    pub(super) async fn open_session(
        &self,
        user: &crate::domain::User,
        kind: TokenKind,
        meta: &RequestMeta,
        now: Timestamp,
        by: SignedInBy,
    ) -> Result<(uuid::Uuid, String)> {
        let actor = Actor::User { id: user.id, email: user.email.to_string() };
        let session = NewSession {
            id: new_id(),
            user_id: user.id,
            client_ip: meta.client_ip.map(|ip| ip.to_string()),
            user_agent: meta.user_agent.clone(),
            sso_tenant_id: match by {
                SignedInBy::Sso(tenant_id) => Some(tenant_id),
                _ => None,
            },
        };
        let token = OpaqueToken::generate(kind);
        let record = NewRefreshToken {
            id: new_id(),
            token_hash: token.hash.clone(),
            expires_at: now + self.auth.refresh_token_ttl,
        };
        let mut event =
            audit_event(None, actor, meta, actions::LOGIN, Outcome::Success).resource("session", session.id);
        match by {
            SignedInBy::Password => {}
            SignedInBy::SecondFactor(kind) => {
                event = event.details(serde_json::json!({ "second_factor": kind }));
            }
            SignedInBy::Sso(tenant_id) => {
                event = event.details(serde_json::json!({ "method": "sso", "tenant_id": tenant_id }));
            }
        }
        self.store.create_session(&session, &record, &event).await?;
        self.metrics.login("success");
        Ok((session.id, token.text))
    }

    pub async fn refresh(&self, req: RefreshRequest, meta: &RequestMeta) -> Result<TokenPair> {
        if !looks_like(TokenKind::Refresh, &req.refresh_token) {
            return Err(Error::Unauthenticated("refresh_token is not a valid refresh token".into()));
        }
        let now = Timestamp::now();
        let replacement = OpaqueToken::generate(TokenKind::Refresh);
        let record = NewRefreshToken {
            id: new_id(),
            token_hash: replacement.hash.clone(),
            expires_at: now + self.auth.refresh_token_ttl,
        };
        let outcome = self.store.rotate_refresh_token(&hash_token(&req.refresh_token), &record, now).await?;
        match outcome {
            RefreshOutcome::Rotated { user_id, session_id } => {
                self.token_pair(user_id, session_id, replacement.text, now)
            }
            RefreshOutcome::Reused { user_id, session_id } => {
                let actor = match self.store.user(user_id).await? {
                    Some(u) => Actor::User { id: u.id, email: u.email.to_string() },
                    None => Actor::Anonymous,
                };
                let event = audit_event(None, actor, meta, actions::REFRESH_REUSE, Outcome::Denied)
                    .resource("session", session_id);
                self.store.record_audit(&event).await?;
                tracing::warn!(%user_id, %session_id, "refresh token reused; session revoked");
                Err(Error::Unauthenticated(
                    "this refresh token was already used, so the session has been ended for safety; sign in again"
                        .into(),
                ))
            }
            RefreshOutcome::Invalid => Err(Error::Unauthenticated(
                "the refresh token is unknown, expired or revoked; sign in again".into(),
            )),
        }
    }

    /// Ends the session the refresh token belongs to. Unknown tokens are
    /// accepted silently, so logout is idempotent.
    pub async fn logout(&self, req: RefreshRequest, meta: &RequestMeta) -> Result<()> {
        if !looks_like(TokenKind::Refresh, &req.refresh_token) {
            return Ok(());
        }
        let event = audit_event(None, Actor::Anonymous, meta, actions::LOGOUT, Outcome::Success);
        self.store.revoke_session_by_token(&hash_token(&req.refresh_token), &event).await?;
        Ok(())
    }

    fn token_pair(
        &self,
        user_id: uuid::Uuid,
        session_id: uuid::Uuid,
        refresh: String,
        now: Timestamp,
    ) -> Result<TokenPair> {
        Ok(TokenPair {
            access_token: self.tokens.issue(user_id, session_id, now).map_err(Error::Internal)?,
            refresh_token: refresh,
            token_type: "Bearer",
            expires_in: self.tokens.ttl().whole_seconds(),
        })
    }

    /// Resolves `Authorization: Bearer <token>`: an API key (by its prefix) or
    /// an access token whose session is still live.
    pub async fn authenticate(&self, token: &str, meta: RequestMeta) -> Result<Caller> {
        if token.starts_with(TokenKind::ApiKey.prefix()) {
            return self.authenticate_api_key(token, meta).await;
        }
        let claims = self.tokens.verify(token).ok_or_else(|| {
            Error::Unauthenticated(
                "the access token is invalid or expired; refresh it or sign in again".into(),
            )
        })?;
        let user = self.store.session_user(claims.sid, claims.sub).await?.ok_or_else(|| {
            Error::Unauthenticated("the session has ended or the account is disabled; sign in again".into())
        })?;
        Ok(Caller { principal: Principal::User { user, session_id: claims.sid }, meta })
    }

    async fn authenticate_api_key(&self, token: &str, meta: RequestMeta) -> Result<Caller> {
        let invalid = || Error::Unauthenticated("the API key is invalid, expired or revoked".into());
        if !looks_like(TokenKind::ApiKey, token) {
            return Err(invalid());
        }
        let now = Timestamp::now();
        let grant = self.store.api_key_grant(&hash_token(token), now).await?.ok_or_else(invalid)?;
        if !grant.creator_active {
            return Err(Error::Unauthenticated(
                "the person who created this API key no longer has access to its tenant; create a new key"
                    .into(),
            ));
        }
        let effective_role = match grant.creator_role {
            Some(creator) => grant.key.role.min(creator),
            None => grant.key.role,
        };
        if self.should_touch_api_key(grant.key.id, Instant::now()) {
            // Losing a last-used update is harmless; failing the request for it is not.
            if let Err(e) = self.store.touch_api_key(grant.key.id, now).await {
                tracing::warn!(error = %e, key_id = %grant.key.id, "could not record API key use");
            }
        }
        Ok(Caller { principal: Principal::ApiKey { key: grant.key, effective_role }, meta })
    }
}
