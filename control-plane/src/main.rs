//! `marketer-server`: the Marketer control plane.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use marketer_control_plane::admin::{self, AdminCommand};
use marketer_control_plane::api::ApiConfig;
use marketer_control_plane::config::{GlobalArgs, ServeArgs, Settings};
use marketer_control_plane::listener::ConnectionLimits;
use marketer_control_plane::{backup, server, telemetry};
use tokio_util::sync::CancellationToken;

/// The Marketer control plane: tenants, projects, the JSON API, and (with
/// edge agents) AI content generation that keeps customer data on-premises.
#[derive(Debug, Parser)]
#[command(name = "marketer-server", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server (creates the database and a first account on first run).
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate,
    /// Operator commands on the database: accounts, passwords, memberships.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Write one archive (.tar.gz) of the data directory's secrets, agent CA
    /// and files, and of the database when it is SQLite (a consistent copy,
    /// safe while the server runs). Back PostgreSQL up with pg_dump.
    Backup {
        /// Where to write the archive (written beside it, then renamed).
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
    /// Unpack a backup archive into an empty data directory (--data-dir) and
    /// check the restored database; then start the server on it.
    Restore {
        /// The archive `backup` wrote.
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let serve_args = match &cli.command {
        Command::Serve(args) => (**args).clone(),
        _ => ServeArgs::default(),
    };
    let settings = Settings::resolve(&cli.global, &serve_args)?;
    telemetry::init(settings.log_format, &settings.log_level)?;
    match cli.command {
        Command::Serve(_) => serve(settings).await,
        Command::Migrate => {
            let store = server::open_store(&settings).await?;
            store.close().await;
            println!("migrations applied to {}", settings.database_url);
            Ok(())
        }
        Command::Backup { to } => {
            println!("{}", backup::backup(&settings, &to).await?);
            Ok(())
        }
        Command::Restore { from } => {
            println!("{}", backup::restore(&from, &settings.data_dir).await?);
            Ok(())
        }
        Command::Admin { command } => {
            let store = server::open_store(&settings).await?;
            let result = admin::run(&settings, store.clone(), command).await;
            store.close().await;
            println!("{}", result?);
            Ok(())
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // Every agent holds a connection: lift the soft file-descriptor limit to
    // the hard one (often 1024 soft against 500000 hard).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "file descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the file descriptor limit"),
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        data_dir = %settings.data_dir.display(),
        database = %settings.database_url,
        "starting marketer-server"
    );
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let gateway = tokio::net::TcpListener::bind(settings.agents.listen)
        .await
        .with_context(|| format!("listening for agents on {}", settings.agents.listen))?;
    let runtime = server::build(&settings, gateway.local_addr()?.port()).await?;
    server::bootstrap(&runtime.app, server::BootstrapAccount::from_env()?).await?;
    println!(
        "agent gateway listening on https://{} (agents use {})",
        gateway.local_addr()?,
        runtime.app.agents.public_url
    );
    println!("marketer-server listening on http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    let closing = runtime.app.closing.clone();
    let drain = settings.shutdown_drain;
    tokio::spawn(async move {
        server::shutdown_signal().await;
        // Unready first (/readyz answers 503, event streams end so clients
        // reconnect elsewhere) while still serving, so the load balancer
        // moves traffic away; then stop accepting.
        closing.cancel();
        if !drain.is_zero() {
            tracing::info!(?drain, "shutting down: unready, draining");
            tokio::time::sleep(drain).await;
        }
        trigger.cancel();
    });
    let metrics_token =
        settings.metrics_token_file.as_deref().map(|p| token_file(p, "metrics")).transpose()?;
    let bounce_token = settings.bounce_token_file.as_deref().map(|p| token_file(p, "bounce")).transpose()?;
    let config =
        ApiConfig {
            metrics_token,
            bounce_token,
            max_body_bytes: settings.max_body_bytes,
            max_upload_bytes: settings.max_upload_bytes,
            trust_proxy_headers: settings.trust_proxy_headers,
            rate_limits: settings.rate_limits,
            connections: ConnectionLimits {
                per_address: settings.max_connections_per_address.unwrap_or(
                    if settings.trust_proxy_headers { 0 } else { ConnectionLimits::default().per_address },
                ),
                ..ConnectionLimits::default()
            },
        };
    server::serve(runtime, config, listener, gateway, shutdown, settings.shutdown_timeout).await
}

/// An operator's bearer token from its file: 16 characters or more, no
/// spaces.
fn token_file(path: &std::path::Path, what: &str) -> anyhow::Result<secrecy::SecretString> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("reading the {what} token from {}", path.display()))?;
    let token = token.trim().to_owned();
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        anyhow::bail!("the {what} token in {} must be 16 or more characters without spaces", path.display());
    }
    Ok(secrecy::SecretString::from(token))
}
