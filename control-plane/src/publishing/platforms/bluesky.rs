//! Bluesky (`../shared/reference/social/bluesky.md`): an app password
//! exchanged for a session (`createSession`), short-lived access JWTs and
//! rotating refresh JWTs (`refreshSession`); an expired access token is a
//! 400 `ExpiredToken`, not a 401. Posts are `app.bsky.feed.post` records
//! created with a record key Marketer chooses (a TID derived from the post's
//! id and generation), so after an unknown outcome `getRecord` tells
//! whether the post exists before anything is sent again. A post's counts
//! come from the AppView (`getPosts`).
//!
//! The inbox reads mentions, replies and quotes from the account's
//! notifications (`listNotifications`) and listening finds from post
//! search (`searchPosts`), both through the account's PDS. Both list newest
//! first, so a read walks back from the newest until it reaches what the
//! last read saw (the cursor is the newest `indexedAt` seen). An inbox
//! item's id is its post's `at://` URI; a reply to one names it and its
//! thread's root with their CIDs, read from the AppView when it is sent.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{
    Answer, CallRecord, Fetched, Found, Granted, Health, Platforms, Profile, Refreshed, Search, Sent, count,
    followers_at, limited_until, metrics_answer, present_among,
};
use crate::domain::Timestamp;
use crate::store::{CollectedItem, Metrics, SocialAccount, SocialPost};

pub const DEFAULT_SERVICE: &str = "https://bsky.social";
const COLLECTION: &str = "app.bsky.feed.post";

fn base(account: &SocialAccount) -> &str {
    account.instance_url.as_deref().unwrap_or(DEFAULT_SERVICE).trim_end_matches('/')
}

/// The sortable base-32 alphabet of TIDs.
const S32: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// The record key of a post's generation: a valid TID (53 bits of
/// microseconds, 10 bits of clock id) made from the post's UUIDv7 time and
/// random bits, so it is the same for every attempt of one generation and
/// different for the next.
pub fn record_key(post_id: Uuid, generation: i64) -> String {
    let bytes = post_id.as_bytes();
    let millis = u64::from_be_bytes([0, 0, bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]]);
    // Sub-millisecond digits from the id's random bits keep keys of posts
    // made in one millisecond apart.
    let sub = u64::from(u16::from_be_bytes([bytes[8] & 0x3f, bytes[9]])) % 1000;
    let micros = (millis * 1000 + sub) & ((1 << 53) - 1);
    let clock = (u64::from(bytes[15]) ^ (u64::try_from(generation).unwrap_or(0) * 97)) & 0x3ff;
    let mut value = (micros << 10) | clock;
    let mut out = [0u8; 13];
    for slot in out.iter_mut().rev() {
        *slot = S32[(value & 31) as usize];
        value >>= 5;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn post_url(handle: &str, rkey: &str) -> String {
    format!("https://bsky.app/profile/{}/post/{rkey}", handle.trim_start_matches('@'))
}

/// The `exp` of a JWT, read without checking it (the PDS checks it; this
/// only schedules the refresh).
pub fn jwt_expiry(token: &str) -> Option<i64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims["exp"].as_i64()
}

fn error_name(a: &Answer) -> String {
    a.json()["error"].as_str().unwrap_or_default().to_owned()
}

fn classify(a: &Answer, post: &SocialPost, rkey: &str) -> Sent {
    match a.status {
        s if s.is_success() => {
            let _ = a.json()["uri"].as_str();
            Sent::Created { id: rkey.to_owned(), url: Some(post_url(&post.handle, rkey)) }
        }
        StatusCode::TOO_MANY_REQUESTS => Sent::RateLimited {
            until: limited_until(&a.headers, Timestamp::now()),
            note: "Bluesky rate limit reached".into(),
        },
        StatusCode::BAD_REQUEST if error_name(a) == "ExpiredToken" => Sent::TokenExpired,
        StatusCode::BAD_REQUEST if error_name(a) == "InvalidToken" => {
            Sent::Unauthorized { reason: format!("Bluesky refused the session: {}", a.message()) }
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Sent::Unauthorized { reason: format!("Bluesky refused the session: {}", a.message()) }
        }
        s if s.is_server_error() => {
            Sent::Unknown { reason: format!("Bluesky answered {}: {}", s.as_u16(), a.message()) }
        }
        s => Sent::Refused {
            error: format!("Bluesky refused the post ({}): {}", s.as_u16(), a.message()),
            hint: "Edit the post (Bluesky allows 300 characters) and schedule it again.".into(),
        },
    }
}

