//! Persistence of publishing: the social accounts a tenant connects (their
//! sealed tokens, health, rate limits, the cross-replica refresh lock,
//! posting slots), the posts scheduled onto them (with the lease that
//! makes one replica publish each), every attempt, and the OAuth
//! authorisations in flight.
//!
//! Transitions of a post are compare-and-set on its status and lease owner,
//! so a replica that lost its lease cannot record an outcome over another's.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::cloud::crypto::Sealed;
use crate::domain::Timestamp;

/// A social network an account lives on.
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
pub enum Network {
    X,
    Linkedin,
    Facebook,
    Instagram,
    Mastodon,
    Bluesky,
}

impl Network {
    /// The network's name as people write it.
    pub fn label(self) -> &'static str {
        match self {
            Network::X => "X",
            Network::Linkedin => "LinkedIn",
            Network::Facebook => "Facebook",
            Network::Instagram => "Instagram",
            Network::Mastodon => "Mastodon",
            Network::Bluesky => "Bluesky",
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AccountStatus {
    Connected,
    /// The platform refused the credentials for good: a person must
    /// connect the account again.
    NeedsReconnect,
}

/// A posting slot: a weekday and a local wall time in the account's
/// posting time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostingSlot {
    /// `mon` .. `sun`.
    #[schema(value_type = String, example = "mon")]
    pub weekday: SlotDay,
    /// `HH:MM`, 24-hour.
    #[schema(value_type = String, example = "09:00")]
    pub time: SlotTime,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum SlotDay {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Minutes after local midnight, written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SlotTime(pub u16);

impl SlotTime {
    pub fn parse(text: &str) -> Option<Self> {
        let (h, m) = text.split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(Self(h * 60 + m))
    }
    pub fn hour(self) -> i8 {
        i8::try_from(self.0 / 60).unwrap_or(0)
    }
    pub fn minute(self) -> i8 {
        i8::try_from(self.0 % 60).unwrap_or(0)
    }
}

impl std::fmt::Display for SlotTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl Serialize for SlotTime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SlotTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).ok_or_else(|| serde::de::Error::custom("a time is HH:MM, from 00:00 to 23:59"))
    }
}

/// A connected account as stored, without its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SocialAccount {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub network: Network,
    pub external_id: String,
    pub instance_url: Option<String>,
    pub handle: String,
    pub display_name: String,
    pub profile_url: Option<String>,
    /// `None`: every project.
    pub project_ids: Option<Vec<Uuid>>,
    pub status: AccountStatus,
    pub status_reason: Option<String>,
    pub rate_limited_until: Option<Timestamp>,
    pub rate_limit_note: Option<String>,
    pub token_expires_at: Option<Timestamp>,
    pub has_refresh_token: bool,
    pub token_version: i64,
    pub refresh_retry_at: Option<Timestamp>,
    pub refresh_failures: i64,
    pub last_success_at: Option<Timestamp>,
    pub last_checked_at: Option<Timestamp>,
    pub next_check_at: Timestamp,
    pub posting_time_zone: String,
    pub posting_slots: Vec<PostingSlot>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An account's sealed tokens.
#[derive(Debug, Clone)]
pub struct SealedTokens {
    pub access: Sealed,
    pub refresh: Option<Sealed>,
    pub expires_at: Option<Timestamp>,
}

/// An account just authorised on its platform.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub network: Network,
    pub external_id: String,
    pub instance_url: Option<String>,
    pub handle: String,
    pub display_name: String,
    pub profile_url: Option<String>,
    pub project_ids: Option<Vec<Uuid>>,
    pub tokens: SealedTokens,
    pub posting_time_zone: String,
    pub created_by: Option<Uuid>,
}

/// Changes to an account's settings.
#[derive(Debug, Clone, Default)]
pub struct AccountPatch {
    pub project_ids: Option<Option<Vec<Uuid>>>,
    pub posting_time_zone: Option<String>,
    pub posting_slots: Option<Vec<PostingSlot>>,
}

