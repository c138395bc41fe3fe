//! Flyers: the print-ready PDF of an approved listing kit, and the brand it
//! is printed with (paper, colours and logo, in the tenant's real-estate
//! settings). Gathers what a flyer prints (the kit's flyer text and current
//! description, the property's facts and photos, the brand), screens every
//! text with the Fair Housing rules, and hands the layout to
//! [`crate::pdf::flyer`]. A flyer is made on request from the current
//! content, so an edit shows in the next download; nothing is cached.

use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::leads::RealEstateSettingsView;
use super::properties::{PhotoSize, facts_line, grouped, price};
use super::{App, TenantAccess, actions};
use crate::domain::Permission;
use crate::error::{Error, FoundExt, Result};
use crate::pdf::flyer::{self, Flyer, MAX_PHOTOS};
use crate::pdf::{Paper, Rgb, prepare_photo};
use crate::store::{
    Activity, ActivityFilter, ActivityKind, ActivityStatus, PageRequest, Property, RealEstateSettings,
};
use marketer_protocol::activity::{ActivityInput, Finding};

/// A PDF ready to download (a flyer, a report).
#[derive(Debug)]
pub struct PdfFile {
    /// `flyer-12-elm-street.pdf`, `analytics-2026-11-01-to-2026-11-30.pdf`.
    pub filename: String,
    pub pdf: Vec<u8>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlyerParams {
    /// Makes the flyer although the Fair Housing rules find something in
    /// its text (the reviewer has read the findings); audited.
    #[serde(default)]
    pub acknowledge_findings: bool,
}

/// The storage key of a tenant's logo.
fn logo_key(tenant_id: Uuid) -> String {
    format!("tenants/{tenant_id}/branding/logo")
}

/// `flyer-12-elm-street.pdf`.
fn filename(address: &str) -> String {
    let mut slug: String = address
        .split(',')
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    while slug.contains("--") {
        slug = slug.replace("--", "-");
    }
    let slug: String = slug.trim_matches('-').chars().take(50).collect();
    if slug.is_empty() { "flyer.pdf".into() } else { format!("flyer-{slug}.pdf") }
}

/// Markdown as the plain paragraphs a flyer prints: no headings (the
/// flyer has its own headline), no markup.
fn plain_text(markdown: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut out = String::new();
    let mut in_heading = false;
    for event in Parser::new(markdown) {
        match event {
            Event::Start(Tag::Heading { .. }) => in_heading = true,
            Event::End(TagEnd::Heading(_)) => in_heading = false,
            Event::Text(t) | Event::Code(t) if !in_heading => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak if !in_heading => out.push(' '),
            Event::End(TagEnd::Paragraph | TagEnd::Item) => out.push('\n'),
            _ => {}
        }
    }
    out.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

impl App {
    /// Stores the tenant's logo for flyers (JPEG, PNG or WebP; checked by
    /// content and re-encoded as a PNG without metadata).
    pub async fn set_flyer_logo(
        &self,
        access: &TenantAccess,
        bytes: Vec<u8>,
    ) -> Result<RealEstateSettingsView> {
        access.require(Permission::SettingsManage)?;
        let png = self.images.logo(bytes, "logo").await?;
        self.files
            .put(&logo_key(access.tenant_id), &png)
            .await
            .map_err(|e| Error::Internal(e.context("storing a logo")))?;
        let audit = access.audit(actions::REAL_ESTATE_LOGO_SET);
        let defaults = RealEstateSettingsView::default().stored_defaults();
        self.store.set_real_estate_logo(access.tenant_id, Some("image/png"), &defaults, &audit).await?;
        self.real_estate_settings(access).await
    }

    /// Removes the tenant's logo.
    pub async fn delete_flyer_logo(&self, access: &TenantAccess) -> Result<RealEstateSettingsView> {
        access.require(Permission::SettingsManage)?;
        let audit = access.audit(actions::REAL_ESTATE_LOGO_DELETE);
        let defaults = RealEstateSettingsView::default().stored_defaults();
        self.store.set_real_estate_logo(access.tenant_id, None, &defaults, &audit).await?;
        if let Err(e) = self.files.delete(&logo_key(access.tenant_id)).await {
            tracing::warn!(error = %e, "removing a logo's file");
        }
        self.real_estate_settings(access).await
    }

    /// The tenant's logo (PNG).
    pub async fn flyer_logo(&self, access: &TenantAccess) -> Result<Vec<u8>> {
        access.require(Permission::ProjectsRead)?;
        let settings = self.store.real_estate_settings(access.tenant_id).await?;
        if settings.and_then(|s| s.logo_type).is_none() {
            return Err(Error::NotFound("logo"));
        }
        self.files
            .get(&logo_key(access.tenant_id))
            .await
            .map_err(|e| Error::Internal(e.context("reading a logo")))?
            .ok_or(Error::NotFound("logo"))
    }

    /// The flyer of a listing kit.
    pub async fn activity_flyer(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        id: Uuid,
        params: &FlyerParams,
    ) -> Result<PdfFile> {
        access.require(Permission::ActivitiesRead)?;
        let activity = self.activity_in(access, project_id, id).await?;
        self.flyer(access, &activity, params).await
    }

    /// The flyer of the newest approved listing kit made from a property.
    pub async fn property_flyer(
        &self,
        access: &TenantAccess,
        property_id: Uuid,
        params: &FlyerParams,
    ) -> Result<PdfFile> {
        access.require(Permission::ActivitiesRead)?;
        self.store.property(access.tenant_id, property_id).await.found("property")?;
        let filter = ActivityFilter {
            property_id: Some(property_id),
            kind: Some(ActivityKind::ListingKit),
            status: Some(ActivityStatus::Approved),
        };
        let page = PageRequest { after: None, limit: 1 };
        let newest = self.store.activities(access.tenant_id, None, &filter, page).await?.items.pop();
        let Some(activity) = newest else {
            return Err(Error::Conflict {
                code: "no_approved_kit",
                message: "this property has no approved listing kit yet: generate one from it and approve it, then download its flyer".into(),
            });
        };
        self.flyer(access, &activity, params).await
    }

    async fn flyer(
        &self,
        access: &TenantAccess,
        activity: &Activity,
        params: &FlyerParams,
    ) -> Result<PdfFile> {
        let ActivityInput::ListingKit(kit) = &activity.input else {
            return Err(Error::Conflict {
                code: "not_a_listing_kit",
                message: format!("a {} has no flyer; flyers are made from listing kits", activity.kind),
            });
        };
        if activity.approved_at.is_none() {
            return Err(Error::Conflict {
                code: "not_approved",
                message: "the listing kit is not approved yet: a flyer is printed from approved content only"
                    .into(),
            });
        }
        let run = activity.content_run.as_ref().ok_or(Error::NotFound("content"))?;
        let result = super::activities::result_of(run).ok_or(Error::NotFound("content"))?;
        let Some(text) = &result.flyer else {
            return Err(Error::Conflict {
                code: "no_flyer_text",
                message: "this listing kit has no flyer text: regenerate it".into(),
            });
        };
        let content = match self.store.activity_versions(access.tenant_id, activity.id, run.id).await?.pop() {
            Some(edit) => edit.content,
            None => result.content.clone(),
        };
        let property = match activity.property_id {
            Some(id) => self.store.property(access.tenant_id, id).await?,
            None => None,
        };
        let settings = self.store.real_estate_settings(access.tenant_id).await?;
        let brand = settings.map(RealEstateSettingsView::from).unwrap_or_default();
        let listing = &kit.listing;
        let mut flyer = Flyer {
            paper: if brand.paper_size == "a4" { Paper::A4 } else { Paper::Letter },
            brand: Rgb::parse(&brand.brand_color).unwrap_or(Rgb(0x1f, 0x4e, 0x79)),
            accent: Rgb::parse(&brand.accent_color).unwrap_or(Rgb(0xb4, 0x46, 0x1e)),
            logo: None,
            price: format!("${}", grouped(i64::try_from(listing.price).unwrap_or(i64::MAX))),
            status: String::new(),
            headline: text.headline.clone(),
            summary: text.property_summary.clone(),
            address: listing.address.clone(),
            facts: vec![listing_facts(listing)],
            description: plain_text(&content),
            features: if text.features.is_empty() {
                listing.key_features.clone()
            } else {
                text.features.clone()
            },
            call_to_action: text.call_to_action.clone(),
            agent_name: listing.agent_name.clone(),
            agent_contact: listing.agent_contact.clone(),
            disclaimers: text.disclaimers.clone(),
            photos: Vec::new(),
        };
        let mut photos = Vec::new();
        if let Some(p) = &property {
            with_property(&mut flyer, p);
            for photo in self.store.property_photos(access.tenant_id, p.id).await?.iter().take(MAX_PHOTOS) {
                photos.push(self.photo_bytes(access.tenant_id, p.id, photo.id, PhotoSize::Full).await?);
            }
        }
        if brand.has_logo {
            flyer.logo = self.files.get(&logo_key(access.tenant_id)).await.ok().flatten();
        }

        // The Fair Housing rules read every text printed.
        let findings: Vec<Finding> = flyer::texts(&flyer)
            .into_iter()
            .flat_map(|(location, text)| marketer_pipeline::fair_housing::screen(text, &location))
            .collect();
        if !findings.is_empty() && !params.acknowledge_findings {
            let list: Vec<String> =
                findings.iter().map(|f| format!("\"{}\" ({}: {})", f.phrase, f.location, f.reason)).collect();
            return Err(Error::invalid(
                "acknowledge_findings",
                format!(
                    "the flyer's text has {} Fair Housing finding(s): {}; reword the listing kit, or download with acknowledge_findings=true once a reviewer has read them",
                    findings.len(),
                    list.join("; ")
                ),
            ));
        }
        if !findings.is_empty() {
            let event = access
                .audit(actions::FLYER_FINDINGS_ACKNOWLEDGED)
                .resource("activity", activity.id)
                .details(serde_json::json!({ "findings": findings }));
            self.store.record_audit(&event).await?;
        }
        self.audit_content_read(access, "activity", activity.id, "flyer").await?;

        let name = filename(&flyer.address);
        let pdf = self
            .images
            .blocking(move || {
                let boxes = flyer::photo_boxes(flyer.paper, photos.len());
                flyer.photos = photos
                    .iter()
                    .zip(boxes)
                    .map(|(bytes, (w, h))| prepare_photo(bytes, w, h))
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|e| Error::Internal(anyhow::anyhow!(e)))?;
                flyer::render(&flyer).map_err(|e| Error::Internal(anyhow::anyhow!(e)))
            })
            .await?;
        Ok(PdfFile { filename: name, pdf })
    }
}

/// The listing's own facts (a kit made without a property).
fn listing_facts(listing: &marketer_protocol::activity::Listing) -> String {
    let baths = f64::from(listing.baths);
    facts_line(
        i64::from(listing.beds),
        baths,
        i64::from(listing.square_feet),
        crate::store::AreaUnit::SquareFeet,
    )
}

/// A property's record is the truth for what it states: its price in its
/// currency, status, facts and agent.
fn with_property(flyer: &mut Flyer, p: &Property) {
    let f = &p.fields;
    #[allow(clippy::cast_precision_loss)]
    let baths = f.half_baths as f64 / 2.0;
    flyer.price = price(f.price, &f.currency);
    flyer.status = f.status.label().to_owned();
    flyer.address = p.fields.address();
    let mut facts =
        vec![facts_line(f.beds, baths, f.floor_area, f.area_unit), f.property_type.label().to_owned()];
    if let Some(year) = f.year_built {
        facts.push(format!("Built {year}"));
    }
    if let Some(reference) = &f.reference {
        facts.push(format!("Ref. {reference}"));
    }
    flyer.facts = facts;
    flyer.agent_name = f.agent_name.clone();
    flyer.agent_contact = f.agent_contact.clone();
}

impl RealEstateSettingsView {
    /// The defaults as a stored row (for a tenant whose first setting is
    /// its logo).
    pub(super) fn stored_defaults(&self) -> RealEstateSettings {
        RealEstateSettings {
            consent_text: self.consent_text.clone(),
            postal_address: self.postal_address.clone(),
            paper_size: self.paper_size.clone(),
            brand_color: self.brand_color.clone(),
            accent_color: self.accent_color.clone(),
            logo_type: None,
            score_weights: None,
            score_fit: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_text_for_print() {
        assert_eq!(filename("12 Elm Street, Springfield, IL"), "flyer-12-elm-street.pdf");
        assert_eq!(filename("  ,"), "flyer.pdf");
        assert_eq!(
            plain_text("# 12 Elm Street\n\nA **bright** home.\nWith a yard.\n\n- Garage\n- Porch"),
            "A bright home. With a yard.\nGarage\nPorch"
        );
    }
}