pub async fn publish(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Sent, CallRecord) {
    let rkey = record_key(post.id, post.generation);
    let created_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut record = serde_json::json!({ "$type": COLLECTION, "text": post.text, "createdAt": created_at });
    if let Some(parent) = &post.reply_to {
        match reply_refs(p, account, token, parent).await {
            Ok((refs, author)) => {
                record["reply"] = refs;
                // The answered author named in the text is a mention (a
                // link to them, as the apps make it), not plain text.
                if let Some((handle, did)) = author {
                    let facets = mention_facets(&post.text, &handle, &did);
                    if !facets.is_empty() {
                        record["facets"] = serde_json::Value::Array(facets);
                    }
                }
            }
            Err(failed) => return *failed,
        }
    }
    let body = serde_json::json!({
        "repo": account.external_id,
        "collection": COLLECTION,
        "rkey": rkey,
        "record": record,
    });
    let request = p
        .http()
        .post(format!("{}/xrpc/com.atproto.repo.createRecord", base(account)))
        .bearer_auth(token.expose_secret())
        .json(&body);
    match Answer::send_once(request).await {
        Ok(a) => (classify(&a, post, &rkey), a.record()),
        Err(failed) => failed,
    }
}

/// The `at://` URI of a post id Marketer keeps: inbox items keep the URI,
/// the account's own posts their record key.
fn post_uri(account: &SocialAccount, id: &str) -> String {
    if id.starts_with("at://") {
        id.to_owned()
    } else {
        format!("at://{}/{COLLECTION}/{id}", account.external_id)
    }
}

/// A reply's `reply` field: the post it answers (`parent`) and its
/// thread's first post (`root`), each with its CID, and the parent's
/// author (handle and DID), read from the AppView as it is sent. A parent
/// the AppView no longer shows refuses the reply.
async fn reply_refs(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    parent: &str,
) -> Result<(serde_json::Value, Option<(String, String)>), Box<(Sent, CallRecord)>> {
    let uri = post_uri(account, parent);
    let request = appview(p, account, token, "app.bsky.feed.getPosts").query(&[("uris", uri.as_str())]);
    let answer = match Answer::fetch(request, "Bluesky").await {
        Ok(a) => a,
        Err(reason) => return Err(Box::new((Sent::NotSent { reason }, CallRecord::default()))),
    };
    let call = answer.record();
    if !answer.status.is_success() {
        let sent = match answer.status {
            StatusCode::TOO_MANY_REQUESTS => Sent::RateLimited {
                until: limited_until(&answer.headers, Timestamp::now()),
                note: "Bluesky rate limit".into(),
            },
            StatusCode::BAD_REQUEST if error_name(&answer) == "ExpiredToken" => Sent::TokenExpired,
            s => Sent::NotSent {
                reason: format!(
                    "Bluesky answered {} reading the post to reply to: {}",
                    s.as_u16(),
                    answer.message()
                ),
            },
        };
        return Err(Box::new((sent, call)));
    }
    let body = answer.json();
    let view = body["posts"].as_array().and_then(|posts| posts.iter().find(|v| v["uri"] == uri.as_str()));
    let Some((view, cid)) = view.and_then(|v| Some((v, v["cid"].as_str()?))) else {
        return Err(Box::new((
            Sent::Refused {
                error: "the post this replies to is no longer on Bluesky".into(),
                hint: "Nothing was sent; the item is marked deleted in the inbox when the collector sees it gone."
                    .into(),
            },
            call,
        )));
    };
    let parent_ref = serde_json::json!({ "uri": uri, "cid": cid });
    let root = &view["record"]["reply"]["root"];
    let root_ref = if root["uri"].is_string() && root["cid"].is_string() {
        serde_json::json!({ "uri": root["uri"], "cid": root["cid"] })
    } else {
        parent_ref.clone()
    };
    let author = match (view["author"]["handle"].as_str(), view["author"]["did"].as_str()) {
        (Some(handle), Some(did)) if did.starts_with("did:") => Some((handle.to_owned(), did.to_owned())),
        _ => None,
    };
    Ok((serde_json::json!({ "root": root_ref, "parent": parent_ref }), author))
}

