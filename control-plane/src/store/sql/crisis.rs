//! [`CrisisStore`] for [`SqlStore`]: counting a scope's items in windows,
//! and crisis alerts (at most one open per scope, by a unique index).

use super::*;

use crate::store::{CrisisAlert, CrisisScope, CrisisStore, NewNotice, NewWebhookEvent};

/// The scope's items (`i`): an account's own (not what its listening
/// queries found), or a query's. Binds: $1 account, $2 query.
const IN_SCOPE: &str = "i.account_id = $1 AND (($2 IS NULL AND i.query_id IS NULL) OR i.query_id = $2)";

type AlertRow = (
    Uuid,
    Uuid,
    Uuid,
    String,
    Option<Uuid>,
    Timestamp,
    Option<Timestamp>,
    i64,
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
);

const ALERT_SELECT: &str = "SELECT c.id, c.tenant_id, c.account_id, a.handle, c.query_id, c.opened_at, c.closed_at, \
     c.negatives, c.total, c.peak, c.baseline_mean, c.baseline_sd, c.z, c.item_ids \
     FROM crisis_alerts c JOIN social_accounts a ON a.id = c.account_id";

fn alert_of(r: AlertRow) -> CrisisAlert {
    CrisisAlert {
        id: r.0,
        tenant_id: r.1,
        account_id: r.2,
        handle: r.3,
        query_id: r.4,
        opened_at: r.5,
        closed_at: r.6,
        negatives: r.7,
        total: r.8,
        peak: r.9,
        baseline_mean: r.10,
        baseline_sd: r.11,
        z: r.12,
        item_ids: serde_json::from_str(&r.13).unwrap_or_default(),
    }
}

#[async_trait]
impl<DB> CrisisStore for SqlStore<DB>
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
    async fn crisis_scopes(&self) -> Result<Vec<CrisisScope>> {
        type Row = (Uuid, Uuid, String, Option<Uuid>, Option<String>, String, Option<i64>, Option<i64>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT a.tenant_id, a.id, a.handle, NULL, NULL, a.posting_time_zone, s.crisis_min_count, \
             s.crisis_z_hundredths FROM social_accounts a LEFT JOIN inbox_settings s ON s.tenant_id = a.tenant_id \
             WHERE a.disconnected_at IS NULL \
             UNION ALL \
             SELECT a.tenant_id, a.id, a.handle, q.id, q.query, a.posting_time_zone, s.crisis_min_count, \
             s.crisis_z_hundredths FROM listening_queries q JOIN social_accounts a ON a.id = q.account_id \
             LEFT JOIN inbox_settings s ON s.tenant_id = a.tenant_id WHERE a.disconnected_at IS NULL",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(tenant_id, account_id, handle, query_id, query, time_zone, min_count, z)| CrisisScope {
                tenant_id,
                account_id,
                handle,
                query_id,
                query,
                time_zone,
                min_count: min_count.unwrap_or(5),
                z: z.unwrap_or(300),
            })
            .collect())
    }

    async fn window_counts(
        &self,
        scope: &CrisisScope,
        windows: &[(Timestamp, Timestamp)],
    ) -> Result<Vec<(i64, i64)>> {
        let sql = format!(
            "SELECT COALESCE(SUM(CASE WHEN i.sentiment = 'negative' THEN 1 ELSE 0 END), 0), COUNT(*) \
             FROM inbox_items i WHERE {IN_SCOPE} AND i.classified_at IS NOT NULL \
             AND i.posted_at >= $3 AND i.posted_at < $4"
        );
        let mut out = Vec::with_capacity(windows.len());
        for (from, to) in windows {
            let (negatives, total): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
                .bind(scope.account_id)
                .bind(scope.query_id)
                .bind(*from)
                .bind(*to)
                .fetch_one(&self.read)
                .await?;
            out.push((negatives, total));
        }
        Ok(out)
    }

    async fn negative_items(
        &self,
        scope: &CrisisScope,
        from: Timestamp,
        to: Timestamp,
        limit: i64,
    ) -> Result<Vec<Uuid>> {
        let sql = format!(
            "SELECT i.id FROM inbox_items i WHERE {IN_SCOPE} AND i.sentiment = 'negative' \
             AND i.posted_at >= $3 AND i.posted_at < $4 ORDER BY i.posted_at DESC, i.id DESC LIMIT $5"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(scope.account_id)
            .bind(scope.query_id)
            .bind(from)
            .bind(to)
            .bind(limit)
            .fetch_all(&self.read)
            .await?)
    }

    async fn open_crisis(&self, scope: &CrisisScope) -> Result<Option<CrisisAlert>> {
        let row: Option<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{ALERT_SELECT} WHERE c.scope = $1 AND c.closed_at IS NULL"
        )))
        .bind(scope.key())
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(alert_of))
    }

    async fn raise_crisis(
        &self,
        scope: &CrisisScope,
        alert: &CrisisAlert,
        notice: &NewNotice,
        event: &NewWebhookEvent,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "INSERT INTO crisis_alerts (id, tenant_id, account_id, query_id, scope, opened_at, negatives, total, \
             peak, baseline_mean, baseline_sd, z, item_ids, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $6) \
             ON CONFLICT (scope) WHERE closed_at IS NULL DO NOTHING",
        )
        .bind(alert.id)
        .bind(alert.tenant_id)
        .bind(alert.account_id)
        .bind(alert.query_id)
        .bind(scope.key())
        .bind(alert.opened_at)
        .bind(alert.negatives)
        .bind(alert.total)
        .bind(alert.peak)
        .bind(alert.baseline_mean)
        .bind(alert.baseline_sd)
        .bind(alert.z)
        .bind(serde_json::to_string(&alert.item_ids).unwrap_or_else(|_| "[]".into()))
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) != 1 {
            return Ok(false);
        }
        Self::insert_notices(&mut tx, std::slice::from_ref(notice), alert.opened_at).await?;
        Self::insert_webhook_events(&mut tx, std::slice::from_ref(event), alert.opened_at).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn update_crisis(&self, id: Uuid, peak: i64, item_ids: &[Uuid], now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE crisis_alerts SET peak = $2, item_ids = $3, updated_at = $4 WHERE id = $1")
            .bind(id)
            .bind(peak)
            .bind(serde_json::to_string(item_ids).unwrap_or_else(|_| "[]".into()))
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn close_crisis(&self, alert: &CrisisAlert, event: &NewWebhookEvent, now: Timestamp) -> Result<()> {
        let mut tx = self.write.begin().await?;
        let r = sqlx::query(
            "UPDATE crisis_alerts SET closed_at = $2, updated_at = $2 WHERE id = $1 AND closed_at IS NULL",
        )
        .bind(alert.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&r) == 1 {
            Self::insert_webhook_events(&mut tx, std::slice::from_ref(event), now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn crisis_alerts(&self, tenant_id: Uuid, open_only: bool, limit: i64) -> Result<Vec<CrisisAlert>> {
        let rows: Vec<AlertRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{ALERT_SELECT} WHERE c.tenant_id = $1 AND ($2 = FALSE OR c.closed_at IS NULL) \
             ORDER BY c.opened_at DESC, c.id DESC LIMIT $3"
        )))
        .bind(tenant_id)
        .bind(open_only)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(alert_of).collect())
    }
}
