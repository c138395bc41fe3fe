//! Persistence of real-estate properties: the record (versioned: every
//! change of its fields adds one to `version`), its photos (their order,
//! cover first, and alt text; the files themselves are in the file
//! storage), search and filters, and a CSV import written in one
//! transaction.
//!
//! Every read and change names the tenant, so another tenant's property is
//! a missing one.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{NewAuditEvent, Page, PageRequest, Result};
use crate::domain::Timestamp;

/// Where a property is in its sale.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PropertyStatus {
    ComingSoon,
    Active,
    Pending,
    Sold,
    OffMarket,
}

impl PropertyStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// For people: "Coming soon".
    pub fn label(self) -> &'static str {
        match self {
            Self::ComingSoon => "Coming soon",
            Self::Active => "Active",
            Self::Pending => "Pending",
            Self::Sold => "Sold",
            Self::OffMarket => "Off market",
        }
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PropertyType {
    SingleFamily,
    Condo,
    Townhouse,
    MultiFamily,
    Land,
    Commercial,
    Other,
}

impl PropertyType {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::SingleFamily => "Single-family home",
            Self::Condo => "Condominium",
            Self::Townhouse => "Townhouse",
            Self::MultiFamily => "Multi-family",
            Self::Land => "Land",
            Self::Commercial => "Commercial",
            Self::Other => "Other",
        }
    }
}

/// The unit of the floor area and the lot.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
    strum::EnumIter,
)]
pub enum AreaUnit {
    #[serde(rename = "sqft")]
    #[strum(serialize = "sqft")]
    SquareFeet,
    #[serde(rename = "m2")]
    #[strum(serialize = "m2")]
    SquareMetres,
}

impl AreaUnit {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// "sq ft" or "m²".
    pub fn symbol(self) -> &'static str {
        match self {
            Self::SquareFeet => "sq ft",
            Self::SquareMetres => "m²",
        }
    }
}

/// A property's fields, as checked by the service.
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyFields {
    pub street: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// Whole units of `currency`.
    pub price: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    pub beds: i64,
    /// Bathrooms times two (a half bath is 1).
    pub half_baths: i64,
    pub floor_area: i64,
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
}

impl PropertyFields {
    /// "12 Elm Street, Springfield, IL 62704".
    pub fn address(&self) -> String {
        let mut out = format!("{}, {}", self.street, self.city);
        let tail = [self.region.as_str(), self.postal_code.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        if !tail.is_empty() {
            out.push_str(", ");
            out.push_str(&tail);
        }
        out
    }

    /// What search matches against, lower case.
    pub fn search_text(&self) -> String {
        [
            self.street.as_str(),
            self.city.as_str(),
            self.region.as_str(),
            self.postal_code.as_str(),
            self.reference.as_deref().unwrap_or(""),
        ]
        .join(" ")
        .to_lowercase()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub version: i64,
    pub fields: PropertyFields,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The cover photo (the first), if any.
    pub cover: Option<Uuid>,
    pub photos: i64,
    /// The public page's slug, once it was first published.
    pub public_slug: Option<String>,
    /// Set while the public page is published.
    pub published_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertyPhoto {
    pub id: Uuid,
    pub property_id: Uuid,
    /// 0 is the cover.
    pub position: i64,
    pub alt: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
    pub created_at: Timestamp,
}

/// Which properties a list shows.
#[derive(Debug, Clone, Default)]
pub struct PropertyFilter {
    pub project_id: Option<Uuid>,
    pub status: Option<PropertyStatus>,
    /// Lower case; the whole city name.
    pub city: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    /// Lower case; a part of the street, city, region, postal code or
    /// reference.
    pub text: Option<String>,
}

/// A property to create.
#[derive(Debug, Clone)]
pub struct NewProperty {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub fields: PropertyFields,
    pub created_by: Option<Uuid>,
}

/// A photo to add (its files are stored already).
#[derive(Debug, Clone)]
pub struct NewPropertyPhoto {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub property_id: Uuid,
    pub alt: String,
    pub width: i64,
    pub height: i64,
    pub bytes: i64,
}

/// At most this many photos on one property.
pub const MAX_PHOTOS: i64 = 40;

#[async_trait]
pub trait PropertyStore {
    async fn property(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Property>>;
    /// Newest first.
    async fn properties(
        &self,
        tenant_id: Uuid,
        filter: &PropertyFilter,
        page: PageRequest,
    ) -> Result<Page<Property>>;
    /// Creates properties in one transaction: all or none. `Conflict`
    /// (`reference_taken`) names the first reference already used in its
    /// project; `NotFound` when a project is not the tenant's.
    async fn create_properties(&self, new: &[NewProperty], audit: &NewAuditEvent) -> Result<Vec<Property>>;
    /// Replaces the fields when the property is at `expected_version`
    /// (`Conflict` `version_changed` otherwise) and adds one to it.
    async fn update_property(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        expected_version: Option<i64>,
        fields: &PropertyFields,
        audit: &NewAuditEvent,
    ) -> Result<Property>;
    /// Deletes the property and its photo rows; returns the photos' ids so
    /// their files can be removed.
    async fn delete_property(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<Vec<Uuid>>;

    /// A property's photos, cover first.
    async fn property_photos(&self, tenant_id: Uuid, property_id: Uuid) -> Result<Vec<PropertyPhoto>>;
    /// Adds a photo at the end (`Conflict` at [`MAX_PHOTOS`]).
    async fn add_property_photo(
        &self,
        photo: &NewPropertyPhoto,
        audit: &NewAuditEvent,
    ) -> Result<PropertyPhoto>;
    /// Changes a photo's alt text and, with `position`, moves it there
    /// (0 makes it the cover); the others keep their order.
    async fn update_property_photo(
        &self,
        tenant_id: Uuid,
        property_id: Uuid,
        photo_id: Uuid,
        alt: Option<&str>,
        position: Option<i64>,
        audit: &NewAuditEvent,
    ) -> Result<Vec<PropertyPhoto>>;
    async fn delete_property_photo(
        &self,
        tenant_id: Uuid,
        property_id: Uuid,
        photo_id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<()>;
}
