//! The cloud route: activities (and chats, such as a follow-up e-mail's
//! personal paragraph) of `cloud_allowed` projects that no edge agent can
//! take run here, in the control plane, on the tenant's
//! OpenAI-compatible provider, with the same pipeline code the agents run.
//!
//! The runner behaves like one more agent of every tenant, inside the
//! server: it claims queued `cloud` jobs (a lease under its own id), runs
//! the pipeline, and reports through the same path agents' events take
//! ([`JobEngine::record`]), so leases, epochs, cancellation, SSE and the one
//! outcome per job work unchanged. Its leases are renewed while it runs; if
//! this replica dies they expire and another replica's runner takes over.
//!
//! - `crypto.rs`: the data key that seals the providers' API keys;
//! - `openai.rs`: the pipeline's model over async-openai.

pub mod crypto;
pub mod openai;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use marketer_pipeline::Progress;
use marketer_protocol::{JobError, JobEvent, JobEventBody, JobOutcome, JobOutput, JobRef, JobSpec, Usage};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::domain::Timestamp;
use crate::jobs::{JobEngine, Live};
use crate::store::{Claim, JobEventKind};
pub use crypto::DataKey;

/// Error code of a cloud job whose tenant has no provider any more.
pub const NO_PROVIDER: &str = "no_cloud_provider";

#[derive(Debug, Clone, Copy)]
pub struct CloudSettings {
    /// Pipelines run at once on this replica.
    pub slots: usize,
    /// A provider stream silent this long has stalled.
    pub stall: Duration,
}

impl Default for CloudSettings {
    fn default() -> Self {
        Self { slots: 8, stall: Duration::from_secs(120) }
    }
}

pub struct CloudRunner {
    /// The runner's identity on the leases it takes (a new one per start).
    id: Uuid,
    engine: Arc<JobEngine>,
    key: Arc<DataKey>,
    http: reqwest::Client,
    settings: CloudSettings,
    wake: Notify,
    running: Mutex<HashMap<JobRef, CancellationToken>>,
    tasks: TaskTracker,
}

impl std::fmt::Debug for CloudRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudRunner").field("id", &self.id).field("settings", &self.settings).finish()
    }
}

