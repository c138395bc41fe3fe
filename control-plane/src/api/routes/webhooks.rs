//! Outbound webhooks: endpoints, their delivery log, redelivery and tests
//! (admins). Deliveries are signed JSON POSTs; README § Webhooks has the
//! verification recipe.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::error::Result;
use crate::service::webhooks::{CreateWebhook, UpdateWebhook, WebhookDeliveryView, WebhookWithSecret};
use crate::service::{TenantAccess, actions};
use crate::store::{WebhookDelivery, WebhookEndpoint};

#[derive(Debug, Deserialize)]
pub struct WebhookPath {
    pub tenant_id: Uuid,
    pub webhook_id: Uuid,
}

#[derive(Debug, Deserialize)]
pub struct DeliveryPath {
    pub tenant_id: Uuid,
    pub webhook_id: Uuid,
    pub delivery_id: Uuid,
}

/// Adds an endpoint. Its signing `secret` is in this answer only.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/webhooks", tag = "webhooks",
    operation_id = actions::WEBHOOK_CREATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = CreateWebhook,
    responses((status = 201, body = WebhookWithSecret), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookWithSecret>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_webhook(&access, req).await?)))
}

/// The organisation's endpoints (never their secrets).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<WebhookEndpoint>), (status = 403, body = ErrorBody)))]
pub async fn list(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<Vec<WebhookEndpoint>>> {
    Ok(Json(state.app.webhooks(&access).await?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}", tag = "webhooks",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 200, body = WebhookEndpoint), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<WebhookPath>,
) -> Result<Json<WebhookEndpoint>> {
    Ok(Json(state.app.webhook(&access, p.webhook_id).await?))
}

/// Changes an endpoint's URL, description, event types or whether it is
/// enabled (a disabled endpoint gets no new events; its pending
/// deliveries wait).
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}", tag = "webhooks",
    operation_id = actions::WEBHOOK_UPDATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path)), request_body = UpdateWebhook,
    responses((status = 200, body = WebhookEndpoint), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<WebhookPath>,
    Json(req): Json<UpdateWebhook>,
) -> Result<Json<WebhookEndpoint>> {
    Ok(Json(state.app.update_webhook(&access, p.webhook_id, req).await?))
}

/// Deletes an endpoint with its delivery log.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}", tag = "webhooks",
    operation_id = actions::WEBHOOK_DELETE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<WebhookPath>,
) -> Result<StatusCode> {
    state.app.delete_webhook(&access, p.webhook_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new signing secret, in this answer only; the old one stops at once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/rotate-secret", tag = "webhooks",
    operation_id = actions::WEBHOOK_ROTATE_SECRET, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 200, body = WebhookWithSecret), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<WebhookPath>,
) -> Result<Json<WebhookWithSecret>> {
    Ok(Json(state.app.rotate_webhook_secret(&access, p.webhook_id).await?))
}

/// Sends a `webhook.test` event to this endpoint.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/test", tag = "webhooks",
    operation_id = actions::WEBHOOK_TEST, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path)),
    responses((status = 202, description = "queued"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn test(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<WebhookPath>,
) -> Result<StatusCode> {
    state.app.test_webhook(&access, p.webhook_id).await?;
    Ok(StatusCode::ACCEPTED)
}

/// The endpoint's deliveries, newest first.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<WebhookDelivery>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn deliveries(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<WebhookPath>,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<WebhookDelivery>>> {
    Ok(Json(state.app.webhook_deliveries(&access, p.webhook_id, params.page()?).await?.into()))
}

/// A delivery with each attempt: when, how long, the status and the start
/// of the answer.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{delivery_id}",
    tag = "webhooks", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    responses((status = 200, body = WebhookDeliveryView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delivery(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<DeliveryPath>,
) -> Result<Json<WebhookDeliveryView>> {
    Ok(Json(state.app.webhook_delivery(&access, p.webhook_id, p.delivery_id).await?))
}

/// Sends a delivery again now, with the same event id and body.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    tag = "webhooks", operation_id = actions::WEBHOOK_REDELIVER, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("webhook_id" = Uuid, Path), ("delivery_id" = Uuid, Path)),
    responses((status = 202, description = "queued"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn redeliver(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<DeliveryPath>,
) -> Result<StatusCode> {
    state.app.redeliver_webhook(&access, p.webhook_id, p.delivery_id).await?;
    Ok(StatusCode::ACCEPTED)
}
