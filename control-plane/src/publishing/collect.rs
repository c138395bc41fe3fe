//! The analytics collector: reads each published post's metrics on a
//! schedule that follows the post's age (the first reading an hour after
//! publishing, then hourly to a day, daily to a week, weekly to 90 days,
//! then never), on every network (LinkedIn: organisation pages' posts).
//!
//! It is part of the publishing engine so that it shares its tokens (one
//! refresh across replicas), its rate limits (an account limited by a
//! publish is not read; a limit met while reading holds publishing too)
//! and its priority: the engine collects only when no post was due. Each
//! round of a post is claimed by compare-and-set on its schedule, so
//! replicas read a post once per round. A reading stores what the platform
//! reported; a metric it did not report is absent, never zero. A failure
//! is kept on the post (shown with its metrics) and tried again later.
//!
//! Accounts' followers are read the same way, once a day per account
//! (`account_followers`, one row per account and UTC day). A/B tests whose
//! window has ended are decided on the same tick
//! (`service::ab_tests::decide`).

use std::time::Duration;

use uuid::Uuid;

use super::platforms::Fetched;
use super::{NoToken, Publisher, later};
use crate::domain::Timestamp;
use crate::store::{DueMetrics, Outcome, SocialAccount};

/// Posts read per round.
const BATCH: i64 = 50;

/// When posts' metrics are read.
#[derive(Debug, Clone)]
pub struct MetricsSchedule {
    /// The first reading, this long after publishing.
    pub first: Duration,
    /// While a post is younger than the first value, it is read every
    /// second value; older than the last step's age, it is not read again.
    pub steps: Vec<(Duration, Duration)>,
    /// How often the engine looks for due posts.
    pub poll: Duration,
    /// How often each account's followers are read.
    pub followers_every: Duration,
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

impl Default for MetricsSchedule {
    fn default() -> Self {
        Self {
            first: HOUR,
            steps: vec![(DAY, HOUR), (7 * DAY, DAY), (90 * DAY, 7 * DAY)],
            poll: Duration::from_secs(30),
            followers_every: DAY,
        }
    }
}

impl MetricsSchedule {
    /// The next reading of a post published at `published_at`, after one
    /// at `now`; `None` once it is past the last step.
    pub fn next(&self, published_at: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let age =
            Duration::try_from(now.as_datetime() - published_at.as_datetime()).unwrap_or(Duration::ZERO);
        let every = self.steps.iter().find(|(until, _)| age < *until).map(|(_, every)| *every)?;
        let next = now.as_datetime() + time::Duration::try_from(every).ok()?;
        Some(Timestamp::from_datetime(next))
    }

    /// How old a post may be and still be read.
    pub fn oldest(&self, now: Timestamp) -> Timestamp {
        let last = self.steps.last().map_or(Duration::ZERO, |(until, _)| *until);
        Timestamp::from_datetime(
            now.as_datetime() - time::Duration::try_from(last).unwrap_or(time::Duration::ZERO),
        )
    }
}

impl Publisher {
    /// One round: reads the metrics of the posts due. Returns how many
    /// readings were stored.
    pub async fn collect_metrics(&self) -> usize {
        let now = Timestamp::now();
        let schedule = &self.settings.metrics;
        let first_before = Timestamp::from_datetime(
            now.as_datetime() - time::Duration::try_from(schedule.first).unwrap_or(time::Duration::ZERO),
        );
        let due = match self.store.metrics_due(now, first_before, schedule.oldest(now), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the posts whose metrics are due");
                return 0;
            }
        };
        let mut stored = 0;
        for post in due {
            match self.store.claim_metrics(post.post_id, post.next_at, later(self.settings.lease)).await {
                Ok(true) => {
                    if self.read_metrics(&post).await {
                        stored += 1;
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, post = %post.post_id, "could not claim a post's metrics");
                }
            }
        }
        stored
    }

