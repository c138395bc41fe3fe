//! Publishing's use cases: connecting and managing social accounts, writing
//! and scheduling posts (directly or from an activity's social variants),
//! the calendar's reads, deleting posts (on the platform too), people's
//! time zones. The engine that sends posts is `crate::publishing`.
//!
//! The approval gate is [`approval_gate`]: a post is scheduled when it is
//! approved (itself, or through its activity while its text and image are
//! as they came from it) or its review is still going on (its activity's,
//! or in a project with a review workflow its own, `service::reviews`). The
//! engine publishes only approved posts: one whose approval is not complete
//! at its scheduled time is held (`needs_reschedule`), never published.

use marketer_protocol::activity::Platform;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, Caller, TenantAccess, actions};
use crate::domain::{Permission, Timestamp, new_id};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::publishing::connect::{STATE_TTL, pkce, state, state_hash};
use crate::publishing::platforms::{Granted, Profile, linkedin, mastodon, meta, x};
use crate::publishing::schedule::{self, Fold};
use crate::store::{
    AccountPatch, AccountStatus, Activity, MastodonApp, Network, NewAccount, NewPost, OAuthState,
    PlatformLimit, PostAttempt, PostFilter, PostPatch, PostStatus, PostingSlot, ReviewWorkflow, SealedTokens,
    SocialAccount, SocialPost,
};

/// An account as people see it: never its tokens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub network: Network,
    pub handle: String,
    pub display_name: String,
    pub profile_url: Option<String>,
    pub instance_url: Option<String>,
    /// The projects it may post for; `null`: all.
    pub project_ids: Option<Vec<Uuid>>,
    /// `connected`, `needs_reconnect` or `rate_limited`.
    pub health: String,
    /// Why it needs reconnecting, or what the rate limit is.
    pub health_reason: Option<String>,
    pub rate_limited_until: Option<Timestamp>,
    pub token_expires_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_checked_at: Option<Timestamp>,
    pub posting_time_zone: String,
    pub posting_slots: Vec<PostingSlot>,
    pub created_at: Timestamp,
}

impl AccountView {
    pub fn of(a: &SocialAccount) -> Self {
        let now = Timestamp::now();
        let limited = a.rate_limited_until.filter(|until| *until > now);
        let (health, reason) = match (a.status, limited) {
            (AccountStatus::NeedsReconnect, _) => ("needs_reconnect", a.status_reason.clone()),
            (AccountStatus::Connected, Some(_)) => ("rate_limited", a.rate_limit_note.clone()),
            (AccountStatus::Connected, None) => ("connected", None),
        };
        Self {
            id: a.id,
            network: a.network,
            handle: a.handle.clone(),
            display_name: a.display_name.clone(),
            profile_url: a.profile_url.clone(),
            instance_url: a.instance_url.clone(),
            project_ids: a.project_ids.clone(),
            health: health.into(),
            health_reason: reason,
            rate_limited_until: limited,
            token_expires_at: a.token_expires_at,
            last_success_at: a.last_success_at,
            last_checked_at: a.last_checked_at,
            posting_time_zone: a.posting_time_zone.clone(),
            posting_slots: a.posting_slots.clone(),
            created_at: a.created_at,
        }
    }
}

/// A post as people see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub network: Network,
    pub handle: String,
    pub project_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub activity_id: Option<Uuid>,
    pub activity_version: Option<i64>,
    pub text: String,
    pub image_url: Option<String>,
    pub status: PostStatus,
    pub scheduled_at: Option<Timestamp>,
    /// `scheduled_at` as wall time in `time_zone` (`YYYY-MM-DDTHH:MM`).
    pub scheduled_local: Option<String>,
    pub time_zone: String,
    pub approved: bool,
    pub approved_by: Option<Uuid>,
    /// What a scheduled or unconfirmed post is waiting for, in words.
    pub waiting: Option<String>,
    pub waiting_until: Option<Timestamp>,
    pub attempts: i64,
    pub platform_post_id: Option<String>,
    /// The post on the platform.
    pub url: Option<String>,
    pub published_at: Option<Timestamp>,
    pub error: Option<String>,
    /// What to do about the error.
    pub error_hint: Option<String>,
    /// Characters as the platform counts them, and its limit.
    pub length: usize,
    pub limit: usize,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl PostView {
    pub fn of(p: &SocialPost, account: Option<&SocialAccount>) -> Self {
        let now = Timestamp::now();
        let (length, limit) = (text_length(p.network, &p.text), rules(p.network).limit);
        let mut waiting = None;
        let mut waiting_until = p.not_before.filter(|t| *t > now);
        if matches!(p.status, PostStatus::Scheduled | PostStatus::Unconfirmed | PostStatus::NeedsReschedule) {
            waiting = p.wait_reason.clone();
            if let Some(a) = account {
                if a.status == AccountStatus::NeedsReconnect {
                    waiting = Some(format!(
                        "waiting for {} to be connected again: {}",
                        a.handle,
                        a.status_reason.clone().unwrap_or_default()
                    ));
                } else if let Some(until) = a.rate_limited_until.filter(|u| *u > now) {
                    waiting = Some(format!(
                        "{} until {}",
                        a.rate_limit_note.clone().unwrap_or_else(|| "rate limited".into()),
                        until.to_rfc3339_fixed()
                    ));
                    waiting_until = Some(until);
                }
            }
        }
        Self {
            id: p.id,
            account_id: p.account_id,
            network: p.network,
            handle: p.handle.clone(),
            project_id: p.project_id,
            campaign_id: p.campaign_id,
            activity_id: p.activity_id,
            activity_version: p.activity_version,
            text: p.text.clone(),
            image_url: p.image_url.clone(),
            status: p.status,
            scheduled_at: p.scheduled_at,
            scheduled_local: p.scheduled_at.map(|at| schedule::instant_to_local(at, &p.time_zone)),
            time_zone: p.time_zone.clone(),
            approved: p.approved_at.is_some(),
            approved_by: p.approved_by,
            waiting,
            waiting_until,
            attempts: p.attempts,
            platform_post_id: p.platform_post_id.clone(),
            url: p.platform_url.clone(),
            published_at: p.published_at,
            error: p.error.clone(),
            error_hint: p.error_hint.clone(),
            length,
            limit,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Checks a post's image address for its network: a public `http(s)`
/// URL (`https` unless the server allows insecure addresses), required on
/// Instagram, refused where Marketer posts text only.
pub fn check_image(
    network: Network,
    image_url: Option<&str>,
    allow_insecure: bool,
) -> Result<Option<String>> {
    let image = image_url.map(str::trim).filter(|u| !u.is_empty());
    let Some(image) = image else {
        if network == Network::Instagram {
            return Err(Error::invalid(
                "image_url",
                "Instagram posts need an image: give the address of a JPEG that Instagram can download",
            ));
        }
        return Ok(None);
    };
    if !matches!(network, Network::Instagram | Network::Facebook) {
        return Err(Error::invalid(
            "image_url",
            format!(
                "images are published on Facebook Pages and Instagram so far; {network} posts are text only"
            ),
        ));
    }
    let fix = "give an https:// address that anyone can open, e.g. https://example.com/photo.jpg";
    if image.len() > 2048 {
        return Err(Error::invalid("image_url", format!("at most 2,048 characters; {fix}")));
    }
    let url = reqwest::Url::parse(image)
        .map_err(|_| Error::invalid("image_url", format!("not an address; {fix}")))?;
    let scheme_ok = url.scheme() == "https" || (allow_insecure && url.scheme() == "http");
    if !scheme_ok || url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid("image_url", fix));
    }
    Ok(Some(url.to_string()))
}

impl PostView {
    /// A waiting post whose platform limits Marketer's app says so.
    fn explain(mut self, limits: &[PlatformLimit]) -> Self {
        if matches!(self.status, PostStatus::Scheduled | PostStatus::Unconfirmed)
            && let Some(limit) = limits.iter().find(|l| l.network == self.network)
            && self.waiting_until.is_none_or(|u| u < limit.until)
        {
            self.waiting = Some(format!("{} until {}", limit.note, limit.until.to_rfc3339_fixed()));
            self.waiting_until = Some(limit.until);
        }
        self
    }
}

/// A network's publishing rules.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub limit: usize,
    pub max_hashtags: usize,
}

