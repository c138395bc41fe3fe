//! The agent transcript (`--agent-transcript FILE`): every message agents
//! send through the tunnel, appended as JSON lines with the agent and the
//! time. It is how an operator (or an auditor) verifies what crossed from
//! the customer's network: for example, that no document text or PHI did.
//! Writes go through a channel to one task, so a slow disk never holds up a
//! tunnel and lines never interleave.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Transcript {
    lines: mpsc::UnboundedSender<String>,
}

impl Transcript {
    /// Opens `path` for appending (created readable by the owner only) and
    /// starts its writer (on the current Tokio runtime).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file =
            options.open(path).with_context(|| format!("opening the agent transcript {}", path.display()))?;
        let mut file = tokio::fs::File::from_std(file);
        let (lines, mut queue) = mpsc::unbounded_channel::<String>();
        let path: PathBuf = path.to_path_buf();
        tokio::spawn(async move {
            while let Some(line) = queue.recv().await {
                if let Err(e) = file.write_all(line.as_bytes()).await {
                    tracing::error!(path = %path.display(), error = %e, "could not write the agent transcript");
                }
                if queue.is_empty() {
                    let _ = file.flush().await;
                }
            }
        });
        Ok(Self { lines })
    }

    /// Records a message an agent sent, as it arrived.
    pub fn record(&self, agent_id: Uuid, text: &str) {
        let line = serde_json::json!({
            "at": crate::domain::Timestamp::now(),
            "agent_id": agent_id,
            "message": text,
        });
        let _ = self.lines.send(format!("{line}\n"));
    }
}
