//! LLM jobs as API callers submit, watch and cancel them.
//!
//! Validation happens here, before anything is stored: a job the agents
//! could not run (no messages, options Ollama would reject, a model no agent
//! of the tenant has) is a 422 naming the field, not a failed job later.

use std::collections::BTreeSet;

use marketer_protocol::{ChatMessage, JobError, JobOptions, JobOutput, JobSpec, Usage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{App, TenantAccess, actions};
use crate::domain::{ModelName, Permission, Timestamp, check_labels, new_id};
use crate::error::{Error, FoundExt, Result};
use crate::store::{
    Actor, CancelOutcome, CreateJobOutcome, Job, JobFilter, JobKind, JobStatus, Labels, NewJob, Page,
    PageRequest, Route,
};

pub const DEFAULT_TIMEOUT_SECONDS: i64 = 900;
pub const MAX_TIMEOUT_SECONDS: i64 = 24 * 3600;
pub const MAX_QUEUE_TIMEOUT_SECONDS: i64 = 7 * 24 * 3600;
pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;
pub const MAX_ATTEMPTS: i64 = 10;
/// How far ahead a job may be scheduled (`not_before`).
pub const MAX_NOT_BEFORE_DAYS: i64 = 366;
pub const DEFAULT_PRIORITY: i64 = 3;
const MAX_MESSAGES: usize = 1000;
const MAX_EMBED_INPUTS: usize = 1000;
const MAX_STOP_SEQUENCES: usize = 16;

/// A job to run on one of the tenant's agents.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateJob {
    pub kind: JobKind,
    /// An Ollama model name, e.g. `llama3.2` (the same as `llama3.2:latest`).
    pub model: String,
    /// Chat jobs: the conversation, oldest first.
    pub messages: Option<Vec<MessageIn>>,
    /// Chat jobs: `"json"`, or a JSON schema object the answer must follow.
    #[schema(value_type = Option<Object>)]
    pub format: Option<serde_json::Value>,
    /// Chat jobs: sampling and context options.
    pub options: Option<OptionsIn>,
    /// Embed jobs: a text or a list of texts.
    pub input: Option<EmbedInput>,
    /// Only agents with all these labels may run the job.
    #[serde(default)]
    pub labels: Labels,
    /// 1 (highest) to 5; default 3.
    #[schema(minimum = 1, maximum = 5)]
    pub priority: Option<i64>,
    /// Do not start before this instant (RFC 3339), at most 366 days ahead.
    pub not_before: Option<Timestamp>,
    /// Start-to-close limit of each attempt, 1 to 86,400 s; default 900.
    #[schema(minimum = 1, maximum = 86_400)]
    pub timeout_seconds: Option<i64>,
    /// Fail the job if no agent started it within this many seconds of its
    /// submission (1 to 604,800). Default: wait indefinitely.
    #[schema(minimum = 1, maximum = 604_800)]
    pub queue_timeout_seconds: Option<i64>,
    /// Attempts before a retryable failure becomes final, 1 to 10; default 3.
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: Option<i64>,
    /// A retried request with the same key (and the same body) returns the
    /// job the first one created instead of creating another.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// Options passed to Ollama.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptionsIn {
    /// 0 to 2.
    pub temperature: Option<f64>,
    /// Tokens to generate: -1 (no limit), -2 (fill the context) or 1 to 1,000,000.
    pub num_predict: Option<i64>,
    /// Context window in tokens, 256 to 1,048,576. Default: the model's own.
    pub num_ctx: Option<i64>,
    pub seed: Option<i64>,
    /// Up to 16 stop sequences.
    pub stop: Option<Vec<String>>,
    /// Above 0, at most 1.
    pub top_p: Option<f64>,
    /// 1 to 1000.
    pub top_k: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EmbedInput {
    One(String),
    Many(Vec<String>),
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    pub kind: JobKind,
    pub model: String,
    pub status: JobStatus,
    /// Why a queued job has not started: no agent online, the model is
    /// missing, every matching agent is busy.
    pub waiting_reason: Option<String>,
    pub priority: i64,
    pub labels: Labels,
    pub attempts: i64,
    pub max_attempts: i64,
    /// The agent holding or last holding the job.
    pub agent_id: Option<Uuid>,
    pub timeout_seconds: i64,
    pub queue_timeout_seconds: Option<i64>,
    pub idempotency_key: Option<String>,
    pub created_by: String,
    pub not_before: Option<Timestamp>,
    /// When a failed attempt's retry may start.
    pub retry_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub assigned_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// The assistant message (`{"type": "message", "role", "content"}`) or
    /// the embeddings (`{"type": "embeddings", "embeddings": [[...]]}`).
    #[schema(value_type = Option<Object>)]
    pub output: Option<JobOutput>,
    /// Token counts and durations as Ollama reported them, and wall time.
    #[schema(value_type = Option<Object>)]
    pub usage: Option<Usage>,
    /// The final error, or the last attempt's while a retry is pending.
    #[schema(value_type = Option<Object>)]
    pub error: Option<JobError>,
    /// The request as submitted (only when reading a single job).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub request: Option<JobSpec>,
    /// The id of the job's last event (for resuming its event stream).
    pub last_event_id: i64,
}

impl JobView {
    fn new(job: Job, with_request: bool) -> Self {
        Self {
            id: job.id,
            kind: job.kind,
            model: job.model,
            status: job.status,
            waiting_reason: job.waiting_reason.filter(|_| job.status == JobStatus::Queued),
            priority: job.priority,
            labels: job.labels,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            agent_id: job.agent_id,
            timeout_seconds: job.timeout_seconds,
            queue_timeout_seconds: job.queue_timeout_seconds,
            idempotency_key: job.idempotency_key,
            created_by: job.created_by,
            not_before: job.not_before,
            retry_at: job.retry_at.filter(|_| job.status == JobStatus::Queued),
            created_at: job.created_at,
            assigned_at: job.assigned_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            updated_at: job.updated_at,
            output: job.output,
            usage: job.usage,
            error: job.error,
            request: with_request.then_some(job.spec),
            last_event_id: job.event_seq,
        }
    }
}

/// Filters of `GET /jobs`.
#[derive(Debug, Default)]
pub struct JobQuery {
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    pub agent_id: Option<Uuid>,
    pub since: Option<Timestamp>,
}

/// Whether the job was created by this request or an earlier one with the
/// same idempotency key.
#[derive(Debug)]
pub struct Submitted {
    pub job: JobView,
    pub created: bool,
}

impl App {
    pub async fn create_job(&self, access: &TenantAccess, req: CreateJob) -> Result<Submitted> {
        access.require(Permission::ActivitiesCreate)?;
        let model = canonical_model(&req.model)?;
        let spec = job_spec(req.kind, model.clone(), req.messages, req.format, req.options, req.input)?;
        check_labels(&req.labels).map_err(|e| Error::invalid("labels", e.to_string()))?;
        let priority = in_range("priority", req.priority, 1, 5, DEFAULT_PRIORITY)?;
        let timeout_seconds = in_range(
            "timeout_seconds",
            req.timeout_seconds,
            1,
            MAX_TIMEOUT_SECONDS,
            DEFAULT_TIMEOUT_SECONDS,
        )?;
        let queue_timeout_seconds = match req.queue_timeout_seconds {
            Some(s) => Some(in_range("queue_timeout_seconds", Some(s), 1, MAX_QUEUE_TIMEOUT_SECONDS, 0)?),
            None => None,
        };
        let max_attempts = in_range("max_attempts", req.max_attempts, 1, MAX_ATTEMPTS, DEFAULT_MAX_ATTEMPTS)?;
        if let Some(not_before) = req.not_before
            && not_before > Timestamp::now() + time::Duration::days(MAX_NOT_BEFORE_DAYS)
        {
            return Err(Error::invalid(
                "not_before",
                format!("must be at most {MAX_NOT_BEFORE_DAYS} days from now"),
            ));
        }
        if let Some(key) = &req.idempotency_key
            && (key.is_empty() || key.len() > 255 || key.chars().any(char::is_control))
        {
            return Err(Error::invalid("idempotency_key", "must be 1 to 255 printable characters"));
        }
        self.check_model_known(access.tenant_id, &model).await?;

        let request_hash = {
            let identity = serde_json::json!({
                "spec": spec, "labels": req.labels, "priority": priority, "not_before": req.not_before,
                "timeout_seconds": timeout_seconds, "queue_timeout_seconds": queue_timeout_seconds,
                "max_attempts": max_attempts,
            });
            Sha256::digest(identity.to_string().as_bytes()).to_vec()
        };
        let job = NewJob {
            id: new_id(),
            tenant_id: access.tenant_id,
            spec,
            labels: req.labels,
            priority,
            not_before: req.not_before,
            timeout_seconds,
            queue_timeout_seconds,
            max_attempts,
            idempotency_key: req.idempotency_key,
            request_hash,
            created_by: submitter(access),
            activity_id: None,
            route: Route::Edge,
            index_project_id: None,
        };
        let audit = access.audit(actions::JOB_CREATE).resource("job", job.id).details(
            serde_json::json!({ "kind": JobKind::of(&job.spec), "model": model, "priority": priority }),
        );
        match self.store.create_job(&job, &audit).await? {
            CreateJobOutcome::Created(job) => {
                self.jobs.queued();
                Ok(Submitted { job: JobView::new(*job, false), created: true })
            }
            CreateJobOutcome::Existing(job) => {
                Ok(Submitted { job: JobView::new(*job, false), created: false })
            }
        }
    }

    /// A model no agent of the tenant reports is refused, unless the tenant's
    /// agents have not reported any models yet (none enrolled, or none has
    /// reached its Ollama): then the job waits and says why.
    async fn check_model_known(&self, tenant_id: Uuid, model: &str) -> Result<()> {
        let agents = self.store.agents(tenant_id, PageRequest { after: None, limit: 1000 }).await?;
        let known: BTreeSet<String> = agents
            .items
            .iter()
            .filter(|a| a.revoked_at.is_none())
            .flat_map(|a| a.models.iter().map(|m| marketer_protocol::canonical_model_name(&m.name)))
            .collect();
        if known.is_empty() || known.contains(model) {
            return Ok(());
        }
        let listed: Vec<&str> = known.iter().take(20).map(String::as_str).collect();
        Err(Error::invalid(
            "model",
            format!(
                "no agent of this tenant has the model {model}; pull it on an agent host with `ollama pull {model}` or use one of: {}",
                listed.join(", ")
            ),
        ))
    }

    pub async fn job(&self, access: &TenantAccess, id: Uuid) -> Result<JobView> {
        access.require(Permission::ActivitiesRead)?;
        let job = self.store.job(access.tenant_id, id).await.found("job")?;
        self.audit_content_read(access, "job", id, "job").await?;
        Ok(JobView::new(job, true))
    }

    pub async fn jobs_page(
        &self,
        access: &TenantAccess,
        query: JobQuery,
        page: PageRequest,
    ) -> Result<Page<JobView>> {
        access.require(Permission::ActivitiesRead)?;
        let filter = JobFilter {
            status: query.status,
            kind: query.kind,
            agent_id: query.agent_id,
            since: query.since,
        };
        let page = self.store.jobs(access.tenant_id, &filter, page).await?;
        Ok(Page { items: page.items.into_iter().map(|j| JobView::new(j, false)).collect(), next: page.next })
    }

    /// Cancels a job: at once in the record, then the agent running it (if
    /// any) is told to abort. Cancelling a cancelled job is a no-op; a job
    /// that already succeeded or failed cannot be cancelled.
    pub async fn cancel_job(&self, access: &TenantAccess, id: Uuid) -> Result<JobView> {
        access.require(Permission::ActivitiesUpdate)?;
        let audit = access.audit(actions::JOB_CANCEL).resource("job", id);
        match self.store.cancel_job(access.tenant_id, id, Timestamp::now(), &audit).await {
            Ok(CancelOutcome::Cancelled(transition)) => {
                self.jobs.apply(std::slice::from_ref(&*transition), "cancelled by a user");
                Ok(JobView::new(transition.job, false))
            }
            Ok(CancelOutcome::AlreadyFinished(job)) if job.status == JobStatus::Cancelled => {
                Ok(JobView::new(*job, false))
            }
            Ok(CancelOutcome::AlreadyFinished(job)) => Err(Error::Conflict {
                code: "job_finished",
                message: format!(
                    "the job already {}; only queued and running jobs can be cancelled",
                    job.status
                ),
            }),
            Err(crate::store::StoreError::NotFound) => Err(Error::NotFound("job")),
            Err(e) => Err(e.into()),
        }
    }

    /// Checks the caller may read the job's events; returns the job.
    pub async fn job_for_events(&self, access: &TenantAccess, id: Uuid) -> Result<Job> {
        access.require(Permission::ActivitiesRead)?;
        let job = self.store.job(access.tenant_id, id).await.found("job")?;
        self.audit_content_read(access, "job", id, "events").await?;
        Ok(job)
    }
}

/// Who submitted a job, for display.
pub(crate) fn submitter(access: &TenantAccess) -> String {
    match access.caller.actor() {
        Actor::User { email, .. } => email,
        Actor::ApiKey { name, .. } => format!("API key {name}"),
        Actor::System { name } => name,
        Actor::Agent { id, .. } => format!("agent {id}"),
        Actor::Anonymous => "anonymous".to_owned(),
        Actor::Reviewer { email } => format!("{email} (external reviewer)"),
    }
}

/// `llama3.2` and `llama3.2:latest` are the same model to Ollama; jobs and
/// agents' model lists use the tagged form.
pub fn canonical_model(name: &str) -> Result<String> {
    let parsed = ModelName::parse(name).map_err(|e| Error::invalid("model", e.to_string()))?;
    Ok(marketer_protocol::canonical_model_name(parsed.as_str()))
}

fn in_range(field: &str, value: Option<i64>, min: i64, max: i64, default: i64) -> Result<i64> {
    let value = value.unwrap_or(default);
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(Error::invalid(field, format!("must be between {min} and {max}")))
    }
}

