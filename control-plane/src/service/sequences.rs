//! Follow-up sequences: the tenant's templates (wait, then an e-mail;
//! merge fields checked), starting one for a lead by hand (listing pages
//! start the automatic ones), stopping it, and the public unsubscribe
//! link. The notifier queues the steps (`notify::marketing`); the store
//! keeps each step to one e-mail.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, RequestMeta, TenantAccess, actions, audit_event};
use crate::domain::{Permission, Timestamp, new_id};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::notify::marketing::{MERGE_FIELDS, unknown_fields, unsubscribe_hash};
use crate::store::{
    Actor, DraftDecision, Enrollment, EnrollmentState, Outcome, Sequence, SequenceStep, StepSend,
};

/// Steps a sequence may have.
const MAX_STEPS: usize = 10;
/// The longest wait between two steps: a year.
const MAX_WAIT_MINUTES: i64 = 365 * 24 * 60;

/// A step as written: wait `wait` `unit`s, then send.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceStepIn {
    pub wait: i64,
    /// `minutes`, `hours` or `days`.
    pub unit: String,
    pub subject: String,
    /// Plain text with merge fields: `{{first_name}}`, `{{name}}`,
    /// `{{property}}`, `{{agent_name}}`, `{{agent_contact}}`, and
    /// `{{paragraph}}` (where the personal paragraph goes, in a step that
    /// asks for one). The sender's details, postal address and unsubscribe
    /// link are added to every message.
    pub body: String,
    /// Draft the e-mail for a person to read, change, and send or skip,
    /// instead of sending it by itself (the next step waits for that).
    #[serde(default)]
    pub review: bool,
    /// Ask the LLM for a personal paragraph: what it should say (for
    /// example "say why the garden and the quiet street suit them"). It is
    /// written on the tenant's edge agent (in the cloud only for a
    /// `cloud_allowed` project with no agent able to run it), from the
    /// home's details, the lead's first name and their message; it goes at
    /// `{{paragraph}}`, or after the text. A paragraph that cannot be
    /// written within a day, or does not pass the checks (links, length,
    /// Fair Housing), is left out and the lead's timeline says why.
    #[serde(default)]
    pub paragraph: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceIn {
    pub name: String,
    /// Start it for every consenting lead a listing page brings.
    #[serde(default)]
    pub auto_start: bool,
    pub steps: Vec<SequenceStepIn>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SequenceStepView {
    pub wait: i64,
    pub unit: String,
    pub wait_minutes: i64,
    pub subject: String,
    pub body: String,
    pub review: bool,
    /// What the step's personal paragraph should say, if it has one.
    pub paragraph: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SequenceView {
    pub id: Uuid,
    pub name: String,
    pub auto_start: bool,
    pub steps: Vec<SequenceStepView>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A lead's run through a sequence.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EnrollmentView {
    pub id: Uuid,
    pub sequence_id: Option<Uuid>,
    pub sequence_name: String,
    pub state: EnrollmentState,
    pub stop_reason: Option<String>,
    pub steps: Vec<SequenceStepView>,
    /// The next step (0-based) and when it is due, while active.
    pub next_step: i64,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_at: Option<Timestamp>,
    /// Each step's e-mail and how sending it went.
    pub sends: Vec<StepSend>,
    /// While the next step's personal paragraph is being written: that,
    /// and why it waits (for an agent, say).
    pub writing: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSequence {
    pub sequence_id: Uuid,
}

/// What to do with a follow-up e-mail drafted for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DraftChoice {
    Send,
    Skip,
}

/// A person's decision on a drafted follow-up e-mail: send it (with the
/// subject and body as changed; the draft's own when absent) or skip it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideDraft {
    pub decision: DraftChoice,
    pub subject: Option<String>,
    /// Plain text; it must keep the sender's postal address. The
    /// unsubscribe link is added when it is sent.
    pub body: Option<String>,
}

fn step_view(s: &SequenceStep) -> SequenceStepView {
    let (wait, unit) = if s.wait_minutes > 0 && s.wait_minutes % (24 * 60) == 0 {
        (s.wait_minutes / (24 * 60), "days")
    } else if s.wait_minutes > 0 && s.wait_minutes % 60 == 0 {
        (s.wait_minutes / 60, "hours")
    } else {
        (s.wait_minutes, "minutes")
    };
    SequenceStepView {
        wait,
        unit: unit.into(),
        wait_minutes: s.wait_minutes,
        subject: s.subject.clone(),
        body: s.body.clone(),
        review: s.review,
        paragraph: s.paragraph.clone(),
    }
}

impl From<&Sequence> for SequenceView {
    fn from(s: &Sequence) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            auto_start: s.auto_start,
            steps: s.steps.iter().map(step_view).collect(),
            updated_at: s.updated_at,
        }
    }
}

