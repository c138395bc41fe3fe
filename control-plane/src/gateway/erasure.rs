//! The tunnel of an erased tenant's agent: recognised by a certificate the
//! erasure recorded (the agent itself is gone), it is answered
//! `EraseTenant` instead of `Welcome`, and nothing else happens on the
//! connection until the agent confirms with `TenantErased`; the
//! confirmation is recorded (`service::erasures`), acknowledged with
//! `ErasureRecorded`, and the connection closes. An agent whose
//! certificate expired cannot complete the TLS handshake, and a revoked
//! one does not try: the erasure records them as unreachable.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::StreamExt;
use marketer_protocol::{AgentMessage, ServerMessage, close};

use super::{GatewayState, Peer};
use crate::store::ErasingAgent;

/// How long the agent may take to delete what it holds and confirm (a
/// large index takes a while to remove).
const ERASE_TIMEOUT: Duration = Duration::from_secs(600);

/// The erased tenant's agent this connection's certificate belongs to.
pub(super) async fn erasing_agent(state: &GatewayState, peer: &Peer) -> Option<ErasingAgent> {
    let certificate = peer.certificate.as_ref()?;
    let fingerprint = super::ca::fingerprint(certificate.as_ref());
    match state.app.store.erasing_agent(&fingerprint).await {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "could not look up an erased tenant's certificate");
            None
        }
    }
}

pub(super) fn upgrade(state: GatewayState, agent: ErasingAgent, upgrade: WebSocketUpgrade) -> Response {
    let limit = state.config.max_frame_bytes;
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| run(state, agent, socket))
}

async fn run(state: GatewayState, agent: ErasingAgent, mut socket: WebSocket) {
    let agent_id = agent.agent_id;
    let (code, reason) = match erase(&state, agent, &mut socket).await {
        Ok(()) => (1000, "the agent deleted what it held for the erased organisation".to_owned()),
        Err((code, reason)) => (code, reason),
    };
    tracing::info!(%agent_id, erasure_id = %agent.erasure_id, reason = %reason, "erased tenant's agent disconnected");
    let mut reason = reason;
    while reason.len() > 123 {
        reason.pop();
    }
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(Duration::from_secs(2), socket.send(Message::Close(Some(frame)))).await;
}

async fn erase(
    state: &GatewayState,
    agent: ErasingAgent,
    socket: &mut WebSocket,
) -> Result<(), (u16, String)> {
    let violation = |what: String| (close::PROTOCOL_VIOLATION, what);
    match receive(socket, state.config.handshake_timeout).await? {
        AgentMessage::Hello(_) => {}
        _ => return Err(violation("the first message must be hello".into())),
    }
    let order = ServerMessage::EraseTenant { erasure_id: agent.erasure_id, tenant_id: agent.tenant_id };
    send(socket, &order).await?;
    let deadline = tokio::time::Instant::now() + ERASE_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match receive(socket, left).await? {
            AgentMessage::TenantErased(report) if report.erasure_id == agent.erasure_id => {
                state.app.agent_erased(agent, &report).await.map_err(|e| {
                    tracing::error!(agent_id = %agent.agent_id, error = %e, "could not record an agent's erasure");
                    (1011, "the control plane could not record the erasure; retry".to_owned())
                })?;
                send(socket, &ServerMessage::ErasureRecorded { erasure_id: agent.erasure_id }).await?;
                return Ok(());
            }
            AgentMessage::TenantErased(_) => {
                return Err(violation("the report names another erasure".into()));
            }
            // Heartbeats, and what an agent sends before it reads the
            // order, mean nothing any more.
            _ => {}
        }
    }
}

async fn receive(socket: &mut WebSocket, within: Duration) -> Result<AgentMessage, (u16, String)> {
    loop {
        let next = tokio::time::timeout(within, socket.next())
            .await
            .map_err(|_| (close::HANDSHAKE_TIMEOUT, "the agent did not answer in time".to_owned()))?;
        match next {
            None | Some(Err(_)) => return Err((1001, "the agent left".to_owned())),
            Some(Ok(Message::Text(text))) => {
                return serde_json::from_str(text.as_str())
                    .map_err(|e| (close::PROTOCOL_VIOLATION, format!("malformed message: {e}")));
            }
            Some(Ok(Message::Close(_))) => return Err((1000, "the agent closed the connection".to_owned())),
            Some(Ok(_)) => {}
        }
    }
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), (u16, String)> {
    let text = serde_json::to_string(message).map_err(|e| (1011, format!("encoding: {e}")))?;
    socket.send(Message::Text(text.into())).await.map_err(|e| (1001, format!("connection lost: {e}")))
}
