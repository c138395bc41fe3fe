//! Persistence of leads: people interested in a tenant's properties, one
//! per e-mail address per tenant, with the properties they asked about, a
//! timeline of every interaction, and the score computed at each one; the
//! public side of properties (their page's slug) and the tenant's
//! real-estate settings (consent wording, postal address).
//!
//! A public form's submission is written in one transaction: the lead
//! (found by address or created), its interest in the property, the
//! timeline entry keyed by the form's own token (so a double submit is one
//! submission), the new score, the audit event and the owner's notice.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{NewAuditEvent, Page, PageRequest, Property, Result};
use crate::domain::Timestamp;

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema,
            strum::EnumString, strum::IntoStaticStr, strum::Display, strum::EnumIter,
        )]
        // Every text is its variant's name in snake case; said once more
        // for the OpenAPI document, which does not read the per-variant
        // renames through the macro.
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $(
                #[serde(rename = $text)]
                #[strum(serialize = $text)]
                $variant,
            )*
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                self.into()
            }
        }
    };
}

text_enum!(
    /// Where a lead came from.
    LeadSource { ListingPage = "listing_page", Import = "import", Manual = "manual", Social = "social" }
);
text_enum!(
    /// Where a lead is in the sale.
    LeadStatus {
        New = "new",
        Contacted = "contacted",
        Qualified = "qualified",
        Nurturing = "nurturing",
        Won = "won",
        Lost = "lost",
        Unsubscribed = "unsubscribed",
    }
);
text_enum!(
    /// How warm a lead is, from its score.
    Band { Hot = "hot", Warm = "warm", Nurture = "nurture", Monitor = "monitor" }
);
text_enum!(
    /// What happened on a lead's timeline.
    LeadEventKind {
        FormSubmitted = "form_submitted",
        Created = "created",
        Note = "note",
        ReplyLogged = "reply_logged",
        StatusChanged = "status_changed",
        OwnerChanged = "owner_changed",
        SequenceStarted = "sequence_started",
        EmailQueued = "email_queued",
        EmailDrafted = "email_drafted",
        SequenceStopped = "sequence_stopped",
        Unsubscribed = "unsubscribed",
        EmailBounced = "email_bounced",
    }
);

/// Why no sequence of a tenant mails an address again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression {
    /// The person unsubscribed (a link, the one-click header, or a member
    /// setting the status).
    Unsubscribed,
    /// The address's mail server refused it for good.
    Bounced,
}

impl Suppression {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "bounced",
        }
    }

    /// What a stopped sequence says.
    pub fn stop_reason(self) -> &'static str {
        match self {
            Self::Unsubscribed => "unsubscribed",
            Self::Bounced => "the address bounced (its mail server refused it for good)",
        }
    }
}

/// One named signal of a score: its value (0 to 1), its weight, and what
/// it added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Signal {
    pub name: String,
    /// What it measures, in a realtor's words.
    pub explanation: String,
    pub value: f64,
    pub weight: f64,
    /// `value × weight`, in points of the score.
    pub points: f64,
}

/// A lead's score: 0 to 100, its band, and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeadScore {
    pub score: i64,
    pub band: Band,
    pub signals: Vec<Signal>,
}

/// What the scorer reads about a lead.
#[derive(Debug, Clone, Default)]
pub struct LeadFacts {
    pub has_name: bool,
    pub has_phone: bool,
    /// Form submissions and replies logged, all time.
    pub conversations: i64,
    /// Interactions of any kind in the last 30 days.
    pub recent_interactions: i64,
    pub last_interaction_at: Option<Timestamp>,
    pub properties: i64,
    /// The texts the person wrote (the latest 20), newest first.
    pub messages: Vec<String>,
}