/// Mention facets (`app.bsky.richtext.facet#mention`) for each `@handle`
/// in `text` that stands as a whole handle (a sentence's full stop after
/// it is not part of it); indexes count UTF-8 bytes, as Bluesky's do.
fn mention_facets(text: &str, handle: &str, did: &str) -> Vec<serde_json::Value> {
    let needle = format!("@{handle}");
    let part_of_handle = |c: char| c.is_alphanumeric() || c == '-' || c == '_';
    text.match_indices(&needle)
        .filter(|(at, _)| !text[..*at].chars().next_back().is_some_and(|c| part_of_handle(c) || c == '.'))
        .filter(|(at, _)| {
            let mut after = text[at + needle.len()..].chars();
            match after.next() {
                None => true,
                Some('.') => !after.next().is_some_and(part_of_handle),
                Some(c) => !part_of_handle(c),
            }
        })
        .map(|(at, _)| {
            serde_json::json!({
                "index": { "byteStart": at, "byteEnd": at + needle.len() },
                "features": [{ "$type": "app.bsky.richtext.facet#mention", "did": did }],
            })
        })
        .collect()
}

/// The account's post record `rkey` (`com.atproto.repo.getRecord`).
async fn get_record(p: &Platforms, account: &SocialAccount, rkey: &str) -> Result<Answer, String> {
    let request = p.http().get(format!("{}/xrpc/com.atproto.repo.getRecord", base(account))).query(&[
        ("repo", account.external_id.as_str()),
        ("collection", COLLECTION),
        ("rkey", rkey),
    ]);
    Answer::fetch(request, "Bluesky").await
}

/// The PDS's answer that a record does not exist.
fn record_not_found(answer: &Answer) -> bool {
    matches!(answer.status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND)
        && error_name(answer) == "RecordNotFound"
}

/// Whether the record of the post's generation exists.
pub async fn find(p: &Platforms, account: &SocialAccount, post: &SocialPost) -> (Found, CallRecord) {
    let rkey = record_key(post.id, post.generation);
    let answer = match get_record(p, account, &rkey).await {
        Ok(a) => a,
        Err(reason) => return (Found::Unknown { reason }, CallRecord::default()),
    };
    let record = answer.record();
    let found = match answer.status {
        s if s.is_success() => Found::Present { id: rkey.clone(), url: Some(post_url(&post.handle, &rkey)) },
        _ if record_not_found(&answer) => Found::Absent,
        StatusCode::TOO_MANY_REQUESTS => Found::RateLimited {
            until: limited_until(&answer.headers, Timestamp::now()),
            note: "Bluesky rate limit on reading".into(),
        },
        s => Found::Unknown { reason: format!("Bluesky answered {}: {}", s.as_u16(), answer.message()) },
    };
    (found, record)
}

/// A post's counts (`app.bsky.feed.getPosts`): likes, replies (comments),
/// reposts and quotes (shares), bookmarks (saves); Bluesky has no
/// impressions. Read from the AppView: through the account's PDS, which
/// proxies `app.bsky.*` with the session, or from a public AppView when
/// the server is configured with one. A post the AppView does not show is
/// looked up in the repository: gone if its record is, else not indexed
/// yet (read again later).
pub async fn metrics(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    rkey: &str,
) -> (Fetched, CallRecord) {
    let uri = format!("at://{}/{COLLECTION}/{rkey}", account.external_id);
    let request = appview(p, account, token, "app.bsky.feed.getPosts");
    let (body, record) = match appview_answer(request.query(&[("uris", uri.as_str())])).await {
        Ok(found) => found,
        Err(failed) => return *failed,
    };
    let posts = body["posts"].as_array().cloned().unwrap_or_default();
    let Some(view) = posts.iter().find(|v| v["uri"] == uri.as_str()) else {
        let gone = match get_record(p, account, rkey).await {
            Ok(answer) => record_not_found(&answer),
            Err(_) => false,
        };
        return if gone {
            (Fetched::Gone, record)
        } else {
            (Fetched::Failed { reason: "Bluesky's AppView does not show the post yet".into() }, record)
        };
    };
    let shares = match (count(view, "repostCount"), count(view, "quoteCount")) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
    };
    let metrics = Metrics {
        likes: count(view, "likeCount"),
        comments: count(view, "replyCount"),
        shares,
        saves: count(view, "bookmarkCount"),
        ..Metrics::default()
    };
    let raw = serde_json::json!({
        "likeCount": view.get("likeCount"),
        "replyCount": view.get("replyCount"),
        "repostCount": view.get("repostCount"),
        "quoteCount": view.get("quoteCount"),
        "bookmarkCount": view.get("bookmarkCount"),
    });
    (Fetched::Metrics { metrics, raw: raw.to_string() }, record)
}

