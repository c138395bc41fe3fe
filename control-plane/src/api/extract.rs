//! Extractors whose rejections are [`Error`]s, so that a malformed body, path
//! or query string gets the same error shape as every other failure, with the
//! offending field named.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, USER_AGENT};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::ApiState;
use super::observe::RequestId;
use crate::error::Error;
use crate::service::RequestMeta;

/// A JSON request body.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> FromRequest<ApiState> for Json<T>
where
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, Error> {
        if !is_json(req.headers()) {
            return Err(Error::UnsupportedMediaType(
                "send the body as JSON with the header Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge { limit: state.config.max_body_bytes }
            } else {
                Error::BadRequest {
                    code: "unreadable_body",
                    message: "the request body could not be read".into(),
                }
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// An optional JSON body: none when the request carries no body at all.
impl<T> OptionalFromRequest<ApiState> for Json<T>
where
    T: DeserializeOwned,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &ApiState) -> Result<Option<Self>, Error> {
        let headers = req.headers();
        let empty = headers.get(CONTENT_LENGTH).is_some_and(|v| v.as_bytes() == b"0")
            || (headers.get(CONTENT_LENGTH).is_none()
                && headers.get(CONTENT_TYPE).is_none()
                && headers.get(axum::http::header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(None);
        }
        <Self as FromRequest<ApiState>>::from_request(req, state).await.map(Some)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses a JSON object, telling syntax errors (400) from well-formed JSON
/// with wrong or missing fields (422, naming the field by its path).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace()) else {
        return Err(Error::BadRequest {
            code: "malformed_json",
            message: "the request body is empty; send a JSON object".into(),
        });
    };
    // serde would also accept an array for a struct, matching positions to
    // fields; every body of this API is an object, so say so plainly.
    if *first == b'[' {
        return Err(Error::invalid("body", "must be a JSON object, not an array"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => data_error(&path, &inner),
            _ => malformed(&inner),
        }
    })?;
    deserializer.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

fn malformed(e: &serde_json::Error) -> Error {
    Error::BadRequest {
        code: "malformed_json",
        message: format!(
            "the request body is not valid JSON (line {}, column {}): fix the syntax",
            e.line(),
            e.column()
        ),
    }
}

/// Builds a 422 from a serde data error. serde reports a missing or unknown
/// field against the enclosing object, naming the field only in the message,
/// so the name is recovered from there.
fn data_error(path: &str, e: &serde_json::Error) -> Error {
    let text = e.to_string();
    // serde_json appends " at line L column C"; the field path says more.
    let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(head, _)| head);
    let join = |name: &str| if path == "." { name.to_owned() } else { format!("{path}.{name}") };
    if let Some(name) = quoted_after(text, "missing field ") {
        return Error::invalid(join(name), "is required");
    }
    if let Some(name) = quoted_after(text, "unknown field ") {
        // For unknown fields the path already ends with the field itself.
        let field = if path.rsplit('.').next() == Some(name) { path.to_owned() } else { join(name) };
        let expected =
            text.split_once(", expected ").map_or(String::new(), |(_, rest)| format!("; expected {rest}"));
        return Error::invalid(field, format!("is not a known field{expected}"));
    }
    let field = if path == "." { "body".to_owned() } else { path.to_owned() };
    Error::invalid(field, text.to_owned())
}

fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

/// Path parameters. A value that does not parse (say, a malformed id) names
/// no resource, so it is a 404 like any unknown id.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                tracing::debug!(%rejection, "path parameter rejected");
                Err(Error::NotFound("resource"))
            }
        }
    }
}

/// Query-string parameters; a value of the wrong type, or a parameter the
/// route does not know, is a 422 naming it (the same on every route).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Error> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Query).map_err(|e| {
            let path = e.path().to_string();
            let text = e.into_inner().to_string();
            let (field, message) = match quoted_after(&text, "unknown field ") {
                Some(name) => (name.to_owned(), "is not a known query parameter".to_owned()),
                None => (if path == "." { "query".to_owned() } else { path }, text),
            };
            Error::Invalid { field, message }
        })
    }
}

