//! An organisation's retention policy, and its contacts' data-subject
//! requests (export, erasure).

use axum::extract::State;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::Json;
use crate::error::Result;
use crate::service::data_subjects::{ContactExport, DataSubject, Erasure};
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

/// Everything the organisation holds that names an e-mail address (the
/// lead with its timeline, inbox items that quote it), for a person's
/// access request (`tenant:manage`; audited under a pseudonym).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/data-subjects/export", tag = "tenants",
    operation_id = actions::DATA_SUBJECT_EXPORT, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = DataSubject,
    responses((status = 200, body = ContactExport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export_contact(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<DataSubject>,
) -> Result<Json<ContactExport>> {
    Ok(Json(state.app.export_contact(&access, req).await?))
}

/// Erases what names an e-mail address: its lead anonymised (as
/// retention does), inbox items that quote it deleted (`tenant:manage`;
/// audited under a pseudonym, never the address).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/data-subjects/erase", tag = "tenants",
    operation_id = actions::DATA_SUBJECT_ERASE, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = DataSubject,
    responses((status = 200, body = Erasure), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn erase_contact(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<DataSubject>,
) -> Result<Json<Erasure>> {
    Ok(Json(state.app.erase_contact(&access, req).await?))
}
