//! The one notifier of the product: it delivers what the store's
//! notifications and e-mail outbox hold.
//!
//! Features do not send anything themselves. A change that should tell
//! someone carries a `NewNotice` on its audit event (or, for the few
//! unaudited transitions, writes it in its own transaction): the store
//! records the notification for each recipient and, by their preference,
//! queues an e-mail in the same transaction. Mail that is not a
//! notification (an invitation, a password reset, a verification link) is
//! queued the same way by its service. This module owns what happens next,
//! on every replica:
//!
//! - the **sender** claims due messages with a lease (compare-and-set, so
//!   two replicas never take the same one), speaks SMTP (`mail.rs`), and
//!   records `sending` before the irreversible step; a connection lost
//!   during it makes the message `unknown` and it is never sent again by
//!   itself; a refusal or an unreachable server is retried with backoff;
//! - the **digest** composer, each minute: during the digest hour (08:00
//!   to 09:00 in each person's time zone) people with notifications
//!   waiting get one message listing them, once per day across replicas
//!   (`digest_runs`). Outside that hour nothing is composed, so what
//!   happens during the day waits for the next morning instead of going
//!   out as a digest of one; a day whose whole digest hour the service was
//!   down is folded into the next day's digest (nothing is lost);
//! - the **follow-up steps**, each poll: due steps of leads' sequences are
//!   composed (`marketing.rs`) and queued into the outbox, once each across
//!   replicas (the store's compare-and-set on the step);
//! - the **certificate sweep**, hourly: agents whose certificate ends within
//!   7 days are announced to their admins, once per certificate;
//! - the **retention sweep**, hourly: each organisation's retention policy
//!   is applied once per UTC day (`service::retention`).
//!
//! Bounces that come back later, as delivery status notifications, are
//! read by `bounces.rs` when the operator hands them to the bounce intake
//! (`POST /api/v1/mail/bounces`); they fail the message and suppress a
//! marketing address like a refusal during the SMTP session.
//!
//! With no SMTP server configured, messages wait in the outbox and the UI
//! says e-mail is off; notifications in the app work the same.
//!
//! Outbound webhooks (`webhooks.rs`) are the other way out: their own loop
//! posts the deliveries' outbox, so a slow receiver never holds up e-mail.

pub mod bounces;
pub mod mail;
pub mod marketing;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::cloud::DataKey;
use crate::cloud::crypto::Sealed;
use crate::domain::{Email, Timestamp, new_id};
use crate::store::{
    DigestCandidate, MailOutcome, MailPurpose, NewMail, NewUserToken, Notification, OutboxMail, Store,
    UserTokenPurpose,
};

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS; refused if the server does
    /// not offer it.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS: only for a relay on the same host or a trusted network.
    None,
}

/// The SMTP server.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, SecretString)>,
    pub from: lettre::message::Mailbox,
    /// Extra CA certificates (PEM) for the server's certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// Time limit of each step of the conversation.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `None`: e-mail is off.
    pub smtp: Option<SmtpSettings>,
    /// Links in messages start with this.
    pub public_url: String,
    /// How often the outbox is looked at.
    pub poll: Duration,
    /// How long a replica holds a claimed message.
    pub lease: Duration,
    /// The local hour during which digests go out.
    pub digest_hour: i8,
    /// How often digests are looked for.
    pub digest_check: Duration,
    /// Outbound webhooks (polled as often as the outbox, leased as long).
    pub webhooks: webhooks::WebhookSettings,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            smtp: None,
            public_url: "http://127.0.0.1:8080".into(),
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(120),
            digest_hour: 8,
            digest_check: Duration::from_secs(60),
            webhooks: webhooks::WebhookSettings::default(),
        }
    }
}

/// How long a digest's unsubscribe link works.
const UNSUBSCRIBE_VALIDITY: time::Duration = time::Duration::days(90);
/// Messages handled per pass.
const BATCH: i64 = 20;

