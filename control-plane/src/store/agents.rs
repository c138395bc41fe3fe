//! Persistence of edge agents: enrollment tokens, agents, their
//! certificates and event history. A part of [`Store`](super::Store) (its
//! supertrait), kept apart because it is a subject of its own.

use std::collections::BTreeMap;

use async_trait::async_trait;
use marketer_protocol::documents::PolicySummary;
use marketer_protocol::{JobRef, ModelInfo};
use serde::Serialize;
use uuid::Uuid;

use super::{NewAuditEvent, Page, PageRequest, Result};
use crate::domain::{Name, Timestamp};

/// Agent labels: `key=value` pairs used to select agents for work.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct NewEnrollmentToken {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub token_hash: Vec<u8>,
    pub labels: Labels,
    pub max_uses: i64,
    pub created_by: Option<Uuid>,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentTokenStatus {
    Active,
    Expired,
    UsedUp,
    Revoked,
}

/// An enrollment token as admins list it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EnrollmentTokenInfo {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub labels: Labels,
    pub max_uses: i64,
    pub uses: i64,
    pub status: EnrollmentTokenStatus,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A certificate issued to an agent, identified by the SHA-256 of its DER.
#[derive(Debug, Clone)]
pub struct NewAgentCertificate {
    pub fingerprint: Vec<u8>,
    pub serial: String,
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

/// An agent about to be enrolled; its tenant comes from the token.
#[derive(Debug, Clone)]
pub struct NewAgent {
    pub id: Uuid,
    /// `None`: named after its host.
    pub name: Option<Name>,
    /// Labels the agent asked for; the token's labels win on conflicts.
    pub labels: Labels,
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub agent_version: String,
    pub certificate: NewAgentCertificate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    Enrolled(Box<Agent>),
    TokenNotFound,
    TokenExpired,
    TokenUsedUp,
    TokenRevoked,
}

/// An agent as stored: identity, what it last reported, and its connection
/// history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: Name,
    pub labels: Labels,
    pub enrolled_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub agent_version: Option<String>,
    pub protocol_version: Option<i64>,
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub max_concurrency: i64,
    pub ollama_reachable: bool,
    pub models: Vec<ModelInfo>,
    pub running_jobs: i64,
    pub connected_at: Option<Timestamp>,
    pub disconnected_at: Option<Timestamp>,
    pub disconnect_reason: Option<String>,
    pub last_seen_at: Option<Timestamp>,
    pub offline_at: Option<Timestamp>,
    pub cert_not_before: Timestamp,
    pub cert_not_after: Timestamp,
    pub updated_at: Timestamp,
    /// The privacy policy the agent applies, as it last reported it.
    pub policy: Option<PolicySummary>,
    /// Projects whose document index the agent holds.
    pub projects: Vec<Uuid>,
}

impl Agent {
    /// Online: seen within `window`, and not marked offline since it last
    /// connected. A dropped connection alone does not make an agent offline:
    /// if it reconnects within the window, the fleet view never flaps.
    pub fn is_online(&self, now: Timestamp, window: time::Duration) -> bool {
        let (Some(connected), Some(seen)) = (self.connected_at, self.last_seen_at) else {
            return false;
        };
        self.revoked_at.is_none()
            && seen >= now - window
            && self.offline_at.is_none_or(|offline| offline < connected)
    }
}

#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    pub name: Option<Name>,
    pub labels: Option<Labels>,
}

/// What an agent says in `Hello`.
#[derive(Debug, Clone)]
pub struct AgentFacts {
    pub agent_version: String,
    pub protocol_version: i64,
    pub hostname: String,
    pub os: String,
    pub arch: String,
    pub max_concurrency: i64,
    pub ollama_reachable: bool,
    pub models: Vec<ModelInfo>,
    pub running_jobs: i64,
    pub policy: PolicySummary,
    pub projects: Vec<Uuid>,
}

