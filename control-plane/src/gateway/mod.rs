//! The agent gateway: a TLS listener of its own (default `0.0.0.0:8443`)
//! where edge agents enroll and hold their tunnel.
//!
//! - `ca.rs`: the certificate authority that signs agent certificates.
//! - `tls.rs`: the listener's TLS configuration.
//! - `enroll.rs`: `POST /agent/v1/enroll`.
//! - `session.rs`: one agent's tunnel (`GET /agent/v1/connect`).
//! - `erasure.rs`: the tunnel of an erased tenant's agent, which is only
//!   told to delete what it holds, and confirms.
//! - `documents.rs`: agents' document reports, and uploads fetched by
//!   their ingest jobs (`GET /agent/v1/documents/{id}`).
//! - `hub.rs`: live connections on this replica, heartbeat batching and
//!   offline detection.
//! - `transcript.rs`: the optional record of every message agents send.
//!
//! Agents are identified by the SHA-256 of the client certificate they
//! present, looked up in the store; nothing an agent merely claims (ids,
//! names, tenants) is trusted.

pub mod ca;
mod documents;
mod enroll;
mod erasure;
pub mod hub;
mod session;
pub mod tls;
pub mod transcript;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use marketer_protocol::{ErrorBody, ErrorDetail, HealthResponse, MAX_FRAME_BYTES, paths};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::throttle::{LoginThrottle, ThrottlePolicy};
use crate::service::App;

pub use ca::{CaFiles, CertificateAuthority};
pub use hub::{FleetTimings, Hub};
pub use tls::GatewayTls;

/// Settings of the gateway's endpoints.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Lifetime of agent certificates (30 days by default).
    pub cert_lifetime: time::Duration,
    /// How long an agent has to complete TLS, and then to say `Hello`.
    pub handshake_timeout: Duration,
    pub max_frame_bytes: usize,
    /// Where every message agents send is recorded, if anywhere.
    pub transcript: Option<transcript::Transcript>,
    /// Request head and body timeouts, connections per client address.
    pub connections: crate::listener::ConnectionLimits,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            cert_lifetime: time::Duration::days(30),
            handshake_timeout: Duration::from_secs(10),
            max_frame_bytes: MAX_FRAME_BYTES,
            transcript: None,
            connections: crate::listener::ConnectionLimits::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GatewayState {
    pub app: Arc<App>,
    pub ca: Arc<CertificateAuthority>,
    pub config: Arc<GatewayConfig>,
    enroll_throttle: Arc<LoginThrottle>,
    shutdown: CancellationToken,
}

/// The TLS peer of a request: its address and the client certificate it
/// presented, if any (already verified against the agent CA by rustls).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub certificate: Option<CertificateDer<'static>>,
}

/// An error answer of the gateway's HTTP endpoints.
#[derive(Debug)]
pub struct GatewayError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl GatewayError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code.to_owned(), message: self.message } };
        (self.status, axum::Json(body)).into_response()
    }
}

fn router(state: GatewayState) -> Router {
    let frame_limit = state.config.max_frame_bytes;
    Router::new()
        .route(paths::ENROLL, post(enroll::enroll))
        .route(paths::CONNECT, get(session::connect))
        .route(paths::HEALTH, get(health))
        .route(&format!("{}/{{id}}", paths::DOCUMENTS), get(documents::download))
        .route(&format!("{}/{{id}}", paths::CLASSIFY), get(documents::classify_texts))
        .route(&format!("{}/{{id}}", paths::REPLY), get(documents::reply_context))
        .fallback(|| async {
            GatewayError::new(StatusCode::NOT_FOUND, "not_found", "no such gateway endpoint")
        })
        .layer(DefaultBodyLimit::max(frame_limit.min(64 * 1024)))
        .layer(axum::middleware::map_response(json_rejections))
        .with_state(state)
}

