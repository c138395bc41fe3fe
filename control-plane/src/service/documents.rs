//! Documents of a project: uploads (for `cloud_allowed` projects), the
//! metadata agents report for documents ingested on their hosts, and
//! deletion, which reaches the agent that holds the document.
//!
//! An `edge_only` project's documents never come here: the upload answers
//! 409 and explains `marketer-agent ingest`. What an upload stores is the
//! file, until it is deleted; its text is only ever extracted on an agent.

use marketer_pipeline::formats;
use marketer_protocol::documents::DocumentStatus;
use marketer_protocol::{IngestDocument, JobSpec, ServerMessage};
use serde::Serialize;
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::jobs::{DEFAULT_PRIORITY, submitter};
use super::{App, TenantAccess, actions};
use crate::domain::{ComplianceMode, LlmPolicy, Permission, Timestamp, new_id};
use crate::error::{Error, FoundExt, Result};
use crate::storage::document_key;
use crate::store::{
    CancelOutcome, Document, DocumentOrigin, NewJob, NewUpload, Page, PageRequest, Route, StoreError,
};

/// The largest upload, by default.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;
/// Room for the multipart framing and the other fields around an upload's
/// file, when its request's declared size is checked.
pub const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;
/// The embedding model an upload is indexed with when its project has no
/// index yet (an agent keeps a project's existing model).
pub const EMBEDDING_MODEL: &str = "nomic-embed-text:latest";
/// Indexing a large PDF on a small machine takes a while.
const INGEST_TIMEOUT_SECONDS: i64 = 1800;
const INGEST_ATTEMPTS: i64 = 3;

