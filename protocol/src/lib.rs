//! The wire protocol between the Marketer control plane and its edge
//! agents: message types only.
//!
//! This crate must stay free of runtime dependencies (no tokio, axum or
//! sqlx): both sides depend on it, and it depends on nothing but serde and
//! plain data types.
//!
//! The agent talks to the control plane's agent gateway, a TLS listener
//! separate from the API:
//!
//! 1. **Enrollment** (`POST /agent/v1/enroll`, JSON over HTTPS, no client
//!    certificate yet): the agent sends an enrollment token and a CSR for a key
//!    it generated; it gets back its certificate ([`EnrollRequest`],
//!    [`EnrollResponse`]).
//! 2. **The tunnel** (`GET /agent/v1/connect`, a WebSocket over mutually
//!    authenticated TLS): every frame is one JSON text message, an
//!    [`AgentMessage`] from the agent or a [`ServerMessage`] from the control
//!    plane. The agent opens with [`Hello`] and the server answers
//!    [`Welcome`]; then the agent sends [`Heartbeat`]s at the interval the
//!    server chose.
//!
//! 3. **Jobs** travel over the tunnel: the server sends [`AssignJob`] (a
//!    lease with an epoch, the fencing number) and [`CancelJob`]; the agent
//!    answers with [`JobEvent`]s (started, output, finished), each with a
//!    sequence number per job attempt, kept in an on-disk outbox until the
//!    server's [`Acknowledge`] covers it. Replays after a reconnect are
//!    harmless: the server stores each sequence number once.
//!
//! A change to any type here changes the wire format; the golden fixtures in
//! `tests/fixtures/` make every such change deliberate.

pub mod activity;
pub mod documents;
pub mod inbox;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The oldest protocol version this build still accepts from a peer. A
/// server accepts agents speaking `MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION`,
/// so agents and servers can be upgraded independently within that range.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// Largest WebSocket message either side accepts by default.
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// The agent gateway's HTTP paths.
pub mod paths {
    /// `POST`: enroll with a token and a CSR.
    pub const ENROLL: &str = "/agent/v1/enroll";
    /// `GET` with a WebSocket upgrade: the tunnel. Needs a client certificate.
    pub const CONNECT: &str = "/agent/v1/connect";
    /// `GET`: liveness of the gateway and the server's clock, for diagnostics.
    pub const HEALTH: &str = "/agent/v1/health";
    /// `GET`: an uploaded document's file, for the agent given its ingest
    /// job. Needs a client certificate of the document's tenant.
    pub const DOCUMENTS: &str = "/agent/v1/documents";

    /// `GET`: the texts of a classify job's items, for the agent running
    /// it. Needs a client certificate of the job's agent.
    pub const CLASSIFY: &str = "/agent/v1/classify";

    /// `GET`: the item a reply job drafts an answer to, for the agent
    /// running it. Needs a client certificate of the job's agent.
    pub const REPLY: &str = "/agent/v1/reply";

    /// The file of an uploaded document.
    pub fn document(id: uuid::Uuid) -> String {
        format!("{DOCUMENTS}/{id}")
    }

    /// The texts of a classify job.
    pub fn classify(job_id: uuid::Uuid) -> String {
        format!("{CLASSIFY}/{job_id}")
    }

    /// The item of a reply job.
    pub fn reply(job_id: uuid::Uuid) -> String {
        format!("{REPLY}/{job_id}")
    }
}

