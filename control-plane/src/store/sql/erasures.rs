//! [`ErasureStore`] for [`SqlStore`]: a tenant's erasure in one
//! transaction, and its record as its agents confirm.

use super::*;

use crate::store::{
    AuditRewrite, ErasingAgent, ErasureAgent, ErasureStore, TenantErasure, TenantErasureCounts,
    TenantErasureRecord,
};

/// The tables counted for the erasure's report (constants, not input).
const COUNTED: [(&str, &str); 9] = [
    ("members", "memberships"),
    ("projects", "projects"),
    ("activities", "activities"),
    ("documents", "documents"),
    ("social_posts", "social_posts"),
    ("inbox_items", "inbox_items"),
    ("properties", "properties"),
    ("leads", "leads"),
    ("agents", "agents"),
];

/// How many audit entries are rewritten per statement (a large tenant's
/// log is walked in pages, not loaded at once; three parameters each).
const AUDIT_PAGE: i64 = 500;

/// An agent's part: id, name, confirmed at, report, why unreachable.
type AgentRow = (Uuid, String, Option<Timestamp>, Option<String>, Option<String>);

type RecordRow = (Uuid, Uuid, Option<Uuid>, Timestamp, Option<Timestamp>, bool, String);

#[async_trait]
impl<DB> ErasureStore for SqlStore<DB>
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
    async fn erase_tenant(
        &self,
        e: &TenantErasure,
        rewrite: AuditRewrite,
        audit: &NewAuditEvent,
    ) -> Result<TenantErasureCounts> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, e.tenant_id).await?;
        // The agents too: a certificate renewed while this runs would be
        // deleted with the tenant without being recorded below, and its
        // agent could never be told. A renewal now waits, then fails.
        sqlx::query(sql(&["SELECT id FROM agents WHERE tenant_id = $1 ORDER BY id", DB::FOR_UPDATE]))
            .bind(e.tenant_id)
            .fetch_all(&mut *tx)
            .await?;
        let mut counted = std::collections::HashMap::new();
        for (name, table) in COUNTED {
            let n: i64 = sqlx::query_scalar(sql(&["SELECT COUNT(*) FROM ", table, " WHERE tenant_id = $1"]))
                .bind(e.tenant_id)
                .fetch_one(&mut *tx)
                .await?;
            counted.insert(name, u64::try_from(n).unwrap_or(0));
        }
        let mut counts = TenantErasureCounts {
            members: counted["members"],
            projects: counted["projects"],
            activities: counted["activities"],
            documents: counted["documents"],
            social_posts: counted["social_posts"],
            inbox_items: counted["inbox_items"],
            properties: counted["properties"],
            leads: counted["leads"],
            agents: counted["agents"],
            audit_entries_pseudonymised: 0,
        };
        // The exception to the audit log's append-only rule holds for this
        // tenant's entries while this row is active: in this transaction.
        sqlx::query(
            "INSERT INTO tenant_erasures (id, tenant_id, requested_by, erased_at, completed_at, files_pending, \
             report, active) VALUES ($1, $2, $3, $4, NULL, TRUE, '{}', TRUE)",
        )
        .bind(e.id)
        .bind(e.tenant_id)
        .bind(e.requested_by)
        .bind(e.now)
        .execute(&mut *tx)
        .await?;
        // Every agent is recorded; one that cannot connect any more (revoked,
        // its certificate expired) cannot be told, and is recorded as such:
        // its host is wiped by hand, and it does not hold the erasure open.
        sqlx::query(
            "INSERT INTO tenant_erasure_agents (erasure_id, agent_id, name, confirmed_at, report, unreachable) \
             SELECT $1, id, name, NULL, NULL, CASE WHEN revoked_at IS NOT NULL THEN 'revoked' \
             WHEN cert_not_after <= $3 THEN 'certificate_expired' ELSE NULL END \
             FROM agents WHERE tenant_id = $2",
        )
        .bind(e.id)
        .bind(e.tenant_id)
        .bind(e.now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO tenant_erasure_certificates (fingerprint, erasure_id, agent_id) \
             SELECT c.fingerprint, $1, c.agent_id FROM agent_certificates c \
             JOIN agents a ON a.id = c.agent_id WHERE a.tenant_id = $2",
        )
        .bind(e.id)
        .bind(e.tenant_id)
        .execute(&mut *tx)
        .await?;
        // The audit trail stays, without the people and text in it.
        let mut after: Option<Uuid> = None;
        loop {
            let page: Vec<(Uuid, String, Option<Uuid>, String, String)> = sqlx::query_as(
                "SELECT id, actor_type, actor_id, actor_label, details FROM audit_events \
                 WHERE tenant_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
            )
            .bind(e.tenant_id)
            .bind(after)
            .bind(AUDIT_PAGE)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.0);
            // One statement per page: each entry's new label and details
            // by its id (a round trip per entry is what made this slow).
            let mut update = String::from("UPDATE audit_events SET client_ip = NULL, actor_label = CASE id");
            for n in 0..page.len() {
                update.push_str(&format!(" WHEN ${} THEN ${}", 3 * n + 1, 3 * n + 2));
            }
            update.push_str(" END, details = CASE id");
            for n in 0..page.len() {
                update.push_str(&format!(" WHEN ${} THEN ${}", 3 * n + 1, 3 * n + 3));
            }
            update.push_str(" END WHERE id IN (");
            update
                .push_str(&(0..page.len()).map(|n| format!("${}", 3 * n + 1)).collect::<Vec<_>>().join(", "));
            update.push(')');
            let mut query = sqlx::query(sqlx::AssertSqlSafe(update));
            for (id, actor_type, actor_id, label, details) in &page {
                query = query
                    .bind(*id)
                    .bind((rewrite.relabel)(actor_type, *actor_id, label))
                    .bind((rewrite.details)(details));
            }
            let done = query.execute(&mut *tx).await?;
            counts.audit_entries_pseudonymised += DB::rows_affected(&done);
        }
        sqlx::query("DELETE FROM sessions WHERE sso_tenant_id = $1")
            .bind(e.tenant_id)
            .execute(&mut *tx)
            .await?;
        // Everything of the tenant hangs from this row (ON DELETE CASCADE).
        sqlx::query("DELETE FROM tenants WHERE id = $1").bind(e.tenant_id).execute(&mut *tx).await?;
        let report = serde_json::to_string(&counts).unwrap_or_else(|_| "{}".into());
        sqlx::query("UPDATE tenant_erasures SET active = FALSE, report = $2 WHERE id = $1")
            .bind(e.id)
            .bind(report)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(counts)
    }

    async fn tenant_erasure(&self, id: Uuid) -> Result<Option<TenantErasureRecord>> {
        let row: Option<RecordRow> = sqlx::query_as(
            "SELECT id, tenant_id, requested_by, erased_at, completed_at, files_pending, report \
             FROM tenant_erasures WHERE id = $1 AND NOT active",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        match row {
            Some(row) => Ok(Some(self.erasure_record(row).await?)),
            None => Ok(None),
        }
    }

    async fn tenant_erasures_requested_by(&self, user_id: Uuid) -> Result<Vec<TenantErasureRecord>> {
        let rows: Vec<RecordRow> = sqlx::query_as(
            "SELECT id, tenant_id, requested_by, erased_at, completed_at, files_pending, report \
             FROM tenant_erasures WHERE requested_by = $1 AND NOT active ORDER BY id DESC LIMIT 50",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            records.push(self.erasure_record(row).await?);
        }
        Ok(records)
    }

    async fn erasing_agent(&self, fingerprint: &[u8]) -> Result<Option<ErasingAgent>> {
        let found: Option<(Uuid, Uuid, Uuid)> = sqlx::query_as(
            "SELECT c.erasure_id, e.tenant_id, c.agent_id FROM tenant_erasure_certificates c \
             JOIN tenant_erasures e ON e.id = c.erasure_id WHERE c.fingerprint = $1 AND NOT e.active",
        )
        .bind(fingerprint.to_vec())
        .fetch_optional(&self.read)
        .await?;
        Ok(found.map(|(erasure_id, tenant_id, agent_id)| ErasingAgent { erasure_id, tenant_id, agent_id }))
    }

    async fn confirm_agent_erasure(
        &self,
        agent: ErasingAgent,
        report: &serde_json::Value,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let first = sqlx::query(
            "UPDATE tenant_erasure_agents SET confirmed_at = $3, report = $4 \
             WHERE erasure_id = $1 AND agent_id = $2 AND confirmed_at IS NULL",
        )
        .bind(agent.erasure_id)
        .bind(agent.agent_id)
        .bind(now)
        .bind(report.to_string())
        .execute(&mut *tx)
        .await?;
        let first = DB::rows_affected(&first) == 1;
        if first {
            Self::complete_erasure(&mut tx, agent.erasure_id, now).await?;
            Self::insert_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(first)
    }

    async fn erasures_with_files_pending(&self) -> Result<Vec<(Uuid, Uuid)>> {
        Ok(sqlx::query_as(
            "SELECT id, tenant_id FROM tenant_erasures WHERE files_pending AND NOT active ORDER BY id LIMIT 100",
        )
        .fetch_all(&self.read)
        .await?)
    }

    async fn erasure_files_deleted(&self, erasure_id: Uuid, now: Timestamp) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query("UPDATE tenant_erasures SET files_pending = FALSE WHERE id = $1")
            .bind(erasure_id)
            .execute(&mut *tx)
            .await?;
        Self::complete_erasure(&mut tx, erasure_id, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> Option<String>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> Option<Timestamp>: Encode<'t, DB> + Decode<'t, DB>,
    for<'t> &'t str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// Completes the erasure if nothing of it is pending.
    async fn complete_erasure(conn: &mut DB::Connection, erasure_id: Uuid, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE tenant_erasures SET completed_at = $2 WHERE id = $1 AND completed_at IS NULL \
             AND NOT files_pending AND NOT EXISTS (SELECT 1 FROM tenant_erasure_agents \
             WHERE erasure_id = $1 AND confirmed_at IS NULL AND unreachable IS NULL)",
        )
        .bind(erasure_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn erasure_record(&self, row: RecordRow) -> Result<TenantErasureRecord> {
        let (id, tenant_id, requested_by, erased_at, completed_at, files_pending, report) = row;
        let agents: Vec<AgentRow> = sqlx::query_as(
            "SELECT agent_id, name, confirmed_at, report, unreachable FROM tenant_erasure_agents \
             WHERE erasure_id = $1 ORDER BY name, agent_id",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        Ok(TenantErasureRecord {
            id,
            tenant_id,
            requested_by,
            erased_at,
            completed_at,
            files_pending,
            control_plane: serde_json::from_str(&report).unwrap_or_default(),
            agents: agents
                .into_iter()
                .map(|(agent_id, name, confirmed_at, report, unreachable)| ErasureAgent {
                    agent_id,
                    name,
                    confirmed_at,
                    report: report.and_then(|r| serde_json::from_str(&r).ok()),
                    unreachable,
                })
                .collect(),
        })
    }
}
