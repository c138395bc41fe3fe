//! Leads and the public listing pages that bring them: publishing a
//! property's page, the page's contact form (checked, with a honeypot and
//! per-address and per-e-mail rate limits shared by every replica), the
//! lead it makes or adds to (one per address per tenant, one per
//! submission however often it is sent), the owner's notification, the
//! lead inbox and a lead's timeline, and the scoring engine.
//!
//! Scoring: six named signals, each 0 to 1, times its weight (the weights
//! add up to 100) make the score; the band follows from fixed thresholds
//! (hot ≥ 70, warm ≥ 45, nurture ≥ 25, else monitor). The score is
//! recomputed in the transaction of every interaction; each signal's
//! contribution is stored with it and shown.
//!
//! Leads are personal data: reads of many at once are audited
//! (`lead.list`), every change is, and a lead is found by its e-mail
//! address for the data-subject requests a later issue adds.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{App, RequestMeta, TenantAccess, actions, audit_event};
use crate::domain::{Email, Permission, Timestamp, new_id};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::store::{
    Actor, Audience, Band, Lead, LeadChange, LeadEvent, LeadFacts, LeadFilter, LeadScore, LeadSource,
    LeadStatus, NewLead, NewNotice, NoticeKind, Outcome, Page, PageRequest, Property, PropertyStatus,
    RealEstateSettings, Scorer, Signal, StoreError, Submission,
};

/// The consent wording until a tenant writes its own.
pub const DEFAULT_CONSENT: &str = "I agree to be contacted about this and similar properties by e-mail and phone. I can unsubscribe at any time.";

/// The score thresholds of the bands, highest first.
pub const BANDS: [(Band, i64); 4] =
    [(Band::Hot, 70), (Band::Warm, 45), (Band::Nurture, 25), (Band::Monitor, 0)];

/// Words in a person's message that say they mean to act.
const INTENT_WORDS: &[&str] = &[
    "viewing",
    "tour",
    "showing",
    "visit",
    "see it",
    "appointment",
    "pre-approved",
    "preapproved",
    "mortgage",
    "cash",
    "offer",
    "move in",
    "moving",
    "relocat",
    "asap",
    "this week",
    "weekend",
];

/// The default weights, by signal.
pub const DEFAULT_WEIGHTS: [(&str, f64); 6] = [
    ("engagement", 20.0),
    ("profile", 15.0),
    ("frequency", 15.0),
    ("recency", 20.0),
    ("properties", 10.0),
    ("intent", 20.0),
];

