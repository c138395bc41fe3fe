//! One attempt of a job: `Started`, the work against Ollama with its output
//! streamed in batches, and exactly one outcome.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use marketer_protocol::{
    AssignJob, ChatMessage, JobEventBody, JobOptions, JobOutcome, JobOutput, JobRef, JobSpec, Usage,
    job_errors,
};
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::chat::{ChatMessage as OllamaMessage, MessageRole};
use ollama_rs::generation::parameters::FormatType;
use ollama_rs::models::ModelOptions;
use tokio::sync::Notify;
use tokio::time::Instant as Deadline;
use tokio_util::sync::CancellationToken;

use super::{ExecSettings, Outbox};
use crate::documents::Index;
use crate::documents::download::Gateway;
use crate::ollama::{ChatChunk, Failure, Ollama};
use crate::privacy::Policy;

/// A batch is sent once it holds this much text, whatever the delay.
const BATCH_BYTES: usize = 2048;

pub(crate) struct Attempt<'a> {
    pub ollama: &'a Ollama,
    pub outbox: &'a Outbox,
    pub settings: ExecSettings,
    pub max_frame_bytes: usize,
    pub index: &'a Index,
    pub gateway: &'a Gateway,
    pub policy: Arc<Policy>,
    /// Characters generated so far, against the policy's `max_output_chars`.
    pub output_chars: AtomicU64,
    pub documents_changed: &'a Notify,
}

