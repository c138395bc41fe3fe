//! Follow-up sequences' e-mail: a step's template with its merge fields
//! filled in, the sender's details and postal address (CAN-SPAM) appended,
//! and an unsubscribe link that works with one click and no sign-in. The
//! notifier's sweep queues due steps through the store, once each.

use super::Notifier;
use crate::auth::tokens::{OpaqueToken, TokenKind};
use crate::domain::{Email, Timestamp, new_id};
use crate::store::{Audience, DueStep, MailPurpose, NewMail, NewNotice, NoticeKind, QueuedStep, StepOutcome};

/// The merge fields a template may use.
pub const MERGE_FIELDS: [&str; 5] = ["first_name", "name", "property", "agent_name", "agent_contact"];

/// Steps queued per sweep.
const BATCH: i64 = 200;

/// The names of `{{...}}` fields in `text` that are not merge fields, and
/// whether every `{{` is closed.
pub fn unknown_fields(text: &str) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err("has a {{ without its closing }}".into());
        };
        let name = after[..end].trim();
        if !MERGE_FIELDS.contains(&name) {
            unknown.push(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    Ok(unknown)
}

/// What the merge fields stand for, for one lead.
#[derive(Debug, Clone, Default)]
pub struct Merge {
    pub first_name: String,
    pub name: String,
    pub property: String,
    pub agent_name: String,
    pub agent_contact: String,
}

impl Merge {
    pub fn of(due: &DueStep) -> Self {
        let name = due.lead.name.trim().to_owned();
        let first_name = name.split_whitespace().next().unwrap_or("there").to_owned();
        let (property, agent_name, agent_contact) = due
            .property
            .clone()
            .unwrap_or_else(|| ("the home you asked about".into(), String::new(), String::new()));
        Self {
            first_name,
            name: if name.is_empty() { "there".into() } else { name },
            property,
            agent_name,
            agent_contact,
        }
    }

    /// `text` with its merge fields filled in (unknown ones left as typed).
    pub fn fill(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else { break };
            out.push_str(&rest[..start]);
            let value = match after[..end].trim() {
                "first_name" => self.first_name.as_str(),
                "name" => self.name.as_str(),
                "property" => self.property.as_str(),
                "agent_name" => self.agent_name.as_str(),
                "agent_contact" => self.agent_contact.as_str(),
                _ => &rest[start..start + 2 + end + 2],
            };
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// A step's subject and body: the template filled in, then who sends it,
/// why the person gets it, and the sender's postal address. (The
/// unsubscribe link follows, added when the message is built.)
pub fn compose_step(due: &DueStep, step: usize) -> Option<(String, String)> {
    let template = due.enrollment.steps.get(step)?;
    let merge = Merge::of(due);
    let subject = merge.fill(&template.subject).replace(['\r', '\n'], " ");
    let mut body = merge.fill(&template.body).trim_end().to_owned();
    if !merge.agent_name.is_empty() {
        body.push_str(&format!("\n\n{}", merge.agent_name));
        if !merge.agent_contact.is_empty() {
            body.push_str(&format!("\n{}", merge.agent_contact));
        }
    }
    body.push_str(&format!(
        "\n\nYou receive this because you asked about {} and agreed to be contacted.\n{}",
        merge.property,
        due.postal_address.trim()
    ));
    Some((subject, body))
}

impl Notifier {
    /// Queues every follow-up step due at `now` (the clock is a parameter
    /// so tests can move it); how many e-mails were queued.
    pub async fn sequence_steps(&self, now: Timestamp) -> usize {
        let due = match self.store.due_steps(now, BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "could not read the follow-up steps due");
                return 0;
            }
        };
        let mut queued = 0;
        for d in due {
            match self.queue(&d, now).await {
                Ok(StepOutcome::Queued) => queued += 1,
                Ok(StepOutcome::Stopped(reason)) => {
                    tracing::info!(enrollment = %d.enrollment.id, %reason, "a follow-up sequence stopped");
                }
                Ok(StepOutcome::Skipped) => {}
                Err(e) => {
                    tracing::error!(error = %e, enrollment = %d.enrollment.id, "could not queue a follow-up e-mail");
                }
            }
        }
        if queued > 0 {
            self.wake();
        }
        queued
    }

    async fn queue(&self, d: &DueStep, now: Timestamp) -> anyhow::Result<StepOutcome> {
        let e = &d.enrollment;
        let step = usize::try_from(e.next_step)?;
        let Some((subject, body)) = compose_step(d, step) else { return Ok(StepOutcome::Skipped) };
        let next_at = e.steps.get(step + 1).map(|next| now + time::Duration::minutes(next.wait_minutes));
        let token = OpaqueToken::generate(TokenKind::Link);
        let path = format!("/unsubscribe/{}", token.text);
        let to =
            Email::parse(&d.lead.email).map_err(|_| anyhow::anyhow!("the lead's address is not valid"))?;
        let mail = NewMail {
            id: new_id(),
            tenant_id: Some(e.tenant_id),
            user_id: None,
            to,
            purpose: MailPurpose::Marketing,
            subject,
            body,
            link: None,
            secret_link: Some(self.seal_link(Some(e.tenant_id), &path)?),
        };
        // A step drafted for review: its lead's owner (or, with none, the
        // organisation's admins) is told; no personal data in the notice.
        let notice = e.steps.get(step).filter(|s| s.review).map(|_| NewNotice {
            tenant_id: Some(e.tenant_id),
            kind: NoticeKind::FollowUpDraft,
            audience: d.lead.owner_id.map_or(Audience::Admins, Audience::User),
            title: format!("A follow-up e-mail of \u{201c}{}\u{201d} waits for your review", e.sequence_name),
            body: "Read it, change it if you like, and send or skip it on the lead's page.".into(),
            link: Some(format!("/t/{}/leads/{}#follow-up", e.tenant_id, e.lead_id)),
            dedupe_key: Some(format!("follow-up-draft:{}:{}", e.id, e.next_step)),
        });
        let queued = QueuedStep {
            enrollment_id: e.id,
            step: e.next_step,
            next_at,
            mail,
            token_hash: token.hash,
            notice,
        };
        Ok(self.store.queue_step(&queued, now).await?)
    }
}

/// The stored form of an unsubscribe token, if `text` looks like one.
pub fn unsubscribe_hash(text: &str) -> Option<Vec<u8>> {
    crate::auth::tokens::looks_like(TokenKind::Link, text).then(|| crate::auth::tokens::hash_token(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_fields_are_filled_and_unknown_ones_named() {
        let merge = Merge {
            first_name: "Ana".into(),
            name: "Ana Lima".into(),
            property: "12 Elm Street, Springfield".into(),
            agent_name: "Dana".into(),
            agent_contact: "dana@example.com".into(),
        };
        assert_eq!(
            merge.fill("Hi {{first_name}}, about {{ property }}."),
            "Hi Ana, about 12 Elm Street, Springfield."
        );
        assert_eq!(merge.fill("{{nope}} and {{first_name"), "{{nope}} and {{first_name");
        assert_eq!(unknown_fields("{{first_name}} {{ price }}").unwrap(), vec!["price".to_owned()]);
        assert!(unknown_fields("{{first_name").is_err());
    }
}