/// The job as agents receive it, from the request's kind-specific fields.
fn job_spec(
    kind: JobKind,
    model: String,
    messages: Option<Vec<MessageIn>>,
    format: Option<serde_json::Value>,
    options: Option<OptionsIn>,
    input: Option<EmbedInput>,
) -> Result<JobSpec> {
    match kind {
        JobKind::Chat => {
            if input.is_some() {
                return Err(Error::invalid("input", "is for embed jobs; a chat job takes messages"));
            }
            chat_spec(model, messages.unwrap_or_default(), format, options.unwrap_or_default())
        }
        JobKind::Embed => {
            for (field, present) in [
                ("messages", messages.is_some()),
                ("format", format.is_some()),
                ("options", options.is_some()),
            ] {
                if present {
                    return Err(Error::invalid(field, "is for chat jobs; an embed job takes input"));
                }
            }
            embed_spec(model, input)
        }
        JobKind::Activity => Err(Error::invalid(
            "kind",
            "activity jobs are created with POST /api/v1/tenants/{tenant_id}/projects/{project_id}/activities",
        )),
        JobKind::Ingest => Err(Error::invalid(
            "kind",
            "ingest jobs are created by uploading a document: POST /api/v1/tenants/{tenant_id}/projects/{project_id}/documents",
        )),
        JobKind::Classify => {
            Err(Error::invalid("kind", "classify jobs are created by the inbox for the items it collects"))
        }
        JobKind::Reply => Err(Error::invalid(
            "kind",
            "reply jobs are created by the inbox for its items (or POST .../inbox/{inbox_item_id}/reply-draft)",
        )),
    }
}

