//! Real-estate properties: the listing as a record of its own (address,
//! price, facts, features, the listing agent, status), its photos (checked
//! by content, re-encoded without metadata by [`crate::images`], stored
//! with a thumbnail through the file storage, ordered, cover first, each
//! with alt text), search and filters, and the CSV import that creates many
//! at once or none.
//!
//! Rules: viewers read; members and above create, change and delete. A
//! property's `version` counts changes of its fields (not of its photos),
//! and a listing kit made from it records the version it was made from.
//! Editing with `version` set refuses a change made on stale data.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::activity_input::{ListingIn, list, text};
use super::csv_import::{ImportReport, RowProblem, choice, read_rows, repeated};
use super::{App, TenantAccess, actions};
use crate::domain::{Permission, Timestamp, new_id};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::store::{
    AreaUnit, NewProperty, NewPropertyPhoto, Page, PageRequest, Property, PropertyFields, PropertyFilter,
    PropertyPhoto, PropertyStatus, PropertyType, StoreError,
};

/// The largest price, in whole units.
const MAX_PRICE: i64 = 10_000_000_000;

/// A property's fields, as sent to create or replace one.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PropertyIn {
    /// The project it belongs to (on create; ignored on update).
    pub project_id: Option<Uuid>,
    /// The property's version when the caller read it: a change made
    /// since is refused (409 `version_changed`) instead of overwritten.
    pub version: Option<i64>,
    pub street: String,
    pub city: String,
    /// State, province or region.
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, e.g. `US`.
    pub country: String,
    /// In whole units of `currency`, 1 to 10,000,000,000.
    pub price: i64,
    /// ISO 4217, e.g. `USD`.
    pub currency: String,
    pub beds: i64,
    /// Half baths count 0.5.
    pub baths: f64,
    /// Living area in `area_unit`.
    pub floor_area: i64,
    #[schema(value_type = String, example = "sqft")]
    pub area_unit: AreaUnit,
    /// Lot size in `area_unit`.
    pub lot_size: Option<i64>,
    pub year_built: Option<i64>,
    pub property_type: PropertyType,
    pub status: PropertyStatus,
    /// Up to 20 short texts ("Renovated kitchen").
    #[serde(default)]
    pub features: Vec<String>,
    /// Up to 5,000 characters.
    #[serde(default)]
    pub description: String,
    pub agent_name: String,
    /// A phone number or e-mail address.
    pub agent_contact: String,
    /// An MLS number or the agency's reference; unique in the project.
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PhotoView {
    pub id: Uuid,
    /// 0 is the cover.
    pub position: i64,
    pub cover: bool,
    pub alt: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    /// The photo (JPEG, metadata stripped), readable with the caller's
    /// credentials.
    pub url: String,
    pub thumbnail_url: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PropertyView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub version: i64,
    /// The address on one line.
    pub address: String,
    pub street: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
    pub price: i64,
    pub currency: String,
    pub beds: i64,
    pub baths: f64,
    pub floor_area: i64,
    #[schema(value_type = String)]
    pub area_unit: AreaUnit,
    pub lot_size: Option<i64>,
    pub year_built: Option<i64>,
    pub property_type: PropertyType,
    pub status: PropertyStatus,
    pub features: Vec<String>,
    pub description: String,
    pub agent_name: String,
    pub agent_contact: String,
    pub reference: Option<String>,
    /// The cover photo's thumbnail, if there are photos.
    pub cover_thumbnail_url: Option<String>,
    pub photo_count: i64,
    /// Every photo, cover first (on a single property; empty in lists).
    pub photos: Vec<PhotoView>,
    /// The public page's path (under the server's public URL) while it is
    /// published.
    pub public_path: Option<String>,
    pub created_by: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// Filters of the property list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PropertyParams {
    pub project_id: Option<Uuid>,
    pub status: Option<PropertyStatus>,
    /// The whole city name, any case.
    pub city: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// A part of the street, city, region, postal code or reference.
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePhoto {
    /// What the photo shows, for people who cannot see it (1 to 300
    /// characters).
    pub alt: Option<String>,
    /// The new place in the order; 0 makes it the cover.
    pub position: Option<i64>,
}

/// A photo file: the stored JPEG or its thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoSize {
    Full,
    Thumbnail,
}

