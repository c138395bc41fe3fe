//! Marketing activities of a project, their event streams, edits, approval
//! and exports; the tenant's cloud provider; usage.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::event_stream::{Tail, event_stream};
use crate::api::routes::params::{ActivityPath, ProjectPath};
use crate::error::{Error, Result};
use crate::service::{
    ActivityView, Approve, CloudProviderView, CreateActivity, EditContent, ModelPriceQuery, ModelPriceView,
    RunDetail, SetCloudProvider, SetModelPrice, TenantAccess, UsageView, VersionView, actions, export,
};
use crate::store::{ActivityFilter, ActivityKind, ActivityStatus, JobEventKind};

/// Asks for a piece of content: a blog article, a social post set or a
/// listing kit. The pipeline runs on one of the tenant's agents (or, for a
/// `cloud_allowed` project with no agent available, on the tenant's cloud
/// provider); follow it with `GET .../activities/{id}/events`. With no
/// place to run it, the answer is 409 naming why, unless `wait_for_agent`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities", tag = "activities",
    operation_id = actions::ACTIVITY_CREATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path)), request_body = CreateActivity,
    responses((status = 202, body = ActivityView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    Json(req): Json<CreateActivity>,
) -> Result<(StatusCode, Json<ActivityView>)> {
    let created = state.app.create_activity(&access, p.project_id, req).await?;
    Ok((StatusCode::ACCEPTED, Json(created)))
}

/// The organisation's model prices: US dollars per million prompt and
/// completion tokens, used to estimate what each cloud run cost.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/model-prices", tag = "activities",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ModelPriceView>), (status = 403, body = ErrorBody)))]
pub async fn model_prices(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<Vec<ModelPriceView>>> {
    Ok(Json(state.app.model_prices(&access).await?))
}

/// Sets a model's price (owners and admins); an existing price for the
/// model is replaced.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/model-prices", tag = "activities",
    operation_id = actions::MODEL_PRICE_SET, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = SetModelPrice,
    responses((status = 200, body = ModelPriceView), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_model_price(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<SetModelPrice>,
) -> Result<Json<ModelPriceView>> {
    Ok(Json(state.app.set_model_price(&access, req).await?))
}

/// Removes a model's price: its cloud runs then show no estimate.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/model-prices", tag = "activities",
    operation_id = actions::MODEL_PRICE_DELETE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ModelPriceQuery),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn delete_model_price(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(q): Query<ModelPriceQuery>,
) -> Result<StatusCode> {
    state.app.delete_model_price(&access, &q.model).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityParams {
    pub status: Option<ActivityStatus>,
    pub kind: Option<ActivityKind>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The project's activities, newest first (without their content).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities", tag = "activities",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ActivityParams),
    responses((status = 200, body = PageBody<ActivityView>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    Query(params): Query<ActivityParams>,
) -> Result<Json<PageBody<ActivityView>>> {
    let page = ListParams { limit: params.limit, cursor: params.cursor }.page()?;
    let filter = ActivityFilter { status: params.status, kind: params.kind, property_id: None };
    Ok(Json(state.app.activities_page(&access, p.project_id, filter, page).await?.into()))
}

/// An activity with its request, its current content and everything the
/// pipeline produced.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}", tag = "activities",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)),
    responses((status = 200, body = ActivityView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
) -> Result<Json<ActivityView>> {
    Ok(Json(state.app.activity(&access, p.project_id, p.activity_id).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ActivityEventParams {
    /// Resume after this event id (`<run>:<n>`; the `Last-Event-ID` header
    /// takes precedence).
    #[param(pattern = "^[0-9]{1,18}:[0-9]{1,18}$")]
    pub after: Option<String>,
}

/// The current run's progress as Server-Sent Events: `status` (queued,
/// assigned, running, retrying, and `waiting_for_agent` when the agent
/// running it disconnected), `step` (`{"step", "percent", "message"}`),
/// `partial` (`{"text"}`, the step's output as it is written: the draft
/// streaming in) and `done` (the outcome). Ids are `<run>:<n>`; reconnecting
/// with `Last-Event-ID` resumes without gaps or repeats, and a finished run
/// replays.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/events", tag = "activities",
    security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path), ActivityEventParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received")),
    responses((status = 200, content_type = "text/event-stream", description = "the event stream"),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn events(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
    Query(params): Query<ActivityEventParams>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let position = match headers.get("last-event-id") {
        Some(value) => Some(parse_position("Last-Event-ID", value.to_str().unwrap_or("-"))?),
        None => params.after.as_deref().map(|a| parse_position("after", a)).transpose()?,
    };
    let view = state.app.activity(&access, p.project_id, p.activity_id).await?;
    let run = state.app.activity_run(&access, p.project_id, p.activity_id).await?;
    let number = view.runs;
    // A position in an earlier run starts the current one from its
    // beginning; a run that does not exist is refused (replaying from the
    // start would repeat everything the client has shown).
    let after = match position {
        Some((run_number, seq)) if run_number == number => seq,
        Some((run_number, _)) if run_number < 1 || run_number > number => {
            let field = if headers.contains_key("last-event-id") { "Last-Event-ID" } else { "after" };
            return Err(Error::invalid(
                field,
                format!(
                    "names run {run_number}, but the activity has had {number} run(s); reconnect without it"
                ),
            ));
        }
        _ => 0,
    };
    let tail = Tail::new(state.app.jobs.clone(), state.app.store.clone(), &run, after);
    Ok(event_stream(tail, state.app.closing.clone(), move |event| {
        let name = match event.kind {
            JobEventKind::Status => "status",
            JobEventKind::Progress => "step",
            JobEventKind::Chunk => "partial",
            JobEventKind::Done => "done",
        };
        let mut data = event.data.clone();
        if let Some(object) = data.as_object_mut() {
            object.insert("run".into(), number.into());
        }
        Event::default().id(format!("{number}:{}", event.seq)).event(name).data(data.to_string())
    }))
}

/// `<run>:<n>`.
fn parse_position(field: &str, value: &str) -> Result<(i64, i64)> {
    value
        .trim()
        .split_once(':')
        .and_then(|(run, seq)| Some((run.parse::<i64>().ok()?, seq.parse::<i64>().ok()?)))
        .filter(|(run, seq)| *run >= 1 && *seq >= 0)
        .ok_or_else(|| Error::invalid(field, "must be the id of an event of this activity (<run>:<number>)"))
}

/// Stops the current run. Whatever the agent sends afterwards is discarded.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/cancel", tag = "activities",
    operation_id = actions::ACTIVITY_CANCEL, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)),
    responses((status = 200, body = ActivityView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
) -> Result<Json<ActivityView>> {
    Ok(Json(state.app.cancel_activity(&access, p.project_id, p.activity_id).await?))
}

/// Generates the activity again, as a new run; earlier runs stay in its
/// history (`GET .../runs`). Not while a run is going.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/regenerate", tag = "activities",
    operation_id = actions::ACTIVITY_REGENERATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)),
    responses((status = 202, body = ActivityView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn regenerate(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
) -> Result<(StatusCode, Json<ActivityView>)> {
    let view = state.app.regenerate_activity(&access, p.project_id, p.activity_id).await?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Every run, newest first, with what each produced.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/runs", tag = "activities",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)),
    responses((status = 200, body = Vec<RunDetail>), (status = 404, body = ErrorBody)))]
pub async fn runs(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
) -> Result<Json<Vec<RunDetail>>> {
    Ok(Json(state.app.activity_runs(&access, p.project_id, p.activity_id).await?))
}

/// Saves a person's edit of the content as a new version (with its author
/// and time). Approval is for what was seen: an edit clears it.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/content", tag = "activities",
    operation_id = actions::ACTIVITY_EDIT, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)), request_body = EditContent,
    responses((status = 201, body = VersionView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn edit(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
    Json(edit): Json<EditContent>,
) -> Result<(StatusCode, Json<VersionView>)> {
    let version = state.app.edit_activity(&access, p.project_id, p.activity_id, edit).await?;
    Ok((StatusCode::CREATED, Json(version)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VersionsParams {
    /// A run of this activity (a job id, from `/runs`); by default the run
    /// whose content is current.
    pub run: Option<uuid::Uuid>,
}

/// The content's history in one run (by default the current content's):
/// what was generated (version 0), then each edit, each with its
/// compliance findings.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/versions", tag = "activities",
    security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path), VersionsParams),
    responses((status = 200, body = Vec<VersionView>), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn versions(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
    Query(params): Query<VersionsParams>,
) -> Result<Json<Vec<VersionView>>> {
    Ok(Json(state.app.activity_versions(&access, p.project_id, p.activity_id, params.run).await?))
}

/// Approves the generated (and possibly edited) content; members and
/// above. A listing kit with Fair Housing findings needs
/// `acknowledge_findings`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/approve", tag = "activities",
    operation_id = actions::ACTIVITY_APPROVE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)), request_body = Option<Approve>,
    responses((status = 200, body = ActivityView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
    body: Option<Json<Approve>>,
) -> Result<Json<ActivityView>> {
    let approve = body.map(|Json(a)| a).unwrap_or_default();
    Ok(Json(state.app.approve_activity(&access, p.project_id, p.activity_id, approve).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportParams {
    /// `markdown` (or `md`) or `html` (a standalone, sanitised page).
    #[param(pattern = "^(markdown|md|html)$")]
    pub format: Option<String>,
}

/// The current content as a download: Markdown, or a standalone HTML page
/// (sanitised: no scripts, handlers or frames survive).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/export", tag = "activities",
    security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path), ExportParams),
    responses((status = 200, content_type = "text/markdown", description = "the content"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn export(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
    Query(params): Query<ExportParams>,
) -> Result<Response> {
    let html = match params.format.as_deref().unwrap_or("markdown") {
        "markdown" | "md" => false,
        "html" => true,
        _ => return Err(Error::invalid("format", "must be markdown or html")),
    };
    let (title, content) = state.app.activity_export(&access, p.project_id, p.activity_id).await?;
    let (body, content_type, name) = if html {
        (
            export::html_document(&title, &state.app.renderer.html(&content).await?),
            "text/html; charset=utf-8",
            export::file_name(&title, "html"),
        )
    } else {
        (content, "text/markdown; charset=utf-8", export::file_name(&title, "md"))
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    // The export is a document, not part of the app: it runs nothing.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    Ok(response)
}

/// The tenant's OpenAI-compatible provider, for `cloud_allowed` projects
/// when no agent can run an activity. The key is never shown, only its end.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/cloud-provider", tag = "activities", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = CloudProviderView), (status = 404, body = ErrorBody)))]
pub async fn get_cloud_provider(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<CloudProviderView>> {
    Ok(Json(state.app.cloud_provider(&access).await?))
}

/// Sets the tenant's cloud provider (owners and admins). The API key is
/// stored encrypted (AES-256-GCM) and never returned. Not for HIPAA tenants.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/cloud-provider", tag = "activities",
    operation_id = actions::CLOUD_PROVIDER_SET, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = SetCloudProvider,
    responses((status = 200, body = CloudProviderView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_cloud_provider(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<SetCloudProvider>,
) -> Result<Json<CloudProviderView>> {
    Ok(Json(state.app.set_cloud_provider(&access, req).await?))
}

/// Removes the tenant's cloud provider and its key.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/cloud-provider", tag = "activities",
    operation_id = actions::CLOUD_PROVIDER_DELETE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_cloud_provider(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<StatusCode> {
    state.app.delete_cloud_provider(&access).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// First day, `YYYY-MM-DD` (default: 29 days before `to`), 1970 to 2999.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (default: today, UTC), 1970 to 2999.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    pub to: Option<String>,
}

/// Tokens, durations, jobs and activity runs per day (UTC), with totals and
/// the plan's daily activity quota.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/usage", tag = "activities", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), UsageParams),
    responses((status = 200, body = UsageView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn usage(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<UsageParams>,
) -> Result<Json<UsageView>> {
    let day = |field: &str, value: Option<String>| -> Result<Option<time::Date>> {
        value
            .map(|v| {
                time::Date::parse(&v, time::macros::format_description!("[year]-[month]-[day]"))
                    .ok()
                    .filter(|d| crate::domain::Timestamp::date_in_range(*d))
                    .ok_or_else(|| {
                        Error::invalid(field, "must be a date, YYYY-MM-DD, between 1970-01-01 and 2999-12-31")
                    })
            })
            .transpose()
    };
    let (from, to) = (day("from", params.from)?, day("to", params.to)?);
    Ok(Json(state.app.usage(&access, from, to).await?))
}
