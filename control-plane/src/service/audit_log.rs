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

/// What an export is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    /// One JSON object per line, as `GET /audit-events` returns them.
    Jsonl,
    /// RFC 4180 CSV with a header row; `details` as JSON text.
    Csv,
}

impl AuditFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            AuditFormat::Jsonl => "application/x-ndjson",
            AuditFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            AuditFormat::Jsonl => "jsonl",
            AuditFormat::Csv => "csv",
        }
    }

    /// The first line of the file (CSV's header), if any.
    pub fn header(self) -> &'static str {
        match self {
            AuditFormat::Jsonl => "",
            AuditFormat::Csv => {
                "id,occurred_at,actor_type,actor_id,actor,client_ip,request_id,action,resource_type,resource_id,outcome,details\r\n"
            }
        }
    }

    /// One event as a line of the file.
    pub fn line(self, e: &AuditEvent) -> String {
        match self {
            AuditFormat::Jsonl => {
                let mut line = serde_json::to_string(e).unwrap_or_else(|_| "{}".into());
                line.push('\n');
                line
            }
            AuditFormat::Csv => {
                let fields = [
                    e.id.to_string(),
                    e.occurred_at.to_rfc3339_fixed(),
                    e.actor.kind().to_owned(),
                    e.actor.id().map(|id| id.to_string()).unwrap_or_default(),
                    e.actor.label().to_owned(),
                    e.client_ip.clone().unwrap_or_default(),
                    e.request_id.clone().unwrap_or_default(),
                    e.action.clone(),
                    e.resource_type.clone().unwrap_or_default(),
                    e.resource_id.clone().unwrap_or_default(),
                    <&'static str>::from(e.outcome).to_owned(),
                    e.details.to_string(),
                ];
                let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
                line.push_str("\r\n");
                line
            }
        }
    }
}

/// A CSV field, quoted when it must be, and with a leading `=`, `+`, `-`
/// or `@` defused so a spreadsheet does not run it as a formula.
fn csv_field(text: &str) -> String {
    let text =
        if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ') {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

impl App {
    /// Checks an export's period and records who took it; the events are
    /// then read a page at a time with [`App::audit_events`].
    pub async fn start_audit_export(
        &self,
        access: &TenantAccess,
        query: &AuditQuery,
        format: AuditFormat,
    ) -> Result<()> {
        access.require(Permission::AuditRead)?;
        let (Some(since), Some(until)) = (query.since, query.until) else {
            return Err(Error::invalid("since", "give the period to export: since and until (RFC 3339)"));
        };
        if until <= since {
            return Err(Error::invalid("until", "must be later than since"));
        }
        let audit = access.audit(super::actions::AUDIT_EXPORT).details(serde_json::json!({
            "since": since, "until": until, "format": format, "action": query.action, "actor": query.actor,
        }));
        self.store.record_audit(&audit).await?;
        Ok(())
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Actor, Outcome};

    #[test]
    fn csv_lines_quote_what_they_must_and_defuse_formulas() {
        let e = AuditEvent {
            id: Uuid::nil(),
            occurred_at: Timestamp::now(),
            tenant_id: None,
            actor: Actor::User { id: Uuid::nil(), email: "=HYPERLINK(\"x\")@example.com".into() },
            client_ip: None,
            request_id: Some("a,b".into()),
            action: "project.create".into(),
            resource_type: None,
            resource_id: None,
            outcome: Outcome::Success,
            details: serde_json::json!({ "name": "Spring, \"launch\"" }),
        };
        let line = AuditFormat::Csv.line(&e);
        assert!(line.ends_with("\r\n"), "{line}");
        assert!(line.contains(r#""'=HYPERLINK(""x"")@example.com""#), "{line}");
        assert!(line.contains(r#","a,b","#), "{line}");
        assert!(line.contains(r#""{""name"":""Spring, \""launch\""""}""#), "{line}");
        // A CSV reader gets the fields back whole.
        let file = format!("{}{line}", AuditFormat::Csv.header());
        let mut reader = csv::Reader::from_reader(file.as_bytes());
        let header = reader.headers().unwrap().clone();
        let row = reader.records().next().unwrap().unwrap();
        assert_eq!(row.len(), header.len());
        assert_eq!(&row[6], "a,b");
        assert_eq!(&row[11], r#"{"name":"Spring, \"launch\""}"#);
        let json: serde_json::Value = serde_json::from_str(AuditFormat::Jsonl.line(&e).trim_end()).unwrap();
        assert_eq!(json["action"], "project.create");
    }
}
