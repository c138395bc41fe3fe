//! Comment threads on activities and posts.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::error::Result;
use crate::service::{
    CommentQuery, CommentView, CreateComment, EditComment, ResolveThread, TenantAccess, actions,
};

#[derive(Debug, Deserialize)]
pub struct CommentPath {
    pub tenant_id: Uuid,
    pub comment_id: Uuid,
}

/// The comments on an activity or a post (give exactly one), oldest first;
/// replies name their thread's first comment in `thread_id`.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/comments", tag = "comments", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), CommentQuery),
    responses((status = 200, body = Vec<CommentView>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(q): Query<CommentQuery>,
) -> Result<Json<Vec<CommentView>>> {
    Ok(Json(state.app.comments(&access, q).await?))
}

/// Comments on an activity or a post, starting a thread or replying to
/// one; `@name@example.com` mentions (and notifies) a member. Signed-in
/// people only, viewers included.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/comments", tag = "comments", operation_id = actions::COMMENT_CREATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = CreateComment,
    responses((status = 201, body = CommentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the item holds the most comments it can", body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateComment>,
) -> Result<(StatusCode, Json<CommentView>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_comment(&access, req).await?)))
}

/// Edits one's own comment.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/comments/{comment_id}", tag = "comments", operation_id = actions::COMMENT_EDIT,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("comment_id" = Uuid, Path)), request_body = EditComment,
    responses((status = 200, body = CommentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn edit(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<CommentPath>,
    Json(req): Json<EditComment>,
) -> Result<Json<CommentView>> {
    Ok(Json(state.app.edit_comment(&access, p.comment_id, req).await?))
}

/// Deletes a comment (one's own, or any as an admin): its text goes, its
/// place in the thread stays.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/comments/{comment_id}", tag = "comments", operation_id = actions::COMMENT_DELETE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("comment_id" = Uuid, Path)),
    responses((status = 200, body = CommentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<CommentPath>,
) -> Result<Json<CommentView>> {
    Ok(Json(state.app.delete_comment(&access, p.comment_id).await?))
}

/// Resolves or reopens the thread a first comment starts.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/comments/{comment_id}/resolve", tag = "comments",
    operation_id = actions::COMMENT_RESOLVE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("comment_id" = Uuid, Path)), request_body = ResolveThread,
    responses((status = 200, body = CommentView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "not a thread's first comment", body = ErrorBody)))]
pub async fn resolve(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<CommentPath>,
    Json(req): Json<ResolveThread>,
) -> Result<Json<CommentView>> {
    Ok(Json(state.app.resolve_thread(&access, p.comment_id, req).await?))
}
