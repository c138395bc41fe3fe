//! Review workflows, the workflow of a project, and reviewers' decisions
//! on an activity's content.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::Meta;
use crate::api::extract::{Json, Path};
use crate::api::routes::params::{ActivityPath, ProjectPath};
use crate::api::routes::publishing::PostPath;
use crate::error::Result;
use crate::service::{
    CreateReviewLink, CreatedReviewLink, DecideIn, ExternalCommentIn, ExternalDecideIn, ExternalReview,
    ProjectWorkflowIn, ProjectWorkflowOut, ReviewLinkToken, ReviewLinkView, ReviewView, TenantAccess,
    WaitingReview, WorkflowIn, WorkflowView, actions,
};

#[derive(Debug, Deserialize)]
pub struct LinkPath {
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub activity_id: Uuid,
    pub link_id: Uuid,
}

#[derive(Debug, Deserialize)]
pub struct WorkflowPath {
    pub tenant_id: Uuid,
    pub workflow_id: Uuid,
}

/// The organisation's review workflows.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/review-workflows", tag = "reviews", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<WorkflowView>), (status = 404, body = ErrorBody)))]
pub async fn list(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<Vec<WorkflowView>>> {
    Ok(Json(state.app.review_workflows(&access).await?))
}

/// Defines a review workflow: ordered steps, each with its approvers (a
/// role and above, or named members) and rule (`any` or `all`). Owners
/// and admins.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/review-workflows", tag = "reviews",
    operation_id = actions::REVIEW_WORKFLOW_CREATE, security(("bearer" = [])), params(("tenant_id" = Uuid, Path)),
    request_body = WorkflowIn,
    responses((status = 201, body = WorkflowView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(input): Json<WorkflowIn>,
) -> Result<(StatusCode, Json<WorkflowView>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_review_workflow(&access, input).await?)))
}

/// Replaces a workflow's name and steps; reviews in progress continue
/// under the new steps.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/review-workflows/{workflow_id}", tag = "reviews",
    operation_id = actions::REVIEW_WORKFLOW_UPDATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("workflow_id" = Uuid, Path)), request_body = WorkflowIn,
    responses((status = 200, body = WorkflowView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the name is taken", body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<WorkflowPath>,
    Json(input): Json<WorkflowIn>,
) -> Result<Json<WorkflowView>> {
    Ok(Json(state.app.update_review_workflow(&access, p.workflow_id, input).await?))
}

/// Deletes a workflow; its projects go back to the default review.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/review-workflows/{workflow_id}", tag = "reviews",
    operation_id = actions::REVIEW_WORKFLOW_DELETE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("workflow_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<WorkflowPath>,
) -> Result<StatusCode> {
    state.app.delete_review_workflow(&access, p.workflow_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Chooses the review workflow of a project (`null`: the default review,
/// one step, any member or above). Owners and admins.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/review-workflow", tag = "reviews",
    operation_id = actions::PROJECT_REVIEW_WORKFLOW, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path)), request_body = ProjectWorkflowIn,
    responses((status = 200, body = ProjectWorkflowOut), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn set_project_workflow(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ProjectPath>,
    Json(input): Json<ProjectWorkflowIn>,
) -> Result<Json<ProjectWorkflowOut>> {
    Ok(Json(state.app.set_project_review_workflow(&access, p.project_id, input).await?))
}

/// Where an activity's review stands: its steps, who decided what, and
/// whether the caller may decide now.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/review", tag = "reviews",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)),
    responses((status = 200, body = ReviewView), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
) -> Result<Json<ReviewView>> {
    Ok(Json(state.app.activity_review(&access, p.project_id, p.activity_id).await?))
}

/// Approves, requests changes to (comment required) or rejects (comment
/// required) the current content version at the current step. Give the
/// `version` you reviewed: a newer one is a 409.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/review", tag = "reviews",
    operation_id = actions::REVIEW_DECIDE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)), request_body = DecideIn,
    responses((status = 200, body = ReviewView), (status = 403, description = "not an approver of the current step", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the content or its review changed, or the review ended", body = ErrorBody)))]
pub async fn decide(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
    Json(input): Json<DecideIn>,
) -> Result<Json<ReviewView>> {
    Ok(Json(state.app.decide_review(&access, p.project_id, p.activity_id, input).await?))
}

/// The activities waiting for the caller's decision.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/reviews/waiting", tag = "reviews", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<WaitingReview>), (status = 404, body = ErrorBody)))]
pub async fn waiting(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<Vec<WaitingReview>>> {
    Ok(Json(state.app.waiting_for_my_review(&access).await?))
}

/// Asks the current step's approvers to review: a notification each, and a
/// link by e-mail to its external reviewers. For people who may edit the
/// activity.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/review/request", tag = "reviews",
    operation_id = actions::REVIEW_REQUEST, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)),
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the review is not in progress", body = ErrorBody)))]
pub async fn request(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
) -> Result<Json<ReviewView>> {
    Ok(Json(state.app.request_review(&access, p.project_id, p.activity_id).await?))
}

/// The activity's links for external reviewers (never their tokens).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/review/links", tag = "reviews",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)),
    responses((status = 200, body = Vec<ReviewLinkView>), (status = 404, body = ErrorBody)))]
