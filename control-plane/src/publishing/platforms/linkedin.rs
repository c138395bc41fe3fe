//! LinkedIn's Posts API for members and the organisation pages they
//! administer (`../shared/reference/social/linkedin.md`):
//! 3-legged OAuth 2.0 with `state` and PKCE, programmatic refresh tokens
//! (the refresh token keeps its first expiry; an answer without one keeps
//! the stored one), `POST /rest/posts` answering 201 with the post's URN in
//! `x-restli-id`, the author's posts to find one after an unknown outcome
//! (LinkedIn has no idempotency key), and deletion (idempotent).
//!
//! Organisation pages need the Community Management API on Marketer's app
//! (server configuration): then connecting a member also connects every
//! page where their role may post (administrator, content administrator,
//! direct sponsored content poster), found through `organizationAcls`;
//! such an account's id is the organisation's URN and it posts with the
//! member's token.
//!
//! Every call to the versioned API carries `Linkedin-Version` and
//! `X-Restli-Protocol-Version: 2.0.0`. Post statistics exist for
//! organisation pages' posts only. LinkedIn's limits are per day,
//! resetting at midnight UTC, and its 429s carry no reset header, so a
//! limited account waits for the next midnight UTC unless told otherwise.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::{
    Answer, CallRecord, Fetched, Found, Granted, Health, Platforms, Profile, Refreshed, Sent, count,
    followers_at, metrics_answer, oauth_refreshed, oauth_tokens,
};
use crate::domain::Timestamp;
use crate::store::{Metrics, Network, SocialAccount, SocialPost};

/// The API version Marketer speaks (monthly versions live a year).
pub const VERSION: &str = "202601";
pub const SCOPES: &str = "openid profile w_member_social r_member_social";
/// Added when the app may post for organisation pages.
pub const ORGANIZATION_SCOPES: &str = "r_organization_admin w_organization_social r_organization_social";

/// The roles on a page that may post for it.
const POSTING_ROLES: [&str; 3] = ["ADMINISTRATOR", "CONTENT_ADMIN", "DIRECT_SPONSORED_CONTENT_POSTER"];

fn api(p: &Platforms, path: &str) -> String {
    format!("{}{path}", p.settings.linkedin_api_url.trim_end_matches('/'))
}

fn oauth(p: &Platforms, path: &str) -> String {
    format!("{}{path}", p.settings.linkedin_oauth_url.trim_end_matches('/'))
}

/// A versioned API request with LinkedIn's required headers.
fn rest(request: reqwest::RequestBuilder, token: &SecretString) -> reqwest::RequestBuilder {
    request
        .bearer_auth(token.expose_secret())
        .header("Linkedin-Version", VERSION)
        .header("X-Restli-Protocol-Version", "2.0.0")
}

/// A URN as a Rest.li path key: fully percent-encoded.
fn encoded(urn: &str) -> String {
    form_urlencoded::byte_serialize(urn.as_bytes()).collect()
}

pub fn post_url(urn: &str) -> String {
    format!("https://www.linkedin.com/feed/update/{urn}/")
}

/// The post's author: an organisation page's URN, or the member.
fn author(account: &SocialAccount) -> String {
    if account.external_id.starts_with("urn:li:organization:") {
        account.external_id.clone()
    } else {
        format!("urn:li:person:{}", account.external_id)
    }
}

/// The next midnight UTC: when LinkedIn's daily limits reset.
fn next_midnight(now: Timestamp) -> Timestamp {
    let t = now.as_datetime();
    let midnight = t.replace_time(time::Time::MIDNIGHT) + time::Duration::days(1);
    Timestamp::from_datetime(midnight)
}

/// A 429's end: a reset the answer gives, else the next midnight UTC.
fn limited(answer: &Answer, now: Timestamp) -> Timestamp {
    match super::rate_window(&answer.headers, now).1 {
        Some(reset) if reset > now => reset,
        _ => next_midnight(now),
    }
}

