//! Assembling and running the server: open the store, load secrets and the
//! agent CA, bootstrap an empty database, then serve the API and the agent
//! gateway until shut down.

use std::sync::Arc;

use anyhow::Context;
use secrecy::SecretBox;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiConfig};
use crate::auth::password;
use crate::auth::tokens::AccessTokens;
use crate::config::{AgentGatewaySettings, Settings};
use crate::domain::{ComplianceMode, Email, Name, Password, Plan, Slug, new_id};
use crate::gateway::{self, CaFiles, CertificateAuthority, FleetTimings, GatewayConfig, GatewayTls};
use crate::metrics::Metrics;
pub use crate::service::EngineSettings;
use crate::service::{AgentSettings, App, AtRest, AuthSettings, RequestMeta, actions, audit_event};
use crate::storage::LocalStorage;
use crate::store::{self, Actor, NewTenant, NewUser, Outcome, Store};

/// Opens the database named in the settings and applies migrations. A data
/// directory that does not exist yet is created readable by the owner only:
/// it holds the database (password and token hashes) and the secrets.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    if !settings.data_dir.exists() {
        crate::secrets::create_private_dir(&settings.data_dir)?;
    }
    store::connect(&settings.database_url)
        .await
        .with_context(|| format!("opening the database {}", settings.database_url))
}

/// Everything `serve` runs.
#[derive(Debug)]
pub struct Runtime {
    pub app: Arc<App>,
    pub ca: Arc<CertificateAuthority>,
    pub tls: GatewayTls,
    pub gateway: GatewayConfig,
}

/// Loads the agent CA: the operator's, or the one in the data directory
/// (created on first use).
pub fn load_ca(
    data_dir: &std::path::Path,
    agents: &AgentGatewaySettings,
) -> anyhow::Result<CertificateAuthority> {
    match &agents.ca {
        Some((certificate, key)) => CertificateAuthority::load_or_create(
            &CaFiles { certificate: certificate.clone(), key: key.clone() },
            false,
        ),
        None => CertificateAuthority::load_or_create(&CaFiles::in_data_dir(data_dir), true),
    }
}

/// The gateway URL agents use: the configured one, or this host's name and
/// the gateway's port.
pub fn public_url(agents: &AgentGatewaySettings, gateway_port: u16) -> String {
    agents.public_url.clone().unwrap_or_else(|| {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let host = if host.is_empty() { "localhost".to_owned() } else { host };
        format!("https://{host}:{gateway_port}")
    })
}

/// The gateway's TLS identity: the operator's certificate, or one the CA
/// issues now for the public host and this machine's names.
pub fn gateway_tls(
    ca: &CertificateAuthority,
    agents: &AgentGatewaySettings,
    public_url: &str,
) -> anyhow::Result<GatewayTls> {
    match &agents.tls {
        Some((chain, key)) => GatewayTls::supplied(ca, chain, key),
        None => {
            let host = public_url
                .trim_start_matches("https://")
                .split('/')
                .next()
                .map(|authority| match authority.rsplit_once(':') {
                    Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
                    _ => authority,
                })
                .unwrap_or("localhost");
            GatewayTls::issued(ca, &gateway::server_names(host, &agents.tls_names))
        }
    }
}

/// The server's secret material.
#[derive(Debug)]
pub struct Secrets {
    /// Signs access tokens.
    pub jwt: SecretBox<Vec<u8>>,
    /// Derives the key that seals secrets at rest (cloud API keys).
    pub data: SecretBox<Vec<u8>>,
}

impl Secrets {
    pub fn load(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            jwt: crate::secrets::jwt_key(&settings.data_dir, settings.jwt_secret_file.as_deref())?,
            data: crate::secrets::data_key(&settings.data_dir, settings.data_key_file.as_deref())?,
        })
    }
}

