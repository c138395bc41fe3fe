//! Audit of refused mutating requests.
//!
//! Successful changes are audited by the services, in the same transaction
//! as the change. A request that is refused (403, 404, 409, 422, ...) changes
//! nothing, so this middleware records it afterwards, under the action name of
//! the route (its OpenAPI `operationId`). Unauthenticated refusals are not
//! recorded (there is no actor to name) except failed logins, which the login
//! service records itself.

use std::sync::{Arc, Mutex};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use super::ApiState;
use super::error::ErrorCode;
use super::extract::request_meta_from;
use crate::service::audit_event;
use crate::store::{Actor, Outcome};

/// Filled in by the authentication extractors while the handler runs.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<SlotState>>);

#[derive(Debug, Default)]
struct SlotState {
    actor: Option<Actor>,
    tenant_id: Option<Uuid>,
}

impl AuditSlot {
    pub fn set_actor(&self, actor: Actor) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).actor = Some(actor);
    }

    pub fn set_tenant(&self, tenant_id: Uuid) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).tenant_id = Some(tenant_id);
    }

    fn take(&self) -> SlotState {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn is_mutating(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE)
}

pub async fn audit_refusals(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    if !is_mutating(req.method()) {
        return next.run(req).await;
    }
    let action = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|path| state.operations.action(req.method(), path.as_str()));
    let meta = request_meta_from(req.headers(), req.extensions(), state.config.trust_proxy_headers);
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());

    let response = next.run(req).await;

    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let SlotState { actor, tenant_id } = slot.take();
    let (Some(action), Some(actor)) = (action, actor) else {
        return response;
    };
    let outcome = match status.as_u16() {
        401 | 403 | 404 => Outcome::Denied,
        500.. => Outcome::Error,
        _ => Outcome::Rejected,
    };
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let event = audit_event(tenant_id, actor, &meta, action, outcome)
        .details(serde_json::json!({ "status": status.as_u16(), "code": code }));
    match state.app.store.record_audit(&event).await {
        // Refused because its organisation was erased meanwhile: there is
        // no log of it to write to.
        Err(e) if e.tenant_gone() => {}
        Err(e) => {
            state.app.metrics.audit_write_failed();
            tracing::error!(error = %e, action, "could not record a refused request in the audit log");
        }
        Ok(()) => {}
    }
    response
}
