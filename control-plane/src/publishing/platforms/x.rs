//! X API v2 (`../shared/reference/social/x.md`): OAuth 2.0 with PKCE and
//! rotating refresh tokens, `POST /2/tweets` (replies too), the user's
//! timeline to find a post after an unknown outcome (X has no idempotency
//! key), deletion; for the inbox, the account's mentions, recent search
//! for listening, and the batch read that finds deleted posts.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::{
    Answer, CallRecord, Fetched, Found, Granted, Health, Platforms, Profile, Refreshed, Search, Sent, count,
    followers_at, id_order, limited_until, metrics_answer, oauth_refreshed, oauth_tokens,
};
use crate::domain::Timestamp;
use crate::store::{CollectedItem, SocialAccount, SocialPost};

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
    let request =
        p.http().post(api(p, "/2/tweets")).bearer_auth(token.expose_secret()).json(&match &post.reply_to {
            Some(id) => serde_json::json!({ "text": post.text, "reply": { "in_reply_to_tweet_id": id } }),
            None => serde_json::json!({ "text": post.text }),
        });
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

// ----- The inbox ---------------------------------------------------------------

/// Posts per page of mentions or search (X's most).
pub const INBOX_PAGE: usize = 100;
/// Pages one round reads at most; more is logged and not read (newer posts
/// are read first, so what is lost is the oldest of a flood).
const INBOX_PAGES: usize = 5;
/// The fields an inbox item is made of.
const TWEET_FIELDS: &str = "created_at,author_id,conversation_id,in_reply_to_user_id,referenced_tweets";

/// Mentions of the account (`GET /2/users/{id}/mentions`), which include
/// replies to its posts (X starts a reply with the handle it answers),
/// newer than `cursor` (a post id).
pub async fn inbox(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    cursor: Option<&str>,
) -> (Fetched, CallRecord) {
    let url = api(p, &format!("/2/users/{}/mentions", account.external_id));
    read_newest(p, account, token, &url, &[], "pagination_token", cursor, |tweet, users| {
        let replying_to_us = tweet["in_reply_to_user_id"].as_str() == Some(account.external_id.as_str());
        tweet_item(tweet, users, if replying_to_us { "reply" } else { "mention" })
    })
    .await
}

/// Recent public posts a listening query finds
/// (`GET /2/tweets/search/recent`: the last seven days, on an X app whose
/// access level includes search), newer than `cursor`; reposts and the
/// account's own posts are left out, and so are near matches.
pub async fn listen(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    search: Search<'_>,
    cursor: Option<&str>,
) -> (Fetched, CallRecord) {
    let query = match search {
        Search::Hashtag(tag) => format!("#{tag} -is:retweet"),
        Search::Keyword(word) => format!("\"{word}\" -is:retweet"),
    };
    let url = api(p, "/2/tweets/search/recent");
    // A quiet query's cursor can fall out of the seven days recent search
    // covers, and X refuses a `since_id` older than that.
    let floor = id_at(Timestamp::now().as_datetime() - SEARCH_WINDOW);
    let cursor = cursor.map(|c| if id_order(c, &floor).is_gt() { c.to_owned() } else { floor.clone() });
    read_newest(
        p,
        account,
        token,
        &url,
        &[("query", query)],
        "next_token",
        cursor.as_deref(),
        |tweet, users| {
            if tweet["author_id"].as_str() == Some(account.external_id.as_str()) {
                return None;
            }
            tweet_item(tweet, users, "listening").filter(|item| search.finds(&item.text))
        },
    )
    .await
}

/// Reads a newest-first list of posts newer than `cursor` (`since_id`),
/// page by page (`page_param` carries the `meta.next_token`), into what
/// `item` makes of each post, the newest id being the next cursor. A first
/// read (no cursor) reads one page: the latest, not the account's history.
#[allow(clippy::too_many_arguments)]
async fn read_newest(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    url: &str,
    params: &[(&str, String)],
    page_param: &str,
    cursor: Option<&str>,
    item: impl Fn(&serde_json::Value, &[serde_json::Value]) -> Option<CollectedItem>,
) -> (Fetched, CallRecord) {
    let mut items = Vec::new();
    let mut newest: Option<String> = None;
    let mut page: Option<String> = None;
    let mut last = CallRecord::default();
    for round in 0..INBOX_PAGES {
        let mut query: Vec<(&str, String)> = params.to_vec();
        query.extend([
            ("max_results", INBOX_PAGE.to_string()),
            ("tweet.fields", TWEET_FIELDS.to_owned()),
            ("expansions", "author_id".to_owned()),
            ("user.fields", "username,name".to_owned()),
        ]);
        if let Some(cursor) = cursor {
            query.push(("since_id", cursor.to_owned()));
        }
        if let Some(page) = &page {
            query.push((page_param, page.clone()));
        }
        let request = p.http().get(url).bearer_auth(token.expose_secret()).query(&query);
        let (body, record) = match x_answer(Answer::fetch(request, "X").await) {
            Ok(found) => found,
            Err(failed) => return *failed,
        };
        last = record;
        if round == 0 {
            newest = body["meta"]["newest_id"].as_str().map(str::to_owned);
        }
        let users = body["includes"]["users"].as_array().map(Vec::as_slice).unwrap_or_default();
        for tweet in body["data"].as_array().map(Vec::as_slice).unwrap_or_default() {
            items.extend(item(tweet, users));
        }
        page = body["meta"]["next_token"].as_str().map(str::to_owned);
        if cursor.is_none() || page.is_none() {
            break;
        }
        if round + 1 == INBOX_PAGES {
            tracing::warn!(
                account = %account.id,
                pages = INBOX_PAGES,
                "more X posts arrived than one round reads; the oldest of them are not read"
            );
        }
    }
    // A first read that finds nothing starts from a minute ago, so what
    // arrives before the next read is all read (and not only its last page).
    let cursor = newest
        .or_else(|| cursor.map(str::to_owned))
        .or_else(|| Some(id_at(Timestamp::now().as_datetime() - time::Duration::MINUTE)));
    (Fetched::Items { items, cursor, more: false }, last)
}

