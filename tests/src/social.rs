//! A test stand-in for X's API v2, a Mastodon instance, LinkedIn's Posts
//! API and Meta's Graph API for Facebook Pages, in their wire formats as
//! `../shared/reference/social/x.md`, `mastodon.md`, `linkedin.md` and
//! `meta-facebook-instagram.md` describe them, on one local port (X's paths
//! under `/2/` and `/i/oauth2/`, Mastodon's under `/api/v1/` and `/oauth/`,
//! LinkedIn's under `/rest/`, `/v2/` and `/oauth/v2/`, Meta's under
//! `/v25.0/`):
//!
//! - LinkedIn: `Linkedin-Version` and `X-Restli-Protocol-Version` required,
//!   201 with `x-restli-id`, little-text escaping, the author finder,
//!   idempotent deletes, refresh tokens that are not rotated, no rate-limit
//!   headers (429 only);
//! - Meta: Facebook Login with the long-lived exchange, `/me/accounts` with
//!   Page tokens and tasks (one Page the person may post on, one they may
//!   only read), Graph error objects (190, 200, 506, 80001), the Page feed
//!   with cursor paging, usage headers (`X-Business-Use-Case-Usage`);
//!
//! - OAuth 2.0 authorization code with PKCE (S256 checked), X's rotating
//!   single-use refresh tokens and two-hour access tokens, Mastodon's app
//!   registration and tokens that do not expire;
//! - create, read (the account's recent posts, newest first, with
//!   `start_time` and paging on X) and delete posts; Mastodon's
//!   `Idempotency-Key` (per account, an hour); X's duplicate-content 403;
//! - rate-limit headers on every answer (`x-rate-limit-*` with an epoch
//!   reset on X, `X-RateLimit-*` with an ISO reset on Mastodon) and 429s
//!   with their documented bodies;
//! - metrics: X's `public_metrics` on `GET /2/tweets/{id}`, Mastodon's
//!   counts on `GET /api/v1/statuses/{id}`, LinkedIn's
//!   `organizationalEntityShareStatistics`, a Page post's summaries and
//!   insights by field expansion, Instagram media insights (a retired
//!   metric refuses the request, as Meta does) and a Bluesky AppView's
//!   `getPosts`, and accounts' followers (X's `public_metrics`, Mastodon's
//!   `followers_count`, LinkedIn's `networkSizes`, Meta's
//!   `followers_count`, Bluesky's `getProfile`), plausible and growing with
//!   each read (deterministic per post), with a metric that can be retired
//!   mid-series (`drop_metric`) and failures to inject
//!   (`fail_next_metrics`);
//! - injected faults, each taken by the next request it applies to: an
//!   answer that never comes after the post was created, a 5xx after it was
//!   created, a 429 with a reset, an expired token, a refused refresh, a
//!   refresh answer without a new refresh token, a refresh that fails with
//!   a 503.
//!
//! It records every request (method and path) so tests can count them.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio_util::sync::CancellationToken;

pub const X_CLIENT_ID: &str = "marketer-x-client";
pub const X_CLIENT_SECRET: &str = "marketer-x-secret-0123456789";
pub const X_USER_ID: &str = "2244994945";
pub const X_USERNAME: &str = "marketer_test";
pub const MASTODON_ACCOUNT_ID: &str = "109348";
pub const LINKEDIN_CLIENT_ID: &str = "marketer-linkedin-client";
pub const LINKEDIN_CLIENT_SECRET: &str = "marketer-linkedin-secret-0123456789";
/// The LinkedIn member who approves (OpenID Connect `sub`).
pub const LINKEDIN_MEMBER: &str = "yrZCpj2Z12";
/// The organisation page the member administers (and one where they are only an analyst).
pub const LINKEDIN_ORG_ID: &str = "2414183";
pub const LINKEDIN_ORG_NAME: &str = "Marketer Test Co";
pub const META_APP_ID: &str = "1234567890123";
pub const META_APP_SECRET: &str = "marketer-meta-secret-0123456789";
/// The Facebook Page the person may post on, and one they may only read.
pub const FACEBOOK_PAGE_ID: &str = "101234567890123";
pub const FACEBOOK_READONLY_PAGE_ID: &str = "109876543210987";
/// The Instagram professional account linked to `FACEBOOK_PAGE_ID`.
pub const INSTAGRAM_USER_ID: &str = "17841400008460056";
pub const INSTAGRAM_USERNAME: &str = "marketer_ig";
/// The Graph API version the stand-in serves under.
pub const META_VERSION: &str = "v25.0";

/// Which platform a fault or a post belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Net {
    X,
    Mastodon,
    Linkedin,
    Facebook,
    Instagram,
}

/// A failure for the next request it applies to.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Create the post, then answer only after this long (past the
    /// client's time limit).
    SlowAfterCreate(Duration),
    /// Create the post, then answer with this 5xx.
    ErrorAfterCreate(u16),
    /// 429 without creating; the window resets after this many seconds.
    RateLimited { reset_in: u64 },
    /// 401 for an expired token, without creating.
    ExpiredToken,
    /// The next refresh is refused (`invalid_grant`).
    RefuseRefresh,
    /// The next refresh answers 503.
    RefreshUnavailable,
    /// The next refresh answers without a new refresh token.
    RefreshWithoutRefreshToken,
    /// X: Marketer's app spends its 24-hour limit; every user's post is
    /// refused with 429 until this many seconds from now.
    AppLimited { reset_in: u64 },
}

impl Fault {
    fn on_refresh(&self) -> bool {
        matches!(self, Self::RefuseRefresh | Self::RefreshUnavailable | Self::RefreshWithoutRefreshToken)
    }
}

/// A post as the platform holds it.
#[derive(Debug, Clone)]
pub struct Post {
    pub id: String,
    /// The X user it was posted as (0 elsewhere).
    pub user: u32,
    pub text: String,
    pub created_at: OffsetDateTime,
    pub deleted: bool,
    /// When the request that created it arrived.
    pub received_at: Instant,
    /// Mastodon and X: the post it answers (`in_reply_to_id`,
    /// `reply.in_reply_to_tweet_id`).
    pub in_reply_to: Option<String>,
}

#[derive(Debug)]
struct Code {
    net: Net,
    user: u32,
    client_id: String,
    redirect_uri: String,
    challenge: String,
}

#[derive(Debug)]
struct Token {
    net: Net,
    user: u32,
    expires: Option<Instant>,
    revoked: bool,
}

