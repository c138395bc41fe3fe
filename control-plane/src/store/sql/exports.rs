//! [`ExportStore`] for [`SqlStore`]: export records with their lease, and
//! the tenant's dump (tables found in the schema, so a new table with a
//! `tenant_id` is exported without anyone remembering to add it).

use super::*;

use crate::store::{DumpChunk, ExportReady, ExportState, ExportStore, TenantExport};

/// Tables with a `tenant_id` that are not exported: a sign-in's or
/// connection's passing state, and the export and erasure records.
const SKIPPED_TABLES: [&str; 5] =
    ["sso_logins", "social_oauth_states", "tenant_exports", "tenant_erasures", "rate_windows"];
/// Columns never exported: sealed values and secrets, and what verifies
/// them (a column's name containing one of these; a secret's `_hint`, the
/// few characters shown to tell secrets apart, is kept).
const SECRET_COLUMN_PARTS: [&str; 11] = [
    "ciphertext",
    "nonce",
    "hash",
    "pkce",
    "password",
    "verifier",
    "sealed",
    "secret",
    "access_token",
    "refresh_token",
    "private",
];
/// Tables without a `tenant_id`, exported through their parent:
/// (table, column naming the parent, parent table).
const CHILD_TABLES: [(&str, &str, &str); 8] = [
    ("activity_versions", "activity_id", "activities"),
    ("comment_mentions", "comment_id", "comments"),
    ("job_events", "job_id", "jobs"),
    ("lead_properties", "lead_id", "leads"),
    ("review_steps", "workflow_id", "review_workflows"),
    ("sequence_paragraphs", "enrollment_id", "lead_enrollments"),
    ("sequence_sends", "enrollment_id", "lead_enrollments"),
    ("webhook_attempts", "delivery_id", "webhook_deliveries"),
];

/// Whether a column holds a secret (and is left out).
fn secret(column: &str) -> bool {
    !column.ends_with("_hint") && SECRET_COLUMN_PARTS.iter().any(|part| column.contains(part))
}
/// Rows per page of the dump.
const DUMP_PAGE: i64 = 500;

const EXPORT_COLUMNS: &str = "id, tenant_id, requested_by, state, progress, step, error, size_bytes, sha256, \
     created_at, finished_at, expires_at, downloaded_at, file_key";

type ExportRow = (
    Uuid,
    Uuid,
    Option<Uuid>,
    String,
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Timestamp,
    Option<Timestamp>,
    Option<Timestamp>,
    Option<Timestamp>,
    Option<String>,
);

fn export(row: ExportRow) -> Result<TenantExport> {
    let (
        id,
        tenant_id,
        requested_by,
        state,
        progress,
        step,
        error,
        size_bytes,
        sha256,
        created_at,
        finished_at,
        expires_at,
        downloaded_at,
        file_key,
    ) = row;
    Ok(TenantExport {
        id,
        tenant_id,
        requested_by,
        state: state
            .parse::<ExportState>()
            .map_err(|_| StoreError::Corrupt(format!("export state {state}")))?,
        progress,
        step,
        error,
        size_bytes,
        sha256,
        created_at,
        finished_at,
        expires_at,
        downloaded_at,
        file_key,
    })
}

