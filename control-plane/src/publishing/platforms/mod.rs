//! The platforms' APIs, as the engine needs them: publish a post, find a
//! post whose publish had an unknown outcome, delete one, read a published
//! post's metrics (for analytics), refresh a token, check an account's
//! credentials, and the OAuth steps of connecting.
//!
//! Every answer is classified into what the engine must do next (created,
//! refused for good, token expired, rate limited until T, not sent,
//! outcome unknown), so no retry decision is made here: a publishing
//! request is never retried inside the HTTP layer.

pub mod bluesky;
pub mod linkedin;
pub mod mastodon;
pub mod meta;
pub mod x;

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::SecretString;

use crate::domain::Timestamp;
use crate::store::{Network, SocialAccount, SocialPost};

/// Whether the inbox reads `network`: its mentions, replies to the
/// account's posts and listening searches (hashtags and keywords) (and answers its items).
pub fn reads_inbox(network: Network) -> bool {
    matches!(network, Network::Mastodon | Network::Bluesky | Network::X)
}

/// What a listening query looks for.
#[derive(Debug, Clone, Copy)]
pub enum Search<'a> {
    /// A hashtag, without `#`.
    Hashtag(&'a str),
    /// A word or phrase, in any case (`service::inbox::says_keyword`).
    Keyword(&'a str),
}

impl<'a> Search<'a> {
    /// A stored query's search: its kind (`hashtag` or `keyword`) and text.
    pub fn of(kind: &str, query: &'a str) -> Self {
        if kind == crate::service::inbox::KEYWORD { Search::Keyword(query) } else { Search::Hashtag(query) }
    }

    /// Whether a found post's text is what the query asks for: the
    /// platforms' full-text search also finds near matches (stems, the
    /// words apart), which are left out.
    pub fn finds(&self, text: &str) -> bool {
        match self {
            Search::Hashtag(_) => true,
            Search::Keyword(word) => crate::service::inbox::says_keyword(text, word),
        }
    }
}

/// The order of two ids that are numbers written as strings (Mastodon's
/// and X's, which grow with time): a longer one is newer, then the
/// greater.
pub(crate) fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A batch read's answer as [`Fetched::Present`]: the `field` (id or URI)
/// of each entry found that was among those `asked` about.
fn present_among(found: &[serde_json::Value], field: &str, asked: &[String]) -> Fetched {
    Fetched::Present(
        found
            .iter()
            .filter_map(|entry| entry[field].as_str())
            .filter(|id| asked.iter().any(|a| a == id))
            .map(str::to_owned)
            .collect(),
    )
}

/// Inbox items asked about in one [`Platforms::still_there`] call
/// (Mastodon's and Bluesky's batch reads both take 20).
pub const STILL_THERE_BATCH: usize = 20;

/// Where the platforms are and Marketer's app credentials on them (server
/// configuration; never shown).
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    /// This server's public URL, for OAuth redirect URIs.
    pub public_url: String,
    pub x_client_id: Option<String>,
    pub x_client_secret: Option<SecretString>,
    pub x_api_url: String,
    pub x_authorize_url: String,
    pub linkedin_client_id: Option<String>,
    pub linkedin_client_secret: Option<SecretString>,
    /// LinkedIn's API (`/rest/…`, `/v2/userinfo`).
    pub linkedin_api_url: String,
    /// LinkedIn's OAuth host (`/oauth/v2/authorization`, `/oauth/v2/accessToken`).
    pub linkedin_oauth_url: String,
    /// The LinkedIn app has the Community Management API: connecting a
    /// member also connects the organisation pages they may post for.
    pub linkedin_organizations: bool,
    /// Marketer's Meta app (Facebook Login).
    pub meta_app_id: Option<String>,
    pub meta_app_secret: Option<SecretString>,
    /// The Graph API with its version, e.g. `https://graph.facebook.com/v25.0`.
    pub meta_graph_url: String,
    /// Facebook Login's dialog.
    pub meta_authorize_url: String,
    /// A public Bluesky AppView to read posts' counts from (e.g.
    /// `https://public.api.bsky.app`); without one they are read through
    /// the account's PDS.
    pub bluesky_appview_url: Option<String>,
    /// Accept `http://` Mastodon instances (tests only).
    pub allow_insecure_instances: bool,
    /// Time limit of one request to a platform.
    pub request_timeout: Duration,
}

