//! Deleting an organisation from the web UI: the form in Settings (owners)
//! and the erasure's record page, which follows the agents' confirmations
//! (`/account/erasures/{id}`, outside any organisation: it is gone).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::assets;
use super::page::{UiError, render, see_other};
use super::session::{Browser, Path, Submit};
use super::view::When;
use crate::api::ApiState;
use crate::service::erasures::EraseTenant;
use crate::store::TenantErasureRecord;

#[derive(Debug, Deserialize)]
pub struct EraseForm {
    #[serde(default)]
    confirm: String,
    #[serde(default)]
    password: String,
}

/// Settings → Delete this organisation.
pub async fn erase(State(state): State<ApiState>, submit: Submit<EraseForm>) -> Result<Response, UiError> {
    let Submit { page, form } = submit;
    let request = EraseTenant { password: form.password, confirm: form.confirm };
    match state.app.erase_tenant(&page.access, request).await {
        Ok(record) => Ok(see_other(&format!("/account/erasures/{}", record.id))),
        Err(e) => {
            let message = super::account::message(e)?;
            super::settings::with_erase_error(&state, page, message).await
        }
    }
}

struct AgentRow {
    name: String,
    confirmed: Option<When>,
    /// Why it cannot be told, in words.
    unreachable: String,
    /// What it deleted, in words.
    deleted: String,
}

#[derive(Template)]
#[template(path = "erasure.html")]
struct ErasurePage {
    css: &'static str,
    js: &'static str,
    erased: When,
    completed: Option<When>,
    files_pending: bool,
    /// What the control plane deleted, as (what, how many).
    counts: Vec<(&'static str, u64)>,
    audit_entries: u64,
    agents: Vec<AgentRow>,
    pending: usize,
}

#[derive(Debug, Deserialize)]
pub struct ErasurePath {
    erasure_id: Uuid,
}

/// An erasure's record, for the person who asked for it.
pub async fn show(
    State(state): State<ApiState>,
    browser: Browser,
    Path(p): Path<ErasurePath>,
) -> Result<Response, UiError> {
    let record = state.app.tenant_erasure(&browser.caller, p.erasure_id).await?;
    Ok(render(&erasure_page(&record)))
}

fn erasure_page(record: &TenantErasureRecord) -> ErasurePage {
    let c = &record.control_plane;
    let counts = vec![
        ("members' access", c.members),
        ("projects", c.projects),
        ("activities", c.activities),
        ("documents", c.documents),
        ("social posts", c.social_posts),
        ("inbox items", c.inbox_items),
        ("properties", c.properties),
        ("leads", c.leads),
        ("agents", c.agents),
    ];
    let agents: Vec<AgentRow> = record
        .agents
        .iter()
        .map(|a| AgentRow {
            name: a.name.clone(),
            confirmed: a.confirmed_at.map(When::of),
            unreachable: match a.unreachable.as_deref() {
                Some("revoked") => "Revoked: it cannot connect to be told. Delete its data directory by hand.".into(),
                Some(_) => "Its certificate expired: it cannot connect to be told. Delete its data directory by hand."
                    .into(),
                None => String::new(),
            },
            deleted: a.report.as_ref().map_or_else(String::new, |r| {
                let n = |key: &str| r[key].as_u64().unwrap_or(0);
                format!(
                    "{} documents ({} passages), {} undelivered job results, {} bytes",
                    n("documents"),
                    n("chunks"),
                    n("outbox_entries"),
                    n("bytes")
                )
            }),
        })
        .collect();
    ErasurePage {
        css: assets::css_url(),
        js: assets::js_url(),
        erased: When::of(record.erased_at),
        completed: record.completed_at.map(When::of),
        files_pending: record.files_pending,
        counts,
        audit_entries: c.audit_entries_pseudonymised,
        pending: agents.iter().filter(|a| a.confirmed.is_none() && a.unreachable.is_empty()).count(),
        agents,
    }
}