/// An Instagram media container.
#[derive(Debug, Clone)]
struct Container {
    caption: String,
    created: Instant,
    media: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    /// X: when the app's spent 24-hour limit resets (epoch seconds).
    x_app_limited_until: u64,
    containers: HashMap<String, Container>,
    /// How long Instagram takes to process an image.
    processing: Duration,
    codes: HashMap<String, Code>,
    tokens: HashMap<String, Token>,
    /// Refresh tokens: still usable, and whose.
    refresh_tokens: HashMap<String, (bool, u32)>,
    /// The X user a person approving on X is signed in as (0 is `X_USER_ID`).
    signed_in: u32,
    apps: HashMap<String, (String, String)>,
    posts: HashMap<Net, Vec<Post>>,
    idempotency: HashMap<String, String>,
    faults: HashMap<Net, VecDeque<Fault>>,
    refreshes: u32,
    requests: Vec<String>,
    next_id: u64,
    /// X's access-token lifetime in seconds.
    access_ttl: u64,
    /// Calls left in the current publish window, and its reset.
    remaining: HashMap<(Net, u32), (i64, u64)>,
    /// Metrics reads of each post so far (its numbers grow with them).
    metric_reads: HashMap<String, i64>,
    /// Metrics the platform no longer returns (its own field names).
    dropped: Vec<(Net, &'static str)>,
    /// Statuses the next metrics reads answer with.
    metric_faults: VecDeque<u16>,
    /// Extra likes posts with this text get (a variant people liked more).
    liked_more: HashMap<String, i64>,
    /// Mastodon: mention notifications, oldest first (ids ascending).
    mentions: Vec<Value>,
    /// Mastodon: the token lacks `read:notifications` (403 on the list).
    notifications_refused: bool,
    /// Mastodon: public statuses by hashtag (lower case), oldest first.
    tagged: Vec<(String, Value)>,
    /// Mastodon: statuses of others their authors deleted since (their
    /// notifications go with them, as Mastodon removes them).
    deleted_statuses: std::collections::HashSet<String>,
    /// Mastodon: `GET /api/v1/statuses?id[]=` answers `[]`, as a server
    /// that does not know the batch read might.
    ids_ignored: bool,
    /// X: posts by other people (mentions, replies to the account's posts,
    /// what search finds), oldest first, each with its author.
    x_others: Vec<(Value, Value)>,
    /// Mastodon: each status-creating request's text and `visibility`.
    visibilities: Vec<(String, String)>,
}

/// A running fake. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeSocial {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

impl Drop for FakeSocial {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn now_epoch() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn random() -> String {
    let bytes: [u8; 24] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

impl FakeSocial {
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    /// On a given address (to come back on the same port).
    pub async fn start_on(address: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(address).await.expect("bind the fake social server");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Mutex::new(Inner {
            access_ttl: 7200,
            processing: Duration::from_millis(1500),
            next_id: 1_800_000_000_000_000_000,
            ..Inner::default()
        }));
        let router = axum::Router::new()
            .route("/i/oauth2/authorize", get(x_authorize))
            .route("/2/oauth2/token", post(x_token))
            .route("/2/users/me", get(x_me))
            .route("/2/tweets", post(x_create).get(x_tweets_by_id))
            .route("/2/users/{id}/mentions", get(x_mentions))
            .route("/2/tweets/search/recent", get(x_search))
            .route("/2/tweets/{id}", delete(x_delete).get(x_tweet))
            .route("/2/users/{id}/tweets", get(x_timeline))
            .route("/api/v1/apps", post(m_apps))
            .route("/oauth/authorize", get(m_authorize))
            .route("/oauth/token", post(m_token))
            .route("/api/v1/accounts/verify_credentials", get(m_verify))
            .route("/api/v1/statuses", post(m_create).get(m_statuses_by_id))
            .route("/api/v1/statuses/{id}", delete(m_delete).get(m_status))
            .route("/api/v1/accounts/{id}/statuses", get(m_statuses))
            .route("/api/v1/notifications", get(m_notifications))
            .route("/api/v1/timelines/tag/{tag}", get(m_tag_timeline))
            .route("/api/v2/search", get(m_search))
            .route("/oauth/v2/authorization", get(li_authorize))
            .route("/oauth/v2/accessToken", post(li_token))
            .route("/v2/userinfo", get(li_userinfo))
            .route("/rest/posts", post(li_create).get(li_find))
            .route("/rest/posts/{urn}", delete(li_delete).get(li_post))
            .route("/rest/organizationalEntityShareStatistics", get(li_share_statistics))
            .route("/xrpc/app.bsky.feed.getPosts", get(bsky_get_posts))
            .route("/xrpc/app.bsky.actor.getProfile", get(bsky_get_profile))
            .route("/rest/networkSizes/{urn}", get(li_network_size))
            .route(&format!("/{META_VERSION}/{{id}}/insights"), get(ig_insights))
            .route("/rest/organizationAcls", get(li_acls))
            .route("/rest/organizations/{id}", get(li_organization))
            .route(&format!("/{META_VERSION}/dialog/oauth"), get(fb_authorize))
            .route(&format!("/{META_VERSION}/oauth/access_token"), get(fb_token))
            .route(&format!("/{META_VERSION}/me/accounts"), get(fb_pages))
            .route(&format!("/{META_VERSION}/{{id}}/feed"), post(fb_create).get(fb_feed))
            .route(&format!("/{META_VERSION}/{{id}}/photos"), post(fb_photo))
            .route(&format!("/{META_VERSION}/{{id}}/media"), post(ig_container).get(ig_media))
            .route(&format!("/{META_VERSION}/{{id}}/media_publish"), post(ig_publish))
            .route("/images/{name}", get(image))
            .route(&format!("/{META_VERSION}/{{id}}"), get(fb_object).delete(fb_delete))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), record))
            .with_state(inner.clone());
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(cancelled.cancelled_owned()).await;
        });
        Self { addr, inner, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request this fault applies to on `net` fails with it.
    pub fn inject(&self, net: Net, fault: Fault) {
        self.inner.lock().unwrap().faults.entry(net).or_default().push_back(fault);
    }

    /// The posts on `net` that exist (not deleted), oldest first.
    pub fn posts(&self, net: Net) -> Vec<Post> {
        self.inner
            .lock()
            .unwrap()
            .posts
            .get(&net)
            .map(|p| p.iter().filter(|p| !p.deleted).cloned().collect())
            .unwrap_or_default()
    }

    /// Every post ever created on `net`, deleted or not.
    pub fn all_posts(&self, net: Net) -> Vec<Post> {
        self.inner.lock().unwrap().posts.get(&net).cloned().unwrap_or_default()
    }

    /// From now on, `field` (the platform's own name, like
    /// `impression_count`) is missing from `net`'s metrics answers, as
    /// when a platform retires a metric.
    pub fn drop_metric(&self, net: Net, field: &'static str) {
        self.inner.lock().unwrap().dropped.push((net, field));
    }

    /// From now on, a post whose text is `text` reads `likes` more likes.
    pub fn like_more(&self, text: &str, likes: i64) {
        self.inner.lock().unwrap().liked_more.insert(text.to_owned(), likes);
    }

    /// The next metrics read answers with `status` (a 5xx, a 429).
    /// Mastodon: someone mentions the account (`in_reply_to`: the id of a
    /// post of the account, or of an earlier mention, it answers). Returns
    /// the status's id; its notification's id follows the last one.
    pub fn mention(&self, author: &str, text: &str, in_reply_to: Option<&str>) -> String {
        self.mention_at(author, text, in_reply_to, OffsetDateTime::now_utc())
    }

    /// [`FakeSocial::mention`], written at `at` (history for baselines).
    pub fn mention_at(
        &self,
        author: &str,
        text: &str,
        in_reply_to: Option<&str>,
        at: OffsetDateTime,
    ) -> String {
        let mut inner = self.inner.lock().unwrap();
        inner.next_id += 1;
        let n = inner.next_id;
        let status_id = format!("1100{n:08}");
        let ours = in_reply_to
            .is_some_and(|id| inner.posts.get(&Net::Mastodon).is_some_and(|p| p.iter().any(|p| p.id == id)));
        let reply_account = match in_reply_to {
            Some(_) if ours => json!(MASTODON_ACCOUNT_ID),
            Some(id) => inner
                .mentions
                .iter()
                .find(|m| m["status"]["id"] == id)
                .map_or(Value::Null, |m| m["status"]["account"]["id"].clone()),
            None => Value::Null,
        };
        let created = at.format(&Rfc3339).unwrap();
        let account = json!({
            "id": format!("77{}", author.len()), "username": author, "acct": format!("{author}@elsewhere.example"),
            "display_name": format!("{} Example", author[..1].to_uppercase() + &author[1..]),
        });
        let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
        let notification = json!({
            "id": format!("{}", 500_000 + n),
            "type": "mention",
            "created_at": created,
            "account": account,
            "status": {
                "id": status_id,
                "created_at": created,
                "in_reply_to_id": in_reply_to,
                "in_reply_to_account_id": reply_account,
                "content": format!("<p><span class=\"h-card\"><a href=\"https://mastodon.example/@marketer\" class=\"u-url mention\">@<span>marketer</span></a></span> {escaped}</p>"),
                "url": format!("https://elsewhere.example/@{author}/{status_id}"),
                "visibility": "public",
                "account": account,
            },
        });
        inner.mentions.push(notification);
        status_id
    }

    /// Mastodon: someone posts publicly with `#tag` (not mentioning the
    /// account). Returns the status's id.
    pub fn tagged(&self, author: &str, text: &str, tag: &str) -> String {
        self.public_status(author, text, Some(tag))
    }

    /// Mastodon: someone posts publicly, with no hashtag and no mention of
    /// the account (what keyword search finds). Returns the status's id.
    pub fn says(&self, author: &str, text: &str) -> String {
        self.public_status(author, text, None)
    }

    /// A public status by someone else, with `tag` after its text if given.
    fn public_status(&self, author: &str, text: &str, tag: Option<&str>) -> String {
        let mut inner = self.inner.lock().unwrap();
        // Ids that grow, and fit the u64 the paging compares.
        let status_id = format!("2200{:08}", inner.tagged.len() + 1);
        let created = OffsetDateTime::now_utc().format(&Rfc3339).unwrap();
        let escaped = text.replace('&', "&amp;").replace('<', "&lt;");
        let (content, tags) = match tag {
            Some(tag) => (
                format!(
                    "<p>{escaped} <a href=\"https://elsewhere.example/tags/{tag}\" class=\"mention hashtag\" rel=\"tag\">#<span>{tag}</span></a></p>"
                ),
                json!([{ "name": tag.to_lowercase() }]),
            ),
            None => (format!("<p>{escaped}</p>"), json!([])),
        };
        let status = json!({
            "id": status_id,
            "created_at": created,
            "in_reply_to_id": null,
            "in_reply_to_account_id": null,
            "content": content,
            "url": format!("https://elsewhere.example/@{author}/{status_id}"),
            "visibility": "public",
            "tags": tags,
            "account": { "id": format!("88{}", author.len()), "username": author,
                         "acct": format!("{author}@elsewhere.example"), "display_name": "" },
        });
        inner.tagged.push((tag.map(str::to_lowercase).unwrap_or_default(), status));
        status_id
    }

    /// X: someone else posts `text`, answering `in_reply_to` (a post id,
    /// the account's or another's) if given. Returns the post's id.
    pub fn x_says(&self, author: &str, text: &str, in_reply_to: Option<&str>) -> String {
        let mut inner = self.inner.lock().unwrap();
        // X's ids: the milliseconds since its epoch (2010-11-04), shifted;
        // growing.
        let ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000 - X_EPOCH_MS) as u64;
        let last =
            inner.x_others.last().and_then(|(t, _)| t["id"].as_str()?.parse::<u64>().ok()).unwrap_or(0);
        let id = ((ms << 22).max(last + 1)).to_string();
        let author_id = format!("7700{:06}", author.bytes().map(u32::from).sum::<u32>());
        let mut post = json!({
            "id": id,
            "text": text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;"),
            "author_id": author_id,
            "conversation_id": id,
            "created_at": OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
            "edit_history_tweet_ids": [id],
        });
        if let Some(parent) = in_reply_to {
            let ours =
                inner.posts.get(&Net::X).and_then(|p| p.iter().find(|p| p.id == parent)).map(|p| p.user);
            let theirs = inner.x_others.iter().find(|(t, _)| t["id"] == parent);
            let (parent_author, conversation) = match (ours, theirs) {
                (Some(user), _) => (x_user(user).0, parent.to_owned()),
                (None, Some((t, _))) => (
                    t["author_id"].as_str().unwrap_or_default().to_owned(),
                    t["conversation_id"].as_str().unwrap_or(parent).to_owned(),
                ),
                (None, None) => panic!("no X post {parent} to answer"),
            };
            post["in_reply_to_user_id"] = json!(parent_author);
            post["conversation_id"] = json!(conversation);
            post["referenced_tweets"] = json!([{ "type": "replied_to", "id": parent }]);
        }
        let user = json!({ "id": author_id, "username": author, "name": format!("{author} (X)") });
        inner.x_others.push((post, user));
        id
    }

    /// Mastodon: someone writes to the account privately (a mention with
    /// `direct` visibility: Mastodon's direct message). Returns its id.
    pub fn direct_message(&self, author: &str, text: &str) -> String {
        let id = self.mention(author, text, None);
        let mut inner = self.inner.lock().unwrap();
        if let Some(m) = inner.mentions.iter_mut().find(|m| m["status"]["id"] == id.as_str()) {
            m["status"]["visibility"] = json!("direct");
        }
        id
    }

    /// Mastodon: the `visibility` each request to create a status with
    /// `text` asked for, in order.
    pub fn visibilities_of(&self, text: &str) -> Vec<String> {
        self.inner
            .lock()
            .unwrap()
            .visibilities
            .iter()
            .filter(|(t, _)| t == text)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Mastodon or X: the author of a mention or a tagged status deletes it.
    pub fn delete_status(&self, status_id: &str) {
        self.inner.lock().unwrap().deleted_statuses.insert(status_id.to_owned());
    }

    /// Mastodon: the batch read of statuses answers an empty list from now on.
    pub fn ignore_status_ids(&self, ignored: bool) {
        self.inner.lock().unwrap().ids_ignored = ignored;
    }

    /// Mastodon: the account's token lacks `read:notifications` from now on.
    pub fn refuse_notifications(&self, refused: bool) {
        self.inner.lock().unwrap().notifications_refused = refused;
    }

    pub fn fail_next_metrics(&self, status: u16) {
        self.inner.lock().unwrap().metric_faults.push_back(status);
    }

    /// How many times an account's followers were read (its id, URN or DID).
    pub fn followers_reads(&self, account: &str) -> i64 {
        self.metric_reads(&format!("followers:{account}"))
    }

    /// How many times each post's metrics were read.
    pub fn metric_reads(&self, id: &str) -> i64 {
        self.inner.lock().unwrap().metric_reads.get(id).copied().unwrap_or(0)
    }

    pub fn refreshes(&self) -> u32 {
        self.inner.lock().unwrap().refreshes
    }

    /// Whoever approves on X from now on is X user `n` (see [`x_user`]).
    pub fn sign_in_as(&self, n: u32) {
        self.inner.lock().unwrap().signed_in = n;
    }

    /// X access tokens issued from now on live this many seconds.
    pub fn set_access_ttl(&self, seconds: u64) {
        self.inner.lock().unwrap().access_ttl = seconds;
    }

    /// Every X access token expires now.
    pub fn expire_x_tokens(&self) {
        let mut inner = self.inner.lock().unwrap();
        for token in inner.tokens.values_mut().filter(|t| t.net == Net::X) {
            token.expires = Some(Instant::now());
        }
    }

    /// A server's options pointing at this stand-in: X's client, its API
    /// and authorisation page, `http://` instances allowed, short time
    /// limits so faults show quickly.
    pub fn configure(&self, options: crate::ServerOptions) -> crate::ServerOptions {
        let public = format!("http://127.0.0.1:{}", options.api_port);
        options
            .env("MARKETER_PUBLIC_URL", &public)
            .env("MARKETER_X_CLIENT_ID", X_CLIENT_ID)
            .env("MARKETER_X_CLIENT_SECRET", X_CLIENT_SECRET)
            .env("MARKETER_X_API_URL", &self.url())
            .env("MARKETER_X_AUTHORIZE_URL", &format!("{}/i/oauth2/authorize", self.url()))
            .env("MARKETER_LINKEDIN_CLIENT_ID", LINKEDIN_CLIENT_ID)
            .env("MARKETER_LINKEDIN_CLIENT_SECRET", LINKEDIN_CLIENT_SECRET)
            .env("MARKETER_LINKEDIN_API_URL", &self.url())
            .env("MARKETER_LINKEDIN_OAUTH_URL", &self.url())
            .env("MARKETER_LINKEDIN_ORGANIZATIONS", "true")
            .env("MARKETER_META_APP_ID", META_APP_ID)
            .env("MARKETER_META_APP_SECRET", META_APP_SECRET)
            .env("MARKETER_META_GRAPH_URL", &format!("{}/{META_VERSION}", self.url()))
            .env("MARKETER_META_AUTHORIZE_URL", &format!("{}/{META_VERSION}/dialog/oauth", self.url()))
            .env("MARKETER_BLUESKY_APPVIEW_URL", &self.url())
            .env("MARKETER_SOCIAL_ALLOW_INSECURE", "true")
            .env("MARKETER_SOCIAL_TIMEOUT_MS", "1500")
            .env("MARKETER_PUBLISH_RECONCILE_DELAY_MS", "300")
            .env("MARKETER_PUBLISH_LEASE_SECONDS", "3")
    }

    /// How long Instagram takes to process an image from now on.
    pub fn set_instagram_processing(&self, wait: Duration) {
        self.inner.lock().unwrap().processing = wait;
    }

    /// An image address Instagram (this stand-in) can download.
    pub fn image_url(&self) -> String {
        format!("{}/images/photo.jpg", self.url())
    }

    /// Requests received, as `METHOD /path`.
    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let line = format!("{} {}", request.method(), request.uri().path());
    inner.lock().unwrap().requests.push(line);
    next.run(request).await
}

fn take_fault(inner: &mut Inner, net: Net, refresh: bool) -> Option<Fault> {
    let queue = inner.faults.entry(net).or_default();
    let index = queue.iter().position(|f| f.on_refresh() == refresh)?;
    queue.remove(index)
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({ "title": title, "detail": detail, "type": "about:blank", "status": status.as_u16() })
            .to_string(),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_owned)
}

/// Meta's error object.
fn graph_error(code: i64, subcode: Option<i64>, message: &str) -> Response {
    let mut error =
        json!({ "message": message, "type": "OAuthException", "code": code, "fbtrace_id": random() });
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
    }
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

/// Checks a bearer token of `net`: `Err` is the answer to give.
fn authorised(inner: &Inner, net: Net, headers: &HeaderMap) -> Result<u32, Box<Response>> {
    authorised_token(inner, net, bearer(headers))
}

/// Checks an access token of `net` (a bearer token, or Meta's
/// `access_token` parameter): `Err` is the answer to give.
fn authorised_token(inner: &Inner, net: Net, token: Option<String>) -> Result<u32, Box<Response>> {
    let unauthorised = || match net {
        Net::X => problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized"),
        Net::Mastodon => (StatusCode::UNAUTHORIZED, Json(json!({ "error": "The access token is invalid" })))
            .into_response(),
        Net::Linkedin => (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "message": "Invalid access token", "serviceErrorCode": 65600, "status": 401 })),
        )
            .into_response(),
        Net::Facebook | Net::Instagram => graph_error(
            190,
            Some(463),
            "Error validating access token: Session has expired on Thursday, 03-Dec-26 10:00:00 PST.",
        ),
    };
    let Some(token) = token else { return Err(Box::new(unauthorised())) };
    match inner.tokens.get(&token) {
        // Instagram is reached with the linked Page's token.
        Some(t)
            if (t.net == net || (net == Net::Instagram && t.net == Net::Facebook))
                && !t.revoked
                && t.expires.is_none_or(|e| e > Instant::now()) =>
        {
            Ok(t.user)
        }
        _ => Err(Box::new(unauthorised())),
    }
}

/// Posts a user may create per fifteen-minute window (X's documented
/// per-user limit; Mastodon's is per five minutes of all calls, simplified).
fn window_limit(net: Net) -> i64 {
    match net {
        Net::X => 100,
        Net::Mastodon => 300,
        Net::Linkedin => 150,
        Net::Facebook => 50,
        Net::Instagram => 100,
    }
}

