//! Publishing: posts go out to the social platforms on time, once.
//!
//! This module owns the engine (`Publisher`) that every replica runs. It
//! sleeps until the next post is due (or a new schedule wakes it), then:
//!
//! 1. claims due posts with a lease (compare-and-set `scheduled` →
//!    `publishing` in the store), so replicas on one PostgreSQL never take
//!    the same post;
//! 2. makes sure the account's token is fresh (one refresh at a time per
//!    account across replicas, under a lock in the database; a refusal marks
//!    the account `needs_reconnect`, a passing failure is retried later and
//!    never disconnects it; a refresh without a new refresh token keeps the
//!    old one);
//! 3. records that the request is about to be sent (`unconfirmed_since`),
//!    then sends it once. An answer is classified (`platforms::Sent`):
//!    created → `published`; refused → `failed` with the reason and what to
//!    do; rate limited → back to `scheduled`, waiting until the platform's
//!    reset, which the account keeps too; not sent → waits and goes again;
//!    unknown (timeout, reset, 5xx, or the process died: the lease runs out
//!    with `unconfirmed_since` set) → `unconfirmed`;
//! 4. reconciles unconfirmed posts before anything is sent again: Mastodon
//!    gets the same `Idempotency-Key` within the hour it keeps keys; X reads
//!    the account's timeline. Only a post proven absent is sent again, under
//!    a new generation (a new idempotency key).
//!
//! Every request is recorded as an attempt on the post (status, request
//! id, the answer with tokens removed); publishes, failures, unconfirmed
//! outcomes and reconnects are audited. Accounts' health checks run here
//! too, on their own schedule, and so does the analytics collector
//! (`collect.rs`): it reads published posts' metrics when publishing has
//! nothing to do, with the same tokens and within the same rate limits.

pub mod collect;
pub mod connect;
pub mod crisis;
pub mod inbox;
pub mod platforms;
pub mod replies;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use self::platforms::{CallRecord, Found, Health, Platforms, Refreshed, Sent};
use crate::cloud::DataKey;
use crate::domain::Timestamp;
use crate::service::actions;
use crate::store::{
    AccountStatus, Actor, Audience, NewAuditEvent, NewNotice, NewWebhookEvent, NoticeKind, Outcome,
    PostAttempt, PostStatus, PublishResult, SealedTokens, SocialAccount, SocialPost, Store, TokenRefresh,
    WebhookEventKind,
};

/// The engine's timings.
#[derive(Debug, Clone)]
pub struct PublishSettings {
    /// How long a claimed post is this replica's.
    pub lease: Duration,
    /// How long after an unknown outcome the platform is asked whether the
    /// post exists (listings lag behind writes).
    pub reconcile_delay: Duration,
    /// The safety-net wake-up, for posts scheduled on other replicas.
    pub sweep_interval: Duration,
    /// How often an account's credentials are checked.
    pub check_interval: Duration,
    /// Refresh a token this long before it expires.
    pub refresh_margin: Duration,
    /// When published posts' metrics are read (`collect.rs`).
    pub metrics: collect::MetricsSchedule,
    /// How often each account's inbox is read (`inbox.rs`).
    pub inbox_every: Duration,
    /// The model that classifies inbox items on agents.
    pub inbox_model: String,
    /// An agent silent this long is offline (for where classify jobs go).
    pub online_window: time::Duration,
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            reconcile_delay: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(1),
            check_interval: Duration::from_secs(15 * 60),
            refresh_margin: Duration::from_secs(120),
            metrics: collect::MetricsSchedule::default(),
            inbox_every: Duration::from_secs(120),
            inbox_model: DEFAULT_INBOX_MODEL.into(),
            online_window: time::Duration::seconds(90),
        }
    }
}

/// Publishing's configuration: the platforms and the engine's timings.
#[derive(Debug, Clone, Default)]
pub struct PublishingConfig {
    pub platforms: platforms::PlatformSettings,
    pub engine: PublishSettings,
}

/// Posts claimed per pass.
const BATCH: i64 = 256;
/// The model inbox items are classified with, unless configured.
pub const DEFAULT_INBOX_MODEL: &str = "llama3.2";