/// WebSocket close codes the control plane uses (the private-use range
/// 4000-4999), with a human-readable reason in the close frame.
pub mod close {
    /// No valid client certificate, or one the control plane does not know.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The agent's protocol version is outside the accepted range.
    pub const INCOMPATIBLE_VERSION: u16 = 4002;
    /// An administrator revoked the agent. Do not reconnect.
    pub const REVOKED: u16 = 4003;
    /// The agent's certificate has expired. Re-enroll.
    pub const CERTIFICATE_EXPIRED: u16 = 4004;
    /// A malformed, unexpected or oversized message.
    pub const PROTOCOL_VIOLATION: u16 = 4005;
    /// The agent did not say `Hello` in time.
    pub const HANDSHAKE_TIMEOUT: u16 = 4006;
    /// A newer connection of the same agent replaced this one.
    pub const SUPERSEDED: u16 = 4007;
    /// Nothing arrived for longer than the offline threshold.
    pub const HEARTBEAT_TIMEOUT: u16 = 4008;
    /// The tenant's compliance mode changed: reconnect to receive it in a
    /// new `Welcome` (the agent's policy defaults depend on it).
    pub const COMPLIANCE_CHANGED: u16 = 4009;
    /// The agent's tenant was erased: reconnect at once, to be told to
    /// delete what it holds for it (`ServerMessage::EraseTenant`).
    pub const TENANT_ERASED: u16 = 4010;
}

/// Timestamps travel as RFC 3339 strings.
pub use time::serde::rfc3339;

/// The body of every error answer of the agent gateway's HTTP endpoints
/// (the same shape as the control plane's API errors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Stable and machine-readable, for example `enrollment_token_expired`.
    pub code: String,
    /// For people: what went wrong and what to do.
    pub message: String,
}

/// Error codes of enrollment and connection refusals.
pub mod codes {
    pub const TOKEN_INVALID: &str = "enrollment_token_invalid";
    pub const TOKEN_EXPIRED: &str = "enrollment_token_expired";
    pub const TOKEN_USED_UP: &str = "enrollment_token_used_up";
    pub const TOKEN_REVOKED: &str = "enrollment_token_revoked";
    pub const INVALID_CSR: &str = "invalid_csr";
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const CERTIFICATE_REQUIRED: &str = "client_certificate_required";
    pub const CERTIFICATE_UNKNOWN: &str = "client_certificate_unknown";
    pub const CERTIFICATE_EXPIRED: &str = "client_certificate_expired";
    pub const AGENT_REVOKED: &str = "agent_revoked";
}

/// `POST /agent/v1/enroll`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The enrollment token's secret part (without the CA pin).
    pub token: String,
    /// A PKCS#10 certificate signing request in PEM for a key the agent
    /// generated and keeps.
    pub csr_pem: String,
    /// A display name; defaults to the host name.
    pub name: Option<String>,
    /// Labels in addition to those the token carries.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub host: HostInfo,
    pub agent_version: String,
}

/// Facts about the machine an agent runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    /// `linux`, `macos`, `windows`, ...
    pub os: String,
    /// `x86_64`, `aarch64`, ...
    pub arch: String,
}

/// The answer to a successful enrollment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The agent's client certificate, PEM.
    pub certificate_pem: String,
    /// The control plane's CA certificate, PEM: the trust anchor for the
    /// gateway from now on.
    pub ca_certificate_pem: String,
    #[serde(with = "rfc3339")]
    pub not_after: OffsetDateTime,
}

/// `GET /agent/v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResponse {
    #[serde(with = "rfc3339")]
    pub server_time: OffsetDateTime,
    pub protocol_version: u32,
    pub min_protocol_version: u32,
}

/// A model the agent's Ollama has pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub size_bytes: u64,
    pub digest: Option<String>,
}

/// A message from the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMessage {
    /// The first message of every connection: who the agent is and what it
    /// can do.
    Hello(Hello),
    /// Periodic liveness and load report.
    Heartbeat(Heartbeat),
    /// A request for a fresh certificate for a new key, sent at two thirds of
    /// the current certificate's lifetime.
    RenewCertificate(RenewCertificate),
    /// Progress of a job: started, a batch of output, or its outcome.
    JobEvent(JobEvent),
    /// Documents indexed, changed or removed on the agent (metadata only).
    Documents(documents::DocumentReport),
    /// The answer to `EraseTenant`: what the agent deleted.
    TenantErased(TenantErased),
}

