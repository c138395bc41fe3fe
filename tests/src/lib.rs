//! Support for workspace-level end-to-end tests: locating the real
//! `marketer-server` and `marketer-agent` binaries and running them as
//! processes, plus local stand-ins for what they talk to (Ollama, an HTTP
//! proxy).
//!
//! `cargo test --workspace` builds every binary of the workspace before any
//! test runs (each package has integration tests, which makes cargo build its
//! binaries), so the binaries sit next to this test executable's directory.

pub mod answers;
pub mod browser;
pub mod files;
pub mod fleet;
pub mod mail;
pub mod oidc;
pub mod ollama;
pub mod openai;
pub mod postgres;
pub mod proxy;
pub mod real_llm;
pub mod replicas;
pub mod sim;
pub mod social;
pub mod sse;
pub mod totp;
pub mod webhooks;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The path of a workspace binary built by the same `cargo test` run.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("the target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        path.display()
    );
    path
}

/// A port that was free a moment ago, for servers that must come back on
/// the same address after a restart.
/// A port nothing listens on, for a server a test starts. It is chosen
/// below Linux's ephemeral range (32768 to 60999), so no outgoing
/// connection of another test can take it between now and the server's
/// bind, and never handed out twice in one test binary (whose tests run
/// side by side). Port 0 cannot be used: the servers' addresses go into
/// their own flags (public URLs) before they start.
pub fn free_port() -> u16 {
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        .wrapping_add(std::process::id().wrapping_mul(7_919));
    for i in 0..COUNT {
        let candidate =
            u16::try_from(FIRST + seed.wrapping_add(i.wrapping_mul(104_729)) % COUNT).unwrap_or(20_000);
        if given.contains(&candidate) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            given.push(candidate);
            return candidate;
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How to start `marketer-server serve`.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    pub api_port: u16,
    pub gateway_port: u16,
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
    /// What agents are told to dial (`--agent-public-url`): the replica's
    /// own gateway unless a load balancer stands in front.
    pub public_gateway_url: Option<String>,
}

impl ServerOptions {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            api_port: free_port(),
            gateway_port: free_port(),
            env: Vec::new(),
            args: Vec::new(),
            public_gateway_url: None,
        }
    }

    /// Agents dial `url` (a load balancer) instead of this replica.
    pub fn public_gateway(mut self, url: &str) -> Self {
        self.public_gateway_url = Some(url.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    /// Fast fleet timings: heartbeats every 500 ms, offline after 1.5 s.
    pub fn fast_heartbeats(self) -> Self {
        self.arg("--agent-heartbeat-ms").arg("500").arg("--agent-offline-grace-ms").arg("500")
    }

    pub fn gateway_url(&self) -> String {
        self.public_gateway_url.clone().unwrap_or_else(|| format!("https://localhost:{}", self.gateway_port))
    }
}

/// Captured output lines of a child process, shared with a reader thread.
#[derive(Debug, Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(stream: impl std::io::Read + Send + 'static) -> (Self, mpsc::Receiver<String>) {
        let lines = Self::default();
        let (tx, rx) = mpsc::channel();
        let shared = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                shared.0.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        (lines, rx)
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        self.all().join("\n")
    }
}

/// A `marketer-server serve` process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pub base_url: String,
    pub gateway_url: String,
    /// Everything the server printed on standard output.
    pub stdout: Vec<String>,
    pub stderr: Lines,
}