/// Builds the runtime from its parts; `gateway_port` is the port the
/// gateway listener actually bound (it may have been 0). Uploaded files go
/// under `data_dir/files`.
pub fn assemble(
    store: Arc<dyn Store>,
    data_dir: &std::path::Path,
    secrets: &Secrets,
    ca: CertificateAuthority,
    agents: &AgentGatewaySettings,
    engines: EngineSettings,
    gateway_port: u16,
) -> anyhow::Result<Runtime> {
    let jobs = engines.jobs;
    let public_url = public_url(agents, gateway_port);
    let tls = gateway_tls(&ca, agents, &public_url)?;
    let auth = AuthSettings::default();
    let tokens = AccessTokens::new(&secrets.jwt, auth.access_token_ttl);
    let data_key = Arc::new(crate::cloud::DataKey::derive(&secrets.data)?);
    let agent_settings = AgentSettings {
        public_url,
        anchor_pem: tls.anchor_pem.clone(),
        anchor_sha256: tls.anchor_sha256,
        timings: FleetTimings {
            heartbeat_interval: agents.heartbeat_interval,
            offline_grace: agents.offline_grace,
            lease_grace: jobs.lease_grace,
        },
    };
    let at_rest = AtRest { data_key, files: Arc::new(LocalStorage::new(data_dir.join("files"))) };
    let metrics = Arc::new(Metrics::new());
    if let Some(not_after) = crate::gateway::ca::not_after(ca.certificate_der().as_ref()) {
        metrics.certificate_expires("agent_ca", not_after);
    }
    if let Some(not_after) = tls.not_after {
        metrics.certificate_expires("gateway", not_after);
    }
    let app = Arc::new(App::new(store, metrics, tokens, auth, agent_settings, engines, at_rest)?);
    let gateway = GatewayConfig {
        cert_lifetime: time::Duration::try_from(agents.cert_lifetime)
            .context("agent certificate lifetime")?,
        transcript: agents.transcript.as_deref().map(gateway::transcript::Transcript::open).transpose()?,
        ..GatewayConfig::default()
    };
    Ok(Runtime { app, ca: Arc::new(ca), tls, gateway })
}

/// Builds the runtime from settings.
pub async fn build(settings: &Settings, gateway_port: u16) -> anyhow::Result<Runtime> {
    let store = open_store(settings).await?;
    let secrets = Secrets::load(settings)?;
    let ca = load_ca(&settings.data_dir, &settings.agents)?;
    let mut runtime = assemble(
        store,
        &settings.data_dir,
        &secrets,
        ca,
        &settings.agents,
        EngineSettings {
            jobs: settings.jobs,
            publishing: settings.publishing.clone(),
            mail: settings.mail.clone(),
        },
        gateway_port,
    )?;
    if let Some(limit) = settings.max_connections_per_address {
        runtime.gateway.connections.per_address = limit;
    }
    Ok(runtime)
}

/// The first-run account, from `MARKETER_BOOTSTRAP_EMAIL` and
/// `MARKETER_BOOTSTRAP_PASSWORD`, or generated.
#[derive(Debug)]
pub struct BootstrapAccount {
    pub email: Email,
    pub password: Password,
    pub generated_password: bool,
}

pub const BOOTSTRAP_EMAIL_ENV: &str = "MARKETER_BOOTSTRAP_EMAIL";
pub const BOOTSTRAP_PASSWORD_ENV: &str = "MARKETER_BOOTSTRAP_PASSWORD";

impl BootstrapAccount {
    pub fn from_env() -> anyhow::Result<Self> {
        let email = match std::env::var(BOOTSTRAP_EMAIL_ENV) {
            Ok(v) => Email::parse(&v).map_err(|e| anyhow::anyhow!("{BOOTSTRAP_EMAIL_ENV} {e}"))?,
            Err(_) => Email::parse("admin@marketer.localhost").map_err(|e| anyhow::anyhow!("{e}"))?,
        };
        match std::env::var(BOOTSTRAP_PASSWORD_ENV) {
            Ok(v) => Ok(Self {
                email,
                password: Password::parse(&v).map_err(|e| anyhow::anyhow!("{BOOTSTRAP_PASSWORD_ENV} {e}"))?,
                generated_password: false,
            }),
            Err(_) => Ok(Self { email, password: Password::generate(), generated_password: true }),
        }
    }
}

