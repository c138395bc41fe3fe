//! LLM jobs: submit, read, list, cancel, and follow a job's events (SSE).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::event_stream::{Tail, event_stream};
use crate::api::routes::params::JobPath;
use crate::domain::Timestamp;
use crate::error::{Error, Result};
use crate::service::{CreateJob, JobQuery, JobView, TenantAccess, actions};
use crate::store::{JobKind, JobStatus};

/// Submits a job. It is queued at once and runs on one of the tenant's
/// agents; follow it with `GET /jobs/{id}/events` or poll `GET /jobs/{id}`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/jobs", tag = "jobs",
    operation_id = actions::JOB_CREATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = CreateJob,
    responses((status = 202, body = JobView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateJob>,
) -> Result<(StatusCode, Json<JobView>)> {
    let submitted = state.app.create_job(&access, req).await?;
    Ok((StatusCode::ACCEPTED, Json(submitted.job)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobParams {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    /// Only jobs this agent holds or last held.
    pub agent: Option<Uuid>,
    /// Only jobs submitted at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<Timestamp>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The tenant's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/jobs", tag = "jobs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), JobParams),
    responses((status = 200, body = PageBody<JobView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<JobParams>,
) -> Result<Json<PageBody<JobView>>> {
    let page = ListParams { limit: params.limit, cursor: params.cursor }.page()?;
    let query =
        JobQuery { status: params.status, kind: params.kind, agent_id: params.agent, since: params.since };
    Ok(Json(state.app.jobs_page(&access, query, page).await?.into()))
}

/// A job with its status, attempts, output, usage and error.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/jobs/{job_id}", tag = "jobs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("job_id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<JobPath>,
) -> Result<Json<JobView>> {
    Ok(Json(state.app.job(&access, p.job_id).await?))
}

/// Cancels a queued or running job. The agent running it is told to stop;
/// whatever it sends afterwards is discarded.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/jobs/{job_id}/cancel", tag = "jobs",
    operation_id = actions::JOB_CANCEL, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("job_id" = Uuid, Path)),
    responses((status = 200, body = JobView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<JobPath>,
) -> Result<Json<JobView>> {
    Ok(Json(state.app.cancel_job(&access, p.job_id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Resume after this event id (the `Last-Event-ID` header, which
    /// browsers send on reconnecting, takes precedence).
    pub after: Option<i64>,
}

/// The job's events as Server-Sent Events: `status` (queued, assigned,
/// running, retrying, and `waiting_for_agent` when its agent
/// disconnected), `chunk` (`{"attempt", "text"}`, streamed output in
/// order) and `done` (the outcome), each with its id. Reconnecting with
/// `Last-Event-ID` resumes without gaps or repeats; connecting after the job
/// finished replays it. A retried attempt streams its output from the
/// start: a client shows the chunks of the latest `attempt`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/jobs/{job_id}/events", tag = "jobs", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("job_id" = Uuid, Path), EventParams,
        ("Last-Event-ID" = Option<i64>, Header, description = "The id of the last event received")),
    responses((status = 200, content_type = "text/event-stream", description = "the event stream"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn events(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<JobPath>,
    Query(params): Query<EventParams>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let after = match headers.get("last-event-id") {
        Some(value) => {
            value.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|v| *v >= 0).ok_or_else(
                || Error::invalid("Last-Event-ID", "must be the id of an event of this job (a number)"),
            )?
        }
        None => match params.after {
            Some(after) if after < 0 => return Err(Error::invalid("after", "must be 0 or more")),
            Some(after) => after,
            None => 0,
        },
    };
    let job = state.app.job_for_events(&access, p.job_id).await?;
    // Subscribe before reading the record, so nothing published in between
    // is missed.
    let tail = Tail::new(state.app.jobs.clone(), state.app.store.clone(), &job, after);
    Ok(event_stream(tail, state.app.closing.clone(), |event| {
        Event::default()
            .id(event.seq.to_string())
            .event(<&'static str>::from(event.kind))
            .data(event.data.to_string())
    }))
}
