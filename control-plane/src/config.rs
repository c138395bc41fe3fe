//! Settings of `marketer-server`, layered: built-in defaults < TOML config
//! file < `MARKETER_*` environment variables < command-line flags.
//!
//! clap already gives flags precedence over their `env` variables; this module
//! adds the file and the defaults underneath.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::store::DatabaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines for a terminal.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Flags every subcommand accepts.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// TOML configuration file.
    #[arg(long, env = "MARKETER_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the server keeps its SQLite database and generated secrets
    /// [default: the platform's data directory, e.g. ~/.local/share/marketer].
    #[arg(long, env = "MARKETER_DATA_DIR", global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// sqlite://PATH or postgres://USER:PASSWORD@HOST/DB
    /// [default: sqlite in the data directory].
    #[arg(long, env = "MARKETER_DATABASE_URL", global = true, hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Log format [default: human].
    #[arg(long, env = "MARKETER_LOG_FORMAT", global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `marketer_control_plane=debug,info` [default: info].
    #[arg(long, env = "MARKETER_LOG_LEVEL", global = true, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// The agent gateway's address as agents reach it, used in install
    /// commands and the gateway certificate [default: https://<hostname>:<agent port>].
    #[arg(long, env = "MARKETER_AGENT_PUBLIC_URL", global = true, value_name = "URL")]
    pub agent_public_url: Option<String>,
    /// The agent CA certificate (PEM), to supply your own CA [default: generated into the data directory].
    #[arg(
        long,
        env = "MARKETER_AGENT_CA_CERT",
        global = true,
        value_name = "FILE",
        requires = "agent_ca_key"
    )]
    pub agent_ca_cert: Option<PathBuf>,
    /// The agent CA private key (PEM, mode 0600).
    #[arg(
        long,
        env = "MARKETER_AGENT_CA_KEY",
        global = true,
        value_name = "FILE",
        requires = "agent_ca_cert"
    )]
    pub agent_ca_key: Option<PathBuf>,
}

