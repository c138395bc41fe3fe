//! X API v2 (`../shared/reference/social/x.md`): OAuth 2.0 with PKCE and
//! rotating refresh tokens, `POST /2/tweets`, the user's timeline to find a
//! post after an unknown outcome (X has no idempotency key), deletion.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::{
    Answer, CallRecord, Fetched, Found, Granted, Health, Platforms, Profile, Refreshed, Sent, count,
    followers_at, limited_until, metrics_answer, oauth_refreshed, oauth_tokens,
};
use crate::domain::Timestamp;
use crate::store::{SocialAccount, SocialPost};

pub const SCOPES: &str = "tweet.read tweet.write users.read offline.access";

fn api(p: &Platforms, path: &str) -> String {
    format!("{}{path}", p.settings.x_api_url.trim_end_matches('/'))
}

pub fn post_url(handle: &str, id: &str) -> String {
    format!("https://x.com/{}/status/{id}", handle.trim_start_matches('@'))
}

/// Whether an answer says the access token is no longer valid.
fn token_problem(a: &Answer) -> bool {
    a.status == StatusCode::UNAUTHORIZED
}

pub async fn publish(p: &Platforms, token: &SecretString, post: &SocialPost) -> (Sent, CallRecord) {
    let request = p
        .http()
        .post(api(p, "/2/tweets"))
        .bearer_auth(token.expose_secret())
        .json(&serde_json::json!({ "text": post.text }));
    let answer = match Answer::send_once(request).await {
        Ok(a) => a,
        Err(failed) => return failed,
    };
    let record = answer.record();
    let now = Timestamp::now();
    let sent = match answer.status {
        s if s.is_success() => match answer.json()["data"]["id"].as_str() {
            Some(id) => Sent::Created { id: id.to_owned(), url: Some(post_url(&post.handle, id)) },
            None => Sent::Unknown { reason: "X answered without a post id".into() },
        },
        // The app's limit, when that is what was hit, ends at its own reset.
        StatusCode::TOO_MANY_REQUESTS => match &record.app_limit {
            Some((until, what)) => Sent::RateLimited { until: *until, note: format!("X: {what}") },
            None => {
                let until = limited_until(&answer.headers, now);
                Sent::RateLimited { until, note: format!("X rate limit reached ({})", answer.message()) }
            }
        },
        _ if token_problem(&answer) => Sent::TokenExpired,
        StatusCode::FORBIDDEN if answer.message().to_ascii_lowercase().contains("duplicate") => Sent::Refused {
            error: format!("X refused the post as a duplicate: {}", answer.message()),
            hint: "X does not accept the same text twice from one account; change the text and schedule it again."
                .into(),
        },
        StatusCode::FORBIDDEN => Sent::Refused {
            error: format!("X refused the post: {}", answer.message()),
            hint: "Check that the X app may post for this account (tweet.write) and that the text follows X's rules."
                .into(),
        },
        s if s.is_server_error() => Sent::Unknown { reason: format!("X answered {}: {}", s.as_u16(), answer.message()) },
        s => Sent::Refused {
            error: format!("X refused the post ({}): {}", s.as_u16(), answer.message()),
            hint: "Edit the post to follow X's rules and schedule it again.".into(),
        },
    };
    (sent, record)
}