/// On an empty database, creates the "Default" tenant and its owner. Returns
/// whether it did. The generated password, if any, is printed to standard
/// output once and never logged.
pub async fn bootstrap(app: &App, account: BootstrapAccount) -> anyhow::Result<bool> {
    if app.store.has_users().await? {
        return Ok(false);
    }
    let tenant = NewTenant {
        id: new_id(),
        name: Name::parse("Default").map_err(|e| anyhow::anyhow!("{e}"))?,
        slug: Slug::parse("default").map_err(|e| anyhow::anyhow!("{e}"))?,
        plan: Plan::Free,
        compliance_mode: ComplianceMode::Standard,
    };
    let owner = NewUser {
        id: new_id(),
        email: account.email.clone(),
        display_name: Name::parse("Administrator").map_err(|e| anyhow::anyhow!("{e}"))?,
        password_hash: password::hash(account.password.clone()).await?,
    };
    let event = audit_event(
        Some(tenant.id),
        Actor::System { name: "bootstrap".into() },
        &RequestMeta::default(),
        actions::BOOTSTRAP,
        Outcome::Success,
    )
    .resource("tenant", tenant.id)
    .details(serde_json::json!({ "owner": owner.email, "owner_id": owner.id }));
    let created = app.store.bootstrap(&tenant, &owner, &event).await?;
    if created {
        tracing::info!(email = %account.email, "created the first tenant and its owner");
        println!("\nFirst start: created the tenant \"Default\" and its owner account.");
        println!("  e-mail:   {}", account.email);
        if account.generated_password {
            println!("  password: {}", account.password.expose());
            println!("This password is shown only now. Sign in with POST /api/v1/auth/login.\n");
        } else {
            println!("  password: the value of {BOOTSTRAP_PASSWORD_ENV}\n");
        }
    }
    Ok(created)
}

/// Serves the API on `api` and the agent gateway on `gateway` until
/// `shutdown` is cancelled, then drains in-flight requests for at most
/// `grace`.
pub async fn serve(
    runtime: Runtime,
    config: ApiConfig,
    api: TcpListener,
    gateway: TcpListener,
    shutdown: CancellationToken,
    grace: std::time::Duration,
) -> anyhow::Result<()> {
    let Runtime { app, ca, tls, gateway: gateway_config } = runtime;
    let router = api::router(app.clone(), config.clone());
    tracing::info!(address = %api.local_addr()?, backend = %app.store.backend(), "serving the API");
    let background = tokio::spawn(app.hub.clone().run(app.store.clone(), shutdown.clone()));
    let scheduler = tokio::spawn(app.jobs.clone().run(shutdown.clone()));
    let cluster = tokio::spawn(crate::cluster::run(
        app.cluster.clone(),
        app.jobs.clone(),
        app.hub.clone(),
        shutdown.clone(),
    ));
    let cloud = tokio::spawn(app.cloud.clone().run(shutdown.clone()));
    let publisher = tokio::spawn(app.publisher.clone().run(shutdown.clone()));
    let notifier = tokio::spawn(app.notifier.clone().run(shutdown.clone()));
    let exports = tokio::spawn(app.exports.clone().run(shutdown.clone()));
    let gateway_task =
        tokio::spawn(gateway::serve(app.clone(), ca, tls, gateway_config, gateway, shutdown.clone()));
    let closing = app.closing.clone();
    let streams_end = shutdown.clone();
    tokio::spawn(async move {
        streams_end.cancelled().await;
        closing.cancel();
    });
    let limits = config.connections;
    let metrics = app.metrics.clone();
    let server = crate::listener::serve_http(api, router, limits, shutdown.clone(), move |address| {
        metrics.connection_refused("api");
        tracing::debug!(%address, "refused an API connection: the address holds its limit");
    });
    let drained = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    let result = tokio::select! {
        () = server => Ok(()),
        () = drained => {
            tracing::warn!(?grace, "shutdown grace period over; dropping open connections");
            Ok(())
        }
    };
    shutdown.cancel();
    match gateway_task.await {
        Ok(Err(e)) => tracing::error!(error = %e, "the agent gateway failed"),
        Err(e) => tracing::error!(error = %e, "the agent gateway task panicked"),
        Ok(Ok(())) => {}
    }
    let _ = background.await;
    let _ = scheduler.await;
    let _ = cluster.await;
    let _ = cloud.await;
    let _ = publisher.await;
    let _ = notifier.await;
    let _ = exports.await;
    app.store.close().await;
    tracing::info!("stopped");
    result
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}
