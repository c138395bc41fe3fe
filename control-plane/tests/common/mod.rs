//! Test support shared by the control plane's integration tests: isolated
//! databases on both backends and an in-process server on a real socket.
#![allow(dead_code)]

pub mod fixtures;

use std::sync::Arc;

use std::time::Duration;

use marketer_control_plane::api::ApiConfig;
use marketer_control_plane::config::AgentGatewaySettings;
use marketer_control_plane::domain::{Email, Password};
use marketer_control_plane::jobs::JobSettings;
use marketer_control_plane::server::{self, BootstrapAccount};
use marketer_control_plane::service::App;
use marketer_control_plane::store::{self, ConnectOptions, DatabaseUrl, RetryPolicy, Store};
use secrecy::SecretBox;
use tokio_util::sync::CancellationToken;

pub const PG_URL_ENV: &str = "MARKETER_TEST_DATABASE_URL";
/// Set by CI: a missing PostgreSQL URL is then a failure, not a skip.
pub const REQUIRE_PG_ENV: &str = "MARKETER_REQUIRE_POSTGRES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database of its own for one test: a SQLite file in a temporary
/// directory, or a fresh schema in the PostgreSQL test database. Dropped
/// when the test ends.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: DatabaseUrl,
    pub pg_schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// `None` when the backend is PostgreSQL and no test database is
    /// configured (and CI does not require one).
    pub async fn new(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = DatabaseUrl::new(format!("sqlite://{}", dir.path().join("test.db").display()));
                let store = store::connect(&url).await.expect("open SQLite");
                Some(Self { store, url, pg_schema: None, _dir: Some(dir) })
            }
            Backend::Postgres => {
                let Ok(url) = std::env::var(PG_URL_ENV) else {
                    assert!(
                        std::env::var_os(REQUIRE_PG_ENV).is_none(),
                        "{REQUIRE_PG_ENV} is set but {PG_URL_ENV} is not"
                    );
                    eprintln!("skipping: {PG_URL_ENV} is not set");
                    return None;
                };
                let url = DatabaseUrl::new(url);
                let schema = format!("test_{}", uuid::Uuid::now_v7().simple());
                let options = ConnectOptions { pg_schema: Some(schema.clone()), max_connections: Some(4) };
                let store = store::connect_with(&url, &options).await.expect("open PostgreSQL");
                Some(Self { store, url, pg_schema: Some(schema), _dir: None })
            }
        }
    }

    /// A raw connection pool to the same database, for checks the store's
    /// interface deliberately does not allow (such as tampering with the
    /// audit log).
    pub async fn raw_sqlite(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(self.url.expose()).await.expect("raw SQLite connection")
    }

    pub async fn raw_postgres(&self) -> sqlx::PgPool {
        use std::str::FromStr;
        let schema = self.pg_schema.clone().expect("a PostgreSQL test database");
        let options = sqlx::postgres::PgConnectOptions::from_str(self.url.expose())
            .expect("PostgreSQL URL")
            .options([("search_path", schema)]);
        sqlx::PgPool::connect_with(options).await.expect("raw PostgreSQL connection")
    }
}

impl TestDb {
    /// Closes the store and, on PostgreSQL, drops the test's schema. Called at
    /// the end of each test; a test that panics leaves its schema behind for
    /// `.ci/run` to discard with the whole test database.
    pub async fn cleanup(mut self) {
        self.store.close().await;
        let Some(schema) = self.pg_schema.take() else { return };
        if let Ok(pool) = sqlx::PgPool::connect(self.url.expose()).await {
            let sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await {
                eprintln!("could not drop the test schema {schema}: {e}");
            }
            pool.close().await;
        }
    }
}

/// Runs `body` once per configured backend.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = $crate::common::TestDb::new($crate::common::Backend::Sqlite).await.unwrap();
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(db) = $crate::common::TestDb::new($crate::common::Backend::Postgres).await {
                        super::$name(&db).await;
                        db.cleanup().await;
                    }
                }
            )*
        }
    };
}

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

pub fn test_secrets() -> server::Secrets {
    server::Secrets {
        jwt: test_key(),
        data: SecretBox::new(Box::new(b"test-data-key-that-is-long-enough-0123456789".to_vec())),
    }
}