pub async fn publish(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Sent, CallRecord) {
    let body = serde_json::json!({
        "author": author(account),
        "commentary": escape_commentary(&post.text),
        "visibility": "PUBLIC",
        "distribution": { "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [] },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": false,
    });
    let answer = match Answer::send_once(rest(p.http().post(api(p, "/rest/posts")), token).json(&body)).await
    {
        Ok(a) => a,
        Err(failed) => return failed,
    };
    let record = answer.record();
    let sent = match answer.status {
        s if s.is_success() => match answer.headers.get("x-restli-id").and_then(|v| v.to_str().ok()) {
            Some(urn) if urn.starts_with("urn:li:") => {
                Sent::Created { id: urn.to_owned(), url: Some(post_url(urn)) }
            }
            _ => Sent::Unknown { reason: "LinkedIn answered without the post's id (x-restli-id)".into() },
        },
        StatusCode::TOO_MANY_REQUESTS => Sent::RateLimited {
            until: limited(&answer, Timestamp::now()),
            note: format!("LinkedIn's daily limit reached ({})", answer.message()),
        },
        StatusCode::UNAUTHORIZED => Sent::TokenExpired,
        StatusCode::FORBIDDEN => Sent::Refused {
            error: format!("LinkedIn refused the post: {}", answer.message()),
            hint: "Reconnect the account and approve posting (w_member_social).".into(),
        },
        StatusCode::UPGRADE_REQUIRED => Sent::Refused {
            error: format!("LinkedIn no longer accepts API version {VERSION}: {}", answer.message()),
            hint: "This Marketer release speaks a retired LinkedIn API version; upgrade Marketer.".into(),
        },
        s if s.is_server_error() => {
            Sent::Unknown { reason: format!("LinkedIn answered {}: {}", s.as_u16(), answer.message()) }
        }
        s => Sent::Refused {
            error: format!("LinkedIn refused the post ({}): {}", s.as_u16(), answer.message()),
            hint: "Edit the post to follow LinkedIn's rules and schedule it again.".into(),
        },
    };
    (sent, record)
}

/// LinkedIn's "little text" gives `( ) [ ] { } < > @ | ~ _ * \` meaning;
/// a backslash makes each one literal so the post reads as written.
pub fn escape_commentary(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '(' | ')' | '[' | ']' | '{' | '}' | '<' | '>' | '@' | '|' | '~' | '_' | '*' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Looks for the post among the author's latest (newest first), back to a
/// little before its first unknown-outcome request; `Absent` only when that
/// whole window was read.
pub async fn find(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    post: &SocialPost,
) -> (Found, CallRecord) {
    let since = post.unconfirmed_since.unwrap_or(post.updated_at);
    let floor = (since.as_datetime() - time::Duration::minutes(5)).unix_timestamp() * 1000;
    let wanted = escape_commentary(&post.text);
    let mut last = CallRecord::default();
    for page in 0..10 {
        let request =
            rest(p.http().get(api(p, "/rest/posts")), token).header("X-RestLi-Method", "FINDER").query(&[
                ("author", author(account)),
                ("q", "author".into()),
                ("count", "100".into()),
                ("start", (page * 100).to_string()),
                ("sortBy", "CREATED".into()),
            ]);
        let answer = match Answer::fetch(request, "LinkedIn").await {
            Ok(a) => a,
            Err(reason) => return (Found::Unknown { reason }, last),
        };
        last = answer.record();
        match answer.status {
            StatusCode::TOO_MANY_REQUESTS => {
                let until = limited(&answer, Timestamp::now());
                return (
                    Found::RateLimited { until, note: "LinkedIn's daily limit on reading posts".into() },
                    last,
                );
            }
            StatusCode::UNAUTHORIZED => return (Found::TokenExpired, last),
            s if !s.is_success() => {
                return (
                    Found::Unknown {
                        reason: format!(
                            "LinkedIn answered {} to reading the account's posts: {}",
                            s.as_u16(),
                            answer.message()
                        ),
                    },
                    last,
                );
            }
            _ => {}
        }
        let body = answer.json();
        let items = body["elements"].as_array().cloned().unwrap_or_default();
        let mut older = false;
        for item in &items {
            let text = item["commentary"].as_str().unwrap_or_default();
            if (text == wanted || text == post.text)
                && let Some(id) = item["id"].as_str()
            {
                return (Found::Present { id: id.to_owned(), url: Some(post_url(id)) }, last);
            }
            if item["createdAt"].as_i64().is_some_and(|at| at < floor) {
                older = true;
            }
        }
        if older || items.len() < 100 {
            return (Found::Absent, last);
        }
    }
    (Found::Unknown { reason: "the LinkedIn account has more recent posts than Marketer reads".into() }, last)
}

pub async fn delete(p: &Platforms, token: &SecretString, id: &str) -> Result<CallRecord, String> {
    let request = rest(p.http().delete(api(p, &format!("/rest/posts/{}", encoded(id)))), token);
    let answer = Answer::fetch(request, "LinkedIn").await?;
    // Deleting is idempotent on LinkedIn; already gone counts as deleted.
    if answer.status.is_success() || answer.status == StatusCode::NOT_FOUND {
        Ok(answer.record())
    } else {
        Err(format!("LinkedIn refused to delete the post ({}): {}", answer.status.as_u16(), answer.message()))
    }
}

/// Reads a statistics answer as the collector needs it: LinkedIn's
/// limits are daily, so a 429 without a reset waits for midnight UTC.
async fn read(
    p: &Platforms,
    token: &SecretString,
    url: String,
) -> Result<(serde_json::Value, CallRecord), Box<(Fetched, CallRecord)>> {
    let answer = Answer::fetch(rest(p.http().get(url), token), "LinkedIn").await;
    let limited_at = answer.as_ref().ok().map(|a| limited(a, Timestamp::now()));
    metrics_answer(answer, "LinkedIn").map_err(|failed| match (*failed, limited_at) {
        ((Fetched::RateLimited { note, .. }, record), Some(until)) => {
            Box::new((Fetched::RateLimited { until, note }, record))
        }
        (failed, _) => Box::new(failed),
    })
}

/// A post's lifetime statistics (`GET /rest/organizationalEntityShareStatistics`,
/// the organisation finder with `shares=List(…)` or `ugcPosts=List(…)`):
/// impressions, unique impressions (reach), likes, comments and shares. LinkedIn
/// gives these for organisation pages' posts only (`None` for a member's);
/// a post with no activity yet has no element, which reads as zeros
/// (unless the post itself is gone).
pub async fn metrics(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
    urn: &str,
) -> Option<(Fetched, CallRecord)> {
    if !account.external_id.starts_with("urn:li:organization:") {
        return None;
    }
    let list = if urn.starts_with("urn:li:ugcPost:") { "ugcPosts" } else { "shares" };
    // Rest.li: the values are encoded, the List(…) syntax is not.
    let url = format!(
        "{}?q=organizationalEntity&organizationalEntity={}&{list}=List({})",
        api(p, "/rest/organizationalEntityShareStatistics"),
        encoded(&account.external_id),
        encoded(urn)
    );
    let (body, record) = match read(p, token, url).await {
        Ok(found) => found,
        Err(failed) => return Some(*failed),
    };
    let elements = body["elements"].as_array().cloned().unwrap_or_default();
    let mine = elements.iter().find(|e| e["share"] == urn || e["ugcPost"] == urn);
    let empty = serde_json::json!({});
    let stats = match mine {
        Some(element) => element.get("totalShareStatistics").unwrap_or(&empty),
        None if elements.is_empty() => {
            // No element: no activity yet (zeros), or the post is gone;
            // anything else is not a reading.
            let request = rest(p.http().get(api(p, &format!("/rest/posts/{}", encoded(urn)))), token);
            return Some(match Answer::fetch(request, "LinkedIn").await {
                Ok(post) if post.status.is_success() => {
                    let zeros = Metrics {
                        impressions: Some(0),
                        reach: Some(0),
                        likes: Some(0),
                        comments: Some(0),
                        shares: Some(0),
                        ..Metrics::default()
                    };
                    (Fetched::Metrics { metrics: zeros, raw: body.to_string() }, record)
                }
                Ok(post) if matches!(post.status, StatusCode::NOT_FOUND | StatusCode::GONE) => {
                    (Fetched::Gone, post.record())
                }
                Ok(post) => (
                    Fetched::Failed {
                        reason: format!(
                            "LinkedIn gave no statistics and answered {} for the post",
                            post.status.as_u16()
                        ),
                    },
                    post.record(),
                ),
                Err(reason) => (Fetched::Failed { reason }, record),
            });
        }
        None => {
            return Some((
                Fetched::Failed { reason: "LinkedIn answered with another post's statistics".into() },
                record,
            ));
        }
    };
    let metrics = Metrics {
        impressions: count(stats, "impressionCount"),
        reach: count(stats, "uniqueImpressionsCount"),
        likes: count(stats, "likeCount"),
        comments: count(stats, "commentCount"),
        shares: count(stats, "shareCount"),
        // `clickCount` counts every click on the post, not only on its
        // link: it stays in `raw`.
        ..Metrics::default()
    };
    Some((Fetched::Metrics { metrics, raw: stats.to_string() }, record))
}

/// An organisation page's followers (`GET /rest/networkSizes/{urn}` with
/// `edgeType=COMPANY_FOLLOWED_BY_MEMBER`: `firstDegreeSize`). LinkedIn
/// does not give apps a member's followers (`None`).
pub async fn followers(
    p: &Platforms,
    account: &SocialAccount,
    token: &SecretString,
) -> Option<(Fetched, CallRecord)> {
    if !account.external_id.starts_with("urn:li:organization:") {
        return None;
    }
    let url = format!(
        "{}?edgeType=COMPANY_FOLLOWED_BY_MEMBER",
        api(p, &format!("/rest/networkSizes/{}", encoded(&account.external_id)))
    );
    Some(followers_at(read(p, token, url).await, "/firstDegreeSize", "LinkedIn"))
}

fn client(p: &Platforms) -> (String, String) {
    (
        p.settings.linkedin_client_id.clone().unwrap_or_default(),
        p.settings.linkedin_client_secret.as_ref().map(|s| s.expose_secret().to_owned()).unwrap_or_default(),
    )
}

pub async fn refresh(p: &Platforms, refresh: &SecretString) -> Refreshed {
    let (id, secret) = client(p);
    let request = p.http().post(oauth(p, "/oauth/v2/accessToken")).form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.expose_secret()),
        ("client_id", &id),
        ("client_secret", &secret),
    ]);
    oauth_refreshed(Answer::fetch(request, "LinkedIn").await, "LinkedIn")
}

