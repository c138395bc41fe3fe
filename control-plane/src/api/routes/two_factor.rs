//! The caller's own sign-in security (two-factor sign-in, recovery codes,
//! password, sessions) and a tenant's sign-in rules.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path};
use crate::error::Result;
use crate::service::two_factor::{
    ChangePassword, ConfirmPassword, RecoveryCodes, SessionList, TenantSecurity, TenantSecurityUpdate,
    TwoFactorCode, TwoFactorSetup, TwoFactorStatus,
};
use crate::service::{Caller, TenantAccess, actions};

#[derive(Debug, Deserialize)]
pub struct SessionPath {
    pub session_id: Uuid,
}

/// Whether the caller signs in with a second factor, and how many recovery
/// codes they have left.
#[utoipa::path(get, path = "/api/v1/me/two-factor", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TwoFactorStatus), (status = 401, body = ErrorBody), (status = 403, description = "an API key", body = ErrorBody)))]
pub async fn status(State(state): State<ApiState>, caller: Caller) -> Result<Json<TwoFactorStatus>> {
    Ok(Json(state.app.two_factor_status(&caller).await?))
}

/// Starts setting up two-factor sign-in (the password again): a new secret
/// for an authenticator app, shown this once. Confirm it with a code.
#[utoipa::path(post, path = "/api/v1/me/two-factor", tag = "auth", operation_id = actions::TWO_FACTOR_SETUP,
    security(("bearer" = [])), request_body = ConfirmPassword,
    responses((status = 200, body = TwoFactorSetup), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "it is already on", body = ErrorBody), (status = 422, description = "wrong password", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn begin(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<ConfirmPassword>,
) -> Result<Json<TwoFactorSetup>> {
    Ok(Json(state.app.begin_two_factor(&caller, req).await?))
}

/// Turns two-factor sign-in on with a code from the app; the answer holds
/// the recovery codes, shown this once.
#[utoipa::path(post, path = "/api/v1/me/two-factor/confirm", tag = "auth", operation_id = actions::TWO_FACTOR_ENABLE,
    security(("bearer" = [])), request_body = TwoFactorCode,
    responses((status = 200, body = RecoveryCodes), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "nothing is being set up", body = ErrorBody), (status = 422, description = "wrong code", body = ErrorBody)))]
pub async fn confirm(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<TwoFactorCode>,
) -> Result<Json<RecoveryCodes>> {
    Ok(Json(state.app.confirm_two_factor(&caller, req).await?))
}

/// Turns two-factor sign-in off (the password again).
#[utoipa::path(post, path = "/api/v1/me/two-factor/disable", tag = "auth", operation_id = actions::TWO_FACTOR_DISABLE,
    security(("bearer" = [])), request_body = ConfirmPassword,
    responses((status = 204, description = "off"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "it was not on", body = ErrorBody), (status = 422, description = "wrong password", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn disable(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<ConfirmPassword>,
) -> Result<StatusCode> {
    state.app.disable_two_factor(&caller, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// New recovery codes in place of all the old ones (the password again).
#[utoipa::path(post, path = "/api/v1/me/two-factor/recovery-codes", tag = "auth", operation_id = actions::RECOVERY_CODES_REGENERATE,
    security(("bearer" = [])), request_body = ConfirmPassword,
    responses((status = 200, body = RecoveryCodes), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "two-factor sign-in is off", body = ErrorBody), (status = 422, description = "wrong password", body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn recovery_codes(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<ConfirmPassword>,
) -> Result<Json<RecoveryCodes>> {
    Ok(Json(state.app.regenerate_recovery_codes(&caller, req).await?))
}

/// Changes the caller's password; every other session of theirs ends.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", operation_id = actions::PASSWORD_CHANGE,
    security(("bearer" = [])), request_body = ChangePassword,
    responses((status = 204, description = "changed"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, description = "wrong current password, or a new one too short", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn change_password(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<ChangePassword>,
) -> Result<StatusCode> {
    state.app.change_password(&caller, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's live sessions (browsers and API sign-ins), newest first.
#[utoipa::path(get, path = "/api/v1/me/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn sessions(State(state): State<ApiState>, caller: Caller) -> Result<Json<SessionList>> {
    Ok(Json(state.app.my_sessions(&caller).await?))
}

/// Ends one of the caller's sessions: its browser is signed out, its
/// tokens stop working.
#[utoipa::path(delete, path = "/api/v1/me/sessions/{session_id}", tag = "auth", operation_id = actions::SESSION_REVOKE,
    security(("bearer" = [])), params(("session_id" = Uuid, Path)),
    responses((status = 204, description = "ended"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "no such live session of the caller's", body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<ApiState>,
    caller: Caller,
    Path(p): Path<SessionPath>,
) -> Result<StatusCode> {
    state.app.revoke_my_session(&caller, p.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's sign-in rules.
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/security", tag = "tenants", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = TenantSecurity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn tenant_security(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<TenantSecurity>> {
    Ok(Json(state.app.tenant_security(&access).await?))
}

/// Changes the organisation's sign-in rules (`tenant:manage`); requiring
/// two-factor sign-in needs it on for the caller first.
#[utoipa::path(put, path = "/api/v1/tenants/{tenant_id}/security", tag = "tenants", operation_id = actions::TENANT_SECURITY_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = TenantSecurityUpdate,
    responses((status = 200, body = TenantSecurity), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "the caller does not use two-factor sign-in, or single sign-on is not set up", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_tenant_security(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<TenantSecurityUpdate>,
) -> Result<Json<TenantSecurity>> {
    Ok(Json(state.app.set_tenant_security(&access, req).await?))
}
