//! Indexing files: read, hash (an unchanged file is a no-op), extract,
//! chunk, embed in batches through Ollama's `/api/embed`, store. A file that
//! cannot be indexed is recorded as failed with the reason and never stops
//! the others.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::index::{Document, Index, NewChunk};
use super::{chunk, extract};
use crate::ollama::Ollama;

/// The embedding model used when none is configured.
pub const DEFAULT_EMBEDDING_MODEL: &str = "nomic-embed-text";
/// Inputs per `/api/embed` call.
const EMBED_BATCH: usize = 32;
/// Files larger than this are refused.
pub const MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Indexed { document: Uuid, chunks: u32 },
    Unchanged { document: Uuid },
    Failed { document: Option<Uuid>, reason: String },
    Skipped { reason: String },
}

/// Indexes files into a project's index.
#[derive(Debug)]
pub struct Ingester<'a> {
    pub index: &'a Index,
    pub ollama: &'a Ollama,
    pub model: String,
}

impl Ingester<'_> {
    /// Indexes one file's bytes. `source` identifies it across runs (its path,
    /// or `upload:<id>`); `id` is the document's id when it is new.
    pub async fn ingest_bytes(
        &self,
        project: Uuid,
        id: Uuid,
        source: &str,
        name: &str,
        bytes: &[u8],
    ) -> anyhow::Result<Outcome> {
        let sha256 = hex(&Sha256::digest(bytes));
        let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if let Some(existing) = self.index.by_source(project, source).await?
            && existing.meta.sha256 == sha256
            && existing.meta.embedding_model == self.model
            && existing.meta.status == marketer_protocol::documents::DocumentStatus::Indexed
        {
            return Ok(Outcome::Unchanged { document: existing.meta.id });
        }
        let fail = |reason: String, media_type: &str| {
            let media_type = media_type.to_owned();
            let sha256 = sha256.clone();
            async move {
                let doc = self
                    .index
                    .fail(id, project, source, name, size, &sha256, &media_type, &self.model, &reason)
                    .await?;
                Ok::<_, anyhow::Error>(Outcome::Failed { document: Some(doc.meta.id), reason })
            }
        };
        if size > MAX_FILE_BYTES {
            return fail(
                format!("the file is larger than {} MiB", MAX_FILE_BYTES / 1024 / 1024),
                "application/octet-stream",
            )
            .await;
        }
        let owned_name = name.to_owned();
        let owned = bytes.to_vec();
        let extracted = tokio::task::spawn_blocking(move || extract::extract(&owned_name, &owned)).await?;
        let extracted = match extracted {
            Ok(extracted) => extracted,
            Err(e) => {
                return fail(e.to_string(), extract::sniff(bytes).unwrap_or("application/octet-stream"))
                    .await;
            }
        };
        let chunks = chunk::chunks(&extracted.blocks);
        let texts: Vec<String> = chunks.iter().map(|c| c.text.clone()).collect();
        let embeddings = match self.embed(&texts).await {
            Ok(embeddings) => embeddings,
            Err(reason) => return fail(reason, extracted.media_type).await,
        };
        let new_chunks: Vec<NewChunk> = chunks
            .into_iter()
            .zip(embeddings)
            .map(|(c, embedding)| NewChunk { text: c.text, section: c.section, page: c.page, embedding })
            .collect();
        match self
            .index
            .store(id, project, source, name, size, &sha256, extracted.media_type, &self.model, &new_chunks)
            .await
        {
            Ok(doc) => Ok(Outcome::Indexed { document: doc.meta.id, chunks: doc.meta.chunk_count }),
            Err(e) => fail(format!("{e:#}"), extracted.media_type).await,
        }
    }

    /// Embeddings of `texts`, in batches.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, String> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(EMBED_BATCH) {
            let embedded = self.ollama.embed(&self.model, batch.to_vec()).await.map_err(|e| e.message)?;
            if embedded.embeddings.len() != batch.len() {
                return Err(format!(
                    "Ollama returned {} embeddings for {} texts",
                    embedded.embeddings.len(),
                    batch.len()
                ));
            }
            out.extend(embedded.embeddings);
        }
        Ok(out)
    }

    /// Re-embeds a project whose index uses another model than `self.model`.
    pub async fn reindex_if_needed(&self, project: Uuid) -> anyhow::Result<bool> {
        match self.index.project_model(project).await? {
            Some((model, _)) if model != self.model => {}
            _ => return Ok(false),
        }
        let chunks = self.index.chunk_texts(project).await?;
        let texts: Vec<String> = chunks.iter().map(|(_, t)| t.clone()).collect();
        let vectors =
            self.embed(&texts).await.map_err(|e| anyhow::anyhow!("re-embedding the project: {e}"))?;
        let pairs: Vec<(i64, Vec<f32>)> = chunks.iter().map(|(id, _)| *id).zip(vectors).collect();
        self.index.reembed(project, &self.model, &pairs).await?;
        Ok(true)
    }

    /// Indexes files and folders (recursively, skipping hidden entries),
    /// calling `report` for each file as it is done.
    pub async fn ingest_paths(
        &self,
        project: Uuid,
        paths: &[PathBuf],
        report: &mut dyn FnMut(&Path, &Outcome),
    ) -> anyhow::Result<()> {
        self.reindex_if_needed(project).await?;
        for path in files(paths)? {
            let outcome = match std::fs::read(&path) {
                Ok(bytes) => {
                    let source = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    self.ingest_bytes(project, Uuid::now_v7(), &source.to_string_lossy(), &name, &bytes)
                        .await?
                }
                Err(e) => Outcome::Skipped { reason: format!("cannot read it: {e}") },
            };
            report(&path, &outcome);
        }
        Ok(())
    }
}

/// Every file under `paths`, sorted, without hidden files and folders.
fn files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            walk(path, &mut out)?;
        } else {
            out.push(path.clone());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A document's line in `marketer-agent documents list`.
pub fn describe(doc: &Document) -> String {
    let status = match (&doc.meta.status, &doc.meta.error) {
        (marketer_protocol::documents::DocumentStatus::Failed, Some(error)) => format!("failed: {error}"),
        (status, _) => status.as_str().to_owned(),
    };
    format!(
        "{}  {}  {}  {} chunks  {}  ({})",
        doc.meta.id, doc.meta.project_id, doc.meta.name, doc.meta.chunk_count, status, doc.source
    )
}
