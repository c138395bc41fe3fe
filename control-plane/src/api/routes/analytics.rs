//! Analytics: what each published post achieved.

use axum::extract::State;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path};
use crate::api::routes::publishing::PostPath;
use crate::error::Result;
use crate::service::{PostMetricsView, TenantAccess};

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
