//! [`PropertyStore`] for [`SqlStore`]: properties, their photos, search
//! and filters.

use super::*;
use crate::store::{
    AreaUnit, MAX_PHOTOS, NewProperty, NewPropertyPhoto, Property, PropertyFields, PropertyFilter,
    PropertyPhoto, PropertyStatus, PropertyStore, PropertyType,
};

#[derive(FromRow)]
pub(super) struct PropertyRow {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Uuid,
    version: i64,
    street: String,
    city: String,
    region: String,
    postal_code: String,
    country: String,
    price: i64,
    currency: String,
    beds: i64,
    half_baths: i64,
    floor_area: i64,
    area_unit: String,
    lot_size: Option<i64>,
    year_built: Option<i64>,
    property_type: String,
    status: String,
    features: String,
    description: String,
    agent_name: String,
    agent_contact: String,
    reference: Option<String>,
    created_by: Option<Uuid>,
    created_at: Timestamp,
    updated_at: Timestamp,
    cover: Option<Uuid>,
    photos: i64,
    public_slug: Option<String>,
    published_at: Option<Timestamp>,
}

impl TryFrom<PropertyRow> for Property {
    type Error = StoreError;
    fn try_from(r: PropertyRow) -> Result<Property> {
        Ok(Property {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            version: r.version,
            fields: PropertyFields {
                street: r.street,
                city: r.city,
                region: r.region,
                postal_code: r.postal_code,
                country: r.country,
                price: r.price,
                currency: r.currency,
                beds: r.beds,
                half_baths: r.half_baths,
                floor_area: r.floor_area,
                area_unit: r.area_unit.parse::<AreaUnit>().map_err(corrupt("properties.area_unit"))?,
                lot_size: r.lot_size,
                year_built: r.year_built,
                property_type: r
                    .property_type
                    .parse::<PropertyType>()
                    .map_err(corrupt("properties.property_type"))?,
                status: r.status.parse::<PropertyStatus>().map_err(corrupt("properties.status"))?,
                features: serde_json::from_str(&r.features).map_err(corrupt("properties.features"))?,
                description: r.description,
                agent_name: r.agent_name,
                agent_contact: r.agent_contact,
                reference: r.reference,
            },
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            cover: r.cover,
            photos: r.photos,
            public_slug: r.public_slug,
            published_at: r.published_at,
        })
    }
}

pub(super) const PROPERTY_SELECT: &str = "SELECT p.id, p.tenant_id, p.project_id, p.version, p.street, p.city, p.region, \
     p.postal_code, p.country, p.price, p.currency, p.beds, p.half_baths, p.floor_area, p.area_unit, p.lot_size, \
     p.year_built, p.property_type, p.status, p.features, p.description, p.agent_name, p.agent_contact, \
     p.reference, p.created_by, p.created_at, p.updated_at, p.public_slug, p.published_at, \
     (SELECT ph.id FROM property_photos ph WHERE ph.property_id = p.id ORDER BY ph.position LIMIT 1) AS cover, \
     (SELECT COUNT(*) FROM property_photos ph WHERE ph.property_id = p.id) AS photos \
     FROM properties p";

#[derive(FromRow)]
struct PhotoRow {
    id: Uuid,
    property_id: Uuid,
    position: i64,
    alt: String,
    width: i64,
    height: i64,
    bytes: i64,
    created_at: Timestamp,
}

impl From<PhotoRow> for PropertyPhoto {
    fn from(r: PhotoRow) -> Self {
        Self {
            id: r.id,
            property_id: r.property_id,
            position: r.position,
            alt: r.alt,
            width: r.width,
            height: r.height,
            bytes: r.bytes,
            created_at: r.created_at,
        }
    }
}

const PHOTO_SELECT: &str =
    "SELECT id, property_id, position, alt, width, height, bytes, created_at FROM property_photos";

/// `text` as a LIKE pattern that matches it anywhere, its wildcards taken
/// literally (with `ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