/// The user's current window: calls left and its reset (epoch seconds).
fn window(inner: &mut Inner, net: Net, user: u32) -> &mut (i64, u64) {
    let now = now_epoch();
    let entry = inner.remaining.entry((net, user)).or_insert((window_limit(net), now + 900));
    if entry.1 <= now {
        *entry = (window_limit(net), now + 900);
    }
    entry
}

fn rate_headers(inner: &mut Inner, net: Net, user: u32) -> HeaderMap {
    let (remaining, reset) = *window(inner, net, user);
    let mut h = HeaderMap::new();
    let value = |v: String| HeaderValue::from_str(&v).unwrap();
    match net {
        Net::X => {
            h.insert("x-rate-limit-limit", value(window_limit(net).to_string()));
            h.insert("x-rate-limit-remaining", value(remaining.to_string()));
            h.insert("x-rate-limit-reset", value(reset.to_string()));
            let app_spent = inner.x_app_limited_until > now_epoch();
            let app_reset = if app_spent { inner.x_app_limited_until } else { now_epoch() + 86_400 };
            h.insert("x-app-limit-24hour-limit", value("10000".into()));
            h.insert("x-app-limit-24hour-remaining", value(if app_spent { "0" } else { "9000" }.into()));
            h.insert("x-app-limit-24hour-reset", value(app_reset.to_string()));
        }
        Net::Mastodon => {
            let at = OffsetDateTime::from_unix_timestamp(i64::try_from(reset).unwrap_or(0)).unwrap();
            h.insert("x-ratelimit-limit", value(window_limit(net).to_string()));
            h.insert("x-ratelimit-remaining", value(remaining.to_string()));
            h.insert("x-ratelimit-reset", value(at.format(&Rfc3339).unwrap()));
        }
        // LinkedIn sends no rate-limit headers.
        Net::Linkedin => {}
        // Meta: usage percentages, and the wait once at 100 %.
        Net::Facebook | Net::Instagram => {
            let limit = window_limit(net);
            let used = ((limit - remaining.max(0)) * 100 / limit).clamp(0, 100);
            let regain = if remaining <= 0 { reset.saturating_sub(now_epoch()).div_ceil(60) } else { 0 };
            let usage = json!({ FACEBOOK_PAGE_ID: [{ "type": "pages", "call_count": used, "total_cputime": 1,
                "total_time": 1, "estimated_time_to_regain_access": regain }] });
            h.insert("x-business-use-case-usage", value(usage.to_string()));
            h.insert(
                "x-app-usage",
                value(json!({ "call_count": 1, "total_time": 1, "total_cputime": 1 }).to_string()),
            );
        }
    }
    match net {
        Net::Linkedin => h.insert("x-li-uuid", value(random())),
        Net::Facebook => h.insert("x-fb-trace-id", value(random())),
        _ => h.insert("x-request-id", value(random())),
    };
    h
}

/// A 429 as each platform gives it; with `reset_in`, the window is spent
/// until then.
fn limited(inner: &mut Inner, net: Net, user: u32, reset_in: Option<u64>) -> Response {
    if let Some(reset_in) = reset_in {
        *window(inner, net, user) = (0, now_epoch() + reset_in);
    }
    let headers = rate_headers(inner, net, user);
    let body = match net {
        Net::X => json!({ "errors": [{ "code": 88, "message": "Rate limit exceeded" }] }),
        Net::Mastodon => json!({ "error": "Too many requests" }),
        Net::Linkedin => {
            json!({ "message": "Resource level throttle limit for calls to this resource is reached.", "status": 429 })
        }
        Net::Instagram => {
            let mut answer = graph_error(
                9,
                Some(2_207_042),
                "You reached maximum number of posts that is allowed to be published by Content Publishing API.",
            );
            answer.headers_mut().extend(headers);
            return answer;
        }
        Net::Facebook => {
            let mut answer = graph_error(
                80001,
                None,
                "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
            );
            answer.headers_mut().extend(headers);
            return answer;
        }
    };
    (StatusCode::TOO_MANY_REQUESTS, headers, Json(body)).into_response()
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Both platforms' authorisation page: approves at once and sends the
/// person back with a code.
fn authorize(inner: &Arc<Mutex<Inner>>, net: Net, q: &HashMap<String, String>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "response_type=code and an S256 code_challenge are required")
            .into_response();
    }
    let mut inner = inner.lock().unwrap();
    let known = match net {
        Net::X => get("client_id") == X_CLIENT_ID,
        Net::Mastodon => {
            inner.apps.get(&get("client_id")).is_some_and(|(_, redirect)| *redirect == get("redirect_uri"))
        }
        Net::Linkedin => get("client_id") == LINKEDIN_CLIENT_ID,
        Net::Facebook | Net::Instagram => get("client_id") == META_APP_ID,
    };
    if !known {
        return (StatusCode::BAD_REQUEST, "unknown client or redirect_uri").into_response();
    }
    let code = random();
    let user = if net == Net::X { inner.signed_in } else { 0 };
    inner.codes.insert(
        code.clone(),
        Code {
            net,
            user,
            client_id: get("client_id"),
            redirect_uri: get("redirect_uri"),
            challenge: get("code_challenge"),
        },
    );
    let mut target = reqwest::Url::parse(&get("redirect_uri")).expect("redirect_uri");
    target.query_pairs_mut().append_pair("state", &get("state")).append_pair("code", &code);
    Redirect::to(target.as_str()).into_response()
}

fn issue(inner: &mut Inner, net: Net, user: u32, with_refresh: bool) -> Value {
    let access = random();
    let expires = (net == Net::X).then(|| Instant::now() + Duration::from_secs(inner.access_ttl));
    inner.tokens.insert(access.clone(), Token { net, user, expires, revoked: false });
    match net {
        Net::X => {
            let mut body = json!({ "token_type": "bearer", "expires_in": inner.access_ttl, "access_token": access,
                "scope": "tweet.read tweet.write users.read offline.access" });
            if with_refresh {
                let refresh = random();
                inner.refresh_tokens.insert(refresh.clone(), (true, user));
                body["refresh_token"] = json!(refresh);
            }
            body
        }
        Net::Mastodon => {
            json!({ "access_token": access, "token_type": "Bearer", "scope": "read write", "created_at": now_epoch() })
        }
        // LinkedIn: 60-day access tokens; the refresh token keeps the
        // first grant's 365 days and is not rotated.
        Net::Linkedin => {
            let mut body = json!({ "access_token": access, "expires_in": 5_184_000, "scope": "openid,profile,w_member_social,r_member_social" });
            if with_refresh {
                let refresh = random();
                inner.refresh_tokens.insert(refresh.clone(), (true, user));
                body["refresh_token"] = json!(refresh);
                body["refresh_token_expires_in"] = json!(31_536_000);
            }
            body
        }
        Net::Facebook | Net::Instagram => {
            json!({ "access_token": access, "token_type": "bearer", "expires_in": 5_183_944 })
        }
    }
}

fn redeem(
    inner: &mut Inner,
    net: Net,
    form: &HashMap<String, String>,
    client_id: &str,
) -> Result<u32, Box<Response>> {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let invalid = || {
        Box::new((StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_grant",
            "error_description": "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client." })))
            .into_response())
    };
    let code = inner.codes.remove(&get("code")).ok_or_else(invalid)?;
    if code.net != net
        || code.client_id != client_id
        || code.redirect_uri != get("redirect_uri")
        || s256(&get("code_verifier")) != code.challenge
    {
        return Err(invalid());
    }
    Ok(code.user)
}

async fn x_authorize(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    authorize(&inner, Net::X, &q)
}

async fn x_token(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected = format!("Basic {}", STANDARD.encode(format!("{X_CLIENT_ID}:{X_CLIENT_SECRET}")));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "unauthorized_client", "error_description": "Missing valid authorization header" }))).into_response();
    }
    let mut inner = inner.lock().unwrap();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let user = match redeem(&mut inner, Net::X, &form, X_CLIENT_ID) {
                Ok(user) => user,
                Err(answer) => return *answer,
            };
            Json(issue(&mut inner, Net::X, user, true)).into_response()
        }
        Some("refresh_token") => {
            inner.refreshes += 1;
            let old = form.get("refresh_token").cloned().unwrap_or_default();
            match take_fault(&mut inner, Net::X, true) {
                Some(Fault::RefuseRefresh) => {
                    return (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_request", "error_description": "Value passed for the token was invalid." }))).into_response();
                }
                Some(Fault::RefreshUnavailable) => {
                    return problem(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Service Unavailable",
                        "Service Unavailable",
                    );
                }
                Some(Fault::RefreshWithoutRefreshToken) => {
                    let Some(&(true, user)) = inner.refresh_tokens.get(&old) else {
                        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "invalid_grant", "error_description": "refresh token is invalid" }))).into_response();
                    };
                    // The old refresh token stays valid: nothing new to store.
                    return Json(issue(&mut inner, Net::X, user, false)).into_response();
                }
                _ => {}
            }
            // Single use: rotation.
            let Some(&(true, user)) = inner.refresh_tokens.get(&old) else {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(
                        json!({ "error": "invalid_grant", "error_description": "refresh token is invalid" }),
                    ),
                )
                    .into_response();
            };
            inner.refresh_tokens.insert(old, (false, user));
            Json(issue(&mut inner, Net::X, user, true)).into_response()
        }
        _ => (StatusCode::BAD_REQUEST, Json(json!({ "error": "unsupported_grant_type" }))).into_response(),
    }
}

async fn x_me(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let user = match authorised(&inner, Net::X, &headers) {
        Ok(user) => user,
        Err(answer) => return *answer,
    };
    let (id, username) = x_user(user);
    let mut data = json!({ "id": id, "name": "Marketer Test", "username": username });
    if q.get("user.fields").is_some_and(|f| f.split(',').any(|f| f == "public_metrics")) {
        let followers = followers_read(&mut inner, &id);
        data["public_metrics"] = json!({ "followers_count": followers, "following_count": 80,
            "tweet_count": 120, "listed_count": 3, "like_count": 450 });
    }
    Json(json!({ "data": data })).into_response()
}

/// X user `n`: user 0 is `X_USER_ID` / `X_USERNAME`.
/// X's ids begin with the milliseconds since this moment (2010-11-04),
/// shifted left 22 bits.
const X_EPOCH_MS: i128 = 1_288_834_974_657;

pub fn x_user(n: u32) -> (String, String) {
    if n == 0 {
        (X_USER_ID.to_owned(), X_USERNAME.to_owned())
    } else {
        ((2_244_994_945u64 + u64::from(n)).to_string(), format!("{X_USERNAME}_{n}"))
    }
}

/// What a create request does, decided under the lock; the slow answer is
/// given after it is released.
enum Outcome {
    Now(Response),
    Later(Duration, Response),
}

fn create(
    inner: &Arc<Mutex<Inner>>,
    net: Net,
    token: Option<String>,
    text: String,
    key: Option<String>,
    in_reply_to: Option<String>,
) -> Outcome {
    let mut inner = inner.lock().unwrap();
    let user = match authorised_token(&inner, net, token.clone()) {
        Ok(user) => user,
        Err(answer) => return Outcome::Now(*answer),
    };
    if let Some(key) = &key
        && let Some(id) = inner.idempotency.get(key).cloned()
        && let Some(post) = inner.posts.get(&net).and_then(|p| p.iter().find(|p| p.id == id)).cloned()
    {
        let headers = rate_headers(&mut inner, net, user);
        return Outcome::Now((StatusCode::OK, headers, Json(status_json(&post))).into_response());
    }
    // Marketer's app spent its X limit: 429 for every user until the reset.
    if net == Net::X && inner.x_app_limited_until > now_epoch() {
        return Outcome::Now(limited(&mut inner, net, user, None));
    }
    // The window is spent: 429 until its reset, nothing created.
    if window(&mut inner, net, user).0 <= 0 {
        return Outcome::Now(limited(&mut inner, net, user, None));
    }
    let fault = take_fault(&mut inner, net, false);
    match fault {
        Some(Fault::RateLimited { reset_in }) => {
            return Outcome::Now(limited(&mut inner, net, user, Some(reset_in)));
        }
        Some(Fault::AppLimited { reset_in }) => {
            inner.x_app_limited_until = now_epoch() + reset_in;
            return Outcome::Now(limited(&mut inner, net, user, None));
        }
        Some(Fault::ExpiredToken) => {
            if let Some(token) = token.as_ref().and_then(|t| inner.tokens.get_mut(t)) {
                token.expires = Some(Instant::now());
            }
            return Outcome::Now(*authorised_token(&inner, net, token).expect_err("expired"));
        }
        _ => {}
    }
    if net == Net::X
        && inner
            .posts
            .get(&net)
            .is_some_and(|p| p.iter().any(|p| !p.deleted && p.user == user && p.text == text))
    {
        return Outcome::Now(problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "You are not allowed to create a Tweet with duplicate content.",
        ));
    }
    // Facebook: the same text twice in a row is refused.
    if net == Net::Facebook
        && inner
            .posts
            .get(&net)
            .and_then(|p| p.iter().rev().find(|p| !p.deleted && p.user == user))
            .is_some_and(|p| p.text == text)
    {
        return Outcome::Now(graph_error(506, None, "(#506) Duplicate status message"));
    }
    if text.trim().is_empty() {
        return Outcome::Now(
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "Validation failed: Text can't be blank" })),
            )
                .into_response(),
        );
    }
    inner.next_id += 1;
    let id = match net {
        Net::Linkedin => format!("urn:li:share:{}", inner.next_id),
        Net::Facebook => format!("{}_{}", facebook_page(user).0, inner.next_id),
        _ => inner.next_id.to_string(),
    };
    let post = Post {
        id,
        user,
        text,
        created_at: OffsetDateTime::now_utc(),
        deleted: false,
        received_at: Instant::now(),
        in_reply_to,
    };
    inner.posts.entry(net).or_default().push(post.clone());
    if let Some(key) = key {
        inner.idempotency.insert(key, post.id.clone());
    }
    window(&mut inner, net, user).0 -= 1;
    let rate = rate_headers(&mut inner, net, user);
    let ok = match net {
        Net::X => (StatusCode::CREATED, rate, Json(json!({ "data": { "id": post.id, "text": post.text } })))
            .into_response(),
        Net::Mastodon => (StatusCode::OK, rate, Json(status_json(&post))).into_response(),
        Net::Linkedin => {
            let mut ok = (StatusCode::CREATED, rate).into_response();
            ok.headers_mut().insert("x-restli-id", HeaderValue::from_str(&post.id).unwrap());
            ok
        }
        Net::Facebook | Net::Instagram => {
            (StatusCode::OK, rate, Json(json!({ "id": post.id }))).into_response()
        }
    };
    match fault {
        Some(Fault::SlowAfterCreate(wait)) => Outcome::Later(wait, ok),
        Some(Fault::ErrorAfterCreate(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            Outcome::Now(match net {
                Net::X => problem(status, "Service Unavailable", "Service Unavailable"),
                Net::Mastodon => (status, Json(json!({ "error": "There was a temporary problem serving your request, please try again" }))).into_response(),
                Net::Linkedin => (status, Json(json!({ "message": "Internal Server Error", "status": status.as_u16() }))).into_response(),
                Net::Facebook | Net::Instagram => (status, Json(json!({ "error": { "message": "An unexpected error has occurred. Please retry your request later.", "type": "OAuthException", "is_transient": true, "code": 2, "fbtrace_id": random() } }))).into_response(),
            })
        }
        _ => Outcome::Now(ok),
    }
}

