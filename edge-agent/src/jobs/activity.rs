//! Activity jobs: the content pipeline (`marketer-pipeline`) run against
//! the local Ollama, its progress and partial text going into the outbox
//! like any job's output, so every step survives a reconnect.
//!
//! The research step searches the project's index on this agent, when it
//! holds one. With the policy's `allow_document_text_in_results` off, the
//! draft is not streamed (it could quote a passage before the check) and
//! every text of the result is checked against the passages used: runs
//! copied at length are withheld, and counted as `DOCUMENT_TEXT`.

use marketer_pipeline::{ChatRequest, Llm, LlmError, Progress, Reply, Retriever};
use marketer_protocol::activity::{ActivityJob, ActivityResult};
use marketer_protocol::{ChatMessage, JobError, JobEventBody, JobOptions, JobOutput, JobRef, Usage};

use super::run::Attempt;
use crate::documents::retrieve::Documents;
use crate::ollama::Failure;
use crate::privacy::VerbatimGuard;

/// The redaction count's name for withheld document text.
pub(super) const DOCUMENT_TEXT: &str = "DOCUMENT_TEXT";

impl Attempt<'_> {
    pub(super) async fn activity(
        &self,
        job: JobRef,
        model: &str,
        activity: &ActivityJob,
    ) -> Result<(JobOutput, Usage), JobError> {
        let llm = EdgeLlm { attempt: self, model };
        let documents = Documents::for_project(
            Some(self.index),
            self.ollama,
            activity.project_id,
            self.policy.max_verbatim_chars,
        )
        .await;
        let guarded = !self.policy.allow_document_text_in_results && documents.unavailable().is_none();
        // The agent's budgets fill in the steps the job leaves to it.
        let mut activity = activity.clone();
        for (step, tokens) in &self.settings.output_budgets {
            activity.output_budgets.entry(step.clone()).or_insert(*tokens);
        }
        let mut progress = OutboxProgress {
            attempt: self,
            job,
            stream_text: !guarded,
            documents: guarded.then_some(&documents),
        };
        let result = marketer_pipeline::run_activity(&llm, &documents, &activity, &mut progress)
            .await
            .map_err(|e| JobError { code: e.code, message: e.message, retryable: e.retryable })?;
        let mut usage = marketer_pipeline::usage(&result.steps);
        // The guard knows every passage the run was given: taken after it.
        let result = match documents.guard().filter(|_| guarded) {
            Some(guard) => {
                let (result, withheld) = withhold(&guard, &result)?;
                if withheld > 0 {
                    usage.redactions.insert(DOCUMENT_TEXT.to_owned(), withheld);
                }
                result
            }
            None => result,
        };
        Ok((JobOutput::Activity { result: Box::new(result) }, usage))
    }
}

/// The pipeline's model: the local Ollama, streamed and batched as any
/// chat job's.
pub(super) struct EdgeLlm<'a> {
    pub attempt: &'a Attempt<'a>,
    pub model: &'a str,
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
            seed: request.seed.map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            ..JobOptions::default()
        };
        let ollama_request = self
            .attempt
            .chat_request(self.model, &messages, request.schema, &options)
            .await
            .map_err(llm_error)?;
        let answer = self
            .attempt
            .stream_chat(&ollama_request, &mut |batch| on_text(&batch))
            .await
            .map_err(llm_error)?;
        Ok(Reply {
            content: answer.content,
            prompt_tokens: answer.usage.prompt_tokens,
            completion_tokens: answer.usage.completion_tokens,
            done_reason: answer.done_reason,
            prompt_eval_duration_ns: answer.usage.prompt_eval_duration_ns,
            eval_duration_ns: answer.usage.eval_duration_ns,
            load_duration_ns: answer.usage.load_duration_ns,
        })
    }
}

fn llm_error(failure: Failure) -> LlmError {
    LlmError { code: failure.code.to_owned(), message: failure.message, retryable: failure.retryable }
}

/// Progress as job events: each step a `Progress` event, partial text as
/// `Output`, what is complete as a `Checkpoint` (held to the same document
/// text policy as the result).
struct OutboxProgress<'a> {
    attempt: &'a Attempt<'a>,
    job: JobRef,
    /// Partial text is streamed unless document text must be checked first.
    stream_text: bool,
    /// The documents the run searches, when their text must be withheld
    /// from what leaves (checkpoints included).
    documents: Option<&'a Documents<'a>>,
}

impl Progress for OutboxProgress<'_> {
    fn step(&mut self, step: &str, percent: u8, message: &str) {
        let body = JobEventBody::Progress { step: step.to_owned(), percent, message: message.to_owned() };
        self.attempt.outbox.push(self.job, body);
    }

    fn text(&mut self, text: &str) {
        if self.stream_text {
            self.attempt.outbox.push(self.job, JobEventBody::Output { text: text.to_owned() });
        }
    }

    fn checkpoint(&mut self, partial: &ActivityResult, usage: &Usage) {
        let partial = match self.documents.and_then(Documents::guard) {
            Some(guard) => match withhold(&guard, partial) {
                Ok((checked, _)) => checked,
                // Not checkable, so not sent; the outcome says why.
                Err(_) => return,
            },
            None => partial.clone(),
        };
        let body = JobEventBody::Checkpoint { result: Box::new(partial), usage: usage.clone() };
        // One that could not travel in one message is not sent: the run
        // goes on, and the outcome says if the result itself is too large.
        let size = serde_json::to_vec(&body).map_or(usize::MAX, |v| v.len());
        if size.saturating_add(1024) > self.attempt.max_frame_bytes {
            tracing::warn!(job_id = %self.job.job_id, size, "a checkpoint too large for one message was not sent");
            return;
        }
        self.attempt.outbox.push(self.job, body);
    }
}

/// The result with every run copied from a passage withheld, and how many
/// runs were.
fn withhold(guard: &VerbatimGuard, result: &ActivityResult) -> Result<(ActivityResult, u64), JobError> {
    let policy_error = |e: serde_json::Error| JobError {
        code: marketer_protocol::job_errors::POLICY.into(),
        message: format!("the result could not be checked for document text, so it was not sent: {e}"),
        retryable: false,
    };
    let mut value = serde_json::to_value(result).map_err(policy_error)?;
    let mut withheld = 0;
    filter_strings(&mut value, guard, &mut withheld);
    Ok((serde_json::from_value(value).map_err(policy_error)?, withheld))
}

fn filter_strings(value: &mut serde_json::Value, guard: &VerbatimGuard, withheld: &mut u64) {
    match value {
        serde_json::Value::String(text) => {
            let (filtered, runs) = guard.filter(text);
            if runs > 0 {
                *text = filtered;
                *withheld += runs;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| filter_strings(v, guard, withheld)),
        serde_json::Value::Object(fields) => {
            fields.values_mut().for_each(|v| filter_strings(v, guard, withheld));
        }
        _ => {}
    }
}