const REFERENCE_TAKEN: &str = "another property of this project has this reference";

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn fetch_property(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Property>> {
        let row: Option<PropertyRow> =
            sqlx::query_as(sql(&[PROPERTY_SELECT, " WHERE p.tenant_id = $1 AND p.id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(Property::try_from).transpose()
    }

    /// Locks a property's row for a change; `NotFound` for another
    /// tenant's. Returns its version.
    async fn lock_property(conn: &mut DB::Connection, tenant_id: Uuid, id: Uuid) -> Result<i64> {
        let version: Option<i64> = sqlx::query_scalar(sql(&[
            "SELECT version FROM properties WHERE tenant_id = $1 AND id = $2",
            DB::FOR_UPDATE,
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        version.ok_or(StoreError::NotFound)
    }

    async fn fetch_photos(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        property_id: Uuid,
    ) -> Result<Vec<PropertyPhoto>> {
        let rows: Vec<PhotoRow> = sqlx::query_as(sql(&[
            PHOTO_SELECT,
            " WHERE tenant_id = $1 AND property_id = $2 ORDER BY position, id",
        ]))
        .bind(tenant_id)
        .bind(property_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(PropertyPhoto::from).collect())
    }

    /// Writes positions 0.. in the order of `ids`.
    async fn renumber_photos(conn: &mut DB::Connection, ids: &[Uuid]) -> Result<()> {
        for (position, id) in ids.iter().enumerate() {
            sqlx::query("UPDATE property_photos SET position = $2 WHERE id = $1")
                .bind(*id)
                .bind(i64::try_from(position).unwrap_or(i64::MAX))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<DB> PropertyStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn property(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Property>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_property(&mut conn, tenant_id, id).await
    }

    async fn properties(
        &self,
        tenant_id: Uuid,
        filter: &PropertyFilter,
        page: PageRequest,
    ) -> Result<Page<Property>> {
        let rows: Vec<PropertyRow> = sqlx::query_as(sql(&[
            PROPERTY_SELECT,
            " WHERE p.tenant_id = $1 AND ($2 IS NULL OR p.project_id = $2) AND ($3 IS NULL OR p.status = $3) \
             AND ($4 IS NULL OR p.city_key = $4) AND ($5 IS NULL OR p.price >= $5) \
             AND ($6 IS NULL OR p.price <= $6) AND ($7 IS NULL OR p.search_text LIKE $7 ESCAPE '\\') \
             AND ($8 IS NULL OR p.id < $8) ORDER BY p.id DESC LIMIT $9",
        ]))
        .bind(tenant_id)
        .bind(filter.project_id)
        .bind(filter.status.map(|s| s.as_str().to_owned()))
        .bind(filter.city.clone())
        .bind(filter.min_price)
        .bind(filter.max_price)
        .bind(filter.text.as_deref().map(contains_pattern))
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |p: &Property| p.id))
    }

    async fn create_properties(&self, new: &[NewProperty], audit: &NewAuditEvent) -> Result<Vec<Property>> {
        let mut tx = self.write.begin().await?;
        let mut projects: Vec<Uuid> = Vec::new();
        for p in new {
            if !projects.contains(&p.project_id) {
                let found: Option<Uuid> =
                    sqlx::query_scalar("SELECT id FROM projects WHERE tenant_id = $1 AND id = $2")
                        .bind(p.tenant_id)
                        .bind(p.project_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                found.ok_or(StoreError::NotFound)?;
                projects.push(p.project_id);
            }
            let f = &p.fields;
            sqlx::query(
                "INSERT INTO properties (id, tenant_id, project_id, version, street, city, city_key, region, \
                 postal_code, country, price, currency, beds, half_baths, floor_area, area_unit, lot_size, \
                 year_built, property_type, status, features, description, agent_name, agent_contact, reference, \
                 search_text, created_by, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, \
                 $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $27)",
            )
            .bind(p.id)
            .bind(p.tenant_id)
            .bind(p.project_id)
            .bind(f.street.as_str())
            .bind(f.city.as_str())
            .bind(f.city.to_lowercase())
            .bind(f.region.as_str())
            .bind(f.postal_code.as_str())
            .bind(f.country.as_str())
            .bind(f.price)
            .bind(f.currency.as_str())
            .bind(f.beds)
            .bind(f.half_baths)
            .bind(f.floor_area)
            .bind(f.area_unit.as_str())
            .bind(f.lot_size)
            .bind(f.year_built)
            .bind(f.property_type.as_str())
            .bind(f.status.as_str())
            .bind(to_json(&f.features)?)
            .bind(f.description.as_str())
            .bind(f.agent_name.as_str())
            .bind(f.agent_contact.as_str())
            .bind(f.reference.clone())
            .bind(f.search_text())
            .bind(p.created_by)
            .bind(audit.occurred_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_violation(e, "reference_taken", REFERENCE_TAKEN))?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        let mut created = Vec::with_capacity(new.len());
        for p in new {
            created
                .push(Self::fetch_property(&mut tx, p.tenant_id, p.id).await?.ok_or(StoreError::NotFound)?);
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn update_property(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        expected_version: Option<i64>,
        f: &PropertyFields,
        audit: &NewAuditEvent,
    ) -> Result<Property> {
        let mut tx = self.write.begin().await?;
        let version = Self::lock_property(&mut tx, tenant_id, id).await?;
        if let Some(expected) = expected_version
            && expected != version
        {
            return Err(StoreError::Conflict {
                code: "version_changed",
                message: format!(
                    "the property changed since you opened it (version {expected}, now {version}); reload and apply your change again"
                ),
            });
        }
        sqlx::query(
            "UPDATE properties SET version = version + 1, street = $3, city = $4, city_key = $5, region = $6, \
             postal_code = $7, country = $8, price = $9, currency = $10, beds = $11, half_baths = $12, \
             floor_area = $13, area_unit = $14, lot_size = $15, year_built = $16, property_type = $17, status = $18, \
             features = $19, description = $20, agent_name = $21, agent_contact = $22, reference = $23, \
             search_text = $24, updated_at = $25 WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(f.street.as_str())
        .bind(f.city.as_str())
        .bind(f.city.to_lowercase())
        .bind(f.region.as_str())
        .bind(f.postal_code.as_str())
        .bind(f.country.as_str())
        .bind(f.price)
        .bind(f.currency.as_str())
        .bind(f.beds)
        .bind(f.half_baths)
        .bind(f.floor_area)
        .bind(f.area_unit.as_str())
        .bind(f.lot_size)
        .bind(f.year_built)
        .bind(f.property_type.as_str())
        .bind(f.status.as_str())
        .bind(to_json(&f.features)?)
        .bind(f.description.as_str())
        .bind(f.agent_name.as_str())
        .bind(f.agent_contact.as_str())
        .bind(f.reference.clone())
        .bind(f.search_text())
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_violation(e, "reference_taken", REFERENCE_TAKEN))?;
        Self::insert_audit(&mut tx, audit).await?;
        let property = Self::fetch_property(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(property)
    }

    async fn delete_property(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<Vec<Uuid>> {
        let mut tx = self.write.begin().await?;
        Self::lock_property(&mut tx, tenant_id, id).await?;
        let photos = Self::fetch_photos(&mut tx, tenant_id, id).await?;
        sqlx::query("DELETE FROM properties WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(photos.into_iter().map(|p| p.id).collect())
    }

    async fn property_photos(&self, tenant_id: Uuid, property_id: Uuid) -> Result<Vec<PropertyPhoto>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_photos(&mut conn, tenant_id, property_id).await
    }

    async fn add_property_photo(
        &self,
        photo: &NewPropertyPhoto,
        audit: &NewAuditEvent,
    ) -> Result<PropertyPhoto> {
        let mut tx = self.write.begin().await?;
        Self::lock_property(&mut tx, photo.tenant_id, photo.property_id).await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM property_photos WHERE property_id = $1")
            .bind(photo.property_id)
            .fetch_one(&mut *tx)
            .await?;
        if count >= MAX_PHOTOS {
            return Err(StoreError::Conflict {
                code: "too_many_photos",
                message: format!("a property holds at most {MAX_PHOTOS} photos; delete one first"),
            });
        }
        let row: PhotoRow = sqlx::query_as(
            "INSERT INTO property_photos (id, tenant_id, property_id, position, alt, width, height, bytes, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             RETURNING id, property_id, position, alt, width, height, bytes, created_at",
        )
        .bind(photo.id)
        .bind(photo.tenant_id)
        .bind(photo.property_id)
        .bind(count)
        .bind(photo.alt.as_str())
        .bind(photo.width)
        .bind(photo.height)
        .bind(photo.bytes)
        .bind(audit.occurred_at)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(row.into())
    }

    async fn update_property_photo(
        &self,
        tenant_id: Uuid,
        property_id: Uuid,
        photo_id: Uuid,
        alt: Option<&str>,
        position: Option<i64>,
        audit: &NewAuditEvent,
    ) -> Result<Vec<PropertyPhoto>> {
        let mut tx = self.write.begin().await?;
        Self::lock_property(&mut tx, tenant_id, property_id).await?;
        let photos = Self::fetch_photos(&mut tx, tenant_id, property_id).await?;
        if !photos.iter().any(|p| p.id == photo_id) {
            return Err(StoreError::NotFound);
        }
        if let Some(alt) = alt {
            sqlx::query("UPDATE property_photos SET alt = $2 WHERE id = $1")
                .bind(photo_id)
                .bind(alt)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(position) = position {
            let mut order: Vec<Uuid> = photos.iter().map(|p| p.id).filter(|id| *id != photo_id).collect();
            let at = usize::try_from(position.max(0)).unwrap_or(usize::MAX).min(order.len());
            order.insert(at, photo_id);
            Self::renumber_photos(&mut tx, &order).await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        let photos = Self::fetch_photos(&mut tx, tenant_id, property_id).await?;
        tx.commit().await?;
        Ok(photos)
    }

    async fn delete_property_photo(
        &self,
        tenant_id: Uuid,
        property_id: Uuid,
        photo_id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::lock_property(&mut tx, tenant_id, property_id).await?;
        let deleted =
            sqlx::query("DELETE FROM property_photos WHERE tenant_id = $1 AND property_id = $2 AND id = $3")
                .bind(tenant_id)
                .bind(property_id)
                .bind(photo_id)
                .execute(&mut *tx)
                .await?;
        if DB::rows_affected(&deleted) != 1 {
            return Err(StoreError::NotFound);
        }
        let rest: Vec<Uuid> =
            Self::fetch_photos(&mut tx, tenant_id, property_id).await?.iter().map(|p| p.id).collect();
        Self::renumber_photos(&mut tx, &rest).await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }
}