/// The storage key of a photo's file.
fn photo_key(tenant_id: Uuid, property_id: Uuid, photo_id: Uuid, size: PhotoSize) -> String {
    match size {
        PhotoSize::Full => format!("properties/{tenant_id}/{property_id}/{photo_id}"),
        PhotoSize::Thumbnail => format!("properties/{tenant_id}/{property_id}/{photo_id}-thumbnail"),
    }
}

fn photo_url(tenant_id: Uuid, property_id: Uuid, photo_id: Uuid, size: PhotoSize) -> String {
    let base = format!("/api/v1/tenants/{tenant_id}/properties/{property_id}/photos/{photo_id}");
    match size {
        PhotoSize::Full => base,
        PhotoSize::Thumbnail => format!("{base}?size=thumbnail"),
    }
}

fn photo_view(tenant_id: Uuid, p: PropertyPhoto) -> PhotoView {
    PhotoView {
        id: p.id,
        position: p.position,
        cover: p.position == 0,
        url: photo_url(tenant_id, p.property_id, p.id, PhotoSize::Full),
        thumbnail_url: photo_url(tenant_id, p.property_id, p.id, PhotoSize::Thumbnail),
        alt: p.alt,
        width: p.width,
        height: p.height,
        bytes: p.bytes,
        created_at: p.created_at,
    }
}

impl PropertyView {
    pub fn new(p: Property, photos: Vec<PhotoView>) -> Self {
        let f = p.fields;
        let address = f.address();
        #[allow(clippy::cast_precision_loss)]
        let baths = f.half_baths as f64 / 2.0;
        Self {
            id: p.id,
            project_id: p.project_id,
            version: p.version,
            address,
            cover_thumbnail_url: p.cover.map(|c| photo_url(p.tenant_id, p.id, c, PhotoSize::Thumbnail)),
            photo_count: p.photos,
            photos,
            public_path: p.published_at.and(p.public_slug.map(|s| format!("/l/{s}"))),
            street: f.street,
            city: f.city,
            region: f.region,
            postal_code: f.postal_code,
            country: f.country,
            price: f.price,
            currency: f.currency,
            beds: f.beds,
            baths,
            floor_area: f.floor_area,
            area_unit: f.area_unit,
            lot_size: f.lot_size,
            year_built: f.year_built,
            property_type: f.property_type,
            status: f.status,
            features: f.features,
            description: f.description,
            agent_name: f.agent_name,
            agent_contact: f.agent_contact,
            reference: f.reference,
            created_by: p.created_by,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }

    /// The listing a listing kit is generated from.
    pub fn listing(&self) -> Result<ListingIn> {
        let square_feet = match self.area_unit {
            AreaUnit::SquareFeet => self.floor_area,
            // 1 m² is 10.7639 sq ft; the pipeline writes in square feet.
            AreaUnit::SquareMetres => (self.floor_area * 107_639 + 5_000) / 10_000,
        };
        let field = |name: &str| format!("property.{name}");
        Ok(ListingIn {
            address: self.address.clone(),
            price: u64::try_from(self.price)
                .map_err(|_| Error::invalid(field("price"), "must be positive"))?,
            beds: u32::try_from(self.beds).map_err(|_| Error::invalid(field("beds"), "is out of range"))?,
            baths: self.baths,
            square_feet: u32::try_from(square_feet)
                .map_err(|_| Error::invalid(field("floor_area"), "is out of range"))?,
            key_features: self.features.clone(),
            description: self.description.clone(),
            agent_name: self.agent_name.clone(),
            agent_contact: self.agent_contact.clone(),
        })
    }
}

/// An optional text: trimmed, empty is `""`.
fn optional(field: &str, value: &str, max: usize) -> Result<String> {
    if value.trim().is_empty() { Ok(String::new()) } else { text(field, Some(value), 1, max) }
}

fn code(field: &str, value: &str, len: usize, example: &str) -> Result<String> {
    let upper = value.trim().to_ascii_uppercase();
    if upper.len() == len && upper.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(upper)
    } else {
        Err(Error::invalid(field, format!("must be a {len}-letter code such as {example}")))
    }
}

