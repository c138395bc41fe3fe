//! An organisation's retention policy.

use axum::extract::State;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::Json;
use crate::error::Result;
use crate::service::{TenantAccess, actions};
use crate::store::RetentionPolicy;

/// How long inbox items and leads are kept and when inactive contacts are
/// anonymised, in days (`null`: for ever, the default).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/retention", tag = "tenants", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = RetentionPolicy), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<RetentionPolicy>> {
    Ok(Json(state.app.retention_policy(&access).await?))
}

/// Replaces the retention policy (`tenant:manage`). The next daily run
/// (within the hour) applies it; what it deleted is in the audit log
/// (`retention.apply`).
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/retention", tag = "tenants", operation_id = actions::RETENTION_POLICY_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = RetentionPolicy,
    responses((status = 200, body = RetentionPolicy), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(policy): Json<RetentionPolicy>,
) -> Result<Json<RetentionPolicy>> {
    Ok(Json(state.app.set_retention_policy(&access, policy).await?))
}