/// The newest heartbeat of one agent, written in batches.
#[derive(Debug, Clone)]
pub struct HeartbeatUpdate {
    pub agent_id: Uuid,
    pub seen_at: Timestamp,
    pub running_jobs: i64,
    pub ollama_reachable: bool,
    /// Only when the model list changed.
    pub models: Option<Vec<ModelInfo>>,
    /// The job attempts the agent says it holds; their leases are renewed.
    pub jobs: Vec<JobRef>,
}

/// Kinds of agent events.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AgentEventKind {
    Enrolled,
    Connected,
    Disconnected,
    Offline,
    Renewed,
    Revoked,
    Updated,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AgentEvent {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub occurred_at: Timestamp,
    pub kind: AgentEventKind,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// An agent and the certificate it presented.
#[derive(Debug, Clone)]
pub struct CertifiedAgent {
    pub agent: Agent,
    pub not_after: Timestamp,
}

/// Why a connected agent's connection must end (see
/// [`AgentStore::record_heartbeats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionEnd {
    Revoked,
    /// Its row is gone: its tenant was erased. Reconnecting finds the
    /// erasure's order.
    TenantErased,
}

#[async_trait]
pub trait AgentStore: Send + Sync {
    async fn create_enrollment_token(
        &self,
        token: &NewEnrollmentToken,
        audit: &NewAuditEvent,
    ) -> Result<EnrollmentTokenInfo>;
    async fn enrollment_tokens(
        &self,
        tenant_id: Uuid,
        page: PageRequest,
        now: Timestamp,
    ) -> Result<Page<EnrollmentTokenInfo>>;
    async fn revoke_enrollment_token(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()>;

    /// Redeems a token and creates the agent with its first certificate, all
    /// in one transaction. The audit event's tenant and actor are filled in.
    async fn enroll_agent(
        &self,
        token_hash: &[u8],
        agent: &NewAgent,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<EnrollOutcome>;
    async fn agent(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Agent>>;
    async fn agents(&self, tenant_id: Uuid, page: PageRequest) -> Result<Page<Agent>>;
    async fn update_agent(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: &AgentPatch,
        audit: &NewAuditEvent,
    ) -> Result<Agent>;
    async fn revoke_agent(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<Agent>;
    /// The agent a certificate was issued to, by the certificate's SHA-256.
    async fn agent_by_certificate(&self, fingerprint: &[u8]) -> Result<Option<CertifiedAgent>>;
    /// Stores a renewed certificate and records the renewal.
    async fn add_agent_certificate(
        &self,
        agent_id: Uuid,
        certificate: &NewAgentCertificate,
        now: Timestamp,
    ) -> Result<()>;

    /// Records a new connection and what the agent reported in `Hello`.
    async fn agent_connected(&self, agent_id: Uuid, facts: &AgentFacts, now: Timestamp) -> Result<()>;
    /// Records the end of a connection. A graceful close marks the agent
    /// offline at once; otherwise it stays online until the offline window
    /// passes without a reconnect.
    async fn agent_disconnected(
        &self,
        agent_id: Uuid,
        reason: &str,
        graceful: bool,
        now: Timestamp,
    ) -> Result<()>;
    /// Records a changed policy or set of held project indexes (rare, and
    /// unlike heartbeats never dropped: each is sent once).
    async fn record_agent_index(
        &self,
        agent_id: Uuid,
        policy: Option<&PolicySummary>,
        projects: Option<&[Uuid]>,
    ) -> Result<()>;
    /// Writes a batch of heartbeats; returns the agents among them whose
    /// connection must end: revoked in the meantime, or gone (their
    /// tenant was erased, on any replica or by the operator's command).
    async fn record_heartbeats(&self, updates: &[HeartbeatUpdate]) -> Result<Vec<(Uuid, ConnectionEnd)>>;
    /// Marks agents not seen since `seen_before` offline, once, recording an
    /// event; returns them. Safe to run on several replicas at once.
    async fn mark_offline(&self, seen_before: Timestamp, now: Timestamp) -> Result<Vec<Agent>>;
    async fn agent_events(
        &self,
        tenant_id: Uuid,
        agent_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<AgentEvent>>;
}
