//! What every page shares: the shell around it (who is signed in, the
//! tenant and the switcher, the navigation this role may use, the CSRF
//! token, the asset URLs), errors as pages, and form errors shown next to
//! the fields they concern.

use std::collections::BTreeMap;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use uuid::Uuid;

use super::assets;
use super::session::Browser;
use crate::api::ApiState;
use crate::domain::Permission;
use crate::error::Error;
use crate::service::TenantAccess;

/// One entry of the tenant switcher.
#[derive(Debug, Clone)]
pub struct TenantLink {
    pub id: Uuid,
    pub name: String,
    pub current: bool,
}

/// One entry of the navigation.
#[derive(Debug, Clone)]
pub struct NavLink {
    pub href: String,
    pub label: &'static str,
    pub current: bool,
}

/// The frame of a signed-in page.
#[derive(Debug, Clone)]
pub struct Shell {
    pub user_name: String,
    pub user_email: String,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub role: &'static str,
    pub tenants: Vec<TenantLink>,
    pub nav: Vec<NavLink>,
    pub csrf: String,
    pub css: &'static str,
    pub js: &'static str,
    /// The person's unread notifications (the bell's number, kept live by
    /// the script).
    pub unread: i64,
}

impl Shell {
    /// The shell of `path` in the tenant of `access`.
    pub async fn load(
        state: &ApiState,
        browser: &Browser,
        access: &TenantAccess,
        path: &str,
    ) -> Result<Self, UiError> {
        let me = state.app.me(&browser.caller).await.map_err(UiError::from)?;
        let unread = state.app.unread_notifications(&browser.caller).await.map_err(UiError::from)?.unread;
        let tenant_id = access.tenant_id;
        let tenant_name = me
            .memberships
            .iter()
            .find(|m| m.tenant_id == tenant_id)
            .map(|m| m.tenant_name.clone())
            .unwrap_or_default();
        let base = format!("/t/{tenant_id}");
        let role = access.role;
        let mut nav = vec![
            ("", "Dashboard"),
            ("/projects", "Projects"),
            ("/properties", "Properties"),
            ("/leads", "Leads"),
        ];
        if role.allows(Permission::InboxRead) {
            nav.push(("/inbox", "Inbox"));
        }
        if role.allows(Permission::PostsRead) {
            nav.push(("/calendar", "Calendar"));
            nav.push(("/analytics", "Analytics"));
        }
        nav.extend([("/fleet", "Fleet"), ("/team", "Team")]);
        if role.allows(Permission::AuditRead) {
            nav.push(("/audit", "Audit log"));
        }
        if role.allows(Permission::SettingsView) {
            nav.push(("/settings", "Settings"));
        }
        let section = path.strip_prefix(&base).unwrap_or("");
        let nav = nav
            .into_iter()
            .map(|(rest, label)| NavLink {
                href: format!("{base}{rest}"),
                label,
                current: if rest.is_empty() {
                    section.is_empty() || section == "/"
                } else {
                    section.starts_with(rest)
                },
            })
            .collect();
        Ok(Self {
            user_name: me.user.display_name.to_string(),
            user_email: me.user.email.to_string(),
            tenant_id,
            tenant_name,
            role: role.as_str(),
            tenants: me
                .memberships
                .iter()
                .map(|m| TenantLink {
                    id: m.tenant_id,
                    name: m.tenant_name.clone(),
                    current: m.tenant_id == tenant_id,
                })
                .collect(),
            nav,
            csrf: browser.csrf.clone(),
            css: assets::css_url(),
            js: assets::js_url(),
            unread,
        })
    }
}

/// Renders a template as a page.
pub fn render(template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a page template failed to render");
            error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The page could not be shown.",
            )
        }
    }
}

/// A page with a form: 422 Unprocessable Content when the form is shown
/// again with errors, so the browser, scripts and tests can tell a refused
/// form from a fresh page.
pub fn render_form(template: &impl Template, errors: &FormErrors) -> Response {
    let mut response = render(template);
    if !errors.is_empty() && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    }
    response
}

/// Errors of a form, by field (`""` for the form as a whole).
#[derive(Debug, Clone, Default)]
pub struct FormErrors(BTreeMap<String, String>);

