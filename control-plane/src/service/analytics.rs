//! Analytics: what each published post achieved. This part owns reading a
//! post's metrics (the readings the collector in `publishing/collect.rs`
//! stores), the one definition of engagement rate, saying which metrics a
//! platform stopped reporting, and the best times to post, computed from
//! the account's own history (or its organisation's accounts on the same
//! network) on each request, so never staler than the latest reading.

use std::collections::HashMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, TenantAccess};
use crate::domain::{Permission, Timestamp};
use crate::error::{FoundExt, NotFoundExt, Result};
use crate::publishing::schedule::{self, HOURS_PER_WEEK};
use crate::store::{
    FollowersReading, LatestFollowers, Metrics, MetricsReading, Network, PostOutcome, SocialAccount,
};

/// How engagement rate is computed, shown next to every number that uses it.
pub const ENGAGEMENT_RATE: &str = "Engagement rate = engagements (likes, comments, shares and saves that the \
     platform reports) ÷ impressions. Where the platform reports no impressions, engagements ÷ the account's \
     followers on the day it was published (that day's reading or the last before it, else the first after); \
     with neither, there is no rate.";

/// A metric's name as people read it.
pub fn metric_label(name: &str) -> &'static str {
    match name {
        "impressions" => "Impressions",
        "reach" => "Reach",
        "likes" => "Likes",
        "comments" => "Comments and replies",
        "shares" => "Shares and reposts",
        "saves" => "Saves and bookmarks",
        "link_clicks" => "Link clicks",
        "profile_visits" => "Profile visits",
        "video_views" => "Video views",
        _ => "Other",
    }
}

/// A metric the platform reported before and not in the latest reading.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NoLongerReported {
    pub metric: String,
    /// The first reading without it.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
}

/// A post's metrics.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostMetricsView {
    pub post_id: Uuid,
    /// Every reading, oldest first (a metric the platform did not report is
    /// null, never 0).
    pub readings: Vec<MetricsReading>,
    /// The latest reading's metrics.
    pub latest: Option<Metrics>,
    pub engagements: Option<i64>,
    /// Engagements ÷ impressions, else ÷ the account's followers (see the
    /// definition); a rate by followers can exceed 1.
    pub engagement_rate: Option<f64>,
    pub engagement_rate_definition: &'static str,
    pub no_longer_reported: Vec<NoLongerReported>,
    /// Why the last reading failed, if it did.
    pub last_error: Option<String>,
}

/// What a post's engagements are divided by: its impressions, else the
/// account's `followers` (see [`ENGAGEMENT_RATE`]).
pub fn rate_base(metrics: &Metrics, followers: Option<i64>) -> Option<i64> {
    metrics.impressions.filter(|i| *i > 0).or(followers.filter(|f| *f > 0))
}

/// Engagements ÷ impressions, else ÷ `followers` (see [`ENGAGEMENT_RATE`]).
pub fn engagement_rate(metrics: &Metrics, followers: Option<i64>) -> Option<f64> {
    let base = rate_base(metrics, followers)?;
    #[allow(clippy::cast_precision_loss)]
    let rate = metrics.engagements()? as f64 / base as f64;
    Some(rate)
}

/// The account's followers on `day` from its readings (sorted by day):
/// the last reading on or before it, else the first after it.
pub fn followers_on(readings: &[FollowersReading], day: &str) -> Option<i64> {
    let after = readings.partition_point(|r| r.day.as_str() <= day);
    readings.get(after.checked_sub(1).unwrap_or(after)).map(|r| r.followers)
}

/// The metrics reported in an earlier reading and absent from the latest,
/// with the first reading since which each is absent.
pub fn no_longer_reported(readings: &[MetricsReading]) -> Vec<NoLongerReported> {
    let Some(latest) = readings.last() else { return Vec::new() };
    let mut gone = Vec::new();
    for (i, (name, value)) in latest.metrics.named().iter().enumerate() {
        if value.is_some() {
            continue;
        }
        let last_seen = readings.iter().rposition(|r| r.metrics.named()[i].1.is_some());
        if let Some(at) = last_seen {
            gone.push(NoLongerReported { metric: (*name).to_owned(), since: readings[at + 1].collected_at });
        }
    }
    gone
}