/// Looks for the post in the account's timeline from a little before its
/// first unknown-outcome request; `Absent` only when the whole window was
/// read.
pub async fn find(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Found, CallRecord) {
    let since = post.unconfirmed_since.unwrap_or(post.updated_at);
    let start = since.as_datetime() - time::Duration::minutes(5);
    let start = Timestamp::from_datetime(start.replace_nanosecond(0).unwrap_or(start));
    let mut pagination: Option<String> = None;
    let mut last = CallRecord::default();
    // At most 10 pages of 100 (X caps a timeline at 3,200 posts).
    for _ in 0..10 {
        let mut query = vec![
            ("max_results", "100".to_owned()),
            (
                "start_time",
                start
                    .as_datetime()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            ),
        ];
        if let Some(token) = &pagination {
            query.push(("pagination_token", token.clone()));
        }
        let sent = p
            .http()
            .get(api(p, &format!("/2/users/{}/tweets", account.external_id)))
            .bearer_auth(token.expose_secret())
            .query(&query)
            .send()
            .await;
        let answer = match sent {
            Ok(r) => match Answer::read(r).await {
                Ok(a) => a,
                Err(e) => return (Found::Unknown { reason: e.to_string() }, last),
            },
            Err(e) => {
                return (Found::Unknown { reason: format!("could not read the X timeline: {e}") }, last);
            }
        };
        last = answer.record();
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            let until = limited_until(&answer.headers, Timestamp::now());
            return (Found::RateLimited { until, note: "X rate limit on reading the timeline".into() }, last);
        }
        if token_problem(&answer) {
            return (Found::TokenExpired, last);
        }
        if !answer.status.is_success() {
            return (
                Found::Unknown {
                    reason: format!("X answered {}: {}", answer.status.as_u16(), answer.message()),
                },
                last,
            );
        }
        let body = answer.json();
        if let Some(items) = body["data"].as_array() {
            for item in items {
                if item["text"].as_str().map(str::trim) == Some(post.text.trim())
                    && let Some(id) = item["id"].as_str()
                {
                    return (
                        Found::Present { id: id.to_owned(), url: Some(post_url(&post.handle, id)) },
                        last,
                    );
                }
            }
        }
        match body["meta"]["next_token"].as_str() {
            Some(next) => pagination = Some(next.to_owned()),
            None => return (Found::Absent, last),
        }
    }
    (Found::Unknown { reason: "the X timeline is longer than Marketer reads".into() }, last)
}

/// A post's public metrics (`GET /2/tweets/{id}?tweet.fields=public_metrics`):
/// impressions, likes, replies (comments), reposts and quotes (shares),
/// bookmarks (saves).
pub async fn metrics(p: &Platforms, token: &SecretString, id: &str) -> (Fetched, CallRecord) {
    let request = p
        .http()
        .get(api(p, &format!("/2/tweets/{id}")))
        .bearer_auth(token.expose_secret())
        .query(&[("tweet.fields", "public_metrics")]);
    let (body, record) = match metrics_answer(Answer::fetch(request, "X").await, "X") {
        Ok(found) => found,
        Err(failed) => return *failed,
    };
    // X answers 200 with only `errors` for a post that is gone.
    let Some(public) = body.get("data").and_then(|d| d.get("public_metrics")) else {
        return if body.get("errors").is_some() && body.get("data").is_none() {
            (Fetched::Gone, record)
        } else {
            (Fetched::Failed { reason: "X answered without public_metrics".into() }, record)
        };
    };
    let shares = match (count(public, "retweet_count"), count(public, "quote_count")) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    let metrics = crate::store::Metrics {
        impressions: count(public, "impression_count"),
        likes: count(public, "like_count"),
        comments: count(public, "reply_count"),
        shares,
        saves: count(public, "bookmark_count"),
        ..crate::store::Metrics::default()
    };
    (Fetched::Metrics { metrics, raw: public.to_string() }, record)
}

/// The account's followers (`GET /2/users/me?user.fields=public_metrics`).
pub async fn followers(p: &Platforms, token: &SecretString) -> (Fetched, CallRecord) {
    let request = p
        .http()
        .get(api(p, "/2/users/me"))
        .bearer_auth(token.expose_secret())
        .query(&[("user.fields", "public_metrics")]);
    followers_at(
        metrics_answer(Answer::fetch(request, "X").await, "X"),
        "/data/public_metrics/followers_count",
        "X",
    )
}

pub async fn delete(p: &Platforms, token: &SecretString, id: &str) -> Result<CallRecord, String> {
    let request = p.http().delete(api(p, &format!("/2/tweets/{id}"))).bearer_auth(token.expose_secret());
    let answer = Answer::fetch(request, "X").await?;
    // Already gone counts as deleted.
    if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
        Ok(answer.record())
    } else {
        Err(format!("X refused to delete the post ({}): {}", answer.status.as_u16(), answer.message()))
    }
}