/// Flags of `serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address of the API and UI [default: 127.0.0.1:8080].
    #[arg(long, env = "MARKETER_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "MARKETER_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest document upload in bytes [default: 26214400, 25 MiB].
    #[arg(long, env = "MARKETER_MAX_UPLOAD_BYTES", value_name = "BYTES")]
    pub max_upload_bytes: Option<usize>,
    /// Trust X-Forwarded-For for client addresses (only behind a reverse proxy).
    #[arg(long, env = "MARKETER_TRUST_PROXY_HEADERS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub trust_proxy_headers: Option<bool>,
    /// Connections one client address may hold open on the API and on the
    /// agent gateway; more are closed on arrival. 0: no limit. [default:
    /// 256; on the API 0 with --trust-proxy-headers, where every client
    /// has the proxy's address]
    #[arg(long, env = "MARKETER_MAX_CONNECTIONS_PER_ADDRESS", value_name = "COUNT")]
    pub max_connections_per_address: Option<usize>,
    /// File holding the bearer token Prometheus sends to scrape /metrics
    /// (16 characters or more). Without it, /metrics answers clients on
    /// this host only.
    #[arg(long, env = "MARKETER_METRICS_TOKEN_FILE", value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// File holding the bearer token the mail system sends with bounce
    /// messages to POST /api/v1/mail/bounces (16 characters or more).
    /// Without it, bounces that arrive after sending are not read.
    #[arg(long, env = "MARKETER_BOUNCE_TOKEN_FILE", value_name = "FILE")]
    pub bounce_token_file: Option<PathBuf>,
    /// File holding the JWT signing secret (at least 32 bytes). Give every
    /// replica the same one. [default: generated into the data directory]
    #[arg(long, env = "MARKETER_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// File holding the secret the data key (which encrypts cloud API keys
    /// at rest) is derived from, at least 32 bytes. Give every replica the
    /// same one; losing it loses those keys. [default: generated into the
    /// data directory]
    #[arg(long, env = "MARKETER_DATA_KEY_FILE", value_name = "FILE")]
    pub data_key_file: Option<PathBuf>,
    /// Address of the agent gateway (a TLS listener of its own) [default: 0.0.0.0:8443].
    #[arg(long, env = "MARKETER_AGENT_LISTEN", value_name = "ADDR")]
    pub agent_listen: Option<SocketAddr>,
    /// Lifetime of agent certificates in seconds [default: 2592000, 30 days].
    #[arg(long, env = "MARKETER_AGENT_CERT_LIFETIME_SECONDS", value_name = "SECONDS")]
    pub agent_cert_lifetime_seconds: Option<u64>,
    /// How often agents send heartbeats, in milliseconds [default: 10000].
    #[arg(long, env = "MARKETER_AGENT_HEARTBEAT_MS", value_name = "MS")]
    pub agent_heartbeat_ms: Option<u64>,
    /// Extra silence tolerated before an agent is offline, beyond two missed
    /// heartbeats, in milliseconds [default: 5000].
    #[arg(long, env = "MARKETER_AGENT_OFFLINE_GRACE_MS", value_name = "MS")]
    pub agent_offline_grace_ms: Option<u64>,
    /// The gateway's certificate chain (PEM), ending with the certificate
    /// agents should pin [default: issued by the agent CA].
    #[arg(long, env = "MARKETER_AGENT_TLS_CERT", value_name = "FILE", requires = "agent_tls_key")]
    pub agent_tls_cert: Option<PathBuf>,
    /// The gateway's private key (PEM, mode 0600).
    #[arg(long, env = "MARKETER_AGENT_TLS_KEY", value_name = "FILE", requires = "agent_tls_cert")]
    pub agent_tls_key: Option<PathBuf>,
    /// Append every message agents send to this file (JSON lines), to audit
    /// what crosses the tunnel [default: not recorded].
    #[arg(long, env = "MARKETER_AGENT_TRANSCRIPT", value_name = "FILE")]
    pub agent_transcript: Option<PathBuf>,
    /// How long a job stays with a disconnected agent before it goes to
    /// another one, in seconds [default: 60].
    #[arg(long, env = "MARKETER_JOB_LEASE_GRACE_SECONDS", value_name = "SECONDS")]
    pub job_lease_grace_seconds: Option<u64>,
    /// Delay before a job's first retry, doubling per attempt up to a minute,
    /// in milliseconds [default: 2000].
    #[arg(long, env = "MARKETER_JOB_RETRY_BASE_MS", value_name = "MS")]
    pub job_retry_base_ms: Option<u64>,
    /// How often the job timers run and the queue is read regardless of
    /// signals, in milliseconds [default: 1000]. With several replicas on
    /// PostgreSQL, work reaches other replicas at once through
    /// `LISTEN/NOTIFY`; this sweep is the safety net for a lost signal.
    #[arg(long, env = "MARKETER_JOB_SWEEP_INTERVAL_MS", value_name = "MS")]
    pub job_sweep_interval_ms: Option<u64>,
    /// On SIGTERM, how long to keep serving while `/readyz` says 503, so a
    /// load balancer takes this replica out before it stops accepting, in
    /// seconds [default: 0; behind a load balancer, a little more than its
    /// health check needs to fail, e.g. 5].
    #[arg(long, env = "MARKETER_SHUTDOWN_DRAIN_SECONDS", value_name = "SECONDS")]
    pub shutdown_drain_seconds: Option<u64>,
    /// This server's address as browsers reach it, for the OAuth redirect
    /// URIs registered with the social platforms [default: http://<listen>].
    #[arg(long, env = "MARKETER_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// The client id of Marketer's X app.
    #[arg(long, env = "MARKETER_X_CLIENT_ID", value_name = "ID")]
    pub x_client_id: Option<String>,
    /// The client secret of Marketer's X app (prefer the environment
    /// variable: flags show in process lists).
    #[arg(long, env = "MARKETER_X_CLIENT_SECRET", hide_env_values = true, value_name = "SECRET")]
    pub x_client_secret: Option<String>,
    /// X's API [default: https://api.x.com].
    #[arg(long, env = "MARKETER_X_API_URL", value_name = "URL")]
    pub x_api_url: Option<String>,
    /// X's authorisation page [default: https://x.com/i/oauth2/authorize].
    #[arg(long, env = "MARKETER_X_AUTHORIZE_URL", value_name = "URL")]
    pub x_authorize_url: Option<String>,
    /// The client id of Marketer's LinkedIn app.
    #[arg(long, env = "MARKETER_LINKEDIN_CLIENT_ID", value_name = "ID")]
    pub linkedin_client_id: Option<String>,
    /// The client secret of Marketer's LinkedIn app (prefer the environment variable).
    #[arg(long, env = "MARKETER_LINKEDIN_CLIENT_SECRET", hide_env_values = true, value_name = "SECRET")]
    pub linkedin_client_secret: Option<String>,
    /// LinkedIn's API [default: https://api.linkedin.com].
    #[arg(long, env = "MARKETER_LINKEDIN_API_URL", value_name = "URL")]
    pub linkedin_api_url: Option<String>,
    /// LinkedIn's OAuth host [default: https://www.linkedin.com].
    #[arg(long, env = "MARKETER_LINKEDIN_OAUTH_URL", value_name = "URL")]
    pub linkedin_oauth_url: Option<String>,
    /// The LinkedIn app has the Community Management API, so connecting a
    /// member also connects the organisation pages they administer [default: false].
    #[arg(long, env = "MARKETER_LINKEDIN_ORGANIZATIONS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub linkedin_organizations: Option<bool>,
    /// The app id of Marketer's Meta app (Facebook Pages).
    #[arg(long, env = "MARKETER_META_APP_ID", value_name = "ID")]
    pub meta_app_id: Option<String>,
    /// The app secret of Marketer's Meta app (prefer the environment variable).
    #[arg(long, env = "MARKETER_META_APP_SECRET", hide_env_values = true, value_name = "SECRET")]
    pub meta_app_secret: Option<String>,
    /// Meta's Graph API with its version [default: https://graph.facebook.com/v25.0].
    #[arg(long, env = "MARKETER_META_GRAPH_URL", value_name = "URL")]
    pub meta_graph_url: Option<String>,
    /// Facebook Login's dialog [default: https://www.facebook.com/v25.0/dialog/oauth].
    #[arg(long, env = "MARKETER_META_AUTHORIZE_URL", value_name = "URL")]
    pub meta_authorize_url: Option<String>,
    /// A public Bluesky AppView to read posts' counts from, e.g.
    /// https://public.api.bsky.app [default: through each account's PDS].
    #[arg(long, env = "MARKETER_BLUESKY_APPVIEW_URL", value_name = "URL")]
    pub bluesky_appview_url: Option<String>,
    /// Accept http:// Mastodon instances (tests only) [default: false].
    #[arg(long, env = "MARKETER_SOCIAL_ALLOW_INSECURE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub social_allow_insecure: Option<bool>,
    /// Time limit of one request to a social platform, in milliseconds [default: 30000].
    #[arg(long, env = "MARKETER_SOCIAL_TIMEOUT_MS", value_name = "MS")]
    pub social_timeout_ms: Option<u64>,
    /// How long after a publish with an unknown outcome the platform is
    /// asked whether the post exists, in milliseconds [default: 30000].
    #[arg(long, env = "MARKETER_PUBLISH_RECONCILE_DELAY_MS", value_name = "MS")]
    pub publish_reconcile_delay_ms: Option<u64>,
    /// How long a replica holds a post it is publishing before another may
    /// take it over, in seconds [default: 120].
    #[arg(long, env = "MARKETER_PUBLISH_LEASE_SECONDS", value_name = "SECONDS")]
    pub publish_lease_seconds: Option<u64>,
    /// How long after publishing a post's metrics are first read, in
    /// seconds [default: 3600]. Then hourly to a day, daily to a week,
    /// weekly to 90 days.
    #[arg(long, env = "MARKETER_ANALYTICS_FIRST_READING_SECONDS", value_name = "SECONDS")]
    pub analytics_first_reading_seconds: Option<u64>,
    /// How often each replica looks for posts whose metrics are due, in
    /// milliseconds [default: 30000].
    #[arg(long, env = "MARKETER_ANALYTICS_POLL_MS", value_name = "MS")]
    pub analytics_poll_ms: Option<u64>,
    /// How often each connected account's mentions and replies are read
    /// into the inbox, in milliseconds [default: 120000].
    #[arg(long, env = "MARKETER_INBOX_POLL_MS", value_name = "MS")]
    pub inbox_poll_ms: Option<u64>,
    /// The Ollama model that classifies inbox items on the agents
    /// [default: llama3.2].
    #[arg(long, env = "MARKETER_INBOX_MODEL", value_name = "MODEL")]
    pub inbox_model: Option<String>,
    /// The SMTP server e-mail goes through (no host: e-mail is off, and
    /// notifications stay in the app).
    #[arg(long, env = "MARKETER_SMTP_HOST", value_name = "HOST")]
    pub smtp_host: Option<String>,
    /// Its port [default: 587 with starttls, 465 with tls, 25 with none].
    #[arg(long, env = "MARKETER_SMTP_PORT", value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// How the connection is protected: `starttls` (required, not
    /// opportunistic), `tls` (implicit TLS), or `none` (a trusted local
    /// relay only) [default: starttls].
    #[arg(long, env = "MARKETER_SMTP_TLS", value_name = "MODE")]
    pub smtp_tls: Option<crate::notify::SmtpTls>,
    /// The SMTP user name, if the server wants one.
    #[arg(long, env = "MARKETER_SMTP_USERNAME", value_name = "NAME")]
    pub smtp_username: Option<String>,
    /// The SMTP password (prefer the environment variable: flags show in
    /// process lists).
    #[arg(long, env = "MARKETER_SMTP_PASSWORD", hide_env_values = true, value_name = "PASSWORD")]
    pub smtp_password: Option<String>,
    /// The sender of every message [default: Marketer <marketer@localhost>].
    #[arg(long, env = "MARKETER_SMTP_FROM", value_name = "ADDRESS")]
    pub smtp_from: Option<String>,
    /// A PEM file of CA certificates the SMTP server's certificate may chain
    /// to, besides the system's.
    #[arg(long, env = "MARKETER_SMTP_CA_FILE", value_name = "FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Time limit of each SMTP step, in milliseconds [default: 30000].
    #[arg(long, env = "MARKETER_SMTP_TIMEOUT_MS", value_name = "MS")]
    pub smtp_timeout_ms: Option<u64>,
    /// How often the outbox is looked at, in milliseconds [default: 1000].
    #[arg(long, env = "MARKETER_MAIL_POLL_MS", value_name = "MS")]
    pub mail_poll_ms: Option<u64>,
    /// How often the notifier looks for people in their digest hour
    /// (08:00 to 09:00 local) whose daily digest is due, in milliseconds
    /// [default: 60000].
    #[arg(long, env = "MARKETER_MAIL_DIGEST_CHECK_MS", value_name = "MS")]
    pub mail_digest_check_ms: Option<u64>,
    /// Let webhooks and single sign-on's identity providers (every address
    /// an organisation chooses) be loopback, private and link-local
    /// addresses (on the operator's own network, or tests) [default: false].
    #[arg(long, env = "MARKETER_WEBHOOK_ALLOW_PRIVATE", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub webhook_allow_private: Option<bool>,
    /// Accept http:// webhook and identity provider URLs, not only https://
    /// [default: false].
    #[arg(long, env = "MARKETER_WEBHOOK_ALLOW_HTTP", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub webhook_allow_http: Option<bool>,
    /// Time limit of one webhook attempt, in milliseconds [default: 10000].
    #[arg(long, env = "MARKETER_WEBHOOK_TIMEOUT_MS", value_name = "MS")]
    pub webhook_timeout_ms: Option<u64>,
    /// The unit of the webhooks' retry schedule (1, 5, 30, 120, 300, 600
    /// and 600 units after each failure), in milliseconds [default: 60000].
    #[arg(long, env = "MARKETER_WEBHOOK_RETRY_BASE_MS", value_name = "MS")]
    pub webhook_retry_base_ms: Option<u64>,
    /// API requests per minute per caller in an organisation, for the free,
    /// pro and enterprise plans (`0`: no limit for that plan), or `off`
    /// [default: 100,1000,10000].
    #[arg(long, env = "MARKETER_RATE_LIMITS", value_name = "FREE,PRO,ENTERPRISE")]
    pub rate_limits: Option<String>,
}

