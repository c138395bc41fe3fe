//! Who is using the UI: the session cookie (HttpOnly, SameSite=Lax, Secure
//! when the request came over TLS), the CSRF token every form carries, and
//! the extractors pages and forms are written with.

use axum::extract::{FromRequest, FromRequestParts, OriginalUri, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::page::{Shell, UiError};
use crate::api::ApiState;
use crate::api::extract::request_meta;
use crate::domain::Permission;
use crate::service::{Caller, Principal, TenantAccess};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "marketer_session";
/// The form field (or `x-csrf-token` header) that carries the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";

/// The cookie that ties the sign-in form to the browser it was shown in
/// (a random id; the form carries its HMAC), so another site cannot sign a
/// browser into an account of its choosing.
pub const LOGIN_COOKIE: &str = "marketer_login";

/// The session token in the request's cookies, if any.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of the request's cookie `name`, if it has one.
pub(super) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

/// The sign-in form's browser id from its cookie, if it has one.
pub fn login_id(headers: &HeaderMap) -> Option<Uuid> {
    cookie_value(headers, LOGIN_COOKIE).and_then(|v| Uuid::parse_str(&v).ok())
}

/// The `Set-Cookie` value of the sign-in form's browser id (an hour; never
/// readable by scripts). The public forms (password reset, address
/// verification, joining) use it too.
pub fn login_cookie(id: Uuid, secure: bool) -> String {
    cookie::Cookie::build((LOGIN_COOKIE, id.to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .max_age(time::Duration::hours(1))
        .build()
        .to_string()
}

/// The `Set-Cookie` value that starts a session (`max_age` seconds) or, with
/// `None`, ends it.
pub fn session_cookie(token: Option<&str>, max_age: time::Duration, secure: bool) -> String {
    let mut cookie = cookie::Cookie::build((SESSION_COOKIE, token.unwrap_or_default().to_owned()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Lax)
        .secure(secure);
    cookie = if token.is_some() { cookie.max_age(max_age) } else { cookie.max_age(time::Duration::ZERO) };
    cookie.build().to_string()
}

/// Whether the request reached us over TLS (directly, or through a proxy
/// the server is told to trust).
pub fn is_secure(parts_headers: &HeaderMap, trust_proxy: bool) -> bool {
    trust_proxy
        && parts_headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// The address of `path` on this server as the browser reached it (its
/// Host, and https when a trusted proxy says so): for links shown to copy.
pub fn absolute_url(headers: &HeaderMap, trust_proxy: bool, path: &str) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let scheme = if is_secure(headers, trust_proxy) { "https" } else { "http" };
    format!("{scheme}://{host}{path}")
}

/// Path parameters of a page. An address that does not parse (an id that
/// is not a UUID) names no page: 404, as a page, like any unknown address.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Self(value))
            .map_err(|_| UiError::NotFound)
    }
}

/// Query parameters of a page; ones that do not fit are a 400 page naming
/// the problem.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, UiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Self(value))
            .map_err(|e| {
                UiError::bad_request(format!(
                    "the address's parameters do not fit this page: {}",
                    e.body_text()
                ))
            })
    }
}

/// Facts about the request for the audit log, for pages without a session.
#[derive(Debug, Clone)]
pub struct Meta(pub crate::service::RequestMeta);

impl FromRequestParts<ApiState> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        Ok(Self(request_meta(parts, state.config.trust_proxy_headers)))
    }
}

/// A signed-in person using the UI.
#[derive(Debug, Clone)]
pub struct Browser {
    pub caller: Caller,
    pub session_id: Uuid,
    pub csrf: String,
}