impl Default for PlatformSettings {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            x_client_id: None,
            x_client_secret: None,
            x_api_url: "https://api.x.com".into(),
            x_authorize_url: "https://x.com/i/oauth2/authorize".into(),
            linkedin_client_id: None,
            linkedin_client_secret: None,
            linkedin_api_url: "https://api.linkedin.com".into(),
            linkedin_oauth_url: "https://www.linkedin.com".into(),
            linkedin_organizations: false,
            meta_app_id: None,
            meta_app_secret: None,
            meta_graph_url: "https://graph.facebook.com/v25.0".into(),
            meta_authorize_url: "https://www.facebook.com/v25.0/dialog/oauth".into(),
            bluesky_appview_url: None,
            allow_insecure_instances: false,
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl PlatformSettings {
    pub fn redirect_uri(&self, network: Network) -> String {
        format!("{}/oauth/callback/{network}", self.public_url.trim_end_matches('/'))
    }
}

/// What one request to a platform was, for the post's history.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    pub request_id: Option<String>,
    pub http_status: Option<u16>,
    /// The answer, shortened, tokens removed.
    pub detail: String,
    /// The rate-limit window the answer reported: calls left, and when
    /// the window resets.
    pub window: (Option<i64>, Option<Timestamp>),
    /// A limit on Marketer's app as a whole that the answer reported:
    /// until when, and what it is.
    pub app_limit: Option<(Timestamp, String)>,
}

/// How a publish request ended.
#[derive(Debug, Clone)]
pub enum Sent {
    Created {
        id: String,
        url: Option<String>,
    },
    /// Refused for a reason a person must fix (the text, a permission).
    Refused {
        error: String,
        hint: String,
    },
    /// The access token expired: refresh, then send again (nothing was created).
    TokenExpired,
    /// The credentials are revoked or invalid for good.
    Unauthorized {
        reason: String,
    },
    RateLimited {
        until: Timestamp,
        note: String,
    },
    /// Never reached the platform (connection refused, DNS): safe to send again.
    NotSent {
        reason: String,
    },
    /// Maybe created (timeout, reset, 5xx after sending).
    Unknown {
        reason: String,
    },
    /// A step the platform needs before the post was made (Instagram's
    /// media container): record it on the post, then send again.
    Prepared {
        container: String,
    },
    /// The platform is still processing the post's media: nothing was
    /// published; try again then.
    NotReady {
        until: Timestamp,
        note: String,
    },
}

/// What looking for a post with an unknown outcome found.
#[derive(Debug, Clone)]
pub enum Found {
    Present { id: String, url: Option<String> },
    Absent,
    RateLimited { until: Timestamp, note: String },
    TokenExpired,
    Unknown { reason: String },
}

/// What reading a published post's metrics found.
#[derive(Debug, Clone)]
pub enum Fetched {
    /// The reading, and the platform's answer as it came (for what the
    /// schema does not name).
    Metrics {
        metrics: crate::store::Metrics,
        raw: String,
    },
    /// An account's followers.
    Followers(i64),
    /// Inbox items, the cursor to read on from, and whether more wait
    /// right after this page.
    Items {
        items: Vec<crate::store::CollectedItem>,
        cursor: Option<String>,
        more: bool,
    },
    /// Which of the items asked about the platform still shows (the
    /// rest were deleted, or are no longer visible to the account).
    Present(Vec<String>),
    /// The post is gone from the platform: collection ends.
    Gone,
    RateLimited {
        until: Timestamp,
        note: String,
    },
    TokenExpired,
    /// Any other failure: tried again later, and shown on the post.
    Failed {
        reason: String,
    },
    /// Refused for a reason that will not pass by itself (a permission the
    /// account's token lacks): tried again a day later, and shown.
    Refused {
        reason: String,
    },
}

/// How a token refresh ended.
#[derive(Debug)]
pub enum Refreshed {
    Tokens { access: SecretString, refresh: Option<SecretString>, expires_in: Option<i64> },
    Refused { reason: String },
    Retry { reason: String },
}

/// A health check's answer.
#[derive(Debug, Clone)]
pub enum Health {
    Ok,
    TokenExpired,
    Unauthorized { reason: String },
    RateLimited { until: Timestamp, note: String },
    Unreachable { reason: String },
}

/// The account on the platform, after connecting.
#[derive(Debug, Clone)]
pub struct Profile {
    pub external_id: String,
    pub handle: String,
    pub display_name: String,
    pub profile_url: Option<String>,
}

