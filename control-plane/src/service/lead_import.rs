//! Importing leads from CSV (a realtor's contacts from another system):
//! each row checked on its own, the properties named by reference, the
//! owner by e-mail, the consent the person gave elsewhere with its time,
//! and the status the lead had (an `unsubscribed` one is suppressed for
//! every sequence at once). Every row is created, or none. An address
//! that has a lead already is refused, not merged: an import never
//! changes an existing lead. Imported leads start no sequence by
//! themselves.

use std::collections::HashMap;

use uuid::Uuid;

use super::csv_import::{ImportReport, RowProblem, choice, read_rows, repeated};
use super::leads::{phone, text};
use super::{App, TenantAccess, actions};
use crate::domain::{Email, Permission, Timestamp, new_id};
use crate::error::{Error, Result};
use crate::store::{LeadSource, LeadStatus, NewLead, StoreError};

/// The columns a lead import reads; those marked `true` are required.
pub const LEAD_IMPORT_COLUMNS: &[(&str, bool)] = &[
    ("email", true),
    ("name", false),
    ("phone", false),
    ("status", false),
    ("properties", false),
    ("owner", false),
    ("note", false),
    ("consent_text", false),
    ("consented_at", false),
];

/// A row as read, before the names in it are looked up.
#[derive(Debug, Clone)]
struct LeadRow {
    email: String,
    name: String,
    phone: String,
    status: LeadStatus,
    /// Property references (or ids).
    properties: Vec<String>,
    /// A member's e-mail address.
    owner: Option<String>,
    note: String,
    consent: Option<(String, Timestamp)>,
}

fn lead_row(get: &dyn Fn(&str) -> String, now: Timestamp) -> Result<LeadRow> {
    let email = get("email");
    let email = Email::parse(&email)
        .map_err(|_| Error::invalid("email", format!("\"{email}\" is not an e-mail address")))?;
    let status = match get("status").as_str() {
        "" => LeadStatus::New,
        other => choice("status", other)?,
    };
    let properties: Vec<String> =
        get("properties").split('|').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    if properties.len() > 20 {
        return Err(Error::invalid("properties", "at most 20 properties per lead"));
    }
    let owner = get("owner");
    let consent_text = text("consent_text", &get("consent_text"), 1_000, false)?;
    let consented_at = get("consented_at");
    let consent = match (consent_text.is_empty(), consented_at.is_empty()) {
        (true, true) => None,
        (false, true) => {
            return Err(Error::invalid("consented_at", "give when the person agreed to the consent_text"));
        }
        (true, false) => {
            return Err(Error::invalid(
                "consent_text",
                "give the wording the person agreed to at consented_at",
            ));
        }
        (false, false) => Some((consent_text, consent_time(&consented_at, now)?)),
    };
    Ok(LeadRow {
        email: email.as_str().to_owned(),
        name: text("name", &get("name"), 100, false)?,
        phone: phone(&get("phone"))?,
        status,
        properties,
        owner: (!owner.is_empty()).then_some(owner),
        note: text("note", &get("note"), 5_000, false)?,
        consent,
    })
}

/// `2026-03-01T09:30:00Z`, or a day (`2026-03-01`, read as midnight UTC);
/// not in the future.
fn consent_time(value: &str, now: Timestamp) -> Result<Timestamp> {
    let at = Timestamp::parse_rfc3339(value)
        .ok()
        .or_else(|| {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            let day = time::Date::parse(value, format).ok()?;
            Timestamp::date_in_range(day).then(|| Timestamp::from_datetime(day.midnight().assume_utc()))
        })
        .ok_or_else(|| {
            Error::invalid(
                "consented_at",
                format!("\"{value}\" is not a time like 2026-03-01T09:30:00Z or a day like 2026-03-01"),
            )
        })?;
    if at > now + time::Duration::minutes(5) {
        return Err(Error::invalid("consented_at", "is in the future"));
    }
    Ok(at)
}

