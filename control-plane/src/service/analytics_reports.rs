//! Analytics reports: what a tenant's published posts achieved over a
//! period (filtered by account, project, campaign or network), compared
//! with the period before, by network, over time (day, week or month in
//! the reader's time zone) and the top posts; and the same posts as CSV.
//! Each post counts with its latest reading; what a platform does not
//! report is left out of a sum, never counted as 0.

use std::collections::HashMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::analytics::{engagement_rate, followers_on, rate_base};
use super::{App, TenantAccess};
use crate::domain::{Permission, Timestamp};
use crate::error::{Error, Result};
use crate::publishing::schedule;
use crate::store::{FollowersReading, Network, PerformanceFilter, PostPerformance};

/// At most this many posts are read for one report.
const REPORT_LIMIT: i64 = 50_000;
/// The longest period a report covers.
const MAX_DAYS: i32 = 366;
/// How many top posts a report lists.
const TOP_POSTS: usize = 10;

/// How engagement rate is computed over several posts.
pub const AGGREGATE_RATE: &str = "Engagement rate over several posts = their engagements ÷ their impressions, \
     where a post whose platform reports no impressions counts its account's followers on the day it was \
     published instead; posts with neither are left out. Each post counts with its latest reading.";

/// Which posts a report covers and how it groups them. Every field is
/// optional; an empty value is the same as none.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// First day, `YYYY-MM-DD`, in `time_zone` [default: 29 days before `to`].
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` [default: today]. At most 366 days after `from`.
    pub to: Option<String>,
    /// `day`, `week` (from Monday) or `month` [default: by the period's length].
    pub bucket: Option<String>,
    pub account_id: Option<String>,
    pub project_id: Option<String>,
    pub campaign_id: Option<String>,
    /// `x`, `linkedin`, `facebook`, `instagram`, `mastodon` or `bluesky`.
    pub network: Option<String>,
    /// IANA zone the days are counted in [default: yours, else UTC].
    pub time_zone: Option<String>,
}

/// Sums over a set of posts; a metric no post reported is null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Totals {
    pub posts: i64,
    /// Posts read at least once.
    pub measured_posts: i64,
    pub impressions: Option<i64>,
    pub engagements: Option<i64>,
    /// See `engagement_rate_definition`.
    pub engagement_rate: Option<f64>,
}

impl Totals {
    fn of<'a>(posts: impl IntoIterator<Item = &'a PostPerformance>) -> Self {
        let mut t = Totals::default();
        let (mut rated_engagements, mut rated_impressions) = (0i64, 0i64);
        for p in posts {
            t.posts += 1;
            if p.collected_at.is_some() {
                t.measured_posts += 1;
            }
            if let Some(i) = p.metrics.impressions {
                *t.impressions.get_or_insert(0) += i;
            }
            if let Some(e) = p.metrics.engagements() {
                *t.engagements.get_or_insert(0) += e;
                if let Some(base) = rate_base(&p.metrics, p.followers) {
                    rated_engagements += e;
                    rated_impressions += base;
                }
            }
        }
        #[allow(clippy::cast_precision_loss)]
        if rated_impressions > 0 {
            t.engagement_rate = Some(rated_engagements as f64 / rated_impressions as f64);
        }
        t
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NetworkTotals {
    pub network: Network,
    #[serde(flatten)]
    pub totals: Totals,
}

/// One bucket of the period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// The bucket's first day.
    pub start: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TopPost {
    pub post_id: Uuid,
    pub network: Network,
    pub handle: String,
    /// The first 140 characters.
    pub text: String,
    #[schema(value_type = String, format = DateTime)]
    pub published_at: Timestamp,
    pub platform_url: Option<String>,
    pub impressions: Option<i64>,
    pub engagements: Option<i64>,
    pub engagement_rate: Option<f64>,
}

/// The followers at the end of one bucket of the period.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowersPoint {
    /// The bucket's first day.
    pub start: String,
    /// The selected accounts' followers by the bucket's last day (each
    /// account's last reading up to then, if it is at most a week old);
    /// null before any reading.
    pub followers: Option<i64>,
}

/// The audience of the accounts a report selects. The account and network
/// filters narrow it; projects and campaigns do not (an audience belongs to
/// an account, not to a campaign). Read once a day per account and kept by
/// UTC day; a bucket takes the readings of the days up to its last.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FollowersSummary {
    /// Accounts with a reading in the last week of the period.
    pub accounts: i64,
    /// Their followers at the period's end (each one's last reading).
    pub latest: i64,
    /// The selected accounts' followers the day before the period began
    /// (else the first bucket's).
    pub at_start: i64,
    /// One point per bucket of `series`.
    pub series: Vec<FollowersPoint>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AnalyticsReport {
    pub from: String,
    pub to: String,
    pub time_zone: String,
    /// `day`, `week` or `month`.
    pub bucket: &'static str,
    /// The period of the same length just before.
    pub previous_from: String,
    pub previous_to: String,
    pub totals: Totals,
    pub previous: Totals,
    pub by_network: Vec<NetworkTotals>,
    /// Every bucket of the period, empty ones included.
    pub series: Vec<SeriesPoint>,
    /// By engagements, most first.
    pub top_posts: Vec<TopPost>,
    /// Null when none of the selected accounts' followers were read yet.
    pub followers: Option<FollowersSummary>,
    pub engagement_rate_definition: &'static str,
    /// More than 50,000 posts: the report covers the first 50,000.
    pub truncated: bool,
}

/// A report's period and filters, checked.
#[derive(Debug)]
pub struct ReportScope {
    pub from: Date,
    pub to: Date,
    pub zone: String,
    pub bucket: &'static str,
    pub filter: PerformanceFilter,
}

fn optional(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

fn id(field: &'static str, value: Option<&String>) -> Result<Option<Uuid>> {
    optional(value)
        .map(|v| Uuid::parse_str(v).map_err(|_| Error::invalid(field, "must be an id (a UUID)")))
        .transpose()
}

fn day(field: &'static str, value: Option<&String>) -> Result<Option<Date>> {
    optional(value)
        .map(|v| {
            v.parse::<Date>()
                .ok()
                .filter(|d| (1970..=2999).contains(&d.year()))
                .ok_or_else(|| Error::invalid(field, "must be a date, YYYY-MM-DD, between 1970 and 2999"))
        })
        .transpose()
}

/// The first day of the bucket `d` falls in.
fn bucket_start(d: Date, bucket: &str) -> Date {
    match bucket {
        "week" => {
            d.checked_sub(jiff::Span::new().days(i64::from(d.weekday().to_monday_zero_offset()))).unwrap_or(d)
        }
        "month" => d.first_of_month(),
        _ => d,
    }
}

fn next_bucket(d: Date, bucket: &str) -> Option<Date> {
    let step = match bucket {
        "week" => jiff::Span::new().weeks(1),
        "month" => jiff::Span::new().months(1),
        _ => jiff::Span::new().days(1),
    };
    d.checked_add(step).ok()
}

/// A followers reading older than this many days says nothing of a later
/// day (the account was disconnected or its reads fail).
const STALE_DAYS: i64 = 7;

/// Readings by account, each account's sorted by day (as the store gives them).
fn group_by_account(readings: Vec<FollowersReading>) -> HashMap<Uuid, Vec<FollowersReading>> {
    let mut by_account: HashMap<Uuid, Vec<FollowersReading>> = HashMap::new();
    for r in readings {
        by_account.entry(r.account_id).or_default().push(r);
    }
    by_account
}

/// Gives each post whose platform reports no impressions its account's
/// followers on its publishing day (UTC, as readings are kept): the base
/// of its engagement rate.
fn attach_followers<'a>(
    by_account: &HashMap<Uuid, Vec<FollowersReading>>,
    posts: impl Iterator<Item = &'a mut PostPerformance>,
) {
    for p in posts {
        if p.metrics.impressions.is_none()
            && let Some(readings) = by_account.get(&p.account_id)
        {
            p.followers = followers_on(readings, &p.published_at.as_datetime().date().to_string());
        }
    }
}

/// The sum, over accounts with a reading in the week up to `day`, of each
/// one's last such reading, and how many accounts that is; `None` when no
/// account has one.
fn followers_by(by_account: &HashMap<Uuid, Vec<FollowersReading>>, day: Date) -> Option<(i64, i64)> {
    let (text, oldest) =
        (day.to_string(), day.checked_sub(jiff::Span::new().days(STALE_DAYS)).unwrap_or(day).to_string());
    let mut total = None;
    for readings in by_account.values() {
        let known = readings.partition_point(|r| r.day <= text);
        if let Some(r) = known.checked_sub(1).and_then(|i| readings.get(i)).filter(|r| r.day >= oldest) {
            let (sum, count) = total.get_or_insert((0, 0));
            *sum += r.followers;
            *count += 1;
        }
    }
    total
}

/// The selected accounts' followers by the end of each bucket, and when
/// the period began (the first bucket's value when nothing was read
/// before it); `None` when there is no reading at the period's end.
fn followers_summary(
    by_account: &HashMap<Uuid, Vec<FollowersReading>>,
    from: Date,
    to: Date,
    series: &[SeriesPoint],
) -> Option<FollowersSummary> {
    let mut points = Vec::with_capacity(series.len());
    for (i, point) in series.iter().enumerate() {
        // A bucket ends the day before the next one starts; the last one with the period.
        let end = series
            .get(i + 1)
            .and_then(|next| next.start.parse::<Date>().ok())
            .and_then(|d| d.yesterday().ok())
            .unwrap_or(to);
        let followers = followers_by(by_account, end).map(|(sum, _)| sum);
        points.push(FollowersPoint { start: point.start.clone(), followers });
    }
    let (latest, accounts) = followers_by(by_account, to)?;
    let at_start = from
        .yesterday()
        .ok()
        .and_then(|d| followers_by(by_account, d))
        .map(|(sum, _)| sum)
        .or_else(|| points.iter().find_map(|p| p.followers))
        .unwrap_or(latest);
    Some(FollowersSummary { accounts, latest, at_start, series: points })
}

impl App {
    /// Checks a report's query: the period in the reader's zone and the
    /// filters.
    pub async fn report_scope(&self, access: &TenantAccess, q: &ReportQuery) -> Result<ReportScope> {
        access.require(Permission::PostsRead)?;
        let zone = match optional(q.time_zone.as_ref()) {
            Some(z) => z.to_owned(),
            None => match access.caller.user() {
                Ok(user) => self.store.user_time_zone(user.id).await?.unwrap_or_else(|| "UTC".into()),
                Err(_) => "UTC".into(),
            },
        };
        let tz = schedule::zone(&zone).map_err(|m| Error::invalid("time_zone", m))?;
        let today = schedule::local_date(Timestamp::now(), &tz);
        let to = day("to", q.to.as_ref())?.unwrap_or(today);
        let from = match day("from", q.from.as_ref())? {
            Some(from) => from,
            None => to.checked_sub(jiff::Span::new().days(29)).unwrap_or(to),
        };
        if from > to {
            return Err(Error::invalid("from", "must not be after to"));
        }
        let days = (to - from).get_days();
        if days >= MAX_DAYS {
            return Err(Error::invalid("from", "a report covers at most 366 days; choose a later from"));
        }
        let bucket = match optional(q.bucket.as_ref()) {
            None if days < 31 => "day",
            None if days < 180 => "week",
            None => "month",
            Some("day") => "day",
            Some("week") => "week",
            Some("month") => "month",
            Some(_) => return Err(Error::invalid("bucket", "must be day, week or month")),
        };
        let network = optional(q.network.as_ref())
            .map(|n| {
                n.parse::<Network>().map_err(|_| {
                    Error::invalid("network", "must be x, linkedin, facebook, instagram, mastodon or bluesky")
                })
            })
            .transpose()?;
        let range = |d: Date| {
            schedule::at_local(d, 0, &tz).ok_or_else(|| Error::invalid("to", "the date is out of range"))
        };
        let end = to.tomorrow().map_err(|_| Error::invalid("to", "the date is out of range"))?;
        Ok(ReportScope {
            filter: PerformanceFilter {
                from: Some(range(from)?),
                to: Some(range(end)?),
                account_id: id("account_id", q.account_id.as_ref())?,
                project_id: id("project_id", q.project_id.as_ref())?,
                campaign_id: id("campaign_id", q.campaign_id.as_ref())?,
                network: network.map(|n| <&'static str>::from(n).to_owned()),
            },
            from,
            to,
            zone,
            bucket,
        })
    }

    /// The posts a report covers, with their latest readings.
    pub async fn report_posts(
        &self,
        access: &TenantAccess,
        scope: &ReportScope,
    ) -> Result<(Vec<PostPerformance>, bool)> {
        access.require(Permission::PostsRead)?;
        let mut posts =
            self.store.post_performance(access.tenant_id, &scope.filter, REPORT_LIMIT + 1).await?;
        let truncated = posts.len() > usize::try_from(REPORT_LIMIT).unwrap_or(usize::MAX);
        posts.truncate(usize::try_from(REPORT_LIMIT).unwrap_or(usize::MAX));
        Ok((posts, truncated))
    }

    /// The followers readings of the accounts `scope` selects (its account
    /// and network) from a week before `from` to the period's end, by
    /// account.
    async fn followers_by_account(
        &self,
        tenant_id: Uuid,
        scope: &ReportScope,
        from: Date,
    ) -> Result<HashMap<Uuid, Vec<FollowersReading>>> {
        let first = from.checked_sub(jiff::Span::new().days(STALE_DAYS)).unwrap_or(from);
        let readings = self
            .store
            .followers(
                tenant_id,
                &first.to_string(),
                &scope.to.tomorrow().unwrap_or(scope.to).to_string(),
                scope.filter.account_id,
                scope.filter.network.as_deref(),
            )
            .await?;
        Ok(group_by_account(readings))
    }

    pub async fn analytics_report(&self, access: &TenantAccess, q: &ReportQuery) -> Result<AnalyticsReport> {
        let scope = self.report_scope(access, q).await?;
        let tz = schedule::zone(&scope.zone).map_err(|m| Error::invalid("time_zone", m))?;
        let (mut posts, truncated) = self.report_posts(access, &scope).await?;
        // The period of the same length just before.
        let length = jiff::Span::new().days(i64::from((scope.to - scope.from).get_days()) + 1);
        let previous_to = scope.from.yesterday().unwrap_or(scope.from);
        let previous_from = scope.from.checked_sub(length).unwrap_or(scope.from);
        let mut previous_scope = PerformanceFilter { to: scope.filter.from, ..scope.filter.clone() };
        previous_scope.from = schedule::at_local(previous_from, 0, &tz);
        let mut previous =
            self.store.post_performance(access.tenant_id, &previous_scope, REPORT_LIMIT).await?;
        let by_account = self.followers_by_account(access.tenant_id, &scope, previous_from).await?;
        attach_followers(&by_account, posts.iter_mut().chain(previous.iter_mut()));

        let mut by_network: Vec<NetworkTotals> = Vec::new();
        for network in <Network as strum::IntoEnumIterator>::iter() {
            let name: &'static str = network.into();
            let of_network: Vec<&PostPerformance> = posts.iter().filter(|p| p.network == name).collect();
            if !of_network.is_empty() {
                by_network.push(NetworkTotals { network, totals: Totals::of(of_network) });
            }
        }
        // Posts come oldest first: each bucket is the next run of them, and
        // each post's local date is worked out once.
        let dates: Vec<Date> = posts.iter().map(|p| schedule::local_date(p.published_at, &tz)).collect();
        let mut series = Vec::new();
        let (mut start, mut taken) = (bucket_start(scope.from, scope.bucket), 0);
        while start <= scope.to {
            let Some(next) = next_bucket(start, scope.bucket) else { break };
            let first = taken;
            while taken < posts.len() && dates[taken] < next {
                taken += 1;
            }
            series.push(SeriesPoint { start: start.to_string(), totals: Totals::of(&posts[first..taken]) });
            start = next;
        }
        let followers = followers_summary(&by_account, scope.from, scope.to, &series);
        let mut ranked: Vec<&PostPerformance> =
            posts.iter().filter(|p| p.metrics.engagements().is_some()).collect();
        ranked.sort_by(|a, b| {
            b.metrics.engagements().cmp(&a.metrics.engagements()).then(a.published_at.cmp(&b.published_at))
        });
        let top_posts = ranked
            .into_iter()
            .take(TOP_POSTS)
            .filter_map(|p| {
                Some(TopPost {
                    post_id: p.post_id,
                    network: p.network.parse().ok()?,
                    handle: p.handle.clone(),
                    text: p.text.chars().take(140).collect(),
                    published_at: p.published_at,
                    platform_url: p.platform_url.clone(),
                    impressions: p.metrics.impressions,
                    engagements: p.metrics.engagements(),
                    engagement_rate: engagement_rate(&p.metrics, p.followers),
                })
            })
            .collect();
        Ok(AnalyticsReport {
            from: scope.from.to_string(),
            to: scope.to.to_string(),
            time_zone: scope.zone.clone(),
            bucket: scope.bucket,
            previous_from: previous_from.to_string(),
            previous_to: previous_to.to_string(),
            totals: Totals::of(&posts),
            previous: Totals::of(&previous),
            by_network,
            series,
            top_posts,
            followers,
            engagement_rate_definition: AGGREGATE_RATE,
            truncated,
        })
    }

    /// The report's posts and their latest metrics as CSV (one row per
    /// post; an empty cell is a metric the platform did not report).
    pub async fn analytics_csv(&self, access: &TenantAccess, q: &ReportQuery) -> Result<String> {
        let scope = self.report_scope(access, q).await?;
        let (mut posts, _) = self.report_posts(access, &scope).await?;
        let by_account = self.followers_by_account(access.tenant_id, &scope, scope.from).await?;
        attach_followers(&by_account, posts.iter_mut());
        let mut out = csv::Writer::from_writer(Vec::new());
        let header = [
            "post_id",
            "published_at",
            "network",
            "account",
            "project_id",
            "campaign_id",
            "text",
            "url",
            "read_at",
            "impressions",
            "reach",
            "likes",
            "comments",
            "shares",
            "saves",
            "link_clicks",
            "profile_visits",
            "video_views",
            "engagements",
            "engagement_rate",
        ];
        let failed = |e: csv::Error| Error::Internal(anyhow::anyhow!("writing CSV: {e}"));
        out.write_record(header).map_err(failed)?;
        let cell = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
        for p in &posts {
            let mut row = vec![
                p.post_id.to_string(),
                p.published_at.to_string(),
                p.network.clone(),
                p.handle.clone(),
                p.project_id.map(|i| i.to_string()).unwrap_or_default(),
                p.campaign_id.map(|i| i.to_string()).unwrap_or_default(),
                csv_safe(&p.text),
                p.platform_url.clone().unwrap_or_default(),
                p.collected_at.map(|t| t.to_string()).unwrap_or_default(),
            ];
            row.extend(p.metrics.named().iter().map(|(_, v)| cell(*v)));
            row.push(cell(p.metrics.engagements()));
            row.push(engagement_rate(&p.metrics, p.followers).map(|r| format!("{r:.6}")).unwrap_or_default());
            out.write_record(&row).map_err(failed)?;
        }
        let bytes = out.into_inner().map_err(|e| Error::Internal(anyhow::anyhow!("writing CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| Error::Internal(anyhow::anyhow!("writing CSV: {e}")))
    }
}

/// Text that a spreadsheet would run as a formula gets a leading quote
/// (CSV injection).
fn csv_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Metrics;

    fn post(network: &str, impressions: Option<i64>, likes: Option<i64>) -> PostPerformance {
        PostPerformance {
            post_id: Uuid::now_v7(),
            account_id: Uuid::now_v7(),
            network: network.into(),
            handle: "@a".into(),
            project_id: None,
            campaign_id: None,
            text: "t".into(),
            published_at: Timestamp::now(),
            platform_url: None,
            collected_at: likes.map(|_| Timestamp::now()),
            metrics: Metrics { impressions, likes, ..Metrics::default() },
            followers: None,
        }
    }

    #[test]
    fn totals_leave_out_what_was_not_reported_and_rate_only_posts_with_impressions() {
        let posts = [post("x", Some(100), Some(10)), post("mastodon", None, Some(50)), post("x", None, None)];
        let t = Totals::of(&posts);
        assert_eq!((t.posts, t.measured_posts), (3, 2));
        assert_eq!((t.impressions, t.engagements), (Some(100), Some(60)));
        assert_eq!(t.engagement_rate, Some(0.1), "the Mastodon post has no impressions");
        let none = Totals::of(&[post("x", None, None)]);
        assert_eq!((none.impressions, none.engagements, none.engagement_rate), (None, None, None));
        // With its account's followers known, the Mastodon post counts them instead.
        let mut toot = post("mastodon", None, Some(50));
        toot.followers = Some(400);
        let t = Totals::of(&[post("x", Some(100), Some(10)), toot]);
        assert_eq!(t.engagement_rate, Some(60.0 / 500.0));
    }

    #[test]
    fn followers_over_the_period_sum_each_accounts_last_reading() {
        let (a, b, gone) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let r = |account, day: &str, followers| FollowersReading {
            account_id: account,
            day: day.into(),
            followers,
        };
        let readings = vec![
            r(a, "2027-02-27", 100),
            r(a, "2027-03-02", 110),
            r(a, "2027-03-04", 120),
            r(b, "2027-03-03", 50),
            // Disconnected long before: its last reading is stale.
            r(gone, "2027-02-01", 9_000),
        ];
        let by_account = group_by_account(readings);
        let bucket = |start: &str| SeriesPoint { start: start.into(), totals: Totals::default() };
        let series = [bucket("2027-03-01"), bucket("2027-03-02"), bucket("2027-03-03"), bucket("2027-03-04")];
        let day = |d: &str| d.parse::<Date>().unwrap();
        let f = followers_summary(&by_account, day("2027-03-01"), day("2027-03-04"), &series).unwrap();
        let points: Vec<Option<i64>> = f.series.iter().map(|p| p.followers).collect();
        assert_eq!(points, [Some(100), Some(110), Some(160), Some(170)]);
        assert_eq!((f.latest, f.at_start), (170, 100), "the start is the day before the period");
        assert_eq!(f.accounts, 2, "accounts with a recent reading at the end");
        assert!(followers_summary(&HashMap::new(), day("2027-03-01"), day("2027-03-04"), &series).is_none());
        // A post without impressions gets its account's followers on its day.
        let mut toot = post("mastodon", None, Some(5));
        toot.account_id = a;
        toot.published_at = Timestamp::parse_rfc3339("2027-03-03T12:00:00Z").unwrap();
        attach_followers(&by_account, std::iter::once(&mut toot));
        assert_eq!(toot.followers, Some(110));
    }

    #[test]
    fn buckets_start_on_mondays_and_first_days() {
        let d: Date = "2027-03-18".parse().unwrap();
        assert_eq!(bucket_start(d, "week").to_string(), "2027-03-15");
        assert_eq!(bucket_start(d, "month").to_string(), "2027-03-01");
        assert_eq!(next_bucket(bucket_start(d, "month"), "month").unwrap().to_string(), "2027-04-01");
        assert_eq!(csv_safe("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_safe("Open house"), "Open house");
    }
}
