//! The caller's notifications and e-mail preferences, the links sent by
//! e-mail (password reset, verification, digest unsubscription), joining
//! through an e-mailed invitation, and an organisation's outbox.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::ApiState;
use crate::api::error::ErrorBody;
use crate::api::extract::{Json, Meta, Path, Query};
use crate::api::pagination::{ListParams, PageBody};
use crate::api::routes::params::MessagePath;
use crate::error::{Error, Result};
use crate::service::{
    AcceptedInvitation, BounceReport, Caller, Done, JoinWithNewAccount, LinkToken, MarkRead, MarkedRead,
    NotificationSettings, PasswordReset, PasswordResetRequest, TenantAccess, UnreadCount, UpdatePreferences,
    actions,
};
use crate::store::{MailSummary, Notification};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationParams {
    /// Only unread ones.
    pub unread: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The caller's notifications, newest first, across their organisations.
#[utoipa::path(get, path = "/api/v1/me/notifications", tag = "notifications", security(("bearer" = [])),
    params(NotificationParams),
    responses((status = 200, body = PageBody<Notification>), (status = 401, body = ErrorBody), (status = 403, description = "an API key (notifications are a person's)", body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<NotificationParams>,
) -> Result<Json<PageBody<Notification>>> {
    let page = ListParams { limit: params.limit, cursor: params.cursor }.page()?;
    Ok(Json(state.app.notifications(&caller, params.unread.unwrap_or(false), page).await?.into()))
}

/// How many of the caller's notifications are unread (the bell's number).
#[utoipa::path(get, path = "/api/v1/me/notifications/unread", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = UnreadCount), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn unread(State(state): State<ApiState>, caller: Caller) -> Result<Json<UnreadCount>> {
    Ok(Json(state.app.unread_notifications(&caller).await?))
}

/// Marks some (or all) of the caller's notifications read.
#[utoipa::path(post, path = "/api/v1/me/notifications/read", tag = "notifications", operation_id = actions::NOTIFICATION_READ,
    security(("bearer" = [])), request_body = MarkRead,
    responses((status = 200, body = MarkedRead), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn mark_read(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<MarkRead>,
) -> Result<Json<MarkedRead>> {
    Ok(Json(state.app.mark_notifications_read(&caller, req).await?))
}

/// The caller's notification settings: each kind and how it reaches them
/// by e-mail; whether e-mail is on and their address verified.
#[utoipa::path(get, path = "/api/v1/me/notification-settings", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = NotificationSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn settings(State(state): State<ApiState>, caller: Caller) -> Result<Json<NotificationSettings>> {
    Ok(Json(state.app.notification_settings(&caller).await?))
}

/// Changes how kinds of notification reach the caller by e-mail:
/// `immediately`, `daily_digest` (08:00 in their time zone) or `off`.
#[utoipa::path(patch, path = "/api/v1/me/notification-settings", tag = "notifications", operation_id = actions::NOTIFICATION_PREFERENCES_UPDATE,
    security(("bearer" = [])), request_body = UpdatePreferences,
    responses((status = 200, body = NotificationSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_settings(
    State(state): State<ApiState>,
    caller: Caller,
    Json(req): Json<UpdatePreferences>,
) -> Result<Json<NotificationSettings>> {
    Ok(Json(state.app.update_notification_preferences(&caller, req).await?))
}

/// E-mails the caller a link that confirms their address (valid 48 hours;
/// three an hour at most).
#[utoipa::path(post, path = "/api/v1/me/verification", tag = "notifications", operation_id = actions::EMAIL_VERIFICATION_SEND,
    security(("bearer" = [])),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "the server sends no e-mail", body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn send_verification(State(state): State<ApiState>, caller: Caller) -> Result<Json<Done>> {
    Ok(Json(state.app.send_verification(&caller).await?))
}

/// Asks for a password-reset link. The answer is the same whether or not
/// the address has an account; a link (valid one hour, single use) goes
/// to it if it does.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", operation_id = actions::PASSWORD_RESET_REQUEST,
    request_body = PasswordResetRequest,
    responses((status = 202, body = Done), (status = 422, body = ErrorBody)))]
pub async fn request_reset(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(req): Json<PasswordResetRequest>,
) -> (StatusCode, Json<Done>) {
    (StatusCode::ACCEPTED, Json(state.app.request_password_reset(req, &meta)))
}

/// Chooses a new password with the e-mailed token. Every session of the
/// account ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", operation_id = actions::PASSWORD_RESET_COMPLETE,
    request_body = PasswordReset,
    responses((status = 200, body = Done), (status = 410, description = "used, expired or unknown link", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn reset(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(req): Json<PasswordReset>,
) -> Result<Json<Done>> {
    Ok(Json(state.app.reset_password(req, &meta).await?))
}

/// Confirms an address with the e-mailed token.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", operation_id = actions::EMAIL_VERIFY,
    request_body = LinkToken,
    responses((status = 200, body = Done), (status = 410, description = "used, expired or unknown link", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn verify_email(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(req): Json<LinkToken>,
) -> Result<Json<Done>> {
    Ok(Json(state.app.verify_email(req, &meta).await?))
}

/// Stops daily digests (the link at the foot of each digest).
#[utoipa::path(post, path = "/api/v1/auth/unsubscribe", tag = "auth", operation_id = actions::DIGEST_UNSUBSCRIBE,
    request_body = LinkToken,
    responses((status = 200, body = Done), (status = 410, description = "expired or unknown link", body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn unsubscribe(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(req): Json<LinkToken>,
) -> Result<Json<Done>> {
    Ok(Json(state.app.unsubscribe_digests(req, &meta).await?))
}

/// Joins an organisation through the link of an invitation e-mail by
/// creating the invited address's account (the link reached the mailbox,
/// so the address counts as verified). Then sign in.
#[utoipa::path(post, path = "/api/v1/invitations/join", tag = "team", operation_id = actions::INVITATION_JOIN,
    request_body = JoinWithNewAccount,
    responses(
        (status = 201, body = AcceptedInvitation),
        (status = 404, description = "unknown token", body = ErrorBody),
        (status = 409, description = "the address has an account, the link is not the e-mailed one, or already accepted", body = ErrorBody),
        (status = 410, description = "expired or revoked", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn join(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    Json(req): Json<JoinWithNewAccount>,
) -> Result<(StatusCode, Json<AcceptedInvitation>)> {
    Ok((StatusCode::CREATED, Json(state.app.join_with_new_account(req, &meta).await?)))
}

/// The organisation's outgoing e-mail: counts by state, and the latest
/// messages that failed or whose outcome is unknown (owners and admins).
#[utoipa::path(get, path = "/api/v1/tenants/{tenant_id}/mail", tag = "notifications", security(("bearer" = [])),
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = MailSummary), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn mail(State(state): State<ApiState>, access: TenantAccess) -> Result<Json<MailSummary>> {
    Ok(Json(state.app.mail_summary(&access).await?))
}

/// Sends a message that failed or whose outcome is unknown again (it may
/// arrive twice: an unknown outcome means the server may have had it).
#[utoipa::path(post, path = "/api/v1/tenants/{tenant_id}/mail/{message_id}/resend", tag = "notifications", operation_id = actions::MAIL_RESEND,
    security(("bearer" = [])), params(("tenant_id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 204, description = "queued again"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn resend(
    State(state): State<ApiState>,
    access: TenantAccess,
    Path(p): Path<MessagePath>,
) -> Result<StatusCode> {
    state.app.resend_mail(&access, p.message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The bounce intake: a delivery status notification (RFC 3464) as it
/// arrived in the bounce mailbox, the raw message as the body. The
/// operator's mail system sends it with the bounce token
/// (`--bounce-token-file`) as a bearer token. Each recipient that failed
/// for good fails the message it names (by its `Message-ID`) and, for a
/// follow-up e-mail, suppresses the address for the tenant's sequences,
/// which stop. Delays and 4.x.x reports change nothing. Sending the same
/// report again changes nothing.
#[utoipa::path(post, path = "/api/v1/mail/bounces", tag = "operations", operation_id = actions::MAIL_BOUNCE_REPORT,
    request_body(description = "the bounce message as it arrived (RFC 5322), sent as message/rfc822 or text/plain",
        content((String = "message/rfc822"), (String = "text/plain"))),
    responses((status = 200, body = BounceReport), (status = 401, body = ErrorBody),
        (status = 404, description = "the bounce intake is off", body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn bounce(
    State(state): State<ApiState>,
    Meta(meta): Meta,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<BounceReport>> {
    let Some(expected) = &state.config.bounce_token else {
        return Err(Error::NotFound("bounce intake"));
    };
    if !crate::api::extract::bearer_is(&headers, expected) {
        return Err(Error::Unauthenticated(
            "send the bounce token (--bounce-token-file) as a bearer token".into(),
        ));
    }
    Ok(Json(state.app.record_bounce_message(&body, &meta).await?))
}