impl FormErrors {
    /// An optional whole number typed into `field`: `None` when empty, an
    /// error saying `expected` when it is not a number.
    pub fn whole_number(field: &str, text: Option<&str>, expected: &str) -> Result<Option<i64>, Self> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(t) => t.parse().map(Some).map_err(|_| {
                let mut errors = Self::default();
                errors.add(field, format!("give a whole number: {expected}"));
                errors
            }),
        }
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_insert_with(|| message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The error of `field`, or an empty string.
    pub fn get(&self, field: &str) -> &str {
        self.0.get(field).map_or("", String::as_str)
    }

    /// Errors of fields the form does not show, with the form's own.
    pub fn general(&self, shown: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(field, _)| field.is_empty() || !shown.contains(&field.as_str()))
            .map(
                |(field, message)| {
                    if field.is_empty() { message.clone() } else { format!("{field}: {message}") }
                },
            )
            .collect()
    }

    /// A service error as form errors, when it is about the input (a field,
    /// a conflict, a quota); anything else stays an error page.
    pub fn from_error(error: Error) -> Result<Self, UiError> {
        let mut errors = Self::default();
        match error {
            Error::Invalid { field, message } => {
                // "listing.price" is shown next to "price".
                let field = field.rsplit('.').next().unwrap_or(&field).to_owned();
                let field = field.split('[').next().unwrap_or(&field).to_owned();
                errors.add(&field, ui_words(&message));
            }
            Error::Conflict { message, .. } | Error::QuotaExceeded { message, .. } => {
                errors.add("", ui_words(&message));
            }
            Error::UnsupportedMediaType(message) => errors.add("file", message.trim_start_matches("file: ")),
            Error::PayloadTooLarge { limit } => {
                errors.add("file", format!("the file is larger than the {} MiB limit", limit / 1024 / 1024));
            }
            other => return Err(other.into()),
        }
        Ok(errors)
    }
}

/// Why a page cannot be shown.
#[derive(Debug)]
pub enum UiError {
    /// Not signed in: to the sign-in page, and back here afterwards.
    SignIn {
        next: Option<String>,
        /// The browser had a session and it ended.
        ended: bool,
    },
    Forbidden(String),
    /// The organisation requires two-factor sign-in: to the account page
    /// to turn it on.
    SetUpTwoFactor,
    /// The tenant requires its single sign-on: the page that starts it.
    SignInWithSso(uuid::Uuid),
    NotFound,
    BadRequest(String),
    Conflict(String),
    /// Anything else: logged, shown as a generic error.
    Internal(Error),
}

impl UiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(message.into())
    }
}

/// The message of a 403 page, for the layer that shows it inside the
/// organisation's navigation (`ui::with_navigation`).
#[derive(Debug, Clone)]
pub struct Refusal(pub String);

/// A message as a sentence: capitalised, ending with a full stop.
pub fn capitalise(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    out.push_str(chars.as_str());
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// An API message in the UI's words: the form's labels instead of the
/// API's field names and flags, "organisation" for "tenant", roles instead
/// of permission ids.
pub fn ui_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("pass \"wait_for_agent\": true", "tick \"Queue it if no agent can take it right now\""),
        ("\"wait_for_agent\": true", "\"Queue it if no agent can take it right now\""),
        ("with \"acknowledge_findings\": true", "after ticking that you reviewed the findings"),
        (" (PUT /api/v1/tenants/{tenant_id}/cloud-provider)", " (Settings → Cloud provider)"),
        ("source_text", "the text to adapt"),
        ("target_word_count", "the target length"),
        ("variants_per_platform", "the variants per platform"),
        ("key_features", "the key features"),
        ("agent_contact", "the agent's contact"),
        ("agent_name", "the agent's name"),
        ("square_feet", "the square feet"),
        ("tenants", "organisations"),
        ("tenant", "organisation"),
    ];
    let mut out = message.to_owned();
    for (api, ui) in WORDS {
        out = out.replace(api, ui);
    }
    // "(the activities:create permission)": the role is what people know.
    if let Some(start) = out.find(" (the ")
        && let Some(end) = out[start..].find(" permission)")
    {
        out.replace_range(start..start + end + " permission)".len(), "");
    }
    out
}

impl From<Error> for UiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Unauthenticated(_) | Error::SecondFactorRequired(_) => {
                Self::SignIn { next: None, ended: true }
            }
            Error::Forbidden(message) => Self::Forbidden(message),
            Error::TwoFactorSetupRequired(_) => Self::SetUpTwoFactor,
            Error::SsoRequired { tenant_id, .. } => Self::SignInWithSso(tenant_id),
            Error::NotFound(_) => Self::NotFound,
            Error::Invalid { field, message } => Self::BadRequest(format!("{field}: {message}")),
            Error::BadRequest { message, .. } | Error::UnsupportedMediaType(message) => {
                Self::BadRequest(message)
            }
            Error::Conflict { message, .. }
            | Error::Gone { message, .. }
            | Error::QuotaExceeded { message, .. } => Self::Conflict(message),
            other => Self::Internal(other),
        }
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(error: crate::store::StoreError) -> Self {
        Error::from(error).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::SignIn { next, ended } => {
                let mut query = form_urlencoded::Serializer::new(String::new());
                if let Some(next) = next {
                    query.append_pair("next", &next);
                }
                if ended {
                    query.append_pair("ended", "1");
                }
                let query = query.finish();
                let target = if query.is_empty() { "/login".to_owned() } else { format!("/login?{query}") };
                Redirect::to(&target).into_response()
            }
            UiError::SetUpTwoFactor => Redirect::to("/account?required=1").into_response(),
            UiError::SignInWithSso(tenant_id) => {
                Redirect::to(&format!("/login/sso?tenant={tenant_id}&required=1")).into_response()
            }
            UiError::Forbidden(message) => {
                let message = capitalise(&ui_words(&message));
                let mut response = error_page(StatusCode::FORBIDDEN, "Not allowed", &message);
                // The tenant pages' layer puts the navigation around it.
                response.extensions_mut().insert(Refusal(message));
                response
            }
            UiError::NotFound => error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it belongs to an organisation you are not a member of.",
            ),
            UiError::BadRequest(message) => {
                error_page(StatusCode::BAD_REQUEST, "That did not work", &ui_words(&message))
            }
            UiError::Conflict(message) => {
                error_page(StatusCode::CONFLICT, "That did not work", &ui_words(&message))
            }
            UiError::Internal(error) => {
                let status = match &error {
                    Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                    Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = ?error, "a page failed");
                }
                let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
                    "The server could not do this. Try again in a moment; if it keeps happening, tell your administrator.".to_owned()
                } else {
                    error.to_string()
                };
                error_page(status, "Something went wrong", &message)
            }
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
    css: &'static str,
}