impl CloudRunner {
    pub fn new(engine: Arc<JobEngine>, key: Arc<DataKey>, settings: CloudSettings) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| anyhow::anyhow!("building the cloud HTTP client: {e}"))?;
        Ok(Self {
            id: Uuid::now_v7(),
            engine,
            key,
            http,
            settings,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
        })
    }

    pub fn key(&self) -> &DataKey {
        &self.key
    }

    /// Looks at the cloud queue now (a cloud job was submitted).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<JobRef, CancellationToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims and runs cloud jobs until `shutdown`; then stops the running
    /// ones, which go back to the queue for another replica.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                _ = tick.tick() => self.renew().await,
            }
            self.claim().await;
        }
        for token in self.running().values() {
            token.cancel();
        }
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.tasks.wait()).await;
    }

    async fn renew(&self) {
        let leases: Vec<(Uuid, JobRef)> = self.running().keys().map(|lease| (self.id, *lease)).collect();
        if leases.is_empty() {
            return;
        }
        let until = self.engine.lease_until(Timestamp::now());
        if let Err(e) = self.engine.store().renew_leases(&leases, until).await {
            tracing::error!(error = %e, "could not renew the cloud runner's leases");
        }
    }

    async fn claim(self: &Arc<Self>) {
        let free = self.settings.slots.saturating_sub(self.running().len());
        if free == 0 {
            return;
        }
        let store = self.engine.store();
        let now = Timestamp::now();
        let queued = match store.queued_cloud_jobs(now, i64::try_from(free).unwrap_or(1)).await {
            Ok(queued) => queued,
            Err(e) => {
                tracing::error!(error = %e, "could not read the cloud queue");
                return;
            }
        };
        for job in queued {
            let claim = match store.claim_job(job.id, self.id, now, self.engine.lease_until(now)).await {
                Ok(Some(claim)) => claim,
                // Another replica's runner took it.
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, job_id = %job.id, "could not claim a cloud job");
                    continue;
                }
            };
            self.engine.publish(std::slice::from_ref(&claim.event));
            self.engine.audit_assignment(&claim.job, self.id).await;
            let lease = JobRef { job_id: claim.job.id, epoch: u64::try_from(claim.job.epoch).unwrap_or(0) };
            let cancel = CancellationToken::new();
            self.running().insert(lease, cancel.clone());
            let runner = self.clone();
            self.tasks.spawn(async move {
                runner.execute(claim, lease, cancel).await;
                runner.running().remove(&lease);
                runner.wake();
            });
        }
    }

    /// One attempt: events go to the engine in order through a channel, the
    /// pipeline runs until it ends, is cancelled, or times out.
    async fn execute(self: &Arc<Self>, claim: Claim, lease: JobRef, cancel: CancellationToken) {
        let job = claim.job;
        tracing::info!(job_id = %job.id, tenant_id = %job.tenant_id, attempt = job.attempts, "cloud job started");
        let (events, receiver) = mpsc::unbounded_channel();
        let forwarder = tokio::spawn(forward(self.engine.clone(), self.id, lease, receiver, cancel.clone()));
        // A cancellation on this replica shows on the event bus at once;
        // one elsewhere as a signal to read the store (or, were it lost, a
        // stale answer to the next event).
        let mut bus = self.engine.subscribe(job.id);
        let watched = cancel.clone();
        let store = self.engine.store().clone();
        let (tenant_id, job_id) = (job.tenant_id, job.id);
        let watcher = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            while let Ok(live) = bus.recv().await {
                let done = match live {
                    Live::Event(event) => event.kind == JobEventKind::Done,
                    Live::Stored { .. } => {
                        matches!(store.job(tenant_id, job_id).await, Ok(Some(job)) if job.status.is_terminal())
                    }
                };
                if done {
                    watched.cancel();
                    return;
                }
            }
        }));
        let _ = events.send(JobEventBody::Started);
        let began = std::time::Instant::now();
        let deadline = Duration::from_secs(u64::try_from(job.timeout_seconds).unwrap_or(900));
        let spec = job.spec_for_attempt();
        let work = self.pipeline(&spec, job.id, job.tenant_id, ChannelProgress { events: events.clone() });
        let outcome = tokio::select! {
            biased;
            () = cancel.cancelled() => JobOutcome::Cancelled { reason: "cancelled".into() },
            () = tokio::time::sleep(deadline) => JobOutcome::Failed {
                error: JobError {
                    code: marketer_protocol::job_errors::TIMEOUT.into(),
                    message: format!("the attempt ran longer than its {} s limit", deadline.as_secs()),
                    retryable: true,
                },
            },
            result = work => match result {
                Ok((output, mut usage)) => {
                    usage.wall_time_ms = u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX);
                    JobOutcome::Succeeded { output, usage }
                }
                Err(error) => JobOutcome::Failed { error },
            },
        };
        drop(watcher);
        match &outcome {
            JobOutcome::Succeeded { .. } => tracing::info!(job_id = %job.id, "cloud job succeeded"),
            JobOutcome::Failed { error } => {
                tracing::warn!(job_id = %job.id, code = %error.code, error = %error.message, "cloud job failed");
            }
            JobOutcome::Cancelled { .. } => tracing::info!(job_id = %job.id, "cloud job stopped"),
        }
        let _ = events.send(JobEventBody::Finished { outcome });
        drop(events);
        let _ = forwarder.await;
    }

    async fn pipeline(
        &self,
        spec: &JobSpec,
        job_id: Uuid,
        tenant_id: Uuid,
        mut progress: ChannelProgress,
    ) -> Result<(JobOutput, Usage), JobError> {
        let unsupported = || JobError {
            code: marketer_protocol::job_errors::INVALID_REQUEST.into(),
            message: "only activities, chats and inbox classification run in the cloud".into(),
            retryable: false,
        };
        let (JobSpec::Activity { model, .. } | JobSpec::Chat { model, .. } | JobSpec::Classify { model, .. }) =
            spec
        else {
            return Err(unsupported());
        };
        let store = self.engine.store();
        let provider = store
            .cloud_provider(tenant_id)
            .await
            .map_err(|e| JobError {
                code: openai::codes::ERROR.into(),
                message: format!("could not read the tenant's cloud provider: {e}"),
                retryable: true,
            })?
            .ok_or_else(|| JobError {
                code: NO_PROVIDER.into(),
                message:
                    "the tenant has no cloud provider any more; configure one or run the activity on an agent"
                        .into(),
                retryable: false,
            })?;
        let sealed =
            crypto::Sealed { ciphertext: provider.api_key_ciphertext, nonce: provider.api_key_nonce };
        let api_key = self.key.open(tenant_id, &sealed).map_err(|e| JobError {
            code: NO_PROVIDER.into(),
            message: format!("the cloud provider's API key is unusable: {e}; set it again"),
            retryable: false,
        })?;
        let llm = openai::OpenAiLlm::new(
            self.http.clone(),
            &provider.base_url,
            &api_key,
            model,
            self.settings.stall,
        );
        let activity = match spec {
            JobSpec::Chat { messages, format, options, .. } => {
                return chat(&llm, messages, format.as_ref(), options, &mut progress).await;
            }
            JobSpec::Activity { activity, .. } => activity,
            JobSpec::Classify { items, .. } => return classify(store.as_ref(), &llm, job_id, items).await,
            JobSpec::Embed { .. } | JobSpec::Ingest { .. } | JobSpec::Reply { .. } => {
                return Err(unsupported());
            }
        };
        // Project documents live in edge agents' indexes; the cloud never
        // reads them, and the result's research notes say so.
        let documents = marketer_pipeline::NoDocuments(
            "cloud runs do not read the project's documents (they stay on its edge agents)".into(),
        );
        let result = marketer_pipeline::run_activity(&llm, &documents, activity, &mut progress)
            .await
            .map_err(|e| JobError { code: e.code, message: e.message, retryable: e.retryable })?;
        let usage = marketer_pipeline::usage(&result.steps);
        Ok((JobOutput::Activity { result: Box::new(result) }, usage))
    }
}

