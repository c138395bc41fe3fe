//! Persistence of document metadata. The documents themselves live on the
//! edge agents that index them; the control plane keeps what they report
//! (name, size, hash, type, status, chunk count) and, for uploads, the
//! storage key of the file until the document is deleted.
//!
//! A document an agent holds is deleted in two steps: a person deletes it
//! (it disappears from every list at once and `deleted_at` is set), then
//! the agent confirms it removed it from its index, and the row goes.

use async_trait::async_trait;
use marketer_protocol::documents::{DocumentReport, DocumentStatus, RefusedDocument};
use serde::Serialize;
use uuid::Uuid;

use super::{Agent, NewAuditEvent, NewJob, Page, PageRequest, Result};
use crate::domain::Timestamp;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    utoipa::ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum DocumentOrigin {
    /// Uploaded through the API (cloud_allowed projects).
    Upload,
    /// Ingested on an agent host (`marketer-agent ingest`).
    Edge,
}

/// A document as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub media_type: String,
    pub origin: DocumentOrigin,
    pub storage_key: Option<String>,
    /// The agent whose index holds it.
    pub agent_id: Option<Uuid>,
    pub status: DocumentStatus,
    pub error: Option<String>,
    pub chunk_count: i64,
    pub embedding_model: Option<String>,
    pub indexed_at: Option<Timestamp>,
    /// An upload's ingest job.
    pub job_id: Option<Uuid>,
    pub created_by: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An uploaded file, stored, about to be indexed by `job`.
#[derive(Debug, Clone)]
pub struct NewUpload {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub media_type: String,
    pub storage_key: String,
    pub created_by: Option<Uuid>,
}

/// What deleting a document leaves to do outside the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedDocument {
    /// The upload's file, to remove from storage.
    pub storage_key: Option<String>,
    /// An ingest job that may still be queued or running, to cancel.
    pub job_id: Option<Uuid>,
    /// The agent to tell to remove it from its index; the row stays until
    /// it confirms.
    pub agent_id: Option<Uuid>,
}

/// What storing an agent's report decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOutcome {
    /// Documents not accepted, and why (the agent marks them failed).
    pub refused: Vec<RefusedDocument>,
    /// Files of uploads that are gone for good, to remove from storage.
    pub released_files: Vec<String>,
    /// Documents deleted by a person that the agent still holds: tell it
    /// again to remove them.
    pub to_remove: Vec<Uuid>,
}

#[async_trait]
pub trait DocumentStore: Send + Sync {
    /// Records an upload and its ingest job in one transaction.
    /// `NotFound` if the project is not the tenant's.
    async fn create_upload(
        &self,
        upload: &NewUpload,
        job: &NewJob,
        audit: &NewAuditEvent,
    ) -> Result<Document>;
    /// A document of the tenant, unless deleted.
    async fn document(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Document>>;
    /// A project's documents, newest first, without the deleted.
    async fn documents(&self, tenant_id: Uuid, project_id: Uuid, page: PageRequest)
    -> Result<Page<Document>>;
    /// Indexed documents of a project (for routing its work).
    async fn indexed_documents(&self, tenant_id: Uuid, project_id: Uuid) -> Result<i64>;
    /// Deletes a document: at once if no agent holds it, else marked until
    /// the agent confirms. `NotFound` if it is not the tenant's.
    async fn delete_document(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        audit: &NewAuditEvent,
    ) -> Result<DeletedDocument>;
    /// Stores what an agent reported about its index.
    async fn apply_document_report(
        &self,
        agent: &Agent,
        report: &DocumentReport,
        now: Timestamp,
    ) -> Result<ReportOutcome>;
    /// Documents a person deleted that `agent_id` still holds.
    async fn pending_removals(&self, agent_id: Uuid) -> Result<Vec<Uuid>>;
}
