//! Analytics: what each published post achieved.

use axum::extract::State;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path};
use crate::api::routes::publishing::{AccountPath, PostPath};
use crate::error::Result;
use crate::service::{BestTimes, PostMetricsView, TenantAccess};

/// A post's metrics: every reading the collector stored (a metric the
/// platform did not report is null, never 0), the latest, engagements and
/// engagement rate with its definition, the metrics the platform stopped
/// reporting and since when, and why the last reading failed, if it did.
/// Read on X and Mastodon: an hour after publishing, then hourly to a day,
/// daily to a week, weekly to 90 days.
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