/// What a refresh of an account's tokens ended with.
#[derive(Debug, Clone)]
pub enum TokenRefresh {
    /// New tokens; a `None` refresh token keeps the stored one.
    Refreshed(SealedTokens),
    /// A passing failure (network, 5xx): try again at `retry_at`.
    Retry { retry_at: Timestamp, reason: String },
    /// The platform refused for good.
    Refused { reason: String },
}

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
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PostStatus {
    Draft,
    Scheduled,
    /// Its approval was not complete at its scheduled time: held, never
    /// published unapproved, until someone picks a new time.
    NeedsReschedule,
    Publishing,
    Published,
    Failed,
    /// A publish request whose outcome is unknown; the reconciler looks
    /// for it on the platform before anything is sent again.
    Unconfirmed,
    Cancelled,
    /// Published, then deleted (on the platform too).
    Deleted,
}

impl SocialPost {
    /// The start of its text as notices and titles show it: 60 characters,
    /// with an ellipsis when there is more.
    pub fn snippet(&self) -> String {
        let start: String = self.text.chars().take(60).collect();
        if self.text.chars().count() > 60 { format!("{start}…") } else { start }
    }
}

impl PostStatus {
    /// Whether a person may still change the text or the time.
    pub fn editable(self) -> bool {
        matches!(self, Self::Draft | Self::Scheduled | Self::NeedsReschedule | Self::Failed | Self::Cancelled)
    }
}

/// A post as stored, with its account's network and handle.
#[derive(Debug, Clone, PartialEq)]
pub struct SocialPost {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub network: Network,
    pub handle: String,
    pub project_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub activity_id: Option<Uuid>,
    pub activity_version: Option<i64>,
    pub text: String,
    /// An image the platform fetches (Instagram needs one).
    pub image_url: Option<String>,
    pub status: PostStatus,
    pub scheduled_at: Option<Timestamp>,
    pub time_zone: String,
    pub approved_by: Option<Uuid>,
    pub approved_at: Option<Timestamp>,
    pub not_before: Option<Timestamp>,
    pub wait_reason: Option<String>,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub attempts: i64,
    pub generation: i64,
    pub platform_post_id: Option<String>,
    pub platform_url: Option<String>,
    /// Instagram's media container, recorded before `media_publish`.
    pub platform_container_id: Option<String>,
    pub published_at: Option<Timestamp>,
    pub error: Option<String>,
    pub error_hint: Option<String>,
    pub unconfirmed_since: Option<Timestamp>,
    pub idempotency_key: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When its text or image was last edited after it was made: an edited
    /// post is no longer covered by its activity's approval.
    pub edited_at: Option<Timestamp>,
    /// One more at every edit of its text or image: a post's own review
    /// decides on a revision.
    pub revision: i64,
    /// The platform's id of what it answers (a reply to an inbox item).
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewPost {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub account_id: Uuid,
    pub project_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub activity_id: Option<Uuid>,
    pub activity_version: Option<i64>,
    pub text: String,
    pub image_url: Option<String>,
    pub status: PostStatus,
    pub scheduled_at: Option<Timestamp>,
    pub time_zone: String,
    pub approved_by: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub created_by: Option<Uuid>,
    /// Its text differs from the activity variant it came from: the
    /// activity's review does not cover it.
    pub edited: bool,
    /// The platform's id of what it answers (a reply to an inbox item).
    pub reply_to: Option<String>,
}

/// A platform's limit on Marketer's app as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformLimit {
    pub network: Network,
    pub until: Timestamp,
    pub note: String,
}

/// A person's change to a post (only while it is editable).
#[derive(Debug, Clone, Default)]
pub struct PostPatch {
    pub text: Option<String>,
    pub image_url: Option<Option<String>>,
    pub scheduled_at: Option<Option<Timestamp>>,
    pub time_zone: Option<String>,
    pub status: Option<PostStatus>,
    pub approved_by: Option<Uuid>,
}

/// Which posts a calendar shows.
#[derive(Debug, Clone, Default)]
pub struct PostFilter {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub account_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub status: Option<PostStatus>,
    /// The post an `Idempotency-Key` created.
    pub idempotency_key: Option<String>,
    pub limit: i64,
}

