//! Properties: the list (cover photos, search and filters), creating and
//! editing one, its page (photos with their order, cover and alt text,
//! the facts, the listing kits made from it), and the CSV import with its
//! report.

use std::collections::HashMap;

use askama::Template;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::csv_import::ImportPage;
use super::home::ActivityRow;
use super::page::{FormErrors, Shell, UiError, every, number, plain_number, render_form, request, see_other};
use super::session::{CSRF_FIELD, Path, Query, Submit, TenantPage, check_csrf};
use super::view::When;
use crate::api::ApiState;
use crate::api::pagination::encode_cursor;
use crate::domain::Permission;
use crate::error::Error;
use crate::service::{
    CreateActivity, IMPORT_COLUMNS, ImportReport, MAX_IMPORT_BYTES, PropertyIn, PropertyParams, PropertyView,
    UpdatePhoto, facts_line, grouped, price,
};
use crate::store::{ActivityFilter, AreaUnit, PageRequest, PropertyStatus, PropertyType};

/// Cards a list page shows.
const PAGE_SIZE: u32 = 24;

/// A choice in a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn choices<T: Copy + PartialEq>(
    all: &[T],
    current: Option<&str>,
    value: fn(T) -> &'static str,
    label: fn(T) -> &'static str,
) -> Vec<Choice> {
    all.iter()
        .map(|t| Choice {
            value: value(*t).into(),
            label: label(*t).into(),
            selected: current == Some(value(*t)),
        })
        .collect()
}

const STATUSES: [PropertyStatus; 5] = [
    PropertyStatus::ComingSoon,
    PropertyStatus::Active,
    PropertyStatus::Pending,
    PropertyStatus::Sold,
    PropertyStatus::OffMarket,
];
const TYPES: [PropertyType; 7] = [
    PropertyType::SingleFamily,
    PropertyType::Condo,
    PropertyType::Townhouse,
    PropertyType::MultiFamily,
    PropertyType::Land,
    PropertyType::Commercial,
    PropertyType::Other,
];

/// "3 bd · 2.5 ba · 1,850 sq ft".
fn facts(p: &PropertyView) -> String {
    facts_line(p.beds, p.baths, p.floor_area, p.area_unit)
}

struct PropertyCard {
    href: String,
    address: String,
    price: String,
    facts: String,
    status: &'static str,
    status_class: &'static str,
    cover: Option<String>,
    cover_alt: String,
}

fn status_class(status: PropertyStatus) -> &'static str {
    match status {
        PropertyStatus::Active => "good",
        PropertyStatus::ComingSoon | PropertyStatus::Pending => "warn",
        PropertyStatus::Sold | PropertyStatus::OffMarket => "",
    }
}

fn card(page: &TenantPage, p: &PropertyView) -> PropertyCard {
    PropertyCard {
        href: page.path(&format!("/properties/{}", p.id)),
        address: p.address.clone(),
        price: price(p.price, &p.currency),
        facts: facts(p),
        status: p.status.label(),
        status_class: status_class(p.status),
        cover: p.cover_thumbnail_url.clone(),
        cover_alt: format!("Cover photo of {}", p.street),
    }
}

/// The list's filters, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct ListFilter {
    q: Option<String>,
    status: Option<String>,
    city: Option<String>,
    min_price: Option<String>,
    max_price: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "properties.html")]
struct PropertiesPage {
    shell: Shell,
    cards: Vec<PropertyCard>,
    filter: ListFilter,
    statuses: Vec<Choice>,
    errors: FormErrors,
    new_href: Option<String>,
    import_href: Option<String>,
    next: Option<String>,
    first: Option<String>,
    filtered: bool,
}

impl PropertiesPage {
    fn value(&self, field: &str) -> &str {
        let f = &self.filter;
        match field {
            "q" => f.q.as_deref(),
            "city" => f.city.as_deref(),
            "min_price" => f.min_price.as_deref(),
            "max_price" => f.max_price.as_deref(),
            _ => None,
        }
        .unwrap_or("")
    }
}