fn token_request(p: &Platforms) -> reqwest::RequestBuilder {
    let request = p.http().post(api(p, "/2/oauth2/token"));
    match (&p.settings.x_client_id, &p.settings.x_client_secret) {
        (Some(id), Some(secret)) => request.basic_auth(id, Some(secret.expose_secret())),
        _ => request,
    }
}

pub async fn refresh(p: &Platforms, refresh: &SecretString) -> Refreshed {
    let client_id = p.settings.x_client_id.clone().unwrap_or_default();
    let request = token_request(p).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.expose_secret()),
        ("client_id", &client_id),
    ]);
    oauth_refreshed(Answer::fetch(request, "X").await, "X")
}

pub async fn check(p: &Platforms, token: &SecretString) -> Health {
    match me(p, token).await {
        Ok(_) => Health::Ok,
        Err(h) => h,
    }
}

async fn me(p: &Platforms, token: &SecretString) -> Result<Profile, Health> {
    let request = p.http().get(api(p, "/2/users/me")).bearer_auth(token.expose_secret());
    let answer = Answer::fetch(request, "X").await.map_err(|reason| Health::Unreachable { reason })?;
    match answer.status {
        s if s.is_success() => {
            let data = &answer.json()["data"];
            let id = data["id"].as_str().unwrap_or_default().to_owned();
            let username = data["username"].as_str().unwrap_or_default().to_owned();
            if id.is_empty() || username.is_empty() {
                return Err(Health::Unreachable { reason: "X answered without the account's id".into() });
            }
            Ok(Profile {
                display_name: data["name"].as_str().unwrap_or(&username).to_owned(),
                profile_url: Some(format!("https://x.com/{username}")),
                handle: format!("@{username}"),
                external_id: id,
            })
        }
        StatusCode::UNAUTHORIZED => Err(Health::TokenExpired),
        StatusCode::TOO_MANY_REQUESTS => Err(Health::RateLimited {
            until: limited_until(&answer.headers, Timestamp::now()),
            note: "X rate limit on account checks".into(),
        }),
        StatusCode::FORBIDDEN => {
            Err(Health::Unauthorized { reason: format!("X refused access: {}", answer.message()) })
        }
        s => Err(Health::Unreachable { reason: format!("X answered {}: {}", s.as_u16(), answer.message()) }),
    }
}

/// The authorisation URL a person is sent to.
pub fn authorize_url(p: &Platforms, state: &str, challenge: &str) -> Result<String, String> {
    let client_id = p
        .settings
        .x_client_id
        .as_deref()
        .ok_or("X is not configured on this server (MARKETER_X_CLIENT_ID)")?;
    let mut url =
        reqwest::Url::parse(&p.settings.x_authorize_url).map_err(|e| format!("x_authorize_url: {e}"))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &p.settings.redirect_uri(crate::store::Network::X))
        .append_pair("scope", SCOPES)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Exchanges an authorisation code, then reads who the account is.
pub async fn exchange(p: &Platforms, code: &str, verifier: &str) -> Result<(Granted, Profile), String> {
    let client_id = p.settings.x_client_id.clone().unwrap_or_default();
    let redirect = p.settings.redirect_uri(crate::store::Network::X);
    let request = token_request(p).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect),
        ("code_verifier", verifier),
        ("client_id", &client_id),
    ]);
    let answer = Answer::fetch(request, "X").await?;
    if !answer.status.is_success() {
        return Err(format!("X refused the authorisation: {}", answer.message()));
    }
    let granted = oauth_tokens(&answer.json()).ok_or("X answered without an access token")?;
    let profile = me(p, &granted.access).await.map_err(|h| format!("X did not show the account: {h:?}"))?;
    Ok((granted, profile))
}