/// The account's followers (`app.bsky.actor.getProfile`'s
/// `followersCount`, from the AppView as [`metrics`] reads it).
pub async fn followers(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
) -> (Fetched, CallRecord) {
    let request = appview(p, account, token, "app.bsky.actor.getProfile")
        .query(&[("actor", account.external_id.as_str())]);
    followers_at(appview_answer(request).await, "/followersCount", "Bluesky")
}

/// Notifications (and search results) asked for per page.
pub const INBOX_PAGE: usize = 50;
/// Pages one read walks back at most (a busy account's round).
const INBOX_PAGES: usize = 10;
/// How far before the cursor a read looks again.
const OVERLAP: time::Duration = time::Duration::minutes(15);

/// Mentions, replies to the account's posts and quotes of them
/// (`app.bsky.notification.listNotifications`), newer than `cursor`.
/// Without one (the first read) the latest page only: a new account's
/// inbox starts from now.
pub async fn inbox(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    cursor: Option<&str>,
) -> (Fetched, CallRecord) {
    walk_back(
        cursor,
        |page| {
            let mut query = vec![
                ("limit", INBOX_PAGE.to_string()),
                ("reasons", "mention".into()),
                ("reasons", "reply".into()),
                ("reasons", "quote".into()),
            ];
            if let Some(page) = page {
                query.push(("cursor", page.to_owned()));
            }
            pds(p, account, token, "app.bsky.notification.listNotifications").query(&query)
        },
        "notifications",
        |n| {
            let kind = match n["reason"].as_str()? {
                "reply" => "reply",
                "mention" | "quote" => "mention",
                _ => return None,
            };
            post_item(account, n, &n["record"], kind)
        },
    )
    .await
}

/// Posts a listening query finds (`app.bsky.feed.searchPosts`, newest
/// first), newer than `cursor`; the account's own posts are left out, and
/// so are near matches the search also finds ([`Search::finds`]).
pub async fn listen(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    search: Search<'_>,
    cursor: Option<&str>,
) -> (Fetched, CallRecord) {
    let q = match search {
        // Hashtags match in any case on Bluesky; lower case also suits
        // search services that compare text as it is.
        Search::Hashtag(tag) => format!("#{}", tag.to_lowercase()),
        Search::Keyword(word) => word.to_owned(),
    };
    walk_back(
        cursor,
        |page| {
            let mut query =
                vec![("q", q.clone()), ("sort", "latest".into()), ("limit", INBOX_PAGE.to_string())];
            if let Some(page) = page {
                query.push(("cursor", page.to_owned()));
            }
            pds(p, account, token, "app.bsky.feed.searchPosts").query(&query)
        },
        "posts",
        |view| {
            if view["author"]["did"].as_str() == Some(account.external_id.as_str()) {
                return None;
            }
            post_item(account, view, &view["record"], "listening").filter(|item| search.finds(&item.text))
        },
    )
    .await
}