/// Tokens from an authorisation code.
#[derive(Debug)]
pub struct Granted {
    pub access: SecretString,
    pub refresh: Option<SecretString>,
    pub expires_in: Option<i64>,
}

/// The HTTP client every platform call goes through.
#[derive(Debug, Clone)]
pub struct Platforms {
    pub settings: PlatformSettings,
    http: reqwest::Client,
}

impl Platforms {
    pub fn new(settings: PlatformSettings) -> anyhow::Result<Self> {
        // Proxies from HTTPS_PROXY/NO_PROXY apply; redirects are not
        // followed (an API answering with one is an error to show).
        let http = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Marketer/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { settings, http })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether a network supports refreshing tokens here.
    pub fn refreshes(network: Network) -> bool {
        matches!(network, Network::X | Network::Linkedin | Network::Bluesky)
    }

    pub async fn publish(
        &self,
        account: &SocialAccount,
        token: &SecretString,
        post: &SocialPost,
    ) -> (Sent, CallRecord) {
        match account.network {
            Network::X => x::publish(self, token, post).await,
            Network::Mastodon => mastodon::publish(self, account, token, post).await,
            Network::Bluesky => bluesky::publish(self, account, token, post).await,
            Network::Linkedin => linkedin::publish(self, account, token, post).await,
            Network::Facebook => meta::publish(self, account, token, post).await,
            Network::Instagram => meta::ig_publish(self, account, token, post).await,
        }
    }

    pub async fn find(
        &self,
        account: &SocialAccount,
        token: &SecretString,
        post: &SocialPost,
    ) -> (Found, CallRecord) {
        match account.network {
            Network::X => x::find(self, account, token, post).await,
            Network::Mastodon => mastodon::find(self, account, token, post).await,
            Network::Bluesky => bluesky::find(self, account, post).await,
            Network::Linkedin => linkedin::find(self, account, token, post).await,
            Network::Facebook => meta::find(self, account, token, post).await,
            Network::Instagram => meta::ig_find(self, account, token, post).await,
        }
    }

    pub async fn delete(
        &self,
        account: &SocialAccount,
        token: &SecretString,
        id: &str,
    ) -> Result<CallRecord, String> {
        match account.network {
            Network::X => x::delete(self, token, id).await,
            Network::Mastodon => mastodon::delete(self, account, token, id).await,
            Network::Bluesky => bluesky::delete(self, account, token, id).await,
            Network::Linkedin => linkedin::delete(self, token, id).await,
            Network::Facebook => meta::delete(self, token, id).await,
            Network::Instagram => Err(
                "Instagram does not let apps delete posts: delete it in the Instagram app; it stays in Marketer's history"
                    .into(),
            ),
        }
    }

    /// A published post's metrics; `None` for an account whose posts'
    /// metrics the platform does not give (a LinkedIn member's).
    pub async fn metrics(
        &self,
        account: &SocialAccount,
        token: &SecretString,
        platform_post_id: &str,
    ) -> Option<(Fetched, CallRecord)> {
        match account.network {
            Network::X => Some(x::metrics(self, token, platform_post_id).await),
            Network::Mastodon => Some(mastodon::metrics(self, account, token, platform_post_id).await),
            Network::Bluesky => Some(bluesky::metrics(self, account, token, platform_post_id).await),
            Network::Linkedin => linkedin::metrics(self, account, token, platform_post_id).await,
            Network::Facebook => Some(meta::metrics(self, token, platform_post_id).await),
            Network::Instagram => Some(meta::ig_metrics(self, token, platform_post_id).await),
        }
    }

    /// An account's followers; `None` where the platform does not give
    /// them to apps (a LinkedIn member's).
    pub async fn followers(
        &self,
        account: &SocialAccount,
        token: &SecretString,
    ) -> Option<(Fetched, CallRecord)> {
        match account.network {
            Network::X => Some(x::followers(self, token).await),
            Network::Mastodon => Some(mastodon::followers(self, account, token).await),
            Network::Bluesky => Some(bluesky::followers(self, account, token).await),
            Network::Linkedin => linkedin::followers(self, account, token).await,
            Network::Facebook => Some(meta::followers(self, account, token, "Facebook").await),
            Network::Instagram => Some(meta::followers(self, account, token, "Instagram").await),
        }
    }

