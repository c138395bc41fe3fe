//! The fleet: every agent with its state (updated live: the page fetches
//! its rows again every few seconds), one agent's detail (events, recent
//! jobs, a chart of the last hours, rename, relabel, revoke), and adding an
//! agent (an enrollment token and the commands to paste).

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::page::{FormErrors, Shell, UiError, every, render, render_form, request, see_other};
use super::session::{Path, Query, Submit, TenantPage};
use super::view::{When, badge};
use crate::api::ApiState;
use crate::domain::{Permission, Timestamp};
use crate::service::{AgentState, AgentView, CreateEnrollmentToken, JobQuery, UpdateAgent};
use crate::store::{Labels, PageRequest};

/// An agent as a row of the fleet table.
struct AgentRow {
    href: String,
    name: String,
    state: &'static str,
    badge: &'static str,
    expiring: bool,
    labels: String,
    version: String,
    hostname: String,
    models: String,
    load: String,
    last_heartbeat: Option<When>,
    cert_expiry: When,
}

fn state_name(agent: &AgentView) -> &'static str {
    match agent.state {
        AgentState::Online => "online",
        AgentState::Offline => "offline",
        AgentState::Revoked => "revoked",
    }
}

fn labels_text(labels: &Labels) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

fn row(page: &TenantPage, agent: &AgentView) -> AgentRow {
    let state = state_name(agent);
    AgentRow {
        href: page.path(&format!("/fleet/{}", agent.id)),
        name: agent.name.to_string(),
        badge: badge(state),
        state,
        expiring: agent.cert_expiring && agent.state != AgentState::Revoked,
        labels: labels_text(&agent.labels),
        version: agent.agent_version.clone().unwrap_or_default(),
        hostname: agent.hostname.clone(),
        models: agent.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
        load: format!("{} / {}", agent.running_jobs, agent.max_concurrency),
        last_heartbeat: When::maybe(agent.last_heartbeat_at),
        cert_expiry: When::of(agent.cert_not_after),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    state: Option<String>,
    label: Option<String>,
}

impl FleetQuery {
    fn keeps(&self, agent: &AgentView) -> bool {
        let state_ok = match self.state.as_deref().filter(|s| !s.is_empty()) {
            None => true,
            Some("expiring") => agent.cert_expiring && agent.state != AgentState::Revoked,
            Some(state) => state_name(agent) == state,
        };
        let label_ok = match self.label.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
            None => true,
            Some(label) => match label.split_once('=') {
                Some((k, v)) => agent.labels.get(k.trim()).is_some_and(|value| value == v.trim()),
                None => agent.labels.contains_key(label),
            },
        };
        state_ok && label_ok
    }

    fn query_string(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(state) = &self.state {
            query.append_pair("state", state);
        }
        if let Some(label) = &self.label {
            query.append_pair("label", label);
        }
        query.finish()
    }
}

/// The most rows the fleet table shows; it counts the other matching agents
/// and says to filter, so a big fleet never silently loses rows.
const MAX_ROWS: usize = 500;

