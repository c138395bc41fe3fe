//! Analytics: what each published post achieved.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::routes::publishing::{AccountPath, PostPath};
use crate::error::Result;
use crate::service::{AnalyticsReport, BestTimes, PostMetricsView, ReportQuery, TenantAccess};

/// A post's metrics: every reading the collector stored (a metric the
/// platform did not report is null, never 0), the latest, engagements and
/// engagement rate with its definition, the metrics the platform stopped
/// reporting and since when, and why the last reading failed, if it did.
/// Read on every network (LinkedIn: organisation pages' posts): an hour
/// after publishing, then hourly to a day, daily to a week, weekly to 90
/// days.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/posts/{post_id}/metrics", tag = "analytics",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("post_id" = Uuid, Path)),
    responses((status = 200, body = PostMetricsView), (status = 404, body = ErrorBody)))]
pub async fn post_metrics(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PostPath>,
) -> Result<Json<PostMetricsView>> {
    Ok(Json(state.app.post_metrics(&access, p.post_id).await?))
}

/// The best times to post for an account: engagement by local hour of the
/// week over the last 16 weeks of its own posts (smoothed, with how many
/// posts back each hour), the top slots with when each next comes, and the
/// confidence. With fewer than 10 measured posts of its own it uses the
/// organisation's accounts on the same network (`source: network`), and
/// with fewer than that anywhere it recommends nothing (`source: none`)
/// and says why.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/accounts/{account_id}/best-times", tag = "analytics",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 200, body = BestTimes), (status = 404, body = ErrorBody)))]
pub async fn best_times(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AccountPath>,
) -> Result<Json<BestTimes>> {
    Ok(Json(state.app.best_times(&access, p.account_id).await?))
}

/// What the organisation's published posts achieved over a period (by
/// default the last 30 days in your time zone), filtered by account,
/// project, campaign or network: totals and the same for the period just
/// before, by network, over time (every day, week or month, empty ones
/// included), the top posts, and the selected accounts' followers over the
/// period (`followers`, read once a day). Each post counts with its latest
/// reading; a metric no post reported is null, never 0.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/analytics", tag = "analytics",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ReportQuery),
    responses((status = 200, body = AnalyticsReport), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn report(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(q): Query<ReportQuery>,
) -> Result<Json<AnalyticsReport>> {
    Ok(Json(state.app.analytics_report(&access, &q).await?))
}

/// The same posts as a CSV download: one row per post with its latest
/// metrics (an empty cell is a metric the platform did not report),
/// engagements and engagement rate.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/analytics/posts.csv", tag = "analytics",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ReportQuery),
    responses((status = 200, content_type = "text/csv", description = "the posts and their metrics"),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn posts_csv(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(q): Query<ReportQuery>,
) -> Result<Response> {
    Ok(csv_download(state.app.analytics_csv(&access, &q).await?))
}

/// The same report as a PDF to print or send: the headline numbers against
/// the period before, the charts, the numbers by network and over time, and
/// the top posts; on the paper size of the organisation's settings.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/analytics/report.pdf", tag = "analytics",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ReportQuery),
    responses((status = 200, content_type = "application/pdf", description = "the report"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn report_pdf(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(q): Query<ReportQuery>,
) -> Result<Response> {
    Ok(crate::api::routes::flyers::pdf(state.app.analytics_pdf(&access, &q).await?))
}

/// A CSV body as a download.
pub fn csv_download(body: String) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    headers
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"posts.csv\""));
    response
}
