//! A person's notifications and e-mail preferences, the links sent by
//! e-mail (password reset, address verification, digest unsubscription),
//! and an organisation's outbox for its admins. Delivery is
//! `crate::notify`'s; what each feature notifies is written by that
//! feature, in the transaction of its change.

use serde::{Deserialize, Serialize};
use strum::IntoEnumIterator;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, Caller, RequestMeta, TenantAccess, actions, audit_event};
use crate::auth::tokens::{OpaqueToken, TokenKind, hash_token, looks_like};
use crate::domain::{Email, Password, Permission, Timestamp, new_id};
use crate::error::{Error, Result};
use crate::store::{
    Actor, BounceRecorded, Delivery, MailPurpose, MailSummary, NewMail, NewUserToken, NoticeKind,
    Notification, Outcome, Page, PageRequest, UserTokenPurpose,
};

/// How long a password-reset link works.
const RESET_VALIDITY: time::Duration = time::Duration::hours(1);
/// How long a verification link works.
const VERIFY_VALIDITY: time::Duration = time::Duration::hours(48);
/// At most this many links of one kind per account per hour, so nobody can
/// flood a mailbox through the forms.
const LINKS_PER_HOUR: i64 = 3;

/// The answer to a reset request, the same whether or not the address has
/// an account.
pub const RESET_REQUESTED: &str =
    "If an account uses this address, a link to choose a new password is on its way. It works for one hour.";

/// What the bounce intake did with one recipient of a delivery status
/// notification.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BounceOutcome {
    pub recipient: String,
    /// `failed`, `delayed`, … as the report says.
    pub action: String,
    /// The enhanced status code, like `5.1.1`.
    pub status: String,
    /// `recorded` (the message is failed and, for marketing e-mail, the
    /// address suppressed), `already_known`, `temporary` (a delay or a
    /// 4.x.x: nothing to do), or `not_ours` (no message of ours went to
    /// this address with this id).
    pub outcome: String,
}

/// The bounce intake's answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BounceReport {
    /// The message the report is about, if it names one of ours.
    pub mail_id: Option<Uuid>,
    pub recipients: Vec<BounceOutcome>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadCount {
    pub unread: i64,
}

/// Which notifications to mark read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    /// These ids; omitted: all of them.
    #[serde(default)]
    pub ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MarkedRead {
    pub marked: u64,
}

/// One kind of notification and how it reaches this person by e-mail.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PreferenceView {
    pub kind: NoticeKind,
    pub label: &'static str,
    pub delivery: Delivery,
    /// Whether `delivery` is the default (the person has not chosen).
    pub default: bool,
}

