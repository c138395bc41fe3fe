//! Real-estate properties: CRUD, search and filters, photos (upload,
//! order, cover, alt text, the files), the CSV import, and the activities
//! generated from a property.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::params::{PhotoPath, ProjectPath, PropertyPath};
use crate::error::{Error, Result};
use crate::service::{
    ActivityView, ImportReport, MAX_IMPORT_BYTES, PhotoSize, PhotoView, PropertyIn, PropertyParams,
    PropertyView, PublishProperty, TenantAccess, UpdatePhoto, actions,
};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PhotoParams {
    /// `full` (default: at most 2,400 px a side) or `thumbnail` (480 px).
    pub size: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// Check the file and report, without creating anything.
    #[serde(default)]
    pub dry_run: bool,
}

/// The multipart form of a photo upload (for the API description).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct PhotoForm {
    /// A JPEG, PNG or WebP image (checked by content), up to 20 MiB and 60
    /// megapixels. Stored re-encoded as JPEG, without its metadata.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// What the photo shows (default: "Photo of" and the address).
    alt: Option<String>,
}

/// The tenant's properties, newest first, filtered.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/properties", tag = "properties", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), PropertyParams),
    responses((status = 200, body = PageBody<PropertyView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(mut params): Query<PropertyParams>,
) -> Result<Json<PageBody<PropertyView>>> {
    let page = ListParams { limit: params.limit.take(), cursor: params.cursor.take() }.page()?;
    Ok(Json(state.app.properties(&access, params, page).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/properties", tag = "properties", operation_id = actions::PROPERTY_CREATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = PropertyIn,
    responses((status = 201, body = PropertyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<PropertyIn>,
) -> Result<(StatusCode, Json<PropertyView>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_property(&access, req).await?)))
}

/// A property with its photos.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}", tag = "properties", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path)),
    responses((status = 200, body = PropertyView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PropertyPath>,
) -> Result<Json<PropertyView>> {
    Ok(Json(state.app.property(&access, p.property_id).await?))
}

/// Replaces a property's fields (its project stays); `version`, when
/// given, must be the current one.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}", tag = "properties", operation_id = actions::PROPERTY_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path)), request_body = PropertyIn,
    responses((status = 200, body = PropertyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PropertyPath>,
    Json(req): Json<PropertyIn>,
) -> Result<Json<PropertyView>> {
    Ok(Json(state.app.update_property(&access, p.property_id, req).await?))
}

/// Deletes a property and its photos; activities made from it stay.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}", tag = "properties", operation_id = actions::PROPERTY_DELETE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PropertyPath>,
) -> Result<StatusCode> {
    state.app.delete_property(&access, p.property_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The activities generated from a property (listing kits), newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}/activities", tag = "properties", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<ActivityView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn activities(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PropertyPath>,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<ActivityView>>> {
    Ok(Json(state.app.property_activities(&access, p.property_id, params.page()?).await?.into()))
}

/// Imports properties from a CSV file (UTF-8, a header line naming the
/// columns: street, city, region, postal_code, country, price, currency,
/// beds, baths, floor_area, area_unit, lot_size, year_built,
/// property_type, status, features separated by `|`, description,
/// agent_name, agent_contact, reference). Every row is created, or none:
/// when any row is refused, the report lists each problem by line and
/// field and nothing is imported.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/properties/import", tag = "properties",
    operation_id = actions::PROPERTY_IMPORT, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ImportParams),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    Query(params): Query<ImportParams>,
    body: Bytes,
) -> Result<Json<ImportReport>> {
    if body.len() > MAX_IMPORT_BYTES {
        return Err(Error::PayloadTooLarge { limit: MAX_IMPORT_BYTES });
    }
    Ok(Json(state.app.import_properties(&access, p.project_id, &body, params.dry_run).await?))
}

/// Adds a photo at the end of the property's photos (the first one is the
/// cover). Its metadata (EXIF with GPS positions, XMP) is not kept.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}/photos", tag = "properties",
    operation_id = actions::PROPERTY_PHOTO_ADD, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path)),
    request_body(content = PhotoForm, content_type = "multipart/form-data"),
    responses((status = 201, body = PhotoView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn add_photo(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PropertyPath>,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<PhotoView>)> {
    let multipart = multipart.map_err(|_| {
        Error::UnsupportedMediaType(
            "send the photo as multipart/form-data with a part named \"file\" (curl -F file=@front.jpg)"
                .into(),
        )
    })?;
    let (bytes, alt) = read_photo(multipart).await?;
    let photo = state.app.add_property_photo(&access, p.property_id, bytes, alt).await?;
    Ok((StatusCode::CREATED, Json(photo)))
}

/// The `file` and `alt` parts of a photo upload, the file counted against
/// the photo limit as it arrives.
pub async fn read_photo(mut multipart: Multipart) -> Result<(Vec<u8>, Option<String>)> {
    let limit = crate::images::MAX_PHOTO_BYTES;
    let unreadable = |e: axum::extract::multipart::MultipartError| Error::BadRequest {
        code: "unreadable_body",
        message: format!("the multipart body could not be read: {}", e.body_text()),
    };
    let mut file = None;
    let mut alt = None;
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("file") => {
                if file.is_some() {
                    return Err(Error::invalid("file", "upload one photo per request"));
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    if bytes.len() + chunk.len() > limit {
                        return Err(Error::PayloadTooLarge { limit });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some(bytes);
            }
            Some("alt") => {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                    if text.len() + chunk.len() > 4_096 {
                        return Err(Error::invalid("alt", "must be at most 300 characters"));
                    }
                    text.extend_from_slice(&chunk);
                }
                alt = Some(String::from_utf8(text).map_err(|_| Error::invalid("alt", "must be UTF-8 text"))?);
            }
            _ => {}
        }
    }
    match file {
        Some(bytes) if !bytes.is_empty() => Ok((bytes, alt)),
        _ => Err(Error::invalid("file", "send the photo in a part named \"file\"")),
    }
}

/// A photo's JPEG (or its thumbnail).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}/photos/{photo_id}", tag = "properties",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path), ("photo_id" = Uuid, Path), PhotoParams),
    responses((status = 200, description = "the JPEG", content_type = "image/jpeg"), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn photo(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PhotoPath>,
    Query(params): Query<PhotoParams>,
) -> Result<Response> {
    let size = match params.size.as_deref() {
        None | Some("full") => PhotoSize::Full,
        Some("thumbnail") => PhotoSize::Thumbnail,
        Some(_) => return Err(Error::invalid("size", "must be full or thumbnail")),
    };
    let bytes = state.app.property_photo_file(&access, p.property_id, p.photo_id, size).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            // A photo's id names its content for good; the caller's
            // credentials still decide who reads it.
            (header::CACHE_CONTROL, "private, max-age=86400, immutable"),
        ],
        bytes,
    )
        .into_response())
}

