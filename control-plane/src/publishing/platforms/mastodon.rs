//! Mastodon (`../shared/reference/social/mastodon.md`): an app registered
//! per instance, OAuth with PKCE, tokens that do not expire, and
//! `Idempotency-Key` on `POST /api/v1/statuses` (kept by the instance for an
//! hour, per account). The key is the post's id and generation, so the
//! reconciler of an unknown outcome sends the same request again within the
//! hour and gets the post back instead of a second one; later it reads the
//! account's recent statuses.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::{
    Answer, CallRecord, Fetched, Found, Granted, Health, Platforms, Profile, Search, Sent, count,
    followers_at, id_order, limited_until, metrics_answer, present_among,
};
use crate::domain::Timestamp;
use crate::store::{CollectedItem, SocialAccount, SocialPost};

/// `read:notifications` for the inbox (mentions and replies) and
/// `read:search` for keyword listening; an account connected before these
/// existed lacks them, and its inbox (or query) asks for a reconnect.
pub const SCOPES: &str = "read:accounts read:statuses read:notifications read:search write:statuses";

/// Notifications a page holds (the instance's maximum is 80).
pub const INBOX_PAGE: usize = 40;

/// How long an instance keeps idempotency keys, less a margin.
const IDEMPOTENCY_WINDOW: time::Duration = time::Duration::minutes(50);

pub fn idempotency_key(post: &SocialPost) -> String {
    format!("marketer-{}-{}", post.id, post.generation)
}

fn base(account: &SocialAccount) -> &str {
    account.instance_url.as_deref().unwrap_or_default().trim_end_matches('/')
}

