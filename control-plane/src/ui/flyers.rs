//! Flyers in the web UI: the PDF download from a listing kit's page and a
//! property's page, and the logo of the listing settings. A flyer whose
//! text the Fair Housing rules flag is not downloaded silently: a page
//! names each finding and offers the download once it has been read.

use askama::Template;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::page::{FormErrors, Shell, UiError, see_other};
use super::session::{Path, Query, TenantPage};
use crate::api::ApiState;
use crate::error::Error;
use crate::service::{FlyerParams, PdfFile};

#[derive(Debug, Default, Deserialize)]
pub struct FlyerQuery {
    acknowledge_findings: Option<String>,
}

impl FlyerQuery {
    fn params(&self) -> FlyerParams {
        FlyerParams { acknowledge_findings: self.acknowledge_findings.as_deref() == Some("true") }
    }
}

#[derive(Template)]
#[template(path = "flyer_findings.html")]
struct FindingsPage {
    shell: Shell,
    message: String,
    back: String,
    anyway: String,
}

fn download(file: PdfFile) -> Response {
    crate::api::routes::flyers::pdf(file)
}

/// The answer to a flyer request: the PDF, or the findings page.
fn answer(
    page: TenantPage,
    made: Result<PdfFile, Error>,
    back: String,
    here: &str,
) -> Result<Response, UiError> {
    match made {
        Ok(file) => Ok(download(file)),
        Err(Error::Invalid { field, message }) if field == "acknowledge_findings" => {
            let view = FindingsPage {
                message: super::page::capitalise(&message),
                back,
                anyway: format!("{here}?acknowledge_findings=true"),
                shell: page.shell,
            };
            Ok(super::page::render(&view))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn activity(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, project_id, activity_id)): Path<(Uuid, Uuid, Uuid)>,
    Query(q): Query<FlyerQuery>,
) -> Result<Response, UiError> {
    let base = page.path(&format!("/projects/{project_id}/activities/{activity_id}"));
    let made = state.app.activity_flyer(&page.access, project_id, activity_id, &q.params()).await;
    answer(page, made, format!("{base}#flyer"), &format!("{base}/flyer.pdf"))
}

pub async fn property(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, property_id)): Path<(Uuid, Uuid)>,
    Query(q): Query<FlyerQuery>,
) -> Result<Response, UiError> {
    let base = page.path(&format!("/properties/{property_id}"));
    let made = state.app.property_flyer(&page.access, property_id, &q.params()).await;
    answer(page, made, base.clone(), &format!("{base}/flyer.pdf"))
}

/// The logo, for the settings' preview.
pub async fn logo(State(state): State<ApiState>, page: TenantPage) -> Result<Response, UiError> {
    let png = state.app.flyer_logo(&page.access).await?;
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "image/png"),
            (axum::http::header::CACHE_CONTROL, "private, no-cache"),
        ],
        png,
    )
        .into_response())
}

pub async fn upload_logo(
    State(state): State<ApiState>,
    page: TenantPage,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, UiError> {
    let (_, file, mut errors) =
        super::properties::multipart_form(&state, &page, &headers, multipart, crate::images::MAX_LOGO_BYTES)
            .await?;
    if errors.is_empty() {
        match file {
            None => errors.add("logo", "choose an image to upload"),
            Some(bytes) => match state.app.set_flyer_logo(&page.access, bytes).await {
                Ok(_) => return Ok(see_other(&page.path("/leads#settings"))),
                Err(e @ (Error::Forbidden(_) | Error::NotFound(_))) => return Err(e.into()),
                Err(Error::Invalid { message, .. } | Error::UnsupportedMediaType(message)) => {
                    errors.add("logo", message);
                }
                Err(Error::PayloadTooLarge { limit }) => {
                    errors.add(
                        "logo",
                        format!("the file is larger than the {} MiB limit", limit / 1024 / 1024),
                    );
                }
                Err(e) => return Err(e.into()),
            },
        }
    } else {
        let mut renamed = FormErrors::default();
        renamed.add("logo", errors.get("file"));
        errors = renamed;
    }
    super::leads::inbox_with_errors(&state, page, errors).await
}

pub async fn delete_logo(
    State(state): State<ApiState>,
    submit: super::session::Submit<NoFields>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.delete_flyer_logo(&page.access).await?;
    Ok(see_other(&page.path("/leads#settings")))
}

#[derive(Debug, Default, Deserialize)]
pub struct NoFields {}