/// The optional TOML file. Unknown keys are errors, so a typo is not
/// silently ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    listen: Option<SocketAddr>,
    max_body_bytes: Option<usize>,
    max_upload_bytes: Option<usize>,
    trust_proxy_headers: Option<bool>,
    max_connections_per_address: Option<usize>,
    metrics_token_file: Option<PathBuf>,
    bounce_token_file: Option<PathBuf>,
    jwt_secret_file: Option<PathBuf>,
    data_key_file: Option<PathBuf>,
    shutdown_timeout_seconds: Option<u64>,
    shutdown_drain_seconds: Option<u64>,
    agent_listen: Option<SocketAddr>,
    agent_public_url: Option<String>,
    agent_ca_cert: Option<PathBuf>,
    agent_ca_key: Option<PathBuf>,
    agent_tls_cert: Option<PathBuf>,
    agent_tls_key: Option<PathBuf>,
    agent_tls_names: Option<Vec<String>>,
    agent_cert_lifetime_seconds: Option<u64>,
    agent_heartbeat_ms: Option<u64>,
    agent_offline_grace_ms: Option<u64>,
    agent_transcript: Option<PathBuf>,
    job_lease_grace_seconds: Option<u64>,
    job_retry_base_ms: Option<u64>,
    job_sweep_interval_ms: Option<u64>,
    public_url: Option<String>,
    x_client_id: Option<String>,
    x_client_secret: Option<String>,
    x_api_url: Option<String>,
    x_authorize_url: Option<String>,
    linkedin_client_id: Option<String>,
    linkedin_client_secret: Option<String>,
    linkedin_api_url: Option<String>,
    linkedin_oauth_url: Option<String>,
    linkedin_organizations: Option<bool>,
    meta_app_id: Option<String>,
    meta_app_secret: Option<String>,
    meta_graph_url: Option<String>,
    meta_authorize_url: Option<String>,
    bluesky_appview_url: Option<String>,
    social_allow_insecure: Option<bool>,
    social_timeout_ms: Option<u64>,
    publish_reconcile_delay_ms: Option<u64>,
    publish_lease_seconds: Option<u64>,
    analytics_first_reading_seconds: Option<u64>,
    analytics_poll_ms: Option<u64>,
    inbox_poll_ms: Option<u64>,
    inbox_model: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<crate::notify::SmtpTls>,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
    smtp_from: Option<String>,
    smtp_ca_file: Option<PathBuf>,
    smtp_timeout_ms: Option<u64>,
    mail_poll_ms: Option<u64>,
    mail_digest_check_ms: Option<u64>,
    webhook_allow_private: Option<bool>,
    webhook_allow_http: Option<bool>,
    webhook_timeout_ms: Option<u64>,
    webhook_retry_base_ms: Option<u64>,
    rate_limits: Option<String>,
}