pub fn rules(network: Network) -> Rules {
    let from = |p: Platform| {
        let s = marketer_pipeline::platforms::spec(p);
        Rules { limit: s.char_limit, max_hashtags: s.max_hashtags.max(s.suggested_hashtags.1) }
    };
    match network {
        Network::X => from(Platform::X),
        Network::Linkedin => from(Platform::Linkedin),
        Network::Facebook => from(Platform::Facebook),
        Network::Instagram => from(Platform::Instagram),
        // Mastodon's default instance limit; Bluesky counts graphemes.
        Network::Mastodon => Rules { limit: 500, max_hashtags: 10 },
        Network::Bluesky => Rules { limit: 300, max_hashtags: 10 },
    }
}

/// A text's length as the network counts it.
pub fn text_length(network: Network, text: &str) -> usize {
    match network {
        Network::X => marketer_pipeline::platforms::x_length(text),
        Network::Mastodon => marketer_pipeline::platforms::mastodon_length(text),
        Network::Bluesky => marketer_pipeline::platforms::bluesky_length(text),
        _ => marketer_pipeline::platforms::char_count(text),
    }
}

/// Refuses a text the network would refuse, naming the rule.
pub fn check_text(network: Network, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(Error::invalid("text", "a post needs text"));
    }
    let r = rules(network);
    let length = text_length(network, text);
    if length > r.limit {
        return Err(Error::invalid(
            "text",
            format!(
                "{network} allows {} characters and this post has {length} as {network} counts them; shorten it",
                r.limit
            ),
        ));
    }
    let tags = marketer_pipeline::platforms::hashtags(text).len();
    if tags > r.max_hashtags {
        return Err(Error::invalid(
            "text",
            format!(
                "{network} posts take at most {} hashtags and this one has {tags}; remove some",
                r.max_hashtags
            ),
        ));
    }
    Ok(())
}

/// A post's text as it is sent: line breaks as `\n` (forms send `\r\n`),
/// no whitespace at the ends.
pub fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n").trim().to_owned()
}

/// The one approval gate of scheduling: the post was approved; or it is
/// as it came from its activity, and the activity is approved or its
/// content is in review; or it has a review of its own through its
/// project's workflow (`own_review`). A review still going on at the
/// scheduled time holds the post.
pub fn approval_gate(
    activity: Option<&Activity>,
    post_approved: bool,
    edited: bool,
    own_review: bool,
) -> Result<()> {
    let in_review = |a: &Activity| a.content_run.is_some() && a.run.status.is_terminal();
    if post_approved || own_review || (!edited && activity.is_some_and(in_review)) {
        return Ok(());
    }
    Err(Error::Conflict {
        code: "post_not_approved",
        message: match activity {
            Some(_) if edited => "the post's text or image was changed from what its activity's review covers; \
                                  approve this post (\"approve\": true, members and above) before scheduling"
                .into(),
            Some(_) => {
                "the activity has no content to review yet; generate it (or approve this post) before scheduling"
                    .into()
            }
            None => {
                "only approved posts can be scheduled; set \"approve\": true (members and above may approve)"
                    .into()
            }
        },
    })
}

/// Who approves a post on its own (one not covered by its activity's
/// review) with `approve`: a person, and only under the default review
/// (`workflow` is `None`). A project with a review workflow approves its
/// posts through it (`POST .../posts/{id}/review`).
fn own_approval(access: &TenantAccess, workflow: Option<&ReviewWorkflow>) -> Result<Uuid> {
    let me = access.caller.creator_id().ok_or_else(|| Error::Forbidden("approving needs a person".into()))?;
    if let Some(workflow) = workflow {
        return Err(Error::Conflict {
            code: "review_workflow_required",
            message: format!(
                "this project's content is approved through its review workflow “{}”: leave out \"approve\" \
                 and ask for the post's review (its page, or POST .../posts/{{id}}/review/request)",
                workflow.name
            ),
        });
    }
    Ok(me)
}

