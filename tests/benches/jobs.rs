//! What the job engine costs: dispatch latency, relay overhead against
//! calling Ollama directly, and sustained throughput of short jobs.
//!
//!     cargo build --release --bins
//!     cargo bench -p marketer-tests --bench jobs -- [dispatch] [relay] [throughput] [replicas]
//!
//! With no section named, all four run. The throughput section also runs on
//! PostgreSQL, and the replicas section runs at all, when
//! `MARKETER_TEST_DATABASE_URL` names a server where it may create databases
//! (the same variable the tests use); replicas also needs HAProxy. Everything runs on
//! loopback against the release binaries and the fake Ollama of
//! `marketer_tests::ollama`; results go to stdout and docs/benchmarks.md
//! records them.
//!
//! - dispatch: one idle simulated agent (`marketer_tests::sim`); the time
//!   from sending `POST /jobs` to the agent receiving `AssignJob`, one job
//!   at a time.
//! - relay: one real `marketer-agent`; the same chat requests sent through
//!   the product (`POST /jobs`, then the job's SSE stream) and straight to
//!   the fake Ollama, alternating, in one run, at two paces of generation:
//!   when the request reaches Ollama, what the product adds between
//!   Ollama's first token and the client's, time to first token, total time
//!   and token throughput.
//! - throughput: 1, 4 and 16 real agents with 2 slots each; 400 short chat
//!   jobs submitted by 8 concurrent clients; jobs completed per second.
//! - replicas: dispatch as above across two replicas (submitted on one, the
//!   agent on the other) against within one; throughput as above through
//!   HAProxy with 1, 2 and 3 replicas and 16 agents.

use std::time::{Duration, Instant};

use marketer_protocol::{
    AgentMessage, Heartbeat, JobEvent, JobEventBody, JobOutcome, JobOutput, ServerMessage, Usage,
};
use marketer_tests::fleet::agent_id;
use marketer_tests::ollama::{FakeModel, FakeOllama, Pace};
use marketer_tests::replicas::Replicas;
use marketer_tests::sim::{Capabilities, Connection, enroll};
use marketer_tests::sse::SseStream;
use marketer_tests::{AgentHost, AgentProcess, Api, ServerOptions, ServerProcess, TempDatabase};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::mpsc;

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "a long benchmark password";
const MODEL: &str = "llama3.2:3b";

fn main() {
    let sections: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    // The fake Ollama gets a runtime of its own, as Ollama is a process of
    // its own: serving it must not compete with the benchmark's clients.
    let ollama_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let ollama = ollama_runtime.block_on(FakeOllama::start(vec![FakeModel::new(MODEL)]));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async {
        if wants("dispatch") {
            dispatch().await;
        }
        if wants("relay") {
            relay(&ollama).await;
        }
        if wants("throughput") {
            throughput(&ollama).await;
        }
        if wants("replicas") {
            replicas(&ollama).await;
        }
    });
}

/// A release server on a fresh data directory (and database, if given).
struct Server {
    /// Held for its lifetime: dropping it stops the server.
    _process: ServerProcess,
    options: ServerOptions,
    api: Api,
    data: tempfile::TempDir,
}

impl Server {
    async fn start(database_url: Option<&str>) -> Self {
        let data = tempfile::tempdir().expect("a data directory");
        let mut options = ServerOptions::new(data.path())
            .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
            .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
            .env("MARKETER_LOG_LEVEL", "warn");
        if let Some(url) = database_url {
            options = options.env("MARKETER_DATABASE_URL", url);
        }
        let process = ServerProcess::spawn(&options);
        let api = Api::login(&process.base_url, EMAIL, PASSWORD).await;
        Self { _process: process, options, api, data }
    }

    async fn token(&self, uses: usize) -> String {
        let path = self.api.tenant_path("/enrollment-tokens");
        let (status, created) = self.api.call(Method::POST, &path, Some(json!({ "max_uses": uses }))).await;
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().expect("a token").to_owned()
    }

    async fn submit(&self, body: &Value) -> String {
        submit(&self.api, body).await
    }

    async fn agents(&self, count: usize, ollama: &FakeOllama) -> Vec<(AgentProcess, tempfile::TempDir)> {
        start_agents(&self.api, &self.options.gateway_url(), count, ollama).await
    }
}

