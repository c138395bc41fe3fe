//! LLM jobs end to end, with the real binaries over real sockets: submitted
//! through the API, scheduled over the tunnel, run by the agent against the
//! fake Ollama, streamed back through SSE; and the failures: cancellation,
//! killed agents, restarted control planes, restarted agents, Ollama errors,
//! timeouts, tenant isolation, concurrency and priorities.

use std::time::Duration;

use marketer_tests::fleet::{Agent, Fleet, agent_id, job_timings};
use marketer_tests::ollama::{Failure, FakeOllama, Pace};
use marketer_tests::sse::{SseEvent, SseStream};
use marketer_tests::{ServerOptions, TempDatabase, eventually};
use reqwest::Method;
use serde_json::{Value, json};

const MODEL: &str = "llama3.2:3b";

async fn fleet() -> Fleet {
    Fleet::start(job_timings).await
}

/// For tests that restart the control plane: a lease grace long enough that
/// the agent's reconnect (its backoff can reach several seconds) always
/// fits, so what they check is the restart, not the grace period.
fn restart_timings(options: ServerOptions) -> ServerOptions {
    options.fast_heartbeats().arg("--job-lease-grace-seconds").arg("30").arg("--job-retry-base-ms").arg("100")
}

async fn submit(fleet: &Fleet, body: Value) -> Value {
    let (status, job) = fleet.call(Method::POST, "/jobs", Some(body)).await;
    assert_eq!(status, 202, "{job}");
    job
}

fn chat(prompt: &str) -> Value {
    json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": prompt }] })
}

async fn job(fleet: &Fleet, id: &str) -> Value {
    let (status, job) = fleet.call(Method::GET, &format!("/jobs/{id}"), None).await;
    assert_eq!(status, 200, "{job}");
    job
}

async fn wait_status(fleet: &Fleet, id: &str, status: &str, limit: Duration) -> Value {
    eventually(limit, &format!("job {id} to be {status}"), || async {
        let job = job(fleet, id).await;
        (job["status"] == status).then_some(job)
    })
    .await
}

async fn events(fleet: &Fleet, id: &str, after: Option<i64>) -> SseStream {
    SseStream::open(&fleet.api, &fleet.api.tenant_path(&format!("/jobs/{id}/events")), after).await
}

