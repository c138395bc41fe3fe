//! Request ids, tracing spans, access logs and HTTP metrics.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::ApiState;

/// The id of a request: the caller's `X-Request-Id` if it is a sane token,
/// otherwise a new UUIDv7. It is echoed in the response, attached to every
/// log line of the request, and recorded in audit events.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub const REQUEST_ID_HEADER: &str = "x-request-id";

fn acceptable_request_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The route template a request matched, copied onto the response so the
/// outer middleware can label metrics and logs with it.
#[derive(Debug, Clone)]
struct MatchedRoute(String);

/// Outermost layer: request id, span, access log and metrics.
pub async fn observe(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable_request_id(v))
        .map_or_else(|| crate::domain::new_id().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let span = tracing::info_span!(
        "http_request",
        request_id = %id,
        method = %method,
        route = tracing::field::Empty,
        status = tracing::field::Empty,
    );

    state.app.metrics.http_started();
    let mut response = next.run(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();

    let route = match response.extensions().get::<MatchedRoute>() {
        Some(matched) => matched.0.clone(),
        None => {
            span.record("route", "unmatched");
            "unmatched".to_owned()
        }
    };
    let status = response.status().as_u16();
    span.record("status", status);
    state.app.metrics.http_finished(method.as_str(), &route, status, elapsed);
    span.in_scope(|| {
        tracing::info!(latency_ms = elapsed.as_secs_f64() * 1000.0, "request completed");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Route-level layer: records the matched route on the span and response.
pub async fn mark_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    if let Some(route) = &route {
        tracing::Span::current().record("route", route.as_str());
    }
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(MatchedRoute(route));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::acceptable_request_id;

    #[test]
    fn request_ids_are_sanitised() {
        assert!(acceptable_request_id("abc-123_x.y:z"));
        assert!(!acceptable_request_id(""));
        assert!(!acceptable_request_id("has space"));
        assert!(!acceptable_request_id("new\nline"));
        assert!(!acceptable_request_id(&"a".repeat(65)));
    }
}