/// A quoted SQL identifier (names come from the schema itself).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl<DB> ExportStore for SqlStore<DB>
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
    async fn create_export(&self, e: &TenantExport, audit: &NewAuditEvent) -> Result<()> {
        let mut tx = self.write.begin().await?;
        Self::lock_tenant(&mut tx, e.tenant_id).await?;
        let busy: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tenant_exports WHERE tenant_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(e.tenant_id)
        .fetch_one(&mut *tx)
        .await?;
        if busy > 0 {
            return Err(StoreError::Conflict {
                code: "export_in_progress",
                message: "an export of this organisation is already being prepared; wait for it".into(),
            });
        }
        let state: &'static str = e.state.into();
        sqlx::query(
            "INSERT INTO tenant_exports (id, tenant_id, requested_by, state, progress, step, created_at, stored) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, FALSE)",
        )
        .bind(e.id)
        .bind(e.tenant_id)
        .bind(e.requested_by)
        .bind(state)
        .bind(e.step.clone())
        .bind(e.created_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn tenant_export(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<TenantExport>> {
        let row: Option<ExportRow> = sqlx::query_as(sql(&[
            "SELECT ",
            EXPORT_COLUMNS,
            " FROM tenant_exports WHERE tenant_id = $1 AND id = $2",
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.map(export).transpose()
    }

    async fn tenant_exports(&self, tenant_id: Uuid) -> Result<Vec<TenantExport>> {
        let rows: Vec<ExportRow> = sqlx::query_as(sql(&[
            "SELECT ",
            EXPORT_COLUMNS,
            " FROM tenant_exports WHERE tenant_id = $1 ORDER BY id DESC LIMIT 20",
        ]))
        .bind(tenant_id)
        .fetch_all(&self.read)
        .await?;
        rows.into_iter().map(export).collect()
    }

    async fn claim_export(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<TenantExport>> {
        let mut tx = self.write.begin().await?;
        let id: Option<Uuid> = sqlx::query_scalar(sql(&[
            "SELECT id FROM tenant_exports WHERE state = 'queued' OR (state = 'running' AND lease_until < $1) \
             ORDER BY id LIMIT 1",
            DB::FOR_UPDATE,
        ]))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else { return Ok(None) };
        let row: ExportRow = sqlx::query_as(sql(&[
            "UPDATE tenant_exports SET state = 'running', progress = 0, lease_owner = $2, lease_until = $3 \
             WHERE id = $1 RETURNING ",
            EXPORT_COLUMNS,
        ]))
        .bind(id)
        .bind(owner)
        .bind(lease_until)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        export(row).map(Some)
    }

    async fn export_progress(
        &self,
        id: Uuid,
        owner: &str,
        progress: i64,
        step: &str,
        lease_until: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tenant_exports SET progress = $3, step = $4, lease_until = $5 \
             WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(owner)
        .bind(progress)
        .bind(step)
        .bind(lease_until)
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn export_ready(&self, id: Uuid, owner: &str, r: &ExportReady) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE tenant_exports SET state = 'ready', progress = 100, step = 'ready', size_bytes = $3, \
             sha256 = $4, finished_at = $5, expires_at = $6, file_key = $7, stored = TRUE, lease_owner = NULL, \
             lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(owner)
        .bind(r.size_bytes)
        .bind(r.sha256.clone())
        .bind(r.now)
        .bind(r.expires_at)
        .bind(r.file_key.clone())
        .execute(&self.write)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn export_failed(&self, id: Uuid, owner: &str, error: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "UPDATE tenant_exports SET state = 'failed', error = $3, finished_at = $4, \
             lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(owner)
        .bind(error)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn take_export_download(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        user_id: Uuid,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<TenantExport> {
        let mut tx = self.write.begin().await?;
        let row: Option<ExportRow> = sqlx::query_as(sql(&[
            "SELECT ",
            EXPORT_COLUMNS,
            " FROM tenant_exports WHERE tenant_id = $1 AND id = $2 AND requested_by = $3",
            DB::FOR_UPDATE,
        ]))
        .bind(tenant_id)
        .bind(id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let found = row.map(export).transpose()?.ok_or(StoreError::NotFound)?;
        let refuse =
            |code: &'static str, message: &str| StoreError::Conflict { code, message: message.into() };
        match found.state {
            ExportState::Ready if found.expires_at.is_some_and(|at| at > now) => {}
            ExportState::Ready | ExportState::Expired => {
                return Err(refuse("expired", "this export expired; prepare a new one"));
            }
            ExportState::Downloaded => {
                return Err(refuse(
                    "already_downloaded",
                    "this export was downloaded already; prepare a new one",
                ));
            }
            ExportState::Queued | ExportState::Running | ExportState::Failed => {
                return Err(refuse("not_ready", "this export is not ready"));
            }
        }
        let row: ExportRow = sqlx::query_as(sql(&[
            "UPDATE tenant_exports SET state = 'downloaded', downloaded_at = $2 WHERE id = $1 RETURNING ",
            EXPORT_COLUMNS,
        ]))
        .bind(id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        export(row)
    }

    async fn exports_to_delete(&self, now: Timestamp) -> Result<Vec<(Uuid, String)>> {
        sqlx::query(
            "UPDATE tenant_exports SET state = 'expired' WHERE state = 'ready' \
             AND (expires_at <= $1 OR requested_by IS NULL)",
        )
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(sqlx::query_as(
            "SELECT id, file_key FROM tenant_exports WHERE stored AND file_key IS NOT NULL \
             AND state IN ('downloaded', 'expired') ORDER BY id LIMIT 100",
        )
        .fetch_all(&self.read)
        .await?)
    }

    async fn export_file_deleted(&self, id: Uuid) -> Result<()> {
        sqlx::query("UPDATE tenant_exports SET stored = FALSE WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn dump_tenant(&self, tenant_id: Uuid, out: tokio::sync::mpsc::Sender<DumpChunk>) -> Result<()> {
        let postgres = DB::BACKEND == Backend::Postgres;
        // One snapshot for every table.
        let begin = if postgres { "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" } else { "BEGIN" };
        let mut tx = self.read.begin_with(begin).await?;
        let schema = if postgres {
            "SELECT table_name::text, column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        } else {
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p \
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%' \
             ORDER BY m.name, p.cid"
        };
        let columns: Vec<(String, String)> = sqlx::query_as(schema).fetch_all(&mut *tx).await?;
        let mut tables: Vec<(String, Vec<String>)> = Vec::new();
        for (table, column) in columns {
            match tables.last_mut() {
                Some((name, cols)) if *name == table => cols.push(column),
                _ => tables.push((table, vec![column])),
            }
        }
        let exported: Vec<(String, Vec<String>, String)> = tables
            .into_iter()
            .filter_map(|(table, cols)| {
                let filter = if table == "tenants" {
                    "id = $1".to_owned()
                } else if cols.iter().any(|c| c == "tenant_id") {
                    (!SKIPPED_TABLES.contains(&table.as_str())).then(|| "tenant_id = $1".to_owned())?
                } else {
                    CHILD_TABLES.iter().find(|(t, _, _)| *t == table).map(|(_, column, parent)| {
                        format!(
                            "{} IN (SELECT id FROM {} WHERE tenant_id = $1)",
                            ident(column),
                            ident(parent)
                        )
                    })?
                };
                let kept: Vec<String> = cols.into_iter().filter(|c| !secret(c)).collect();
                Some((table, kept, filter))
            })
            .collect();
        let closed = || StoreError::Corrupt("the export's writer stopped".into());
        out.send(DumpChunk::Tables(exported.iter().map(|(t, _, _)| t.clone()).collect()))
            .await
            .map_err(|_| closed())?;
        for (table, cols, filter) in exported {
            // Pages by id where there is one (every page an index range);
            // by row position in this snapshot otherwise (a few small
            // tables).
            let by_id = cols.iter().any(|c| c == "id");
            // $2 and $3: the last id and the page size, or the page size and
            // the offset.
            let page = if by_id {
                format!("{filter} AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3")
            } else {
                let position = if postgres { "ctid" } else { "rowid" };
                format!("{filter} ORDER BY {position} LIMIT $2 OFFSET $3")
            };
            let query = if postgres {
                let list = cols.iter().map(|c| ident(c)).collect::<Vec<_>>().join(", ");
                format!(
                    "SELECT {}, row_to_json(x)::text FROM (SELECT {list} FROM {} WHERE {page}) x",
                    if by_id { "x.id" } else { "NULL::uuid" },
                    ident(&table)
                )
            } else {
                // UUIDs are 16-byte BLOBs in SQLite: written as UUIDs.
                let pairs = cols
                    .iter()
                    .map(|c| {
                        let q = ident(c);
                        format!(
                            "'{name}', CASE WHEN typeof({q}) = 'blob' AND length({q}) = 16 THEN \
                             lower(substr(hex({q}), 1, 8) || '-' || substr(hex({q}), 9, 4) || '-' || \
                             substr(hex({q}), 13, 4) || '-' || substr(hex({q}), 17, 4) || '-' || substr(hex({q}), 21)) \
                             WHEN typeof({q}) = 'blob' THEN hex({q}) ELSE {q} END",
                            name = c.replace('\'', "''")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                format!(
                    "SELECT {}, json_object({pairs}) FROM {} WHERE {page}",
                    if by_id { "id" } else { "NULL" },
                    ident(&table)
                )
            };
            let mut after: Option<Uuid> = None;
            let mut offset = 0i64;
            loop {
                let select = sqlx::query_as(sqlx::AssertSqlSafe(query.clone())).bind(tenant_id);
                let select = if by_id {
                    select.bind(after).bind(DUMP_PAGE)
                } else {
                    select.bind(DUMP_PAGE).bind(offset)
                };
                let rows: Vec<(Option<Uuid>, String)> = select.fetch_all(&mut *tx).await?;
                let last = i64::try_from(rows.len()).unwrap_or(0) < DUMP_PAGE;
                offset += DUMP_PAGE;
                after = rows.last().and_then(|(id, _)| *id);
                let rows = rows.into_iter().map(|(_, row)| row).collect();
                out.send(DumpChunk::Rows { table: table.clone(), rows }).await.map_err(|_| closed())?;
                if last {
                    break;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