async fn answer(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Now(r) => r,
        Outcome::Later(wait, r) => {
            tokio::time::sleep(wait).await;
            r
        }
    }
}

async fn x_create(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let text = body["text"].as_str().unwrap_or_default().to_owned();
    let in_reply_to = body["reply"]["in_reply_to_tweet_id"].as_str().map(str::to_owned);
    answer(create(&inner, Net::X, bearer(&headers), text, None, in_reply_to)).await
}

async fn x_delete(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::X, &headers) {
        return *answer;
    }
    match inner.posts.entry(Net::X).or_default().iter_mut().find(|p| p.id == id && !p.deleted) {
        Some(post) => {
            post.deleted = true;
            Json(json!({ "data": { "deleted": true } })).into_response()
        }
        None => problem(
            StatusCode::NOT_FOUND,
            "Not Found Error",
            &format!("Could not find tweet with id: [{id}]."),
        ),
    }
}

async fn x_timeline(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let user = match authorised(&inner, Net::X, &headers) {
        Ok(user) => user,
        Err(answer) => return *answer,
    };
    if id != x_user(user).0 {
        return problem(StatusCode::NOT_FOUND, "Not Found Error", "Could not find user");
    }
    let start = q.get("start_time").and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
    let max: usize = q.get("max_results").and_then(|m| m.parse().ok()).unwrap_or(10).clamp(5, 100);
    let offset: usize = q.get("pagination_token").and_then(|t| t.parse().ok()).unwrap_or(0);
    let mut posts: Vec<Post> = inner
        .posts
        .get(&Net::X)
        .map(|p| {
            p.iter()
                .filter(|p| !p.deleted && p.user == user && start.is_none_or(|s| p.created_at >= s))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    posts.reverse();
    let page: Vec<Value> =
        posts.iter().skip(offset).take(max).map(|p| json!({ "id": p.id, "text": p.text })).collect();
    let mut meta = json!({ "result_count": page.len() });
    if offset + max < posts.len() {
        meta["next_token"] = json!((offset + max).to_string());
    }
    let rate = rate_headers(&mut inner, Net::X, user);
    (rate, Json(json!({ "data": page, "meta": meta }))).into_response()
}

/// A post's counts at its `n`th read: plausible, growing, and the same
/// for the same post and read (seeded by the post's id).
fn counts(id: &str, n: i64) -> [(&'static str, i64); 6] {
    let seed = id.bytes().fold(7_i64, |h, b| (h * 31 + i64::from(b)) % 1_000);
    let likes = seed % 40 + 5 * n;
    [
        ("impressions", 400 + seed + 250 * n),
        ("likes", likes),
        ("replies", seed % 7 + n),
        ("reposts", seed % 5 + n / 2),
        ("quotes", n / 3),
        ("bookmarks", seed % 3 + n / 2),
    ]
}

/// Takes a metrics read of `id` on `net`: its counts, or the injected
/// failure's answer.
fn metrics_read(inner: &mut Inner, net: Net, id: &str) -> Result<[(&'static str, i64); 6], Box<Response>> {
    if let Some(status) = inner.metric_faults.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response =
            (status, Json(json!({ "error": "metrics are unavailable right now" }))).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            let reset = (OffsetDateTime::now_utc().unix_timestamp() + 2).to_string();
            response.headers_mut().insert("x-rate-limit-reset", reset.parse().unwrap());
            response.headers_mut().insert("x-ratelimit-reset", reset.parse().unwrap());
        }
        return Err(Box::new(response));
    }
    let live = inner.posts.get(&net).and_then(|p| p.iter().find(|p| p.id == id && !p.deleted));
    let extra = live.and_then(|p| inner.liked_more.get(&p.text)).copied().unwrap_or(0);
    if live.is_none() {
        return Err(Box::new(match net {
            Net::X => Json(json!({ "errors": [{ "title": "Not Found Error", "detail": format!("Could not find tweet with id: [{id}]."), "type": "https://api.twitter.com/2/problems/resource-not-found" }] })).into_response(),
            Net::Facebook | Net::Instagram => graph_error(100, Some(33), &format!("Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")),
            _ => (StatusCode::NOT_FOUND, Json(json!({ "error": "Record not found" }))).into_response(),
        }));
    }
    let n = inner.metric_reads.entry(id.to_owned()).or_default();
    *n += 1;
    let mut c = counts(id, *n);
    c[1].1 += extra;
    Ok(c)
}

/// An account's followers, growing by a few with each read.
fn followers_read(inner: &mut Inner, account: &str) -> i64 {
    let n = inner.metric_reads.entry(format!("followers:{account}")).or_default();
    *n += 1;
    let seed = account.bytes().fold(11_i64, |h, b| (h * 31 + i64::from(b)) % 5_000);
    1_000 + seed + 3 * *n
}

/// `fields` without the ones `net` no longer returns.
fn without_dropped(
    inner: &Inner,
    net: Net,
    fields: Vec<(&'static str, i64)>,
) -> serde_json::Map<String, Value> {
    fields
        .into_iter()
        .filter(|(name, _)| !inner.dropped.contains(&(net, *name)))
        .map(|(name, value)| (name.to_owned(), json!(value)))
        .collect()
}

async fn x_tweet(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::X, &headers) {
        return *answer;
    }
    let c = match metrics_read(&mut inner, Net::X, &id) {
        Ok(c) => c,
        Err(answer) => return *answer,
    };
    let text = inner.posts.get(&Net::X).and_then(|p| p.iter().find(|p| p.id == id)).map(|p| p.text.clone());
    let mut data = json!({ "id": id, "text": text });
    if q.get("tweet.fields").is_some_and(|f| f.split(',').any(|f| f == "public_metrics")) {
        let [impressions, likes, replies, reposts, quotes, bookmarks] = c;
        let public = without_dropped(
            &inner,
            Net::X,
            vec![
                ("impression_count", impressions.1),
                ("like_count", likes.1),
                ("reply_count", replies.1),
                ("retweet_count", reposts.1),
                ("quote_count", quotes.1),
                ("bookmark_count", bookmarks.1),
            ],
        );
        data["public_metrics"] = Value::Object(public);
    }
    Json(json!({ "data": data })).into_response()
}

async fn m_status(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Mastodon, &headers) {
        return *answer;
    }
    // Someone else's status (a mention, a tagged post): as it is, or gone.
    if inner.deleted_statuses.contains(&id) {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "Record not found" }))).into_response();
    }
    if let Some(status) = others_status(&inner, &id) {
        return Json(status).into_response();
    }
    let c = match metrics_read(&mut inner, Net::Mastodon, &id) {
        Ok(c) => c,
        Err(answer) => return *answer,
    };
    let Some(post) = inner.posts.get(&Net::Mastodon).and_then(|p| p.iter().find(|p| p.id == id)).cloned()
    else {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "Record not found" }))).into_response();
    };
    let mut status = status_json(&post);
    let [_, likes, replies, reposts, _, _] = c;
    let counts = without_dropped(
        &inner,
        Net::Mastodon,
        vec![("favourites_count", likes.1), ("replies_count", replies.1), ("reblogs_count", reposts.1)],
    );
    for field in ["favourites_count", "replies_count", "reblogs_count"] {
        match counts.get(field) {
            Some(v) => status[field] = v.clone(),
            None => {
                status.as_object_mut().unwrap().remove(field);
            }
        }
    }
    Json(status).into_response()
}

fn status_json(post: &Post) -> Value {
    json!({
        "id": post.id,
        "created_at": post.created_at.format(&Rfc3339).unwrap(),
        "content": format!("<p>{}</p>", post.text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\n', "<br>")),
        "url": format!("https://mastodon.example/@marketer/{}", post.id),
        "visibility": "public",
        "in_reply_to_id": post.in_reply_to,
        "account": { "id": MASTODON_ACCOUNT_ID, "username": "marketer", "acct": "marketer" },
        "replies_count": 0, "reblogs_count": 0, "favourites_count": 0,
    })
}

async fn m_apps(
    State(inner): State<Arc<Mutex<Inner>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let redirect = form.get("redirect_uris").cloned().unwrap_or_default();
    if form.get("client_name").is_none_or(String::is_empty) || reqwest::Url::parse(&redirect).is_err() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "error": "Validation failed: Redirect URI must be an absolute URI." })),
        )
            .into_response();
    }
    let (id, secret) = (random(), random());
    inner.lock().unwrap().apps.insert(id.clone(), (secret.clone(), redirect.clone()));
    Json(json!({ "id": "563419", "name": form["client_name"], "scopes": ["read", "write"], "redirect_uri": redirect,
        "redirect_uris": [redirect], "client_id": id, "client_secret": secret, "client_secret_expires_at": 0 }))
    .into_response()
}

async fn m_authorize(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    authorize(&inner, Net::Mastodon, &q)
}

async fn m_token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let secret_ok =
        inner.apps.get(&client_id).is_some_and(|(secret, _)| Some(secret) == form.get("client_secret"));
    if !secret_ok {
        return (StatusCode::UNAUTHORIZED, Json(json!({ "error": "invalid_client", "error_description": "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method." }))).into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "unsupported_grant_type" }))).into_response();
    }
    let user = match redeem(&mut inner, Net::Mastodon, &form, &client_id) {
        Ok(user) => user,
        Err(answer) => return *answer,
    };
    Json(issue(&mut inner, Net::Mastodon, user, false)).into_response()
}

async fn m_verify(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Mastodon, &headers) {
        return *answer;
    }
    let followers = followers_read(&mut inner, MASTODON_ACCOUNT_ID);
    Json(json!({ "id": MASTODON_ACCOUNT_ID, "username": "marketer", "acct": "marketer", "display_name": "Marketer",
        "url": "https://mastodon.example/@marketer", "followers_count": followers, "following_count": 12,
        "statuses_count": 40 }))
    .into_response()
}

async fn m_create(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let text = form.get("status").cloned().unwrap_or_default();
    let visibility = form.get("visibility").cloned().unwrap_or_else(|| "public".into());
    inner.lock().unwrap().visibilities.push((text.clone(), visibility));
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| format!("idempotency:status:{MASTODON_ACCOUNT_ID}:{k}"));
    // A reply names a status the instance knows, as Mastodon checks.
    let in_reply_to = form.get("in_reply_to_id").filter(|id| !id.is_empty()).cloned();
    if let Some(id) = &in_reply_to {
        let known = {
            let inner = inner.lock().unwrap();
            inner.mentions.iter().any(|m| m["status"]["id"] == id.as_str())
                || inner.tagged.iter().any(|(_, status)| status["id"] == id.as_str())
                || inner.posts.get(&Net::Mastodon).is_some_and(|p| p.iter().any(|p| &p.id == id))
        };
        if !known {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "The post you are trying to reply to does not appear to exist." })),
            )
                .into_response();
        }
    }
    answer(create(&inner, Net::Mastodon, bearer(&headers), text, key, in_reply_to)).await
}

async fn m_delete(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Mastodon, &headers) {
        return *answer;
    }
    match inner.posts.entry(Net::Mastodon).or_default().iter_mut().find(|p| p.id == id && !p.deleted) {
        Some(post) => {
            post.deleted = true;
            let body = status_json(post);
            Json(body).into_response()
        }
        None => (StatusCode::NOT_FOUND, Json(json!({ "error": "Record not found" }))).into_response(),
    }
}

