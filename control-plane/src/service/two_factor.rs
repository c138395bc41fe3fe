//! A person's own sign-in security: two-factor sign-in with TOTP (RFC 6238,
//! any authenticator app) and single-use recovery codes, the second step of
//! signing in, a tenant's requirement of it, changing one's password, and
//! one's sessions, listed and ended.
//!
//! The TOTP secret is sealed with the data key (the user id as associated
//! data) and shown once, while it is being set up; a code is accepted once
//! (its time step is recorded, so a code seen over a shoulder is spent), and
//! a wrong code counts as a failed sign-in in the login throttle, so the six
//! digits cannot be guessed faster than a password. Recovery codes are 80
//! random bits each, stored as SHA-256 only, shown once, good once.
//! API keys are not affected: they are not a sign-in.

use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, Totp};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, Caller, Principal, RequestMeta, TenantAccess, actions, audit_event};
use crate::auth::password;
use crate::domain::{Password, Permission, Role, Timestamp, User};
use crate::error::{Error, Result};
use crate::store::{Actor, Outcome, SignInRules, StoreError, TwoFactorRecord};

/// How many recovery codes a person gets at a time.
pub const RECOVERY_CODES: usize = 10;
/// How long the browser's second sign-in step waits for its code.
pub const CHALLENGE_TTL: time::Duration = time::Duration::minutes(5);
const ISSUER: &str = "Marketer";

/// Whether the person signs in with a second factor.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TwoFactorStatus {
    pub enabled: bool,
    /// A secret was issued and no code has confirmed it yet.
    pub setting_up: bool,
    /// Unused recovery codes (0 when it is off).
    pub recovery_codes_left: i64,
}

/// The current password, asked again before changing how one signs in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmPassword {
    #[schema(format = Password)]
    pub password: String,
}

/// A new TOTP secret, shown this once: put it in an authenticator app (the
/// URI is what a QR code carries), then confirm with a code it shows.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorSetup {
    /// The secret in base32, for typing into the app.
    pub secret: String,
    /// `otpauth://totp/...`: SHA-1, 6 digits, 30 seconds.
    pub otpauth_uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TwoFactorCode {
    /// The 6 digits the authenticator app shows now.
    pub code: String,
}

/// Recovery codes, shown this once; each signs in once in place of a code.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(format = Password)]
    pub current_password: String,
    /// 12 to 1,024 characters.
    #[schema(value_type = String, format = Password)]
    pub new_password: Password,
}

/// One of the person's live sessions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    pub id: Uuid,
    pub created_at: Timestamp,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// When it ends unless it is used again.
    pub expires_at: Option<Timestamp>,
    /// The session this request comes from.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub items: Vec<SessionView>,
}

/// A tenant's sign-in rules.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TenantSecurity {
    /// Members must sign in with a second factor to open the tenant (API
    /// keys are unaffected). Only someone who uses it may turn it on.
    pub require_two_factor: bool,
    /// Members must sign in through the tenant's identity provider; owners
    /// may still use their password (break-glass). Needs an enabled single
    /// sign-on connection.
    pub require_sso: bool,
}

/// A change of the tenant's sign-in rules.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantSecurityUpdate {
    pub require_two_factor: bool,
    /// Omitted: unchanged (so a client that knows only two-factor sign-in
    /// does not turn it off).
    #[serde(default)]
    pub require_sso: Option<bool>,
}

/// What a code a person typed looks like.
enum Presented {
    Totp(String),
    Recovery(String),
    Malformed,
}

fn classify(code: &str) -> Presented {
    let compact: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        Presented::Totp(compact)
    } else if compact.len() == 16 && compact.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Presented::Recovery(compact.to_ascii_lowercase())
    } else {
        Presented::Malformed
    }
}

/// A new recovery code: 16 characters of base32 (80 bits), shown in groups
/// of four.
fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let bytes: [u8; 16] = rand::random();
    let chars: Vec<char> = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
    chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

fn recovery_hash(normalized: &str) -> Vec<u8> {
    crate::auth::tokens::hash_token(&format!("recovery:{normalized}"))
}