/// The request facts recorded in audit events: client address, request id,
/// user agent.
#[derive(Debug, Clone)]
pub struct Meta(pub RequestMeta);

impl FromRequestParts<ApiState> for Meta {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Error> {
        Ok(Meta(request_meta(parts, state.config.trust_proxy_headers)))
    }
}

pub(crate) fn request_meta(parts: &Parts, trust_proxy_headers: bool) -> RequestMeta {
    request_meta_from(&parts.headers, &parts.extensions, trust_proxy_headers)
}

pub(crate) fn request_meta_from(
    headers: &HeaderMap,
    extensions: &Extensions,
    trust_proxy_headers: bool,
) -> RequestMeta {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let forwarded = trust_proxy_headers.then(|| forwarded_for(headers)).flatten();
    RequestMeta {
        client_ip: forwarded.or(peer),
        request_id: extensions.get::<RequestId>().map(|id| id.0.clone()),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect()),
    }
}

/// The address our reverse proxy saw: the right-most entry of
/// `X-Forwarded-For`, the only one a client cannot forge when exactly one
/// trusted proxy sits in front of the server.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .and_then(|ip| ip.trim().parse().ok())
}

/// Whether the request's bearer token is `expected` (compared in constant
/// time): for the operator's fixed tokens (metrics, bounce intake).
pub fn bearer_is(headers: &axum::http::HeaderMap, expected: &secrecy::SecretString) -> bool {
    use secrecy::ExposeSecret;
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), expected.expose_secret().as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        email: crate::domain::Email,
        count: u32,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    fn check(body: &str, expected: (&str, &str)) {
        let err = parse_json::<Body>(body.as_bytes()).unwrap_err();
        let (code, field) = match &err {
            Error::Invalid { field, .. } => ("validation_failed", field.as_str()),
            Error::BadRequest { code, .. } => (*code, ""),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!((code, field), expected, "{body}: {err}");
    }

    #[test]
    fn classifies_body_errors() {
        check("", ("malformed_json", ""));
        check("{", ("malformed_json", ""));
        check("{\"email\": \"a@example.com\", \"count\": 1} trailing", ("malformed_json", ""));
        check("{\"count\": 1}", ("validation_failed", "email"));
        check("{\"email\": \"nope\", \"count\": 1}", ("validation_failed", "email"));
        check("{\"email\": \"a@example.com\", \"count\": \"1\"}", ("validation_failed", "count"));
        check("{\"email\": \"a@example.com\", \"count\": -1}", ("validation_failed", "count"));
        check("{\"email\": \"a@example.com\", \"count\": 1, \"extra\": 1}", ("validation_failed", "extra"));
        check(
            "{\"email\": \"a@example.com\", \"count\": 1, \"inner\": {}}",
            ("validation_failed", "inner.name"),
        );
        check(
            "{\"email\": \"a@example.com\", \"count\": 1, \"inner\": {\"name\": \"x\", \"nam\": 1}}",
            ("validation_failed", "inner.nam"),
        );
        check("[1, 2]", ("validation_failed", "body"));
    }

    #[test]
    fn messages_name_the_problem() {
        let err = parse_json::<Body>(b"{\"email\": \"nope\", \"count\": 1}").unwrap_err();
        assert_eq!(err.to_string(), "email: must be an e-mail address such as name@example.com");
        let err = parse_json::<Body>(b"{\"count\": 1}").unwrap_err();
        assert_eq!(err.to_string(), "email: is required");
    }

    #[test]
    fn forwarded_for_takes_the_last_hop() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 10.0.0.7".parse().unwrap());
        assert_eq!(forwarded_for(&headers), Some("10.0.0.7".parse().unwrap()));
    }
}