/// Inbox items labelled on the provider: only items the policy lets leave
/// are ever routed here (sealed ones never are), read from the store for
/// the job. The labels come back without the text (the store keeps its own).
async fn classify(
    store: &dyn crate::store::Store,
    llm: &openai::OpenAiLlm,
    job_id: Uuid,
    items: &[marketer_protocol::inbox::ClassifyItem],
) -> Result<(JobOutput, Usage), JobError> {
    let texts = store
        .cloud_classify_texts(job_id)
        .await
        .map_err(|e| JobError {
            code: openai::codes::ERROR.into(),
            message: format!("could not read the items' texts: {e}"),
            retryable: true,
        })?
        .filter(|texts| texts.len() == items.len())
        .ok_or_else(|| JobError {
            code: marketer_protocol::job_errors::INVALID_REQUEST.into(),
            message: "the job's items are gone".into(),
            retryable: false,
        })?;
    let inputs: Vec<marketer_pipeline::inbox::Item<'_>> = items
        .iter()
        .zip(&texts)
        .map(|(item, text)| marketer_pipeline::inbox::Item {
            platform: &item.platform,
            kind: &item.kind,
            text,
        })
        .collect();
    let (labels, usage) = marketer_pipeline::inbox::classify(llm, &inputs).await.map_err(|e| JobError {
        code: e.code,
        message: e.message,
        retryable: e.retryable,
    })?;
    Ok((JobOutput::Classified { items: labels }, usage))
}

