//! Activity jobs: the content pipeline (`marketer-pipeline`) run against
//! the local Ollama, its progress and partial text going into the outbox
//! like any job's output, so every step survives a reconnect.

use marketer_pipeline::{ChatRequest, Llm, LlmError, Progress, Reply};
use marketer_protocol::activity::ActivityJob;
use marketer_protocol::{ChatMessage, JobError, JobEventBody, JobOptions, JobOutput, JobRef, Usage};

use super::run::Attempt;
use crate::ollama::Failure;

impl Attempt<'_> {
    pub(super) async fn activity(
        &self,
        job: JobRef,
        model: &str,
        activity: &ActivityJob,
    ) -> Result<(JobOutput, Usage), JobError> {
        let llm = EdgeLlm { attempt: self, model };
        let mut progress = OutboxProgress { attempt: self, job };
        let result = marketer_pipeline::run_activity(&llm, activity, &mut progress)
            .await
            .map_err(|e| JobError { code: e.code, message: e.message, retryable: e.retryable })?;
        let usage = Usage {
            prompt_tokens: result.steps.iter().map(|s| s.prompt_tokens).sum(),
            completion_tokens: result.steps.iter().map(|s| s.completion_tokens).sum(),
            ..Usage::default()
        };
        Ok((JobOutput::Activity { result: Box::new(result) }, usage))
    }
}

/// The pipeline's model: the local Ollama, streamed and batched as any
/// chat job's.
struct EdgeLlm<'a> {
    attempt: &'a Attempt<'a>,
    model: &'a str,
}

impl Llm for EdgeLlm<'_> {
    fn backend(&self) -> &'static str {
        "ollama"
    }

    fn model(&self) -> &str {
        self.model
    }

    async fn chat(
        &self,
        request: ChatRequest<'_>,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, LlmError> {
        let messages: Vec<ChatMessage> = request
            .messages
            .iter()
            .map(|m| ChatMessage { role: m.role.as_str().to_owned(), content: m.content.clone() })
            .collect();
        let options = JobOptions {
            temperature: Some(request.temperature),
            num_predict: request.max_tokens.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            ..JobOptions::default()
        };
        let ollama_request = self
            .attempt
            .chat_request(self.model, &messages, request.schema, &options)
            .await
            .map_err(llm_error)?;
        let (content, usage) = self
            .attempt
            .stream_chat(&ollama_request, &mut |batch| on_text(&batch))
            .await
            .map_err(llm_error)?;
        Ok(Reply { content, prompt_tokens: usage.prompt_tokens, completion_tokens: usage.completion_tokens })
    }
}

fn llm_error(failure: Failure) -> LlmError {
    LlmError { code: failure.code.to_owned(), message: failure.message, retryable: failure.retryable }
}

/// Progress as job events: each step a `Progress` event, partial text as
/// `Output`.
struct OutboxProgress<'a> {
    attempt: &'a Attempt<'a>,
    job: JobRef,
}

impl Progress for OutboxProgress<'_> {
    fn step(&mut self, step: &str, percent: u8, message: &str) {
        let body = JobEventBody::Progress { step: step.to_owned(), percent, message: message.to_owned() };
        self.attempt.outbox.push(self.job, body);
    }

    fn text(&mut self, text: &str) {
        self.attempt.outbox.push(self.job, JobEventBody::Output { text: text.to_owned() });
    }
}
