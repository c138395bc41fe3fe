//! The agent's local Ollama: what it offers (models, their context
//! length) and the calls jobs make (streaming chat, embeddings).
//!
//! Requests and responses use ollama-rs's types. The HTTP exchange for job
//! calls is done here, on the same client, because jobs need what the
//! crate's helpers drop: the status code (a 404 is a missing model, a 5xx a
//! retryable failure), an `{"error"}` object in the middle of a stream, and
//! NDJSON lines split across reads (the crate decodes each read as UTF-8 on
//! its own, which loses text when a read ends inside a character).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use marketer_protocol::{JobError, ModelInfo, OllamaStatus, job_errors};
use ollama_rs::error::InternalOllamaError;
use ollama_rs::generation::chat::ChatMessageResponse;
use ollama_rs::generation::chat::request::ChatMessageRequest;
use ollama_rs::generation::embeddings::GenerateEmbeddingsResponse;
use ollama_rs::generation::embeddings::request::{EmbeddingsInput, GenerateEmbeddingsRequest};

pub const DEFAULT_URL: &str = "http://127.0.0.1:11434";

/// How long a model listing may take before Ollama counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Normalises an Ollama address the way Ollama's own tools read
/// `OLLAMA_HOST`: the scheme is optional (http); the port defaults to 11434
/// without a scheme, and to the scheme's own (80, 443) with one; a bind-all
/// address means this host.
pub fn normalize_url(raw: &str) -> anyhow::Result<String> {
    let raw = raw.trim();
    let (scheme, rest, default_port) = match raw.split_once("://") {
        None => ("http", raw, 11434),
        Some(("http", rest)) => ("http", rest, 80),
        Some(("https", rest)) => ("https", rest, 443),
        Some((scheme, _)) => anyhow::bail!("the Ollama address must use http or https, not {scheme}"),
    };
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !path.is_empty() {
        anyhow::bail!("the Ollama address must be a host and port, without a path (/{path})");
    }
    let (host, port) = match hostport.rsplit_once(':') {
        // A bare IPv6 address has colons but no port.
        Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
            let port: u16 =
                port.parse().map_err(|_| anyhow::anyhow!("the Ollama port {port:?} is not a port number"))?;
            (host.to_owned(), port)
        }
        Some(_) => (format!("[{}]", hostport.trim_matches(['[', ']'])), default_port),
        None => (hostport.to_owned(), default_port),
    };
    let host = match host.as_str() {
        "" => anyhow::bail!("the Ollama address has no host"),
        "0.0.0.0" => "127.0.0.1".to_owned(),
        "[::]" => "[::1]".to_owned(),
        _ => host,
    };
    Ok(format!("{scheme}://{host}:{port}"))
}

#[derive(Debug)]
pub struct Ollama {
    client: ollama_rs::Ollama,
    /// The same HTTP client ollama-rs uses, for the job calls.
    http: reqwest_ollama::Client,
    url: String,
    /// Models' context lengths from `/api/show`, which do not change while a
    /// model stays pulled.
    context_lengths: Mutex<HashMap<String, Option<u64>>>,
}

/// Why an Ollama call failed, as the job error it becomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl Failure {
    pub fn new(code: &'static str, message: impl Into<String>, retryable: bool) -> Self {
        Self { code, message: message.into(), retryable }
    }

    pub fn into_job_error(self) -> JobError {
        JobError { code: self.code.to_owned(), message: self.message, retryable: self.retryable }
    }
}

/// An embedding call's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    pub embeddings: Vec<Vec<f32>>,
    pub prompt_tokens: u64,
    pub load_duration_ns: u64,
    pub total_duration_ns: u64,
}

/// The counters `/api/embed` adds to ollama-rs's response type.
#[derive(Debug, Default, serde::Deserialize)]
struct EmbedCounters {
    #[serde(default)]
    prompt_eval_count: u64,
    #[serde(default)]
    load_duration: u64,
    #[serde(default)]
    total_duration: u64,
}

