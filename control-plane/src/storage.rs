//! Where uploaded files are kept. [`FileStorage`] is the interface; the
//! local file system under the data directory is the implementation that
//! needs nothing installed. An S3-compatible store fits behind the same
//! interface (keys are already object-store shaped: `documents/<tenant>/<id>`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use async_trait::async_trait;
use uuid::Uuid;

#[async_trait]
pub trait FileStorage: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key`, replacing what was there; readers see the
    /// old file or the new one, never a part.
    async fn put(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()>;
    /// The bytes under `key`, or `None`.
    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Removes `key`; a missing key is not an error.
    async fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Removes every file under the folder `prefix` (a key without its last
    /// part) and returns how many there were; a missing folder is not an
    /// error.
    async fn delete_folder(&self, prefix: &str) -> anyhow::Result<u64>;
    /// The keys of the files under the folder `prefix`, sorted.
    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>>;
    /// Stores the file at `path` (a large one: it is not read into memory)
    /// under `key`.
    async fn put_file(&self, key: &str, path: &Path) -> anyhow::Result<()>;
    /// The file under `key`, opened for reading, or `None`.
    async fn open(&self, key: &str) -> anyhow::Result<Option<tokio::fs::File>>;
}

/// The folders that hold a tenant's files: every key the control plane
/// makes for a tenant starts with one of them (documents, branding,
/// property photos), so erasing a tenant deletes exactly these.
pub fn tenant_folders(tenant_id: Uuid) -> [String; 3] {
    [format!("documents/{tenant_id}"), format!("tenants/{tenant_id}"), format!("properties/{tenant_id}")]
}

/// The key of an uploaded document's file.
pub fn document_key(tenant_id: Uuid, document_id: Uuid) -> String {
    format!("documents/{tenant_id}/{document_id}")
}

/// Files in a directory (`<data dir>/files`), readable by the owner only.
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The path of `key`. Keys are made by the control plane, but a key that
    /// could leave the root is refused all the same.
    fn path(&self, key: &str) -> anyhow::Result<PathBuf> {
        let valid = !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        anyhow::ensure!(valid, "invalid storage key {key:?}");
        Ok(self.root.join(key))
    }
}

#[async_trait]
impl FileStorage for LocalStorage {
    async fn put(&self, key: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.path(key)?;
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || write_private(&path, &bytes)).await?
    }

    async fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }

    async fn list(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let root = self.root.clone();
        let start = self.path(prefix)?;
        tokio::task::spawn_blocking(move || {
            let mut keys = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
                };
                for entry in entries {
                    let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
                    let path = entry.path();
                    if entry.file_type()?.is_dir() {
                        stack.push(path);
                    } else if let Ok(relative) = path.strip_prefix(&root) {
                        let key = relative.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                        // Half-written files (`.<id>.tmp`) are not keys.
                        if !key.rsplit('/').next().is_some_and(|name| name.starts_with('.')) {
                            keys.push(key);
                        }
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await?
    }

    async fn put_file(&self, key: &str, source: &Path) -> anyhow::Result<()> {
        let path = self.path(key)?;
        let source = source.to_owned();
        tokio::task::spawn_blocking(move || {
            let dir = path.parent().context("a storage path without a directory")?;
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let temporary = dir.join(format!(".{}.tmp", Uuid::now_v7()));
            let result = (|| {
                std::fs::copy(&source, &temporary)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
                }
                std::fs::File::open(&temporary)?.sync_all()?;
                std::fs::rename(&temporary, &path)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&temporary);
            }
            result.with_context(|| format!("writing {}", path.display()))
        })
        .await?
    }

    async fn open(&self, key: &str) -> anyhow::Result<Option<tokio::fs::File>> {
        let path = self.path(key)?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
        }
    }

    async fn delete_folder(&self, prefix: &str) -> anyhow::Result<u64> {
        let path = self.path(prefix)?;
        tokio::task::spawn_blocking(move || {
            let mut files = 0u64;
            let mut stack = vec![path.clone()];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
                };
                for entry in entries {
                    let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
                    if entry.file_type()?.is_dir() {
                        stack.push(entry.path());
                    } else {
                        files += 1;
                    }
                }
            }
            match std::fs::remove_dir_all(&path) {
                Ok(()) => Ok(files),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(files),
                Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
            }
        })
        .await?
    }
}

/// Writes through a temporary file in the same directory, then renames.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().context("a storage path without a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let temporary = dir.join(format!(".{}.tmp", Uuid::now_v7()));
    let result = (|| {
        let mut file = options.open(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_stored_replaced_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        let key = document_key(Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(storage.get(&key).await.unwrap(), None);
        storage.put(&key, b"one").await.unwrap();
        storage.put(&key, b"two").await.unwrap();
        assert_eq!(storage.get(&key).await.unwrap().as_deref(), Some(&b"two"[..]));
        storage.delete(&key).await.unwrap();
        storage.delete(&key).await.unwrap();
        assert_eq!(storage.get(&key).await.unwrap(), None);
        for bad in ["../etc/passwd", "documents/../../x", "", "a//b", "a/./b"] {
            assert!(storage.put(bad, b"x").await.is_err(), "{bad}");
            assert!(storage.delete_folder(bad).await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_tenants_folders_are_deleted_and_no_one_elses() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        let (gone, kept) = (Uuid::now_v7(), Uuid::now_v7());
        storage.put(&document_key(gone, Uuid::now_v7()), b"a").await.unwrap();
        storage.put(&format!("properties/{gone}/{}/photo", Uuid::now_v7()), b"b").await.unwrap();
        storage.put(&document_key(kept, Uuid::now_v7()), b"c").await.unwrap();
        let mut removed = 0;
        for folder in tenant_folders(gone) {
            removed += storage.delete_folder(&folder).await.unwrap();
        }
        assert_eq!(removed, 2);
        assert!(!dir.path().join(format!("documents/{gone}")).exists());
        assert!(dir.path().join(format!("documents/{kept}")).exists());
        assert_eq!(storage.delete_folder(&format!("documents/{gone}")).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn large_files_are_stored_from_a_path_listed_and_opened() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path().join("files"));
        let tenant = Uuid::now_v7();
        let source = dir.path().join("export.zip");
        std::fs::write(&source, b"zip bytes").unwrap();
        storage.put_file(&format!("tenants/{tenant}/exports/one"), &source).await.unwrap();
        storage.put(&format!("tenants/{tenant}/branding/logo"), b"png").await.unwrap();
        assert_eq!(
            storage.list(&format!("tenants/{tenant}")).await.unwrap(),
            vec![format!("tenants/{tenant}/branding/logo"), format!("tenants/{tenant}/exports/one")]
        );
        assert!(storage.list("tenants/nobody").await.unwrap().is_empty());
        let mut file = storage.open(&format!("tenants/{tenant}/exports/one")).await.unwrap().unwrap();
        let mut read = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut file, &mut read).await.unwrap();
        assert_eq!(read, b"zip bytes");
        assert!(storage.open("tenants/nobody/x").await.unwrap().is_none());
    }
}