impl FromRequestParts<ApiState> for Browser {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, UiError> {
        let token = session_token(&parts.headers);
        // A cookie that no longer opens a session: it ended (expired, signed
        // out elsewhere, revoked) while the page was open.
        let ended = token.is_some();
        let sign_in = || UiError::SignIn { next: next_path(parts), ended };
        let token = token.ok_or_else(sign_in)?;
        let meta = request_meta(parts, state.config.trust_proxy_headers);
        let caller = state.app.browser_caller(&token, meta).await.map_err(|_| sign_in())?;
        let Principal::User { session_id, .. } = &caller.principal else { return Err(sign_in()) };
        let session_id = *session_id;
        Ok(Self { csrf: state.app.csrf_token(session_id), caller, session_id })
    }
}

/// Where to come back to after signing in: this page, if it was a page;
/// for a form, the page it was sent from (its `Referer`, on this site).
fn next_path(parts: &Parts) -> Option<String> {
    let uri = parts.extensions.get::<OriginalUri>().map_or(&parts.uri, |u| &u.0);
    let path = if parts.method == Method::GET {
        uri.path_and_query().map(|p| p.as_str().to_owned())
    } else {
        parts
            .headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| reqwest::Url::parse(v).ok())
            .filter(|referer| {
                let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok());
                referer.host_str().zip(host).is_some_and(|(r, h)| h.split(':').next() == Some(r))
            })
            .map(|referer| match referer.query() {
                Some(query) => format!("{}?{query}", referer.path()),
                None => referer.path().to_owned(),
            })
    };
    path.filter(|p| p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/login"))
}

/// A page of one tenant the person belongs to (any other tenant is a 404).
#[derive(Debug, Clone)]
pub struct TenantPage {
    pub browser: Browser,
    pub access: TenantAccess,
    pub shell: Shell,
}

impl TenantPage {
    pub fn tenant_id(&self) -> Uuid {
        self.access.tenant_id
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.access.role.allows(permission)
    }

    /// A path under this tenant's pages.
    pub fn path(&self, rest: &str) -> String {
        format!("/t/{}{rest}", self.access.tenant_id)
    }
}

impl FromRequestParts<ApiState> for TenantPage {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, UiError> {
        let browser = Browser::from_request_parts(parts, state).await?;
        let params = RawPathParams::from_request_parts(parts, state).await.map_err(|_| UiError::NotFound)?;
        let tenant_id = params
            .iter()
            .find(|(name, _)| *name == "tenant_id")
            .and_then(|(_, value)| Uuid::parse_str(value).ok())
            .ok_or(UiError::NotFound)?;
        let access =
            state.app.tenant_access(browser.caller.clone(), tenant_id).await.map_err(UiError::from)?;
        // Nested routes see their URI without the `/t/{id}` prefix.
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |u| u.path().to_owned());
        let shell = Shell::load(state, &browser, &access, &path).await?;
        Ok(Self { browser, access, shell })
    }
}

/// A submitted form of a tenant page: the page (who, where) and the fields,
/// accepted only with the session's CSRF token.
#[derive(Debug)]
pub struct Submit<T> {
    pub page: TenantPage,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<ApiState> for Submit<T> {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, UiError> {
        let (mut parts, body) = req.into_parts();
        let page = TenantPage::from_request_parts(&mut parts, state).await?;
        let pairs = form_pairs(body, state).await?;
        check_csrf(state, &page.browser, &parts.headers, &pairs)?;
        let fields: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != CSRF_FIELD).collect();
        let form = deserialize_form(&fields)?;
        Ok(Self { page, form })
    }
}

/// A submitted form of a page outside any tenant (sign out).
#[derive(Debug)]
pub struct BrowserSubmit {
    pub browser: Browser,
    pairs: Vec<(String, String)>,
}

impl BrowserSubmit {
    /// A field of the form, if it was sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl FromRequest<ApiState> for BrowserSubmit {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, UiError> {
        let (mut parts, body) = req.into_parts();
        let browser = Browser::from_request_parts(&mut parts, state).await?;
        let pairs = form_pairs(body, state).await?;
        check_csrf(state, &browser, &parts.headers, &pairs)?;
        Ok(Self { browser, pairs })
    }
}