/// Checks an instance URL a person typed: `https://host[:port]`, nothing
/// after the host (`http://` only when the server allows it, for tests).
pub fn instance_url(text: &str, allow_insecure: bool) -> Result<String, String> {
    let text = text.trim().trim_end_matches('/');
    let text = if text.contains("://") { text.to_owned() } else { format!("https://{text}") };
    let url = reqwest::Url::parse(&text)
        .map_err(|_| format!("{text:?} is not an instance address; write e.g. mastodon.social"))?;
    let scheme_ok = url.scheme() == "https" || (allow_insecure && url.scheme() == "http");
    if !scheme_ok
        || url.host_str().is_none()
        || url.path() != "/"
        || url.query().is_some()
        || !url.username().is_empty()
    {
        return Err("give the instance as https://host, e.g. https://mastodon.social".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn classify(answer: &Answer, now: Timestamp) -> Sent {
    match answer.status {
        s if s.is_success() => {
            let v = answer.json();
            match v["id"].as_str() {
                Some(id) => Sent::Created { id: id.to_owned(), url: v["url"].as_str().map(str::to_owned) },
                None => Sent::Unknown { reason: "the instance answered without a status id".into() },
            }
        }
        StatusCode::TOO_MANY_REQUESTS => Sent::RateLimited {
            until: limited_until(&answer.headers, now),
            note: format!("Mastodon rate limit reached ({})", answer.message()),
        },
        // Mastodon tokens do not expire: a 401 means revoked.
        StatusCode::UNAUTHORIZED => {
            Sent::Unauthorized { reason: format!("the instance refused the token: {}", answer.message()) }
        }
        StatusCode::FORBIDDEN => Sent::Refused {
            error: format!("the instance refused the post: {}", answer.message()),
            hint: "Check that the account may post (it may be suspended or awaiting approval).".into(),
        },
        s if s.is_server_error() => {
            Sent::Unknown { reason: format!("the instance answered {}: {}", s.as_u16(), answer.message()) }
        }
        s => Sent::Refused {
            error: format!("the instance refused the post ({}): {}", s.as_u16(), answer.message()),
            hint: "Edit the post and schedule it again.".into(),
        },
    }
}

async fn send_status(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
    again: bool,
) -> (Sent, CallRecord) {
    // A reply is no more public than what it answers: an answer to a
    // direct message stays between the two, one to a followers-only status
    // stays with the followers. Sent again after an unknown outcome (the
    // same idempotency key: the instance answers with the status the first
    // request made, whatever this one says), a failed look-up makes it a
    // direct message, the least public.
    let visibility = match &post.reply_to {
        Some(parent) => match parent_visibility(p, account, token, parent).await {
            Ok(visibility) => visibility,
            Err(_) if again => "direct",
            Err(failed) => return *failed,
        },
        None => "public",
    };
    let request = p
        .http()
        .post(format!("{}/api/v1/statuses", base(account)))
        .bearer_auth(token.expose_secret())
        .header("Idempotency-Key", idempotency_key(post))
        .form(&status_form(post, visibility));
    match Answer::send_once(request).await {
        Ok(a) => (classify(&a, Timestamp::now()), a.record()),
        Err(failed) => failed,
    }
}

/// Mastodon's visibilities, most public first.
const VISIBILITIES: [&str; 4] = ["public", "unlisted", "private", "direct"];

/// The visibility of a reply to status `id`: the status's own (read from
/// the instance as the reply is sent), `public` at most. A status that is
/// gone refuses the reply (nothing is sent); one of an unknown visibility
/// is answered as a direct message, the least public.
async fn parent_visibility(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    id: &str,
) -> Result<&'static str, Box<(Sent, CallRecord)>> {
    let url = with_segment(account, "/api/v1/statuses/", id).map_err(|_| {
        let reason = "the instance's address is not usable".to_owned();
        Box::new((Sent::NotSent { reason }, CallRecord::default()))
    })?;
    let request = p.http().get(url).bearer_auth(token.expose_secret());
    let answer = match Answer::fetch(request, "the instance").await {
        Ok(a) => a,
        Err(reason) => return Err(Box::new((Sent::NotSent { reason }, CallRecord::default()))),
    };
    let record = answer.record();
    let sent = match answer.status {
        s if s.is_success() => {
            let said = answer.json()["visibility"].as_str().map(str::to_owned);
            return Ok(VISIBILITIES.into_iter().find(|v| Some(*v) == said.as_deref()).unwrap_or("direct"));
        }
        StatusCode::NOT_FOUND | StatusCode::GONE => Sent::Refused {
            error: "the status this replies to is no longer on the instance".into(),
            hint:
                "Nothing was sent; the item is marked deleted in the inbox when the collector sees it gone."
                    .into(),
        },
        StatusCode::UNAUTHORIZED => Sent::TokenExpired,
        StatusCode::TOO_MANY_REQUESTS => Sent::RateLimited {
            until: limited_until(&answer.headers, Timestamp::now()),
            note: "the instance's rate limit".into(),
        },
        s => Sent::NotSent {
            reason: format!(
                "the instance answered {} reading the status to reply to: {}",
                s.as_u16(),
                answer.message()
            ),
        },
    };
    Err(Box::new((sent, record)))
}

/// A status's form: its text and visibility; a reply names the status it
/// answers.
fn status_form<'a>(post: &'a SocialPost, visibility: &'a str) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![("status", post.text.as_str()), ("visibility", visibility)];
    if let Some(id) = &post.reply_to {
        form.push(("in_reply_to_id", id.as_str()));
    }
    form
}

pub async fn publish(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Sent, CallRecord) {
    send_status(p, account, token, post, false).await
}

/// A status's counts (`GET /api/v1/statuses/{id}`): favourites are likes,
/// replies comments, boosts (and quotes, on instances that count them)
/// shares. Mastodon reports no impressions.
pub async fn metrics(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    id: &str,
) -> (Fetched, CallRecord) {
    let request =
        p.http().get(format!("{}/api/v1/statuses/{id}", base(account))).bearer_auth(token.expose_secret());
    let (status, record) = match metrics_answer(Answer::fetch(request, "the instance").await, "the instance")
    {
        Ok(found) => found,
        Err(failed) => return *failed,
    };
    let shares = match (count(&status, "reblogs_count"), count(&status, "quotes_count")) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    let metrics = crate::store::Metrics {
        likes: count(&status, "favourites_count"),
        comments: count(&status, "replies_count"),
        shares,
        ..crate::store::Metrics::default()
    };
    let raw = serde_json::json!({
        "favourites_count": status.get("favourites_count"),
        "replies_count": status.get("replies_count"),
        "reblogs_count": status.get("reblogs_count"),
        "quotes_count": status.get("quotes_count"),
    });
    (Fetched::Metrics { metrics, raw: raw.to_string() }, record)
}

/// The account's followers (`followers_count` of `verify_credentials`).
pub async fn followers(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
) -> (Fetched, CallRecord) {
    let request = p
        .http()
        .get(format!("{}/api/v1/accounts/verify_credentials", base(account)))
        .bearer_auth(token.expose_secret());
    let read = metrics_answer(Answer::fetch(request, "the instance").await, "the instance");
    followers_at(read, "/followers_count", "the instance")
}

/// Mentions of the account, replies to its posts among them
/// (`GET /api/v1/notifications?types[]=mention`). From a cursor (the
/// newest notification id seen), `min_id` pages forward: the page right
/// after it, `more` when it is full. Without one (the first read), the
/// latest page only: a new account's inbox starts from now, not from
/// years of history.
pub async fn inbox(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    cursor: Option<&str>,
) -> (Fetched, CallRecord) {
    let mut query = vec![("types[]", "mention".to_owned()), ("limit", INBOX_PAGE.to_string())];
    if let Some(cursor) = cursor {
        query.push(("min_id", cursor.to_owned()));
    }
    let request = p
        .http()
        .get(format!("{}/api/v1/notifications", base(account)))
        .query(&query)
        .bearer_auth(token.expose_secret());
    let (page, record) = match listed(request).await {
        Ok(found) => found,
        Err(failed) => return *failed,
    };
    let items = page.iter().filter_map(|n| mention(account, n)).collect();
    (forward(&page, items, cursor), record)
}

/// A page read forward from `cursor` as what the engine stores: its
/// items, the newest id as the next cursor, and whether more wait (a
/// full page). A first read that finds nothing starts from the
/// beginning, so what arrives before the next read is all read.
fn forward(page: &[serde_json::Value], items: Vec<CollectedItem>, cursor: Option<&str>) -> Fetched {
    let newest =
        page.iter().filter_map(|n| n["id"].as_str()).max_by(|a, b| id_order(a, b)).map(str::to_owned);
    let more = cursor.is_some() && page.len() >= INBOX_PAGE;
    let cursor = newest.or_else(|| Some(cursor.unwrap_or("0").to_owned()));
    Fetched::Items { items, cursor, more }
}

/// A mention notification's status as an inbox item; `None` for one
/// without a usable status (deleted since, or malformed).
fn mention(account: &SocialAccount, notification: &serde_json::Value) -> Option<CollectedItem> {
    let status = notification.get("status").filter(|s| s.is_object())?;
    let replying_to_us = status["in_reply_to_account_id"].as_str() == Some(account.external_id.as_str());
    status_item(status, if replying_to_us { "reply" } else { "mention" })
}

/// A status as an inbox item of `kind`.
fn status_item(status: &serde_json::Value, kind: &str) -> Option<CollectedItem> {
    let id = status["id"].as_str().filter(|id| !id.is_empty() && id.len() <= 64)?;
    let posted_at = status["created_at"]
        .as_str()
        .and_then(|t| Timestamp::parse_rfc3339(t).ok())
        .unwrap_or_else(Timestamp::now);
    let author = &status["account"];
    let acct = author["acct"].as_str().filter(|a| !a.is_empty())?;
    Some(CollectedItem {
        platform_item_id: id.to_owned(),
        kind: kind.to_owned(),
        author_handle: format!("@{}", acct.chars().take(200).collect::<String>()),
        author_name: author["display_name"]
            .as_str()
            .filter(|n| !n.trim().is_empty())
            .map(|n| n.chars().take(200).collect()),
        text: text_of(status["content"].as_str().unwrap_or_default()),
        url: status["url"]
            .as_str()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(str::to_owned),
        in_reply_to: status["in_reply_to_id"].as_str().map(str::to_owned),
        posted_at,
        sealed: None,
    })
}

/// Public statuses a listening query finds since a cursor; the account's
/// own statuses are left out.
///
/// - A hashtag reads its timeline (`GET /api/v1/timelines/tag/{tag}`),
///   paged forward from the cursor as the mentions are.
/// - A keyword reads the instance's full-text search
///   (`GET /api/v2/search?type=statuses`), which finds the statuses of
///   people who let their posts be searched (Mastodon 4.2 and later) on
///   an instance with search enabled. Near matches it also finds are left
///   out ([`Search::finds`]). Search answers newest first, `min_id` only a
///   lower bound, so a round reads back page by page (`max_id`) to the
///   cursor, at most [`SEARCH_PAGES`] pages.
pub async fn listen(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    search: Search<'_>,
    cursor: Option<&str>,
) -> (Fetched, CallRecord) {
    let found = |page: &[serde_json::Value]| -> Vec<CollectedItem> {
        page.iter()
            .filter(|s| s["account"]["id"].as_str() != Some(account.external_id.as_str()))
            .filter_map(|s| status_item(s, "listening"))
            .filter(|item| search.finds(&item.text))
            .collect()
    };
    let mut query = vec![("limit", INBOX_PAGE.to_string())];
    if let Some(cursor) = cursor {
        query.push(("min_id", cursor.to_owned()));
    }
    let word = match search {
        Search::Hashtag(tag) => {
            let url = match with_segment(account, "/api/v1/timelines/tag/", tag) {
                Ok(url) => url,
                Err(failed) => return *failed,
            };
            let request = p.http().get(url).query(&query).bearer_auth(token.expose_secret());
            let (page, record) = match listed(request).await {
                Ok(page) => page,
                Err(failed) => return *failed,
            };
            return (forward(&page, found(&page), cursor), record);
        }
        Search::Keyword(word) => word,
    };
    query.extend([("q", word.to_owned()), ("type", "statuses".into()), ("resolve", "false".into())]);
    let mut items = Vec::new();
    let mut newest: Option<String> = None;
    let mut older_than: Option<String> = None;
    let mut last = CallRecord::default();
    for round in 0..SEARCH_PAGES {
        let mut query = query.clone();
        if let Some(max) = &older_than {
            query.push(("max_id", max.clone()));
        }
        let request = p
            .http()
            .get(format!("{}/api/v2/search", base(account)))
            .query(&query)
            .bearer_auth(token.expose_secret());
        let (page, record) = match listed_in(request, Some("statuses")).await {
            Ok(page) => page,
            Err(failed) => return *failed,
        };
        last = record;
        let ids = || page.iter().filter_map(|s| s["id"].as_str());
        if round == 0 {
            newest = ids().max_by(|a, b| id_order(a, b)).map(str::to_owned);
        }
        items.extend(found(&page));
        older_than = ids().min_by(|a, b| id_order(a, b)).map(str::to_owned);
        // A first read takes the latest page, not the keyword's history.
        if cursor.is_none() || page.len() < INBOX_PAGE || older_than.is_none() {
            break;
        }
        if round + 1 == SEARCH_PAGES {
            tracing::warn!(
                account = %account.id,
                pages = SEARCH_PAGES,
                "more statuses matched a keyword than one round reads; the oldest of them are not read"
            );
        }
    }
    let cursor = newest.or_else(|| Some(cursor.unwrap_or("0").to_owned()));
    (Fetched::Items { items, cursor, more: false }, last)
}

/// Pages of keyword search one round reads at most (newest first).
const SEARCH_PAGES: usize = 5;

/// Which of `ids` (statuses) the instance still shows
/// (`GET /api/v1/statuses?id[]=…`, Mastodon 4.3 and later: deleted or no
/// longer visible statuses are left out of the answer). An older instance
/// answers 404 for the whole request, which is a failure, never a
/// deletion. One id is asked about on its own (`GET /api/v1/statuses/:id`,
/// every version: 404 when it is gone), which is how a batch that came
/// back empty is confirmed.
pub async fn still_there(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    ids: &[String],
) -> (Fetched, CallRecord) {
    if let [id] = ids {
        let url = match with_segment(account, "/api/v1/statuses/", id) {
            Ok(url) => url,
            Err(failed) => return *failed,
        };
        let request = p.http().get(url).bearer_auth(token.expose_secret());
        return match metrics_answer(Answer::fetch(request, "the instance").await, "the instance") {
            Ok((status, record)) => {
                let present = status["id"].as_str() == Some(id.as_str());
                (Fetched::Present(if present { vec![id.clone()] } else { Vec::new() }), record)
            }
            Err(failed) => match *failed {
                (Fetched::Gone, record) => (Fetched::Present(Vec::new()), record),
                other => other,
            },
        };
    }
    let query: Vec<(&str, &str)> = ids.iter().map(|id| ("id[]", id.as_str())).collect();
    let request = p
        .http()
        .get(format!("{}/api/v1/statuses", base(account)))
        .query(&query)
        .bearer_auth(token.expose_secret());
    let (page, record) = match listed(request).await {
        Ok(found) => found,
        Err(failed) => return *failed,
    };
    (present_among(&page, "id", ids), record)
}

/// The instance's `path` (ending in `/`) with `segment` appended as one
/// escaped path segment (a hashtag, a status id: never trusted to be
/// plain).
fn with_segment(
    account: &SocialAccount,
    path: &str,
    segment: &str,
) -> Result<reqwest::Url, Box<(Fetched, CallRecord)>> {
    let mut url = reqwest::Url::parse(&format!("{}{path}", base(account))).map_err(|e| {
        Box::new((
            Fetched::Failed { reason: format!("the instance's address is not usable: {e}") },
            CallRecord::default(),
        ))
    })?;
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(segment);
    }
    Ok(url)
}