impl App {
    /// Imports leads from CSV: all rows or none. With `dry_run`, only
    /// checks.
    pub async fn import_leads(
        &self,
        access: &TenantAccess,
        csv: &[u8],
        dry_run: bool,
    ) -> Result<ImportReport> {
        access.require(Permission::ActivitiesCreate)?;
        let now = Timestamp::now();
        let (rows, mut refused) = read_rows(csv, LEAD_IMPORT_COLUMNS, |get| lead_row(get, now))?;
        let mut report = ImportReport::new(rows.len() + refused.len(), dry_run);
        refused.extend(repeated(&rows, "email", |r: &LeadRow| Some(r.email.to_lowercase())));

        // The addresses that have a lead already.
        let emails: Vec<String> = rows.iter().map(|(_, r)| r.email.to_lowercase()).collect();
        let taken = self.store.lead_emails_taken(access.tenant_id, &emails).await?;
        for (line, row) in &rows {
            if taken.contains(&row.email.to_lowercase()) {
                refused.push(RowProblem {
                    line: *line,
                    field: "email".into(),
                    message: format!(
                        "{} is a lead already; an import does not change existing leads",
                        row.email
                    ),
                });
            }
        }

        // Properties by reference (or id), owners by e-mail.
        let mut references: Vec<String> =
            rows.iter().flat_map(|(_, r)| r.properties.iter().cloned()).collect();
        references.sort();
        references.dedup();
        let mut by_reference: HashMap<String, Vec<Uuid>> = HashMap::new();
        for (reference, id) in self.store.properties_by_reference(access.tenant_id, &references).await? {
            by_reference.entry(reference).or_default().push(id);
        }
        // References that name no property may be a property's id.
        let ids: Vec<Uuid> = references
            .iter()
            .filter(|r| !by_reference.contains_key(*r))
            .filter_map(|r| r.parse::<Uuid>().ok())
            .collect();
        let existing: std::collections::HashSet<Uuid> =
            self.store.existing_properties(access.tenant_id, &ids).await?.into_iter().collect();
        let members = self.all_members(access.tenant_id).await?;
        let mut resolved: Vec<(u64, Vec<Uuid>, Option<Uuid>)> = Vec::with_capacity(rows.len());
        for (line, row) in &rows {
            let mut ids = Vec::new();
            for reference in &row.properties {
                match by_reference.get(reference).map(Vec::as_slice) {
                    Some([id]) => ids.push(*id),
                    Some(_) => refused.push(RowProblem {
                        line: *line,
                        field: "properties".into(),
                        message: format!("{reference} is the reference of properties in several projects; give the property's id"),
                    }),
                    None => match reference.parse::<Uuid>() {
                        Ok(id) if existing.contains(&id) => ids.push(id),
                        _ => refused.push(RowProblem {
                            line: *line,
                            field: "properties".into(),
                            message: format!("no property has the reference {reference}"),
                        }),
                    },
                }
            }
            let owner = match &row.owner {
                None => None,
                Some(email) => {
                    let found = members.iter().find(|m| m.email.as_str().eq_ignore_ascii_case(email));
                    match found {
                        Some(m) if !m.disabled => Some(m.user_id),
                        _ => {
                            refused.push(RowProblem {
                                line: *line,
                                field: "owner".into(),
                                message: format!("{email} is not an active member of this organisation"),
                            });
                            None
                        }
                    }
                }
            };
            resolved.push((*line, ids, owner));
        }

        refused.sort_by_key(|p| p.line);
        if !refused.is_empty() || dry_run || rows.is_empty() {
            report.refused = refused;
            return Ok(report);
        }
        let new: Vec<NewLead> = rows
            .into_iter()
            .zip(resolved)
            .map(|((_, row), (_, property_ids, owner_id))| NewLead {
                id: new_id(),
                tenant_id: access.tenant_id,
                name: row.name,
                email: row.email,
                phone: row.phone,
                source: LeadSource::Import,
                status: row.status,
                owner_id: owner_id.or(access.caller.creator_id()),
                property_ids,
                note: row.note,
                consent: row.consent,
                actor_id: access.caller.creator_id(),
            })
            .collect();
        let audit = access.audit(actions::LEAD_IMPORT).details(serde_json::json!({ "rows": new.len() }));
        let scorer = self.scorer(access.tenant_id).await?;
        match self.store.create_leads(&new, &scorer, &audit).await {
            Ok(created) => {
                report.imported = created.len();
                report.ids = created.iter().map(|l| l.id).collect();
                Ok(report)
            }
            // A lead or a property changed since the check: say so, and
            // let the person run the import again.
            Err(StoreError::Conflict { code: "lead_exists", .. }) => Err(Error::Conflict {
                code: "lead_exists",
                message: "a lead with one of these addresses was added meanwhile; import the file again to see which".into(),
            }),
            Err(StoreError::Invalid { field: "property_ids", message }) => Err(Error::invalid("properties", message)),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(csv: &str) -> (Vec<(u64, LeadRow)>, Vec<RowProblem>) {
        let now = Timestamp::parse_rfc3339("2026-12-05T12:00:00Z").unwrap();
        read_rows(csv.as_bytes(), LEAD_IMPORT_COLUMNS, |get| lead_row(get, now)).unwrap()
    }

    #[test]
    fn rows_are_read_and_bad_ones_named_by_line_and_field() {
        let (rows, refused) = read(
            "email,name,phone,status,properties,owner,consent_text,consented_at\n\
             ana@example.com,Ana Lima,+1 555 0100,WON,MLS-1|MLS-2,dana@example.com,I agree,2026-03-01\n\
             not-an-address,Bo,,,,,,\n\
             cy@example.com,Cy,call me,,,,,\n\
             di@example.com,Di,,maybe,,,,\n\
             ed@example.com,Ed,,,,,I agree,\n\
             fay@example.com,Fay,,,,,I agree,2027-01-01\n\
             gus@example.com,,,,,,,\n",
        );
        let lines: Vec<u64> = rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 8]);
        let ana = &rows[0].1;
        assert_eq!(ana.status, LeadStatus::Won);
        assert_eq!(ana.properties, ["MLS-1", "MLS-2"]);
        assert_eq!(ana.owner.as_deref(), Some("dana@example.com"));
        let (wording, at) = ana.consent.as_ref().unwrap();
        assert_eq!((wording.as_str(), at.to_string().as_str()), ("I agree", "2026-03-01T00:00:00.000000Z"));
        let problems: Vec<(u64, &str)> = refused.iter().map(|p| (p.line, p.field.as_str())).collect();
        assert_eq!(
            problems,
            [(3, "email"), (4, "phone"), (5, "status"), (6, "consented_at"), (7, "consented_at")]
        );
        assert!(refused[3].message.contains("when the person agreed"), "{}", refused[3].message);
        assert!(refused[4].message.contains("future"), "{}", refused[4].message);
    }
}
