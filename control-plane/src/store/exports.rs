//! A whole tenant's export (`service::tenant_exports` decides who may and
//! writes the ZIP): its record and the lease of the replica producing it,
//! and the dump of the tenant's rows as JSON, table by table, in one read
//! snapshot.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use super::{NewAuditEvent, Result};
use crate::domain::Timestamp;

/// Where an export is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema, strum::EnumString, strum::IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ExportState {
    Queued,
    Running,
    Ready,
    Failed,
    /// Downloaded (once); the file is deleted.
    Downloaded,
    /// Not downloaded in time; the file is deleted.
    Expired,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantExport {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `None` once the person's account is erased.
    pub requested_by: Option<Uuid>,
    pub state: ExportState,
    /// 0 to 100.
    pub progress: i64,
    /// What is being read, or what was.
    pub step: String,
    pub error: Option<String>,
    pub size_bytes: Option<i64>,
    /// SHA-256 of the ZIP, hex.
    pub sha256: Option<String>,
    pub created_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// Until when it can be downloaded.
    pub expires_at: Option<Timestamp>,
    pub downloaded_at: Option<Timestamp>,
    /// Where the ZIP is stored (each attempt its own key).
    #[serde(skip)]
    pub file_key: Option<String>,
}

/// A finished export's file.
#[derive(Debug, Clone)]
pub struct ExportReady {
    pub file_key: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub now: Timestamp,
    pub expires_at: Timestamp,
}

/// A piece of a tenant's dump.
#[derive(Debug)]
pub enum DumpChunk {
    /// The tables that follow, in order (first).
    Tables(Vec<String>),
    /// Rows of a table, each a JSON object (a table's rows may come in
    /// several chunks; a table without rows sends one empty chunk).
    Rows { table: String, rows: Vec<String> },
}

#[async_trait]
pub trait ExportStore: Send + Sync {
    /// Records a queued export; `audit` is written with it. `Conflict`
    /// (`export_in_progress`) when one of the tenant's is queued or running.
    async fn create_export(&self, export: &TenantExport, audit: &NewAuditEvent) -> Result<()>;
    async fn tenant_export(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<TenantExport>>;
    /// The tenant's exports, newest first (at most 20).
    async fn tenant_exports(&self, tenant_id: Uuid) -> Result<Vec<TenantExport>>;
    /// Takes a queued export, or a running one whose lease lapsed (its
    /// replica died), for `owner` until `lease_until`.
    async fn claim_export(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<TenantExport>>;
    /// Progress of a claimed export; extends the lease. `false` when the
    /// export is no longer this owner's.
    async fn export_progress(
        &self,
        id: Uuid,
        owner: &str,
        progress: i64,
        step: &str,
        lease_until: Timestamp,
    ) -> Result<bool>;
    /// The ZIP is stored under `file_key`: ready to download until
    /// `expires_at`. `false` when the export is no longer this owner's (the
    /// caller deletes its file).
    async fn export_ready(&self, id: Uuid, owner: &str, ready: &ExportReady) -> Result<bool>;
    async fn export_failed(&self, id: Uuid, owner: &str, error: &str, now: Timestamp) -> Result<()>;
    /// Marks a ready export downloaded by its requester, once; `audit` is
    /// written with it. `NotFound` for anyone else; `Conflict` with the
    /// reason (`not_ready`, `already_downloaded`, `expired`) otherwise.
    async fn take_export_download(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        user_id: Uuid,
        now: Timestamp,
        audit: &NewAuditEvent,
    ) -> Result<TenantExport>;
    /// Ready exports past their expiry (or whose requester's account is
    /// gone) become expired; returns the exports whose stored file is to be
    /// deleted (downloaded or expired): `(export, file key)`.
    async fn exports_to_delete(&self, now: Timestamp) -> Result<Vec<(Uuid, String)>>;
    /// The export's file is deleted.
    async fn export_file_deleted(&self, id: Uuid) -> Result<()>;
    /// The tenant's rows, table by table, as JSON objects, in one read
    /// snapshot, without secrets (sealed values, hashes, verifiers), sent
    /// through `out` a page at a time.
    async fn dump_tenant(&self, tenant_id: Uuid, out: tokio::sync::mpsc::Sender<DumpChunk>) -> Result<()>;
}