/// Reads a newest-first list page by page until an entry older than
/// `cursor` (an `indexedAt`): what `item` makes of the newer entries, and
/// the newest `indexedAt` as the next cursor. Entries as old as the cursor
/// are read again (stored once all the same), so none indexed in the same
/// millisecond is skipped.
async fn walk_back(
    cursor: Option<&str>,
    request: impl Fn(Option<&str>) -> reqwest::RequestBuilder,
    list: &str,
    item: impl Fn(&serde_json::Value) -> Option<CollectedItem>,
) -> (Fetched, CallRecord) {
    // Read back a margin before the cursor: an entry's `indexedAt` follows
    // its author's clock and the AppView's indexing, so one can arrive
    // after a newer one was read. What is read again is stored once.
    let since = cursor.and_then(|c| Timestamp::parse_rfc3339(c).ok()).map(|at| at - OVERLAP);
    let mut items = Vec::new();
    let mut newest: Option<(Timestamp, String)> = None;
    let mut page: Option<String> = None;
    let mut last = CallRecord::default();
    for _ in 0..INBOX_PAGES {
        let (body, record) = match appview_answer(request(page.as_deref())).await {
            Ok(found) => found,
            Err(failed) => {
                let (fetched, record) = *failed;
                let fetched = match fetched {
                    Fetched::Gone => Fetched::Failed {
                        reason: format!("Bluesky answered 404 to reading {list}: the PDS has no AppView"),
                    },
                    other => other,
                };
                return (fetched, record);
            }
        };
        last = record;
        let entries = body[list].as_array().cloned().unwrap_or_default();
        let mut reached = false;
        for entry in &entries {
            let raw = entry["indexedAt"].as_str().unwrap_or_default();
            let Ok(at) = Timestamp::parse_rfc3339(raw) else { continue };
            if since.is_some_and(|since| at < since) {
                reached = true;
                continue;
            }
            if newest.as_ref().is_none_or(|(n, _)| at > *n) {
                newest = Some((at, raw.to_owned()));
            }
            items.extend(item(entry));
        }
        page = body["cursor"].as_str().filter(|c| !c.is_empty() && c.len() <= 512).map(str::to_owned);
        if reached || since.is_none() || entries.is_empty() || page.is_none() {
            page = None;
            break;
        }
    }
    if page.is_some() {
        tracing::warn!(
            list,
            pages = INBOX_PAGES,
            "a Bluesky read reached its page limit before what the last read saw: older entries are skipped"
        );
    }
    let cursor =
        newest.map(|(_, raw)| raw).or_else(|| Some(cursor.unwrap_or("1970-01-01T00:00:00.000Z").to_owned()));
    (Fetched::Items { items, cursor, more: false }, last)
}

/// A post (a notification's or a search result's) as an inbox item of
/// `kind`; `None` for one without a usable URI or author.
fn post_item(
    account: &SocialAccount,
    entry: &serde_json::Value,
    record: &serde_json::Value,
    kind: &str,
) -> Option<CollectedItem> {
    let uri = entry["uri"].as_str().filter(|u| u.starts_with("at://") && u.len() <= 512)?;
    let author = &entry["author"];
    let handle = author["handle"].as_str().filter(|h| !h.is_empty() && h.len() <= 253)?;
    let rkey = uri.rsplit('/').next().unwrap_or_default();
    // The author's clock, but never later than the AppView saw it (a post
    // dated in the future would stay on top of the inbox).
    let parse = |field: &serde_json::Value| field.as_str().and_then(|t| Timestamp::parse_rfc3339(t).ok());
    let posted_at = match (parse(&record["createdAt"]), parse(&entry["indexedAt"])) {
        (Some(created), Some(indexed)) => created.min(indexed),
        (created, indexed) => created.or(indexed).unwrap_or_else(Timestamp::now),
    };
    Some(CollectedItem {
        platform_item_id: uri.to_owned(),
        kind: kind.to_owned(),
        author_handle: format!("@{handle}"),
        author_name: author["displayName"]
            .as_str()
            .filter(|n| !n.trim().is_empty())
            .map(|n| n.chars().take(200).collect()),
        text: record["text"].as_str().unwrap_or_default().chars().take(10_000).collect(),
        url: Some(post_url(handle, rkey)),
        // A reply to one of the account's posts names it as Marketer
        // keeps it (its record key), so the item joins the post.
        in_reply_to: record["reply"]["parent"]["uri"].as_str().map(|parent| {
            let own = format!("at://{}/{COLLECTION}/", account.external_id);
            parent.strip_prefix(own.as_str()).unwrap_or(parent).to_owned()
        }),
        posted_at,
        sealed: None,
    })
}