/// Enrolls and starts `count` real agents against `ollama` through
/// `gateway`, and waits until all are online.
async fn start_agents(
    api: &Api,
    gateway: &str,
    count: usize,
    ollama: &FakeOllama,
) -> Vec<(AgentProcess, tempfile::TempDir)> {
    let path = api.tenant_path("/enrollment-tokens");
    let (status, created) = api.call(Method::POST, &path, Some(json!({ "max_uses": count }))).await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().expect("a token").to_owned();
    let mut agents = Vec::with_capacity(count);
    for _ in 0..count {
        let home = tempfile::tempdir().expect("an agent home");
        let host = AgentHost::new(home.path(), &ollama.url()).env("MARKETER_AGENT_LOG_LEVEL", "warn");
        host.enroll(gateway, &token, &[]).await;
        let _ = agent_id(&host);
        agents.push((host.spawn_run(&["--concurrency", "2"]), home));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, page) = api.call(Method::GET, &api.tenant_path("/agents?limit=200"), None).await;
        let online =
            page["items"].as_array().map_or(0, |a| a.iter().filter(|a| a["state"] == "online").count());
        if online == count {
            return agents;
        }
        assert!(Instant::now() < deadline, "{online} of {count} agents online after 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn submit(api: &Api, body: &Value) -> String {
    let (status, job) = api.call(Method::POST, &api.tenant_path("/jobs"), Some(body.clone())).await;
    assert_eq!(status, 202, "{job}");
    job["id"].as_str().expect("a job id").to_owned()
}

async fn wait_succeeded(api: &Api, id: &str) {
    loop {
        let (_, job) = api.call(Method::GET, &api.tenant_path(&format!("/jobs/{id}")), None).await;
        match job["status"].as_str() {
            Some("succeeded") => return,
            Some("failed" | "cancelled") => panic!("job {id} ended {job}"),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

fn chat(prompt: &str) -> Value {
    json!({ "kind": "chat", "model": MODEL, "messages": [{ "role": "user", "content": prompt }] })
}

/// The `p`-th percentile (0-100) of sorted samples, in milliseconds.
fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn summary(samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms (n = {})",
        percentile(samples, 50.0),
        percentile(samples, 99.0),
        samples.len()
    )
}

async fn dispatch() {
    let server = Server::start(None).await;
    let token = server.token(1).await;
    let ca_pem = std::fs::read_to_string(server.data.path().join("ca/ca.crt")).expect("the CA");
    let mut assignments = idle_agent(server.options.gateway_port, &ca_pem, &token).await;
    let mut latencies = time_dispatch(&server.api, &mut assignments).await;
    println!("dispatch, submit -> AssignJob at an idle agent (SQLite): {}", summary(&mut latencies));
}

/// Enrolls a simulated agent with `token` through the gateway on `port` and
/// keeps it connected: it notes when each assignment arrives and finishes
/// the job at once, so it is idle for the next one.
async fn idle_agent(port: u16, ca_pem: &str, token: &str) -> mpsc::UnboundedReceiver<Instant> {
    let secret = token.rsplit_once('.').expect("secret.ca_hash").0.to_owned();
    let identity = enroll(port, ca_pem, &secret, "sim-dispatch").await;
    let capabilities = Capabilities {
        max_concurrency: 4,
        models: vec![MODEL.into()],
        running_jobs: Vec::new(),
        projects: Vec::new(),
    };
    let mut connection = Connection::open(port, ca_pem, &identity, capabilities).await;
    let (received, assignments) = mpsc::unbounded_channel::<Instant>();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(connection.welcome.heartbeat_interval_ms));
        let mut beat = 0;
        loop {
            let message = tokio::select! {
                _ = tick.tick() => {
                    beat += 1;
                    let heartbeat = Heartbeat {
                        seq: beat, max_concurrency: 4, running_jobs: 0, free_slots: 4, ollama_reachable: true, models: None, jobs: Vec::new(), projects: None, policy: None,
                    };
                    let _ = connection.send(&AgentMessage::Heartbeat(heartbeat)).await;
                    continue;
                }
                message = connection.next() => message,
            };
            match message {
                Some(ServerMessage::AssignJob(assign)) => {
                    let _ = received.send(Instant::now());
                    let output = JobOutput::Message {
                        role: "assistant".into(),
                        content: "ok".into(),
                        done_reason: String::new(),
                    };
                    let outcome = JobOutcome::Succeeded { output, usage: Usage::default() };
                    for (seq, body) in [(1, JobEventBody::Started), (2, JobEventBody::Finished { outcome })] {
                        let event = JobEvent { job: assign.job, seq, body };
                        let _ = connection.send(&AgentMessage::JobEvent(event)).await;
                    }
                }
                Some(_) => {}
                None => return,
            }
        }
    });
    assignments
}

/// Submits 500 jobs one at a time through `api` (after 20 to warm up); how
/// long each took from sending `POST /jobs` to the idle agent's receiving it.
async fn time_dispatch(api: &Api, assignments: &mut mpsc::UnboundedReceiver<Instant>) -> Vec<Duration> {
    const JOBS: usize = 500;
    let body = chat("dispatch me");
    let mut latencies = Vec::with_capacity(JOBS);
    for i in 0..JOBS + 20 {
        let sent = Instant::now();
        let id = submit(api, &body).await;
        let arrived = tokio::time::timeout(Duration::from_secs(10), assignments.recv())
            .await
            .expect("an assignment within 10 s")
            .expect("the simulated agent is connected");
        // The first jobs warm up connections and caches.
        if i >= 20 {
            latencies.push(arrived - sent);
        }
        wait_succeeded(api, &id).await;
    }
    latencies
}

