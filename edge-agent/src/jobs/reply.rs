//! Reply jobs: a suggested answer to one inbox item, drafted on the local
//! Ollama in the brand's voice and grounded in the project's documents
//! when this agent holds their index (the pipeline's
//! `inbox::draft_reply`). The item is fetched from the gateway for the
//! job, never kept on disk here. With the policy's
//! `allow_document_text_in_results` off, runs copied from the passages
//! are withheld from the draft, as from an activity's result; the outbox
//! redacts it like every result.

use marketer_pipeline::inbox::{self, ReplyInput};
use marketer_protocol::inbox::ReplyJob;
use marketer_protocol::{JobError, JobOutput, JobRef, Usage};

use super::run::Attempt;
use crate::documents::retrieve::Documents;

impl Attempt<'_> {
    pub(super) async fn reply(
        &self,
        job: JobRef,
        model: &str,
        reply: &ReplyJob,
    ) -> Result<(JobOutput, Usage), JobError> {
        let context =
            self.gateway.reply_context(job.job_id).await.map_err(crate::ollama::Failure::into_job_error)?;
        let documents = match reply.project_id {
            Some(project) => {
                Documents::for_project(
                    Some(self.index),
                    self.ollama,
                    Some(project),
                    self.policy.max_verbatim_chars,
                )
                .await
            }
            None => Documents::Unavailable(
                "which project it concerns is not known (its account serves several, or none)".into(),
            ),
        };
        let llm = super::activity::EdgeLlm { attempt: self, model };
        let input = ReplyInput {
            platform: &reply.platform,
            kind: &reply.kind,
            text: &context.text,
            post_text: context.post_text.as_deref(),
            author: context.author_name.as_deref(),
            brand_voice: &reply.brand_voice,
            max_chars: usize::try_from(reply.max_chars).unwrap_or(usize::MAX),
        };
        let (mut draft, mut usage) = inbox::draft_reply(&llm, &documents, &input)
            .await
            .map_err(|e| JobError { code: e.code, message: e.message, retryable: e.retryable })?;
        if !self.policy.allow_document_text_in_results
            && let Some(guard) = documents.guard()
        {
            let (filtered, runs) = guard.filter(&draft.text);
            if runs > 0 {
                draft.text = filtered;
                usage.redactions.insert(super::activity::DOCUMENT_TEXT.to_owned(), runs);
            }
        }
        Ok((JobOutput::ReplyDrafted { draft }, usage))
    }
}