/// A submitted form of a public page (no session: choosing a new password,
/// confirming an address, joining with a new account), accepted only with
/// the HMAC of this browser's sign-in id, like the sign-in form.
#[derive(Debug)]
pub struct PublicSubmit {
    pub meta: crate::service::RequestMeta,
    pub headers: HeaderMap,
    pairs: Vec<(String, String)>,
}

impl PublicSubmit {
    /// A field of the form, if it was sent.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

impl FromRequest<ApiState> for PublicSubmit {
    type Rejection = UiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, UiError> {
        let (parts, body) = req.into_parts();
        let meta = request_meta(&parts, state.config.trust_proxy_headers);
        let pairs = form_pairs(body, state).await?;
        let presented =
            pairs.iter().find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.as_str()).unwrap_or_default();
        if !login_id(&parts.headers).is_some_and(|id| state.app.check_csrf(id, presented)) {
            return Err(UiError::Forbidden(
                "this form has expired or did not come from this site; open the link again".into(),
            ));
        }
        Ok(Self { meta, headers: parts.headers, pairs })
    }
}

/// A URL-encoded form body as its name/value pairs, in order.
async fn form_pairs(body: axum::body::Body, state: &ApiState) -> Result<Vec<(String, String)>, UiError> {
    let bytes = axum::body::to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| UiError::bad_request("the form is larger than the server accepts"))?;
    serde_urlencoded::from_bytes(&bytes).map_err(|_| UiError::bad_request("the form could not be read"))
}

/// The CSRF token from the form or the `x-csrf-token` header must be the
/// session's. A form without one is refused: 403, and nothing happens.
pub fn check_csrf(
    state: &ApiState,
    browser: &Browser,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<(), UiError> {
    let presented = pairs
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str())
        .or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
    match presented {
        Some(token) if state.app.check_csrf(browser.session_id, token) => Ok(()),
        _ => Err(UiError::Forbidden(
            "this form has expired or did not come from this site; reload the page and try again".into(),
        )),
    }
}

/// Form fields into `T`; repeated fields become lists, empty ones are absent.
fn deserialize_form<T: DeserializeOwned>(fields: &[(String, String)]) -> Result<T, UiError> {
    let mut object = serde_json::Map::new();
    for (key, value) in fields {
        if value.trim().is_empty() {
            continue;
        }
        if let Some(list) = key.strip_suffix("[]") {
            let entry = object.entry(list.to_owned()).or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(items) = entry {
                items.push(serde_json::Value::String(value.clone()));
            }
        } else {
            object.insert(key.clone(), serde_json::Value::String(value.clone()));
        }
    }
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| UiError::bad_request(format!("the form does not fit this page: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Example {
        name: String,
        tags: Option<Vec<String>>,
        note: Option<String>,
    }

    #[test]
    fn forms_become_values_with_lists_and_without_empty_fields() {
        let fields = vec![
            ("name".to_owned(), "Spring".to_owned()),
            ("tags[]".to_owned(), "a".to_owned()),
            ("tags[]".to_owned(), "b".to_owned()),
            ("note".to_owned(), "  ".to_owned()),
        ];
        let example: Example = deserialize_form(&fields).unwrap();
        assert_eq!(
            example,
            Example { name: "Spring".into(), tags: Some(vec!["a".into(), "b".into()]), note: None }
        );
    }

    #[test]
    fn cookies_are_http_only_lax_and_end_with_max_age_zero() {
        let started = session_cookie(Some("mkt_bs_x"), time::Duration::days(30), true);
        assert!(
            started.contains("HttpOnly") && started.contains("SameSite=Lax") && started.contains("Secure")
        );
        assert!(started.contains("Max-Age=2592000"));
        let ended = session_cookie(None, time::Duration::days(30), false);
        assert!(ended.contains("Max-Age=0") && !ended.contains("Secure"));
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, "a=1; marketer_session=mkt_bs_abc; b=2".parse().unwrap());
        assert_eq!(session_token(&headers).as_deref(), Some("mkt_bs_abc"));
    }
}