/// A listing request's page, or what the engine must do.
async fn listed(
    request: reqwest::RequestBuilder,
) -> Result<(Vec<serde_json::Value>, CallRecord), Box<(Fetched, CallRecord)>> {
    listed_in(request, None).await
}

/// A listing request's page, the answer itself or its `key` field (a
/// search's `statuses`), or what the engine must do.
async fn listed_in(
    request: reqwest::RequestBuilder,
    key: Option<&str>,
) -> Result<(Vec<serde_json::Value>, CallRecord), Box<(Fetched, CallRecord)>> {
    let answer = match Answer::fetch(request, "the instance").await {
        Ok(a) => a,
        Err(reason) => return Err(Box::new((Fetched::Failed { reason }, CallRecord::default()))),
    };
    let record = answer.record();
    let fetched = match answer.status {
        s if s.is_success() => {
            let body = answer.json();
            let list = match key {
                Some(key) => &body[key],
                None => &body,
            };
            return match list {
                serde_json::Value::Array(page) => Ok((page.clone(), record)),
                _ => Err(Box::new((
                    Fetched::Failed { reason: "the instance answered with no list".into() },
                    record,
                ))),
            };
        }
        StatusCode::UNAUTHORIZED => Fetched::TokenExpired,
        StatusCode::FORBIDDEN => Fetched::Refused {
            reason: format!(
                "the instance refused the read ({}); reconnect the account so it grants read:notifications, read:statuses and read:search",
                answer.message()
            ),
        },
        StatusCode::TOO_MANY_REQUESTS => Fetched::RateLimited {
            until: limited_until(&answer.headers, Timestamp::now()),
            note: "the instance's rate limit".into(),
        },
        s => {
            Fetched::Failed { reason: format!("the instance answered {}: {}", s.as_u16(), answer.message()) }
        }
    };
    Err(Box::new((fetched, record)))
}

