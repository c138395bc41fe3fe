//! A whole organisation's export (issue 19): an owner asks
//! (`POST /tenants/{id}/exports`), a background worker on whichever replica
//! claims it (a lease renewed as it goes, taken over when it lapses) reads
//! the tenant's rows in one snapshot and its stored files into a ZIP:
//!
//! - `manifest.json`: what the archive holds (each table's file and row
//!   count, each stored file's size and SHA-256) and what it leaves out;
//! - `tables/<table>.json`: the tenant's rows of each table, as JSON
//!   objects, secrets left out (sealed values, hashes, verifiers); tables
//!   are found in the schema, so nothing new is forgotten;
//! - `files/…`: the stored files (logo, property photos, uploads).
//!
//! The ZIP is stored (`tenants/<id>/exports/<export>`), downloadable once
//! by the person who asked, for 24 hours; then the notifier's hourly sweep
//! deletes it. Asking, the download, and a failure are audited.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{App, Principal, TenantAccess, actions};
use crate::domain::{Permission, Timestamp, new_id};
use crate::error::{Error, Result};
use crate::storage::FileStorage;
use crate::store::{DumpChunk, ExportState, Store, TenantExport};

/// How long a ready export can be downloaded.
pub const VALID_FOR: time::Duration = time::Duration::hours(24);
/// A worker's hold on an export, renewed at every table.
const LEASE: time::Duration = time::Duration::minutes(2);
/// How often the worker looks for work when nobody wakes it.
const POLL: Duration = Duration::from_secs(10);

/// Renew the lease at least this often while working.
const RENEW_EVERY: Duration = Duration::from_secs(20);

/// Where an attempt at an export stores its ZIP: inside the tenant's
/// folder, so erasing the tenant deletes it too; each attempt its own key,
/// so a replica that lost the export cannot overwrite the winner's file.
fn export_key(tenant_id: Uuid, export_id: Uuid, attempt: Uuid) -> String {
    format!("tenants/{tenant_id}/exports/{export_id}-{attempt}")
}

impl App {
    /// Asks for an export of the whole organisation (owners, as a person).
    pub async fn request_tenant_export(&self, access: &TenantAccess) -> Result<TenantExport> {
        access.require(Permission::TenantManage)?;
        let Principal::User { user, .. } = &access.caller.principal else {
            return Err(Error::Forbidden(
                "an organisation's export is downloaded by a person, not an API key".into(),
            ));
        };
        let export = TenantExport {
            id: new_id(),
            tenant_id: access.tenant_id,
            requested_by: Some(user.id),
            state: ExportState::Queued,
            progress: 0,
            step: "queued".into(),
            error: None,
            size_bytes: None,
            sha256: None,
            created_at: Timestamp::now(),
            finished_at: None,
            expires_at: None,
            downloaded_at: None,
            file_key: None,
        };
        let audit = access.audit(actions::TENANT_EXPORT).resource("tenant_export", export.id);
        self.store.create_export(&export, &audit).await?;
        self.exports.wake();
        Ok(export)
    }

    /// The organisation's exports, newest first (owners).
    pub async fn tenant_exports(&self, access: &TenantAccess) -> Result<Vec<TenantExport>> {
        access.require(Permission::TenantManage)?;
        Ok(self.store.tenant_exports(access.tenant_id).await?)
    }

    pub async fn tenant_export(&self, access: &TenantAccess, id: Uuid) -> Result<TenantExport> {
        access.require(Permission::TenantManage)?;
        self.store.tenant_export(access.tenant_id, id).await?.ok_or(Error::NotFound("export"))
    }

    /// The export's ZIP, once, for the person who asked for it. The file
    /// is opened before the download is recorded, so a missing file does
    /// not use the one download up.
    pub async fn download_tenant_export(
        &self,
        access: &TenantAccess,
        id: Uuid,
    ) -> Result<(TenantExport, tokio::fs::File)> {
        access.require(Permission::TenantManage)?;
        let user = access.caller.user()?;
        let found = self.store.tenant_export(access.tenant_id, id).await?;
        let key = found
            .as_ref()
            .filter(|e| e.requested_by == Some(user.id) && e.state == ExportState::Ready)
            .and_then(|e| e.file_key.clone());
        let file = match key {
            Some(key) => self.files.open(&key).await.map_err(Error::internal)?,
            None => None,
        };
        let audit = access.audit(actions::TENANT_EXPORT_DOWNLOAD).resource("tenant_export", id);
        let export = self
            .store
            .take_export_download(access.tenant_id, id, user.id, Timestamp::now(), &audit)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => Error::NotFound("export"),
                crate::store::StoreError::Conflict { code: "not_ready", message } => {
                    Error::Conflict { code: "not_ready", message }
                }
                crate::store::StoreError::Conflict { code, message } => Error::Gone { code, message },
                other => other.into(),
            })?;
        let file = file.ok_or_else(|| {
            Error::internal(anyhow::anyhow!("the export {id} is ready but its file is missing"))
        })?;
        Ok((export, file))
    }
}