/// Changes a photo's alt text or place (`position` 0 makes it the cover);
/// answers with every photo in the new order.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}/photos/{photo_id}", tag = "properties",
    operation_id = actions::PROPERTY_PHOTO_UPDATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path), ("photo_id" = Uuid, Path)), request_body = UpdatePhoto,
    responses((status = 200, body = Vec<PhotoView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_photo(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PhotoPath>,
    Json(req): Json<UpdatePhoto>,
) -> Result<Json<Vec<PhotoView>>> {
    Ok(Json(state.app.update_property_photo(&access, p.property_id, p.photo_id, req).await?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}/photos/{photo_id}", tag = "properties",
    operation_id = actions::PROPERTY_PHOTO_DELETE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path), ("photo_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_photo(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PhotoPath>,
) -> Result<StatusCode> {
    state.app.delete_property_photo(&access, p.property_id, p.photo_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Publishes or takes down the property's public page (an active or
/// coming-soon property only); `public_path` says where it is.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/properties/{property_id}/publication", tag = "properties",
    operation_id = actions::PROPERTY_PUBLISH, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("property_id" = Uuid, Path)), request_body = PublishProperty,
    responses((status = 200, body = PropertyView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn publish(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PropertyPath>,
    Json(req): Json<PublishProperty>,
) -> Result<Json<PropertyView>> {
    Ok(Json(state.app.publish_property(&access, p.property_id, req).await?))
}
