//! Outbound webhooks, sent by the notifier from the deliveries' outbox
//! (`store::webhooks`), on every replica.
//!
//! - **Claimed once at a time**: a delivery is taken by compare-and-set
//!   with a lease; a replica that dies while posting leaves it to be sent
//!   again when the lease runs out. Receivers get each event at least once
//!   and handle it once by its id (`Marketer-Webhook-Id`, the same on every
//!   attempt and redelivery): the documented contract, as with Stripe's and
//!   GitHub's webhooks, since an HTTP POST has no idempotency of its own.
//! - **Signed**: `Marketer-Signature: t=<unix seconds>,v1=<hex>` where the
//!   hex is HMAC-SHA256, keyed with the endpoint's secret, of
//!   `<t>.<body>`. Receivers recompute it over the raw body, compare in
//!   constant time, and refuse a `t` more than five minutes old (replays).
//! - **Retried** with backoff on anything but a 2xx (timeouts, refused
//!   connections, 3xx, 4xx, 5xx): at 1, 5 and 30 minutes, then 2, 5, 10
//!   and 10 hours, eight attempts over about 28 hours; then `failed`, and
//!   a person may redeliver it.
//! - **Never to private networks** unless the operator allows it: every
//!   address a name resolves to is checked when connecting (so a name that
//!   later resolves to 127.0.0.1 is refused too), literal addresses before
//!   that; redirects are not followed; no proxy from the environment.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use secrecy::ExposeSecret;

use crate::cloud::DataKey;
use crate::domain::Timestamp;
use crate::store::{AttemptRecord, OutboundWebhook, Store, WebhookOutcome};

/// The delays after each failed attempt, in multiples of the base (a
/// minute): 1 m, 5 m, 30 m, 2 h, 5 h, 10 h, 10 h.
const BACKOFF: [u32; 7] = [1, 5, 30, 120, 300, 600, 600];
/// Attempts in all before a delivery fails.
pub const MAX_ATTEMPTS: i64 = BACKOFF.len() as i64 + 1;
/// Deliveries posted at once by one replica.
const PARALLEL: usize = 8;
/// Deliveries claimed per pass.
const BATCH: i64 = 50;
/// Characters of a receiver's answer kept for the delivery log.
const RESPONSE_KEPT: usize = 500;
/// How old a signature's timestamp may be when a receiver checks it.
pub const TOLERANCE_SECONDS: i64 = 300;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Deliver to loopback, private, link-local and other non-public
    /// addresses (a test setup, or endpoints on the operator's own network).
    pub allow_private: bool,
    /// Accept `http://` URLs (otherwise `https://` only).
    pub allow_http: bool,
    /// Time limit of one attempt, connecting to the end of the answer.
    pub timeout: Duration,
    /// The backoff's unit: a minute in production.
    pub retry_base: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_private: false,
            allow_http: false,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(60),
        }
    }
}

/// Whether an address is on the public internet: not loopback, private,
/// link-local, shared (CGNAT), documentation, benchmarking, multicast,
/// broadcast, unspecified or reserved, nor an IPv6 form of one of those.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64 to anything
        }
    }
}

/// Checks an endpoint's URL as it is saved: a clear reason for the person,
/// or the URL as it will be posted to.
pub fn check_url(text: &str, settings: &WebhookSettings) -> Result<reqwest::Url, String> {
    let text = text.trim();
    if text.len() > 2000 {
        return Err("must be at most 2000 characters".into());
    }
    let url = reqwest::Url::parse(text).map_err(|e| {
        format!("is not a URL ({e}); give the full address, such as https://hooks.example.com/marketer")
    })?;
    match url.scheme() {
        "https" => {}
        "http" if settings.allow_http => {}
        "http" => return Err("must start with https:// (the operator does not allow plain http)".into()),
        other => return Err(format!("must be an https:// address, not {other}:")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
        return Err("must name a host".into());
    };
    if !settings.allow_private {
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok();
        let local_name = host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local");
        if literal.is_some_and(|ip| !is_public(ip)) || local_name {
            return Err(format!(
                "points to {host}, a private or loopback address; only public addresses are allowed"
            ));
        }
    }
    Ok(url)
}

/// The `Marketer-Signature` header's value for a body sent at `t`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", crate::gateway::ca::hex(tag.as_ref()))
}