/// How a publish attempt ended, as the engine records it.
#[derive(Debug, Clone)]
pub enum PublishResult {
    Published {
        platform_post_id: String,
        url: Option<String>,
    },
    /// Refused by the platform for a reason a person must act on.
    Failed {
        error: String,
        hint: String,
    },
    /// Sent, outcome unknown: reconcile before sending again.
    Unconfirmed {
        reason: String,
        check_at: Timestamp,
    },
    /// Not sent (or proven absent): wait and try again.
    Wait {
        until: Timestamp,
        reason: String,
        new_generation: bool,
    },
}

/// One request to a platform about a post, for the post's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PostAttempt {
    pub id: Uuid,
    #[serde(skip)]
    pub post_id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    /// `publish`, `reconcile`, `delete`, `refresh`.
    pub kind: String,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    /// The platform's request id, when it gave one.
    pub request_id: Option<String>,
    pub http_status: Option<i64>,
    pub outcome: String,
    /// The platform's answer, secrets removed.
    pub detail: String,
}

/// An OAuth authorisation waiting for its callback.
#[derive(Debug, Clone)]
pub struct OAuthState {
    pub state_hash: String,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub network: Network,
    pub instance_url: Option<String>,
    pub verifier: Sealed,
    pub project_ids: Option<Vec<Uuid>>,
    pub expires_at: Timestamp,
}

/// Marketer's app on a Mastodon instance.
#[derive(Debug, Clone)]
pub struct MastodonApp {
    pub instance_url: String,
    pub client_id: String,
    pub secret: Sealed,
    pub redirect_uri: String,
    /// The scopes it was registered with; an app registered with fewer
    /// than Marketer asks for now is registered again.
    pub scopes: String,
}