fn chat_spec(
    model: String,
    messages: Vec<MessageIn>,
    format: Option<serde_json::Value>,
    options: OptionsIn,
) -> Result<JobSpec> {
    if messages.is_empty() {
        return Err(Error::invalid("messages", "a chat job needs at least one message"));
    }
    if messages.len() > MAX_MESSAGES {
        return Err(Error::invalid("messages", format!("at most {MAX_MESSAGES} messages")));
    }
    let mut checked = Vec::with_capacity(messages.len());
    for (i, message) in messages.into_iter().enumerate() {
        if !matches!(message.role.as_str(), "system" | "user" | "assistant") {
            return Err(Error::invalid(format!("messages[{i}].role"), "must be system, user or assistant"));
        }
        if message.content.trim().is_empty() {
            return Err(Error::invalid(format!("messages[{i}].content"), "must not be empty"));
        }
        checked.push(ChatMessage { role: message.role, content: message.content });
    }
    if let Some(format) = &format {
        let valid = match format {
            serde_json::Value::String(s) => s == "json",
            serde_json::Value::Object(schema) => !schema.is_empty(),
            _ => false,
        };
        if !valid {
            return Err(Error::invalid("format", "must be \"json\" or a JSON schema object"));
        }
    }
    Ok(JobSpec::Chat { model, messages: checked, format, options: check_options(options)? })
}

