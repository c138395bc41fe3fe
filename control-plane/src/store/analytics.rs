//! Analytics data: the readings of each published post's metrics (a time
//! series in one normalised schema where every metric may be absent) and
//! the collector's per-post schedule.

use async_trait::async_trait;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Result;
use crate::domain::Timestamp;

/// The version of the normalised schema a reading was written in.
pub const METRICS_SCHEMA_VERSION: i64 = 1;

/// One reading of a post's metrics. `None` is "not reported", never zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Metrics {
    pub impressions: Option<i64>,
    pub reach: Option<i64>,
    /// Likes, favourites, reactions.
    pub likes: Option<i64>,
    /// Comments and replies.
    pub comments: Option<i64>,
    /// Shares, reposts, boosts, quotes.
    pub shares: Option<i64>,
    /// Saves and bookmarks.
    pub saves: Option<i64>,
    pub link_clicks: Option<i64>,
    pub profile_visits: Option<i64>,
    pub video_views: Option<i64>,
}

impl Metrics {
    /// Each metric by name, in the schema's order.
    pub fn named(&self) -> [(&'static str, Option<i64>); 9] {
        [
            ("impressions", self.impressions),
            ("reach", self.reach),
            ("likes", self.likes),
            ("comments", self.comments),
            ("shares", self.shares),
            ("saves", self.saves),
            ("link_clicks", self.link_clicks),
            ("profile_visits", self.profile_visits),
            ("video_views", self.video_views),
        ]
    }

    /// Engagements: likes, comments, shares and saves that were reported;
    /// `None` when none was.
    pub fn engagements(&self) -> Option<i64> {
        let parts = [self.likes, self.comments, self.shares, self.saves];
        parts.iter().any(Option::is_some).then(|| parts.iter().flatten().sum())
    }
}

/// A stored reading.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricsReading {
    #[schema(value_type = String, format = DateTime)]
    pub collected_at: Timestamp,
    pub schema_version: i64,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// A published post whose metrics are due.
#[derive(Debug, Clone)]
pub struct DueMetrics {
    pub post_id: Uuid,
    pub account_id: Uuid,
    pub platform_post_id: String,
    pub published_at: Timestamp,
    /// The schedule value the claim compares against.
    pub next_at: Option<Timestamp>,
}

/// A published post's latest reading, for best times to post.
#[derive(Debug, Clone)]
pub struct PostOutcome {
    pub account_id: Uuid,
    pub published_at: Timestamp,
    /// The account's posting time zone.
    pub time_zone: String,
    pub metrics: Metrics,
}

/// Which published posts a report covers.
#[derive(Debug, Clone, Default)]
pub struct PerformanceFilter {
    /// Published at or after.
    pub from: Option<Timestamp>,
    /// Published before.
    pub to: Option<Timestamp>,
    pub account_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    /// A platform (`x`, `mastodon`, ...).
    pub network: Option<String>,
}

/// A published post and its latest reading, for reports and exports.
#[derive(Debug, Clone)]
pub struct PostPerformance {
    pub post_id: Uuid,
    pub account_id: Uuid,
    pub network: String,
    pub handle: String,
    pub project_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub text: String,
    pub published_at: Timestamp,
    pub platform_url: Option<String>,
    /// When it was last read; `None`: not read yet.
    pub collected_at: Option<Timestamp>,
    pub metrics: Metrics,
    /// The account's followers when it was published, where the service
    /// needs them for a rate (the store leaves this `None`).
    pub followers: Option<i64>,
}

/// An account's followers on a UTC day (the day's latest reading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowersReading {
    pub account_id: Uuid,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub followers: i64,
}

/// An account's latest followers reading (none yet: `None`) and why its
/// last read failed, if it did.
#[derive(Debug, Clone)]
pub struct LatestFollowers {
    pub account_id: Uuid,
    pub day: Option<String>,
    pub followers: Option<i64>,
    pub error: Option<String>,
}

/// An account whose followers are due to be read, and the schedule seen.
#[derive(Debug, Clone)]
pub struct DueFollowers {
    pub account_id: Uuid,
    pub next_at: Option<Timestamp>,
}

#[async_trait]
pub trait AnalyticsStore: Send + Sync {
    /// Published posts whose metrics are due: `next_at` has come, or
    /// (never collected) they were published before `first_before`; only
    /// posts published after `oldest`, of accounts that are connected and
    /// not rate limited. Oldest due first.
    async fn metrics_due(
        &self,
        now: Timestamp,
        first_before: Timestamp,
        oldest: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueMetrics>>;
    /// Claims a due post for a round (compare-and-set on its schedule,
    /// moved to `until`): `false` if another replica took it.
    async fn claim_metrics(&self, post_id: Uuid, seen: Option<Timestamp>, until: Timestamp) -> Result<bool>;
    /// Records a reading and the next time (`None`: collection ends).
    async fn record_metrics(
        &self,
        post_id: Uuid,
        metrics: &Metrics,
        raw: &str,
        collected_at: Timestamp,
        next_at: Option<Timestamp>,
    ) -> Result<()>;
    /// Records a failed round: why, and when to try again.
    async fn metrics_failed(&self, post_id: Uuid, error: &str, retry_at: Timestamp) -> Result<()>;
    /// A post's readings, oldest first, and its last failure.
    async fn post_metrics(
        &self,
        tenant_id: Uuid,
        post_id: Uuid,
    ) -> Result<(Vec<MetricsReading>, Option<String>)>;
    /// The latest reading of each post of the tenant's `platform` accounts
    /// published since `since` and read at least once, newest first, at
    /// most `limit`.
    async fn post_outcomes(
        &self,
        tenant_id: Uuid,
        platform: &str,
        since: Timestamp,
        limit: i64,
    ) -> Result<Vec<PostOutcome>>;
    /// The tenant's published posts that `filter` selects, each with its
    /// latest reading (none if never read), oldest first, at most `limit`.
    async fn post_performance(
        &self,
        tenant_id: Uuid,
        filter: &PerformanceFilter,
        limit: i64,
    ) -> Result<Vec<PostPerformance>>;
    /// Connected accounts, not rate limited, whose followers are due
    /// (`next_at` has come, or never read), at most `limit`.
    async fn followers_due(&self, now: Timestamp, limit: i64) -> Result<Vec<DueFollowers>>;
    /// Claims an account's followers round (compare-and-set, as
    /// [`Self::claim_metrics`]).
    async fn claim_followers(
        &self,
        account_id: Uuid,
        seen: Option<Timestamp>,
        until: Timestamp,
    ) -> Result<bool>;
    /// Records the account's followers for the UTC day of `collected_at`
    /// (replacing that day's earlier reading) and the next time.
    async fn record_followers(
        &self,
        account_id: Uuid,
        followers: i64,
        collected_at: Timestamp,
        next_at: Timestamp,
    ) -> Result<()>;
    /// Records a failed followers round (`retry_at` far away: not read again).
    async fn followers_failed(&self, account_id: Uuid, error: &str, retry_at: Timestamp) -> Result<()>;
    /// The tenant's followers readings from `from_day` to `to_day`
    /// (inclusive, `YYYY-MM-DD`), of one account or one network's or all,
    /// by account then day.
    async fn followers(
        &self,
        tenant_id: Uuid,
        from_day: &str,
        to_day: &str,
        account_id: Option<Uuid>,
        network: Option<&str>,
    ) -> Result<Vec<FollowersReading>>;
    /// Each of the tenant's accounts' latest followers reading and last
    /// followers failure.
    async fn latest_followers(&self, tenant_id: Uuid) -> Result<Vec<LatestFollowers>>;
}
