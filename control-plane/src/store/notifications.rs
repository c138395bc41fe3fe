//! Persistence of notifications: what happened for whom (read or not),
//! each person's e-mail preference per kind, the durable e-mail outbox with
//! the lease that makes one replica send each message, the single-use
//! links sent by e-mail (password reset, address verification, digest
//! unsubscription), and the daily digests already composed.
//!
//! A notice is written in the transaction of the change that causes it:
//! mutating store methods carry it on their `NewAuditEvent`
//! (`NewAuditEvent::notify`), and the few transitions that are not audited
//! (a job's end, an agent falling silent) write theirs themselves. Writing a
//! notice also queues its e-mail, by the recipient's preference, in the same
//! transaction.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::Date;
use uuid::Uuid;

use super::{NewAuditEvent, Page, PageRequest, Result};
use crate::cloud::crypto::Sealed;
use crate::domain::{Email, Timestamp};

/// What a notification is about. New features add kinds here.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum NoticeKind {
    /// Someone mentioned you in a comment.
    Mention,
    /// An item waits for your review.
    ReviewRequested,
    /// Your item was approved.
    ReviewApproved,
    /// A reviewer asked for changes to your item.
    ReviewChangesRequested,
    /// Your item was rejected.
    ReviewRejected,
    /// An activity you started finished.
    ActivityFinished,
    /// An activity you started failed.
    ActivityFailed,
    /// A post you scheduled was published.
    PostPublished,
    /// A post you scheduled failed.
    PostFailed,
    /// A social account of your organisation needs connecting again.
    AccountNeedsReconnect,
    /// An agent of your organisation went offline.
    AgentOffline,
    /// An agent's certificate expires within 7 days.
    AgentCertificateExpiring,
    /// You were invited to an organisation.
    Invitation,
    /// A lead of yours (or, with no owner, of the organisation) wrote in.
    LeadArrived,
    /// A follow-up e-mail to one of your leads waits for your review.
    FollowUpDraft,
    /// Negative mentions of an account (or finds of a listening query)
    /// far above their usual level.
    CrisisAlert,
}

impl NoticeKind {
    /// How a kind reaches a person who has not chosen: what needs them at
    /// once, what merely informs them in the morning's digest.
    pub fn default_delivery(self) -> Delivery {
        match self {
            NoticeKind::ActivityFinished | NoticeKind::PostPublished => Delivery::DailyDigest,
            _ => Delivery::Immediately,
        }
    }

    /// The kind in the settings page's words.
    pub fn label(self) -> &'static str {
        match self {
            NoticeKind::Mention => "Someone mentions me",
            NoticeKind::ReviewRequested => "Something waits for my review",
            NoticeKind::ReviewApproved => "My item was approved",
            NoticeKind::ReviewChangesRequested => "Changes were requested on my item",
            NoticeKind::ReviewRejected => "My item was rejected",
            NoticeKind::ActivityFinished => "An activity I started finished",
            NoticeKind::ActivityFailed => "An activity I started failed",
            NoticeKind::PostPublished => "A post I scheduled was published",
            NoticeKind::PostFailed => "A post I scheduled failed",
            NoticeKind::AccountNeedsReconnect => "A social account needs reconnecting (admins)",
            NoticeKind::AgentOffline => "An agent went offline (admins)",
            NoticeKind::AgentCertificateExpiring => "An agent's certificate expires soon (admins)",
            NoticeKind::Invitation => "I am invited to an organisation",
            NoticeKind::LeadArrived => "A lead writes in through a listing page",
            NoticeKind::FollowUpDraft => "A follow-up e-mail to your lead waits for your review",
            NoticeKind::CrisisAlert => "Negative mentions far above normal: a crisis alert (admins)",
        }
    }
}

/// How a person wants a kind of notification by e-mail. In the app every
/// notification is shown whatever this says.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Delivery {
    /// An e-mail per notification, sent at once.
    Immediately,
    /// One e-mail each morning listing the day's notifications.
    DailyDigest,
    /// No e-mail.
    Off,
}

/// Who a notice is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// One person (skipped if their account is disabled).
    User(Uuid),
    /// The owners and admins of the notice's tenant.
    Admins,
}

/// A notice to write with a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    pub tenant_id: Option<Uuid>,
    pub kind: NoticeKind,
    pub audience: Audience,
    pub title: String,
    pub body: String,
    /// A path of the web UI.
    pub link: Option<String>,
    /// At most one notification per person with this key.
    pub dedupe_key: Option<String>,
}

