//! A/B tests: variants of a post published side by side, then decided.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path};
use crate::error::Result;
use crate::service::ab_tests::{AbTestView, CreateAbTest};
use crate::service::{TenantAccess, actions};

#[derive(Debug, Deserialize)]
pub struct AbTestPath {
    pub tenant_id: Uuid,
    pub ab_test_id: Uuid,
}

/// Starts a test: two to five variants, each a post as `POST /posts` takes
/// it (a time or `now`, approved), on different accounts of one network at
/// the same time or on one account at different times. The test and its
/// posts are written together. `window_hours` after the last variant's
/// time, the test is decided on engagement rate: a winner only when every
/// variant has 100 impressions (or followers) and 5 engagements, all on the
/// same base, and the difference is beyond chance (two-proportion z-test,
/// p < 0.05 with Bonferroni's correction for more than two). Each variant
/// counts with its first reading once the window has run since it went out.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/ab-tests", tag = "analytics",
    operation_id = actions::AB_TEST_CREATE, security(("bearer" = [])), params(("tenant_id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key returns the test it created")),
    request_body = CreateAbTest,
    responses((status = 201, body = AbTestView), (status = 200, description = "the test this Idempotency-Key created before", body = AbTestView),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    headers: HeaderMap,
    Json(req): Json<CreateAbTest>,
) -> Result<(StatusCode, Json<AbTestView>)> {
    let key = super::publishing::idempotency_key(&headers)?;
    let (test, created) = state.app.create_ab_test(&access, req, key).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(test)))
}

/// The organisation's tests, newest first (at most 50), each with its
/// variants and its decision (or the numbers so far).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/ab-tests", tag = "analytics",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<AbTestView>), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<Vec<AbTestView>>> {
    Ok(Json(state.app.ab_tests(&access).await?))
}

/// One test: its variants, and its decision with each variant's numbers,
/// the comparisons (difference, lift, z, p) and the verdict; while it runs,
/// the numbers so far and no winner.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/ab-tests/{ab_test_id}", tag = "analytics",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("ab_test_id" = Uuid, Path)),
    responses((status = 200, body = AbTestView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AbTestPath>,
) -> Result<Json<AbTestView>> {
    Ok(Json(state.app.ab_test(&access, p.ab_test_id).await?))
}
