//! [`DocumentStore`] for [`SqlStore`]: uploads, agents' reports, deletion.

use std::collections::HashSet;

use marketer_protocol::documents::{DocumentMeta, DocumentReport, DocumentStatus, RefusedDocument};

use super::*;
use crate::store::{DeletedDocument, Document, DocumentOrigin, DocumentStore, NewUpload, ReportOutcome};

#[derive(FromRow)]
struct DocumentRow {
    id: Uuid,
    tenant_id: Uuid,
    project_id: Uuid,
    name: String,
    size_bytes: i64,
    sha256: String,
    media_type: String,
    origin: String,
    storage_key: Option<String>,
    agent_id: Option<Uuid>,
    status: String,
    error: Option<String>,
    chunk_count: i64,
    embedding_model: Option<String>,
    indexed_at: Option<Timestamp>,
    job_id: Option<Uuid>,
    created_by: Option<Uuid>,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// The ingest job's state, which decides an upload's status until an
    /// agent reports it.
    job_status: Option<String>,
    job_error: Option<String>,
}

impl TryFrom<DocumentRow> for Document {
    type Error = StoreError;
    fn try_from(r: DocumentRow) -> Result<Document> {
        let mut status = match r.status.as_str() {
            "pending" => DocumentStatus::Pending,
            "indexed" => DocumentStatus::Indexed,
            "failed" => DocumentStatus::Failed,
            other => return Err(StoreError::Corrupt(format!("documents.status: {other}"))),
        };
        let mut error = r.error;
        // An upload whose ingest job gave up never hears from an agent.
        if status == DocumentStatus::Pending
            && let Some(job_status) = r.job_status.as_deref()
            && (job_status == "failed" || job_status == "cancelled")
        {
            status = DocumentStatus::Failed;
            let job_error: Option<JobError> = json_column(r.job_error.as_deref(), "jobs.error")?;
            error = Some(job_error.map_or_else(|| "the ingest job was cancelled".to_owned(), |e| e.message));
        }
        Ok(Document {
            id: r.id,
            tenant_id: r.tenant_id,
            project_id: r.project_id,
            name: r.name,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            media_type: r.media_type,
            origin: r.origin.parse::<DocumentOrigin>().map_err(corrupt("documents.origin"))?,
            storage_key: r.storage_key,
            agent_id: r.agent_id,
            status,
            error,
            chunk_count: r.chunk_count,
            embedding_model: r.embedding_model,
            indexed_at: r.indexed_at,
            job_id: r.job_id,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const DOCUMENT_COLUMNS: &str = "d.id, d.tenant_id, d.project_id, d.name, d.size_bytes, d.sha256, d.media_type, \
     d.origin, d.storage_key, d.agent_id, d.status, d.error, d.chunk_count, d.embedding_model, d.indexed_at, \
     d.job_id, d.created_by, d.created_at, d.updated_at, j.status AS job_status, j.error AS job_error";

/// The row of a document known by id, whatever its tenant, for checking a
/// report against it.
#[derive(FromRow)]
struct KnownDocument {
    tenant_id: Uuid,
    project_id: Uuid,
    origin: String,
    storage_key: Option<String>,
    agent_id: Option<Uuid>,
    deleted_at: Option<Timestamp>,
}

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
    async fn fetch_document(
        conn: &mut DB::Connection,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Option<Document>> {
        let row: Option<DocumentRow> = sqlx::query_as(sql(&[
            "SELECT ",
            DOCUMENT_COLUMNS,
            " FROM documents d LEFT JOIN jobs j ON j.id = d.job_id \
             WHERE d.tenant_id = $1 AND d.id = $2 AND d.deleted_at IS NULL",
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        row.map(Document::try_from).transpose()
    }

    async fn known_document(conn: &mut DB::Connection, id: Uuid) -> Result<Option<KnownDocument>> {
        Ok(sqlx::query_as(
            "SELECT tenant_id, project_id, origin, storage_key, agent_id, deleted_at FROM documents WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?)
    }

    /// Stores one reported document, or says why not.
    async fn store_reported(
        conn: &mut DB::Connection,
        agent: &Agent,
        meta: &DocumentMeta,
        now: Timestamp,
        outcome: &mut ReportOutcome,
    ) -> Result<()> {
        let refuse = |reason: &str| RefusedDocument { id: meta.id, reason: reason.to_owned() };
        if Self::fetch_project(conn, agent.tenant_id, meta.project_id).await?.is_none() {
            outcome.refused.push(refuse(&format!(
                "project {} is not a project of this agent's tenant; check the --project id",
                meta.project_id
            )));
            return Ok(());
        }
        let indexed_at = meta.indexed_at.map(Timestamp::from_datetime);
        match Self::known_document(conn, meta.id).await? {
            Some(known) if known.tenant_id != agent.tenant_id || known.project_id != meta.project_id => {
                outcome.refused.push(refuse("the document id is already used by another document"));
            }
            // Deleted by a person: the agent must drop it (again).
            Some(known) if known.deleted_at.is_some() => outcome.to_remove.push(meta.id),
            Some(_) => {
                sqlx::query(
                    "UPDATE documents SET name = $2, size_bytes = $3, sha256 = $4, media_type = $5, status = $6, \
                     error = $7, chunk_count = $8, embedding_model = $9, indexed_at = $10, agent_id = $11, \
                     updated_at = $12 WHERE id = $1",
                )
                .bind(meta.id)
                .bind(meta.name.clone())
                .bind(i64::try_from(meta.size_bytes).unwrap_or(i64::MAX))
                .bind(meta.sha256.clone())
                .bind(meta.media_type.clone())
                .bind(meta.status.as_str())
                .bind(meta.error.clone())
                .bind(i64::from(meta.chunk_count))
                .bind(meta.embedding_model.clone())
                .bind(indexed_at)
                .bind(agent.id)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
            None => {
                sqlx::query(
                    "INSERT INTO documents (id, tenant_id, project_id, name, size_bytes, sha256, media_type, origin, \
                     agent_id, status, error, chunk_count, embedding_model, indexed_at, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'edge', $8, $9, $10, $11, $12, $13, $14, $14)",
                )
                .bind(meta.id)
                .bind(agent.tenant_id)
                .bind(meta.project_id)
                .bind(meta.name.clone())
                .bind(i64::try_from(meta.size_bytes).unwrap_or(i64::MAX))
                .bind(meta.sha256.clone())
                .bind(meta.media_type.clone())
                .bind(agent.id)
                .bind(meta.status.as_str())
                .bind(meta.error.clone())
                .bind(i64::from(meta.chunk_count))
                .bind(meta.embedding_model.clone())
                .bind(indexed_at)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            }
        }
        Ok(())
    }

    /// The agent no longer holds document `id`.
    async fn forget_held(
        conn: &mut DB::Connection,
        agent: &Agent,
        id: Uuid,
        now: Timestamp,
        outcome: &mut ReportOutcome,
    ) -> Result<()> {
        let Some(known) = Self::known_document(conn, id).await? else { return Ok(()) };
        // Only the agent that holds it (or held nothing of it) speaks for it.
        if known.tenant_id != agent.tenant_id || known.agent_id.is_some_and(|a| a != agent.id) {
            return Ok(());
        }
        let upload_kept = known.origin == "upload" && known.deleted_at.is_none();
        if upload_kept {
            // The file is still here; only the agent's copy went (someone ran
            // `marketer-agent documents remove`, or the index was lost).
            sqlx::query(
                "UPDATE documents SET agent_id = NULL, status = 'failed', chunk_count = 0, indexed_at = NULL, \
                 error = 'removed from the agent''s index; upload it again to index it', updated_at = $2 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            return Ok(());
        }
        sqlx::query("DELETE FROM documents WHERE id = $1").bind(id).execute(&mut *conn).await?;
        if let Some(key) = known.storage_key {
            outcome.released_files.push(key);
        }
        Ok(())
    }
}

#[async_trait]
impl<DB> DocumentStore for SqlStore<DB>
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
    async fn create_upload(
        &self,
        upload: &NewUpload,
        job: &NewJob,
        audit: &NewAuditEvent,
    ) -> Result<Document> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        if Self::fetch_project(&mut tx, upload.tenant_id, upload.project_id).await?.is_none() {
            return Err(StoreError::NotFound);
        }
        Self::insert_job(&mut tx, job, now).await?;
        sqlx::query(
            "INSERT INTO documents (id, tenant_id, project_id, name, size_bytes, sha256, media_type, origin, \
             storage_key, status, job_id, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'upload', $8, 'pending', $9, $10, $11, $11)",
        )
        .bind(upload.id)
        .bind(upload.tenant_id)
        .bind(upload.project_id)
        .bind(upload.name.clone())
        .bind(upload.size_bytes)
        .bind(upload.sha256.clone())
        .bind(upload.media_type.clone())
        .bind(upload.storage_key.clone())
        .bind(job.id)
        .bind(upload.created_by)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Self::insert_audit(&mut tx, audit).await?;
        let created =
            Self::fetch_document(&mut tx, upload.tenant_id, upload.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(created)
    }

    async fn document(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Document>> {
        let mut conn = self.read.acquire().await?;
        Self::fetch_document(&mut conn, tenant_id, id).await
    }

    async fn documents(
        &self,
        tenant_id: Uuid,
        project_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<Document>> {
        let rows: Vec<DocumentRow> = sqlx::query_as(sql(&[
            "SELECT ",
            DOCUMENT_COLUMNS,
            " FROM documents d LEFT JOIN jobs j ON j.id = d.job_id \
             WHERE d.tenant_id = $1 AND d.project_id = $2 AND d.deleted_at IS NULL AND ($3 IS NULL OR d.id < $3) \
             ORDER BY d.id DESC LIMIT $4",
        ]))
        .bind(tenant_id)
        .bind(project_id)
        .bind(page.after)
        .bind(fetch_limit(page))
        .fetch_all(&self.read)
        .await?;
        Ok(Page::from_rows(rows_into(rows)?, page.limit, |d: &Document| d.id))
    }

    async fn indexed_documents(&self, tenant_id: Uuid, project_id: Uuid) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM documents WHERE tenant_id = $1 AND project_id = $2 AND status = 'indexed' \
             AND deleted_at IS NULL",
        )
        .bind(tenant_id)
        .bind(project_id)
        .fetch_one(&self.read)
        .await?)
    }

    async fn delete_document(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<DeletedDocument> {
        let now = audit.occurred_at;
        let mut tx = self.write.begin().await?;
        let locked: Option<Uuid> = sqlx::query_scalar(sql(&[
            "SELECT id FROM documents WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
            DB::FOR_UPDATE,
        ]))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if locked.is_none() {
            return Err(StoreError::NotFound);
        }
        let known = Self::known_document(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        let job_id: Option<Uuid> = sqlx::query_scalar("SELECT job_id FROM documents WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        if known.agent_id.is_some() {
            sqlx::query("UPDATE documents SET deleted_at = $2, updated_at = $2 WHERE id = $1")
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("DELETE FROM documents WHERE id = $1").bind(id).execute(&mut *tx).await?;
        }
        Self::insert_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(DeletedDocument { storage_key: known.storage_key, job_id, agent_id: known.agent_id })
    }

    async fn apply_document_report(
        &self,
        agent: &Agent,
        report: &DocumentReport,
        now: Timestamp,
    ) -> Result<ReportOutcome> {
        let mut outcome = ReportOutcome::default();
        let mut tx = self.write.begin().await?;
        for meta in &report.documents {
            Self::store_reported(&mut tx, agent, meta, now, &mut outcome).await?;
        }
        let mut gone: Vec<Uuid> = report.removed.clone();
        if let Some(held) = &report.held {
            // What the agent held before and no longer lists is gone too.
            let listed: HashSet<Uuid> = held.iter().copied().collect();
            let held: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM documents WHERE agent_id = $1")
                .bind(agent.id)
                .fetch_all(&mut *tx)
                .await?;
            gone.extend(held.into_iter().filter(|id| !listed.contains(id)));
        }
        for id in gone {
            Self::forget_held(&mut tx, agent, id, now, &mut outcome).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn pending_removals(&self, agent_id: Uuid) -> Result<Vec<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM documents WHERE agent_id = $1 AND deleted_at IS NOT NULL ORDER BY id",
        )
        .bind(agent_id)
        .fetch_all(&self.read)
        .await?)
    }
}