/// The text of the chunks of the last attempt.
fn streamed_text(events: &[SseEvent]) -> String {
    let last_attempt =
        events.iter().filter(|e| e.event == "chunk").map(|e| e.json()["attempt"].as_i64().unwrap()).max();
    events
        .iter()
        .filter(|e| e.event == "chunk" && Some(e.json()["attempt"].as_i64().unwrap()) == last_attempt)
        .map(|e| e.json()["text"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_contiguous(events: &[SseEvent], from: i64) {
    let ids: Vec<i64> = events.iter().map(SseEvent::seq).collect();
    let expected: Vec<i64> = (from..from + i64::try_from(ids.len()).unwrap()).collect();
    assert_eq!(ids, expected, "event ids without gaps or repeats");
}

#[tokio::test]
async fn a_chat_job_streams_through_sse_and_ends_with_the_text_and_usage() {
    let fleet = fleet().await;
    let pace = Pace { first_token: Duration::from_millis(20), tokens_per_second: 200.0, tokens: 40 };
    fleet.ollama.set_pace(pace);
    let agent = Agent::start(&fleet, &[]).await;

    let created = submit(&fleet, chat("Write a tagline for a bakery")).await;
    assert_eq!(created["status"], "queued");
    let id = created["id"].as_str().unwrap().to_owned();
    let mut stream = events(&fleet, &id, None).await;
    let all = stream.collect(Duration::from_secs(30)).await;
    assert_contiguous(&all, 1);
    let kinds: Vec<&str> = all.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"status"));
    assert_eq!(kinds.last(), Some(&"done"));
    assert_eq!(kinds.iter().filter(|k| **k == "done").count(), 1);
    let statuses: Vec<String> = all
        .iter()
        .filter(|e| e.event == "status")
        .map(|e| e.json()["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["queued", "assigned", "running"]);

    // Exactly what the model said, in order.
    let sent = fleet.ollama.chat_requests();
    assert_eq!(sent.len(), 1);
    let expected = FakeOllama::expected_chat(&sent[0], pace);
    assert_eq!(streamed_text(&all), expected);
    let done = all.last().unwrap().json();
    assert_eq!(done["status"], "succeeded");
    assert_eq!(done["output"]["content"], expected);
    assert_eq!(done["usage"]["completion_tokens"], 40);
    // The agent asked Ollama for the model's context window (8192 in the
    // fake's /api/show) rather than leaving Ollama's 2048 default.
    assert_eq!(sent[0]["options"]["num_ctx"], 8192);

    let finished = job(&fleet, &id).await;
    assert_eq!(finished["status"], "succeeded");
    assert_eq!(finished["attempts"], 1);
    assert_eq!(finished["agent_id"], agent.id.as_str());
    assert_eq!(finished["output"]["type"], "message");
    assert_eq!(finished["output"]["content"], expected);
    assert_eq!(finished["usage"]["prompt_tokens"], 6);
    assert!(finished["usage"]["eval_duration_ns"].as_u64().unwrap() > 0);
    assert!(finished["usage"]["wall_time_ms"].as_u64().is_some());
    assert!(finished["error"].is_null());
    for field in ["created_at", "assigned_at", "started_at", "finished_at"] {
        assert!(finished[field].is_string(), "{field}: {finished}");
    }
    assert_eq!(finished["request"]["messages"][0]["content"], "Write a tagline for a bakery");
    assert_eq!(finished["last_event_id"], all.last().unwrap().seq());

    // Resuming after any event gives exactly the rest; after the end, nothing.
    let middle = all[all.len() / 2].seq();
    let rest = events(&fleet, &id, Some(middle)).await.collect(Duration::from_secs(10)).await;
    assert_eq!(rest, all[all.len() / 2 + 1..].to_vec());
    let after_end =
        events(&fleet, &id, Some(all.last().unwrap().seq())).await.collect(Duration::from_secs(10)).await;
    assert!(after_end.is_empty());
    // A client that connects after the job finished gets it replayed.
    let replay = events(&fleet, &id, None).await.collect(Duration::from_secs(10)).await;
    assert_eq!(replay, all);
}

#[tokio::test]
async fn embed_and_structured_output_jobs() {
    let fleet = fleet().await;
    let _agent = Agent::start(&fleet, &[]).await;

    let embed = submit(
        &fleet,
        json!({ "kind": "embed", "model": "nomic-embed-text", "input": ["bright kitchen", "quiet street"] }),
    )
    .await;
    let single =
        submit(&fleet, json!({ "kind": "embed", "model": "nomic-embed-text", "input": "one text" })).await;
    let schema = json!({
        "type": "object",
        "properties": { "headline": { "type": "string" }, "bedrooms": { "type": "integer" }, "pets": { "type": "boolean" } },
        "required": ["headline", "bedrooms", "pets"]
    });
    let mut structured = chat("Describe the listing as JSON");
    structured["format"] = schema.clone();
    structured["options"] = json!({ "temperature": 0, "seed": 42 });
    let structured = submit(&fleet, structured).await;
    let mut json_mode = chat("Answer in JSON");
    json_mode["format"] = json!("json");
    let json_mode = submit(&fleet, json_mode).await;

    let done = wait_status(&fleet, embed["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30)).await;
    assert_eq!(done["output"]["type"], "embeddings");
    let vectors = done["output"]["embeddings"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    for (vector, text) in vectors.iter().zip(["bright kitchen", "quiet street"]) {
        let got: Vec<f32> = vector.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
        assert_eq!(got, marketer_tests::ollama::vector(text, 16));
    }
    assert_eq!(done["usage"]["prompt_tokens"], 4);
    let done =
        wait_status(&fleet, single["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30)).await;
    assert_eq!(done["output"]["embeddings"].as_array().unwrap().len(), 1);

    let done =
        wait_status(&fleet, structured["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30)).await;
    let content: Value =
        serde_json::from_str(done["output"]["content"].as_str().unwrap()).expect("JSON that parses");
    assert!(
        content["headline"].is_string() && content["bedrooms"].is_i64() && content["pets"].is_boolean(),
        "{content}"
    );
    let done =
        wait_status(&fleet, json_mode["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30)).await;
    let _: Value =
        serde_json::from_str(done["output"]["content"].as_str().unwrap()).expect("JSON that parses");

    // What reached Ollama: the schema, the options, and the context window.
    let requests = fleet.ollama.chat_requests();
    let sent = requests.iter().find(|r| r["format"].is_object()).expect("the structured request");
    assert_eq!(sent["format"], schema);
    assert_eq!(sent["options"]["seed"], 42);
    assert_eq!(sent["options"]["temperature"], 0.0);
    assert!(requests.iter().any(|r| r["format"] == "json"));
}

#[tokio::test]
async fn invalid_jobs_are_refused_naming_the_field_and_retries_are_idempotent() {
    let fleet = fleet().await;
    let _agent = Agent::start(&fleet, &[]).await;
    for (body, field) in [
        (
            json!({ "kind": "chat", "model": "no-such-model", "messages": [{ "role": "user", "content": "x" }] }),
            "model",
        ),
        (json!({ "kind": "chat", "model": MODEL, "messages": [] }), "messages"),
        (json!({ "kind": "chat", "model": MODEL }), "messages"),
        (
            json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "robot", "content": "x" }] }),
            "messages[0].role",
        ),
        (
            json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": "x" }], "options": { "temperature": 9 } }),
            "options.temperature",
        ),
        (
            json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": "x" }], "options": { "top_k": 0 } }),
            "options.top_k",
        ),
        (
            json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": "x" }], "format": "yaml" }),
            "format",
        ),
        (
            json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": "x" }], "priority": 9 }),
            "priority",
        ),
        (
            json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": "x" }], "max_attempts": 0 }),
            "max_attempts",
        ),
        (
            json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": "x" }], "timeout_seconds": 0 }),
            "timeout_seconds",
        ),
        (json!({ "kind": "embed", "model": "nomic-embed-text", "input": [] }), "input"),
        (json!({ "kind": "embed", "model": "nomic-embed-text", "input": "x", "messages": [] }), "messages"),
    ] {
        let (status, error) = fleet.call(Method::POST, "/jobs", Some(body.clone())).await;
        assert_eq!(status, 422, "{body} -> {error}");
        assert_eq!(error["error"]["details"]["field"], field, "{body} -> {error}");
    }
    let (status, error) = fleet
        .call(Method::POST, "/jobs", Some(json!({ "kind": "chat", "model": MODEL, "mesages": [] })))
        .await;
    assert_eq!(status, 422, "unknown fields are refused: {error}");
    let (status, _) =
        fleet.call(Method::POST, "/jobs", Some(json!({ "kind": "summarise", "model": MODEL }))).await;
    assert_eq!(status, 422);

    // The same key and body: the same job. The same key, another body: 409.
    let mut body = chat("Once only");
    body["idempotency_key"] = json!("order-1234");
    let first = submit(&fleet, body.clone()).await;
    let again = submit(&fleet, body.clone()).await;
    assert_eq!(first["id"], again["id"]);
    body["messages"][0]["content"] = json!("Something else");
    let (status, error) = fleet.call(Method::POST, "/jobs", Some(body)).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["code"], "idempotency_key_reused");
    wait_status(&fleet, first["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30)).await;
    assert_eq!(fleet.ollama.chat_requests().len(), 1, "the job ran once");

    // Listing with filters and pagination.
    for i in 0..3 {
        submit(&fleet, chat(&format!("list me {i}"))).await;
    }
    let (_, page) = fleet.call(Method::GET, "/jobs?limit=2", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = fleet.call(Method::GET, &format!("/jobs?limit=2&cursor={cursor}"), None).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 2);
    assert!(rest["next_cursor"].is_null());
    let (_, embeds) = fleet.call(Method::GET, "/jobs?kind=embed", None).await;
    assert!(embeds["items"].as_array().unwrap().is_empty());
    let (status, error) = fleet.call(Method::GET, "/jobs?status=bogus", None).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["details"]["field"], "status", "{error}");
    let (status, _) = fleet.call(Method::GET, &format!("/jobs/{}/events", uuid::Uuid::now_v7()), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn cancelling_a_streaming_job_aborts_the_ollama_request_within_a_second() {
    let fleet = fleet().await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 20.0, tokens: 400 });
    let _agent = Agent::start(&fleet, &[]).await;
    let created = submit(&fleet, chat("A long story")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut stream = events(&fleet, &id, None).await;
    loop {
        let event = stream.next_within(Duration::from_secs(30)).await.expect("events");
        if event.event == "chunk" {
            break;
        }
    }
    let asked = std::time::Instant::now();
    let (status, cancelled) = fleet.call(Method::POST, &format!("/jobs/{id}/cancel"), None).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    eventually(Duration::from_secs(1), "the Ollama request to be aborted", || async {
        (fleet.ollama.streams().2 == 1).then_some(())
    })
    .await;
    assert!(asked.elapsed() < Duration::from_secs(1));
    let rest = stream.collect(Duration::from_secs(10)).await;
    let done = rest.last().expect("a done event");
    assert_eq!(done.event, "done");
    assert_eq!(done.json()["status"], "cancelled");
    let job = job(&fleet, &id).await;
    assert_eq!(job["status"], "cancelled");
    assert_eq!(job["error"]["code"], "cancelled");
    // Cancelling again changes nothing; a finished job cannot be cancelled.
    assert_eq!(fleet.call(Method::POST, &format!("/jobs/{id}/cancel"), None).await.0, 200);
    fleet.ollama.set_pace(Pace::default());
    let next = submit(&fleet, chat("Short")).await;
    let next_id = next["id"].as_str().unwrap();
    wait_status(&fleet, next_id, "succeeded", Duration::from_secs(30)).await;
    let (status, error) = fleet.call(Method::POST, &format!("/jobs/{next_id}/cancel"), None).await;
    assert_eq!(status, 409, "{error}");
    // The cancelled job's late events never changed its outcome.
    let all = events(&fleet, &id, None).await.collect(Duration::from_secs(10)).await;
    assert_eq!(all.iter().filter(|e| e.event == "done").count(), 1);
}

#[tokio::test]
async fn ollama_failures_become_the_right_job_errors() {
    let fleet = fleet().await;
    let _agent = Agent::start_with(&fleet, &[], &[("MARKETER_AGENT_STALL_TIMEOUT_SECONDS", "1")]).await;
    let failing = |max_attempts: i64| {
        let mut body = chat("fail");
        body["max_attempts"] = json!(max_attempts);
        body
    };

    // The model went missing after the agent listed it: not retried.
    fleet.ollama.fail(Some(Failure::WorkStatus(404)));
    let missing = submit(&fleet, failing(3)).await;
    let job = wait_status(&fleet, missing["id"].as_str().unwrap(), "failed", Duration::from_secs(30)).await;
    assert_eq!(job["error"]["code"], "model_not_found", "{job}");
    assert_eq!(job["error"]["retryable"], false);
    assert_eq!(job["attempts"], 1);

    // A 500: retried until max_attempts, then failed with the last error.
    fleet.ollama.fail(Some(Failure::WorkStatus(500)));
    let broken = submit(&fleet, failing(2)).await;
    let job = wait_status(&fleet, broken["id"].as_str().unwrap(), "failed", Duration::from_secs(30)).await;
    assert_eq!(job["error"]["code"], "ollama_error", "{job}");
    assert_eq!(job["error"]["retryable"], true);
    assert_eq!(job["attempts"], 2);

    // An error object in the middle of the stream.
    fleet.ollama.fail(Some(Failure::MidStream { after: 3 }));
    let mid = submit(&fleet, failing(1)).await;
    let job = wait_status(&fleet, mid["id"].as_str().unwrap(), "failed", Duration::from_secs(30)).await;
    assert_eq!(job["error"]["code"], "ollama_error", "{job}");
    assert!(job["error"]["message"].as_str().unwrap().contains("while running the model"), "{job}");

    // A stream that stops sending: detected by the idle timeout.
    fleet.ollama.fail(Some(Failure::Stall { after: 2 }));
    let stalled = submit(&fleet, failing(1)).await;
    let job = wait_status(&fleet, stalled["id"].as_str().unwrap(), "failed", Duration::from_secs(30)).await;
    assert_eq!(job["error"]["code"], "stalled", "{job}");
    eventually(Duration::from_secs(5), "the stalled request to be abandoned", || async {
        (fleet.ollama.streams().2 == 1).then_some(())
    })
    .await;

    // Ollama down: connection refused, retried, then failed.
    fleet.ollama.fail(Some(Failure::Refuse));
    let down = submit(&fleet, failing(2)).await;
    let job = wait_status(&fleet, down["id"].as_str().unwrap(), "failed", Duration::from_secs(30)).await;
    assert_eq!(job["error"]["code"], "ollama_unreachable", "{job}");
    assert_eq!(job["attempts"], 2);

    // Back up: the agent works again.
    fleet.ollama.fail(None);
    let ok = submit(&fleet, chat("fine again")).await;
    wait_status(&fleet, ok["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30)).await;
}

#[tokio::test]
async fn a_job_no_agent_can_take_waits_saying_why_then_times_out() {
    let fleet = fleet().await;
    // No agent yet: the job waits.
    let mut body = chat("waiting");
    body["queue_timeout_seconds"] = json!(60);
    let waiting = submit(&fleet, body).await;
    let id = waiting["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "a waiting reason", || async {
        let job = job(&fleet, &id).await;
        (job["waiting_reason"] == "no agent of this tenant is online").then_some(())
    })
    .await;
    // A matching agent connects: the job goes to it at once.
    let _agent = Agent::start(&fleet, &[]).await;
    wait_status(&fleet, &id, "succeeded", Duration::from_secs(30)).await;

    // Labels no agent has: it says so, then fails when its queue timeout passes.
    let mut body = chat("gpu only");
    body["labels"] = json!({ "gpu": "a100" });
    body["queue_timeout_seconds"] = json!(2);
    let labelled = submit(&fleet, body).await;
    let id = labelled["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(10), "a waiting reason", || async {
        let job = job(&fleet, &id).await;
        job["waiting_reason"].as_str().is_some_and(|r| r.contains("gpu=a100")).then_some(())
    })
    .await;
    let failed = wait_status(&fleet, &id, "failed", Duration::from_secs(10)).await;
    assert_eq!(failed["error"]["code"], "queue_timeout");
    assert!(failed["error"]["message"].as_str().unwrap().contains("gpu=a100"), "{failed}");
    assert_eq!(failed["attempts"], 0);

    // not_before holds a job back.
    let mut later = chat("later");
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    later["not_before"] = json!(at.format(&time::format_description::well_known::Rfc3339).unwrap());
    let later = submit(&fleet, later).await;
    let id = later["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(job(&fleet, &id).await["status"], "queued");
    let done = wait_status(&fleet, &id, "succeeded", Duration::from_secs(30)).await;
    let started = time::OffsetDateTime::parse(
        done["started_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(started >= at, "started {started}, not before {at}");
}

#[tokio::test]
async fn an_agent_never_receives_another_tenants_jobs() {
    let fleet = fleet().await;
    let _agent = Agent::start(&fleet, &[]).await;
    let api = &fleet.api;
    let (status, beta) = api.call(Method::POST, "/api/v1/tenants", Some(json!({ "name": "Beta" }))).await;
    assert_eq!(status, 201, "{beta}");
    let beta_id = beta["id"].as_str().unwrap();
    let (status, job_b) =
        api.call(Method::POST, &format!("/api/v1/tenants/{beta_id}/jobs"), Some(chat("for beta only"))).await;
    assert_eq!(status, 202, "{job_b}");
    let job_b_id = job_b["id"].as_str().unwrap();
    let path = format!("/api/v1/tenants/{beta_id}/jobs/{job_b_id}");
    let waiting = eventually(Duration::from_secs(10), "beta's job to say why it waits", || async {
        let (_, job) = api.call(Method::GET, &path, None).await;
        job["waiting_reason"].is_string().then_some(job)
    })
    .await;
    assert_eq!(waiting["waiting_reason"], "no agent of this tenant is online");
    // Tenant A's idle agent sees several scheduling passes and takes nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(fleet.ollama.chat_requests().is_empty(), "A's agent ran B's job");
    let (_, still) = api.call(Method::GET, &path, None).await;
    assert_eq!(still["status"], "queued");
    // Under A's path, B's job does not exist.
    let (status, _) = fleet.call(Method::GET, &format!("/jobs/{job_b_id}"), None).await;
    assert_eq!(status, 404);
    let (status, _) = fleet.call(Method::POST, &format!("/jobs/{job_b_id}/cancel"), None).await;
    assert_eq!(status, 404);
    let (status, _) = fleet.call(Method::GET, &format!("/jobs/{job_b_id}/events"), None).await;
    assert_eq!(status, 404);
    // A's own job runs.
    let own = submit(&fleet, chat("for alpha")).await;
    wait_status(&fleet, own["id"].as_str().unwrap(), "succeeded", Duration::from_secs(30)).await;
}

#[tokio::test]
async fn an_agent_never_runs_more_than_its_slots_and_priorities_come_first() {
    let fleet = fleet().await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 100.0, tokens: 30 });
    let _agent = Agent::start(&fleet, &["--concurrency", "2"]).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(submit(&fleet, chat(&format!("parallel {i}"))).await["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        wait_status(&fleet, id, "succeeded", Duration::from_secs(60)).await;
    }
    assert_eq!(fleet.ollama.max_in_flight(), 2, "two slots, never more, and both used");
    let (_, agent) = fleet.call(Method::GET, &format!("/agents/{}", _agent.id), None).await;
    assert_eq!(agent["max_concurrency"], 2);

    // One slot busy with a long job; then low-priority jobs, then an urgent one.
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 50.0, tokens: 50 });
    let blocker_a = submit(&fleet, chat("blocker a")).await;
    let blocker_b = submit(&fleet, chat("blocker b")).await;
    wait_status(&fleet, blocker_a["id"].as_str().unwrap(), "running", Duration::from_secs(10)).await;
    wait_status(&fleet, blocker_b["id"].as_str().unwrap(), "running", Duration::from_secs(10)).await;
    let mut low = Vec::new();
    for i in 0..3 {
        let mut body = chat(&format!("low {i}"));
        body["priority"] = json!(5);
        low.push(submit(&fleet, body).await["id"].as_str().unwrap().to_owned());
    }
    let mut urgent = chat("urgent");
    urgent["priority"] = json!(1);
    let urgent = submit(&fleet, urgent).await["id"].as_str().unwrap().to_owned();
    let urgent_job = wait_status(&fleet, &urgent, "succeeded", Duration::from_secs(60)).await;
    let mut low_started = Vec::new();
    for id in &low {
        let job = wait_status(&fleet, id, "succeeded", Duration::from_secs(60)).await;
        low_started.push(job["started_at"].as_str().unwrap().to_owned());
    }
    let urgent_started = urgent_job["started_at"].as_str().unwrap();
    // Both blockers end within the same moment, so two slots can free together: the urgent job and
    // the oldest low one are then dispatched in one pass and share a start time. No low job may
    // start before the urgent one.
    assert!(
        low_started.iter().all(|s| s.as_str() >= urgent_started),
        "urgent {urgent_started}, low {low_started:?}"
    );
    let mut sorted = low_started.clone();
    sorted.sort();
    assert_eq!(low_started, sorted, "within a priority, oldest first");
}

#[tokio::test]
async fn a_killed_agents_job_completes_on_another_agent_exactly_once() {
    let fleet = fleet().await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 20.0, tokens: 80 });
    let mut first = Agent::start(&fleet, &[]).await;
    let created = submit(&fleet, chat("survive a crash")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let running = wait_status(&fleet, &id, "running", Duration::from_secs(10)).await;
    assert_eq!(running["agent_id"], first.id.as_str());
    let second = Agent::start(&fleet, &[]).await;
    let mut stream = events(&fleet, &id, None).await;
    first.kill();

    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 400.0, tokens: 80 });
    let done = wait_status(&fleet, &id, "succeeded", Duration::from_secs(30)).await;
    assert_eq!(done["agent_id"], second.id.as_str());
    assert_eq!(done["attempts"], 2);
    let all = stream.collect(Duration::from_secs(10)).await;
    assert_eq!(all.iter().filter(|e| e.event == "done").count(), 1, "one outcome");
    let retried =
        all.iter().find(|e| e.event == "status" && e.json()["status"] == "retrying").expect("a retry event");
    assert_eq!(retried.json()["error"]["code"], "agent_lost");
    let last_request = fleet.ollama.chat_requests().last().cloned().unwrap();
    assert_eq!(
        streamed_text(&all),
        FakeOllama::expected_chat(&last_request, Pace { tokens: 80, ..Pace::default() })
    );

    // The first agent comes back: it does not resurrect the job.
    let before = job(&fleet, &id).await;
    let requests = fleet.ollama.chat_requests().len();
    first.restart(&[]);
    fleet.wait_connections(&first.id, 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = job(&fleet, &id).await;
    assert_eq!(after["last_event_id"], before["last_event_id"]);
    assert_eq!(after["status"], "succeeded");
    assert_eq!(fleet.ollama.chat_requests().len(), requests, "nothing ran again");
}

/// Kills the control plane while a job streams; the agent keeps going,
/// reconnects, replays its outbox; a client resuming with Last-Event-ID sees
/// every chunk once.
async fn control_plane_restart_mid_job(fleet: &mut Fleet) {
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 25.0, tokens: 100 });
    let _agent = Agent::start(fleet, &[]).await;
    let created = submit(fleet, chat("keep streaming through a restart")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut stream = events(fleet, &id, None).await;
    let mut seen = Vec::new();
    while seen.iter().filter(|e: &&SseEvent| e.event == "chunk").count() < 5 {
        seen.push(stream.next_within(Duration::from_secs(30)).await.expect("events before the restart"));
    }
    drop(stream);
    fleet.kill_server();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fleet.restart_server();

    let last = seen.last().unwrap().seq();
    let rest = events(fleet, &id, Some(last)).await.collect(Duration::from_secs(60)).await;
    let all: Vec<SseEvent> = seen.into_iter().chain(rest).collect();
    assert_contiguous(&all, 1);
    assert_eq!(all.iter().filter(|e| e.event == "done").count(), 1);
    assert_eq!(all.last().unwrap().json()["status"], "succeeded");
    let request = fleet.ollama.chat_requests().last().cloned().unwrap();
    assert_eq!(fleet.ollama.chat_requests().len(), 1, "the job ran once, through the restart");
    let expected = FakeOllama::expected_chat(&request, Pace { tokens: 100, ..Pace::default() });
    assert_eq!(streamed_text(&all), expected);
    let done = job(fleet, &id).await;
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["output"]["content"], expected);
}

#[tokio::test]
async fn a_control_plane_restart_mid_job_loses_and_repeats_nothing_on_sqlite() {
    let mut fleet = Fleet::start(restart_timings).await;
    control_plane_restart_mid_job(&mut fleet).await;
}

#[tokio::test]
async fn a_control_plane_restart_mid_job_loses_and_repeats_nothing_on_postgresql() {
    let Some(database) = TempDatabase::create().await else { return };
    {
        let mut fleet =
            Fleet::start(|o| restart_timings(o).env("MARKETER_DATABASE_URL", &database.url)).await;
        control_plane_restart_mid_job(&mut fleet).await;
    }
    database.drop_database().await;
}

#[tokio::test]
async fn results_in_a_restarted_agents_outbox_are_delivered() {
    let mut fleet = Fleet::start(restart_timings).await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 50.0, tokens: 60 });
    let mut agent = Agent::start(&fleet, &[]).await;
    let created = submit(&fleet, chat("finish while nobody listens")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    wait_status(&fleet, &id, "running", Duration::from_secs(10)).await;
    // The control plane goes away; the agent finishes the job on its own.
    fleet.kill_server();
    eventually(Duration::from_secs(30), "the generation to finish", || async {
        (fleet.ollama.streams().1 == 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outbox = agent.host.home.join("outbox");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1, "the result waits in the outbox");
    // The agent itself is killed, and both come back.
    agent.kill();
    fleet.restart_server();
    agent.restart(&[]);
    let done = wait_status(&fleet, &id, "succeeded", Duration::from_secs(30)).await;
    let request = fleet.ollama.chat_requests().last().cloned().unwrap();
    assert_eq!(
        done["output"]["content"],
        FakeOllama::expected_chat(&request, Pace { tokens: 60, ..Pace::default() })
    );
    assert_eq!(done["attempts"], 1);
    assert_eq!(fleet.ollama.chat_requests().len(), 1);
    eventually(Duration::from_secs(10), "the outbox to empty", || async {
        (std::fs::read_dir(&outbox).unwrap().count() == 0).then_some(())
    })
    .await;
    let all = events(&fleet, &id, None).await.collect(Duration::from_secs(10)).await;
    assert_contiguous(&all, 1);
    assert_eq!(streamed_text(&all), done["output"]["content"].as_str().unwrap());
    let _ = agent_id(&agent.host);
}

#[tokio::test]
async fn a_stopping_agent_hands_its_jobs_back_at_once() {
    let fleet = fleet().await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 20.0, tokens: 200 });
    let mut first = Agent::start(&fleet, &[]).await;
    let created = submit(&fleet, chat("hand me over")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    wait_status(&fleet, &id, "running", Duration::from_secs(10)).await;
    let second = Agent::start(&fleet, &[]).await;
    fleet.ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 0.0, tokens: 20 });
    let status = first.process.as_mut().unwrap().terminate();
    assert!(status.success(), "{status:?}");
    // Well within the 3 s lease grace: the agent reported the job stopped.
    let done = wait_status(&fleet, &id, "succeeded", Duration::from_secs(2)).await;
    assert_eq!(done["agent_id"], second.id.as_str());
    assert_eq!(done["attempts"], 2);
    assert!(
        std::fs::read_dir(first.host.home.join("outbox")).unwrap().next().is_none(),
        "delivered before exit"
    );
}