/// When a post should go out: at most one of an instant, a wall time, the
/// queue or now; none: a draft.
#[derive(Debug, Clone, Default)]
pub struct When {
    pub scheduled_at: Option<Timestamp>,
    pub local_time: Option<String>,
    pub time_zone: Option<String>,
    pub fold: Option<Fold>,
    pub queue: bool,
    pub best_time: bool,
    pub now: bool,
}

/// A checked new post, or the one its Idempotency-Key already made.
#[derive(Debug)]
pub(crate) enum PreparedPost {
    Existing(Box<PostView>),
    New { post: Box<NewPost>, audit: Box<crate::store::NewAuditEvent>, account: Box<SocialAccount> },
}

/// The fields that say when, shared by creating and changing a post.
macro_rules! when_fields {
    ($name:ident { $($field:tt)* }) => {
        #[derive(Debug, Clone, Default, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($field)*
            /// An instant (RFC 3339).
            pub scheduled_at: Option<Timestamp>,
            /// Or a wall time `YYYY-MM-DDTHH:MM` in `time_zone`.
            pub local_time: Option<String>,
            /// IANA zone of `local_time` [default: your time zone, else the account's].
            pub time_zone: Option<String>,
            /// For a wall time that happens twice (clocks going back).
            pub fold: Option<Fold>,
            /// The account's next free posting slot.
            #[serde(default)]
            pub queue: bool,
            /// The soonest of the account's best times to post with no post
            /// of the account in its hour.
            #[serde(default)]
            pub best_time: bool,
            /// As soon as possible.
            #[serde(default)]
            pub now: bool,
        }

        impl $name {
            pub fn when(&self) -> When {
                When {
                    scheduled_at: self.scheduled_at,
                    local_time: self.local_time.clone(),
                    time_zone: self.time_zone.clone(),
                    fold: self.fold,
                    queue: self.queue,
                    best_time: self.best_time,
                    now: self.now,
                }
            }

            pub fn set_when(&mut self, when: When) {
                self.scheduled_at = when.scheduled_at;
                self.local_time = when.local_time;
                self.time_zone = when.time_zone;
                self.fold = when.fold;
                self.queue = when.queue;
                self.best_time = when.best_time;
                self.now = when.now;
            }
        }
    };
}

when_fields!(CreatePost {
    pub account_id: Uuid,
    /// The text; with `activity_id`, defaults to the activity's variant.
    pub text: Option<String>,
    /// Schedule one of this activity's social variants.
    pub activity_id: Option<Uuid>,
    /// Which variant (`x`, `linkedin`, ...) [default: the account's network].
    pub variant: Option<String>,
    pub project_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    /// Approve the post itself (members and above).
    #[serde(default)]
    pub approve: bool,
    /// An image at a public `https://` address, which the platform fetches
    /// (a JPEG for Instagram, where it is required; Facebook posts it as a
    /// photo; other networks take text only so far).
    pub image_url: Option<String>,
});

when_fields!(UpdatePost {
    pub text: Option<String>,
    /// A new image address; `null` removes it.
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<String>)]
    pub image_url: Option<Option<String>>,
    /// Back to a draft (unscheduled).
    #[serde(default)]
    pub unschedule: bool,
    /// Cancel a scheduled post.
    #[serde(default)]
    pub cancel: bool,
    #[serde(default)]
    pub approve: bool,
});

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostQuery {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub account_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub campaign_id: Option<Uuid>,
    pub status: Option<PostStatus>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartConnect {
    pub network: Network,
    /// A Mastodon instance, e.g. `mastodon.social`.
    pub instance: Option<String>,
    /// Limit the account to these projects [default: all].
    pub project_ids: Option<Vec<Uuid>>,
}

/// A Bluesky account, connected with an app password.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectBluesky {
    /// The handle (or e-mail address) of the account.
    pub identifier: String,
    /// An app password (Settings → Privacy and security → App passwords on
    /// Bluesky); stored encrypted only as the session it opens.
    #[schema(value_type = String, format = Password)]
    pub app_password: SecretString,
    /// The account's PDS [default: https://bsky.social].
    pub service: Option<String>,
    pub project_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectStarted {
    /// Send the person here to approve; the platform sends them back to
    /// `/oauth/callback/{network}`.
    pub authorize_url: String,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    #[serde(default, deserialize_with = "super::double_option")]
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub project_ids: Option<Option<Vec<Uuid>>>,
    pub posting_time_zone: Option<String>,
    pub posting_slots: Option<Vec<PostingSlot>>,
}

/// An account the platform just authorised, before it is stored.
struct Connected {
    network: Network,
    instance_url: Option<String>,
    granted: Granted,
    profile: Profile,
}

/// A post's full story.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PostDetail {
    #[serde(flatten)]
    pub post: PostView,
    pub attempts: Vec<PostAttempt>,
}

const MAX_LIST: i64 = 2000;

impl App {
    // ----- Accounts --------------------------------------------------------

    pub async fn social_accounts(&self, access: &TenantAccess) -> Result<Vec<AccountView>> {
        access.require(Permission::AccountsRead)?;
        Ok(self.store.accounts(access.tenant_id).await?.iter().map(AccountView::of).collect())
    }

    pub async fn social_account(&self, access: &TenantAccess, id: Uuid) -> Result<AccountView> {
        access.require(Permission::AccountsRead)?;
        Ok(AccountView::of(&self.store.account(access.tenant_id, id).await.found("account")?))
    }

    async fn check_projects(&self, access: &TenantAccess, ids: Option<&Vec<Uuid>>) -> Result<()> {
        for id in ids.into_iter().flatten() {
            if self.store.project(access.tenant_id, *id).await?.is_none() {
                return Err(Error::invalid(
                    "project_ids",
                    format!("{id} is not a project of this organisation"),
                ));
            }
        }
        Ok(())
    }

