//! Fetching from the gateway, one HTTPS request with the agent's
//! certificate each: an uploaded document for its ingest job (the gateway
//! serves only the agent's own tenant's documents; the size and hash are
//! checked against the job before anything is indexed), and the inbox
//! items of a classify or reply job (served only to the agent holding the
//! job).

use std::time::Duration;

use marketer_protocol::{IngestDocument, job_errors, paths};
use sha2::{Digest, Sha256};

use crate::config::AgentFiles;
use crate::identity::Identity;
use crate::net::{self, ServerAddr};
use crate::ollama::Failure;

/// A download of the largest document over a slow link still fits.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// The texts of one classify or reply job are small.
const TEXTS_TIMEOUT: Duration = Duration::from_secs(60);

/// Where uploaded documents come from.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub files: AgentFiles,
    /// The gateway the tunnel uses now (it changes on failover).
    pub server: std::sync::Arc<std::sync::Mutex<ServerAddr>>,
}

impl Gateway {
    /// The document's bytes, checked against what the job says they are.
    pub async fn fetch(&self, document: &IngestDocument) -> Result<Vec<u8>, Failure> {
        let (status, body) =
            self.get(&paths::document(document.document_id), DOWNLOAD_TIMEOUT).await.map_err(|e| {
                Failure::new(job_errors::AGENT_ERROR, format!("downloading the document: {e:#}"), true)
            })?;
        if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::GONE {
            return Err(Failure::new(
                job_errors::INVALID_REQUEST,
                "the document is no longer on the control plane (deleted since the upload)",
                false,
            ));
        }
        if !status.is_success() {
            return Err(Failure::new(
                job_errors::AGENT_ERROR,
                format!("the control plane answered {status} to the document download"),
                status.is_server_error(),
            ));
        }
        check(document, &body)?;
        Ok(body)
    }

    /// The texts of a classify job's items, in the job's order.
    pub async fn classify_texts(&self, job_id: uuid::Uuid, count: usize) -> Result<Vec<String>, Failure> {
        let texts: marketer_protocol::inbox::ClassifyTexts =
            self.job_input(&paths::classify(job_id), "the items' texts").await?;
        if texts.texts.len() != count {
            return Err(Failure::new(
                job_errors::AGENT_ERROR,
                format!("the control plane sent {} texts for {count} items", texts.texts.len()),
                true,
            ));
        }
        Ok(texts.texts)
    }

    /// The item a reply job answers.
    pub async fn reply_context(
        &self,
        job_id: uuid::Uuid,
    ) -> Result<marketer_protocol::inbox::ReplyContext, Failure> {
        self.job_input(&paths::reply(job_id), "the item to answer").await
    }

    /// What the gateway holds for a job this agent runs (`what` names it
    /// in errors): gone when the job was reassigned or ended.
    async fn job_input<T: serde::de::DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, Failure> {
        let (status, body) = self
            .get(path, TEXTS_TIMEOUT)
            .await
            .map_err(|e| Failure::new(job_errors::AGENT_ERROR, format!("fetching {what}: {e:#}"), true))?;
        if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::CONFLICT {
            return Err(Failure::new(
                job_errors::INVALID_REQUEST,
                format!(
                    "the control plane no longer gives {what} ({status}): the job was reassigned or ended"
                ),
                true,
            ));
        }
        if !status.is_success() {
            return Err(Failure::new(
                job_errors::AGENT_ERROR,
                format!("the control plane answered {status} to the request for {what}"),
                status.is_server_error(),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| {
            Failure::new(job_errors::AGENT_ERROR, format!("{what} could not be read: {e}"), true)
        })
    }

    /// One GET to the gateway with the agent's certificate.
    async fn get(&self, path: &str, timeout: Duration) -> anyhow::Result<(http::StatusCode, Vec<u8>)> {
        // The identity is read each time: a renewal replaces it on disk.
        let identity = Identity::parse(&self.files.load_identity()?)?;
        let ca = self.files.load_ca()?;
        let tls = net::agent_config(&ca, identity)?;
        let server = self.server.lock().unwrap_or_else(|p| p.into_inner()).clone();
        net::request_within(&server, tls, http::Method::GET, path, None, timeout).await
    }
}

/// The bytes are the document the job names: its size and SHA-256.
pub fn check(document: &IngestDocument, bytes: &[u8]) -> Result<(), Failure> {
    let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    let sha256: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    if size != document.size_bytes || !sha256.eq_ignore_ascii_case(&document.sha256) {
        return Err(Failure::new(
            job_errors::AGENT_ERROR,
            format!(
                "the downloaded file ({size} bytes) is not the uploaded one ({} bytes, SHA-256 {}); it was not indexed",
                document.size_bytes, document.sha256
            ),
            true,
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_named_bytes_pass() {
        let bytes = b"brand guide";
        let document = IngestDocument {
            document_id: uuid::Uuid::now_v7(),
            project_id: uuid::Uuid::now_v7(),
            name: "guide.txt".into(),
            media_type: "text/plain".into(),
            size_bytes: 11,
            sha256: Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect(),
        };
        assert!(check(&document, bytes).is_ok());
        assert!(check(&document, b"brand guidE").is_err());
        assert!(check(&document, b"brand guide!").is_err());
    }
}