    /// New mentions of the account and replies to its posts since
    /// `cursor`; `None` where the inbox does not read the platform yet.
    pub async fn inbox(
        &self,
        account: &SocialAccount,
        token: &SecretString,
        cursor: Option<&str>,
    ) -> Option<(Fetched, CallRecord)> {
        match account.network {
            Network::Mastodon => Some(mastodon::inbox(self, account, token, cursor).await),
            Network::Bluesky => Some(bluesky::inbox(self, account, token, cursor).await),
            Network::X => Some(x::inbox(self, account, token, cursor).await),
            Network::Linkedin | Network::Facebook | Network::Instagram => None,
        }
    }

    /// Which of `ids` (inbox items, at most [`STILL_THERE_BATCH`]) the
    /// platform still shows; `None` where the inbox does not read it.
    pub async fn still_there(
        &self,
        account: &SocialAccount,
        token: &SecretString,
        ids: &[String],
    ) -> Option<(Fetched, CallRecord)> {
        match account.network {
            Network::Mastodon => Some(mastodon::still_there(self, account, token, ids).await),
            Network::Bluesky => Some(bluesky::still_there(self, account, token, ids).await),
            Network::X => Some(x::still_there(self, token, ids).await),
            Network::Linkedin | Network::Facebook | Network::Instagram => None,
        }
    }

    /// Public posts a listening query finds since `cursor`, read through
    /// the account (its own posts left out); `None` where listening does
    /// not read the platform yet.
    pub async fn listen(
        &self,
        account: &SocialAccount,
        token: &SecretString,
        search: Search<'_>,
        cursor: Option<&str>,
    ) -> Option<(Fetched, CallRecord)> {
        match account.network {
            Network::Mastodon => Some(mastodon::listen(self, account, token, search, cursor).await),
            Network::Bluesky => Some(bluesky::listen(self, account, token, search, cursor).await),
            Network::X => Some(x::listen(self, account, token, search, cursor).await),
            Network::Linkedin | Network::Facebook | Network::Instagram => None,
        }
    }

    pub async fn refresh(&self, account: &SocialAccount, refresh: &SecretString) -> Refreshed {
        match account.network {
            Network::X => x::refresh(self, refresh).await,
            Network::Bluesky => bluesky::refresh(self, account, refresh).await,
            Network::Linkedin => linkedin::refresh(self, refresh).await,
            other => Refreshed::Refused {
                reason: format!("{other} tokens cannot be refreshed; connect the account again"),
            },
        }
    }

    pub async fn check(&self, account: &SocialAccount, token: &SecretString) -> Health {
        match account.network {
            Network::X => x::check(self, token).await,
            Network::Mastodon => mastodon::check(self, account, token).await,
            Network::Bluesky => bluesky::check(self, account, token).await,
            Network::Linkedin => linkedin::check(self, token).await,
            Network::Facebook => meta::check(self, account, token).await,
            Network::Instagram => meta::ig_check(self, account, token).await,
        }
    }
}

/// The rate-limit window an answer reports: remaining calls and the reset,
/// from `x-rate-limit-*` (X: epoch seconds), `X-RateLimit-*` (Mastodon:
/// an ISO timestamp, or epoch seconds elsewhere), `RateLimit-Reset`
/// (seconds from now) or `Retry-After`; Meta's usage headers at 100 %
/// count as no calls left until its estimated time to regain access.
pub fn rate_window(headers: &HeaderMap, now: Timestamp) -> (Option<i64>, Option<Timestamp>) {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let remaining = get("x-rate-limit-remaining")
        .or_else(|| get("x-ratelimit-remaining"))
        .or_else(|| get("ratelimit-remaining"))
        .and_then(|v| v.parse::<i64>().ok());
    let from_seconds = |secs: i64| {
        Timestamp::from_datetime(now.as_datetime() + time::Duration::seconds(secs.clamp(0, 7 * 86_400)))
    };
    let reset = get("x-rate-limit-reset")
        .or_else(|| get("x-ratelimit-reset"))
        .and_then(|v| {
            if let Ok(epoch) = v.parse::<i64>() {
                // Epoch seconds, or (small numbers) seconds from now.
                if epoch > 1_000_000_000 {
                    time::OffsetDateTime::from_unix_timestamp(epoch).ok().map(Timestamp::from_datetime)
                } else {
                    Some(from_seconds(epoch))
                }
            } else {
                Timestamp::parse_rfc3339(v).ok()
            }
        })
        // RateLimit-Reset: seconds from now in the IETF draft, a Unix time
        // on Bluesky's PDS; told apart by size.
        .or_else(|| {
            get("ratelimit-reset").and_then(|v| v.parse::<i64>().ok()).and_then(|v| {
                if v > 1_000_000_000 {
                    time::OffsetDateTime::from_unix_timestamp(v).ok().map(Timestamp::from_datetime)
                } else {
                    Some(from_seconds(v))
                }
            })
        })
        .or_else(|| get("retry-after").and_then(|v| v.parse::<i64>().ok()).map(from_seconds));
    if remaining.is_none()
        && let (Some(percent), _) = meta::usage(headers)
        && percent >= 100
    {
        return (Some(0), reset.or_else(|| Some(meta::regain_access(headers, now))));
    }
    (remaining, reset)
}

