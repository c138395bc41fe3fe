//! The audit log (read-only).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::domain::Timestamp;
use crate::error::Result;
use crate::service::{AuditFormat, AuditQuery, TenantAccess};
use crate::store::{AuditEvent, PageRequest};

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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `jsonl` (one JSON object per line) or `csv`.
    #[param(value_type = String)]
    pub format: AuditFormat,
    /// The period's start (RFC 3339), required.
    #[param(value_type = String, format = DateTime)]
    pub since: Option<Timestamp>,
    /// The period's end (RFC 3339, exclusive), required.
    #[param(value_type = String, format = DateTime)]
    pub until: Option<Timestamp>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events by this user or API key id.
    pub actor: Option<Uuid>,
}

/// The audit log of a period as a file to keep (auditors, SIEM imports):
/// every event, newest first, streamed a page at a time so any period
/// fits. The export itself is audited (`audit.export`).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/audit-events/export", tag = "audit", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ExportParams),
    responses((status = 200, description = "the events, as JSON lines or CSV", content_type = "text/csv"),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<ExportParams>,
) -> Result<Response> {
    let query =
        AuditQuery { action: params.action, actor: params.actor, since: params.since, until: params.until };
    export_response(state, access, query, params.format).await
}

/// The export as a download, for the API and the audit page alike: the
/// period checked and the export audited first, then the events streamed.
pub async fn export_response(
    state: ApiState,
    access: TenantAccess,
    query: AuditQuery,
    format: AuditFormat,
) -> Result<Response> {
    state.app.start_audit_export(&access, &query, format).await?;
    let file = format!("audit-{}.{}", access.tenant_id, format.extension());
    // Pages are read as the client takes them: memory stays one page.
    let pages = futures_util::stream::unfold(Some(None), move |cursor: Option<Option<Uuid>>| {
        let (state, access, query) = (state.clone(), access.clone(), query.clone());
        async move {
            let after = cursor?;
            let page = PageRequest { after, limit: 200 };
            match state.app.audit_events(&access, query, page).await {
                Ok(page) => {
                    let text: String = page.items.iter().map(|e| format.line(e)).collect();
                    Some((Ok::<_, std::io::Error>(text), page.next.map(Some)))
                }
                Err(e) => {
                    tracing::error!(error = %e, "an audit export stopped early");
                    Some((Err(std::io::Error::other("the audit log could not be read")), None))
                }
            }
        }
    });
    let body = futures_util::stream::once(async move { Ok(format.header().to_owned()) }).chain(pages);
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
