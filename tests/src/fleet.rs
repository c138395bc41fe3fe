//! A control plane process with its owner signed in and a fake Ollama:
//! the setting of the end-to-end tests of agents and jobs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::ollama::{FakeModel, FakeOllama};
use crate::{AgentHost, AgentProcess, Api, ServerOptions, ServerProcess, eventually};

pub const EMAIL: &str = "ops@example.com";
pub const PASSWORD: &str = "a long bootstrap password";

/// A control plane process, its owner's session, and a fake Ollama.
#[derive(Debug)]
pub struct Fleet {
    pub server: Option<ServerProcess>,
    pub options: ServerOptions,
    pub data: tempfile::TempDir,
    pub api: Api,
    pub ollama: FakeOllama,
}

impl Fleet {
    pub async fn start(configure: impl FnOnce(ServerOptions) -> ServerOptions) -> Self {
        let data = tempfile::tempdir().unwrap();
        let options = configure(
            ServerOptions::new(data.path())
                .env("MARKETER_BOOTSTRAP_EMAIL", EMAIL)
                .env("MARKETER_BOOTSTRAP_PASSWORD", PASSWORD),
        );
        let server = ServerProcess::spawn(&options);
        let api = Api::login(&server.base_url, EMAIL, PASSWORD).await;
        let ollama =
            FakeOllama::start(vec![FakeModel::new("llama3.2:3b"), FakeModel::new("nomic-embed-text:latest")])
                .await;
        Self { server: Some(server), options, data, api, ollama }
    }

    pub fn server(&self) -> &ServerProcess {
        self.server.as_ref().expect("the server is running")
    }

    pub async fn call(&self, method: reqwest::Method, rest: &str, body: Option<Value>) -> (u16, Value) {
        self.api.call(method, &self.api.tenant_path(rest), body).await
    }

    /// A new person in tenant `tenant` with `role`, as it happens in
    /// production: invited by the fleet's owner, the account created by the
    /// operator's CLI, then signed in and accepting the invitation. Returns
    /// their signed-in client.
    pub async fn add_member(&self, tenant: &str, email: &str, name: &str, role: &str, password: &str) -> Api {
        let (status, invitation) = self
            .api
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/tenants/{tenant}/invitations"),
                Some(serde_json::json!({ "email": email, "role": role })),
            )
            .await;
        assert_eq!(status, 201, "{invitation}");
        // The operator's CLI on the server's own database.
        let database =
            self.options.env.iter().find(|(k, _)| k == "MARKETER_DATABASE_URL").map(|(_, v)| v.as_str());
        let created = crate::server_command_on(
            &["admin", "create-user", "--email", email, "--name", name, "--password-stdin"],
            self.data.path(),
            database,
            Some(&format!("{password}\n")),
        );
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
        let token = Api::login_token(&self.server().base_url, email, password).await;
        let response = reqwest::Client::new()
            .post(self.server().url("/api/v1/invitations/accept"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "token": invitation["token"] }))
            .send()
            .await
            .expect("accept request");
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
        Api::login(&self.server().base_url, email, password).await
    }

    /// A logo for the tenant's flyers: a file the control plane stores
    /// under the tenant's folder.
    pub async fn upload_logo(&self) {
        let path = self.api.tenant_path("/real-estate-settings/logo");
        let (status, body) = self.api.upload(&path, "logo.jpg", crate::files::photo(64, 64)).await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn enrollment_token(&self, body: Value) -> Value {
        let (status, created) = self.call(reqwest::Method::POST, "/enrollment-tokens", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created
    }

    pub async fn agents(&self) -> Vec<Value> {
        let (status, page) = self.call(reqwest::Method::GET, "/agents", None).await;
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().unwrap().clone()
    }

    pub async fn agent(&self, id: &str) -> Value {
        let (status, agent) = self.call(reqwest::Method::GET, &format!("/agents/{id}"), None).await;
        assert_eq!(status, 200, "{agent}");
        agent
    }

    pub async fn events(&self, id: &str) -> Vec<Value> {
        let (_, page) =
            self.call(reqwest::Method::GET, &format!("/agents/{id}/events?limit=200"), None).await;
        page["items"].as_array().unwrap().clone()
    }

    pub async fn event_kinds(&self, id: &str) -> Vec<String> {
        let mut kinds: Vec<String> =
            self.events(id).await.iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
        kinds.reverse();
        kinds
    }

    /// Waits until the agent has connected at least `count` times.
    pub async fn wait_connections(&self, id: &str, count: usize) {
        eventually(Duration::from_secs(30), &format!("connection number {count}"), || async {
            let kinds = self.event_kinds(id).await;
            (kinds.iter().filter(|k| *k == "connected").count() >= count).then_some(())
        })
        .await;
    }

    /// Waits until the agent's fleet state is `state`.
    pub async fn wait_state(&self, id: &str, state: &str, limit: Duration) -> Value {
        eventually(limit, &format!("agent {id} to be {state}"), || async {
            let agent = self.agent(id).await;
            (agent["state"] == state).then_some(agent)
        })
        .await
    }

    pub fn host(&self, home: &std::path::Path) -> AgentHost {
        AgentHost::new(home, &self.ollama.url())
    }

    /// Enrolls a host with a fresh token and returns its agent id.
    pub async fn enroll(&self, host: &AgentHost, extra: &[&str]) -> String {
        let created = self.enrollment_token(json!({})).await;
        host.enroll(&self.server().gateway_url, created["token"].as_str().unwrap(), extra).await;
        agent_id(host)
    }

    pub fn kill_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
    }

    pub fn restart_server(&mut self) {
        self.kill_server();
        self.server = Some(ServerProcess::spawn(&self.options));
        self.api.reconnect();
    }
}

pub fn agent_id(host: &AgentHost) -> String {
    let config = std::fs::read_to_string(host.home.join("agent.toml")).unwrap();
    config
        .lines()
        .find_map(|l| l.strip_prefix("agent_id = ").map(|v| v.trim_matches('"').to_owned()))
        .expect("agent_id in agent.toml")
}

/// Server settings for job tests: fast heartbeats, a 3 s lease grace, quick
/// retries.
pub fn job_timings(options: ServerOptions) -> ServerOptions {
    options.fast_heartbeats().arg("--job-lease-grace-seconds").arg("3").arg("--job-retry-base-ms").arg("100")
}

/// An enrolled, running agent.
#[derive(Debug)]
pub struct Agent {
    pub id: String,
    pub host: AgentHost,
    pub process: Option<AgentProcess>,
    _home: tempfile::TempDir,
}

impl Agent {
    /// Enrolls a new agent host against the fake Ollama, runs it with
    /// `extra` arguments, and waits until it is online.
    pub async fn start(fleet: &Fleet, extra: &[&str]) -> Self {
        Self::start_with(fleet, extra, &[]).await
    }

    pub async fn start_with(fleet: &Fleet, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().unwrap();
        let mut host = fleet.host(home.path());
        for (key, value) in env {
            host = host.env(key, value);
        }
        let id = fleet.enroll(&host, &[]).await;
        let process = host.spawn_run(extra);
        fleet.wait_state(&id, "online", Duration::from_secs(30)).await;
        Self { id, host, process: Some(process), _home: home }
    }

    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        self.process = Some(self.host.spawn_run(extra));
    }
}
