//! Sign-in, refresh, sign-out and the caller's own profile.

use axum::extract::State;
use axum::http::StatusCode;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Meta};
use crate::error::Result;
use crate::service::{Caller, LoginRequest, Me, RefreshRequest, TokenPair, actions};

/// Exchanges an e-mail address and password for an access token (15 min)
/// and a single-use refresh token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", operation_id = actions::LOGIN,
    request_body = LoginRequest,
    responses(
        (status = 200, body = TokenPair),
        (status = 401, description = "wrong e-mail address or password", body = ErrorBody),
        (status = 403, description = "the account is disabled", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "too many failed attempts; see Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(req): Json<LoginRequest>,
) -> Result<Json<TokenPair>> {
    Ok(Json(state.app.login(req, &meta).await?))
}

/// Spends a refresh token for a new access token and refresh token. A
/// refresh token used twice ends its whole session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", operation_id = actions::REFRESH,
    request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 401, body = ErrorBody)))]
pub async fn refresh(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(req): Json<RefreshRequest>,
) -> Result<Json<TokenPair>> {
    Ok(Json(state.app.refresh(req, &meta).await?))
}

/// Ends the session of a refresh token; its access tokens stop working too.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", operation_id = actions::LOGOUT,
    request_body = RefreshRequest,
    responses((status = 204, description = "signed out")))]
pub async fn logout(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(req): Json<RefreshRequest>,
) -> Result<StatusCode> {
    state.app.logout(req, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user and their tenants.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody), (status = 403, description = "called with an API key", body = ErrorBody)))]
pub async fn me(State(state): State<ApiState>, caller: Caller) -> Result<Json<Me>> {
    Ok(Json(state.app.me(&caller).await?))
}
