//! The retrieval index: one SQLite file in the agent's directory
//! (`index/index.db`) holding every project's documents, their chunks with
//! embeddings, a full-text index (FTS5, BM25 ranking) and what still has to
//! be reported to the control plane. `marketer-agent ingest` and the running
//! agent share it (SQLite's WAL lets both in); each project's `generation`
//! tells the running agent when its in-memory vectors are stale.
//!
//! Search is hybrid: vector candidates by Hamming distance over one bit per
//! dimension (kept in memory: 96 bytes per chunk of a 768-dimension model),
//! re-scored by exact cosine; BM25 over the chunk text; the lists merged by
//! reciprocal rank fusion, below-threshold vector matches dropped, repeats
//! removed.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use futures_util::TryStreamExt;
use marketer_protocol::documents::{DocumentMeta, DocumentStatus};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

/// A vector match below this cosine similarity is not a match.
pub const MIN_COSINE: f32 = 0.3;
/// Reciprocal rank fusion's damping constant (the usual 60).
const RRF_K: f32 = 60.0;
/// Candidates per query from each of the two searches.
const CANDIDATES: usize = 40;
/// How many chunks (summed over its terms) one keyword search may score.
const KEYWORD_BUDGET: i64 = 3_000;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS projects (
        id TEXT PRIMARY KEY,
        embedding_model TEXT NOT NULL,
        dimension INTEGER NOT NULL,
        generation INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS documents (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL,
        source TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        media_type TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        chunk_count INTEGER NOT NULL DEFAULT 0,
        embedding_model TEXT NOT NULL,
        indexed_at TEXT,
        version INTEGER NOT NULL DEFAULT 1,
        reported_version INTEGER NOT NULL DEFAULT 0,
        UNIQUE (project_id, source))",
    "CREATE TABLE IF NOT EXISTS chunks (
        id INTEGER PRIMARY KEY,
        document_id TEXT NOT NULL,
        project_id TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        text TEXT NOT NULL,
        file TEXT NOT NULL,
        section TEXT NOT NULL,
        page INTEGER,
        embedding BLOB NOT NULL,
        -- The project as one token, for keyword search to match on.
        project_key TEXT GENERATED ALWAYS AS ('p' || replace(project_id, '-', '')) VIRTUAL)",
    "CREATE INDEX IF NOT EXISTS chunks_document ON chunks (document_id)",
    "CREATE INDEX IF NOT EXISTS chunks_project ON chunks (project_id)",
    // The project is an indexed column of one token, matched in the query
    // itself: a filter on an unindexed column would read every matching
    // row's content, and the id as a phrase of five tokens costs as much.
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
        text, section, project_key, content='chunks', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
        INSERT INTO chunks_fts (rowid, text, section, project_key) VALUES (new.id, new.text, new.section, new.project_key);
     END",
    "CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
        INSERT INTO chunks_fts (chunks_fts, rowid, text, section, project_key)
        VALUES ('delete', old.id, old.text, old.section, old.project_key);
     END",
    // How many chunks each (stemmed) term is in, for leaving out terms too
    // common to say anything.
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_terms USING fts5vocab(chunks_fts, 'row')",
    "CREATE TABLE IF NOT EXISTS removed (
        id TEXT PRIMARY KEY,
        project_id TEXT NOT NULL)",
];

/// A chunk ready to store.
#[derive(Debug, Clone)]
pub struct NewChunk {
    pub text: String,
    pub section: String,
    pub page: Option<u32>,
    pub embedding: Vec<f32>,
}

/// A document as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub meta: DocumentMeta,
    /// Where it came from: a path on this host, or `upload:<id>`.
    pub source: String,
    pub version: i64,
}

/// A search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub chunk_id: i64,
    pub text: String,
    pub file: String,
    pub section: String,
    pub page: Option<u32>,
    /// The fused score (higher is better).
    pub score: f32,
}

/// What a report to the control plane carries, and what to mark once it is
/// acknowledged.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    pub documents: Vec<Document>,
    pub removed: Vec<Uuid>,
}

/// The in-memory side of one project's vectors.
#[derive(Debug)]
struct Vectors {
    generation: i64,
    words: usize,
    /// The project's chunk ids, ascending.
    ids: Vec<i64>,
    codes: Vec<u64>,
}

impl Vectors {
    fn holds(&self, id: i64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }
}

#[derive(Debug)]
pub struct Index {
    pool: SqlitePool,
    vectors: Mutex<HashMap<Uuid, Arc<Vectors>>>,
    /// A private in-memory database whose FTS5 table stems query terms with
    /// the same tokenizer as the index, to look up how common they are.
    stemmer: SqlitePool,
}

