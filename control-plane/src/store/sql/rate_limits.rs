//! [`RateStore`] for [`SqlStore`]: one upsert per counted request.

use super::*;

use crate::store::RateStore;

#[async_trait]
impl<DB> RateStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'t> String: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    for<'t> &'t str: Encode<'t, DB> + Type<DB>,
    for<'t> i64: Encode<'t, DB> + Decode<'t, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn count_request(&self, key: &str, window_start: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO rate_windows (key, window_start, count) VALUES ($1, $2, 1) \
             ON CONFLICT (key, window_start) DO UPDATE SET count = rate_windows.count + 1 RETURNING count",
        )
        .bind(key)
        .bind(window_start)
        .fetch_one(&self.write)
        .await?)
    }

    async fn prune_rate_windows(&self, before: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM rate_windows WHERE window_start < $1")
            .bind(before)
            .execute(&self.write)
            .await?;
        Ok(DB::rows_affected(&r))
    }
}
