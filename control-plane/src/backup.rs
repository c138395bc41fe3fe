//! `marketer-server backup` and `restore`: one archive (`.tar.gz`) of what a
//! control plane needs to come back: the database when it is the embedded
//! SQLite (a consistent online copy made with `VACUUM INTO` while the
//! server runs), the data directory's secrets (`secrets/`), the agent CA
//! (`ca/`) and uploaded documents (`files/`). A PostgreSQL database is
//! backed up with `pg_dump` instead (README, "Backups"); the archive then
//! carries everything else.
//!
//! `restore` unpacks an archive into an empty data directory and checks
//! the restored SQLite database (`PRAGMA integrity_check`) before saying
//! it is done; the server then starts on it as on any data directory.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sqlx::Connection;

use crate::config::Settings;
use crate::store::Backend;

/// The archive's description of itself.
const MANIFEST: &str = "BACKUP.json";
/// The SQLite copy's name in the archive and in a restored data directory.
const DATABASE: &str = "marketer.db";
/// Parts of the data directory that go into the archive, when present.
const PARTS: [&str; 3] = ["secrets", "ca", "files"];

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    server_version: String,
    created_at: String,
    /// `sqlite` (the database is in the archive) or `postgres` (it is not).
    database: String,
}

/// Writes the archive to `to` (through a temporary file beside it, renamed
/// when complete). Returns what it says to the operator.
pub async fn backup(settings: &Settings, to: &Path) -> anyhow::Result<String> {
    let parent = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let staging = tempfile::tempdir_in(parent)
        .with_context(|| format!("cannot write next to {}: {}", to.display(), parent.display()))?;
    let backend = settings.database_url.backend()?;
    if backend == Backend::Sqlite {
        copy_sqlite(settings, &staging.path().join(DATABASE)).await?;
    }
    let manifest = Manifest {
        format: 1,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: crate::domain::Timestamp::now().to_string(),
        database: backend.to_string(),
    };
    std::fs::write(staging.path().join(MANIFEST), serde_json::to_vec_pretty(&manifest)?)?;
    let partial = staging.path().join("archive.tar.gz");
    {
        let file = File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let mut archive =
            tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::default()));
        archive.follow_symlinks(false);
        archive.append_path_with_name(staging.path().join(MANIFEST), MANIFEST)?;
        if backend == Backend::Sqlite {
            archive.append_path_with_name(staging.path().join(DATABASE), DATABASE)?;
        }
        for part in PARTS {
            let dir = settings.data_dir.join(part);
            if dir.is_dir() {
                archive.append_dir_all(part, &dir).with_context(|| format!("archiving {}", dir.display()))?;
            }
        }
        archive.into_inner()?.finish()?.sync_all()?;
    }
    restrict(&partial)?;
    std::fs::rename(&partial, to).with_context(|| format!("moving the archive to {}", to.display()))?;
    Ok(match backend {
        Backend::Sqlite => format!("backed up the database, secrets, agent CA and files to {}", to.display()),
        Backend::Postgres => format!(
            "backed up the secrets, agent CA and files to {}; the database is PostgreSQL: back it up with pg_dump (README, \"Backups\")",
            to.display()
        ),
    })
}

/// A consistent copy of the live SQLite database (other connections may
/// write meanwhile: `VACUUM INTO` reads one snapshot).
async fn copy_sqlite(settings: &Settings, into: &Path) -> anyhow::Result<()> {
    let url = settings.database_url.expose();
    let options: sqlx::sqlite::SqliteConnectOptions =
        url.parse().with_context(|| format!("{}: not a SQLite URL", settings.database_url))?;
    let options = options.read_only(true).busy_timeout(std::time::Duration::from_secs(30));
    let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", settings.database_url))?;
    let target = into.to_str().context("the backup path is not valid UTF-8")?;
    sqlx::query("VACUUM INTO ?").bind(target).execute(&mut conn).await.context("copying the database")?;
    conn.close().await?;
    Ok(())
}

/// Unpacks `from` into `data_dir`, which must be empty or missing, and
/// checks the restored database.
pub async fn restore(from: &Path, data_dir: &Path) -> anyhow::Result<String> {
    if data_dir.exists() && std::fs::read_dir(data_dir)?.next().is_some() {
        bail!(
            "{} is not empty: restore into an empty data directory (the server's other data is not overwritten)",
            data_dir.display()
        );
    }
    std::fs::create_dir_all(data_dir)?;
    restrict_dir(data_dir)?;
    let file = File::open(from).with_context(|| format!("opening {}", from.display()))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut manifest: Option<Manifest> = None;
    for entry in archive.entries().context("not a backup archive (tar.gz)")? {
        let mut entry = entry.context("a damaged backup archive")?;
        let path = entry.path()?.into_owned();
        if path == Path::new(MANIFEST) {
            manifest = Some(serde_json::from_reader(&mut entry).context("an unreadable BACKUP.json")?);
            continue;
        }
        let allowed = path == Path::new(DATABASE) || PARTS.iter().any(|part| path.starts_with(part));
        if !allowed {
            bail!("{} holds {}, which no backup contains", from.display(), path.display());
        }
        // `unpack_in` refuses paths that would leave the directory.
        if !entry.unpack_in(data_dir)? {
            bail!("{} holds a path outside the data directory: {}", from.display(), path.display());
        }
    }
    let manifest = manifest.with_context(|| format!("{} has no {MANIFEST}: not a backup", from.display()))?;
    if manifest.format != 1 {
        bail!("{} is a backup of format {}, which this server cannot read", from.display(), manifest.format);
    }
    let database = data_dir.join(DATABASE);
    if manifest.database == Backend::Sqlite.to_string() {
        check_sqlite(&database).await?;
        restrict(&database)?;
        Ok(format!(
            "restored the backup of {} (server {}) into {}; the database passed its integrity check",
            manifest.created_at,
            manifest.server_version,
            data_dir.display()
        ))
    } else {
        Ok(format!(
            "restored the secrets, agent CA and files of {} into {}; restore the PostgreSQL database with pg_restore (README, \"Backups\")",
            manifest.created_at,
            data_dir.display()
        ))
    }
}

async fn check_sqlite(path: &Path) -> anyhow::Result<()> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = sqlx::sqlite::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening the restored {}", path.display()))?;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&mut conn).await?;
    conn.close().await?;
    if verdict != "ok" {
        bail!("the restored database failed its integrity check: {verdict}");
    }
    Ok(())
}

#[cfg(unix)]
fn restrict(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {}", path.display()))
}

#[cfg(not(unix))]
fn restrict(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn restrict_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", path.display()))
}

#[cfg(not(unix))]
fn restrict_dir(_: &Path) -> anyhow::Result<()> {
    Ok(())
}
