//! Reading the audit log. There is deliberately no way to change or delete
//! an entry.

use uuid::Uuid;

use super::{App, TenantAccess};
use crate::domain::{Permission, Timestamp};
use crate::error::{Error, Result};
use crate::store::{AuditEvent, AuditFilter, Page, PageRequest};

/// Filters of `GET /audit-events`, already parsed.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<Uuid>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

impl App {
    pub async fn audit_events(
        &self,
        access: &TenantAccess,
        query: AuditQuery,
        page: PageRequest,
    ) -> Result<Page<AuditEvent>> {
        access.require(Permission::AuditRead)?;
        if let (Some(since), Some(until)) = (query.since, query.until)
            && until <= since
        {
            return Err(Error::invalid("until", "must be later than since"));
        }
        if query.action.as_ref().is_some_and(|a| a.len() > 100) {
            return Err(Error::invalid("action", "must be at most 100 characters"));
        }
        let filter = AuditFilter {
            action: query.action,
            actor_id: query.actor,
            since: query.since,
            until: query.until,
        };
        Ok(self.store.audit_events(access.tenant_id, &filter, page).await?)
    }
}