/// Checks a property's fields; the first problem is the error.
pub fn check_fields(p: &PropertyIn) -> Result<PropertyFields> {
    let this_year = i64::from(jiff::Zoned::now().year());
    if !(1..=MAX_PRICE).contains(&p.price) {
        return Err(Error::invalid("price", "must be between 1 and 10,000,000,000"));
    }
    if !(0..=100).contains(&p.beds) {
        return Err(Error::invalid("beds", "must be 0 to 100"));
    }
    if !(0.0..=100.0).contains(&p.baths) || (p.baths * 2.0).fract() != 0.0 {
        return Err(Error::invalid("baths", "must be 0 to 100 in steps of 0.5"));
    }
    if !(0..=10_000_000).contains(&p.floor_area) {
        return Err(Error::invalid("floor_area", "must be 0 to 10,000,000"));
    }
    if p.lot_size.is_some_and(|l| !(0..=1_000_000_000).contains(&l)) {
        return Err(Error::invalid("lot_size", "must be 0 to 1,000,000,000"));
    }
    if p.year_built.is_some_and(|y| !(1500..=this_year + 5).contains(&y)) {
        return Err(Error::invalid("year_built", format!("must be between 1500 and {}", this_year + 5)));
    }
    let reference = match p.reference.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(r) => Some(text("reference", Some(r), 1, 60)?),
    };
    #[allow(clippy::cast_possible_truncation)]
    let half_baths = (p.baths * 2.0) as i64;
    Ok(PropertyFields {
        street: text("street", Some(&p.street), 2, 200)?,
        city: text("city", Some(&p.city), 1, 100)?,
        region: optional("region", &p.region, 100)?,
        postal_code: optional("postal_code", &p.postal_code, 20)?,
        country: code("country", &p.country, 2, "US")?,
        price: p.price,
        currency: code("currency", &p.currency, 3, "USD")?,
        beds: p.beds,
        half_baths,
        floor_area: p.floor_area,
        area_unit: p.area_unit,
        lot_size: p.lot_size,
        year_built: p.year_built,
        property_type: p.property_type,
        status: p.status,
        features: list("features", &p.features, 20, 120)?,
        description: optional("description", &p.description, 5_000)?,
        agent_name: text("agent_name", Some(&p.agent_name), 2, 100)?,
        agent_contact: text("agent_contact", Some(&p.agent_contact), 3, 200)?,
        reference,
    })
}

fn store_conflict(e: StoreError) -> Error {
    match e {
        StoreError::Conflict { code: "reference_taken", message } => Error::invalid("reference", message),
        other => other.into(),
    }
}

impl App {
    pub async fn property(&self, access: &TenantAccess, id: Uuid) -> Result<PropertyView> {
        access.require(Permission::ProjectsRead)?;
        let property = self.store.property(access.tenant_id, id).await.found("property")?;
        let photos = self.store.property_photos(access.tenant_id, id).await?;
        let photos = photos.into_iter().map(|p| photo_view(access.tenant_id, p)).collect();
        Ok(PropertyView::new(property, photos))
    }

    pub async fn properties(
        &self,
        access: &TenantAccess,
        params: PropertyParams,
        page: PageRequest,
    ) -> Result<Page<PropertyView>> {
        access.require(Permission::ProjectsRead)?;
        let trimmed = |v: Option<String>| v.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
        if let (Some(min), Some(max)) = (params.min_price, params.max_price)
            && min > max
        {
            return Err(Error::invalid("min_price", "is above max_price"));
        }
        let filter = PropertyFilter {
            project_id: params.project_id,
            status: params.status,
            city: trimmed(params.city),
            min_price: params.min_price,
            max_price: params.max_price,
            text: trimmed(params.q).map(|q| q.chars().take(100).collect()),
        };
        let found = self.store.properties(access.tenant_id, &filter, page).await?;
        Ok(Page {
            items: found.items.into_iter().map(|p| PropertyView::new(p, Vec::new())).collect(),
            next: found.next,
        })
    }