/// Where a notification's e-mail stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum NoticeEmail {
    /// None: the person turned it off, or their address is not verified.
    None,
    /// In the outbox.
    Queued,
    /// Waits for the next daily digest.
    Digest,
    /// Went out in a digest.
    Digested,
}

/// A notification as its person sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub tenant_name: Option<String>,
    pub kind: NoticeKind,
    pub title: String,
    pub body: String,
    /// A path of the web UI.
    pub link: Option<String>,
    pub email: NoticeEmail,
    pub created_at: Timestamp,
    pub read_at: Option<Timestamp>,
}

/// Why an e-mail is sent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MailPurpose {
    Notification,
    Digest,
    Invitation,
    PasswordReset,
    EmailVerification,
    /// A follow-up sequence's step: carries an unsubscribe link.
    Marketing,
}

/// Where a message of the outbox stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum MailState {
    /// Written, waiting for a person to send or skip it (a follow-up step
    /// drafted for review); never sent as it is.
    Draft,
    /// Waiting for its time (`next_attempt_at`).
    Pending,
    /// A replica holds it; nothing has been handed to the SMTP server.
    Claimed,
    /// Being handed to the SMTP server.
    Sending,
    Sent,
    /// The SMTP server refused it for good.
    Failed,
    /// The connection broke while the server had the message: it may have
    /// been delivered, so it is not sent again unless an admin says so.
    Unknown,
}

/// A message to put in the outbox.
#[derive(Debug, Clone)]
pub struct NewMail {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub to: Email,
    pub purpose: MailPurpose,
    pub subject: String,
    pub body: String,
    pub link: Option<String>,
    /// A path carrying a token, sealed with the data key (the tenant id, or
    /// the nil id for an account's own mail, as associated data).
    pub secret_link: Option<Sealed>,
}

/// A message of the outbox.
#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub to: String,
    pub purpose: MailPurpose,
    pub subject: String,
    pub body: String,
    pub link: Option<String>,
    pub secret_link: Option<Sealed>,
    pub state: MailState,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub sent_at: Option<Timestamp>,
}

/// What a bounce reported later changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceRecorded {
    /// The message is failed now (and, for marketing, its address
    /// suppressed).
    Recorded { tenant_id: Option<Uuid> },
    /// The message's failure was known already.
    AlreadyKnown,
    /// No message with this id was sent to this address.
    NotFound,
}

/// How sending a message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailOutcome {
    Sent,
    /// Not delivered (no connection, or a temporary refusal): try again then.
    Retry {
        at: Timestamp,
        error: String,
    },
    /// Refused for good.
    Failed {
        error: String,
    },
    /// The recipient was refused for good (a hard bounce): failed, and a
    /// marketing message's address is suppressed for the tenant's
    /// sequences, which stop, in the same transaction.
    Bounced {
        error: String,
    },
    /// The connection broke after the message was handed over.
    Unknown {
        error: String,
    },
}

/// An organisation's outbox at a glance, for its admins.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct MailSummary {
    /// Follow-up e-mails drafted for review, waiting for a person.
    pub drafts: i64,
    pub pending: i64,
    pub sent: i64,
    pub failed: i64,
    pub unknown: i64,
    /// The latest messages that failed or whose outcome is unknown.
    pub problems: Vec<MailProblem>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MailProblem {
    pub id: Uuid,
    pub to: String,
    pub subject: String,
    pub state: MailState,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
}

/// What an e-mailed single-use link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum UserTokenPurpose {
    PasswordReset,
    EmailVerification,
    /// Turns a person's daily digests off (reusable until it expires).
    Unsubscribe,
}

#[derive(Debug, Clone)]
pub struct NewUserToken {
    pub token_hash: Vec<u8>,
    pub user_id: Uuid,
    pub purpose: UserTokenPurpose,
    pub email: Email,
    pub expires_at: Timestamp,
}

/// A person with notifications waiting for a digest.
#[derive(Debug, Clone)]
pub struct DigestCandidate {
    pub user_id: Uuid,
    pub email: String,
    pub time_zone: Option<String>,
}

/// The text of a digest, made from the notifications it lists.
pub type DigestText = dyn Fn(&[Notification]) -> (String, String) + Send + Sync;