/// The framework's own refusals (a body over the limit, not JSON, the wrong
/// method) in the gateway's JSON error shape, like its handlers' errors.
async fn json_rejections(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json || status == StatusCode::SWITCHING_PROTOCOLS {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        _ => "bad_request",
    };
    let text = axum::body::to_bytes(response.into_body(), 4096).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).chars().take(300).collect::<String>();
    let message = if message.trim().is_empty() { status.to_string() } else { message };
    GatewayError::new(status, code, message).into_response()
}

async fn health(State(_): State<GatewayState>) -> axum::Json<HealthResponse> {
    axum::Json(HealthResponse {
        server_time: time::OffsetDateTime::now_utc(),
        protocol_version: marketer_protocol::PROTOCOL_VERSION,
        min_protocol_version: marketer_protocol::MIN_PROTOCOL_VERSION,
    })
}

/// Serves the gateway on `listener` until `shutdown`; open tunnels are
/// closed with "going away" so agents reconnect elsewhere or later.
pub async fn serve(
    app: Arc<App>,
    ca: Arc<CertificateAuthority>,
    tls: GatewayTls,
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let enroll_throttle = Arc::new(LoginThrottle::new(
        "enrollment",
        ThrottlePolicy::ACCOUNT,
        ThrottlePolicy::CLIENT,
        app.store.clone(),
    ));
    let state =
        GatewayState { app, ca, config: Arc::new(config), enroll_throttle, shutdown: shutdown.clone() };
    let acceptor = TlsAcceptor::from(tls.config.clone());
    let router = router(state.clone());
    let tracker = TaskTracker::new();
    let slots = crate::listener::AddressSlots::new(state.config.connections.per_address);
    tracing::info!(address = %listener.local_addr()?, "serving the agent gateway");
    while let Some((tcp, addr, slot)) = crate::listener::accept(&listener, &slots, &shutdown, "gateway").await
    {
        let Some(slot) = slot else {
            state.app.metrics.connection_refused("gateway");
            drop(tcp);
            continue;
        };
        let (acceptor, router, state) = (acceptor.clone(), router.clone(), state.clone());
        tracker.spawn(async move {
            let _slot = slot;
            let _ = tcp.set_nodelay(true);
            let stream =
                match tokio::time::timeout(state.config.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        let reason = handshake_failure_reason(&e);
                        state.app.metrics.agent_handshake_failed(reason);
                        tracing::info!(%addr, error = %e, reason, "agent TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        state.app.metrics.agent_handshake_failed("timeout");
                        return;
                    }
                };
            let certificate = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).cloned();
            let peer = Peer { addr, certificate };
            let limits = state.config.connections;
            let service = tower::ServiceExt::map_request(
                tower::ServiceBuilder::new()
                    .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(limits.body_idle_timeout))
                    .service(router),
                move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(peer.clone());
                    req
                },
            );
            // A client that opens a connection and never sends a request head
            // does not get to hold it.
            let builder = crate::listener::connection_builder(&limits);
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%addr, error = %e, "gateway connection ended with an error");
                    }
                }
                () = state.shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    tracker.close();
    // Tunnels close themselves on shutdown; give them a moment to say so.
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
    Ok(())
}

/// A label for why a TLS handshake failed, for metrics.
fn handshake_failure_reason(e: &std::io::Error) -> &'static str {
    let text = e.to_string().to_ascii_lowercase();
    if text.contains("expired") {
        "certificate_expired"
    } else if text.contains("unknownissuer")
        || text.contains("unknown issuer")
        || text.contains("bad signature")
    {
        "certificate_untrusted"
    } else if text.contains("certificate") {
        "certificate_invalid"
    } else if text.contains("eof") || text.contains("reset") {
        "connection_closed"
    } else {
        "tls_error"
    }
}

/// The names the gateway's certificate covers: the public host, loopback,
/// and this machine's host name, plus any extra the operator configured.
pub fn server_names(public_host: &str, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec![public_host.to_owned()];
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    names.extend(extra.iter().cloned());
    names.extend([hostname, "localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()]);
    let mut unique = Vec::new();
    for name in names {
        let name = name.trim().trim_start_matches('[').trim_end_matches(']').to_owned();
        if !name.is_empty() && !unique.contains(&name) {
            unique.push(name);
        }
    }
    unique
}