pub async fn find(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Found, CallRecord) {
    let since = post.unconfirmed_since.unwrap_or(post.updated_at);
    if Timestamp::now().as_datetime() - since.as_datetime() < IDEMPOTENCY_WINDOW {
        // The same key again: the instance answers with the status the
        // first request created, or creates it now, exactly once.
        let (sent, record) = send_status(p, account, token, post, true).await;
        let found = match sent {
            Sent::Created { id, url } => Found::Present { id, url },
            Sent::Refused { .. } | Sent::NotSent { .. } => Found::Absent,
            Sent::RateLimited { until, note } => Found::RateLimited { until, note },
            Sent::TokenExpired | Sent::Unauthorized { .. } => Found::TokenExpired,
            Sent::Unknown { reason } => Found::Unknown { reason },
            Sent::Prepared { .. } | Sent::NotReady { .. } => {
                Found::Unknown { reason: "the instance answered as it never does for a status".into() }
            }
        };
        return (found, record);
    }
    let request = p
        .http()
        .get(format!("{}/api/v1/accounts/{}/statuses", base(account), account.external_id))
        .bearer_auth(token.expose_secret())
        .query(&[("limit", "40"), ("exclude_reblogs", "true")]);
    let answer = match Answer::fetch(request, "the instance").await {
        Ok(a) => a,
        Err(reason) => return (Found::Unknown { reason }, CallRecord::default()),
    };
    let record = answer.record();
    if !answer.status.is_success() {
        return (
            Found::Unknown { reason: format!("the instance answered {}", answer.status.as_u16()) },
            record,
        );
    }
    let want = plain(&post.text);
    let statuses = answer.json();
    let items = statuses.as_array().cloned().unwrap_or_default();
    for item in &items {
        if item["content"].as_str().map(plain) == Some(want.clone())
            && let Some(id) = item["id"].as_str()
        {
            return (
                Found::Present { id: id.to_owned(), url: item["url"].as_str().map(str::to_owned) },
                record,
            );
        }
    }
    // Absent only if the page reaches back before the first request.
    let oldest =
        items.last().and_then(|i| i["created_at"].as_str()).and_then(|t| Timestamp::parse_rfc3339(t).ok());
    if items.len() < 40 || oldest.is_some_and(|o| o < since) {
        (Found::Absent, record)
    } else {
        (Found::Unknown { reason: "more statuses since the post than one page holds".into() }, record)
    }
}