impl From<Enrollment> for EnrollmentView {
    fn from(e: Enrollment) -> Self {
        Self {
            id: e.id,
            sequence_id: e.sequence_id,
            sequence_name: e.sequence_name,
            state: e.state,
            stop_reason: e.stop_reason,
            steps: e.steps.iter().map(step_view).collect(),
            next_step: e.next_step,
            next_at: e.next_at,
            sends: e.sends,
            writing: e.writing.map(|job| {
                let mut text = "the personal paragraph of the next e-mail is being written".to_owned();
                if job.status == crate::store::JobStatus::Queued {
                    text.push_str(&format!(
                        "; it waits: {}",
                        job.waiting_reason.as_deref().unwrap_or("for a free agent")
                    ));
                }
                text
            }),
            started_at: e.started_at,
        }
    }
}

fn checked_text(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    match unknown_fields(value) {
        Err(problem) => Err(Error::invalid(field, problem)),
        Ok(unknown) if !unknown.is_empty() => Err(Error::invalid(
            field,
            format!(
                "uses unknown merge field(s) {}; the fields are {}",
                unknown.iter().map(|u| format!("{{{{{u}}}}}")).collect::<Vec<_>>().join(", "),
                MERGE_FIELDS.iter().map(|f| format!("{{{{{f}}}}}")).collect::<Vec<_>>().join(", ")
            ),
        )),
        Ok(_) => Ok(value.to_owned()),
    }
}

impl SequenceIn {
    fn checked(&self) -> Result<(String, Vec<SequenceStep>)> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::invalid("name", "is required, at most 100 characters"));
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(Error::invalid("steps", format!("give 1 to {MAX_STEPS} steps")));
        }
        let mut steps = Vec::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("steps[{i}].{f}");
            let per = match s.unit.as_str() {
                "minutes" => 1,
                "hours" => 60,
                "days" => 24 * 60,
                _ => return Err(Error::invalid(at("unit"), "must be minutes, hours or days")),
            };
            let wait_minutes = s.wait.checked_mul(per).filter(|m| (0..=MAX_WAIT_MINUTES).contains(m));
            let Some(wait_minutes) = wait_minutes else {
                return Err(Error::invalid(at("wait"), "must be from 0 to 365 days"));
            };
            let paragraph = match s.paragraph.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
                Some(p) if p.contains("{{") => {
                    return Err(Error::invalid(
                        at("paragraph"),
                        "describe the paragraph in words, without merge fields",
                    ));
                }
                Some(p) => Some(checked_text(&at("paragraph"), p, 500)?),
                None => None,
            };
            if s.subject.contains("{{paragraph}}") {
                return Err(Error::invalid(at("subject"), "{{paragraph}} goes in the body only"));
            }
            if paragraph.is_none() && s.body.contains("{{paragraph}}") {
                return Err(Error::invalid(
                    at("body"),
                    "uses {{paragraph}} but the step asks for no personal paragraph: say what it should be about, or remove {{paragraph}}",
                ));
            }
            steps.push(SequenceStep {
                wait_minutes,
                subject: checked_text(&at("subject"), &s.subject, 200)?.replace(['\r', '\n'], " "),
                body: checked_text(&at("body"), &s.body, 5_000)?,
                review: s.review,
                paragraph,
            });
        }
        Ok((name.to_owned(), steps))
    }
}

/// The seed's sequence: a welcome after 2 hours, similar properties after 3
/// days, a market update a week later.
fn default_sequences(tenant_id: Uuid, now: Timestamp) -> Vec<Sequence> {
    let step = |wait_minutes: i64, subject: &str, body: &str| SequenceStep {
        wait_minutes,
        subject: subject.into(),
        body: body.into(),
        review: false,
        paragraph: None,
    };
    vec![Sequence {
        id: new_id(),
        tenant_id,
        name: "Listing inquiry follow-up".into(),
        steps: vec![
            step(
                2 * 60,
                "Thanks for asking about {{property}}",
                "Hi {{first_name}},\n\nThank you for your message about {{property}}. I would be glad to answer your questions or arrange a showing at a time that suits you: just reply to this e-mail or call me.",
            ),
            step(
                3 * 24 * 60,
                "Homes like {{property}}",
                "Hi {{first_name}},\n\nIf {{property}} caught your eye, a few similar homes nearby may too. Tell me what matters most to you (rooms, budget, neighbourhood) and I will send you a short list.",
            ),
            step(
                7 * 24 * 60,
                "The local market this week",
                "Hi {{first_name}},\n\nHere is a quick update on the market around {{property}}: prices, how long homes take to sell, and what is new. If you would like a personal overview, reply and I will put one together.",
            ),
        ],
        auto_start: true,
        created_at: now,
        updated_at: now,
    }]
}

