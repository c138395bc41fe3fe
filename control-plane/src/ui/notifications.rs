//! Notifications in the UI: the list behind the bell, the person's e-mail
//! preferences, and the public pages of the links sent by e-mail
//! (forgotten password, new password, address confirmation, stopping
//! digests, joining with a new account).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::assets;
use super::page::{Shell, UiError, capitalise, render, see_other};
use super::session::{
    Path, PublicSubmit, Query, Submit, TenantPage, is_secure, login_cookie, login_id, session_cookie,
};
use super::view::When;
use crate::api::ApiState;
use crate::domain::{Email, Name, Password};
use crate::error::Error;
use crate::service::{
    JoinWithNewAccount, LinkToken, LoginRequest, MarkRead, PasswordReset, PasswordResetRequest,
    PreferenceChange, UpdatePreferences,
};
use crate::store::{Delivery, PageRequest};

struct Item {
    id: Uuid,
    title: String,
    body: String,
    organisation: Option<String>,
    at: When,
    unread: bool,
    has_link: bool,
}

#[derive(Template)]
#[template(path = "notifications.html")]
struct NotificationsPage {
    shell: Shell,
    base: String,
    items: Vec<Item>,
    unread: i64,
    older: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    cursor: Option<String>,
}

/// The person's notifications, newest first, across their organisations.
pub async fn list(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(query): Query<ListQuery>,
) -> Result<Response, UiError> {
    let request = crate::api::pagination::ListParams { limit: Some(50), cursor: query.cursor }.page()?;
    let found = state.app.notifications(&page.browser.caller, false, request).await?;
    let unread = state.app.unread_notifications(&page.browser.caller).await?.unread;
    let base = page.path("/notifications");
    Ok(render(&NotificationsPage {
        items: found
            .items
            .into_iter()
            .map(|n| Item {
                id: n.id,
                title: n.title,
                body: n.body,
                organisation: n.tenant_name,
                at: When::of(n.created_at),
                unread: n.read_at.is_none(),
                has_link: n.link.is_some(),
            })
            .collect(),
        older: found.next.map(|id| format!("{base}?cursor={}", crate::api::pagination::encode_cursor(id))),
        unread,
        base,
        shell: page.shell,
    }))
}

/// Marks everything read.
pub async fn read_all(State(state): State<ApiState>, submit: Submit<Empty>) -> Result<Response, UiError> {
    state.app.mark_notifications_read(&submit.page.browser.caller, MarkRead { ids: None }).await?;
    Ok(see_other(&submit.page.path("/notifications")))
}

#[derive(Debug, Deserialize)]
pub struct Empty {}

#[derive(Debug, Deserialize)]
pub struct NotificationPath {
    #[allow(dead_code)]
    tenant_id: Uuid,
    notification_id: Uuid,
}

/// Opens what a notification is about, marking it read.
pub async fn open(
    State(state): State<ApiState>,
    Path(p): Path<NotificationPath>,
    submit: Submit<Empty>,
) -> Result<Response, UiError> {
    let caller = &submit.page.browser.caller;
    state.app.mark_notifications_read(caller, MarkRead { ids: Some(vec![p.notification_id]) }).await?;
    let link = state
        .app
        .notifications(caller, false, PageRequest { after: None, limit: 200 })
        .await?
        .items
        .into_iter()
        .find(|n| n.id == p.notification_id)
        .and_then(|n| n.link)
        // Only paths of this site (the store holds what features wrote,
        // but a redirect is not the place to trust it).
        .filter(|l| l.starts_with('/') && !l.starts_with("//"));
    Ok(see_other(&link.unwrap_or_else(|| submit.page.path("/notifications"))))
}

struct PrefRow {
    kind: String,
    label: &'static str,
    delivery: &'static str,
}

#[derive(Template)]
#[template(path = "notification_settings.html")]
struct SettingsPage {
    shell: Shell,
    base: String,
    email_enabled: bool,
    email: String,
    verified: bool,
    rows: Vec<PrefRow>,
    saved: bool,
    message: String,
}

#[derive(Debug, Deserialize)]
pub struct SettingsQuery {
    saved: Option<String>,
    sent: Option<String>,
}

pub async fn settings(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(query): Query<SettingsQuery>,
) -> Result<Response, UiError> {
    let s = state.app.notification_settings(&page.browser.caller).await?;
    Ok(render(&SettingsPage {
        base: page.path("/notifications"),
        email_enabled: s.email_enabled,
        email: s.email.to_string(),
        verified: s.email_verified,
        rows: s
            .preferences
            .into_iter()
            .map(|p| PrefRow { kind: p.kind.to_string(), label: p.label, delivery: p.delivery.into() })
            .collect(),
        saved: query.saved.is_some(),
        message: if query.sent.is_some() {
            format!("A link to confirm {} is on its way. It works for 48 hours.", s.email)
        } else {
            String::new()
        },
        shell: page.shell,
    }))
}