/// Projects change model: their documents must be embedded again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChange {
    pub from: String,
    pub to: String,
}

impl Index {
    /// A write transaction, holding the write lock from its start: the
    /// running agent and `marketer-agent ingest` share this file, and a
    /// deferred transaction that reads first and then writes fails with
    /// `SQLITE_BUSY_SNAPSHOT` when the other process wrote in between (the
    /// busy timeout cannot help with that one).
    async fn write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Opens (creating if needed) the index under `dir`.
    pub async fn open(dir: &Path) -> anyhow::Result<Self> {
        let index_dir = dir.join("index");
        crate::config::create_private_dir(&index_dir)?;
        let path = index_dir.join("index.db");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .context("the index path")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the index {}", path.display()))?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await.context("creating the index tables")?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        // One connection that never closes: an in-memory database lives as
        // long as its connection.
        let stemmer = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(SqliteConnectOptions::from_str("sqlite::memory:").context("the stemmer")?)
            .await
            .context("opening the stemmer")?;
        for statement in [
            "CREATE VIRTUAL TABLE probe USING fts5(term, tokenize='porter unicode61')",
            "CREATE VIRTUAL TABLE probe_terms USING fts5vocab(probe, 'instance')",
        ] {
            sqlx::query(statement).execute(&stemmer).await.context("creating the stemmer")?;
        }
        Ok(Self { pool, vectors: Mutex::new(HashMap::new()), stemmer })
    }

