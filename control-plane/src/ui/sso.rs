//! Single sign-on in the browser: the sign-in page's "Single sign-on"
//! step (work e-mail address or organisation short name), the link that
//! starts an organisation's sign-in (`/sso/{slug}`), the provider's way
//! back (`/sso/callback`), and Settings → Single sign-on, where owners and
//! admins connect their identity provider.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::assets;
use super::auth::safe_next;
use super::page::{FormErrors, Shell, UiError, render, render_form, request, see_other};
use super::session::{
    Meta, Path, Query, Submit, TenantPage, cookie_value, is_secure, login_cookie, login_id, session_cookie,
};
use crate::api::ApiState;
use crate::domain::{Permission, Role, Tenant};
use crate::error::Error;
use crate::service::sso::{CALLBACK_PATH, LOGIN_TTL, SsoConnectionRequest, SsoConnectionView};

/// The cookie that ties the provider's answer to the browser that started
/// the sign-in: the state, scoped to the callback. `Lax`, since the answer
/// is a top-level navigation from the provider's site.
const STATE_COOKIE: &str = "marketer_sso_state";

fn state_cookie(value: Option<&str>, secure: bool) -> String {
    cookie::Cookie::build((STATE_COOKIE, value.unwrap_or_default().to_owned()))
        .path(CALLBACK_PATH)
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure)
        .max_age(if value.is_some() { LOGIN_TTL } else { time::Duration::ZERO })
        .build()
        .to_string()
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[derive(Template)]
#[template(path = "sso_login.html")]
struct SsoLoginPage {
    css: &'static str,
    js: &'static str,
    organisation: String,
    next: String,
    error: String,
    /// The organisation to continue to (its name and short name), and
    /// whether it sent the person here because it requires SSO.
    continue_to: Option<(String, String)>,
    required: bool,
    csrf: String,
}

