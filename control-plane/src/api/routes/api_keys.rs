//! API keys.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::params::ApiKeyPath;
use crate::error::Result;
use crate::service::{CreateApiKey, CreatedApiKey, TenantAccess, actions};
use crate::store::ApiKey;

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/api-keys", tag = "api keys", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<ApiKey>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<ApiKey>>> {
    Ok(Json(state.app.api_keys(&access, params.page()?).await?.into()))
}

/// Creates an API key. The `key` in the answer is shown once; send it as
/// `Authorization: Bearer <key>`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/api-keys", tag = "api keys", operation_id = actions::API_KEY_CREATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_api_key(&access, req).await?)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/api-keys/{api_key_id}", tag = "api keys", operation_id = actions::API_KEY_REVOKE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("api_key_id" = Uuid, Path)),
    responses((status = 204, description = "revoked"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ApiKeyPath>,
) -> Result<StatusCode> {
    state.app.revoke_api_key(&access, p.api_key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
