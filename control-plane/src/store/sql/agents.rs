//! [`AgentStore`] for [`SqlStore`]: enrollment tokens, agents, their
//! certificates and events.

use marketer_protocol::documents::PolicySummary;

use super::*;
use crate::store::{
    AgentEvent, AgentFacts, AgentPatch, AgentStore, CertifiedAgent, ConnectionEnd, EnrollOutcome,
    EnrollmentTokenInfo, EnrollmentTokenStatus, HeartbeatUpdate, NewAgent, NewEnrollmentToken,
};

#[derive(FromRow)]
struct TokenRow {
    id: Uuid,
    tenant_id: Uuid,
    labels: String,
    max_uses: i64,
    uses: i64,
    created_by: Option<Uuid>,
    created_at: Timestamp,
    expires_at: Timestamp,
    revoked_at: Option<Timestamp>,
}

impl TokenRow {
    fn status(&self, now: Timestamp) -> EnrollmentTokenStatus {
        if self.revoked_at.is_some() {
            EnrollmentTokenStatus::Revoked
        } else if self.uses >= self.max_uses {
            EnrollmentTokenStatus::UsedUp
        } else if self.expires_at <= now {
            EnrollmentTokenStatus::Expired
        } else {
            EnrollmentTokenStatus::Active
        }
    }

    fn into_info(self, now: Timestamp) -> Result<EnrollmentTokenInfo> {
        Ok(EnrollmentTokenInfo {
            status: self.status(now),
            labels: parse_labels(&self.labels)?,
            id: self.id,
            tenant_id: self.tenant_id,
            max_uses: self.max_uses,
            uses: self.uses,
            created_by: self.created_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        })
    }
}

const TOKEN_COLUMNS: &str =
    "id, tenant_id, labels, max_uses, uses, created_by, created_at, expires_at, revoked_at";

#[derive(FromRow)]
struct AgentEventRow {
    id: Uuid,
    agent_id: Uuid,
    occurred_at: Timestamp,
    kind: String,
    details: String,
}

impl TryFrom<AgentEventRow> for AgentEvent {
    type Error = StoreError;
    fn try_from(r: AgentEventRow) -> Result<AgentEvent> {
        Ok(AgentEvent {
            id: r.id,
            agent_id: r.agent_id,
            occurred_at: r.occurred_at,
            kind: r.kind.parse().map_err(corrupt("agent_events.kind"))?,
            details: serde_json::from_str(&r.details).map_err(corrupt("agent_events.details"))?,
        })
    }
}