    /// Starts connecting an account: the URL to send the person to.
    pub async fn start_connect(&self, access: &TenantAccess, req: StartConnect) -> Result<ConnectStarted> {
        access.require(Permission::AccountsManage)?;
        let user = access.caller.user()?.clone();
        self.check_projects(access, req.project_ids.as_ref()).await?;
        let platforms = &self.publisher.platforms;
        let (verifier, challenge) = pkce();
        let (state, hash) = state();
        let (url, instance) = match req.network {
            Network::X => (
                x::authorize_url(platforms, &state, &challenge).map_err(|m| Error::invalid("network", m))?,
                None,
            ),
            Network::Linkedin => (
                linkedin::authorize_url(platforms, &state, &challenge)
                    .map_err(|m| Error::invalid("network", m))?,
                None,
            ),
            Network::Facebook | Network::Instagram => (
                meta::authorize_url(platforms, req.network, &state, &challenge)
                    .map_err(|m| Error::invalid("network", m))?,
                None,
            ),
            Network::Mastodon => {
                let instance = req.instance.as_deref().ok_or_else(|| {
                    Error::invalid("instance", "give the Mastodon instance, e.g. mastodon.social")
                })?;
                let instance = mastodon::instance_url(instance, platforms.settings.allow_insecure_instances)
                    .map_err(|m| Error::invalid("instance", m))?;
                let app = self.mastodon_app(&instance).await?;
                (
                    mastodon::authorize_url(platforms, &instance, &app.client_id, &state, &challenge)
                        .map_err(|m| Error::invalid("instance", m))?,
                    Some(instance),
                )
            }
            Network::Bluesky => {
                return Err(Error::invalid(
                    "network",
                    "Bluesky accounts connect with an app password (POST /accounts/bluesky), not through a redirect",
                ));
            }
        };
        let expires_at = Timestamp::from_datetime(Timestamp::now().as_datetime() + STATE_TTL);
        let sealed = self.publisher.key().seal(access.tenant_id, &verifier).map_err(Error::internal)?;
        let record = OAuthState {
            state_hash: hash,
            tenant_id: access.tenant_id,
            user_id: user.id,
            network: req.network,
            instance_url: instance,
            verifier: sealed,
            project_ids: req.project_ids,
            expires_at,
        };
        self.store.save_oauth_state(&record, Timestamp::now()).await?;
        Ok(ConnectStarted { authorize_url: url, expires_at })
    }

    /// Connects a Bluesky account: its app password opens a session, whose
    /// tokens are kept (the password is not).
    pub async fn connect_bluesky(&self, access: &TenantAccess, req: ConnectBluesky) -> Result<AccountView> {
        access.require(Permission::AccountsManage)?;
        access.caller.user()?; // a person connects accounts, not an API key
        self.check_projects(access, req.project_ids.as_ref()).await?;
        let identifier = req.identifier.trim().trim_start_matches('@');
        if identifier.is_empty() || identifier.len() > 253 {
            return Err(Error::invalid("identifier", "give the account's handle, e.g. alice.bsky.social"));
        }
        if req.app_password.expose_secret().is_empty() || req.app_password.expose_secret().len() > 256 {
            return Err(Error::invalid("app_password", "give an app password made in Bluesky's settings"));
        }
        let platforms = &self.publisher.platforms;
        let service = mastodon::instance_url(
            req.service.as_deref().unwrap_or(crate::publishing::platforms::bluesky::DEFAULT_SERVICE),
            platforms.settings.allow_insecure_instances,
        )
        .map_err(|m| Error::invalid("service", m.replace("instance", "service")))?;
        let (granted, profile) = crate::publishing::platforms::bluesky::sign_in(
            platforms,
            &service,
            identifier,
            &req.app_password,
        )
        .await
        .map_err(|m| Error::invalid("app_password", m))?;
        let connected =
            Connected { network: Network::Bluesky, instance_url: Some(service), granted, profile };
        let stored = self
            .store_connected(access, connected, req.project_ids, actions::SOCIAL_ACCOUNT_CONNECT_BLUESKY)
            .await?;
        Ok(AccountView::of(&stored))
    }

    /// Stores an account the platform just authorised: its tokens sealed,
    /// the person's time zone as its posting zone, audited as `action`.
    async fn store_connected(
        &self,
        access: &TenantAccess,
        connected: Connected,
        project_ids: Option<Vec<Uuid>>,
        action: &'static str,
    ) -> Result<SocialAccount> {
        let user = access.caller.user()?.clone();
        let Connected { network, instance_url, granted, profile } = connected;
        let key = self.publisher.key();
        let seal = |s: &SecretString| key.seal(access.tenant_id, s.expose_secret()).map_err(Error::internal);
        let now = Timestamp::now();
        let tokens = SealedTokens {
            access: seal(&granted.access)?,
            refresh: granted.refresh.as_ref().map(seal).transpose()?,
            expires_at: granted
                .expires_in
                .map(|s| Timestamp::from_datetime(now.as_datetime() + time::Duration::seconds(s))),
        };
        let zone = self.store.user_time_zone(user.id).await?.unwrap_or_else(|| "UTC".into());
        let mut audit =
            access.audit(action).details(serde_json::json!({ "network": network, "handle": profile.handle }));
        audit.resource_type = Some("social_account");
        let account = NewAccount {
            id: new_id(),
            tenant_id: access.tenant_id,
            network,
            external_id: profile.external_id,
            instance_url,
            handle: profile.handle,
            display_name: profile.display_name,
            profile_url: profile.profile_url,
            project_ids,
            tokens,
            posting_time_zone: zone,
            created_by: Some(user.id),
        };
        let stored = self.store.connect_account(&account, &audit).await?;
        self.publisher.wake();
        Ok(stored)
    }