/// A status's HTML content as the text people read: inline tags (a
/// mention's link) vanish, paragraphs and line breaks become new lines,
/// entities are decoded.
fn text_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].trim().to_ascii_lowercase();
        let name = tag.split(|c: char| c.is_whitespace() || c == '/').find(|n| !n.is_empty()).unwrap_or("");
        match (name, tag.starts_with('/')) {
            ("br", _) => out.push('\n'),
            ("p", true) => out.push_str("\n\n"),
            _ => {}
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    decode_entities(out.trim())
}

/// The entities Mastodon's HTML uses, and numeric ones.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let entity = after.find(';').filter(|end| *end <= 10).map(|end| &after[..end]);
        let decoded = entity.and_then(|e| match e {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => e
                .strip_prefix("#x")
                .or_else(|| e.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        });
        match (decoded, entity) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &after[e.len() + 1..];
            }
            _ => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A status's HTML content, or a post's text, as comparable plain words.
fn plain(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let out = out
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub async fn delete(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    id: &str,
) -> Result<CallRecord, String> {
    let request =
        p.http().delete(format!("{}/api/v1/statuses/{id}", base(account))).bearer_auth(token.expose_secret());
    let answer = Answer::fetch(request, "the instance").await?;
    if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
        Ok(answer.record())
    } else {
        Err(format!(
            "the instance refused to delete the status ({}): {}",
            answer.status.as_u16(),
            answer.message()
        ))
    }
}

