//! `marketer-agent`: the Marketer edge agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use marketer_edge_agent::config::{AgentFiles, config_dir};
use marketer_edge_agent::enroll::{EnrollOptions, enroll};
use marketer_edge_agent::jobs::ExecSettings;
use marketer_edge_agent::tunnel::{Revoked, RunOptions};
use marketer_edge_agent::{doctor, documents, ollama, tunnel};
use tokio_util::sync::CancellationToken;

/// The Marketer edge agent: runs AI content work next to your data, against
/// a local Ollama, and connects out to the Marketer control plane.
#[derive(Debug, Parser)]
#[command(name = "marketer-agent", version, about, arg_required_else_help = true)]
struct Cli {
    /// Where the agent keeps its identity and settings
    /// [default: the platform's config directory, e.g. ~/.config/marketer-agent].
    #[arg(long, env = "MARKETER_AGENT_HOME", global = true, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "MARKETER_AGENT_LOG_FORMAT", global = true, value_enum, default_value = "human")]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `marketer_edge_agent=debug`.
    #[arg(long, env = "MARKETER_AGENT_LOG_LEVEL", global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Enroll this host with a control plane, using a token from an administrator.
    Enroll {
        /// The control plane's agent gateway, e.g. https://marketer.example.com:8443.
        #[arg(long)]
        server: String,
        /// The enrollment token (it pins the server's certificate authority).
        #[arg(long, env = "MARKETER_ENROLLMENT_TOKEN", hide_env_values = true)]
        token: String,
        /// A name for this agent [default: the host name].
        #[arg(long)]
        name: Option<String>,
        /// A label for this agent (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// Replace an existing enrollment of this host.
        #[arg(long)]
        force: bool,
    },
    /// Connect to the control plane and serve it until stopped.
    Run {
        #[command(flatten)]
        local: LocalArgs,
        /// How many jobs to run at once.
        #[arg(long, env = "MARKETER_AGENT_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1024))]
        concurrency: u32,
        /// Fail a generation when Ollama sends nothing for this many seconds.
        #[arg(long, env = "MARKETER_AGENT_STALL_TIMEOUT_SECONDS", default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        stall_timeout_seconds: u64,
        /// The largest context window (tokens) used for a job that sets no
        /// num_ctx, unless its prompt needs more; a model's own window up to
        /// this is used.
        #[arg(long, env = "MARKETER_AGENT_NUM_CTX_MAX", default_value_t = 16_384, value_parser = clap::value_parser!(u64).range(2048..=1_048_576))]
        num_ctx_max: u64,
        /// The most tokens a chat job may generate when it sets no
        /// num_predict: a model that loops stops here, not at the end of
        /// its context.
        #[arg(long, env = "MARKETER_AGENT_MAX_OUTPUT_TOKENS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..=131_072))]
        max_output_tokens: u32,
        /// An activity step's output budget in tokens, replacing the
        /// pipeline's own (`writing=3000`); repeat for several steps. Steps:
        /// seo, research, writing, editing, refining, extend, social,
        /// analysis, compliance, flyer.
        #[arg(long = "output-budget", value_name = "STEP=TOKENS", value_parser = parse_output_budget)]
        output_budgets: Vec<(String, u32)>,
        /// Another gateway of the same control plane (another replica, same
        /// agent CA), tried in turn when the current one cannot be reached
        /// or goes away; repeat for several. The enrolled one comes first.
        /// One DNS name with several addresses works without this.
        #[arg(
            long = "fallback-server",
            value_name = "URL",
            env = "MARKETER_AGENT_FALLBACK_SERVERS",
            value_delimiter = ','
        )]
        fallback_servers: Vec<String>,
    },
    /// Index files or folders for a project, on this host; only their
    /// metadata is reported to the control plane.
    Ingest {
        /// Files or folders (read recursively, hidden entries skipped).
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// The project the documents belong to (its id, from the web UI or the API).
        #[arg(long, value_name = "PROJECT_ID")]
        project: uuid::Uuid,
        /// The Ollama embedding model; a project keeps the model it was
        /// first indexed with, and changing it re-indexes the project.
        #[arg(long, env = "MARKETER_AGENT_EMBEDDING_MODEL", default_value = documents::DEFAULT_EMBEDDING_MODEL)]
        embedding_model: String,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// The documents indexed on this host.
    Documents {
        #[command(subcommand)]
        command: DocumentsCommand,
    },
    /// Show this host's enrollment and its last connection.
    Status,
    /// Check everything the agent needs, one line per check.
    Doctor {
        #[command(flatten)]
        local: LocalArgs,
    },
}

