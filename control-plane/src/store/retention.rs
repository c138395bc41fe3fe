//! Retention and contacts' data-subject rights: a tenant's policy (how
//! long inbox items, leads, generated content and job outputs are kept,
//! when inactive contacts are anonymised), its daily runs (`service::retention` decides when they
//! run), and a contact's data found and erased by address
//! (`service::data_subjects`). Both anonymise a lead the same way.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::domain::Timestamp;

/// How long things are kept, in days; `None`: for ever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Inbox items are deleted this many days after they were posted.
    pub inbox_days: Option<i64>,
    /// Leads are deleted this many days after their last interaction.
    pub lead_days: Option<i64>,
    /// A contact (lead) with no interaction for this many days keeps its
    /// status and score but loses its name, address, phone number, consent
    /// text and notes; follow-up e-mails to it stop.
    pub anonymise_contacts_days: Option<i64>,
    /// Generated content: an activity not changed for this many days
    /// (whose latest run ended as long ago and none of whose posts is still
    /// to be published) is deleted with its versions, runs, comments and review
    /// history; its posts' records stay, no longer linked to it.
    #[serde(default)]
    pub content_days: Option<i64>,
    /// Job outputs: jobs submitted through the jobs API (chat, embed) and
    /// the inbox's classify and reply jobs are deleted, with their events,
    /// this many days after they ended, once no inbox item still points
    /// at them.
    #[serde(default)]
    pub job_days: Option<i64>,
}

impl RetentionPolicy {
    pub fn is_forever(&self) -> bool {
        self.inbox_days.is_none()
            && self.lead_days.is_none()
            && self.anonymise_contacts_days.is_none()
            && self.content_days.is_none()
            && self.job_days.is_none()
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RetentionReport {
    pub inbox_items_deleted: u64,
    pub leads_deleted: u64,
    pub contacts_anonymised: u64,
    #[serde(default)]
    pub activities_deleted: u64,
    #[serde(default)]
    pub jobs_deleted: u64,
}

/// An inbox item whose text names a contact's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NamingItem {
    pub id: Uuid,
    pub author_handle: String,
    pub text: String,
    pub url: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub posted_at: Timestamp,
}

/// What erasing a contact did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErasureReport {
    pub leads_anonymised: u64,
    pub inbox_items_deleted: u64,
}

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// The lead of an address (one per address per tenant).
    async fn contact_lead(&self, tenant_id: Uuid, email_normalized: &str) -> Result<Option<Uuid>>;
    /// Inbox items whose text contains the address (sealed items, whose
    /// text the control plane cannot read, are not searched).
    async fn inbox_items_naming(&self, tenant_id: Uuid, email_normalized: &str) -> Result<Vec<NamingItem>>;
    /// Anonymises the lead and deletes the inbox items in one transaction
    /// with `audit` (the report is added to its details).
    async fn erase_contact(
        &self,
        tenant_id: Uuid,
        lead_id: Option<Uuid>,
        inbox_item_ids: &[Uuid],
        audit: &NewAuditEvent,
    ) -> Result<ErasureReport>;
    async fn retention_policy(&self, tenant_id: Uuid) -> Result<RetentionPolicy>;
    async fn set_retention_policy(
        &self,
        tenant_id: Uuid,
        policy: &RetentionPolicy,
        audit: &NewAuditEvent,
    ) -> Result<()>;
    /// Tenants with a policy and no run for `day` yet.
    async fn retention_due(&self, day: &str) -> Result<Vec<(Uuid, RetentionPolicy)>>;
    /// Applies `policy` as of `as_of` for `day`, once across replicas (the
    /// run's row is claimed in the same transaction), and writes `audit`
    /// with the report in its details. `None` when the day's run was done.
    async fn apply_retention(
        &self,
        tenant_id: Uuid,
        policy: &RetentionPolicy,
        as_of: Timestamp,
        day: &str,
        audit: &NewAuditEvent,
    ) -> Result<Option<RetentionReport>>;
}
