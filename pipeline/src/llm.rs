//! The one interface the pipeline talks to a model through. The edge agent
//! implements it over its local Ollama, the control plane over an
//! OpenAI-compatible endpoint; the pipeline does not know which.

use std::future::Future;

/// A message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self { role: Role::System, content: content.into() }
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self { role: Role::User, content: content.into() }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: content.into() }
    }
}

/// One call to the model.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    pub messages: &'a [Message],
    /// A JSON schema the answer must follow (structured output), or `None`
    /// for free text.
    pub schema: Option<&'a serde_json::Value>,
    pub temperature: f32,
    /// At most this many tokens of answer (Ollama's `num_predict`).
    pub max_tokens: Option<u32>,
    /// The sampling seed, when the call must differ from (or repeat) an
    /// earlier one; `None` leaves it to the backend.
    pub seed: Option<u32>,
}

/// The model's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Why the model stopped: `stop`, or `length` when it reached
    /// `max_tokens` (the answer is cut off); empty when the backend does
    /// not say.
    pub done_reason: String,
    /// Time spent reading the prompt, writing the answer and loading the
    /// model, as the backend reports them (0 when it does not).
    pub prompt_eval_duration_ns: u64,
    pub eval_duration_ns: u64,
    pub load_duration_ns: u64,
}

/// Why a call failed, in the terms of job errors: a stable code, a message
/// for people, and whether trying again could help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// A model to talk to.
pub trait Llm: Send + Sync {
    /// `ollama` or `openai_compatible`, for the result's provenance.
    fn backend(&self) -> &'static str;

    /// The model's name.
    fn model(&self) -> &str;

    /// Sends the conversation and returns the whole answer, passing the text
    /// to `on_text` as it arrives (in batches, not necessarily per token).
    fn chat(
        &self,
        request: ChatRequest<'_>,
        on_text: &mut (dyn FnMut(&str) + Send),
    ) -> impl Future<Output = Result<Reply, LlmError>> + Send;
}

/// A passage of the project's own documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub text: String,
    pub file: String,
    pub section: String,
    pub page: Option<u32>,
}

/// The project's documents, searched (on the agent that holds their index).
pub trait Retriever: Send + Sync {
    /// Why there is nothing to search, if so: the result says it.
    fn unavailable(&self) -> Option<String>;

    /// The best passages for the queries, at most `limit`.
    fn search(
        &self,
        queries: &[String],
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Passage>, LlmError>> + Send;
}

/// No documents to search, and why.
#[derive(Debug, Clone)]
pub struct NoDocuments(pub String);

impl Retriever for NoDocuments {
    fn unavailable(&self) -> Option<String> {
        Some(self.0.clone())
    }

    async fn search(&self, _queries: &[String], _limit: usize) -> Result<Vec<Passage>, LlmError> {
        Ok(Vec::new())
    }
}

/// Where the pipeline reports how far it got.
pub trait Progress: Send {
    /// A step began: its name, how far along the whole pipeline is (0 to
    /// 100), and what it does, for people.
    fn step(&mut self, step: &str, percent: u8, message: &str);

    /// Partial output of the step last announced (a draft as it is written).
    fn text(&mut self, text: &str);

    /// What the run has completed so far, after each step: a run that
    /// stops later keeps it, and a later run can resume from it.
    fn checkpoint(
        &mut self,
        _partial: &marketer_protocol::activity::ActivityResult,
        _usage: &marketer_protocol::Usage,
    ) {
    }
}