    /// Marketer's app on a Mastodon instance, registered on first use, and
    /// again when Marketer asks for other scopes than it was registered
    /// with (an instance refuses a scope its app does not have).
    async fn mastodon_app(&self, instance: &str) -> Result<MastodonApp> {
        if let Some(app) = self.store.mastodon_app(instance).await?
            && app.scopes == mastodon::SCOPES
        {
            return Ok(app);
        }
        let platforms = &self.publisher.platforms;
        let (client_id, secret) =
            mastodon::register_app(platforms, instance).await.map_err(|m| Error::invalid("instance", m))?;
        let sealed =
            self.publisher.key().seal(Uuid::nil(), secret.expose_secret()).map_err(Error::internal)?;
        let app = MastodonApp {
            instance_url: instance.to_owned(),
            client_id,
            secret: sealed,
            redirect_uri: platforms.settings.redirect_uri(Network::Mastodon),
            scopes: mastodon::SCOPES.to_owned(),
        };
        Ok(self.store.save_mastodon_app(&app, Timestamp::now()).await?)
    }

    /// The platform sent the person back: exchange the code, store the
    /// account. Returns the tenant and the account.
    pub async fn finish_connect(
        &self,
        caller: &Caller,
        network: Network,
        code: &str,
        state_value: &str,
    ) -> Result<(Uuid, AccountView)> {
        let user = caller.user()?.clone();
        let gone = || Error::Gone {
            code: "authorization_expired",
            message: "this authorisation is unknown, used or expired; start connecting the account again"
                .into(),
        };
        let pending = self
            .store
            .take_oauth_state(&state_hash(state_value), Timestamp::now())
            .await?
            .ok_or_else(gone)?;
        if pending.user_id != user.id || pending.network != network {
            return Err(gone());
        }
        let access = self.tenant_access(caller.clone(), pending.tenant_id).await?;
        access.require(Permission::AccountsManage)?;
        let key = self.publisher.key();
        let verifier = key.open(pending.tenant_id, &pending.verifier).map_err(Error::internal)?;
        let platforms = &self.publisher.platforms;
        let refused = |m: String| Error::BadRequest { code: "authorization_refused", message: m };
        // One approval may grant several accounts (Facebook: every Page chosen).
        let granted: Vec<(Granted, Profile)> = match network {
            Network::X => {
                vec![x::exchange(platforms, code, verifier.expose_secret()).await.map_err(refused)?]
            }
            Network::Linkedin => {
                linkedin::exchange(platforms, code, verifier.expose_secret()).await.map_err(refused)?
            }
            Network::Facebook | Network::Instagram => {
                meta::exchange(platforms, network, code, verifier.expose_secret()).await.map_err(refused)?
            }
            Network::Mastodon => {
                let instance = pending.instance_url.clone().ok_or_else(gone)?;
                let app = self.store.mastodon_app(&instance).await?.ok_or_else(gone)?;
                let secret = key.open(Uuid::nil(), &app.secret).map_err(Error::internal)?;
                vec![
                    mastodon::exchange(
                        platforms,
                        &instance,
                        &app.client_id,
                        &secret,
                        code,
                        verifier.expose_secret(),
                    )
                    .await
                    .map_err(refused)?,
                ]
            }
            _ => return Err(gone()),
        };
        let mut first = None;
        for (granted, profile) in granted {
            let connected =
                Connected { network, instance_url: pending.instance_url.clone(), granted, profile };
            let stored = self
                .store_connected(
                    &access,
                    connected,
                    pending.project_ids.clone(),
                    actions::SOCIAL_ACCOUNT_CONNECT,
                )
                .await?;
            first.get_or_insert(stored);
        }
        let first = first.ok_or_else(gone)?;
        Ok((pending.tenant_id, AccountView::of(&first)))
    }

    pub async fn update_social_account(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: UpdateAccount,
    ) -> Result<AccountView> {
        access.require(Permission::AccountsManage)?;
        if let Some(zone) = &req.posting_time_zone {
            schedule::zone(zone).map_err(|m| Error::invalid("posting_time_zone", m))?;
        }
        if let Some(slots) = &req.posting_slots
            && slots.len() > 100
        {
            return Err(Error::invalid("posting_slots", "at most 100 slots a week"));
        }
        if let Some(Some(ids)) = &req.project_ids {
            self.check_projects(access, Some(ids)).await?;
        }
        let mut slots = req.posting_slots.clone();
        if let Some(s) = slots.as_mut() {
            s.sort();
            s.dedup();
        }
        let patch = AccountPatch {
            project_ids: req.project_ids,
            posting_time_zone: req.posting_time_zone.map(|z| z.trim().to_owned()),
            posting_slots: slots,
        };
        let audit = access.audit(actions::SOCIAL_ACCOUNT_UPDATE).resource("social_account", id);
        Ok(AccountView::of(
            &self.store.update_account(access.tenant_id, id, &patch, &audit).await.or_not_found("account")?,
        ))
    }