#[async_trait]
pub trait NotificationStore {
    /// Writes notices that are not part of another change (a sweep's
    /// findings), with their e-mails, in one transaction.
    async fn notify(&self, notices: &[NewNotice], now: Timestamp) -> Result<()>;
    /// A person's notifications, newest first.
    async fn notifications(
        &self,
        user_id: Uuid,
        unread_only: bool,
        page: PageRequest,
    ) -> Result<Page<Notification>>;
    async fn unread_count(&self, user_id: Uuid) -> Result<i64>;
    /// Marks the given notifications (all, with `None`) read; returns how many changed.
    async fn mark_read(&self, user_id: Uuid, ids: Option<&[Uuid]>, now: Timestamp) -> Result<u64>;
    /// The kinds a person chose a delivery for.
    async fn preferences(&self, user_id: Uuid) -> Result<Vec<(NoticeKind, Delivery)>>;
    async fn set_preferences(
        &self,
        user_id: Uuid,
        prefs: &[(NoticeKind, Delivery)],
        audit: &NewAuditEvent,
    ) -> Result<()>;

    // The outbox.
    /// Queues a message with the audited change that causes it.
    async fn enqueue_mail(&self, mail: &NewMail, audit: &NewAuditEvent) -> Result<()>;
    /// Messages due for sending, and claimed ones whose lease ran out.
    async fn due_mail(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>>;
    /// Takes a due message for `owner` until `lease_until` (compare-and-set).
    async fn claim_mail(
        &self,
        id: Uuid,
        owner: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<OutboxMail>>;
    /// Records that the message is being handed to the SMTP server; `false`
    /// if the lease was lost (then it must not be sent).
    async fn mark_mail_sending(&self, id: Uuid, owner: &str, now: Timestamp) -> Result<bool>;
    /// Records the outcome, only under the lease.
    async fn finish_mail(&self, id: Uuid, owner: &str, outcome: &MailOutcome, now: Timestamp)
    -> Result<bool>;
    /// A message the SMTP server accepted, refused for good later by the
    /// recipient's server (a delivery status notification): the message
    /// becomes `failed` with `reason`, and a marketing message's address is
    /// suppressed for the tenant's sequences (which stop), in one
    /// transaction. Once per message.
    async fn record_bounce(
        &self,
        mail_id: Uuid,
        recipient: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<BounceRecorded>;
    /// Messages left `sending` by a replica that stopped: `unknown`.
    async fn expire_mail_leases(&self, now: Timestamp) -> Result<u64>;
    async fn mail_summary(&self, tenant_id: Uuid) -> Result<MailSummary>;
    /// Sends a failed or unknown message of the tenant again (never a
    /// failed marketing e-mail: it was bounced, skipped or unsubscribed).
    async fn resend_mail(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;

    // E-mailed links.
    /// How many links of `purpose` an account was sent since `since`.
    async fn recent_user_tokens(
        &self,
        user_id: Uuid,
        purpose: UserTokenPurpose,
        since: Timestamp,
    ) -> Result<i64>;
    /// Stores a link's token and queues the message carrying it.
    async fn create_user_token(
        &self,
        token: &NewUserToken,
        mail: &NewMail,
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// Uses a password-reset token: sets the password, ends every session,
    /// and (the link reached the address) marks the address verified.
    /// `None` if the token is unknown, used or expired.
    async fn reset_password(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        audit: &NewAuditEvent,
    ) -> Result<Option<Uuid>>;
    /// Uses a verification token; `None` if unknown, used, expired, or the
    /// account's address changed since.
    async fn verify_email(&self, token_hash: &[u8], audit: &NewAuditEvent) -> Result<Option<Uuid>>;
    /// Turns a person's daily digests off; `None` if the token is unknown or expired.
    async fn unsubscribe_digests(&self, token_hash: &[u8], audit: &NewAuditEvent) -> Result<Option<Uuid>>;
    /// Marks an account's address verified (the operator vouches, or the
    /// person came through an invitation sent to it).
    async fn mark_email_verified(&self, user_id: Uuid, now: Timestamp) -> Result<()>;

    /// Tells the admins of each agent whose certificate ends before
    /// `before` (once per certificate); returns how many agents.
    async fn notify_expiring_certificates(&self, before: Timestamp, now: Timestamp) -> Result<u64>;

    // Digests.
    /// People with notifications waiting for a digest.
    async fn digest_candidates(&self, limit: i64) -> Result<Vec<DigestCandidate>>;
    /// Composes a person's digest for `local_date` once (across replicas):
    /// the waiting notifications become `digested` and one message is
    /// queued, its text made by `text`. `false` if this day's digest
    /// exists or nothing waits.
    async fn compose_digest(
        &self,
        candidate: &DigestCandidate,
        local_date: Date,
        mail: &NewMail,
        unsubscribe: &NewUserToken,
        text: &DigestText,
        now: Timestamp,
    ) -> Result<bool>;
}