/// The worker, one per replica.
pub struct Notifier {
    store: Arc<dyn Store>,
    key: Arc<DataKey>,
    settings: MailSettings,
    owner: String,
    wake: Notify,
    hooks: webhooks::Sender,
    /// An agent silent this long is offline (where a follow-up paragraph
    /// may run).
    online_window: time::Duration,
    /// Uploaded files: an erased organisation's are deleted by the sweep
    /// when the erasure itself could not, and so are exports downloaded or
    /// expired.
    files: Arc<dyn crate::storage::FileStorage>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// The associated data a secret link is sealed with: its tenant, or the
/// nil id for an account's own mail.
fn aad(tenant_id: Option<Uuid>) -> Uuid {
    tenant_id.unwrap_or(Uuid::nil())
}

impl Notifier {
    pub fn new(
        store: Arc<dyn Store>,
        key: Arc<DataKey>,
        settings: MailSettings,
        online_window: time::Duration,
        files: Arc<dyn crate::storage::FileStorage>,
    ) -> anyhow::Result<Self> {
        let owner = format!("{}:{}", gethostname::gethostname().to_string_lossy(), new_id());
        let hooks = webhooks::Sender::new(settings.webhooks.clone())?;
        Ok(Self { store, key, settings, owner, wake: Notify::new(), hooks, online_window, files })
    }

    /// The rules webhook URLs are held to.
    pub fn webhook_settings(&self) -> &webhooks::WebhookSettings {
        self.hooks.settings()
    }

    /// Posts due webhook deliveries until shutdown.
    async fn run_webhooks(&self, shutdown: CancellationToken) {
        loop {
            let due = self.hooks.send_due(&self.store, &self.key, &self.owner, self.settings.lease).await;
            if webhooks::Sender::full(due) && !shutdown.is_cancelled() {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// Whether e-mail goes anywhere.
    pub fn email_enabled(&self) -> bool {
        self.settings.smtp.is_some()
    }

    pub fn public_url(&self) -> &str {
        &self.settings.public_url
    }

    /// Seals a token-carrying path for the outbox.
    pub fn seal_link(&self, tenant_id: Option<Uuid>, path: &str) -> anyhow::Result<Sealed> {
        self.key.seal(aad(tenant_id), path)
    }

    /// A message was queued: look now rather than at the next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        tokio::join!(self.run_mail(shutdown.clone()), self.run_webhooks(shutdown));
    }

    async fn run_mail(&self, shutdown: CancellationToken) {
        let mut last_digests: Option<Instant> = None;
        let mut last_sweep: Option<Instant> = None;
        loop {
            if let Err(e) = self.store.expire_mail_leases(Timestamp::now()).await {
                tracing::error!(error = %e, "could not look for messages left half-sent");
            }
            if self.settings.smtp.is_some() {
                self.send_due().await;
            }
            if last_digests.is_none_or(|t| t.elapsed() >= self.settings.digest_check) {
                last_digests = Some(Instant::now());
                self.digests().await;
            }
            self.sequence_steps(Timestamp::now()).await;
            if last_sweep.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
                last_sweep = Some(Instant::now());
                self.certificate_sweep().await;
                self.retention_sweep().await;
                crate::service::erasures::finish_pending(self.store.as_ref(), self.files.as_ref()).await;
                crate::service::tenant_exports::delete_finished(self.store.as_ref(), self.files.as_ref())
                    .await;
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// Claims due messages and sends them over one connection.
    async fn send_due(&self) {
        let Some(smtp) = &self.settings.smtp else { return };
        let now = Timestamp::now();
        let ids = match self.store.due_mail(now, BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "could not read the e-mail outbox");
                return;
            }
        };
        if ids.is_empty() {
            return;
        }
        let lease_until = later(now, self.settings.lease);
        let mut claimed = Vec::new();
        for id in ids {
            match self.store.claim_mail(id, &self.owner, lease_until, now).await {
                Ok(Some(mail)) => claimed.push(mail),
                Ok(None) => {} // another replica took it
                Err(e) => tracing::error!(error = %e, mail = %id, "could not claim a message"),
            }
        }
        let mut session: Option<mail::Session> = None;
        for m in claimed {
            if session.as_ref().is_some_and(|s| !s.usable()) {
                session = None;
            }
            if session.is_none() {
                match mail::connect(smtp).await {
                    Ok(s) => session = Some(s),
                    Err(error) => {
                        tracing::warn!(%error, "the SMTP server is unreachable; messages wait");
                        self.finish(&m, MailOutcome::Retry { at: retry_at(m.attempts), error }).await;
                        continue;
                    }
                }
            }
            let Some(s) = session.as_mut() else { continue };
            let outcome = self.send_one(smtp, s, &m).await;
            let broken = !matches!(outcome, MailOutcome::Sent);
            self.finish(&m, outcome).await;
            if broken && let Some(s) = session.take() {
                // A refusal may leave the server mid-transaction: start clean.
                s.abandon().await;
            }
        }
        if let Some(s) = session {
            s.quit().await;
        }
    }

    async fn send_one(
        &self,
        smtp: &SmtpSettings,
        session: &mut mail::Session,
        m: &OutboxMail,
    ) -> MailOutcome {
        let secret = match &m.secret_link {
            Some(sealed) => match self.key.open(aad(m.tenant_id), sealed) {
                Ok(path) => Some(path),
                Err(e) => return MailOutcome::Failed { error: e.to_string() },
            },
            None => None,
        };
        let secret = secret.as_ref().map(secrecy::ExposeSecret::expose_secret);
        let outgoing = match mail::compose(smtp, &self.settings.public_url, m, secret) {
            Ok(o) => o,
            Err(error) => return MailOutcome::Failed { error },
        };
        if let Err(h) = session.prepare(&outgoing).await {
            return self.outcome(m, h);
        }
        match self.store.mark_mail_sending(m.id, &self.owner, Timestamp::now()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(mail = %m.id, "lost the lease of a message before sending it");
                return MailOutcome::Retry { at: Timestamp::now(), error: "lease lost".into() };
            }
            Err(e) => {
                return MailOutcome::Retry {
                    at: retry_at(m.attempts),
                    error: format!("the database failed: {e}"),
                };
            }
        }
        let h = session.deliver(&outgoing).await;
        self.outcome(m, h)
    }

    fn outcome(&self, m: &OutboxMail, h: mail::Handover) -> MailOutcome {
        match h {
            mail::Handover::Accepted => MailOutcome::Sent,
            mail::Handover::Refused { permanent: true, error } => MailOutcome::Failed { error },
            mail::Handover::Bounced { error } => MailOutcome::Bounced { error },
            mail::Handover::Refused { permanent: false, error } | mail::Handover::NotSent { error } => {
                MailOutcome::Retry { at: retry_at(m.attempts), error }
            }
            mail::Handover::Unknown { error } => MailOutcome::Unknown { error },
        }
    }

    async fn finish(&self, m: &OutboxMail, outcome: MailOutcome) {
        match &outcome {
            MailOutcome::Sent => tracing::info!(mail = %m.id, purpose = ?m.purpose, "e-mail sent"),
            MailOutcome::Retry { error, .. } => {
                tracing::warn!(mail = %m.id, %error, "e-mail not sent; will retry");
            }
            MailOutcome::Failed { error } => tracing::warn!(mail = %m.id, %error, "e-mail refused for good"),
            MailOutcome::Bounced { error } => {
                tracing::warn!(mail = %m.id, %error, "the recipient was refused for good (a hard bounce)");
            }
            MailOutcome::Unknown { error } => {
                tracing::error!(mail = %m.id, %error, "e-mail outcome unknown; not sent again unless an admin asks");
            }
        }
        match self.store.finish_mail(m.id, &self.owner, &outcome, Timestamp::now()).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(mail = %m.id, "lost the lease of a message before recording its outcome");
            }
            Err(e) => tracing::error!(error = %e, mail = %m.id, "could not record a message's outcome"),
        }
    }