/// Which of `ids` (posts' URIs) the AppView still shows
/// (`app.bsky.feed.getPosts`; deleted posts are left out of its answer).
pub async fn still_there(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    ids: &[String],
) -> (Fetched, CallRecord) {
    let query: Vec<(&str, &str)> = ids.iter().map(|id| ("uris", id.as_str())).collect();
    let request = appview(p, account, token, "app.bsky.feed.getPosts").query(&query);
    let (body, record) = match appview_answer(request).await {
        Ok(found) => found,
        Err(failed) => return *failed,
    };
    let Some(posts) = body["posts"].as_array() else {
        return (
            Fetched::Failed { reason: "Bluesky answered getPosts without a list of posts".into() },
            record,
        );
    };
    (present_among(posts, "uri", ids), record)
}

/// A read through the account's PDS with its session (what only the
/// account may read: its notifications; search, which public AppViews
/// may refuse).
fn pds(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    method: &str,
) -> reqwest::RequestBuilder {
    p.http().get(format!("{}/xrpc/{method}", base(account))).bearer_auth(token.expose_secret())
}

/// Reads an AppView answer as the collector needs it (an expired session
/// is a 400 `ExpiredToken` on Bluesky, not a 401).
async fn appview_answer(
    request: reqwest::RequestBuilder,
) -> Result<(serde_json::Value, CallRecord), Box<(Fetched, CallRecord)>> {
    let answer = Answer::fetch(request, "Bluesky").await;
    if let Ok(a) = &answer
        && a.status == StatusCode::BAD_REQUEST
        && error_name(a) == "ExpiredToken"
    {
        return Err(Box::new((Fetched::TokenExpired, a.record())));
    }
    metrics_answer(answer, "Bluesky")
}

/// A read of the AppView's `method`: from the configured public AppView,
/// else through the account's PDS with its session.
fn appview(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    method: &str,
) -> reqwest::RequestBuilder {
    match &p.settings.bluesky_appview_url {
        Some(appview) => p.http().get(format!("{}/xrpc/{method}", appview.trim_end_matches('/'))),
        None => pds(p, account, token, method),
    }
}

pub async fn delete(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    rkey: &str,
) -> Result<CallRecord, String> {
    let request = p
        .http()
        .post(format!("{}/xrpc/com.atproto.repo.deleteRecord", base(account)))
        .bearer_auth(token.expose_secret())
        .json(&serde_json::json!({ "repo": account.external_id, "collection": COLLECTION, "rkey": rkey }));
    let answer = Answer::fetch(request, "Bluesky").await?;
    if answer.status.is_success() {
        Ok(answer.record())
    } else {
        Err(format!("Bluesky refused to delete the post ({}): {}", answer.status.as_u16(), answer.message()))
    }
}

fn session(body: &serde_json::Value) -> Option<(Granted, String, String)> {
    let access = body["accessJwt"].as_str().filter(|t| !t.is_empty())?;
    let expires_in = jwt_expiry(access).map(|exp| exp - time::OffsetDateTime::now_utc().unix_timestamp());
    Some((
        Granted {
            access: SecretString::from(access.to_owned()),
            refresh: body["refreshJwt"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(|t| SecretString::from(t.to_owned())),
            expires_in,
        },
        body["did"].as_str()?.to_owned(),
        body["handle"].as_str()?.to_owned(),
    ))
}

pub async fn refresh(p: &Platforms, account: &SocialAccount, refresh: &SecretString) -> Refreshed {
    let request = p
        .http()
        .post(format!("{}/xrpc/com.atproto.server.refreshSession", base(account)))
        .bearer_auth(refresh.expose_secret());
    let answer = match Answer::fetch(request, "Bluesky").await {
        Ok(a) => a,
        Err(reason) => return Refreshed::Retry { reason },
    };
    if answer.status.is_success() {
        return match session(&answer.json()) {
            Some((g, _, _)) => {
                Refreshed::Tokens { access: g.access, refresh: g.refresh, expires_in: g.expires_in }
            }
            None => Refreshed::Retry { reason: "Bluesky answered the refresh without a session".into() },
        };
    }
    if answer.status.is_server_error() || answer.status == StatusCode::TOO_MANY_REQUESTS {
        return Refreshed::Retry {
            reason: format!("Bluesky answered {}: {}", answer.status.as_u16(), answer.message()),
        };
    }
    Refreshed::Refused { reason: format!("Bluesky refused to renew the session: {}", answer.message()) }
}

pub async fn check(p: &Platforms, account: &SocialAccount, token: &SecretString) -> Health {
    let request = p
        .http()
        .get(format!("{}/xrpc/com.atproto.server.getSession", base(account)))
        .bearer_auth(token.expose_secret());
    let answer = match Answer::fetch(request, "Bluesky").await {
        Ok(a) => a,
        Err(reason) => return Health::Unreachable { reason },
    };
    match answer.status {
        s if s.is_success() => Health::Ok,
        StatusCode::BAD_REQUEST if error_name(&answer) == "ExpiredToken" => Health::TokenExpired,
        StatusCode::TOO_MANY_REQUESTS => Health::RateLimited {
            until: limited_until(&answer.headers, Timestamp::now()),
            note: "Bluesky rate limit on account checks".into(),
        },
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            Health::Unauthorized { reason: format!("Bluesky refused the session: {}", answer.message()) }
        }
        s => Health::Unreachable { reason: format!("Bluesky answered {}", s.as_u16()) },
    }
}