async fn m_statuses(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Mastodon, &headers) {
        return *answer;
    }
    if id != MASTODON_ACCOUNT_ID {
        return (StatusCode::NOT_FOUND, Json(json!({ "error": "Record not found" }))).into_response();
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20).min(40);
    let page: Vec<Value> = inner
        .posts
        .get(&Net::Mastodon)
        .map(|p| p.iter().rev().filter(|p| !p.deleted).take(limit).map(status_json).collect())
        .unwrap_or_default();
    Json(page).into_response()
}

/// `GET /api/v1/notifications`: mentions only (`types[]=mention`), paged
/// as Mastodon pages: `max_id` (older than), `since_id` (the newest after),
/// `min_id` (the page right after), `limit` 40 by default, 80 at most;
/// newest first, with a `Link` header.
async fn m_notifications(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Mastodon, &headers) {
        return *answer;
    }
    if inner.notifications_refused {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "This action is outside the authorized scopes" })),
        )
            .into_response();
    }
    let get = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let types: Vec<String> = pairs.iter().filter(|(k, _)| k == "types[]").map(|(_, v)| v.clone()).collect();
    if !types.is_empty() && !types.iter().any(|t| t == "mention") {
        return Json(json!([])).into_response();
    }
    let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(40).clamp(1, 80);
    let live = inner
        .mentions
        .iter()
        .filter(|m| m["status"]["id"].as_str().is_none_or(|id| !inner.deleted_statuses.contains(id)));
    let page = mastodon_page(live, get, limit);
    let mut response = Json(Value::Array(page.clone())).into_response();
    if let (Some(newest), Some(oldest)) = (page.first(), page.last()) {
        let link = format!(
            "<http://mastodon.example/api/v1/notifications?max_id={}>; rel=\"next\", <http://mastodon.example/api/v1/notifications?min_id={}>; rel=\"prev\"",
            oldest["id"].as_str().unwrap_or_default(),
            newest["id"].as_str().unwrap_or_default()
        );
        response.headers_mut().insert("link", HeaderValue::from_str(&link).unwrap());
    }
    response
}

/// Mastodon: someone else's status by id (a mention's, a tagged post),
/// deleted or not.
fn others_status(inner: &Inner, id: &str) -> Option<Value> {
    inner
        .mentions
        .iter()
        .map(|m| &m["status"])
        .chain(inner.tagged.iter().map(|(_, s)| s))
        .find(|s| s["id"] == id)
        .cloned()
}

/// `GET /api/v1/statuses?id[]=…` (Mastodon 4.3): the statuses asked for
/// that exist, in no promised order; deleted or unknown ones are left
/// out. More than 20 ids is a 422, as the instance's limit.
async fn m_statuses_by_id(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Mastodon, &headers) {
        return *answer;
    }
    let ids: Vec<&str> = pairs.iter().filter(|(k, _)| k == "id[]").map(|(_, v)| v.as_str()).collect();
    if inner.ids_ignored {
        return Json(json!([])).into_response();
    }
    if ids.len() > 20 {
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "error": "Too many ids" }))).into_response();
    }
    let mut found: Vec<Value> = Vec::new();
    for id in ids {
        if inner.deleted_statuses.contains(id) {
            continue;
        }
        let status = others_status(&inner, id).or_else(|| {
            inner
                .posts
                .get(&Net::Mastodon)
                .and_then(|p| p.iter().find(|p| p.id == id && !p.deleted))
                .map(status_json)
        });
        found.extend(status);
    }
    Json(Value::Array(found)).into_response()
}

/// `GET /api/v1/timelines/tag/{tag}`: public statuses with the hashtag
/// (any case), paged as the notifications are, newest first.
async fn m_tag_timeline(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(tag): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Mastodon, &headers) {
        return *answer;
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20).clamp(1, 40);
    let tag = tag.to_lowercase();
    let tagged = inner
        .tagged
        .iter()
        .filter(|(t, s)| *t == tag && s["id"].as_str().is_none_or(|id| !inner.deleted_statuses.contains(id)))
        .map(|(_, s)| s);
    Json(Value::Array(mastodon_page(tagged, |k| q.get(k).cloned(), limit))).into_response()
}

/// X: the posts of others `keep` picks, newest first, newer than
/// `since_id`, a page of `max_results` from the offset in `page_param`, as
/// X answers a list: `data` (left out when empty), `includes.users`, and
/// `meta` with `next_token` while more remain.
fn x_list(
    inner: &Inner,
    q: &HashMap<String, String>,
    page_param: &str,
    least: usize,
    keep: impl Fn(&Value) -> bool,
) -> Response {
    let since: u64 = q.get("since_id").and_then(|s| s.parse().ok()).unwrap_or(0);
    let max: usize = q.get("max_results").and_then(|m| m.parse().ok()).unwrap_or(10).clamp(least, 100);
    let offset: usize = q.get(page_param).and_then(|t| t.parse().ok()).unwrap_or(0);
    let found: Vec<&(Value, Value)> = inner
        .x_others
        .iter()
        .rev()
        .filter(|(t, _)| t["id"].as_str().is_some_and(|id| !inner.deleted_statuses.contains(id)))
        .filter(|(t, _)| t["id"].as_str().and_then(|id| id.parse::<u64>().ok()).unwrap_or(0) > since)
        .filter(|(t, _)| keep(t))
        .collect();
    let page: Vec<&(Value, Value)> = found.iter().skip(offset).take(max).copied().collect();
    let mut meta = json!({ "result_count": page.len() });
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        meta["newest_id"] = first.0["id"].clone();
        meta["oldest_id"] = last.0["id"].clone();
    }
    if offset + max < found.len() {
        meta["next_token"] = json!((offset + max).to_string());
    }
    let mut body = json!({ "meta": meta });
    if !page.is_empty() {
        body["data"] = Value::Array(page.iter().map(|(t, _)| t.clone()).collect());
        let mut users: Vec<Value> = Vec::new();
        for (_, u) in &page {
            if !users.contains(u) {
                users.push(u.clone());
            }
        }
        body["includes"] = json!({ "users": users });
    }
    Json(body).into_response()
}

/// `GET /2/users/{id}/mentions`: others' posts naming the user or
/// answering their posts, newest first (`pagination_token`).
async fn x_mentions(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = inner.lock().unwrap();
    let user = match authorised(&inner, Net::X, &headers) {
        Ok(user) => user,
        Err(answer) => return *answer,
    };
    let (user_id, username) = x_user(user);
    if id != user_id {
        return problem(StatusCode::NOT_FOUND, "Not Found Error", "Could not find user");
    }
    let named = format!("@{}", username.to_lowercase());
    x_list(&inner, &q, "pagination_token", 5, |t| {
        t["in_reply_to_user_id"] == user_id.as_str()
            || t["text"].as_str().is_some_and(|text| text.to_lowercase().contains(&named))
    })
}

/// `GET /2/tweets/search/recent?query=…`: others' posts with every term
/// of the query in any case (a quoted phrase as written, `#tag`, words;
/// operators such as `-is:retweet` are accepted and change nothing here),
/// newest first (`next_token`).
async fn x_search(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::X, &headers) {
        return *answer;
    }
    let Some(query) = q.get("query").filter(|q| !q.trim().is_empty()) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid Request",
            "The `query` query parameter can not be empty",
        );
    };
    // Recent search covers seven days, and refuses a since_id older.
    if let Some(since) = q.get("since_id").and_then(|s| s.parse::<u64>().ok()) {
        let written_ms = i128::from(since >> 22) + X_EPOCH_MS;
        let week_ago_ms =
            (OffsetDateTime::now_utc() - time::Duration::days(7)).unix_timestamp_nanos() / 1_000_000;
        if written_ms < week_ago_ms {
            return problem(
                StatusCode::BAD_REQUEST,
                "Invalid Request",
                &format!(
                    "Invalid 'since_id':'{since}'. 'since_id' must be a tweet id created in the last seven days."
                ),
            );
        }
    }
    let mut terms: Vec<String> = Vec::new();
    for (i, part) in query.split('"').enumerate() {
        if i % 2 == 1 {
            terms.push(part.to_lowercase());
        } else {
            terms.extend(part.split_whitespace().filter(|w| !w.starts_with('-')).map(str::to_lowercase));
        }
    }
    x_list(&inner, &q, "next_token", 10, |t| {
        let text = t["text"].as_str().unwrap_or_default().to_lowercase();
        terms.iter().all(|term| text.contains(term.as_str()))
    })
}

/// `GET /2/tweets?ids=…`: the posts that exist, and a `resource-not-found`
/// error for each one that does not (200 all the same).
async fn x_tweets_by_id(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::X, &headers) {
        return *answer;
    }
    let mut data = Vec::new();
    let mut errors = Vec::new();
    for id in q.get("ids").map(String::as_str).unwrap_or_default().split(',').filter(|i| !i.is_empty()) {
        let ours = inner.posts.get(&Net::X).and_then(|p| p.iter().find(|p| p.id == id && !p.deleted));
        let theirs = inner
            .x_others
            .iter()
            .find(|(t, _)| t["id"] == id)
            .filter(|_| !inner.deleted_statuses.contains(id));
        match (ours, theirs) {
            (Some(p), _) => data.push(json!({ "id": p.id, "text": p.text })),
            (None, Some((t, _))) => data.push(t.clone()),
            (None, None) => errors.push(json!({
                "value": id, "detail": format!("Could not find tweet with ids: [{id}]."), "title": "Not Found Error",
                "resource_type": "tweet", "parameter": "ids", "resource_id": id,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            })),
        }
    }
    let mut body = json!({});
    if !data.is_empty() {
        body["data"] = Value::Array(data);
    }
    if !errors.is_empty() {
        body["errors"] = Value::Array(errors);
    }
    Json(body).into_response()
}

/// `GET /api/v2/search?type=statuses&q=…`: public statuses (tagged or
/// not) whose text has every word of `q` in any case, as the instance's
/// full-text search finds them (words apart, in any order), paged as the
/// timelines are, newest first. A token is needed (and, on a real
/// instance, its `read:search` scope).
async fn m_search(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Mastodon, &headers) {
        return *answer;
    }
    let words: Vec<String> = q
        .get("q")
        .map(|q| q.to_lowercase().split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if words.is_empty() {
        return (StatusCode::BAD_REQUEST, Json(json!({ "error": "Query is required" }))).into_response();
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20).clamp(1, 40);
    let statuses_only = q.get("type").is_none_or(|t| t == "statuses");
    let found = inner
        .tagged
        .iter()
        .map(|(_, s)| s)
        .filter(|s| statuses_only && s["id"].as_str().is_none_or(|id| !inner.deleted_statuses.contains(id)))
        .filter(|s| {
            let text = s["content"].as_str().unwrap_or_default().to_lowercase();
            words.iter().all(|w| text.contains(w.as_str()))
        });
    // Search answers newest first: `min_id` and `max_id` only bound it
    // (Mastodon's search orders by id, descending), unlike the timelines.
    let id_of = |m: &Value| m["id"].as_str().and_then(|i| i.parse::<u64>().ok()).unwrap_or(0);
    let bound = |k: &str| q.get(k).and_then(|v| v.parse::<u64>().ok());
    let (min, max) = (bound("min_id"), bound("max_id"));
    let mut statuses: Vec<Value> = found
        .filter(|s| min.is_none_or(|min| id_of(s) > min) && max.is_none_or(|max| id_of(s) < max))
        .cloned()
        .collect();
    statuses.reverse();
    statuses.truncate(limit);
    Json(json!({ "accounts": [], "statuses": statuses, "hashtags": [] })).into_response()
}

/// A page of `items` (oldest first, numeric ids) as Mastodon pages:
/// `max_id` (older than), `since_id` (the newest after), `min_id` (the
/// page right after), newest first.
fn mastodon_page<'a>(
    items: impl Iterator<Item = &'a Value>,
    get: impl Fn(&str) -> Option<String>,
    limit: usize,
) -> Vec<Value> {
    let id_of = |m: &Value| m["id"].as_str().and_then(|i| i.parse::<u64>().ok()).unwrap_or(0);
    let bound = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
    let (max, since, min) = (bound("max_id"), bound("since_id"), bound("min_id"));
    let mut page: Vec<Value> = items
        .filter(|m| max.is_none_or(|max| id_of(m) < max))
        .filter(|m| since.is_none_or(|since| id_of(m) > since))
        .filter(|m| min.is_none_or(|min| id_of(m) > min))
        .cloned()
        .collect();
    if min.is_some() {
        page.truncate(limit); // the ones right after min_id
        page.reverse();
    } else {
        page.reverse();
        page.truncate(limit);
    }
    page
}

// ----- LinkedIn -------------------------------------------------------------------

async fn li_authorize(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    authorize(&inner, Net::Linkedin, &q)
}

fn li_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": "invalid_request", "error_description": message }))).into_response()
}