impl App {
    /// Gives a tenant without sequences the default one.
    pub(super) async fn ensure_default_sequences(&self, tenant_id: Uuid) -> Result<()> {
        let defaults = default_sequences(tenant_id, Timestamp::now());
        Ok(self.store.ensure_sequences(tenant_id, &defaults).await?)
    }

    pub async fn sequences(&self, access: &TenantAccess) -> Result<Vec<SequenceView>> {
        access.require(Permission::ProjectsRead)?;
        self.ensure_default_sequences(access.tenant_id).await?;
        Ok(self.store.sequences(access.tenant_id).await?.iter().map(SequenceView::from).collect())
    }

    pub async fn sequence(&self, access: &TenantAccess, id: Uuid) -> Result<SequenceView> {
        access.require(Permission::ProjectsRead)?;
        Ok(SequenceView::from(&self.store.sequence(access.tenant_id, id).await.found("sequence")?))
    }

    pub async fn create_sequence(&self, access: &TenantAccess, req: SequenceIn) -> Result<SequenceView> {
        access.require(Permission::SettingsManage)?;
        let (name, steps) = req.checked()?;
        let now = Timestamp::now();
        let sequence = Sequence {
            id: new_id(),
            tenant_id: access.tenant_id,
            name,
            steps,
            auto_start: req.auto_start,
            created_at: now,
            updated_at: now,
        };
        let audit = access.audit(actions::SEQUENCE_CREATE).resource("sequence", sequence.id);
        self.store.save_sequence(&sequence, &audit).await?;
        Ok(SequenceView::from(&sequence))
    }

    pub async fn update_sequence(
        &self,
        access: &TenantAccess,
        id: Uuid,
        req: SequenceIn,
    ) -> Result<SequenceView> {
        access.require(Permission::SettingsManage)?;
        let current = self.store.sequence(access.tenant_id, id).await.found("sequence")?;
        let (name, steps) = req.checked()?;
        let sequence =
            Sequence { name, steps, auto_start: req.auto_start, updated_at: Timestamp::now(), ..current };
        let audit = access.audit(actions::SEQUENCE_UPDATE).resource("sequence", id);
        self.store.save_sequence(&sequence, &audit).await?;
        Ok(SequenceView::from(&sequence))
    }

