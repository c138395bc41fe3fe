//! Tenants.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::Json;
use crate::domain::Tenant;
use crate::error::Result;
use crate::service::{Caller, CreateTenant, TenantAccess, UpdateTenant, actions};

/// Creates a tenant; the caller becomes its owner.
#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", operation_id = actions::TENANT_CREATE,
    security(("bearer" = [])), request_body = CreateTenant,
    responses((status = 201, body = Tenant), (status = 409, description = "slug taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<CreateTenant>,
) -> Result<(StatusCode, Json<Tenant>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_tenant(&caller, req).await?)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}", tag = "tenants", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Tenant), (status = 404, body = ErrorBody)))]
pub async fn get(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<Tenant>> {
    Ok(Json(state.app.tenant(&access).await?))
}

/// Changes a tenant (owners). Switching to `hipaa` makes every project `edge_only`.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}", tag = "tenants", operation_id = actions::TENANT_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = UpdateTenant,
    responses((status = 200, body = Tenant), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<UpdateTenant>,
) -> Result<Json<Tenant>> {
    Ok(Json(state.app.update_tenant(&access, req).await?))
}
