//! Meta's Graph API for Facebook Pages
//! (`../shared/reference/social/meta-facebook-instagram.md`): Facebook
//! Login (authorization code with `state` and PKCE), the short-lived user
//! token exchanged for a long-lived one, then one account per Page the
//! person granted, each with its own Page token (Page tokens from a
//! long-lived user token do not expire, so there is no refresh: an
//! invalid token means connecting again). `POST /{page-id}/feed` publishes;
//! the Page's feed finds a post after an unknown outcome (Meta has no
//! idempotency key); `DELETE /{post-id}` deletes.
//!
//! Meta reports its limits as usage percentages (`X-App-Usage`,
//! `X-Business-Use-Case-Usage` with `estimated_time_to_regain_access` in
//! minutes) and throttle error codes (4, 17, 32, 613, 80001): an account at
//! 100 % waits for the estimate, as Meta asks ("stop calling when
//! limited").

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};

use super::{Answer, CallRecord, Found, Granted, Health, Platforms, Profile, Sent, transport};
use crate::domain::Timestamp;
use crate::store::{Network, SocialAccount, SocialPost};

pub const FACEBOOK_SCOPES: &str = "pages_show_list,pages_manage_posts,pages_read_engagement";

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
        return match v["id"].as_str().or_else(|| v["post_id"].as_str()) {
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
    let sent = p
        .http()
        .post(graph(p, &format!("/{}/feed", account.external_id)))
        .form(&[("message", post.text.as_str()), ("access_token", token.expose_secret())])
        .send()
        .await;
    let answer = match sent {
        Ok(r) => Answer::read(r).await,
        Err(e) => return (transport(&e), CallRecord { detail: e.to_string(), ..CallRecord::default() }),
    };
    match answer {
        Ok(a) => (classify(&a, Timestamp::now()), a.record()),
        Err(e) => (Sent::Unknown { reason: format!("the answer was cut off: {e}") }, CallRecord::default()),
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

/// The authorisation URL (Facebook Login's dialog) a person is sent to.
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
        .append_pair("scope", FACEBOOK_SCOPES)
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
/// returns every Page the person granted, each with its Page token.
pub async fn exchange(p: &Platforms, code: &str, verifier: &str) -> Result<Vec<(Granted, Profile)>, String> {
    let app_id = p.settings.meta_app_id.clone().unwrap_or_default();
    let secret =
        p.settings.meta_app_secret.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default();
    let redirect = p.settings.redirect_uri(Network::Facebook);
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
        ("fields", "id,name,access_token,tasks"),
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
        let name = page["name"].as_str().unwrap_or("Facebook Page").to_owned();
        pages.push((
            Granted { access: SecretString::from(token.to_owned()), refresh: None, expires_in: None },
            Profile {
                external_id: id.to_owned(),
                handle: name.clone(),
                display_name: name,
                profile_url: Some(format!("https://www.facebook.com/{id}")),
            },
        ));
    }
    if pages.is_empty() {
        return Err(
            "no Facebook Page was granted on which you can create content; choose at least one Page when Facebook asks"
                .into(),
        );
    }
    Ok(pages)
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
