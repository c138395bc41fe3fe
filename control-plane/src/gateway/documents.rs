//! Documents between the gateway and agents: the reports agents send about
//! their indexes (metadata only, checked before anything is stored), and
//! `GET /agent/v1/documents/{id}`, where an agent fetches an uploaded file
//! for its ingest job. An agent only ever sees its own tenant's documents.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use marketer_protocol::documents::{DocumentMeta, DocumentReport, MAX_REPORT_DOCUMENTS, PolicySummary};
use uuid::Uuid;

use super::{GatewayError, GatewayState, Peer};
use crate::domain::Timestamp;
use crate::store::{Agent, ReportOutcome};

/// Media types an agent may report (the extractors it has).
pub const MEDIA_TYPES: &[&str] = &[
    "text/plain",
    "text/markdown",
    "text/html",
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/octet-stream",
];
const MAX_HELD: usize = 50_000;
const MAX_REMOVED: usize = 10_000;
const MAX_PROJECTS: usize = 10_000;

pub(super) async fn download(
    State(state): State<GatewayState>,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> Result<Response, GatewayError> {
    let agent = super::session::authenticate(&state, &peer).await?.agent;
    let not_found = || GatewayError::new(StatusCode::NOT_FOUND, "not_found", "no such document");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(agent_id = %agent.id, document_id = %id, error = %e, "serving a document failed");
        GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the document cannot be read now; retry",
        )
    };
    let document = state.app.store.document(agent.tenant_id, id).await.map_err(|e| unavailable(&e))?;
    let Some(key) = document.and_then(|d| d.storage_key) else { return Err(not_found()) };
    let bytes = state.app.files.get(&key).await.map_err(|e| unavailable(&e))?.ok_or_else(not_found)?;
    tracing::info!(agent_id = %agent.id, document_id = %id, bytes = bytes.len(), "document sent to its agent");
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(bytes))
        .map_err(|e| unavailable(&e))
}

/// `GET /agent/v1/classify/{job_id}`: the texts of a classify job's inbox
/// items, for the agent holding the job's lease only (sealed texts opened
/// for it). Nothing of the texts is logged.
pub(super) async fn classify_texts(
    State(state): State<GatewayState>,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> Result<Response, GatewayError> {
    let agent = super::session::authenticate(&state, &peer).await?.agent;
    let not_found =
        || GatewayError::new(StatusCode::NOT_FOUND, "not_found", "no classify job of this agent has this id");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let texts = state.app.publisher.classify_texts(agent.id, id).await.map_err(|e| {
        tracing::error!(agent_id = %agent.id, job_id = %id, error = %e, "serving a classify job's texts failed");
        GatewayError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the texts cannot be read now; retry")
    })?;
    let texts = texts.ok_or_else(not_found)?;
    tracing::info!(agent_id = %agent.id, job_id = %id, items = texts.len(), "classify texts sent to their agent");
    Ok(axum::response::IntoResponse::into_response(axum::Json(marketer_protocol::inbox::ClassifyTexts {
        texts,
    })))
}

/// `GET /agent/v1/reply/{job_id}`: the inbox item a reply job answers,
/// for the agent holding the job's lease only. Nothing of it is logged.
pub(super) async fn reply_context(
    State(state): State<GatewayState>,
    Extension(peer): Extension<Peer>,
    Path(id): Path<String>,
) -> Result<Response, GatewayError> {
    let agent = super::session::authenticate(&state, &peer).await?.agent;
    let not_found =
        || GatewayError::new(StatusCode::NOT_FOUND, "not_found", "no reply job of this agent has this id");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let context = state.app.publisher.reply_context(agent.id, id).await.map_err(|e| {
        tracing::error!(agent_id = %agent.id, job_id = %id, error = %e, "serving a reply job's item failed");
        GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the item cannot be read now; retry",
        )
    })?;
    let context = context.ok_or_else(not_found)?;
    tracing::info!(agent_id = %agent.id, job_id = %id, "reply item sent to its agent");
    Ok(axum::response::IntoResponse::into_response(axum::Json(context)))
}

