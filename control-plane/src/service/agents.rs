//! Enrollment tokens and the fleet of edge agents, as admins manage them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, TenantAccess, actions};
use crate::auth::tokens::{OpaqueToken, TokenKind};
use crate::domain::{Name, Permission, Timestamp, check_labels, new_id};
use crate::error::{Error, FoundExt, NotFoundExt, Result};
use crate::gateway::FleetTimings;
use crate::store::{
    Agent, AgentEvent, AgentPatch, EnrollmentTokenInfo, Labels, NewEnrollmentToken, Page, PageRequest,
};

/// What the service layer needs to know about the gateway.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// The gateway's address as agents reach it, e.g. `https://cp.example.com:8443`.
    pub public_url: String,
    /// The certificate agents pin (PEM) and its SHA-256.
    pub anchor_pem: String,
    pub anchor_sha256: [u8; 32],
    pub timings: FleetTimings,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnrollmentToken {
    /// Labels every agent enrolled with this token gets.
    #[serde(default)]
    pub labels: Labels,
    /// Lifetime in seconds: 60 to 2,592,000 (30 days); default 3600.
    #[schema(minimum = 60, maximum = 2_592_000)]
    pub ttl_seconds: Option<i64>,
    /// How many agents may enroll with it: 1 to 1000; default 1.
    #[schema(minimum = 1, maximum = 1000)]
    pub max_uses: Option<i64>,
}

/// A new enrollment token. `token` and `install_command` are shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedEnrollmentToken {
    pub id: Uuid,
    /// The secret, a dot, and the SHA-256 of the control plane's CA
    /// certificate, which the agent pins on first contact.
    pub token: String,
    pub expires_at: Timestamp,
    pub max_uses: i64,
    pub labels: Labels,
    /// The command to run on the agent host.
    pub install_command: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    pub name: Option<Name>,
    /// Replaces all labels.
    pub labels: Option<Labels>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Online,
    Offline,
    Revoked,
}

/// An agent as the fleet view shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentView {
    pub id: Uuid,
    pub name: Name,
    pub labels: Labels,
    pub state: AgentState,
    /// The certificate is in the last quarter of its lifetime: the agent has
    /// not renewed it on schedule.
    pub cert_expiring: bool,
    pub cert_not_after: Timestamp,
    pub agent_version: Option<String>,
    pub protocol_version: Option<i64>,
    pub os: String,
    pub arch: String,
    pub hostname: String,
    /// When the current connection began (online agents only).
    pub connected_since: Option<Timestamp>,
    pub last_heartbeat_at: Option<Timestamp>,
    pub ollama_reachable: bool,
    #[schema(value_type = Vec<Object>)]
    pub models: Vec<marketer_protocol::ModelInfo>,
    pub max_concurrency: i64,
    pub running_jobs: i64,
    pub enrolled_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub last_disconnect_reason: Option<String>,
    /// The privacy policy the agent applies, from its own `policy.toml`
    /// (the control plane can read it, never change it).
    #[schema(value_type = Option<Object>)]
    pub policy: Option<marketer_protocol::documents::PolicySummary>,
    /// Projects whose document index the agent holds.
    pub projects: Vec<Uuid>,
}

const MAX_TOKEN_TTL_SECONDS: i64 = 30 * 24 * 3600;

impl App {
    fn view(&self, agent: Agent, now: Timestamp) -> AgentView {
        let window =
            time::Duration::try_from(self.agents.timings.offline_after()).unwrap_or(time::Duration::MAX);
        let state = if agent.revoked_at.is_some() {
            AgentState::Revoked
        } else if agent.is_online(now, window) {
            AgentState::Online
        } else {
            AgentState::Offline
        };
        let lifetime = agent.cert_not_after.as_datetime() - agent.cert_not_before.as_datetime();
        AgentView {
            cert_expiring: agent.cert_not_after.as_datetime() - now.as_datetime() < lifetime / 4,
            connected_since: (state == AgentState::Online).then_some(agent.connected_at).flatten(),
            id: agent.id,
            name: agent.name,
            labels: agent.labels,
            state,
            cert_not_after: agent.cert_not_after,
            agent_version: agent.agent_version,
            protocol_version: agent.protocol_version,
            os: agent.os,
            arch: agent.arch,
            hostname: agent.hostname,
            last_heartbeat_at: agent.last_seen_at,
            ollama_reachable: agent.ollama_reachable,
            models: agent.models,
            max_concurrency: agent.max_concurrency,
            running_jobs: agent.running_jobs,
            enrolled_at: agent.enrolled_at,
            revoked_at: agent.revoked_at,
            last_disconnect_reason: agent.disconnect_reason,
            policy: agent.policy,
            projects: agent.projects,
        }
    }

    /// The command an admin pastes on the agent host.
    pub fn install_command(&self, token: &str) -> String {
        format!("marketer-agent enroll --server {} --token {token}", self.agents.public_url)
    }

