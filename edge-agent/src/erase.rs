//! Deleting what this agent holds when its tenant is erased.
//!
//! The control plane answers `Hello` with `EraseTenant` once the tenant is
//! gone. The agent then stops its jobs and deletes the tenant's data on
//! this host: the document index (rewritten empty, with its log emptied,
//! so no deleted page of text remains), the outbox of undelivered job
//! events, and the state file; it reports the counts (`TenantErased`),
//! and once the control plane has recorded them it forgets its identity
//! (certificate, key, configuration) and exits with status 3. The local
//! policy file is the operator's, not the tenant's, and stays.

use std::path::Path;

use marketer_protocol::TenantErased;
use uuid::Uuid;

use crate::config::AgentFiles;
use crate::documents::Index;
use crate::jobs::Outbox;

/// The agent stopped because its tenant was erased.
#[derive(Debug, thiserror::Error)]
#[error(
    "this agent's organisation was erased: the agent deleted what it held for it ({0}) and forgot its identity. To use this host for another organisation, enroll it again with `marketer-agent enroll`"
)]
pub struct Erased(pub String);

/// Deletes the tenant's data on this host and says what went.
pub async fn erase_data(
    files: &AgentFiles,
    index: &Index,
    outbox: &Outbox,
    erasure_id: Uuid,
) -> anyhow::Result<TenantErased> {
    let before = size_of(&files.dir);
    let (documents, chunks) = index.erase_all().await?;
    let outbox_entries = outbox.clear();
    outbox.flush().await;
    let mut removed = outbox_entries;
    // Anything else left in the outbox's folder (a file whose removal
    // failed, a half-written one).
    if let Ok(entries) = std::fs::read_dir(files.dir.join("outbox")) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    match std::fs::remove_file(files.state()) {
        Ok(()) => removed += 1,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow::Error::new(e).context("removing the agent state")),
    }
    let after = size_of(&files.dir);
    Ok(TenantErased {
        erasure_id,
        documents,
        chunks,
        outbox_entries,
        files: removed,
        bytes: before.saturating_sub(after),
    })
}

/// Forgets the identity: the certificate and key, the CA, the
/// configuration and the state.
pub fn forget_identity(files: &AgentFiles) -> anyhow::Result<()> {
    for path in [files.identity(), files.config(), files.ca(), files.state()] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("removing {}", path.display()))),
        }
    }
    Ok(())
}

/// The bytes of the files under `dir`.
fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