impl Attempt<'_> {
    pub async fn run(
        &self,
        assign: AssignJob,
        cancel: CancellationToken,
        reason: Arc<Mutex<Option<String>>>,
    ) {
        let began = Instant::now();
        let job = assign.job;
        self.outbox.push(job, JobEventBody::Started);
        let deadline = Deadline::now() + std::time::Duration::from_millis(assign.timeout_ms.max(1));
        let work = async {
            if !self.policy.allows_model(assign.spec.model()) {
                return Err(Failure::new(
                    job_errors::POLICY,
                    format!(
                        "this agent's policy (policy.toml, allowed_models) does not allow the model {}",
                        assign.spec.model()
                    ),
                    false,
                )
                .into_job_error());
            }
            match &assign.spec {
                JobSpec::Chat { model, messages, format, options } => self
                    .chat(job, model, messages, format.as_ref(), options)
                    .await
                    .map_err(Failure::into_job_error),
                JobSpec::Embed { model, input } => {
                    self.embed(model, input).await.map_err(Failure::into_job_error)
                }
                JobSpec::Activity { model, activity } => self.activity(job, model, activity).await,
                JobSpec::Ingest { model, document } => self.ingest(model, document).await,
                JobSpec::Classify { model, items } => self.classify(job, model, items).await,
                JobSpec::Reply { model, reply } => self.reply(job, model, reply).await,
            }
        };
        // Dropping `work` (cancellation, timeout) drops the HTTP response,
        // which closes the connection: Ollama stops generating.
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => {
                let reason = reason.lock().unwrap_or_else(|p| p.into_inner()).clone();
                Err(Ok(reason.unwrap_or_else(|| "cancelled".into())))
            }
            () = tokio::time::sleep_until(deadline) => Err(Err(Failure::new(
                job_errors::TIMEOUT,
                format!("the attempt ran longer than its {} s limit", assign.timeout_ms / 1000),
                true,
            ).into_job_error())),
            result = work => result.map_err(Err),
        };
        let wall_time_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
        let outcome = match result {
            Ok((output, mut usage)) => {
                usage.wall_time_ms = wall_time_ms;
                JobOutcome::Succeeded { output, usage }
            }
            Err(Ok(reason)) => JobOutcome::Cancelled { reason },
            Err(Err(error)) => JobOutcome::Failed { error },
        };
        let outcome = self.fit(outcome);
        match &outcome {
            JobOutcome::Succeeded { .. } => {
                tracing::info!(job_id = %job.job_id, wall_time_ms, "job succeeded");
            }
            JobOutcome::Failed { error } => {
                tracing::warn!(job_id = %job.job_id, code = %error.code, error = %error.message, "job failed");
            }
            JobOutcome::Cancelled { reason } => tracing::info!(job_id = %job.job_id, reason, "job cancelled"),
        }
        self.outbox.finish(job, outcome).await;
    }

    /// An outcome too large for one message becomes a failure saying so.
    fn fit(&self, outcome: JobOutcome) -> JobOutcome {
        let size = serde_json::to_vec(&outcome).map_or(usize::MAX, |v| v.len());
        // Room for the envelope around the outcome.
        if size.saturating_add(1024) <= self.max_frame_bytes {
            return outcome;
        }
        let error = marketer_protocol::JobError {
            code: job_errors::OUTPUT_TOO_LARGE.into(),
            message: format!(
                "the result is {size} bytes, more than the {} bytes a message may carry; ask for less (fewer inputs, a lower num_predict)",
                self.max_frame_bytes
            ),
            retryable: false,
        };
        JobOutcome::Failed { error }
    }

    async fn chat(
        &self,
        job: JobRef,
        model: &str,
        messages: &[ChatMessage],
        format: Option<&serde_json::Value>,
        options: &JobOptions,
    ) -> Result<(JobOutput, Usage), Failure> {
        // A job that sets no output limit gets the agent's: a model that
        // loops stops there, not when its context is full.
        let mut options = options.clone();
        if options.num_predict.is_none_or(|n| n <= 0) {
            options.num_predict = Some(i32::try_from(self.settings.max_output_tokens).unwrap_or(i32::MAX));
        }
        let request = self.chat_request(model, messages, format, &options).await?;
        let answer = self
            .stream_chat(&request, &mut |batch| self.outbox.push(job, JobEventBody::Output { text: batch }))
            .await?;
        let output = JobOutput::Message {
            role: "assistant".into(),
            content: answer.content,
            done_reason: answer.done_reason,
        };
        Ok((output, answer.usage))
    }

    /// The Ollama request for a chat: the messages, the structured output
    /// format, and the options, with a context window that fits.
    pub(super) async fn chat_request(
        &self,
        model: &str,
        messages: &[ChatMessage],
        format: Option<&serde_json::Value>,
        options: &JobOptions,
    ) -> Result<ChatMessageRequest, Failure> {
        let mut converted = Vec::with_capacity(messages.len());
        for message in messages {
            let role = match message.role.as_str() {
                "system" => MessageRole::System,
                "user" => MessageRole::User,
                "assistant" => MessageRole::Assistant,
                other => {
                    return Err(Failure::new(
                        job_errors::INVALID_REQUEST,
                        format!("unknown message role {other}"),
                        false,
                    ));
                }
            };
            converted.push(OllamaMessage::new(role, message.content.clone()));
        }
        let prompt_bytes: usize = messages.iter().map(|m| m.content.len()).sum();
        let num_ctx = match options.num_ctx {
            Some(n) => Some(u64::from(n)),
            None => {
                let trained = self.ollama.context_length(model).await?;
                context_window(prompt_bytes, options.num_predict, trained, self.settings.num_ctx_max)
            }
        };
        let mut request =
            ChatMessageRequest::new(model.to_owned(), converted).options(model_options(options, num_ctx));
        if let Some(format) = format {
            let format: FormatType = serde_json::from_value(format.clone()).map_err(|e| {
                Failure::new(
                    job_errors::INVALID_REQUEST,
                    format!("format must be \"json\" or a JSON schema: {e}"),
                    false,
                )
            })?;
            request = request.format(format);
        }
        Ok(request)
    }

    /// Streams a chat from Ollama: its text goes to `on_batch` in batches
    /// (the first token at once, then whatever arrived within the flush
    /// delay, or 2 KiB); returns the whole answer, why it ended and its
    /// usage. A stream silent for the stall timeout fails.
    pub(super) async fn stream_chat(
        &self,
        request: &ChatMessageRequest,
        on_batch: &mut (dyn FnMut(String) + Send),
    ) -> Result<Answer, Failure> {
        let stall = self.settings.stall_timeout;
        let stalled = || {
            Failure::new(
                job_errors::STALLED,
                format!("Ollama sent nothing for {} s; the generation stalled", stall.as_secs()),
                true,
            )
        };
        let mut stream =
            tokio::time::timeout(stall, self.ollama.chat(request)).await.map_err(|_| stalled())??;
        let mut content = String::new();
        let mut batch = String::new();
        let mut flush_at: Option<Deadline> = None;
        let mut sent_any = false;
        let mut last_heard = Deadline::now();
        loop {
            let next = tokio::select! {
                next = stream.next() => next?,
                () = sleep_until_opt(flush_at) => {
                    flush(&mut batch, on_batch);
                    flush_at = None;
                    continue;
                }
                () = tokio::time::sleep_until(last_heard + stall) => return Err(stalled()),
            };
            let Some(ChatChunk { response, done_reason }) = next else {
                return Err(Failure::new(
                    job_errors::OLLAMA_ERROR,
                    "Ollama ended the answer without its final message",
                    true,
                ));
            };
            last_heard = Deadline::now();
            let text = &response.message.content;
            if !text.is_empty() {
                self.count_output(text)?;
                content.push_str(text);
                batch.push_str(text);
                if !sent_any || batch.len() >= BATCH_BYTES {
                    // The first token goes at once: time to first token is
                    // what a person watching notices.
                    sent_any = true;
                    flush(&mut batch, on_batch);
                    flush_at = None;
                } else if flush_at.is_none() {
                    flush_at = Some(Deadline::now() + self.settings.flush_delay);
                }
            }
            if response.done {
                flush(&mut batch, on_batch);
                let usage = response.final_data.map_or_else(Usage::default, |d| Usage {
                    prompt_tokens: d.prompt_eval_count,
                    completion_tokens: d.eval_count,
                    load_duration_ns: d.load_duration,
                    prompt_eval_duration_ns: d.prompt_eval_duration,
                    eval_duration_ns: d.eval_duration,
                    total_duration_ns: d.total_duration,
                    ..Usage::default()
                });
                return Ok(Answer { content, done_reason: done_reason.unwrap_or_default(), usage });
            }
        }
    }

    /// Counts generated text against the policy's `max_output_chars`.
    fn count_output(&self, text: &str) -> Result<(), Failure> {
        let Some(max) = self.policy.max_output_chars else { return Ok(()) };
        let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
        let total = self.output_chars.fetch_add(chars, Ordering::Relaxed).saturating_add(chars);
        if total > max {
            return Err(Failure::new(
                job_errors::POLICY,
                format!(
                    "the job generated more than the {max} characters this agent's policy allows (policy.toml, max_output_chars)"
                ),
                false,
            ));
        }
        Ok(())
    }

    async fn embed(&self, model: &str, input: &[String]) -> Result<(JobOutput, Usage), Failure> {
        let embedded = self.ollama.embed(model, input.to_vec()).await?;
        if embedded.embeddings.len() != input.len() {
            return Err(Failure::new(
                job_errors::OLLAMA_ERROR,
                format!(
                    "Ollama returned {} embeddings for {} inputs",
                    embedded.embeddings.len(),
                    input.len()
                ),
                true,
            ));
        }
        let usage = Usage {
            prompt_tokens: embedded.prompt_tokens,
            load_duration_ns: embedded.load_duration_ns,
            total_duration_ns: embedded.total_duration_ns,
            ..Usage::default()
        };
        Ok((JobOutput::Embeddings { embeddings: embedded.embeddings }, usage))
    }
}

