//! Secret material of the server (the JWT signing key, and the data key that
//! encrypts secrets at rest): supplied by the operator, or generated on
//! first start into the data directory with owner-only permissions.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::SecretBox;

/// Shortest accepted secret: HS256 wants at least as many key bytes as the
/// hash output (RFC 7518, section 3.2).
const MIN_SECRET_BYTES: usize = 32;

/// Environment variable holding the JWT secret itself. Read only from the
/// environment, never a flag, so it does not show up in `ps`.
pub const JWT_SECRET_ENV: &str = "MARKETER_JWT_SECRET";

/// Environment variable holding the data key secret itself (environment
/// only, like the JWT secret).
pub const DATA_KEY_ENV: &str = "MARKETER_DATA_KEY";

/// One kind of secret: what it is called, where it may come from.
struct Kind {
    what: &'static str,
    env: &'static str,
    file_name: &'static str,
}

const JWT: Kind = Kind { what: "JWT signing key", env: JWT_SECRET_ENV, file_name: "jwt-signing.key" };
const DATA_KEY: Kind = Kind { what: "data key", env: DATA_KEY_ENV, file_name: "data-encryption.key" };

/// Loads the JWT signing key: `MARKETER_JWT_SECRET`, else the configured
/// file, else `<data_dir>/secrets/jwt-signing.key` (created if missing).
pub fn jwt_key(data_dir: &Path, configured_file: Option<&Path>) -> anyhow::Result<SecretBox<Vec<u8>>> {
    load(&JWT, data_dir, configured_file)
}

/// Loads the secret the data key (for secrets at rest, such as cloud API
/// keys) is derived from: `MARKETER_DATA_KEY`, else the configured file,
/// else `<data_dir>/secrets/data-encryption.key` (created if missing).
/// Every replica needs the same one, and losing it loses the secrets it
/// sealed.
pub fn data_key(data_dir: &Path, configured_file: Option<&Path>) -> anyhow::Result<SecretBox<Vec<u8>>> {
    load(&DATA_KEY, data_dir, configured_file)
}

fn load(kind: &Kind, data_dir: &Path, configured_file: Option<&Path>) -> anyhow::Result<SecretBox<Vec<u8>>> {
    if let Ok(value) = std::env::var(kind.env) {
        return checked(kind, value.trim().as_bytes().to_vec(), kind.env);
    }
    if let Some(path) = configured_file {
        return read_secret(kind, path);
    }
    let path = data_dir.join("secrets").join(kind.file_name);
    if path.exists() {
        return read_secret(kind, &path);
    }
    generate_secret(kind, &path)
}

fn checked(kind: &Kind, bytes: Vec<u8>, source: &str) -> anyhow::Result<SecretBox<Vec<u8>>> {
    if bytes.len() < MIN_SECRET_BYTES {
        bail!(
            "the {} from {source} is too short: use at least {MIN_SECRET_BYTES} random bytes (for example `openssl rand -hex 32`)",
            kind.what
        );
    }
    Ok(SecretBox::new(Box::new(bytes)))
}

fn read_secret(kind: &Kind, path: &Path) -> anyhow::Result<SecretBox<Vec<u8>>> {
    check_permissions(path)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the secret {}", path.display()))?;
    checked(kind, text.trim().as_bytes().to_vec(), &path.display().to_string())
}

/// Refuses a secret file that other users can read.
#[cfg(unix)]
pub fn check_permissions(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading the secret {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "the secret {} is readable by other users (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_permissions(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// Writes 32 random bytes, hex-encoded, to a new file that only the owner
/// can read, then loads it back (so a concurrent starter that won the race
/// is respected).
fn generate_secret(kind: &Kind, path: &Path) -> anyhow::Result<SecretBox<Vec<u8>>> {
    let dir = path.parent().map(PathBuf::from).unwrap_or_default();
    create_private_dir(&dir)?;
    let secret: [u8; 32] = rand::random();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    match write_new_private_file(path, hex.as_bytes()) {
        Ok(()) => tracing::info!(path = %path.display(), "generated a new {}", kind.what),
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists) => {}
        Err(e) => return Err(e),
    }
    read_secret(kind, path)
}

/// Creates `path` (which must not exist) readable by the owner only, and
/// writes `contents` to it durably.
pub fn write_new_private_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(anyhow::Error::from)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn generates_once_with_private_permissions_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let first = jwt_key(dir.path(), None).unwrap();
        let second = jwt_key(dir.path(), None).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let file = dir.path().join("secrets/jwt-signing.key");
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn refuses_short_or_world_readable_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, "tooshort").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
            let err = jwt_key(dir.path(), Some(&short)).unwrap_err().to_string();
            assert!(err.contains("too short"), "{err}");

            let open = dir.path().join("open.key");
            std::fs::write(&open, "x".repeat(64)).unwrap();
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = jwt_key(dir.path(), Some(&open)).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
    }
}