/// How far back best times look.
pub const HISTORY_WEEKS: i64 = 16;
/// Fewer measured posts than this: no recommendation from that history.
pub const MIN_POSTS: usize = 10;
/// A slot is recommended only if at least this many posts went out in it.
pub const MIN_SLOT_POSTS: usize = 2;
/// Smoothing: each slot's average is pulled towards the overall average as
/// if it had this many more posts at the overall average.
const PRIOR_POSTS: f64 = 2.0;
/// How many slots are recommended.
const TOP_SLOTS: usize = 3;
/// At most this many posts are read for one network's history.
const HISTORY_LIMIT: i64 = 20_000;

/// What best times are measured by.
pub const BEST_TIMES_BY_RATE: &str = "Slots are ranked by average engagement rate (engagements ÷ impressions) of \
     the posts published in that hour of the week, in the account's time zone, over the last 16 weeks; each \
     hour is blended with its neighbours (half weight) and pulled towards the overall average by two posts' \
     worth, so one lucky post does not make a slot.";
pub const BEST_TIMES_BY_COUNT: &str = "This platform reports no impressions, so slots are ranked by average \
     engagements per post (likes, replies, reposts, saves) published in that hour of the week, in the account's \
     time zone, over the last 16 weeks; each hour is blended with its neighbours (half weight) and pulled \
     towards the overall average by two posts' worth.";

/// One hour of the week and how posts published in it did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HourScore {
    /// 0 = Monday 00:00–00:59 … 167 = Sunday 23:00–23:59, account time.
    pub hour_of_week: u16,
    /// `Mon 09:00`.
    pub label: String,
    /// Posts published in this hour.
    pub posts: usize,
    /// The smoothed average of the measure.
    pub score: f64,
}

/// A recommended slot.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BestSlot {
    #[serde(flatten)]
    pub hour: HourScore,
    /// When it next comes (strictly after now).
    #[schema(value_type = String, format = DateTime)]
    pub next_at: Timestamp,
}

/// Where a recommendation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BestTimesSource {
    /// The account's own posts.
    Account,
    /// Too few of its own: the organisation's accounts on the same network.
    Network,
    /// Too few posts anywhere: no recommendation.
    None,
}

/// The best times to post for an account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BestTimes {
    pub account_id: Uuid,
    pub source: BestTimesSource,
    /// `engagement_rate` or `engagements_per_post`; null with no source.
    pub measure: Option<&'static str>,
    pub definition: Option<&'static str>,
    /// The account's posting time zone, in which hours are counted.
    pub time_zone: String,
    /// Measured posts behind the recommendation.
    pub posts: usize,
    /// `high` (100+ posts), `medium` (30+), `low` (10+) or `none`.
    pub confidence: &'static str,
    /// What the recommendation rests on, in a sentence.
    pub explanation: String,
    /// The top slots, best first (none without a source).
    pub slots: Vec<BestSlot>,
    /// Every hour of the week that has posts.
    pub hours: Vec<HourScore>,
}

/// The label of an hour of the week: `Mon 09:00`.
pub fn hour_label(hour_of_week: u16) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    format!("{} {:02}:00", DAYS[usize::from(hour_of_week / 24) % 7], hour_of_week % 24)
}

