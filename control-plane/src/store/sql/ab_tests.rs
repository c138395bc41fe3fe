//! [`AbTestStore`] for [`SqlStore`]: tests, their variants and the posts
//! they are written with.

use super::*;
use crate::store::{AbTest, AbTestStore, NewAbTest};

#[derive(FromRow)]
struct TestRow {
    id: Uuid,
    tenant_id: Uuid,
    name: String,
    window_hours: i64,
    ends_at: Timestamp,
    status: String,
    decision: Option<String>,
    created_at: Timestamp,
    decided_at: Option<Timestamp>,
}

const TEST_COLUMNS: &str = "SELECT id, tenant_id, name, window_hours, ends_at, status, decision, created_at, decided_at FROM ab_tests";

impl<DB> SqlStore<DB>
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
    /// The tests of `rows` with their variants (one query for all).
    async fn with_variants(&self, rows: Vec<TestRow>) -> Result<Vec<(Uuid, AbTest)>> {
        let mut all: Vec<(Uuid, String, Uuid)> = Vec::new();
        if !rows.is_empty() {
            let query = format!(
                "SELECT test_id, label, post_id FROM ab_test_variants WHERE test_id IN ({}) ORDER BY test_id, label",
                placeholders(1, rows.len())
            );
            let mut select = sqlx::query_as(sqlx::AssertSqlSafe(query));
            for row in &rows {
                select = select.bind(row.id);
            }
            all = select.fetch_all(&self.read).await?;
        }
        Ok(rows
            .into_iter()
            .map(|row| {
                let variants = all
                    .iter()
                    .filter(|(test, _, _)| *test == row.id)
                    .map(|(_, label, post)| (label.clone(), *post))
                    .collect();
                (
                    row.tenant_id,
                    AbTest {
                        id: row.id,
                        name: row.name,
                        window_hours: row.window_hours,
                        ends_at: row.ends_at,
                        status: row.status,
                        decision: row.decision,
                        created_at: row.created_at,
                        decided_at: row.decided_at,
                        variants,
                    },
                )
            })
            .collect())
    }
}

#[async_trait]
impl<DB> AbTestStore for SqlStore<DB>
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
    async fn create_ab_test(
        &self,
        t: &NewAbTest,
        audit: &NewAuditEvent,
        post_audits: &[NewAuditEvent],
    ) -> Result<()> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        sqlx::query(
            "INSERT INTO ab_tests (id, tenant_id, name, window_hours, ends_at, status, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'running', $6, $7)",
        )
        .bind(t.id)
        .bind(t.tenant_id)
        .bind(t.name.clone())
        .bind(t.window_hours)
        .bind(t.ends_at)
        .bind(t.created_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for (label, post) in &t.variants {
            if Self::fetch_account(&mut tx, t.tenant_id, post.account_id).await?.is_none() {
                return Err(StoreError::Invalid {
                    field: "variants.account_id",
                    message: "no connected account of this organisation has this id".into(),
                });
            }
            Self::insert_post(&mut tx, post, now).await?;
            sqlx::query(
                "INSERT INTO ab_test_variants (test_id, tenant_id, label, post_id) VALUES ($1, $2, $3, $4)",
            )
            .bind(t.id)
            .bind(t.tenant_id)
            .bind(label.clone())
            .bind(post.id)
            .execute(&mut *tx)
            .await?;
        }
        for a in post_audits {
            Self::insert_audit(&mut tx, a).await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ab_tests(&self, tenant_id: Uuid, limit: i64) -> Result<Vec<AbTest>> {
        let rows: Vec<TestRow> = sqlx::query_as(sql(&[
            TEST_COLUMNS,
            " WHERE tenant_id = $1 ORDER BY created_at DESC, id LIMIT $2",
        ]))
        .bind(tenant_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(self.with_variants(rows).await?.into_iter().map(|(_, t)| t).collect())
    }

    async fn ab_test(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<AbTest>> {
        let rows: Vec<TestRow> = sqlx::query_as(sql(&[TEST_COLUMNS, " WHERE tenant_id = $1 AND id = $2"]))
            .bind(tenant_id)
            .bind(id)
            .fetch_all(&self.read)
            .await?;
        Ok(self.with_variants(rows).await?.into_iter().next().map(|(_, t)| t))
    }

    async fn ab_test_of_post(&self, tenant_id: Uuid, post_id: Uuid) -> Result<Option<Uuid>> {
        Ok(sqlx::query_scalar("SELECT test_id FROM ab_test_variants WHERE tenant_id = $1 AND post_id = $2")
            .bind(tenant_id)
            .bind(post_id)
            .fetch_optional(&self.read)
            .await?)
    }

    async fn ab_tests_due(&self, now: Timestamp, limit: i64) -> Result<Vec<(Uuid, AbTest)>> {
        let rows: Vec<TestRow> = sqlx::query_as(sql(&[
            TEST_COLUMNS,
            " WHERE status = 'running' AND ends_at <= $1 ORDER BY ends_at, id LIMIT $2",
        ]))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        self.with_variants(rows).await
    }

    async fn decide_ab_test(&self, id: Uuid, decision: &str, audit: &NewAuditEvent) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE ab_tests SET status = 'decided', decision = $2, decided_at = $3 \
             WHERE id = $1 AND status = 'running'",
        )
        .bind(id)
        .bind(decision)
        .bind(audit.occurred_at)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(false);
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }
}