/// Fully resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub database_url: DatabaseUrl,
    pub log_format: LogFormat,
    pub log_level: String,
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    pub max_upload_bytes: usize,
    pub trust_proxy_headers: bool,
    /// Connections one client address may hold (0: no limit).
    pub max_connections_per_address: Option<usize>,
    /// API requests per minute per caller, by plan.
    pub rate_limits: crate::api::rate_limit::RateLimits,
    pub metrics_token_file: Option<PathBuf>,
    pub bounce_token_file: Option<PathBuf>,
    pub jwt_secret_file: Option<PathBuf>,
    pub data_key_file: Option<PathBuf>,
    pub shutdown_timeout: std::time::Duration,
    /// Serving, unready, before stopping (see `--shutdown-drain-seconds`).
    pub shutdown_drain: std::time::Duration,
    pub agents: AgentGatewaySettings,
    pub jobs: crate::jobs::JobSettings,
    pub publishing: crate::publishing::PublishingConfig,
    pub mail: crate::notify::MailSettings,
}

/// Settings of the agent gateway.
#[derive(Debug, Clone)]
pub struct AgentGatewaySettings {
    pub listen: SocketAddr,
    pub public_url: Option<String>,
    /// Operator-supplied CA (certificate, key); `None`: generated in the data directory.
    pub ca: Option<(PathBuf, PathBuf)>,
    /// Operator-supplied gateway certificate chain and key.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Extra names for the generated gateway certificate.
    pub tls_names: Vec<String>,
    pub cert_lifetime: std::time::Duration,
    pub heartbeat_interval: std::time::Duration,
    pub offline_grace: std::time::Duration,
    /// Where to record every message agents send, if anywhere.
    pub transcript: Option<PathBuf>,
}

