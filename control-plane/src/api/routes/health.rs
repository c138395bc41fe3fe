//! Liveness, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::error::{Error, Result};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive", body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The server can serve requests: its database answers and it is not
/// shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready", body = String),
    (status = 503, description = "the database is not reachable, or the server is shutting down", body = ErrorBody),
))]
pub async fn readyz(State(state): State<ApiState>) -> Result<&'static str> {
    if state.app.closing.is_cancelled() {
        return Err(Error::Unavailable("shutting down".into()));
    }
    match state.app.store.ping().await {
        Ok(()) => Ok("ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(Error::Unavailable("the database is not reachable".into()))
        }
    }
}

/// Prometheus metrics in the OpenMetrics text format. They describe the
/// fleet's size and load, so they are not public: with `--metrics-token-file` a scraper
/// sends that token as a bearer token; without it, only clients on this
/// host (loopback) are answered.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "metrics", body = String, content_type = "application/openmetrics-text"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn metrics(
    State(state): State<ApiState>,
    request: axum::extract::Request,
) -> Result<impl IntoResponse> {
    match &state.config.metrics_token {
        Some(expected) => {
            if !crate::api::extract::bearer_is(request.headers(), expected) {
                return Err(Error::Unauthenticated(
                    "send the metrics token (--metrics-token-file) as a bearer token".into(),
                ));
            }
        }
        None => {
            let meta = crate::api::extract::request_meta_from(
                request.headers(),
                request.extensions(),
                state.config.trust_proxy_headers,
            );
            if !meta.client_ip.is_some_and(|ip| ip.is_loopback()) {
                return Err(Error::Forbidden(
                    "metrics are served to this host only; set --metrics-token-file to scrape them from elsewhere"
                        .into(),
                ));
            }
        }
    }
    let app = &state.app;
    let window = time::Duration::try_from(app.hub.timings.offline_after()).unwrap_or(time::Duration::MAX);
    let snapshot = match app.store.ops_snapshot(crate::domain::Timestamp::now(), window).await {
        Ok(snapshot) => Some(snapshot),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: could not read the job and fleet counts");
            None
        }
    };
    app.metrics.set_snapshot(snapshot.as_ref());
    Ok(([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], app.metrics.render()))
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "the OpenAPI document", body = Object)))]
pub async fn openapi(State(state): State<ApiState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], state.openapi.as_str().to_owned())
}