    pub async fn create_property(&self, access: &TenantAccess, req: PropertyIn) -> Result<PropertyView> {
        access.require(Permission::ActivitiesCreate)?;
        let project_id = req.project_id.ok_or_else(|| Error::invalid("project_id", "is required"))?;
        self.store.project(access.tenant_id, project_id).await.found("project")?;
        let fields = check_fields(&req)?;
        let id = new_id();
        let new = NewProperty {
            id,
            tenant_id: access.tenant_id,
            project_id,
            fields,
            created_by: access.caller.creator_id(),
        };
        let audit = access
            .audit(actions::PROPERTY_CREATE)
            .resource("property", id)
            .details(serde_json::json!({ "project_id": project_id }));
        let created = self.store.create_properties(&[new], &audit).await.map_err(store_conflict)?;
        let property = created.into_iter().next().ok_or(Error::NotFound("property"))?;
        Ok(PropertyView::new(property, Vec::new()))
    }

    pub async fn update_property(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: PropertyIn,
    ) -> Result<PropertyView> {
        access.require(Permission::ActivitiesUpdate)?;
        let fields = check_fields(&req)?;
        let audit = access.audit(actions::PROPERTY_UPDATE).resource("property", id);
        let updated =
            match self.store.update_property(access.tenant_id, id, req.version, &fields, &audit).await {
                Err(StoreError::NotFound) => return Err(Error::NotFound("property")),
                other => other.map_err(store_conflict)?,
            };
        let photos = self.store.property_photos(access.tenant_id, id).await?;
        Ok(PropertyView::new(updated, photos.into_iter().map(|p| photo_view(access.tenant_id, p)).collect()))
    }

