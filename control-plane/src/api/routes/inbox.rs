//! The engagement inbox: mentions of the organisation's accounts and
//! replies to its posts, collected from the platforms, worked by people.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::error::Result;
use crate::service::inbox::{
    CreateListeningQuery, CrisisAlertView, CrisisQuery, InboxItemView, InboxPage, InboxQuery,
    InboxSettingsView, LeadFromItem, ListeningQueryView, ReplyIn, UpdateInboxItem, UpdateInboxSettings,
};
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

/// Creates a lead (source `social`) from an item and links the item to
/// it: someone who wants to buy or visit. 409 when the item has a lead or
/// the address is a lead already (link that one with `PATCH`). Audited.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/inbox/{inbox_item_id}/lead", tag = "inbox",
    operation_id = actions::INBOX_ITEM_LEAD, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("inbox_item_id" = Uuid, Path)), request_body = LeadFromItem,
    responses((status = 201, body = InboxItemView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_lead(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<InboxItemPath>,
    Json(req): Json<LeadFromItem>,
) -> Result<(StatusCode, Json<InboxItemView>)> {
    Ok((StatusCode::CREATED, Json(state.app.lead_from_inbox_item(&access, p.inbox_item_id, req).await?)))
}

/// Answers an item on its platform: a post replying to it, with `text`
/// or the suggested reply (the author's handle put first), sent now by
/// the publishing engine (once, within the account's rate limits); for a
/// project with a review workflow, a draft post for its review instead
/// (`reply.post_status` says which). The item is marked done. 409 once it
/// was answered, or where the network takes no replies yet. Audited.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/inbox/{inbox_item_id}/reply", tag = "inbox",
    operation_id = actions::INBOX_ITEM_REPLY, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("inbox_item_id" = Uuid, Path)), request_body = ReplyIn,
    responses((status = 201, body = InboxItemView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reply(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<InboxItemPath>,
    Json(req): Json<ReplyIn>,
) -> Result<(StatusCode, Json<InboxItemView>)> {
    Ok((StatusCode::CREATED, Json(state.app.reply_to_inbox_item(&access, p.inbox_item_id, req).await?)))
}

/// Asks one of the organisation's agents for a (new) suggested reply; the
/// old draft is dropped. 409 while one is being drafted, once the item was
/// answered, or before it is classified. Audited.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/inbox/{inbox_item_id}/reply-draft", tag = "inbox",
    operation_id = actions::INBOX_ITEM_REPLY_DRAFT, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("inbox_item_id" = Uuid, Path)),
    responses((status = 202, body = InboxItemView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn reply_draft(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<InboxItemPath>,
) -> Result<(StatusCode, Json<InboxItemView>)> {
    Ok((StatusCode::ACCEPTED, Json(state.app.request_reply_draft(&access, p.inbox_item_id).await?)))
}

/// The organisation's inbox settings: whether replies are drafted by
/// themselves, and the intents answered without a person.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/inbox-settings", tag = "inbox",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = InboxSettingsView), (status = 403, body = ErrorBody)))]
pub async fn settings(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<InboxSettingsView>> {
    Ok(Json(state.app.inbox_settings(&access).await?))
}

/// Changes the inbox settings (admins). Auto-replies take only `praise`,
/// `question` and `purchase_interest`; negative items and items with
/// personal data always wait for a person. Audited.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/inbox-settings", tag = "inbox",
    operation_id = actions::INBOX_SETTINGS_UPDATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)), request_body = UpdateInboxSettings,
    responses((status = 200, body = InboxSettingsView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_settings(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<UpdateInboxSettings>,
) -> Result<Json<InboxSettingsView>> {
    Ok(Json(state.app.update_inbox_settings(&access, req).await?))
}

/// Crisis alerts, newest first: negative items far above their usual
/// level for the hour of the week, per account or listening query; one per
/// episode, closed by itself when the volume is back to normal.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/crisis-alerts", tag = "inbox",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), CrisisQuery),
    responses((status = 200, body = Vec<CrisisAlertView>), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn crisis_alerts(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(q): Query<CrisisQuery>,
) -> Result<Json<Vec<CrisisAlertView>>> {
    Ok(Json(state.app.crisis_alerts(&access, &q).await?))
}

#[derive(Debug, Deserialize)]
pub struct ListeningQueryPath {
    pub tenant_id: Uuid,
    pub listening_query_id: Uuid,
}

/// The organisation's listening queries: hashtags and keywords whose
/// public posts land in the inbox as `listening` items.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/listening-queries", tag = "inbox",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ListeningQueryView>), (status = 403, body = ErrorBody)))]
pub async fn list_queries(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<Vec<ListeningQueryView>>> {
    Ok(Json(state.app.listening_queries(&access).await?))
}

/// Listens for a hashtag (`hashtag`) or a keyword or brand name
/// (`keyword`, matched in any case as a whole word or phrase) through one
/// of the organisation's Mastodon, Bluesky or X accounts: public posts from
/// now on (on Mastodon a hashtag's timeline on the account's instance and
/// a keyword through its full-text search, which needs `read:search`; on
/// Bluesky the AppView's search); the account's own posts are left out.
/// At most 50. Audited.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/listening-queries", tag = "inbox",
    operation_id = actions::LISTENING_QUERY_CREATE, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = CreateListeningQuery,
    responses((status = 201, body = ListeningQueryView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_query(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateListeningQuery>,
) -> Result<(StatusCode, Json<ListeningQueryView>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_listening_query(&access, req).await?)))
}

/// Stops listening; what the query found stays in the inbox. Audited.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/listening-queries/{listening_query_id}", tag = "inbox",
    operation_id = actions::LISTENING_QUERY_DELETE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("listening_query_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_query(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ListeningQueryPath>,
) -> Result<StatusCode> {
    state.app.delete_listening_query(&access, p.listening_query_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
