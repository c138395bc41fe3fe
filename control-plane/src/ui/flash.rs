//! A secret shown once after a redirect (post/redirect/get): a new API
//! key, a new invitation's link, a new enrollment token's command. The form's answer is a redirect carrying the
//! secret in a short-lived cookie sealed with the server's data key (so any
//! replica can open it, and nothing readable sits in the browser), bound to
//! the session and the tenant; the page that reads it clears it, so a reload
//! or Back never shows it, or creates it, again.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::ApiState;
use crate::cloud::crypto::Sealed;
use crate::domain::Timestamp;

const COOKIE: &str = "marketer_flash";
/// How long the redirect has to be followed.
const LIFETIME_SECONDS: i64 = 120;
const NONCE_BYTES: usize = 12;

/// What is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Flash {
    ApiKey { key: String },
    Invitation { link: String, email: String },
    EnrollmentToken { install_command: String, expires_at: Timestamp, max_uses: i64 },
    ReviewLink { link: String, email: String },
    WebhookSecret { secret: String },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    flash: Flash,
    session: Uuid,
    expires: i64,
}

/// A 303 to `location` (a page under `path`) carrying `flash` for it.
pub fn redirect(
    state: &ApiState,
    page: &super::session::TenantPage,
    headers: &HeaderMap,
    path: &str,
    location: &str,
    flash: Flash,
) -> Response {
    let mut response = super::page::see_other(location);
    let secure = super::session::is_secure(headers, state.config.trust_proxy_headers);
    set(state, &mut response, page.tenant_id(), page.browser.session_id, path, flash, secure);
    response
}

/// Adds the sealed `flash` to `response` (a redirect to `path`).
fn set(
    state: &ApiState,
    response: &mut Response,
    tenant_id: Uuid,
    session: Uuid,
    path: &str,
    flash: Flash,
    secure: bool,
) {
    let envelope = Envelope { flash, session, expires: Timestamp::now().unix_seconds() + LIFETIME_SECONDS };
    let Ok(plain) = serde_json::to_string(&envelope) else { return };
    let Ok(sealed) = state.app.cloud.key().seal(tenant_id, &plain) else {
        tracing::error!("could not seal a one-time message");
        return;
    };
    let mut bytes = sealed.nonce;
    bytes.extend_from_slice(&sealed.ciphertext);
    let cookie = cookie::Cookie::build((COOKIE, URL_SAFE_NO_PAD.encode(bytes)))
        .path(path.to_owned())
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .max_age(time::Duration::seconds(LIFETIME_SECONDS))
        .build();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The flash in the request, if there is one for this session and tenant
/// and it has not expired.
pub fn read(state: &ApiState, headers: &HeaderMap, tenant_id: Uuid, session: Uuid) -> Option<Flash> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)?
        .value()
        .to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
    if bytes.len() <= NONCE_BYTES {
        return None;
    }
    let sealed = Sealed { nonce: bytes[..NONCE_BYTES].to_vec(), ciphertext: bytes[NONCE_BYTES..].to_vec() };
    let plain = state.app.cloud.key().open(tenant_id, &sealed).ok()?;
    let envelope: Envelope = serde_json::from_str(secrecy::ExposeSecret::expose_secret(&plain)).ok()?;
    (envelope.session == session && envelope.expires >= Timestamp::now().unix_seconds())
        .then_some(envelope.flash)
}

/// Clears the flash cookie of `path` on `response` (after showing it).
pub fn clear(response: &mut Response, path: &str) {
    let cookie =
        cookie::Cookie::build((COOKIE, "")).path(path.to_owned()).max_age(time::Duration::ZERO).build();
    if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}