/// Saves every kind's choice (a select per kind, named by the kind).
pub async fn save_settings(
    State(state): State<ApiState>,
    submit: Submit<std::collections::BTreeMap<String, String>>,
) -> Result<Response, UiError> {
    let mut preferences = Vec::new();
    for (kind, delivery) in &submit.form {
        let Ok(kind) = kind.parse() else {
            return Err(UiError::bad_request(format!("{kind} is not a kind of notification")));
        };
        let Ok(delivery) = delivery.parse::<Delivery>() else {
            return Err(UiError::bad_request(format!("{delivery} is not immediately, daily_digest or off")));
        };
        preferences.push(PreferenceChange { kind, delivery });
    }
    state
        .app
        .update_notification_preferences(&submit.page.browser.caller, UpdatePreferences { preferences })
        .await?;
    Ok(see_other(&format!("{}?saved=1", submit.page.path("/notifications/settings"))))
}

pub async fn send_verification(
    State(state): State<ApiState>,
    submit: Submit<Empty>,
) -> Result<Response, UiError> {
    state.app.send_verification(&submit.page.browser.caller).await?;
    Ok(see_other(&format!("{}?sent=1", submit.page.path("/notifications/settings"))))
}

// ----- Public pages of e-mailed links --------------------------------------

/// A public page's form: what it asks, and where it posts.
#[derive(Template)]
#[template(path = "public_form.html")]
struct PublicForm {
    css: &'static str,
    js: &'static str,
    csrf: String,
    title: &'static str,
    intro: String,
    action: &'static str,
    token: String,
    /// Fields: (name, label, type, autocomplete).
    fields: Vec<(&'static str, &'static str, &'static str, &'static str)>,
    button: &'static str,
    error: String,
    message: String,
    /// Offer the sign-in page after `message`.
    sign_in: bool,
}

impl PublicForm {
    fn new(title: &'static str, action: &'static str, button: &'static str) -> Self {
        Self {
            css: assets::css_url(),
            js: assets::js_url(),
            csrf: String::new(),
            title,
            intro: String::new(),
            action,
            token: String::new(),
            fields: Vec::new(),
            button,
            error: String::new(),
            message: String::new(),
            sign_in: false,
        }
    }
}

/// Renders a public form with this browser's sign-in id (set in its
/// cookie) and the form's CSRF token made from it.
fn public(state: &ApiState, headers: &HeaderMap, form: PublicForm) -> Response {
    let id = login_id(headers).unwrap_or_else(|| Uuid::from_bytes(rand::random()));
    let mut response = render(&PublicForm { csrf: state.app.csrf_token(id), ..form });
    let cookie = login_cookie(id, is_secure(headers, state.config.trust_proxy_headers));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    token: String,
}

fn forgot_form() -> PublicForm {
    PublicForm {
        intro:
            "Enter the e-mail address of your account. If it has one here, we send it a link to choose a new \
                password."
                .into(),
        fields: vec![("email", "E-mail address", "email", "username")],
        ..PublicForm::new("Forgot your password?", "/forgot-password", "Send the link")
    }
}

pub async fn forgot_form_page(State(state): State<ApiState>, headers: HeaderMap) -> Response {
    public(&state, &headers, forgot_form())
}

pub async fn forgot(State(state): State<ApiState>, submit: PublicSubmit) -> Response {
    let Ok(email) = Email::parse(submit.field("email").unwrap_or_default()) else {
        let form =
            PublicForm { error: "Enter your e-mail address, like name@example.com.".into(), ..forgot_form() };
        return public(&state, &submit.headers, form);
    };
    let done = state.app.request_password_reset(PasswordResetRequest { email }, &submit.meta);
    let form =
        PublicForm { message: done.message, fields: Vec::new(), intro: String::new(), ..forgot_form() };
    public(&state, &submit.headers, form)
}

fn reset_form(token: String) -> PublicForm {
    PublicForm {
        intro: "Choose a new password: at least 12 characters. Every device signed in to your account is signed out."
            .into(),
        token,
        fields: vec![("password", "New password", "password", "new-password")],
        ..PublicForm::new("Choose a new password", "/reset-password", "Set the password")
    }
}

pub async fn reset_form_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    public(&state, &headers, reset_form(q.token))
}

pub async fn reset(State(state): State<ApiState>, submit: PublicSubmit) -> Response {
    let token = submit.field("token").unwrap_or_default().to_owned();
    let again =
        |error: String| public(&state, &submit.headers, PublicForm { error, ..reset_form(token.clone()) });
    let password = match Password::parse(submit.field("password").unwrap_or_default()) {
        Ok(p) => p,
        Err(e) => return again(capitalise(&e.to_string())),
    };
    match state.app.reset_password(PasswordReset { token: token.clone(), password }, &submit.meta).await {
        Ok(done) => done_page(&state, &submit.headers, "Password changed", done.message, true),
        Err(e) => again(words(e)),
    }
}