    /// Deletes every document, chunk and project of the index and rewrites
    /// the file without them (the tenant was erased): `VACUUM` leaves no
    /// deleted page behind, and the write-ahead log is emptied. The index
    /// stays usable (empty). Returns the documents and chunks deleted.
    pub async fn erase_all(&self) -> anyhow::Result<(u64, u64)> {
        let mut tx = self.write().await?;
        let documents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM documents").fetch_one(&mut *tx).await?;
        let chunks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chunks").fetch_one(&mut *tx).await?;
        for statement in [
            "DELETE FROM chunks",
            // The full-text index's own tables, rebuilt empty.
            "INSERT INTO chunks_fts (chunks_fts) VALUES ('rebuild')",
            "DELETE FROM documents",
            "DELETE FROM projects",
            "DELETE FROM removed",
        ] {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .with_context(|| format!("erasing: {statement}"))?;
        }
        tx.commit().await?;
        self.vectors.lock().unwrap_or_else(|p| p.into_inner()).clear();
        sqlx::query("VACUUM").execute(&self.pool).await.context("rewriting the index after erasing it")?;
        // The log holds the pages as they were; it is emptied (retried while
        // another connection, `marketer-agent ingest` say, reads).
        for attempt in 0.. {
            let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await
                .context("emptying the index log")?;
            if busy == 0 {
                break;
            }
            anyhow::ensure!(
                attempt < 50,
                "the index log could not be emptied: another process keeps it busy"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok((u64::try_from(documents).unwrap_or(0), u64::try_from(chunks).unwrap_or(0)))
    }

    /// The document a source (path) of a project was indexed from.
    pub async fn by_source(&self, project: Uuid, source: &str) -> anyhow::Result<Option<Document>> {
        let row = sqlx::query(select_documents("WHERE project_id = ?1 AND source = ?2"))
            .bind(project.to_string())
            .bind(source)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(document).transpose()
    }

    pub async fn document(&self, id: Uuid) -> anyhow::Result<Option<Document>> {
        let row = sqlx::query(select_documents("WHERE id = ?1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(document).transpose()
    }

    /// Documents, of one project or all, by name.
    pub async fn documents(&self, project: Option<Uuid>) -> anyhow::Result<Vec<Document>> {
        let rows =
            sqlx::query(select_documents("WHERE (?1 IS NULL OR project_id = ?1) ORDER BY project_id, name"))
                .bind(project.map(|p| p.to_string()))
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(document).collect()
    }

    /// Projects with at least one indexed document.
    pub async fn projects(&self) -> anyhow::Result<Vec<Uuid>> {
        let rows = sqlx::query(
            "SELECT DISTINCT project_id FROM documents WHERE status = 'indexed' ORDER BY project_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(Uuid::parse_str(r.try_get::<&str, _>(0)?)?)).collect()
    }

    /// The embedding model a project's vectors come from.
    pub async fn project_model(&self, project: Uuid) -> anyhow::Result<Option<(String, usize)>> {
        let row = sqlx::query("SELECT embedding_model, dimension FROM projects WHERE id = ?1")
            .bind(project.to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| (r.get::<String, _>(0), usize::try_from(r.get::<i64, _>(1)).unwrap_or(0))))
    }

    /// Stores a document's chunks (replacing any earlier ones) and marks it
    /// indexed; the document keeps its id across changes.
    #[allow(clippy::too_many_arguments)]
    pub async fn store(
        &self,
        id: Uuid,
        project: Uuid,
        source: &str,
        name: &str,
        size: u64,
        sha256: &str,
        media_type: &str,
        model: &str,
        chunks: &[NewChunk],
    ) -> anyhow::Result<Document> {
        let dimension = chunks.first().map_or(0, |c| c.embedding.len());
        let mut tx = self.write().await?;
        let recorded: Option<(String, i64)> =
            sqlx::query_as("SELECT embedding_model, dimension FROM projects WHERE id = ?1")
                .bind(project.to_string())
                .fetch_optional(&mut *tx)
                .await?;
        match recorded {
            Some((recorded, dim))
                if recorded != model || (dimension > 0 && usize::try_from(dim).unwrap_or(0) != dimension) =>
            {
                anyhow::bail!(
                    "the project's index uses the embedding model {recorded}; re-index it with {model} first (vectors of two models must not be mixed)"
                );
            }
            Some(_) => {}
            None => {
                sqlx::query("INSERT INTO projects (id, embedding_model, dimension) VALUES (?1, ?2, ?3)")
                    .bind(project.to_string())
                    .bind(model)
                    .bind(i64::try_from(dimension).unwrap_or(0))
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let id = upsert_document(&mut tx, id, project, source, name, size, sha256, media_type, model).await?;
        sqlx::query("DELETE FROM chunks WHERE document_id = ?1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        for (ordinal, chunk) in chunks.iter().enumerate() {
            sqlx::query(
                "INSERT INTO chunks (document_id, project_id, ordinal, text, file, section, page, embedding) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(id.to_string())
            .bind(project.to_string())
            .bind(i64::try_from(ordinal).unwrap_or(i64::MAX))
            .bind(&chunk.text)
            .bind(name)
            .bind(&chunk.section)
            .bind(chunk.page.map(i64::from))
            .bind(encode(&chunk.embedding))
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE documents SET status = 'indexed', error = NULL, chunk_count = ?2, indexed_at = ?3 WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(i64::try_from(chunks.len()).unwrap_or(i64::MAX))
        .bind(now())
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, project).await?;
        tx.commit().await?;
        self.document(id).await?.context("the stored document")
    }

    /// Records that a document could not be indexed; its earlier chunks (of
    /// a previous version of the file) go.
    #[allow(clippy::too_many_arguments)]
    pub async fn fail(
        &self,
        id: Uuid,
        project: Uuid,
        source: &str,
        name: &str,
        size: u64,
        sha256: &str,
        media_type: &str,
        model: &str,
        reason: &str,
    ) -> anyhow::Result<Document> {
        let mut tx = self.write().await?;
        let id = upsert_document(&mut tx, id, project, source, name, size, sha256, media_type, model).await?;
        sqlx::query("DELETE FROM chunks WHERE document_id = ?1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE documents SET status = 'failed', error = ?2, chunk_count = 0, indexed_at = NULL WHERE id = ?1")
            .bind(id.to_string())
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx, project).await?;
        tx.commit().await?;
        self.document(id).await?.context("the stored document")
    }

    /// Removes a document and its chunks. Returns whether it existed.
    pub async fn remove(&self, id: Uuid) -> anyhow::Result<bool> {
        let mut tx = self.write().await?;
        let project: Option<String> = sqlx::query_scalar("SELECT project_id FROM documents WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(project) = project else { return Ok(false) };
        sqlx::query("DELETE FROM chunks WHERE document_id = ?1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM documents WHERE id = ?1").bind(id.to_string()).execute(&mut *tx).await?;
        sqlx::query("INSERT OR REPLACE INTO removed (id, project_id) VALUES (?1, ?2)")
            .bind(id.to_string())
            .bind(&project)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx, Uuid::parse_str(&project)?).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Records as removed a document this index does not hold, so the
    /// control plane, which asked for its removal, hears it is gone.
    pub async fn forget(&self, id: Uuid) -> anyhow::Result<()> {
        sqlx::query("INSERT OR IGNORE INTO removed (id, project_id) VALUES (?1, '')")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Everything the control plane has not acknowledged yet, at most
    /// `limit` documents (and every removal).
    pub async fn pending(&self, limit: usize) -> anyhow::Result<Pending> {
        let rows = sqlx::query(select_documents("WHERE version > reported_version ORDER BY id LIMIT ?1"))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        let documents = rows.iter().map(document).collect::<anyhow::Result<Vec<_>>>()?;
        let removed = sqlx::query_scalar::<_, String>("SELECT id FROM removed ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|id| Uuid::parse_str(id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Pending { documents, removed })
    }

    /// Every document's id, for the first report of a connection.
    pub async fn held(&self) -> anyhow::Result<Vec<Uuid>> {
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM documents ORDER BY id").fetch_all(&self.pool).await?;
        ids.iter().map(|id| Ok(Uuid::parse_str(id)?)).collect()
    }

    /// Marks every document unreported: a new connection sends them all
    /// again, so the control plane's copy heals from anything it lost.
    pub async fn report_all_again(&self) -> anyhow::Result<()> {
        sqlx::query("UPDATE documents SET reported_version = 0").execute(&self.pool).await?;
        Ok(())
    }

    /// The control plane stored `pending`.
    pub async fn reported(&self, pending: &Pending) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        for doc in &pending.documents {
            sqlx::query("UPDATE documents SET reported_version = ?2 WHERE id = ?1 AND reported_version < ?2")
                .bind(doc.meta.id.to_string())
                .bind(doc.version)
                .execute(&mut *tx)
                .await?;
        }
        for id in &pending.removed {
            sqlx::query("DELETE FROM removed WHERE id = ?1").bind(id.to_string()).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks a document failed with a reason the control plane gave (it
    /// refused the report: an unknown project, say); its chunks go, so
    /// nothing the control plane does not know of grounds a result.
    pub async fn refused(&self, id: Uuid, reason: &str) -> anyhow::Result<()> {
        let mut tx = self.write().await?;
        let project: Option<String> = sqlx::query_scalar("SELECT project_id FROM documents WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(project) = project else { return Ok(()) };
        sqlx::query("DELETE FROM chunks WHERE document_id = ?1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE documents SET status = 'failed', error = ?2, chunk_count = 0, indexed_at = NULL, \
             reported_version = version WHERE id = ?1",
        )
        .bind(id.to_string())
        .bind(reason)
        .execute(&mut *tx)
        .await?;
        bump(&mut tx, Uuid::parse_str(&project)?).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every chunk of a project, for embedding them again with another model.
    pub async fn chunk_texts(&self, project: Uuid) -> anyhow::Result<Vec<(i64, String)>> {
        let rows = sqlx::query("SELECT id, text FROM chunks WHERE project_id = ?1 ORDER BY id")
            .bind(project.to_string())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get::<i64, _>(0), r.get::<String, _>(1))).collect())
    }

    /// Replaces a project's vectors with those of `model` (in one
    /// transaction: a search sees the old vectors or the new, never both).
    pub async fn reembed(
        &self,
        project: Uuid,
        model: &str,
        vectors: &[(i64, Vec<f32>)],
    ) -> anyhow::Result<()> {
        let dimension = vectors.first().map_or(0, |(_, v)| v.len());
        let mut tx = self.write().await?;
        for (id, vector) in vectors {
            sqlx::query("UPDATE chunks SET embedding = ?2 WHERE id = ?1")
                .bind(id)
                .bind(encode(vector))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO projects (id, embedding_model, dimension) VALUES (?1, ?2, ?3) \
             ON CONFLICT (id) DO UPDATE SET embedding_model = excluded.embedding_model, dimension = excluded.dimension",
        )
        .bind(project.to_string())
        .bind(model)
        .bind(i64::try_from(dimension).unwrap_or(0))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE documents SET embedding_model = ?2, version = version + 1 WHERE project_id = ?1")
            .bind(project.to_string())
            .bind(model)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx, project).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The best `limit` chunks of a project for the queries (each a text and
    /// its embedding), fused across queries and the two searches.
    pub async fn search(
        &self,
        project: Uuid,
        queries: &[(String, Vec<f32>)],
        limit: usize,
    ) -> anyhow::Result<Vec<Hit>> {
        let vectors = self.vectors(project).await?;
        // Every query's two searches at once (the pool has several readers).
        let lists = futures_util::future::try_join_all(queries.iter().map(|(text, embedding)| {
            let vectors = &vectors;
            async move {
                futures_util::try_join!(
                    self.vector_search(vectors, embedding),
                    self.keyword_search(project, vectors, text)
                )
            }
        }))
        .await?;
        let mut fused: HashMap<i64, f32> = HashMap::new();
        for (by_vector, by_keyword) in &lists {
            for list in [by_vector, by_keyword] {
                for (rank, id) in list.iter().enumerate() {
                    *fused.entry(*id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
                }
            }
        }
        let mut ranked: Vec<(i64, f32)> = fused.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut hits: Vec<Hit> = Vec::with_capacity(limit);
        // Read in batches of twice what is missing: repeats are skipped.
        let mut next = 0;
        while hits.len() < limit && next < ranked.len() {
            let batch = &ranked[next..ranked.len().min(next + 2 * (limit - hits.len()))];
            next += batch.len();
            let mut rows = self.chunks_by_id(batch.iter().map(|(id, _)| *id)).await?;
            for (id, score) in batch {
                let Some(mut hit) = rows.remove(id) else { continue };
                // The overlap between neighbouring chunks, or the same
                // passage in two files, is one result.
                if hits.len() >= limit || hits.iter().any(|h| h.text == hit.text) {
                    continue;
                }
                hit.score = *score;
                hits.push(hit);
            }
        }
        Ok(hits)
    }

    /// Chunks by id, in one query.
    async fn chunks_by_id(
        &self,
        ids: impl ExactSizeIterator<Item = i64>,
    ) -> anyhow::Result<HashMap<i64, Hit>> {
        let placeholders = (1..=ids.len()).map(|n| format!("?{n}")).collect::<Vec<_>>().join(", ");
        // Only numbered placeholders are formatted in; the ids are bound.
        let sql = format!("SELECT id, text, file, section, page FROM chunks WHERE id IN ({placeholders})");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let hit = Hit {
                    chunk_id: id,
                    text: row.get(1),
                    file: row.get(2),
                    section: row.get(3),
                    page: row.get::<Option<i64>, _>(4).and_then(|p| u32::try_from(p).ok()),
                    score: 0.0,
                };
                (id, hit)
            })
            .collect())
    }

    /// Chunk ids by vector similarity, best first, only those above
    /// [`MIN_COSINE`].
    async fn vector_search(&self, vectors: &Vectors, query_vector: &[f32]) -> anyhow::Result<Vec<i64>> {
        if vectors.ids.is_empty()
            || query_vector.is_empty()
            || query_vector.len().div_ceil(64) != vectors.words
        {
            return Ok(Vec::new());
        }
        let code = sign_bits(query_vector);
        let mut distances: Vec<(u32, usize)> = (0..vectors.ids.len())
            .map(|i| {
                let candidate = &vectors.codes[i * vectors.words..(i + 1) * vectors.words];
                (candidate.iter().zip(&code).map(|(a, b)| (a ^ b).count_ones()).sum(), i)
            })
            .collect();
        let keep = (CANDIDATES * 2).min(distances.len());
        if keep < distances.len() {
            distances.select_nth_unstable(keep);
            distances.truncate(keep);
        }
        // Exact similarity for the candidates, read in one query.
        let ids: Vec<i64> = distances.iter().map(|(_, i)| vectors.ids[*i]).collect();
        let placeholders = (1..=ids.len()).map(|n| format!("?{n}")).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT id, embedding FROM chunks WHERE id IN ({placeholders})");
        // Only numbered placeholders are formatted in; the ids are bound.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            query = query.bind(id);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let norm = norm(query_vector);
        let mut scored = Vec::with_capacity(rows.len());
        for row in rows {
            let candidate = decode(row.get::<&[u8], _>(1));
            let cosine = dot(query_vector, &candidate) / (norm * self::norm(&candidate)).max(f32::EPSILON);
            if cosine >= MIN_COSINE {
                scored.push((cosine, row.get::<i64, _>(0)));
            }
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(CANDIDATES);
        Ok(scored.into_iter().map(|(_, id)| id).collect())
    }

    /// Chunk ids by BM25, best first. Scoring is most of a keyword search's
    /// cost, and it grows with the chunks the terms are in; so the rarest
    /// terms are searched for, as many as fit [`KEYWORD_BUDGET`] chunks, and
    /// the common ones (which say little about any one chunk, and which the
    /// vector search covers) are left out. Terms in no chunk are left out too.
    async fn keyword_search(&self, project: Uuid, vectors: &Vectors, text: &str) -> anyhow::Result<Vec<i64>> {
        let terms = self.useful_terms(&query_terms(text)).await?;
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Any of the terms, quoted so nothing in them is query syntax. With
        // several projects in the index, only this project's token: BM25
        // then scores that token too (weighed zero, but its instances are
        // still counted), which doubles the cost; with one project, there
        // is nothing to leave out. Either way, only the project's chunks
        // come back.
        let any = terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ");
        let projects: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM projects").fetch_one(&self.pool).await?;
        let query =
            if projects > 1 { format!("project_key : p{} AND ({any})", project.simple()) } else { any };
        let rows = sqlx::query(
            "SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?1 ORDER BY bm25(chunks_fts, 1.0, 0.5, 0.0) LIMIT ?2",
        )
        .bind(query)
        .bind(i64::try_from(CANDIDATES).unwrap_or(40))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get::<i64, _>(0)).filter(|id| vectors.holds(*id)).collect())
    }

    /// The terms worth searching for: stemmed as the index stems them, then
    /// looked up in its vocabulary.
    async fn useful_terms(&self, terms: &[String]) -> anyhow::Result<Vec<String>> {
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        // Each term a row of the probe, numbered by its place; the probe's
        // vocabulary then maps places to stems.
        let mut probe = self.stemmer.acquire().await?;
        sqlx::query("DELETE FROM probe").execute(&mut *probe).await?;
        let rows = (1..=terms.len()).map(|n| format!("({n}, ?{n})")).collect::<Vec<_>>().join(", ");
        // Only numbered placeholders are formatted in; the terms are bound.
        let insert = format!("INSERT INTO probe (rowid, term) VALUES {rows}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(insert));
        for term in terms {
            query = query.bind(term);
        }
        query.execute(&mut *probe).await?;
        let stems: Vec<(i64, String)> =
            sqlx::query_as("SELECT doc, term FROM probe_terms").fetch_all(&mut *probe).await?;
        drop(probe);
        let placeholders = (1..=stems.len()).map(|n| format!("?{n}")).collect::<Vec<_>>().join(", ");
        let lookup = format!("SELECT term, doc FROM chunks_terms WHERE term IN ({placeholders})");
        let mut query = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(lookup));
        for (_, stem) in &stems {
            query = query.bind(stem);
        }
        let counts: HashMap<String, i64> = query.fetch_all(&self.pool).await?.into_iter().collect();
        let mut found: Vec<(i64, &String)> = Vec::with_capacity(terms.len());
        for (place, stem) in &stems {
            let Some(term) = usize::try_from(*place - 1).ok().and_then(|i| terms.get(i)) else { continue };
            if let Some(chunks) = counts.get(stem).copied().filter(|n| *n > 0)
                && !found.iter().any(|(_, t)| *t == term)
            {
                found.push((chunks, term));
            }
        }
        found.sort();
        let mut budget = KEYWORD_BUDGET;
        Ok(found
            .into_iter()
            .take_while(|(chunks, _)| {
                budget -= chunks;
                budget >= 0
            })
            .map(|(_, term)| term.clone())
            .collect())
    }

    /// A project's sign-bit codes, loaded again when its generation moved.
    async fn vectors(&self, project: Uuid) -> anyhow::Result<Arc<Vectors>> {
        let generation: i64 = sqlx::query_scalar("SELECT generation FROM projects WHERE id = ?1")
            .bind(project.to_string())
            .fetch_optional(&self.pool)
            .await?
            .unwrap_or(-1);
        if let Some(cached) = self.vectors.lock().unwrap_or_else(|p| p.into_inner()).get(&project)
            && cached.generation == generation
        {
            return Ok(cached.clone());
        }
        // Streamed: the embeddings themselves (kilobytes each) are not kept.
        let mut rows = sqlx::query("SELECT id, embedding FROM chunks WHERE project_id = ?1 ORDER BY id")
            .bind(project.to_string())
            .fetch(&self.pool);
        let mut loaded = Vectors { generation, words: 0, ids: Vec::new(), codes: Vec::new() };
        while let Some(row) = rows.try_next().await? {
            let code = sign_bits(&decode(row.get::<&[u8], _>(1)));
            if loaded.words == 0 {
                loaded.words = code.len();
            }
            if code.len() != loaded.words {
                continue;
            }
            loaded.ids.push(row.get(0));
            loaded.codes.extend_from_slice(&code);
        }
        drop(rows);
        loaded.ids.shrink_to_fit();
        loaded.codes.shrink_to_fit();
        let loaded = Arc::new(loaded);
        self.vectors.lock().unwrap_or_else(|p| p.into_inner()).insert(project, loaded.clone());
        Ok(loaded)
    }
}

#[allow(clippy::too_many_arguments)]
async fn upsert_document(
    tx: &mut sqlx::SqliteConnection,
    id: Uuid,
    project: Uuid,
    source: &str,
    name: &str,
    size: u64,
    sha256: &str,
    media_type: &str,
    model: &str,
) -> anyhow::Result<Uuid> {
    let existing: Option<String> =
        sqlx::query_scalar("SELECT id FROM documents WHERE project_id = ?1 AND source = ?2")
            .bind(project.to_string())
            .bind(source)
            .fetch_optional(&mut *tx)
            .await?;
    match existing {
        Some(existing) => {
            sqlx::query(
                "UPDATE documents SET name = ?2, size = ?3, sha256 = ?4, media_type = ?5, embedding_model = ?6, \
                 status = 'pending', version = version + 1 WHERE id = ?1",
            )
            .bind(&existing)
            .bind(name)
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .bind(sha256)
            .bind(media_type)
            .bind(model)
            .execute(&mut *tx)
            .await?;
            Ok(Uuid::parse_str(&existing)?)
        }
        None => {
            sqlx::query(
                "INSERT INTO documents (id, project_id, source, name, size, sha256, media_type, status, embedding_model) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8)",
            )
            .bind(id.to_string())
            .bind(project.to_string())
            .bind(source)
            .bind(name)
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .bind(sha256)
            .bind(media_type)
            .bind(model)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM removed WHERE id = ?1").bind(id.to_string()).execute(&mut *tx).await?;
            Ok(id)
        }
    }
}

async fn bump(tx: &mut sqlx::SqliteConnection, project: Uuid) -> anyhow::Result<()> {
    sqlx::query("UPDATE projects SET generation = generation + 1 WHERE id = ?1")
        .bind(project.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The document columns with a fixed condition (never user input).
fn select_documents(condition: &'static str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "SELECT id, project_id, source, name, size, sha256, media_type, status, error, chunk_count, \
         embedding_model, indexed_at, version FROM documents {condition}"
    ))
}

fn document(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Document> {
    let status = match row.get::<&str, _>(7) {
        "indexed" => DocumentStatus::Indexed,
        "failed" => DocumentStatus::Failed,
        _ => DocumentStatus::Pending,
    };
    let indexed_at = row
        .get::<Option<String>, _>(11)
        .map(|t| OffsetDateTime::parse(&t, &time::format_description::well_known::Rfc3339))
        .transpose()?;
    Ok(Document {
        meta: DocumentMeta {
            id: Uuid::parse_str(row.get::<&str, _>(0))?,
            project_id: Uuid::parse_str(row.get::<&str, _>(1))?,
            name: row.get(3),
            size_bytes: u64::try_from(row.get::<i64, _>(4)).unwrap_or(0),
            sha256: row.get(5),
            media_type: row.get(6),
            status,
            error: row.get(8),
            chunk_count: u32::try_from(row.get::<i64, _>(9)).unwrap_or(0),
            embedding_model: row.get(10),
            indexed_at,
        },
        source: row.get(2),
        version: row.get(12),
    })
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The words of a query worth looking up: lowercased, at least two
/// characters, not function words, each once, at most 24.
fn query_terms(text: &str) -> Vec<String> {
    const STOP: &[&str] = &[
        "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been", "but",
        "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he", "her", "his",
        "how", "if", "in", "into", "is", "it", "its", "me", "more", "most", "my", "no", "not", "of", "on",
        "or", "our", "out", "over", "she", "so", "some", "than", "that", "the", "their", "them", "then",
        "there", "these", "they", "this", "those", "to", "up", "us", "was", "we", "were", "what", "when",
        "where", "which", "who", "why", "will", "with", "would", "you", "your",
    ];
    let mut terms: Vec<String> = Vec::new();
    for word in text.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() >= 2 && !STOP.contains(&word.as_str()) && !terms.contains(&word) {
            terms.push(word);
        }
        if terms.len() >= 24 {
            break;
        }
    }
    terms
}

fn encode(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn sign_bits(vector: &[f32]) -> Vec<u64> {
    let mut words = vec![0u64; vector.len().div_ceil(64)];
    for (i, v) in vector.iter().enumerate() {
        if *v > 0.0 {
            words[i / 64] |= 1 << (i % 64);
        }
    }
    words
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(v: &[f32]) -> f32 {
    dot(v, v).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, dims: usize) -> Vec<f32> {
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let raw: Vec<f32> = (0..dims)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let n = norm(&raw);
        raw.into_iter().map(|v| v / n).collect()
    }

    fn chunk(text: &str, embedding: Vec<f32>) -> NewChunk {
        NewChunk { text: text.into(), section: "S".into(), page: None, embedding }
    }

    #[tokio::test]
    async fn stores_replaces_searches_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        let project = Uuid::now_v7();
        let (warranty, install) = (unit(1, 64), unit(2, 64));
        let id = Uuid::now_v7();
        let doc = index
            .store(
                id,
                project,
                "/docs/specs.md",
                "specs.md",
                10,
                "aa",
                "text/markdown",
                "nomic",
                &[
                    chunk("Solar tiles carry a thirty year warranty.", warranty.clone()),
                    chunk("Crews install a roof in two days.", install.clone()),
                ],
            )
            .await
            .unwrap();
        assert_eq!((doc.meta.status, doc.meta.chunk_count), (DocumentStatus::Indexed, 2));
        assert_eq!(index.projects().await.unwrap(), [project]);

        // By keyword, by meaning (the vector alone), and not at all.
        let hits = index.search(project, &[("warranty length".into(), unit(99, 64))], 3).await.unwrap();
        assert_eq!(hits[0].text, "Solar tiles carry a thirty year warranty.");
        let hits = index.search(project, &[("zzz".into(), install.clone())], 3).await.unwrap();
        assert_eq!(hits[0].text, "Crews install a roof in two days.");
        assert_eq!((hits[0].file.as_str(), hits[0].section.as_str()), ("specs.md", "S"));
        assert!(index.search(project, &[("nothing here".into(), unit(77, 64))], 3).await.unwrap().is_empty());

        // A changed file keeps its id and replaces its chunks.
        let again = index
            .store(
                Uuid::now_v7(),
                project,
                "/docs/specs.md",
                "specs.md",
                11,
                "bb",
                "text/markdown",
                "nomic",
                &[chunk("Tiles now carry a forty year warranty.", warranty.clone())],
            )
            .await
            .unwrap();
        assert_eq!((again.meta.id, again.meta.chunk_count), (id, 1));
        let hits = index.search(project, &[("warranty".into(), warranty.clone())], 5).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert!(hits[0].text.contains("forty"));

        // Another model's vectors are refused until the project is re-embedded.
        let mixed = index
            .store(
                Uuid::now_v7(),
                project,
                "/docs/other.md",
                "other.md",
                1,
                "cc",
                "text/markdown",
                "other-model",
                &[chunk("x", unit(3, 64))],
            )
            .await;
        assert!(format!("{:#}", mixed.unwrap_err()).contains("re-index"));

        // Reporting: pending until acknowledged; removal reported too.
        let pending = index.pending(100).await.unwrap();
        assert_eq!(pending.documents.len(), 1);
        index.reported(&pending).await.unwrap();
        assert!(index.pending(100).await.unwrap().documents.is_empty());
        assert!(index.remove(id).await.unwrap());
        assert!(!index.remove(id).await.unwrap());
        assert!(index.search(project, &[("warranty".into(), warranty)], 5).await.unwrap().is_empty());
        let pending = index.pending(100).await.unwrap();
        assert_eq!(pending.removed, [id]);
        index.reported(&pending).await.unwrap();
        assert!(index.pending(100).await.unwrap().removed.is_empty());
    }

    #[tokio::test]
    async fn a_search_sees_only_its_projects_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let v = unit(5, 16);
        index
            .store(
                Uuid::now_v7(),
                a,
                "/a",
                "a.md",
                1,
                "aa",
                "text/markdown",
                "m",
                &[chunk("Granite countertops in A.", v.clone())],
            )
            .await
            .unwrap();
        let query = [("granite countertops".to_owned(), v.clone())];
        assert_eq!(index.search(a, &query, 5).await.unwrap().len(), 1);
        assert!(
            index.search(b, &query, 5).await.unwrap().is_empty(),
            "a project without an index finds nothing"
        );
        index
            .store(
                Uuid::now_v7(),
                b,
                "/b",
                "b.md",
                1,
                "bb",
                "text/markdown",
                "m",
                &[chunk("Granite countertops in B.", v.clone())],
            )
            .await
            .unwrap();
        for (project, own) in [(a, "A."), (b, "B.")] {
            let hits = index.search(project, &query, 5).await.unwrap();
            assert_eq!(hits.len(), 1, "{hits:?}");
            assert!(hits[0].text.ends_with(own));
            // By words alone, too.
            let hits = index.search(project, &[("granite".to_owned(), Vec::new())], 5).await.unwrap();
            assert_eq!(hits.iter().map(|h| h.text.ends_with(own)).collect::<Vec<_>>(), [true]);
        }
    }

    #[test]
    fn queries_are_words_without_syntax_or_function_words() {
        assert_eq!(query_terms("What is the \"warranty\" OR NOT? Warranty!"), ["warranty"]);
        assert!(query_terms("the of a").is_empty());
    }

    #[tokio::test]
    async fn terms_too_common_or_absent_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).await.unwrap();
        let project = Uuid::now_v7();
        let chunks: Vec<NewChunk> = (0..KEYWORD_BUDGET + 1)
            .map(|i| {
                chunk(
                    &format!("roofing tile number {i}{}", if i == 7 { " warranties" } else { "" }),
                    unit(1, 8),
                )
            })
            .collect();
        index
            .store(Uuid::now_v7(), project, "/x", "x.md", 1, "aa", "text/markdown", "m", &chunks)
            .await
            .unwrap();
        let terms = |t: &str| query_terms(t);
        // "roofing" is in every chunk, more than one search may score;
        // "warranty" stems like "warranties".
        assert_eq!(index.useful_terms(&terms("roofing warranty zebra")).await.unwrap(), ["warranty"]);
        let hits = index.search(project, &[("roofing warranty".into(), Vec::new())], 3).await.unwrap();
        assert_eq!(hits.len(), 1);
        assert!(hits[0].text.contains("warranties"));
    }
}