/// A person's notification settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationSettings {
    /// Whether the server sends e-mail at all (an SMTP server is set).
    pub email_enabled: bool,
    pub email: Email,
    /// Whether the address is verified; e-mail goes only to verified ones.
    pub email_verified: bool,
    pub preferences: Vec<PreferenceView>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferenceChange {
    pub kind: NoticeKind,
    pub delivery: Delivery,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePreferences {
    /// The kinds to change; others keep their setting.
    pub preferences: Vec<PreferenceChange>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub email: Email,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    /// The token from the e-mailed link.
    pub token: String,
    pub password: Password,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkToken {
    /// The token from the e-mailed link.
    pub token: String,
}

/// An answer that is only a sentence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    pub message: String,
}

fn link_invalid() -> Error {
    Error::Gone {
        code: "link_invalid",
        message: "this link is not valid any more (used, expired, or for an address that changed); ask for a new one"
            .into(),
    }
}

impl App {
    /// Reads a bounce message (a delivery status notification, RFC 3464)
    /// from the operator's bounce mailbox and records each permanent
    /// failure of a message of ours (see `notify::bounces`).
    pub async fn record_bounce_message(&self, raw: &[u8], meta: &RequestMeta) -> Result<BounceReport> {
        let report = crate::notify::bounces::read_report(raw).map_err(|e| Error::invalid("message", e))?;
        let mut recipients = Vec::with_capacity(report.recipients.len());
        for bounce in &report.recipients {
            let outcome = match (report.mail_id, bounce.permanent()) {
                (_, false) => "temporary",
                (None, true) => "not_ours",
                (Some(mail_id), true) => {
                    let recorded = self
                        .store
                        .record_bounce(mail_id, &bounce.recipient, &bounce.reason(), Timestamp::now())
                        .await?;
                    match recorded {
                        BounceRecorded::Recorded { tenant_id } => {
                            let audit = audit_event(
                                tenant_id,
                                Actor::System { name: "bounce intake".into() },
                                meta,
                                actions::MAIL_BOUNCE_REPORT,
                                Outcome::Success,
                            )
                            .resource("mail", mail_id)
                            .details(serde_json::json!({ "status": bounce.status }));
                            self.store.record_audit(&audit).await?;
                            tracing::warn!(mail = %mail_id, status = %bounce.status, "a sent e-mail bounced");
                            "recorded"
                        }
                        BounceRecorded::AlreadyKnown => "already_known",
                        BounceRecorded::NotFound => "not_ours",
                    }
                }
            };
            recipients.push(BounceOutcome {
                recipient: bounce.recipient.clone(),
                action: bounce.action.clone(),
                status: bounce.status.clone(),
                outcome: outcome.into(),
            });
        }
        Ok(BounceReport { mail_id: report.mail_id, recipients })
    }

    pub async fn notifications(
        &self,
        caller: &Caller,
        unread_only: bool,
        page: PageRequest,
    ) -> Result<Page<Notification>> {
        let user = caller.user()?;
        let mut found = self.store.notifications(user.id, unread_only, page).await?;
        // A single sign-on session sees only its organisation's.
        if let Some(tenant) = self.sso_scope(caller).await? {
            found.items.retain(|n| n.tenant_id == Some(tenant));
        }
        Ok(found)
    }

    pub async fn unread_notifications(&self, caller: &Caller) -> Result<UnreadCount> {
        let user = caller.user()?;
        Ok(UnreadCount { unread: self.store.unread_count(user.id).await? })
    }

    /// Marks notifications read. Not audited: reading is not a change to
    /// anyone's data.
    pub async fn mark_notifications_read(&self, caller: &Caller, req: MarkRead) -> Result<MarkedRead> {
        let user = caller.user()?;
        if req.ids.as_ref().is_some_and(|ids| ids.len() > 500) {
            return Err(Error::invalid("ids", "at most 500 ids at once"));
        }
        let marked = self.store.mark_read(user.id, req.ids.as_deref(), Timestamp::now()).await?;
        Ok(MarkedRead { marked })
    }

    pub async fn notification_settings(&self, caller: &Caller) -> Result<NotificationSettings> {
        let user = caller.user()?;
        let chosen = self.store.preferences(user.id).await?;
        let preferences = NoticeKind::iter()
            .map(|kind| {
                let choice = chosen.iter().find(|(k, _)| *k == kind).map(|(_, d)| *d);
                PreferenceView {
                    kind,
                    label: kind.label(),
                    delivery: choice.unwrap_or(kind.default_delivery()),
                    default: choice.is_none(),
                }
            })
            .collect();
        Ok(NotificationSettings {
            email_enabled: self.notifier.email_enabled(),
            email: user.email.clone(),
            email_verified: user.email_verified_at.is_some(),
            preferences,
        })
    }

    pub async fn update_notification_preferences(
        &self,
        caller: &Caller,
        req: UpdatePreferences,
    ) -> Result<NotificationSettings> {
        let user = caller.user()?;
        if req.preferences.len() > 100 {
            return Err(Error::invalid("preferences", "at most 100 changes at once"));
        }
        let prefs: Vec<(NoticeKind, Delivery)> =
            req.preferences.iter().map(|p| (p.kind, p.delivery)).collect();
        let audit = caller
            .audit(actions::NOTIFICATION_PREFERENCES_UPDATE)
            .resource("user", user.id)
            .details(serde_json::json!({ "preferences": prefs.iter().map(|(k, d)| (k.to_string(), d.to_string())).collect::<Vec<_>>() }));
        self.store.set_preferences(user.id, &prefs, &audit).await?;
        self.notification_settings(caller).await
    }

    /// Starts a password reset. The answer is the same whether or not the
    /// address has an account, and comes before any lookup is done, so
    /// neither its text nor its timing tells.
    pub fn request_password_reset(&self, req: PasswordResetRequest, meta: &RequestMeta) -> Done {
        let store = self.store.clone();
        let notifier = self.notifier.clone();
        let meta = meta.clone();
        tokio::spawn(async move {
            if let Err(e) = send_reset_link(store.as_ref(), &notifier, &req.email, &meta).await {
                tracing::error!(error = %e, "could not queue a password-reset message");
            }
        });
        Done { message: RESET_REQUESTED.into() }
    }

    /// Sets a new password with an e-mailed reset token; every session of
    /// the account ends.
    pub async fn reset_password(&self, req: PasswordReset, meta: &RequestMeta) -> Result<Done> {
        if !looks_like(TokenKind::Link, &req.token) {
            return Err(link_invalid());
        }
        let hash = crate::auth::password::hash(req.password).await.map_err(Error::Internal)?;
        let audit =
            audit_event(None, Actor::Anonymous, meta, actions::PASSWORD_RESET_COMPLETE, Outcome::Success);
        match self.store.reset_password(&hash_token(&req.token), &hash, &audit).await? {
            Some(_) => Ok(Done { message: "Your password is changed. Sign in with it.".into() }),
            None => Err(link_invalid()),
        }
    }

    /// Sends the signed-in person a link that verifies their address.
    pub async fn send_verification(&self, caller: &Caller) -> Result<Done> {
        let user = caller.user()?;
        if user.email_verified_at.is_some() {
            return Ok(Done { message: format!("{} is already verified.", user.email) });
        }
        if !self.notifier.email_enabled() {
            return Err(Error::Conflict {
                code: "email_off",
                message: "this server sends no e-mail (no SMTP server is configured); ask its operator"
                    .into(),
            });
        }
        let since = Timestamp::from_datetime(Timestamp::now().as_datetime() - time::Duration::HOUR);
        if self.store.recent_user_tokens(user.id, UserTokenPurpose::EmailVerification, since).await?
            >= LINKS_PER_HOUR
        {
            return Err(Error::RateLimited { retry_after: std::time::Duration::from_secs(3600) });
        }
        let token = OpaqueToken::generate(TokenKind::Link);
        let path = format!("/verify-email?token={}", token.text);
        let new_token = NewUserToken {
            token_hash: token.hash,
            user_id: user.id,
            purpose: UserTokenPurpose::EmailVerification,
            email: user.email.clone(),
            expires_at: Timestamp::from_datetime(Timestamp::now().as_datetime() + VERIFY_VALIDITY),
        };
        let mail = NewMail {
            id: new_id(),
            tenant_id: None,
            user_id: Some(user.id),
            to: user.email.clone(),
            purpose: MailPurpose::EmailVerification,
            subject: "Confirm your e-mail address for Marketer".into(),
            body: format!(
                "Hello {},\n\nOpen this link within 48 hours to confirm that {} is yours. Until then, \
                 Marketer sends you no notifications by e-mail.",
                user.display_name, user.email
            ),
            link: None,
            secret_link: Some(self.notifier.seal_link(None, &path).map_err(Error::Internal)?),
        };
        let audit = caller.audit(actions::EMAIL_VERIFICATION_SEND).resource("user", user.id);
        self.store.create_user_token(&new_token, &mail, &audit).await?;
        self.notifier.wake();
        Ok(Done { message: format!("A link to confirm {} is on its way.", user.email) })
    }

    pub async fn verify_email(&self, req: LinkToken, meta: &RequestMeta) -> Result<Done> {
        if !looks_like(TokenKind::Link, &req.token) {
            return Err(link_invalid());
        }
        let audit = audit_event(None, Actor::Anonymous, meta, actions::EMAIL_VERIFY, Outcome::Success);
        match self.store.verify_email(&hash_token(&req.token), &audit).await? {
            Some(_) => Ok(Done { message: "Your e-mail address is confirmed.".into() }),
            None => Err(link_invalid()),
        }
    }

    pub async fn unsubscribe_digests(&self, req: LinkToken, meta: &RequestMeta) -> Result<Done> {
        if !looks_like(TokenKind::Link, &req.token) {
            return Err(link_invalid());
        }
        let audit = audit_event(None, Actor::Anonymous, meta, actions::DIGEST_UNSUBSCRIBE, Outcome::Success);
        match self.store.unsubscribe_digests(&hash_token(&req.token), &audit).await? {
            Some(_) => Ok(Done {
                message: "You will get no more daily digests. Choose again in your notification settings."
                    .into(),
            }),
            None => Err(link_invalid()),
        }
    }

    /// The organisation's outbox at a glance (owners and admins).
    pub async fn mail_summary(&self, access: &TenantAccess) -> Result<MailSummary> {
        access.require(Permission::SettingsManage)?;
        Ok(self.store.mail_summary(access.tenant_id).await?)
    }

    /// Sends a message that failed, or whose outcome is unknown, again.
    pub async fn resend_mail(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::SettingsManage)?;
        let audit = access.audit(actions::MAIL_RESEND).resource("email", id);
        self.store.resend_mail(access.tenant_id, id, &audit).await.map_err(|e| match e {
            crate::store::StoreError::NotFound => Error::NotFound("message"),
            other => other.into(),
        })?;
        self.notifier.wake();
        Ok(())
    }
}