/// The rows of the agents the filter keeps (up to `MAX_ROWS`), and how many
/// it keeps in all.
async fn rows_of(state: &ApiState, page: &TenantPage, query: &FleetQuery) -> Result<FleetRows, UiError> {
    let agents = every(|p| state.app.agents(&page.access, p)).await?;
    let matching: Vec<&AgentView> = agents.iter().filter(|a| query.keeps(a)).collect();
    Ok(FleetRows {
        rows: matching.iter().take(MAX_ROWS).map(|a| row(page, a)).collect(),
        matching: matching.len(),
    })
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetPage {
    shell: Shell,
    rows: Vec<AgentRow>,
    matching: usize,
    state: String,
    label: String,
    rows_url: String,
    add_href: Option<String>,
}

pub async fn list(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(query): Query<FleetQuery>,
) -> Result<Response, UiError> {
    let FleetRows { rows, matching } = rows_of(&state, &page, &query).await?;
    let view = FleetPage {
        rows,
        matching,
        state: query.state.clone().unwrap_or_default(),
        label: query.label.clone().unwrap_or_default(),
        rows_url: format!("{}?{}", page.path("/fleet/rows"), query.query_string()),
        add_href: page.can(Permission::AgentsManage).then(|| page.path("/fleet/add")),
        shell: page.shell,
    };
    Ok(render(&view))
}

#[derive(Template)]
#[template(path = "fleet_rows.html")]
struct FleetRows {
    rows: Vec<AgentRow>,
    matching: usize,
}

/// The table's rows alone, for the page's live refresh.
pub async fn rows(
    State(state): State<ApiState>,
    page: TenantPage,
    Query(query): Query<FleetQuery>,
) -> Result<Response, UiError> {
    let html = rows_of(&state, &page, &query)
        .await?
        .render()
        .map_err(|e| UiError::Internal(crate::error::Error::internal(e)))?;
    Ok(Html(html).into_response())
}

struct EventRow {
    kind: String,
    at: When,
    detail: String,
}

struct JobRow {
    kind: String,
    model: String,
    status: String,
    badge: &'static str,
    created: When,
}

#[derive(Template)]
#[template(path = "agent.html")]
struct AgentPage {
    shell: Shell,
    agent: AgentView,
    row: AgentRowDetail,
    events: Vec<EventRow>,
    jobs: Vec<JobRow>,
    chart: String,
    can_manage: bool,
    labels_text: String,
    /// The name in the form: as typed when the form is refused.
    name_value: String,
    errors: FormErrors,
    base: String,
}

struct AgentRowDetail {
    state: &'static str,
    badge: &'static str,
    expiring: bool,
    last_heartbeat: Option<When>,
    connected_since: Option<When>,
    cert_expiry: When,
    enrolled: When,
    models: String,
    policy: String,
}

pub async fn show(
    State(state): State<ApiState>,
    page: TenantPage,
    Path((_, agent_id)): Path<(Uuid, Uuid)>,
) -> Result<Response, UiError> {
    agent_page(&state, page, agent_id, FormErrors::default(), None).await
}

async fn agent_page(
    state: &ApiState,
    page: TenantPage,
    agent_id: Uuid,
    errors: FormErrors,
    typed: Option<(String, String)>,
) -> Result<Response, UiError> {
    let (name_typed, labels_typed) = typed.unzip();
    let agent = state.app.agent(&page.access, agent_id).await?;
    let events =
        state.app.agent_events(&page.access, agent_id, PageRequest { after: None, limit: 100 }).await?;
    let since = Timestamp::now() - time::Duration::hours(6);
    let query = JobQuery { status: None, kind: None, agent_id: Some(agent_id), since: Some(since) };
    let jobs = state.app.jobs_page(&page.access, query, PageRequest { after: None, limit: 200 }).await?;
    let chart = chart(&jobs.items, &events.items, agent.max_concurrency, agent.enrolled_at, Timestamp::now());
    let state_text = state_name(&agent);
    let policy = match &agent.policy {
        None => "not reported".to_owned(),
        Some(p) => {
            let mut parts =
                vec![if p.redact_phi { "PHI redacted".to_owned() } else { "no redaction".to_owned() }];
            if !p.allow_document_text_in_results {
                parts.push(format!("document quotes over {} characters withheld", p.max_verbatim_chars));
            }
            if let Some(models) = &p.allowed_models {
                parts.push(format!("models: {}", models.join(", ")));
            }
            if let Some(max) = p.max_output_chars {
                parts.push(format!("output up to {max} characters"));
            }
            parts.join("; ")
        }
    };
    let view = AgentPage {
        row: AgentRowDetail {
            badge: badge(state_text),
            state: state_text,
            expiring: agent.cert_expiring && agent.state != AgentState::Revoked,
            last_heartbeat: When::maybe(agent.last_heartbeat_at),
            connected_since: When::maybe(agent.connected_since),
            cert_expiry: When::of(agent.cert_not_after),
            enrolled: When::of(agent.enrolled_at),
            models: agent.models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
            policy,
        },
        events: events
            .items
            .iter()
            .map(|e| EventRow {
                kind: <&'static str>::from(e.kind).replace('_', " "),
                at: When::of(e.occurred_at),
                detail: event_detail(&e.details),
            })
            .collect(),
        jobs: jobs
            .items
            .iter()
            .take(20)
            .map(|j| {
                let status = j.status.to_string();
                JobRow {
                    kind: j.kind.to_string(),
                    model: j.model.clone(),
                    badge: badge(&status),
                    status,
                    created: When::of(j.created_at),
                }
            })
            .collect(),
        chart,
        can_manage: page.can(Permission::AgentsManage),
        name_value: name_typed.unwrap_or_else(|| agent.name.to_string()),
        labels_text: labels_typed.unwrap_or_else(|| {
            agent.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n")
        }),
        errors,
        base: page.path(&format!("/fleet/{agent_id}")),
        agent,
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

/// An event's details in words: the reason of a disconnect, the version of
/// a connect.
fn event_detail(details: &serde_json::Value) -> String {
    let Some(object) = details.as_object() else { return String::new() };
    object
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            format!("{}: {}", k.replace('_', " "), v.as_str().map_or_else(|| v.to_string(), str::to_owned))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last six hours as an SVG: jobs running per quarter hour (bars,
/// against the agent's slots) over its connection (a band: connected or
/// not, from its events). Built here from numbers only.
fn chart(
    jobs: &[crate::service::JobView],
    events: &[crate::store::AgentEvent],
    capacity: i64,
    enrolled: Timestamp,
    now: Timestamp,
) -> String {
    const BUCKETS: i64 = 24;
    const WIDTH: i64 = 480;
    const HEIGHT: i64 = 80;
    let start = now - time::Duration::hours(6);
    let bucket = time::Duration::minutes(15);
    let bar = WIDTH / BUCKETS;
    let capacity = capacity.max(1);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {}\" role=\"img\" aria-label=\"Jobs running per quarter hour and connection over the last six hours\">",
        HEIGHT + 16
    );
    for i in 0..BUCKETS {
        let from = start + bucket * i32::try_from(i).unwrap_or(0);
        let to = from + bucket;
        let running = jobs
            .iter()
            .filter(|j| {
                let Some(began) = j.started_at.or(j.assigned_at) else { return false };
                began < to && j.finished_at.is_none_or(|end| end > from)
            })
            .count();
        let running = i64::try_from(running).unwrap_or(0).min(capacity);
        let height = running * HEIGHT / capacity;
        svg.push_str(&format!(
            "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{height}\"><title>{running} running</title></rect>",
            i * bar + 1,
            HEIGHT - height,
            bar - 2
        ));
    }
    // Connection: events oldest first; connected until a disconnect. Before
    // the agent was enrolled there is no band at all.
    let mut chronological: Vec<&crate::store::AgentEvent> = events.iter().collect();
    chronological.sort_by_key(|e| e.occurred_at);
    let mut connected = false;
    let band_start = start.max(enrolled);
    let mut since = band_start;
    let mut segments: Vec<(Timestamp, Timestamp, bool)> = Vec::new();
    for event in chronological {
        let change = match event.kind {
            crate::store::AgentEventKind::Connected => Some(true),
            crate::store::AgentEventKind::Disconnected
            | crate::store::AgentEventKind::Offline
            | crate::store::AgentEventKind::Revoked => Some(false),
            _ => None,
        };
        let Some(now_connected) = change else { continue };
        if event.occurred_at > band_start {
            segments.push((since, event.occurred_at, connected));
            since = event.occurred_at;
        }
        connected = now_connected;
    }
    segments.push((since, now, connected));
    let x = |at: Timestamp| {
        ((at.as_datetime() - start.as_datetime()).whole_seconds().max(0) * WIDTH / (6 * 3600)).min(WIDTH)
    };
    for (from, to, up) in segments {
        let (a, b) = (x(from.max(start)), x(to));
        if b > a {
            svg.push_str(&format!(
                "<rect class=\"{}\" x=\"{a}\" y=\"{}\" width=\"{}\" height=\"8\"><title>{}</title></rect>",
                if up { "up" } else { "down" },
                HEIGHT + 6,
                b - a,
                if up { "connected" } else { "not connected" }
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

#[derive(Debug, Deserialize)]
pub struct AgentForm {
    name: Option<String>,
    labels: Option<String>,
}

/// Labels from `key=value` lines.
fn parse_labels(text: &str, errors: &mut FormErrors) -> Labels {
    let mut labels = Labels::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once('=') {
            Some((k, v)) => {
                labels.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            None => errors.add("labels", format!("\"{line}\" must look like key=value")),
        }
    }
    labels
}

pub async fn update(
    State(state): State<ApiState>,
    Path((_, agent_id)): Path<(Uuid, Uuid)>,
    submit: Submit<AgentForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let mut errors = FormErrors::default();
    let labels_text = form.labels.clone().unwrap_or_default();
    let labels = parse_labels(&labels_text, &mut errors);
    let name = form.name.unwrap_or_default();
    if errors.is_empty() {
        let body = serde_json::json!({ "name": name, "labels": labels });
        let result = match request::<UpdateAgent>(&body) {
            Ok(req) => state.app.update_agent(&page.access, agent_id, req).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => return Ok(see_other(&page.path(&format!("/fleet/{agent_id}")))),
            Err(e) => errors = FormErrors::from_error(e)?,
        }
    }
    // A refused form keeps everything that was typed.
    agent_page(&state, page, agent_id, errors, Some((name, labels_text))).await
}

pub async fn revoke(
    State(state): State<ApiState>,
    Path((_, agent_id)): Path<(Uuid, Uuid)>,
    submit: Submit<serde_json::Value>,
) -> Result<Response, UiError> {
    let page = submit.page;
    state.app.revoke_agent(&page.access, agent_id).await?;
    Ok(see_other(&page.path(&format!("/fleet/{agent_id}"))))
}

#[derive(Template)]
#[template(path = "fleet_add.html")]
struct AddAgentPage {
    shell: Shell,
    errors: FormErrors,
    labels: String,
    created: Option<CreatedToken>,
    fleet_href: String,
    action: String,
}

struct CreatedToken {
    install_command: String,
    expires: When,
    max_uses: i64,
}

pub async fn add_form(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    page: TenantPage,
) -> Result<Response, UiError> {
    page.access.require(Permission::AgentsManage)?;
    // A token created by the form just before the redirect here: shown once.
    let flash = super::flash::read(&state, &headers, page.tenant_id(), page.browser.session_id);
    let created = match &flash {
        Some(super::flash::Flash::EnrollmentToken { install_command, expires_at, max_uses }) => {
            Some(CreatedToken {
                install_command: install_command.clone(),
                expires: When::of(*expires_at),
                max_uses: *max_uses,
            })
        }
        _ => None,
    };
    let action = page.path("/fleet/add");
    let view = AddAgentPage {
        errors: FormErrors::default(),
        labels: String::new(),
        created,
        fleet_href: page.path("/fleet"),
        action: action.clone(),
        shell: page.shell,
    };
    let mut response = render_form(&view, &view.errors);
    if flash.is_some() {
        super::flash::clear(&mut response, &action);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub struct AddAgentForm {
    labels: Option<String>,
    ttl_hours: Option<String>,
    max_uses: Option<String>,
}

pub async fn add(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    submit: Submit<AddAgentForm>,
) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let mut errors = FormErrors::default();
    let labels_text = form.labels.clone().unwrap_or_default();
    let labels = parse_labels(&labels_text, &mut errors);
    let hours = super::page::number(&mut errors, "ttl_hours", form.ttl_hours.as_deref());
    let max_uses = super::page::number(&mut errors, "max_uses", form.max_uses.as_deref());
    if errors.is_empty() {
        let ttl = hours.and_then(|h| h.as_u64()).map(|h| h.saturating_mul(3600));
        let body = serde_json::json!({ "labels": labels, "ttl_seconds": ttl, "max_uses": max_uses });
        let result = match request::<CreateEnrollmentToken>(&body) {
            Ok(req) => state.app.create_enrollment_token(&page.access, req).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(token) => {
                // Post/redirect/get: the command rides the redirect sealed.
                let action = page.path("/fleet/add");
                let flash = super::flash::Flash::EnrollmentToken {
                    install_command: token.install_command,
                    expires_at: token.expires_at,
                    max_uses: token.max_uses,
                };
                return Ok(super::flash::redirect(&state, &page, &headers, &action, &action, flash));
            }
            Err(crate::error::Error::Invalid { field, message }) if field == "ttl_seconds" => {
                errors.add(
                    "ttl_hours",
                    message.replace("60 to 2,592,000", "1 to 720").replace("seconds", "hours"),
                );
            }
            Err(e) => errors = FormErrors::from_error(e)?,
        }
    }
    let view = AddAgentPage {
        errors,
        labels: labels_text,
        created: None,
        fleet_href: page.path("/fleet"),
        action: page.path("/fleet/add"),
        shell: page.shell,
    };
    Ok(render_form(&view, &view.errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_lines() {
        let mut errors = FormErrors::default();
        let labels = parse_labels("site = berlin\n\ngpu=a100\n", &mut errors);
        assert!(errors.is_empty());
        assert_eq!(labels.get("site").map(String::as_str), Some("berlin"));
        parse_labels("no equals sign", &mut errors);
        assert!(errors.get("labels").contains("key=value"));
    }

    #[test]
    fn the_chart_shows_jobs_and_connection() {
        let now = Timestamp::now();
        let svg = chart(&[], &[], 2, now - time::Duration::days(1), now);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 24);
        assert!(svg.contains("not connected"));
        // Enrolled an hour ago: the band covers only the last hour.
        let svg = chart(&[], &[], 2, now - time::Duration::hours(1), now);
        assert!(svg.contains("x=\"400\"") && svg.contains("width=\"80\""), "{svg}");
    }
}
