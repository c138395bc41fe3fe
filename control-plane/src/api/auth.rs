//! Authentication and tenant membership as extractors: a handler that takes
//! a [`Caller`] only runs for an authenticated request, and one that takes a
//! [`TenantAccess`] only runs for a member of the `{tenant_id}` in its path.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::Method;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use uuid::Uuid;

use super::ApiState;
use super::audit::AuditSlot;
use super::extract::request_meta;
use crate::error::Error;
use crate::service::{Caller, TenantAccess};

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Error> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            // The web UI's pages read (never change) through the API with
            // their session cookie: event streams, exports, live lists. A
            // change always needs a bearer token, so a cookie sent by a
            // cross-site form can do nothing.
            if matches!(parts.method, Method::GET | Method::HEAD)
                && let Some(token) = crate::ui::session_token(&parts.headers)
            {
                let meta = request_meta(parts, state.config.trust_proxy_headers);
                return state.app.browser_caller(&token, meta).await;
            }
            return Err(Error::Unauthenticated(
                "sign in: send Authorization: Bearer <access token or API key>".into(),
            ));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Unauthenticated("the Authorization header must be: Bearer <token>".into())
            })?;
        let meta = request_meta(parts, state.config.trust_proxy_headers);
        let caller = state.app.authenticate(token, meta).await?;
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.set_actor(caller.actor());
        }
        Ok(caller)
    }
}

impl FromRequestParts<ApiState> for TenantAccess {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Error> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params =
            RawPathParams::from_request_parts(parts, state).await.map_err(|_| Error::NotFound("tenant"))?;
        let tenant_id = params
            .iter()
            .find(|(name, _)| *name == "tenant_id")
            .and_then(|(_, value)| Uuid::parse_str(value).ok())
            .ok_or(Error::NotFound("tenant"))?;
        let access = state.app.tenant_access(caller, tenant_id).await?;
        if let Some(slot) = parts.extensions.get::<AuditSlot>() {
            slot.set_tenant(tenant_id);
        }
        state.limiter.check(&access, parts.extensions.get::<crate::api::rate_limit::RateSlot>()).await?;
        Ok(access)
    }
}
