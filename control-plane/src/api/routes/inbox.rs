//! The engagement inbox: mentions of the organisation's accounts and
//! replies to its posts, collected from the platforms, worked by people.

use axum::extract::State;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::error::Result;
use crate::service::inbox::{InboxItemView, InboxPage, InboxQuery, UpdateInboxItem};
use crate::service::{TenantAccess, actions};

#[derive(Debug, Deserialize)]
pub struct InboxItemPath {
    pub tenant_id: Uuid,
    pub inbox_item_id: Uuid,
}

/// The inbox, newest first, a page at a time (`next_before` gives the
/// next page), with filters; `open` counts the organisation's open items.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/inbox", tag = "inbox",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), InboxQuery),
    responses((status = 200, body = InboxPage), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(q): Query<InboxQuery>,
) -> Result<Json<InboxPage>> {
    Ok(Json(state.app.inbox(&access, &q).await?))
}

/// One item.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/inbox/{inbox_item_id}", tag = "inbox",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("inbox_item_id" = Uuid, Path)),
    responses((status = 200, body = InboxItemView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<InboxItemPath>,
) -> Result<Json<InboxItemView>> {
    Ok(Json(state.app.inbox_item(&access, p.inbox_item_id).await?))
}

/// Marks an item done or open again, or assigns it to a member (null:
/// to nobody). Audited.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/inbox/{inbox_item_id}", tag = "inbox",
    operation_id = actions::INBOX_ITEM_UPDATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("inbox_item_id" = Uuid, Path)), request_body = UpdateInboxItem,
    responses((status = 200, body = InboxItemView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<InboxItemPath>,
    Json(req): Json<UpdateInboxItem>,
) -> Result<Json<InboxItemView>> {
    Ok(Json(state.app.update_inbox_item(&access, p.inbox_item_id, req).await?))
}