pub async fn check(p: &Platforms, token: &SecretString) -> Health {
    match me(p, token).await {
        Ok(_) => Health::Ok,
        Err(h) => h,
    }
}

/// The member, from the OpenID Connect userinfo endpoint.
async fn me(p: &Platforms, token: &SecretString) -> Result<Profile, Health> {
    let request = p.http().get(api(p, "/v2/userinfo")).bearer_auth(token.expose_secret());
    let answer = Answer::fetch(request, "LinkedIn").await.map_err(|reason| Health::Unreachable { reason })?;
    match answer.status {
        s if s.is_success() => {
            let data = answer.json();
            let id = data["sub"].as_str().unwrap_or_default().to_owned();
            if id.is_empty() {
                return Err(Health::Unreachable {
                    reason: "LinkedIn answered without the member's id".into(),
                });
            }
            let name =
                data["name"].as_str().filter(|n| !n.is_empty()).unwrap_or("LinkedIn member").to_owned();
            Ok(Profile { external_id: id, handle: name.clone(), display_name: name, profile_url: None })
        }
        StatusCode::UNAUTHORIZED => Err(Health::TokenExpired),
        StatusCode::TOO_MANY_REQUESTS => Err(Health::RateLimited {
            until: limited(&answer, Timestamp::now()),
            note: "LinkedIn's daily limit on account checks".into(),
        }),
        StatusCode::FORBIDDEN => {
            Err(Health::Unauthorized { reason: format!("LinkedIn refused access: {}", answer.message()) })
        }
        s => Err(Health::Unreachable {
            reason: format!("LinkedIn answered {}: {}", s.as_u16(), answer.message()),
        }),
    }
}

