//! Classify jobs: inbox items labelled on the local Ollama (the
//! pipeline's `inbox::classify`, several items per call). The texts are
//! fetched from the gateway for the job, never kept on disk here. Personal
//! data is what the model says or what the redactor's detector finds.
//! Each item's text goes back as the policy leaves it (redacted when the
//! policy redacts, and the outbox redacts every result again): the control
//! plane keeps that instead of what it collected.

use marketer_pipeline::inbox::{self, Item};
use marketer_protocol::inbox::ClassifyItem;
use marketer_protocol::{JobError, JobOutput, JobRef, Usage};

use super::run::Attempt;
use crate::privacy::Redactor;

impl Attempt<'_> {
    pub(super) async fn classify(
        &self,
        job: JobRef,
        model: &str,
        items: &[ClassifyItem],
    ) -> Result<(JobOutput, Usage), JobError> {
        let texts = self
            .gateway
            .classify_texts(job.job_id, items.len())
            .await
            .map_err(crate::ollama::Failure::into_job_error)?;
        let inputs: Vec<Item<'_>> = items
            .iter()
            .zip(&texts)
            .map(|(item, text)| Item { platform: &item.platform, kind: &item.kind, text })
            .collect();
        let llm = super::activity::EdgeLlm { attempt: self, model };
        let (mut labels, usage) = inbox::classify(&llm, &inputs).await.map_err(|e| JobError {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        })?;
        // The policy's redactor, or the built-in one to detect with.
        let built_in;
        let (detector, redacting) = match self.policy.redactor() {
            Some(redactor) => (redactor, true),
            None => {
                built_in = Redactor::new(&[]).map_err(|e| JobError {
                    code: marketer_protocol::job_errors::AGENT_ERROR.into(),
                    message: e.to_string(),
                    retryable: false,
                })?;
                (&built_in, false)
            }
        };
        for (label, text) in labels.iter_mut().zip(texts) {
            let mut found = Default::default();
            let redacted = detector.redact(&text, &mut found);
            label.personal_data |= !found.is_empty();
            label.redacted = redacting && !found.is_empty();
            label.text = Some(if redacting { redacted } else { text });
        }
        Ok((JobOutput::Classified { items: labels }, usage))
    }
}