/// How one request went.
struct Timing {
    /// Until the request reached Ollama (through the product: submission,
    /// dispatch, the agent's call).
    to_ollama: Duration,
    first_token: Duration,
    total: Duration,
    tokens: u64,
}

/// One request through the product: submitted with `POST /jobs`, followed
/// on the job's event stream until `done`.
async fn through_product(server: &Server, ollama: &FakeOllama, body: &Value) -> Timing {
    let sent = Instant::now();
    let id = server.submit(body).await;
    let path = server.api.tenant_path(&format!("/jobs/{id}/events"));
    let mut stream = SseStream::open(&server.api, &path, None).await;
    let mut first = None;
    while let Some(event) = stream.next().await {
        match event.event.as_str() {
            "chunk" if first.is_none() => first = Some(sent.elapsed()),
            "done" => {
                let done = event.json();
                assert_eq!(done["status"], "succeeded", "{done}");
                return Timing {
                    to_ollama: ollama.last_chat_arrival().expect("a chat request") - sent,
                    first_token: first.expect("a chunk before done"),
                    total: sent.elapsed(),
                    tokens: done["usage"]["completion_tokens"].as_u64().unwrap_or(0),
                };
            }
            _ => {}
        }
    }
    panic!("the event stream of job {id} ended before done");
}

/// The same request straight to the fake Ollama's streaming `/api/chat`.
async fn direct(http: &reqwest::Client, ollama: &FakeOllama, body: &Value) -> Timing {
    let request = json!({ "model": MODEL, "messages": body["messages"], "stream": true });
    let sent = Instant::now();
    let mut response =
        http.post(format!("{}/api/chat", ollama.url())).json(&request).send().await.expect("a chat");
    let to_ollama = ollama.last_chat_arrival().expect("a chat request") - sent;
    let mut first = None;
    let mut pending = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("a body chunk") {
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
            let line = &pending[start..start + end];
            start += end + 1;
            let object: Value = serde_json::from_slice(line).expect("an NDJSON object");
            if first.is_none() && object["message"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
                first = Some(sent.elapsed());
            }
            if object["done"] == true {
                return Timing {
                    to_ollama,
                    first_token: first.expect("a token before done"),
                    total: sent.elapsed(),
                    tokens: object["eval_count"].as_u64().unwrap_or(0),
                };
            }
        }
        pending.drain(..start);
    }
    panic!("the stream ended before done");
}

async fn relay(ollama: &FakeOllama) {
    let server = Server::start(None).await;
    let _agents = server.agents(1, ollama).await;
    let http = reqwest::Client::new();
    let paces = [
        (
            "paced: 20 ms to first token, 200 tokens/s, 100 tokens",
            Pace { first_token: Duration::from_millis(20), tokens_per_second: 200.0, tokens: 100 },
        ),
        (
            "fast: 5 ms to first token, 1000 tokens/s, 500 tokens",
            Pace { first_token: Duration::from_millis(5), tokens_per_second: 1000.0, tokens: 500 },
        ),
    ];
    const ROUNDS: usize = 40;
    const WARM_UP: usize = 3;
    for (name, pace) in paces {
        ollama.set_pace(pace);
        let (mut product, mut straight) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS + WARM_UP {
            // Distinct prompts, each sent both ways, alternating.
            let body = chat(&format!("relay round {round}"));
            let via = through_product(&server, ollama, &body).await;
            let raw = direct(&http, ollama, &body).await;
            if round >= WARM_UP {
                product.push(via);
                straight.push(raw);
            }
        }
        let column = |timings: &[Timing], field: fn(&Timing) -> Duration| -> Vec<Duration> {
            timings.iter().map(field).collect()
        };
        let rate = |timings: &[Timing]| {
            timings.iter().map(|t| t.tokens).sum::<u64>() as f64
                / timings.iter().map(|t| t.total.as_secs_f64()).sum::<f64>()
        };
        let (product_rate, straight_rate) = (rate(&product), rate(&straight));
        // What the product adds after Ollama's first token: the agent's
        // batching, the tunnel, the store, the event stream.
        let mut back: Vec<Duration> = product
            .iter()
            .zip(&straight)
            .map(|(p, s)| p.first_token.saturating_sub(p.to_ollama + (s.first_token - s.to_ollama)))
            .collect();
        println!("relay, {name}:");
        println!("  request reaches Ollama  direct  {}", summary(&mut column(&straight, |t| t.to_ollama)));
        println!("                          product {}", summary(&mut column(&product, |t| t.to_ollama)));
        println!("  first token, Ollama -> client through the product: {}", summary(&mut back));
        println!("  time to first token     direct  {}", summary(&mut column(&straight, |t| t.first_token)));
        println!("                          product {}", summary(&mut column(&product, |t| t.first_token)));
        println!("  total time              direct  {}", summary(&mut column(&straight, |t| t.total)));
        println!("                          product {}", summary(&mut column(&product, |t| t.total)));
        println!(
            "  tokens/s                direct  {straight_rate:.0}, product {product_rate:.0} ({:+.1} %)",
            100.0 * (product_rate - straight_rate) / straight_rate
        );
    }
}

