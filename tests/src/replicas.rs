//! Several control-plane replicas on one PostgreSQL database behind a real
//! load balancer (HAProxy, from Debian's `haproxy` package, which `.ci/run`
//! installs): HTTP mode for the API and UI, TCP passthrough for the agent
//! gateway (the agents' mutual TLS reaches the servers). The replicas share
//! a data directory, as replicas share a volume or a Secret: the same
//! session-signing secret, data key and agent CA. Tests can stop, kill and
//! restart any replica; the balancer's health checks (`/readyz`) take it
//! out and put it back.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::fleet::{EMAIL, PASSWORD};
use crate::ollama::{FakeModel, FakeOllama};
use crate::postgres::PostgresServer;
use crate::{AgentHost, Api, ServerOptions, ServerProcess, TempDatabase, free_port};

const HAPROXY: &str = "/usr/sbin/haproxy";

/// N replicas, the balancer in front, the owner signed in through it, and a
/// fake Ollama for agents.
#[derive(Debug)]
pub struct Replicas {
    pub servers: Vec<Option<ServerProcess>>,
    pub options: Vec<ServerOptions>,
    pub balancer: Balancer,
    /// The owner's session, through the balancer.
    pub api: Api,
    pub ollama: FakeOllama,
    pub data: tempfile::TempDir,
    database: Option<Database>,
}

/// Where the replicas' database lives.
#[derive(Debug)]
enum Database {
    /// A database of the test's own on the shared server.
    Shared(TempDatabase),
    /// A server of the test's own, which the test may crash.
    Own(PostgresServer),
}

impl Database {
    fn url(&self) -> &str {
        match self {
            Self::Shared(database) => &database.url,
            Self::Own(server) => &server.url,
        }
    }
}

impl Replicas {
    /// `None` (the test is skipped) without PostgreSQL, unless CI requires
    /// it. `configure` adds to each replica's options.
    pub async fn start(count: usize, configure: impl Fn(ServerOptions) -> ServerOptions) -> Option<Self> {
        Self::start_on(Database::Shared(TempDatabase::create().await?), count, configure).await
    }

    /// Like `start`, on a PostgreSQL server of the test's own, which
    /// `crash_database` can crash and restart.
    pub async fn start_with_own_database(
        count: usize,
        configure: impl Fn(ServerOptions) -> ServerOptions,
    ) -> Option<Self> {
        Self::start_on(Database::Own(PostgresServer::start()?), count, configure).await
    }

    /// Crashes the test's own PostgreSQL server and starts it again after
    /// `down` (see `start_with_own_database`).
    pub fn crash_database(&self, down: Duration) {
        match &self.database {
            Some(Database::Own(server)) => server.crash_and_restart(down),
            _ => panic!("only replicas started with_own_database can crash it"),
        }
    }

    /// The replicas' database URL (for a test's own checks).
    pub fn database_url(&self) -> &str {
        self.database.as_ref().expect("the database is there until finish").url()
    }

