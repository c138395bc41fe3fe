//! Social accounts, posts, the OAuth callback, people's time zones.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Path, Query};
use crate::error::{Error, Result};
use crate::service::{
    AccountView, Caller, ConnectBluesky, ConnectStarted, CreatePost, PostDetail, PostQuery, PostView,
    StartConnect, TenantAccess, UpdateAccount, UpdatePost, actions,
};
use crate::store::Network;

#[derive(Debug, Deserialize)]
pub struct AccountPath {
    pub tenant_id: Uuid,
    pub account_id: Uuid,
}

#[derive(Debug, Deserialize)]
pub struct PostPath {
    pub tenant_id: Uuid,
    pub post_id: Uuid,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/accounts", tag = "publishing", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = Vec<AccountView>), (status = 404, body = ErrorBody)))]
pub async fn list_accounts(
    State(state): State<ApiState>,
    access: TenantAccess,
) -> Result<Json<Vec<AccountView>>> {
    Ok(Json(state.app.social_accounts(&access).await?))
}

/// Starts connecting an account: send the person to `authorize_url`.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/accounts/connect", tag = "publishing", operation_id = actions::SOCIAL_ACCOUNT_CONNECT,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = StartConnect,
    responses((status = 200, body = ConnectStarted), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn connect(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<StartConnect>,
) -> Result<Json<ConnectStarted>> {
    Ok(Json(state.app.start_connect(&access, req).await?))
}

/// Connects a Bluesky account with an app password.
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/accounts/bluesky", tag = "publishing", operation_id = actions::SOCIAL_ACCOUNT_CONNECT_BLUESKY,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path)), request_body = ConnectBluesky,
    responses((status = 201, body = AccountView), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn connect_bluesky(
    State(state): State<ApiState>,
    access: TenantAccess,
    Json(req): Json<ConnectBluesky>,
) -> Result<(StatusCode, Json<AccountView>)> {
    Ok((StatusCode::CREATED, Json(state.app.connect_bluesky(&access, req).await?)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/accounts/{account_id}", tag = "publishing", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 200, body = AccountView), (status = 404, body = ErrorBody)))]
pub async fn get_account(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AccountPath>,
) -> Result<Json<AccountView>> {
    Ok(Json(state.app.social_account(&access, p.account_id).await?))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/accounts/{account_id}", tag = "publishing", operation_id = actions::SOCIAL_ACCOUNT_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("account_id" = Uuid, Path)), request_body = UpdateAccount,
    responses((status = 200, body = AccountView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_account(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AccountPath>,
    Json(req): Json<UpdateAccount>,
) -> Result<Json<AccountView>> {
    Ok(Json(state.app.update_social_account(&access, p.account_id, req).await?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/accounts/{account_id}", tag = "publishing", operation_id = actions::SOCIAL_ACCOUNT_DISCONNECT,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 204, description = "disconnected; its unpublished posts are cancelled"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn disconnect_account(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<AccountPath>,
) -> Result<StatusCode> {
    state.app.disconnect_social_account(&access, p.account_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `Idempotency-Key` header: 1 to 255 printable ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= 255 && t.bytes().all(|b| (0x21..0x7f).contains(&b)));
    text.map(|t| Some(t.to_owned())).ok_or_else(|| {
        Error::invalid("Idempotency-Key", "must be 1 to 255 printable characters without spaces")
    })
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/posts", tag = "publishing", operation_id = actions::POST_CREATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeating a request with the same key returns the post it created")),
    request_body = CreatePost,
    responses((status = 201, body = PostView), (status = 200, description = "the post this Idempotency-Key created before", body = PostView),
        (status = 403, body = ErrorBody), (status = 409, description = "not approved", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_post(
    State(state): State<ApiState>,
    access: TenantAccess,
    headers: HeaderMap,
    Json(req): Json<CreatePost>,
) -> Result<(StatusCode, Json<PostView>)> {
    let key = idempotency_key(&headers)?;
    let (post, created) = state.app.create_post(&access, req, key).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(post)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/posts", tag = "publishing", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path),
        ("from" = Option<String>, Query, description = "RFC 3339; posts scheduled (or created) from then"),
        ("to" = Option<String>, Query, description = "RFC 3339; until then"),
        ("account_id" = Option<Uuid>, Query), ("project_id" = Option<Uuid>, Query), ("campaign_id" = Option<Uuid>, Query),
        ("status" = Option<String>, Query)),
    responses((status = 200, body = Vec<PostView>), (status = 404, body = ErrorBody)))]
pub async fn list_posts(
    State(state): State<ApiState>,
    access: TenantAccess,
    Query(q): Query<PostQuery>,
) -> Result<Json<Vec<PostView>>> {
    Ok(Json(state.app.posts(&access, q).await?))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/posts/{post_id}", tag = "publishing", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path), ("post_id" = Uuid, Path)),
    responses((status = 200, body = PostDetail), (status = 404, body = ErrorBody)))]
pub async fn get_post(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PostPath>,
) -> Result<Json<PostDetail>> {
    Ok(Json(state.app.post_detail(&access, p.post_id).await?))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{tenant_id}/posts/{post_id}", tag = "publishing", operation_id = actions::POST_UPDATE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("post_id" = Uuid, Path)), request_body = UpdatePost,
    responses((status = 200, body = PostView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "publishing or published already, or not approved", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_post(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PostPath>,
    Json(req): Json<UpdatePost>,
) -> Result<Json<PostView>> {
    Ok(Json(state.app.update_post(&access, p.post_id, req).await?))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant_id}/posts/{post_id}", tag = "publishing", operation_id = actions::POST_DELETE,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("post_id" = Uuid, Path)),
    responses((status = 204, description = "deleted (a published post on its platform too)"), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "publishing now, or the platform refused", body = ErrorBody)))]
pub async fn delete_post(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<PostPath>,
) -> Result<StatusCode> {
    state.app.delete_post(&access, p.post_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeZoneBody {
    /// An IANA time zone name, e.g. `Europe/Berlin`; `null` when not set.
    pub time_zone: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/me/time-zone", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = TimeZoneBody), (status = 401, body = ErrorBody)))]
pub async fn get_time_zone(State(state): State<ApiState>, caller: Caller) -> Result<Json<TimeZoneBody>> {
    Ok(Json(TimeZoneBody { time_zone: state.app.time_zone(&caller).await? }))
}

#[utoipa::path(put, path = "/api/v1/me/time-zone", tag = "auth", operation_id = actions::USER_TIME_ZONE, security(("bearer" = [])), request_body = TimeZoneBody,
    responses((status = 200, body = TimeZoneBody), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_time_zone(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<TimeZoneBody>,
) -> Result<Json<TimeZoneBody>> {
    let zone = body.time_zone.ok_or_else(|| Error::invalid("time_zone", "give an IANA time zone name"))?;
    Ok(Json(TimeZoneBody { time_zone: Some(state.app.set_time_zone(&caller, &zone).await?) }))
}

#[derive(Debug, Deserialize)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// Where a platform sends the person back after they approved (or not).
/// A browser goes on to the Accounts page; an API client gets the account.
pub async fn oauth_callback(
    State(state): State<ApiState>,
    caller: Caller,
    axum::extract::Path(network): axum::extract::Path<String>,
    axum::extract::Query(q): axum::extract::Query<CallbackQuery>,
    headers: HeaderMap,
) -> Response {
    let wants_html =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
    let result = async {
        let network: Network = network.parse().map_err(|_| Error::NotFound("network"))?;
        if let Some(error) = q.error {
            return Err(Error::BadRequest {
                code: "authorization_refused",
                message: format!(
                    "{network} did not authorise Marketer ({}); try again and approve the request",
                    q.error_description.unwrap_or(error)
                ),
            });
        }
        let (code, state_value) = match (q.code, q.state) {
            (Some(c), Some(s)) if !c.is_empty() && c.len() <= 2048 && s.len() <= 512 => (c, s),
            _ => {
                return Err(Error::invalid(
                    "code",
                    "the platform's answer has no code and state; start again",
                ));
            }
        };
        state.app.finish_connect(&caller, network, &code, &state_value).await
    }
    .await;
    match (result, wants_html) {
        (Ok((tenant, _)), true) => {
            Redirect::to(&format!("/t/{tenant}/settings/accounts?connected=1")).into_response()
        }
        (Ok((_, account)), false) => (StatusCode::CREATED, Json(account)).into_response(),
        (Err(e), true) => {
            let status = e.status();
            crate::ui::page::error_page(
                status,
                "The account was not connected",
                &crate::ui::page::ui_words(&e.to_string()),
            )
        }
        (Err(e), false) => e.into_response(),
    }
}