async fn throughput_run(ollama: &FakeOllama, database_url: Option<&str>, agents: usize) -> f64 {
    let server = Server::start(database_url).await;
    ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 0.0, tokens: 16 });
    let _agents = server.agents(agents, ollama).await;
    short_jobs(&server.api).await
}

/// 400 short chat jobs submitted through `api` by 8 concurrent clients,
/// which then wait for each to succeed; jobs completed per second.
async fn short_jobs(api: &Api) -> f64 {
    const JOBS: usize = 400;
    const CLIENTS: usize = 8;
    let started = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for client in 0..CLIENTS {
        let api = api.clone();
        clients.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in (client..JOBS).step_by(CLIENTS) {
                ids.push(submit(&api, &chat(&format!("short job {n}"))).await);
            }
            for id in ids {
                wait_succeeded(&api, &id).await;
            }
        }));
    }
    for client in clients {
        client.await.expect("a client");
    }
    JOBS as f64 / started.elapsed().as_secs_f64()
}

async fn throughput(ollama: &FakeOllama) {
    let postgres = std::env::var_os("MARKETER_TEST_DATABASE_URL").is_some();
    for agents in [1, 4, 16] {
        let rate = throughput_run(ollama, None, agents).await;
        println!("throughput, {agents:>2} agents x 2 slots, SQLite:     {rate:.0} jobs/s");
        if postgres {
            let database = TempDatabase::create().await.expect("a PostgreSQL database");
            let rate = throughput_run(ollama, Some(&database.url), agents).await;
            database.drop_database().await;
            println!("throughput, {agents:>2} agents x 2 slots, PostgreSQL: {rate:.0} jobs/s");
        }
    }
    if !postgres {
        println!("throughput on PostgreSQL skipped: set MARKETER_TEST_DATABASE_URL");
    }
}

/// Several replicas on one PostgreSQL database behind HAProxy
/// (`marketer_tests::replicas`): dispatch from a submission on replica 0 to
/// an idle simulated agent on replica 1 (the signal crosses replicas),
/// against the same agent fed from its own replica; then short-job
/// throughput through the balancer with 1, 2 and 3 replicas and 16 agents.
async fn replicas(ollama: &FakeOllama) {
    if std::env::var_os("MARKETER_TEST_DATABASE_URL").is_none() {
        println!("replicas skipped: set MARKETER_TEST_DATABASE_URL");
        return;
    }
    let quiet = |o: ServerOptions| o.env("MARKETER_LOG_LEVEL", "warn");
    let cluster = Replicas::start(2, quiet).await.expect("PostgreSQL for the replicas");
    let (status, created) = cluster
        .api
        .call(Method::POST, &cluster.api.tenant_path("/enrollment-tokens"), Some(json!({ "max_uses": 1 })))
        .await;
    assert_eq!(status, 201, "{created}");
    let ca_pem = std::fs::read_to_string(cluster.data.path().join("ca/ca.crt")).expect("the CA");
    let token = created["token"].as_str().expect("a token");
    let mut assignments = idle_agent(cluster.options[1].gateway_port, &ca_pem, token).await;
    let (on_own, on_other) = (cluster.direct(1).await, cluster.direct(0).await);
    let mut same = time_dispatch(&on_own, &mut assignments).await;
    let mut across = time_dispatch(&on_other, &mut assignments).await;
    println!("dispatch, 2 replicas, submitted on the agent's replica:  {}", summary(&mut same));
    println!("dispatch, 2 replicas, submitted on the other replica:    {}", summary(&mut across));
    cluster.finish().await;

    for count in [1, 2, 3] {
        let cluster = Replicas::start(count, quiet).await.expect("PostgreSQL for the replicas");
        ollama.set_pace(Pace { first_token: Duration::ZERO, tokens_per_second: 0.0, tokens: 16 });
        let gateway = cluster.options[0].gateway_url();
        let _agents = start_agents(&cluster.api, &gateway, 16, ollama).await;
        let rate = short_jobs(&cluster.api).await;
        println!("throughput through HAProxy, {count} replica(s), 16 agents x 2 slots: {rate:.0} jobs/s");
        cluster.finish().await;
    }
}