/// Resolves names as the system does, then drops every address that is not
/// public: a name that resolves only to private addresses cannot be
/// reached, whenever it changed.
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(Refused(format!(
                    "{host} resolves only to private or loopback addresses; only public addresses are allowed"
                ))) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// A client for addresses a tenant chose (webhook endpoints, identity
/// providers): public addresses only unless the operator allows private
/// ones, no redirects, no proxy from the environment, the settings' time
/// limit.
pub fn guarded_client(
    settings: &WebhookSettings,
    user_agent: &'static str,
) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(user_agent);
    if !settings.allow_private {
        builder = builder.dns_resolver(Arc::new(PublicOnly));
    }
    Ok(builder.build()?)
}

/// Posts deliveries.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    settings: WebhookSettings,
}

/// What one attempt came to.
struct Answer {
    record: AttemptRecord,
    /// Refused before sending, for good (an address not allowed).
    refused: bool,
}

impl Sender {
    pub fn new(settings: WebhookSettings) -> anyhow::Result<Self> {
        let client = guarded_client(&settings, concat!("Marketer-Webhooks/", env!("CARGO_PKG_VERSION")))?;
        Ok(Self { client, settings })
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Claims due deliveries and posts them, a few at a time; returns how
    /// many were due (a full batch: look again at once).
    pub async fn send_due(
        &self,
        store: &Arc<dyn Store>,
        key: &DataKey,
        owner: &str,
        lease: Duration,
    ) -> usize {
        let now = Timestamp::now();
        if let Err(e) = store.expire_webhook_leases(now).await {
            tracing::error!(error = %e, "could not look for webhook deliveries left half-sent");
        }
        let ids = match store.due_webhooks(now, BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "could not read the webhook outbox");
                return 0;
            }
        };
        let due = ids.len();
        let lease_until = later(now, lease);
        futures_util::stream::iter(ids)
            .for_each_concurrent(PARALLEL, |id| async move {
                match store.claim_webhook(id, owner, lease_until, Timestamp::now()).await {
                    Ok(Some(hook)) => self.deliver(store, key, owner, &hook).await,
                    Ok(None) => {} // another replica took it
                    Err(e) => {
                        tracing::error!(error = %e, delivery = %id, "could not claim a webhook delivery");
                    }
                }
            })
            .await;
        due
    }

    /// Whether a pass found a full batch (more may be due).
    pub fn full(due: usize) -> bool {
        i64::try_from(due).unwrap_or(i64::MAX) >= BATCH
    }

    async fn deliver(&self, store: &Arc<dyn Store>, key: &DataKey, owner: &str, hook: &OutboundWebhook) {
        let answer = match key.open(hook.tenant_id, &hook.secret) {
            Ok(secret) => self.post(hook, secret.expose_secret()).await,
            Err(e) => Answer {
                record: AttemptRecord {
                    started_at: Timestamp::now(),
                    duration_ms: 0,
                    status: None,
                    error: Some(e.to_string()),
                    response: None,
                },
                refused: true,
            },
        };
        let attempts = hook.attempts + 1;
        let outcome = if answer.record.status.is_some_and(|s| (200..300).contains(&s)) {
            WebhookOutcome::Delivered
        } else if answer.refused || attempts >= MAX_ATTEMPTS {
            WebhookOutcome::Failed
        } else {
            WebhookOutcome::Retry { at: self.retry_at(attempts) }
        };
        match &outcome {
            WebhookOutcome::Delivered => {
                tracing::info!(delivery = %hook.id, event = %hook.event_id, kind = hook.kind.name(), "webhook delivered");
            }
            WebhookOutcome::Retry { at } => tracing::warn!(
                delivery = %hook.id, attempts, status = ?answer.record.status, error = ?answer.record.error,
                next = %at, "webhook not delivered; will retry"
            ),
            WebhookOutcome::Failed => tracing::warn!(
                delivery = %hook.id, attempts, status = ?answer.record.status, error = ?answer.record.error,
                "webhook not delivered; giving up"
            ),
        }
        match store.finish_webhook(hook.id, owner, &answer.record, &outcome).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(delivery = %hook.id, "lost the lease of a webhook delivery"),
            Err(e) => {
                tracing::error!(error = %e, delivery = %hook.id, "could not record a webhook's outcome");
            }
        }
    }

    /// One POST, timed, its answer's start kept.
    async fn post(&self, hook: &OutboundWebhook, secret: &str) -> Answer {
        let started = Instant::now();
        let started_at = Timestamp::now();
        let fail = |error: String, refused: bool| Answer {
            record: AttemptRecord {
                started_at,
                duration_ms: elapsed_ms(started),
                status: None,
                error: Some(error),
                response: None,
            },
            refused,
        };
        // The URL was checked when saved; the operator's rules may have
        // changed since, and literal addresses skip the resolver.
        let url = match check_url(&hook.url, &self.settings) {
            Ok(url) => url,
            Err(why) => return fail(format!("the URL {why}"), true),
        };
        let t = started_at.as_datetime().unix_timestamp();
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Marketer-Webhook-Id", hook.event_id.to_string())
            .header("Marketer-Event", hook.kind.name())
            .header("Marketer-Delivery", hook.id.to_string())
            .header("Marketer-Signature", signature(secret, t, &hook.payload))
            .body(hook.payload.clone());
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                let refused = std::iter::successors(std::error::Error::source(&e), |e| e.source())
                    .any(|s| s.downcast_ref::<Refused>().is_some());
                return fail(describe(&e), refused);
            }
        };
        let status = response.status();
        let response_text = read_start(response).await;
        let error = if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(format!(
                "answered {status}: redirects are not followed; point the webhook at the final address"
            ))
        } else {
            Some(format!("answered {status}"))
        };
        Answer {
            record: AttemptRecord {
                started_at,
                duration_ms: elapsed_ms(started),
                status: Some(i64::from(status.as_u16())),
                error,
                response: response_text,
            },
            refused: false,
        }
    }

    fn retry_at(&self, attempts: i64) -> Timestamp {
        let index = usize::try_from(attempts - 1).unwrap_or(0).min(BACKOFF.len() - 1);
        later(Timestamp::now(), self.settings.retry_base * BACKOFF[index])
    }
}

