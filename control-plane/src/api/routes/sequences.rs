//! Follow-up sequences: the organisation's templates, and a lead's
//! sequences (start one, see each step's e-mail, send or skip a step
//! drafted for review, stop it).

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path};
use crate::api::routes::leads::LeadPath;
use crate::error::Result;
use crate::service::{
    DecideDraft, EnrollmentView, SequenceIn, SequenceView, StartSequence, TenantAccess, actions,
};

#[derive(Debug, Deserialize)]
pub struct SequencePath {
    pub tenant_id: Uuid,
    pub sequence_id: Uuid,
}

#[derive(Debug, Deserialize)]
pub struct DraftPath {
    pub tenant_id: Uuid,
    pub lead_id: Uuid,
    /// The drafted e-mail (a send's `mail_id`).
    pub message_id: Uuid,
}

#[derive(Debug, Deserialize)]
pub struct EnrollmentPath {
    pub tenant_id: Uuid,
    pub lead_id: Uuid,
    pub enrollment_id: Uuid,
}

/// The organisation's sequence templates (a new organisation gets the
/// default one: welcome after 2 hours, similar homes after 3 days, a market
/// update a week later).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/sequences", tag = "leads", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<SequenceView>), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<Vec<SequenceView>>> {
    Ok(Json(state.app.sequences(&access).await?))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/sequences", tag = "leads",
    operation_id = actions::SEQUENCE_CREATE, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = SequenceIn,
    responses((status = 201, body = SequenceView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<SequenceIn>,
) -> Result<(StatusCode, Json<SequenceView>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_sequence(&access, req).await?)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/sequences/{sequence_id}", tag = "leads", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("sequence_id" = Uuid, Path)),
    responses((status = 200, body = SequenceView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<SequencePath>,
) -> Result<Json<SequenceView>> {
    Ok(Json(state.app.sequence(&access, p.sequence_id).await?))
}

/// Replaces a template; sequences already running keep the steps they
/// started with.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/sequences/{sequence_id}", tag = "leads",
    operation_id = actions::SEQUENCE_UPDATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("sequence_id" = Uuid, Path)), request_body = SequenceIn,
    responses((status = 200, body = SequenceView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<SequencePath>,
    Json(req): Json<SequenceIn>,
) -> Result<Json<SequenceView>> {
    Ok(Json(state.app.update_sequence(&access, p.sequence_id, req).await?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/sequences/{sequence_id}", tag = "leads",
    operation_id = actions::SEQUENCE_DELETE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("sequence_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<SequencePath>,
) -> Result<StatusCode> {
    state.app.delete_sequence(&access, p.sequence_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A lead's sequences, newest first, each step's e-mail with how sending
/// it went.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/leads/{lead_id}/sequences", tag = "leads", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("lead_id" = Uuid, Path)),
    responses((status = 200, body = Vec<EnrollmentView>), (status = 404, body = ErrorBody)))]
pub async fn lead_list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<LeadPath>,
) -> Result<Json<Vec<EnrollmentView>>> {
    Ok(Json(state.app.lead_sequences(&access, p.lead_id).await?))
}

/// Starts a sequence for the lead: 409 `sequence_running` while it runs
/// already, 409 `postal_address_missing` without the sender's postal
/// address, 422 when the address unsubscribed or the lead is won or lost.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/leads/{lead_id}/sequences", tag = "leads",
    operation_id = actions::LEAD_SEQUENCE_START, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("lead_id" = Uuid, Path)), request_body = StartSequence,
    responses((status = 201, body = EnrollmentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn start(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<LeadPath>,
    Json(req): Json<StartSequence>,
) -> Result<(StatusCode, Json<EnrollmentView>)> {
    Ok((StatusCode::CREATED, Json(state.app.start_lead_sequence(&access, p.lead_id, req).await?)))
}

/// Stops a running sequence: no further step is queued.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/leads/{lead_id}/sequences/{enrollment_id}/stop", tag = "leads",
    operation_id = actions::LEAD_SEQUENCE_STOP, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("lead_id" = Uuid, Path), ("enrollment_id" = Uuid, Path)),
    responses((status = 204, description = "stopped"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn stop(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<EnrollmentPath>,
) -> Result<StatusCode> {
    state.app.stop_lead_sequence(&access, p.lead_id, p.enrollment_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends (with the subject and body as changed) or skips a follow-up
/// e-mail a step drafted for review; the sequence's next step waits from
/// now. 409 `draft_decided` when it is no longer a draft; 422 when the body
/// lost the sender's postal address.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/leads/{lead_id}/drafts/{message_id}", tag = "leads",
    operation_id = actions::LEAD_FOLLOW_UP_DECIDE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("lead_id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = DecideDraft,
    responses((status = 204, description = "sent to the outbox, or skipped"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn decide_draft(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<DraftPath>,
    Json(req): Json<DecideDraft>,
) -> Result<StatusCode> {
    state.app.decide_follow_up_draft(&access, p.lead_id, p.message_id, req).await?;
    Ok(StatusCode::NO_CONTENT)
}
