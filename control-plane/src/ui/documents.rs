//! A project's documents: their status and where their index lives; the
//! upload form for `cloud_allowed` projects, and for `edge_only` ones the
//! command to run on the agent host.

use askama::Template;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::HeaderMap;
use axum::response::Response;
use uuid::Uuid;

use super::page::{After, FormErrors, Pager, Shell, UiError, every, render_form, see_other};
use super::session::{CSRF_FIELD, Path, Query, Submit, TenantPage, check_csrf};
use super::view::{When, badge, bytes};
use crate::api::ApiState;
use crate::domain::{ComplianceMode, LlmPolicy, Permission};
use crate::error::Error;
use crate::service::Upload;

struct DocumentRow {
    name: String,
    size: String,
    media_type: String,
    status: String,
    badge: &'static str,
    error: String,
    chunks: i64,
    held_by: String,
    held_href: String,
    origin: String,
    indexed: Option<When>,
    delete_action: String,
}

#[derive(Template)]
#[template(path = "documents.html")]
struct DocumentsPage {
    shell: Shell,
    project_name: String,
    project_href: String,
    project_id: Uuid,
    documents: Vec<DocumentRow>,
    uploads_allowed: bool,
    can_upload: bool,
    can_delete: bool,
    upload_action: String,
    max_mib: usize,
    errors: FormErrors,
    pager: Pager,
}

/// Documents a page lists.
const PAGE_SIZE: u32 = 100;

pub async fn list(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, project_id)): Path<(Uuid, Uuid)>,
    Query(after): Query<After>,
) -> Result<Response, UiError> {
    documents_page(&state, page, project_id, &after, FormErrors::default()).await
}

async fn documents_page(
    state: &ApiState,
    page: TenantPage,
    project_id: Uuid,
    after: &After,
    errors: FormErrors,
) -> Result<Response, UiError> {
    let project = state.app.project(&page.access, project_id).await?;
    let tenant = state.app.tenant(&page.access).await?;
    let documents = state.app.documents_page(&page.access, project_id, after.page(PAGE_SIZE)?).await?;
    let agents = every(|p| state.app.agents(&page.access, p)).await?;
    let agent_name = |id: Uuid| agents.iter().find(|a| a.id == id).map(|a| a.name.to_string());
    let base = page.path(&format!("/projects/{project_id}/documents"));
    let pager = Pager::new(&base, after, documents.next);
    let rows = documents
        .items
        .iter()
        .map(|d| DocumentRow {
            name: d.name.clone(),
            size: bytes(d.size_bytes),
            media_type: short_type(&d.media_type).to_owned(),
            badge: badge(&d.status),
            status: d.status.clone(),
            error: d.error.clone().unwrap_or_default(),
            chunks: d.chunk_count,
            held_by: d.agent_id.and_then(agent_name).unwrap_or_else(|| "not indexed yet".into()),
            held_href: d.agent_id.map(|id| page.path(&format!("/fleet/{id}"))).unwrap_or_default(),
            origin: if d.origin.to_string() == "upload" {
                "uploaded".into()
            } else {
                "ingested on the agent host".into()
            },
            indexed: When::maybe(d.indexed_at),
            delete_action: format!("{base}/{}/delete", d.id),
        })
        .collect();
    let uploads_allowed =
        project.llm_policy == LlmPolicy::CloudAllowed && tenant.compliance_mode != ComplianceMode::Hipaa;
    let view = DocumentsPage {
        pager,
        project_name: project.name.to_string(),
        project_href: page.path(&format!("/projects/{project_id}")),
        project_id,
        documents: rows,
        uploads_allowed,
        can_upload: page.can(Permission::DocumentsUpload),
        can_delete: page.can(Permission::DocumentsDelete),
        upload_action: format!("{base}/upload"),
        max_mib: state.config.max_upload_bytes / 1024 / 1024,
        errors,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

fn short_type(media_type: &str) -> &str {
    match media_type {
        "text/plain" => "Text",
        "text/markdown" => "Markdown",
        "text/html" => "HTML",
        "application/pdf" => "PDF",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "Word",
        other => other,
    }
}

/// The upload form: multipart, with the CSRF token as a field before the
/// file; the file counted against the upload limit as it arrives.
pub async fn upload(
    State(state): State<ApiState>,
    page: TenantPage,
    headers: HeaderMap,
    Path((_, project_id)): Path<(Uuid, Uuid)>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, UiError> {
    let mut multipart = multipart.map_err(|_| UiError::bad_request("the upload form could not be read"))?;
    let limit = state.config.max_upload_bytes;
    let unreadable = |_| UiError::bad_request("the upload could not be read; try again");
    let mut csrf: Option<String> = None;
    let mut upload = None;
    let mut errors = FormErrors::default();
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some(CSRF_FIELD) => csrf = Some(field.text().await.map_err(unreadable)?),
            Some("file") => {
                // Nothing is read from a form without its token.
                check_csrf(
                    &state,
                    &page.browser,
                    &headers,
                    &[(CSRF_FIELD.to_owned(), csrf.clone().unwrap_or_default())],
                )?;
                let file_name = field.file_name().unwrap_or_default().to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    if bytes.len() + chunk.len() > limit {
                        errors.add(
                            "file",
                            format!("the file is larger than the {} MiB limit", limit / 1024 / 1024),
                        );
                        break;
                    }
                    bytes.extend_from_slice(&chunk);
                }
                upload = Some(Upload { file_name, bytes });
            }
            _ => {}
        }
        if !errors.is_empty() {
            break;
        }
    }
    if errors.is_empty() {
        check_csrf(&state, &page.browser, &headers, &[(CSRF_FIELD.to_owned(), csrf.unwrap_or_default())])?;
        match upload {
            None => errors.add("file", "choose a file to upload"),
            Some(upload) if upload.file_name.is_empty() && upload.bytes.is_empty() => {
                errors.add("file", "choose a file to upload");
            }
            Some(upload) => match state.app.upload_document(&page.access, project_id, upload).await {
                Ok(_) => return Ok(see_other(&page.path(&format!("/projects/{project_id}/documents")))),
                Err(e @ (Error::Forbidden(_) | Error::NotFound(_))) => return Err(e.into()),
                Err(e) => errors = FormErrors::from_error(e)?,
            },
        }
    }
    documents_page(&state, page, project_id, &After::default(), errors).await
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((_, project_id, document_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.delete_document(&page.access, project_id, document_id).await?;
    Ok(see_other(&page.path(&format!("/projects/{project_id}/documents"))))
}