/// The first characters of an answer, read at most a few kilobytes in.
async fn read_start(mut response: reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < 4 * RESPONSE_KEPT {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text: String = String::from_utf8_lossy(&bytes).chars().take(RESPONSE_KEPT).collect();
    (!text.trim().is_empty()).then_some(text)
}

fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

fn elapsed_ms(started: Instant) -> i64 {
    i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn later(now: Timestamp, d: Duration) -> Timestamp {
    Timestamp::from_datetime(
        now.as_datetime() + time::Duration::try_from(d).unwrap_or(time::Duration::MINUTE),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_are_checked_for_scheme_credentials_and_private_hosts() {
        let strict = WebhookSettings::default();
        assert!(check_url("https://hooks.example.com/x", &strict).is_ok());
        for (bad, why) in [
            ("http://hooks.example.com/x", "https://"),
            ("ftp://hooks.example.com/x", "https://"),
            ("https://user:pw@hooks.example.com/", "user name"),
            ("https://127.0.0.1/x", "private or loopback"),
            ("https://[::1]/x", "private or loopback"),
            ("https://169.254.169.254/latest/meta-data", "private or loopback"),
            ("https://localhost:8080/x", "private or loopback"),
            ("not a url", "not a URL"),
        ] {
            let e = check_url(bad, &strict).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let open = WebhookSettings { allow_private: true, allow_http: true, ..WebhookSettings::default() };
        assert!(check_url("http://127.0.0.1:9000/hook", &open).is_ok());
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_timestamp_and_body() {
        // Computed independently: printf '1700000000.{"a":1}' |
        //   openssl dgst -sha256 -hmac whsec_test
        assert_eq!(
            signature("whsec_test", 1_700_000_000, r#"{"a":1}"#),
            "t=1700000000,v1=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789"
        );
    }

    #[test]
    fn retries_spread_over_more_than_a_day() {
        let total: u32 = BACKOFF.iter().sum();
        assert!(u64::from(total) * 60 > 24 * 3600, "{total} minutes");
        assert_eq!(MAX_ATTEMPTS, 8);
    }
}
