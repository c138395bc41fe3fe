//! Meta's Graph API for Facebook Pages and Instagram professional accounts
//! (`../shared/reference/social/meta-facebook-instagram.md`): Facebook
//! Login (authorization code with `state` and PKCE), the short-lived user
//! token exchanged for a long-lived one, then one account per Page the
//! person granted, each with its own Page token (Page tokens from a
//! long-lived user token do not expire, so there is no refresh: an
//! invalid token means connecting again). `POST /{page-id}/feed` publishes;
//! the Page's feed finds a post after an unknown outcome (Meta has no
//! idempotency key); `DELETE /{post-id}` deletes. A post with an image
//! goes to `/{page-id}/photos`.
//!
//! Instagram (through Facebook Login: the Page's linked professional
//! account, with the Page's token) publishes in two steps: a media
//! container (`POST /{ig-user-id}/media` with the image's public URL),
//! recorded on the post before `POST /{ig-user-id}/media_publish` makes it
//! public. A container publishes once, so after an unknown outcome its
//! `status_code` says what happened: `PUBLISHED` (find the media by its
//! caption), `FINISHED` (not published: publish it), `EXPIRED` (make a new
//! one). Instagram does not let apps delete posts.
//!
//! Metrics: a Page post's reactions, comments and shares with its lifetime
//! insights in one read; an Instagram media's insights. Meta retires
//! metrics from time to time and then refuses a request that names one:
//! the read is made again without it, so the metric is absent from that
//! reading on, never zero.
//!
//! Meta reports its limits as usage percentages (`X-App-Usage`,
//! `X-Business-Use-Case-Usage` with `estimated_time_to_regain_access` in
//! minutes) and throttle error codes (4, 17, 32, 613, 80001): an account at
//! 100 % waits for the estimate, as Meta asks ("stop calling when
//! limited").

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use super::{Answer, CallRecord, Fetched, Found, Granted, Health, Platforms, Profile, Sent, count};
use crate::domain::Timestamp;
use crate::store::{Metrics, Network, SocialAccount, SocialPost};

pub const FACEBOOK_SCOPES: &str = "pages_show_list,pages_manage_posts,pages_read_engagement,read_insights";
pub const INSTAGRAM_SCOPES: &str = "pages_show_list,pages_read_engagement,instagram_basic,instagram_content_publish,instagram_manage_insights";

fn graph(p: &Platforms, path: &str) -> String {
    format!("{}{path}", p.settings.meta_graph_url.trim_end_matches('/'))
}

pub fn post_url(id: &str) -> String {
    format!("https://www.facebook.com/{id}")
}

/// Meta's error object: code, subcode and message.
struct GraphError {
    code: i64,
    subcode: i64,
    message: String,
}

fn graph_error(answer: &Answer) -> GraphError {
    let v = answer.json();
    let e = &v["error"];
    GraphError {
        code: e["code"].as_i64().unwrap_or(0),
        subcode: e["error_subcode"].as_i64().unwrap_or(0),
        message: e["error_user_msg"]
            .as_str()
            .or_else(|| e["message"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| answer.message()),
    }
}

/// Meta's throttling codes (app, user, Page, custom, business use case).
fn throttled(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 341 | 613 | 80001 | 80002)
}

/// When a throttled account may call again: the largest
/// `estimated_time_to_regain_access` (minutes) Meta gives, else an hour
/// (its usage windows are rolling hours).
pub fn regain_access(headers: &HeaderMap, now: Timestamp) -> Timestamp {
    let minutes = usage(headers).1.unwrap_or(60).clamp(1, 24 * 60);
    Timestamp::from_datetime(now.as_datetime() + time::Duration::minutes(minutes))
}

/// The highest usage percentage in Meta's usage headers, and the largest
/// estimated time to regain access (minutes) when one is given.
pub fn usage(headers: &HeaderMap) -> (Option<i64>, Option<i64>) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
    };
    let mut highest: Option<i64> = None;
    let mut regain: Option<i64> = None;
    let mut note = |entry: &serde_json::Value| {
        for field in ["call_count", "total_time", "total_cputime"] {
            if let Some(n) = entry[field].as_i64() {
                highest = Some(highest.map_or(n, |h| h.max(n)));
            }
        }
        if let Some(m) = entry["estimated_time_to_regain_access"].as_i64().filter(|m| *m > 0) {
            regain = Some(regain.map_or(m, |r| r.max(m)));
        }
    };
    if let Some(app) = get("x-app-usage") {
        note(&app);
    }
    if let Some(buc) = get("x-business-use-case-usage")
        && let Some(objects) = buc.as_object()
    {
        for entries in objects.values() {
            for entry in entries.as_array().into_iter().flatten() {
                note(entry);
            }
        }
    }
    (highest, regain)
}