    /// Deletes a template; sequences already running keep their steps.
    pub async fn delete_sequence(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::SettingsManage)?;
        let audit = access.audit(actions::SEQUENCE_DELETE).resource("sequence", id);
        self.store.delete_sequence(access.tenant_id, id, &audit).await.or_not_found("sequence")
    }

    pub async fn lead_sequences(&self, access: &TenantAccess, lead_id: Uuid) -> Result<Vec<EnrollmentView>> {
        access.require(Permission::ProjectsRead)?;
        self.store.lead(access.tenant_id, lead_id).await.found("lead")?;
        Ok(self
            .store
            .enrollments(access.tenant_id, lead_id)
            .await?
            .into_iter()
            .map(EnrollmentView::from)
            .collect())
    }

    /// Starts a sequence for a lead by hand (its first e-mail after the
    /// first step's wait). Refused without the sender's postal address.
    pub async fn start_lead_sequence(
        &self,
        access: &TenantAccess,
        lead_id: Uuid,
        req: StartSequence,
    ) -> Result<EnrollmentView> {
        access.require(Permission::ActivitiesUpdate)?;
        self.store.lead(access.tenant_id, lead_id).await.found("lead")?;
        let postal = self.store.real_estate_settings(access.tenant_id).await?.map(|s| s.postal_address);
        if postal.is_none_or(|p| p.trim().is_empty()) {
            return Err(Error::Conflict {
                code: "postal_address_missing",
                message: "marketing e-mail must carry the sender's postal address: set it in the listing settings first".into(),
            });
        }
        let audit = access.audit(actions::LEAD_SEQUENCE_START).resource("lead", lead_id);
        let enrollment = self
            .store
            .enroll(access.tenant_id, lead_id, req.sequence_id, access.caller.creator_id(), &audit)
            .await?;
        Ok(EnrollmentView::from(enrollment))
    }

    pub async fn stop_lead_sequence(&self, access: &TenantAccess, lead_id: Uuid, id: Uuid) -> Result<()> {
        access.require(Permission::ActivitiesUpdate)?;
        let audit = access.audit(actions::LEAD_SEQUENCE_STOP).resource("lead", lead_id);
        self.store
            .stop_enrollment(access.tenant_id, lead_id, id, access.caller.creator_id(), &audit)
            .await
            .or_not_found("sequence")
    }

    /// Sends (as changed) or skips a follow-up e-mail drafted for review;
    /// the sequence's next step waits from now.
    pub async fn decide_follow_up_draft(
        &self,
        access: &TenantAccess,
        lead_id: Uuid,
        mail_id: Uuid,
        req: DecideDraft,
    ) -> Result<()> {
        access.require(Permission::ActivitiesUpdate)?;
        self.store.lead(access.tenant_id, lead_id).await.found("lead")?;
        let draft = self
            .store
            .enrollments(access.tenant_id, lead_id)
            .await?
            .into_iter()
            .flat_map(|e| e.sends)
            .find(|s| s.mail_id == mail_id)
            .ok_or(Error::NotFound("draft"))?;
        let decision = match req.decision {
            DraftChoice::Skip => DraftDecision::Skip,
            DraftChoice::Send => {
                let (Some(subject), Some(body)) =
                    (req.subject.or(draft.draft_subject), req.body.or(draft.draft_body))
                else {
                    return Err(Error::Conflict {
                        code: "draft_decided",
                        message: "this e-mail is no longer a draft: it was sent or skipped already, or dropped when its sequence stopped".into(),
                    });
                };
                let subject = draft_text("subject", &subject, 200)?.replace(['\r', '\n'], " ");
                let body = draft_text("body", &body, 20_000)?;
                let postal = self
                    .store
                    .real_estate_settings(access.tenant_id)
                    .await?
                    .map(|s| s.postal_address)
                    .unwrap_or_default();
                let postal = postal.trim();
                if !postal.is_empty() && !body.contains(postal) {
                    return Err(Error::invalid(
                        "body",
                        format!(
                            "keep the sender's postal address ({postal}) in the e-mail: the law requires it in marketing e-mail"
                        ),
                    ));
                }
                DraftDecision::Send { subject, body }
            }
        };
        let decided = if req.decision == DraftChoice::Send { "send" } else { "skip" };
        let audit = access
            .audit(actions::LEAD_FOLLOW_UP_DECIDE)
            .resource("lead", lead_id)
            .details(serde_json::json!({ "mail_id": mail_id, "decision": decided }));
        self.store
            .decide_draft(access.tenant_id, lead_id, mail_id, &decision, access.caller.creator_id(), &audit)
            .await
            .or_not_found("draft")
    }

    /// An unsubscribe link, used: no sign-in, effective at once. `false`
    /// for an unknown link.
    pub async fn unsubscribe(&self, token: &str, meta: &RequestMeta) -> Result<bool> {
        let Some(hash) = unsubscribe_hash(token) else { return Ok(false) };
        let now = Timestamp::now();
        let Some((tenant_id, lead_id)) = self.store.unsubscribe(&hash, now).await? else { return Ok(false) };
        let event =
            audit_event(Some(tenant_id), Actor::Anonymous, meta, actions::LEAD_UNSUBSCRIBE, Outcome::Success)
                .resource("lead", lead_id);
        self.store.record_audit(&event).await?;
        Ok(true)
    }
}

/// A drafted e-mail's subject or body as a person changed it.
fn draft_text(field: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn step(wait: i64, unit: &str, body: &str) -> SequenceStepIn {
        SequenceStepIn {
            wait,
            unit: unit.into(),
            subject: "Hello {{first_name}}".into(),
            body: body.into(),
            review: false,
            paragraph: None,
        }
    }

    #[test]
    fn templates_are_checked_field_by_field() {
        let ok = SequenceIn {
            name: "Welcome".into(),
            auto_start: false,
            steps: vec![step(2, "hours", "Hi {{name}}")],
        };
        let (_, steps) = ok.checked().unwrap();
        assert_eq!(steps[0].wait_minutes, 120);
        assert_eq!(step_view(&steps[0]).unit, "hours");
        let bad = SequenceIn { steps: vec![step(1, "weeks", "x")], ..ok.clone() };
        assert!(matches!(bad.checked(), Err(Error::Invalid { field, .. }) if field == "steps[0].unit"));
        let bad = SequenceIn { steps: vec![step(400, "days", "x")], ..ok.clone() };
        assert!(matches!(bad.checked(), Err(Error::Invalid { field, .. }) if field == "steps[0].wait"));
        let bad = SequenceIn { steps: vec![step(1, "days", "Price: {{price}}")], ..ok.clone() };
        assert!(
            matches!(bad.checked(), Err(Error::Invalid { field, message }) if field == "steps[0].body" && message.contains("{{price}}"))
        );
        let bad = SequenceIn { steps: Vec::new(), ..ok };
        assert!(matches!(bad.checked(), Err(Error::Invalid { field, .. }) if field == "steps"));
        for s in &default_sequences(Uuid::nil(), Timestamp::now())[0].steps {
            assert!(
                unknown_fields(&s.body).unwrap().is_empty() && unknown_fields(&s.subject).unwrap().is_empty()
            );
        }
    }
}
