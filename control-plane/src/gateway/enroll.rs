//! `POST /agent/v1/enroll`: an agent trades an enrollment token and a CSR for
//! its client certificate.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use marketer_protocol::{EnrollRequest, EnrollResponse, codes};

use super::{GatewayError, GatewayState, Peer};
use crate::auth::tokens::{TokenKind, hash_token, looks_like};
use crate::domain::{Name, Timestamp, check_labels, new_id};
use crate::service::{RequestMeta, actions, audit_event};
use crate::store::{Actor, EnrollOutcome, NewAgent, NewAgentCertificate, Outcome};

/// Failed attempts slow down twice: per token tried (a few free failures,
/// so a token cannot be guessed at speed) and per client address (many more,
/// since a whole site may enroll from behind one address). A valid token is
/// not held up by another token's failures from the same address.
const THROTTLE_KEY: &str = "enrollment";

/// The throttle's key for the token a request carries (its hash; the
/// token itself is never kept).
fn throttle_key(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct TokenOnly {
        token: String,
    }
    match serde_json::from_slice::<TokenOnly>(body) {
        Ok(t) => {
            let hash = hash_token(&t.token);
            let hex: String = hash.iter().take(16).map(|b| format!("{b:02x}")).collect();
            format!("{THROTTLE_KEY}:{hex}")
        }
        Err(_) => format!("{THROTTLE_KEY}:unreadable"),
    }
}

pub(super) async fn enroll(
    State(state): State<GatewayState>,
    Extension(peer): Extension<Peer>,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<EnrollResponse>), GatewayError> {
    let ip = Some(peer.addr.ip());
    let throttle_key = throttle_key(&body);
    let blocked = state.enroll_throttle.check(&throttle_key, ip, Timestamp::now()).await.map_err(|e| {
        tracing::error!(error = %e, "could not read the enrollment throttle");
        GatewayError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server cannot check enrollments right now; try again shortly",
        )
    })?;
    if let Some(wait) = blocked {
        state.app.metrics.agent_enrollment("throttled");
        return Err(GatewayError::new(
            StatusCode::TOO_MANY_REQUESTS,
            codes::RATE_LIMITED,
            format!(
                "too many failed enrollments with this token or from this address; try again in {} seconds",
                wait.as_secs().max(1)
            ),
        ));
    }
    let result = attempt(&state, &body, ip).await;
    match &result {
        Ok(_) => state.app.metrics.agent_enrollment("success"),
        Err(e) => {
            state.app.metrics.agent_enrollment(e.code);
            if let Err(e) = state.enroll_throttle.record_failure(&throttle_key, ip, Timestamp::now()).await {
                tracing::error!(error = %e, "could not count a failed enrollment");
            }
            tracing::info!(peer = %peer.addr, code = e.code, "enrollment refused");
        }
    }
    if result.is_ok()
        && let Err(e) = state.enroll_throttle.record_success(&throttle_key).await
    {
        tracing::warn!(error = %e, "could not clear the enrollment throttle of a token");
    }
    result.map(|r| (StatusCode::CREATED, axum::Json(r)))
}

async fn attempt(
    state: &GatewayState,
    body: &[u8],
    ip: Option<std::net::IpAddr>,
) -> Result<EnrollResponse, GatewayError> {
    let invalid =
        |message: String| GatewayError::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, message);
    let request: EnrollRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("the enrollment request is not valid: {e}")))?;
    if !looks_like(TokenKind::Enrollment, &request.token) {
        return Err(token_error(&EnrollOutcome::TokenNotFound));
    }
    let name =
        request.name.as_deref().map(Name::parse).transpose().map_err(|e| invalid(format!("name {e}")))?;
    check_labels(&request.labels).map_err(|e| invalid(format!("labels: {e}")))?;
    for (field, value, max) in [
        ("host.hostname", &request.host.hostname, 253),
        ("host.os", &request.host.os, 32),
        ("host.arch", &request.host.arch, 32),
        ("agent_version", &request.agent_version, 64),
    ] {
        if value.is_empty() || value.len() > max || value.chars().any(char::is_control) {
            return Err(invalid(format!("{field} must be 1-{max} printable characters")));
        }
    }

    let agent_id = new_id();
    let certificate = state
        .ca
        .issue_agent_certificate(&request.csr_pem, agent_id, state.config.cert_lifetime)
        .map_err(|e| GatewayError::new(StatusCode::BAD_REQUEST, codes::INVALID_CSR, e.to_string()))?;
    let agent = NewAgent {
        id: agent_id,
        name,
        labels: request.labels.clone(),
        hostname: request.host.hostname.clone(),
        os: request.host.os.clone(),
        arch: request.host.arch.clone(),
        agent_version: request.agent_version.clone(),
        certificate: NewAgentCertificate {
            fingerprint: certificate.fingerprint.clone(),
            serial: certificate.serial.clone(),
            not_before: certificate.not_before,
            not_after: certificate.not_after,
        },
    };
    let meta = RequestMeta { client_ip: ip, request_id: None, user_agent: None };
    let audit = audit_event(None, Actor::Anonymous, &meta, actions::AGENT_ENROLL, Outcome::Success);
    let outcome = state
        .app
        .store
        .enroll_agent(&hash_token(&request.token), &agent, Timestamp::now(), &audit)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "enrollment failed in the store");
            GatewayError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error; try again",
            )
        })?;
    match outcome {
        EnrollOutcome::Enrolled(agent) => {
            tracing::info!(agent_id = %agent.id, tenant_id = %agent.tenant_id, name = %agent.name, "agent enrolled");
            Ok(EnrollResponse {
                agent_id: agent.id,
                tenant_id: agent.tenant_id,
                name: agent.name.to_string(),
                labels: agent.labels,
                certificate_pem: certificate.pem,
                ca_certificate_pem: state.app.agents.anchor_pem.clone(),
                not_after: certificate.not_after.as_datetime(),
            })
        }
        other => Err(token_error(&other)),
    }
}

fn token_error(outcome: &EnrollOutcome) -> GatewayError {
    let (code, message) = match outcome {
        EnrollOutcome::TokenExpired => {
            (codes::TOKEN_EXPIRED, "this enrollment token has expired; ask an administrator for a new one")
        }
        EnrollOutcome::TokenUsedUp => (
            codes::TOKEN_USED_UP,
            "this enrollment token has already been used as often as allowed; ask an administrator for a new one",
        ),
        EnrollOutcome::TokenRevoked => {
            (codes::TOKEN_REVOKED, "this enrollment token was revoked; ask an administrator for a new one")
        }
        EnrollOutcome::TokenNotFound | EnrollOutcome::Enrolled(_) => (
            codes::TOKEN_INVALID,
            "this enrollment token is not valid; copy it again from the control plane or ask for a new one",
        ),
    };
    GatewayError::new(StatusCode::UNAUTHORIZED, code, message)
}