fn classify(answer: &Answer, now: Timestamp) -> Sent {
    if answer.status.is_success() {
        let v = answer.json();
        // A photo answers with its own id and the post's: the post is what people see.
        return match v["post_id"].as_str().or_else(|| v["id"].as_str()) {
            Some(id) => Sent::Created { id: id.to_owned(), url: Some(post_url(id)) },
            None => Sent::Unknown { reason: "Facebook answered without a post id".into() },
        };
    }
    let e = graph_error(answer);
    match e.code {
        190 | 102 => Sent::TokenExpired,
        c if throttled(c) => Sent::RateLimited {
            until: regain_access(&answer.headers, now),
            note: format!("Meta's limit reached (code {c}): {}", e.message),
        },
        506 => Sent::Refused {
            error: format!("Facebook refused the post as a duplicate: {}", e.message),
            hint: "Facebook does not publish the same text twice in a row; change the text and schedule it again."
                .into(),
        },
        10 | 200..=299 => Sent::Refused {
            error: format!("Facebook refused the post for lack of permission: {}", e.message),
            hint: "Reconnect the Page and approve pages_manage_posts; the person must be able to create content on the Page."
                .into(),
        },
        368 => Sent::Refused {
            error: format!("Facebook has temporarily blocked posting from this Page: {}", e.message),
            hint: "Check the Page's quality on Facebook, then schedule the post again.".into(),
        },
        // Unknown (1) and service (2) errors: Meta says retry, so it may or may not exist.
        1 | 2 => Sent::Unknown { reason: format!("Facebook answered a temporary error: {}", e.message) },
        _ if answer.status.is_server_error() => Sent::Unknown {
            reason: format!("Facebook answered {}: {}", answer.status.as_u16(), e.message),
        },
        _ if answer.status == StatusCode::UNAUTHORIZED => Sent::TokenExpired,
        c => Sent::Refused {
            error: format!("Facebook refused the post (code {c}/{}): {}", e.subcode, e.message),
            hint: "Edit the post to follow Facebook's rules and schedule it again.".into(),
        },
    }
}

pub async fn publish(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Sent, CallRecord) {
    let request = match &post.image_url {
        Some(image) => p.http().post(graph(p, &format!("/{}/photos", account.external_id))).form(&[
            ("url", image.as_str()),
            ("message", post.text.as_str()),
            ("access_token", token.expose_secret()),
        ]),
        None => p
            .http()
            .post(graph(p, &format!("/{}/feed", account.external_id)))
            .form(&[("message", post.text.as_str()), ("access_token", token.expose_secret())]),
    };
    match Answer::send_once(request).await {
        Ok(a) => (classify(&a, Timestamp::now()), a.record()),
        Err(failed) => failed,
    }
}

/// Reads the Page's feed from a little before the post's first
/// unknown-outcome request, following `paging.next`.
pub async fn find(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Found, CallRecord) {
    let since = post.unconfirmed_since.unwrap_or(post.updated_at);
    let since = (since.as_datetime() - time::Duration::minutes(5)).unix_timestamp();
    let url = graph(p, &format!("/{}/feed", account.external_id));
    let mut query = vec![
        ("fields", "id,message,created_time".to_owned()),
        ("since", since.to_string()),
        ("limit", "100".to_owned()),
    ];
    let mut last = CallRecord::default();
    for _ in 0..10 {
        let request = p.http().get(&url).query(&query).query(&[("access_token", token.expose_secret())]);
        let answer = match Answer::fetch(request, "Facebook").await {
            Ok(a) => a,
            Err(reason) => return (Found::Unknown { reason }, last),
        };
        last = answer.record();
        if !answer.status.is_success() {
            let e = graph_error(&answer);
            return match e.code {
                190 | 102 => (Found::TokenExpired, last),
                c if throttled(c) => (
                    Found::RateLimited {
                        until: regain_access(&answer.headers, Timestamp::now()),
                        note: format!("Meta's limit on reading the Page's feed (code {c})"),
                    },
                    last,
                ),
                _ => (
                    Found::Unknown {
                        reason: format!("Facebook answered to reading the feed: {}", e.message),
                    },
                    last,
                ),
            };
        }
        let body = answer.json();
        for item in body["data"].as_array().into_iter().flatten() {
            if item["message"].as_str().map(str::trim) == Some(post.text.trim())
                && let Some(id) = item["id"].as_str()
            {
                return (Found::Present { id: id.to_owned(), url: Some(post_url(id)) }, last);
            }
        }
        // Only the cursor is taken from the next page's URL: it also
        // carries the token, and its host is not trusted to be ours.
        match body["paging"]["next"].as_str().and_then(|n| reqwest::Url::parse(n).ok()) {
            Some(next) => {
                let after = next.query_pairs().find(|(k, _)| k == "after").map(|(_, v)| v.into_owned());
                match after {
                    Some(after) => {
                        query.retain(|(k, _)| *k != "after");
                        query.push(("after", after));
                    }
                    None => return (Found::Absent, last),
                }
            }
            None => return (Found::Absent, last),
        }
    }
    (Found::Unknown { reason: "the Page's feed is longer than Marketer reads".into() }, last)
}