/// The authorisation URL a person is sent to.
pub fn authorize_url(p: &Platforms, state: &str, challenge: &str) -> Result<String, String> {
    let client_id = p
        .settings
        .linkedin_client_id
        .as_deref()
        .ok_or("LinkedIn is not configured on this server (MARKETER_LINKEDIN_CLIENT_ID)")?;
    let mut url = reqwest::Url::parse(&oauth(p, "/oauth/v2/authorization"))
        .map_err(|e| format!("linkedin_oauth_url: {e}"))?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &p.settings.redirect_uri(Network::Linkedin))
        .append_pair(
            "scope",
            &if p.settings.linkedin_organizations {
                format!("{SCOPES} {ORGANIZATION_SCOPES}")
            } else {
                SCOPES.to_owned()
            },
        )
        .append_pair("state", state)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Exchanges an authorisation code, then reads who the member is and (when
/// the app may) the organisation pages they may post for: the member first,
/// each with the same tokens.
pub async fn exchange(p: &Platforms, code: &str, verifier: &str) -> Result<Vec<(Granted, Profile)>, String> {
    let (id, secret) = client(p);
    let redirect = p.settings.redirect_uri(Network::Linkedin);
    let request = p.http().post(oauth(p, "/oauth/v2/accessToken")).form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &redirect),
        ("client_id", &id),
        ("client_secret", &secret),
        ("code_verifier", verifier),
    ]);
    let answer = Answer::fetch(request, "LinkedIn").await?;
    if !answer.status.is_success() {
        return Err(format!("LinkedIn refused the authorisation: {}", answer.message()));
    }
    let granted = oauth_tokens(&answer.json()).ok_or("LinkedIn answered without an access token")?;
    let profile =
        me(p, &granted.access).await.map_err(|h| format!("LinkedIn did not show the member: {h:?}"))?;
    let pages =
        if p.settings.linkedin_organizations { organizations(p, &granted.access).await? } else { Vec::new() };
    let copy = |g: &Granted| Granted {
        access: g.access.clone(),
        refresh: g.refresh.clone(),
        expires_in: g.expires_in,
    };
    let mut accounts = Vec::with_capacity(pages.len() + 1);
    for page in pages {
        accounts.push((copy(&granted), page));
    }
    accounts.insert(0, (granted, profile));
    Ok(accounts)
}