fn new_recovery_codes() -> (Vec<String>, Vec<Vec<u8>>) {
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
    let hashes = codes.iter().map(|c| recovery_hash(&c.replace('-', ""))).collect();
    (codes, hashes)
}

fn totp_for(user: &User, secret: Vec<u8>) -> Result<Totp> {
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(user.email.to_string())
        .build()
        .map_err(|e| Error::internal(anyhow::anyhow!("building a TOTP: {e}")))
}

fn unix_now() -> u64 {
    u64::try_from(Timestamp::now().unix_seconds()).unwrap_or(0)
}

const WRONG_CODE: &str = "the two-factor code is wrong or has expired; type the code your authenticator app shows now, or a recovery code";

impl App {
    /// Whether the signed-in person uses two-factor sign-in.
    pub async fn two_factor_status(&self, caller: &Caller) -> Result<TwoFactorStatus> {
        let user = caller.user()?;
        let record = self.store.two_factor(user.id).await?;
        let enabled = record.as_ref().is_some_and(|r| r.confirmed_at.is_some());
        Ok(TwoFactorStatus {
            enabled,
            setting_up: record.is_some() && !enabled,
            recovery_codes_left: if enabled { self.store.recovery_codes_left(user.id).await? } else { 0 },
        })
    }

    /// Issues a new secret to set up (the password again first). Setting
    /// up again before confirming replaces the secret.
    pub async fn begin_two_factor(&self, caller: &Caller, req: ConfirmPassword) -> Result<TwoFactorSetup> {
        let user = self.reauthenticate(caller, &req.password, "password").await?;
        let secret: [u8; 20] = rand::random();
        let totp = totp_for(&user, secret.to_vec())?;
        let sealed = self.cloud.key().seal(user.id, &totp.secret().to_base32()).map_err(Error::Internal)?;
        self.store.begin_two_factor(user.id, &sealed, Timestamp::now()).await?;
        let otpauth_uri = totp.to_url().map_err(|e| Error::internal(anyhow::anyhow!("otpauth URI: {e}")))?;
        Ok(TwoFactorSetup { secret: totp.secret().to_base32(), otpauth_uri })
    }

    /// The secret being set up (not yet confirmed), to show its owner
    /// again until they confirm it; `None` otherwise.
    pub async fn pending_two_factor_setup(&self, caller: &Caller) -> Result<Option<TwoFactorSetup>> {
        let user = caller.user()?;
        let Some(record) = self.store.two_factor(user.id).await?.filter(|r| r.confirmed_at.is_none()) else {
            return Ok(None);
        };
        let totp = self.open_totp(user, &record.secret)?;
        let otpauth_uri = totp.to_url().map_err(|e| Error::internal(anyhow::anyhow!("otpauth URI: {e}")))?;
        Ok(Some(TwoFactorSetup { secret: totp.secret().to_base32(), otpauth_uri }))
    }

    /// Turns two-factor sign-in on with a first code from the app; returns
    /// the recovery codes, shown this once.
    pub async fn confirm_two_factor(&self, caller: &Caller, req: TwoFactorCode) -> Result<RecoveryCodes> {
        let user = caller.user()?.clone();
        let record = self.store.two_factor(user.id).await?;
        let Some(record) = record.filter(|r| r.confirmed_at.is_none()) else {
            return Err(Error::Conflict {
                code: "two_factor_not_setting_up",
                message: "there is nothing to confirm: start setting up two-factor sign-in first".into(),
            });
        };
        let totp = self.open_totp(&user, &record.secret)?;
        let Presented::Totp(digits) = classify(&req.code) else {
            return Err(Error::invalid("code", "must be the 6 digits your authenticator app shows"));
        };
        let step = totp.check(&digits, unix_now()).ok_or_else(|| {
            Error::invalid(
                "code",
                "is not the code for this secret now; check the app's clock and that you added this secret",
            )
        })?;
        let (codes, hashes) = new_recovery_codes();
        let audit = caller.audit(actions::TWO_FACTOR_ENABLE).resource("user", user.id);
        let step = i64::try_from(step).map_err(|e| Error::internal(anyhow::anyhow!("{e}")))?;
        if !self.store.confirm_two_factor(user.id, step, &hashes, &audit).await? {
            return Err(Error::Conflict {
                code: "two_factor_enabled",
                message: "two-factor sign-in is already on".into(),
            });
        }
        Ok(RecoveryCodes { recovery_codes: codes })
    }