    /// Composes the digests whose morning has come.
    async fn digests(&self) {
        let candidates = match self.store.digest_candidates(500).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "could not look for digests to send");
                return;
            }
        };
        for c in candidates {
            if let Err(e) = self.digest(&c).await {
                tracing::error!(error = %e, user = %c.user_id, "could not compose a digest");
            }
        }
    }

    async fn digest(&self, c: &DigestCandidate) -> anyhow::Result<()> {
        let zone = c
            .time_zone
            .as_deref()
            .and_then(|z| jiff::tz::TimeZone::get(z).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let local = jiff::Timestamp::now().to_zoned(zone);
        if local.hour() != self.settings.digest_hour {
            return Ok(());
        }
        let date = local.date();
        let local_date = time::Date::from_calendar_date(
            i32::from(date.year()),
            time::Month::try_from(date.month() as u8)?,
            date.day() as u8,
        )?;
        let to = Email::parse(&c.email).map_err(|e| anyhow::anyhow!("{e}"))?;
        let token = crate::auth::tokens::OpaqueToken::generate(crate::auth::tokens::TokenKind::Link);
        let now = Timestamp::now();
        let unsubscribe = NewUserToken {
            token_hash: token.hash.clone(),
            user_id: c.user_id,
            purpose: UserTokenPurpose::Unsubscribe,
            email: to.clone(),
            expires_at: Timestamp::from_datetime(now.as_datetime() + UNSUBSCRIBE_VALIDITY),
        };
        let path = format!("/unsubscribe?token={}", token.text);
        let mail = NewMail {
            id: new_id(),
            tenant_id: None,
            user_id: Some(c.user_id),
            to,
            purpose: MailPurpose::Digest,
            subject: String::new(),
            body: String::new(),
            link: Some("/notifications".into()),
            secret_link: Some(self.seal_link(None, &path)?),
        };
        let public_url = self.settings.public_url.clone();
        let text = move |items: &[Notification]| digest_text(&public_url, items);
        if self.store.compose_digest(c, local_date, &mail, &unsubscribe, &text, now).await? {
            self.wake();
        }
        Ok(())
    }

    /// Applies the organisations' retention policies, once per UTC day.
    async fn retention_sweep(&self) {
        match crate::service::retention::apply_due(self.store.as_ref(), Timestamp::now()).await {
            Ok(done) => {
                for (tenant_id, report) in done {
                    tracing::info!(%tenant_id, ?report, "applied the retention policy");
                }
            }
            Err(e) => tracing::error!(error = %e, "could not apply retention policies"),
        }
    }

    async fn certificate_sweep(&self) {
        let now = Timestamp::now();
        let before = Timestamp::from_datetime(now.as_datetime() + time::Duration::days(7));
        match self.store.notify_expiring_certificates(before, now).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(agents = n, "told admins about agent certificates that end within 7 days");
                self.wake();
            }
            Err(e) => tracing::error!(error = %e, "could not look for expiring agent certificates"),
        }
    }
}

