//! [`RetentionStore`] for [`SqlStore`]: the policy, and a day's run in one
//! transaction (claim, delete, anonymise, audit).

use super::*;

use crate::store::{ErasureReport, NamingItem, RetentionPolicy, RetentionReport, RetentionStore};

/// The most contacts one day's run anonymises (the rest the next day).
const ANONYMISE_PER_RUN: &str = "5000";
/// The most activities, and jobs, one day's run deletes (the rest the
/// next day), so one run's transaction (and SQLite's write lock) stays
/// short: each goes with its events, versions and comments.
const DELETE_PER_RUN: &str = "1000";

/// A policy's columns: inbox, lead, anonymise, content and job days.
type PolicyRow = (Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

fn policy_of(
    (inbox_days, lead_days, anonymise_contacts_days, content_days, job_days): PolicyRow,
) -> RetentionPolicy {
    RetentionPolicy { inbox_days, lead_days, anonymise_contacts_days, content_days, job_days }
}

#[async_trait]
impl<DB> RetentionStore for SqlStore<DB>
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
    async fn contact_lead(&self, tenant_id: Uuid, email_normalized: &str) -> Result<Option<Uuid>> {
        Ok(sqlx::query_scalar("SELECT id FROM leads WHERE tenant_id = $1 AND email_normalized = $2")
            .bind(tenant_id)
            .bind(email_normalized)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn inbox_items_naming(&self, tenant_id: Uuid, email_normalized: &str) -> Result<Vec<NamingItem>> {
        let rows: Vec<(Uuid, String, String, Option<String>, Timestamp)> = sqlx::query_as(
            "SELECT id, author_handle, text, url, posted_at FROM inbox_items \
             WHERE tenant_id = $1 AND LOWER(text) LIKE $2 ESCAPE '\\' ORDER BY posted_at LIMIT 10000",
        )
        .bind(tenant_id)
        .bind(like_pattern(email_normalized))
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, author_handle, text, url, posted_at)| NamingItem {
                id,
                author_handle,
                text,
                url,
                posted_at,
            })
            .collect())
    }

    async fn erase_contact(
        &self,
        tenant_id: Uuid,
        lead_id: Option<Uuid>,
        inbox_item_ids: &[Uuid],
        audit: &NewAuditEvent,
    ) -> Result<ErasureReport> {
        let mut tx = self.write.begin().await?;
        let mut report = ErasureReport::default();
        if let Some(id) = lead_id {
            let found: Option<Uuid> =
                sqlx::query_scalar("SELECT id FROM leads WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(tenant_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if found.is_some() {
                Self::anonymise_lead(&mut tx, id, audit.occurred_at).await?;
                report.leads_anonymised = 1;
            }
        }
        for id in inbox_item_ids {
            let r = sqlx::query("DELETE FROM inbox_items WHERE id = $1 AND tenant_id = $2")
                .bind(*id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            report.inbox_items_deleted += DB::rows_affected(&r);
        }
        let mut audit = audit.clone();
        if let Some(details) = audit.details.as_object_mut() {
            details.insert("report".into(), serde_json::json!(report));
        }
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn retention_policy(&self, tenant_id: Uuid) -> Result<RetentionPolicy> {
        let row: Option<PolicyRow> = sqlx::query_as(
            "SELECT inbox_days, lead_days, anonymise_contacts_days, content_days, job_days \
             FROM retention_policies WHERE tenant_id = $1",
        )
        .bind(tenant_id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map_or_else(RetentionPolicy::default, policy_of))
    }

    async fn set_retention_policy(
        &self,
        tenant_id: Uuid,
        policy: &RetentionPolicy,
        audit: &NewAuditEvent,
    ) -> Result<()> {
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO retention_policies (tenant_id, inbox_days, lead_days, anonymise_contacts_days, \
             content_days, job_days, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id) \
             DO UPDATE SET inbox_days = excluded.inbox_days, lead_days = excluded.lead_days, \
             anonymise_contacts_days = excluded.anonymise_contacts_days, content_days = excluded.content_days, \
             job_days = excluded.job_days, updated_at = excluded.updated_at",
        )
        .bind(tenant_id)
        .bind(policy.inbox_days)
        .bind(policy.lead_days)
        .bind(policy.anonymise_contacts_days)
        .bind(policy.content_days)
        .bind(policy.job_days)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn retention_due(&self, day: &str) -> Result<Vec<(Uuid, RetentionPolicy)>> {
        let rows: Vec<(Uuid, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT p.tenant_id, p.inbox_days, p.lead_days, p.anonymise_contacts_days, p.content_days, p.job_days \
             FROM retention_policies p WHERE (p.inbox_days IS NOT NULL OR p.lead_days IS NOT NULL \
             OR p.anonymise_contacts_days IS NOT NULL OR p.content_days IS NOT NULL OR p.job_days IS NOT NULL) \
             AND NOT EXISTS (SELECT 1 FROM retention_runs r WHERE r.tenant_id = p.tenant_id AND r.day = $1) \
             ORDER BY p.tenant_id LIMIT 1000",
        )
        .bind(day)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(|(tenant, a, b, c, d, e)| (tenant, policy_of((a, b, c, d, e)))).collect())
    }

    async fn apply_retention(
        &self,
        tenant_id: Uuid,
        policy: &RetentionPolicy,
        as_of: Timestamp,
        day: &str,
        audit: &NewAuditEvent,
    ) -> Result<Option<RetentionReport>> {
        let cutoff = |days: i64| as_of - time::Duration::days(days);
        let mut tx = self.write.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO retention_runs (tenant_id, day, ran_at, report) VALUES ($1, $2, $3, '{}') \
             ON CONFLICT (tenant_id, day) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(day)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&claimed) == 0 {
            return Ok(None);
        }
        let mut report = RetentionReport::default();
        if let Some(days) = policy.inbox_days {
            let r = sqlx::query("DELETE FROM inbox_items WHERE tenant_id = $1 AND posted_at < $2")
                .bind(tenant_id)
                .bind(cutoff(days))
                .execute(&mut *tx)
                .await?;
            report.inbox_items_deleted = DB::rows_affected(&r);
        }
        if let Some(days) = policy.lead_days {
            let r = sqlx::query("DELETE FROM leads WHERE tenant_id = $1 AND last_interaction_at < $2")
                .bind(tenant_id)
                .bind(cutoff(days))
                .execute(&mut *tx)
                .await?;
            report.leads_deleted = DB::rows_affected(&r);
        }
        if let Some(days) = policy.anonymise_contacts_days {
            // At most `ANONYMISE_PER_RUN` a day, so one run stays short.
            let ids: Vec<Uuid> = sqlx::query_scalar(sql(&[
                "SELECT id FROM leads WHERE tenant_id = $1 AND anonymised_at IS NULL \
                 AND last_interaction_at < $2 ORDER BY id LIMIT ",
                ANONYMISE_PER_RUN,
            ]))
            .bind(tenant_id)
            .bind(cutoff(days))
            .fetch_all(&mut *tx)
            .await?;
            for id in &ids {
                Self::anonymise_lead(&mut tx, *id, audit.occurred_at).await?;
            }
            report.contacts_anonymised = u64::try_from(ids.len()).unwrap_or(u64::MAX);
        }
        if let Some(days) = policy.content_days {
            // Activities unchanged since the cutoff whose latest run ended
            // before it and none of whose posts is still to go out; their
            // posts' records stay (what went out, with its metrics),
            // unlinked. The condition is asked again as each is deleted, so
            // one that starts a run meanwhile (another replica, a person)
            // stays.
            const DUE: &str = "a.tenant_id = $1 AND a.updated_at < $2 \
                 AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = a.current_job_id \
                 AND j.status IN ('succeeded', 'failed', 'cancelled') AND j.finished_at < $2) \
                 AND NOT EXISTS (SELECT 1 FROM social_posts p WHERE p.tenant_id = a.tenant_id \
                 AND p.activity_id = a.id \
                 AND p.status IN ('draft', 'scheduled', 'needs_reschedule', 'publishing', 'unconfirmed'))";
            let ids: Vec<Uuid> = sqlx::query_scalar(sql(&[
                "SELECT a.id FROM activities a WHERE ",
                DUE,
                " ORDER BY a.id LIMIT ",
                DELETE_PER_RUN,
            ]))
            .bind(tenant_id)
            .bind(cutoff(days))
            .fetch_all(&mut *tx)
            .await?;
            for id in &ids {
                let r = sqlx::query(sql(&[
                    "DELETE FROM activities WHERE id IN (SELECT a.id FROM activities a WHERE ",
                    DUE,
                    " AND a.id = $3)",
                ]))
                .bind(tenant_id)
                .bind(cutoff(days))
                .bind(*id)
                .execute(&mut *tx)
                .await?;
                if DB::rows_affected(&r) == 0 {
                    continue;
                }
                sqlx::query(
                    "UPDATE social_posts SET activity_id = NULL, activity_version = NULL \
                     WHERE tenant_id = $1 AND activity_id = $2",
                )
                .bind(tenant_id)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
                report.activities_deleted += 1;
            }
        }
        if let Some(days) = policy.job_days {
            // Jobs nothing else keeps: the jobs API's own (chat, embed) and
            // the inbox's classify and reply jobs no item points at any
            // more. Content runs go with their activity; document ingests
            // with their document; follow-up paragraphs with their lead.
            let r = sqlx::query(sql(&[
                "DELETE FROM jobs WHERE id IN (SELECT j.id FROM jobs j WHERE j.tenant_id = $1 \
                 AND j.activity_id IS NULL AND j.kind IN ('chat', 'embed', 'classify', 'reply') \
                 AND j.status IN ('succeeded', 'failed', 'cancelled') AND j.finished_at < $2 \
                 AND NOT EXISTS (SELECT 1 FROM inbox_items i WHERE i.classify_job_id = j.id) \
                 AND NOT EXISTS (SELECT 1 FROM inbox_items i WHERE i.reply_job_id = j.id) \
                 AND NOT EXISTS (SELECT 1 FROM sequence_paragraphs s WHERE s.job_id = j.id) \
                 ORDER BY j.id LIMIT ",
                DELETE_PER_RUN,
                ")",
            ]))
            .bind(tenant_id)
            .bind(cutoff(days))
            .execute(&mut *tx)
            .await?;
            report.jobs_deleted = DB::rows_affected(&r);
        }
        let details = serde_json::json!({ "day": day, "as_of": as_of, "policy": policy, "report": report });
        sqlx::query("UPDATE retention_runs SET report = $3 WHERE tenant_id = $1 AND day = $2")
            .bind(tenant_id)
            .bind(day)
            .bind(serde_json::to_string(&report).unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        let audit = NewAuditEvent { details, ..audit.clone() };
        Self::insert_audit(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(Some(report))
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> Uuid: Encode<'t, DB> + Type<DB>,
    for<'t> String: Encode<'t, DB> + Type<DB>,
    for<'t> Timestamp: Encode<'t, DB> + Type<DB>,
{
    /// Anonymises one lead, the one way it is done (retention and
    /// erasure): its notes and form submissions are deleted, its running
    /// follow-ups stopped, and its name, address, phone and consent text
    /// replaced; status, score and source stay for reports. The address
    /// becomes one that names the lead and can receive nothing (`.invalid`,
    /// RFC 2606), unique like the one it replaces.
    async fn anonymise_lead(conn: &mut DB::Connection, id: Uuid, now: Timestamp) -> Result<()> {
        // E-mail to the contact (follow-ups sent, drafted or due) names them
        // and quotes them: gone too, except a message being handed to the
        // mail server this moment (its outcome is recorded on the row).
        sqlx::query(
            "DELETE FROM email_outbox WHERE state <> 'sending' AND EXISTS (SELECT 1 FROM leads l \
             WHERE l.id = $1 AND l.tenant_id = email_outbox.tenant_id \
             AND l.email_normalized = LOWER(email_outbox.to_address))",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM lead_events WHERE lead_id = $1").bind(id).execute(&mut *conn).await?;
        sqlx::query(
            "UPDATE lead_enrollments SET state = 'stopped', stop_reason = 'anonymised', next_at = NULL, \
             updated_at = $2 WHERE lead_id = $1 AND state = 'active'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let address = format!("anonymised-{}@anonymised.invalid", id.simple());
        sqlx::query(
            "UPDATE leads SET name = 'Anonymised contact', email = $2, email_normalized = $2, phone = '', \
             consent_text = NULL, anonymised_at = $3, updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(address)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
