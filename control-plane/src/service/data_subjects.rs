//! A contact's data-subject rights (GDPR articles 15 and 17) in one
//! organisation: everything the control plane holds that names an e-mail
//! address (the lead with its timeline, inbox items whose text contains
//! it), exported as JSON or erased. Owners only (`tenant:manage`): both
//! answer a person's formal request. Erasing anonymises the lead the way
//! retention does and deletes the inbox items, in one transaction with its
//! audit entry, which names the person only by a pseudonym (a keyed hash of
//! the address, stable per organisation), so the trail stays without the
//! personal data.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{App, LeadView, TenantAccess, actions};
use crate::domain::{Email, Permission, Timestamp};
use crate::error::{Error, Result};
use crate::store::{ErasureReport, NamingItem};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSubject {
    /// The person's e-mail address.
    pub email: String,
}

/// Everything the organisation holds that names the address.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactExport {
    pub email: String,
    pub exported_at: Timestamp,
    /// The lead with this address, with its timeline, if there is one.
    pub lead: Option<LeadView>,
    /// Inbox items whose text contains the address.
    pub inbox_items: Vec<NamingItem>,
    /// What this export does not cover, in words.
    pub not_included: Vec<String>,
}

/// What erasing did, and under which pseudonym the audit log knows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erasure {
    pub pseudonym: String,
    #[serde(flatten)]
    pub report: ErasureReport,
}

const NOT_INCLUDED: &[&str] = &[
    "e-mail messages already sent to the address (the outbox keeps what went out)",
    "inbox items whose text is sealed until an agent screens it",
    "what the organisation's agents hold on its own hardware",
];

/// The stable pseudonym of an address in one organisation.
fn pseudonym(tenant_id: uuid::Uuid, email_normalized: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"marketer data subject v1:")
        .chain_update(tenant_id.as_bytes())
        .chain_update(email_normalized.as_bytes())
        .finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("subject-{hex}")
}

fn address(req: &DataSubject) -> Result<Email> {
    Email::parse(req.email.trim()).map_err(|e| Error::invalid("email", e.to_string()))
}

impl App {
    /// Everything that names the address, as JSON (audited, by pseudonym).
    pub async fn export_contact(&self, access: &TenantAccess, req: DataSubject) -> Result<ContactExport> {
        access.require(Permission::TenantManage)?;
        let email = address(&req)?;
        let normalized = email.normalized();
        let lead = match self.store.contact_lead(access.tenant_id, &normalized).await? {
            Some(id) => Some(self.lead(access, id).await?),
            None => None,
        };
        let inbox_items = self.store.inbox_items_naming(access.tenant_id, &normalized).await?;
        let audit = access.audit(actions::DATA_SUBJECT_EXPORT).details(serde_json::json!({
            "subject": pseudonym(access.tenant_id, &normalized),
            "lead": lead.is_some(),
            "inbox_items": inbox_items.len(),
        }));
        self.store.record_audit(&audit).await?;
        Ok(ContactExport {
            email: email.to_string(),
            exported_at: Timestamp::now(),
            lead,
            inbox_items,
            not_included: NOT_INCLUDED.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// Erases what names the address: its lead anonymised, inbox items
    /// that quote it deleted.
    pub async fn erase_contact(&self, access: &TenantAccess, req: DataSubject) -> Result<Erasure> {
        access.require(Permission::TenantManage)?;
        let email = address(&req)?;
        let normalized = email.normalized();
        let lead = self.store.contact_lead(access.tenant_id, &normalized).await?;
        let items: Vec<uuid::Uuid> = self
            .store
            .inbox_items_naming(access.tenant_id, &normalized)
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect();
        let subject = pseudonym(access.tenant_id, &normalized);
        let audit =
            access.audit(actions::DATA_SUBJECT_ERASE).details(serde_json::json!({ "subject": subject }));
        let report = self.store.erase_contact(access.tenant_id, lead, &items, &audit).await?;
        Ok(Erasure { pseudonym: subject, report })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_per_organisation_and_hide_the_address() {
        let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let p = pseudonym(a, "dana@example.com");
        assert_eq!(p, pseudonym(a, "dana@example.com"));
        assert_ne!(p, pseudonym(b, "dana@example.com"));
        assert_ne!(p, pseudonym(a, "sam@example.com"));
        assert!(!p.contains("dana"));
    }
}