pub async fn links(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
) -> Result<Json<Vec<ReviewLinkView>>> {
    Ok(Json(state.app.review_links(&access, p.project_id, p.activity_id).await?))
}

/// Makes a link for one of the workflow's external reviewers, valid for
/// this activity and a set time; its path is shown this once.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/review/links", tag = "reviews",
    operation_id = actions::REVIEW_LINK_CREATE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path)), request_body = CreateReviewLink,
    responses((status = 201, body = CreatedReviewLink), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_link(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<ActivityPath>,
    Json(input): Json<CreateReviewLink>,
) -> Result<(StatusCode, Json<CreatedReviewLink>)> {
    Ok((
        StatusCode::CREATED,
        Json(state.app.create_review_link(&access, p.project_id, p.activity_id, input).await?),
    ))
}

/// Revokes a link: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/projects/{project_id}/activities/{activity_id}/review/links/{link_id}", tag = "reviews",
    operation_id = actions::REVIEW_LINK_REVOKE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("project_id" = Uuid, Path), ("activity_id" = Uuid, Path), ("link_id" = Uuid, Path)),
    responses((status = 204, description = "revoked"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn revoke_link(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<LinkPath>,
) -> Result<StatusCode> {
    state.app.revoke_review_link(&access, p.project_id, p.activity_id, p.link_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What an external reviewer's link shows: the content and where its
/// review stands. No account needed: the token is the reviewer's.
#[utoipa::path(post, path = "/api/v1/review-links/open", tag = "reviews", operation_id = actions::REVIEW_LINK_OPEN,
    request_body = ReviewLinkToken,
    responses((status = 200, body = ExternalReview), (status = 410, description = "expired, revoked or unknown link", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn open_link(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(input): Json<ReviewLinkToken>,
) -> Result<Json<ExternalReview>> {
    Ok(Json(state.app.external_review(&input.token, &meta).await?))
}

/// An external reviewer's decision through their link: approve, request
/// changes (comment required) or reject (comment required).
#[utoipa::path(post, path = "/api/v1/review-links/decide", tag = "reviews", operation_id = actions::REVIEW_LINK_DECIDE,
    request_body = ExternalDecideIn,
    responses((status = 200, body = ExternalReview), (status = 403, description = "not a reviewer of the current step", body = ErrorBody),
        (status = 409, description = "the content or its review changed, or the review ended", body = ErrorBody),
        (status = 410, description = "expired, revoked or unknown link", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn decide_by_link(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(input): Json<ExternalDecideIn>,
) -> Result<Json<ExternalReview>> {
    let (token, input) = input.into_parts();
    Ok(Json(state.app.external_decide(&token, &meta, input).await?))
}

/// An external reviewer's comment through their link: a new thread on the
/// item, shown with their address.
#[utoipa::path(post, path = "/api/v1/review-links/comment", tag = "reviews", operation_id = actions::REVIEW_LINK_COMMENT,
    request_body = ExternalCommentIn,
    responses((status = 204, description = "the comment was added"),
        (status = 410, description = "expired, revoked or unknown link", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn comment_by_link(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(input): Json<ExternalCommentIn>,
) -> Result<StatusCode> {
    state.app.external_comment(&input.token, &meta, &input.body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Where a post's own review stands (a post that did not come from an
/// activity unchanged; 409 `reviewed_with_activity` otherwise).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/posts/{post_id}/review", tag = "reviews",
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("post_id" = Uuid, Path)),
    responses((status = 200, body = ReviewView), (status = 404, body = ErrorBody),
        (status = 409, description = "the post is reviewed with its activity", body = ErrorBody)))]
pub async fn get_post(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PostPath>,
) -> Result<Json<ReviewView>> {
    Ok(Json(state.app.post_review(&access, p.post_id).await?))
}

/// A decision on a post's current revision, as for an activity.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/posts/{post_id}/review", tag = "reviews",
    operation_id = actions::POST_REVIEW_DECIDE, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("post_id" = Uuid, Path)), request_body = DecideIn,
    responses((status = 200, body = ReviewView), (status = 403, description = "not an approver of the current step", body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "the post or its review changed, the review ended, or the post is reviewed with its activity", body = ErrorBody)))]
pub async fn decide_post(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PostPath>,
    Json(input): Json<DecideIn>,
) -> Result<Json<ReviewView>> {
    Ok(Json(state.app.decide_post_review(&access, p.post_id, input).await?))
}

/// Asks the current step's approvers to review a post.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/posts/{post_id}/review/request", tag = "reviews",
    operation_id = actions::POST_REVIEW_REQUEST, security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("post_id" = Uuid, Path)),
    responses((status = 200, body = ReviewView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the review is not in progress", body = ErrorBody)))]
pub async fn request_post(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PostPath>,
) -> Result<Json<ReviewView>> {
    Ok(Json(state.app.request_post_review(&access, p.post_id).await?))
}