/// One object of a streamed chat answer: ollama-rs's type, and the final
/// object's `done_reason` (`stop`, or `length` when the answer reached
/// `num_predict`), which that type leaves out.
#[derive(Debug)]
pub struct ChatChunk {
    pub response: ChatMessageResponse,
    pub done_reason: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct DoneReason {
    #[serde(default)]
    done_reason: Option<String>,
}

/// A streaming chat answer, read one NDJSON object at a time.
#[derive(Debug)]
pub struct ChatStream {
    response: reqwest_ollama::Response,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already consumed.
    start: usize,
    ended: bool,
}

/// Longest NDJSON line accepted (a streamed token is a few hundred bytes; a
/// non-streamed answer could be long).
const MAX_LINE: usize = 16 * 1024 * 1024;

impl ChatStream {
    /// The next streamed object; `None` after the last one.
    pub async fn next(&mut self) -> Result<Option<ChatChunk>, Failure> {
        loop {
            if let Some(end) = self.buffer[self.start..].iter().position(|b| *b == b'\n') {
                let line_end = self.start + end;
                let line = &self.buffer[self.start..line_end];
                self.start = line_end + 1;
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_line(line).map(Some);
            }
            if self.ended {
                let rest = &self.buffer[self.start..];
                if rest.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                let parsed = parse_line(rest).map(Some);
                self.start = self.buffer.len();
                return parsed;
            }
            // Keep the unread tail only.
            if self.start > 0 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            if self.buffer.len() > MAX_LINE {
                return Err(Failure::new(
                    job_errors::OLLAMA_ERROR,
                    "Ollama sent a line longer than 16 MiB",
                    true,
                ));
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.extend_from_slice(&bytes),
                Ok(None) => self.ended = true,
                Err(e) => {
                    return Err(Failure::new(
                        job_errors::OLLAMA_ERROR,
                        format!("the connection to Ollama broke mid-answer: {e}"),
                        true,
                    ));
                }
            }
        }
    }
}

fn parse_line(line: &[u8]) -> Result<ChatChunk, Failure> {
    match serde_json::from_slice::<ChatMessageResponse>(line) {
        Ok(response) => {
            let done_reason = if response.done {
                serde_json::from_slice::<DoneReason>(line).ok().and_then(|d| d.done_reason)
            } else {
                None
            };
            Ok(ChatChunk { response, done_reason })
        }
        Err(parse) => match serde_json::from_slice::<InternalOllamaError>(line) {
            // An error after the answer began: the status stays 200.
            Ok(error) => Err(Failure::new(
                job_errors::OLLAMA_ERROR,
                format!("Ollama failed mid-answer: {}", error.message),
                true,
            )),
            Err(_) => Err(Failure::new(
                job_errors::OLLAMA_ERROR,
                format!("Ollama sent something that is not a chat response ({parse})"),
                true,
            )),
        },
    }
}

impl Ollama {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let url = normalize_url(url)?;
        let parsed = ollama_rs::Ollama::try_new(url.as_str())
            .with_context(|| format!("{url} is not a valid Ollama address"))?;
        // Ollama runs next to the agent: never send its traffic (prompts,
        // documents) through a proxy configured for the control plane.
        let http = reqwest_ollama::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .context("building the Ollama HTTP client")?;
        let client =
            ollama_rs::Ollama::builder().url(parsed.url().clone()).reqwest_client(http.clone()).build();
        Ok(Self { client, http, url, context_lengths: Mutex::new(HashMap::new()) })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Sends a JSON request; a non-success status becomes the failure it means.
    async fn post(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<reqwest_ollama::Response, Failure> {
        let response =
            self.http.post(self.endpoint(path)).json(body).send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<InternalOllamaError>(&text).map_or(text, |e| e.message);
        Err(status_failure(status.as_u16(), &detail))
    }

    fn unreachable(&self, e: &reqwest_ollama::Error) -> Failure {
        let cause = std::error::Error::source(e).map_or_else(|| e.to_string(), ToString::to_string);
        Failure::new(
            job_errors::OLLAMA_UNREACHABLE,
            format!("Ollama at {} is not reachable ({cause}); is it running? (`ollama serve`)", self.url),
            true,
        )
    }

    /// Starts a streaming chat (`POST /api/chat`).
    pub async fn chat(&self, request: &ChatMessageRequest) -> Result<ChatStream, Failure> {
        // ollama-rs keeps `stream` to itself; set it on the wire form.
        let mut body = serde_json::to_value(request).map_err(|e| {
            Failure::new(job_errors::INVALID_REQUEST, format!("cannot encode the request: {e}"), false)
        })?;
        body["stream"] = serde_json::Value::Bool(true);
        let response = self.post("/api/chat", &body).await?;
        Ok(ChatStream { response, buffer: Vec::with_capacity(4096), start: 0, ended: false })
    }

    /// Embeds texts (`POST /api/embed`).
    pub async fn embed(&self, model: &str, input: Vec<String>) -> Result<Embedded, Failure> {
        let request = GenerateEmbeddingsRequest::new(model.to_owned(), EmbeddingsInput::Multiple(input));
        let response = self.post("/api/embed", &request).await?;
        let bytes = response.bytes().await.map_err(|e| {
            Failure::new(
                job_errors::OLLAMA_ERROR,
                format!("the connection to Ollama broke mid-answer: {e}"),
                true,
            )
        })?;
        let invalid = |e: serde_json::Error| {
            Failure::new(
                job_errors::OLLAMA_ERROR,
                format!("Ollama sent an embedding answer this agent cannot read ({e})"),
                true,
            )
        };
        let embedded: GenerateEmbeddingsResponse = serde_json::from_slice(&bytes).map_err(invalid)?;
        let counters: EmbedCounters = serde_json::from_slice(&bytes).map_err(invalid)?;
        Ok(Embedded {
            embeddings: embedded.embeddings,
            prompt_tokens: counters.prompt_eval_count,
            load_duration_ns: counters.load_duration,
            total_duration_ns: counters.total_duration,
        })
    }

    /// The model's trained context length (`POST /api/show`, the
    /// `<architecture>.context_length` entry of `model_info`), if it says.
    pub async fn context_length(&self, model: &str) -> Result<Option<u64>, Failure> {
        if let Some(known) = self.context_lengths.lock().unwrap_or_else(|p| p.into_inner()).get(model) {
            return Ok(*known);
        }
        let response = self.post("/api/show", &serde_json::json!({ "model": model })).await?;
        let info: ollama_rs::models::ModelInfo = response.json().await.map_err(|e| {
            Failure::new(
                job_errors::OLLAMA_ERROR,
                format!("Ollama sent model information this agent cannot read ({e})"),
                true,
            )
        })?;
        let length = info
            .model_info
            .iter()
            .find(|(key, _)| key.ends_with(".context_length"))
            .and_then(|(_, value)| value.as_u64());
        self.context_lengths.lock().unwrap_or_else(|p| p.into_inner()).insert(model.to_owned(), length);
        Ok(length)
    }

    /// Forgets cached model facts (a model was re-pulled or removed).
    pub fn forget_models(&self) {
        self.context_lengths.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Lists the pulled models (`GET /api/tags`).
    pub async fn models(&self) -> anyhow::Result<Vec<ModelInfo>> {
        let models = tokio::time::timeout(PROBE_TIMEOUT, self.client.list_local_models())
            .await
            .map_err(|_| anyhow::anyhow!("Ollama at {} did not answer within {PROBE_TIMEOUT:?}", self.url))?
            .map_err(|e| anyhow::Error::new(e).context(format!("Ollama at {} is not reachable", self.url)))?;
        Ok(models.into_iter().map(|m| ModelInfo { name: m.name, size_bytes: m.size, digest: None }).collect())
    }

    /// Reachability and models, for `Hello` and heartbeats.
    pub async fn status(&self) -> OllamaStatus {
        match self.models().await {
            Ok(models) => OllamaStatus { reachable: true, models },
            Err(e) => {
                tracing::debug!(error = %e, "Ollama probe failed");
                OllamaStatus { reachable: false, models: Vec::new() }
            }
        }
    }
}

/// What an error status from Ollama means for a job
/// (`../shared/reference/ollama-api-errors.mdx`).
fn status_failure(status: u16, detail: &str) -> Failure {
    let detail = if detail.trim().is_empty() { "no details" } else { detail.trim() };
    match status {
        404 => Failure::new(
            job_errors::MODEL_NOT_FOUND,
            format!("Ollama does not have the model: {detail}; pull it with `ollama pull`"),
            false,
        ),
        400 => {
            Failure::new(job_errors::INVALID_REQUEST, format!("Ollama refused the request: {detail}"), false)
        }
        _ => Failure::new(job_errors::OLLAMA_ERROR, format!("Ollama answered {status}: {detail}"), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_become_job_errors() {
        let missing = status_failure(404, "model \"x\" not found, try pulling it first");
        assert_eq!((missing.code, missing.retryable), (job_errors::MODEL_NOT_FOUND, false));
        assert!(missing.message.contains("not found"));
        assert_eq!(status_failure(400, "bad").code, job_errors::INVALID_REQUEST);
        for status in [429, 500, 502, 503] {
            let failure = status_failure(status, "");
            assert_eq!((failure.code, failure.retryable), (job_errors::OLLAMA_ERROR, true), "{status}");
        }
    }

    #[test]
    fn lines_are_responses_or_errors() {
        let line = br#"{"model":"m","created_at":"2025-10-26T17:21:21Z","message":{"role":"assistant","content":"Hi"},"done":false}"#;
        assert_eq!(parse_line(line).unwrap().response.message.content, "Hi");
        let last = br#"{"model":"m","created_at":"2025-10-26T17:21:21Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"length","total_duration":5,"load_duration":1,"prompt_eval_count":2,"prompt_eval_duration":1,"eval_count":3,"eval_duration":2}"#;
        let last = parse_line(last).unwrap();
        assert_eq!(
            (last.done_reason.as_deref(), last.response.final_data.unwrap().eval_count),
            (Some("length"), 3)
        );
        let error =
            parse_line(br#"{"error":"an error was encountered while running the model"}"#).unwrap_err();
        assert_eq!((error.code, error.retryable), (job_errors::OLLAMA_ERROR, true));
        assert!(error.message.contains("while running the model"));
        assert!(parse_line(b"not json").is_err());
    }

    #[test]
    fn ollama_host_forms() {
        for (raw, expected) in [
            ("http://127.0.0.1:11434", "http://127.0.0.1:11434"),
            ("127.0.0.1", "http://127.0.0.1:11434"),
            ("0.0.0.0:11434", "http://127.0.0.1:11434"),
            ("gpu-box:8080/", "http://gpu-box:8080"),
            // With a scheme, the scheme's port, as Ollama's client does.
            ("https://ollama.internal", "https://ollama.internal:443"),
            ("http://ollama.internal", "http://ollama.internal:80"),
            ("[::]:11434", "http://[::1]:11434"),
            ("::1", "http://[::1]:11434"),
            ("http://[fd00::2]", "http://[fd00::2]:80"),
        ] {
            assert_eq!(normalize_url(raw).unwrap(), expected, "{raw}");
        }
        for bad in ["ftp://x", "", "http://", "gpu-box:port", "gpu-box:99999", "gpu-box/ollama"] {
            assert!(normalize_url(bad).is_err(), "{bad}");
        }
    }
}