/// Scores every hour of the week from `(hour of week, value)` samples:
/// each hour's sum and count blended with its neighbours at half weight,
/// then pulled towards the overall mean by [`PRIOR_POSTS`]. Only hours
/// with posts of their own are returned.
pub fn score_hours(samples: &[(u16, f64)]) -> Vec<HourScore> {
    if samples.is_empty() {
        return Vec::new();
    }
    let hours = usize::from(HOURS_PER_WEEK);
    let mut count = vec![0usize; hours];
    let mut sum = vec![0f64; hours];
    for (hour, value) in samples {
        let h = usize::from(*hour) % hours;
        count[h] += 1;
        sum[h] += value;
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = sum.iter().sum::<f64>() / samples.len() as f64;
    (0..hours)
        .filter(|h| count[*h] > 0)
        .map(|h| {
            let (before, after) = ((h + hours - 1) % hours, (h + 1) % hours);
            #[allow(clippy::cast_precision_loss)]
            let n = count[h] as f64 + 0.5 * (count[before] + count[after]) as f64;
            let total = sum[h] + 0.5 * (sum[before] + sum[after]);
            let hour = u16::try_from(h).unwrap_or(0);
            HourScore {
                hour_of_week: hour,
                label: hour_label(hour),
                posts: count[h],
                score: (total + PRIOR_POSTS * mean) / (n + PRIOR_POSTS),
            }
        })
        .collect()
}

/// The measure of one post: its engagement rate, or its engagements where
/// `by_rate` is false.
fn measure(metrics: &Metrics, by_rate: bool) -> Option<f64> {
    if by_rate {
        engagement_rate(metrics, None)
    } else {
        #[allow(clippy::cast_precision_loss)]
        metrics.engagements().map(|e| e as f64)
    }
}

fn confidence(posts: usize) -> &'static str {
    match posts {
        100.. => "high",
        30.. => "medium",
        MIN_POSTS.. => "low",
        _ => "none",
    }
}

/// The best times for `account` from its network's `history` (the
/// tenant's posts on that network): its own posts if there are enough,
/// else all of them, else none. Hours are counted in each post's account's
/// zone (the audience's day), slots given in `account`'s.
pub fn best_times(account: &SocialAccount, history: &[PostOutcome], now: Timestamp) -> BestTimes {
    best_times_for(account.id, account.network, &account.posting_time_zone, history, now)
}

fn best_times_for(
    account_id: Uuid,
    network: Network,
    time_zone: &str,
    history: &[PostOutcome],
    now: Timestamp,
) -> BestTimes {
    let tz = schedule::zone(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let own: Vec<&PostOutcome> = history.iter().filter(|o| o.account_id == account_id).collect();
    let all: Vec<&PostOutcome> = history.iter().collect();
    let rated =
        |pool: &[&PostOutcome]| pool.iter().filter(|o| engagement_rate(&o.metrics, None).is_some()).count();
    let counted = |pool: &[&PostOutcome]| pool.iter().filter(|o| o.metrics.engagements().is_some()).count();
    // The account's own history first, by rate where enough posts have
    // one; then the network's.
    let choice = [(BestTimesSource::Account, &own), (BestTimesSource::Network, &all)].into_iter().find_map(
        |(source, pool)| {
            if rated(pool) >= MIN_POSTS {
                Some((source, pool, true))
            } else if counted(pool) >= MIN_POSTS {
                Some((source, pool, false))
            } else {
                None
            }
        },
    );
    let Some((source, pool, by_rate)) = choice else {
        let measured = counted(&all);
        return BestTimes {
            account_id,
            source: BestTimesSource::None,
            measure: None,
            definition: None,
            time_zone: time_zone.to_owned(),
            posts: measured,
            confidence: "none",
            explanation: format!(
                "No recommendation yet: best times need at least {MIN_POSTS} published posts with metrics in \
                 the last {HISTORY_WEEKS} weeks, and this account and the organisation's other {} accounts \
                 have {measured}.",
                network.label()
            ),
            slots: Vec::new(),
            hours: Vec::new(),
        };
    };
    let samples: Vec<(u16, f64)> = pool
        .iter()
        .filter_map(|o| {
            let zone = schedule::zone(&o.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
            Some((schedule::hour_of_week(o.published_at, &zone), measure(&o.metrics, by_rate)?))
        })
        .collect();
    let hours = score_hours(&samples);
    let mut ranked: Vec<&HourScore> = hours.iter().filter(|h| h.posts >= MIN_SLOT_POSTS).collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.hour_of_week.cmp(&b.hour_of_week)));
    let slots: Vec<BestSlot> = ranked
        .into_iter()
        .take(TOP_SLOTS)
        .filter_map(|h| {
            Some(BestSlot {
                next_at: schedule::next_hour_of_week(h.hour_of_week, &tz, now)?,
                hour: h.clone(),
            })
        })
        .collect();
    let whose = match source {
        BestTimesSource::Account => "this account's".to_owned(),
        _ => format!(
            "the organisation's {} accounts' (this one has fewer than {MIN_POSTS} of its own)",
            network.label()
        ),
    };
    let explanation = if slots.is_empty() {
        format!(
            "No hour of the week has {MIN_SLOT_POSTS} or more of {whose} {} measured posts yet; posting at \
             different times will show which work.",
            samples.len()
        )
    } else {
        format!("From {whose} {} measured posts in the last {HISTORY_WEEKS} weeks.", samples.len())
    };
    BestTimes {
        account_id,
        source,
        measure: Some(if by_rate { "engagement_rate" } else { "engagements_per_post" }),
        definition: Some(if by_rate { BEST_TIMES_BY_RATE } else { BEST_TIMES_BY_COUNT }),
        time_zone: time_zone.to_owned(),
        posts: samples.len(),
        confidence: confidence(samples.len()),
        explanation,
        slots,
        hours,
    }
}