pub const DEFAULT_AGENT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8443);

pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

impl Settings {
    pub fn resolve(global: &GlobalArgs, serve: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &global.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let file_pub = file_publishing(&file);
        let mail =
            mail_config(serve, &file, &file_pub, serve.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN))?;
        let data_dir = match global.data_dir.clone().or(file.data_dir) {
            Some(dir) => dir,
            None => default_data_dir()?,
        };
        let database_url = global
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("marketer.db").display()));
        let database_url = DatabaseUrl::new(database_url);
        database_url.backend().map_err(|e| anyhow::anyhow!("{e}"))?;
        let agents = AgentGatewaySettings {
            listen: serve.agent_listen.or(file.agent_listen).unwrap_or(DEFAULT_AGENT_LISTEN),
            public_url: global
                .agent_public_url
                .clone()
                .or(file.agent_public_url)
                .map(|u| u.trim_end_matches('/').to_owned()),
            ca: match pair("agent_ca_cert", global.agent_ca_cert.clone(), global.agent_ca_key.clone())? {
                Some(ca) => Some(ca),
                None => pair("agent_ca_cert", file.agent_ca_cert, file.agent_ca_key)?,
            },
            tls: match pair("agent_tls_cert", serve.agent_tls_cert.clone(), serve.agent_tls_key.clone())? {
                Some(tls) => Some(tls),
                None => pair("agent_tls_cert", file.agent_tls_cert, file.agent_tls_key)?,
            },
            tls_names: file.agent_tls_names.unwrap_or_default(),
            cert_lifetime: std::time::Duration::from_secs(
                serve
                    .agent_cert_lifetime_seconds
                    .or(file.agent_cert_lifetime_seconds)
                    .unwrap_or(30 * 24 * 3600),
            ),
            heartbeat_interval: std::time::Duration::from_millis(
                serve.agent_heartbeat_ms.or(file.agent_heartbeat_ms).unwrap_or(10_000),
            ),
            offline_grace: std::time::Duration::from_millis(
                serve.agent_offline_grace_ms.or(file.agent_offline_grace_ms).unwrap_or(5_000),
            ),
            transcript: serve.agent_transcript.clone().or(file.agent_transcript),
        };
        if let Some(url) = &agents.public_url
            && !url.starts_with("https://")
        {
            bail!("agent_public_url must start with https:// (agents only speak TLS), got {url}");
        }
        if agents.cert_lifetime < std::time::Duration::from_secs(10) {
            bail!("agent_cert_lifetime_seconds must be at least 10");
        }
        if agents.heartbeat_interval < std::time::Duration::from_millis(100) {
            bail!("agent_heartbeat_ms must be at least 100");
        }
        let mut jobs = crate::jobs::JobSettings::default();
        if let Some(seconds) = serve.job_lease_grace_seconds.or(file.job_lease_grace_seconds) {
            if seconds == 0 {
                bail!("job_lease_grace_seconds must be at least 1");
            }
            jobs.lease_grace = std::time::Duration::from_secs(seconds);
        }
        if let Some(ms) = serve.job_retry_base_ms.or(file.job_retry_base_ms) {
            jobs.retry.base = std::time::Duration::from_millis(ms);
        }
        let shutdown_drain = serve.shutdown_drain_seconds.or(file.shutdown_drain_seconds).unwrap_or(0);
        if shutdown_drain > 300 {
            bail!("shutdown_drain_seconds must be at most 300 (five minutes), not {shutdown_drain}");
        }
        let shutdown_drain = std::time::Duration::from_secs(shutdown_drain);
        if let Some(ms) = serve.job_sweep_interval_ms.or(file.job_sweep_interval_ms) {
            if !(50..=600_000).contains(&ms) {
                bail!("job_sweep_interval_ms must be between 50 and 600000 (ten minutes), not {ms}");
            }
            jobs.sweep_interval = std::time::Duration::from_millis(ms);
        }
        let max_body_bytes = serve.max_body_bytes.or(file.max_body_bytes).unwrap_or(1024 * 1024);
        if max_body_bytes < 1024 {
            bail!("max_body_bytes must be at least 1024");
        }
        let max_upload_bytes = serve
            .max_upload_bytes
            .or(file.max_upload_bytes)
            .unwrap_or(crate::service::DEFAULT_MAX_UPLOAD_BYTES);
        if !(1024..=1024 * 1024 * 1024).contains(&max_upload_bytes) {
            bail!("max_upload_bytes must be between 1024 and 1073741824 (1 GiB)");
        }
        let listen = serve.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN);
        let publishing = publishing_config(serve, file_pub, listen)?;
        Ok(Self {
            data_dir,
            database_url,
            log_format: global.log_format.or(file.log_format).unwrap_or(LogFormat::Human),
            log_level: global.log_level.clone().or(file.log_level).unwrap_or_else(|| "info".to_owned()),
            listen,
            max_body_bytes,
            max_upload_bytes,
            trust_proxy_headers: serve.trust_proxy_headers.or(file.trust_proxy_headers).unwrap_or(false),
            max_connections_per_address: serve
                .max_connections_per_address
                .or(file.max_connections_per_address),
            rate_limits: match serve.rate_limits.as_deref().or(file.rate_limits.as_deref()) {
                Some(text) => {
                    crate::api::rate_limit::RateLimits::parse(text).map_err(|e| anyhow::anyhow!(e))?
                }
                None => crate::api::rate_limit::RateLimits::DEFAULT,
            },
            metrics_token_file: serve.metrics_token_file.clone().or(file.metrics_token_file),
            bounce_token_file: serve.bounce_token_file.clone().or(file.bounce_token_file),
            jwt_secret_file: serve.jwt_secret_file.clone().or(file.jwt_secret_file),
            data_key_file: serve.data_key_file.clone().or(file.data_key_file),
            shutdown_timeout: std::time::Duration::from_secs(file.shutdown_timeout_seconds.unwrap_or(30)),
            shutdown_drain,
            agents,
            jobs,
            publishing,
            mail,
        })
    }
}

