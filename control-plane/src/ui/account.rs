//! Account security (`/account`, outside any organisation, so a person an
//! organisation keeps out for want of two-factor sign-in can still turn it
//! on): two-factor sign-in with its QR code and recovery codes, the
//! password, and the person's sessions. Also the second step of signing in.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine;
use serde::Deserialize;
use uuid::Uuid;

use super::assets;
use super::page::{UiError, capitalise, render, see_other};
use super::session::{
    Browser, BrowserSubmit, Meta, Path, Query, is_secure, login_cookie, login_id, session_cookie,
};
use super::view::When;
use crate::api::ApiState;
use crate::domain::Password;
use crate::error::Error;
use crate::service::two_factor::{ChangePassword, ConfirmPassword, TwoFactorCode, TwoFactorStatus};

/// The cookie that carries a sign-in's second step (the challenge naming
/// the person whose password was right), for five minutes, to
/// `/login/two-factor` only.
const CHALLENGE_COOKIE: &str = "marketer_2fa";

fn challenge_cookie(value: Option<&str>, secure: bool) -> String {
    cookie::Cookie::build((CHALLENGE_COOKIE, value.unwrap_or_default().to_owned()))
        .path("/login/two-factor")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .max_age(if value.is_some() {
            crate::service::two_factor::CHALLENGE_TTL
        } else {
            time::Duration::ZERO
        })
        .build()
        .to_string()
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// After a right password, for an account with two-factor sign-in: the
/// challenge in its cookie and the code page.
pub fn to_second_step(state: &ApiState, headers: &HeaderMap, challenge: &str, next: &str) -> Response {
    let target = if next.is_empty() {
        "/login/two-factor".to_owned()
    } else {
        format!(
            "/login/two-factor?next={}",
            form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        )
    };
    let mut response = see_other(&target);
    set_cookie(
        &mut response,
        &challenge_cookie(Some(challenge), is_secure(headers, state.config.trust_proxy_headers)),
    );
    response
}

#[derive(Template)]
#[template(path = "login_code.html")]
struct CodePage {
    css: &'static str,
    js: &'static str,
    next: String,
    error: String,
    csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct CodeQuery {
    next: Option<String>,
}

fn code_page(state: &ApiState, headers: &HeaderMap, next: String, error: String) -> Response {
    let id = login_id(headers).unwrap_or_else(|| Uuid::from_bytes(rand::random()));
    let mut response = render(&CodePage {
        css: assets::css_url(),
        js: assets::js_url(),
        next,
        error,
        csrf: state.app.csrf_token(id),
    });
    set_cookie(&mut response, &login_cookie(id, is_secure(headers, state.config.trust_proxy_headers)));
    response
}

fn challenge(headers: &HeaderMap) -> Option<String> {
    super::session::cookie_value(headers, CHALLENGE_COOKIE)
}

/// The second step's page; without a challenge, back to the first.
pub async fn code_form(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<CodeQuery>,
) -> Response {
    if challenge(&headers).is_none() {
        return see_other("/login");
    }
    code_page(&state, &headers, super::auth::safe_next(query.next.as_deref()), String::new())
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    next: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// Checks the code; a session on success, the page again (throttled,
/// audited) on a wrong one.
pub async fn code(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    axum::Form(form): axum::Form<CodeForm>,
) -> Response {
    let next = super::auth::safe_next(Some(&form.next));
    let from_our_page = login_id(&headers).is_some_and(|id| state.app.check_csrf(id, &form.csrf));
    let Some(challenge) = challenge(&headers).filter(|_| from_our_page) else {
        return see_other("/login");
    };
    let secure = is_secure(&headers, state.config.trust_proxy_headers);
    match state.app.browser_second_factor(&challenge, &form.code, &meta).await {
        Ok((token, ttl)) => {
            let mut response = see_other(if next.is_empty() { "/" } else { &next });
            set_cookie(&mut response, &session_cookie(Some(&token), ttl, secure));
            set_cookie(&mut response, &challenge_cookie(None, secure));
            response
        }
        Err(Error::RateLimited { retry_after }) => code_page(
            &state,
            &headers,
            next,
            format!("Too many attempts. Try again in {} seconds.", retry_after.as_secs().max(1)),
        ),
        Err(Error::Unauthenticated(message) | Error::Forbidden(message)) => {
            code_page(&state, &headers, next, capitalise(&message))
        }
        Err(e) => axum::response::IntoResponse::into_response(UiError::from(e)),
    }
}

struct SetupView {
    secret: String,
    /// The otpauth URI as a QR code, an SVG data URI.
    qr: String,
}

struct SessionRow {
    id: Uuid,
    created: When,
    ip: String,
    agent: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    css: &'static str,
    js: &'static str,
    csrf: String,
    email: String,
    required: bool,
    notice: String,
    status: TwoFactorStatus,
    setup: Option<SetupView>,
    recovery_codes: Option<Vec<String>>,
    code_error: String,
    two_factor_error: String,
    password_error: String,
    erase_error: String,
    sessions: Vec<SessionRow>,
    /// Organisations the person deleted: (erasure, when, complete).
    erasures: Vec<(Uuid, When, bool)>,
}

/// What a form's answer adds to the page.
#[derive(Default)]
struct Outcome {
    required: bool,
    notice: String,
    recovery_codes: Option<Vec<String>>,
    code_error: String,
    two_factor_error: String,
    password_error: String,
    erase_error: String,
}

fn qr_data_uri(uri: &str) -> String {
    let svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).quiet_zone(true).build()
        })
        .unwrap_or_default();
    format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg))
}