fn embed_spec(model: String, input: Option<EmbedInput>) -> Result<JobSpec> {
    let input = match input {
        Some(EmbedInput::One(text)) => vec![text],
        Some(EmbedInput::Many(texts)) => texts,
        None => return Err(Error::invalid("input", "an embed job needs a text or a list of texts")),
    };
    if input.is_empty() {
        return Err(Error::invalid("input", "must contain at least one text"));
    }
    if input.len() > MAX_EMBED_INPUTS {
        return Err(Error::invalid("input", format!("at most {MAX_EMBED_INPUTS} texts per job")));
    }
    if let Some(i) = input.iter().position(|t| t.trim().is_empty()) {
        return Err(Error::invalid(format!("input[{i}]"), "must not be empty"));
    }
    Ok(JobSpec::Embed { model, input })
}

fn check_options(o: OptionsIn) -> Result<JobOptions> {
    let float = |field: &str, v: Option<f64>, ok: fn(f64) -> bool, rule: &str| -> Result<Option<f32>> {
        match v {
            Some(v) if !v.is_finite() || !ok(v) => {
                Err(Error::invalid(format!("options.{field}"), rule.to_owned()))
            }
            #[allow(clippy::cast_possible_truncation)]
            Some(v) => Ok(Some(v as f32)),
            None => Ok(None),
        }
    };
    let temperature =
        float("temperature", o.temperature, |v| (0.0..=2.0).contains(&v), "must be between 0 and 2")?;
    let top_p = float("top_p", o.top_p, |v| v > 0.0 && v <= 1.0, "must be above 0 and at most 1")?;
    let num_predict = match o.num_predict {
        Some(n) if n == -1 || n == -2 || (1..=1_000_000).contains(&n) => Some(i32::try_from(n).unwrap_or(-1)),
        Some(_) => {
            return Err(Error::invalid(
                "options.num_predict",
                "must be -1 (no limit), -2 (fill the context) or 1 to 1000000",
            ));
        }
        None => None,
    };
    let num_ctx = match o.num_ctx {
        Some(n) if (256..=1_048_576).contains(&n) => Some(u32::try_from(n).unwrap_or(2048)),
        Some(_) => return Err(Error::invalid("options.num_ctx", "must be between 256 and 1048576")),
        None => None,
    };
    let seed = match o.seed {
        Some(s) => Some(i32::try_from(s).map_err(|_| Error::invalid("options.seed", "must fit in 32 bits"))?),
        None => None,
    };
    let top_k = match o.top_k {
        Some(k) if (1..=1000).contains(&k) => Some(u32::try_from(k).unwrap_or(40)),
        Some(_) => return Err(Error::invalid("options.top_k", "must be between 1 and 1000")),
        None => None,
    };
    if let Some(stop) = &o.stop {
        if stop.len() > MAX_STOP_SEQUENCES {
            return Err(Error::invalid(
                "options.stop",
                format!("at most {MAX_STOP_SEQUENCES} stop sequences"),
            ));
        }
        if let Some(i) = stop.iter().position(|s| s.is_empty() || s.len() > 256) {
            return Err(Error::invalid(format!("options.stop[{i}]"), "must be 1 to 256 bytes"));
        }
    }
    Ok(JobOptions { temperature, num_predict, num_ctx, seed, stop: o.stop, top_p, top_k })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(options: OptionsIn) -> Result<JobSpec> {
        let messages = vec![MessageIn { role: "user".into(), content: "hi".into() }];
        job_spec(JobKind::Chat, "m:latest".into(), Some(messages), None, Some(options), None)
    }

    fn field(result: Result<JobSpec>) -> String {
        match result {
            Err(Error::Invalid { field, .. }) => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn options_out_of_range_name_the_field() {
        assert_eq!(
            field(chat(OptionsIn { temperature: Some(3.0), ..Default::default() })),
            "options.temperature"
        );
        assert_eq!(field(chat(OptionsIn { top_p: Some(0.0), ..Default::default() })), "options.top_p");
        assert_eq!(
            field(chat(OptionsIn { num_predict: Some(0), ..Default::default() })),
            "options.num_predict"
        );
        assert_eq!(field(chat(OptionsIn { num_ctx: Some(10), ..Default::default() })), "options.num_ctx");
        assert_eq!(field(chat(OptionsIn { seed: Some(1 << 40), ..Default::default() })), "options.seed");
        assert_eq!(field(chat(OptionsIn { top_k: Some(0), ..Default::default() })), "options.top_k");
        assert_eq!(
            field(chat(OptionsIn { stop: Some(vec!["ok".into(), String::new()]), ..Default::default() })),
            "options.stop[1]"
        );
        let fine = OptionsIn {
            temperature: Some(0.2),
            num_predict: Some(-1),
            num_ctx: Some(8192),
            seed: Some(7),
            stop: Some(vec!["\n\n".into()]),
            top_p: Some(0.9),
            top_k: Some(40),
        };
        let JobSpec::Chat { options, .. } = chat(fine).unwrap() else { panic!("a chat spec") };
        assert_eq!(options.num_ctx, Some(8192));
        assert_eq!(options.seed, Some(7));
    }

    #[test]
    fn messages_and_inputs_are_checked() {
        let spec =
            |kind, messages, format, input| job_spec(kind, "m:latest".into(), messages, format, None, input);
        let bad_role = vec![MessageIn { role: "robot".into(), content: "x".into() }];
        assert_eq!(field(spec(JobKind::Chat, Some(bad_role), None, None)), "messages[0].role");
        assert_eq!(field(spec(JobKind::Chat, Some(vec![]), None, None)), "messages");
        assert_eq!(field(spec(JobKind::Chat, None, None, None)), "messages");
        let ok = || Some(vec![MessageIn { role: "user".into(), content: "x".into() }]);
        assert_eq!(field(spec(JobKind::Chat, ok(), Some(serde_json::json!("xml")), None)), "format");
        assert_eq!(field(spec(JobKind::Chat, ok(), None, Some(EmbedInput::One("x".into())))), "input");
        assert_eq!(field(spec(JobKind::Embed, None, None, Some(EmbedInput::Many(vec![])))), "input");
        assert_eq!(field(spec(JobKind::Embed, None, None, None)), "input");
        assert_eq!(
            field(spec(JobKind::Embed, None, None, Some(EmbedInput::Many(vec!["a".into(), " ".into()])))),
            "input[1]"
        );
        assert_eq!(field(spec(JobKind::Embed, ok(), None, Some(EmbedInput::One("x".into())))), "messages");
    }

    #[test]
    fn model_names_gain_the_latest_tag() {
        assert_eq!(canonical_model("llama3.2").unwrap(), "llama3.2:latest");
        assert_eq!(canonical_model("llama3.2:3b").unwrap(), "llama3.2:3b");
        assert_eq!(
            canonical_model("registry.local:5000/team/model").unwrap(),
            "registry.local:5000/team/model:latest"
        );
        assert!(canonical_model("bad name").is_err());
    }
}