pub async fn delete(p: &Platforms, token: &SecretString, id: &str) -> Result<CallRecord, String> {
    if !id.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return Err(format!("{id:?} is not a Facebook post id"));
    }
    let request =
        p.http().delete(graph(p, &format!("/{id}"))).query(&[("access_token", token.expose_secret())]);
    let answer = Answer::fetch(request, "Facebook").await?;
    if answer.status.is_success() {
        return Ok(answer.record());
    }
    let e = graph_error(&answer);
    // 100/33: the object does not exist (already deleted).
    if e.code == 100 && e.subcode == 33 || answer.status == StatusCode::NOT_FOUND {
        return Ok(answer.record());
    }
    Err(format!("Facebook refused to delete the post: {}", e.message))
}

pub async fn check(p: &Platforms, account: &SocialAccount, token: &SecretString) -> Health {
    let request = p
        .http()
        .get(graph(p, &format!("/{}", account.external_id)))
        .query(&[("fields", "id,name"), ("access_token", token.expose_secret())]);
    let answer = match Answer::fetch(request, "Facebook").await {
        Ok(a) => a,
        Err(reason) => return Health::Unreachable { reason },
    };
    if answer.status.is_success() {
        return Health::Ok;
    }
    let e = graph_error(&answer);
    match e.code {
        190 | 102 => Health::Unauthorized {
            reason: format!("Facebook no longer accepts the Page's token: {}", e.message),
        },
        c if throttled(c) => Health::RateLimited {
            until: regain_access(&answer.headers, Timestamp::now()),
            note: format!("Meta's limit (code {c})"),
        },
        10 | 200..=299 => Health::Unauthorized { reason: format!("Facebook refused access: {}", e.message) },
        _ => Health::Unreachable { reason: format!("Facebook answered: {}", e.message) },
    }
}