/// A standalone error page (it needs no session).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let page = ErrorPage { status: status.as_u16(), title, message, css: assets::css_url() };
    let html = page.render().unwrap_or_else(|_| format!("{} {title}: {message}", status.as_u16()));
    let mut response = (status, Html(html)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A service request from a form's values, checked by the same
/// deserialisation (and so the same field names and messages) as the JSON
/// API's bodies.
pub fn request<T: serde::de::DeserializeOwned>(value: &serde_json::Value) -> Result<T, Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::internal(anyhow::anyhow!(e)))?;
    crate::api::extract::parse_json(&bytes)
}

/// A whole number from a form field, or the field's error.
pub fn number(errors: &mut FormErrors, field: &str, value: Option<&str>) -> Option<serde_json::Value> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    match plain_number(value).parse::<u64>() {
        Ok(n) => Some(n.into()),
        Err(_) => {
            errors.add(field, "must be a whole number, like 450000 or 450,000");
            None
        }
    }
}

/// A number as people type it, for parsing: without a leading currency
/// sign, thousands separators or spaces ("$450,000" is 450000, "1,850" is
/// 1850, "2.5" stays). The same rule for every number field of every form.
pub fn plain_number(value: &str) -> String {
    value
        .trim()
        .trim_start_matches(['$', '€', '£'])
        .chars()
        .filter(|c| !matches!(c, ',' | '_' | ' ' | '\u{a0}'))
        .collect()
}

/// After a form: back to a page (303, so a reload does not post again).
pub fn see_other(path: &str) -> Response {
    // `Redirect::to` panics on a value that cannot be a header; the paths
    // here are built from ids and checked input, but a page must never 500.
    match HeaderValue::from_str(path) {
        Ok(_) => Redirect::to(path).into_response(),
        Err(_) => Redirect::to("/").into_response(),
    }
}

/// `?cursor=`: where a paged list continues, in the API's cursor format
/// (one way to page, for the API and the UI alike).
#[derive(Debug, Default, serde::Deserialize)]
pub struct After {
    pub cursor: Option<String>,
}

impl After {
    /// The page of `size` rows this address asks for; a cursor this server
    /// did not issue is a 400 page.
    pub fn page(&self, size: u32) -> Result<crate::store::PageRequest, Error> {
        crate::api::pagination::ListParams { limit: Some(size), cursor: self.cursor.clone() }.page()
    }
}

/// Links between the pages of a long list (`pager.html`).
#[derive(Debug, Default)]
pub struct Pager {
    pub first: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// Links for a list at `base`, now showing the page after `after`, with
    /// `next` the cursor of the page after this one.
    pub fn new(base: &str, after: &After, next: Option<Uuid>) -> Self {
        let next = next.map(|id| format!("{base}?cursor={}", crate::api::pagination::encode_cursor(id)));
        Self { first: after.cursor.as_ref().map(|_| base.to_owned()), next }
    }
}

/// Every item of a paged service list, a page at a time: for lists the UI
/// needs whole (names to show, filters to offer).
pub async fn every<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, Error>
where
    F: FnMut(crate::store::PageRequest) -> Fut,
    Fut: Future<Output = Result<crate::store::Page<T>, Error>>,
{
    let mut items = Vec::new();
    let mut after = None;
    loop {
        let page = fetch(crate::store::PageRequest { after, limit: 500 }).await?;
        items.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(items),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_words_become_the_uis() {
        let message = "no agent of this tenant is online; and the tenant has no cloud provider \
                       (PUT /api/v1/tenants/{tenant_id}/cloud-provider). Start an agent with the model, \
                       or pass \"wait_for_agent\": true to queue the activity until one is online";
        let words = ui_words(message);
        assert!(
            !words.contains("wait_for_agent") && !words.contains("/api/") && !words.contains("tenant"),
            "{words}"
        );
        assert!(words.contains("tick \"Queue it if no agent can take it right now\""), "{words}");
        assert!(words.contains("(Settings → Cloud provider)") && words.contains("organisation"), "{words}");
        assert_eq!(ui_words("source_text: must not be empty"), "the text to adapt: must not be empty");
        let forbidden =
            "this needs the admin role or above (the agents:manage permission); your role here is member";
        assert_eq!(ui_words(forbidden), "this needs the admin role or above; your role here is member");
    }
}