/// E-mail: the SMTP server (flags over the file), the sender, and the
/// address links in messages start with.
fn mail_config(
    serve: &ServeArgs,
    file: &FileConfig,
    file_pub: &ServeArgs,
    listen: SocketAddr,
) -> anyhow::Result<crate::notify::MailSettings> {
    use crate::notify::{MailSettings, SmtpSettings, SmtpTls};
    let mut mail = MailSettings {
        public_url: serve
            .public_url
            .clone()
            .or(file_pub.public_url.clone())
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned(),
        ..MailSettings::default()
    };
    if let Some(ms) = serve.mail_poll_ms.or(file.mail_poll_ms) {
        if !(50..=60_000).contains(&ms) {
            bail!("mail_poll_ms must be between 50 and 60000, not {ms}");
        }
        mail.poll = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = serve.mail_digest_check_ms.or(file.mail_digest_check_ms) {
        if !(100..=3_600_000).contains(&ms) {
            bail!("mail_digest_check_ms must be between 100 and 3600000, not {ms}");
        }
        mail.digest_check = std::time::Duration::from_millis(ms);
    }
    let hooks = &mut mail.webhooks;
    hooks.allow_private = serve.webhook_allow_private.or(file.webhook_allow_private).unwrap_or(false);
    hooks.allow_http = serve.webhook_allow_http.or(file.webhook_allow_http).unwrap_or(false);
    if let Some(ms) = serve.webhook_timeout_ms.or(file.webhook_timeout_ms) {
        if !(100..=60_000).contains(&ms) {
            bail!("webhook_timeout_ms must be between 100 and 60000, not {ms}");
        }
        hooks.timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = serve.webhook_retry_base_ms.or(file.webhook_retry_base_ms) {
        if !(10..=3_600_000).contains(&ms) {
            bail!("webhook_retry_base_ms must be between 10 and 3600000, not {ms}");
        }
        hooks.retry_base = std::time::Duration::from_millis(ms);
    }
    let Some(host) = serve.smtp_host.clone().or(file.smtp_host.clone()) else {
        return Ok(mail);
    };
    if host.is_empty() || host.contains(['/', ' ', ':']) && host.parse::<std::net::Ipv6Addr>().is_err() {
        bail!("smtp_host must be a host name or an IP address (no scheme, no port), got {host:?}");
    }
    let tls = serve.smtp_tls.or(file.smtp_tls).unwrap_or(SmtpTls::Starttls);
    let port = serve.smtp_port.or(file.smtp_port).unwrap_or(match tls {
        SmtpTls::Starttls => 587,
        SmtpTls::Tls => 465,
        SmtpTls::None => 25,
    });
    if port == 0 {
        bail!("smtp_port must be between 1 and 65535");
    }
    let from_text = serve
        .smtp_from
        .clone()
        .or(file.smtp_from.clone())
        .unwrap_or_else(|| "Marketer <marketer@localhost>".to_owned());
    let from: lettre::message::Mailbox = from_text.parse().map_err(|e| {
        anyhow::anyhow!("smtp_from must be an address like \"Marketer <marketer@example.com>\" ({e})")
    })?;
    let username = serve.smtp_username.clone().or(file.smtp_username.clone());
    let password = serve.smtp_password.clone().or(file.smtp_password.clone());
    if username.is_some() != password.is_some() {
        bail!("smtp_username and smtp_password must be given together");
    }
    if username.is_some() && tls == SmtpTls::None {
        bail!("smtp_username needs smtp_tls = starttls or tls: a password is never sent in the clear");
    }
    let ca_file = serve.smtp_ca_file.clone().or(file.smtp_ca_file.clone());
    let ca_pem = match &ca_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading smtp_ca_file {}", path.display()))?)
        }
        None => None,
    };
    let timeout_ms = serve.smtp_timeout_ms.or(file.smtp_timeout_ms).unwrap_or(30_000);
    if !(100..=300_000).contains(&timeout_ms) {
        bail!("smtp_timeout_ms must be between 100 and 300000, not {timeout_ms}");
    }
    mail.smtp = Some(SmtpSettings {
        host,
        port,
        tls,
        credentials: username.zip(password.map(secrecy::SecretString::from)),
        from,
        ca_pem,
        timeout: std::time::Duration::from_millis(timeout_ms),
    });
    Ok(mail)
}

