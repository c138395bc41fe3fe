//! The pipeline's model in the cloud: any OpenAI-compatible chat
//! completions endpoint, through async-openai, streamed.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequestArgs,
    FinishReason, ResponseFormat, ResponseFormatJsonSchema,
};
use futures_util::StreamExt;
use marketer_pipeline::{ChatRequest, Llm, LlmError, Reply, Role};
use secrecy::{ExposeSecret, SecretString};

/// Error codes of cloud calls.
pub mod codes {
    pub const UNREACHABLE: &str = "cloud_unreachable";
    pub const AUTH: &str = "cloud_auth_failed";
    pub const MODEL_NOT_FOUND: &str = "model_not_found";
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const ERROR: &str = "cloud_error";
    pub const STALLED: &str = "stalled";
}

/// A model behind an OpenAI-compatible endpoint.
pub struct OpenAiLlm {
    client: Client<OpenAIConfig>,
    model: String,
    base_url: String,
    /// A stream with nothing new for this long has stalled.
    stall: Duration,
}

impl std::fmt::Debug for OpenAiLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiLlm").field("base_url", &self.base_url).field("model", &self.model).finish()
    }
}

impl OpenAiLlm {
    pub fn new(
        http: reqwest::Client,
        base_url: &str,
        api_key: &SecretString,
        model: &str,
        stall: Duration,
    ) -> Self {
        let config = OpenAIConfig::new()
            .with_api_base(base_url.trim_end_matches('/'))
            .with_api_key(api_key.expose_secret())
            .with_org_id("")
            .with_project_id("");
        Self {
            client: Client::with_config(config).with_http_client(http),
            model: model.to_owned(),
            base_url: base_url.to_owned(),
            stall,
        }
    }

    fn error(&self, e: &OpenAIError) -> LlmError {
        let (code, retryable, message) = match e {
            OpenAIError::ApiError(response) => {
                let status = response.status_code.as_u16();
                let detail = &response.api_error.message;
                match status {
                    401 | 403 => (
                        codes::AUTH,
                        false,
                        format!(
                            "the cloud provider refused the API key ({status}): {detail}; check the tenant's cloud provider settings"
                        ),
                    ),
                    404 => (
                        codes::MODEL_NOT_FOUND,
                        false,
                        format!("the cloud provider has no model {} ({detail})", self.model),
                    ),
                    400 | 422 => (
                        codes::INVALID_REQUEST,
                        false,
                        format!("the cloud provider refused the request: {detail}"),
                    ),
                    _ => (codes::ERROR, true, format!("the cloud provider answered {status}: {detail}")),
                }
            }
            OpenAIError::Reqwest(inner) if inner.is_connect() || inner.is_timeout() => (
                codes::UNREACHABLE,
                true,
                format!("the cloud provider at {} is not reachable: {inner}", self.base_url),
            ),
            other => (codes::ERROR, true, format!("the call to the cloud provider failed: {other}")),
        };
        LlmError { code: code.to_owned(), message, retryable }
    }

    fn stalled(&self) -> LlmError {
        LlmError {
            code: codes::STALLED.to_owned(),
            message: format!("the cloud provider sent nothing for {} s", self.stall.as_secs()),
            retryable: true,
        }
    }
}

impl Llm for OpenAiLlm {
    fn backend(&self) -> &'static str {
        "openai_compatible"
    }

    fn model(&self) -> &str {
        &self.model
    }

    async fn chat(
        &self,
        request: ChatRequest<'_>,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Reply, LlmError> {
        let messages: Vec<ChatCompletionRequestMessage> = request
            .messages
            .iter()
            .map(|m| match m.role {
                Role::System => ChatCompletionRequestSystemMessage::from(m.content.as_str()).into(),
                Role::User => ChatCompletionRequestUserMessage::from(m.content.as_str()).into(),
                Role::Assistant => ChatCompletionRequestAssistantMessage::from(m.content.as_str()).into(),
            })
            .collect();
        let mut args = CreateChatCompletionRequestArgs::default();
        args.model(self.model.clone()).messages(messages).temperature(request.temperature).stream_options(
            ChatCompletionStreamOptions { include_usage: Some(true), include_obfuscation: Some(false) },
        );
        if let Some(max) = request.max_tokens {
            args.max_completion_tokens(max);
        }
        if let Some(seed) = request.seed {
            args.seed(i64::from(seed));
        }
        if let Some(schema) = request.schema {
            // Not strict: strict mode refuses the length and count keywords
            // the schemas carry; the pipeline validates and repairs instead.
            args.response_format(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: None,
                    name: "answer".into(),
                    schema: schema.clone(),
                    strict: Some(false),
                },
            });
        }
        let body = args.build().map_err(|e| self.error(&e))?;
        let mut stream = tokio::time::timeout(self.stall, self.client.chat().create_stream(body))
            .await
            .map_err(|_| self.stalled())?
            .map_err(|e| self.error(&e))?;
        let mut reply = Reply::default();
        // The provider reports no durations: they are measured here, the
        // wait for the first token as reading the prompt.
        let began = std::time::Instant::now();
        let mut first_token: Option<std::time::Instant> = None;
        loop {
            let next = tokio::time::timeout(self.stall, stream.next()).await.map_err(|_| self.stalled())?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| self.error(&e))?;
            for choice in &chunk.choices {
                if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                    first_token.get_or_insert_with(std::time::Instant::now);
                    reply.content.push_str(text);
                    on_text(text);
                }
                if let Some(reason) = choice.finish_reason {
                    reply.done_reason =
                        if reason == FinishReason::Length { "length" } else { "stop" }.to_owned();
                }
            }
            if let Some(usage) = chunk.usage {
                reply.prompt_tokens = u64::from(usage.prompt_tokens);
                reply.completion_tokens = u64::from(usage.completion_tokens);
            }
        }
        let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let first = first_token.unwrap_or_else(std::time::Instant::now);
        reply.prompt_eval_duration_ns = nanos(first.duration_since(began));
        reply.eval_duration_ns = nanos(first.elapsed());
        Ok(reply)
    }
}
