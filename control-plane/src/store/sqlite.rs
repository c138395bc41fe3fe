//! The embedded SQLite backend: one file in the data directory, nothing to
//! install.
//!
//! SQLite allows one writer at a time. Rather than let concurrent write
//! transactions fail with `SQLITE_BUSY` when one upgrades a read lock, all
//! writes go through a pool of exactly one connection, so write transactions
//! queue in-process and are serialisable by construction. Reads use a
//! separate read-only pool and, thanks to WAL, never wait for the writer.

use std::str::FromStr;
use std::time::Duration;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{
    SqliteArgumentsBuffer, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    SqliteTypeInfo, SqliteValueRef,
};
use sqlx::{Decode, Encode, Sqlite, Type};

use super::sql::{Dialect, SqlStore};
use super::{Backend, ConnectOptions, DatabaseUrl, Result, StoreError};
use crate::domain::Timestamp;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

impl Dialect for Sqlite {
    const BACKEND: Backend = Backend::Sqlite;
    const FOR_UPDATE: &'static str = "";

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    fn postgres_pool(_: &sqlx::Pool<Self>) -> Option<sqlx::PgPool> {
        None
    }
}

pub(super) async fn open(url: &DatabaseUrl, options: &ConnectOptions) -> Result<SqlStore<Sqlite>> {
    let base = SqliteConnectOptions::from_str(url.expose())
        .map_err(|e| StoreError::Config(format!("{url}: {e}")))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across application crashes in WAL mode; only an
        // OS crash or power loss can roll back the last transactions.
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // What is deleted is overwritten with zeros, not left in free pages
        // of the file: an erasure or a retention run leaves nothing behind.
        .pragma("secure_delete", "ON")
        .busy_timeout(Duration::from_secs(10));

    if let Some(parent) = base.get_filename().parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Config(format!("cannot create the directory {}: {e}", parent.display()))
        })?;
    }
    create_private(base.get_filename())?;

    let write = SqlitePoolOptions::new().max_connections(1).connect_with(base.clone()).await?;
    let read = SqlitePoolOptions::new()
        .max_connections(options.max_connections.unwrap_or(8))
        .connect_with(base.read_only(true))
        .await?;
    Ok(SqlStore::new(write, read))
}

/// Creates the database file readable by its owner only (0600), whatever
/// the directory's mode or the process's umask: it holds every tenant's
/// data. SQLite gives its `-wal` and `-shm` files the database file's mode.
/// An existing file is left as the operator set it.
fn create_private(path: &std::path::Path) -> Result<()> {
    if path.as_os_str().is_empty() || path.to_str() == Some(":memory:") || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => {}
        // Another process created it first: theirs stands.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StoreError::Config(format!("cannot create {}: {e}", path.display()))),
    }
    #[cfg(unix)]
    {
        // The umask may have taken bits off, never added them; set exactly.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| StoreError::Config(format!("cannot restrict {}: {e}", path.display())))?;
    }
    Ok(())
}

// Timestamps are stored as fixed-width RFC 3339 text in UTC so that SQL
// comparisons and ORDER BY on the column are chronological.
impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <str as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Sqlite>::encode(self.to_rfc3339_fixed(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Timestamp::parse_rfc3339(text)?)
    }
}
