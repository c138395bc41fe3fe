//! A/B tests: two to five variants of a post (written, or an activity's
//! variants), each scheduled as a post of its own, on different accounts
//! of one network (meant for the same time) or on one account at
//! different times.
//! The test and its posts are written in one transaction. Once the window
//! after the last variant's time has passed, the publishing engine's
//! collector decides it ([`decide`]) on each variant's first reading taken
//! once the window has run since it went out (the same age for every
//! variant; after [`GRACE_DAYS`] without one, on what there is): its engagement rate
//! (engagements over impressions, else over the account's followers, as
//! `ENGAGEMENT_RATE` defines), the best against each other by a
//! two-proportion z-test, Bonferroni-corrected for more than two. A winner
//! needs every variant measured enough ([`MIN_BASE`], [`MIN_ENGAGEMENTS`])
//! and the difference beyond chance; otherwise there is no winner, said
//! with why (rates on different bases are not compared). Engagements are
//! treated as a proportion of impressions or followers, an approximation
//! (one person can engage more than once). The decision keeps the numbers
//! and the winner's traits.

use marketer_protocol::activity::{Platform, WhatWorked};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::analytics::{followers_on, rate_base};
use super::publishing::{CreatePost, PreparedPost};
use super::{App, TenantAccess, actions};
use crate::domain::{Permission, Timestamp, new_id};
use crate::error::{Error, FoundExt, Result};
use crate::store::{AbTest, Network, NewAbTest, PostStatus, SocialPost};

/// Each variant needs at least this many impressions (or followers)...
pub const MIN_BASE: i64 = 100;
/// ...and this many engagements before a winner can be named.
pub const MIN_ENGAGEMENTS: i64 = 5;
/// The significance level (before Bonferroni's correction).
pub const ALPHA: f64 = 0.05;
const MAX_VARIANTS: usize = 5;
const MAX_WINDOW_HOURS: i64 = 24 * 30;
/// Tests listed at most.
const LIST_LIMIT: i64 = 50;

/// A test to start: its variants are posts as `POST /posts` takes them
/// (each with a time, or `now`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAbTest {
    pub name: String,
    /// How long after the last variant goes out the test is decided (1 to 720).
    #[schema(minimum = 1, maximum = 720)]
    pub window_hours: i64,
    /// Two to five; labelled A, B, C... in this order. On different
    /// accounts of one network, at one time (within 15 minutes); or on one
    /// account, at least an hour apart.
    #[schema(min_items = 2, max_items = 5)]
    pub variants: Vec<CreatePost>,
}

/// One variant's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VariantResult {
    pub label: String,
    pub post_id: Uuid,
    pub engagements: Option<i64>,
    /// What the rate divides by: impressions, else followers.
    pub base: Option<i64>,
    /// `impressions`, `followers`, or null.
    pub base_kind: Option<String>,
    pub rate: Option<f64>,
    /// The variant's traits, kept when the test is decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traits: Option<Traits>,
}

/// The best variant against another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Comparison {
    pub best: String,
    pub other: String,
    /// The rates' difference (best minus other), as a fraction (0.021 is 2.1
    /// percentage points).
    pub difference: f64,
    /// The difference relative to the other's rate (0.25 = 25 % better).
    pub lift: Option<f64>,
    pub z: f64,
    pub p_value: f64,
    /// `p_value` below the corrected level.
    pub significant: bool,
}

/// The winner's traits, for later generations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Traits {
    pub characters: usize,
    pub hashtags: usize,
    pub question: bool,
    pub emoji: bool,
    pub link: bool,
    /// Local hour (0-23) and weekday in the post's time zone, when published.
    pub hour: Option<i8>,
    pub weekday: Option<String>,
}

