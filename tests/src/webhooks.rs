//! A webhook receiver written from the README's verification recipe, not
//! from the server's code: it checks `Marketer-Signature` (HMAC-SHA256 of
//! `<t>.<raw body>` with the endpoint's secret, `t` at most five minutes
//! old), handles each `Marketer-Webhook-Id` once, and answers as a test
//! plans (a status, or hanging past the sender's time limit).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What the receiver does with the next request.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    Status(u16),
    /// Answers 200 only after this long (past the sender's time limit).
    Hang(Duration),
}

/// A request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub event: String,
    pub delivery: String,
    pub body: Value,
    pub raw: String,
    /// Why the signature was refused, if it was.
    pub refused: Option<String>,
    /// Handled (verified, answered 2xx, not seen before).
    pub handled: bool,
    /// When it arrived.
    pub arrived: time::OffsetDateTime,
}

#[derive(Debug, Default)]
struct Inner {
    secret: String,
    plan: VecDeque<Plan>,
    received: Vec<Received>,
    handled: HashSet<String>,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

/// HMAC-SHA256 (RFC 2104) over SHA-256, block size 64.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The README's check: `None` when the signature is good.
pub fn verify(secret: &str, header: Option<&str>, raw: &[u8], now: i64) -> Option<String> {
    let Some(header) = header else { return Some("no Marketer-Signature header".into()) };
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1.push(value.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return Some("no timestamp".into()) };
    if (now - t).abs() > 300 {
        return Some(format!("timestamp {t} is more than five minutes from {now}"));
    }
    let mut message = format!("{t}.").into_bytes();
    message.extend_from_slice(raw);
    let expected = hex(&hmac_sha256(secret.as_bytes(), &message));
    // Constant time: compare every byte whatever the first difference.
    let good = v1.iter().any(|candidate| {
        candidate.len() == expected.len()
            && candidate.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    (!good).then(|| "signature does not match".into())
}

async fn receive(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, raw: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = header("marketer-webhook-id").unwrap_or_default();
    // Recorded on arrival: a request the sender gives up on still counts.
    let (plan, refused, index) = {
        let mut inner = inner.lock().unwrap();
        let refused = verify(&inner.secret, header("marketer-signature").as_deref(), &raw, now);
        inner.received.push(Received {
            id: id.clone(),
            event: header("marketer-event").unwrap_or_default(),
            delivery: header("marketer-delivery").unwrap_or_default(),
            body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
            raw: String::from_utf8_lossy(&raw).into_owned(),
            refused: refused.clone(),
            handled: false,
            arrived: time::OffsetDateTime::now_utc(),
        });
        let index = inner.received.len() - 1;
        (inner.plan.pop_front(), refused, index)
    };
    let status = match plan {
        Some(Plan::Status(code)) => StatusCode::from_u16(code).unwrap(),
        Some(Plan::Hang(d)) => {
            tokio::time::sleep(d).await;
            StatusCode::OK
        }
        None if refused.is_some() => StatusCode::BAD_REQUEST,
        None => StatusCode::OK,
    };
    let mut inner = inner.lock().unwrap();
    let handled = refused.is_none() && status.is_success() && inner.handled.insert(id);
    inner.received[index].handled = handled;
    status
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, app).await.ok();
        });
        Self { url, inner }
    }

    /// The secret signatures are checked with.
    pub fn set_secret(&self, secret: &str) {
        self.inner.lock().unwrap().secret = secret.to_owned();
    }

    /// Answers for the next requests, in order (then 200).
    pub fn plan(&self, plan: &[Plan]) {
        self.inner.lock().unwrap().plan.extend(plan.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Requests of one event type.
    pub fn of(&self, event: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.event == event).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