/// Queues a reset link for the address's account, if there is one, it is
/// enabled, and it has not had three in the last hour.
async fn send_reset_link(
    store: &dyn crate::store::Store,
    notifier: &crate::notify::Notifier,
    email: &Email,
    meta: &RequestMeta,
) -> anyhow::Result<()> {
    let Some(user) = store.user_by_email(email).await? else { return Ok(()) };
    if user.disabled {
        return Ok(());
    }
    let since = Timestamp::from_datetime(Timestamp::now().as_datetime() - time::Duration::HOUR);
    if store.recent_user_tokens(user.id, UserTokenPurpose::PasswordReset, since).await? >= LINKS_PER_HOUR {
        tracing::warn!(user = %user.id, "password-reset links limited: three in the last hour");
        return Ok(());
    }
    let token = OpaqueToken::generate(TokenKind::Link);
    let path = format!("/reset-password?token={}", token.text);
    let new_token = NewUserToken {
        token_hash: token.hash,
        user_id: user.id,
        purpose: UserTokenPurpose::PasswordReset,
        email: user.email.clone(),
        expires_at: Timestamp::from_datetime(Timestamp::now().as_datetime() + RESET_VALIDITY),
    };
    let mail = NewMail {
        id: new_id(),
        tenant_id: None,
        user_id: Some(user.id),
        to: user.email.clone(),
        purpose: MailPurpose::PasswordReset,
        subject: "Choose a new Marketer password".into(),
        body: format!(
            "Hello {},\n\nSomeone (we hope you) asked to choose a new password for {}. Open this link within one \
             hour to do so; it works once. If it was not you, ignore this message: your password stays as it is.",
            user.display_name, user.email
        ),
        link: None,
        secret_link: Some(notifier.seal_link(None, &path)?),
    };
    let audit = audit_event(None, Actor::Anonymous, meta, actions::PASSWORD_RESET_REQUEST, Outcome::Success)
        .resource("user", user.id);
    store.create_user_token(&new_token, &mail, &audit).await?;
    notifier.wake();
    Ok(())
}
