//! [`PeopleStore`] for [`SqlStore`]: a person's comments, edits and audit
//! entries for their export, and their erasure in one transaction.

use super::*;

use crate::store::{AuthoredComment, AuthoredVersion, Erasure, ErasureCounts, OwnAuditEntry, PeopleStore};

#[async_trait]
impl<DB> PeopleStore for SqlStore<DB>
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
    async fn authored_comments(&self, user_id: Uuid, limit: i64) -> Result<Vec<AuthoredComment>> {
        let rows: Vec<(Uuid, Uuid, Option<Uuid>, Option<Uuid>, String, Timestamp, Option<Timestamp>)> =
            sqlx::query_as(
                "SELECT id, tenant_id, activity_id, post_id, body, created_at, deleted_at FROM comments \
                 WHERE author_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(user_id)
            .bind(limit)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, tenant_id, activity_id, post_id, body, created_at, deleted_at)| AuthoredComment {
                id,
                tenant_id,
                activity_id,
                post_id,
                body,
                created_at,
                deleted: deleted_at.is_some(),
            })
            .collect())
    }

    async fn authored_versions(&self, user_id: Uuid, limit: i64) -> Result<Vec<AuthoredVersion>> {
        let rows: Vec<(Uuid, i64, Timestamp)> = sqlx::query_as(
            "SELECT activity_id, number, created_at FROM activity_versions WHERE author_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(activity_id, number, created_at)| AuthoredVersion { activity_id, number, created_at })
            .collect())
    }

    async fn own_audit_entries(&self, user_id: Uuid, limit: i64) -> Result<Vec<OwnAuditEntry>> {
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            Uuid,
            Timestamp,
            Option<Uuid>,
            String,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            String,
        )> = sqlx::query_as(
            "SELECT id, occurred_at, tenant_id, action, outcome, client_ip, resource_type, resource_id, details \
             FROM audit_events WHERE actor_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    id,
                    occurred_at,
                    tenant_id,
                    action,
                    outcome,
                    client_ip,
                    resource_type,
                    resource_id,
                    details,
                )| {
                    OwnAuditEntry {
                        id,
                        occurred_at,
                        tenant_id,
                        action,
                        outcome,
                        client_ip,
                        resource_type,
                        resource_id,
                        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
                    }
                },
            )
            .collect())
    }

    async fn erase_user(&self, e: &Erasure, audit: &NewAuditEvent) -> Result<ErasureCounts> {
        let mut tx = self.write.begin().await?;
        // An organisation is never left without an owner: every tenant of
        // the person is locked (in one order, so two erasures cannot
        // deadlock), then the owners are counted.
        let tenants: Vec<Uuid> =
            sqlx::query_scalar("SELECT tenant_id FROM memberships WHERE user_id = $1 ORDER BY tenant_id")
                .bind(e.user_id)
                .fetch_all(&mut *tx)
                .await?;
        for tenant_id in &tenants {
            Self::lock_tenant(&mut tx, *tenant_id).await?;
        }
        let owned: Vec<Uuid> =
            sqlx::query_scalar("SELECT tenant_id FROM memberships WHERE user_id = $1 AND role = 'owner'")
                .bind(e.user_id)
                .fetch_all(&mut *tx)
                .await?;
        for tenant_id in owned {
            Self::ensure_other_owner(&mut tx, tenant_id, e.user_id).await?;
        }
        // The exception to the audit log's append-only rule holds while
        // this row is active: in this transaction only.
        sqlx::query(
            "INSERT INTO user_erasures (id, user_id, pseudonym, erased_at, active) VALUES ($1, $2, $3, $4, TRUE)",
        )
        .bind(e.id)
        .bind(e.user_id)
        .bind(e.pseudonym.clone())
        .bind(e.now)
        .execute(&mut *tx)
        .await?;
        let mut counts = ErasureCounts::default();
        // The address as a JSON string (quoted), so that erasing ann@x.com
        // leaves joann@x.com and ann@x.com.au alone.
        let quoted = |text: &str| format!("\"{text}\"");
        let (email, normalized, pseudonym) =
            (quoted(&e.email), quoted(&e.email_normalized), quoted(&e.pseudonym));
        let scrub = "REPLACE(REPLACE(details, $2, $4), $3, $4)";
        let own = sqlx::query(sql(&[
            "UPDATE audit_events SET client_ip = NULL, details = ",
            scrub,
            " WHERE actor_id = $1",
        ]))
        .bind(e.user_id)
        .bind(email.clone())
        .bind(normalized.clone())
        .bind(pseudonym.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE audit_events SET actor_label = $2 WHERE actor_id = $1")
            .bind(e.user_id)
            .bind(e.pseudonym.clone())
            .execute(&mut *tx)
            .await?;
        // Others' entries naming the address (an invitation sent to it, a
        // refused sign-in with it).
        let others = sqlx::query(sql(&[
            "UPDATE audit_events SET details = ",
            scrub,
            " WHERE (actor_id IS NULL OR actor_id <> $1) \
             AND (details LIKE $5 ESCAPE '\\' OR details LIKE $6 ESCAPE '\\')",
        ]))
        .bind(e.user_id)
        .bind(email.clone())
        .bind(normalized.clone())
        .bind(pseudonym.clone())
        .bind(like_pattern(&email))
        .bind(like_pattern(&normalized))
        .execute(&mut *tx)
        .await?;
        let labels = sqlx::query(
            "UPDATE audit_events SET actor_label = $3, client_ip = NULL WHERE (actor_id IS NULL OR actor_id <> $4) \
             AND (actor_label = $1 OR actor_label = $2)",
        )
        .bind(e.email.clone())
        .bind(e.email_normalized.clone())
        .bind(e.pseudonym.clone())
        .bind(e.user_id)
        .execute(&mut *tx)
        .await?;
        counts.audit_entries_pseudonymised =
            DB::rows_affected(&own) + DB::rows_affected(&others).max(DB::rows_affected(&labels));
        let hooks = sqlx::query(
            "UPDATE webhook_events SET payload = REPLACE(REPLACE(payload, $1, $3), $2, $3) \
             WHERE payload LIKE $4 ESCAPE '\\' OR payload LIKE $5 ESCAPE '\\'",
        )
        .bind(email.clone())
        .bind(normalized.clone())
        .bind(pseudonym.clone())
        .bind(like_pattern(&email))
        .bind(like_pattern(&normalized))
        .execute(&mut *tx)
        .await?;
        counts.webhook_payloads_scrubbed = DB::rows_affected(&hooks);
        let keys =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE created_by = $1 AND revoked_at IS NULL")
                .bind(e.user_id)
                .bind(e.now)
                .execute(&mut *tx)
                .await?;
        counts.api_keys_revoked = DB::rows_affected(&keys);
        let invitations = sqlx::query("DELETE FROM invitations WHERE email_normalized = $1")
            .bind(e.email_normalized.clone())
            .execute(&mut *tx)
            .await?;
        counts.invitations_deleted = DB::rows_affected(&invitations);
        // Except a message being handed to the mail server this moment
        // (its row records the outcome); the account's own rows go with it.
        let mail = sqlx::query(
            "DELETE FROM email_outbox WHERE (user_id = $1 OR LOWER(to_address) = $2) AND state <> 'sending'",
        )
        .bind(e.user_id)
        .bind(e.email_normalized.clone())
        .execute(&mut *tx)
        .await?;
        counts.emails_deleted = DB::rows_affected(&mail);
        let versions = sqlx::query("UPDATE activity_versions SET author_name = $2 WHERE author_id = $1")
            .bind(e.user_id)
            .bind(e.pseudonym.clone())
            .execute(&mut *tx)
            .await?;
        counts.content_versions_relabelled = DB::rows_affected(&versions);
        sqlx::query(
            "UPDATE comments SET author_email = NULL WHERE author_id = $1 OR LOWER(author_email) = $2",
        )
        .bind(e.user_id)
        .bind(e.email_normalized.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE review_decisions SET reviewer_email = $2 WHERE LOWER(reviewer_email) = $1")
            .bind(e.email_normalized.clone())
            .bind(e.pseudonym.clone())
            .execute(&mut *tx)
            .await?;
        let memberships = sqlx::query("DELETE FROM memberships WHERE user_id = $1")
            .bind(e.user_id)
            .execute(&mut *tx)
            .await?;
        counts.memberships_ended = DB::rows_affected(&memberships);
        let gone = sqlx::query("DELETE FROM users WHERE id = $1").bind(e.user_id).execute(&mut *tx).await?;
        if DB::rows_affected(&gone) == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE user_erasures SET active = FALSE WHERE id = $1")
            .bind(e.id)
            .execute(&mut *tx)
            .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(counts)
    }
}
