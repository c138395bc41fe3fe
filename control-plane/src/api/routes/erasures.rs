//! Erasing a whole organisation across the control plane and its edge
//! agents, and the record of each erasure for the person who asked.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path};
use crate::error::Result;
use crate::service::erasures::EraseTenant;
use crate::service::{Caller, TenantAccess, actions};
use crate::store::TenantErasureRecord;

#[derive(Debug, Deserialize)]
pub struct ErasurePath {
    pub erasure_id: Uuid,
}

/// Erases the organisation (owners, signed in with a password; the
/// password again and the organisation's short name as `confirm`).
/// Everything the control plane holds for it is deleted at once, its audit
/// entries stay under pseudonyms, and its agents are told to delete what
/// they hold and confirm (an offline agent when it returns). 202: the
/// record, with each agent's confirmation pending; follow it at
/// `Location`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/erase", tag = "tenants", operation_id = actions::TENANT_ERASE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = EraseTenant,
    responses((status = 202, body = TenantErasureRecord), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, description = "wrong password or short name", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn erase(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<EraseTenant>,
) -> Result<Response> {
    let record = state.app.erase_tenant(&access, req).await?;
    let location = HeaderValue::from_str(&format!("/api/v1/tenant-erasures/{}", record.id))
        .map_err(crate::error::Error::internal)?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(record)).into_response())
}

/// An organisation's erasure: what the control plane deleted, and which
/// agents confirmed what and when (for the person who asked; 404 for
/// anyone else).
#[utoipa::path(get, path = "/api/v1/tenant-erasures/{erasure_id}", tag = "tenants", operation_id = "tenant_erasure_get",
    security(("bearer" = [])),
    params(("erasure_id" = Uuid, Path)),
    responses((status = 200, body = TenantErasureRecord), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path(p): Path<ErasurePath>,
) -> Result<Json<TenantErasureRecord>> {
    Ok(Json(state.app.tenant_erasure(&caller, p.erasure_id).await?))
}

/// The organisation erasures the caller asked for, newest first (at most
/// 50).
#[utoipa::path(get, path = "/api/v1/me/tenant-erasures", tag = "tenants", operation_id = "tenant_erasures_list",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<TenantErasureRecord>), (status = 401, body = ErrorBody)))]
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<Vec<TenantErasureRecord>>> {
    Ok(Json(state.app.my_tenant_erasures(&caller).await?))
}