#[derive(Debug, Subcommand)]
enum DocumentsCommand {
    /// List them, one per line: id, project, name, chunks, status, source.
    List {
        /// Only this project's.
        #[arg(long, value_name = "PROJECT_ID")]
        project: Option<uuid::Uuid>,
    },
    /// Search a project's documents as the research step does, to see what
    /// it would find (the passages are shown here only, never sent).
    Search {
        /// What to look for.
        query: String,
        #[arg(long, value_name = "PROJECT_ID")]
        project: uuid::Uuid,
        /// How many passages to show.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
        limit: u32,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// Remove documents and their chunks from the index (the running agent
    /// tells the control plane).
    Remove {
        #[arg(required = true, value_name = "DOCUMENT_ID")]
        ids: Vec<uuid::Uuid>,
    },
}

#[derive(Debug, clap::Args)]
struct LocalArgs {
    /// The local Ollama [default: $OLLAMA_HOST or http://127.0.0.1:11434].
    #[arg(long, env = "OLLAMA_HOST", value_name = "URL", default_value = ollama::DEFAULT_URL)]
    ollama_url: String,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("{text:?} must look like key=value"))?;
    let key = key.trim();
    if key.is_empty()
        || key.len() > 63
        || !key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
    {
        return Err(format!("label key {key:?} must be 1-63 characters of a-z, 0-9, '.', '_', '-' or '/'"));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// Exit status for "revoked" and "its organisation was erased": service
/// managers should not restart the agent.
const EXIT_REVOKED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_format, &cli.log_level) {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e)
            if e.downcast_ref::<Revoked>().is_some()
                || e.downcast_ref::<marketer_edge_agent::erase::Erased>().is_some() =>
        {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_REVOKED)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let files = AgentFiles::new(config_dir(cli.config_dir.as_deref())?);
    match cli.command {
        Command::Enroll { server, token, name, labels, force } => {
            let options = EnrollOptions {
                server,
                token,
                name,
                labels: labels.into_iter().collect::<BTreeMap<_, _>>(),
                force,
            };
            let config = enroll(&files, options).await?;
            println!("enrolled as {} ({}) with {}", config.name, config.agent_id, config.server);
            println!("identity saved in {}; start the agent with `marketer-agent run`", files.dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            local,
            concurrency,
            stall_timeout_seconds,
            num_ctx_max,
            max_output_tokens,
            output_budgets,
            fallback_servers,
        } => {
            let shutdown = CancellationToken::new();
            let trigger = shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                trigger.cancel();
            });
            let exec = ExecSettings {
                slots: concurrency,
                stall_timeout: std::time::Duration::from_secs(stall_timeout_seconds),
                num_ctx_max,
                max_output_tokens,
                output_budgets: output_budgets.into_iter().collect(),
                ..ExecSettings::default()
            };
            let options = RunOptions { ollama_url: local.ollama_url, exec, fallback_servers };
            tunnel::run(files, options, shutdown).await?;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest { paths, project, embedding_model, local } => {
            ingest(&files, &paths, project, embedding_model, &local.ollama_url).await
        }
        Command::Documents { command: DocumentsCommand::List { project } } => {
            let index = documents::Index::open(&files.dir).await?;
            let list = index.documents(project).await?;
            for doc in &list {
                println!("{}", documents::ingest::describe(doc));
            }
            if list.is_empty() {
                println!("no documents are indexed on this host");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Documents { command: DocumentsCommand::Search { query, project, limit, local } } => {
            let index = documents::Index::open(&files.dir).await?;
            let ollama = ollama::Ollama::new(&local.ollama_url)?;
            let found =
                documents::retrieve::Documents::for_project(Some(&index), &ollama, Some(project), 200).await;
            let documents::retrieve::Documents::Searchable(retriever) = found else {
                anyhow::bail!("no documents of project {project} are indexed on this host");
            };
            let hits = retriever
                .hits(&[query], limit as usize)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            if hits.is_empty() {
                println!("nothing matched");
            }
            for (rank, hit) in hits.iter().enumerate() {
                let place = match (hit.section.is_empty(), hit.page) {
                    (true, None) => String::new(),
                    (false, None) => format!(" / {}", hit.section),
                    (true, Some(page)) => format!(" / page {page}"),
                    (false, Some(page)) => format!(" / {} / page {page}", hit.section),
                };
                let excerpt: String = hit.text.chars().take(160).collect();
                println!("{}. {}{place} (score {:.4})\n   {excerpt}", rank + 1, hit.file, hit.score);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Documents { command: DocumentsCommand::Remove { ids } } => {
            let index = documents::Index::open(&files.dir).await?;
            let mut missing = 0;
            for id in ids {
                if index.remove(id).await? {
                    println!("removed {id}");
                } else {
                    println!("{id}: no such document on this host");
                    missing += 1;
                }
            }
            Ok(if missing == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Status => {
            let (report, enrolled) = doctor::status(&files);
            print!("{report}");
            Ok(if enrolled { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Doctor { local } => {
            let checks = doctor::doctor(&files, &local.ollama_url).await;
            print!("{}", doctor::render(&checks));
            Ok(if checks.iter().all(|c| c.ok) { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

/// `marketer-agent ingest`: one line per file, then a summary; fails if
/// any file could not be indexed.
async fn ingest(
    files: &AgentFiles,
    paths: &[PathBuf],
    project: uuid::Uuid,
    model: String,
    ollama_url: &str,
) -> anyhow::Result<ExitCode> {
    let policy = marketer_edge_agent::privacy::PolicyFile::load(&files.dir)?;
    let compliance = files.load_state().tenant_compliance.unwrap_or_else(|| "standard".into());
    if !policy.effective(&compliance)?.allows_model(&model) {
        anyhow::bail!(
            "this agent's policy (policy.toml, allowed_models) does not allow the embedding model {model}; add it or choose an allowed one with --embedding-model"
        );
    }
    if !files.is_enrolled() {
        eprintln!(
            "note: this host is not enrolled; the documents are indexed, and reported once the agent is enrolled and running"
        );
    }
    let index = documents::Index::open(&files.dir).await?;
    let ollama = ollama::Ollama::new(ollama_url)?;
    let ingester = documents::Ingester { index: &index, ollama: &ollama, model };
    let mut counts = [0usize; 4];
    ingester
        .ingest_paths(project, paths, &mut |path, outcome| {
            let line = match outcome {
                documents::Outcome::Indexed { document, chunks } => {
                    counts[0] += 1;
                    format!("indexed    {} ({chunks} chunks, id {document})", path.display())
                }
                documents::Outcome::Unchanged { document } => {
                    counts[1] += 1;
                    format!("unchanged  {} (id {document})", path.display())
                }
                documents::Outcome::Failed { reason, .. } => {
                    counts[2] += 1;
                    format!("failed     {}: {reason}", path.display())
                }
                documents::Outcome::Skipped { reason } => {
                    counts[3] += 1;
                    format!("skipped    {}: {reason}", path.display())
                }
            };
            println!("{line}");
        })
        .await?;
    println!(
        "{} indexed, {} unchanged, {} failed, {} skipped; the running agent reports them to the control plane",
        counts[0], counts[1], counts[2], counts[3]
    );
    Ok(if counts[2] + counts[3] == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn init_logging(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("invalid log filter {filter:?}: {e}"))?;
    // Colour only on a terminal (and never with NO_COLOR).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let result = match format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("installing the logger: {e}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// `STEP=TOKENS`, for `--output-budget`.
fn parse_output_budget(text: &str) -> Result<(String, u32), String> {
    let (step, tokens) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not STEP=TOKENS (for example writing=3000)"))?;
    let step = step.trim();
    if !marketer_pipeline::run::BUDGET_STEPS.contains(&step) {
        return Err(format!(
            "{step:?} is not a pipeline step; use one of {}",
            marketer_pipeline::run::BUDGET_STEPS.join(", ")
        ));
    }
    let tokens: u32 = tokens.trim().parse().ok().filter(|n| (16..=32_768).contains(n)).ok_or_else(|| {
        format!("the budget of {step} must be a number of tokens from 16 to 32768, not {tokens:?}")
    })?;
    Ok((step.to_owned(), tokens))
}