/// The organisation pages the member may post for (at most 100).
async fn organizations(p: &Platforms, token: &SecretString) -> Result<Vec<Profile>, String> {
    let request = rest(p.http().get(api(p, "/rest/organizationAcls")), token).query(&[
        ("q", "roleAssignee"),
        ("state", "APPROVED"),
        ("count", "100"),
    ]);
    let answer = Answer::fetch(request, "LinkedIn").await?;
    if !answer.status.is_success() {
        return Err(format!("LinkedIn did not list the member's pages: {}", answer.message()));
    }
    let mut pages: Vec<Profile> = Vec::new();
    for acl in answer.json()["elements"].as_array().into_iter().flatten() {
        let role = acl["role"].as_str().unwrap_or_default();
        let Some(urn) = acl["organization"].as_str().filter(|o| o.starts_with("urn:li:organization:")) else {
            continue;
        };
        if acl["state"].as_str() != Some("APPROVED")
            || !POSTING_ROLES.contains(&role)
            || pages.iter().any(|p| p.external_id == urn)
        {
            continue;
        }
        let id = urn.trim_start_matches("urn:li:organization:");
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let request = rest(p.http().get(api(p, &format!("/rest/organizations/{id}"))), token);
        let org = Answer::fetch(request, "LinkedIn").await?;
        if !org.status.is_success() {
            return Err(format!("LinkedIn did not show the page {urn}: {}", org.message()));
        }
        let v = org.json();
        let name = v["localizedName"].as_str().filter(|n| !n.is_empty()).unwrap_or(id).to_owned();
        let vanity = v["vanityName"].as_str().unwrap_or(id);
        pages.push(Profile {
            external_id: urn.to_owned(),
            handle: name.clone(),
            display_name: name,
            profile_url: Some(format!("https://www.linkedin.com/company/{vanity}/")),
        });
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_text_is_escaped_and_limits_reset_at_midnight_utc() {
        assert_eq!(escape_commentary("Hi @team (new) #launch"), "Hi \\@team \\(new\\) #launch");
        let now = Timestamp::parse_rfc3339("2027-03-04T22:15:00Z").unwrap();
        assert_eq!(next_midnight(now), Timestamp::parse_rfc3339("2027-03-05T00:00:00Z").unwrap());
        assert_eq!(encoded("urn:li:share:1"), "urn%3Ali%3Ashare%3A1");
    }
}