/// A chat job (a follow-up e-mail's personal paragraph, for one) on the
/// provider: one call, its text streamed as output events.
async fn chat(
    llm: &openai::OpenAiLlm,
    messages: &[marketer_protocol::ChatMessage],
    format: Option<&serde_json::Value>,
    options: &marketer_protocol::JobOptions,
    progress: &mut ChannelProgress,
) -> Result<(JobOutput, Usage), JobError> {
    use marketer_pipeline::{ChatRequest, Llm, Message, Role};
    let messages: Vec<Message> = messages
        .iter()
        .map(|m| Message {
            role: match m.role.as_str() {
                "system" => Role::System,
                "assistant" => Role::Assistant,
                _ => Role::User,
            },
            content: m.content.clone(),
        })
        .collect();
    let request = ChatRequest {
        messages: &messages,
        // `"json"` asks for any JSON; only a schema object is passed on.
        schema: format.filter(|f| f.is_object()),
        temperature: options.temperature.unwrap_or(0.7),
        max_tokens: options.num_predict.and_then(|n| u32::try_from(n).ok()),
        seed: options.seed.and_then(|s| u32::try_from(s).ok()),
    };
    let reply = llm.chat(request, &mut |text| progress.text(text)).await.map_err(|e| JobError {
        code: e.code,
        message: e.message,
        retryable: e.retryable,
    })?;
    let usage = Usage {
        prompt_tokens: reply.prompt_tokens,
        completion_tokens: reply.completion_tokens,
        load_duration_ns: reply.load_duration_ns,
        prompt_eval_duration_ns: reply.prompt_eval_duration_ns,
        eval_duration_ns: reply.eval_duration_ns,
        ..Usage::default()
    };
    let output = JobOutput::Message {
        role: "assistant".into(),
        content: reply.content,
        done_reason: reply.done_reason,
    };
    Ok((output, usage))
}

/// The pipeline's progress as job events, into the forwarder's channel.
struct ChannelProgress {
    events: mpsc::UnboundedSender<JobEventBody>,
}

impl Progress for ChannelProgress {
    fn step(&mut self, step: &str, percent: u8, message: &str) {
        let _ = self.events.send(JobEventBody::Progress {
            step: step.to_owned(),
            percent,
            message: message.to_owned(),
        });
    }

    fn text(&mut self, text: &str) {
        let _ = self.events.send(JobEventBody::Output { text: text.to_owned() });
    }

    fn checkpoint(&mut self, partial: &marketer_protocol::activity::ActivityResult, usage: &Usage) {
        let _ = self
            .events
            .send(JobEventBody::Checkpoint { result: Box::new(partial.clone()), usage: usage.clone() });
    }
}

/// Records an attempt's events in order. Text that piles up while a write
/// is under way goes out as one event, so a fast stream costs few writes.
async fn forward(
    engine: Arc<JobEngine>,
    runner: Uuid,
    lease: JobRef,
    mut receiver: mpsc::UnboundedReceiver<JobEventBody>,
    cancel: CancellationToken,
) {
    let mut seq = 0u64;
    let mut text = String::new();
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = receiver.try_recv() {
            batch.push(more);
        }
        for body in batch {
            match body {
                JobEventBody::Output { text: more } => text.push_str(&more),
                other => {
                    if !text.is_empty() {
                        let output = JobEventBody::Output { text: std::mem::take(&mut text) };
                        seq += 1;
                        record(&engine, runner, lease, seq, output, &cancel).await;
                    }
                    seq += 1;
                    record(&engine, runner, lease, seq, other, &cancel).await;
                }
            }
        }
        if !text.is_empty() {
            seq += 1;
            let output = JobEventBody::Output { text: std::mem::take(&mut text) };
            record(&engine, runner, lease, seq, output, &cancel).await;
        }
    }
}

/// Stores one event, retrying while the database is away (the lease runs
/// out meanwhile if it stays away, and the job goes to another attempt).
async fn record(
    engine: &JobEngine,
    runner: Uuid,
    lease: JobRef,
    seq: u64,
    body: JobEventBody,
    cancel: &CancellationToken,
) {
    let event = JobEvent { job: lease, seq, body };
    for attempt in 0..30 {
        match engine.record(runner, std::slice::from_ref(&event)).await {
            Ok(replies) => {
                if replies.iter().any(|reply| reply.stop) {
                    cancel.cancel();
                }
                return;
            }
            Err(e) => {
                tracing::warn!(job_id = %lease.job_id, attempt, error = %e, "could not store a cloud job event; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::error!(job_id = %lease.job_id, "gave up storing a cloud job event; the lease will run out");
    cancel.cancel();
}