/// A message from the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The answer to `Hello`: the agent's identity as the control plane knows
    /// it, and the timings it must use.
    Welcome(Welcome),
    /// A renewed certificate, to be stored and used from the next connection.
    CertificateRenewed(CertificateRenewed),
    /// A renewal that was refused; the agent keeps its current certificate
    /// and tries again later.
    RenewalRejected(RenewalRejected),
    /// Run this job (a lease: it is the agent's until it reports an outcome,
    /// it is cancelled, or the agent is gone past the grace period).
    AssignJob(AssignJob),
    /// Stop this job now and report it cancelled.
    CancelJob(CancelJob),
    /// The server has durably stored every event of the job attempt up to
    /// `seq`; the agent may forget them.
    Acknowledge(Acknowledge),
    /// The document report `seq` is stored, except the documents refused
    /// (an unknown project, say), which the agent marks failed.
    DocumentsAcknowledged {
        seq: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        refused: Vec<documents::RefusedDocument>,
    },
    /// Remove these documents from the agent's indexes (deleted by a user).
    RemoveDocuments { ids: Vec<Uuid> },
    /// The answer to `Hello` when the agent's tenant was erased: delete
    /// everything held for it (document indexes, the outbox of job events,
    /// cached state), then answer `TenantErased`. Nothing else follows.
    EraseTenant { erasure_id: Uuid, tenant_id: Uuid },
    /// The agent's `TenantErased` is recorded: it may now forget its
    /// identity (its certificate will never be accepted again) and stop.
    ErasureRecorded { erasure_id: Uuid },
}

/// What an agent deleted when its tenant was erased. Counts only: the
/// control plane learns that the data is gone, not what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantErased {
    pub erasure_id: Uuid,
    /// Documents and their chunks removed from the agent's index.
    pub documents: u64,
    pub chunks: u64,
    /// Job attempts whose undelivered events were in the outbox.
    pub outbox_entries: u64,
    /// Files removed from the agent's directory, and their size.
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub agent_version: String,
    pub host: HostInfo,
    pub labels: BTreeMap<String, String>,
    /// How many jobs the agent runs at once.
    pub max_concurrency: u32,
    pub ollama: OllamaStatus,
    /// Jobs the agent is still running, or has unacknowledged events of,
    /// from before this connection.
    pub running_jobs: Vec<JobRef>,
    /// Projects whose document index the agent holds.
    #[serde(default)]
    pub projects: Vec<Uuid>,
    /// The agent's privacy policy as it applies it.
    #[serde(default)]
    pub policy: documents::PolicySummary,
}

/// What the agent sees of its local Ollama.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OllamaStatus {
    pub reachable: bool,
    pub models: Vec<ModelInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Increases by one per heartbeat of a connection.
    pub seq: u64,
    /// Jobs the agent runs at once (its slots).
    pub max_concurrency: u32,
    pub running_jobs: u32,
    pub free_slots: u32,
    pub ollama_reachable: bool,
    /// The model list, sent only when it changed since the last report.
    pub models: Option<Vec<ModelInfo>>,
    /// The job attempts the agent holds: running, or finished with events
    /// not yet acknowledged. Their leases are renewed; an assignment the
    /// agent does not list here never reached it.
    pub jobs: Vec<JobRef>,
    /// The projects whose index the agent holds, sent only when they changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<Uuid>>,
    /// The policy the agent applies, sent only when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<documents::PolicySummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewCertificate {
    /// A CSR in PEM for a newly generated key.
    pub csr_pem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    /// The agent's labels as the control plane holds them (administrators
    /// may change them).
    pub labels: BTreeMap<String, String>,
    #[serde(with = "rfc3339")]
    pub server_time: OffsetDateTime,
    /// The protocol version both sides use on this connection.
    pub protocol_version: u32,
    /// Send a heartbeat this often (with some jitter).
    pub heartbeat_interval_ms: u64,
    /// The control plane considers the agent gone after this long without a
    /// message, and so should the agent consider the control plane.
    pub offline_after_ms: u64,
    pub max_frame_bytes: u64,
    /// When to ask for a new certificate.
    #[serde(with = "rfc3339")]
    pub renew_certificate_at: OffsetDateTime,
    /// The tenant's compliance mode, `standard` or `hipaa`: a `hipaa`
    /// tenant's agents redact by default (their own policy decides).
    #[serde(default = "standard")]
    pub tenant_compliance: String,
}

