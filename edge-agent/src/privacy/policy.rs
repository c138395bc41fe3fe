//! The agent's privacy policy: `policy.toml` in its configuration
//! directory, written by the customer. The control plane reads the
//! effective policy (reported in `Hello`) and can never change it; the only
//! thing it contributes is the tenant's compliance mode, which turns
//! redaction on by default for a `hipaa` tenant (the file, when it says,
//! still decides).
//!
//! ```toml
//! # policy.toml
//! redact_phi = true                     # default: on for hipaa tenants
//! allowed_models = ["llama3.2:latest"]  # default: any
//! max_output_chars = 100000             # per job; default: no limit
//! allow_document_text_in_results = false
//! max_verbatim_chars = 200
//!
//! [[custom_patterns]]
//! name = "PATIENT_ID"
//! regex = '\bPT-\d{6}\b'
//! ```

use std::path::Path;

use anyhow::Context;
use marketer_protocol::OllamaStatus;
use marketer_protocol::documents::PolicySummary;
use serde::Deserialize;

use super::redact::Redactor;

pub const FILE_NAME: &str = "policy.toml";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub redact_phi: Option<bool>,
    pub allowed_models: Option<Vec<String>>,
    pub max_output_chars: Option<u64>,
    pub allow_document_text_in_results: Option<bool>,
    pub max_verbatim_chars: Option<u32>,
    #[serde(default)]
    pub custom_patterns: Vec<CustomPattern>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    pub name: String,
    pub regex: String,
}

/// The policy in force on this agent.
#[derive(Debug, Clone)]
pub struct Policy {
    file: PolicyFile,
    /// Built once; `None` while redaction is off.
    redactor: Option<Redactor>,
    pub allowed_models: Option<Vec<String>>,
    pub max_output_chars: Option<u64>,
    pub allow_document_text_in_results: bool,
    pub max_verbatim_chars: u32,
}

impl PolicyFile {
    /// Reads `policy.toml` from `dir`; a missing file is the default policy.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(FILE_NAME);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let file: Self =
            toml::from_str(&text).with_context(|| format!("{} is not a valid policy", path.display()))?;
        for pattern in &file.custom_patterns {
            let name_ok = !pattern.name.is_empty()
                && pattern.name.len() <= 32
                && pattern.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !name_ok {
                anyhow::bail!(
                    "{}: the custom pattern name {:?} must be 1 to 32 letters, digits or underscores",
                    path.display(),
                    pattern.name
                );
            }
        }
        if file.max_verbatim_chars == Some(0) {
            anyhow::bail!("{}: max_verbatim_chars must be at least 1", path.display());
        }
        // Compile the patterns now, so a bad one stops the agent at start
        // with its name rather than later.
        file.redactor()?;
        Ok(file)
    }

    fn redactor(&self) -> anyhow::Result<Redactor> {
        let custom: Vec<(String, String)> =
            self.custom_patterns.iter().map(|p| (p.name.clone(), p.regex.clone())).collect();
        Ok(Redactor::new(&custom)?)
    }

    /// The policy in force for a tenant with `compliance` mode.
    pub fn effective(&self, compliance: &str) -> anyhow::Result<Policy> {
        let redact = self.redact_phi.unwrap_or(compliance == "hipaa");
        Ok(Policy {
            redactor: if redact { Some(self.redactor()?) } else { None },
            allowed_models: self.allowed_models.clone(),
            max_output_chars: self.max_output_chars,
            allow_document_text_in_results: self.allow_document_text_in_results.unwrap_or(true),
            max_verbatim_chars: self.max_verbatim_chars.unwrap_or(200),
            file: self.clone(),
        })
    }
}

impl Policy {
    pub fn redactor(&self) -> Option<&Redactor> {
        self.redactor.as_ref()
    }

    /// Whether the policy lets `model` run (names compared with their tag).
    pub fn allows_model(&self, model: &str) -> bool {
        let model = marketer_protocol::canonical_model_name(model);
        self.allowed_models
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|m| marketer_protocol::canonical_model_name(m) == model))
    }

    /// Ollama's status as the control plane may see it: only the models the
    /// policy lets run, so no job for another is routed here.
    pub fn visible(&self, mut status: OllamaStatus) -> OllamaStatus {
        status.models.retain(|m| self.allows_model(&m.name));
        status
    }

    pub fn summary(&self) -> PolicySummary {
        PolicySummary {
            redact_phi: self.redactor.is_some(),
            custom_patterns: self.file.custom_patterns.iter().map(|p| p.name.to_ascii_uppercase()).collect(),
            allowed_models: self.allowed_models.clone(),
            max_output_chars: self.max_output_chars,
            allow_document_text_in_results: self.allow_document_text_in_results,
            max_verbatim_chars: self.max_verbatim_chars,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) {
        std::fs::write(dir.join(FILE_NAME), text).unwrap();
    }

    #[test]
    fn redaction_defaults_on_for_hipaa_and_the_file_decides() {
        let dir = tempfile::tempdir().unwrap();
        let none = PolicyFile::load(dir.path()).unwrap();
        assert!(!none.effective("standard").unwrap().summary().redact_phi);
        assert!(none.effective("hipaa").unwrap().summary().redact_phi);
        write(
            dir.path(),
            "redact_phi = true\nallowed_models = [\"llama3.2\"]\n[[custom_patterns]]\nname = \"patient_id\"\nregex = 'PT-\\d+'\n",
        );
        let file = PolicyFile::load(dir.path()).unwrap();
        let policy = file.effective("standard").unwrap();
        let summary = policy.summary();
        assert!(summary.redact_phi);
        assert_eq!(summary.custom_patterns, ["PATIENT_ID"]);
        assert!(policy.allows_model("llama3.2:latest") && !policy.allows_model("mistral"));
        write(dir.path(), "redact_phi = false\n");
        assert!(!PolicyFile::load(dir.path()).unwrap().effective("hipaa").unwrap().summary().redact_phi);
    }

    #[test]
    fn the_documented_example_is_a_valid_policy() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), include_str!("../../../deploy/config/policy.example.toml"));
        let policy = PolicyFile::load(dir.path()).unwrap().effective("standard").unwrap();
        let summary = policy.summary();
        assert!(summary.redact_phi && !summary.allow_document_text_in_results);
        assert_eq!(summary.custom_patterns, ["PATIENT_ID"]);
        let mut counts = Default::default();
        assert_eq!(policy.redactor().unwrap().redact("see PT-123456", &mut counts), "see [PATIENT_ID]");
    }

    #[test]
    fn a_bad_policy_stops_the_agent_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "redact_phy = true\n");
        assert!(format!("{:#}", PolicyFile::load(dir.path()).unwrap_err()).contains("redact_phy"));
        write(dir.path(), "[[custom_patterns]]\nname = \"X\"\nregex = '('\n");
        assert!(format!("{:#}", PolicyFile::load(dir.path()).unwrap_err()).contains("X"));
        write(dir.path(), "[[custom_patterns]]\nname = \"bad name\"\nregex = 'x'\n");
        assert!(PolicyFile::load(dir.path()).is_err());
    }
}
