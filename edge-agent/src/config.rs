//! The agent's configuration directory and what it keeps there:
//!
//! - `agent.toml`: the enrollment (server URL, agent and tenant ids, name, labels);
//! - `identity.pem` (mode 0600): the private key and its certificate;
//! - `ca.pem`: the certificate the gateway's TLS chains to, pinned at enrollment;
//! - `state.json`: the last successful connection, for `status`.
//!
//! Files are replaced atomically (write a temporary file, sync, rename), so a
//! crash never leaves a half-written identity.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

pub const HOME_ENV: &str = "MARKETER_AGENT_HOME";

/// The configuration directory: `--config-dir`, else `MARKETER_AGENT_HOME`
/// (clap folds the variable into the flag), else the platform's config
/// directory (`~/.config/marketer-agent` on Linux).
pub fn config_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    directories::ProjectDirs::from("com", "Marketer", "marketer-agent")
        .map(|dirs| dirs.config_dir().to_path_buf())
        .context("cannot determine a configuration directory (no home directory); pass --config-dir or set MARKETER_AGENT_HOME")
}

/// The paths of the agent's files.
#[derive(Debug, Clone)]
pub struct AgentFiles {
    pub dir: PathBuf,
}

impl AgentFiles {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }

    pub fn identity(&self) -> PathBuf {
        self.dir.join("identity.pem")
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    pub fn is_enrolled(&self) -> bool {
        self.config().exists() && self.identity().exists()
    }

    pub fn load_config(&self) -> anyhow::Result<AgentConfig> {
        let path = self.config();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "this agent is not enrolled ({} is missing): run `marketer-agent enroll --server URL --token TOKEN` first",
                    path.display()
                )
            } else {
                anyhow::Error::new(e).context(format!("reading {}", path.display()))
            }
        })?;
        toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))
    }

    pub fn load_identity(&self) -> anyhow::Result<String> {
        let path = self.identity();
        check_private(&path)?;
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    }

    pub fn load_ca(&self) -> anyhow::Result<String> {
        std::fs::read_to_string(self.ca()).with_context(|| format!("reading {}", self.ca().display()))
    }

    pub fn load_state(&self) -> AgentState {
        std::fs::read_to_string(self.state())
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    }

    pub fn save_state(&self, state: &AgentState) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(state)?;
        write_atomic(&self.state(), text.as_bytes(), false)
    }

    /// Writes a whole enrollment: configuration, identity and CA.
    pub fn save_enrollment(
        &self,
        config: &AgentConfig,
        identity_pem: &str,
        ca_pem: &str,
    ) -> anyhow::Result<()> {
        create_private_dir(&self.dir)?;
        write_atomic(&self.identity(), identity_pem.as_bytes(), true)?;
        write_atomic(&self.ca(), ca_pem.as_bytes(), false)?;
        write_atomic(&self.config(), toml::to_string_pretty(config)?.as_bytes(), false)?;
        Ok(())
    }

    /// Replaces the identity (after a renewal) in one atomic step.
    pub fn save_identity(&self, identity_pem: &str) -> anyhow::Result<()> {
        write_atomic(&self.identity(), identity_pem.as_bytes(), true)
    }
}

/// `agent.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The gateway, e.g. `https://cp.example.com:8443`.
    pub server: String,
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
}

/// `state.json`: what `status` reports about the last connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_connected_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The tenant's compliance mode from the last `Welcome`: the policy's
    /// defaults depend on it, and they apply from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_compliance: Option<String>,
}

/// Writes `contents` to `path` through a temporary file in the same
/// directory, so readers see the old or the new file, never a mix.
pub fn write_atomic(path: &Path, contents: &[u8], private: bool) -> anyhow::Result<()> {
    let dir = path.parent().context("a file path without a directory")?;
    let name = path.file_name().context("a file path without a name")?.to_string_lossy();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| -> std::io::Result<()> {
        let mut file = options.open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        // Make the rename itself durable.
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.with_context(|| format!("writing {}", path.display()))
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

/// Refuses a private-key file other users can read.
pub fn check_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} holds the agent's private key but other users can read it (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_round_trips_with_private_identity() {
        let dir = tempfile::tempdir().unwrap();
        let files = AgentFiles::new(dir.path().join("agent"));
        assert!(!files.is_enrolled());
        assert!(files.load_config().unwrap_err().to_string().contains("not enrolled"));
        let config = AgentConfig {
            server: "https://cp.example:8443".into(),
            agent_id: Uuid::now_v7(),
            tenant_id: Uuid::now_v7(),
            name: "edge".into(),
            labels: BTreeMap::from([("site".into(), "berlin".into())]),
            enrolled_at: OffsetDateTime::UNIX_EPOCH,
        };
        files.save_enrollment(&config, "KEY AND CERT", "CA").unwrap();
        assert!(files.is_enrolled());
        assert_eq!(files.load_config().unwrap(), config);
        assert_eq!(files.load_identity().unwrap(), "KEY AND CERT");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(files.identity()).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&files.dir).unwrap().permissions().mode() & 0o777, 0o700);
            std::fs::set_permissions(files.identity(), std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(files.load_identity().unwrap_err().to_string().contains("chmod 600"));
        }
        let leftovers: Vec<_> = std::fs::read_dir(&files.dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