    pub async fn create_enrollment_token(
        &self,
        access: &TenantAccess,
        req: CreateEnrollmentToken,
    ) -> Result<CreatedEnrollmentToken> {
        access.require(Permission::AgentsManage)?;
        check_labels(&req.labels).map_err(|e| Error::invalid("labels", e.to_string()))?;
        let ttl = req.ttl_seconds.unwrap_or(3600);
        if !(60..=MAX_TOKEN_TTL_SECONDS).contains(&ttl) {
            return Err(Error::invalid(
                "ttl_seconds",
                format!("must be between 60 and {MAX_TOKEN_TTL_SECONDS}"),
            ));
        }
        let max_uses = req.max_uses.unwrap_or(1);
        if !(1..=1000).contains(&max_uses) {
            return Err(Error::invalid("max_uses", "must be between 1 and 1000"));
        }
        let secret = OpaqueToken::generate(TokenKind::Enrollment);
        let token = NewEnrollmentToken {
            id: new_id(),
            tenant_id: access.tenant_id,
            token_hash: secret.hash,
            labels: req.labels,
            max_uses,
            created_by: access.caller.creator_id(),
            expires_at: Timestamp::now() + time::Duration::seconds(ttl),
        };
        let audit = access
            .audit(actions::ENROLLMENT_TOKEN_CREATE)
            .resource("enrollment_token", token.id)
            .details(serde_json::json!({ "labels": token.labels, "max_uses": max_uses, "ttl_seconds": ttl }));
        let info = self.store.create_enrollment_token(&token, &audit).await?;
        let text =
            marketer_protocol::EnrollmentToken { secret: secret.text, ca_sha256: self.agents.anchor_sha256 }
                .to_text();
        Ok(CreatedEnrollmentToken {
            id: info.id,
            install_command: self.install_command(&text),
            token: text,
            expires_at: info.expires_at,
            max_uses: info.max_uses,
            labels: info.labels,
        })
    }

    pub async fn enrollment_tokens(
        &self,
        access: &TenantAccess,
        page: PageRequest,
    ) -> Result<Page<EnrollmentTokenInfo>> {
        access.require(Permission::AgentsManage)?;
        Ok(self.store.enrollment_tokens(access.tenant_id, page, Timestamp::now()).await?)
    }

    pub async fn revoke_enrollment_token(&self, access: &TenantAccess, id: Uuid) -> Result<()> {
        access.require(Permission::AgentsManage)?;
        let audit = access.audit(actions::ENROLLMENT_TOKEN_REVOKE).resource("enrollment_token", id);
        self.store
            .revoke_enrollment_token(access.tenant_id, id, &audit)
            .await
            .or_not_found("enrollment token")
    }

    /// Every member may see the fleet.
    pub async fn agents(&self, access: &TenantAccess, page: PageRequest) -> Result<Page<AgentView>> {
        let page = self.store.agents(access.tenant_id, page).await?;
        let now = Timestamp::now();
        Ok(Page { items: page.items.into_iter().map(|a| self.view(a, now)).collect(), next: page.next })
    }

    pub async fn agent(&self, access: &TenantAccess, id: Uuid) -> Result<AgentView> {
        let agent = self.store.agent(access.tenant_id, id).await.found("agent")?;
        Ok(self.view(agent, Timestamp::now()))
    }

    pub async fn update_agent(&self, access: &TenantAccess, id: Uuid, req: UpdateAgent) -> Result<AgentView> {
        access.require(Permission::AgentsManage)?;
        if let Some(labels) = &req.labels {
            check_labels(labels).map_err(|e| Error::invalid("labels", e.to_string()))?;
        }
        let audit = access
            .audit(actions::AGENT_UPDATE)
            .resource("agent", id)
            .details(serde_json::json!({ "name": req.name, "labels": req.labels }));
        let patch = AgentPatch { name: req.name, labels: req.labels };
        let agent =
            self.store.update_agent(access.tenant_id, id, &patch, &audit).await.or_not_found("agent")?;
        Ok(self.view(agent, Timestamp::now()))
    }

    /// Revokes an agent: its live connection (on this replica) closes at once,
    /// and every later connection is refused.
    pub async fn revoke_agent(&self, access: &TenantAccess, id: Uuid) -> Result<AgentView> {
        access.require(Permission::AgentsManage)?;
        let audit = access.audit(actions::AGENT_REVOKE).resource("agent", id);
        let agent = self.store.revoke_agent(access.tenant_id, id, &audit).await.or_not_found("agent")?;
        self.hub.close_anywhere(
            id,
            marketer_protocol::close::REVOKED,
            "this agent was revoked by an administrator",
        );
        Ok(self.view(agent, Timestamp::now()))
    }

    pub async fn agent_events(
        &self,
        access: &TenantAccess,
        id: Uuid,
        page: PageRequest,
    ) -> Result<Page<AgentEvent>> {
        self.store.agent(access.tenant_id, id).await.found("agent")?;
        Ok(self.store.agent_events(access.tenant_id, id, page).await?)
    }
}