#[async_trait]
impl<DB> AgentStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Vec<u8>: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Date: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<Uuid>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<bool>: Decode<'t, DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Date>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Vec<u8>>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn create_enrollment_token(
        &self,
        t: &NewEnrollmentToken,
        audit: &NewAuditEvent,
    ) -> Result<EnrollmentTokenInfo> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let row: TokenRow = sqlx::query_as(sql(&[
            "INSERT INTO enrollment_tokens (id, tenant_id, token_hash, labels, max_uses, uses, created_by, \
             created_at, expires_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8) RETURNING ",
            TOKEN_COLUMNS,
        ]))
        .bind(t.id)
        .bind(t.tenant_id)
        .bind(t.token_hash.clone())
        .bind(labels_json(&t.labels))
        .bind(t.max_uses)
        .bind(t.created_by)
        .bind(now)
        .bind(t.expires_at)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.into_info(now)
    }

    async fn enrollment_tokens(
        &self,
        tenant_id: Uuid,
        page: PageRequest,
        now: Timestamp,
    ) -> Result<Page<EnrollmentTokenInfo>> {
        let rows: Vec<TokenRow> = sqlx::query_as(sql(&[
            "SELECT ",
            TOKEN_COLUMNS,
            " FROM enrollment_tokens WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        ]))
        .bind(tenant_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        let items = rows.into_iter().map(|r| r.into_info(now)).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, page.limit, |t: &EnrollmentTokenInfo| t.id))
    }

    async fn revoke_enrollment_token(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let exists: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM enrollment_tokens WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE enrollment_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(audit.occurred_at)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn enroll_agent(
        &self,
        token_hash: &[u8],
        agent: &NewAgent,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<EnrollOutcome> {
        let mut tx = self.write.begin().await?;
        let token: Option<TokenRow> =
            sqlx::query_as(sql(&["SELECT ", TOKEN_COLUMNS, " FROM enrollment_tokens WHERE token_hash = $1"]))
                .bind(token_hash.to_vec())
                .fetch_optional(&mut *tx)
                .await?;
        let Some(token) = token else { return Ok(EnrollOutcome::TokenNotFound) };
        match token.status(now) {
            EnrollmentTokenStatus::Active => {}
            EnrollmentTokenStatus::Expired => return Ok(EnrollOutcome::TokenExpired),
            EnrollmentTokenStatus::UsedUp => return Ok(EnrollOutcome::TokenUsedUp),
            EnrollmentTokenStatus::Revoked => return Ok(EnrollOutcome::TokenRevoked),
        }
        // Taking a use is a compare-and-set: two agents enrolling with the last
        // use of a token at the same moment cannot both succeed.
        let taken = sqlx::query(
            "UPDATE enrollment_tokens SET uses = uses + 1 \
             WHERE id = $1 AND uses < max_uses AND revoked_at IS NULL",
        )
        .bind(token.id)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&taken) == 0 {
            return Ok(EnrollOutcome::TokenUsedUp);
        }

        let mut labels = agent.labels.clone();
        labels.extend(parse_labels(&token.labels)?);
        let name = match &agent.name {
            Some(name) => name.clone(),
            None => Name::parse(&agent.hostname)
                .or_else(|_| Name::parse(&format!("agent-{}", agent.id.simple())))
                .map_err(corrupt("agent name"))?,
        };
        let cert = &agent.certificate;
        let row: AgentRow = sqlx::query_as(sql(&[
            "INSERT INTO agents (id, tenant_id, name, labels, enrollment_token_id, enrolled_at, agent_version, \
             hostname, os, arch, cert_not_before, cert_not_after, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $6) RETURNING ",
            AGENT_COLUMNS,
        ]))
        .bind(agent.id)
        .bind(token.tenant_id)
        .bind(name.as_str().to_owned())
        .bind(labels_json(&labels))
        .bind(token.id)
        .bind(now)
        .bind(agent.agent_version.clone())
        .bind(agent.hostname.clone())
        .bind(agent.os.clone())
        .bind(agent.arch.clone())
        .bind(cert.not_before)
        .bind(cert.not_after)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_certificate(&mut tx, agent.id, cert, "enrollment", now).await?;
        Self::insert_agent_event(
            &mut tx,
            agent.id,
            token.tenant_id,
            AgentEventKind::Enrolled,
            serde_json::json!({ "enrollment_token_id": token.id, "hostname": agent.hostname }),
            now,
        )
        .await?;
        let audit = NewAuditEvent {
            tenant_id: Some(token.tenant_id),
            actor: Actor::Agent { id: agent.id, name: name.to_string() },
            ..audit.clone()
        }
        .resource("agent", agent.id)
        .details(serde_json::json!({ "enrollment_token_id": token.id, "labels": labels }));
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(EnrollOutcome::Enrolled(Box::new(row.try_into()?)))
    }

    async fn agent(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Agent>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_tenant_agent(&mut conn, tenant_id, id).await
    }

    async fn agents(&self, tenant_id: Uuid, page: PageRequest) -> Result<Page<Agent>> {
        let rows: Vec<AgentRow> = sqlx::query_as(sql(&[
            "SELECT ",
            AGENT_COLUMNS,
            " FROM agents WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
        ]))
        .bind(tenant_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |a: &Agent| a.id))
    }

    async fn update_agent(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        patch: &AgentPatch,
        audit: &NewAuditEvent,
    ) -> Result<Agent> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let current = Self::fetch_tenant_agent(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        let name = patch.name.clone().unwrap_or(current.name);
        let labels = patch.labels.clone().unwrap_or(current.labels);
        let row: AgentRow = sqlx::query_as(sql(&[
            "UPDATE agents SET name = $3, labels = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2 \
             RETURNING ",
            AGENT_COLUMNS,
        ]))
        .bind(tenant_id)
        .bind(id)
        .bind(name.as_str().to_owned())
        .bind(labels_json(&labels))
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_agent_event(
            &mut tx,
            id,
            tenant_id,
            AgentEventKind::Updated,
            serde_json::json!({ "name": name, "labels": labels }),
            now,
        )
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn revoke_agent(&self, tenant_id: Uuid, id: Uuid, audit: &NewAuditEvent) -> Result<Agent> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let current = Self::fetch_tenant_agent(&mut tx, tenant_id, id).await?.ok_or(StoreError::NotFound)?;
        if current.revoked_at.is_some() {
            return Ok(current);
        }
        let row: AgentRow = sqlx::query_as(sql(&[
            "UPDATE agents SET revoked_at = $3, updated_at = $3 WHERE tenant_id = $1 AND id = $2 RETURNING ",
            AGENT_COLUMNS,
        ]))
        .bind(tenant_id)
        .bind(id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_agent_event(&mut tx, id, tenant_id, AgentEventKind::Revoked, serde_json::json!({}), now)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        row.try_into()
    }

    async fn agent_by_certificate(&self, fingerprint: &[u8]) -> Result<Option<CertifiedAgent>> {
        let found: Option<(Uuid, Timestamp)> =
            sqlx::query_as("SELECT agent_id, not_after FROM agent_certificates WHERE fingerprint = $1")
                .bind(fingerprint.to_vec())
                .fetch_optional(&self.read)
                .await?;
        let Some((agent_id, not_after)) = found else { return Ok(None) };
        let mut conn = self.read.acquire().await?;
        Ok(Self::fetch_agent(&mut conn, agent_id).await?.map(|agent| CertifiedAgent { agent, not_after }))
    }

    async fn add_agent_certificate(
        &self,
        agent_id: Uuid,
        certificate: &NewAgentCertificate,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let agent = Self::fetch_agent(&mut tx, agent_id).await?.ok_or(StoreError::NotFound)?;
        Self::insert_certificate(&mut tx, agent_id, certificate, "renewal", now).await?;
        sqlx::query(
            "UPDATE agents SET cert_not_before = $2, cert_not_after = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(agent_id)
        .bind(certificate.not_before)
        .bind(certificate.not_after)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::insert_agent_event(
            &mut tx,
            agent_id,
            agent.tenant_id,
            AgentEventKind::Renewed,
            serde_json::json!({ "serial": certificate.serial, "not_after": certificate.not_after }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn agent_connected(&self, agent_id: Uuid, facts: &AgentFacts, now: Timestamp) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let agent = Self::fetch_agent(&mut tx, agent_id).await?.ok_or(StoreError::NotFound)?;
        sqlx::query(
            "UPDATE agents SET agent_version = $2, protocol_version = $3, hostname = $4, os = $5, arch = $6, \
             max_concurrency = $7, ollama_reachable = $8, models = $9, running_jobs = $10, connected_at = $11, \
             last_seen_at = $11, updated_at = $11, policy = $12, projects = $13 WHERE id = $1",
        )
        .bind(agent_id)
        .bind(facts.agent_version.clone())
        .bind(facts.protocol_version)
        .bind(facts.hostname.clone())
        .bind(facts.os.clone())
        .bind(facts.arch.clone())
        .bind(facts.max_concurrency)
        .bind(facts.ollama_reachable)
        .bind(models_json(&facts.models))
        .bind(facts.running_jobs)
        .bind(now)
        .bind(to_json(&facts.policy)?)
        .bind(to_json(&facts.projects)?)
        .execute(&mut *tx)
        .await?;
        Self::insert_agent_event(
            &mut tx,
            agent_id,
            agent.tenant_id,
            AgentEventKind::Connected,
            serde_json::json!({ "agent_version": facts.agent_version, "protocol_version": facts.protocol_version }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn agent_disconnected(
        &self,
        agent_id: Uuid,
        reason: &str,
        graceful: bool,
        now: Timestamp,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let agent = Self::fetch_agent(&mut tx, agent_id).await?.ok_or(StoreError::NotFound)?;
        sqlx::query(
            "UPDATE agents SET disconnected_at = $2, disconnect_reason = $3, updated_at = $2, \
             offline_at = CASE WHEN $4 THEN $2 ELSE offline_at END WHERE id = $1",
        )
        .bind(agent_id)
        .bind(now)
        .bind(reason.to_owned())
        .bind(graceful)
        .execute(&mut *tx)
        .await?;
        Self::insert_agent_event(
            &mut tx,
            agent_id,
            agent.tenant_id,
            AgentEventKind::Disconnected,
            serde_json::json!({ "reason": reason, "graceful": graceful }),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record_agent_index(
        &self,
        agent_id: Uuid,
        policy: Option<&PolicySummary>,
        projects: Option<&[Uuid]>,
    ) -> Result<()> {
        if policy.is_none() && projects.is_none() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE agents SET policy = COALESCE($2, policy), projects = COALESCE($3, projects) WHERE id = $1",
        )
        .bind(agent_id)
        .bind(policy.map(to_json).transpose()?)
        .bind(projects.map(to_json).transpose()?)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn record_heartbeats(&self, updates: &[HeartbeatUpdate]) -> Result<Vec<(Uuid, ConnectionEnd)>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut revoked = Vec::new();
        let mut tx = self.write.begin().await?;
        for u in updates {
            // Marked offline, yet heard from since on a live connection (the
            // mark raced a reconnection to another replica, or heartbeats
            // could not be stored while the database was away): online again.
            let back: Option<Uuid> = sqlx::query_scalar(
                "UPDATE agents SET offline_at = NULL WHERE id = $1 AND revoked_at IS NULL \
                 AND connected_at IS NOT NULL AND offline_at >= connected_at AND offline_at < $2 RETURNING tenant_id",
            )
            .bind(u.agent_id)
            .bind(u.seen_at)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(tenant_id) = back {
                Self::insert_agent_event(
                    &mut tx,
                    u.agent_id,
                    tenant_id,
                    AgentEventKind::Connected,
                    serde_json::json!({ "heartbeats_resumed": true }),
                    u.seen_at,
                )
                .await?;
            }
            // Never backwards: a dying connection's last heartbeat can be
            // stored after a newer connection's first.
            let found: Option<Option<Timestamp>> = sqlx::query_scalar(
                "UPDATE agents SET last_seen_at = CASE WHEN last_seen_at IS NULL OR last_seen_at < $2 THEN $2 \
                 ELSE last_seen_at END, running_jobs = $3, ollama_reachable = $4, \
                 models = COALESCE($5, models) WHERE id = $1 RETURNING revoked_at",
            )
            .bind(u.agent_id)
            .bind(u.seen_at)
            .bind(u.running_jobs)
            .bind(u.ollama_reachable)
            .bind(u.models.as_deref().map(models_json))
            .fetch_optional(&mut *tx)
            .await?;
            match found {
                Some(Some(_)) => revoked.push((u.agent_id, ConnectionEnd::Revoked)),
                None => revoked.push((u.agent_id, ConnectionEnd::TenantErased)),
                Some(None) => {}
            }
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn mark_offline(&self, seen_before: Timestamp, now: Timestamp) -> Result<Vec<Agent>> {
        let mut tx = self.write.begin().await?;
        // The condition makes this idempotent: an agent is marked once per
        // connection, whichever replica gets there first.
        let rows: Vec<AgentRow> = sqlx::query_as(sql(&[
            "UPDATE agents SET offline_at = $2 WHERE revoked_at IS NULL AND connected_at IS NOT NULL \
             AND last_seen_at < $1 AND (offline_at IS NULL OR offline_at < connected_at) RETURNING ",
            AGENT_COLUMNS,
        ]))
        .bind(seen_before)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let agents: Vec<Agent> = rows_into(rows)?;
        for agent in &agents {
            Self::insert_agent_event(
                &mut tx,
                agent.id,
                agent.tenant_id,
                AgentEventKind::Offline,
                serde_json::json!({ "last_seen_at": agent.last_seen_at }),
                now,
            )
            .await?;
            let notice = crate::store::NewNotice {
                tenant_id: Some(agent.tenant_id),
                kind: crate::store::NoticeKind::AgentOffline,
                audience: crate::store::Audience::Admins,
                title: format!("Agent {} is offline", agent.name),
                body: "No heartbeat reached the control plane. Jobs for it wait in the queue; check the host, its \
                       network and `marketer-agent status` there."
                    .to_owned(),
                link: Some(format!("/t/{}/fleet/{}", agent.tenant_id, agent.id)),
                dedupe_key: Some(format!(
                    "agent:{}:offline:{}",
                    agent.id,
                    agent.connected_at.map(|t| t.to_string()).unwrap_or_default()
                )),
            };
            Self::insert_notices(&mut tx, std::slice::from_ref(&notice), now).await?;
            let event = crate::store::NewWebhookEvent::new(
                agent.tenant_id,
                crate::store::WebhookEventKind::AgentOffline,
                format!(
                    "Agent {} is offline: no heartbeat since {}",
                    agent.name,
                    agent.last_seen_at.map(|t| t.to_rfc3339_fixed()).unwrap_or_default()
                ),
                serde_json::json!({
                    "agent_id": agent.id,
                    "name": agent.name,
                    "last_seen_at": agent.last_seen_at.map(|t| t.to_rfc3339_fixed()),
                }),
            );
            Self::insert_webhook_events(&mut tx, std::slice::from_ref(&event), now).await?;
        }
        tx.commit().await?;
        Ok(agents)
    }

    async fn agent_events(
        &self,
        tenant_id: Uuid,
        agent_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<AgentEvent>> {
        let rows: Vec<AgentEventRow> = sqlx::query_as(
            "SELECT id, agent_id, occurred_at, kind, details FROM agent_events \
             WHERE tenant_id = $1 AND agent_id = $2 AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4",
        )
        .bind(tenant_id)
        .bind(agent_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |e: &AgentEvent| e.id))
    }
}