pub async fn list(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(filter): Query<ListFilter>,
) -> Result<Response, UiError> {
    let mut errors = FormErrors::default();
    let mut price_of =
        |field: &str, value: Option<&str>| number(&mut errors, field, value).and_then(|v| v.as_i64());
    let min_price = price_of("min_price", filter.min_price.as_deref());
    let max_price = price_of("max_price", filter.max_price.as_deref());
    let status = match filter.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<PropertyStatus>() {
            Ok(status) => Some(status),
            Err(_) => {
                errors.add("status", "choose a status from the list");
                None
            }
        },
    };
    let page_request = super::page::After { cursor: filter.cursor.clone() }.page(PAGE_SIZE)?;
    let params = PropertyParams {
        status,
        city: filter.city.clone(),
        min_price,
        max_price,
        q: filter.q.clone(),
        ..PropertyParams::default()
    };
    let found = match state.app.properties(&page.access, params, page_request).await {
        Ok(found) => found,
        Err(e) => {
            errors = FormErrors::from_error(e)?;
            crate::store::Page { items: Vec::new(), next: None }
        }
    };
    // The filters, kept in the pages' links.
    let mut query: Vec<(String, String)> = Vec::new();
    for (key, value) in [
        ("q", &filter.q),
        ("status", &filter.status),
        ("city", &filter.city),
        ("min_price", &filter.min_price),
        ("max_price", &filter.max_price),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
            query.push((key.into(), v.into()));
        }
    }
    let link = |cursor: Option<String>| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &query {
            serializer.append_pair(k, v);
        }
        if let Some(c) = cursor {
            serializer.append_pair("cursor", &c);
        }
        let q = serializer.finish();
        if q.is_empty() { page.path("/properties") } else { format!("{}?{q}", page.path("/properties")) }
    };
    let next = found.next.map(|id| link(Some(encode_cursor(id))));
    let first = filter.cursor.as_ref().map(|_| link(None));
    let can_write = page.can(Permission::ActivitiesCreate);
    let view = PropertiesPage {
        cards: found.items.iter().map(|p| card(&page, p)).collect(),
        statuses: choices(&STATUSES, filter.status.as_deref(), PropertyStatus::as_str, PropertyStatus::label),
        filtered: !query.is_empty(),
        filter,
        errors,
        new_href: can_write.then(|| page.path("/properties/new")),
        import_href: can_write.then(|| page.path("/properties/import")),
        next,
        first,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

/// The property form's fields, as typed.
#[derive(Debug, Default, Deserialize)]
pub struct PropertyForm {
    project_id: Option<String>,
    version: Option<String>,
    street: Option<String>,
    city: Option<String>,
    region: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
    price: Option<String>,
    currency: Option<String>,
    beds: Option<String>,
    baths: Option<String>,
    floor_area: Option<String>,
    area_unit: Option<String>,
    lot_size: Option<String>,
    year_built: Option<String>,
    property_type: Option<String>,
    status: Option<String>,
    features: Option<String>,
    description: Option<String>,
    agent_name: Option<String>,
    agent_contact: Option<String>,
    reference: Option<String>,
}

impl PropertyForm {
    fn of(p: &PropertyView) -> Self {
        let baths =
            if p.baths.fract() == 0.0 { format!("{:.0}", p.baths) } else { format!("{:.1}", p.baths) };
        Self {
            project_id: Some(p.project_id.to_string()),
            version: Some(p.version.to_string()),
            street: Some(p.street.clone()),
            city: Some(p.city.clone()),
            region: Some(p.region.clone()),
            postal_code: Some(p.postal_code.clone()),
            country: Some(p.country.clone()),
            price: Some(p.price.to_string()),
            currency: Some(p.currency.clone()),
            beds: Some(p.beds.to_string()),
            baths: Some(baths),
            floor_area: Some(p.floor_area.to_string()),
            area_unit: Some(p.area_unit.as_str().into()),
            lot_size: p.lot_size.map(|l| l.to_string()),
            year_built: p.year_built.map(|y| y.to_string()),
            property_type: Some(p.property_type.as_str().into()),
            status: Some(p.status.as_str().into()),
            features: Some(p.features.join("\n")),
            description: Some(p.description.clone()),
            agent_name: Some(p.agent_name.clone()),
            agent_contact: Some(p.agent_contact.clone()),
            reference: p.reference.clone(),
        }
    }

    /// The API's request, or the form's errors.
    fn request(&self) -> Result<PropertyIn, FormErrors> {
        let mut errors = FormErrors::default();
        let text = |v: &Option<String>| json!(v.as_deref().unwrap_or("").trim());
        let whole = |errors: &mut FormErrors, field: &str, v: &Option<String>| {
            number(errors, field, v.as_deref()).unwrap_or(serde_json::Value::Null)
        };
        let baths = match self.baths.as_deref().map(str::trim).filter(|b| !b.is_empty()) {
            None => json!(0),
            Some(b) => match plain_number(b).parse::<f64>() {
                Ok(n) if n.is_finite() => json!(n),
                _ => {
                    errors.add("baths", "must be a number, like 2 or 2.5");
                    serde_json::Value::Null
                }
            },
        };
        let features: Vec<&str> =
            self.features.as_deref().unwrap_or("").lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let body = json!({
            "project_id": self.project_id.as_deref().filter(|p| !p.is_empty()),
            "version": self.version.as_deref().and_then(|v| v.parse::<i64>().ok()),
            "street": text(&self.street),
            "city": text(&self.city),
            "region": text(&self.region),
            "postal_code": text(&self.postal_code),
            "country": text(&self.country),
            "price": whole(&mut errors, "price", &self.price),
            "currency": text(&self.currency),
            "beds": whole(&mut errors, "beds", &self.beds),
            "baths": baths,
            "floor_area": whole(&mut errors, "floor_area", &self.floor_area),
            "area_unit": self.area_unit.as_deref().unwrap_or("sqft"),
            "lot_size": whole(&mut errors, "lot_size", &self.lot_size),
            "year_built": whole(&mut errors, "year_built", &self.year_built),
            "property_type": self.property_type.as_deref().unwrap_or("single_family"),
            "status": self.status.as_deref().unwrap_or("active"),
            "features": features,
            "description": text(&self.description),
            "agent_name": text(&self.agent_name),
            "agent_contact": text(&self.agent_contact),
            "reference": self.reference.as_deref().map(str::trim).filter(|r| !r.is_empty()),
        });
        for required in ["price", "beds", "floor_area"] {
            if body[required].is_null() && errors.get(required).is_empty() {
                errors.add(required, "is required");
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        request::<PropertyIn>(&body).map_err(|e| FormErrors::from_error(e).unwrap_or_default())
    }
}

#[derive(Template)]
#[template(path = "property_form.html")]
struct PropertyFormPage {
    shell: Shell,
    heading: &'static str,
    action: String,
    cancel: String,
    form: PropertyForm,
    errors: FormErrors,
    projects: Vec<Choice>,
    statuses: Vec<Choice>,
    types: Vec<Choice>,
    units: Vec<Choice>,
}

impl PropertyFormPage {
    fn value(&self, field: &str) -> &str {
        let f = &self.form;
        match field {
            "street" => f.street.as_deref(),
            "city" => f.city.as_deref(),
            "region" => f.region.as_deref(),
            "postal_code" => f.postal_code.as_deref(),
            "country" => f.country.as_deref(),
            "price" => f.price.as_deref(),
            "currency" => f.currency.as_deref(),
            "beds" => f.beds.as_deref(),
            "baths" => f.baths.as_deref(),
            "floor_area" => f.floor_area.as_deref(),
            "lot_size" => f.lot_size.as_deref(),
            "year_built" => f.year_built.as_deref(),
            "features" => f.features.as_deref(),
            "description" => f.description.as_deref(),
            "agent_name" => f.agent_name.as_deref(),
            "agent_contact" => f.agent_contact.as_deref(),
            "reference" => f.reference.as_deref(),
            "version" => f.version.as_deref(),
            _ => None,
        }
        .unwrap_or("")
    }
}

async fn form_page(
    state: &ApiState,
    page: TenantPage,
    heading: &'static str,
    action: String,
    cancel: String,
    form: PropertyForm,
    errors: FormErrors,
) -> Result<Response, UiError> {
    let access = &page.access;
    let projects = every(|p| state.app.projects(access, p)).await?;
    let current_project = form.project_id.clone();
    let view = PropertyFormPage {
        projects: projects
            .iter()
            .map(|p| Choice {
                value: p.id.to_string(),
                label: p.name.to_string(),
                selected: current_project.as_deref() == Some(p.id.to_string().as_str()),
            })
            .collect(),
        statuses: choices(
            &STATUSES,
            form.status.as_deref().or(Some("active")),
            PropertyStatus::as_str,
            PropertyStatus::label,
        ),
        types: choices(
            &TYPES,
            form.property_type.as_deref().or(Some("single_family")),
            PropertyType::as_str,
            PropertyType::label,
        ),
        units: choices(
            &[AreaUnit::SquareFeet, AreaUnit::SquareMetres],
            form.area_unit.as_deref().or(Some("sqft")),
            AreaUnit::as_str,
            AreaUnit::symbol,
        ),
        heading,
        action,
        cancel,
        form,
        errors,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

#[derive(Debug, Default, Deserialize)]
pub struct NewQuery {
    project_id: Option<String>,
}

pub async fn new_form(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(q): Query<NewQuery>,
) -> Result<Response, UiError> {
    page.access.require(Permission::ActivitiesCreate)?;
    let form = PropertyForm {
        project_id: q.project_id,
        country: Some("US".into()),
        currency: Some("USD".into()),
        ..PropertyForm::default()
    };
    let (action, cancel) = (page.path("/properties/new"), page.path("/properties"));
    form_page(&state, page, "New property", action, cancel, form, FormErrors::default()).await
}

pub async fn create(
    State(state): State<ApiState>,
    submit: Submit<PropertyForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let result = match form.request() {
        Ok(req) => state.app.create_property(&page.access, req).await.map_err(FormErrors::from_error),
        Err(errors) => Err(Ok(errors)),
    };
    match result {
        Ok(created) => Ok(see_other(&page.path(&format!("/properties/{}", created.id)))),
        Err(errors) => {
            let (action, cancel) = (page.path("/properties/new"), page.path("/properties"));
            form_page(&state, page, "New property", action, cancel, form, errors?).await
        }
    }
}

pub async fn edit_form(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, property_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, UiError> {
    let property = state.app.property(&page.access, property_id).await?;
    page.access.require(Permission::ActivitiesUpdate)?;
    let action = page.path(&format!("/properties/{property_id}/edit"));
    let cancel = page.path(&format!("/properties/{property_id}"));
    form_page(
        &state,
        page,
        "Edit property",
        action,
        cancel,
        PropertyForm::of(&property),
        FormErrors::default(),
    )
    .await
}

pub async fn update(
    State(state): State<ApiState>,
    Path((_, property_id)): Path<(Uuid, Uuid)>,
    submit: Submit<PropertyForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let result = match form.request() {
        Ok(req) => {
            state.app.update_property(&page.access, property_id, req).await.map_err(FormErrors::from_error)
        }
        Err(errors) => Err(Ok(errors)),
    };
    match result {
        Ok(_) => Ok(see_other(&page.path(&format!("/properties/{property_id}")))),
        Err(errors) => {
            let action = page.path(&format!("/properties/{property_id}/edit"));
            let cancel = page.path(&format!("/properties/{property_id}"));
            form_page(&state, page, "Edit property", action, cancel, form, errors?).await
        }
    }
}

pub async fn delete(
    State(state): State<ApiState>,
    Path((_, property_id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.delete_property(&page.access, property_id).await?;
    Ok(see_other(&page.path("/properties")))
}

struct PhotoRow {
    id: Uuid,
    src: String,
    full: String,
    alt: String,
    cover: bool,
    position: i64,
    last: bool,
    action: String,
    delete_action: String,
}

#[derive(Template)]
#[template(path = "property.html")]
struct PropertyPage {
    shell: Shell,
    p: PropertyView,
    price: String,
    facts: String,
    type_label: &'static str,
    /// "1,850 sq ft".
    area: String,
    lot: Option<String>,
    status_label: &'static str,
    status_class: &'static str,
    project_name: String,
    project_href: String,
    photos: Vec<PhotoRow>,
    activities: Vec<ActivityRow>,
    /// The newest approved kit's flyer, when there is one.
    flyer_href: Option<String>,
    can_write: bool,
    edit_href: String,
    delete_action: String,
    upload_action: String,
    kit_action: String,
    publish_action: String,
    /// The public page's full address while published.
    public_url: Option<String>,
    can_publish: bool,
    leads: Vec<(String, String, i64, &'static str)>,
    leads_href: String,
    errors: FormErrors,
    updated: When,
}

pub(super) async fn property_page(
    state: &ApiState,
    page: TenantPage,
    property_id: Uuid,
    errors: FormErrors,
) -> Result<Response, UiError> {
    let p = state.app.property(&page.access, property_id).await?;
    let project = state.app.project(&page.access, p.project_id).await?;
    let kits = state
        .app
        .activities_page(
            &page.access,
            p.project_id,
            ActivityFilter { property_id: Some(property_id), ..ActivityFilter::default() },
            PageRequest { after: None, limit: 50 },
        )
        .await?;
    let names: HashMap<Uuid, String> = HashMap::from([(project.id, project.name.to_string())]);
    let base = format!("/properties/{property_id}/photos");
    let count = p.photos.len();
    let photos = p
        .photos
        .iter()
        .enumerate()
        .map(|(i, ph)| PhotoRow {
            id: ph.id,
            src: ph.thumbnail_url.clone(),
            full: ph.url.clone(),
            alt: ph.alt.clone(),
            cover: ph.cover,
            position: ph.position,
            last: i + 1 == count,
            action: page.path(&format!("{base}/{}", ph.id)),
            delete_action: page.path(&format!("{base}/{}/delete", ph.id)),
        })
        .collect();
    let view = PropertyPage {
        price: price(p.price, &p.currency),
        facts: facts(&p),
        type_label: p.property_type.label(),
        area: format!("{} {}", grouped(p.floor_area), p.area_unit.symbol()),
        lot: p.lot_size.map(|l| format!("{} {}", grouped(l), p.area_unit.symbol())),
        status_label: p.status.label(),
        status_class: status_class(p.status),
        project_name: project.name.to_string(),
        project_href: page.path(&format!("/projects/{}", project.id)),
        photos,
        activities: kits.items.iter().map(|a| ActivityRow::of(&page, a, &names)).collect(),
        flyer_href: kits
            .items
            .iter()
            .any(|a| a.approved_at.is_some() && a.kind == crate::store::ActivityKind::ListingKit)
            .then(|| page.path(&format!("/properties/{property_id}/flyer.pdf"))),
        can_write: page.can(Permission::ActivitiesUpdate),
        edit_href: page.path(&format!("/properties/{property_id}/edit")),
        delete_action: page.path(&format!("/properties/{property_id}/delete")),
        upload_action: page.path(&base),
        kit_action: page.path(&format!("/properties/{property_id}/listing-kit")),
        publish_action: page.path(&format!("/properties/{property_id}/publication")),
        public_url: p.public_path.clone(),
        can_publish: matches!(p.status, PropertyStatus::Active | PropertyStatus::ComingSoon),
        leads: super::leads::property_leads(state, &page, property_id).await?,
        leads_href: page.path(&format!("/leads?property_id={property_id}")),
        errors,
        updated: When::of(p.updated_at),
        p,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

pub async fn show(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, property_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, UiError> {
    property_page(&state, page, property_id, FormErrors::default()).await
}

/// The text fields of a multipart form and its one file, the CSRF token
/// checked before a byte of the file is kept.
pub(super) async fn multipart_form(
    state: &ApiState,
    page: &TenantPage,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
    limit: usize,
) -> Result<(HashMap<String, String>, Option<Vec<u8>>, FormErrors), UiError> {
    let mut multipart = multipart.map_err(|_| UiError::bad_request("the form could not be read"))?;
    let unreadable = |_| UiError::bad_request("the upload could not be read; try again");
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut file = None;
    let mut errors = FormErrors::default();
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let csrf = fields.get(CSRF_FIELD).cloned().unwrap_or_default();
            check_csrf(state, &page.browser, headers, &[(CSRF_FIELD.to_owned(), csrf)])?;
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
            if !errors.is_empty() {
                break;
            }
            file = Some(bytes).filter(|b| !b.is_empty());
        } else {
            let text = field.text().await.map_err(unreadable)?;
            if text.len() > 10_000 {
                return Err(UiError::bad_request("a field of the form is too long"));
            }
            fields.insert(name, text);
        }
    }
    let csrf = fields.get(CSRF_FIELD).cloned().unwrap_or_default();
    check_csrf(state, &page.browser, headers, &[(CSRF_FIELD.to_owned(), csrf)])?;
    Ok((fields, file, errors))
}

pub async fn upload_photo(
    State(state): State<ApiState>,
    page: TenantPage,
    headers: HeaderMap,
    Path((_, property_id)): Path<(Uuid, Uuid)>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, UiError> {
    let (fields, file, mut errors) =
        multipart_form(&state, &page, &headers, multipart, crate::images::MAX_PHOTO_BYTES).await?;
    if errors.is_empty() {
        match file {
            None => errors.add("file", "choose a photo to upload"),
            Some(bytes) => {
                let alt = fields.get("alt").cloned();
                match state.app.add_property_photo(&page.access, property_id, bytes, alt).await {
                    Ok(_) => return Ok(see_other(&page.path(&format!("/properties/{property_id}#photos")))),
                    Err(e @ (Error::Forbidden(_) | Error::NotFound(_))) => return Err(e.into()),
                    Err(e) => errors = FormErrors::from_error(e)?,
                }
            }
        }
    }
    property_page(&state, page, property_id, errors).await
}

#[derive(Debug, Deserialize)]
pub struct PhotoForm {
    alt: Option<String>,
    /// `cover`, `earlier` or `later`.
    r#move: Option<String>,
    /// The photo's place now.
    position: Option<String>,
}

pub async fn update_photo(
    State(state): State<ApiState>,
    Path((_, property_id, photo_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<PhotoForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let current = form.position.as_deref().and_then(|p| p.parse::<i64>().ok()).unwrap_or(0);
    let position = match form.r#move.as_deref() {
        Some("cover") => Some(0),
        Some("earlier") => Some((current - 1).max(0)),
        Some("later") => Some(current + 1),
        _ => None,
    };
    let req = UpdatePhoto { alt: if position.is_some() { None } else { form.alt }, position };
    match state.app.update_property_photo(&page.access, property_id, photo_id, req).await {
        Ok(_) => Ok(see_other(&page.path(&format!("/properties/{property_id}#photos")))),
        Err(e @ (Error::Forbidden(_) | Error::NotFound(_))) => Err(e.into()),
        Err(e) => {
            let mut errors = FormErrors::default();
            if let Error::Invalid { message, .. } = e {
                errors.add("alt", message);
            } else {
                errors = FormErrors::from_error(e)?;
            }
            property_page(&state, page, property_id, errors).await
        }
    }
}

pub async fn delete_photo(
    State(state): State<ApiState>,
    Path((_, property_id, photo_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.delete_property_photo(&page.access, property_id, photo_id).await?;
    Ok(see_other(&page.path(&format!("/properties/{property_id}#photos"))))
}

#[derive(Debug, Default, Deserialize)]
pub struct KitForm {
    #[serde(default)]
    platforms: Vec<String>,
    tone: Option<String>,
}

/// Generates a listing kit from the property (the wizard's own rules
/// apply; queued when no agent is online).
pub async fn listing_kit(
    State(state): State<ApiState>,
    Path((_, property_id)): Path<(Uuid, Uuid)>,
    submit: Submit<KitForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let property = state.app.property(&page.access, property_id).await?;
    let platforms = if form.platforms.is_empty() {
        vec!["instagram".to_owned(), "facebook".to_owned()]
    } else {
        form.platforms
    };
    let body = json!({
        "kind": "listing_kit",
        "property_id": property_id,
        "platforms": platforms,
        "tone": form.tone.filter(|t| !t.is_empty()),
        "wait_for_agent": true,
    });
    let result = match request::<CreateActivity>(&body) {
        Ok(req) => state.app.create_activity(&page.access, property.project_id, req).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => {
            Ok(see_other(&page.path(&format!("/projects/{}/activities/{}", property.project_id, created.id))))
        }
        Err(e @ (Error::Forbidden(_) | Error::NotFound(_))) => Err(e.into()),
        Err(e) => {
            let mut errors = FormErrors::default();
            errors.add("kit", super::page::ui_words(&e.to_string()));
            property_page(&state, page, property_id, errors).await
        }
    }
}

async fn import_page(
    state: &ApiState,
    page: TenantPage,
    project: Option<String>,
    errors: FormErrors,
    report: Option<ImportReport>,
) -> Result<Response, UiError> {
    let access = &page.access;
    let projects = every(|p| state.app.projects(access, p)).await?;
    let view = ImportPage {
        title: "Import properties",
        crumb: "Properties",
        action: page.path("/properties/import"),
        cancel: page.path("/properties"),
        one: "property",
        many: "properties",
        projects: Some(
            projects
                .iter()
                .map(|p| Choice {
                    value: p.id.to_string(),
                    label: p.name.to_string(),
                    selected: project.as_deref() == Some(p.id.to_string().as_str()),
                })
                .collect(),
        ),
        columns: IMPORT_COLUMNS.to_vec(),
        hint: "Features are separated by |; area_unit is sqft or m2.",
        errors,
        report,
        shell: page.shell,
    };
    Ok(view.render())
}

pub async fn import_form(State(state): State<ApiState>, page: TenantPage) -> Result<Response, UiError> {
    page.access.require(Permission::ActivitiesCreate)?;
    import_page(&state, page, None, FormErrors::default(), None).await
}

pub async fn import(
    State(state): State<ApiState>,
    page: TenantPage,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, UiError> {
    let (fields, file, mut errors) =
        multipart_form(&state, &page, &headers, multipart, MAX_IMPORT_BYTES).await?;
    let project = fields.get("project_id").cloned();
    let mut report = None;
    if errors.is_empty() {
        let project_id = project.as_deref().and_then(|p| p.parse::<Uuid>().ok());
        match (project_id, file) {
            (None, _) => errors.add("project_id", "choose the project the properties belong to"),
            (_, None) => errors.add("file", "choose a CSV file"),
            (Some(project_id), Some(bytes)) => {
                let dry_run = fields.get("dry_run").is_some_and(|v| v == "on");
                match state.app.import_properties(&page.access, project_id, &bytes, dry_run).await {
                    Ok(r) => report = Some(r),
                    Err(e @ (Error::Forbidden(_) | Error::NotFound(_))) => return Err(e.into()),
                    Err(e) => errors = FormErrors::from_error(e)?,
                }
            }
        }
    }
    import_page(&state, page, project, errors, report).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_names_each_bad_number() {
        let form =
            PropertyForm { price: Some("lots".into()), baths: Some("two".into()), ..PropertyForm::default() };
        let errors = form.request().unwrap_err();
        assert!(errors.get("price").contains("whole number"));
        assert!(errors.get("baths").contains("number"));
        assert!(errors.get("beds").contains("required"));
    }
}