    pub async fn delete_property(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::ActivitiesUpdate)?;
        let audit = access.audit(actions::PROPERTY_DELETE).resource("property", id);
        let photos =
            self.store.delete_property(access.tenant_id, id, &audit).await.or_not_found("property")?;
        for photo in photos {
            self.remove_photo_files(access.tenant_id, id, photo).await;
        }
        Ok(())
    }

    async fn remove_photo_files(&self, tenant_id: Uuid, property_id: Uuid, photo_id: Uuid) {
        for size in [PhotoSize::Full, PhotoSize::Thumbnail] {
            if let Err(e) = self.files.delete(&photo_key(tenant_id, property_id, photo_id, size)).await {
                tracing::warn!(error = %format!("{e:#}"), %photo_id, "could not remove a deleted photo's file");
            }
        }
    }

    /// Adds a photo: checked, re-encoded without metadata, stored with its
    /// thumbnail, then recorded (a photo whose row could not be written
    /// has its files removed).
    pub async fn add_property_photo(
        &self,
        access: &TenantAccess,
        property_id: Uuid,
        bytes: Vec<u8>,
        alt: Option<String>,
    ) -> Result<PhotoView> {
        access.require(Permission::ActivitiesUpdate)?;
        let property = self.store.property(access.tenant_id, property_id).await.found("property")?;
        let alt = match alt.as_deref().map(str::trim) {
            None | Some("") => format!("Photo of {}", property.fields.address()),
            Some(a) => text("alt", Some(a), 1, 300)?,
        };
        let photo = self.images.photo(bytes, "file").await?;
        let id = new_id();
        let tenant_id = access.tenant_id;
        let stored = async {
            self.files.put(&photo_key(tenant_id, property_id, id, PhotoSize::Full), &photo.jpeg).await?;
            self.files
                .put(&photo_key(tenant_id, property_id, id, PhotoSize::Thumbnail), &photo.thumbnail)
                .await
        };
        if let Err(e) = stored.await {
            self.remove_photo_files(tenant_id, property_id, id).await;
            return Err(Error::Internal(e.context("storing a photo")));
        }
        let new = NewPropertyPhoto {
            id,
            tenant_id,
            property_id,
            alt,
            width: i64::from(photo.width),
            height: i64::from(photo.height),
            bytes: i64::try_from(photo.jpeg.len()).unwrap_or(i64::MAX),
        };
        let audit = access
            .audit(actions::PROPERTY_PHOTO_ADD)
            .resource("property", property_id)
            .details(serde_json::json!({ "photo_id": id }));
        match self.store.add_property_photo(&new, &audit).await {
            Ok(row) => Ok(photo_view(tenant_id, row)),
            Err(e) => {
                self.remove_photo_files(tenant_id, property_id, id).await;
                Err(match e {
                    StoreError::NotFound => Error::NotFound("property"),
                    other => other.into(),
                })
            }
        }
    }

    pub async fn update_property_photo(
        &self,
        access: &TenantAccess,
        property_id: Uuid,
        photo_id: Uuid,
        req: UpdatePhoto,
    ) -> Result<Vec<PhotoView>> {
        access.require(Permission::ActivitiesUpdate)?;
        let alt = req.alt.as_deref().map(|a| text("alt", Some(a), 1, 300)).transpose()?;
        if req.position.is_some_and(|p| !(0..=1_000).contains(&p)) {
            return Err(Error::invalid("position", "must be 0 (the cover) or more"));
        }
        if alt.is_none() && req.position.is_none() {
            return Err(Error::invalid("alt", "send alt, position or both"));
        }
        let audit = access
            .audit(actions::PROPERTY_PHOTO_UPDATE)
            .resource("property", property_id)
            .details(serde_json::json!({ "photo_id": photo_id, "position": req.position }));
        let photos = self
            .store
            .update_property_photo(
                access.tenant_id,
                property_id,
                photo_id,
                alt.as_deref(),
                req.position,
                &audit,
            )
            .await
            .or_not_found("photo")?;
        Ok(photos.into_iter().map(|p| photo_view(access.tenant_id, p)).collect())
    }

    pub async fn delete_property_photo(
        &self,
        access: &TenantAccess,
        property_id: Uuid,
        photo_id: Uuid,
    ) -> Result<()> {
        access.require(Permission::ActivitiesUpdate)?;
        let audit = access
            .audit(actions::PROPERTY_PHOTO_DELETE)
            .resource("property", property_id)
            .details(serde_json::json!({ "photo_id": photo_id }));
        self.store
            .delete_property_photo(access.tenant_id, property_id, photo_id, &audit)
            .await
            .or_not_found("photo")?;
        self.remove_photo_files(access.tenant_id, property_id, photo_id).await;
        Ok(())
    }

    /// A photo's JPEG (or its thumbnail).
    pub async fn property_photo_file(
        &self,
        access: &TenantAccess,
        property_id: Uuid,
        photo_id: Uuid,
        size: PhotoSize,
    ) -> Result<Vec<u8>> {
        access.require(Permission::ProjectsRead)?;
        let photos = self.store.property_photos(access.tenant_id, property_id).await?;
        if !photos.iter().any(|p| p.id == photo_id) {
            return Err(Error::NotFound("photo"));
        }
        self.photo_bytes(access.tenant_id, property_id, photo_id, size).await
    }

    /// A photo's stored file (the caller checked it may be read).
    pub(super) async fn photo_bytes(
        &self,
        tenant_id: Uuid,
        property_id: Uuid,
        photo_id: Uuid,
        size: PhotoSize,
    ) -> Result<Vec<u8>> {
        let key = photo_key(tenant_id, property_id, photo_id, size);
        self.files
            .get(&key)
            .await
            .map_err(|e| Error::Internal(e.context("reading a photo")))?
            .ok_or(Error::NotFound("photo"))
    }

    /// The activities generated from a property, newest first.
    pub async fn property_activities(
        &self,
        access: &TenantAccess,
        property_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<super::ActivityView>> {
        let property = self.store.property(access.tenant_id, property_id).await.found("property")?;
        let filter = crate::store::ActivityFilter { property_id: Some(property_id), ..Default::default() };
        self.activities_page(access, property.project_id, filter, page).await
    }

    /// Fills a listing kit's request from a property of the same project;
    /// the property's id and version, for the activity to keep.
    pub(super) async fn listing_from_property(
        &self,
        access: &TenantAccess,
        req: &mut super::CreateActivity,
        project_id: Uuid,
        property_id: Uuid,
    ) -> Result<(Uuid, i64)> {
        if req.kind != crate::store::ActivityKind::ListingKit {
            return Err(Error::invalid("property_id", format!("does not apply to {} activities", req.kind)));
        }
        if req.listing.is_some() {
            return Err(Error::invalid("listing", "give either listing or property_id, not both"));
        }
        let property = self.property(access, property_id).await?;
        if property.project_id != project_id {
            return Err(Error::invalid("property_id", "is a property of another project"));
        }
        req.listing = Some(property.listing()?);
        Ok((property.id, property.version))
    }

    /// Imports properties from CSV into a project: all rows or none. With
    /// `dry_run`, only checks.
    pub async fn import_properties(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        csv: &[u8],
        dry_run: bool,
    ) -> Result<ImportReport> {
        access.require(Permission::ActivitiesCreate)?;
        self.store.project(access.tenant_id, project_id).await.found("project")?;
        let (rows, mut refused) = read_rows(csv, IMPORT_COLUMNS, row_fields)?;
        let mut report = ImportReport::new(rows.len() + refused.len(), dry_run);
        // A reference used twice in the file, or already in the project.
        refused.extend(repeated(&rows, "reference", |f: &PropertyFields| f.reference.clone()));
        refused.sort_by_key(|p| p.line);
        if !refused.is_empty() || dry_run || rows.is_empty() {
            report.refused = refused;
            return Ok(report);
        }
        let (lines, new): (Vec<u64>, Vec<NewProperty>) = rows
            .into_iter()
            .map(|(line, fields)| {
                let new = NewProperty {
                    id: new_id(),
                    tenant_id: access.tenant_id,
                    project_id,
                    fields,
                    created_by: access.caller.creator_id(),
                };
                (line, new)
            })
            .unzip();
        let audit = access
            .audit(actions::PROPERTY_IMPORT)
            .resource("project", project_id)
            .details(serde_json::json!({ "rows": new.len() }));
        match self.store.create_properties(&new, &audit).await {
            Ok(created) => {
                report.imported = created.len();
                report.ids = created.iter().map(|p| p.id).collect();
            }
            Err(StoreError::Conflict { code: "reference_taken", .. }) => {
                // Which rows: the references the project has already.
                for (p, line) in new.iter().zip(&lines) {
                    let Some(reference) = &p.fields.reference else { continue };
                    let filter = PropertyFilter {
                        project_id: Some(project_id),
                        text: Some(reference.to_lowercase()),
                        ..PropertyFilter::default()
                    };
                    let found = self
                        .store
                        .properties(access.tenant_id, &filter, PageRequest { after: None, limit: 50 })
                        .await?;
                    if found.items.iter().any(|e| e.fields.reference.as_deref() == Some(reference)) {
                        report.refused.push(RowProblem {
                            line: *line,
                            field: "reference".into(),
                            message: format!("{reference} is already a property of this project"),
                        });
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(report)
    }
}

/// The columns an import reads; those marked `true` are required.
pub const IMPORT_COLUMNS: &[(&str, bool)] = &[
    ("street", true),
    ("city", true),
    ("region", false),
    ("postal_code", false),
    ("country", true),
    ("price", true),
    ("currency", true),
    ("beds", true),
    ("baths", true),
    ("floor_area", true),
    ("area_unit", true),
    ("lot_size", false),
    ("year_built", false),
    ("property_type", true),
    ("status", true),
    ("features", false),
    ("description", false),
    ("agent_name", true),
    ("agent_contact", true),
    ("reference", false),
];

fn row_fields(get: &dyn Fn(&str) -> String) -> Result<PropertyFields> {
    fn number<T: std::str::FromStr>(field: &str, value: &str) -> Result<T> {
        value
            .replace([',', '_'], "")
            .parse()
            .map_err(|_| Error::invalid(field, format!("\"{value}\" is not a number")))
    }
    let optional_number = |field: &str| -> Result<Option<i64>> {
        let v = get(field);
        if v.is_empty() { Ok(None) } else { number(field, &v).map(Some) }
    };
    let input = PropertyIn {
        project_id: None,
        version: None,
        street: get("street"),
        city: get("city"),
        region: get("region"),
        postal_code: get("postal_code"),
        country: get("country"),
        price: number("price", get("price").trim_start_matches(['$', '€', '£']))?,
        currency: get("currency"),
        beds: number("beds", &get("beds"))?,
        baths: number("baths", &get("baths"))?,
        floor_area: number("floor_area", &get("floor_area"))?,
        area_unit: choice("area_unit", &get("area_unit"))?,
        lot_size: optional_number("lot_size")?,
        year_built: optional_number("year_built")?,
        property_type: choice("property_type", &get("property_type"))?,
        status: choice("status", &get("status"))?,
        features: get("features")
            .split('|')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        description: get("description"),
        agent_name: get("agent_name"),
        agent_contact: get("agent_contact"),
        reference: Some(get("reference")),
    };
    check_fields(&input)
}

/// "1,850".
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "$450,000" for USD, "450,000 EUR" otherwise.
pub fn price(amount: i64, currency: &str) -> String {
    let grouped = grouped(amount);
    match currency {
        "USD" => format!("${grouped}"),
        "GBP" => format!("£{grouped}"),
        "EUR" => format!("€{grouped}"),
        other => format!("{grouped} {other}"),
    }
}

pub fn facts_line(beds: i64, baths: f64, floor_area: i64, unit: AreaUnit) -> String {
    let baths = if baths.fract() == 0.0 { format!("{baths:.0}") } else { format!("{baths:.1}") };
    let mut out = format!("{beds} bd · {baths} ba");
    if floor_area > 0 {
        out.push_str(&format!(" · {} {}", grouped(floor_area), unit.symbol()));
    }
    out
}

/// A property's price and facts line, as every page shows them.
#[derive(Debug)]
pub struct PropertyFacts {
    pub price: String,
    pub facts: String,
}

impl PropertyFacts {
    pub fn of(p: &Property) -> Self {
        let f = &p.fields;
        #[allow(clippy::cast_precision_loss)]
        let baths = f.half_baths as f64 / 2.0;
        Self {
            price: price(f.price, &f.currency),
            facts: facts_line(f.beds, baths, f.floor_area, f.area_unit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_grouped_by_thousands() {
        assert_eq!(price(450_000, "USD"), "$450,000");
        assert_eq!(price(1_250_000, "EUR"), "€1,250,000");
        assert_eq!(price(999, "CHF"), "999 CHF");
    }

    const HEADER: &str = "street,city,region,postal_code,country,price,currency,beds,baths,floor_area,area_unit,property_type,status,features,agent_name,agent_contact,reference";

    #[test]
    fn good_rows_are_read_and_bad_ones_named_by_line_and_field() {
        let csv = format!(
            "{HEADER}\n\
             12 Elm Street,Springfield,IL,62704,us,\"450,000\",usd,3,2.5,1850,sqft,single_family,active,Garden|Garage,Dana Realtor,555-0100,MLS-1\n\
             3 Oak Lane,Springfield,IL,62704,US,abc,USD,3,2,1500,sqft,condo,active,,Dana Realtor,555-0100,MLS-2\n\
             4 Pine Road,Springfield,IL,62704,US,300000,USD,3,2.25,1500,sqft,condo,active,,Dana Realtor,555-0100,MLS-3\n\
             5 Ash Court,Springfield,IL,62704,US,300000,USD,3,2,1500,acres,condo,active,,Dana Realtor,555-0100,\n"
        );
        let (rows, refused) = read_rows(csv.as_bytes(), IMPORT_COLUMNS, row_fields).unwrap();
        assert_eq!(rows.len(), 1);
        let (line, first) = &rows[0];
        assert_eq!(*line, 2);
        assert_eq!((first.price, first.country.as_str(), first.currency.as_str()), (450_000, "US", "USD"));
        assert_eq!(first.half_baths, 5);
        assert_eq!(first.features, ["Garden", "Garage"]);
        let problems: Vec<(u64, &str)> = refused.iter().map(|p| (p.line, p.field.as_str())).collect();
        assert_eq!(problems, [(3, "price"), (4, "baths"), (5, "area_unit")]);
    }
}