/// A whole chat answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub content: String,
    /// Ollama's `done_reason`: `stop`, `length` (cut off at `num_predict`),
    /// or empty when it does not say.
    pub done_reason: String,
    pub usage: Usage,
}

fn flush(batch: &mut String, on_batch: &mut (dyn FnMut(String) + Send)) {
    if !batch.is_empty() {
        on_batch(std::mem::take(batch));
    }
}

async fn sleep_until_opt(at: Option<Deadline>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn model_options(options: &JobOptions, num_ctx: Option<u64>) -> ModelOptions {
    let mut out = ModelOptions::default();
    if let Some(v) = options.temperature {
        out = out.temperature(v);
    }
    if let Some(v) = options.num_predict {
        out = out.num_predict(v);
    }
    if let Some(v) = num_ctx {
        out = out.num_ctx(v);
    }
    if let Some(v) = options.seed {
        out = out.seed(v);
    }
    if let Some(v) = &options.stop {
        out = out.stop(v.clone());
    }
    if let Some(v) = options.top_p {
        out = out.top_p(v);
    }
    if let Some(v) = options.top_k {
        out = out.top_k(v);
    }
    out
}

/// The context window for a job that did not choose one. Ollama's own
/// default (2048 tokens) silently cuts long prompts; the model's full window
/// can cost gigabytes. So: the model's window up to `ceiling`, more only when
/// the prompt (estimated at three bytes a token, generously) and the answer
/// need it. A stable value also spares Ollama reloading the model between
/// jobs. `None` (the model's window is unknown) leaves Ollama's default.
fn context_window(
    prompt_bytes: usize,
    num_predict: Option<i32>,
    trained: Option<u64>,
    ceiling: u64,
) -> Option<u64> {
    let trained = trained?;
    let answer = num_predict.filter(|n| *n > 0).map_or(1024, |n| u64::try_from(n).unwrap_or(1024));
    let needed = u64::try_from(prompt_bytes / 3).unwrap_or(u64::MAX).saturating_add(answer);
    let base = trained.min(ceiling);
    if needed <= base {
        return Some(base);
    }
    // Round up to a multiple of 4096 so similar prompts share a window.
    Some(needed.div_ceil(4096).saturating_mul(4096).min(trained))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_window_fits_the_prompt_within_the_model() {
        assert_eq!(context_window(100, None, None, 16_384), None, "unknown window: Ollama decides");
        assert_eq!(context_window(100, None, Some(8192), 16_384), Some(8192), "a small model's own window");
        assert_eq!(
            context_window(100, None, Some(131_072), 16_384),
            Some(16_384),
            "a large window is capped"
        );
        // ~40k tokens of prompt need more than the cap, and get it.
        assert_eq!(context_window(120_000, Some(500), Some(131_072), 16_384), Some(40_960));
        assert_eq!(
            context_window(1_000_000, None, Some(32_768), 16_384),
            Some(32_768),
            "never above the model's"
        );
    }
}
