//! Ingest jobs: a document uploaded through the API, fetched from the
//! gateway and indexed into its project's index on this agent. Its status
//! reaches the control plane in the next document report, like a document
//! ingested from the command line.

use marketer_protocol::{IngestDocument, JobError, JobOutput, Usage, job_errors};

use super::run::Attempt;
use crate::documents::{Ingester, Outcome};

impl Attempt<'_> {
    pub(super) async fn ingest(
        &self,
        model: &str,
        document: &IngestDocument,
    ) -> Result<(JobOutput, Usage), JobError> {
        let bytes = self.gateway.fetch(document).await.map_err(crate::ollama::Failure::into_job_error)?;
        // A project's vectors all come from one model: an index that exists
        // keeps its model, whatever the job proposes.
        let model = match self.index.project_model(document.project_id).await {
            Ok(Some((recorded, _))) => recorded,
            Ok(None) => model.to_owned(),
            Err(e) => return Err(agent_error(&e)),
        };
        let ingester = Ingester { index: self.index, ollama: self.ollama, model };
        let source = format!("upload:{}", document.document_id);
        let outcome = ingester
            .ingest_bytes(document.project_id, document.document_id, &source, &document.name, &bytes)
            .await
            .map_err(|e| agent_error(&e));
        self.documents_changed.notify_one();
        match outcome? {
            Outcome::Indexed { document, chunks } => {
                Ok((JobOutput::Ingested { document_id: document, chunk_count: chunks }, Usage::default()))
            }
            Outcome::Unchanged { document } => {
                let chunks = self
                    .index
                    .document(document)
                    .await
                    .map_err(|e| agent_error(&e))?
                    .map_or(0, |d| d.meta.chunk_count);
                Ok((JobOutput::Ingested { document_id: document, chunk_count: chunks }, Usage::default()))
            }
            Outcome::Failed { reason, .. } | Outcome::Skipped { reason } => Err(JobError {
                code: job_errors::DOCUMENT_UNREADABLE.into(),
                message: reason,
                retryable: false,
            }),
        }
    }
}

fn agent_error(e: &anyhow::Error) -> JobError {
    JobError { code: job_errors::AGENT_ERROR.into(), message: format!("{e:#}"), retryable: true }
}
