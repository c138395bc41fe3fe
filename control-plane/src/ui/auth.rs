//! Signing in and out, and accepting an invitation.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::assets;
use super::page::{UiError, render, see_other};
use super::session::{
    Browser, BrowserSubmit, Meta, Query, is_secure, login_cookie, login_id, session_cookie, session_token,
};
use crate::api::ApiState;
use crate::domain::Email;
use crate::error::Error;
use crate::service::{AcceptInvitation, BrowserSignIn, InvitationView, LoginRequest};

#[derive(Debug, Deserialize)]
pub struct RootQuery {
    tenant: Option<Uuid>,
}

/// `/`: the chosen tenant (from the switcher), else the first one, else
/// the sign-in page.
pub async fn root(
    State(state): State<ApiState>,
    browser: Result<Browser, UiError>,
    Query(query): Query<RootQuery>,
) -> Result<Response, UiError> {
    let browser = browser?;
    if let Some(tenant) = query.tenant {
        return Ok(see_other(&format!("/t/{tenant}")));
    }
    let me = state.app.me(&browser.caller).await?;
    match me.memberships.first() {
        Some(first) => Ok(see_other(&format!("/t/{}", first.tenant_id))),
        None => Err(UiError::Forbidden(
            "your account belongs to no organisation yet; ask for an invitation".into(),
        )),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    css: &'static str,
    js: &'static str,
    email: String,
    next: String,
    error: String,
    /// Why the person is here, when a session ended under them.
    notice: String,
    /// The HMAC of this browser's sign-in id ([`LOGIN_COOKIE`](super::session::LOGIN_COOKIE)).
    csrf: String,
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
    ended: Option<String>,
    erased: Option<String>,
}

const ACCOUNT_ERASED: &str =
    "Your account is deleted. What you did is kept in the audit logs under a pseudonym only.";
const SESSION_ENDED: &str = "Your session ended. Sign in again to go back to the page you were on; anything you were typing is kept in this browser.";

/// The sign-in page, with this browser's sign-in id (a new one unless the
/// browser has one) set in its cookie.
fn login_page(state: &ApiState, headers: &HeaderMap, page: LoginPage) -> Response {
    let id = login_id(headers).unwrap_or_else(|| Uuid::from_bytes(rand::random()));
    let page = LoginPage { csrf: state.app.csrf_token(id), ..page };
    let mut response = render(&page);
    let cookie = login_cookie(id, is_secure(headers, state.config.trust_proxy_headers));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub async fn login_form(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<LoginQuery>,
) -> Response {
    let page = LoginPage {
        css: assets::css_url(),
        js: assets::js_url(),
        email: String::new(),
        next: safe_next(query.next.as_deref()),
        error: String::new(),
        notice: match (&query.ended, &query.erased) {
            (Some(_), _) => SESSION_ENDED.to_owned(),
            (None, Some(_)) => ACCOUNT_ERASED.to_owned(),
            (None, None) => String::new(),
        },
        csrf: String::new(),
    };
    login_page(&state, &headers, page)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    #[serde(default)]
    next: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// Signs in and sets the session cookie. Failures say only that the
/// address or password is wrong (and are throttled and audited like the
/// API's).
pub async fn login(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(Some(&form.next));
    let again = |error: String| {
        let page = LoginPage {
            css: assets::css_url(),
            js: assets::js_url(),
            email: form.email.clone(),
            next: next.clone(),
            error,
            notice: String::new(),
            csrf: String::new(),
        };
        login_page(&state, &headers, page)
    };
    // The form must come from this site's sign-in page in this browser.
    let from_our_page = login_id(&headers).is_some_and(|id| state.app.check_csrf(id, &form.csrf));
    if !from_our_page {
        return again("The sign-in form had expired or came from another site. Sign in again here.".into());
    }
    let Ok(email) = Email::parse(&form.email) else {
        return again("Enter your e-mail address, like name@example.com.".into());
    };
    let request = LoginRequest { email, password: form.password.clone(), code: None };
    match state.app.browser_login(request, &meta).await {
        Ok(BrowserSignIn::SecondFactor { challenge }) => {
            super::account::to_second_step(&state, &headers, &challenge, &next)
        }
        Ok(BrowserSignIn::Session { token, ttl }) => {
            let mut response = see_other(if next.is_empty() { "/" } else { &next });
            let cookie =
                session_cookie(Some(&token), ttl, is_secure(&headers, state.config.trust_proxy_headers));
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(Error::RateLimited { retry_after }) => {
            again(format!("Too many attempts. Try again in {} seconds.", retry_after.as_secs().max(1)))
        }
        Err(Error::Unauthenticated(message) | Error::Forbidden(message)) => {
            again(super::page::capitalise(&message))
        }
        Err(Error::Invalid { message, .. }) => again(super::page::capitalise(&message)),
        Err(e) => UiError::from(e).into_response_page(),
    }
}

/// Ends the session and clears the cookie.
pub async fn logout(State(state): State<ApiState>, headers: HeaderMap, submit: BrowserSubmit) -> Response {
    if let Some(token) = session_token(&headers)
        && let Err(e) = state.app.browser_logout(&token, &submit.browser.caller.meta).await
    {
        tracing::warn!(error = %e, "could not end a session");
    }
    let mut response = see_other("/login");
    let cookie =
        session_cookie(None, time::Duration::ZERO, is_secure(&headers, state.config.trust_proxy_headers));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[derive(Template)]
#[template(path = "invitation.html")]
struct InvitationPage {
    css: &'static str,
    js: &'static str,
    token: String,
    invitation: InvitationView,
    /// The signed-in person's address, if anyone is signed in.
    signed_in_as: Option<String>,
    /// The session's CSRF token, for the accept and sign-out forms.
    csrf: String,
    /// Where signing in leads back to.
    sign_in_href: String,
    /// The public forms' CSRF token (joining with a new account).
    public_csrf: String,
}

impl InvitationPage {
    fn for_them(&self) -> bool {
        self.signed_in_as.as_deref().is_some_and(|me| me.eq_ignore_ascii_case(self.invitation.email.as_str()))
    }

    fn pending(&self) -> bool {
        self.invitation.status == crate::store::InvitationStatus::Pending
    }

    /// Why it can no longer be accepted, in words.
    fn ended(&self) -> &'static str {
        match self.invitation.status {
            crate::store::InvitationStatus::Pending => "still open",
            crate::store::InvitationStatus::Accepted => "already accepted",
            crate::store::InvitationStatus::Revoked => "withdrawn",
            crate::store::InvitationStatus::Expired => "expired",
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct InvitationQuery {
    #[serde(default)]
    token: String,
}

/// What an invitation is for, and the one way to accept it: signed in as
/// the invited address.
pub async fn invitation_form(
    State(state): State<ApiState>,
    headers: HeaderMap,
    browser: Result<Browser, UiError>,
    Query(query): Query<InvitationQuery>,
) -> Result<Response, UiError> {
    let invitation = state.app.invitation_preview(&query.token).await?;
    let browser = browser.ok();
    let here = format!(
        "/invitations/accept?token={}",
        form_urlencoded::byte_serialize(query.token.as_bytes()).collect::<String>()
    );
    let signed_in_as = match &browser {
        Some(browser) => match &browser.caller.principal {
            crate::service::Principal::User { user, .. } => Some(user.email.to_string()),
            _ => None,
        },
        None => None,
    };
    let id = login_id(&headers).unwrap_or_else(|| Uuid::from_bytes(rand::random()));
    let mut response = render(&InvitationPage {
        css: assets::css_url(),
        js: assets::js_url(),
        token: query.token,
        invitation,
        signed_in_as,
        csrf: browser.map(|b| b.csrf).unwrap_or_default(),
        sign_in_href: format!(
            "/login?next={}",
            form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
        ),
        public_csrf: state.app.csrf_token(id),
    });
    let cookie = login_cookie(id, is_secure(&headers, state.config.trust_proxy_headers));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Accepts an invitation for the signed-in person (whose address must be
/// the invited one) and opens the organisation.
pub async fn accept_invitation(
    State(state): State<ApiState>,
    submit: BrowserSubmit,
) -> Result<Response, UiError> {
    let token = submit.field("token").unwrap_or_default().to_owned();
    let accepted = state.app.accept_invitation(&submit.browser.caller, AcceptInvitation { token }).await?;
    Ok(see_other(&format!("/t/{}", accepted.tenant_id)))
}

/// Where to go after signing in: a path on this site only. Browsers drop
/// tabs and newlines from URLs and read `\` as `/`, so a path with any of
/// them could turn into `//elsewhere`; it must also fit a header as it is.
pub(super) fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| {
        n.starts_with('/') && !n.starts_with("//") && n.chars().all(|c| c.is_ascii_graphic() && c != '\\')
    })
    .unwrap_or_default()
    .to_owned()
}

impl UiError {
    fn into_response_page(self) -> Response {
        axum::response::IntoResponse::into_response(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/t/x/projects")), "/t/x/projects");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/\n/evil",
            "/t/é",
        ] {
            assert_eq!(safe_next(Some(bad)), "", "{bad}");
        }
    }
}