/// Computes a score from facts; the service's scoring engine.
pub trait Scorer: Send + Sync {
    fn score(&self, facts: &LeadFacts, now: Timestamp) -> LeadScore;
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lead {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub source: LeadSource,
    pub status: LeadStatus,
    pub owner_id: Option<Uuid>,
    pub owner_name: Option<String>,
    pub consent_at: Option<Timestamp>,
    pub consent_text: Option<String>,
    pub score: LeadScore,
    pub interactions: i64,
    pub last_interaction_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LeadEvent {
    pub id: Uuid,
    pub kind: LeadEventKind,
    pub property_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub body: String,
    pub created_at: Timestamp,
}

/// Which leads a list shows.
#[derive(Debug, Clone, Default)]
pub struct LeadFilter {
    pub band: Option<Band>,
    pub status: Option<LeadStatus>,
    pub property_id: Option<Uuid>,
    pub owner_id: Option<Uuid>,
    /// Highest score first (else newest first).
    pub by_score: bool,
}

/// A public form's submission, checked.
#[derive(Debug, Clone)]
pub struct Submission {
    pub tenant_id: Uuid,
    pub property_id: Uuid,
    /// The form's own token: a second submission with it changes nothing.
    pub token: String,
    pub name: String,
    /// As typed (trimmed); found case-insensitively.
    pub email: String,
    pub phone: String,
    pub message: String,
    pub consent_text: String,
    /// Who a new lead belongs to.
    pub owner_id: Option<Uuid>,
    /// Starts the tenant's automatic follow-up sequences for the lead (the
    /// caller checked e-mail may be sent: a postal address is set).
    pub follow_up: bool,
}

/// What a submission did.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub lead: Lead,
    pub new_lead: bool,
    /// The token was seen before: nothing was written.
    pub repeated: bool,
}

/// A lead entered by a member.
#[derive(Debug, Clone)]
pub struct NewLead {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub email: String,
    pub phone: String,
    pub source: LeadSource,
    /// `new` for a lead entered by hand; an import may bring the status
    /// the lead had elsewhere (`unsubscribed` suppresses the address).
    pub status: LeadStatus,
    pub owner_id: Option<Uuid>,
    pub property_ids: Vec<Uuid>,
    pub note: String,
    /// The wording the person agreed to and when, if known.
    pub consent: Option<(String, Timestamp)>,
    pub actor_id: Option<Uuid>,
}

/// A change to a lead by a member: any of status, owner, a note, a reply
/// logged.
#[derive(Debug, Clone, Default)]
pub struct LeadChange {
    pub status: Option<LeadStatus>,
    /// `Some(None)` clears the owner.
    pub owner_id: Option<Option<Uuid>>,
    pub note: Option<String>,
    pub reply: Option<String>,
    pub actor_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealEstateSettings {
    pub consent_text: String,
    pub postal_address: String,
    /// `letter` or `a4`: the paper flyers are laid out for.
    pub paper_size: String,
    /// `#rrggbb`.
    pub brand_color: String,
    /// `#rrggbb`.
    pub accent_color: String,
    /// The stored logo's media type, if there is one (read only: set with
    /// `set_real_estate_logo`).
    pub logo_type: Option<String>,
    /// Lead-scoring weights fitted to the tenant's outcomes (JSON) and how
    /// the fit went (JSON); read only: set with `set_score_weights`.
    pub score_weights: Option<String>,
    pub score_fit: Option<String>,
}

#[async_trait]
pub trait LeadStore {
    async fn real_estate_settings(&self, tenant_id: Uuid) -> Result<Option<RealEstateSettings>>;
    async fn set_real_estate_settings(
        &self,
        tenant_id: Uuid,
        settings: &RealEstateSettings,
        audit: &NewAuditEvent,
    ) -> Result<()>;

    /// Records that the tenant's logo file was stored (`Some(media type)`)
    /// or removed; `defaults` fill a tenant's settings row if it has none.
    async fn set_real_estate_logo(
        &self,
        tenant_id: Uuid,
        logo_type: Option<&str>,
        defaults: &RealEstateSettings,
        audit: &NewAuditEvent,
    ) -> Result<()>;

    /// Sets (or with `None`, clears) the tenant's fitted scoring weights
    /// and rescores every lead of the tenant with `scorer`, at once.
    async fn set_score_weights(
        &self,
        tenant_id: Uuid,
        weights: Option<(&str, &str)>,
        defaults: &RealEstateSettings,
        scorer: &dyn Scorer,
        audit: &NewAuditEvent,
    ) -> Result<()>;

    /// Publishes (giving it `new_slug` unless it has a slug already) or
    /// unpublishes a property's public page.
    async fn publish_property(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        new_slug: &str,
        publish: bool,
        audit: &NewAuditEvent,
    ) -> Result<Property>;
    /// A published property by its page's slug, in any tenant.
    async fn published_property(&self, slug: &str) -> Result<Option<Property>>;

    /// Records a public form's submission (see the module's doc).
    async fn submit_lead(
        &self,
        submission: &Submission,
        scorer: &dyn Scorer,
        audit: &NewAuditEvent,
    ) -> Result<Submitted>;
    /// Creates leads (by hand, or a whole import) in one transaction, all
    /// or none; `Conflict` `lead_exists` when an address has one, `Invalid`
    /// `property_ids` for a property not in the tenant.
    async fn create_leads(
        &self,
        leads: &[NewLead],
        scorer: &dyn Scorer,
        audit: &NewAuditEvent,
    ) -> Result<Vec<Lead>>;
    /// Which of these e-mail addresses (lower case) have a lead.
    async fn lead_emails_taken(&self, tenant_id: Uuid, emails: &[String]) -> Result<Vec<String>>;
    /// The tenant's properties with these references (a reference may be
    /// on a property of each project).
    async fn properties_by_reference(
        &self,
        tenant_id: Uuid,
        references: &[String],
    ) -> Result<Vec<(String, Uuid)>>;
    /// Which of these ids are the tenant's properties.
    async fn existing_properties(&self, tenant_id: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>>;
    async fn update_lead(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        change: &LeadChange,
        scorer: &dyn Scorer,
        audit: &NewAuditEvent,
    ) -> Result<Lead>;
    async fn lead(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Lead>>;
    async fn leads(&self, tenant_id: Uuid, filter: &LeadFilter, page: PageRequest) -> Result<Page<Lead>>;
    /// How many of the tenant's leads are won and how many lost.
    async fn lead_outcome_counts(&self, tenant_id: Uuid) -> Result<(i64, i64)>;
    /// Oldest first.
    async fn lead_events(&self, tenant_id: Uuid, id: Uuid) -> Result<Vec<LeadEvent>>;
    /// The properties a lead asked about.
    async fn lead_property_ids(&self, tenant_id: Uuid, id: Uuid) -> Result<Vec<Uuid>>;
}