    pub async fn disconnect_social_account(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::AccountsManage)?;
        let audit = access.audit(actions::SOCIAL_ACCOUNT_DISCONNECT).resource("social_account", id);
        self.store.disconnect_account(access.tenant_id, id, &audit).await.or_not_found("account")
    }

    // ----- Posts -----------------------------------------------------------

    /// The times the account's posts from `now` on are scheduled for.
    async fn taken_times(
        &self,
        access: &TenantAccess,
        account: &SocialAccount,
        now: Timestamp,
    ) -> Result<Vec<Timestamp>> {
        let horizon = Timestamp::from_datetime(now.as_datetime() + time::Duration::weeks(9));
        Ok(self
            .store
            .posts(
                access.tenant_id,
                &PostFilter {
                    from: Some(now),
                    to: Some(horizon),
                    account_id: Some(account.id),
                    limit: MAX_LIST,
                    ..PostFilter::default()
                },
            )
            .await?
            .iter()
            .filter(|p| !matches!(p.status, PostStatus::Cancelled | PostStatus::Deleted | PostStatus::Failed))
            .filter_map(|p| p.scheduled_at)
            .collect())
    }

    /// The soonest of the account's best times (over the next eight weeks)
    /// in whose hour no post of the account is scheduled.
    async fn next_best_time(
        &self,
        access: &TenantAccess,
        account: &SocialAccount,
        now: Timestamp,
    ) -> Result<Timestamp> {
        let best = self.best_times_of(access.tenant_id, account).await?;
        if best.slots.is_empty() {
            return Err(Error::invalid(
                "best_time",
                format!("{} has no best times yet. {}", account.handle, best.explanation),
            ));
        }
        let tz = schedule::zone(&account.posting_time_zone).map_err(|m| Error::invalid("time_zone", m))?;
        let taken = self.taken_times(access, account, now).await?;
        let mut candidates = Vec::new();
        for slot in &best.slots {
            let mut at = Some(slot.next_at);
            for _ in 0..8 {
                let Some(start) = at else { break };
                candidates.push(start);
                at = schedule::next_hour_of_week(slot.hour.hour_of_week, &tz, start);
            }
        }
        candidates.sort();
        let hour = time::Duration::hours(1);
        candidates
            .into_iter()
            .find(|start| {
                !taken.iter().any(|t| {
                    t.as_datetime() >= start.as_datetime() && t.as_datetime() < start.as_datetime() + hour
                })
            })
            .ok_or_else(|| Error::invalid("best_time", "every best time of the next eight weeks is taken"))
    }

    /// Resolves when a post should go out; `None`: a draft.
    async fn resolve_when(
        &self,
        access: &TenantAccess,
        account: &SocialAccount,
        when: &When,
    ) -> Result<Option<(Timestamp, String)>> {
        let chosen =
            [when.scheduled_at.is_some(), when.local_time.is_some(), when.queue, when.best_time, when.now]
                .iter()
                .filter(|b| **b)
                .count();
        if chosen > 1 {
            return Err(Error::invalid(
                "scheduled_at",
                "give one of scheduled_at, local_time, queue, best_time or now",
            ));
        }
        let user_zone = match access.caller.user() {
            Ok(user) => self.store.user_time_zone(user.id).await?,
            Err(_) => None,
        };
        let zone = when.time_zone.clone().or(user_zone).unwrap_or_else(|| account.posting_time_zone.clone());
        schedule::zone(&zone).map_err(|m| Error::invalid("time_zone", m))?;
        let now = Timestamp::now();
        let at = if let Some(at) = when.scheduled_at {
            at
        } else if let Some(local) = &when.local_time {
            schedule::local_to_instant(local, &zone, when.fold)
                .map_err(|m| Error::invalid("local_time", m))?
        } else if when.now {
            now
        } else if when.queue {
            if account.posting_slots.is_empty() {
                return Err(Error::invalid(
                    "queue",
                    format!("{} has no posting slots; add some in its settings", account.handle),
                ));
            }
            let taken = self.taken_times(access, account, now).await?;
            let at =
                schedule::next_free_slot(&account.posting_slots, &account.posting_time_zone, now, &taken)
                    .ok_or_else(|| Error::invalid("queue", "every slot of the next eight weeks is taken"))?;
            return Ok(Some((at, account.posting_time_zone.clone())));
        } else if when.best_time {
            let at = self.next_best_time(access, account, now).await?;
            return Ok(Some((at, account.posting_time_zone.clone())));
        } else {
            return Ok(None);
        };
        if at.as_datetime() < now.as_datetime() - time::Duration::minutes(1) {
            return Err(Error::invalid(
                "scheduled_at",
                "that time has passed; choose a later one, or \"now\": true",
            ));
        }
        if !Timestamp::date_in_range(at.date()) {
            return Err(Error::invalid("scheduled_at", "the date is out of range"));
        }
        Ok(Some((at, zone)))
    }

    pub async fn create_post(
        &self,
        access: &TenantAccess,
        req: CreatePost,
        idempotency_key: Option<String>,
    ) -> Result<(PostView, bool)> {
        let (post, audit, account) = match self.prepare_post(access, req, idempotency_key).await? {
            PreparedPost::Existing(view) => return Ok((*view, false)),
            PreparedPost::New { post, audit, account } => (*post, *audit, *account),
        };
        let (stored, created) = self.store.create_post(&post, &audit).await?;
        self.publisher.wake();
        Ok((PostView::of(&stored, Some(&account)), created))
    }

    /// Checks a new post and makes it, with its audit event, ready to
    /// store (an A/B test stores several with itself); or the post an
    /// Idempotency-Key already made.
    pub(crate) async fn prepare_post(
        &self,
        access: &TenantAccess,
        req: CreatePost,
        idempotency_key: Option<String>,
    ) -> Result<PreparedPost> {
        access.require(Permission::PostsWrite)?;
        let account = self.store.account(access.tenant_id, req.account_id).await?.ok_or_else(|| {
            Error::invalid("account_id", "no connected account of this organisation has this id")
        })?;
        let mut project_id = req.project_id;
        let mut campaign_id = req.campaign_id;
        let mut text = req.text.clone();
        let mut version = None;
        // The variant's text as reviewed with the activity, if it has one.
        let mut reviewed_text = None;
        let activity = match req.activity_id {
            Some(id) => {
                let activity = self.store.activity(access.tenant_id, id).await?.ok_or_else(|| {
                    Error::invalid("activity_id", "no activity of this organisation has this id")
                })?;
                project_id = project_id.or(Some(activity.project_id));
                campaign_id = campaign_id.or(activity.campaign_id);
                let variant = req.variant.clone().unwrap_or_else(|| account.network.to_string());
                let platform: Platform = serde_json::from_value(serde_json::Value::String(variant.clone()))
                    .map_err(|_| {
                    Error::invalid(
                        "variant",
                        format!("{variant:?} is not a platform of the activity's posts"),
                    )
                })?;
                let content = activity.content_run.as_ref().and_then(super::activities::result_of);
                let found = content.and_then(|r| r.social.iter().find(|v| v.platform == platform));
                reviewed_text = found.map(|v| normalize(&v.text));
                match (found, &text) {
                    (_, Some(_)) => {}
                    (Some(v), None) => text = Some(v.text.clone()),
                    (None, None) => {
                        return Err(Error::invalid(
                            "variant",
                            format!("the activity has no {variant} post; pick one it has"),
                        ));
                    }
                }
                if let Some(run) = &activity.content_run {
                    let edits = self.store.activity_versions(access.tenant_id, id, run.id).await?;
                    version = Some(i64::try_from(edits.len()).unwrap_or(i64::MAX));
                }
                Some(activity)
            }
            None => None,
        };
        let text =
            normalize(&text.ok_or_else(|| Error::invalid("text", "a post needs text (or an activity_id)"))?);
        check_text(account.network, &text)?;
        if let Some(cid) = req.campaign_id {
            let pid = project_id.ok_or_else(|| {
                Error::invalid("project_id", "a campaign belongs to a project: give its project_id too")
            })?;
            self.store
                .campaign(access.tenant_id, pid, cid)
                .await?
                .ok_or_else(|| Error::invalid("campaign_id", "no campaign of this project has this id"))?;
        }
        let insecure = self.publisher.platforms.settings.allow_insecure_instances;
        let image_url = check_image(account.network, req.image_url.as_deref(), insecure)?;
        if let Some(pid) = project_id {
            self.store
                .project(access.tenant_id, pid)
                .await?
                .ok_or_else(|| Error::invalid("project_id", "no project of this organisation has this id"))?;
            if let Some(allowed) = &account.project_ids
                && !allowed.contains(&pid)
            {
                return Err(Error::invalid(
                    "account_id",
                    format!("{} is not available to this project", account.handle),
                ));
            }
        }
        if let Some(key) = &idempotency_key
            && let Some(existing) = self.existing_post(access, key).await?
        {
            return Ok(PreparedPost::Existing(Box::new(existing)));
        }
        let when = self.resolve_when(access, &account, &req.when()).await?;
        // From an activity with the text its review covers: that review is
        // its approval, and `approve` adds nothing. Otherwise the post is
        // approved on its own (see `own_approval`).
        let covered = activity.is_some() && reviewed_text.as_deref() == Some(text.as_str());
        let edited = activity.is_some() && !covered;
        // A post of its own is reviewed through its project's workflow, if
        // it has one.
        let workflow = if covered { None } else { self.project_workflow(access, project_id).await? };
        let approved_by =
            if req.approve && !covered { Some(own_approval(access, workflow.as_ref())?) } else { None };
        let own_review = workflow.is_some();
        let (status, scheduled_at, zone) = match when {
            Some((at, zone)) => {
                approval_gate(activity.as_ref(), approved_by.is_some(), edited, own_review)?;
                (PostStatus::Scheduled, Some(at), zone)
            }
            None => (PostStatus::Draft, None, account.posting_time_zone.clone()),
        };
        let post = NewPost {
            id: new_id(),
            tenant_id: access.tenant_id,
            account_id: account.id,
            project_id,
            campaign_id,
            activity_id: req.activity_id,
            activity_version: version,
            text,
            image_url,
            status,
            scheduled_at,
            time_zone: zone,
            approved_by,
            idempotency_key,
            created_by: access.caller.creator_id(),
            edited,
            reply_to: None,
        };
        let audit = access.audit(actions::POST_CREATE).resource("post", post.id).details(serde_json::json!({
            "account_id": account.id, "status": status, "scheduled_at": scheduled_at,
        }));
        Ok(PreparedPost::New { post: Box::new(post), audit: Box::new(audit), account: Box::new(account) })
    }

    /// An activity's title and its social variants (platform, text), for
    /// the composer.
    pub async fn social_variants(
        &self,
        access: &TenantAccess,
        activity_id: Uuid,
    ) -> Result<(String, Vec<(String, String)>)> {
        access.require(Permission::ActivitiesRead)?;
        let activity = self.store.activity(access.tenant_id, activity_id).await.found("activity")?;
        self.audit_content_read(access, "activity", activity_id, "social variants").await?;
        let variants = activity
            .content_run
            .as_ref()
            .and_then(super::activities::result_of)
            .map(|r| r.social.iter().map(|v| (v.platform.as_str().to_owned(), v.text.clone())).collect())
            .unwrap_or_default();
        Ok((activity.title, variants))
    }

    /// The post an `Idempotency-Key` already created, if any.
    pub(crate) async fn existing_post(&self, access: &TenantAccess, key: &str) -> Result<Option<PostView>> {
        let filter = PostFilter { idempotency_key: Some(key.to_owned()), limit: 1, ..PostFilter::default() };
        Ok(self.store.posts(access.tenant_id, &filter).await?.first().map(|p| PostView::of(p, None)))
    }

    pub async fn posts(&self, access: &TenantAccess, q: PostQuery) -> Result<Vec<PostView>> {
        access.require(Permission::PostsRead)?;
        if let (Some(from), Some(to)) = (q.from, q.to)
            && to <= from
        {
            return Err(Error::invalid("to", "must be after from"));
        }
        let filter = PostFilter {
            from: q.from,
            to: q.to,
            account_id: q.account_id,
            project_id: q.project_id,
            campaign_id: q.campaign_id,
            status: q.status,
            idempotency_key: None,
            limit: MAX_LIST,
        };
        let accounts = self.store.accounts(access.tenant_id).await?;
        let limits = self.store.platform_limits(Timestamp::now()).await?;
        Ok(self
            .store
            .posts(access.tenant_id, &filter)
            .await?
            .iter()
            .map(|p| PostView::of(p, accounts.iter().find(|a| a.id == p.account_id)).explain(&limits))
            .collect())
    }

    pub async fn post_detail(&self, access: &TenantAccess, id: Uuid) -> Result<PostDetail> {
        access.require(Permission::PostsRead)?;
        let post = self.store.post(access.tenant_id, id).await.found("post")?;
        let account = self.store.account(access.tenant_id, post.account_id).await?;
        let attempts = self.store.post_attempts(access.tenant_id, id).await?;
        let limits = self.store.platform_limits(Timestamp::now()).await?;
        Ok(PostDetail { post: PostView::of(&post, account.as_ref()).explain(&limits), attempts })
    }

    /// Whether posts made from this activity (or with no activity: none)
    /// are reviewed through a workflow, so `approve` is not theirs to give.
    pub async fn posts_reviewed_in_workflow(
        &self,
        access: &TenantAccess,
        activity_id: Option<Uuid>,
    ) -> Result<bool> {
        let Some(id) = activity_id else { return Ok(false) };
        let project = self.store.activity(access.tenant_id, id).await?.map(|a| a.project_id);
        Ok(self.project_workflow(access, project).await?.is_some())
    }

    /// The review workflow of the project, if any (`None`: the default
    /// review).
    async fn project_workflow(
        &self,
        access: &TenantAccess,
        project_id: Option<Uuid>,
    ) -> Result<Option<ReviewWorkflow>> {
        Ok(match project_id {
            Some(project) => self.store.project_review_workflow(access.tenant_id, project).await?,
            None => None,
        })
    }

    pub async fn update_post(&self, access: &TenantAccess, id: Uuid, req: UpdatePost) -> Result<PostView> {
        access.require(Permission::PostsWrite)?;
        let post = self.store.post(access.tenant_id, id).await.found("post")?;
        let account =
            self.store.account(access.tenant_id, post.account_id).await?.ok_or_else(|| Error::Conflict {
                code: "account_disconnected",
                message: "the post's account was disconnected; create the post on another account".into(),
            })?;
        let text = req.text.as_deref().map(normalize);
        if let Some(text) = &text {
            check_text(account.network, text)?;
        }
        let insecure = self.publisher.platforms.settings.allow_insecure_instances;
        let image_url = match &req.image_url {
            Some(new) => Some(check_image(account.network, new.as_deref(), insecure)?),
            None => None,
        };
        let new_edit = text.as_ref().is_some_and(|t| *t != post.text)
            || image_url.as_ref().is_some_and(|i| *i != post.image_url);
        let covered = post.activity_id.is_some() && post.edited_at.is_none() && !new_edit;
        let mut patch = PostPatch { text: text.clone(), image_url, ..PostPatch::default() };
        // An approval the post still has (nothing changed since) stands: a
        // retry of a post its workflow approved approves nothing again.
        let still_approved = post.approved_at.is_some() && !new_edit;
        let workflow = if covered { None } else { self.project_workflow(access, post.project_id).await? };
        if req.approve && !covered && !still_approved {
            patch.approved_by = Some(own_approval(access, workflow.as_ref())?);
        }
        if req.cancel {
            patch.status = Some(PostStatus::Cancelled);
        } else if req.unschedule {
            patch.status = Some(PostStatus::Draft);
            patch.scheduled_at = Some(None);
        } else if let Some((at, zone)) = self.resolve_when(access, &account, &req.when()).await? {
            let activity = match post.activity_id {
                Some(a) => self.store.activity(access.tenant_id, a).await?,
                None => None,
            };
            // An edit takes the post's own approval away unless given again.
            let approved = patch.approved_by.is_some() || still_approved;
            approval_gate(
                activity.as_ref(),
                approved,
                post.edited_at.is_some() || new_edit,
                workflow.is_some(),
            )?;
            patch.status = Some(PostStatus::Scheduled);
            patch.scheduled_at = Some(Some(at));
            patch.time_zone = Some(zone);
        } else if post.status == PostStatus::Failed && req.text.is_some() {
            // An edited failed post is a draft again until rescheduled.
            patch.status = Some(PostStatus::Draft);
        }
        let audit = access.audit(actions::POST_UPDATE).resource("post", id).details(serde_json::json!({
            "status": patch.status, "scheduled_at": patch.scheduled_at,
        }));
        let stored = self.store.update_post(access.tenant_id, id, &patch, &audit).await?;
        self.publisher.wake();
        Ok(PostView::of(&stored, Some(&account)))
    }

    /// Deletes a post; a published one is deleted on the platform first.
    pub async fn delete_post(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::PostsWrite)?;
        let post = self.store.post(access.tenant_id, id).await.found("post")?;
        if post.status == PostStatus::Published
            && let Some(platform_id) = &post.platform_post_id
        {
            let (account, tokens) =
                self.store.account_tokens(post.account_id).await?.ok_or_else(|| Error::Conflict {
                    code: "account_disconnected",
                    message: "the account was disconnected: reconnect it to delete the post on the platform"
                        .into(),
                })?;
            let token =
                self.publisher.key().open(account.tenant_id, &tokens.access).map_err(Error::internal)?;
            let started = Timestamp::now();
            let record = self
                .publisher
                .platforms
                .delete(&account, &token, platform_id)
                .await
                .map_err(|m| Error::Conflict { code: "platform_refused", message: m })?;
            let attempt = PostAttempt {
                id: new_id(),
                post_id: id,
                tenant_id: access.tenant_id,
                kind: "delete".into(),
                started_at: started,
                finished_at: Timestamp::now(),
                request_id: record.request_id,
                http_status: record.http_status.map(i64::from),
                outcome: "deleted".into(),
                detail: record.detail,
            };
            self.store.record_attempt(&attempt).await?;
        }
        let audit = access.audit(actions::POST_DELETE).resource("post", id);
        self.store.delete_post(access.tenant_id, id, &audit).await.or_not_found("post")
    }

    // ----- People ----------------------------------------------------------

    pub async fn time_zone(&self, caller: &Caller) -> Result<Option<String>> {
        Ok(self.store.user_time_zone(caller.user()?.id).await?)
    }

    pub async fn set_time_zone(&self, caller: &Caller, zone: &str) -> Result<String> {
        let user = caller.user()?;
        let tz = schedule::zone(zone).map_err(|m| Error::invalid("time_zone", m))?;
        let name = tz.iana_name().unwrap_or(zone.trim()).to_owned();
        let audit = caller
            .audit(actions::USER_TIME_ZONE)
            .resource("user", user.id)
            .details(serde_json::json!({ "time_zone": name }));
        self.store.set_user_time_zone(user.id, &name, &audit).await?;
        Ok(name)
    }
}