impl App {
    /// The tenant's history on each of `networks`.
    async fn history(
        &self,
        tenant_id: Uuid,
        networks: &[Network],
    ) -> Result<HashMap<Network, Vec<PostOutcome>>> {
        let since =
            Timestamp::from_datetime(Timestamp::now().as_datetime() - time::Duration::weeks(HISTORY_WEEKS));
        let mut by_network = HashMap::new();
        for network in networks {
            if !by_network.contains_key(network) {
                let history =
                    self.store.post_outcomes(tenant_id, network.into(), since, HISTORY_LIMIT).await?;
                by_network.insert(*network, history);
            }
        }
        Ok(by_network)
    }

    /// The best times to post for an account.
    pub async fn best_times(&self, access: &TenantAccess, account_id: Uuid) -> Result<BestTimes> {
        access.require(Permission::PostsRead)?;
        let account = self.store.account(access.tenant_id, account_id).await.found("account")?;
        self.best_times_of(access.tenant_id, &account).await
    }

    pub(crate) async fn best_times_of(&self, tenant_id: Uuid, account: &SocialAccount) -> Result<BestTimes> {
        let history = self.history(tenant_id, &[account.network]).await?;
        let pool = history.get(&account.network).map(Vec::as_slice).unwrap_or_default();
        Ok(best_times(account, pool, Timestamp::now()))
    }

    /// The best times of every account of the tenant (one history read per
    /// network), by account id.
    pub async fn best_times_all(&self, access: &TenantAccess) -> Result<HashMap<Uuid, BestTimes>> {
        access.require(Permission::PostsRead)?;
        let accounts = self.store.accounts(access.tenant_id).await?;
        let networks: Vec<Network> = accounts.iter().map(|a| a.network).collect();
        let history = self.history(access.tenant_id, &networks).await?;
        let now = Timestamp::now();
        Ok(accounts
            .iter()
            .map(|a| {
                let pool = history.get(&a.network).map(Vec::as_slice).unwrap_or_default();
                (a.id, best_times(a, pool, now))
            })
            .collect())
    }

    /// Each account's latest followers reading and last failure, by account.
    pub async fn latest_followers(&self, access: &TenantAccess) -> Result<HashMap<Uuid, LatestFollowers>> {
        access.require(Permission::AccountsRead)?;
        let latest = self.store.latest_followers(access.tenant_id).await?;
        Ok(latest.into_iter().map(|l| (l.account_id, l)).collect())
    }

    /// The followers of a post's account on the day it was published.
    async fn followers_at_publishing(&self, tenant_id: Uuid, post_id: Uuid) -> Result<Option<i64>> {
        let Some(post) = self.store.post(tenant_id, post_id).await? else { return Ok(None) };
        let Some(published) = post.published_at else { return Ok(None) };
        let day = published.as_datetime().date();
        let (from, to) = (day - time::Duration::days(90), day + time::Duration::days(90));
        let readings = self
            .store
            .followers(tenant_id, &from.to_string(), &to.to_string(), Some(post.account_id), None)
            .await?;
        Ok(followers_on(&readings, &day.to_string()))
    }