/// Stores a report and removes the files of uploads that are gone.
pub(super) async fn apply_report(
    state: &GatewayState,
    agent: &Agent,
    report: &DocumentReport,
) -> crate::store::Result<ReportOutcome> {
    let outcome = state.app.store.apply_document_report(agent, report, Timestamp::now()).await?;
    for key in &outcome.released_files {
        if let Err(e) = state.app.files.delete(key).await {
            tracing::warn!(agent_id = %agent.id, key, error = %e, "could not remove a released upload");
        }
    }
    Ok(outcome)
}

/// Bounds on a report, so one agent cannot bloat the store or smuggle in
/// what is not metadata.
pub(super) fn check_report(report: &DocumentReport) -> Result<(), String> {
    if report.documents.len() > MAX_REPORT_DOCUMENTS {
        return Err(format!("a document report may carry at most {MAX_REPORT_DOCUMENTS} documents"));
    }
    if report.removed.len() > MAX_REMOVED {
        return Err(format!("a document report may remove at most {MAX_REMOVED} documents"));
    }
    if report.held.as_ref().is_some_and(|h| h.len() > MAX_HELD) {
        return Err(format!("an agent may hold at most {MAX_HELD} documents"));
    }
    report
        .documents
        .iter()
        .enumerate()
        .try_for_each(|(i, d)| check_meta(d).map_err(|e| format!("documents[{i}].{e}")))
}

fn check_meta(d: &DocumentMeta) -> Result<(), String> {
    check_text("name", &d.name, 255)?;
    if d.name.trim().is_empty() {
        return Err("name must not be empty".into());
    }
    if d.sha256.len() != 64 || !d.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("sha256 must be 64 hexadecimal digits".into());
    }
    if !MEDIA_TYPES.contains(&d.media_type.as_str()) {
        return Err(format!("media_type {:?} is not a supported type", d.media_type));
    }
    check_text("embedding_model", &d.embedding_model, 200)?;
    if let Some(error) = &d.error {
        check_text("error", error, 2000)?;
    }
    if i64::try_from(d.size_bytes).is_err() {
        return Err("size_bytes is out of range".into());
    }
    Ok(())
}

/// What an agent reports of its projects and policy.
pub(super) fn check_index(projects: Option<&[Uuid]>, policy: Option<&PolicySummary>) -> Result<(), String> {
    if projects.is_some_and(|p| p.len() > MAX_PROJECTS) {
        return Err(format!("an agent may hold at most {MAX_PROJECTS} project indexes"));
    }
    if let Some(policy) = policy {
        if policy.custom_patterns.len() > 100
            || policy.allowed_models.as_ref().is_some_and(|m| m.len() > 1000)
        {
            return Err("policy: too many custom patterns or allowed models".into());
        }
        for name in policy.custom_patterns.iter().chain(policy.allowed_models.iter().flatten()) {
            check_text("policy", name, 200)?;
        }
    }
    Ok(())
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(format!("{field} must be at most {max} printable characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use marketer_protocol::documents::DocumentStatus;

    use super::*;

    fn meta() -> DocumentMeta {
        DocumentMeta {
            id: Uuid::now_v7(),
            project_id: Uuid::now_v7(),
            name: "guide.md".into(),
            size_bytes: 10,
            sha256: "a".repeat(64),
            media_type: "text/markdown".into(),
            status: DocumentStatus::Indexed,
            error: None,
            chunk_count: 3,
            embedding_model: "nomic-embed-text".into(),
            indexed_at: None,
        }
    }

    #[test]
    fn reports_are_bounded_and_checked() {
        let report = |documents| DocumentReport { seq: 1, held: None, documents, removed: Vec::new() };
        assert!(check_report(&report(vec![meta()])).is_ok());
        let mut bad = meta();
        bad.sha256 = "xyz".into();
        assert!(check_report(&report(vec![bad])).unwrap_err().contains("documents[0].sha256"));
        let mut bad = meta();
        bad.name = "a\u{7}b".into();
        assert!(check_report(&report(vec![bad])).unwrap_err().contains("name"));
        let mut bad = meta();
        bad.media_type = "application/x-msdownload".into();
        assert!(check_report(&report(vec![bad])).is_err());
        assert!(check_report(&report(vec![meta(); MAX_REPORT_DOCUMENTS + 1])).is_err());
    }
}
