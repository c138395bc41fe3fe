//! Documents of a project: upload (cloud_allowed projects), list, get,
//! delete.

use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::params::{DocumentPath, ProjectPath};
use crate::error::{Error, Result};
use crate::service::{DocumentView, TenantAccess, Upload, actions};

/// The multipart form of an upload (for the API description).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The file: text, Markdown, HTML, PDF or DOCX, up to the server's
    /// upload limit (25 MiB by default). Its type is checked from its
    /// content, not its name.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Uploads a document for indexing on one of the tenant's agents: the file
/// is kept by the control plane and an ingest job fetches it. Only for
/// `cloud_allowed` projects: an `edge_only` project answers 409 (index its
/// documents on the agent host with `marketer-agent ingest`).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/documents", tag = "documents",
    operation_id = actions::DOCUMENT_UPLOAD, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path)),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses((status = 202, body = DocumentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn upload(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<DocumentView>)> {
    let multipart = multipart.map_err(|_| {
        Error::UnsupportedMediaType(
            "send the file as multipart/form-data with a part named \"file\" (curl -F file=@guide.pdf)"
                .into(),
        )
    })?;
    let upload = read_upload(multipart, state.config.max_upload_bytes).await?;
    let created = state.app.upload_document(&access, p.project_id, upload).await?;
    Ok((StatusCode::ACCEPTED, Json(created)))
}

/// The `file` part, read while counting: a file over `limit` is refused
/// before the rest of it arrives.
async fn read_upload(mut multipart: Multipart, limit: usize) -> Result<Upload> {
    let unreadable = |e: axum::extract::multipart::MultipartError| Error::BadRequest {
        code: "unreadable_body",
        message: format!("the multipart body could not be read: {}", e.body_text()),
    };
    let mut upload = None;
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        if field.name() != Some("file") {
            continue;
        }
        if upload.is_some() {
            return Err(Error::invalid("file", "upload one file per request"));
        }
        let file_name = field.file_name().unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
            if bytes.len() + chunk.len() > limit {
                return Err(Error::PayloadTooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        upload = Some(Upload { file_name, bytes });
    }
    upload
        .ok_or_else(|| Error::invalid("file", "is missing: send the file in a multipart part named \"file\""))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DocumentParams {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The project's documents, newest first: uploads and those ingested on
/// agent hosts (metadata only; the text stays on the agent).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/documents", tag = "documents",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), DocumentParams),
    responses((status = 200, body = PageBody<DocumentView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    Query(params): Query<DocumentParams>,
) -> Result<Json<PageBody<DocumentView>>> {
    let page = ListParams { limit: params.limit, cursor: params.cursor }.page()?;
    Ok(Json(state.app.documents_page(&access, p.project_id, page).await?.into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/documents/{document_id}", tag = "documents",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("document_id" = Uuid, Path)),
    responses((status = 200, body = DocumentView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<DocumentPath>,
) -> Result<Json<DocumentView>> {
    Ok(Json(state.app.document(&access, p.project_id, p.document_id).await?))
}

/// Deletes a document: here at once, and from the index of the agent that
/// holds it (when it is next connected).
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/documents/{document_id}", tag = "documents",
    operation_id = actions::DOCUMENT_DELETE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("document_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<DocumentPath>,
) -> Result<StatusCode> {
    state.app.delete_document(&access, p.project_id, p.document_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