fn standard() -> String {
    "standard".to_owned()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRenewed {
    pub certificate_pem: String,
    #[serde(with = "rfc3339")]
    pub not_after: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalRejected {
    pub reason: String,
}

/// A job attempt: the job and the epoch (fencing number) of its current
/// lease. Events carrying an older epoch are acknowledged and discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JobRef {
    pub job_id: Uuid,
    pub epoch: u64,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobSpec {
    /// A chat completion, streamed.
    Chat {
        model: String,
        messages: Vec<ChatMessage>,
        /// `"json"`, or a JSON schema object, for structured output.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<serde_json::Value>,
        #[serde(default)]
        options: JobOptions,
    },
    /// Embeddings of one or more texts.
    Embed { model: String, input: Vec<String> },
    /// A marketing activity: the whole content pipeline (several LLM calls)
    /// in one attempt, so intermediate text stays where it runs.
    Activity { model: String, activity: Box<activity::ActivityJob> },
    /// Index an uploaded document: the agent downloads it from the gateway
    /// (`GET /agent/v1/documents/{id}`), checks its hash, and indexes it
    /// with this embedding model.
    Ingest { model: String, document: IngestDocument },
    /// Label inbox items (sentiment, intent, urgency, language, personal
    /// data), many per model call; their texts come from the gateway.
    Classify { model: String, items: Vec<inbox::ClassifyItem> },
    /// Draft a suggested reply to one inbox item, grounded in the
    /// project's documents; the item comes from the gateway.
    Reply { model: String, reply: inbox::ReplyJob },
}

/// A document to index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestDocument {
    pub document_id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub media_type: String,
    pub size_bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

impl JobSpec {
    pub fn model(&self) -> &str {
        match self {
            JobSpec::Chat { model, .. }
            | JobSpec::Embed { model, .. }
            | JobSpec::Activity { model, .. }
            | JobSpec::Ingest { model, .. }
            | JobSpec::Classify { model, .. }
            | JobSpec::Reply { model, .. } => model,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// Sampling and context options, passed to Ollama as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_predict: Option<i32>,
    /// The context window; when absent the agent asks Ollama for the model's
    /// own (Ollama's 2048-token default silently truncates long prompts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_ctx: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignJob {
    pub job: JobRef,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub spec: JobSpec,
    /// Start-to-close budget of this attempt.
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelJob {
    pub job: JobRef,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledge {
    pub job: JobRef,
    /// Every event of the attempt up to and including this one is stored.
    pub seq: u64,
}

/// One step of a job attempt. `seq` counts from 1 per attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub job: JobRef,
    pub seq: u64,
    #[serde(flatten)]
    pub body: JobEventBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEventBody {
    /// The agent began working on the job.
    Started,
    /// Streamed text, in order; batches of tokens rather than single ones.
    /// In an activity, the partial output of the step last announced.
    Output { text: String },
    /// An activity's pipeline moved on: the step now running, how far along
    /// the whole is (0 to 100), and what it is doing.
    Progress { step: String, percent: u8, message: String },
    /// What an activity has completed so far (each step as it finishes), so
    /// that a run that fails, times out or is cancelled keeps its work and
    /// a later run can resume from it. Replaces the previous checkpoint.
    Checkpoint { result: Box<activity::ActivityResult>, usage: Usage },
    /// The attempt's one outcome.
    Finished { outcome: JobOutcome },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JobOutcome {
    Succeeded { output: JobOutput, usage: Usage },
    Failed { error: JobError },
    Cancelled { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobOutput {
    /// The assistant's message of a chat job. `done_reason` is Ollama's:
    /// `stop` (the model finished) or `length` (cut off at `num_predict`).
    Message {
        role: String,
        content: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        done_reason: String,
    },
    /// One vector per input of an embedding job.
    Embeddings { embeddings: Vec<Vec<f32>> },
    /// What an activity's pipeline produced.
    Activity { result: Box<activity::ActivityResult> },
    /// A document indexed: its chunks.
    Ingested { document_id: Uuid, chunk_count: u32 },
    /// Inbox items' labels, one per item in the job's order.
    Classified { items: Vec<inbox::ItemLabels> },
    /// A suggested reply to an inbox item.
    ReplyDrafted { draft: inbox::ReplyDraft },
}

/// Token counts and durations as Ollama reports them, plus wall time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub load_duration_ns: u64,
    pub prompt_eval_duration_ns: u64,
    pub eval_duration_ns: u64,
    pub total_duration_ns: u64,
    /// Time from the agent receiving the job to the outcome.
    pub wall_time_ms: u64,
    /// Identifiers the agent's policy redacted, by kind (never the values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redactions: documents::RedactionCounts,
}

/// Why an attempt failed, and whether another attempt could succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// Stable job error codes.
pub mod job_errors {
    pub const MODEL_NOT_FOUND: &str = "model_not_found";
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const OLLAMA_UNREACHABLE: &str = "ollama_unreachable";
    pub const OLLAMA_ERROR: &str = "ollama_error";
    pub const STALLED: &str = "stalled";
    pub const TIMEOUT: &str = "timeout";
    pub const AGENT_LOST: &str = "agent_lost";
    pub const AGENT_BUSY: &str = "agent_busy";
    /// The control plane could not send the assignment to the agent.
    pub const NOT_DELIVERED: &str = "not_delivered";
    pub const QUEUE_TIMEOUT: &str = "queue_timeout";
    pub const POLICY: &str = "policy";
    pub const OUTPUT_TOO_LARGE: &str = "output_too_large";
    /// The agent itself failed (its files, the gateway download).
    pub const AGENT_ERROR: &str = "agent_error";
    /// A document could not be read or indexed (the reason says why).
    pub const DOCUMENT_UNREADABLE: &str = "document_unreadable";
}

/// Ollama reads a model name without a tag as `name:latest`; names are
/// compared in that form.
pub fn canonical_model_name(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') { name.to_owned() } else { format!("{name}:latest") }
}

/// The enrollment token as an administrator copies it: the secret, a dot,
/// and the SHA-256 of the control plane's CA certificate (64 hex digits),
/// which lets the agent verify the server on first contact without trusting
/// anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    pub secret: String,
    pub ca_sha256: [u8; 32],
}

impl EnrollmentToken {
    pub fn parse(text: &str) -> Option<Self> {
        let (secret, hash) = text.trim().rsplit_once('.')?;
        if secret.is_empty() || hash.len() != 64 {
            return None;
        }
        let mut ca_sha256 = [0u8; 32];
        for (i, byte) in ca_sha256.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hash.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self { secret: secret.to_owned(), ca_sha256 })
    }

    pub fn to_text(&self) -> String {
        let hex: String = self.ca_sha256.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}.{hex}", self.secret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_tokens_round_trip() {
        let token = EnrollmentToken { secret: "mkt_et_abc".into(), ca_sha256: [0xab; 32] };
        let text = token.to_text();
        assert_eq!(text, format!("mkt_et_abc.{}", "ab".repeat(32)));
        assert_eq!(EnrollmentToken::parse(&text), Some(token));
        for bad in ["", "nodot", "x.abc", ".".repeat(65).as_str(), &format!("x.{}", "zz".repeat(32))] {
            assert_eq!(EnrollmentToken::parse(bad), None, "{bad}");
        }
    }
}