/// Produces queued exports, one at a time on each replica.
pub struct ExportWorker {
    store: Arc<dyn Store>,
    files: Arc<dyn FileStorage>,
    owner: String,
    wake: Notify,
}

impl std::fmt::Debug for ExportWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportWorker").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl ExportWorker {
    pub fn new(store: Arc<dyn Store>, files: Arc<dyn FileStorage>) -> Self {
        let owner = format!("{}:{}", gethostname::gethostname().to_string_lossy(), new_id());
        Self { store, files, owner, wake: Notify::new() }
    }

    /// Something was queued: look now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let now = Timestamp::now();
            match self.store.claim_export(&self.owner, now, now + LEASE).await {
                Ok(Some(export)) => {
                    self.produce(&export).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "could not look for exports to prepare"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn produce(&self, export: &TenantExport) {
        let started = std::time::Instant::now();
        let key = export_key(export.tenant_id, export.id, new_id());
        let outcome = match self.build(export, &key).await {
            Ok((size, sha256)) => {
                let now = Timestamp::now();
                let ready = crate::store::ExportReady {
                    file_key: key.clone(),
                    size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
                    sha256,
                    now,
                    expires_at: now + VALID_FOR,
                };
                self.store.export_ready(export.id, &self.owner, &ready).await.map_err(anyhow::Error::from)
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(true) => {
                let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                tracing::info!(export_id = %export.id, tenant_id = %export.tenant_id, ms, "an organisation's export is ready");
                return;
            }
            // Taken over, or the organisation erased meanwhile.
            Ok(false) => {
                tracing::warn!(export_id = %export.id, "an export was no longer this replica's to finish");
            }
            Err(e) => {
                tracing::error!(export_id = %export.id, error = %format!("{e:#}"), "an organisation's export failed");
                let message = "the export could not be prepared; the server's log says why";
                if let Err(e) =
                    self.store.export_failed(export.id, &self.owner, message, Timestamp::now()).await
                {
                    tracing::error!(export_id = %export.id, error = %e, "could not record an export's failure");
                }
            }
        }
        // Whatever this attempt stored is nobody's.
        if let Err(e) = self.files.delete(&key).await {
            tracing::error!(export_id = %export.id, error = %format!("{e:#}"), "could not delete an abandoned export's file");
        }
    }

    /// Renews the lease (and says where the export is); an error when the
    /// export is no longer this replica's (taken over, or the organisation
    /// erased).
    async fn renew(&self, export: &TenantExport, progress: i64, step: &str) -> anyhow::Result<()> {
        let lease = Timestamp::now() + LEASE;
        if self.store.export_progress(export.id, &self.owner, progress, step, lease).await? {
            Ok(())
        } else {
            anyhow::bail!("the export is no longer this replica's")
        }
    }

    /// Writes the ZIP to a temporary file and stores it under `key`; its
    /// size and SHA-256.
    async fn build(&self, export: &TenantExport, key: &str) -> anyhow::Result<(u64, String)> {
        let (rows_in, mut rows_out) = mpsc::channel::<DumpChunk>(4);
        let (parts_in, parts_out) = mpsc::channel::<Part>(4);
        let scratch = tempfile::NamedTempFile::new()?;
        let path = scratch.path().to_owned();
        let manifest = Manifest::start(export);
        let writer = tokio::task::spawn_blocking(move || write_zip(&path, manifest, parts_out));
        let store = self.store.clone();
        let tenant_id = export.tenant_id;
        let dump = tokio::spawn(async move { store.dump_tenant(tenant_id, rows_in).await });
        let mut total = 1usize;
        let mut done = 0usize;
        let mut current = String::new();
        let mut renewed = std::time::Instant::now();
        while let Some(chunk) = rows_out.recv().await {
            match chunk {
                DumpChunk::Tables(tables) => total = tables.len().max(1),
                DumpChunk::Rows { table, rows } => {
                    if table != current || renewed.elapsed() >= RENEW_EVERY {
                        if table != current && !current.is_empty() {
                            done += 1;
                        }
                        current.clone_from(&table);
                        // Tables are most of the work; the files the rest.
                        let progress = i64::try_from(done * 90 / total).unwrap_or(90);
                        self.renew(export, progress, &table).await?;
                        renewed = std::time::Instant::now();
                    }
                    if parts_in.send(Part::Rows { table, rows }).await.is_err() {
                        break;
                    }
                }
            }
        }
        drop(rows_out);
        if let Err(e) = dump.await? {
            drop(parts_in);
            writer.await??;
            return Err(e.into());
        }
        self.renew(export, 90, "files").await?;
        let mut renewed = std::time::Instant::now();
        for folder in crate::storage::tenant_folders(export.tenant_id) {
            for stored in self.files.list(&folder).await? {
                if stored.starts_with(&format!("tenants/{}/exports/", export.tenant_id)) {
                    continue;
                }
                if renewed.elapsed() >= RENEW_EVERY {
                    self.renew(export, 90, "files").await?;
                    renewed = std::time::Instant::now();
                }
                let Some(bytes) = self.files.get(&stored).await? else { continue };
                if parts_in.send(Part::File { key: stored, bytes }).await.is_err() {
                    break;
                }
            }
        }
        drop(parts_in);
        let (size, sha256) = writer.await??;
        // Still this replica's, and the organisation still there, before the
        // file is stored; `produce` deletes it if that changes after.
        self.renew(export, 95, "storing").await?;
        self.files.put_file(key, scratch.path()).await?;
        Ok((size, sha256))
    }
}

/// Deletes the files of exports downloaded or expired (the notifier's
/// hourly sweep).
pub async fn delete_finished(store: &dyn Store, files: &dyn FileStorage) {
    match store.exports_to_delete(Timestamp::now()).await {
        Ok(done) => {
            for (id, key) in done {
                match files.delete(&key).await {
                    Ok(()) => {
                        if let Err(e) = store.export_file_deleted(id).await {
                            tracing::error!(export_id = %id, error = %e, "could not record an export's file as deleted");
                        }
                    }
                    Err(e) => {
                        tracing::error!(export_id = %id, error = %format!("{e:#}"), "could not delete an export's file");
                    }
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "could not look for exports to delete"),
    }
}

/// What the writer puts into the ZIP.
enum Part {
    Rows { table: String, rows: Vec<String> },
    File { key: String, bytes: Vec<u8> },
}

#[derive(serde::Serialize)]
struct Manifest {
    format: &'static str,
    export_id: Uuid,
    tenant_id: Uuid,
    created_at: String,
    tables: Vec<TableEntry>,
    files: Vec<FileEntry>,
    not_included: Vec<&'static str>,
}

#[derive(serde::Serialize)]
struct TableEntry {
    table: String,
    file: String,
    rows: u64,
}

#[derive(serde::Serialize)]
struct FileEntry {
    path: String,
    bytes: u64,
    sha256: String,
}

impl Manifest {
    fn start(export: &TenantExport) -> Self {
        Self {
            format: "marketer-tenant-export/1",
            export_id: export.id,
            tenant_id: export.tenant_id,
            created_at: Timestamp::now().to_rfc3339_fixed(),
            tables: Vec::new(),
            files: Vec::new(),
            not_included: vec![
                "secrets: sealed credentials, password and token hashes, verifiers (they would not work elsewhere)",
                "members' accounts beyond their membership (each person exports their own: Account → Your data)",
                "documents indexed on your agents: they never left your hosts",
            ],
        }
    }
}

/// Writes the parts as they come, then the manifest; the ZIP's size and
/// SHA-256.
fn write_zip(
    path: &Path,
    mut manifest: Manifest,
    mut parts: mpsc::Receiver<Part>,
) -> anyhow::Result<(u64, String)> {
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    let mut open: Option<String> = None;
    while let Some(part) = parts.blocking_recv() {
        match part {
            Part::Rows { table, rows } => {
                if open.as_deref() != Some(table.as_str()) {
                    if open.is_some() {
                        zip.write_all(b"\n]\n")?;
                    }
                    let name = format!("tables/{table}.json");
                    zip.start_file(name.as_str(), options)?;
                    zip.write_all(b"[")?;
                    manifest.tables.push(TableEntry { table: table.clone(), file: name, rows: 0 });
                    open = Some(table);
                }
                let entry = manifest.tables.last_mut().expect("a table was started");
                for row in rows {
                    zip.write_all(if entry.rows == 0 { b"\n" } else { b",\n" })?;
                    zip.write_all(row.as_bytes())?;
                    entry.rows += 1;
                }
            }
            Part::File { key, bytes } => {
                if open.take().is_some() {
                    zip.write_all(b"\n]\n")?;
                }
                // The tenant's id is the archive's; the rest of the key
                // says what the file is.
                let relative = key.replacen(&format!("/{}", manifest.tenant_id), "", 1);
                let name = format!("files/{relative}");
                zip.start_file(name.as_str(), options)?;
                zip.write_all(&bytes)?;
                manifest.files.push(FileEntry {
                    path: name,
                    bytes: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                    sha256: hex(&Sha256::digest(&bytes)),
                });
            }
        }
    }
    if open.is_some() {
        zip.write_all(b"\n]\n")?;
    }
    zip.start_file("manifest.json", options)?;
    zip.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    let mut out = zip.finish()?;
    out.flush()?;
    drop(out);
    let mut hash = Sha256::new();
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buffer)?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
        size += u64::try_from(n).unwrap_or(0);
    }
    Ok((size, hex(&hash.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