/// A document as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub size_bytes: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    pub media_type: String,
    /// `upload` (through the API) or `edge` (ingested on an agent host).
    pub origin: DocumentOrigin,
    /// `pending`, `indexed` or `failed` (with `error`).
    #[schema(value_type = String, example = "indexed")]
    pub status: String,
    pub error: Option<String>,
    pub chunk_count: i64,
    pub embedding_model: Option<String>,
    pub indexed_at: Option<Timestamp>,
    /// The agent whose index holds it.
    pub agent_id: Option<Uuid>,
    /// An upload's ingest job.
    pub job_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<Document> for DocumentView {
    fn from(d: Document) -> Self {
        Self {
            id: d.id,
            project_id: d.project_id,
            name: d.name,
            size_bytes: d.size_bytes,
            sha256: d.sha256,
            media_type: d.media_type,
            origin: d.origin,
            status: d.status.as_str().to_owned(),
            error: d.error,
            chunk_count: d.chunk_count,
            embedding_model: d.embedding_model,
            indexed_at: d.indexed_at,
            agent_id: d.agent_id,
            job_id: d.job_id,
            created_by: d.created_by,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// An uploaded file as the API received it.
#[derive(Debug)]
pub struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

impl App {
    pub async fn upload_document(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        upload: Upload,
    ) -> Result<DocumentView> {
        access.require(Permission::DocumentsUpload)?;
        let project = self.store.project(access.tenant_id, project_id).await.found("project")?;
        let tenant = self.store.tenant(access.tenant_id).await.found("tenant")?;
        if tenant.compliance_mode == ComplianceMode::Hipaa || project.llm_policy == LlmPolicy::EdgeOnly {
            return Err(Error::Conflict {
                code: "edge_only_project",
                message: format!(
                    "this project is edge_only, so its documents never leave your network and cannot be uploaded. \
                     Index them on the agent host instead: marketer-agent ingest PATH... --project {project_id}"
                ),
            });
        }
        let name = file_name(&upload.file_name)?;
        if upload.bytes.is_empty() {
            return Err(Error::invalid("file", "is empty"));
        }
        let media_type = formats::classify(&name, &upload.bytes)
            .map_err(|e| Error::UnsupportedMediaType(format!("file: {e}")))?;
        let id = new_id();
        let sha256: String = Sha256::digest(&upload.bytes).iter().map(|b| format!("{b:02x}")).collect();
        let size_bytes = i64::try_from(upload.bytes.len()).unwrap_or(i64::MAX);
        let key = document_key(access.tenant_id, id);
        // The index stays in one place: with an agent that holds the
        // project's documents already, the upload goes to it.
        let agents = self.store.agents(access.tenant_id, PageRequest { after: None, limit: 1000 }).await?;
        let index_project_id = agents
            .items
            .iter()
            .any(|a| a.revoked_at.is_none() && a.projects.contains(&project_id))
            .then_some(project_id);
        let job = NewJob {
            id: new_id(),
            tenant_id: access.tenant_id,
            spec: JobSpec::Ingest {
                model: EMBEDDING_MODEL.into(),
                document: IngestDocument {
                    document_id: id,
                    project_id,
                    name: name.clone(),
                    media_type: media_type.to_owned(),
                    size_bytes: u64::try_from(size_bytes).unwrap_or(0),
                    sha256: sha256.clone(),
                },
            },
            labels: Default::default(),
            priority: DEFAULT_PRIORITY,
            not_before: None,
            timeout_seconds: INGEST_TIMEOUT_SECONDS,
            queue_timeout_seconds: None,
            max_attempts: INGEST_ATTEMPTS,
            idempotency_key: None,
            request_hash: Vec::new(),
            created_by: submitter(access),
            activity_id: None,
            route: Route::Edge,
            index_project_id,
        };
        let new = NewUpload {
            id,
            tenant_id: access.tenant_id,
            project_id,
            name: name.clone(),
            size_bytes,
            sha256: sha256.clone(),
            media_type: media_type.to_owned(),
            storage_key: key.clone(),
            created_by: access.caller.creator_id(),
        };
        let audit = access.audit(actions::DOCUMENT_UPLOAD).resource("document", id).details(serde_json::json!({
            "project_id": project_id, "name": name, "size_bytes": size_bytes, "sha256": sha256, "media_type": media_type,
        }));
        self.files.put(&key, &upload.bytes).await.map_err(Error::internal)?;
        let created = match self.store.create_upload(&new, &job, &audit).await {
            Ok(created) => created,
            Err(e) => {
                // Nothing refers to the file: do not keep it.
                if let Err(e) = self.files.delete(&key).await {
                    tracing::warn!(key, error = %e, "could not remove the file of a failed upload");
                }
                return Err(match e {
                    StoreError::NotFound => Error::NotFound("project"),
                    other => other.into(),
                });
            }
        };
        self.jobs.queued();
        Ok(created.into())
    }

    pub async fn documents_page(
        &self,
        access: &TenantAccess,
        project_id: Uuid,
        page: PageRequest,
    ) -> Result<Page<DocumentView>> {
        access.require(Permission::DocumentsRead)?;
        self.store.project(access.tenant_id, project_id).await.found("project")?;
        let page = self.store.documents(access.tenant_id, project_id, page).await?;
        Ok(Page { items: page.items.into_iter().map(DocumentView::from).collect(), next: page.next })
    }

    pub async fn document(&self, access: &TenantAccess, project_id: Uuid, id: Uuid) -> Result<DocumentView> {
        access.require(Permission::DocumentsRead)?;
        Ok(self.project_document(access, project_id, id).await?.into())
    }

    /// Deletes a document: its metadata and file here at once, its chunks on
    /// the agent that holds it as soon as that agent is connected.
    pub async fn delete_document(&self, access: &TenantAccess, project_id: Uuid, id: Uuid) -> Result<()> {
        access.require(Permission::DocumentsDelete)?;
        let document = self.project_document(access, project_id, id).await?;
        let audit =
            access.audit(actions::DOCUMENT_DELETE).resource("document", id).details(serde_json::json!({
                "project_id": project_id, "name": document.name, "agent_id": document.agent_id,
            }));
        let deleted = match self.store.delete_document(access.tenant_id, id, &audit).await {
            Err(StoreError::NotFound) => return Err(Error::NotFound("document")),
            other => other?,
        };
        if let Some(job_id) = deleted.job_id
            && document.status == DocumentStatus::Pending
        {
            let audit = access.audit(actions::JOB_CANCEL).resource("job", job_id);
            match self.store.cancel_job(access.tenant_id, job_id, Timestamp::now(), &audit).await {
                Ok(CancelOutcome::Cancelled(transition)) => {
                    self.jobs.apply(std::slice::from_ref(&*transition), "its document was deleted");
                }
                Ok(CancelOutcome::AlreadyFinished(_)) | Err(StoreError::NotFound) => {}
                Err(e) => {
                    tracing::warn!(%job_id, error = %e, "could not cancel the ingest job of a deleted document");
                }
            }
        }
        if let Some(key) = &deleted.storage_key
            && let Err(e) = self.files.delete(key).await
        {
            tracing::warn!(key, error = %e, "could not remove a deleted document's file");
        }
        if let Some(agent_id) = deleted.agent_id {
            // Not connected: the agent hears of it when it connects.
            self.hub.deliver(agent_id, ServerMessage::RemoveDocuments { ids: vec![id] });
        }
        Ok(())
    }

    async fn project_document(&self, access: &TenantAccess, project_id: Uuid, id: Uuid) -> Result<Document> {
        self.store
            .document(access.tenant_id, id)
            .await?
            .filter(|d| d.project_id == project_id)
            .ok_or(Error::NotFound("document"))
    }
}

/// The file's name without any directories, checked.
fn file_name(raw: &str) -> Result<String> {
    let name = raw.rsplit(['/', '\\']).next().unwrap_or(raw).trim();
    if name.is_empty() || name == "." || name == ".." {
        return Err(Error::invalid("file", "needs a file name (the multipart part's filename)"));
    }
    if name.chars().count() > 255 || name.chars().any(char::is_control) {
        return Err(Error::invalid("file", "the file name must be at most 255 printable characters"));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_directories() {
        assert_eq!(file_name("C:\\Users\\me\\guide.pdf").unwrap(), "guide.pdf");
        assert_eq!(file_name("../../etc/passwd").unwrap(), "passwd");
        assert!(file_name("dir/").is_err());
        assert!(file_name("a\u{0}b").is_err());
    }
}
