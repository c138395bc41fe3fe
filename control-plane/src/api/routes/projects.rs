//! Projects and their campaigns.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::params::{CampaignPath, ProjectPath};
use crate::domain::{Campaign, Project};
use crate::error::Result;
use crate::service::{CreateCampaign, CreateProject, TenantAccess, UpdateCampaign, UpdateProject, actions};

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects", tag = "projects", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<Project>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<Project>>> {
    Ok(Json(state.app.projects(&access, params.page()?).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects", tag = "projects", operation_id = actions::PROJECT_CREATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = CreateProject,
    responses((status = 201, body = Project), (status = 403, body = ErrorBody), (status = 409, description = "name taken", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateProject>,
) -> Result<(StatusCode, Json<Project>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_project(&access, req).await?)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}", tag = "projects", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path)),
    responses((status = 200, body = Project), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
) -> Result<Json<Project>> {
    Ok(Json(state.app.project(&access, p.project_id).await?))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}", tag = "projects", operation_id = actions::PROJECT_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path)), request_body = UpdateProject,
    responses((status = 200, body = Project), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    Json(req): Json<UpdateProject>,
) -> Result<Json<Project>> {
    Ok(Json(state.app.update_project(&access, p.project_id, req).await?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}", tag = "projects", operation_id = actions::PROJECT_DELETE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
) -> Result<StatusCode> {
    state.app.delete_project(&access, p.project_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/campaigns", tag = "campaigns", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<Campaign>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_campaigns(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<Campaign>>> {
    Ok(Json(state.app.campaigns(&access, p.project_id, params.page()?).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/campaigns", tag = "campaigns", operation_id = actions::CAMPAIGN_CREATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path)), request_body = CreateCampaign,
    responses((status = 201, body = Campaign), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_campaign(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    Json(req): Json<CreateCampaign>,
) -> Result<(StatusCode, Json<Campaign>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_campaign(&access, p.project_id, req).await?)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/campaigns/{campaign_id}", tag = "campaigns", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("campaign_id" = Uuid, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody)))]
pub async fn get_campaign(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<CampaignPath>,
) -> Result<Json<Campaign>> {
    Ok(Json(state.app.campaign(&access, p.project_id, p.campaign_id).await?))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/campaigns/{campaign_id}", tag = "campaigns", operation_id = actions::CAMPAIGN_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("campaign_id" = Uuid, Path)), request_body = UpdateCampaign,
    responses((status = 200, body = Campaign), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_campaign(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<CampaignPath>,
    Json(req): Json<UpdateCampaign>,
) -> Result<Json<Campaign>> {
    Ok(Json(state.app.update_campaign(&access, p.project_id, p.campaign_id, req).await?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/campaigns/{campaign_id}", tag = "campaigns", operation_id = actions::CAMPAIGN_DELETE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("campaign_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_campaign(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<CampaignPath>,
) -> Result<StatusCode> {
    state.app.delete_campaign(&access, p.project_id, p.campaign_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