    pub async fn post_metrics(&self, access: &TenantAccess, post_id: Uuid) -> Result<PostMetricsView> {
        access.require(Permission::ProjectsRead)?;
        let (readings, last_error) =
            self.store.post_metrics(access.tenant_id, post_id).await.or_not_found("post")?;
        let latest = readings.last().map(|r| r.metrics.clone());
        let followers = match &latest {
            Some(m) if m.impressions.is_none() => {
                self.followers_at_publishing(access.tenant_id, post_id).await?
            }
            _ => None,
        };
        Ok(PostMetricsView {
            post_id,
            engagements: latest.as_ref().and_then(Metrics::engagements),
            engagement_rate: latest.as_ref().and_then(|m| engagement_rate(m, followers)),
            engagement_rate_definition: ENGAGEMENT_RATE,
            no_longer_reported: no_longer_reported(&readings),
            latest,
            readings,
            last_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(minute: i64, metrics: Metrics) -> MetricsReading {
        MetricsReading {
            collected_at: Timestamp::parse_rfc3339("2026-12-05T12:00:00Z").unwrap()
                + time::Duration::minutes(minute),
            schema_version: 1,
            metrics,
        }
    }

    #[test]
    fn engagement_rate_needs_impressions_and_counts_only_what_was_reported() {
        let m = Metrics {
            impressions: Some(200),
            likes: Some(10),
            comments: Some(4),
            shares: None,
            ..Metrics::default()
        };
        assert_eq!(m.engagements(), Some(14));
        assert_eq!(engagement_rate(&m, None), Some(0.07));
        assert_eq!(engagement_rate(&m, Some(1)), Some(0.07), "impressions come first");
        let counts = Metrics { likes: Some(3), ..Metrics::default() };
        assert_eq!(engagement_rate(&counts, None), None);
        assert_eq!(engagement_rate(&counts, Some(300)), Some(0.01), "else ÷ followers");
        assert_eq!(engagement_rate(&counts, Some(0)), None);
        assert_eq!(Metrics::default().engagements(), None, "nothing reported is not zero");
    }

    #[test]
    fn followers_on_a_day_are_the_last_reading_before_it_else_the_first_after() {
        let a = Uuid::now_v7();
        let r = |day: &str, followers| FollowersReading { account_id: a, day: day.into(), followers };
        let readings = [r("2026-03-02", 100), r("2026-03-05", 110), r("2026-03-09", 130)];
        assert_eq!(followers_on(&readings, "2026-03-01"), Some(100));
        assert_eq!(followers_on(&readings, "2026-03-02"), Some(100));
        assert_eq!(followers_on(&readings, "2026-03-08"), Some(110));
        assert_eq!(followers_on(&readings, "2026-12-31"), Some(130));
        assert_eq!(followers_on(&[], "2026-03-08"), None);
    }

    #[test]
    fn a_metric_the_platform_stopped_reporting_is_named_with_when() {
        let readings = vec![
            reading(0, Metrics { impressions: Some(10), likes: Some(1), ..Metrics::default() }),
            reading(60, Metrics { impressions: Some(20), likes: Some(2), ..Metrics::default() }),
            reading(120, Metrics { likes: Some(3), ..Metrics::default() }),
            reading(180, Metrics { likes: Some(3), ..Metrics::default() }),
        ];
        let gone = no_longer_reported(&readings);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].metric.as_str(), gone[0].since), ("impressions", readings[2].collected_at));
        assert!(no_longer_reported(&readings[..2]).is_empty());
    }

    fn outcome(account: Uuid, at: &str, impressions: Option<i64>, likes: i64) -> PostOutcome {
        PostOutcome {
            account_id: account,
            published_at: Timestamp::parse_rfc3339(at).unwrap(),
            time_zone: "America/New_York".into(),
            metrics: Metrics { impressions, likes: Some(likes), ..Metrics::default() },
        }
    }

