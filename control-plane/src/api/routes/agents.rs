//! Enrollment tokens and the agent fleet.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::params::{AgentPath, EnrollmentTokenPath};
use crate::error::Result;
use crate::service::{
    AgentView, CreateEnrollmentToken, CreatedEnrollmentToken, TenantAccess, UpdateAgent, actions,
};
use crate::store::{AgentEvent, EnrollmentTokenInfo};

/// Creates an enrollment token (admins). The token and the ready-to-paste
/// `install_command` are shown only in this answer.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/enrollment-tokens", tag = "agents",
    operation_id = actions::ENROLLMENT_TOKEN_CREATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = CreateEnrollmentToken,
    responses((status = 201, body = CreatedEnrollmentToken), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_token(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateEnrollmentToken>,
) -> Result<(StatusCode, Json<CreatedEnrollmentToken>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_enrollment_token(&access, req).await?)))
}

/// Enrollment tokens, without their secrets.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/enrollment-tokens", tag = "agents", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<EnrollmentTokenInfo>), (status = 403, body = ErrorBody)))]
pub async fn list_tokens(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<EnrollmentTokenInfo>>> {
    Ok(Json(state.app.enrollment_tokens(&access, params.page()?).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/enrollment-tokens/{token_id}", tag = "agents",
    operation_id = actions::ENROLLMENT_TOKEN_REVOKE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("token_id" = Uuid, Path)),
    responses((status = 204, description = "revoked"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<EnrollmentTokenPath>,
) -> Result<StatusCode> {
    state.app.revoke_enrollment_token(&access, p.token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tenant's agents with their state (`online`, `offline`, `revoked`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/agents", tag = "agents", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<AgentView>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<AgentView>>> {
    Ok(Json(state.app.agents(&access, params.page()?).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/agents/{agent_id}", tag = "agents", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("agent_id" = Uuid, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AgentPath>,
) -> Result<Json<AgentView>> {
    Ok(Json(state.app.agent(&access, p.agent_id).await?))
}

/// Renames or relabels an agent (admins).
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/agents/{agent_id}", tag = "agents",
    operation_id = actions::AGENT_UPDATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("agent_id" = Uuid, Path)), request_body = UpdateAgent,
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AgentPath>,
    Json(req): Json<UpdateAgent>,
) -> Result<Json<AgentView>> {
    Ok(Json(state.app.update_agent(&access, p.agent_id, req).await?))
}

/// Revokes an agent (admins): its connection closes within a second and it
/// can no longer connect.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/agents/{agent_id}/revoke", tag = "agents",
    operation_id = actions::AGENT_REVOKE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("agent_id" = Uuid, Path)),
    responses((status = 200, body = AgentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AgentPath>,
) -> Result<Json<AgentView>> {
    Ok(Json(state.app.revoke_agent(&access, p.agent_id).await?))
}

/// The agent's history, newest first: enrolled, connected, disconnected
/// (with the reason), offline, renewed, revoked, updated.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/agents/{agent_id}/events", tag = "agents", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("agent_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<AgentEvent>), (status = 404, body = ErrorBody)))]
pub async fn events(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AgentPath>,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<AgentEvent>>> {
    Ok(Json(state.app.agent_events(&access, p.agent_id, params.page()?).await?.into()))
}