/// A link's page: what it does, and the button that does it. Mail scanners
/// open links to check them, so opening one changes nothing.
fn link_form(
    title: &'static str,
    action: &'static str,
    intro: &str,
    button: &'static str,
    token: String,
) -> PublicForm {
    PublicForm { intro: intro.into(), token, ..PublicForm::new(title, action, button) }
}

const VERIFY_INTRO: &str =
    "Confirm that this e-mail address is yours, so Marketer may send you notifications.";
const UNSUBSCRIBE_INTRO: &str = "Stop the daily digest e-mails. Notifications stay in the app, and you can choose \
                                 again in your notification settings.";

pub async fn verify_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    public(
        &state,
        &headers,
        link_form("Confirm your address", "/verify-email", VERIFY_INTRO, "Confirm", q.token),
    )
}

pub async fn verify(State(state): State<ApiState>, submit: PublicSubmit) -> Response {
    let token = submit.field("token").unwrap_or_default().to_owned();
    match state.app.verify_email(LinkToken { token: token.clone() }, &submit.meta).await {
        Ok(done) => done_page(&state, &submit.headers, "Address confirmed", done.message, true),
        Err(e) => public(
            &state,
            &submit.headers,
            PublicForm {
                error: words(e),
                ..link_form("Confirm your address", "/verify-email", VERIFY_INTRO, "Confirm", token)
            },
        ),
    }
}

pub async fn unsubscribe_page(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    public(
        &state,
        &headers,
        link_form("Stop daily digests", "/unsubscribe", UNSUBSCRIBE_INTRO, "Stop them", q.token),
    )
}

pub async fn unsubscribe(State(state): State<ApiState>, submit: PublicSubmit) -> Response {
    let token = submit.field("token").unwrap_or_default().to_owned();
    match state.app.unsubscribe_digests(LinkToken { token: token.clone() }, &submit.meta).await {
        Ok(done) => done_page(&state, &submit.headers, "Digests stopped", done.message, false),
        Err(e) => public(
            &state,
            &submit.headers,
            PublicForm {
                error: words(e),
                ..link_form("Stop daily digests", "/unsubscribe", UNSUBSCRIBE_INTRO, "Stop them", token)
            },
        ),
    }
}

/// Creates the account an e-mailed invitation is for, then signs it in.
pub async fn join(State(state): State<ApiState>, submit: PublicSubmit) -> Result<Response, UiError> {
    let token = submit.field("token").unwrap_or_default().to_owned();
    let back = format!(
        "/invitations/accept?token={}",
        form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    let name = Name::parse(submit.field("display_name").unwrap_or_default())
        .map_err(|e| UiError::bad_request(format!("Your name: {e}")))?;
    let password_text = submit.field("password").unwrap_or_default().to_owned();
    let password =
        Password::parse(&password_text).map_err(|e| UiError::bad_request(format!("The password: {e}")))?;
    let joined = state
        .app
        .join_with_new_account(JoinWithNewAccount { token, display_name: name, password }, &submit.meta)
        .await
        .map_err(|e| match e {
            Error::Conflict { message, .. } | Error::Gone { message, .. } => {
                UiError::Conflict(format!("{} ({back})", capitalise(&message)))
            }
            other => other.into(),
        })?;
    let login = LoginRequest { email: joined.user.email.clone(), password: password_text, code: None };
    let (token, ttl) = match state.app.browser_login(login, &submit.meta).await? {
        crate::service::BrowserSignIn::Session { token, ttl } => (token, ttl),
        // An existing account joined by its password and uses a second
        // factor: it signs in the usual way.
        crate::service::BrowserSignIn::SecondFactor { .. } => return Ok(see_other("/login")),
    };
    let mut response = see_other(&format!("/t/{}", joined.tenant_id));
    let cookie =
        session_cookie(Some(&token), ttl, is_secure(&submit.headers, state.config.trust_proxy_headers));
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

fn done_page(
    state: &ApiState,
    headers: &HeaderMap,
    title: &'static str,
    message: String,
    sign_in: bool,
) -> Response {
    public(state, headers, PublicForm { message, sign_in, ..PublicForm::new(title, "", "") })
}

/// An error of a public form in the UI's words.
pub(super) fn words(e: Error) -> String {
    match e {
        Error::Gone { message, .. } | Error::Conflict { message, .. } | Error::Forbidden(message) => {
            capitalise(&message)
        }
        Error::Invalid { field, message } => capitalise(&format!("{field}: {message}")),
        Error::RateLimited { .. } => "Too many attempts: wait a little and try again.".into(),
        other => {
            tracing::error!(error = %other, "a public form failed");
            "Something went wrong; try again in a moment.".into()
        }
    }
}