/// How far back recent search reads (X's seven days, less a margin).
const SEARCH_WINDOW: time::Duration = time::Duration::hours(7 * 24 - 1);

/// The milliseconds since X's epoch (2010-11-04) start an X id, so the id
/// made from a time reads, as `since_id`, "posts after it".
fn id_at(at: time::OffsetDateTime) -> String {
    const EPOCH_MS: i128 = 1_288_834_974_657;
    let ms = (at.unix_timestamp_nanos() / 1_000_000 - EPOCH_MS).max(0);
    (ms << 22).to_string()
}

/// An X answer as the collector reads it: a 403 is X saying the app's
/// access level (or the token's scopes) does not include the read.
fn x_answer(
    answer: Result<Answer, String>,
) -> Result<(serde_json::Value, CallRecord), Box<(Fetched, CallRecord)>> {
    if let Ok(a) = &answer
        && a.status == StatusCode::FORBIDDEN
    {
        return Err(Box::new((
            Fetched::Refused {
                reason: format!(
                    "X refused the read ({}); the X app's access level must include it (search needs Basic or higher) and the account must grant tweet.read and users.read",
                    a.message()
                ),
            },
            a.record(),
        )));
    }
    metrics_answer(answer, "X")
}

/// A post as an inbox item of `kind`, its author from the answer's
/// `includes.users`; `None` for one without a usable id or author.
fn tweet_item(tweet: &serde_json::Value, users: &[serde_json::Value], kind: &str) -> Option<CollectedItem> {
    let id = tweet["id"]
        .as_str()
        .filter(|id| !id.is_empty() && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit()))?;
    let author = users.iter().find(|u| u["id"] == tweet["author_id"])?;
    let username = author["username"].as_str().filter(|u| !u.is_empty())?;
    let posted_at = tweet["created_at"]
        .as_str()
        .and_then(|t| Timestamp::parse_rfc3339(t).ok())
        .map_or_else(Timestamp::now, |at| at.min(Timestamp::now()));
    let in_reply_to = tweet["referenced_tweets"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["type"] == "replied_to"))
        .and_then(|r| r["id"].as_str())
        .map(str::to_owned);
    Some(CollectedItem {
        platform_item_id: id.to_owned(),
        kind: kind.to_owned(),
        author_handle: format!("@{}", username.chars().take(200).collect::<String>()),
        author_name: author["name"]
            .as_str()
            .filter(|n| !n.trim().is_empty())
            .map(|n| n.chars().take(200).collect()),
        // X escapes these three in a post's text.
        text: tweet["text"]
            .as_str()
            .unwrap_or_default()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
        url: Some(post_url(username, id)),
        in_reply_to,
        posted_at,
        sealed: None,
    })
}

/// Which of `ids` X still shows (`GET /2/tweets?ids=…`, up to 100): X
/// answers 200 with a `resource-not-found` error for each one gone. An id
/// missing for another reason (its author went protected, a suspension)
/// counts as still there: never a deletion, and it does not hold up the
/// rest of the batch. An id missing without any error is a failure.
pub async fn still_there(p: &Platforms, token: &SecretString, ids: &[String]) -> (Fetched, CallRecord) {
    let request =
        p.http().get(api(p, "/2/tweets")).bearer_auth(token.expose_secret()).query(&[("ids", ids.join(","))]);
    let (body, record) = match x_answer(Answer::fetch(request, "X").await) {
        Ok(found) => found,
        Err(failed) => return *failed,
    };
    let found = body["data"].as_array().map(Vec::as_slice).unwrap_or_default();
    let errors = body["errors"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut there = Vec::new();
    for id in ids {
        if found.iter().any(|t| t["id"].as_str() == Some(id.as_str())) {
            there.push(id.clone());
            continue;
        }
        let error = errors.iter().find(|e| e["resource_id"].as_str() == Some(id.as_str()));
        match error.and_then(|e| e["type"].as_str()) {
            Some(t) if t.ends_with("/resource-not-found") => {}
            Some(_) => there.push(id.clone()),
            None => {
                let reason = format!("X answered for post {id} with neither the post nor an error");
                return (Fetched::Failed { reason }, record);
            }
        }
    }
    (Fetched::Present(there), record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_made_of_a_time_sorts_among_the_posts_of_that_time() {
        // 2022-11-01T00:00:00Z, as X's own ids of that day begin.
        let at = time::macros::datetime!(2022-11-01 00:00 UTC);
        let id = id_at(at);
        let newer = |a: &str, b: &str| id_order(a, b).is_gt();
        assert!(newer(&id, "1587000000000000000") && newer("1588000000000000000", &id), "{id}");
        assert!(newer(&id_at(at + time::Duration::SECOND), &id));
        assert_eq!(id_at(time::macros::datetime!(2000-01-01 00:00 UTC)), "0", "never negative");
        assert!(newer("10", "9") && !newer("9", "10") && !newer("5", "5"));
    }
}
