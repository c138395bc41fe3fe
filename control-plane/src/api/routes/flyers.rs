//! Flyers: a listing kit's print-ready PDF (from the kit, or from the
//! newest approved kit of a property), and the tenant's logo printed on
//! them.

use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::routes::params::{ActivityPath, PropertyPath};
use crate::api::routes::properties::read_photo;
use crate::error::{Error, Result};
use crate::service::{FlyerParams, PdfFile, RealEstateSettingsView, TenantAccess, actions};

/// A PDF as a download.
pub fn pdf(file: PdfFile) -> Response {
    let disposition = format!("attachment; filename=\"{}\"", file.filename);
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/pdf")),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).unwrap_or(HeaderValue::from_static("attachment")),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("private, no-store")),
        ],
        file.pdf,
    )
        .into_response()
}

/// The print-ready flyer of an approved listing kit (US Letter or A4, as
/// the tenant's settings say). Made from the current content: an edit shows
/// in the next download. With Fair Housing findings in its text the answer
/// is 422 naming each, unless `acknowledge_findings=true`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/flyer",
    tag = "activities", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path), FlyerParams),
    responses((status = 200, description = "the PDF", content_type = "application/pdf"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn activity_flyer(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
    Query(params): Query<FlyerParams>,
) -> Result<Response> {
    Ok(pdf(state.app.activity_flyer(&access, p.project_id, p.activity_id, &params).await?))
}

/// The flyer of the newest approved listing kit made from the property
/// (409 `no_approved_kit` when there is none).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}/flyer", tag = "properties",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path), FlyerParams),
    responses((status = 200, description = "the PDF", content_type = "application/pdf"), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn property_flyer(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PropertyPath>,
    Query(params): Query<FlyerParams>,
) -> Result<Response> {
    Ok(pdf(state.app.property_flyer(&access, p.property_id, &params).await?))
}

/// The tenant's logo, as printed on flyers (PNG).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/real-estate-settings/logo", tag = "leads",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, description = "the PNG", content_type = "image/png"), (status = 404, body = ErrorBody)))]
pub async fn logo(State(state): State<ApiState>, access: TenantAccess) -> Result<Response> {
    let png = state.app.flyer_logo(&access).await?;
    Ok(([(header::CONTENT_TYPE, "image/png"), (header::CACHE_CONTROL, "private, no-cache")], png)
        .into_response())
}

/// Sets the logo printed on flyers: a JPEG, PNG or WebP (at most 5 MB) in a
/// multipart part named `file`; stored as a PNG without metadata.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/real-estate-settings/logo", tag = "leads",
    operation_id = actions::REAL_ESTATE_LOGO_SET, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body(content = crate::api::routes::properties::PhotoForm, content_type = "multipart/form-data"),
    responses((status = 200, body = RealEstateSettingsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_logo(
    State(state): State<ApiState>,
    access: TenantAccess,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Json<RealEstateSettingsView>> {
    let multipart = multipart.map_err(|_| {
        Error::UnsupportedMediaType(
            "send the logo as multipart/form-data with a part named \"file\" (curl -F file=@logo.png)".into(),
        )
    })?;
    let (bytes, _) = read_photo(multipart).await?;
    Ok(Json(state.app.set_flyer_logo(&access, bytes).await?))
}

/// Removes the logo; flyers print without one.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/real-estate-settings/logo", tag = "leads",
    operation_id = actions::REAL_ESTATE_LOGO_DELETE, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = RealEstateSettingsView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_logo(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<RealEstateSettingsView>> {
    Ok(Json(state.app.delete_flyer_logo(&access).await?))
}