/// The publishing engine of this replica.
#[derive(Debug)]
pub struct Publisher {
    store: Arc<dyn Store>,
    key: Arc<DataKey>,
    pub platforms: Platforms,
    pub settings: PublishSettings,
    /// This replica's name on leases and locks.
    owner: String,
    wake: Notify,
    /// Told when classify jobs are queued.
    jobs: Arc<crate::jobs::JobEngine>,
}

fn later(d: Duration) -> Timestamp {
    Timestamp::from_datetime(
        Timestamp::now().as_datetime() + time::Duration::try_from(d).unwrap_or(time::Duration::ZERO),
    )
}

fn system_event(tenant_id: Uuid, action: &'static str, outcome: Outcome) -> NewAuditEvent {
    crate::service::audit_event(
        Some(tenant_id),
        Actor::System { name: "publisher".into() },
        &crate::service::RequestMeta::default(),
        action,
        outcome,
    )
}

/// What the person who scheduled a post hears when it ends.
fn post_notice(post: &SocialPost, result: &PublishResult) -> Option<NewNotice> {
    let author = post.created_by?;
    let snippet = post.snippet();
    let (kind, title, body) = match result {
        PublishResult::Published { url, .. } => (
            NoticeKind::PostPublished,
            format!("Published on {}: “{snippet}”", post.network.label()),
            match url {
                Some(url) => format!(
                    "Your post went out on {} as {}. See it at {url}",
                    post.network.label(),
                    post.handle
                ),
                None => format!("Your post went out on {} as {}.", post.network.label(), post.handle),
            },
        ),
        PublishResult::Failed { error, .. } => (
            NoticeKind::PostFailed,
            format!("Not published on {}: “{snippet}”", post.network.label()),
            format!(
                "{} refused the post: {error}. Edit it or try again from its page.",
                post.network.label()
            ),
        ),
        PublishResult::Unconfirmed { .. } | PublishResult::Wait { .. } => return None,
    };
    Some(NewNotice {
        tenant_id: Some(post.tenant_id),
        kind,
        audience: Audience::User(author),
        title,
        body,
        link: Some(format!("/t/{}/posts/{}", post.tenant_id, post.id)),
        dedupe_key: Some(format!("post:{}:{}:{}", post.id, post.generation, <&'static str>::from(kind))),
    })
}

/// The `post.published` or `post.failed` webhook event (ids, the
/// platform's link and the refusal; not the text).
fn post_event(post: &SocialPost, result: &PublishResult) -> Option<NewWebhookEvent> {
    let mut data = serde_json::json!({
        "post_id": post.id,
        "account_id": post.account_id,
        "network": post.network,
        "handle": post.handle,
        "project_id": post.project_id,
        "campaign_id": post.campaign_id,
        "activity_id": post.activity_id,
        "scheduled_at": post.scheduled_at.map(Timestamp::to_rfc3339_fixed),
    });
    let (kind, text) = match result {
        PublishResult::Published { platform_post_id, url } => {
            data["platform_post_id"] = serde_json::json!(platform_post_id);
            data["url"] = serde_json::json!(url);
            let text = match url {
                Some(url) => format!("Published on {} as {}: {url}", post.network.label(), post.handle),
                None => format!("Published on {} as {}", post.network.label(), post.handle),
            };
            (WebhookEventKind::PostPublished, text)
        }
        PublishResult::Failed { error, .. } => {
            data["error"] = serde_json::json!(error);
            let text = format!("Not published on {} as {}: {error}", post.network.label(), post.handle);
            (WebhookEventKind::PostFailed, text)
        }
        PublishResult::Unconfirmed { .. } | PublishResult::Wait { .. } => return None,
    };
    Some(NewWebhookEvent::new(post.tenant_id, kind, text, data))
}

/// Why a post was held, on its page and in its author's notice.
const HELD: &str =
    "its approval was not complete at its scheduled time; once it is approved, pick a new time";

/// What the person who scheduled a post hears when it is held.
fn held_notice(post: &SocialPost) -> Option<NewNotice> {
    let author = post.created_by?;
    let snippet = post.snippet();
    Some(NewNotice {
        tenant_id: Some(post.tenant_id),
        kind: NoticeKind::PostFailed,
        audience: Audience::User(author),
        title: format!("Held, not published on {}: “{snippet}”", post.network.label()),
        body: format!("The post was not published: {HELD}."),
        link: Some(format!("/t/{}/posts/{}", post.tenant_id, post.id)),
        dedupe_key: Some(format!(
            "post:{}:{}:held:{}",
            post.id,
            post.generation,
            post.updated_at.to_rfc3339_fixed()
        )),
    })
}

/// What an account's admins hear when the platform refuses its credentials.
fn reconnect_notice(account: &SocialAccount, reason: &str) -> NewNotice {
    NewNotice {
        tenant_id: Some(account.tenant_id),
        kind: NoticeKind::AccountNeedsReconnect,
        audience: Audience::Admins,
        title: format!("{} on {} needs connecting again", account.handle, account.network.label()),
        body: format!(
            "{} refused the account's credentials ({reason}). Its posts wait until someone connects it again \
             under Settings → Accounts.",
            account.network.label()
        ),
        link: Some(format!("/t/{}/settings/accounts", account.tenant_id)),
        dedupe_key: Some(format!("account:{}:reconnect:{}", account.id, account.token_version)),
    }
}

/// Why the engine could not get a usable token.
enum NoToken {
    /// Wait until then, for this reason.
    Wait(Timestamp, String),
}

impl Publisher {
    pub fn new(
        store: Arc<dyn Store>,
        key: Arc<DataKey>,
        platforms: Platforms,
        settings: PublishSettings,
        jobs: Arc<crate::jobs::JobEngine>,
    ) -> Self {
        let owner = format!("{}:{}", gethostname::gethostname().to_string_lossy(), crate::domain::new_id());
        Self { store, key, platforms, settings, owner, wake: Notify::new(), jobs }
    }

    /// Something was scheduled: look now rather than at the next sweep.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn key(&self) -> &DataKey {
        &self.key
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last_checks = std::time::Instant::now() - self.settings.check_interval;
        let mut last_metrics = std::time::Instant::now();
        let mut last_inbox = std::time::Instant::now() - Duration::from_secs(5);
        let mut last_crisis = std::time::Instant::now();
        loop {
            let handled = self.pass().await;
            if last_checks.elapsed() >= Duration::from_secs(5) {
                last_checks = std::time::Instant::now();
                self.health_checks().await;
            }
            // Publishing first, then the inbox, then analytics: each only
            // when no post was due.
            if handled == 0 && last_inbox.elapsed() >= self.settings.inbox_every.min(Duration::from_secs(5)) {
                last_inbox = std::time::Instant::now();
                self.collect_inbox().await;
                self.classify_inbox().await;
                self.draft_replies().await;
                self.auto_replies().await;
            }
            if handled == 0 && last_crisis.elapsed() >= self.settings.inbox_every.min(Duration::from_secs(60))
            {
                last_crisis = std::time::Instant::now();
                self.detect_crises().await;
            }
            if handled == 0 && last_metrics.elapsed() >= self.settings.metrics.poll {
                last_metrics = std::time::Instant::now();
                self.collect_metrics().await;
                self.collect_followers().await;
                self.decide_ab_tests().await;
            }
            let sleep = match self.store.next_post_due().await {
                // A post already due that this pass could not take waits
                // for something else (its account's reconnect or rate
                // limit, another replica's lease): the sweep, not a spin.
                Ok(Some(next)) if next > Timestamp::now() || handled > 0 => {
                    let wait = next.as_datetime() - Timestamp::now().as_datetime();
                    Duration::try_from(wait).unwrap_or(Duration::ZERO).min(self.settings.sweep_interval)
                }
                _ => self.settings.sweep_interval,
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep.max(Duration::from_millis(20))) => {}
            }
        }
    }

    /// Holds the due posts whose approval is not complete: they become
    /// `needs_reschedule` (never published unapproved), audited, and their
    /// author hears.
    async fn hold_unapproved(&self, now: Timestamp) {
        let posts = match self.store.due_unapproved(now, BATCH).await {
            Ok(posts) => posts,
            Err(e) => {
                tracing::error!(error = %e, "could not read the unapproved posts due");
                return;
            }
        };
        for post in posts {
            let mut audit = system_event(post.tenant_id, actions::POST_HOLD, Outcome::Success)
                .resource("post", post.id)
                .details(serde_json::json!({ "scheduled_at": post.scheduled_at, "reason": HELD }));
            if let Some(notice) = held_notice(&post) {
                audit = audit.notify(notice);
            }
            match self.store.hold_post(post.id, HELD, &audit).await {
                Ok(true) => tracing::info!(post = %post.id, "post held: its approval was not complete"),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, post = %post.id, "could not hold a post"),
            }
        }
    }

    /// One pass: expired leases, due posts, due reconciliations. Returns
    /// how many posts it took.
    pub async fn pass(&self) -> usize {
        let now = Timestamp::now();
        self.hold_unapproved(now).await;
        let mut ids = Vec::new();
        for found in [
            self.store.expired_publishing(now, BATCH).await,
            self.store.due_posts(now, BATCH).await,
            self.store.unconfirmed_due(now, BATCH).await,
        ] {
            match found {
                Ok(found) => ids.extend(found),
                Err(e) => tracing::error!(error = %e, "could not read the posts due"),
            }
        }
        if ids.is_empty() {
            return 0;
        }
        let lease_until = later(self.settings.lease);
        let mut by_account: BTreeMap<Uuid, Vec<SocialPost>> = BTreeMap::new();
        for id in ids {
            match self.store.claim_post(id, &self.owner, lease_until, Timestamp::now()).await {
                Ok(Some(post)) => by_account.entry(post.account_id).or_default().push(post),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, post = %id, "could not claim a post"),
            }
        }
        let handled = by_account.values().map(Vec::len).sum();
        // Accounts in parallel; one account's posts in order, so they share
        // one token refresh and meet its rate limit one at a time.
        let work = by_account.into_values().map(|posts| async move {
            for post in posts {
                self.handle(post).await;
            }
        });
        futures_util::future::join_all(work).await;
        handled
    }

    async fn handle(&self, post: SocialPost) {
        let id = post.id;
        let result = match post.status {
            PostStatus::Unconfirmed => self.reconcile(&post).await,
            _ => self.publish(&post).await,
        };
        let (action, outcome) = match &result {
            PublishResult::Published { .. } => (actions::POST_PUBLISHED, Outcome::Success),
            PublishResult::Failed { .. } => (actions::POST_FAILED, Outcome::Rejected),
            PublishResult::Unconfirmed { .. } | PublishResult::Wait { .. } => {
                (actions::POST_UNCONFIRMED, Outcome::Error)
            }
        };
        let details = match &result {
            PublishResult::Published { platform_post_id, url } => {
                serde_json::json!({ "platform_post_id": platform_post_id, "url": url })
            }
            PublishResult::Failed { error, .. } => serde_json::json!({ "error": error }),
            PublishResult::Unconfirmed { reason, .. } => serde_json::json!({ "reason": reason }),
            PublishResult::Wait { reason, .. } => serde_json::json!({ "reason": reason }),
        };
        let mut audit = system_event(post.tenant_id, action, outcome).resource("post", id).details(details);
        if let Some(notice) = post_notice(&post, &result) {
            audit = audit.notify(notice);
        }
        if let Some(event) = post_event(&post, &result) {
            audit = audit.emit(event);
        }
        match self.store.finish_post(id, &self.owner, &result, Timestamp::now(), &audit).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(post = %id, "lost the lease of a post before recording its outcome"),
            Err(e) => tracing::error!(error = %e, post = %id, "could not record a post's outcome"),
        }
    }

    /// An answer that says the account's window is spent makes the
    /// account wait for its reset before the next request, instead of
    /// earning a 429.
    async fn note_window(&self, account: &SocialAccount, record: &CallRecord) {
        if let Some((until, what)) = &record.app_limit
            && *until > Timestamp::now()
        {
            let note = format!("{}: {what}", account.network);
            tracing::warn!(network = %account.network, until = %until.to_rfc3339_fixed(), "a platform limits Marketer's app");
            if let Err(e) =
                self.store.platform_limited(account.network, *until, &note, Timestamp::now()).await
            {
                tracing::error!(error = %e, "could not record a platform's app limit");
            }
        }
        if let (Some(remaining), Some(reset)) = record.window
            && remaining <= 0
            && reset > Timestamp::now()
        {
            let note = format!("{} rate limit: no calls left in this window", account.network);
            if let Err(e) = self.store.account_rate_limited(account.id, reset, &note).await {
                tracing::error!(error = %e, account = %account.id, "could not record a rate limit");
            }
        }
    }

    async fn attempt(
        &self,
        post: &SocialPost,
        kind: &str,
        started: Timestamp,
        outcome: &str,
        record: &CallRecord,
    ) {
        let attempt = PostAttempt {
            id: crate::domain::new_id(),
            post_id: post.id,
            tenant_id: post.tenant_id,
            kind: kind.to_owned(),
            started_at: started,
            finished_at: Timestamp::now(),
            request_id: record.request_id.clone(),
            http_status: record.http_status.map(i64::from),
            outcome: outcome.to_owned(),
            detail: record.detail.clone(),
        };
        if let Err(e) = self.store.record_attempt(&attempt).await {
            tracing::error!(error = %e, post = %post.id, "could not record an attempt");
        }
    }

    async fn publish(&self, post: &SocialPost) -> PublishResult {
        let mut refreshed = false;
        let mut post = post.clone();
        let mut prepared = 0;
        loop {
            let post = &mut post;
            let (account, token) = match self.token(post.account_id, false).await {
                Ok(t) => t,
                Err(NoToken::Wait(until, reason)) => {
                    return PublishResult::Wait { until, reason, new_generation: false };
                }
            };
            match self.store.mark_sending(post.id, &self.owner, Timestamp::now()).await {
                Ok(true) => {}
                Ok(false) => {
                    return PublishResult::Wait {
                        until: Timestamp::now(),
                        reason: "the lease was lost".into(),
                        new_generation: false,
                    };
                }
                Err(e) => {
                    tracing::error!(error = %e, post = %post.id, "could not mark a post as sending");
                    return PublishResult::Wait {
                        until: later(Duration::from_secs(5)),
                        reason: "the database was unavailable".into(),
                        new_generation: false,
                    };
                }
            }
            let started = Timestamp::now();
            let (sent, record) = self.platforms.publish(&account, &token, post).await;
            let label = match &sent {
                Sent::Created { .. } => "published",
                Sent::Refused { .. } => "refused",
                Sent::TokenExpired => "token_expired",
                Sent::Unauthorized { .. } => "unauthorized",
                Sent::RateLimited { .. } => "rate_limited",
                Sent::NotSent { .. } => "not_sent",
                Sent::Unknown { .. } => "unknown",
                Sent::Prepared { .. } => "prepared",
                Sent::NotReady { .. } => "not_ready",
            };
            self.attempt(post, "publish", started, label, &record).await;
            self.note_window(&account, &record).await;
            return match sent {
                Sent::Created { id, url } => {
                    let _ = self
                        .store
                        .account_checked(account.id, true, account.next_check_at, Timestamp::now())
                        .await;
                    PublishResult::Published { platform_post_id: id, url }
                }
                Sent::Refused { error, hint } => PublishResult::Failed { error, hint },
                // Nothing was created: refresh once and send again.
                Sent::TokenExpired if !refreshed => {
                    refreshed = true;
                    if let Err(NoToken::Wait(until, reason)) = self.refresh(&account).await {
                        return PublishResult::Wait { until, reason, new_generation: true };
                    }
                    continue;
                }
                Sent::TokenExpired | Sent::Unauthorized { .. } => {
                    let reason = match sent {
                        Sent::Unauthorized { reason } => reason,
                        _ => format!("{} refused a freshly renewed token", account.network),
                    };
                    self.needs_reconnect(&account, &reason).await;
                    PublishResult::Wait {
                        until: Timestamp::now(),
                        reason: format!("waiting for {} to be connected again: {reason}", account.handle),
                        new_generation: true,
                    }
                }
                Sent::RateLimited { until, note } => {
                    let _ = self.store.account_rate_limited(account.id, until, &note).await;
                    PublishResult::Wait {
                        until,
                        reason: format!("{note}; waiting until {}", until.to_rfc3339_fixed()),
                        new_generation: true,
                    }
                }
                Sent::NotSent { reason } => PublishResult::Wait {
                    until: later(Duration::from_secs(30)),
                    reason: format!(
                        "{} could not be reached ({reason}); trying again shortly",
                        account.network
                    ),
                    new_generation: true,
                },
                Sent::Unknown { reason } => PublishResult::Unconfirmed {
                    reason: format!("{reason}; checking {} before sending anything again", account.network),
                    check_at: later(self.settings.reconcile_delay),
                },
                // Recorded before the request that publishes, so a retry or
                // the reconciler asks about this container.
                Sent::Prepared { container } if prepared < 2 => {
                    prepared += 1;
                    match self.store.set_post_container(post.id, &self.owner, Some(&container)).await {
                        Ok(true) => {
                            post.platform_container_id = Some(container);
                            continue;
                        }
                        Ok(false) => PublishResult::Wait {
                            until: Timestamp::now(),
                            reason: "the lease was lost".into(),
                            new_generation: false,
                        },
                        Err(e) => {
                            tracing::error!(error = %e, post = %post.id, "could not record a media container");
                            PublishResult::Wait {
                                until: later(Duration::from_secs(5)),
                                reason: "the database was unavailable".into(),
                                new_generation: false,
                            }
                        }
                    }
                }
                Sent::Prepared { .. } => PublishResult::Wait {
                    until: later(Duration::from_secs(60)),
                    reason: format!(
                        "{} keeps asking for new media; trying again in a minute",
                        account.network
                    ),
                    new_generation: false,
                },
                Sent::NotReady { until, note } => PublishResult::Wait {
                    reason: format!("{note}; trying again at {}", until.to_rfc3339_fixed()),
                    until,
                    new_generation: false,
                },
            };
        }
    }

    async fn reconcile(&self, post: &SocialPost) -> PublishResult {
        let mut refreshed = false;
        loop {
            let (account, token) = match self.token(post.account_id, false).await {
                Ok(t) => t,
                Err(NoToken::Wait(until, reason)) => {
                    return PublishResult::Unconfirmed {
                        reason,
                        check_at: until.max(later(self.settings.reconcile_delay)),
                    };
                }
            };
            let started = Timestamp::now();
            let (found, record) = self.platforms.find(&account, &token, post).await;
            let label = match &found {
                Found::Present { .. } => "found",
                Found::Absent => "absent",
                Found::RateLimited { .. } => "rate_limited",
                Found::TokenExpired => "token_expired",
                Found::Unknown { .. } => "unknown",
            };
            self.attempt(post, "reconcile", started, label, &record).await;
            self.note_window(&account, &record).await;
            return match found {
                Found::Present { id, url } => PublishResult::Published { platform_post_id: id, url },
                Found::Absent => PublishResult::Wait {
                    until: Timestamp::now(),
                    reason: format!(
                        "{} confirmed the post was not created; sending it again",
                        account.network
                    ),
                    new_generation: true,
                },
                Found::RateLimited { until, note } => {
                    let _ = self.store.account_rate_limited(account.id, until, &note).await;
                    PublishResult::Unconfirmed {
                        reason: format!("{note}; checking again after it"),
                        check_at: until,
                    }
                }
                Found::TokenExpired if !refreshed => {
                    refreshed = true;
                    if let Err(NoToken::Wait(until, reason)) = self.refresh(&account).await {
                        return PublishResult::Unconfirmed { reason, check_at: until };
                    }
                    continue;
                }
                Found::TokenExpired => PublishResult::Unconfirmed {
                    reason: "the platform refused the token while checking".into(),
                    check_at: later(self.settings.reconcile_delay),
                },
                Found::Unknown { reason } => PublishResult::Unconfirmed {
                    reason: format!("could not confirm yet ({reason}); checking again"),
                    check_at: later(self.settings.reconcile_delay),
                },
            };
        }
    }

    /// The account and a usable access token, refreshed first when it is
    /// about to expire.
    async fn token(&self, account_id: Uuid, force: bool) -> Result<(SocialAccount, SecretString), NoToken> {
        let unavailable =
            || NoToken::Wait(later(Duration::from_secs(5)), "the database was unavailable".into());
        let mut refreshed = false;
        loop {
            let (account, tokens) = match self.store.account_tokens(account_id).await {
                Ok(Some(found)) => found,
                Ok(None) => {
                    return Err(NoToken::Wait(
                        later(Duration::from_secs(3600)),
                        "the account was disconnected".into(),
                    ));
                }
                Err(_) => return Err(unavailable()),
            };
            if account.status == AccountStatus::NeedsReconnect {
                return Err(NoToken::Wait(
                    Timestamp::now(),
                    format!(
                        "waiting for {} to be connected again: {}",
                        account.handle,
                        account.status_reason.clone().unwrap_or_default()
                    ),
                ));
            }
            let margin =
                time::Duration::try_from(self.settings.refresh_margin).unwrap_or(time::Duration::ZERO);
            let expiring = tokens
                .expires_at
                .is_some_and(|at| at.as_datetime() - margin <= Timestamp::now().as_datetime());
            // One refresh per call: a platform that gives short-lived tokens
            // gets them used at once rather than refreshed again.
            if Platforms::refreshes(account.network) && (force || expiring) && !refreshed {
                self.refresh(&account).await?;
                refreshed = true;
                continue;
            }
            let token = self.key.open(account.tenant_id, &tokens.access).map_err(|_| {
                NoToken::Wait(
                    later(Duration::from_secs(60)),
                    "the stored token could not be decrypted (was the data key changed?)".into(),
                )
            })?;
            return Ok((account, token));
        }
    }

    /// Refreshes an account's token, once across replicas: whoever takes the
    /// lock refreshes; the others wait for the new token version.
    async fn refresh(&self, account: &SocialAccount) -> Result<(), NoToken> {
        let now = Timestamp::now();
        if let Some(retry_at) = account.refresh_retry_at.filter(|at| *at > now) {
            return Err(NoToken::Wait(
                retry_at,
                "renewing the token failed for a passing reason; trying again then".into(),
            ));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let until = later(Duration::from_secs(30));
            match self
                .store
                .lock_refresh(account.id, account.token_version, &self.owner, until, Timestamp::now())
                .await
            {
                Ok(true) => return self.refresh_locked(account).await,
                Ok(false) => {}
                Err(_) => {
                    return Err(NoToken::Wait(
                        later(Duration::from_secs(5)),
                        "the database was unavailable".into(),
                    ));
                }
            }
            // Someone else holds the lock, or has refreshed already.
            match self.store.account_tokens(account.id).await {
                Ok(Some((current, _))) if current.token_version != account.token_version => return Ok(()),
                Ok(Some((current, _))) if current.status == AccountStatus::NeedsReconnect => {
                    return Err(NoToken::Wait(
                        Timestamp::now(),
                        format!("waiting for {} to be connected again", current.handle),
                    ));
                }
                _ => {}
            }
            if std::time::Instant::now() > deadline {
                return Err(NoToken::Wait(
                    later(Duration::from_secs(5)),
                    "another replica is renewing the token".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn refresh_locked(&self, account: &SocialAccount) -> Result<(), NoToken> {
        let tokens = match self.store.account_tokens(account.id).await {
            Ok(Some((_, tokens))) => tokens,
            _ => {
                return Err(NoToken::Wait(
                    later(Duration::from_secs(5)),
                    "the database was unavailable".into(),
                ));
            }
        };
        let refresh =
            tokens.refresh.as_ref().and_then(|sealed| self.key.open(account.tenant_id, sealed).ok());
        let answer = match refresh {
            Some(refresh) => self.platforms.refresh(account, &refresh).await,
            None => {
                Refreshed::Refused { reason: "there is no refresh token; connect the account again".into() }
            }
        };
        let now = Timestamp::now();
        let (outcome, result, audit) = match answer {
            Refreshed::Tokens { access, refresh, expires_in } => {
                let seal = |s: &SecretString| {
                    self.key.seal(account.tenant_id, secrecy::ExposeSecret::expose_secret(s))
                };
                let sealed = match (seal(&access), refresh.as_ref().map(seal).transpose()) {
                    (Ok(access), Ok(refresh)) => SealedTokens {
                        access,
                        refresh,
                        expires_at: expires_in.map(|s| {
                            Timestamp::from_datetime(now.as_datetime() + time::Duration::seconds(s))
                        }),
                    },
                    _ => {
                        return Err(NoToken::Wait(
                            later(Duration::from_secs(60)),
                            "sealing the new token failed".into(),
                        ));
                    }
                };
                (TokenRefresh::Refreshed(sealed), Ok(()), None)
            }
            Refreshed::Retry { reason } => {
                let backoff = Duration::from_secs(5u64 << account.refresh_failures.clamp(0, 7));
                let retry_at = later(backoff);
                let why = format!(
                    "renewing the token failed ({reason}); trying again at {}",
                    retry_at.to_rfc3339_fixed()
                );
                (
                    TokenRefresh::Retry { retry_at, reason: why.clone() },
                    Err(NoToken::Wait(retry_at, why)),
                    None,
                )
            }
            Refreshed::Refused { reason } => {
                let audit = system_event(
                    account.tenant_id,
                    actions::SOCIAL_ACCOUNT_NEEDS_RECONNECT,
                    Outcome::Rejected,
                )
                .resource("social_account", account.id)
                .details(serde_json::json!({ "reason": reason }))
                .notify(reconnect_notice(account, &reason));
                let why = format!("waiting for {} to be connected again: {reason}", account.handle);
                tracing::warn!(account = %account.id, network = %account.network, "the platform refused to renew an account's token");
                (TokenRefresh::Refused { reason }, Err(NoToken::Wait(Timestamp::now(), why)), Some(audit))
            }
        };
        if let Err(e) =
            self.store.finish_refresh(account.id, &self.owner, &outcome, now, audit.as_ref()).await
        {
            tracing::error!(error = %e, account = %account.id, "could not store a token refresh");
            return Err(NoToken::Wait(later(Duration::from_secs(5)), "the database was unavailable".into()));
        }
        result
    }

    async fn needs_reconnect(&self, account: &SocialAccount, reason: &str) {
        let audit =
            system_event(account.tenant_id, actions::SOCIAL_ACCOUNT_NEEDS_RECONNECT, Outcome::Rejected)
                .resource("social_account", account.id)
                .details(serde_json::json!({ "reason": reason }))
                .notify(reconnect_notice(account, reason));
        if let Err(e) = self.store.account_needs_reconnect(account.id, reason, &audit).await {
            tracing::error!(error = %e, account = %account.id, "could not mark an account for reconnecting");
        }
    }

    /// Checks the credentials of accounts whose check is due.
    async fn health_checks(&self) {
        let ids = match self.store.accounts_due_check(Timestamp::now(), 16).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "could not read the accounts due a check");
                return;
            }
        };
        for id in ids {
            let next = later(self.settings.check_interval);
            let Ok((account, token)) = self.token(id, false).await else {
                let _ = self.store.account_checked(id, false, next, Timestamp::now()).await;
                continue;
            };
            let ok = match self.platforms.check(&account, &token).await {
                Health::Ok => true,
                Health::TokenExpired => self.refresh(&account).await.is_ok(),
                Health::Unauthorized { reason } => {
                    self.needs_reconnect(&account, &reason).await;
                    false
                }
                Health::RateLimited { until, note } => {
                    let _ = self.store.account_rate_limited(account.id, until, &note).await;
                    false
                }
                Health::Unreachable { reason } => {
                    tracing::info!(account = %account.id, %reason, "an account's health check did not reach its platform");
                    false
                }
            };
            let _ = self.store.account_checked(id, ok, next, Timestamp::now()).await;
        }
    }
}