#[async_trait]
pub trait PublishingStore {
    // Accounts.
    /// Stores a newly authorised account, or gives an existing one (same
    /// platform, instance and platform id) its new tokens and reconnects it.
    async fn connect_account(&self, account: &NewAccount, audit: &NewAuditEvent) -> Result<SocialAccount>;
    async fn accounts(&self, tenant_id: Uuid) -> Result<Vec<SocialAccount>>;
    async fn account(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<SocialAccount>>;
    /// The account and its sealed tokens, for the engine (any tenant).
    async fn account_tokens(&self, id: Uuid) -> Result<Option<(SocialAccount, SealedTokens)>>;
    async fn update_account(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: &AccountPatch,
        audit: &NewAuditEvent,
    ) -> Result<SocialAccount>;
    /// Forgets the tokens and cancels the account's unpublished posts; the
    /// published ones stay in the history.
    async fn disconnect_account(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;
    /// Takes the account's refresh lock until `until` if nobody holds it
    /// and its tokens are still at `version` (else someone refreshed them).
    async fn lock_refresh(
        &self,
        id: Uuid,
        version: i64,
        owner: &str,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<bool>;
    /// Records a refresh's outcome and releases the lock (only its holder).
    async fn finish_refresh(
        &self,
        id: Uuid,
        owner: &str,
        outcome: &TokenRefresh,
        now: Timestamp,
        audit: Option<&NewAuditEvent>,
    ) -> Result<()>;
    /// The platform refused the account's credentials for good.
    async fn account_needs_reconnect(&self, id: Uuid, reason: &str, audit: &NewAuditEvent) -> Result<()>;
    async fn account_rate_limited(&self, id: Uuid, until: Timestamp, note: &str) -> Result<()>;
    /// A call with the account's token succeeded (or a health check ran).
    async fn account_checked(
        &self,
        id: Uuid,
        ok: bool,
        next_check_at: Timestamp,
        now: Timestamp,
    ) -> Result<()>;
    /// Connected accounts whose health check is due.
    async fn accounts_due_check(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>>;

    // Posts.
    /// Creates a post; with an idempotency key already used, gives the
    /// existing post (and `false`).
    async fn create_post(&self, post: &NewPost, audit: &NewAuditEvent) -> Result<(SocialPost, bool)>;
    async fn post(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<SocialPost>>;
    async fn posts(&self, tenant_id: Uuid, filter: &PostFilter) -> Result<Vec<SocialPost>>;
    /// Applies a person's change while the post is editable; `Conflict`
    /// once it is publishing or published.
    async fn update_post(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: &PostPatch,
        audit: &NewAuditEvent,
    ) -> Result<SocialPost>;
    /// Marks a published post deleted (after the platform deleted it), or
    /// deletes an unpublished one.
    async fn delete_post(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;
    async fn post_attempts(&self, tenant_id: Uuid, post_id: Uuid) -> Result<Vec<PostAttempt>>;
    async fn record_attempt(&self, attempt: &PostAttempt) -> Result<()>;
    /// Posts ready to publish now (scheduled, due, not waiting, on a
    /// connected account that is not rate limited), earliest first.
    async fn due_posts(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>>;
    /// Scheduled posts due now whose approval is not complete (see
    /// [`SocialPost::edited_at`]), earliest first.
    async fn due_unapproved(&self, now: Timestamp, limit: i64) -> Result<Vec<SocialPost>>;
    /// Compare-and-set: a due scheduled post that is still not approved
    /// becomes `needs_reschedule`, with the audit event and its notices.
    /// `false` if it changed meanwhile (approved, rescheduled, taken).
    async fn hold_post(&self, id: Uuid, reason: &str, audit: &NewAuditEvent) -> Result<bool>;
    /// Unconfirmed posts whose reconciliation is due and unclaimed.
    async fn unconfirmed_due(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>>;
    /// Publishing posts whose lease expired (a replica died mid-request).
    async fn expired_publishing(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>>;
    /// The earliest instant some post becomes due, for the engine's sleep.
    async fn next_post_due(&self) -> Result<Option<Timestamp>>;
    /// Compare-and-set `scheduled` → `publishing` (or, for an unconfirmed
    /// post, takes the lease to reconcile it). Expired leases of
    /// `publishing` posts are taken over too.
    async fn claim_post(
        &self,
        id: Uuid,
        owner: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<SocialPost>>;
    /// Records how a claimed post's attempt ended, if `owner` still holds it.
    async fn finish_post(
        &self,
        id: Uuid,
        owner: &str,
        result: &PublishResult,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<bool>;
    /// Marks a claimed post unconfirmed before its request is sent, so a
    /// crash during the request leaves it unconfirmed rather than retried.
    async fn mark_sending(&self, id: Uuid, owner: &str, now: Timestamp) -> Result<bool>;

    /// Records a platform's limit on Marketer's app as a whole: every
    /// account on it waits until then (a later limit is kept).
    async fn platform_limited(
        &self,
        network: Network,
        until: Timestamp,
        note: &str,
        now: Timestamp,
    ) -> Result<()>;

    /// The platforms limiting Marketer's app now.
    async fn platform_limits(&self, now: Timestamp) -> Result<Vec<PlatformLimit>>;

    /// Records the platform's container for a post this replica holds
    /// (Instagram), before the request that publishes it.
    async fn set_post_container(&self, id: Uuid, owner: &str, container: Option<&str>) -> Result<bool>;

    // OAuth.
    async fn save_oauth_state(&self, state: &OAuthState, now: Timestamp) -> Result<()>;
    /// Takes (and deletes) an authorisation; `None` if unknown or expired.
    async fn take_oauth_state(&self, state_hash: &str, now: Timestamp) -> Result<Option<OAuthState>>;
    async fn mastodon_app(&self, instance_url: &str) -> Result<Option<MastodonApp>>;
    /// Stores an app registration unless one exists; returns the one kept.
    async fn save_mastodon_app(&self, app: &MastodonApp, now: Timestamp) -> Result<MastodonApp>;

    // People.
    async fn user_time_zone(&self, user_id: Uuid) -> Result<Option<String>>;
    async fn set_user_time_zone(&self, user_id: Uuid, zone: &str, audit: &NewAuditEvent) -> Result<()>;
}