pub async fn check(p: &Platforms, account: &SocialAccount, token: &SecretString) -> Health {
    match verify(p, base(account), token).await {
        Ok(_) => Health::Ok,
        Err(h) => h,
    }
}

async fn verify(p: &Platforms, instance: &str, token: &SecretString) -> Result<Profile, Health> {
    let request = p
        .http()
        .get(format!("{instance}/api/v1/accounts/verify_credentials"))
        .bearer_auth(token.expose_secret());
    let answer =
        Answer::fetch(request, "the instance").await.map_err(|reason| Health::Unreachable { reason })?;
    match answer.status {
        s if s.is_success() => {
            let v = answer.json();
            let id = v["id"].as_str().unwrap_or_default().to_owned();
            let acct = v["acct"].as_str().or(v["username"].as_str()).unwrap_or_default().to_owned();
            if id.is_empty() || acct.is_empty() {
                return Err(Health::Unreachable {
                    reason: "the instance answered without the account's id".into(),
                });
            }
            let host = reqwest::Url::parse(instance)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_default();
            Ok(Profile {
                external_id: id,
                handle: if acct.contains('@') { format!("@{acct}") } else { format!("@{acct}@{host}") },
                display_name: v["display_name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&acct)
                    .to_owned(),
                profile_url: v["url"].as_str().map(str::to_owned),
            })
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(Health::Unauthorized {
            reason: format!("the instance refused the token: {}", answer.message()),
        }),
        StatusCode::TOO_MANY_REQUESTS => Err(Health::RateLimited {
            until: limited_until(&answer.headers, Timestamp::now()),
            note: "Mastodon rate limit on account checks".into(),
        }),
        s => Err(Health::Unreachable { reason: format!("the instance answered {}", s.as_u16()) }),
    }
}

/// Registers Marketer as an app on an instance (`POST /api/v1/apps`).
pub async fn register_app(p: &Platforms, instance: &str) -> Result<(String, SecretString), String> {
    let redirect = p.settings.redirect_uri(crate::store::Network::Mastodon);
    let request = p.http().post(format!("{instance}/api/v1/apps")).form(&[
        ("client_name", "Marketer"),
        ("redirect_uris", redirect.as_str()),
        ("scopes", SCOPES),
    ]);
    let answer = Answer::fetch(request, instance).await?;
    if !answer.status.is_success() {
        return Err(format!("{instance} refused to register Marketer: {}", answer.message()));
    }
    let v = answer.json();
    match (v["client_id"].as_str(), v["client_secret"].as_str()) {
        (Some(id), Some(secret)) => Ok((id.to_owned(), SecretString::from(secret.to_owned()))),
        _ => Err(format!("{instance} answered the registration without client credentials")),
    }
}

pub fn authorize_url(
    p: &Platforms,
    instance: &str,
    client_id: &str,
    state: &str,
    challenge: &str,
) -> Result<String, String> {
    let mut url = reqwest::Url::parse(&format!("{instance}/oauth/authorize")).map_err(|e| e.to_string())?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &p.settings.redirect_uri(crate::store::Network::Mastodon))
        .append_pair("scope", SCOPES)
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

pub async fn exchange(
    p: &Platforms,
    instance: &str,
    client_id: &str,
    secret: &SecretString,
    code: &str,
    verifier: &str,
) -> Result<(Granted, Profile), String> {
    let redirect = p.settings.redirect_uri(crate::store::Network::Mastodon);
    let request = p.http().post(format!("{instance}/oauth/token")).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", client_id),
        ("client_secret", secret.expose_secret()),
        ("redirect_uri", &redirect),
        ("code_verifier", verifier),
    ]);
    let answer = Answer::fetch(request, instance).await?;
    if !answer.status.is_success() {
        return Err(format!("{instance} refused the authorisation: {}", answer.message()));
    }
    let v = answer.json();
    let access = v["access_token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("the instance answered without a token")?;
    let granted = Granted { access: SecretString::from(access.to_owned()), refresh: None, expires_in: None };
    let profile = verify(p, instance, &granted.access)
        .await
        .map_err(|h| format!("the instance did not show the account: {h:?}"))?;
    Ok((granted, profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_addresses_are_checked() {
        assert_eq!(instance_url("mastodon.social", false).unwrap(), "https://mastodon.social");
        assert_eq!(instance_url("https://fosstodon.org/", false).unwrap(), "https://fosstodon.org");
        assert!(instance_url("http://127.0.0.1:9000", false).is_err());
        assert_eq!(instance_url("http://127.0.0.1:9000", true).unwrap(), "http://127.0.0.1:9000");
        assert!(instance_url("https://x.org/path", false).is_err());
        assert!(instance_url("https://user@x.org", false).is_err());
    }

    #[test]
    fn a_mentions_html_reads_as_its_author_wrote_it() {
        let html = "<p><span class=\"h-card\"><a href=\"https://m.example/@marketer\" class=\"u-url mention\">@<span>marketer</span></a></span> Is parking &lt;free&gt;? &#129300;</p><p>Line two<br/>and three &amp; more &bogus; &</p>";
        assert_eq!(
            text_of(html),
            "@marketer Is parking <free>? \u{1f914}\n\nLine two\nand three & more &bogus; &"
        );
        assert_eq!(text_of("no tags < here"), "no tags");
        assert_eq!(text_of(""), "");
    }

    #[test]
    fn html_content_compares_with_the_text() {
        assert_eq!(
            plain("<p>Spring open house &amp; tour<br>#homes</p>"),
            plain("Spring open house & tour\n#homes")
        );
    }
}