/// A limit on Marketer's app as a whole, from an answer: X's 24-hour app
/// limit (`x-app-limit-24hour-*`) or usage cap (a `usage-capped` problem),
/// Meta's `X-App-Usage` at 100 % or its application limit (code 4).
pub fn app_limit(headers: &HeaderMap, body: &str, now: Timestamp) -> Option<(Timestamp, String)> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let after = |d: time::Duration| Timestamp::from_datetime(now.as_datetime() + d);
    if get("x-app-limit-24hour-remaining").and_then(|v| v.parse::<i64>().ok()).is_some_and(|n| n <= 0) {
        let reset = get("x-app-limit-24hour-reset")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(|e| time::OffsetDateTime::from_unix_timestamp(e).ok())
            .map(Timestamp::from_datetime)
            .filter(|r| *r > now)
            .unwrap_or_else(|| after(time::Duration::hours(24)));
        return Some((
            reset.min(after(time::Duration::hours(24))),
            "the 24-hour limit for Marketer's app is spent".into(),
        ));
    }
    if body.contains("/problems/usage-capped") {
        return Some((after(time::Duration::hours(1)), "Marketer's app reached its usage cap".into()));
    }
    let meta_app = headers
        .get("x-app-usage")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
        .is_some_and(|u| {
            ["call_count", "total_time", "total_cputime"]
                .iter()
                .any(|f| u[*f].as_i64().is_some_and(|n| n >= 100))
        });
    let meta_code_4 = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v["error"]["code"].as_i64() == Some(4));
    if meta_app || meta_code_4 {
        return Some((
            after(time::Duration::hours(1)),
            "Marketer's app reached Meta's hourly call limit".into(),
        ));
    }
    None
}

/// A 429's end: the reported reset, or a minute when none was given.
pub(crate) fn limited_until(headers: &HeaderMap, now: Timestamp) -> Timestamp {
    let (_, reset) = rate_window(headers, now);
    let floor = Timestamp::from_datetime(now.as_datetime() + time::Duration::seconds(1));
    reset
        .filter(|r| *r > now)
        .unwrap_or_else(|| Timestamp::from_datetime(now.as_datetime() + time::Duration::minutes(1)))
        .max(floor)
}

/// The request id a platform gave, if any.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-request-id", "x-transaction-id", "x-li-uuid", "x-fb-trace-id", "x-response-time-id"]
        .iter()
        .find_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()))
        .map(|v| v.chars().take(128).collect())
}

/// An answer's body for the history: at most 2,000 characters, with the
/// values of any field that names a token or secret removed.
pub(crate) fn redacted(body: &str) -> String {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut value) => {
            scrub(&mut value);
            value.to_string()
        }
        Err(_) => body.to_owned(),
    };
    text.chars().take(2000).collect()
}