async fn li_token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    for required in ["grant_type", "client_id", "client_secret"] {
        if get(required).is_empty() {
            return li_error(
                StatusCode::BAD_REQUEST,
                &format!("A required parameter \"{required}\" is missing"),
            );
        }
    }
    if get("client_id") != LINKEDIN_CLIENT_ID || get("client_secret") != LINKEDIN_CLIENT_SECRET {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client", "error_description": "Client authentication failed" })),
        )
            .into_response();
    }
    let mut inner = inner.lock().unwrap();
    match get("grant_type").as_str() {
        "authorization_code" => match redeem(&mut inner, Net::Linkedin, &form, LINKEDIN_CLIENT_ID) {
            Ok(user) => Json(issue(&mut inner, Net::Linkedin, user, true)).into_response(),
            Err(_) => li_error(
                StatusCode::BAD_REQUEST,
                "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired.",
            ),
        },
        "refresh_token" => {
            inner.refreshes += 1;
            let old = get("refresh_token");
            match take_fault(&mut inner, Net::Linkedin, true) {
                Some(Fault::RefuseRefresh) => {
                    inner.refresh_tokens.insert(old, (false, 0));
                    return li_error(
                        StatusCode::BAD_REQUEST,
                        "The provided authorization grant or refresh token is invalid, expired or revoked",
                    );
                }
                Some(Fault::RefreshUnavailable) => {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Json(json!({ "message": "Service Unavailable", "status": 503 })),
                    )
                        .into_response();
                }
                _ => {}
            }
            let Some(&(true, user)) = inner.refresh_tokens.get(&old) else {
                return li_error(
                    StatusCode::BAD_REQUEST,
                    "The provided authorization grant or refresh token is invalid, expired or revoked",
                );
            };
            // The same refresh token comes back: LinkedIn does not rotate it.
            let mut body = issue(&mut inner, Net::Linkedin, user, false);
            body["refresh_token"] = json!(old);
            body["refresh_token_expires_in"] = json!(31_000_000);
            Json(body).into_response()
        }
        _ => li_error(StatusCode::BAD_REQUEST, "Unsupported grant_type"),
    }
}

async fn li_userinfo(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap) -> Response {
    let inner = inner.lock().unwrap();
    if let Err(answer) = authorised(&inner, Net::Linkedin, &headers) {
        return *answer;
    }
    Json(json!({ "sub": LINKEDIN_MEMBER, "name": "Marketer Test", "given_name": "Marketer", "family_name": "Test",
        "locale": { "country": "US", "language": "en" }, "email_verified": true }))
    .into_response()
}

/// LinkedIn's versioned API wants its two headers on every call.
fn li_versioned(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let version = headers.get("linkedin-version").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if version.len() != 6 || !version.chars().all(|c| c.is_ascii_digit()) {
        return Err(Box::new((StatusCode::BAD_REQUEST, Json(json!({ "status": 400, "code": "VERSION_MISSING",
            "message": "A version must be present. Please specify a version by adding the LinkedIn-Version header." }))).into_response()));
    }
    if headers.get("x-restli-protocol-version").and_then(|v| v.to_str().ok()) != Some("2.0.0") {
        let body = json!({ "status": 400, "code": "ILLEGAL_ARGUMENT",
            "message": "X-Restli-Protocol-Version 2.0.0 is required" });
        return Err(Box::new((StatusCode::BAD_REQUEST, Json(body)).into_response()));
    }
    Ok(())
}

/// A LinkedIn API request's checks, the version headers then the token:
/// the locked state and the member, or the answer to give.
fn li_checked<'a>(
    inner: &'a Mutex<Inner>,
    headers: &HeaderMap,
) -> Result<(std::sync::MutexGuard<'a, Inner>, u32), Box<Response>> {
    li_versioned(headers)?;
    let guard = inner.lock().unwrap();
    let user = authorised(&guard, Net::Linkedin, headers)?;
    Ok((guard, user))
}

/// Little text as LinkedIn shows it: a backslash makes the next character literal.
fn li_unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn li_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "()[]{}<>@|~_*\\".contains(c);
            special.then_some('\\').into_iter().chain(std::iter::once(c))
        })
        .collect()
}

async fn li_create(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Err(answer) = li_versioned(&headers) {
        return *answer;
    }
    for field in ["author", "commentary", "visibility", "distribution", "lifecycleState"] {
        if body.get(field).is_none() {
            return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "status": 422,
                "message": format!("ERROR :: /{field} :: field is required but not found and has no default value") }))).into_response();
        }
    }
    let author = body["author"].as_str().unwrap_or_default();
    let as_page = author == format!("urn:li:organization:{LINKEDIN_ORG_ID}");
    if author != format!("urn:li:person:{LINKEDIN_MEMBER}") && !as_page {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED",
            "message": "Not enough permissions to access: partnerApiPostsExternal.CREATE.20260101" })),
        )
            .into_response();
    }
    let text = li_unescape(body["commentary"].as_str().unwrap_or_default());
    let outcome = create(&inner, Net::Linkedin, bearer(&headers), text, None, None);
    // The page's posts are told apart from the member's (user 1).
    if as_page
        && let Some(post) = inner.lock().unwrap().posts.get_mut(&Net::Linkedin).and_then(|p| p.last_mut())
    {
        post.user = 1;
    }
    answer(outcome).await
}

async fn li_acls(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(answer) = li_checked(&inner, &headers) {
        return *answer;
    }
    if q.get("q").map(String::as_str) != Some("roleAssignee") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "status": 400, "message": "q=roleAssignee is required" })),
        )
            .into_response();
    }
    let me = format!("urn:li:person:{LINKEDIN_MEMBER}");
    Json(json!({
        "elements": [
            { "roleAssignee": me, "state": "APPROVED", "role": "ADMINISTRATOR",
              "organization": format!("urn:li:organization:{LINKEDIN_ORG_ID}") },
            { "roleAssignee": me, "state": "APPROVED", "role": "ANALYST", "organization": "urn:li:organization:999" },
        ],
        "paging": { "count": 100, "start": 0 },
    }))
    .into_response()
}

async fn li_organization(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(answer) = li_checked(&inner, &headers) {
        return *answer;
    }
    if id != LINKEDIN_ORG_ID {
        return (StatusCode::NOT_FOUND, Json(json!({ "status": 404, "message": "Not found" })))
            .into_response();
    }
    Json(json!({ "id": 2_414_183, "localizedName": LINKEDIN_ORG_NAME, "vanityName": "marketer-test-co" }))
        .into_response()
}

async fn li_find(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let inner = match li_checked(&inner, &headers) {
        Ok((inner, _)) => inner,
        Err(answer) => return *answer,
    };
    if q.get("q").map(String::as_str) != Some("author")
        || headers.get("x-restli-method").and_then(|v| v.to_str().ok()) != Some("FINDER")
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "status": 400, "message": "q=author with X-RestLi-Method: FINDER" })),
        )
            .into_response();
    }
    let start: usize = q.get("start").and_then(|v| v.parse().ok()).unwrap_or(0);
    let count: usize = q.get("count").and_then(|v| v.parse().ok()).unwrap_or(10).min(100);
    let author = q.get("author").cloned().unwrap_or_default();
    let whose = if author == format!("urn:li:person:{LINKEDIN_MEMBER}") {
        Some(0)
    } else if author == format!("urn:li:organization:{LINKEDIN_ORG_ID}") {
        Some(1)
    } else {
        None
    };
    let mut posts: Vec<&Post> = inner
        .posts
        .get(&Net::Linkedin)
        .map(|p| p.iter().filter(|p| !p.deleted && Some(p.user) == whose).collect())
        .unwrap_or_default();
    posts.reverse();
    let elements: Vec<Value> = posts
        .iter()
        .skip(start)
        .take(count)
        .map(|p| {
            let at = i64::try_from(p.created_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
            json!({ "id": p.id, "author": author, "commentary": li_escape(&p.text), "visibility": "PUBLIC",
                "lifecycleState": "PUBLISHED", "createdAt": at, "lastModifiedAt": at, "publishedAt": at,
                "distribution": { "feedDistribution": "MAIN_FEED", "thirdPartyDistributionChannels": [] } })
        })
        .collect();
    Json(json!({ "elements": elements, "paging": { "start": start, "count": count } })).into_response()
}

async fn li_delete(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(urn): Path<String>,
) -> Response {
    let mut inner = match li_checked(&inner, &headers) {
        Ok((inner, _)) => inner,
        Err(answer) => return *answer,
    };
    // Idempotent: deleting what is gone is a 204 too.
    if let Some(post) = inner.posts.entry(Net::Linkedin).or_default().iter_mut().find(|p| p.id == urn) {
        post.deleted = true;
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `GET /rest/posts/{urn}`: the post, or 404.
async fn li_post(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(urn): Path<String>,
) -> Response {
    let inner = match li_checked(&inner, &headers) {
        Ok((inner, _)) => inner,
        Err(answer) => return *answer,
    };
    match inner.posts.get(&Net::Linkedin).and_then(|p| p.iter().find(|p| p.id == urn && !p.deleted)) {
        Some(post) => Json(json!({ "id": post.id, "commentary": post.text, "lifecycleState": "PUBLISHED" }))
            .into_response(),
        None => {
            (StatusCode::NOT_FOUND, Json(json!({ "status": 404, "message": "Not Found" }))).into_response()
        }
    }
}

/// `GET /rest/organizationalEntityShareStatistics?q=organizationalEntity&…&shares=List(…)`:
/// each listed post's lifetime statistics; a post that is gone has no element.
async fn li_share_statistics(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = match li_checked(&inner, &headers) {
        Ok((inner, _)) => inner,
        Err(answer) => return *answer,
    };
    let bad = |message: &str| {
        (StatusCode::BAD_REQUEST, Json(json!({ "status": 400, "message": message }))).into_response()
    };
    if q.get("q").map(String::as_str) != Some("organizationalEntity") {
        return bad("q=organizationalEntity is required");
    }
    if q.get("organizationalEntity") != Some(&format!("urn:li:organization:{LINKEDIN_ORG_ID}")) {
        return (StatusCode::FORBIDDEN, Json(json!({ "status": 403, "serviceErrorCode": 100,
            "message": "Not enough permissions to access: organizationalEntityShareStatistics.FINDER-organizationalEntity" })))
            .into_response();
    }
    let (kind, list) = match (q.get("shares"), q.get("ugcPosts")) {
        (Some(list), None) => ("share", list),
        (None, Some(list)) => ("ugcPost", list),
        _ => return bad("shares=List(...) or ugcPosts=List(...)"),
    };
    let Some(urns) = list.strip_prefix("List(").and_then(|l| l.strip_suffix(')')) else {
        return bad("a List(...) of URNs");
    };
    let mut elements = Vec::new();
    for urn in urns.split(',') {
        let c = match metrics_read(&mut inner, Net::Linkedin, urn) {
            Ok(c) => c,
            Err(answer) if answer.status() == StatusCode::NOT_FOUND => continue,
            Err(answer) => return *answer,
        };
        let [impressions, likes, replies, reposts, _, bookmarks] = c;
        let stats = without_dropped(
            &inner,
            Net::Linkedin,
            vec![
                ("impressionCount", impressions.1),
                ("uniqueImpressionsCount", impressions.1 * 7 / 10),
                ("clickCount", bookmarks.1 + likes.1 / 4),
                ("likeCount", likes.1),
                ("commentCount", replies.1),
                ("shareCount", reposts.1),
            ],
        );
        elements.push(json!({
            "organizationalEntity": format!("urn:li:organization:{LINKEDIN_ORG_ID}"),
            kind: urn,
            "totalShareStatistics": stats,
        }));
    }
    Json(json!({ "paging": { "count": 10, "start": 0, "links": [] }, "elements": elements })).into_response()
}

/// `GET /rest/networkSizes/{organisation urn}?edgeType=COMPANY_FOLLOWED_BY_MEMBER`.
async fn li_network_size(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    Path(urn): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = match li_checked(&inner, &headers) {
        Ok((inner, _)) => inner,
        Err(answer) => return *answer,
    };
    if q.get("edgeType").map(String::as_str) != Some("COMPANY_FOLLOWED_BY_MEMBER") {
        return (StatusCode::BAD_REQUEST, Json(json!({ "status": 400, "message": "edgeType is required" })))
            .into_response();
    }
    if urn != format!("urn:li:organization:{LINKEDIN_ORG_ID}") {
        return (StatusCode::FORBIDDEN, Json(json!({ "status": 403, "message": "Not enough permissions" })))
            .into_response();
    }
    Json(json!({ "firstDegreeSize": followers_read(&mut inner, &urn) })).into_response()
}

/// A Bluesky AppView's `app.bsky.actor.getProfile` (public).
async fn bsky_get_profile(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let Some(actor) = q.get("actor").filter(|a| a.starts_with("did:") || a.contains('.')) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "InvalidRequest",
            "message": "Error: Params must have the property \"actor\"" })),
        )
            .into_response();
    };
    let followers = followers_read(&mut inner, actor);
    Json(json!({ "did": actor, "handle": "marketer.test", "followersCount": followers, "followsCount": 20,
        "postsCount": 10, "indexedAt": OffsetDateTime::now_utc().format(&Rfc3339).unwrap() }))
    .into_response()
}