pub fn test_key() -> SecretBox<Vec<u8>> {
    SecretBox::new(Box::new(b"test-signing-key-that-is-long-enough-0123456789".to_vec()))
}

/// Gateway settings for tests: fast heartbeats so offline detection takes a
/// few seconds, not half a minute.
pub fn test_gateway_settings() -> AgentGatewaySettings {
    AgentGatewaySettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        ca: None,
        tls: None,
        tls_names: Vec::new(),
        cert_lifetime: Duration::from_secs(30 * 24 * 3600),
        heartbeat_interval: Duration::from_millis(500),
        offline_grace: Duration::from_millis(500),
        transcript: None,
    }
}

/// Job timings short enough for tests: a lost agent's jobs move after 2 s,
/// retries follow after 50 ms.
pub fn test_job_settings() -> JobSettings {
    JobSettings {
        lease_grace: Duration::from_secs(2),
        retry: RetryPolicy { base: Duration::from_millis(50), max: Duration::from_secs(1) },
        sweep_interval: Duration::from_millis(100),
    }
}

/// A control plane serving the API and the agent gateway on real loopback
/// sockets, with the bootstrap owner `OWNER_EMAIL` / `PASSWORD`.
pub struct TestServer {
    pub base: String,
    /// `https://localhost:PORT`, the agent gateway.
    pub gateway: String,
    pub app: Arc<App>,
    pub db: TestDb,
    pub data_dir: tempfile::TempDir,
    pub http: reqwest::Client,
    shutdown: CancellationToken,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Backend::Sqlite, ApiConfig::default()).await.expect("SQLite is always available")
    }

    pub async fn start_with(backend: Backend, config: ApiConfig) -> Option<Self> {
        Self::start_full(backend, config, test_gateway_settings()).await
    }

    pub async fn start_full(
        backend: Backend,
        config: ApiConfig,
        mut agents: AgentGatewaySettings,
    ) -> Option<Self> {
        let db = TestDb::new(backend).await?;
        let data_dir = tempfile::tempdir().expect("temporary directory");
        let api = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let gateway = tokio::net::TcpListener::bind(agents.listen).await.expect("bind");
        let gateway_port = gateway.local_addr().unwrap().port();
        agents.public_url.get_or_insert_with(|| format!("https://localhost:{gateway_port}"));
        let ca = server::load_ca(data_dir.path(), &agents).expect("agent CA");
        let runtime = server::assemble(
            db.store.clone(),
            data_dir.path(),
            &test_secrets(),
            ca,
            &agents,
            server::EngineSettings { jobs: test_job_settings(), ..Default::default() },
            gateway_port,
        )
        .expect("runtime");
        let app = runtime.app.clone();
        let account = BootstrapAccount {
            email: Email::parse(OWNER_EMAIL).unwrap(),
            password: Password::parse(PASSWORD).unwrap(),
            generated_password: false,
        };
        server::bootstrap(&app, account).await.expect("bootstrap");
        let base = format!("http://{}", api.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(server::serve(runtime, config, api, gateway, shutdown.clone(), Duration::from_secs(5)));
        let gateway = app.agents.public_url.clone();
        Some(Self { base, gateway, app, db, data_dir, http: reqwest::Client::new(), shutdown })
    }

    /// Stops serving (both listeners) and waits until the sockets are closed.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and returns the status and the JSON body (or `Null`).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        (status, json)
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::POST, path, Some(token), Some(body)).await
    }

    /// Posts `body` as `content_type` (a CSV file, say).
    pub async fn post_text(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: String,
    ) -> (u16, serde_json::Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    /// Uploads `bytes` as the multipart part `file` named `file_name`.
    pub async fn upload(
        &self,
        path: &str,
        token: &str,
        file_name: &str,
        bytes: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        let response =
            self.http.post(self.url(path)).bearer_auth(token).multipart(form).send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    }

    pub async fn patch(&self, path: &str, token: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::PATCH, path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        self.call(reqwest::Method::DELETE, path, Some(token), None).await
    }

    /// Logs in and returns the token pair.
    pub async fn login(&self, email: &str, password: &str) -> serde_json::Value {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(status, 200, "login of {email} failed: {body}");
        body
    }

    pub async fn access_token(&self, email: &str, password: &str) -> String {
        self.login(email, password).await["access_token"].as_str().unwrap().to_owned()
    }

    /// The bootstrap owner's token and the default tenant's id.
    pub async fn owner(&self) -> (String, String) {
        let token = self.access_token(OWNER_EMAIL, PASSWORD).await;
        let (_, me) = self.get("/api/v1/me", &token).await;
        let tenant = me["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["tenant_slug"] == "default")
            .and_then(|m| m["tenant_id"].as_str())
            .expect("the bootstrap tenant")
            .to_owned();
        (token, tenant)
    }

    /// Creates an account for `email` with [`PASSWORD`], as the operator's
    /// CLI does (an invitation never creates one).
    pub async fn create_account(&self, email: &str) {
        let user = marketer_control_plane::store::NewUser {
            id: marketer_control_plane::domain::new_id(),
            email: Email::parse(email).expect("an e-mail address"),
            display_name: marketer_control_plane::domain::Name::parse("Test User").unwrap(),
            password_hash: marketer_control_plane::auth::password::hash(Password::parse(PASSWORD).unwrap())
                .await
                .unwrap(),
        };
        self.db
            .store
            .create_user(&user, &fixtures::audit("user.create", None))
            .await
            .expect("create the account");
    }

    /// Invites `email` with `role` into `tenant` (as `admin_token`); the
    /// operator creates the account; its owner signs in and accepts. Returns
    /// the new user's access token and id.
    pub async fn add_user(
        &self,
        admin_token: &str,
        tenant: &str,
        email: &str,
        role: &str,
    ) -> (String, String) {
        let (status, invitation) = self
            .post(
                &format!("/api/v1/tenants/{tenant}/invitations"),
                admin_token,
                serde_json::json!({ "email": email, "role": role }),
            )
            .await;
        assert_eq!(status, 201, "{invitation}");
        self.create_account(email).await;
        let token = self.access_token(email, PASSWORD).await;
        let (status, accepted) = self
            .post("/api/v1/invitations/accept", &token, serde_json::json!({ "token": invitation["token"] }))
            .await;
        assert_eq!(status, 200, "{accepted}");
        (token, accepted["user"]["id"].as_str().unwrap().to_owned())
    }
}

impl TestServer {
    /// Reports `activity`'s queued run as generated with `result`, through
    /// the store, as `agent` (enrolled in the tenant) would over the tunnel.
    pub async fn generated(
        &self,
        tenant: uuid::Uuid,
        agent: uuid::Uuid,
        activity: uuid::Uuid,
        result: marketer_protocol::activity::ActivityResult,
    ) {
        use marketer_control_plane::domain::Timestamp;
        use marketer_control_plane::store::RecordOutcome;
        use marketer_protocol::{JobEvent, JobEventBody, JobOutcome, JobOutput, JobRef, Usage};
        let store = self.db.store.as_ref();
        let run = store.activity(tenant, activity).await.unwrap().unwrap().run;
        let now = Timestamp::now();
        // The lease outlives the test's two events: a lease ending `now`
        // would let the server's sweep expire it between them.
        let lease_until = now + time::Duration::minutes(1);
        let claim = store.claim_job(run.id, agent, now, lease_until).await.unwrap().unwrap();
        let lease = JobRef { job_id: claim.job.id, epoch: u64::try_from(claim.job.epoch).unwrap() };
        let outcome = JobOutcome::Succeeded {
            output: JobOutput::Activity { result: Box::new(result) },
            usage: Usage::default(),
        };
        for (seq, body) in [(1, JobEventBody::Started), (2, JobEventBody::Finished { outcome })] {
            let recorded = store
                .record_job_events(
                    agent,
                    &[JobEvent { job: lease, seq, body }],
                    now,
                    lease_until,
                    &RetryPolicy::default(),
                )
                .await
                .unwrap();
            assert!(matches!(recorded[..], [RecordOutcome::Stored { .. }]), "{recorded:?}");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
