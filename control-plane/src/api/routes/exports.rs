//! A whole organisation's export: asked for, followed, downloaded once.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path};
use crate::error::{Error, Result};
use crate::service::{TenantAccess, actions};
use crate::store::TenantExport;

#[derive(Debug, Deserialize)]
pub struct ExportPath {
    pub tenant_id: Uuid,
    pub export_id: Uuid,
}

/// Prepares a ZIP of everything the organisation holds (owners, as a
/// person): each table's rows as JSON (secrets left out), the stored
/// files, and a manifest. 202: it is prepared in the background; follow
/// its `progress` at `Location`. 409 `export_in_progress` while another
/// is being prepared.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/exports", tag = "tenants", operation_id = actions::TENANT_EXPORT,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 202, body = TenantExport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(State(state): State<ApiState>, access: TenantAccess) -> Result<Response> {
    let export = state.app.request_tenant_export(&access).await?;
    let location =
        HeaderValue::from_str(&format!("/api/v1/tenants/{}/exports/{}", export.tenant_id, export.id))
            .map_err(Error::internal)?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(export)).into_response())
}

/// The organisation's exports, newest first (owners; the last 20).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/exports", tag = "tenants", operation_id = "tenant_exports_list",
    security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<TenantExport>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<Vec<TenantExport>>> {
    Ok(Json(state.app.tenant_exports(&access).await?))
}

/// One export: its state and progress.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/exports/{export_id}", tag = "tenants", operation_id = "tenant_export_get",
    security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("export_id" = Uuid, Path)),
    responses((status = 200, body = TenantExport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ExportPath>,
) -> Result<Json<TenantExport>> {
    Ok(Json(state.app.tenant_export(&access, p.export_id).await?))
}

/// The ZIP, once, for the person who asked for it (404 for anyone else);
/// 409 `not_ready` before it is ready, 410 `already_downloaded` or
/// `expired` after. Its SHA-256 is in the export's record.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/exports/{export_id}/download", tag = "tenants",
    operation_id = actions::TENANT_EXPORT_DOWNLOAD, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("export_id" = Uuid, Path)),
    responses((status = 200, description = "the ZIP", content_type = "application/zip"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub async fn download(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ExportPath>,
) -> Result<Response> {
    let (export, file) = state.app.download_tenant_export(&access, p.export_id).await?;
    zip_response(&export, file)
}

/// A stored ZIP as a download (the API's and the browser's).
pub fn zip_response(export: &TenantExport, file: tokio::fs::File) -> Result<Response> {
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let disposition = format!("attachment; filename=\"organisation-export-{}.zip\"", export.id);
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).map_err(Error::internal)?);
    if let Some(size) = export.size_bytes {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    Ok(response)
}
