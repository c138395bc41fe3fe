//! Leads: the inbox (filters, by score or recency), a lead with its
//! timeline and score breakdown, leads entered by hand, status, owner,
//! notes and replies; the organisation's real-estate settings.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::properties::ImportParams;
use crate::error::Result;
use crate::service::{
    CreateLead, ImportReport, LeadParams, LeadView, RealEstateSettingsView, ScoringView, TenantAccess,
    UpdateLead, actions,
};

#[derive(Debug, Deserialize)]
pub struct LeadPath {
    pub tenant_id: Uuid,
    pub lead_id: Uuid,
}

/// The organisation's leads (without timelines), newest first or
/// `sort=score`. Reading leads in bulk is recorded in the audit log.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/leads", tag = "leads", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), LeadParams),
    responses((status = 200, body = PageBody<LeadView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(mut params): Query<LeadParams>,
) -> Result<Json<PageBody<LeadView>>> {
    let page = ListParams { limit: params.limit.take(), cursor: params.cursor.take() }.page()?;
    Ok(Json(state.app.leads(&access, params, page).await?.into()))
}

/// Enters a lead by hand (source `manual`); 409 when the address is a
/// lead already.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/leads", tag = "leads", operation_id = actions::LEAD_CREATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = CreateLead,
    responses((status = 201, body = LeadView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateLead>,
) -> Result<(StatusCode, Json<LeadView>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_lead(&access, req).await?)))
}

/// Imports leads from a CSV file (UTF-8, a header line naming the
/// columns: email (required), name, phone, status, properties (references
/// or ids separated by `|`), owner (a member's e-mail address), note,
/// consent_text and consented_at (RFC 3339 or a day), both or neither).
/// Every row is created, or none: when any row is refused, the report
/// lists each problem by line and field and nothing is imported. An
/// address that has a lead already is refused; imported leads start no
/// sequence.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/leads/import", tag = "leads",
    operation_id = actions::LEAD_IMPORT, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<ImportParams>,
    body: Bytes,
) -> Result<Json<ImportReport>> {
    Ok(Json(state.app.import_leads(&access, &body, params.dry_run).await?))
}

/// A lead with the properties it asked about, its timeline and its score
/// breakdown.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/leads/{lead_id}", tag = "leads", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("lead_id" = Uuid, Path)),
    responses((status = 200, body = LeadView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<LeadPath>,
) -> Result<Json<LeadView>> {
    let _tenant = p.tenant_id;
    Ok(Json(state.app.lead(&access, p.lead_id).await?))
}

/// Changes a lead's status or owner, adds a note or logs a reply; the
/// score is recomputed.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/leads/{lead_id}", tag = "leads", operation_id = actions::LEAD_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("lead_id" = Uuid, Path)), request_body = UpdateLead,
    responses((status = 200, body = LeadView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<LeadPath>,
    Json(req): Json<UpdateLead>,
) -> Result<Json<LeadView>> {
    Ok(Json(state.app.update_lead(&access, p.lead_id, req).await?))
}

/// The consent wording of public listing pages and the postal address of
/// marketing e-mails.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/real-estate-settings", tag = "leads", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = RealEstateSettingsView), (status = 404, body = ErrorBody)))]
pub async fn settings(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<RealEstateSettingsView>> {
    Ok(Json(state.app.real_estate_settings(&access).await?))
}

#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/real-estate-settings", tag = "leads",
    operation_id = actions::REAL_ESTATE_SETTINGS_UPDATE, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = RealEstateSettingsView,
    responses((status = 200, body = RealEstateSettingsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_settings(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<RealEstateSettingsView>,
) -> Result<Json<RealEstateSettingsView>> {
    Ok(Json(state.app.set_real_estate_settings(&access, req).await?))
}

/// The lead-scoring weights in use (the defaults, or fitted to this
/// organisation's won and lost leads), the last fit, and how many won and
/// lost leads there are.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/lead-scoring", tag = "leads", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = ScoringView), (status = 404, body = ErrorBody)))]
pub async fn scoring(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<ScoringView>> {
    Ok(Json(state.app.lead_scoring(&access).await?))
}

/// Fits the weights to the organisation's won and lost leads (at least ten
/// of each; 409 `not_enough_outcomes` before that, 409 `no_signal` when no
/// signal tells them apart) and rescores every lead with them.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/lead-scoring/fit", tag = "leads",
    operation_id = actions::LEAD_SCORING_FIT, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = ScoringView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn fit_scoring(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<ScoringView>> {
    Ok(Json(state.app.fit_lead_scoring(&access).await?))
}

/// Back to the default weights; every lead is rescored.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/lead-scoring/fit", tag = "leads",
    operation_id = actions::LEAD_SCORING_RESET, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = ScoringView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn reset_scoring(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<ScoringView>> {
    Ok(Json(state.app.reset_lead_scoring(&access).await?))
}
