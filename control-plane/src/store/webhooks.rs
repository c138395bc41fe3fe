//! Outbound webhooks: a tenant's endpoints, the events its changes raise,
//! and their deliveries.
//!
//! An event is written in the transaction of the change that caused it
//! (`NewAuditEvent::emit`, or the unaudited transitions' own
//! transactions), with its JSON body fixed once, and one delivery row per
//! enabled endpoint that asked for its type: the durable outbox the
//! notifier (`crate::notify::webhooks`) sends from, under a lease. Each
//! attempt is kept for the delivery log.

use async_trait::async_trait;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{NewAuditEvent, Page, PageRequest, Result};
use crate::cloud::crypto::Sealed;
use crate::domain::Timestamp;

/// What happened. The names are the `type` of a delivery's body.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
)]
pub enum WebhookEventKind {
    /// An activity's run finished.
    #[serde(rename = "activity.finished")]
    #[strum(serialize = "activity.finished")]
    ActivityFinished,
    /// An activity's run failed.
    #[serde(rename = "activity.failed")]
    #[strum(serialize = "activity.failed")]
    ActivityFailed,
    /// An activity was approved (the last step of its review).
    #[serde(rename = "activity.approved")]
    #[strum(serialize = "activity.approved")]
    ActivityApproved,
    /// A post went out on its platform.
    #[serde(rename = "post.published")]
    #[strum(serialize = "post.published")]
    PostPublished,
    /// A post was refused by its platform.
    #[serde(rename = "post.failed")]
    #[strum(serialize = "post.failed")]
    PostFailed,
    /// A lead was created (by a form, a person, an import or the inbox).
    #[serde(rename = "lead.created")]
    #[strum(serialize = "lead.created")]
    LeadCreated,
    /// An agent stopped sending heartbeats.
    #[serde(rename = "agent.offline")]
    #[strum(serialize = "agent.offline")]
    AgentOffline,
    /// Negative mentions far above their usual level.
    #[serde(rename = "crisis_alert.raised")]
    #[strum(serialize = "crisis_alert.raised")]
    CrisisAlertRaised,
    /// The volume is back to normal.
    #[serde(rename = "crisis_alert.closed")]
    #[strum(serialize = "crisis_alert.closed")]
    CrisisAlertClosed,
    /// Any entry of the organisation's audit log (audit streaming): the
    /// entry itself is the event's `data`.
    #[serde(rename = "audit.event")]
    #[strum(serialize = "audit.event")]
    AuditEvent,
    /// A test a person sent from the endpoint's page; never subscribed to.
    #[serde(rename = "webhook.test")]
    #[strum(serialize = "webhook.test")]
    WebhookTest,
}

impl WebhookEventKind {
    /// The types an endpoint may subscribe to.
    pub fn subscribable() -> impl Iterator<Item = WebhookEventKind> {
        use strum::IntoEnumIterator;
        WebhookEventKind::iter().filter(|k| *k != WebhookEventKind::WebhookTest)
    }

    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The type in the settings page's words.
    pub fn label(self) -> &'static str {
        match self {
            WebhookEventKind::ActivityFinished => "An activity finished",
            WebhookEventKind::ActivityFailed => "An activity failed",
            WebhookEventKind::ActivityApproved => "An activity was approved",
            WebhookEventKind::PostPublished => "A post was published",
            WebhookEventKind::PostFailed => "A post failed",
            WebhookEventKind::LeadCreated => "A lead was created",
            WebhookEventKind::AgentOffline => "An agent went offline",
            WebhookEventKind::CrisisAlertRaised => "A crisis alert was raised",
            WebhookEventKind::CrisisAlertClosed => "A crisis alert closed",
            WebhookEventKind::AuditEvent => "Every audit log entry (audit streaming)",
            WebhookEventKind::WebhookTest => "A test delivery",
        }
    }
}

/// An event a change raises: written with the change, sent to every
/// enabled endpoint of the tenant that asked for its type. `data` holds
/// ids, states and numbers, never content or personal data (the receiver
/// reads those through the API, under its own key's rights).
#[derive(Debug, Clone, PartialEq)]
pub struct NewWebhookEvent {
    pub tenant_id: Uuid,
    pub kind: WebhookEventKind,
    /// One line for people (Slack's incoming webhooks show `text`).
    pub text: String,
    pub data: serde_json::Value,
    /// A test goes to this endpoint only.
    pub only_endpoint: Option<Uuid>,
}

impl NewWebhookEvent {
    pub fn new(
        tenant_id: Uuid,
        kind: WebhookEventKind,
        text: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self { tenant_id, kind, text: text.into(), data, only_endpoint: None }
    }
}