/// The authorisation URL (Facebook Login's dialog) a person is sent to,
/// asking for what `network` needs.
pub fn authorize_url(
    p: &Platforms,
    network: Network,
    state: &str,
    challenge: &str,
) -> Result<String, String> {
    let app_id = p
        .settings
        .meta_app_id
        .as_deref()
        .ok_or("Facebook is not configured on this server (MARKETER_META_APP_ID)")?;
    let mut url = reqwest::Url::parse(&p.settings.meta_authorize_url)
        .map_err(|e| format!("meta_authorize_url: {e}"))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", app_id)
        .append_pair("redirect_uri", &p.settings.redirect_uri(network))
        .append_pair("scope", if network == Network::Instagram { INSTAGRAM_SCOPES } else { FACEBOOK_SCOPES })
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

async fn token_call(p: &Platforms, query: &[(&str, &str)]) -> Result<String, String> {
    let request = p.http().get(graph(p, "/oauth/access_token")).query(query);
    let answer = Answer::fetch(request, "Facebook").await?;
    if !answer.status.is_success() {
        return Err(format!("Facebook refused the authorisation: {}", graph_error(&answer).message));
    }
    answer.json()["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "Facebook answered without an access token".into())
}

/// Exchanges an authorisation code for a long-lived user token, then
/// returns every Page the person granted on which they may create content
/// (Facebook), or the Instagram professional account linked to each such
/// Page (Instagram), each with the Page's token.
pub async fn exchange(
    p: &Platforms,
    network: Network,
    code: &str,
    verifier: &str,
) -> Result<Vec<(Granted, Profile)>, String> {
    let app_id = p.settings.meta_app_id.clone().unwrap_or_default();
    let secret =
        p.settings.meta_app_secret.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default();
    let redirect = p.settings.redirect_uri(network);
    let short = token_call(
        p,
        &[
            ("client_id", &app_id),
            ("client_secret", &secret),
            ("redirect_uri", &redirect),
            ("code", code),
            ("code_verifier", verifier),
        ],
    )
    .await?;
    let long = token_call(
        p,
        &[
            ("grant_type", "fb_exchange_token"),
            ("client_id", &app_id),
            ("client_secret", &secret),
            ("fb_exchange_token", &short),
        ],
    )
    .await?;
    let request = p.http().get(graph(p, "/me/accounts")).query(&[
        ("fields", "id,name,access_token,tasks,instagram_business_account{id,username}"),
        ("limit", "100"),
        ("access_token", &long),
    ]);
    let answer = Answer::fetch(request, "Facebook").await?;
    if !answer.status.is_success() {
        return Err(format!("Facebook did not list the Pages: {}", graph_error(&answer).message));
    }
    let mut pages = Vec::new();
    for page in answer.json()["data"].as_array().into_iter().flatten() {
        let (Some(id), Some(token)) = (page["id"].as_str(), page["access_token"].as_str()) else { continue };
        let can_post = page["tasks"]
            .as_array()
            .is_none_or(|tasks| tasks.iter().any(|t| t.as_str() == Some("CREATE_CONTENT")));
        if !can_post || id.is_empty() || token.is_empty() {
            continue;
        }
        let granted =
            Granted { access: SecretString::from(token.to_owned()), refresh: None, expires_in: None };
        if network == Network::Instagram {
            let ig = &page["instagram_business_account"];
            if let (Some(ig_id), Some(username)) = (ig["id"].as_str(), ig["username"].as_str()) {
                pages.push((
                    granted,
                    Profile {
                        external_id: ig_id.to_owned(),
                        handle: format!("@{username}"),
                        display_name: username.to_owned(),
                        profile_url: Some(format!("https://www.instagram.com/{username}/")),
                    },
                ));
            }
            continue;
        }
        let name = page["name"].as_str().unwrap_or("Facebook Page").to_owned();
        pages.push((
            granted,
            Profile {
                external_id: id.to_owned(),
                handle: name.clone(),
                display_name: name,
                profile_url: Some(format!("https://www.facebook.com/{id}")),
            },
        ));
    }
    if pages.is_empty() && network == Network::Instagram {
        return Err("none of the Pages you shared has an Instagram professional account linked; link one in the Page's settings, then connect again".into());
    }
    if pages.is_empty() {
        return Err(
            "no Facebook Page was granted on which you can create content; choose at least one Page when Facebook asks"
                .into(),
        );
    }
    Ok(pages)
}

// ----- Instagram ----------------------------------------------------------------------

/// How often and how long one publish waits for Instagram to process an image.
const PROCESSING_POLLS: u32 = 3;
const PROCESSING_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Instagram's errors as the engine needs them; `may_publish` says whether
/// the request may have made the post public.
fn ig_classify(answer: &Answer, may_publish: bool) -> Sent {
    let e = graph_error(answer);
    match (e.code, e.subcode) {
        (190 | 102, _) => Sent::TokenExpired,
        (9, 2_207_042) => Sent::RateLimited {
            until: Timestamp::from_datetime(Timestamp::now().as_datetime() + time::Duration::hours(1)),
            note: format!("Instagram's limit of API posts in 24 hours reached: {}", e.message),
        },
        (c, _) if throttled(c) => Sent::RateLimited {
            until: regain_access(&answer.headers, Timestamp::now()),
            note: format!("Meta's limit reached (code {c}): {}", e.message),
        },
        (-2, 2_207_020) => Sent::Refused {
            error: format!("Instagram's media container expired: {}", e.message),
            hint: "Schedule the post again; Marketer prepares a new one.".into(),
        },
        (10 | 200..=299, _) => Sent::Refused {
            error: format!("Instagram refused for lack of permission: {}", e.message),
            hint: "Reconnect Instagram and approve instagram_content_publish.".into(),
        },
        (1 | 2 | -1, _) if may_publish => {
            Sent::Unknown { reason: format!("Instagram answered a temporary error: {}", e.message) }
        }
        (1 | 2 | -1, _) => Sent::NotSent { reason: format!("Instagram answered a temporary error: {}", e.message) },
        _ if answer.status.is_server_error() && may_publish => {
            Sent::Unknown { reason: format!("Instagram answered {}: {}", answer.status.as_u16(), e.message) }
        }
        _ if answer.status.is_server_error() => {
            Sent::NotSent { reason: format!("Instagram answered {}: {}", answer.status.as_u16(), e.message) }
        }
        (c, s) => Sent::Refused {
            error: format!("Instagram refused the post (code {c}/{s}): {}", e.message),
            hint: "Check that the image is a JPEG under 8 MB that anyone can download, and that the caption follows Instagram's rules."
                .into(),
        },
    }
}

/// Makes the post's media container (publishes nothing).
async fn ig_container(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Sent, CallRecord) {
    let Some(image) = &post.image_url else {
        return (
            Sent::Refused {
                error: "an Instagram post needs an image".into(),
                hint: "Add an image address to the post and schedule it again.".into(),
            },
            CallRecord::default(),
        );
    };
    let request = p.http().post(graph(p, &format!("/{}/media", account.external_id))).form(&[
        ("image_url", image.as_str()),
        ("caption", post.text.as_str()),
        ("access_token", token.expose_secret()),
    ]);
    // Making a container publishes nothing: any failure may be retried.
    let answer = match Answer::fetch(request, "Instagram").await {
        Ok(a) => a,
        Err(reason) => return (Sent::NotSent { reason }, CallRecord::default()),
    };
    let record = answer.record();
    if !answer.status.is_success() {
        return (ig_classify(&answer, false), record);
    }
    match answer.json()["id"].as_str() {
        Some(id) if !id.is_empty() => (Sent::Prepared { container: id.to_owned() }, record),
        _ => (Sent::NotSent { reason: "Instagram answered without a container id".into() }, record),
    }
}

/// A container's `status_code`; `ERROR` is a refusal.
async fn ig_status(
    p: &Platforms,
    token: &SecretString,
    container: &str,
) -> Result<(String, CallRecord), (Sent, CallRecord)> {
    let request = p
        .http()
        .get(graph(p, &format!("/{container}")))
        .query(&[("fields", "status_code,status"), ("access_token", token.expose_secret())]);
    let answer = match Answer::fetch(request, "Instagram").await {
        Ok(a) => a,
        Err(reason) => return Err((Sent::NotSent { reason }, CallRecord::default())),
    };
    let record = answer.record();
    if !answer.status.is_success() {
        return Err((ig_classify(&answer, false), record));
    }
    let v = answer.json();
    let code = v["status_code"].as_str().unwrap_or("UNKNOWN").to_owned();
    if code == "ERROR" {
        let detail = v["status"].as_str().unwrap_or("no detail").to_owned();
        return Err((
            Sent::Refused {
                error: format!("Instagram could not process the image ({detail})"),
                hint: "Check that the image address opens a JPEG under 8 MB for anyone, then schedule the post again."
                    .into(),
            },
            record,
        ));
    }
    Ok((code, record))
}

/// The published media whose caption is the post's text, newest first.
async fn ig_media_by_caption(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Found, CallRecord) {
    let request = p.http().get(graph(p, &format!("/{}/media", account.external_id))).query(&[
        ("fields", "id,caption,permalink,timestamp"),
        ("limit", "50"),
        ("access_token", token.expose_secret()),
    ]);
    let answer = match Answer::fetch(request, "Instagram").await {
        Ok(a) => a,
        Err(reason) => return (Found::Unknown { reason }, CallRecord::default()),
    };
    let record = answer.record();
    if !answer.status.is_success() {
        let found = match ig_classify(&answer, false) {
            Sent::TokenExpired => Found::TokenExpired,
            Sent::RateLimited { until, note } => Found::RateLimited { until, note },
            _ => Found::Unknown {
                reason: format!("Instagram answered to listing media: {}", answer.message()),
            },
        };
        return (found, record);
    }
    for item in answer.json()["data"].as_array().into_iter().flatten() {
        if item["caption"].as_str().map(str::trim) == Some(post.text.trim())
            && let Some(id) = item["id"].as_str()
        {
            let url = item["permalink"].as_str().map(str::to_owned);
            return (Found::Present { id: id.to_owned(), url }, record);
        }
    }
    let reason = "the container is published but its media was not among the account's latest".into();
    (Found::Unknown { reason }, record)
}

pub async fn ig_publish(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Sent, CallRecord) {
    let Some(container) = &post.platform_container_id else {
        return ig_container(p, account, token, post).await;
    };
    let mut polls = 0;
    let last = loop {
        let (code, record) = match ig_status(p, token, container).await {
            Ok(s) => s,
            Err(failed) => return failed,
        };
        match code.as_str() {
            "FINISHED" => break record,
            "PUBLISHED" => {
                return match ig_media_by_caption(p, account, token, post).await {
                    (Found::Present { id, url }, record) => (Sent::Created { id, url }, record),
                    (_, record) => {
                        let reason =
                            "the container was published but its media could not be found yet".into();
                        (Sent::Unknown { reason }, record)
                    }
                };
            }
            // Made more than 24 hours ago: a new one.
            "EXPIRED" => return ig_container(p, account, token, post).await,
            _ if polls < PROCESSING_POLLS => {
                polls += 1;
                tokio::time::sleep(PROCESSING_POLL).await;
            }
            other => {
                let until =
                    Timestamp::from_datetime(Timestamp::now().as_datetime() + time::Duration::minutes(1));
                let note = format!("Instagram is still processing the image ({other})");
                return (Sent::NotReady { until, note }, record);
            }
        }
    };
    let request = p
        .http()
        .post(graph(p, &format!("/{}/media_publish", account.external_id)))
        .form(&[("creation_id", container.as_str()), ("access_token", token.expose_secret())]);
    let answer = match Answer::send_once(request).await {
        Ok(a) => a,
        Err((sent, record)) => return (sent, CallRecord { request_id: last.request_id, ..record }),
    };
    let record = answer.record();
    if !answer.status.is_success() {
        return (ig_classify(&answer, true), record);
    }
    let Some(id) = answer.json()["id"].as_str().map(str::to_owned) else {
        return (Sent::Unknown { reason: "Instagram answered without a media id".into() }, record);
    };
    // The permalink is a nicety: the post is public whether or not it is read.
    let request = p
        .http()
        .get(graph(p, &format!("/{id}")))
        .query(&[("fields", "permalink"), ("access_token", token.expose_secret())]);
    let url = match Answer::fetch(request, "Instagram").await {
        Ok(a) if a.status.is_success() => a.json()["permalink"].as_str().map(str::to_owned),
        _ => None,
    };
    (Sent::Created { id, url }, record)
}

/// After an unknown outcome: the container says whether it was published.
pub async fn ig_find(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Found, CallRecord) {
    let Some(container) = &post.platform_container_id else {
        // No container was recorded, so media_publish was never sent.
        return (Found::Absent, CallRecord::default());
    };
    match ig_status(p, token, container).await {
        Ok((code, _)) if code == "PUBLISHED" => ig_media_by_caption(p, account, token, post).await,
        Ok((_, record)) | Err((Sent::Refused { .. }, record)) => (Found::Absent, record),
        Err((Sent::TokenExpired, record)) => (Found::TokenExpired, record),
        Err((Sent::RateLimited { until, note }, record)) => (Found::RateLimited { until, note }, record),
        Err((_, record)) => {
            (Found::Unknown { reason: "could not read the container's status".into() }, record)
        }
    }
}

pub async fn ig_check(p: &Platforms, account: &SocialAccount, token: &SecretString) -> Health {
    let request = p
        .http()
        .get(graph(p, &format!("/{}", account.external_id)))
        .query(&[("fields", "id,username"), ("access_token", token.expose_secret())]);
    let answer = match Answer::fetch(request, "Instagram").await {
        Ok(a) => a,
        Err(reason) => return Health::Unreachable { reason },
    };
    if answer.status.is_success() {
        return Health::Ok;
    }
    match ig_classify(&answer, false) {
        Sent::TokenExpired => Health::Unauthorized {
            reason: format!("Instagram no longer accepts the Page's token: {}", graph_error(&answer).message),
        },
        Sent::RateLimited { until, note } => Health::RateLimited { until, note },
        Sent::Refused { error, .. } => Health::Unauthorized { reason: error },
        _ => Health::Unreachable { reason: format!("Instagram answered: {}", answer.message()) },
    }
}

/// What a failed metrics read means (Meta's error codes): a dead token,
/// a throttle, a post that is gone, or a failure to try again later.
fn metrics_failure(answer: &Answer, whom: &str) -> Fetched {
    let e = graph_error(answer);
    match (e.code, e.subcode) {
        (190 | 102, _) => Fetched::TokenExpired,
        (c, _) if throttled(c) => Fetched::RateLimited {
            until: regain_access(&answer.headers, Timestamp::now()),
            note: format!("Meta's limit (code {c})"),
        },
        (100, 33) => Fetched::Gone,
        _ if answer.status == StatusCode::NOT_FOUND => Fetched::Gone,
        (10 | 200..=299, _) => Fetched::Refused {
            reason: format!(
                "{whom} refused access to the numbers (code {}): reconnect the account to grant Marketer the insights permission",
                e.code
            ),
        },
        (c, _) => Fetched::Failed {
            reason: format!("{whom} answered {} (code {c}): {}", answer.status.as_u16(), e.message),
        },
    }
}

/// The metrics among `asked` that an "invalid metric" error (code 100)
/// rejects: Meta retires metrics from time to time and then refuses the
/// whole request, naming the valid ones ("must be one of the following
/// values: …") or the rejected one.
fn rejected_metrics(answer: &Answer, asked: &[&'static str]) -> Vec<&'static str> {
    let e = graph_error(answer);
    if e.code != 100 {
        return Vec::new();
    }
    let message = e.message.to_ascii_lowercase();
    let word = |text: &str, name: &str| {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == name)
    };
    if let Some((_, valid)) = message.split_once("following values:") {
        return asked.iter().copied().filter(|m| !word(valid, m)).collect();
    }
    asked.iter().copied().filter(|m| word(&message, m)).collect()
}

/// The lifetime value of each insight in Meta's `{"data": [{"name", "values": [{"value"}]}]}`.
/// A value that is a breakdown (an object, as `post_clicks_by_type`'s) is
/// read by its `part`.
fn insight_values(insights: &serde_json::Value, part: &str) -> std::collections::HashMap<String, i64> {
    insights["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let name = i["name"].as_str()?;
            let value = &i["values"].as_array()?.last()?["value"];
            let value = if value.is_object() { value.get(part)? } else { value };
            Some((name.to_owned(), value.as_i64().filter(|v| *v >= 0)?))
        })
        .collect()
}

/// Reads `url` with Meta's `fields`/`metric` parameter built from `metrics`,
/// dropping the metrics Meta says it no longer has (each at most once) so a
/// retired metric is absent from the reading rather than failing it. An
/// "invalid metric" refusal that names none drops them all when the query
/// can do without (`query(&[])` is `Some`): the rest is still read.
async fn read_insights(
    p: &Platforms,
    token: &SecretString,
    url: &str,
    whom: &str,
    mut metrics: Vec<&'static str>,
    query: impl Fn(&[&'static str]) -> Option<(&'static str, String)>,
) -> Result<(serde_json::Value, CallRecord), Box<(Fetched, CallRecord)>> {
    loop {
        let Some((key, value)) = query(&metrics) else {
            return Err(Box::new((
                Fetched::Failed {
                    reason: format!("{whom} no longer reports any of the metrics Marketer reads"),
                },
                CallRecord::default(),
            )));
        };
        let request =
            p.http().get(url).query(&[(key, value.as_str()), ("access_token", token.expose_secret())]);
        let answer = match Answer::fetch(request, whom).await {
            Ok(a) => a,
            Err(reason) => return Err(Box::new((Fetched::Failed { reason }, CallRecord::default()))),
        };
        let record = answer.record();
        if answer.status.is_success() {
            let body = answer.json();
            if !body.is_object() {
                let reason = format!("{whom} answered with no JSON object");
                return Err(Box::new((Fetched::Failed { reason }, record)));
            }
            return Ok((body, record));
        }
        let mut rejected = rejected_metrics(&answer, &metrics);
        if rejected.is_empty()
            && graph_error(&answer).code == 100
            && !metrics.is_empty()
            && query(&[]).is_some()
        {
            rejected.clone_from(&metrics);
        }
        if rejected.is_empty() {
            return Err(Box::new((metrics_failure(&answer, whom), record)));
        }
        tracing::warn!(
            platform = whom,
            ?rejected,
            "Meta no longer reports these metrics; reading without them"
        );
        metrics.retain(|m| !rejected.contains(m));
    }
}

/// The insights Marketer asks of a Page post, and the metric each is.
const PAGE_POST_INSIGHTS: [&str; 3] = ["post_impressions", "post_impressions_unique", "post_clicks_by_type"];

/// A Page post's metrics in one read (`GET /{post-id}` with field
/// expansion): reactions (likes), comments and shares from the post's
/// summaries, impressions, reach and link clicks (`post_clicks_by_type`)
/// from its lifetime insights.
/// A field Meta leaves out (as it does for `shares` on a post nobody has
/// shared) is absent, not zero.
pub async fn metrics(p: &Platforms, token: &SecretString, id: &str) -> (Fetched, CallRecord) {
    let url = graph(p, &format!("/{id}"));
    let fields = |insights: &[&'static str]| {
        let counts =
            "id,shares,reactions.summary(total_count).limit(0),comments.summary(total_count).limit(0)";
        Some(if insights.is_empty() {
            ("fields", counts.to_owned())
        } else {
            ("fields", format!("{counts},insights.metric({})", insights.join(",")))
        })
    };
    let (body, record) =
        match read_insights(p, token, &url, "Facebook", PAGE_POST_INSIGHTS.to_vec(), fields).await {
            Ok(found) => found,
            Err(failed) => return *failed,
        };
    let insights = insight_values(&body["insights"], "link clicks");
    let metrics = Metrics {
        impressions: insights.get("post_impressions").copied(),
        reach: insights.get("post_impressions_unique").copied(),
        likes: count(&body["reactions"]["summary"], "total_count"),
        comments: count(&body["comments"]["summary"], "total_count"),
        shares: count(&body["shares"], "count"),
        link_clicks: insights.get("post_clicks_by_type").copied(),
        ..Metrics::default()
    };
    let raw = serde_json::json!({
        "shares": body.get("shares"),
        "reactions": body["reactions"].get("summary"),
        "comments": body["comments"].get("summary"),
        "insights": insights,
    });
    (Fetched::Metrics { metrics, raw: raw.to_string() }, record)
}

/// A Page's or an Instagram account's followers (`followers_count`).
pub async fn followers(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    whom: &str,
) -> (Fetched, CallRecord) {
    let request = p
        .http()
        .get(graph(p, &format!("/{}", account.external_id)))
        .query(&[("fields", "id,followers_count"), ("access_token", token.expose_secret())]);
    let answer = match Answer::fetch(request, whom).await {
        Ok(a) => a,
        Err(reason) => return (Fetched::Failed { reason }, CallRecord::default()),
    };
    let record = answer.record();
    if !answer.status.is_success() {
        return (metrics_failure(&answer, whom), record);
    }
    match count(&answer.json(), "followers_count") {
        Some(n) => (Fetched::Followers(n), record),
        None => (Fetched::Failed { reason: format!("{whom} answered without followers_count") }, record),
    }
}

/// The media insights Marketer asks of Instagram. `views` (which replaced
/// `impressions` in 2025) counts how often the media was shown.
const MEDIA_INSIGHTS: [&str; 7] =
    ["views", "reach", "likes", "comments", "shares", "saved", "profile_visits"];

/// An Instagram media's lifetime insights (`GET /{ig-media-id}/insights`).
pub async fn ig_metrics(p: &Platforms, token: &SecretString, id: &str) -> (Fetched, CallRecord) {
    let url = graph(p, &format!("/{id}/insights"));
    let metric = |names: &[&'static str]| (!names.is_empty()).then(|| ("metric", names.join(",")));
    let (body, record) =
        match read_insights(p, token, &url, "Instagram", MEDIA_INSIGHTS.to_vec(), metric).await {
            Ok(found) => found,
            Err(failed) => return *failed,
        };
    let values = insight_values(&body, "total");
    let get = |name: &str| values.get(name).copied();
    let metrics = Metrics {
        impressions: get("views"),
        reach: get("reach"),
        likes: get("likes"),
        comments: get("comments"),
        shares: get("shares"),
        saves: get("saved"),
        profile_visits: get("profile_visits"),
        ..Metrics::default()
    };
    (Fetched::Metrics { metrics, raw: serde_json::json!(values).to_string() }, record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_headers_give_the_highest_percentage_and_the_wait() {
        let mut h = HeaderMap::new();
        h.insert("x-app-usage", r#"{"call_count":28,"total_time":25,"total_cputime":25}"#.parse().unwrap());
        h.insert(
            "x-business-use-case-usage",
            r#"{"112":[{"type":"pages","call_count":100,"total_cputime":25,"total_time":25,"estimated_time_to_regain_access":19}]}"#
                .parse()
                .unwrap(),
        );
        assert_eq!(usage(&h), (Some(100), Some(19)));
        let now = Timestamp::parse_rfc3339("2027-01-01T00:00:00Z").unwrap();
        assert_eq!(regain_access(&h, now), Timestamp::parse_rfc3339("2027-01-01T00:19:00Z").unwrap());
        assert_eq!(
            regain_access(&HeaderMap::new(), now),
            Timestamp::parse_rfc3339("2027-01-01T01:00:00Z").unwrap()
        );
    }
}
