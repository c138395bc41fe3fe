//! A tenant's single sign-on connection (its OpenID Connect provider). The
//! sign-in itself is a browser flow (`ui::sso`): `/sso/{slug}` and
//! `/sso/callback`.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::Json;
use crate::error::Result;
use crate::service::sso::{SsoConnectionRequest, SsoConnectionView};
use crate::service::{TenantAccess, actions};

/// The organisation's identity provider (never its client secret).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/sso", tag = "tenants", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = SsoConnectionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such tenant, or no single sign-on set up", body = ErrorBody)))]
pub async fn show(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<SsoConnectionView>> {
    Ok(Json(state.app.sso_connection(&access).await?))
}

/// Sets the organisation's identity provider (`tenant:manage`). The issuer's
/// discovery document is read first: an issuer that does not answer is a
/// 422 on `issuer`. The client secret is required the first time and kept
/// when omitted later.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/sso", tag = "tenants", operation_id = actions::SSO_CONNECTION_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = SsoConnectionRequest,
    responses((status = 200, body = SsoConnectionView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<SsoConnectionRequest>,
) -> Result<Json<SsoConnectionView>> {
    Ok(Json(state.app.put_sso_connection(&access, req).await?))
}

/// Removes the organisation's identity provider (`tenant:manage`):
/// requiring single sign-on is turned off and provider accounts unlinked.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/sso", tag = "tenants", operation_id = actions::SSO_CONNECTION_DELETE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 204, description = "removed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete(State(state): State<ApiState>, access: TenantAccess) -> Result<StatusCode> {
    state.app.delete_sso_connection(&access).await?;
    Ok(StatusCode::NO_CONTENT)
}