/// An endpoint as its tenant's admins see it (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<WebhookEventKind>,
    pub enabled: bool,
    pub created_by: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// Deliveries that gave up (out of tries, or refused) in the last 7 days.
    pub failed_recently: i64,
}

/// A new endpoint, its secret sealed.
#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub description: String,
    pub events: Vec<WebhookEventKind>,
    pub enabled: bool,
    pub secret: Sealed,
    pub created_by: Option<Uuid>,
}

/// A change to an endpoint: what is `Some` is set.
#[derive(Debug, Clone, Default)]
pub struct WebhookChange {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<Vec<WebhookEventKind>>,
    pub enabled: Option<bool>,
    /// A new secret (rotation).
    pub secret: Option<Sealed>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, strum::EnumString, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its first or next attempt.
    Pending,
    /// A replica is posting it now.
    Claimed,
    /// The receiver answered 2xx.
    Delivered,
    /// Out of tries, or refused for good; a person may redeliver it.
    Failed,
}

/// A delivery in the log.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    /// The event's id: the same on every attempt and redelivery
    /// (`Marketer-Webhook-Id`), so a receiver handles it once.
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub kind: WebhookEventKind,
    pub state: DeliveryState,
    pub attempts: i64,
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: Timestamp,
    /// The last answer's HTTP status.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct WebhookAttempt {
    pub attempt: i64,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    pub duration_ms: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response: Option<String>,
}

/// A delivery a replica holds, with what it needs to send it.
#[derive(Debug, Clone)]
pub struct OutboundWebhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub kind: WebhookEventKind,
    pub url: String,
    pub secret: Sealed,
    pub payload: String,
    /// Attempts before this one.
    pub attempts: i64,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookOutcome {
    Delivered,
    /// Try again at this time.
    Retry {
        at: Timestamp,
    },
    /// Give up: out of tries, or refused for good (an address the
    /// operator does not allow).
    Failed,
}

/// What an attempt recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub started_at: Timestamp,
    pub duration_ms: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub response: Option<String>,
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds an endpoint (at most `limit` per tenant: `false` past it).
    async fn create_webhook(
        &self,
        endpoint: &NewWebhookEndpoint,
        limit: i64,
        audit: &NewAuditEvent,
    ) -> Result<Option<WebhookEndpoint>>;
    async fn webhooks(&self, tenant_id: Uuid) -> Result<Vec<WebhookEndpoint>>;
    async fn webhook(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<WebhookEndpoint>>;
    /// `None`: no such endpoint in the tenant.
    async fn update_webhook(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        change: &WebhookChange,
        audit: &NewAuditEvent,
    ) -> Result<Option<WebhookEndpoint>>;
    /// Deletes an endpoint with its deliveries; `false`: not found.
    async fn delete_webhook(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<bool>;
    /// An endpoint's deliveries, newest first.
    async fn webhook_deliveries(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<WebhookDelivery>>;
    /// A delivery with its attempts, oldest first.
    async fn webhook_delivery(
        &self,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<(WebhookDelivery, Vec<WebhookAttempt>)>>;
    /// Sends a delivery again now, with its event's id and body, whatever
    /// its state (unless a replica holds it: `false`, as for not found).
    async fn redeliver_webhook(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<bool>;
    /// Raises events outside an audited change (a test delivery).
    async fn raise_webhook_events(&self, events: &[NewWebhookEvent], audit: &NewAuditEvent) -> Result<()>;

    /// Leases that ran out (a replica died while posting) go back to
    /// pending: the receiver may get the event twice, with one id.
    async fn expire_webhook_leases(&self, now: Timestamp) -> Result<u64>;
    /// Due deliveries of enabled endpoints, oldest first.
    async fn due_webhooks(&self, now: Timestamp, limit: i64) -> Result<Vec<Uuid>>;
    /// Takes a due delivery (compare-and-set): `None` if another replica
    /// did, or it is no longer due.
    async fn claim_webhook(
        &self,
        id: Uuid,
        owner: &str,
        lease_until: Timestamp,
        now: Timestamp,
    ) -> Result<Option<OutboundWebhook>>;
    /// Records an attempt and what follows, while holding the lease
    /// (`false`: the lease was lost, nothing changed but the attempt log).
    async fn finish_webhook(
        &self,
        id: Uuid,
        owner: &str,
        attempt: &AttemptRecord,
        outcome: &WebhookOutcome,
    ) -> Result<bool>;
}
