//! Leads in the web UI: the public listing page (no session, no cookie:
//! photos, facts, the agent's contact and the contact form), the lead
//! inbox (filters, by score or recency) with the organisation's
//! real-estate settings, and a lead's page (score breakdown, timeline,
//! status, owner, notes and replies), and the CSV import of leads.

use std::collections::HashMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::csv_import::ImportPage;
use super::page::{FormErrors, Shell, UiError, every, render_form, see_other};
use super::session::{Path, Query, Submit, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::api::extract::Meta;
use crate::api::pagination::encode_cursor;
use crate::domain::Permission;
use crate::error::Error;
use crate::service::{
    ImportReport, LEAD_IMPORT_COLUMNS, LeadParams, LeadView, ListingForm, MAX_IMPORT_BYTES, PhotoSize,
    PublicListing, RealEstateSettingsView, ScoringView, UpdateLead,
};
use crate::store::{Band, LeadStatus, PageRequest};

// ----- The public listing page -------------------------------------------------

struct PublicPhoto {
    src: String,
    full: String,
    alt: String,
}

#[derive(Template)]
#[template(path = "listing_public.html")]
struct ListingPage {
    css: &'static str,
    action: String,
    title: String,
    price: String,
    facts: String,
    status: &'static str,
    type_label: &'static str,
    year_built: Option<i64>,
    features: Vec<String>,
    description: String,
    agent_name: String,
    agent_contact: String,
    organisation: String,
    photos: Vec<PublicPhoto>,
    consent_text: String,
    token: String,
    form: ListingForm,
    errors: FormErrors,
    thanks: bool,
}

impl ListingPage {
    fn value(&self, field: &str) -> &str {
        match field {
            "name" => &self.form.name,
            "email" => &self.form.email,
            "phone" => &self.form.phone,
            "message" => &self.form.message,
            _ => "",
        }
    }
}

fn listing_page(
    slug: &str,
    listing: PublicListing,
    form: ListingForm,
    errors: FormErrors,
    thanks: bool,
) -> Response {
    let p = &listing.property;
    let f = &p.fields;
    let base = format!("/l/{slug}");
    let view = crate::service::PropertyFacts::of(p);
    let page = ListingPage {
        css: super::assets::css_url(),
        action: base.clone(),
        title: f.address(),
        price: view.price,
        facts: view.facts,
        status: f.status.label(),
        type_label: f.property_type.label(),
        year_built: f.year_built,
        features: f.features.clone(),
        description: f.description.clone(),
        agent_name: f.agent_name.clone(),
        agent_contact: f.agent_contact.clone(),
        organisation: listing.organisation.clone(),
        photos: listing
            .photos
            .iter()
            .map(|ph| PublicPhoto {
                src: format!("{base}/photos/{}?size=thumbnail", ph.id),
                full: format!("{base}/photos/{}", ph.id),
                alt: ph.alt.clone(),
            })
            .collect(),
        consent_text: listing.consent_text,
        // A new token for each form shown: a second send of this one is
        // the same submission.
        token: if thanks { String::new() } else { Uuid::from_bytes(rand::random()).simple().to_string() },
        form,
        thanks,
        errors,
    };
    let mut response = render_form(&page, &page.errors);
    response.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn not_found_page() -> Response {
    super::page::error_page(
        StatusCode::NOT_FOUND,
        "This listing is not available",
        "The property may have been sold or taken off the market.",
    )
}

pub async fn public_listing(State(state): State<ApiState>, Path(slug): Path<String>) -> Response {
    match state.app.public_listing(&slug).await {
        Ok(listing) => listing_page(&slug, listing, ListingForm::default(), FormErrors::default(), false),
        Err(Error::NotFound(_)) => not_found_page(),
        Err(e) => UiError::from(e).into_response(),
    }
}

/// The contact form: no session and no CSRF cookie (nothing of a signed-in
/// person is at stake); the token, the honeypot and the rate limits do the
/// guarding.
pub async fn public_submit(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Path(slug): Path<String>,
    body: Bytes,
) -> Response {
    let mut fields: HashMap<String, String> = HashMap::new();
    for (k, v) in form_urlencoded::parse(&body) {
        fields.insert(k.into_owned(), v.into_owned());
    }
    let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let form = ListingForm {
        name: get("name"),
        email: get("email"),
        phone: get("phone"),
        message: get("message"),
        consent: fields.get("consent").cloned(),
        token: get("token"),
        website: get("website"),
    };
    let listing = match state.app.public_listing(&slug).await {
        Ok(listing) => listing,
        Err(Error::NotFound(_)) => return not_found_page(),
        Err(e) => return UiError::from(e).into_response(),
    };
    match state.app.submit_listing_form(&slug, form.clone(), &meta).await {
        Ok(_) => listing_page(&slug, listing, ListingForm::default(), FormErrors::default(), true),
        Err(Error::RateLimited { retry_after }) => {
            let mut errors = FormErrors::default();
            let minutes = retry_after.as_secs().div_ceil(60).max(1);
            errors.add(
                "",
                format!("Too many messages were sent from here. Please try again in {minutes} minute(s)."),
            );
            let mut response = listing_page(&slug, listing, form, errors, false);
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            response
        }
        Err(e @ Error::Invalid { .. }) => match FormErrors::from_error(e) {
            Ok(errors) => listing_page(&slug, listing, form, errors, false),
            Err(e) => e.into_response(),
        },
        Err(e) => UiError::from(e).into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct SizeQuery {
    size: Option<String>,
}

pub async fn public_photo(
    State(state): State<ApiState>,
    Path((slug, photo_id)): Path<(String, Uuid)>,
    Query(q): Query<SizeQuery>,
) -> Response {
    let size = if q.size.as_deref() == Some("thumbnail") { PhotoSize::Thumbnail } else { PhotoSize::Full };
    match state.app.public_photo(&slug, photo_id, size).await {
        Ok(bytes) => {
            ([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "public, max-age=3600")], bytes)
                .into_response()
        }
        Err(Error::NotFound(_)) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => UiError::from(e).into_response(),
    }
}

// ----- The lead inbox ----------------------------------------------------------

struct LeadRow {
    href: String,
    name: String,
    email: String,
    score: i64,
    band: &'static str,
    band_class: &'static str,
    status: String,
    owner: String,
    last: When,
}

fn band_class(band: Band) -> &'static str {
    match band {
        Band::Hot => "bad",
        Band::Warm => "warn",
        Band::Nurture => "good",
        Band::Monitor => "",
    }
}

fn status_label(status: LeadStatus) -> String {
    let s = status.as_str();
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

#[derive(Debug, Default, Deserialize)]
pub struct InboxQuery {
    band: Option<String>,
    status: Option<String>,
    property_id: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "leads.html")]
struct LeadsPage {
    shell: Shell,
    rows: Vec<LeadRow>,
    bands: Vec<Choice>,
    statuses: Vec<Choice>,
    by_score: bool,
    property_id: String,
    next: Option<String>,
    settings: Option<RealEstateSettingsView>,
    settings_action: String,
    logo_action: String,
    scoring: ScoringCard,
    import_href: Option<String>,
    errors: FormErrors,
}

struct WeightRow {
    signal: String,
    default: String,
    current: String,
    /// `up`, `down` or empty: how the fit moved it.
    moved: &'static str,
}

/// The lead-scoring card: the weights in use and the last fit.
struct ScoringCard {
    weights: Vec<WeightRow>,
    fitted: bool,
    /// "Fitted 3 Dec 2026 to 12 won and 15 lost leads."
    fit_summary: String,
    /// "A won lead outscored a lost one 71% of the time before, 88% after."
    fit_effect: String,
    won: usize,
    lost: usize,
    needed_each: usize,
    can_fit: bool,
    can_manage: bool,
    fit_action: String,
    reset_action: String,
}

fn percent(share: f64) -> String {
    format!("{:.0}%", share * 100.0)
}

fn scoring_card(page: &TenantPage, view: &ScoringView) -> ScoringCard {
    let weights = view
        .weights
        .iter()
        .map(|w| WeightRow {
            signal: w.signal.clone(),
            default: format!("{:.1}", w.default),
            current: format!("{:.1}", w.current),
            moved: if w.current > w.default + 0.05 {
                "up"
            } else if w.current < w.default - 0.05 {
                "down"
            } else {
                ""
            },
        })
        .collect();
    let (fit_summary, fit_effect) = view.fit.as_ref().map_or_else(Default::default, |fit| {
        (
            format!(
                "Fitted {} to {} won and {} lost leads.",
                fit.fitted_at.as_datetime().date(),
                fit.won,
                fit.lost
            ),
            format!(
                "A won lead outscored a lost one {} of the time with the previous weights, {} with these.",
                percent(fit.before),
                percent(fit.after)
            ),
        )
    });
    ScoringCard {
        weights,
        fitted: view.fit.is_some(),
        fit_summary,
        fit_effect,
        won: view.won,
        lost: view.lost,
        needed_each: view.needed_each,
        can_fit: view.won >= view.needed_each && view.lost >= view.needed_each,
        can_manage: page.can(Permission::SettingsManage),
        fit_action: page.path("/leads/scoring/fit"),
        reset_action: page.path("/leads/scoring/reset"),
    }
}

async fn inbox(
    state: &ApiState,
    page: TenantPage,
    q: InboxQuery,
    settings_form: Option<RealEstateSettingsView>,
    errors: FormErrors,
) -> Result<Response, UiError> {
    let band = q.band.as_deref().filter(|b| !b.is_empty()).and_then(|b| b.parse::<Band>().ok());
    let status = q.status.as_deref().filter(|s| !s.is_empty()).and_then(|s| s.parse::<LeadStatus>().ok());
    let property_id = q.property_id.as_deref().and_then(|p| p.parse::<Uuid>().ok());
    let by_score = q.sort.as_deref() == Some("score");
    let params = LeadParams {
        band,
        status,
        property_id,
        sort: by_score.then(|| "score".to_owned()),
        ..LeadParams::default()
    };
    let page_request = super::page::After { cursor: q.cursor.clone() }.page(50)?;
    let found = state.app.leads(&page.access, params, page_request).await?;
    let next = found.next.map(|id| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in
            [("band", &q.band), ("status", &q.status), ("property_id", &q.property_id), ("sort", &q.sort)]
        {
            if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
                s.append_pair(k, v);
            }
        }
        s.append_pair("cursor", &encode_cursor(id));
        format!("{}?{}", page.path("/leads"), s.finish())
    });
    let rows = found
        .items
        .iter()
        .map(|l: &LeadView| LeadRow {
            href: page.path(&format!("/leads/{}", l.id)),
            name: if l.name.is_empty() { "(no name)".into() } else { l.name.clone() },
            email: l.email.clone(),
            score: l.score,
            band: l.band.as_str(),
            band_class: band_class(l.band),
            status: status_label(l.status),
            owner: l.owner_name.clone().unwrap_or_else(|| "nobody".into()),
            last: When::of(l.last_interaction_at),
        })
        .collect();
    let settings = if page.can(Permission::SettingsManage) {
        Some(match settings_form {
            Some(form) => form,
            None => state.app.real_estate_settings(&page.access).await?,
        })
    } else {
        None
    };
    let scoring = scoring_card(&page, &state.app.lead_scoring(&page.access).await?);
    let view = LeadsPage {
        scoring,
        rows,
        bands: [Band::Hot, Band::Warm, Band::Nurture, Band::Monitor]
            .iter()
            .map(|b| Choice {
                value: b.as_str().into(),
                label: b.as_str().into(),
                selected: band == Some(*b),
            })
            .collect(),
        statuses: statuses(status),
        by_score,
        property_id: property_id.map(|p| p.to_string()).unwrap_or_default(),
        next,
        settings,
        settings_action: page.path("/leads/settings"),
        logo_action: page.path("/leads/settings/logo"),
        import_href: page.can(Permission::ActivitiesCreate).then(|| page.path("/leads/import")),
        errors,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

fn statuses(current: Option<LeadStatus>) -> Vec<Choice> {
    [
        LeadStatus::New,
        LeadStatus::Contacted,
        LeadStatus::Qualified,
        LeadStatus::Nurturing,
        LeadStatus::Won,
        LeadStatus::Lost,
        LeadStatus::Unsubscribed,
    ]
    .iter()
    .map(|s| Choice { value: s.as_str().into(), label: status_label(*s), selected: current == Some(*s) })
    .collect()
}

/// The inbox with the listing settings' errors (the logo's upload).
pub(super) async fn inbox_with_errors(
    state: &ApiState,
    page: TenantPage,
    errors: FormErrors,
) -> Result<Response, UiError> {
    inbox(state, page, InboxQuery::default(), None, errors).await
}

pub async fn list(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(q): Query<InboxQuery>,
) -> Result<Response, UiError> {
    inbox(&state, page, q, None, FormErrors::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct SettingsForm {
    consent_text: Option<String>,
    postal_address: Option<String>,
    paper_size: Option<String>,
    brand_color: Option<String>,
    accent_color: Option<String>,
}

pub async fn save_settings(
    State(state): State<ApiState>,
    submit: Submit<SettingsForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let req = RealEstateSettingsView {
        consent_text: form.consent_text.unwrap_or_default(),
        postal_address: form.postal_address.unwrap_or_default(),
        paper_size: form.paper_size.unwrap_or_default(),
        brand_color: form.brand_color.unwrap_or_default(),
        accent_color: form.accent_color.unwrap_or_default(),
        has_logo: false,
    };
    match state.app.set_real_estate_settings(&page.access, req.clone()).await {
        Ok(_) => Ok(see_other(&page.path("/leads#settings"))),
        Err(e @ Error::Invalid { .. }) => {
            let errors = FormErrors::from_error(e)?;
            inbox(&state, page, InboxQuery::default(), Some(req), errors).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Fits the scoring weights to the organisation's outcomes, or resets them.
async fn change_scoring(state: &ApiState, page: TenantPage, fit: bool) -> Result<Response, UiError> {
    let done = if fit {
        state.app.fit_lead_scoring(&page.access).await
    } else {
        state.app.reset_lead_scoring(&page.access).await
    };
    match done {
        Ok(_) => Ok(see_other(&page.path("/leads#scoring"))),
        Err(Error::Conflict { message, .. }) => {
            let mut errors = FormErrors::default();
            errors.add("scoring", message);
            inbox(state, page, InboxQuery::default(), None, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn fit_scoring(
    State(state): State<ApiState>,
    submit: Submit<HashMap<String, String>>,
) -> Result<Response, UiError> {
    change_scoring(&state, submit.page, true).await
}

pub async fn reset_scoring(
    State(state): State<ApiState>,
    submit: Submit<HashMap<String, String>>,
) -> Result<Response, UiError> {
    change_scoring(&state, submit.page, false).await
}

// ----- A lead's page -----------------------------------------------------------

struct TimelineRow {
    what: String,
    body: String,
    when: When,
}

struct PropertyLink {
    href: String,
    address: String,
}

#[derive(Template)]
#[template(path = "lead.html")]
struct LeadPage {
    shell: Shell,
    lead: LeadView,
    band_class: &'static str,
    timeline: Vec<TimelineRow>,
    properties: Vec<PropertyLink>,
    statuses: Vec<Choice>,
    owners: Vec<Choice>,
    action: String,
    can_write: bool,
    consent: Option<When>,
    follow_ups: Vec<FollowUpRow>,
    sequences: Vec<Choice>,
    start_action: String,
    sequences_href: String,
    errors: FormErrors,
}

struct FollowUpStep {
    subject: String,
    when: String,
    state: String,
    class: &'static str,
    /// A drafted e-mail waiting for review: the form to send or skip it.
    draft: Option<DraftForm>,
}

struct DraftForm {
    /// The drafted message's id, for unique element ids.
    id: String,
    action: String,
    subject: String,
    body: String,
}

/// A draft's subject and body as the person last typed them (a refused
/// form shown again keeps them).
type Typed = Option<(Uuid, String, String)>;

struct FollowUpRow {
    name: String,
    state: &'static str,
    /// Still running: it can be stopped.
    running: bool,
    reason: String,
    steps: Vec<FollowUpStep>,
    stop_action: String,
}

/// A lead's sequences as the page shows them: each step's e-mail and how
/// sending it went, or when it is due.
fn follow_up_rows(
    page: &TenantPage,
    lead_id: Uuid,
    enrollments: Vec<crate::service::EnrollmentView>,
    typed: &Typed,
) -> Vec<FollowUpRow> {
    use crate::store::{EnrollmentState, MailState};
    enrollments
        .into_iter()
        .map(|e| {
            let steps = e
                .steps
                .iter()
                .enumerate()
                .map(|(i, step)| {
                    let i = i64::try_from(i).unwrap_or(i64::MAX);
                    let send = e.sends.iter().find(|s| s.step == i);
                    let draft = send.and_then(|s| {
                        let (subject, body) = match typed {
                            Some((id, subject, body)) if *id == s.mail_id => (subject.clone(), body.clone()),
                            _ => (s.draft_subject.clone()?, s.draft_body.clone()?),
                        };
                        Some(DraftForm {
                            id: s.mail_id.to_string(),
                            action: page.path(&format!("/leads/{lead_id}/drafts/{}", s.mail_id)),
                            subject,
                            body,
                        })
                    });
                    let (state, class, when) = match send {
                        Some(s) => {
                            let (state, class) = match s.mail_state {
                                Some(MailState::Draft) => ("waits for your review", "badge warn"),
                                Some(MailState::Sent) => ("sent", "badge good"),
                                Some(MailState::Failed) => ("not sent", "badge bad"),
                                Some(MailState::Unknown) => ("outcome unknown", "badge warn"),
                                Some(_) => ("sending", "badge"),
                                None => ("queued", "badge"),
                            };
                            (state, class, When::of(s.sent_at.unwrap_or(s.queued_at)).text)
                        }
                        None if e.state == EnrollmentState::Active
                            && i == e.next_step
                            && e.writing.is_some() =>
                        {
                            ("being written", "badge", "its personal paragraph first".to_owned())
                        }
                        None if e.state == EnrollmentState::Active && i == e.next_step => match e.next_at {
                            Some(t) => ("due", "badge", When::of(t).text),
                            None => (
                                "waiting",
                                "muted",
                                format!(
                                    "{} {} after the draft above is sent or skipped",
                                    step.wait, step.unit
                                ),
                            ),
                        },
                        None if e.state == EnrollmentState::Active => {
                            ("waiting", "muted", format!("{} {} after the previous", step.wait, step.unit))
                        }
                        None => ("not sent", "muted", String::new()),
                    };
                    FollowUpStep { subject: step.subject.clone(), when, state: state.into(), class, draft }
                })
                .collect();
            FollowUpRow {
                running: e.state == EnrollmentState::Active,
                state: match e.state {
                    _ if e.sends.iter().any(|s| s.mail_state == Some(MailState::Draft)) => {
                        "waiting for review"
                    }
                    EnrollmentState::Active => "active",
                    EnrollmentState::Finished => "finished",
                    EnrollmentState::Stopped => "stopped",
                },
                reason: match (e.stop_reason, e.writing) {
                    (Some(r), _) => format!("Stopped: {r}."),
                    (None, Some(w)) => format!("Now: {w}."),
                    (None, None) => String::new(),
                },
                stop_action: page.path(&format!("/leads/{lead_id}/sequences/{}/stop", e.id)),
                name: e.sequence_name,
                steps,
            }
        })
        .collect()
}

async fn lead_page(
    state: &ApiState,
    page: TenantPage,
    id: Uuid,
    errors: FormErrors,
) -> Result<Response, UiError> {
    lead_page_typed(state, page, id, errors, None).await
}

async fn lead_page_typed(
    state: &ApiState,
    page: TenantPage,
    id: Uuid,
    errors: FormErrors,
    typed: Typed,
) -> Result<Response, UiError> {
    let lead = state.app.lead(&page.access, id).await?;
    let mut properties = Vec::new();
    for property_id in &lead.property_ids {
        if let Ok(p) = state.app.property(&page.access, *property_id).await {
            properties
                .push(PropertyLink { href: page.path(&format!("/properties/{}", p.id)), address: p.address });
        }
    }
    let access = &page.access;
    let members = every(|p| state.app.members(access, p)).await?;
    let timeline = lead
        .timeline
        .iter()
        .map(|e| {
            let who = e.actor_name.clone().unwrap_or_else(|| lead.name.clone());
            let what = match e.kind {
                crate::store::LeadEventKind::FormSubmitted => format!("{who} wrote through a listing page"),
                crate::store::LeadEventKind::Created => format!("{who} entered the lead"),
                crate::store::LeadEventKind::Note => format!("{who} added a note"),
                crate::store::LeadEventKind::ReplyLogged => format!("{who} logged a reply"),
                crate::store::LeadEventKind::StatusChanged => format!("{who} changed the status"),
                crate::store::LeadEventKind::OwnerChanged => format!("{who} changed the owner"),
                crate::store::LeadEventKind::SequenceStarted => match &e.actor_name {
                    Some(name) => format!("{name} started a follow-up sequence"),
                    None => "A follow-up sequence started".into(),
                },
                crate::store::LeadEventKind::EmailQueued => "A follow-up e-mail was queued".into(),
                crate::store::LeadEventKind::EmailDrafted => {
                    "A follow-up e-mail was drafted for review".into()
                }
                crate::store::LeadEventKind::SequenceStopped => "Follow-up stopped".into(),
                crate::store::LeadEventKind::Unsubscribed => format!("{} unsubscribed", lead.name),
                crate::store::LeadEventKind::EmailBounced => "A follow-up e-mail bounced".into(),
            };
            TimelineRow { what, body: e.body.clone(), when: When::of(e.created_at) }
        })
        .collect();
    let view = LeadPage {
        band_class: band_class(lead.band),
        timeline,
        properties,
        statuses: statuses(Some(lead.status)),
        owners: members
            .iter()
            .map(|m| Choice {
                value: m.user_id.to_string(),
                label: m.display_name.to_string(),
                selected: lead.owner_id == Some(m.user_id),
            })
            .collect(),
        action: page.path(&format!("/leads/{id}")),
        can_write: page.can(Permission::ActivitiesUpdate),
        consent: lead.consent_at.map(When::of),
        follow_ups: follow_up_rows(&page, id, state.app.lead_sequences(&page.access, id).await?, &typed),
        sequences: state
            .app
            .sequences(&page.access)
            .await?
            .into_iter()
            .map(|s| Choice { value: s.id.to_string(), label: s.name, selected: false })
            .collect(),
        start_action: page.path(&format!("/leads/{id}/sequences")),
        sequences_href: page.path("/leads/sequences"),
        errors,
        lead,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

pub async fn show(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, id)): Path<(Uuid, Uuid)>,
) -> Result<Response, UiError> {
    lead_page(&state, page, id, FormErrors::default()).await
}

#[derive(Debug, Default, Deserialize)]
pub struct LeadForm {
    status: Option<String>,
    owner_id: Option<String>,
    note: Option<String>,
    reply: Option<String>,
}

pub async fn update(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<LeadForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let mut errors = FormErrors::default();
    let status = match form.status.as_deref() {
        None => None,
        Some(s) => match s.parse::<LeadStatus>() {
            Ok(s) => Some(s),
            Err(_) => {
                errors.add("status", "choose a status from the list");
                None
            }
        },
    };
    let (owner_id, clear_owner) = match form.owner_id.as_deref() {
        None => (None, false),
        Some("none") => (None, true),
        Some(o) => (o.parse::<Uuid>().ok(), false),
    };
    if errors.is_empty() {
        let req = UpdateLead { status, owner_id, clear_owner, note: form.note, reply: form.reply };
        match state.app.update_lead(&page.access, id, req).await {
            Ok(_) => return Ok(see_other(&page.path(&format!("/leads/{id}")))),
            Err(e @ Error::Invalid { .. }) => errors = FormErrors::from_error(e)?,
            Err(e) => return Err(e.into()),
        }
    }
    lead_page(&state, page, id, errors).await
}

/// Publishes or takes down a property's public page, from its page.
pub async fn publish(
    State(state): State<ApiState>,
    Path((_, property_id)): Path<(Uuid, Uuid)>,
    submit: Submit<HashMap<String, String>>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let published = form.get("published").is_some_and(|v| v == "true");
    match state
        .app
        .publish_property(&page.access, property_id, crate::service::PublishProperty { published })
        .await
    {
        Ok(_) => Ok(see_other(&page.path(&format!("/properties/{property_id}#public-page")))),
        Err(Error::Conflict { message, .. }) => {
            let mut errors = FormErrors::default();
            errors.add("publish", super::page::ui_words(&message));
            super::properties::property_page(&state, page, property_id, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

/// The leads of a property, for its page (at most 20, newest first).
pub async fn property_leads(
    state: &ApiState,
    page: &TenantPage,
    property_id: Uuid,
) -> Result<Vec<(String, String, i64, &'static str)>, UiError> {
    let params = LeadParams { property_id: Some(property_id), ..LeadParams::default() };
    let found = state.app.leads(&page.access, params, PageRequest { after: None, limit: 20 }).await?;
    Ok(found
        .items
        .into_iter()
        .map(|l| {
            (
                page.path(&format!("/leads/{}", l.id)),
                if l.name.is_empty() { l.email } else { l.name },
                l.score,
                l.band.as_str(),
            )
        })
        .collect())
}

#[derive(Debug, Default, Deserialize)]
pub struct StartForm {
    sequence_id: Option<String>,
}

pub async fn start_sequence(
    State(state): State<ApiState>,
    Path((_, id)): Path<(Uuid, Uuid)>,
    submit: Submit<StartForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let Some(sequence_id) = form.sequence_id.as_deref().and_then(|s| s.parse::<Uuid>().ok()) else {
        let mut errors = FormErrors::default();
        errors.add("sequence_id", "choose a sequence");
        return lead_page(&state, page, id, errors).await;
    };
    match state.app.start_lead_sequence(&page.access, id, crate::service::StartSequence { sequence_id }).await
    {
        Ok(_) => Ok(see_other(&page.path(&format!("/leads/{id}#follow-up")))),
        Err(Error::Conflict { message, .. } | Error::Invalid { message, .. }) => {
            let mut errors = FormErrors::default();
            errors.add("sequence_id", super::page::capitalise(&message));
            lead_page(&state, page, id, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct DraftSubmit {
    decision: Option<String>,
    subject: Option<String>,
    body: Option<String>,
}

/// Sends (as changed) or skips a follow-up e-mail drafted for review.
pub async fn decide_draft(
    State(state): State<ApiState>,
    Path((_, id, message_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<DraftSubmit>,
) -> Result<Response, UiError> {
    use crate::service::{DecideDraft, DraftChoice};
    let Submit { page, form } = submit;
    let decision =
        if form.decision.as_deref() == Some("skip") { DraftChoice::Skip } else { DraftChoice::Send };
    let (subject, body) = (form.subject.unwrap_or_default(), form.body.unwrap_or_default());
    let req = DecideDraft {
        decision,
        subject: (decision == DraftChoice::Send).then(|| subject.clone()),
        body: (decision == DraftChoice::Send).then(|| body.clone()),
    };
    match state.app.decide_follow_up_draft(&page.access, id, message_id, req).await {
        Ok(()) => Ok(see_other(&page.path(&format!("/leads/{id}#follow-up")))),
        Err(Error::Conflict { message, .. } | Error::Invalid { message, .. }) => {
            let mut errors = FormErrors::default();
            errors.add("draft", super::page::capitalise(&message));
            lead_page_typed(&state, page, id, errors, Some((message_id, subject, body))).await
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn stop_sequence(
    State(state): State<ApiState>,
    Path((_, id, enrollment_id)): Path<(Uuid, Uuid, Uuid)>,
    submit: Submit<crate::ui::flyers::NoFields>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.stop_lead_sequence(&page.access, id, enrollment_id).await?;
    Ok(see_other(&page.path(&format!("/leads/{id}#follow-up"))))
}

#[derive(Template)]
#[template(path = "unsubscribed.html")]
struct UnsubscribedPage {
    css: &'static str,
    js: &'static str,
    done: bool,
}

/// An unsubscribe link from a follow-up e-mail, opened (GET) or posted by
/// a mail client's one-click button (POST, RFC 8058): no sign-in, effective
/// at once, the same answer twice.
pub async fn unsubscribe(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Path(token): Path<String>,
) -> Response {
    let done = match state.app.unsubscribe(&token, &meta).await {
        Ok(done) => done,
        Err(e) => return UiError::from(e).into_response(),
    };
    let view = UnsubscribedPage { css: super::assets::css_url(), js: super::assets::js_url(), done };
    let mut response = super::page::render(&view);
    if !done {
        *response.status_mut() = axum::http::StatusCode::NOT_FOUND;
    }
    response
}

// ----- Importing leads -----------------------------------------------------------

fn import_page(page: TenantPage, errors: FormErrors, report: Option<ImportReport>) -> Response {
    ImportPage {
        title: "Import leads",
        crumb: "Leads",
        action: page.path("/leads/import"),
        cancel: page.path("/leads"),
        one: "lead",
        many: "leads",
        projects: None,
        columns: LEAD_IMPORT_COLUMNS.to_vec(),
        hint: "In properties, give property references (or ids) separated by |; in owner, a member's \
               e-mail address. A status is new, contacted, qualified, nurturing, won, lost or \
               unsubscribed (an unsubscribed address is never mailed). consent_text and consented_at \
               (like 2026-03-01) go together. An address that is a lead already is refused, and \
               imported leads start no follow-up sequence.",
        errors,
        report,
        shell: page.shell,
    }
    .render()
}

pub async fn import_form(page: TenantPage) -> Result<Response, UiError> {
    page.access.require(Permission::ActivitiesCreate)?;
    Ok(import_page(page, FormErrors::default(), None))
}

pub async fn import(
    State(state): State<ApiState>,
    page: TenantPage,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, UiError> {
    let (fields, file, mut errors) =
        super::properties::multipart_form(&state, &page, &headers, multipart, MAX_IMPORT_BYTES).await?;
    let mut report = None;
    if errors.is_empty() {
        match file {
            None => errors.add("file", "choose a CSV file"),
            Some(bytes) => {
                let dry_run = fields.get("dry_run").is_some_and(|v| v == "on");
                match state.app.import_leads(&page.access, &bytes, dry_run).await {
                    Ok(r) => report = Some(r),
                    Err(e @ (Error::Forbidden(_) | Error::NotFound(_))) => return Err(e.into()),
                    Err(e) => errors = FormErrors::from_error(e)?,
                }
            }
        }
    }
    Ok(import_page(page, errors, report))
}