fn scrub(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                let k = key.to_ascii_lowercase();
                if k.contains("token") || k.contains("secret") || k.contains("jwt") || k == "code" {
                    *v = serde_json::Value::String("[removed]".into());
                } else {
                    scrub(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// An OAuth 2.0 token answer's tokens. An empty refresh token is no
/// refresh token: never stored over a good one.
pub(crate) fn oauth_tokens(body: &serde_json::Value) -> Option<Granted> {
    let access = body["access_token"].as_str().filter(|t| !t.is_empty())?;
    Some(Granted {
        access: SecretString::from(access.to_owned()),
        refresh: body["refresh_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .map(|t| SecretString::from(t.to_owned())),
        expires_in: body["expires_in"].as_i64(),
    })
}

/// A refresh at an OAuth 2.0 token endpoint, as the engine needs it: new
/// tokens; a passing failure (unreachable, 5xx, 429) to try again later;
/// anything else (400/401: the grant or the app) refused.
pub(crate) fn oauth_refreshed(answer: Result<Answer, String>, whom: &str) -> Refreshed {
    let answer = match answer {
        Ok(a) => a,
        Err(reason) => return Refreshed::Retry { reason },
    };
    if answer.status.is_success() {
        return match oauth_tokens(&answer.json()) {
            Some(t) => Refreshed::Tokens { access: t.access, refresh: t.refresh, expires_in: t.expires_in },
            None => {
                Refreshed::Retry { reason: format!("{whom} answered the refresh without an access token") }
            }
        };
    }
    if answer.status.is_server_error() || answer.status == StatusCode::TOO_MANY_REQUESTS {
        return Refreshed::Retry {
            reason: format!("{whom} answered {}: {}", answer.status.as_u16(), answer.message()),
        };
    }
    Refreshed::Refused { reason: format!("{whom} refused to renew access: {}", answer.message()) }
}

/// Sorts a transport error: a request that never reached the platform can
/// be sent again; one that may have reached it cannot.
pub(crate) fn transport(e: &reqwest::Error) -> Sent {
    if e.is_connect() {
        Sent::NotSent { reason: format!("could not connect: {e}") }
    } else if e.is_timeout() {
        Sent::Unknown { reason: "no answer within the time limit; the post may have been created".into() }
    } else {
        Sent::Unknown { reason: format!("the connection failed mid-request: {e}") }
    }
}

/// Sorts a metrics read's answer: the object to read the metrics from, or
/// what the engine must do. `whom` names the platform in messages.
pub(crate) fn metrics_answer(
    answer: Result<Answer, String>,
    whom: &str,
) -> Result<(serde_json::Value, CallRecord), Box<(Fetched, CallRecord)>> {
    let answer = match answer {
        Ok(a) => a,
        Err(reason) => return Err(Box::new((Fetched::Failed { reason }, CallRecord::default()))),
    };
    let record = answer.record();
    let status = answer.status;
    if status.is_success() {
        let body = answer.json();
        return if body.is_object() {
            Ok((body, record))
        } else {
            Err(Box::new((
                Fetched::Failed { reason: format!("{whom} answered with no JSON object") },
                record,
            )))
        };
    }
    let fetched = match status {
        StatusCode::NOT_FOUND | StatusCode::GONE => Fetched::Gone,
        StatusCode::UNAUTHORIZED => Fetched::TokenExpired,
        StatusCode::TOO_MANY_REQUESTS => Fetched::RateLimited {
            until: limited_until(&answer.headers, Timestamp::now()),
            note: format!("{whom} rate limit"),
        },
        _ => Fetched::Failed { reason: format!("{whom} answered {}: {}", status.as_u16(), answer.message()) },
    };
    Err(Box::new((fetched, record)))
}

/// A count in a JSON object, if the platform gave one (a missing or
/// non-numeric field is absent, never zero).
pub(crate) fn count(object: &serde_json::Value, field: &str) -> Option<i64> {
    object.get(field).and_then(serde_json::Value::as_i64).filter(|n| *n >= 0)
}

/// An account's followers at `pointer` (a JSON pointer) in a read's
/// answer, or why there are none.
pub(crate) fn followers_at(
    read: Result<(serde_json::Value, CallRecord), Box<(Fetched, CallRecord)>>,
    pointer: &str,
    whom: &str,
) -> (Fetched, CallRecord) {
    let (body, record) = match read {
        Ok(found) => found,
        Err(failed) => return *failed,
    };
    match body.pointer(pointer).and_then(serde_json::Value::as_i64).filter(|n| *n >= 0) {
        Some(n) => (Fetched::Followers(n), record),
        None => {
            let field = pointer.rsplit('/').next().unwrap_or(pointer);
            (Fetched::Failed { reason: format!("{whom} answered without {field}") }, record)
        }
    }
}

/// The answer of a request that was sent, read to the end.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub async fn read(response: reqwest::Response) -> Result<Self, reqwest::Error> {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await?;
        Ok(Self { status, headers, body })
    }

    /// Sends a request that is safe to repeat (a read, a refresh, a check)
    /// and reads its answer; the error says what failed, naming the
    /// platform as `whom`.
    pub async fn fetch(request: reqwest::RequestBuilder, whom: &str) -> Result<Self, String> {
        let response = request.send().await.map_err(|e| format!("could not reach {whom}: {e}"))?;
        Self::read(response).await.map_err(|e| format!("the answer from {whom} was cut off: {e}"))
    }

    /// Sends a request that changes something on the platform (a publish)
    /// exactly once: never retried; a failure says whether it may have
    /// reached the platform.
    pub async fn send_once(request: reqwest::RequestBuilder) -> Result<Self, (Sent, CallRecord)> {
        match request.send().await {
            Ok(response) => Self::read(response).await.map_err(|e| {
                (Sent::Unknown { reason: format!("the answer was cut off: {e}") }, CallRecord::default())
            }),
            Err(e) => Err((transport(&e), CallRecord { detail: e.to_string(), ..CallRecord::default() })),
        }
    }

    pub fn record(&self) -> CallRecord {
        CallRecord {
            request_id: request_id(&self.headers),
            http_status: Some(self.status.as_u16()),
            detail: redacted(&self.body),
            window: rate_window(&self.headers, Timestamp::now()),
            app_limit: app_limit(&self.headers, &self.body, Timestamp::now()),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The platform's error message in its own words.
    pub fn message(&self) -> String {
        let v = self.json();
        let pick = |k: &str| v.get(k).and_then(|m| m.as_str()).map(str::to_owned);
        pick("detail")
            .or_else(|| pick("error_description"))
            .or_else(|| pick("message"))
            .or_else(|| pick("error"))
            .or_else(|| {
                v.get("errors")
                    .and_then(|e| e.get(0))
                    .and_then(|e| e.get("message").or_else(|| e.get("detail")))
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| format!("HTTP {}", self.status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_windows_read_each_platforms_headers() {
        let now = Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-remaining", "0".parse().unwrap());
        h.insert("x-rate-limit-reset", "1798761660".parse().unwrap());
        assert_eq!(
            rate_window(&h, now),
            (Some(0), Some(Timestamp::parse_rfc3339("2027-01-01T00:01:00Z").unwrap()))
        );
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", "2027-01-01T00:05:00.000000Z".parse().unwrap());
        assert_eq!(rate_window(&h, now).1, Some(Timestamp::parse_rfc3339("2027-01-01T00:05:00Z").unwrap()));
        let mut h = HeaderMap::new();
        h.insert("retry-after", "30".parse().unwrap());
        assert_eq!(limited_until(&h, now), Timestamp::parse_rfc3339("2027-01-01T00:00:30Z").unwrap());
        assert_eq!(
            limited_until(&HeaderMap::new(), now),
            Timestamp::parse_rfc3339("2027-01-01T00:01:00Z").unwrap()
        );
    }

    #[test]
    fn app_wide_limits_are_read_from_x_and_meta() {
        let now = Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-app-limit-24hour-remaining", "0".parse().unwrap());
        h.insert("x-app-limit-24hour-reset", "1798765200".parse().unwrap());
        assert_eq!(
            app_limit(&h, "", now).unwrap().0,
            Timestamp::parse_rfc3339("2027-01-01T01:00:00Z").unwrap()
        );
        h.insert("x-app-limit-24hour-remaining", "12".parse().unwrap());
        assert!(app_limit(&h, "", now).is_none(), "calls left");
        let capped =
            r#"{"title":"UsageCapExceeded","type":"https://api.twitter.com/2/problems/usage-capped"}"#;
        assert!(app_limit(&HeaderMap::new(), capped, now).is_some());
        let mut h = HeaderMap::new();
        h.insert("x-app-usage", r#"{"call_count":100,"total_time":20,"total_cputime":5}"#.parse().unwrap());
        assert_eq!(
            app_limit(&h, "", now).unwrap().0,
            Timestamp::parse_rfc3339("2027-01-01T01:00:00Z").unwrap()
        );
        let code_4 = r#"{"error":{"message":"(#4) Application request limit reached","code":4}}"#;
        assert!(app_limit(&HeaderMap::new(), code_4, now).is_some());
        assert!(app_limit(&HeaderMap::new(), r#"{"error":{"code":190}}"#, now).is_none());
    }

    #[test]
    fn histories_never_keep_tokens() {
        let body = r#"{"access_token":"abc","data":{"refresh_token":"def","id":"1"}}"#;
        let out = redacted(body);
        assert!(!out.contains("abc") && !out.contains("def"), "{out}");
        assert!(out.contains("\"id\":\"1\""));
    }
}