/// The file's publishing keys, as the flags' type.
fn file_publishing(file: &FileConfig) -> ServeArgs {
    ServeArgs {
        public_url: file.public_url.clone(),
        x_client_id: file.x_client_id.clone(),
        x_client_secret: file.x_client_secret.clone(),
        x_api_url: file.x_api_url.clone(),
        x_authorize_url: file.x_authorize_url.clone(),
        linkedin_client_id: file.linkedin_client_id.clone(),
        linkedin_client_secret: file.linkedin_client_secret.clone(),
        linkedin_api_url: file.linkedin_api_url.clone(),
        linkedin_oauth_url: file.linkedin_oauth_url.clone(),
        linkedin_organizations: file.linkedin_organizations,
        meta_app_id: file.meta_app_id.clone(),
        meta_app_secret: file.meta_app_secret.clone(),
        meta_graph_url: file.meta_graph_url.clone(),
        meta_authorize_url: file.meta_authorize_url.clone(),
        bluesky_appview_url: file.bluesky_appview_url.clone(),
        social_allow_insecure: file.social_allow_insecure,
        social_timeout_ms: file.social_timeout_ms,
        publish_reconcile_delay_ms: file.publish_reconcile_delay_ms,
        publish_lease_seconds: file.publish_lease_seconds,
        analytics_first_reading_seconds: file.analytics_first_reading_seconds,
        analytics_poll_ms: file.analytics_poll_ms,
        inbox_poll_ms: file.inbox_poll_ms,
        inbox_model: file.inbox_model.clone(),
        ..ServeArgs::default()
    }
}