impl ServerProcess {
    /// Starts the server with `data_dir` and extra environment variables on
    /// fresh ports and waits until it listens.
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let mut options = ServerOptions::new(data_dir);
        for (k, v) in env {
            options = options.env(k, v);
        }
        Self::spawn(&options)
    }

    pub fn spawn(options: &ServerOptions) -> Self {
        let mut command = Command::new(binary("marketer-server"));
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", options.api_port))
            .arg("--agent-listen")
            .arg(format!("127.0.0.1:{}", options.gateway_port))
            .arg("--agent-public-url")
            .arg(options.gateway_url())
            .arg("--data-dir")
            .arg(&options.data_dir)
            .args(&options.args)
            .env_remove("MARKETER_DATABASE_URL")
            .env_remove("MARKETER_BOOTSTRAP_EMAIL")
            .env_remove("MARKETER_BOOTSTRAP_PASSWORD")
            .env("MARKETER_LOG_LEVEL", "info")
            // Tests poll and submit far faster than a person; the rate-limit
            // test sets its own.
            .env("MARKETER_RATE_LIMITS", "100000,100000,100000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start marketer-server");
        let (_, stdout) = Lines::follow(child.stdout.take().expect("piped stdout"));
        let (stderr, _) = Lines::follow(child.stderr.take().expect("piped stderr"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = Vec::new();
        loop {
            match stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    let address = line.strip_prefix("marketer-server listening on ").map(str::to_owned);
                    seen.push(line);
                    if let Some(base_url) = address {
                        return Self {
                            child,
                            base_url,
                            gateway_url: options.gateway_url(),
                            stdout: seen,
                            stderr,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "marketer-server did not start listening; stdout: {seen:#?}\nstderr: {}",
                        stderr.text()
                    );
                }
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM without waiting (see `terminate`).
    pub fn begin_terminate(&self) {
        signal(self.child.id(), "TERM");
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        wait_for_exit(&mut self.child, Duration::from_secs(30))
            .expect("the server stops within 30 s of SIGTERM")
    }

    /// SIGKILL: no chance to say goodbye to anyone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().expect("run kill");
    assert!(sent.success(), "kill -{name} {pid} failed");
}

fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `marketer-server` with arguments to completion.
pub fn server_command(args: &[&str], data_dir: &Path, stdin: Option<&str>) -> std::process::Output {
    server_command_on(args, data_dir, None, stdin)
}

/// [`server_command`] on the database at `database_url` (the data
/// directory's SQLite file when `None`).
pub fn server_command_on(
    args: &[&str],
    data_dir: &Path,
    database_url: Option<&str>,
    stdin: Option<&str>,
) -> std::process::Output {
    let mut command = Command::new(binary("marketer-server"));
    command.args(args).arg("--data-dir").arg(data_dir).env_remove("MARKETER_DATABASE_URL");
    if let Some(url) = database_url {
        command.env("MARKETER_DATABASE_URL", url);
    }
    command
        .env("MARKETER_LOG_LEVEL", "warn")
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start marketer-server");
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().expect("piped stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait for marketer-server")
}

/// An agent installation: a configuration directory and the environment
/// the agent runs with.
#[derive(Debug, Clone)]
pub struct AgentHost {
    pub home: PathBuf,
    pub env: Vec<(String, String)>,
}

impl AgentHost {
    pub fn new(home: &Path, ollama_url: &str) -> Self {
        Self { home: home.to_path_buf(), env: vec![("OLLAMA_HOST".to_owned(), ollama_url.to_owned())] }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary("marketer-agent"));
        self.configure(&mut command, args);
        command
    }

    fn configure(&self, command: &mut Command, args: &[&str]) {
        command
            .args(args)
            .env("MARKETER_AGENT_HOME", &self.home)
            .env("MARKETER_AGENT_LOG_LEVEL", "info")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy");
        for (key, value) in &self.env {
            command.env(key, value);
        }
    }

    /// Runs a short agent command (`enroll`, `status`, `doctor`) to
    /// completion without blocking the test's runtime, which may be serving
    /// the fake Ollama or proxy the agent talks to.
    pub async fn run_command(&self, args: &[&str]) -> std::process::Output {
        let mut command = Command::new(binary("marketer-agent"));
        self.configure(&mut command, args);
        command.stdin(Stdio::null());
        tokio::process::Command::from(command).output().await.expect("run marketer-agent")
    }

    /// `marketer-agent enroll --server URL --token TOKEN [extra]`, which must succeed.
    pub async fn enroll(&self, server: &str, token: &str, extra: &[&str]) -> String {
        let mut args = vec!["enroll", "--server", server, "--token", token];
        args.extend_from_slice(extra);
        let out = self.run_command(&args).await;
        assert!(out.status.success(), "enroll failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts `marketer-agent run` in the background.
    pub fn spawn_run(&self, extra: &[&str]) -> AgentProcess {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        let mut child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start marketer-agent");
        let (logs, _) = Lines::follow(child.stderr.take().expect("piped stderr"));
        AgentProcess { child, logs }
    }
}

/// A running `marketer-agent run`.
#[derive(Debug)]
pub struct AgentProcess {
    child: Child,
    pub logs: Lines,
}

impl AgentProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the agent to exit on its own.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_for_exit(&mut self.child, limit)
    }

    pub fn terminate(&mut self) -> ExitStatus {
        signal(self.child.id(), "TERM");
        wait_for_exit(&mut self.child, Duration::from_secs(15))
            .expect("the agent stops within 15 s of SIGTERM")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A signed-in client of a running server's JSON API.
#[derive(Debug, Clone)]
pub struct Api {
    pub http: reqwest::Client,
    pub base_url: String,
    pub token: String,
    /// The `default` tenant (or the first one) of the signed-in user.
    pub tenant: String,
}

impl Api {
    /// An access token of `email`, which may belong to no tenant yet.
    pub async fn login_token(base_url: &str, email: &str, password: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!("{base_url}/api/v1/auth/login"))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("login request");
        assert_eq!(response.status(), 200, "login of {email} failed");
        let tokens: serde_json::Value = response.json().await.expect("login answer");
        tokens["access_token"].as_str().expect("an access token").to_owned()
    }

    pub async fn login(base_url: &str, email: &str, password: &str) -> Self {
        let http = reqwest::Client::new();
        let token = Self::login_token(base_url, email, password).await;
        let me: serde_json::Value = http
            .get(format!("{base_url}/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("me request")
            .json()
            .await
            .expect("me answer");
        let memberships = me["memberships"].as_array().expect("memberships");
        let tenant = memberships
            .iter()
            .find(|m| m["tenant_slug"] == "default")
            .or_else(|| memberships.first())
            .and_then(|m| m["tenant_id"].as_str())
            .expect("a tenant")
            .to_owned();
        Self { http, base_url: base_url.to_owned(), token, tenant }
    }

    /// `/api/v1/tenants/{tenant}{rest}`.
    pub fn tenant_path(&self, rest: &str) -> String {
        format!("/api/v1/tenants/{}{rest}", self.tenant)
    }

    /// Sends a request with the session's token; returns the status and
    /// the JSON body (`Null` when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base_url)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Uploads `bytes` as the multipart part `file` named `file_name`.
    pub async fn upload(&self, path: &str, file_name: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let response = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .expect("upload request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// After a server restart: pooled connections went down with the old process.
    pub fn reconnect(&mut self) {
        self.http = reqwest::Client::new();
    }
}

/// A PostgreSQL database of its own for one test, in the server named by
/// `MARKETER_TEST_DATABASE_URL`.
#[derive(Debug)]
pub struct TempDatabase {
    pub url: String,
    name: String,
    admin: sqlx::PgPool,
}

impl TempDatabase {
    /// `None` (the test is skipped) when no test database is configured,
    /// unless CI requires one with `MARKETER_REQUIRE_POSTGRES`.
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("MARKETER_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("MARKETER_REQUIRE_POSTGRES").is_none(),
                "MARKETER_REQUIRE_POSTGRES is set but MARKETER_TEST_DATABASE_URL is not"
            );
            eprintln!("skipping: MARKETER_TEST_DATABASE_URL is not set");
            return None;
        };
        let name = format!("marketer_e2e_{}", uuid::Uuid::now_v7().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("connect to the test PostgreSQL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create a database");
        let (base, _) = admin_url.rsplit_once('/').expect("a database URL with a database name");
        Some(Self { url: format!("{base}/{name}"), name, admin })
    }

    pub async fn drop_database(self) {
        let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&self.admin).await.expect("drop the database");
        self.admin.close().await;
    }

    /// Every row of every table, as text (for canary searches).
    pub async fn dump(&self) -> String {
        let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(tables.iter().any(|t| t == "jobs"), "{tables:?}");
        let mut dump = String::new();
        for table in tables {
            let sql = format!("SELECT t::text FROM \"{table}\" t");
            let rows: Vec<String> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&pool).await.unwrap();
            dump.push_str(&rows.join("\n"));
        }
        pool.close().await;
        dump
    }
}

/// A time as the control plane's SQLite store writes it (for rows a
/// benchmark writes straight into the database).
pub fn sqlite_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}
