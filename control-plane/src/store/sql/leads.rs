//! [`LeadStore`] for [`SqlStore`]: leads, their timeline and interests,
//! public pages of properties, and the tenant's real-estate settings.

use super::properties::{PROPERTY_SELECT, PropertyRow};
use super::*;
use crate::store::{
    Band, Lead, LeadChange, LeadEvent, LeadEventKind, LeadFacts, LeadFilter, LeadScore, LeadSource,
    LeadStatus, LeadStore, NewLead, Property, RealEstateSettings, Scorer, Submission, Submitted, Suppression,
};

#[derive(FromRow)]
struct LeadRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    email: String,
    phone: String,
    source: String,
    status: String,
    owner_id: Option<Uuid>,
    owner_name: Option<String>,
    consent_at: Option<Timestamp>,
    consent_text: Option<String>,
    score: i64,
    band: String,
    score_detail: String,
    interactions: i64,
    last_interaction_at: Timestamp,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// Values bound in one `IN (…)` list: well under SQLite's and PostgreSQL's
/// limits on parameters.
const IN_CHUNK: usize = 500;

impl TryFrom<LeadRow> for Lead {
    type Error = StoreError;
    fn try_from(r: LeadRow) -> Result<Lead> {
        Ok(Lead {
            id: r.id,
            tenant_id: r.tenant_id,
            name: r.name,
            email: r.email,
            phone: r.phone,
            source: r.source.parse::<LeadSource>().map_err(corrupt("leads.source"))?,
            status: r.status.parse::<LeadStatus>().map_err(corrupt("leads.status"))?,
            owner_id: r.owner_id,
            owner_name: r.owner_name,
            consent_at: r.consent_at,
            consent_text: r.consent_text,
            score: LeadScore {
                score: r.score,
                band: r.band.parse::<Band>().map_err(corrupt("leads.band"))?,
                signals: serde_json::from_str(&r.score_detail).map_err(corrupt("leads.score_detail"))?,
            },
            interactions: r.interactions,
            last_interaction_at: r.last_interaction_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const LEAD_SELECT: &str = "SELECT l.id, l.tenant_id, l.name, l.email, l.phone, l.source, l.status, l.owner_id, \
     u.display_name AS owner_name, l.consent_at, l.consent_text, l.score, l.band, l.score_detail, l.interactions, \
     l.last_interaction_at, l.created_at, l.updated_at FROM leads l LEFT JOIN users u ON u.id = l.owner_id";

#[derive(FromRow)]
struct EventRow {
    id: Uuid,
    kind: String,
    property_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    actor_name: Option<String>,
    body: String,
    created_at: Timestamp,
}

impl TryFrom<EventRow> for LeadEvent {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<LeadEvent> {
        Ok(LeadEvent {
            id: r.id,
            kind: r.kind.parse::<LeadEventKind>().map_err(corrupt("lead_events.kind"))?,
            property_id: r.property_id,
            actor_id: r.actor_id,
            actor_name: r.actor_name,
            body: r.body,
            created_at: r.created_at,
        })
    }
}

/// The person's own words and replies count as conversations.
const CONVERSATION_KINDS: &str = "('form_submitted', 'reply_logged')";

pub(super) struct NewEvent<'a> {
    pub tenant_id: Uuid,
    pub lead_id: Uuid,
    pub kind: LeadEventKind,
    pub property_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub body: &'a str,
    pub submission: Option<&'a str>,
    pub at: Timestamp,
}

impl<'a> NewEvent<'a> {
    pub(super) fn by_member(
        tenant_id: Uuid,
        lead_id: Uuid,
        actor_id: Option<Uuid>,
        kind: LeadEventKind,
        body: &'a str,
        at: Timestamp,
    ) -> Self {
        Self { tenant_id, lead_id, kind, property_id: None, actor_id, body, submission: None, at }
    }
}

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
    pub(super) async fn fetch_lead(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Lead>> {
        let row: Option<LeadRow> =
            sqlx::query_as(sql(&[LEAD_SELECT, " WHERE l.tenant_id = $1 AND l.id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        row.map(Lead::try_from).transpose()
    }

    pub(super) async fn insert_lead_event(conn: &mut DB::Connection, e: &NewEvent<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO lead_events (id, tenant_id, lead_id, kind, property_id, actor_id, body, submission, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(crate::domain::new_id())
        .bind(e.tenant_id)
        .bind(e.lead_id)
        .bind(e.kind.as_str())
        .bind(e.property_id)
        .bind(e.actor_id)
        .bind(e.body)
        .bind(e.submission.map(str::to_owned))
        .bind(e.at)
        .execute(&mut *conn)
        .await?;
        sqlx::query(
            "UPDATE leads SET interactions = interactions + 1, last_interaction_at = $2, updated_at = $2 WHERE id = $1",
        )
        .bind(e.lead_id)
        .bind(e.at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn add_interest(
        conn: &mut DB::Connection,
        lead_id: Uuid,
        property_id: Uuid,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO lead_properties (lead_id, property_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (lead_id, property_id) DO NOTHING",
        )
        .bind(lead_id)
        .bind(property_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Recomputes and stores a lead's score from its rows.
    async fn rescore(
        conn: &mut DB::Connection,
        lead_id: Uuid,
        scorer: &dyn Scorer,
        now: Timestamp,
    ) -> Result<()> {
        let (name, phone, last): (String, String, Timestamp) =
            sqlx::query_as("SELECT name, phone, last_interaction_at FROM leads WHERE id = $1")
                .bind(lead_id)
                .fetch_one(&mut *conn)
                .await?;
        let conversations: i64 = sqlx::query_scalar(sql(&[
            "SELECT COUNT(*) FROM lead_events WHERE lead_id = $1 AND kind IN ",
            CONVERSATION_KINDS,
        ]))
        .bind(lead_id)
        .fetch_one(&mut *conn)
        .await?;
        let recent: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM lead_events WHERE lead_id = $1 AND created_at >= $2")
                .bind(lead_id)
                .bind(now - time::Duration::days(30))
                .fetch_one(&mut *conn)
                .await?;
        let properties: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM lead_properties WHERE lead_id = $1")
            .bind(lead_id)
            .fetch_one(&mut *conn)
            .await?;
        let messages: Vec<String> = sqlx::query_scalar(sql(&[
            "SELECT body FROM lead_events WHERE lead_id = $1 AND kind IN ",
            CONVERSATION_KINDS,
            " ORDER BY id DESC LIMIT 20",
        ]))
        .bind(lead_id)
        .fetch_all(&mut *conn)
        .await?;
        let facts = LeadFacts {
            has_name: !name.trim().is_empty(),
            has_phone: !phone.trim().is_empty(),
            conversations,
            recent_interactions: recent,
            last_interaction_at: Some(last),
            properties,
            messages,
        };
        let score = scorer.score(&facts, now);
        sqlx::query("UPDATE leads SET score = $2, band = $3, score_detail = $4 WHERE id = $1")
            .bind(lead_id)
            .bind(score.score)
            .bind(score.band.as_str())
            .bind(to_json(&score.signals)?)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Inserts a lead with its `lead.created` webhook event.
    #[allow(clippy::too_many_arguments)]
    async fn insert_lead(
        conn: &mut DB::Connection,
        id: Uuid,
        tenant_id: Uuid,
        name: &str,
        email: &str,
        phone: &str,
        source: LeadSource,
        owner_id: Option<Uuid>,
        consent: Option<(&str, Timestamp)>,
        at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO leads (id, tenant_id, name, email, email_normalized, phone, source, status, owner_id, \
             consent_at, consent_text, score, band, score_detail, interactions, last_interaction_at, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'new', $8, $9, $10, 0, 'monitor', '[]', 0, $11, $11, $11)",
        )
        .bind(id)
        .bind(tenant_id)
        .bind(name)
        .bind(email)
        .bind(email.to_lowercase())
        .bind(phone)
        .bind(source.as_str())
        .bind(owner_id)
        .bind(consent.map(|(_, at)| at))
        .bind(consent.map(|(text, _)| text.to_owned()))
        .bind(at)
        .execute(&mut *conn)
        .await
        .map_err(|e| unique_violation(e, "lead_exists", "a lead with this e-mail address exists already"))?;
        // Who the lead is stays here: the event names it by id only.
        let event = crate::store::NewWebhookEvent::new(
            tenant_id,
            crate::store::WebhookEventKind::LeadCreated,
            format!("A new lead ({})", source.as_str().replace('_', " ")),
            serde_json::json!({ "lead_id": id, "source": source.as_str(), "owner_id": owner_id }),
        );
        Self::insert_webhook_events(conn, std::slice::from_ref(&event), at).await
    }
}

#[async_trait]
impl<DB> LeadStore for SqlStore<DB>
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
    async fn real_estate_settings(&self, tenant_id: Uuid) -> Result<Option<RealEstateSettings>> {
        type Row = (String, String, String, String, String, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> = sqlx::query_as(
            "SELECT consent_text, postal_address, paper_size, brand_color, accent_color, logo_type, \
             score_weights, score_fit FROM real_estate_settings WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(
            |(
                consent_text,
                postal_address,
                paper_size,
                brand_color,
                accent_color,
                logo_type,
                score_weights,
                score_fit,
            )| {
                RealEstateSettings {
                    consent_text,
                    postal_address,
                    paper_size,
                    brand_color,
                    accent_color,
                    logo_type,
                    score_weights,
                    score_fit,
                }
            },
        ))
    }

    async fn set_real_estate_settings(
        &self,
        tenant_id: Uuid,
        settings: &RealEstateSettings,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO real_estate_settings (tenant_id, consent_text, postal_address, paper_size, \
             brand_color, accent_color, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id) DO UPDATE SET consent_text = $2, postal_address = $3, \
             paper_size = $4, brand_color = $5, accent_color = $6, updated_at = $7",
        )
        .bind(tenant_id)
        .bind(settings.consent_text.as_str())
        .bind(settings.postal_address.as_str())
        .bind(settings.paper_size.as_str())
        .bind(settings.brand_color.as_str())
        .bind(settings.accent_color.as_str())
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_real_estate_logo(
        &self,
        tenant_id: Uuid,
        logo_type: Option<&str>,
        defaults: &RealEstateSettings,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO real_estate_settings (tenant_id, consent_text, postal_address, paper_size, \
             brand_color, accent_color, logo_type, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (tenant_id) DO UPDATE SET logo_type = $7, updated_at = $8",
        )
        .bind(tenant_id)
        .bind(defaults.consent_text.as_str())
        .bind(defaults.postal_address.as_str())
        .bind(defaults.paper_size.as_str())
        .bind(defaults.brand_color.as_str())
        .bind(defaults.accent_color.as_str())
        .bind(logo_type.map(str::to_owned))
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_score_weights(
        &self,
        tenant_id: Uuid,
        weights: Option<(&str, &str)>,
        defaults: &RealEstateSettings,
        scorer: &dyn Scorer,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let now = audit.occurred_at;
        sqlx::query(
            "INSERT INTO real_estate_settings (tenant_id, consent_text, postal_address, paper_size, \
             brand_color, accent_color, score_weights, score_fit, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (tenant_id) DO UPDATE SET score_weights = $7, score_fit = $8, updated_at = $9",
        )
        .bind(tenant_id)
        .bind(defaults.consent_text.as_str())
        .bind(defaults.postal_address.as_str())
        .bind(defaults.paper_size.as_str())
        .bind(defaults.brand_color.as_str())
        .bind(defaults.accent_color.as_str())
        .bind(weights.map(|(w, _)| w.to_owned()))
        .bind(weights.map(|(_, f)| f.to_owned()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM leads WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_all(&mut *tx)
            .await?;
        for id in ids {
            Self::rescore(&mut tx, id, scorer, now).await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn publish_property(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        new_slug: &str,
        publish: bool,
        audit: &NewAuditEvent,
    ) -> Result<Property> {
        let mut tx = self.write.begin().await?;
        let found: Option<Uuid> = sqlx::query_scalar(sql(&[
            "SELECT id FROM properties WHERE tenant_id = $1 AND id = $2",
            DB::FOR_UPDATE,
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        found.ok_or(StoreError::NotFound)?;
        let published_at = publish.then_some(audit.occurred_at);
        sqlx::query(
            "UPDATE properties SET public_slug = COALESCE(public_slug, $3), published_at = $4 \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(new_slug)
        .bind(published_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        let row: PropertyRow =
            sqlx::query_as(sql(&[PROPERTY_SELECT, " WHERE p.tenant_id = $1 AND p.id = $2"]))
                .bind(tenant_id)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Property::try_from(row)
    }

    async fn published_property(&self, slug: &str) -> Result<Option<Property>> {
        let row: Option<PropertyRow> = sqlx::query_as(sql(&[
            PROPERTY_SELECT,
            " WHERE p.public_slug = $1 AND p.published_at IS NOT NULL",
        ]))
        .bind(slug)
        .fetch_optional(&self.read)
        .await?;
        row.map(Property::try_from).transpose()
    }

    async fn submit_lead(
        &self,
        s: &Submission,
        scorer: &dyn Scorer,
        audit: &NewAuditEvent,
    ) -> Result<Submitted> {
        let mut tx = self.write.begin().await?;
        // The tenant's lock orders concurrent submissions from one address.
        Self::lock_tenant(&mut tx, s.tenant_id).await?;
        let seen: Option<Uuid> =
            sqlx::query_scalar("SELECT lead_id FROM lead_events WHERE tenant_id = $1 AND submission = $2")
                .bind(s.tenant_id)
                .bind(s.token.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(lead_id) = seen {
            let lead = Self::fetch_lead(&mut tx, s.tenant_id, lead_id).await?.ok_or(StoreError::NotFound)?;
            tx.commit().await?;
            return Ok(Submitted { lead, new_lead: false, repeated: true });
        }
        let now = audit.occurred_at;
        let existing: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM leads WHERE tenant_id = $1 AND email_normalized = $2")
                .bind(s.tenant_id)
                .bind(s.email.to_lowercase())
                .fetch_optional(&mut *tx)
                .await?;
        let (lead_id, new_lead) = match existing {
            Some(id) => {
                // A newer consent replaces the older one; a name or phone
                // given now fills what was missing.
                sqlx::query(
                    "UPDATE leads SET consent_at = $2, consent_text = $3, \
                     name = CASE WHEN name = '' THEN $4 ELSE name END, \
                     phone = CASE WHEN phone = '' THEN $5 ELSE phone END WHERE id = $1",
                )
                .bind(id)
                .bind(now)
                .bind(s.consent_text.as_str())
                .bind(s.name.as_str())
                .bind(s.phone.as_str())
                .execute(&mut *tx)
                .await?;
                (id, false)
            }
            None => {
                let id = crate::domain::new_id();
                Self::insert_lead(
                    &mut tx,
                    id,
                    s.tenant_id,
                    &s.name,
                    &s.email,
                    &s.phone,
                    LeadSource::ListingPage,
                    s.owner_id,
                    Some((&s.consent_text, now)),
                    now,
                )
                .await?;
                (id, true)
            }
        };
        Self::add_interest(&mut tx, lead_id, s.property_id, now).await?;
        Self::insert_lead_event(
            &mut tx,
            &NewEvent {
                tenant_id: s.tenant_id,
                lead_id,
                kind: LeadEventKind::FormSubmitted,
                property_id: Some(s.property_id),
                actor_id: None,
                body: &s.message,
                submission: Some(&s.token),
                at: now,
            },
        )
        .await?;
        if s.follow_up && !s.consent_text.is_empty() {
            let rows: Vec<(Uuid, String, String, bool, Timestamp, Timestamp)> = sqlx::query_as(
                "SELECT id, name, steps, auto_start, created_at, updated_at FROM sequences \
                 WHERE tenant_id = $1 AND auto_start ORDER BY name, id",
            )
            .bind(s.tenant_id)
            .fetch_all(&mut *tx)
            .await?;
            for (id, name, steps, auto_start, created_at, updated_at) in rows {
                let steps = serde_json::from_str(&steps).map_err(corrupt("sequence steps"))?;
                let sequence = crate::store::Sequence {
                    id,
                    tenant_id: s.tenant_id,
                    name,
                    steps,
                    auto_start,
                    created_at,
                    updated_at,
                };
                Self::start_sequence(&mut tx, lead_id, &sequence, None, now, false).await?;
            }
        }
        Self::rescore(&mut tx, lead_id, scorer, now).await?;
        let mut audit = audit.clone();
        audit.resource_type = Some("lead");
        audit.resource_id = Some(lead_id.to_string());
        Self::insert_audit(&mut tx, &audit).await?;
        let lead = Self::fetch_lead(&mut tx, s.tenant_id, lead_id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(Submitted { lead, new_lead, repeated: false })
    }

    async fn create_leads(
        &self,
        leads: &[NewLead],
        scorer: &dyn Scorer,
        audit: &NewAuditEvent,
    ) -> Result<Vec<Lead>> {
        let mut tx = self.write.begin().await?;
        let now = audit.occurred_at;
        let mut created = Vec::with_capacity(leads.len());
        for l in leads {
            let consent = l.consent.as_ref().map(|(text, at)| (text.as_str(), *at));
            Self::insert_lead(
                &mut tx,
                l.id,
                l.tenant_id,
                &l.name,
                &l.email,
                &l.phone,
                l.source,
                l.owner_id,
                consent,
                now,
            )
            .await?;
            for property_id in &l.property_ids {
                let found: Option<Uuid> =
                    sqlx::query_scalar("SELECT id FROM properties WHERE tenant_id = $1 AND id = $2")
                        .bind(l.tenant_id)
                        .bind(*property_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if found.is_none() {
                    return Err(StoreError::Invalid {
                        field: "property_ids",
                        message: format!("{property_id} is not a property of this organisation"),
                    });
                }
                Self::add_interest(&mut tx, l.id, *property_id, now).await?;
            }
            let event = NewEvent {
                tenant_id: l.tenant_id,
                lead_id: l.id,
                kind: LeadEventKind::Created,
                property_id: l.property_ids.first().copied(),
                actor_id: l.actor_id,
                body: &l.note,
                submission: None,
                at: now,
            };
            Self::insert_lead_event(&mut tx, &event).await?;
            if l.status != LeadStatus::New {
                sqlx::query("UPDATE leads SET status = $2 WHERE id = $1")
                    .bind(l.id)
                    .bind(l.status.as_str())
                    .execute(&mut *tx)
                    .await?;
                let body = format!("{} → {}", LeadStatus::New, l.status);
                let changed = NewEvent::by_member(
                    l.tenant_id,
                    l.id,
                    l.actor_id,
                    LeadEventKind::StatusChanged,
                    &body,
                    now,
                );
                Self::insert_lead_event(&mut tx, &changed).await?;
                if l.status == LeadStatus::Unsubscribed {
                    Self::suppress_lead(
                        &mut tx,
                        l.tenant_id,
                        l.id,
                        l.actor_id,
                        Suppression::Unsubscribed,
                        now,
                    )
                    .await?;
                }
            }
            Self::rescore(&mut tx, l.id, scorer, now).await?;
            created.push(Self::fetch_lead(&mut tx, l.tenant_id, l.id).await?.ok_or(StoreError::NotFound)?);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn lead_emails_taken(&self, tenant_id: Uuid, emails: &[String]) -> Result<Vec<String>> {
        let mut conn = self.read.acquire().await?;
        let mut taken = Vec::new();
        for chunk in emails.chunks(IN_CHUNK) {
            let query = format!(
                "SELECT email_normalized FROM leads WHERE tenant_id = $1 AND email_normalized IN ({})",
                placeholders(2, chunk.len())
            );
            let mut select = sqlx::query_scalar(sqlx::AssertSqlSafe(query)).bind(tenant_id);
            for email in chunk {
                select = select.bind(email.to_lowercase());
            }
            let found: Vec<String> = select.fetch_all(&mut *conn).await?;
            taken.extend(found);
        }
        Ok(taken)
    }

    async fn properties_by_reference(
        &self,
        tenant_id: Uuid,
        references: &[String],
    ) -> Result<Vec<(String, Uuid)>> {
        let mut conn = self.read.acquire().await?;
        let mut found = Vec::new();
        for chunk in references.chunks(IN_CHUNK) {
            let query = format!(
                "SELECT reference, id FROM properties WHERE tenant_id = $1 AND reference IN ({}) \
                 ORDER BY created_at, id",
                placeholders(2, chunk.len())
            );
            let mut select = sqlx::query_as(sqlx::AssertSqlSafe(query)).bind(tenant_id);
            for reference in chunk {
                select = select.bind(reference.as_str());
            }
            let rows: Vec<(String, Uuid)> = select.fetch_all(&mut *conn).await?;
            found.extend(rows);
        }
        Ok(found)
    }

    async fn existing_properties(&self, tenant_id: Uuid, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        let mut conn = self.read.acquire().await?;
        let mut found = Vec::new();
        for chunk in ids.chunks(IN_CHUNK) {
            let query = format!(
                "SELECT id FROM properties WHERE tenant_id = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut select = sqlx::query_scalar(sqlx::AssertSqlSafe(query)).bind(tenant_id);
            for id in chunk {
                select = select.bind(*id);
            }
            let rows: Vec<Uuid> = select.fetch_all(&mut *conn).await?;
            found.extend(rows);
        }
        Ok(found)
    }

    async fn update_lead(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        change: &LeadChange,
        scorer: &dyn Scorer,
        audit: &NewAuditEvent,
    ) -> Result<Lead> {
        let mut tx = self.write.begin().await?;
        let current: Option<(String, Option<Uuid>)> = sqlx::query_as(sql(&[
            "SELECT status, owner_id FROM leads WHERE tenant_id = $1 AND id = $2",
            DB::FOR_UPDATE,
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let (status, owner) = current.ok_or(StoreError::NotFound)?;
        let now = audit.occurred_at;
        let event = |kind, body| NewEvent::by_member(tenant_id, id, change.actor_id, kind, body, now);
        if let Some(new) = change.status
            && new.as_str() != status
        {
            sqlx::query("UPDATE leads SET status = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(new.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let body = format!("{status} → {new}");
            let changed =
                NewEvent::by_member(tenant_id, id, change.actor_id, LeadEventKind::StatusChanged, &body, now);
            Self::insert_lead_event(&mut tx, &changed).await?;
            // Follow-up ends with the sale either way; an unsubscribed
            // person is never mailed by a sequence again.
            match new {
                LeadStatus::Won | LeadStatus::Lost => {
                    let reason = format!("the lead is {new}");
                    Self::stop_sequences(&mut tx, tenant_id, id, None, &reason, change.actor_id, now).await?;
                }
                LeadStatus::Unsubscribed => {
                    Self::suppress_lead(
                        &mut tx,
                        tenant_id,
                        id,
                        change.actor_id,
                        Suppression::Unsubscribed,
                        now,
                    )
                    .await?;
                }
                _ => {}
            }
        }
        if let Some(new_owner) = change.owner_id
            && new_owner != owner
        {
            if let Some(user) = new_owner {
                let member: Option<Uuid> = sqlx::query_scalar(
                    "SELECT user_id FROM memberships WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant_id)
                .bind(user)
                .fetch_optional(&mut *tx)
                .await?;
                if member.is_none() {
                    return Err(StoreError::Invalid {
                        field: "owner_id",
                        message: "is not a member of this organisation".into(),
                    });
                }
            }
            sqlx::query("UPDATE leads SET owner_id = $2, updated_at = $3 WHERE id = $1")
                .bind(id)
                .bind(new_owner)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            Self::insert_lead_event(&mut tx, &event(LeadEventKind::OwnerChanged, "")).await?;
        }
        if let Some(note) = &change.note {
            Self::insert_lead_event(&mut tx, &event(LeadEventKind::Note, note)).await?;
        }
        if let Some(reply) = &change.reply {
            Self::insert_lead_event(&mut tx, &event(LeadEventKind::ReplyLogged, reply)).await?;
            Self::stop_sequences(&mut tx, tenant_id, id, None, "the lead replied", change.actor_id, now)
                .await?;
        }
        Self::rescore(&mut tx, id, scorer, now).await?;
        Self::insert_audit(&mut tx, audit).await?;
        let lead = Self::fetch_lead(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(lead)
    }

    async fn lead(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Lead>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_lead(&mut conn, tenant_id, id).await
    }

    async fn lead_outcome_counts(&self, tenant_id: Uuid) -> Result<(i64, i64)> {
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, COUNT(*) FROM leads WHERE tenant_id = $1 AND status IN ('won', 'lost') GROUP BY status",
        )
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        let count = |status: &str| counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
        Ok((count("won"), count("lost")))
    }

    async fn leads(&self, tenant_id: Uuid, f: &LeadFilter, page: PageRequest) -> Result<Page<Lead>> {
        let order = if f.by_score {
            " AND ($6 IS NULL OR l.score < (SELECT c.score FROM leads c WHERE c.id = $6) \
             OR (l.score = (SELECT c.score FROM leads c WHERE c.id = $6) AND l.id < $6)) \
             ORDER BY l.score DESC, l.id DESC LIMIT $7"
        } else {
            " AND ($6 IS NULL OR l.id < $6) ORDER BY l.id DESC LIMIT $7"
        };
        let rows: Vec<LeadRow> = sqlx::query_as(sql(&[
            LEAD_SELECT,
            " WHERE l.tenant_id = $1 AND ($2 IS NULL OR l.band = $2) AND ($3 IS NULL OR l.status = $3) \
             AND ($4 IS NULL OR l.owner_id = $4) \
             AND ($5 IS NULL OR EXISTS (SELECT 1 FROM lead_properties lp WHERE lp.lead_id = l.id AND lp.property_id = $5))",
            order,
        ]))
        .bind(tenant_id)
        .bind(f.band.map(|b| b.as_str().to_owned()))
        .bind(f.status.map(|s| s.as_str().to_owned()))
        .bind(f.owner_id)
        .bind(f.property_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |l: &Lead| l.id))
    }

    async fn lead_events(&self, tenant_id: Uuid, id: Uuid) -> Result<Vec<LeadEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT e.id, e.kind, e.property_id, e.actor_id, u.display_name AS actor_name, e.body, e.created_at \
             FROM lead_events e LEFT JOIN users u ON u.id = e.actor_id \
             WHERE e.tenant_id = $1 AND e.lead_id = $2 ORDER BY e.id LIMIT 1000",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        rows_into(rows)
    }

    async fn lead_property_ids(&self, tenant_id: Uuid, id: Uuid) -> Result<Vec<Uuid>> {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT lp.property_id FROM lead_properties lp JOIN leads l ON l.id = lp.lead_id \
             WHERE l.tenant_id = $1 AND l.id = $2 ORDER BY lp.created_at",
        )
        .bind(tenant_id)
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        Ok(ids)
    }
}