fn publishing_config(
    serve: &ServeArgs,
    file: ServeArgs,
    listen: SocketAddr,
) -> anyhow::Result<crate::publishing::PublishingConfig> {
    let mut config = crate::publishing::PublishingConfig::default();
    let p = &mut config.platforms;
    p.public_url = serve
        .public_url
        .clone()
        .or(file.public_url)
        .unwrap_or_else(|| format!("http://{listen}"))
        .trim_end_matches('/')
        .to_owned();
    for (name, url) in [("public_url", &p.public_url)] {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("{name} must be an http:// or https:// URL, got {url}");
        }
    }
    p.x_client_id = serve.x_client_id.clone().or(file.x_client_id);
    p.x_client_secret =
        serve.x_client_secret.clone().or(file.x_client_secret).map(secrecy::SecretString::from);
    if let Some(url) = serve.x_api_url.clone().or(file.x_api_url) {
        p.x_api_url = url.trim_end_matches('/').to_owned();
    }
    if let Some(url) = serve.x_authorize_url.clone().or(file.x_authorize_url) {
        p.x_authorize_url = url;
    }
    p.linkedin_client_id = serve.linkedin_client_id.clone().or(file.linkedin_client_id);
    p.linkedin_client_secret =
        serve.linkedin_client_secret.clone().or(file.linkedin_client_secret).map(secrecy::SecretString::from);
    if let Some(url) = serve.linkedin_api_url.clone().or(file.linkedin_api_url) {
        p.linkedin_api_url = url.trim_end_matches('/').to_owned();
    }
    if let Some(url) = serve.linkedin_oauth_url.clone().or(file.linkedin_oauth_url) {
        p.linkedin_oauth_url = url.trim_end_matches('/').to_owned();
    }
    p.linkedin_organizations = serve.linkedin_organizations.or(file.linkedin_organizations).unwrap_or(false);
    p.meta_app_id = serve.meta_app_id.clone().or(file.meta_app_id);
    p.meta_app_secret =
        serve.meta_app_secret.clone().or(file.meta_app_secret).map(secrecy::SecretString::from);
    if let Some(url) = serve.meta_graph_url.clone().or(file.meta_graph_url) {
        p.meta_graph_url = url.trim_end_matches('/').to_owned();
    }
    if let Some(url) = serve.meta_authorize_url.clone().or(file.meta_authorize_url) {
        p.meta_authorize_url = url;
    }
    p.bluesky_appview_url = serve
        .bluesky_appview_url
        .clone()
        .or(file.bluesky_appview_url)
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty());
    let appview = p.bluesky_appview_url.iter().map(|u| ("bluesky_appview_url", u));
    for (name, url) in appview.chain([
        ("x_api_url", &p.x_api_url),
        ("x_authorize_url", &p.x_authorize_url),
        ("linkedin_api_url", &p.linkedin_api_url),
        ("linkedin_oauth_url", &p.linkedin_oauth_url),
        ("meta_graph_url", &p.meta_graph_url),
        ("meta_authorize_url", &p.meta_authorize_url),
    ]) {
        if reqwest::Url::parse(url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) {
            bail!("{name} must be an http:// or https:// URL, got {url}");
        }
    }
    p.allow_insecure_instances = serve.social_allow_insecure.or(file.social_allow_insecure).unwrap_or(false);
    if let Some(ms) = serve.social_timeout_ms.or(file.social_timeout_ms) {
        if !(100..=300_000).contains(&ms) {
            bail!("social_timeout_ms must be between 100 and 300000, not {ms}");
        }
        p.request_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = serve.publish_reconcile_delay_ms.or(file.publish_reconcile_delay_ms) {
        if ms > 3_600_000 {
            bail!("publish_reconcile_delay_ms must be at most 3600000 (an hour), not {ms}");
        }
        config.engine.reconcile_delay = std::time::Duration::from_millis(ms);
    }
    if let Some(seconds) = serve.publish_lease_seconds.or(file.publish_lease_seconds) {
        if !(1..=3600).contains(&seconds) {
            bail!("publish_lease_seconds must be between 1 and 3600, not {seconds}");
        }
        config.engine.lease = std::time::Duration::from_secs(seconds);
    }
    if let Some(seconds) = serve.analytics_first_reading_seconds.or(file.analytics_first_reading_seconds) {
        if seconds > 86_400 {
            bail!("analytics_first_reading_seconds must be at most 86400 (a day), not {seconds}");
        }
        config.engine.metrics.first = std::time::Duration::from_secs(seconds);
    }
    if let Some(ms) = serve.analytics_poll_ms.or(file.analytics_poll_ms) {
        if !(100..=3_600_000).contains(&ms) {
            bail!("analytics_poll_ms must be between 100 and 3600000, not {ms}");
        }
        config.engine.metrics.poll = std::time::Duration::from_millis(ms);
    }
    if let Some(ms) = serve.inbox_poll_ms.or(file.inbox_poll_ms) {
        if !(100..=86_400_000).contains(&ms) {
            bail!("inbox_poll_ms must be between 100 and 86400000 (a day), not {ms}");
        }
        config.engine.inbox_every = std::time::Duration::from_millis(ms);
    }
    if let Some(model) = serve.inbox_model.clone().or_else(|| file.inbox_model.clone()) {
        let model = model.trim().to_owned();
        if model.is_empty() || model.len() > 200 || model.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            bail!(
                "inbox_model must be an Ollama model name such as llama3.2 (no spaces, at most 200 characters)"
            );
        }
        config.engine.inbox_model = model;
    }
    // The lease must outlast a request, or a slow answer would be taken over.
    if config.engine.lease < config.platforms.request_timeout + std::time::Duration::from_secs(1) {
        bail!("publish_lease_seconds must exceed social_timeout_ms by at least a second");
    }
    Ok(config)
}

/// A certificate and its key, which only make sense together.
fn pair(
    what: &str,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        _ => bail!("{what} and its key must be given together"),
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is not valid", path.display()))
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    directories::ProjectDirs::from("com", "Marketer", "marketer")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .context(
            "cannot determine a data directory (no home directory); pass --data-dir or set MARKETER_DATA_DIR",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("marketer.toml");
        std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nlog_level = \"debug\"\nmax_body_bytes = 2048\n")
            .unwrap();
        let global = GlobalArgs {
            config: Some(file),
            data_dir: Some(dir.path().to_path_buf()),
            // A flag (or its env variable, which clap folds into the flag) beats the file.
            log_level: Some("warn".into()),
            ..GlobalArgs::default()
        };
        let s = Settings::resolve(&global, &ServeArgs::default()).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:9000", "file beats default");
        assert_eq!(s.log_level, "warn", "flag beats file");
        assert_eq!(s.max_body_bytes, 2048);
        assert_eq!(s.log_format, LogFormat::Human, "default");
        assert!(s.database_url.expose().starts_with("sqlite://"));
        assert!(s.database_url.expose().ends_with("marketer.db"));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "lisen = \"0.0.0.0:9000\"\n").unwrap();
        let global =
            GlobalArgs { config: Some(file), data_dir: Some(dir.path().into()), ..Default::default() };
        let err = Settings::resolve(&global, &ServeArgs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }

    #[test]
    fn bad_database_urls_are_errors() {
        let global = GlobalArgs {
            data_dir: Some("/tmp".into()),
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        assert!(Settings::resolve(&global, &ServeArgs::default()).is_err());
    }
}
