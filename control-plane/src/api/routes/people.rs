//! The caller's rights over their own account: an export of their data,
//! and erasing them.

use axum::extract::State;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::Json;
use crate::error::Result;
use crate::service::people::{EraseAccount, ErasureReport, PersonalExport};
use crate::service::{Caller, actions};

/// Everything the control plane holds about the caller: account,
/// memberships, sessions, comments and edits they wrote, the audit entries
/// of their own actions (audited as `user.export`).
#[utoipa::path(get, path = "/api/v1/me/export", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = PersonalExport), (status = 401, body = ErrorBody),
        (status = 403, description = "an API key", body = ErrorBody)))]
pub async fn export(State(state): State<ApiState>, caller: Caller) -> Result<Json<PersonalExport>> {
    Ok(Json(state.app.export_me(&caller).await?))
}

/// Erases the caller's account (the password again): the account and what
/// is only theirs are deleted, their audit entries stay under a pseudonym,
/// their API keys are revoked. 409 `last_owner` for an organisation's last
/// owner.
#[utoipa::path(post, path = "/api/v1/me/erase", tag = "auth", operation_id = actions::USER_ERASE,
    security(("bearer" = [])), request_body = EraseAccount,
    responses((status = 200, body = ErasureReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "the last owner of an organisation", body = ErrorBody),
        (status = 422, description = "wrong password", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn erase(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<EraseAccount>,
) -> Result<Json<ErasureReport>> {
    Ok(Json(state.app.erase_me(&caller, req).await?))
}
