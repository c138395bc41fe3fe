//! The audit log: filtered by actor, action and time, newest first, a page
//! at a time.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::page::{Shell, UiError, every, render};
use super::session::{Query, TenantPage};
use super::view::When;
use crate::api::ApiState;
use crate::api::pagination::{ListParams, encode_cursor};
use crate::domain::Timestamp;
use crate::service::{AuditFormat, AuditQuery, actions};
use crate::store::Actor;

#[derive(Debug, Default, Deserialize)]
pub struct AuditFilters {
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

struct EventRow {
    at: When,
    actor: String,
    action: String,
    outcome: String,
    resource: String,
    details: String,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    shell: Shell,
    events: Vec<EventRow>,
    actors: Vec<Choice>,
    actions: Vec<Choice>,
    since: String,
    until: String,
    next: Option<String>,
    /// The period's downloads (CSV, JSON lines), once it has both ends.
    export: Option<(String, String)>,
    error: String,
}

/// `YYYY-MM-DD` as the start of that UTC day (`end`: of the next day).
fn day(value: Option<&str>, end: bool) -> Result<Option<Timestamp>, String> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else { return Ok(None) };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date =
        time::Date::parse(value, &format).map_err(|_| format!("{value} is not a date (YYYY-MM-DD)"))?;
    let date = if end { date.next_day().unwrap_or(date) } else { date };
    Ok(Some(Timestamp::from_datetime(date.midnight().assume_utc())))
}

pub async fn list(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(filters): Query<AuditFilters>,
) -> Result<Response, UiError> {
    let members = every(|p| state.app.members(&page.access, p)).await?;
    let mut error = String::new();
    let actor = filters.actor.as_deref().filter(|a| !a.is_empty()).and_then(|a| Uuid::parse_str(a).ok());
    let since = day(filters.since.as_deref(), false).unwrap_or_else(|e| {
        error = e;
        None
    });
    let until = day(filters.until.as_deref(), true).unwrap_or_else(|e| {
        error = e;
        None
    });
    let action = filters.action.clone().filter(|a| !a.is_empty());
    let request = ListParams { limit: Some(50), cursor: filters.cursor.clone() }.page()?;
    let query = AuditQuery { action: action.clone(), actor, since, until };
    let events = match state.app.audit_events(&page.access, query, request).await {
        Ok(events) => events,
        Err(crate::error::Error::Invalid { message, .. }) => {
            error = message;
            crate::store::Page { items: Vec::new(), next: None }
        }
        Err(e) => return Err(e.into()),
    };
    let next = events.next.map(|id| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("actor", &filters.actor),
            ("action", &filters.action),
            ("since", &filters.since),
            ("until", &filters.until),
        ] {
            if let Some(value) = value {
                query.append_pair(key, value);
            }
        }
        query.append_pair("cursor", &encode_cursor(id));
        format!("?{}", query.finish())
    });
    let export = (since.is_some() && until.is_some() && error.is_empty()).then(|| {
        let link = |format: &str| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("format", format);
            for (key, value) in [
                ("actor", &filters.actor),
                ("action", &filters.action),
                ("since", &filters.since),
                ("until", &filters.until),
            ] {
                if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                    query.append_pair(key, value);
                }
            }
            format!("{}?{}", page.path("/audit/export"), query.finish())
        };
        (link("csv"), link("jsonl"))
    });
    let mut all_actions: Vec<&str> = actions::ALL.to_vec();
    all_actions.extend([actions::ACTIVITY_ASSIGN, actions::CONTENT_READ]);
    all_actions.sort_unstable();
    let view = AuditPage {
        events: events
            .items
            .iter()
            .map(|e| EventRow {
                at: When::of(e.occurred_at),
                actor: match &e.actor {
                    Actor::User { email, .. } => email.clone(),
                    Actor::ApiKey { name, .. } => format!("API key {name}"),
                    Actor::Agent { name, .. } => format!("agent {name}"),
                    Actor::System { name } => name.clone(),
                    Actor::Anonymous => "anonymous".into(),
                    Actor::Reviewer { email } => format!("{email} (external reviewer)"),
                },
                action: e.action.clone(),
                outcome: format!("{:?}", e.outcome).to_lowercase(),
                resource: match (&e.resource_type, &e.resource_id) {
                    (Some(kind), Some(id)) => format!("{kind} {id}"),
                    (Some(kind), None) => kind.clone(),
                    _ => String::new(),
                },
                details: if e.details.as_object().is_some_and(|o| o.is_empty()) {
                    String::new()
                } else {
                    e.details.to_string()
                },
            })
            .collect(),
        actors: members
            .iter()
            .map(|m| Choice {
                value: m.user_id.to_string(),
                label: format!("{} ({})", m.display_name, m.email),
                selected: Some(m.user_id) == actor,
            })
            .collect(),
        actions: all_actions
            .into_iter()
            .map(|a| Choice {
                value: a.to_owned(),
                label: a.to_owned(),
                selected: action.as_deref() == Some(a),
            })
            .collect(),
        since: filters.since.unwrap_or_default(),
        until: filters.until.unwrap_or_default(),
        next,
        export,
        error,
        shell: page.shell,
    };
    Ok(render(&view))
}

#[derive(Debug, Default, Deserialize)]
pub struct ExportFilters {
    format: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// The filtered period as a file: the API's export, for the signed-in
/// person.
pub async fn export(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(filters): Query<ExportFilters>,
) -> Result<Response, UiError> {
    let format = match filters.format.as_deref() {
        Some("csv") => AuditFormat::Csv,
        Some("jsonl") => AuditFormat::Jsonl,
        _ => return Err(crate::error::Error::invalid("format", "choose csv or jsonl").into()),
    };
    let since = day(filters.since.as_deref(), false).map_err(|e| crate::error::Error::invalid("since", e))?;
    let until = day(filters.until.as_deref(), true).map_err(|e| crate::error::Error::invalid("until", e))?;
    let actor = match filters.actor.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => {
            Some(Uuid::parse_str(a).map_err(|_| crate::error::Error::invalid("actor", "not a person's id"))?)
        }
        None => None,
    };
    let query = AuditQuery { action: filters.action.filter(|a| !a.is_empty()), actor, since, until };
    Ok(crate::api::routes::audit_events::export_response(state, page.access, query, format).await?)
}
