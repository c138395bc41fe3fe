//! How many agents one control plane holds, and what they cost it.
//!
//! Starts the release `marketer-server`, enrolls N simulated agents through
//! the real enrollment endpoint (each with its own key and certificate),
//! connects them all over mutually authenticated WebSockets, keeps them
//! heartbeating, and reports enrollment and connection rates, the server's
//! resident memory per connected agent and its CPU use while idle-connected.
//!
//!     cargo build --release --bins
//!     cargo bench -p marketer-tests --bench fleet -- [AGENTS] [IDLE_SECONDS] [HEARTBEAT_MS]
//!
//! Defaults: 2000 agents, 30 s idle window, 10 s heartbeats (the product
//! default). Results go to stdout; docs/benchmarks.md records them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use marketer_protocol::{AgentMessage, Heartbeat};
use marketer_tests::sim::{Capabilities, Connection, Identity, enroll};
use marketer_tests::{Api, ServerOptions, ServerProcess};
use serde_json::json;
use tokio::sync::Semaphore;

const EMAIL: &str = "bench@example.com";
const PASSWORD: &str = "a long benchmark password";

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of a process, in clock ticks (1/100 s on Linux).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of /proc/PID/stat, 12 and 13 after the command.
    field(11) + field(12)
}

/// Connects one agent and keeps it heartbeating until the process ends.
async fn hold(port: u16, ca_pem: String, identity: Identity, connected: Arc<Semaphore>) {
    let capabilities = Capabilities {
        max_concurrency: 2,
        models: vec!["llama3.2:3b".into()],
        running_jobs: Vec::new(),
        projects: Vec::new(),
    };
    let mut connection = Connection::open(port, &ca_pem, &identity, capabilities).await;
    connected.add_permits(1);
    let mut tick = tokio::time::interval(Duration::from_millis(connection.welcome.heartbeat_interval_ms));
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                seq += 1;
                let beat = Heartbeat {
                    seq, max_concurrency: 2, running_jobs: 0, free_slots: 2, ollama_reachable: true, models: None, jobs: Vec::new(), projects: None, policy: None,
                };
                if connection.send(&AgentMessage::Heartbeat(beat)).await.is_err() {
                    return;
                }
            }
            message = connection.next() => if message.is_none() {
                return;
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let agents: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let idle_seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(30);
    let heartbeat_ms: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(run(agents, idle_seconds, heartbeat_ms));
}

async fn run(agents: usize, idle_seconds: u64, heartbeat_ms: u64) {
    let data = tempfile::tempdir().unwrap();
    let options = ServerOptions::new(data.path())
        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
        .env("MARKETER_LOG_LEVEL", "warn")
        .arg("--agent-heartbeat-ms")
        .arg(&heartbeat_ms.to_string());
    let server = ServerProcess::spawn(&options);
    let pid = server.pid();
    let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
    let mut tokens = Vec::new();
    for batch in 0..agents.div_ceil(1000) {
        let uses = (agents - batch * 1000).min(1000);
        let (status, created) = api
            .call(
                reqwest::Method::POST,
                &api.tenant_path("/enrollment-tokens"),
                Some(json!({ "max_uses": uses })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        tokens.push(created["token"].as_str().unwrap().rsplit_once('.').unwrap().0.to_owned());
    }
    let ca_pem = std::fs::read_to_string(data.path().join("ca/ca.crt")).unwrap();
    let port = options.gateway_port;
    let rss_before = rss_kib(pid);

    // Enroll with bounded parallelism (enrollment is a write transaction).
    let started = Instant::now();
    let permits = Arc::new(Semaphore::new(16));
    let mut handles = Vec::with_capacity(agents);
    for n in 0..agents {
        let (ca, token, permits) = (ca_pem.clone(), tokens[n / 1000].clone(), permits.clone());
        handles.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.unwrap();
            enroll(port, &ca, &token, &format!("bench-{n}")).await
        }));
    }
    let mut enrolled = Vec::with_capacity(agents);
    for handle in handles {
        enrolled.push(handle.await.unwrap());
    }
    let enroll_time = started.elapsed();

    let started = Instant::now();
    let connected = Arc::new(Semaphore::new(0));
    for agent in enrolled {
        tokio::spawn(hold(port, ca_pem.clone(), agent, connected.clone()));
    }
    let all = u32::try_from(agents).unwrap();
    let _ = connected.acquire_many(all).await.unwrap();
    let connect_time = started.elapsed();

    // Let the heartbeat batches settle, then measure an idle window.
    tokio::time::sleep(Duration::from_millis(heartbeat_ms.min(5_000))).await;
    let rss_connected = rss_kib(pid);
    let cpu_start = cpu_ticks(pid);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let cpu_used = cpu_ticks(pid).saturating_sub(cpu_start) as f64 / 100.0;
    let cpu_percent = 100.0 * cpu_used / window.elapsed().as_secs_f64();

    let (_, page) = api.call(reqwest::Method::GET, &api.tenant_path("/agents?limit=200"), None).await;
    let online = page["items"].as_array().unwrap().iter().filter(|a| a["state"] == "online").count();
    let per_agent = (rss_connected.saturating_sub(rss_before)) as f64 / agents as f64;

    println!("agents:                 {agents} (heartbeat every {heartbeat_ms} ms)");
    println!(
        "enrollment:             {:.1} s ({:.0} agents/s, 16 in parallel)",
        enroll_time.as_secs_f64(),
        agents as f64 / enroll_time.as_secs_f64()
    );
    println!(
        "connect (TLS+WS+Hello): {:.2} s for all ({:.0} agents/s)",
        connect_time.as_secs_f64(),
        agents as f64 / connect_time.as_secs_f64()
    );
    println!(
        "server RSS:             {rss_before} KiB before, {rss_connected} KiB connected ({per_agent:.1} KiB per agent)"
    );
    println!("server CPU, idle fleet: {cpu_percent:.2} % of one core over {idle_seconds} s");
    println!("first page online:      {online} of {}", page["items"].as_array().unwrap().len());
    let (p50, p95, size) = fleet_table(&server.base_url, &api.tenant).await;
    println!(
        "UI fleet table refresh: p50 {p50:.1} ms, p95 {p95:.1} ms, {} KiB (every open fleet page, every 2 s)",
        size / 1024
    );
    drop(server);
}

/// What the fleet page's live refresh costs with this fleet: signs in with
/// the browser form, then times `GET /t/{tenant}/fleet/rows` (the HTML
/// fragment an open fleet page fetches every 2 s) sequentially.
async fn fleet_table(base_url: &str, tenant: &str) -> (f64, f64, usize) {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let signed_in = http
        .post(format!("{base_url}/login"))
        .form(&[("email", EMAIL), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let url = format!("{base_url}/t/{tenant}/fleet/rows");
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..50 {
        let started = Instant::now();
        let response = http.get(&url).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(response.status(), 200);
        size = response.bytes().await.unwrap().len();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() * 95 / 100], size)
}
