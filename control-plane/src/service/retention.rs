//! Retention: a tenant's policy (owners set it) and the daily run that
//! applies it. The run happens once per tenant and UTC day across replicas
//! (`retention_runs`), from the notifier's hourly sweep, or at once with
//! `marketer-server admin apply-retention --as-of` (which is also how tests
//! move the clock). Each run deletes inbox items, leads, generated content
//! (activities) and job outputs past their time, anonymises contacts
//! inactive past theirs, and writes an audit entry (`retention.apply`, by
//! the system) with what it did.

use uuid::Uuid;

use super::{App, TenantAccess, actions, audit_event};
use crate::domain::{Permission, Timestamp};
use crate::error::{Error, Result};
use crate::store::{Actor, Outcome, RetentionPolicy, RetentionReport, Store};

/// The longest a policy may say (a hundred years).
const MAX_DAYS: i64 = 36_500;

fn check(policy: &RetentionPolicy) -> Result<()> {
    for (field, days) in [
        ("inbox_days", policy.inbox_days),
        ("lead_days", policy.lead_days),
        ("anonymise_contacts_days", policy.anonymise_contacts_days),
        ("content_days", policy.content_days),
        ("job_days", policy.job_days),
    ] {
        if let Some(days) = days
            && !(1..=MAX_DAYS).contains(&days)
        {
            return Err(Error::invalid(
                field,
                "must be a number of days from 1 to 36500, or null to keep for ever",
            ));
        }
    }
    Ok(())
}

impl App {
    /// The organisation's retention policy (`settings:view`).
    pub async fn retention_policy(&self, access: &TenantAccess) -> Result<RetentionPolicy> {
        access.require(Permission::SettingsView)?;
        Ok(self.store.retention_policy(access.tenant_id).await?)
    }

    /// Replaces the organisation's retention policy (`tenant:manage`: it
    /// deletes data).
    pub async fn set_retention_policy(
        &self,
        access: &TenantAccess,
        policy: RetentionPolicy,
    ) -> Result<RetentionPolicy> {
        access.require(Permission::TenantManage)?;
        check(&policy)?;
        let audit = access
            .audit(actions::RETENTION_POLICY_UPDATE)
            .resource("tenant", access.tenant_id)
            .details(serde_json::json!(policy));
        self.store.set_retention_policy(access.tenant_id, &policy, &audit).await?;
        Ok(policy)
    }
}

/// Applies every due tenant's policy for the UTC day of `as_of`; returns
/// what each run did. Runs already done that day (by this or another
/// replica) are skipped.
pub async fn apply_due(store: &dyn Store, as_of: Timestamp) -> Result<Vec<(Uuid, RetentionReport)>> {
    let day = as_of.as_datetime().date().to_string();
    let mut done = Vec::new();
    for (tenant_id, policy) in store.retention_due(&day).await? {
        let audit = audit_event(
            Some(tenant_id),
            Actor::System { name: "retention".into() },
            &super::RequestMeta::default(),
            actions::RETENTION_APPLY,
            Outcome::Success,
        )
        .resource("tenant", tenant_id);
        if let Some(report) = store.apply_retention(tenant_id, &policy, as_of, &day, &audit).await? {
            done.push((tenant_id, report));
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_name_the_field_that_is_out_of_range() {
        assert!(check(&RetentionPolicy::default()).is_ok());
        assert!(
            check(&RetentionPolicy { inbox_days: Some(1), lead_days: Some(36_500), ..Default::default() })
                .is_ok()
        );
        for (policy, field) in [
            (RetentionPolicy { inbox_days: Some(0), ..Default::default() }, "inbox_days"),
            (RetentionPolicy { lead_days: Some(-3), ..Default::default() }, "lead_days"),
            (
                RetentionPolicy { anonymise_contacts_days: Some(36_501), ..Default::default() },
                "anonymise_contacts_days",
            ),
            (RetentionPolicy { content_days: Some(0), ..Default::default() }, "content_days"),
            (RetentionPolicy { job_days: Some(0), ..Default::default() }, "job_days"),
        ] {
            match check(&policy) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{policy:?}: {other:?}"),
            }
        }
    }
}