    /// Posts at 09:00 New York time on Tuesdays do best; the slot is the
    /// same local hour on both sides of the change to summer time.
    fn history(account: Uuid) -> Vec<PostOutcome> {
        let mut h = Vec::new();
        // Tuesdays 09:00 EST (14:00 UTC) and, after 2027-03-14, EDT (13:00 UTC): 10 %.
        for at in
            ["2027-02-23T14:05:00Z", "2027-03-02T14:10:00Z", "2027-03-09T14:00:00Z", "2027-03-16T13:20:00Z"]
        {
            h.push(outcome(account, at, Some(1000), 100));
        }
        // Thursdays 17:00 local: 4 %; Saturdays 23:00: 1 %.
        for at in
            ["2027-02-25T22:00:00Z", "2027-03-04T22:30:00Z", "2027-03-11T22:00:00Z", "2027-03-18T21:00:00Z"]
        {
            h.push(outcome(account, at, Some(1000), 40));
        }
        for at in ["2027-02-28T04:00:00Z", "2027-03-07T04:00:00Z", "2027-03-14T04:00:00Z"] {
            h.push(outcome(account, at, Some(1000), 10));
        }
        h
    }

    #[test]
    fn best_times_rank_local_hours_of_the_week_with_what_backs_them() {
        let account = Uuid::now_v7();
        let now = Timestamp::parse_rfc3339("2027-03-19T12:00:00Z").unwrap();
        let best = best_times_for(account, Network::X, "America/New_York", &history(account), now);
        assert_eq!(best.source, BestTimesSource::Account);
        assert_eq!(best.measure, Some("engagement_rate"));
        assert_eq!((best.posts, best.confidence), (11, "low"));
        let labels: Vec<&str> = best.slots.iter().map(|s| s.hour.label.as_str()).collect();
        assert_eq!(labels, ["Tue 09:00", "Thu 17:00", "Sat 23:00"]);
        assert_eq!(best.slots[0].hour.posts, 4);
        // Smoothed: below the slot's own 10 %, above the overall mean.
        let score = best.slots[0].hour.score;
        assert!(score < 0.10 && score > 0.05, "{score}");
        // Next Tuesday 09:00 in New York (EDT): 13:00 UTC.
        assert_eq!(best.slots[0].next_at, Timestamp::parse_rfc3339("2027-03-23T13:00:00Z").unwrap());
        assert!(best.explanation.contains("this account's 11 measured posts"), "{}", best.explanation);
    }

    #[test]
    fn too_few_posts_fall_back_to_the_network_then_to_nothing() {
        let (account, other) = (Uuid::now_v7(), Uuid::now_v7());
        let now = Timestamp::parse_rfc3339("2027-03-19T12:00:00Z").unwrap();
        let mut pool = history(other);
        pool.push(outcome(account, "2027-03-16T13:00:00Z", Some(1000), 100));
        let best = best_times_for(account, Network::X, "Europe/Berlin", &pool, now);
        assert_eq!(best.source, BestTimesSource::Network);
        assert_eq!(best.posts, 12);
        // The network's Tuesday 09:00 (New York time), given as Berlin's next Tuesday 09:00.
        assert_eq!(best.slots[0].hour.label, "Tue 09:00");
        assert_eq!(best.slots[0].next_at, Timestamp::parse_rfc3339("2027-03-23T08:00:00Z").unwrap());
        assert!(best.explanation.contains("fewer than 10"), "{}", best.explanation);

        let few = &pool[..5];
        let none = best_times_for(account, Network::X, "Europe/Berlin", few, now);
        assert_eq!((none.source, none.confidence, none.slots.len()), (BestTimesSource::None, "none", 0));
        assert!(none.explanation.contains("at least 10"), "{}", none.explanation);

        // No impressions (Mastodon): ranked by engagements per post, and said so.
        let counts: Vec<PostOutcome> = history(account)
            .into_iter()
            .map(|mut o| {
                o.metrics.impressions = None;
                o
            })
            .collect();
        let by_count = best_times_for(account, Network::Mastodon, "America/New_York", &counts, now);
        assert_eq!(by_count.measure, Some("engagements_per_post"));
        assert_eq!(by_count.slots[0].hour.label, "Tue 09:00");
    }
}