    async fn start_on(
        database: Database,
        count: usize,
        configure: impl Fn(ServerOptions) -> ServerOptions,
    ) -> Option<Self> {
        assert!(count >= 1);
        let data = tempfile::tempdir().unwrap();
        let api_port = free_port();
        let gateway_port = free_port();
        let options: Vec<ServerOptions> = (0..count)
            .map(|_| {
                configure(
                    ServerOptions::new(data.path())
                        .env("MARKETER_DATABASE_URL", database.url())
                        .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
                        .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD)
                        .env("MARKETER_TRUST_PROXY_HEADERS", "true"),
                )
                .public_gateway(&format!("https://localhost:{gateway_port}"))
            })
            .collect();
        // The first creates the secrets, the CA and the owner; the others
        // find them.
        let mut servers = vec![Some(ServerProcess::spawn(&options[0]))];
        for replica in &options[1..] {
            servers.push(Some(ServerProcess::spawn(replica)));
        }
        let balancer = Balancer::start(api_port, gateway_port, &options);
        let base = format!("http://127.0.0.1:{api_port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !balancer.all_up(count).await {
            assert!(
                std::time::Instant::now() < deadline,
                "the balancer does not see {count} replicas ready: {:?}; its log: {}",
                balancer.up().await,
                balancer.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let api = Api::login(&base, EMAIL, PASSWORD).await;
        let ollama =
            FakeOllama::start(vec![FakeModel::new("llama3.2:3b"), FakeModel::new("nomic-embed-text:latest")])
                .await;
        Some(Self { servers, options, balancer, api, ollama, data, database: Some(database) })
    }

    /// Replica `i` (panics if it is down).
    pub fn server(&self, i: usize) -> &ServerProcess {
        self.servers[i].as_ref().expect("the replica is running")
    }

    /// The owner's session against replica `i` directly.
    pub async fn direct(&self, i: usize) -> Api {
        Api::login(&self.server(i).base_url, EMAIL, PASSWORD).await
    }

    /// The agent gateway of replica `i`, not through the balancer.
    pub fn direct_gateway(&self, i: usize) -> String {
        format!("https://localhost:{}", self.options[i].gateway_port)
    }

    /// SIGKILL replica `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(server) = self.servers[i].take() {
            server.kill();
        }
    }

    /// SIGTERM replica `i` and wait for it to exit.
    pub fn stop(&mut self, i: usize) {
        if let Some(server) = self.servers[i].take() {
            server.terminate();
        }
    }

    /// Starts replica `i` again on its ports (killing it first if it runs).
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.servers[i] = Some(ServerProcess::spawn(&self.options[i]));
    }

    pub fn host(&self, home: &Path) -> AgentHost {
        AgentHost::new(home, &self.ollama.url())
    }

    /// Enrolls `host` through `gateway` with a fresh token; returns the
    /// agent's id.
    pub async fn enroll(&self, host: &AgentHost, gateway: &str) -> String {
        let (status, created) = self
            .api
            .call(
                reqwest::Method::POST,
                &self.api.tenant_path("/enrollment-tokens"),
                Some(serde_json::json!({})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        host.enroll(gateway, created["token"].as_str().unwrap(), &[]).await;
        crate::fleet::agent_id(host)
    }

    /// Drops the test's database (after the replicas are gone).
    pub async fn finish(mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
        self.balancer.stop();
        if let Some(Database::Shared(database)) = self.database.take() {
            database.drop_database().await;
        }
    }
}

/// HAProxy in the foreground with a configuration of its own.
#[derive(Debug)]
pub struct Balancer {
    child: Child,
    pub api_port: u16,
    pub gateway_port: u16,
    stats_port: u16,
    _config: tempfile::TempDir,
}

impl Balancer {
    fn start(api_port: u16, gateway_port: u16, replicas: &[ServerOptions]) -> Self {
        assert!(Path::new(HAPROXY).exists(), "{HAPROXY} is missing: apt-get install haproxy (.ci/run does)");
        let stats_port = free_port();
        let mut api_servers = String::new();
        let mut gateway_servers = String::new();
        for (i, replica) in replicas.iter().enumerate() {
            api_servers.push_str(&format!("    server r{i} 127.0.0.1:{} check\n", replica.api_port));
            gateway_servers.push_str(&format!("    server r{i} 127.0.0.1:{} check\n", replica.gateway_port));
        }
        // Health checks every 200 ms, so a killed replica leaves the pool
        // in well under a second; long timeouts for event streams and
        // tunnels, which stay open.
        let config = format!(
            "global\n    maxconn 4000\n\n\
             defaults\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n    timeout tunnel 1h\n    \
             timeout http-request 10s\n    default-server inter 200ms fall 2 rise 1\n\n\
             frontend api\n    mode http\n    bind 127.0.0.1:{api_port}\n    option forwardfor\n    default_backend api\n\n\
             backend api\n    mode http\n    balance roundrobin\n    option httpchk\n    \
             http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost\n    http-check expect status 200\n    retry-on conn-failure\n    retries 2\n    option redispatch\n{api_servers}\n\
             frontend gateway\n    mode tcp\n    bind 127.0.0.1:{gateway_port}\n    default_backend gateway\n\n\
             backend gateway\n    mode tcp\n    balance leastconn\n{gateway_servers}\n\
             frontend stats\n    mode http\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /stats\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let check = Command::new(HAPROXY).arg("-c").arg("-f").arg(&path).output().expect("run haproxy -c");
        assert!(check.status.success(), "haproxy.cfg: {}", String::from_utf8_lossy(&check.stderr));
        let child = Command::new(HAPROXY)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(dir.path().join("haproxy.log"))
                    .map_or_else(|_| Stdio::null(), Stdio::from),
            )
            .spawn()
            .expect("start haproxy");
        Self { child, api_port, gateway_port, stats_port, _config: dir }
    }

    /// Whether HAProxy counts `count` API servers up (its CSV statistics).
    pub async fn all_up(&self, count: usize) -> bool {
        self.up().await.len() == count
    }

    /// The API servers HAProxy counts up (`r0`, `r1`, ...).
    pub async fn up(&self) -> Vec<String> {
        let Ok(response) = reqwest::get(format!("http://127.0.0.1:{}/stats;csv", self.stats_port)).await
        else {
            return Vec::new();
        };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|line| line.starts_with("api,r"))
            .filter(|line| line.split(',').nth(17) == Some("UP"))
            .filter_map(|line| line.split(',').nth(1).map(str::to_owned))
            .collect()
    }

    /// What HAProxy said (servers going down and up, with why).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._config.path().join("haproxy.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop();
    }
}