/// The metrics a Meta insights request names that the fake no longer
/// has: Meta then refuses the whole request, listing the valid ones.
fn meta_rejected(inner: &Inner, net: Net, asked: &[&str], valid: &[&'static str]) -> Option<Response> {
    let live: Vec<&str> = valid.iter().copied().filter(|m| !inner.dropped.contains(&(net, *m))).collect();
    let (i, _) = asked.iter().enumerate().find(|(_, m)| !live.contains(m))?;
    Some(graph_error(
        100,
        None,
        &format!("(#100) metric[{i}] must be one of the following values: {}", live.join(", ")),
    ))
}

/// A Page post with `fields=…,insights.metric(…)`: its reaction, comment
/// and share counts and lifetime insights.
fn fb_post_metrics(inner: &mut Inner, token: Option<String>, id: &str, fields: &str) -> Response {
    let page = id.split('_').next().unwrap_or_default().to_owned();
    if let Err(answer) = fb_page_token(inner, token, &page) {
        return *answer;
    }
    let asked: Vec<&str> = fields
        .split_once("insights.metric(")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list.split(',').collect())
        .unwrap_or_default();
    if let Some(refused) = meta_rejected(
        inner,
        Net::Facebook,
        &asked,
        &["post_impressions", "post_impressions_unique", "post_clicks_by_type"],
    ) {
        return refused;
    }
    let c = match metrics_read(inner, Net::Facebook, id) {
        Ok(c) => c,
        Err(answer) => return *answer,
    };
    let [impressions, likes, replies, reposts, _, bookmarks] = c;
    let insight = |name: &str, value: Value| {
        json!({ "name": name, "period": "lifetime", "values": [{ "value": value }],
            "id": format!("{id}/insights/{name}/lifetime") })
    };
    let values = [
        ("post_impressions", json!(impressions.1)),
        ("post_impressions_unique", json!(impressions.1 * 6 / 10)),
        ("post_clicks_by_type", json!({ "link clicks": bookmarks.1 + likes.1 / 3, "other clicks": likes.1 })),
    ];
    let insights: Vec<Value> = values
        .iter()
        .filter(|(name, _)| asked.contains(name))
        .map(|(name, value)| insight(name, value.clone()))
        .collect();
    let mut body = json!({
        "id": id,
        "reactions": { "data": [], "summary": { "total_count": likes.1, "viewer_reaction": "NONE" } },
        "comments": { "data": [], "summary": { "order": "ranked", "total_count": replies.1, "can_comment": true } },
        "insights": { "data": insights },
    });
    // Meta leaves `shares` out of a post nobody has shared.
    if reposts.1 > 0 {
        body["shares"] = json!({ "count": reposts.1 });
    }
    Json(body).into_response()
}

/// `GET /{ig-media-id}/insights?metric=…`: the media's lifetime insights.
async fn ig_insights(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Err(answer) = fb_page_token(&inner, q.get("access_token").cloned(), FACEBOOK_PAGE_ID) {
        return *answer;
    }
    let asked: Vec<&str> = q.get("metric").map(|m| m.split(',').collect()).unwrap_or_default();
    if asked.is_empty() {
        return graph_error(100, None, "(#100) The parameter metric is required");
    }
    let valid =
        ["views", "reach", "likes", "comments", "shares", "saved", "profile_visits", "total_interactions"];
    if let Some(refused) = meta_rejected(&inner, Net::Instagram, &asked, &valid) {
        return refused;
    }
    let c = match metrics_read(&mut inner, Net::Instagram, &id) {
        Ok(c) => c,
        Err(answer) => return *answer,
    };
    let [impressions, likes, replies, reposts, _, bookmarks] = c;
    let values = [
        ("views", impressions.1),
        ("reach", impressions.1 * 6 / 10),
        ("likes", likes.1),
        ("comments", replies.1),
        ("shares", reposts.1),
        ("saved", bookmarks.1),
        ("profile_visits", likes.1 / 5),
        ("total_interactions", likes.1 + replies.1 + reposts.1 + bookmarks.1),
    ];
    let data: Vec<Value> = values
        .iter()
        .filter(|(name, _)| asked.contains(name))
        .map(|(name, value)| {
            json!({ "name": name, "period": "lifetime", "values": [{ "value": value }],
                "title": name, "id": format!("{id}/insights/{name}/lifetime") })
        })
        .collect();
    Json(json!({ "data": data })).into_response()
}

/// A Bluesky AppView's `app.bsky.feed.getPosts` (public, no session):
/// a view with counts for each `uris` (at most 25), growing with each
/// read; the AppView leaves out what it does not know.
async fn bsky_get_posts(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let uris: Vec<&str> = q.iter().filter(|(k, _)| k == "uris").map(|(_, v)| v.as_str()).collect();
    if uris.is_empty() || uris.len() > 25 {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "InvalidRequest",
            "message": "Error: Params must have the property \"uris\" with 1 to 25 items" })),
        )
            .into_response();
    }
    if let Some(status) = inner.metric_faults.pop_front() {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (status, Json(json!({ "error": "InternalServerError", "message": "Internal Server Error" })))
            .into_response();
    }
    let mut posts = Vec::new();
    for uri in uris {
        let Some(did) = uri.strip_prefix("at://").and_then(|rest| rest.split('/').next()) else { continue };
        let n = inner.metric_reads.entry(uri.to_owned()).or_default();
        *n += 1;
        let [_, likes, replies, reposts, quotes, bookmarks] = counts(uri, *n);
        posts.push(json!({
            "uri": uri,
            "cid": "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm",
            "author": { "did": did, "handle": "marketer.test" },
            "record": { "$type": "app.bsky.feed.post", "text": "", "createdAt": OffsetDateTime::now_utc().format(&Rfc3339).unwrap() },
            "indexedAt": OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
            "likeCount": likes.1,
            "replyCount": replies.1,
            "repostCount": reposts.1,
            "quoteCount": quotes.1,
            "bookmarkCount": bookmarks.1,
        }));
    }
    Json(json!({ "posts": posts })).into_response()
}

// ----- Facebook Pages ----------------------------------------------------------------

/// Page `n` a person may post on: 0 is `FACEBOOK_PAGE_ID`.
fn facebook_page(n: u32) -> (String, String) {
    if n == 0 {
        (FACEBOOK_PAGE_ID.to_owned(), "Marketer Test Page".to_owned())
    } else {
        ((101_234_567_890_123u64 + u64::from(n)).to_string(), format!("Marketer Test Page {n}"))
    }
}

async fn fb_authorize(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    authorize(&inner, Net::Facebook, &q)
}

/// User tokens (code exchange, long-lived exchange) are kept apart from Page tokens.
const FACEBOOK_USER: u32 = u32::MAX;

async fn fb_token(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != META_APP_ID || get("client_secret") != META_APP_SECRET {
        return graph_error(101, None, "Error validating application. Invalid application ID or secret.");
    }
    let mut inner = inner.lock().unwrap();
    if get("grant_type") == "fb_exchange_token" {
        if authorised_token(&inner, Net::Facebook, Some(get("fb_exchange_token"))).ok() != Some(FACEBOOK_USER)
        {
            return graph_error(190, None, "Invalid OAuth access token - Cannot parse access token");
        }
        return Json(issue(&mut inner, Net::Facebook, FACEBOOK_USER, false)).into_response();
    }
    match redeem(&mut inner, Net::Facebook, &q, META_APP_ID) {
        Ok(_) => {
            let mut body = issue(&mut inner, Net::Facebook, FACEBOOK_USER, false);
            body["expires_in"] = json!(3600);
            Json(body).into_response()
        }
        Err(_) => graph_error(100, Some(36008), "Invalid verification code format."),
    }
}

async fn fb_pages(
    State(inner): State<Arc<Mutex<Inner>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    match authorised_token(&inner, Net::Facebook, q.get("access_token").cloned()) {
        Ok(FACEBOOK_USER) => {}
        Ok(_) => {
            return graph_error(
                100,
                None,
                "(#100) Tried accessing nonexisting field (accounts) on node type (Page)",
            );
        }
        Err(answer) => return *answer,
    }
    let page = issue(&mut inner, Net::Facebook, 0, false)["access_token"].clone();
    let readonly = issue(&mut inner, Net::Facebook, 99, false)["access_token"].clone();
    Json(json!({
        "data": [
            { "id": FACEBOOK_PAGE_ID, "name": facebook_page(0).1, "access_token": page, "category": "Marketing Agency",
              "tasks": ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"],
              "instagram_business_account": { "id": INSTAGRAM_USER_ID, "username": INSTAGRAM_USERNAME } },
            { "id": FACEBOOK_READONLY_PAGE_ID, "name": "Read-only Page", "access_token": readonly, "category": "Brand",
              "tasks": ["ANALYZE"] },
        ],
        "paging": { "cursors": { "before": "QVFIUk", "after": "QVFIUl" } },
    }))
    .into_response()
}

/// The Page a Page token belongs to, checked against the path's id.
fn fb_page_token(inner: &Inner, token: Option<String>, page: &str) -> Result<u32, Box<Response>> {
    let user = authorised_token(inner, Net::Facebook, token)?;
    if user == FACEBOOK_USER || facebook_page(user).0 != page {
        return Err(Box::new(graph_error(
            200,
            None,
            "(#200) The user hasn't authorized the application to perform this action",
        )));
    }
    Ok(user)
}

async fn fb_create(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(page): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("access_token").cloned();
    if let Err(answer) = fb_page_token(&inner.lock().unwrap(), token.clone(), &page) {
        return *answer;
    }
    let text = form.get("message").cloned().unwrap_or_default();
    if text.trim().is_empty() {
        return graph_error(100, None, "(#100) Requires one of the params: message, link, place");
    }
    answer(create(&inner, Net::Facebook, token, text, None, None)).await
}