async fn account_page(state: &ApiState, browser: &Browser, outcome: Outcome) -> Result<Response, UiError> {
    let caller = &browser.caller;
    let user = caller.user()?;
    let status = state.app.two_factor_status(caller).await?;
    let setup = if outcome.recovery_codes.is_none() && status.setting_up {
        state
            .app
            .pending_two_factor_setup(caller)
            .await?
            .map(|s| SetupView { qr: qr_data_uri(&s.otpauth_uri), secret: s.secret })
    } else {
        None
    };
    let sessions = state
        .app
        .my_sessions(caller)
        .await?
        .items
        .into_iter()
        .map(|s| SessionRow {
            id: s.id,
            created: When::of(s.created_at),
            ip: s.client_ip.unwrap_or_else(|| "unknown".into()),
            agent: s.user_agent.map_or_else(|| "unknown".into(), |a| a.chars().take(120).collect()),
            current: s.current,
        })
        .collect();
    let erasures = state
        .app
        .my_tenant_erasures(caller)
        .await?
        .into_iter()
        .map(|e| (e.id, When::of(e.erased_at), e.completed_at.is_some()))
        .collect();
    Ok(render(&AccountPage {
        css: assets::css_url(),
        js: assets::js_url(),
        csrf: browser.csrf.clone(),
        email: user.email.to_string(),
        required: outcome.required,
        notice: outcome.notice,
        status,
        setup,
        recovery_codes: outcome.recovery_codes,
        code_error: outcome.code_error,
        two_factor_error: outcome.two_factor_error,
        password_error: outcome.password_error,
        erase_error: outcome.erase_error,
        sessions,
        erasures,
    }))
}

#[derive(Debug, Deserialize)]
pub struct AccountQuery {
    required: Option<String>,
    done: Option<String>,
}

pub async fn page(
    State(state): State<ApiState>,
    browser: Browser,
    Query(query): Query<AccountQuery>,
) -> Result<Response, UiError> {
    let notice = match query.done.as_deref() {
        Some("password") => "Your password is changed. Your other sessions have ended.",
        Some("off") => "Two-factor sign-in is off.",
        Some("session") => "That session is signed out.",
        _ => "",
    };
    let outcome = Outcome { required: query.required.is_some(), notice: notice.into(), ..Outcome::default() };
    account_page(&state, &browser, outcome).await
}

/// A refused form's message for the page, or the error itself when it is
/// not the person's to fix.
/// A refusal in words beside its form (the forms of Account and
/// Settings → Delete this organisation); anything else is an error page.
pub(super) fn message(e: Error) -> Result<String, UiError> {
    match e {
        Error::Invalid { message, .. } => Ok(capitalise(&message)),
        Error::Conflict { message, .. } => Ok(capitalise(&message)),
        Error::RateLimited { retry_after } => {
            Ok(format!("Too many attempts. Try again in {} seconds.", retry_after.as_secs().max(1)))
        }
        other => Err(other.into()),
    }
}

fn password_field(submit: &BrowserSubmit) -> ConfirmPassword {
    ConfirmPassword { password: submit.field("password").unwrap_or_default().to_owned() }
}

pub async fn begin(State(state): State<ApiState>, submit: BrowserSubmit) -> Result<Response, UiError> {
    let outcome = match state.app.begin_two_factor(&submit.browser.caller, password_field(&submit)).await {
        Ok(_) => Outcome::default(),
        Err(e) => {
            Outcome { two_factor_error: format!("Your password: {}", message(e)?), ..Outcome::default() }
        }
    };
    account_page(&state, &submit.browser, outcome).await
}

