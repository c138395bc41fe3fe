//! The PostgreSQL backend: the production database and the way to run
//! several control-plane replicas against one state.

use std::str::FromStr;
use std::time::Duration;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgConnectOptions, PgPoolOptions, PgTypeInfo, PgValueRef, Postgres};
use sqlx::{Decode, Encode, Type};
use time::OffsetDateTime;

use super::sql::{Dialect, SqlStore};
use super::{Backend, ConnectOptions, DatabaseUrl, Result, StoreError};
use crate::domain::Timestamp;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Dialect for Postgres {
    const BACKEND: Backend = Backend::Postgres;
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn postgres_pool(pool: &sqlx::Pool<Self>) -> Option<sqlx::PgPool> {
        Some(pool.clone())
    }
}

pub(super) async fn open(url: &DatabaseUrl, options: &ConnectOptions) -> Result<SqlStore<Postgres>> {
    let mut connect =
        PgConnectOptions::from_str(url.expose()).map_err(|e| StoreError::Config(format!("{url}: {e}")))?;
    if let Some(schema) = &options.pg_schema {
        if !schema.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::Config(format!("invalid schema name {schema:?}")));
        }
        // The schema name was checked to be a plain identifier above.
        let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
        let admin = PgPoolOptions::new().max_connections(1).connect_with(connect.clone()).await?;
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await?;
        admin.close().await;
        connect = connect.options([("search_path", schema.as_str())]);
    }
    let pool = PgPoolOptions::new()
        .max_connections(options.max_connections.unwrap_or(16))
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect)
        .await?;
    Ok(SqlStore::new(pool.clone(), pool))
}

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Timestamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode(self.as_datetime(), buf)
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Timestamp::from_datetime(<OffsetDateTime as Decode<Postgres>>::decode(value)?))
    }
}
