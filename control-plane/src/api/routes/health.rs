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

/// The server can serve requests: its database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "ready", body = String),
    (status = 503, description = "the database is not reachable", body = ErrorBody),
))]
pub async fn readyz(State(state): State<ApiState>) -> Result<&'static str> {
    match state.app.store.ping().await {
        Ok(()) => Ok("ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(Error::Unavailable("the database is not reachable".into()))
        }
    }
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "metrics", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        state.app.metrics.render(),
    )
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "the OpenAPI document", body = Object)))]
pub async fn openapi(State(state): State<ApiState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], state.openapi.as_str().to_owned())
}