/// What a test says: the numbers, the comparisons and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Decision {
    pub variants: Vec<VariantResult>,
    pub comparisons: Vec<Comparison>,
    /// The level each comparison is held to (0.05 ÷ the comparisons).
    pub alpha: f64,
    pub winner: Option<String>,
    /// In words: who won and by how much, or why there is no winner.
    pub verdict: String,
    pub winner_traits: Option<Traits>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AbVariantView {
    pub label: String,
    pub post_id: Uuid,
    pub account_id: Uuid,
    pub handle: String,
    pub network: String,
    pub text: String,
    pub status: PostStatus,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub scheduled_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub published_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AbTestView {
    pub id: Uuid,
    pub name: String,
    pub window_hours: i64,
    /// When it is decided.
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: Timestamp,
    /// `running` or `decided`.
    pub status: String,
    /// `accounts` (different accounts at the same time) or `times` (one
    /// account at different times).
    pub split: &'static str,
    pub variants: Vec<AbVariantView>,
    /// The final decision, once decided; while running, the numbers so far
    /// (no winner is named before the window ends).
    pub decision: Option<Decision>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Timestamp>,
}

/// One variant's measured outcome, for [`decide`].
#[derive(Debug, Clone)]
pub struct Outcome {
    pub label: String,
    pub post_id: Uuid,
    pub engagements: Option<i64>,
    pub base: Option<i64>,
    pub base_kind: Option<&'static str>,
}

/// A p-value as people read it: `p = 0.0123`, or `p < 0.0001`.
pub fn p_text(p: f64) -> String {
    if p < 0.0001 { "p < 0.0001".to_owned() } else { format!("p = {p:.4}") }
}

/// The standard normal distribution's upper tail, two-sided: P(|Z| ≥ |z|).
fn two_sided_p(z: f64) -> f64 {
    libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Two proportions `x1/n1` and `x2/n2` compared (pooled z-test): z and the
/// two-sided p-value. `None` when there is nothing to compare (a rate not
/// a proportion, no variance).
fn z_test(x1: i64, n1: i64, x2: i64, n2: i64) -> Option<(f64, f64)> {
    if n1 <= 0 || n2 <= 0 || x1 < 0 || x2 < 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    #[allow(clippy::cast_precision_loss)]
    let (x1, n1, x2, n2) = (x1 as f64, n1 as f64, x2 as f64, n2 as f64);
    let pooled = (x1 + x2) / (n1 + n2);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    if se <= 0.0 || !se.is_finite() {
        return None;
    }
    let z = (x1 / n1 - x2 / n2) / se;
    Some((z, two_sided_p(z)))
}

/// Decides a test from its variants' outcomes; `final_` says the window
/// has ended (before it, no winner is named).
pub fn decide(outcomes: &[Outcome], final_: bool) -> Decision {
    let variants: Vec<VariantResult> = outcomes
        .iter()
        .map(|o| {
            #[allow(clippy::cast_precision_loss)]
            let rate = match (o.engagements, o.base) {
                (Some(e), Some(b)) if b > 0 => Some(e as f64 / b as f64),
                _ => None,
            };
            VariantResult {
                label: o.label.clone(),
                post_id: o.post_id,
                engagements: o.engagements,
                base: o.base,
                base_kind: o.base_kind.map(str::to_owned),
                rate,
                traits: None,
            }
        })
        .collect();
    let comparisons_count = variants.len().saturating_sub(1).max(1);
    #[allow(clippy::cast_precision_loss)]
    let alpha = ALPHA / comparisons_count as f64;
    let short: Vec<String> = variants
        .iter()
        .filter_map(|v| match (v.base, v.engagements) {
            (Some(b), Some(e)) if b >= MIN_BASE && e >= MIN_ENGAGEMENTS => None,
            (None, None) => Some(format!("{} is not measured yet", v.label)),
            (b, e) => Some(format!(
                "{} has {} {} and {} engagements",
                v.label,
                b.unwrap_or(0),
                v.base_kind.as_deref().unwrap_or("impressions"),
                e.unwrap_or(0)
            )),
        })
        .collect();
    let best = variants
        .iter()
        .filter(|v| v.rate.is_some())
        .max_by(|a, b| a.rate.partial_cmp(&b.rate).unwrap_or(std::cmp::Ordering::Equal));
    let mut comparisons = Vec::new();
    if let Some(best) = best {
        for other in variants.iter().filter(|v| v.label != best.label) {
            let (Some(xb), Some(nb), Some(xo), Some(no)) =
                (best.engagements, best.base, other.engagements, other.base)
            else {
                continue;
            };
            let Some((z, p_value)) = z_test(xb, nb, xo, no) else { continue };
            let (rb, ro) = (best.rate.unwrap_or(0.0), other.rate.unwrap_or(0.0));
            comparisons.push(Comparison {
                best: best.label.clone(),
                other: other.label.clone(),
                difference: rb - ro,
                lift: (ro > 0.0).then(|| (rb - ro) / ro),
                z,
                p_value,
                significant: p_value < alpha,
            });
        }
    }
    let all_beyond_chance = !comparisons.is_empty()
        && comparisons.len() + 1 == variants.len()
        && comparisons.iter().all(|c| c.significant);
    let mut kinds: Vec<&str> = variants.iter().filter_map(|v| v.base_kind.as_deref()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let (winner, verdict) = if variants.len() < 2 {
        (None, "No winner: fewer than two variants are left (a variant's post was deleted).".to_owned())
    } else if !short.is_empty() {
        let needs = format!(
            "each variant needs {MIN_BASE} impressions (or followers) and {MIN_ENGAGEMENTS} engagements"
        );
        let when = if final_ { "No winner: too little data" } else { "No winner yet" };
        (None, format!("{when} ({needs}; {}).", short.join(", ")))
    } else if kinds.len() > 1 {
        let bases = variants
            .iter()
            .map(|v| format!("{} over {}", v.label, v.base_kind.as_deref().unwrap_or("nothing")))
            .collect::<Vec<_>>()
            .join(", ");
        (None, format!("No winner: the rates have different bases ({bases}), so they cannot be compared."))
    } else if !final_ {
        (None, "No winner yet: the test is running; the numbers so far are shown.".to_owned())
    } else if comparisons.len() + 1 < variants.len() {
        (
            None,
            "No winner: a variant has more engagements than its base (impressions or followers), so the rates \
             are not proportions and cannot be tested."
                .to_owned(),
        )
    } else if all_beyond_chance {
        let best = best.map(|b| b.label.clone()).unwrap_or_default();
        let weakest = comparisons.iter().max_by(|a, b| a.p_value.total_cmp(&b.p_value));
        let detail = weakest
            .map(|c| {
                let lift = c.lift.map(|l| format!(", {:.0} % better", l * 100.0)).unwrap_or_default();
                format!(
                    "by {:.2} percentage points over {}{lift} (z = {:.2}, {} < {alpha:.4})",
                    c.difference * 100.0,
                    c.other,
                    c.z,
                    p_text(c.p_value)
                )
            })
            .unwrap_or_default();
        (Some(best.clone()), format!("{best} won {detail}."))
    } else {
        let detail = comparisons
            .iter()
            .filter(|c| !c.significant)
            .map(|c| format!("{} against {}: {}", c.best, c.other, p_text(c.p_value)))
            .collect::<Vec<_>>()
            .join("; ");
        (None, format!("No winner: the difference could be chance ({detail}; needs p < {alpha:.4})."))
    };
    Decision { variants, comparisons, alpha, winner, verdict, winner_traits: None }
}

/// A post's traits: length, hashtags, a question, emoji, a link, and its
/// local hour and weekday.
pub fn traits(post: &SocialPost) -> Traits {
    let text = &post.text;
    let (hour, weekday) = match post.published_at {
        Some(at) => match crate::publishing::schedule::zone(&post.time_zone) {
            Ok(tz) => {
                let local = jiff::Timestamp::from_second(at.unix_seconds()).map(|t| t.to_zoned(tz));
                match local {
                    Ok(z) => (Some(z.hour()), Some(format!("{:?}", z.weekday()))),
                    Err(_) => (None, None),
                }
            }
            Err(_) => (None, None),
        },
        None => (None, None),
    };
    Traits {
        characters: text.chars().count(),
        hashtags: text.split_whitespace().filter(|w| w.starts_with('#') && w.len() > 1).count(),
        question: text.contains('?'),
        emoji: text.chars().any(|c| matches!(u32::from(c), 0x1F300..=0x1FAFF | 0x2600..=0x27BF)),
        link: text.contains("http://") || text.contains("https://"),
        hour,
        weekday,
    }
}

impl Traits {
    /// In words: `96 characters, 1 hashtag, a question, no emoji, no link,
    /// out on Tuesday at 09:00`.
    pub fn describe(&self) -> String {
        let plural = |n: usize, one: &str, many: &str| match n {
            0 => format!("no {many}"),
            1 => format!("1 {one}"),
            n => format!("{n} {many}"),
        };
        let mut parts = vec![
            plural(self.characters, "character", "characters"),
            plural(self.hashtags, "hashtag", "hashtags"),
            (if self.question { "a question" } else { "no question" }).to_owned(),
            (if self.emoji { "emoji" } else { "no emoji" }).to_owned(),
            (if self.link { "a link" } else { "no link" }).to_owned(),
        ];
        if let (Some(hour), Some(day)) = (self.hour, &self.weekday) {
            parts.push(format!("out on {day} at {hour:02}:00 local time"));
        }
        parts.join(", ")
    }
}

/// One decided test as a line of the "what worked" note the social step's
/// prompt receives: who won by how much, the winner's traits and the
/// others'. `None` without a winner.
pub fn what_worked_line(handle: &str, decision: &Decision) -> Option<String> {
    let winner = decision.winner.as_deref()?;
    let traits = decision
        .variants
        .iter()
        .find(|v| v.label == winner)
        .and_then(|v| v.traits.as_ref())
        .or(decision.winner_traits.as_ref())?;
    let narrowest = decision
        .comparisons
        .iter()
        .filter(|c| c.best == winner)
        .min_by(|a, b| a.difference.total_cmp(&b.difference));
    let by = narrowest
        .map(|c| format!(" by {:.1} percentage points of engagement rate", c.difference * 100.0))
        .unwrap_or_default();
    let others = decision
        .variants
        .iter()
        .filter(|v| v.label != winner)
        .filter_map(|v| v.traits.as_ref().map(|t| format!("{} had {}", v.label, t.describe())))
        .collect::<Vec<_>>();
    let others = if others.is_empty() { String::new() } else { format!("; {}", others.join("; ")) };
    Some(format!("On {handle}, {winner} won{by}. {winner} had {}{others}.", traits.describe()))
}

/// How many decided tests a platform's note names at most.
const NOTE_TESTS: usize = 3;

fn label(i: usize) -> String {
    ["A", "B", "C", "D", "E"].get(i).map_or_else(|| format!("V{}", i + 1), |l| (*l).to_owned())
}

impl App {
    /// Starts a test: checks every variant as a post and writes the test
    /// with all of them at once. With an `Idempotency-Key`, each variant's
    /// post carries the key and its label (`key/A`), so the same request
    /// again returns the test it created (`false`: not created now).
    pub async fn create_ab_test(
        &self,
        access: &TenantAccess,
        req: CreateAbTest,
        idempotency_key: Option<String>,
    ) -> Result<(AbTestView, bool)> {
        access.require(Permission::PostsWrite)?;
        let variant_key = |i: usize| idempotency_key.as_ref().map(|k| format!("{k}/{}", label(i)));
        if let Some(key) = variant_key(0)
            && let Some(post) = self.existing_post(access, &key).await?
            && let Some(test) = self.store.ab_test_of_post(access.tenant_id, post.id).await?
        {
            return Ok((self.ab_test(access, test).await?, false));
        }
        let name = req.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(Error::invalid(
                "name",
                "give the test a name of 1 to 200 characters, without control characters",
            ));
        }
        if !(1..=MAX_WINDOW_HOURS).contains(&req.window_hours) {
            return Err(Error::invalid("window_hours", "must be between 1 and 720 hours (30 days)"));
        }
        if !(2..=MAX_VARIANTS).contains(&req.variants.len()) {
            return Err(Error::invalid("variants", "a test compares 2 to 5 variants"));
        }
        let mut posts = Vec::new();
        let mut accounts = Vec::new();
        for (i, variant) in req.variants.into_iter().enumerate() {
            let prepared = self.prepare_post(access, variant, variant_key(i)).await.map_err(|e| match e {
                Error::Invalid { field, message } => {
                    Error::invalid(format!("variants[{i}].{field}"), message)
                }
                other => other,
            })?;
            let PreparedPost::New { post, audit, account } = prepared else {
                return Err(Error::invalid(
                    "Idempotency-Key",
                    "a post outside an A/B test already has this key; use a new one",
                ));
            };
            if post.status != PostStatus::Scheduled {
                return Err(Error::invalid(
                    format!("variants[{i}].scheduled_at"),
                    "each variant needs a time (scheduled_at, local_time or now) and approval",
                ));
            }
            accounts.push(*account);
            posts.push((label(i), *post, *audit));
        }
        let network = accounts[0].network;
        if accounts.iter().any(|a| a.network != network) {
            return Err(Error::invalid("variants", "the variants of one test go to one network"));
        }
        let times: Vec<Timestamp> = posts.iter().filter_map(|(_, p, _)| p.scheduled_at).collect();
        check_times(split_of(accounts.iter().map(|a| a.id).collect()), &times)?;
        let last = posts.iter().filter_map(|(_, p, _)| p.scheduled_at).max().unwrap_or_else(Timestamp::now);
        let ends_at = last + time::Duration::hours(req.window_hours);
        let id = new_id();
        let audit =
            access.audit(actions::AB_TEST_CREATE).resource("ab_test", id).details(serde_json::json!({
                "name": name, "variants": posts.len(), "window_hours": req.window_hours,
            }));
        let post_audits: Vec<_> = posts.iter().map(|(_, _, a)| a.clone()).collect();
        let test = NewAbTest {
            id,
            tenant_id: access.tenant_id,
            name,
            window_hours: req.window_hours,
            ends_at,
            created_by: access.caller.creator_id(),
            variants: posts.into_iter().map(|(l, p, _)| (l, p)).collect(),
        };
        self.store.create_ab_test(&test, &audit, &post_audits).await?;
        self.publisher.wake();
        Ok((self.ab_test(access, id).await?, true))
    }

    /// What won the tenant's latest decided tests on each of `platforms`
    /// (up to three tests a platform), as the notes an activity's social
    /// step receives. Networks the pipeline does not write for (Mastodon,
    /// Bluesky) have none.
    pub(crate) async fn what_worked(
        &self,
        tenant_id: Uuid,
        platforms: &[Platform],
    ) -> Result<Vec<WhatWorked>> {
        if platforms.is_empty() {
            return Ok(Vec::new());
        }
        let mut lines: Vec<(Platform, Vec<String>)> = platforms.iter().map(|p| (*p, Vec::new())).collect();
        for test in self.store.ab_tests(tenant_id, LIST_LIMIT).await? {
            let Some(decision) =
                test.decision.as_deref().and_then(|d| serde_json::from_str::<Decision>(d).ok())
            else {
                continue;
            };
            let Some(winner) = decision.winner.as_deref() else { continue };
            let Some(post_id) = decision.variants.iter().find(|v| v.label == winner).map(|v| v.post_id)
            else {
                continue;
            };
            let Some(post) = self.store.post(tenant_id, post_id).await? else { continue };
            let Some(platform) = platform_of(post.network) else { continue };
            if let Some((_, found)) = lines.iter_mut().find(|(p, _)| *p == platform)
                && found.len() < NOTE_TESTS
                && let Some(line) = what_worked_line(&post.handle, &decision)
            {
                found.push(format!("- {line}"));
            }
        }
        Ok(lines
            .into_iter()
            .filter(|(_, l)| !l.is_empty())
            .map(|(platform, l)| WhatWorked { platform, note: l.join("\n") })
            .collect())
    }

    pub async fn ab_tests(&self, access: &TenantAccess) -> Result<Vec<AbTestView>> {
        access.require(Permission::PostsRead)?;
        let tests = self.store.ab_tests(access.tenant_id, LIST_LIMIT).await?;
        let mut views = Vec::with_capacity(tests.len());
        for t in tests {
            views.push(self.ab_test_view(access.tenant_id, t).await?);
        }
        Ok(views)
    }

    pub async fn ab_test(&self, access: &TenantAccess, id: Uuid) -> Result<AbTestView> {
        access.require(Permission::PostsRead)?;
        let test = self.store.ab_test(access.tenant_id, id).await.found("A/B test")?;
        self.ab_test_view(access.tenant_id, test).await
    }

    async fn ab_test_view(&self, tenant_id: Uuid, t: AbTest) -> Result<AbTestView> {
        let mut variants = Vec::new();
        for (label, post_id) in &t.variants {
            if let Some(p) = self.store.post(tenant_id, *post_id).await? {
                variants.push(AbVariantView {
                    label: label.clone(),
                    post_id: p.id,
                    account_id: p.account_id,
                    handle: p.handle,
                    network: p.network.to_string(),
                    text: p.text,
                    status: p.status,
                    scheduled_at: p.scheduled_at,
                    published_at: p.published_at,
                });
            }
        }
        let decision = match &t.decision {
            Some(json) => serde_json::from_str(json).ok(),
            None => Some(decide(&ab_outcomes(&*self.store, tenant_id, &t, false).await?.0, false)),
        };
        Ok(AbTestView {
            id: t.id,
            name: t.name,
            window_hours: t.window_hours,
            ends_at: t.ends_at,
            status: t.status,
            split: split_of(variants.iter().map(|v| v.account_id).collect()).unwrap_or("accounts"),
            variants,
            decision,
            created_at: t.created_at,
            decided_at: t.decided_at,
        })
    }
}

/// The pipeline's platform for a network, where it writes for it.
pub(crate) fn platform_of(network: Network) -> Option<Platform> {
    match network {
        Network::X => Some(Platform::X),
        Network::Linkedin => Some(Platform::Linkedin),
        Network::Facebook => Some(Platform::Facebook),
        Network::Instagram => Some(Platform::Instagram),
        Network::Mastodon | Network::Bluesky => None,
    }
}

/// `accounts` when every variant has its own account, `times` when they
/// share one; `None` for a mix.
fn split_of(mut accounts: Vec<Uuid>) -> Option<&'static str> {
    let n = accounts.len();
    accounts.sort_unstable();
    accounts.dedup();
    match accounts.len() {
        1 if n > 1 => Some("times"),
        k if k == n => Some("accounts"),
        _ => None,
    }
}

/// Variants on different accounts go out within this many minutes of
/// each other (the same time); on one account, at least an hour apart.
const SAME_TIME_MINUTES: i64 = 15;
const APART_MINUTES: i64 = 60;

/// The split's rule for times: one time for different accounts, times
/// apart for one account, so each variant is measured on its own.
fn check_times(split: Option<&str>, times: &[Timestamp]) -> Result<()> {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let gaps: Vec<i64> =
        sorted.windows(2).map(|w| (w[1].as_datetime() - w[0].as_datetime()).whole_minutes()).collect();
    match split {
        None => Err(Error::invalid(
            "variants",
            "put every variant on a different account (same time) or all on one account (different times)",
        )),
        Some("accounts") if gaps.iter().sum::<i64>() > SAME_TIME_MINUTES => Err(Error::invalid(
            "variants",
            format!(
                "variants on different accounts go out at the same time (within {SAME_TIME_MINUTES} minutes); give them one time"
            ),
        )),
        Some("times") if gaps.iter().any(|g| *g < APART_MINUTES) => Err(Error::invalid(
            "variants",
            "variants on one account go out at least an hour apart, so each is measured on its own; \
             give them different times (the same hour on different days compares best)",
        )),
        Some(_) => Ok(()),
    }
}

/// How long after its end a test waits for every variant's reading at
/// the window's age before it is decided on what there is.
pub const GRACE_DAYS: i64 = 7;

/// Each variant's engagements and rate base (impressions, else its
/// account's followers on its UTC publishing day). `at_window`: from each
/// variant's first reading taken once the window has run since it went
/// out (or since the test's end, if earlier), so variants are compared at
/// the same age; otherwise from its latest reading. The flag says whether
/// every variant has such a reading.
pub(crate) async fn ab_outcomes(
    store: &dyn crate::store::Store,
    tenant_id: Uuid,
    t: &AbTest,
    at_window: bool,
) -> Result<(Vec<Outcome>, bool)> {
    let mut outcomes = Vec::new();
    let mut ready = true;
    for (label, post_id) in &t.variants {
        let (readings, _) = match store.post_metrics(tenant_id, *post_id).await {
            Ok(found) => found,
            Err(crate::store::StoreError::NotFound) => (Vec::new(), None),
            Err(e) => return Err(e.into()),
        };
        let post = store.post(tenant_id, *post_id).await?;
        let published = post.as_ref().and_then(|p| p.published_at);
        let cutoff = published.map(|p| (p + time::Duration::hours(t.window_hours)).min(t.ends_at));
        let at_age = cutoff.and_then(|c| readings.iter().find(|r| r.collected_at >= c));
        ready &= at_age.is_some();
        let reading = if at_window { at_age.or(readings.last()) } else { readings.last() };
        let metrics = reading.map(|r| r.metrics.clone());
        let mut followers = None;
        if let Some(m) = &metrics
            && m.impressions.is_none_or(|i| i <= 0)
            && let Some(post) = &post
            && let Some(published) = published
        {
            let day = published.as_datetime().date();
            let readings = store
                .followers(
                    tenant_id,
                    &(day - time::Duration::days(7)).to_string(),
                    &(day + time::Duration::days(7)).to_string(),
                    Some(post.account_id),
                    None,
                )
                .await?;
            followers = followers_on(&readings, &day.to_string());
        }
        let base = metrics.as_ref().and_then(|m| rate_base(m, followers));
        let base_kind = match (&metrics, base) {
            (Some(m), Some(_)) if m.impressions.is_some_and(|i| i > 0) => Some("impressions"),
            (_, Some(_)) => Some("followers"),
            _ => None,
        };
        outcomes.push(Outcome {
            label: label.clone(),
            post_id: *post_id,
            engagements: metrics.as_ref().and_then(crate::store::Metrics::engagements),
            base,
            base_kind,
        });
    }
    Ok((outcomes, ready))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(label: &str, engagements: i64, impressions: i64) -> Outcome {
        Outcome {
            label: label.into(),
            post_id: Uuid::now_v7(),
            engagements: Some(engagements),
            base: Some(impressions),
            base_kind: Some("impressions"),
        }
    }

    #[test]
    fn a_clear_difference_names_the_winner_with_its_numbers() {
        let d = decide(&[outcome("A", 50, 1000), outcome("B", 100, 1000)], true);
        assert_eq!(d.winner.as_deref(), Some("B"), "{d:?}");
        let c = &d.comparisons[0];
        assert!((c.difference - 0.05).abs() < 1e-9);
        assert!((c.lift.unwrap() - 1.0).abs() < 1e-9, "twice A's rate");
        assert!(c.z > 4.0 && c.p_value < 1e-4, "{c:?}");
        assert!(d.verdict.starts_with("B won by 5.00 percentage points over A"), "{}", d.verdict);
    }

    #[test]
    fn equal_outcomes_and_small_differences_name_no_winner() {
        let equal = decide(&[outcome("A", 60, 1000), outcome("B", 60, 1000)], true);
        assert_eq!(equal.winner, None);
        assert!(equal.verdict.contains("could be chance"), "{}", equal.verdict);
        let close = decide(&[outcome("A", 50, 1000), outcome("B", 58, 1000)], true);
        assert_eq!(close.winner, None, "p ≈ 0.44");
        assert!((close.comparisons[0].p_value - 0.44).abs() < 0.02, "{:?}", close.comparisons);
    }

    #[test]
    fn too_little_data_or_a_running_test_names_no_winner() {
        let thin = decide(&[outcome("A", 3, 80), outcome("B", 40, 1000)], true);
        assert_eq!(thin.winner, None);
        assert!(thin.verdict.starts_with("No winner: too little data"), "{}", thin.verdict);
        assert!(thin.verdict.contains("A has 80 impressions and 3 engagements"), "{}", thin.verdict);
        let running = decide(&[outcome("A", 50, 1000), outcome("B", 100, 1000)], false);
        assert_eq!(running.winner, None);
        assert!(running.verdict.contains("running"));
        assert_eq!(running.comparisons.len(), 1, "the numbers so far are shown");
    }

    #[test]
    fn three_variants_hold_each_comparison_to_a_corrected_level() {
        // B beats A clearly and C narrowly (p ≈ 0.03 > 0.025): no winner.
        let d = decide(&[outcome("A", 50, 1000), outcome("B", 100, 1000), outcome("C", 75, 1000)], true);
        assert!((d.alpha - 0.025).abs() < 1e-12);
        assert_eq!(d.winner, None, "{d:?}");
        let d = decide(&[outcome("A", 50, 1000), outcome("B", 120, 1000), outcome("C", 60, 1000)], true);
        assert_eq!(d.winner.as_deref(), Some("B"));
    }

    #[test]
    fn different_bases_deleted_variants_and_non_proportions_name_no_winner() {
        let mut b = outcome("B", 100, 1000);
        b.base_kind = Some("followers");
        let d = decide(&[outcome("A", 50, 1000), b], true);
        assert_eq!(d.winner, None);
        assert!(d.verdict.contains("different bases"), "{}", d.verdict);
        let d = decide(&[outcome("A", 50, 1000)], true);
        assert!(d.verdict.contains("fewer than two"), "{}", d.verdict);
        let d = decide(&[outcome("A", 150, 120), outcome("B", 50, 1000)], true);
        assert_eq!(d.winner, None);
        assert!(d.verdict.contains("not proportions"), "{}", d.verdict);
        assert_eq!(p_text(0.000_01), "p < 0.0001");
        assert_eq!(label(1), "B");
    }

    #[test]
    fn a_winner_becomes_a_line_of_what_worked_with_the_others_traits() {
        let mut d = decide(&[outcome("A", 50, 1000), outcome("B", 100, 1000)], true);
        let t = |characters, hashtags, question, hour: Option<i8>| Traits {
            characters,
            hashtags,
            question,
            emoji: false,
            link: false,
            hour,
            weekday: hour.map(|_| "Tuesday".to_owned()),
        };
        d.variants[0].traits = Some(t(210, 3, false, None));
        d.variants[1].traits = Some(t(96, 1, true, Some(9)));
        assert_eq!(
            what_worked_line("@acme", &d).unwrap(),
            "On @acme, B won by 5.0 percentage points of engagement rate. B had 96 characters, 1 hashtag, \
             a question, no emoji, no link, out on Tuesday at 09:00 local time; A had 210 characters, \
             3 hashtags, no question, no emoji, no link."
        );
        let equal = decide(&[outcome("A", 60, 1000), outcome("B", 60, 1000)], true);
        assert_eq!(what_worked_line("@acme", &equal), None, "no winner, nothing to tell");
        assert_eq!(platform_of(Network::Mastodon), None);
    }

    #[test]
    fn the_normal_tail_is_right() {
        assert!((two_sided_p(1.959_964) - 0.05).abs() < 1e-6);
        assert!((two_sided_p(0.0) - 1.0).abs() < 1e-12);
        assert_eq!(z_test(5, 4, 1, 10), None, "more engagements than the base is not a proportion");
        assert_eq!(split_of(vec![Uuid::nil(), Uuid::nil()]), Some("times"));
    }
}