    /// Reads one claimed post's metrics and records the outcome.
    async fn read_metrics(&self, post: &DueMetrics) -> bool {
        let mut refreshed = false;
        loop {
            let (account, token) = match self.token(post.account_id, refreshed).await {
                Ok(found) => found,
                Err(NoToken::Wait(until, reason)) => {
                    self.metrics_failed(post, &reason, until.max(later(Duration::from_secs(60)))).await;
                    return false;
                }
            };
            let Some((fetched, record)) =
                self.platforms.metrics(&account, &token, &post.platform_post_id).await
            else {
                let reason = "LinkedIn gives apps the statistics of organisation pages' posts only, not of members' posts";
                self.metrics_failed(post, reason, far_future()).await;
                return false;
            };
            self.note_window(&account, &record).await;
            let now = Timestamp::now();
            let (reason, retry_at) = match fetched {
                Fetched::Metrics { metrics, raw } => {
                    let next = self.settings.metrics.next(post.published_at, now);
                    return match self.store.record_metrics(post.post_id, &metrics, &raw, now, next).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(error = %e, post = %post.post_id, "could not store a post's metrics");
                            false
                        }
                    };
                }
                Fetched::Gone => (
                    format!("the post is no longer on {}; its metrics are not read again", account.network),
                    far_future(),
                ),
                Fetched::TokenExpired if !refreshed => {
                    refreshed = true;
                    continue;
                }
                other => self.failed_read(&account, other).await,
            };
            self.metrics_failed(post, &reason, retry_at).await;
            return false;
        }
    }

    /// Why a read failed and when to try again (a rate limit is recorded
    /// on the account, so publishing waits for it too).
    pub(super) async fn failed_read(&self, account: &SocialAccount, fetched: Fetched) -> (String, Timestamp) {
        match fetched {
            Fetched::RateLimited { until, note } => {
                if let Err(e) = self.store.account_rate_limited(account.id, until, &note).await {
                    tracing::error!(error = %e, account = %account.id, "could not record a rate limit");
                }
                (format!("{note}; read again after it"), until)
            }
            Fetched::TokenExpired => (format!("{} refused a renewed token", account.network), later(HOUR)),
            Fetched::Failed { reason } => (reason, later(Duration::from_secs(15 * 60))),
            Fetched::Refused { reason } => (reason, later(DAY)),
            Fetched::Gone => (format!("{} no longer has it", account.network), later(DAY)),
            Fetched::Metrics { .. } | Fetched::Followers(_) | Fetched::Items { .. } | Fetched::Present(_) => {
                (format!("{} answered with something else than was asked", account.network), later(HOUR))
            }
        }
    }

    async fn metrics_failed(&self, post: &DueMetrics, reason: &str, retry_at: Timestamp) {
        tracing::warn!(post = %post.post_id, %reason, "a post's metrics were not read");
        if let Err(e) = self.store.metrics_failed(post.post_id, reason, retry_at).await {
            tracing::error!(error = %e, post = %post.post_id, "could not record a metrics failure");
        }
    }

    /// Decides the A/B tests whose window has ended (claimed by
    /// compare-and-set on their status, so one replica decides each).
    /// Returns how many were decided.
    pub async fn decide_ab_tests(&self) -> usize {
        use crate::service::ab_tests::{GRACE_DAYS, ab_outcomes, decide, traits};
        let due = match self.store.ab_tests_due(Timestamp::now(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the A/B tests that are due");
                return 0;
            }
        };
        let mut decided = 0;
        for (tenant_id, test) in due {
            let outcomes = match ab_outcomes(&*self.store, tenant_id, &test, true).await {
                // Every variant measured at the window's age, or the grace is over.
                Ok((outcomes, ready))
                    if ready || test.ends_at + time::Duration::days(GRACE_DAYS) <= Timestamp::now() =>
                {
                    outcomes
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(error = %e, test = %test.id, "could not read an A/B test's numbers");
                    continue;
                }
            };
            let mut decision = decide(&outcomes, true);
            // Every variant's traits are kept, the winner's also on their
            // own: what later generations are told (see `what_worked`).
            let mut activity_id = None;
            for v in &mut decision.variants {
                if let Ok(Some(post)) = self.store.post(tenant_id, v.post_id).await {
                    v.traits = Some(traits(&post));
                    if decision.winner.as_ref() == Some(&v.label) {
                        decision.winner_traits = v.traits.clone();
                        activity_id = post.activity_id;
                    }
                }
            }
            let json = match serde_json::to_string(&decision) {
                Ok(json) => json,
                Err(e) => {
                    tracing::error!(error = %e, test = %test.id, "could not write an A/B test's decision");
                    continue;
                }
            };
            let audit =
                super::system_event(tenant_id, crate::service::actions::AB_TEST_DECIDED, Outcome::Success)
                    .resource("ab_test", test.id)
                    .details(serde_json::json!({
                        "winner": decision.winner,
                        "verdict": decision.verdict,
                        "winner_traits": decision.winner_traits,
                        "activity_id": activity_id,
                    }));
            match self.store.decide_ab_test(test.id, &json, &audit).await {
                Ok(true) => decided += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, test = %test.id, "could not record an A/B test's decision");
                }
            }
        }
        decided
    }

    /// One round of accounts' followers: each connected account is read
    /// once a day (claimed like posts, so replicas read it once). Returns
    /// how many readings were stored.
    pub async fn collect_followers(&self) -> usize {
        let due = match self.store.followers_due(Timestamp::now(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the accounts whose followers are due");
                return 0;
            }
        };
        let mut stored = 0;
        for account in due {
            match self
                .store
                .claim_followers(account.account_id, account.next_at, later(self.settings.lease))
                .await
            {
                Ok(true) => {
                    if self.read_followers(account.account_id).await {
                        stored += 1;
                    }
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::error!(error = %e, account = %account.account_id, "could not claim an account's followers");
                }
            }
        }
        stored
    }

    async fn read_followers(&self, account_id: Uuid) -> bool {
        let mut refreshed = false;
        loop {
            let (account, token) = match self.token(account_id, refreshed).await {
                Ok(found) => found,
                Err(NoToken::Wait(until, reason)) => {
                    self.followers_failed(account_id, &reason, until.max(later(Duration::from_secs(60))))
                        .await;
                    return false;
                }
            };
            let Some((fetched, record)) = self.platforms.followers(&account, &token).await else {
                let reason = "LinkedIn does not give apps a member's followers";
                self.followers_failed(account_id, reason, far_future()).await;
                return false;
            };
            self.note_window(&account, &record).await;
            let (reason, retry_at) = match fetched {
                Fetched::Followers(n) => {
                    let now = Timestamp::now();
                    // A little early, so polling and reading time never push a
                    // day's reading into the next day.
                    let every = self.settings.metrics.followers_every;
                    let next = later(every - every / 48);
                    return match self.store.record_followers(account_id, n, now, next).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(error = %e, account = %account_id, "could not store an account's followers");
                            false
                        }
                    };
                }
                Fetched::TokenExpired if !refreshed => {
                    refreshed = true;
                    continue;
                }
                other => {
                    // Accounts never age out as posts do: a failure waits
                    // at least an hour.
                    let (reason, at) = self.failed_read(&account, other).await;
                    (reason, at.max(later(HOUR)))
                }
            };
            self.followers_failed(account_id, &reason, retry_at).await;
            return false;
        }
    }

    async fn followers_failed(&self, account_id: Uuid, reason: &str, retry_at: Timestamp) {
        tracing::warn!(account = %account_id, %reason, "an account's followers were not read");
        if let Err(e) = self.store.followers_failed(account_id, reason, retry_at).await {
            tracing::error!(error = %e, account = %account_id, "could not record a followers failure");
        }
    }
}

/// Never again, as a schedule time.
fn far_future() -> Timestamp {
    Timestamp::from_datetime(Timestamp::LATEST.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn readings_follow_the_posts_age() {
        let schedule = MetricsSchedule::default();
        let published = at("2026-03-28T12:00:00Z");
        let cases = [
            ("2026-03-28T13:00:00Z", Some("2026-03-28T14:00:00Z")),
            ("2026-03-29T11:30:00Z", Some("2026-03-29T12:30:00Z")),
            ("2026-03-29T12:00:00Z", Some("2026-03-30T12:00:00Z")),
            ("2026-04-04T11:00:00Z", Some("2026-04-05T11:00:00Z")),
            ("2026-04-04T12:00:00Z", Some("2026-04-11T12:00:00Z")),
            ("2026-06-26T11:00:00Z", Some("2026-07-03T11:00:00Z")),
            ("2026-06-26T12:00:00Z", None),
        ];
        for (now, next) in cases {
            assert_eq!(schedule.next(published, at(now)), next.map(at), "read at {now}");
        }
        assert_eq!(schedule.oldest(at("2026-06-26T12:00:00Z")), published);
    }
}