pub async fn confirm(State(state): State<ApiState>, submit: BrowserSubmit) -> Result<Response, UiError> {
    let code = TwoFactorCode { code: submit.field("code").unwrap_or_default().to_owned() };
    let outcome = match state.app.confirm_two_factor(&submit.browser.caller, code).await {
        Ok(codes) => Outcome { recovery_codes: Some(codes.recovery_codes), ..Outcome::default() },
        Err(e) => {
            Outcome { code_error: format!("The code {}", message(e)?.to_lowercase()), ..Outcome::default() }
        }
    };
    account_page(&state, &submit.browser, outcome).await
}

pub async fn disable(State(state): State<ApiState>, submit: BrowserSubmit) -> Result<Response, UiError> {
    match state.app.disable_two_factor(&submit.browser.caller, password_field(&submit)).await {
        Ok(()) => Ok(see_other("/account?done=off")),
        Err(e) => {
            let outcome =
                Outcome { two_factor_error: format!("Your password: {}", message(e)?), ..Outcome::default() };
            account_page(&state, &submit.browser, outcome).await
        }
    }
}

pub async fn regenerate(State(state): State<ApiState>, submit: BrowserSubmit) -> Result<Response, UiError> {
    let outcome =
        match state.app.regenerate_recovery_codes(&submit.browser.caller, password_field(&submit)).await {
            Ok(codes) => Outcome { recovery_codes: Some(codes.recovery_codes), ..Outcome::default() },
            Err(e) => {
                Outcome { two_factor_error: format!("Your password: {}", message(e)?), ..Outcome::default() }
            }
        };
    account_page(&state, &submit.browser, outcome).await
}

pub async fn change_password(
    State(state): State<ApiState>,
    submit: BrowserSubmit,
) -> Result<Response, UiError> {
    let refused = |text: String| Outcome { password_error: text, ..Outcome::default() };
    let outcome = match Password::parse(submit.field("new_password").unwrap_or_default()) {
        Err(e) => refused(format!("The new password: {e}")),
        Ok(new_password) => {
            let req = ChangePassword {
                current_password: submit.field("current_password").unwrap_or_default().to_owned(),
                new_password,
            };
            match state.app.change_password(&submit.browser.caller, req).await {
                Ok(()) => return Ok(see_other("/account?done=password")),
                Err(e) => refused(format!("Your current password: {}", message(e)?)),
            }
        }
    };
    account_page(&state, &submit.browser, outcome).await
}

/// Downloads everything held about the person (a POST: it is audited).
pub async fn export(State(state): State<ApiState>, submit: BrowserSubmit) -> Result<Response, UiError> {
    let export = state.app.export_me(&submit.browser.caller).await?;
    let body = serde_json::to_vec_pretty(&export).map_err(|e| UiError::Internal(Error::internal(e)))?;
    Ok(axum::response::IntoResponse::into_response((
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"my-marketer-data.json\""),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )))
}

/// Erases the person's account (the password again), then the sign-in
/// page says so.
pub async fn erase(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    submit: BrowserSubmit,
) -> Result<Response, UiError> {
    let req = crate::service::people::EraseAccount {
        password: submit.field("password").unwrap_or_default().to_owned(),
    };
    match state.app.erase_me(&submit.browser.caller, req).await {
        Ok(_) => {
            let mut response = see_other("/login?erased=1");
            let secure = super::session::is_secure(&headers, state.config.trust_proxy_headers);
            let cookie = super::session::session_cookie(None, time::Duration::ZERO, secure);
            if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(axum::http::header::SET_COOKIE, value);
            }
            Ok(response)
        }
        Err(e) => {
            let outcome = Outcome { erase_error: message(e)?, ..Outcome::default() };
            account_page(&state, &submit.browser, outcome).await
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SessionPath {
    session_id: Uuid,
}

pub async fn revoke_session(
    State(state): State<ApiState>,
    Path(p): Path<SessionPath>,
    submit: BrowserSubmit,
) -> Result<Response, UiError> {
    state.app.revoke_my_session(&submit.browser.caller, p.session_id).await?;
    Ok(see_other("/account?done=session"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg_data_uri() {
        let uri =
            qr_data_uri("otpauth://totp/Marketer:a%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Marketer");
        let b64 = uri.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    }
}