/// The scoring engine with a tenant's weights.
#[derive(Debug, Clone)]
pub struct WeightedScorer {
    pub weights: [(&'static str, f64); 6],
}

impl Default for WeightedScorer {
    fn default() -> Self {
        Self { weights: DEFAULT_WEIGHTS }
    }
}

/// The band of a score.
pub fn band_of(score: i64) -> Band {
    BANDS.iter().find(|(_, at)| score >= *at).map_or(Band::Monitor, |(band, _)| *band)
}

impl WeightedScorer {
    /// Each signal's value (0 to 1) and its explanation.
    pub fn signals(facts: &LeadFacts, now: Timestamp) -> [(&'static str, f64, String); 6] {
        #[allow(clippy::cast_precision_loss)]
        let ratio = |n: i64, full: i64| (n as f64 / full as f64).clamp(0.0, 1.0);
        let days = facts.last_interaction_at.map_or(365.0, |at| {
            let seconds = (now.as_datetime() - at.as_datetime()).whole_seconds().max(0);
            #[allow(clippy::cast_precision_loss)]
            let d = seconds as f64 / 86_400.0;
            d
        });
        let text = facts.messages.join(" ").to_lowercase();
        let intents = INTENT_WORDS.iter().filter(|w| text.contains(*w)).count();
        let longest = facts.messages.iter().map(|m| m.chars().count()).max().unwrap_or(0);
        let written = facts.messages.iter().any(|m| !m.trim().is_empty());
        let profile = [facts.has_name, true, facts.has_phone, written].iter().filter(|b| **b).count();
        [
            (
                "engagement",
                (ratio(facts.conversations, 3) * 0.7 + if longest >= 80 { 0.3 } else { 0.0 }).min(1.0),
                format!("{} message(s) or replies; the longest {longest} characters", facts.conversations),
            ),
            (
                "profile",
                ratio(i64::try_from(profile).unwrap_or(0), 4),
                format!("{profile} of name, e-mail, phone and a message given"),
            ),
            (
                "frequency",
                ratio(facts.recent_interactions, 5),
                format!("{} interaction(s) in the last 30 days", facts.recent_interactions),
            ),
            ("recency", (1.0 - days / 30.0).clamp(0.0, 1.0), format!("last heard from {days:.0} day(s) ago")),
            (
                "properties",
                ratio(facts.properties, 3),
                format!("asked about {} propert(ies)", facts.properties),
            ),
            (
                "intent",
                match intents {
                    0 => 0.0,
                    1 => 0.6,
                    _ => 1.0,
                },
                format!("{intents} sign(s) of intent (a viewing, financing, an offer, a move)"),
            ),
        ]
    }
}

impl Scorer for WeightedScorer {
    fn score(&self, facts: &LeadFacts, now: Timestamp) -> LeadScore {
        let mut signals = Vec::with_capacity(6);
        let mut total = 0.0;
        for ((name, value, explanation), (_, weight)) in
            Self::signals(facts, now).into_iter().zip(self.weights)
        {
            let points = value * weight;
            total += points;
            signals.push(Signal {
                name: name.into(),
                explanation,
                value: (value * 100.0).round() / 100.0,
                weight,
                points: (points * 10.0).round() / 10.0,
            });
        }
        #[allow(clippy::cast_possible_truncation)]
        let score = (total.round() as i64).clamp(0, 100);
        LeadScore { score, band: band_of(score), signals }
    }
}

/// The public contact form, as submitted.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ListingForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub message: String,
    /// `on` (a checked box) or `true`.
    #[serde(default)]
    pub consent: Option<String>,
    /// The form's own token (from the page): a second submission with it
    /// is the same submission.
    #[serde(default)]
    pub token: String,
    /// The honeypot: hidden from people; anything in it is a robot.
    #[serde(default)]
    pub website: String,
}

/// What the public page shows of a published property.
#[derive(Debug, Clone)]
pub struct PublicListing {
    pub property: Property,
    pub photos: Vec<crate::store::PropertyPhoto>,
    pub consent_text: String,
    pub organisation: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeadView {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub source: LeadSource,
    pub status: LeadStatus,
    pub owner_id: Option<Uuid>,
    pub owner_name: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub consent_at: Option<Timestamp>,
    pub consent_text: Option<String>,
    pub score: i64,
    pub band: Band,
    /// Each signal's value, weight and points.
    pub signals: Vec<Signal>,
    /// The band thresholds: hot ≥ 70, warm ≥ 45, nurture ≥ 25.
    pub thresholds: Vec<BandThreshold>,
    pub interactions: i64,
    #[schema(value_type = String, format = DateTime)]
    pub last_interaction_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The properties asked about (on a single lead).
    pub property_ids: Vec<Uuid>,
    /// The timeline, oldest first (on a single lead).
    pub timeline: Vec<LeadEventView>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BandThreshold {
    pub band: Band,
    pub from: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LeadEventView {
    pub id: Uuid,
    pub kind: crate::store::LeadEventKind,
    pub property_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub body: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl LeadView {
    fn new(l: Lead, property_ids: Vec<Uuid>, timeline: Vec<LeadEvent>) -> Self {
        Self {
            id: l.id,
            name: l.name,
            email: l.email,
            phone: l.phone,
            source: l.source,
            status: l.status,
            owner_id: l.owner_id,
            owner_name: l.owner_name,
            consent_at: l.consent_at,
            consent_text: l.consent_text,
            score: l.score.score,
            band: l.score.band,
            signals: l.score.signals,
            thresholds: BANDS.iter().map(|(band, from)| BandThreshold { band: *band, from: *from }).collect(),
            interactions: l.interactions,
            last_interaction_at: l.last_interaction_at,
            created_at: l.created_at,
            property_ids,
            timeline: timeline
                .into_iter()
                .map(|e| LeadEventView {
                    id: e.id,
                    kind: e.kind,
                    property_id: e.property_id,
                    actor_name: e.actor_name,
                    body: e.body,
                    created_at: e.created_at,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LeadParams {
    pub band: Option<Band>,
    pub status: Option<LeadStatus>,
    pub property_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    /// `score` (highest first) or `recent` (default: newest first).
    pub sort: Option<String>,
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateLead {
    #[serde(default)]
    pub name: String,
    pub email: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub property_ids: Vec<Uuid>,
    /// A first note for the timeline.
    #[serde(default)]
    pub note: String,
    pub owner_id: Option<Uuid>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLead {
    pub status: Option<LeadStatus>,
    /// A member of the organisation; `null` leaves it as it is.
    pub owner_id: Option<Uuid>,
    /// Remove the owner.
    #[serde(default)]
    pub clear_owner: bool,
    /// A note for the timeline.
    pub note: Option<String>,
    /// A reply the person sent, logged by hand.
    pub reply: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RealEstateSettingsView {
    /// The text next to the consent checkbox of public listing pages.
    pub consent_text: String,
    /// The sender's postal address, in every marketing e-mail.
    pub postal_address: String,
    /// The paper flyers are laid out for: `letter` (the default) or `a4`.
    #[serde(default = "default_paper")]
    pub paper_size: String,
    /// The brand's main colour on flyers (headline, price, footer), `#rrggbb`.
    #[serde(default = "default_brand")]
    pub brand_color: String,
    /// The second colour (the facts band, bullets), `#rrggbb`.
    #[serde(default = "default_accent")]
    pub accent_color: String,
    /// Whether a logo is stored (read only: upload it to
    /// `/real-estate-settings/logo`).
    #[serde(default)]
    pub has_logo: bool,
}

fn default_paper() -> String {
    "letter".into()
}

fn default_brand() -> String {
    "#1f4e79".into()
}

fn default_accent() -> String {
    "#b4461e".into()
}

impl Default for RealEstateSettingsView {
    fn default() -> Self {
        Self {
            consent_text: DEFAULT_CONSENT.into(),
            postal_address: String::new(),
            paper_size: default_paper(),
            brand_color: default_brand(),
            accent_color: default_accent(),
            has_logo: false,
        }
    }
}

impl From<RealEstateSettings> for RealEstateSettingsView {
    fn from(s: RealEstateSettings) -> Self {
        Self {
            consent_text: s.consent_text,
            postal_address: s.postal_address,
            paper_size: s.paper_size,
            brand_color: s.brand_color,
            accent_color: s.accent_color,
            has_logo: s.logo_type.is_some(),
        }
    }
}

impl RealEstateSettingsView {
    /// The settings as stored (the logo is set on its own).
    fn checked(&self) -> Result<RealEstateSettings> {
        let colour = |field: &str, value: &str| {
            let value = value.trim().to_ascii_lowercase();
            if crate::pdf::Rgb::parse(&value).is_none() {
                return Err(Error::invalid(field, "must be a colour like #1f4e79"));
            }
            Ok(value)
        };
        let paper_size = self.paper_size.trim().to_ascii_lowercase();
        if !matches!(paper_size.as_str(), "letter" | "a4") {
            return Err(Error::invalid("paper_size", "must be letter or a4"));
        }
        Ok(RealEstateSettings {
            consent_text: text("consent_text", &self.consent_text, 1_000, true)?,
            postal_address: text("postal_address", &self.postal_address, 500, false)?,
            paper_size,
            brand_color: colour("brand_color", &self.brand_color)?,
            accent_color: colour("accent_color", &self.accent_color)?,
            logo_type: None,
            score_weights: None,
            score_fit: None,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishProperty {
    /// `true` publishes the page, `false` takes it down.
    pub published: bool,
}

/// The slug of a new public page: the street, and ten random characters.
fn new_slug(street: &str) -> String {
    let mut base: String = street
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    while base.contains("--") {
        base = base.replace("--", "-");
    }
    let base: String = base.trim_matches('-').chars().take(40).collect();
    let random = Uuid::from_bytes(rand::random()).simple().to_string();
    if base.is_empty() { random[..10].to_owned() } else { format!("{base}-{}", &random[..10]) }
}

pub(super) fn text(field: &str, value: &str, max: usize, required: bool) -> Result<String> {
    let value = value.trim();
    if required && value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(value.to_owned())
}

pub(super) fn phone(value: &str) -> Result<String> {
    let value = text("phone", value, 40, false)?;
    if !value.is_empty() && !value.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
        return Err(Error::invalid("phone", "may hold digits, spaces and + - ( ) . only"));
    }
    Ok(value)
}

impl App {
    pub async fn real_estate_settings(&self, access: &TenantAccess) -> Result<RealEstateSettingsView> {
        access.require(Permission::ProjectsRead)?;
        let settings = self.store.real_estate_settings(access.tenant_id).await?;
        Ok(settings.map(RealEstateSettingsView::from).unwrap_or_default())
    }

    pub async fn set_real_estate_settings(
        &self,
        access: &TenantAccess,
        req: RealEstateSettingsView,
    ) -> Result<RealEstateSettingsView> {
        access.require(Permission::SettingsManage)?;
        let settings = req.checked()?;
        let audit = access.audit(actions::REAL_ESTATE_SETTINGS_UPDATE);
        self.store.set_real_estate_settings(access.tenant_id, &settings, &audit).await?;
        self.real_estate_settings(access).await
    }

    /// Publishes or takes down a property's public page. Only a property
    /// that is coming soon or active can be published.
    pub async fn publish_property(
        &self,
        access: &TenantAccess,
        property_id: Uuid,
        req: PublishProperty,
    ) -> Result<super::PropertyView> {
        access.require(Permission::ActivitiesUpdate)?;
        let property = self.store.property(access.tenant_id, property_id).await.found("property")?;
        if req.published
            && !matches!(property.fields.status, PropertyStatus::Active | PropertyStatus::ComingSoon)
        {
            return Err(Error::Conflict {
                code: "not_for_sale",
                message: format!(
                    "the property is {}; only an active or coming-soon property has a public page",
                    property.fields.status.label().to_lowercase()
                ),
            });
        }
        let audit = access
            .audit(if req.published { actions::PROPERTY_PUBLISH } else { actions::PROPERTY_UNPUBLISH })
            .resource("property", property_id);
        self.store
            .publish_property(
                access.tenant_id,
                property_id,
                &new_slug(&property.fields.street),
                req.published,
                &audit,
            )
            .await
            .or_not_found("property")?;
        self.property(access, property_id).await
    }

    /// A published page's content, or `NotFound` (unpublished, sold, or
    /// never there: the same answer).
    pub async fn public_listing(&self, slug: &str) -> Result<PublicListing> {
        if slug.len() > 80 || !slug.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(Error::NotFound("listing"));
        }
        let property = self.store.published_property(slug).await.found("listing")?;
        if !matches!(property.fields.status, PropertyStatus::Active | PropertyStatus::ComingSoon) {
            return Err(Error::NotFound("listing"));
        }
        let photos = self.store.property_photos(property.tenant_id, property.id).await?;
        let consent_text = self
            .store
            .real_estate_settings(property.tenant_id)
            .await?
            .map_or_else(|| DEFAULT_CONSENT.to_owned(), |s| s.consent_text);
        let organisation =
            self.store.tenant(property.tenant_id).await?.map(|t| t.name.to_string()).unwrap_or_default();
        Ok(PublicListing { property, photos, consent_text, organisation })
    }

    /// A photo of a published page.
    pub async fn public_photo(&self, slug: &str, photo_id: Uuid, size: super::PhotoSize) -> Result<Vec<u8>> {
        let listing = self.public_listing(slug).await?;
        if !listing.photos.iter().any(|p| p.id == photo_id) {
            return Err(Error::NotFound("photo"));
        }
        self.photo_bytes(listing.property.tenant_id, listing.property.id, photo_id, size).await
    }

    /// A public page's contact form: checked, limited, and made into a
    /// lead (one per submission token).
    pub async fn submit_listing_form(
        &self,
        slug: &str,
        form: ListingForm,
        meta: &RequestMeta,
    ) -> Result<Lead> {
        let listing = self.public_listing(slug).await?;
        let property = &listing.property;
        if !form.website.trim().is_empty() {
            // A robot filled the hidden field: refuse it as a person would
            // see it, and keep nothing.
            return Err(Error::invalid("website", "leave this field empty"));
        }
        let name = text("name", &form.name, 100, true)?;
        let email = Email::parse(form.email.trim())
            .map_err(|_| Error::invalid("email", "is not an e-mail address, like name@example.com"))?;
        let phone = phone(&form.phone)?;
        let message = text("message", &form.message, 2_000, false)?;
        if !form.consent.as_deref().is_some_and(|c| c == "on" || c == "true") {
            return Err(Error::invalid("consent", "tick the box to agree to be contacted"));
        }
        let token = form.token.trim();
        if token.len() < 16
            || token.len() > 64
            || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(Error::invalid("token", "the form has expired; reload the page and send it again"));
        }
        let now = Timestamp::now();
        let client: Option<IpAddr> = meta.client_ip;
        let address = email.as_str().to_lowercase();
        if let Some(wait) = self.lead_throttle.check(&address, client, now).await? {
            return Err(Error::RateLimited { retry_after: wait });
        }
        self.lead_throttle.record_failure(&address, client, now).await?;
        let owner_id = match property.created_by {
            Some(user) => {
                self.store.member(property.tenant_id, user).await?.filter(|m| !m.disabled).map(|m| m.user_id)
            }
            None => None,
        };
        // Follow-up e-mail needs the sender's postal address (CAN-SPAM);
        // without it no sequence starts by itself.
        let postal = self.store.real_estate_settings(property.tenant_id).await?.map(|s| s.postal_address);
        let follow_up = postal.is_some_and(|p| !p.trim().is_empty());
        if follow_up {
            self.ensure_default_sequences(property.tenant_id).await?;
        }
        let submission = Submission {
            follow_up,
            tenant_id: property.tenant_id,
            property_id: property.id,
            token: format!("{}:{token}", property.id),
            name,
            email: email.as_str().to_owned(),
            phone,
            message,
            consent_text: listing.consent_text.clone(),
            owner_id,
        };
        let link = format!("/t/{}/leads", property.tenant_id);
        let notice = NewNotice {
            tenant_id: Some(property.tenant_id),
            kind: NoticeKind::LeadArrived,
            audience: owner_id.map_or(Audience::Admins, Audience::User),
            // No personal data in the notice: its e-mail leaves the system.
            title: format!("A lead wrote in about {}", property.fields.street),
            body: "Open the lead inbox to read it and answer.".into(),
            link: Some(link),
            dedupe_key: Some(format!("lead-form:{}", submission.token)),
        };
        let audit = audit_event(
            Some(property.tenant_id),
            Actor::Anonymous,
            meta,
            actions::LEAD_FORM_SUBMIT,
            Outcome::Success,
        )
        .details(serde_json::json!({ "property_id": property.id }))
        .notify(notice);
        let submitted =
            self.store.submit_lead(&submission, &self.scorer(property.tenant_id).await?, &audit).await?;
        Ok(submitted.lead)
    }

    pub async fn leads(
        &self,
        access: &TenantAccess,
        params: LeadParams,
        page: PageRequest,
    ) -> Result<Page<LeadView>> {
        access.require(Permission::ProjectsRead)?;
        let by_score = match params.sort.as_deref() {
            None | Some("recent") => false,
            Some("score") => true,
            Some(_) => return Err(Error::invalid("sort", "must be score or recent")),
        };
        let filter = LeadFilter {
            band: params.band,
            status: params.status,
            property_id: params.property_id,
            owner_id: params.owner_id,
            by_score,
        };
        let found = self.store.leads(access.tenant_id, &filter, page).await?;
        // Personal data read in bulk: on the record.
        let audit = access
            .audit(actions::LEAD_LIST)
            .details(serde_json::json!({ "count": found.items.len(), "by_score": by_score }));
        self.store.record_audit(&audit).await?;
        Ok(Page {
            items: found.items.into_iter().map(|l| LeadView::new(l, Vec::new(), Vec::new())).collect(),
            next: found.next,
        })
    }

    pub async fn lead(&self, access: &TenantAccess, id: Uuid) -> Result<LeadView> {
        access.require(Permission::ProjectsRead)?;
        let lead = self.store.lead(access.tenant_id, id).await.found("lead")?;
        let properties = self.store.lead_property_ids(access.tenant_id, id).await?;
        let events = self.store.lead_events(access.tenant_id, id).await?;
        Ok(LeadView::new(lead, properties, events))
    }

    pub async fn create_lead(&self, access: &TenantAccess, req: CreateLead) -> Result<LeadView> {
        self.create_lead_from(access, req, LeadSource::Manual).await
    }

    /// A lead entered by a member, from `source` (by hand, or from an
    /// inbox item).
    pub(super) async fn create_lead_from(
        &self,
        access: &TenantAccess,
        req: CreateLead,
        source: LeadSource,
    ) -> Result<LeadView> {
        access.require(Permission::ActivitiesCreate)?;
        let email = Email::parse(req.email.trim())
            .map_err(|_| Error::invalid("email", "is not an e-mail address, like name@example.com"))?;
        if req.property_ids.len() > 20 {
            return Err(Error::invalid("property_ids", "at most 20"));
        }
        let id = new_id();
        let new = NewLead {
            id,
            tenant_id: access.tenant_id,
            name: text("name", &req.name, 100, false)?,
            email: email.as_str().to_owned(),
            phone: phone(&req.phone)?,
            source,
            status: LeadStatus::New,
            owner_id: req.owner_id.or(access.caller.creator_id()),
            property_ids: req.property_ids,
            note: text("note", &req.note, 5_000, false)?,
            consent: None,
            actor_id: access.caller.creator_id(),
        };
        if let Some(owner) = new.owner_id
            && self.store.member(access.tenant_id, owner).await?.is_none()
        {
            return Err(Error::invalid("owner_id", "is not a member of this organisation"));
        }
        let audit = access.audit(actions::LEAD_CREATE).resource("lead", id);
        self.store.create_leads(&[new], &self.scorer(access.tenant_id).await?, &audit).await.map_err(
            |e| match e {
                StoreError::Conflict { code: "lead_exists", message } => {
                    Error::Conflict { code: "lead_exists", message }
                }
                other => other.into(),
            },
        )?;
        self.lead(access, id).await
    }

    pub async fn update_lead(&self, access: &TenantAccess, id: Uuid, req: UpdateLead) -> Result<LeadView> {
        access.require(Permission::ActivitiesUpdate)?;
        let owner_id = if req.clear_owner { Some(None) } else { req.owner_id.map(Some) };
        let change = LeadChange {
            status: req.status,
            owner_id,
            note: req.note.as_deref().map(|n| text("note", n, 5_000, true)).transpose()?,
            reply: req.reply.as_deref().map(|r| text("reply", r, 5_000, true)).transpose()?,
            actor_id: access.caller.creator_id(),
        };
        let audit = access
            .audit(actions::LEAD_UPDATE)
            .resource("lead", id)
            .details(serde_json::json!({ "status": req.status, "owner_changed": change.owner_id.is_some() }));
        self.store
            .update_lead(access.tenant_id, id, &change, &self.scorer(access.tenant_id).await?, &audit)
            .await
            .or_not_found("lead")?;
        self.lead(access, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(
        conversations: i64,
        recent: i64,
        days_ago: i64,
        properties: i64,
        messages: &[&str],
    ) -> LeadFacts {
        LeadFacts {
            has_name: true,
            has_phone: !messages.is_empty(),
            conversations,
            recent_interactions: recent,
            last_interaction_at: Some(Timestamp::now() - time::Duration::days(days_ago)),
            properties,
            messages: messages.iter().map(|m| (*m).to_owned()).collect(),
        }
    }

    #[test]
    fn a_table_of_leads_lands_in_the_expected_bands() {
        let scorer = WeightedScorer::default();
        let cases = [
            (
                "wrote three times this week, wants a viewing and has a mortgage offer",
                facts(
                    3,
                    4,
                    0,
                    2,
                    &[
                        "Could we book a viewing this weekend? We are pre-approved for a mortgage and would like to move quickly.",
                        "Also interested in the other house",
                        "Thanks!",
                    ],
                ),
                Band::Hot,
            ),
            (
                "one detailed message today asking for a tour",
                facts(
                    1,
                    1,
                    0,
                    1,
                    &["Hello, is a tour possible on Saturday? We are relocating from Denver in spring."],
                ),
                Band::Warm,
            ),
            ("one short note a week ago", facts(1, 1, 7, 1, &["Is it still available?"]), Band::Nurture),
            ("entered by hand two months ago, nothing since", facts(0, 0, 60, 0, &[]), Band::Monitor),
        ];
        for (case, facts, band) in cases {
            let score = scorer.score(&facts, Timestamp::now());
            assert_eq!(score.band, band, "{case}: {score:?}");
            let sum: f64 = score.signals.iter().map(|s| s.points).sum();
            assert!((sum - score.score as f64).abs() <= 1.0, "{case}: points add up to the score");
        }
    }

    #[test]
    fn bands_follow_the_thresholds() {
        assert_eq!(band_of(100), Band::Hot);
        assert_eq!(band_of(70), Band::Hot);
        assert_eq!(band_of(69), Band::Warm);
        assert_eq!(band_of(45), Band::Warm);
        assert_eq!(band_of(25), Band::Nurture);
        assert_eq!(band_of(24), Band::Monitor);
        assert_eq!(band_of(0), Band::Monitor);
    }

    #[test]
    fn slugs_are_readable_and_random() {
        let a = new_slug("12 Elm Street, Apt #4");
        let b = new_slug("12 Elm Street, Apt #4");
        assert!(a.starts_with("12-elm-street-apt-4-"), "{a}");
        assert_ne!(a, b);
        assert!(new_slug("東京").len() == 10);
    }
}