async fn fb_feed(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(page): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let user = match fb_page_token(&inner, q.get("access_token").cloned(), &page) {
        Ok(user) => user,
        Err(answer) => return *answer,
    };
    let since = q.get("since").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(25).clamp(1, 100);
    let offset: usize = q
        .get("after")
        .and_then(|a| URL_SAFE_NO_PAD.decode(a).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut posts: Vec<Post> = inner
        .posts
        .get(&Net::Facebook)
        .map(|p| {
            p.iter()
                .filter(|p| !p.deleted && p.user == user && p.created_at.unix_timestamp() >= since)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    posts.reverse();
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000");
    let data: Vec<Value> = posts
        .iter()
        .skip(offset)
        .take(limit)
        .map(|p| json!({ "id": p.id, "message": p.text, "created_time": p.created_at.format(&format).unwrap() }))
        .collect();
    let mut body = json!({ "data": data });
    if offset + limit < posts.len() {
        let after = URL_SAFE_NO_PAD.encode((offset + limit).to_string());
        body["paging"] = json!({ "cursors": { "before": "MA", "after": after },
            "next": format!("https://graph.facebook.com/{META_VERSION}/{page}/feed?limit={limit}&after={after}&access_token=REDACTED") });
    }
    let rate = rate_headers(&mut inner, Net::Facebook, user);
    (rate, Json(body)).into_response()
}

/// `GET /{id}`: a Page, the Instagram account, an Instagram container
/// (`status_code`) or an Instagram media (`permalink`).
async fn fb_object(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let token = q.get("access_token").cloned();
    if let Some(fields) = q.get("fields").filter(|_| id.contains('_')) {
        return fb_post_metrics(&mut inner, token, &id, fields);
    }
    if id == INSTAGRAM_USER_ID || inner.containers.contains_key(&id) || ig_media_exists(&inner, &id) {
        if let Err(answer) = fb_page_token(&inner, token, FACEBOOK_PAGE_ID) {
            return *answer;
        }
        if id == INSTAGRAM_USER_ID {
            let mut user = json!({ "id": id, "username": INSTAGRAM_USERNAME });
            if q.get("fields").is_some_and(|f| f.split(',').any(|f| f == "followers_count")) {
                user["followers_count"] = json!(followers_read(&mut inner, &id));
            }
            return Json(user).into_response();
        }
        if let Some(c) = inner.containers.get(&id) {
            let status = match &c.media {
                Some(_) => "PUBLISHED",
                None if c.created.elapsed() < inner.processing => "IN_PROGRESS",
                None => "FINISHED",
            };
            return Json(json!({ "id": id, "status_code": status })).into_response();
        }
        return Json(json!({ "id": id, "permalink": format!("https://www.instagram.com/p/{id}/") }))
            .into_response();
    }
    match fb_page_token(&inner, token, &id) {
        Ok(user) => {
            let mut page = json!({ "id": id, "name": facebook_page(user).1 });
            if q.get("fields").is_some_and(|f| f.split(',').any(|f| f == "followers_count")) {
                page["followers_count"] = json!(followers_read(&mut inner, &id));
            }
            Json(page).into_response()
        }
        Err(answer) => *answer,
    }
}

async fn fb_delete(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let page = id.split('_').next().unwrap_or_default().to_owned();
    if let Err(answer) = fb_page_token(&inner, q.get("access_token").cloned(), &page) {
        return *answer;
    }
    match inner.posts.entry(Net::Facebook).or_default().iter_mut().find(|p| p.id == id && !p.deleted) {
        Some(post) => {
            post.deleted = true;
            Json(json!({ "success": true })).into_response()
        }
        None => graph_error(
            100,
            Some(33),
            &format!(
                "Unsupported delete request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."
            ),
        ),
    }
}

async fn fb_photo(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(page): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("access_token").cloned();
    if let Err(answer) = fb_page_token(&inner.lock().unwrap(), token.clone(), &page) {
        return *answer;
    }
    if let Err(answer) = fetch_jpeg(form.get("url").map(String::as_str).unwrap_or_default()).await {
        return answer;
    }
    let text = form.get("message").cloned().unwrap_or_default();
    // A photo answers with its own id and the post's.
    match create(&inner, Net::Facebook, token, text, None, None) {
        Outcome::Now(r) if r.status().is_success() => {
            let post = inner.lock().unwrap().posts[&Net::Facebook].last().cloned().unwrap();
            let photo = post.id.split('_').nth(1).unwrap_or_default().to_owned();
            Json(json!({ "id": photo, "post_id": post.id })).into_response()
        }
        other => answer(other).await,
    }
}

// ----- Instagram (through the Page's token) ---------------------------------------------

/// The bytes of a small JPEG, served at `/images/{name}` for Instagram to fetch.
pub const PHOTO: &[u8] = include_bytes!("../fixtures/photo.jpg");

async fn image(Path(name): Path<String>) -> Response {
    if name.ends_with(".jpg") {
        ([(header::CONTENT_TYPE, "image/jpeg")], PHOTO).into_response()
    } else {
        (StatusCode::NOT_FOUND, "no such image").into_response()
    }
}

/// Downloads the image as Meta does ("we cURL media used in publishing
/// attempts"): it must answer, and be a JPEG.
async fn fetch_jpeg(url: &str) -> Result<(), Response> {
    let refused = |why: String| {
        graph_error(9004, Some(2_207_052), &format!("The media could not be fetched from this uri: {why}"))
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let response = client.get(url).send().await.map_err(|e| refused(e.to_string()))?;
    if !response.status().is_success() {
        return Err(refused(format!("HTTP {}", response.status().as_u16())));
    }
    let bytes = response.bytes().await.map_err(|e| refused(e.to_string()))?;
    if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Err(graph_error(36003, Some(2_207_009), "Only JPEG images are supported."));
    }
    Ok(())
}

fn ig_media_exists(inner: &Inner, id: &str) -> bool {
    inner.posts.get(&Net::Instagram).is_some_and(|p| p.iter().any(|p| p.id == id))
}

fn ig_account(inner: &Inner, token: Option<String>, id: &str) -> Result<(), Box<Response>> {
    fb_page_token(inner, token, FACEBOOK_PAGE_ID)?;
    if id != INSTAGRAM_USER_ID {
        return Err(Box::new(graph_error(100, Some(33), &format!("Object with ID '{id}' does not exist"))));
    }
    Ok(())
}

async fn ig_container(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Err(answer) = ig_account(&inner.lock().unwrap(), form.get("access_token").cloned(), &id) {
        return *answer;
    }
    if let Err(answer) = fetch_jpeg(form.get("image_url").map(String::as_str).unwrap_or_default()).await {
        return answer;
    }
    let mut inner = inner.lock().unwrap();
    inner.next_id += 1;
    let container = inner.next_id.to_string();
    let caption = form.get("caption").cloned().unwrap_or_default();
    inner.containers.insert(container.clone(), Container { caption, created: Instant::now(), media: None });
    Json(json!({ "id": container })).into_response()
}

async fn ig_publish(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let token = form.get("access_token").cloned();
    let container = form.get("creation_id").cloned().unwrap_or_default();
    let caption = {
        let inner = inner.lock().unwrap();
        if let Err(answer) = ig_account(&inner, token.clone(), &id) {
            return *answer;
        }
        match inner.containers.get(&container) {
            None => {
                return graph_error(
                    100,
                    None,
                    "(#100) The parameter creation_id is required and must be a container",
                );
            }
            Some(c) if c.media.is_some() => {
                return graph_error(9007, Some(2_207_027), "The media is already published.");
            }
            Some(c) if c.created.elapsed() < inner.processing => {
                return graph_error(
                    9007,
                    Some(2_207_027),
                    "Media ID is not available: the media is not ready for publishing, please wait for a moment",
                );
            }
            Some(c) => c.caption.clone(),
        }
    };
    let outcome = create(&inner, Net::Instagram, token, caption, None, None);
    // The container is published whatever the answer says.
    {
        let mut guard = inner.lock().unwrap();
        let media = guard.posts.get(&Net::Instagram).and_then(|p| p.last()).map(|p| p.id.clone());
        let published = media.filter(|m| !guard.containers.values().any(|c| c.media.as_deref() == Some(m)));
        if let (Some(media), Some(c)) = (published, guard.containers.get_mut(&container)) {
            c.media = Some(media);
        }
    }
    answer(outcome).await
}

async fn ig_media(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = inner.lock().unwrap();
    if let Err(answer) = ig_account(&inner, q.get("access_token").cloned(), &id) {
        return *answer;
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(25).clamp(1, 100);
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000");
    let data: Vec<Value> = inner
        .posts
        .get(&Net::Instagram)
        .map(|p| {
            p.iter()
                .rev()
                .take(limit)
                .map(|p| {
                    json!({ "id": p.id, "caption": p.text, "timestamp": p.created_at.format(&format).unwrap(),
                    "permalink": format!("https://www.instagram.com/p/{}/", p.id) })
                })
                .collect()
        })
        .unwrap_or_default();
    let rate = rate_headers(&mut inner, Net::Instagram, 0);
    (rate, Json(json!({ "data": data }))).into_response()
}

/// Connects an X account through the OAuth flow, as a browser would (the
/// stand-in approves as whoever [`FakeSocial::sign_in_as`] chose): the
/// account as the API gives it.
pub async fn connect_x(api: &crate::Api) -> Value {
    let (status, started) = api
        .call(reqwest::Method::POST, &api.tenant_path("/accounts/connect"), Some(json!({ "network": "x" })))
        .await;
    assert_eq!(status, 200, "{started}");
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let approve = no_redirects.get(started["authorize_url"].as_str().unwrap()).send().await.unwrap();
    let callback = approve.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&api.base_url), "{callback}");
    let response = api.http.get(&callback).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Connects the stand-in's Mastodon account (its instance is `social`)
/// through the OAuth flow, as a browser would: the account as the API
/// gives it.
pub async fn connect_mastodon(api: &crate::Api, social: &FakeSocial) -> Value {
    let body = json!({ "network": "mastodon", "instance": social.url() });
    let (status, started) =
        api.call(reqwest::Method::POST, &api.tenant_path("/accounts/connect"), Some(body)).await;
    assert_eq!(status, 200, "{started}");
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let approve = no_redirects.get(started["authorize_url"].as_str().unwrap()).send().await.unwrap();
    let callback = approve.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&api.base_url), "{callback}");
    let response = api.http.get(&callback).bearer_auth(&api.token).send().await.unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// The reference Bluesky PDS (`tests/bluesky/pds.js`, from the npm package
/// `@atproto/dev-env` that `.ci/run` installs under `target/pds`), with one
/// account and an app password. It stops when dropped.
#[derive(Debug)]
pub struct Pds {
    pub url: String,
    pub handle: String,
    pub did: String,
    pub app_password: String,
    /// With the whole network ([`Pds::start_network`]): the reference
    /// AppView, and a second account that writes to the first.
    pub appview: Option<String>,
    pub fan: Option<Fan>,
    child: std::process::Child,
}

/// A second account on the reference PDS: someone who mentions, answers
/// and quotes the brand's account, then deletes what they wrote.
#[derive(Debug, Clone)]
pub struct Fan {
    pub handle: String,
    pub did: String,
    pub password: String,
}

/// A post's strong reference: its `at://` URI and CID.
#[derive(Debug, Clone)]
pub struct PostRef {
    pub uri: String,
    pub cid: String,
}

impl Pds {
    /// `None` (the test is skipped) when the package is not installed,
    /// unless `MARKETER_REQUIRE_BLUESKY` says it must be (CI).
    pub fn start() -> Option<Self> {
        Self::spawn(false)
    }

    /// The PDS with the reference AppView (PostgreSQL and Redis, both
    /// running here and in CI) and a second account ([`Pds::fan`]).
    pub fn start_network() -> Option<Self> {
        Self::spawn(true)
    }

    fn spawn(appview: bool) -> Option<Self> {
        use std::io::BufRead;
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf();
        let modules = root.join("target/pds/node_modules");
        if !modules.join("@atproto/dev-env").exists() {
            assert!(
                std::env::var_os("MARKETER_REQUIRE_BLUESKY").is_none(),
                "MARKETER_REQUIRE_BLUESKY is set but @atproto/dev-env is not installed under target/pds"
            );
            eprintln!(
                "skipping: @atproto/dev-env is not installed under target/pds (bash .ci/run installs it)"
            );
            return None;
        }
        let mut command = std::process::Command::new("node");
        command.arg(root.join("tests/bluesky/pds.js"));
        if appview {
            command.arg("appview");
        }
        let mut child = command
            .env("NODE_PATH", &modules)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("start node");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("read the PDS's first line");
        let info: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("the PDS did not start ({e}): {line}"));
        let get = |k: &str| info[k].as_str().expect(k).to_owned();
        Some(Self {
            url: get("url"),
            handle: get("handle"),
            did: get("did"),
            app_password: get("app_password"),
            appview: info["appview"].as_str().map(str::to_owned),
            fan: info["fan"]["did"].as_str().map(|did| Fan {
                handle: info["fan"]["handle"].as_str().unwrap_or_default().to_owned(),
                did: did.to_owned(),
                password: info["fan"]["password"].as_str().unwrap_or_default().to_owned(),
            }),
            child,
        })
    }

    fn fan(&self) -> &Fan {
        self.fan.as_ref().expect("a PDS started with start_network")
    }

    async fn fan_token(&self) -> String {
        let fan = self.fan();
        let session: Value = reqwest::Client::new()
            .post(format!("{}/xrpc/com.atproto.server.createSession", self.url))
            .json(&json!({ "identifier": fan.handle, "password": fan.password }))
            .send()
            .await
            .expect("createSession")
            .json()
            .await
            .expect("a session");
        session["accessJwt"].as_str().expect("an access token").to_owned()
    }

    /// The fan posts `text`: naming the brand's account with a mention
    /// facet when the text starts with its handle, answering `reply`
    /// (parent, root) when given.
    pub async fn fan_posts(&self, text: &str, reply: Option<(&PostRef, &PostRef)>) -> PostRef {
        let fan = self.fan();
        let mut record = json!({
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": OffsetDateTime::now_utc().format(&Rfc3339).unwrap(),
        });
        let mention = format!("@{}", self.handle);
        if text.starts_with(&mention) {
            record["facets"] = json!([{
                "index": { "byteStart": 0, "byteEnd": mention.len() },
                "features": [{ "$type": "app.bsky.richtext.facet#mention", "did": self.did }],
            }]);
        }
        if let Some((parent, root)) = reply {
            record["reply"] = json!({
                "parent": { "uri": parent.uri, "cid": parent.cid },
                "root": { "uri": root.uri, "cid": root.cid },
            });
        }
        let created: Value = reqwest::Client::new()
            .post(format!("{}/xrpc/com.atproto.repo.createRecord", self.url))
            .bearer_auth(self.fan_token().await)
            .json(&json!({ "repo": fan.did, "collection": "app.bsky.feed.post", "record": record }))
            .send()
            .await
            .expect("createRecord")
            .json()
            .await
            .expect("createRecord's answer");
        PostRef {
            uri: created["uri"].as_str().unwrap_or_else(|| panic!("no uri: {created}")).to_owned(),
            cid: created["cid"].as_str().expect("a cid").to_owned(),
        }
    }

    /// The fan deletes one of their posts.
    pub async fn fan_deletes(&self, post: &PostRef) {
        let rkey = post.uri.rsplit('/').next().expect("a record key");
        let response = reqwest::Client::new()
            .post(format!("{}/xrpc/com.atproto.repo.deleteRecord", self.url))
            .bearer_auth(self.fan_token().await)
            .json(&json!({ "repo": self.fan().did, "collection": "app.bsky.feed.post", "rkey": rkey }))
            .send()
            .await
            .expect("deleteRecord");
        assert!(response.status().is_success(), "deleteRecord: {}", response.status());
    }

    /// The post records in the account's repository.
    pub async fn posts(&self) -> Vec<Value> {
        let url = format!(
            "{}/xrpc/com.atproto.repo.listRecords?repo={}&collection=app.bsky.feed.post&limit=100",
            self.url, self.did
        );
        let body: Value =
            reqwest::get(url).await.expect("listRecords").json().await.expect("listRecords answer");
        body["records"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Pds {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A reverse proxy that can hold back the answer of the next request
/// whose path contains a string: the request reaches the server (which
/// acts on it), and the client hears nothing until it gives up.
#[derive(Debug)]
pub struct LosingProxy {
    pub addr: SocketAddr,
    armed: Arc<Mutex<Option<(String, Duration)>>>,
    stop: CancellationToken,
}

impl Drop for LosingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl LosingProxy {
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("local address");
        let armed: Arc<Mutex<Option<(String, Duration)>>> = Arc::default();
        let state = (target.trim_end_matches('/').to_owned(), armed.clone(), reqwest::Client::new());
        let router = axum::Router::new().fallback(forward).with_state(Arc::new(state));
        let stop = CancellationToken::new();
        let cancelled = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(cancelled.cancelled_owned()).await;
        });
        Self { addr, armed, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request whose path contains `path` is answered only after `delay`.
    pub fn hold_next(&self, path: &str, delay: Duration) {
        *self.armed.lock().unwrap() = Some((path.to_owned(), delay));
    }
}

type ProxyState = Arc<(String, Arc<Mutex<Option<(String, Duration)>>>, reqwest::Client)>;

async fn forward(State(state): State<ProxyState>, request: axum::extract::Request) -> Response {
    let (target, armed, client) = (&state.0, &state.1, &state.2);
    let path = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let hold = {
        let mut armed = armed.lock().unwrap();
        match armed.as_ref() {
            Some((needle, delay)) if path.contains(needle.as_str()) => {
                let delay = *delay;
                *armed = None;
                Some(delay)
            }
            _ => None,
        }
    };
    let method = request.method().clone();
    let mut headers = request.headers().clone();
    headers.remove(header::HOST);
    let body = axum::body::to_bytes(request.into_body(), 10 * 1024 * 1024).await.unwrap_or_default();
    let upstream = client.request(method, format!("{target}{path}")).headers(headers).body(body).send().await;
    let response = match upstream {
        Ok(r) => {
            let status = r.status();
            let headers = r.headers().clone();
            let bytes = r.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            for (k, v) in &headers {
                if k != header::TRANSFER_ENCODING && k != header::CONTENT_LENGTH {
                    response.headers_mut().insert(k, v.clone());
                }
            }
            response
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    if let Some(delay) = hold {
        tokio::time::sleep(delay).await;
    }
    response
}
