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
//! default). With `REPLICAS=N` (and `MARKETER_TEST_DATABASE_URL`), N
//! replicas on one PostgreSQL database (`marketer_tests::replicas`) share
//! the fleet, each agent dialing one replica's gateway in turn, and memory
//! and CPU are reported per replica. Results go to stdout;
//! docs/benchmarks.md records them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use marketer_protocol::{AgentMessage, Heartbeat};
use marketer_tests::fleet::{EMAIL, PASSWORD};
use marketer_tests::replicas::Replicas;
use marketer_tests::sim::{Capabilities, Connection, Identity, enroll};
use marketer_tests::{Api, ServerOptions, ServerProcess};
use serde_json::json;
use tokio::sync::Semaphore;

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

/// Connection attempts that failed and were made again.
static RETRIED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Connects one agent and keeps it heartbeating until the process ends.
async fn hold(port: u16, ca_pem: String, identity: Identity, connected: Arc<Semaphore>) {
    let capabilities = Capabilities {
        max_concurrency: 2,
        models: vec!["llama3.2:3b".into()],
        running_jobs: Vec::new(),
        projects: Vec::new(),
    };
    // A refused or dropped attempt (the gateway's handshake timeout, under
    // a storm of thousands connecting at once) is retried after a pause,
    // as a real agent retries with backoff; the simulated agent panics on
    // it, which its task contains.
    let mut connection = loop {
        let (ca, id, caps) = (ca_pem.clone(), identity.clone(), capabilities.clone());
        match tokio::spawn(async move { Connection::open(port, &ca, &id, caps).await }).await {
            Ok(connection) => break connection,
            Err(_) => {
                RETRIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
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

/// The server or servers holding the fleet.
enum Servers {
    One(ServerProcess, ServerOptions, tempfile::TempDir),
    Many(Replicas),
}

impl Servers {
    fn pids(&self) -> Vec<u32> {
        match self {
            Self::One(server, ..) => vec![server.pid()],
            Self::Many(cluster) => (0..cluster.servers.len()).map(|i| cluster.server(i).pid()).collect(),
        }
    }

    fn gateway_ports(&self) -> Vec<u16> {
        match self {
            Self::One(_, options, _) => vec![options.gateway_port],
            Self::Many(cluster) => cluster.options.iter().map(|o| o.gateway_port).collect(),
        }
    }

    fn data(&self) -> &std::path::Path {
        match self {
            Self::One(_, _, data) => data.path(),
            Self::Many(cluster) => cluster.data.path(),
        }
    }
}

async fn run(agents: usize, idle_seconds: u64, heartbeat_ms: u64) {
    let replicas: usize = std::env::var("REPLICAS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    // Every simulated agent dials from 127.0.0.1: no per-address limit (in
    // production each agent has an address of its own).
    let configure = |o: ServerOptions| {
        o.env("MARKETER_LOG_LEVEL", "warn")
            .arg("--agent-heartbeat-ms")
            .arg(&heartbeat_ms.to_string())
            .arg("--max-connections-per-address")
            .arg("0")
    };
    let servers = if replicas > 1 {
        Servers::Many(
            Replicas::start(replicas, configure).await.expect("REPLICAS needs MARKETER_TEST_DATABASE_URL"),
        )
    } else {
        let data = tempfile::tempdir().unwrap();
        let options = configure(
            ServerOptions::new(data.path())
                .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
                .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD),
        );
        Servers::One(ServerProcess::spawn(&options), options, data)
    };
    let pids = servers.pids();
    let ports = servers.gateway_ports();
    let api = match &servers {
        Servers::One(server, ..) => Api::login(&server.base_url, EMAIL, PASSWORD).await,
        Servers::Many(cluster) => cluster.api.clone(),
    };
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
    let ca_pem = std::fs::read_to_string(servers.data().join("ca/ca.crt")).unwrap();
    let port = ports[0];
    let rss_before: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();

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
    for (n, agent) in enrolled.into_iter().enumerate() {
        tokio::spawn(hold(ports[n % ports.len()], ca_pem.clone(), agent, connected.clone()));
    }
    let all = u32::try_from(agents).unwrap();
    let _ = connected.acquire_many(all).await.unwrap();
    let connect_time = started.elapsed();

    // Let the heartbeat batches settle, then measure an idle window.
    tokio::time::sleep(Duration::from_millis(heartbeat_ms.min(5_000))).await;
    let rss_connected: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    let cpu_start: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let cpu_used = pids.iter().map(|p| cpu_ticks(*p)).sum::<u64>().saturating_sub(cpu_start) as f64 / 100.0;
    let cpu_percent = 100.0 * cpu_used / window.elapsed().as_secs_f64();

    let (_, page) = api.call(reqwest::Method::GET, &api.tenant_path("/agents?limit=200"), None).await;
    let online = page["items"].as_array().unwrap().iter().filter(|a| a["state"] == "online").count();
    let grown: u64 =
        rss_connected.iter().zip(&rss_before).map(|(after, before)| after.saturating_sub(*before)).sum();
    let per_agent = grown as f64 / agents as f64;

    println!(
        "agents:                 {agents} (heartbeat every {heartbeat_ms} ms) on {} replica(s)",
        pids.len()
    );
    println!(
        "enrollment:             {:.1} s ({:.0} agents/s, 16 in parallel)",
        enroll_time.as_secs_f64(),
        agents as f64 / enroll_time.as_secs_f64()
    );
    println!(
        "connect (TLS+WS+Hello): {:.2} s for all ({:.0} agents/s; {} attempts failed and were retried)",
        connect_time.as_secs_f64(),
        agents as f64 / connect_time.as_secs_f64(),
        RETRIED.load(std::sync::atomic::Ordering::Relaxed)
    );
    for (i, (before, connected)) in rss_before.iter().zip(&rss_connected).enumerate() {
        println!("server {i} RSS:           {before} KiB before, {connected} KiB connected");
    }
    println!("per agent:              {per_agent:.1} KiB of server memory");
    println!("server CPU, idle fleet: {cpu_percent:.2} % of one core over {idle_seconds} s (all replicas)");
    println!("first page online:      {online} of {}", page["items"].as_array().unwrap().len());
    // The UI's sign-in form is measured on one server (replicas behind
    // their balancer would need its address in the session cookie's origin).
    if let Servers::One(server, ..) = &servers {
        let (p50, p95, size) = fleet_table(&server.base_url, &api.tenant).await;
        println!(
            "UI fleet table refresh: p50 {p50:.1} ms, p95 {p95:.1} ms, {} KiB (every open fleet page, every 2 s)",
            size / 1024
        );
    }
    if let Servers::Many(cluster) = servers {
        cluster.finish().await;
    }
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