/// Signs in with a handle and an app password (`createSession`).
pub async fn sign_in(
    p: &Platforms,
    service: &str,
    identifier: &str,
    password: &SecretString,
) -> Result<(Granted, Profile), String> {
    let request = p
        .http()
        .post(format!("{service}/xrpc/com.atproto.server.createSession"))
        .json(&serde_json::json!({ "identifier": identifier, "password": password.expose_secret() }));
    let answer = Answer::fetch(request, service).await?;
    if !answer.status.is_success() {
        return Err(format!(
            "Bluesky refused the sign-in: {}; check the handle and the app password",
            answer.message()
        ));
    }
    let (granted, did, handle) = session(&answer.json()).ok_or("Bluesky answered without a session")?;
    let profile = Profile {
        external_id: did,
        display_name: handle.clone(),
        profile_url: Some(format!("https://bsky.app/profile/{handle}")),
        handle: format!("@{handle}"),
    };
    Ok((granted, profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_author_is_a_mention_facet_counted_in_bytes() {
        let spans = |text: &str| -> Vec<(u64, u64)> {
            mention_facets(text, "fan.test", "did:plc:fan")
                .iter()
                .map(|f| (f["index"]["byteStart"].as_u64().unwrap(), f["index"]["byteEnd"].as_u64().unwrap()))
                .collect()
        };
        assert_eq!(spans("@fan.test Yes, parking is free."), [(0, 9)]);
        assert_eq!(spans("Thanks @fan.test."), [(7, 16)]);
        // Bytes, not characters: "é" is two.
        assert_eq!(spans("Café? @fan.test"), [(7, 16)]);
        for text in ["@fan.testing", "x@fan.test", "@fan.test.social", "@fan.test-2", "fan.test"] {
            assert!(spans(text).is_empty(), "{text}");
        }
        let facet = &mention_facets("@fan.test hi", "fan.test", "did:plc:fan")[0];
        assert_eq!(facet["features"][0]["$type"], "app.bsky.richtext.facet#mention");
        assert_eq!(facet["features"][0]["did"], "did:plc:fan");
    }

    #[test]
    fn record_keys_are_tids_stable_per_generation() {
        let id = Uuid::now_v7();
        let key = record_key(id, 1);
        assert_eq!(key.len(), 13);
        assert!("234567abcdefghij".contains(&key[..1]), "{key}");
        assert!(key.bytes().all(|b| S32.contains(&b)));
        assert_eq!(key, record_key(id, 1));
        assert_ne!(key, record_key(id, 2));
        assert_ne!(key, record_key(Uuid::now_v7(), 1));
    }

    #[test]
    fn a_jwts_expiry_is_read() {
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1800000000}"#);
        assert_eq!(jwt_expiry(&format!("e30.{claims}.sig")), Some(1_800_000_000));
        assert_eq!(jwt_expiry("not a jwt"), None);
    }
}