    /// Turns two-factor sign-in off (the password again first).
    pub async fn disable_two_factor(&self, caller: &Caller, req: ConfirmPassword) -> Result<()> {
        let user = self.reauthenticate(caller, &req.password, "password").await?;
        let audit = caller.audit(actions::TWO_FACTOR_DISABLE).resource("user", user.id);
        if !self.store.delete_two_factor(user.id, &audit).await? {
            return Err(Error::Conflict {
                code: "two_factor_off",
                message: "two-factor sign-in is not on".into(),
            });
        }
        Ok(())
    }

    /// New recovery codes in place of every old one (the password again
    /// first).
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        req: ConfirmPassword,
    ) -> Result<RecoveryCodes> {
        let user = self.reauthenticate(caller, &req.password, "password").await?;
        let (codes, hashes) = new_recovery_codes();
        let audit = caller.audit(actions::RECOVERY_CODES_REGENERATE).resource("user", user.id);
        match self.store.replace_recovery_codes(user.id, &hashes, &audit).await {
            Err(StoreError::NotFound) => Err(Error::Conflict {
                code: "two_factor_off",
                message: "two-factor sign-in is not on, so there are no recovery codes".into(),
            }),
            other => {
                other?;
                Ok(RecoveryCodes { recovery_codes: codes })
            }
        }
    }

    /// The second factor `user` signs in with, if two-factor sign-in is on.
    pub(crate) async fn confirmed_two_factor(&self, user: &User) -> Result<Option<TwoFactorRecord>> {
        Ok(self.store.two_factor(user.id).await?.filter(|r| r.confirmed_at.is_some()))
    }

    /// Checks a sign-in's second factor against `record` (the user's, from
    /// [`App::confirmed_two_factor`]): a current TOTP code not used
    /// before, or an unused recovery code (spent by this). Throttled and
    /// audited like a password; returns which kind it was.
    pub(crate) async fn check_second_factor(
        &self,
        user: &User,
        record: &TwoFactorRecord,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<&'static str> {
        let account = user.email.normalized();
        if let Some(retry_after) = self.throttle.check(&account, meta.client_ip, Timestamp::now()).await? {
            self.metrics.login("throttled");
            return Err(Error::RateLimited { retry_after });
        }
        let outcome = match classify(code) {
            Presented::Totp(digits) => {
                let totp = self.open_totp(user, &record.secret)?;
                match totp.check(&digits, unix_now()).and_then(|s| i64::try_from(s).ok()) {
                    Some(step) if self.store.spend_totp_step(user.id, step).await? => Ok("totp"),
                    Some(_) => Err("reused_code"),
                    None => Err("bad_second_factor"),
                }
            }
            Presented::Recovery(normalized) => {
                if self
                    .store
                    .spend_recovery_code(user.id, &recovery_hash(&normalized), Timestamp::now())
                    .await?
                {
                    Ok("recovery_code")
                } else {
                    Err("bad_second_factor")
                }
            }
            Presented::Malformed => Err("bad_second_factor"),
        };
        match outcome {
            Ok(kind) => Ok(kind),
            Err(reason) => {
                if let Err(e) = self.throttle.record_failure(&account, meta.client_ip, Timestamp::now()).await
                {
                    tracing::error!(error = %e, "could not count a failed second factor");
                }
                let actor = Actor::User { id: user.id, email: user.email.to_string() };
                let event = audit_event(None, actor, meta, actions::LOGIN, Outcome::Denied)
                    .details(serde_json::json!({ "reason": reason }));
                self.store.record_audit(&event).await?;
                self.metrics.login("failure");
                Err(Error::Unauthenticated(if reason == "reused_code" {
                    "that code was already used; wait for the next one your authenticator app shows".into()
                } else {
                    WRONG_CODE.into()
                }))
            }
        }
    }

    /// The browser's second sign-in step: a challenge from the first step
    /// names the person; with a good code, a session.
    pub(crate) fn second_factor_challenge(&self, user_id: Uuid) -> String {
        self.tokens.second_factor_challenge(user_id, Timestamp::now() + CHALLENGE_TTL)
    }

    pub(crate) fn challenged_user(&self, challenge: &str) -> Option<Uuid> {
        self.tokens.check_second_factor_challenge(challenge, Timestamp::now())
    }

    /// The tenant's sign-in rules.
    pub async fn tenant_security(&self, access: &TenantAccess) -> Result<TenantSecurity> {
        let rules = self.store.tenant_sign_in_rules(access.tenant_id).await?;
        Ok(TenantSecurity { require_two_factor: rules.require_two_factor, require_sso: rules.require_sso })
    }

    /// Changes the tenant's sign-in rules (`tenant:manage`). Requiring two
    /// factors is refused to someone who does not use it themselves, and
    /// requiring single sign-on to a tenant without an enabled provider, so
    /// nobody locks themselves out.
    pub async fn set_tenant_security(
        &self,
        access: &TenantAccess,
        update: TenantSecurityUpdate,
    ) -> Result<TenantSecurity> {
        access.require(Permission::TenantManage)?;
        let current = self.store.tenant_sign_in_rules(access.tenant_id).await?;
        let req = TenantSecurity {
            require_two_factor: update.require_two_factor,
            require_sso: update.require_sso.unwrap_or(current.require_sso),
        };
        if req.require_two_factor && !current.require_two_factor {
            let user = access.caller.user()?;
            if self.confirmed_two_factor(user).await?.is_none() {
                return Err(Error::Conflict {
                    code: "two_factor_off",
                    message: "turn on two-factor sign-in for your own account first (Account security), \
                              so requiring it does not lock you out"
                        .into(),
                });
            }
        }
        if req.require_sso && !current.require_sso {
            let enabled = self.store.sso_connection(access.tenant_id).await?.is_some_and(|c| c.enabled);
            if !enabled {
                return Err(Error::Conflict {
                    code: "sso_not_configured",
                    message:
                        "set up and enable single sign-on first (Settings → Single sign-on), then require it"
                            .into(),
                });
            }
        }
        let audit = access.audit(actions::TENANT_SECURITY_UPDATE).resource("tenant", access.tenant_id).details(
            serde_json::json!({ "require_two_factor": req.require_two_factor, "require_sso": req.require_sso }),
        );
        let rules = SignInRules { require_two_factor: req.require_two_factor, require_sso: req.require_sso };
        self.store.set_tenant_sign_in_rules(access.tenant_id, rules, &audit).await?;
        Ok(req)
    }

    /// Keeps a person out of a tenant whose sign-in rules their session does
    /// not meet: a session opened by another tenant's single sign-on (it
    /// reaches only that one), a password session where single sign-on is
    /// required (owners excepted: their break-glass), or no second factor
    /// where one is required (a session of the tenant's own single sign-on
    /// meets that: the provider is responsible for factors).
    pub(crate) async fn check_sign_in_rules(
        &self,
        tenant_id: Uuid,
        user: &User,
        session_id: Uuid,
        role: Role,
    ) -> Result<()> {
        let gate = self.store.sign_in_gate(tenant_id, user.id, session_id).await?;
        let by_sso = gate.sso_tenant_id == Some(tenant_id);
        if gate.sso_tenant_id.is_some() && !by_sso {
            return Err(Error::NotFound("tenant"));
        }
        if gate.rules.require_sso && !by_sso && role != Role::Owner {
            return Err(Error::SsoRequired {
                tenant_id,
                message:
                    "this organisation signs in with single sign-on: sign in through your organisation's \
                          identity provider (the sign-in page's Single sign-on link)"
                        .into(),
            });
        }
        if gate.rules.require_two_factor && !gate.has_two_factor && !by_sso {
            return Err(Error::TwoFactorSetupRequired(
                "this organisation requires two-factor sign-in: turn it on under Account security \
                 (/account, or POST /api/v1/me/two-factor), then come back"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The person's live sessions, newest first.
    pub async fn my_sessions(&self, caller: &Caller) -> Result<SessionList> {
        let user = caller.user()?;
        let current = match &caller.principal {
            Principal::User { session_id, .. } => Some(*session_id),
            _ => None,
        };
        let items = self
            .store
            .user_sessions(user.id, Timestamp::now())
            .await?
            .into_iter()
            .map(|s| SessionView {
                current: Some(s.id) == current,
                id: s.id,
                created_at: s.created_at,
                client_ip: s.client_ip,
                user_agent: s.user_agent,
                expires_at: s.expires_at,
            })
            .collect();
        Ok(SessionList { items })
    }

    /// Ends one of the person's sessions (another person's is a 404).
    pub async fn revoke_my_session(&self, caller: &Caller, session_id: Uuid) -> Result<()> {
        let user = caller.user()?;
        let audit = caller.audit(actions::SESSION_REVOKE).resource("session", session_id);
        if !self.store.revoke_user_session(user.id, session_id, &audit).await? {
            return Err(Error::NotFound("session"));
        }
        Ok(())
    }

    /// Changes the person's password; every other session ends.
    pub async fn change_password(&self, caller: &Caller, req: ChangePassword) -> Result<()> {
        let user = self.reauthenticate(caller, &req.current_password, "current_password").await?;
        let keep = match &caller.principal {
            Principal::User { session_id, .. } => Some(*session_id),
            _ => None,
        };
        let hash = password::hash(req.new_password).await.map_err(Error::Internal)?;
        let audit = caller.audit(actions::PASSWORD_CHANGE).resource("user", user.id);
        self.store.change_password(user.id, &hash, keep, &audit).await?;
        Ok(())
    }

    /// The signed-in person, if `password` is theirs (throttled like
    /// signing in; a wrong one names the field).
    pub(crate) async fn reauthenticate(
        &self,
        caller: &Caller,
        password_text: &str,
        field: &str,
    ) -> Result<User> {
        let user = caller.user()?.clone();
        if password_text.len() > 1024 {
            return Err(Error::invalid(field, "must be at most 1024 bytes"));
        }
        let account = user.email.normalized();
        if let Some(retry_after) =
            self.throttle.check(&account, caller.meta.client_ip, Timestamp::now()).await?
        {
            return Err(Error::RateLimited { retry_after });
        }
        let phc = self.store.credentials(&user.email).await?.map(|c| c.password_hash);
        let matches =
            password::verify(password_text.to_owned(), phc.unwrap_or_else(password::decoy_hash)).await;
        if !matches {
            if let Err(e) =
                self.throttle.record_failure(&account, caller.meta.client_ip, Timestamp::now()).await
            {
                tracing::error!(error = %e, "could not count a wrong password");
            }
            return Err(Error::invalid(field, "is not your current password"));
        }
        Ok(user)
    }

    fn open_totp(&self, user: &User, sealed: &crate::cloud::crypto::Sealed) -> Result<Totp> {
        use secrecy::ExposeSecret;
        let secret =
            self.cloud.key().open(user.id, sealed).map_err(|e| Error::internal(anyhow::anyhow!(e)))?;
        let bytes = totp_rs::Secret::try_from_base32(secret.expose_secret())
            .map_err(|e| Error::internal(anyhow::anyhow!("stored TOTP secret: {e:?}")))?;
        totp_for(user, bytes.as_ref().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_told_apart_by_their_shape() {
        assert!(matches!(classify("123456"), Presented::Totp(c) if c == "123456"));
        assert!(matches!(classify(" 123 456 "), Presented::Totp(c) if c == "123456"));
        assert!(matches!(classify("abcd-EFGH-2345-6712"), Presented::Recovery(c) if c == "abcdefgh23456712"));
        for bad in ["", "12345", "1234567", "12345a", "abcd-efgh", &"9".repeat(10_000)] {
            assert!(matches!(classify(bad), Presented::Malformed), "{bad}");
        }
    }

    #[test]
    fn recovery_codes_are_distinct_and_match_their_hashes() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for (code, hash) in codes.iter().zip(&hashes) {
            assert_eq!(code.len(), 19, "{code}");
            let Presented::Recovery(normalized) = classify(&code.to_uppercase()) else { panic!("{code}") };
            assert_eq!(&recovery_hash(&normalized), hash);
        }
    }
}
