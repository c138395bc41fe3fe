//! The audit log (read-only).

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::domain::Timestamp;
use crate::error::Result;
use crate::service::{AuditQuery, TenantAccess};
use crate::store::AuditEvent;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this action, for example `project.create`.
    pub action: Option<String>,
    /// Only events by this user or API key id.
    pub actor: Option<Uuid>,
    /// Only events at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
    /// Only events before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<Timestamp>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// Audit events of the tenant, newest first, including sign-ins of its members.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/audit-events", tag = "audit", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), AuditParams),
    responses((status = 200, body = PageBody<AuditEvent>), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<AuditParams>,
) -> Result<Json<PageBody<AuditEvent>>> {
    let page = ListParams { limit: params.limit, cursor: params.cursor }.page()?;
    let query =
        AuditQuery { action: params.action, actor: params.actor, since: params.since, until: params.until };
    Ok(Json(state.app.audit_events(&access, query, page).await?.into()))
}
