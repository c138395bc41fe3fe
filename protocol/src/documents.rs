//! Documents and the edge policy, as agents report them. The documents
//! themselves (their text, chunks and vectors) stay on the agent: only
//! their metadata crosses the tunnel.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// A document of a project's index on an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentMeta {
    pub id: Uuid,
    pub project_id: Uuid,
    /// The file name (never the path on the agent host).
    pub name: String,
    pub size_bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// `text/plain`, `text/markdown`, `text/html`, `application/pdf` or the
    /// DOCX type.
    pub media_type: String,
    pub status: DocumentStatus,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub chunk_count: u32,
    /// The embedding model its vectors come from.
    pub embedding_model: String,
    #[serde(default, with = "crate::rfc3339::option")]
    pub indexed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStatus {
    Pending,
    Indexed,
    Failed,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Pending => "pending",
            DocumentStatus::Indexed => "indexed",
            DocumentStatus::Failed => "failed",
        }
    }
}

/// What changed in the agent's indexes, at most [`MAX_REPORT_DOCUMENTS`]
/// documents per report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentReport {
    /// Increases by one per report of a connection; the control plane
    /// acknowledges it.
    pub seq: u64,
    /// In the first report of a connection: every document the agent holds.
    /// The control plane forgets this agent's documents not in it (the
    /// metadata of all of them follows in this and the next reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<Vec<Uuid>>,
    /// Documents indexed, changed or failed.
    pub documents: Vec<DocumentMeta>,
    /// Documents the agent no longer holds.
    pub removed: Vec<Uuid>,
}

/// Documents per report; more are sent in the reports that follow.
pub const MAX_REPORT_DOCUMENTS: usize = 256;

/// A reported document the control plane did not accept, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDocument {
    pub id: Uuid,
    pub reason: String,
}

/// The agent's privacy policy as it applies it (from its `policy.toml`). The
/// control plane can read it; it can never change it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySummary {
    /// Protected health information and personal identifiers are replaced
    /// by typed placeholders in everything the agent sends.
    pub redact_phi: bool,
    /// The names of the policy's own redaction patterns.
    pub custom_patterns: Vec<String>,
    /// Only these models may run; `None` for any.
    pub allowed_models: Option<Vec<String>>,
    /// A job's output may be at most this long.
    pub max_output_chars: Option<u64>,
    /// Whether results may quote the project's documents at length.
    pub allow_document_text_in_results: bool,
    /// With quoting not allowed: the longest verbatim run of a document that
    /// may appear in a result, in characters.
    pub max_verbatim_chars: u32,
}

/// How many of each kind of identifier were redacted (never the values).
pub type RedactionCounts = BTreeMap<String, u64>;