/// A digest's subject and text.
fn digest_text(public_url: &str, items: &[Notification]) -> (String, String) {
    let subject = match items.len() {
        1 => "Your Marketer digest: 1 notification".to_owned(),
        n => format!("Your Marketer digest: {n} notifications"),
    };
    let mut body = String::from("Here is what happened since your last digest.\n");
    for n in items {
        body.push_str(&format!("\n* {}", n.title));
        if let Some(org) = &n.tenant_name {
            body.push_str(&format!(" ({org})"));
        }
        body.push_str(&format!("\n  {}", n.body.replace('\n', "\n  ")));
        if let Some(link) = &n.link {
            body.push_str(&format!("\n  {public_url}{link}"));
        }
        body.push('\n');
    }
    (subject, body)
}

fn later(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_datetime(
        now.as_datetime() + time::Duration::try_from(d).unwrap_or(time::Duration::MINUTE),
    )
}

/// When to try a message again after `attempts` tries (the first counts
/// 1): 2 s doubling, at most 15 minutes apart.
fn retry_at(attempts: i64) -> Timestamp {
    let exponent = u32::try_from((attempts - 1).clamp(0, 10)).unwrap_or(10);
    let seconds = (2u64 << exponent).min(15 * 60);
    later(Timestamp::now(), Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        let now = Timestamp::now();
        let gap = |a| retry_at(a).as_datetime() - now.as_datetime();
        assert!(gap(1) <= time::Duration::seconds(3));
        assert!(gap(4) >= time::Duration::seconds(15));
        assert!(gap(50) <= time::Duration::minutes(15) + time::Duration::seconds(1));
    }

    #[test]
    fn a_digest_lists_each_notification_with_its_link() {
        let n = |title: &str| Notification {
            id: new_id(),
            tenant_id: None,
            tenant_name: Some("Acme".into()),
            kind: crate::store::NoticeKind::PostPublished,
            title: title.into(),
            body: "went out".into(),
            link: Some("/t/x/posts/y".into()),
            email: crate::store::NoticeEmail::Digest,
            created_at: Timestamp::now(),
            read_at: None,
        };
        let (subject, body) = digest_text("https://m.example", &[n("first"), n("second")]);
        assert_eq!(subject, "Your Marketer digest: 2 notifications");
        assert!(body.contains("* first (Acme)") && body.contains("* second (Acme)"), "{body}");
        assert!(body.contains("https://m.example/t/x/posts/y"), "{body}");
    }
}
