//! Bluesky (`../shared/reference/social/bluesky.md`): an app password
//! exchanged for a session (`createSession`), short-lived access JWTs and
//! rotating refresh JWTs (`refreshSession`); an expired access token is a
//! 400 `ExpiredToken`, not a 401. Posts are `app.bsky.feed.post` records
//! created with a record key Marketer chooses (a TID derived from the post's
//! id and generation), so after an unknown outcome `getRecord` tells
//! whether the post exists before anything is sent again. A post's counts
//! come from the AppView (`getPosts`).

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use super::{
    Answer, CallRecord, Fetched, Found, Granted, Health, Platforms, Profile, Refreshed, Sent, count,
    followers_at, limited_until, metrics_answer,
};
use crate::domain::Timestamp;
use crate::store::{Metrics, SocialAccount, SocialPost};

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
    let body = serde_json::json!({
        "repo": account.external_id,
        "collection": COLLECTION,
        "rkey": rkey,
        "record": { "$type": COLLECTION, "text": post.text, "createdAt": created_at },
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
        None => p.http().get(format!("{}/xrpc/{method}", base(account))).bearer_auth(token.expose_secret()),
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