fn sso_login_page(state: &ApiState, headers: &HeaderMap, page: SsoLoginPage) -> Response {
    let id = login_id(headers).unwrap_or_else(|| Uuid::from_bytes(rand::random()));
    let page = SsoLoginPage { csrf: state.app.csrf_token(id), ..page };
    let failed = !page.error.is_empty();
    let mut response = render(&page);
    if failed {
        *response.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    // The form posts here, and the answer redirects to the organisation's
    // provider: browsers hold redirects after a form to `form-action` too,
    // so this page allows provider addresses (only), as the operator does.
    let providers = if state.app.notifier.webhook_settings().allow_http { "https: http:" } else { "https:" };
    let policy = super::CONTENT_SECURITY_POLICY
        .replace("form-action 'self'", &format!("form-action 'self' {providers}"));
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    with_cookie(response, &login_cookie(id, is_secure(headers, state.config.trust_proxy_headers)))
}

fn blank(next: String) -> SsoLoginPage {
    SsoLoginPage {
        css: assets::css_url(),
        js: assets::js_url(),
        organisation: String::new(),
        next,
        error: String::new(),
        continue_to: None,
        required: false,
        csrf: String::new(),
    }
}

#[derive(Debug, Deserialize)]
pub struct FormQuery {
    next: Option<String>,
    /// The organisation that requires SSO (from its redirect).
    tenant: Option<Uuid>,
}

/// `/login/sso`: asks for a work e-mail address or an organisation's short
/// name; sent here by an organisation that requires SSO, it names it.
pub async fn form(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<FormQuery>,
) -> Response {
    let mut page = blank(safe_next(query.next.as_deref()));
    if let Some(tenant_id) = query.tenant
        && let Ok(Some(tenant)) = state.app.store.tenant(tenant_id).await
    {
        page.organisation = tenant.slug.to_string();
        page.continue_to = Some((tenant.name.to_string(), tenant.slug.to_string()));
        page.required = true;
    }
    sso_login_page(&state, &headers, page)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    next: String,
    #[serde(default, rename = "_csrf")]
    csrf: String,
}

/// Single sign-on starts one address may make a minute (each stores a
/// sign-in's state and may ask the provider for its configuration); a
/// whole office behind one address stays well under it.
pub const SSO_STARTS_PER_MINUTE: u32 = 60;

/// Finds the organisation and sends the browser to its provider.
pub async fn submit(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(Some(&form.next));
    let again = |error: String| {
        let page = SsoLoginPage { organisation: form.organisation.clone(), error, ..blank(next.clone()) };
        sso_login_page(&state, &headers, page)
    };
    if let Some(ip) = meta.client_ip
        && let Err(Error::RateLimited { retry_after }) =
            state.limiter.check_fixed(&format!("sso-start:{ip}"), SSO_STARTS_PER_MINUTE).await
    {
        let seconds = retry_after.as_secs().max(1);
        let mut response = again(format!(
            "Too many sign-ins were started from your address in the last minute. Try again in {seconds} seconds."
        ));
        *response.status_mut() = axum::http::StatusCode::TOO_MANY_REQUESTS;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let from_our_page = login_id(&headers).is_some_and(|id| state.app.check_csrf(id, &form.csrf));
    if !from_our_page {
        return again("The form had expired or came from another site. Try again here.".into());
    }
    match state.app.sso_tenant_for(&form.organisation).await {
        Ok(tenant) => start(&state, &headers, &tenant, next).await,
        Err(Error::Invalid { message, .. }) => again(super::page::capitalise(&message)),
        Err(e) => UiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct BeginQuery {
    next: Option<String>,
}

/// `/sso/{slug}`: the link an organisation gives its people. It shows the
/// organisation and a button: a sign-in starts from a form of this site
/// (with its CSRF token), never from a link another site could make a
/// browser follow.
pub async fn begin(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    Query(query): Query<BeginQuery>,
) -> Response {
    let next = safe_next(query.next.as_deref());
    match state.app.sso_tenant_for(&slug).await {
        Ok(tenant) => {
            let page = SsoLoginPage {
                organisation: tenant.slug.to_string(),
                continue_to: Some((tenant.name.to_string(), tenant.slug.to_string())),
                ..blank(next)
            };
            sso_login_page(&state, &headers, page)
        }
        Err(Error::Invalid { message, .. }) => {
            let page = SsoLoginPage { error: super::page::capitalise(&message), ..blank(next) };
            sso_login_page(&state, &headers, page)
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

async fn start(state: &ApiState, headers: &HeaderMap, tenant: &Tenant, next: String) -> Response {
    let return_to = Some(next.clone()).filter(|n| !n.is_empty());
    match state.app.sso_start(tenant, return_to).await {
        Ok(started) => {
            let secure = is_secure(headers, state.config.trust_proxy_headers);
            with_cookie(see_other(&started.authorize_url), &state_cookie(Some(&started.state), secure))
        }
        Err(Error::Invalid { message, .. } | Error::Unavailable(message)) => {
            let page = SsoLoginPage {
                organisation: tenant.slug.to_string(),
                error: super::page::capitalise(&message),
                ..blank(next)
            };
            sso_login_page(state, headers, page)
        }
        Err(e) => UiError::from(e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    #[serde(default)]
    state: String,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `/sso/callback`: the provider sends the person back here.
pub async fn callback(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let secure = is_secure(&headers, state.config.trust_proxy_headers);
    let cookie_state = cookie_value(&headers, STATE_COOKIE);
    let provider_error = query.error.as_deref().map(|e| match query.error_description.as_deref() {
        Some(description) => format!("{e}: {description}"),
        None => e.to_owned(),
    });
    let finished = state
        .app
        .sso_finish(
            &query.state,
            cookie_state.as_deref(),
            query.code.as_deref(),
            provider_error.as_deref(),
            &meta,
        )
        .await;
    let response = match finished {
        Ok(signed_in) => {
            let response = see_other(&signed_in.return_to);
            with_cookie(response, &session_cookie(Some(&signed_in.token), signed_in.ttl, secure))
        }
        Err(Error::Unauthenticated(message) | Error::Forbidden(message) | Error::Unavailable(message)) => {
            let page = SsoLoginPage { error: super::page::capitalise(&message), ..blank(String::new()) };
            sso_login_page(&state, &headers, page)
        }
        Err(e) => UiError::from(e).into_response(),
    };
    with_cookie(response, &state_cookie(None, secure))
}

struct RoleChoice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn roles(selected: Role) -> Vec<RoleChoice> {
    [(Role::Viewer, "Viewer"), (Role::Member, "Member"), (Role::Admin, "Admin")]
        .into_iter()
        .map(|(role, label)| RoleChoice { value: role.as_str(), label, selected: role == selected })
        .collect()
}

#[derive(Template)]
#[template(path = "sso_settings.html")]
struct SettingsPage {
    shell: Shell,
    base: String,
    connection: Option<SsoConnectionView>,
    redirect_uri: String,
    typed: SettingsForm,
    roles: Vec<RoleChoice>,
    errors: FormErrors,
    saved: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    allowed_domains: String,
    #[serde(default)]
    default_role: String,
    #[serde(default)]
    groups_claim: String,
    #[serde(default)]
    group_roles: String,
    /// A checkbox: present when ticked.
    enabled: Option<String>,
}

impl SettingsForm {
    fn of(c: &SsoConnectionView) -> Self {
        Self {
            issuer: c.issuer.clone(),
            client_id: c.client_id.clone(),
            client_secret: String::new(),
            allowed_domains: c.allowed_domains.join(", "),
            default_role: c.default_role.as_str().to_owned(),
            groups_claim: c.groups_claim.clone(),
            group_roles: c
                .group_roles
                .iter()
                .map(|g| format!("{} = {}", g.group, g.role.as_str()))
                .collect::<Vec<_>>()
                .join("\n"),
            enabled: c.enabled.then(|| "on".to_owned()),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct SettingsQuery {
    saved: Option<String>,
}

/// Settings → Single sign-on.
pub async fn settings(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(query): Query<SettingsQuery>,
) -> Result<Response, UiError> {
    page.access.require(Permission::TenantManage)?;
    let connection = match state.app.sso_connection(&page.access).await {
        Ok(c) => Some(c),
        Err(Error::NotFound(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let typed = connection.as_ref().map(SettingsForm::of).unwrap_or_else(|| SettingsForm {
        groups_claim: "groups".into(),
        enabled: Some("on".into()),
        ..SettingsForm::default()
    });
    settings_page(&state, page, connection, typed, FormErrors::default(), query.saved.is_some())
}

fn settings_page(
    state: &ApiState,
    page: TenantPage,
    connection: Option<SsoConnectionView>,
    typed: SettingsForm,
    errors: FormErrors,
    saved: bool,
) -> Result<Response, UiError> {
    let default_role = typed.default_role.parse().unwrap_or(Role::Member);
    let view = SettingsPage {
        base: page.path("/settings/sso"),
        redirect_uri: format!("{}{CALLBACK_PATH}", state.app.notifier.public_url().trim_end_matches('/')),
        connection,
        roles: roles(default_role),
        typed,
        errors,
        saved,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

/// Lines of `group = role` (or `group: role`) as the API's list.
fn group_roles(text: &str, errors: &mut FormErrors) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for (n, line) in text.lines().map(str::trim).enumerate().filter(|(_, l)| !l.is_empty()) {
        match line.rsplit_once('=').or_else(|| line.rsplit_once(':')) {
            Some((group, role)) => out
                .push(serde_json::json!({ "group": group.trim(), "role": role.trim().to_ascii_lowercase() })),
            None => errors.add(
                "group_roles",
                format!("line {}: write each as group = role, such as marketing = member", n + 1),
            ),
        }
    }
    out
}

/// Saves the connection (the issuer is checked by reading its discovery
/// document).
pub async fn save(State(state): State<ApiState>, submit: Submit<SettingsForm>) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let mut errors = FormErrors::default();
    let mapping = group_roles(&form.group_roles, &mut errors);
    let domains: Vec<&str> =
        form.allowed_domains.split([',', '\n', ' ']).map(str::trim).filter(|d| !d.is_empty()).collect();
    let body = serde_json::json!({
        "issuer": form.issuer,
        "client_id": form.client_id,
        "client_secret": Some(form.client_secret.trim()).filter(|s| !s.is_empty()),
        "allowed_domains": domains,
        "default_role": form.default_role,
        "groups_claim": Some(form.groups_claim.trim()).filter(|s| !s.is_empty()),
        "group_roles": mapping,
        "enabled": form.enabled.is_some(),
    });
    let result = if errors.is_empty() {
        match request::<SsoConnectionRequest>(&body) {
            Ok(req) => state.app.put_sso_connection(&page.access, req).await,
            Err(e) => Err(e),
        }
    } else {
        Err(Error::invalid("group_roles", errors.get("group_roles").to_owned()))
    };
    match result {
        Ok(_) => Ok(see_other(&format!("{}?saved=1", page.path("/settings/sso")))),
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            let connection = state.app.sso_connection(&page.access).await.ok();
            let typed = SettingsForm { client_secret: String::new(), ..form };
            settings_page(&state, page, connection, typed, errors, false)
        }
    }
}

/// Removes the connection.
pub async fn delete(
    State(state): State<ApiState>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let Submit { page, .. } = submit;
    match state.app.delete_sso_connection(&page.access).await {
        Ok(()) | Err(Error::NotFound(_)) => Ok(Redirect::to(&page.path("/settings/sso")).into_response()),
        Err(e) => Err(e.into()),
    }
}
