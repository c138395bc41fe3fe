//! Members and invitations.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::params::{InvitationPath, MemberPath};
use crate::error::Result;
use crate::service::{
    AcceptInvitation, AcceptedInvitation, Caller, CreateInvitation, CreatedInvitation, TenantAccess,
    UpdateMember, actions,
};
use crate::store::{Invitation, Member};

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/members", tag = "team", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<Member>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<Member>>> {
    Ok(Json(state.app.members(&access, params.page()?).await?.into()))
}

/// Changes a member's role (owners). The last owner cannot be demoted.
#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/members/{user_id}", tag = "team", operation_id = actions::MEMBER_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = UpdateMember,
    responses((status = 200, body = Member), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "last owner", body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<MemberPath>,
    Json(req): Json<UpdateMember>,
) -> Result<Json<Member>> {
    Ok(Json(state.app.update_member(&access, p.user_id, req).await?))
}

/// Removes a member, or leaves the tenant when `user_id` is the caller. The
/// last owner cannot be removed.
#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/members/{user_id}", tag = "team", operation_id = actions::MEMBER_REMOVE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "last owner", body = ErrorBody)))]
pub async fn remove(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<MemberPath>,
) -> Result<StatusCode> {
    state.app.remove_member(&access, p.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/invitations", tag = "team", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ListParams),
    responses((status = 200, body = PageBody<Invitation>), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_invitations(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(params): Query<ListParams>,
) -> Result<Json<PageBody<Invitation>>> {
    Ok(Json(state.app.invitations(&access, params.page()?).await?.into()))
}

/// Invites an e-mail address with a role. The token in the answer is the
/// only copy: deliver it to the invitee. It expires after 7 days.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/invitations", tag = "team", operation_id = actions::INVITATION_CREATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = CreateInvitation,
    responses((status = 201, body = CreatedInvitation), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_invitation(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<CreateInvitation>,
) -> Result<(StatusCode, Json<CreatedInvitation>)> {
    Ok((StatusCode::CREATED, Json(state.app.create_invitation(&access, req).await?)))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/invitations/{invitation_id}", tag = "team", operation_id = actions::INVITATION_REVOKE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 204, description = "revoked"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke_invitation(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<InvitationPath>,
) -> Result<StatusCode> {
    state.app.revoke_invitation(&access, p.invitation_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Accepts an invitation, signed in as the invited address's account (a
/// token alone proves nothing about the address: it has passed through
/// the inviter's hands). An invitation never creates an account: an
/// address without one is 409 `account_needed`.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "team", operation_id = actions::INVITATION_ACCEPT,
    request_body = AcceptInvitation, security(("bearer" = [])),
    responses(
        (status = 200, body = AcceptedInvitation),
        (status = 401, body = ErrorBody),
        (status = 403, description = "signed in as another address", body = ErrorBody),
        (status = 404, description = "unknown token", body = ErrorBody),
        (status = 409, description = "already accepted, already a member, or no account yet", body = ErrorBody),
        (status = 410, description = "expired or revoked", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn accept(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<AcceptInvitation>,
) -> Result<Json<AcceptedInvitation>> {
    Ok(Json(state.app.accept_invitation(&caller, req).await?))
}
