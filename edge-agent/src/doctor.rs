//! `marketer-agent doctor` and `marketer-agent status`.

use std::fmt::Write as _;

use marketer_protocol::{HealthResponse, paths};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::AgentFiles;
use crate::identity::Identity;
use crate::net::{self, ServerAddr};
use crate::ollama::Ollama;
use crate::proxy::Proxy;

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, ok: true, detail: detail.into() }
    }

    fn fail(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, ok: false, detail: detail.into() }
    }
}

/// Renders checks one per line: `ok`/`FAIL`, the check, the detail.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for check in checks {
        let _ =
            writeln!(out, "{:<5} {:<16} {}", if check.ok { "ok" } else { "FAIL" }, check.name, check.detail);
    }
    out
}

/// Runs every check, in the order a connection needs them. Later checks that
/// depend on a failed one are still run where they can tell something.
pub async fn doctor(files: &AgentFiles, ollama_url: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(check_dir(files));
    let config = match files.load_config() {
        Ok(config) => {
            checks.push(Check::pass(
                "enrollment",
                format!("agent {} ({}) of tenant {}", config.name, config.agent_id, config.tenant_id),
            ));
            Some(config)
        }
        Err(e) => {
            checks.push(Check::fail("enrollment", format!("{e:#}")));
            None
        }
    };
    let identity = match files
        .identity()
        .exists()
        .then(|| files.load_identity().and_then(|pem| Identity::parse(&pem)))
    {
        None => {
            checks.push(Check::fail("key permissions", format!("{} is missing", files.identity().display())));
            None
        }
        Some(Err(e)) => {
            checks.push(Check::fail("key permissions", format!("{e:#}")));
            None
        }
        Some(Ok(identity)) => {
            checks.push(Check::pass(
                "key permissions",
                format!("{} is readable by its owner only", files.identity().display()),
            ));
            checks.push(certificate_check(&identity, OffsetDateTime::now_utc()));
            Some(identity)
        }
    };
    let Some(config) = config else { return with_ollama(checks, ollama_url).await };
    let server = match ServerAddr::parse(&config.server) {
        Ok(server) => server,
        Err(e) => {
            checks.push(Check::fail("server address", format!("{e:#}")));
            return with_ollama(checks, ollama_url).await;
        }
    };

    let proxy = Proxy::from_env(&server.host);
    checks.push(match &proxy {
        Ok(Some(proxy)) => Check::pass("proxy", format!("connecting through {proxy} (from HTTPS_PROXY)")),
        Ok(None) => Check::pass("proxy", "none: connecting directly"),
        Err(e) => Check::fail("proxy", format!("{e:#}")),
    });
    let via_proxy = matches!(proxy, Ok(Some(_)));

    match tokio::net::lookup_host((server.host.as_str(), server.port)).await {
        Ok(addresses) => {
            let list: Vec<String> = addresses.map(|a| a.ip().to_string()).collect();
            checks.push(Check::pass("dns", format!("{} resolves to {}", server.host, list.join(", "))));
        }
        // Behind a proxy only the proxy needs to resolve the name.
        Err(e) if via_proxy => checks.push(Check::pass(
            "dns",
            format!("{} does not resolve here ({e}), but the proxy resolves it", server.host),
        )),
        Err(e) => checks.push(Check::fail("dns", format!("{} does not resolve: {e}", server.host))),
    }

    match net::dial(&server).await {
        Ok(_) => checks.push(Check::pass("tcp", format!("reached {}:{}", server.host, server.port))),
        Err(e) => {
            checks.push(Check::fail("tcp", format!("{e:#}")));
            return with_ollama(checks, ollama_url).await;
        }
    }

    match (files.load_ca(), identity) {
        (Ok(ca), Some(identity)) => match net::agent_config(&ca, identity) {
            Ok(tls) => match net::request(&server, tls, http::Method::GET, paths::HEALTH, None).await {
                Ok((status, body)) if status.is_success() => {
                    checks.push(Check::pass("tls", "the gateway's certificate chains to the pinned CA, and it accepts this agent's certificate"));
                    match serde_json::from_slice::<HealthResponse>(&body) {
                        Ok(health) => checks.push(clock_check(health.server_time, OffsetDateTime::now_utc())),
                        Err(e) => checks.push(Check::fail(
                            "clock",
                            format!("the gateway's health answer is not valid: {e}"),
                        )),
                    }
                }
                Ok((status, _)) => checks.push(Check::fail("tls", format!("the gateway answered {status}"))),
                Err(e) => checks.push(Check::fail("tls", format!("{e:#}"))),
            },
            Err(e) => checks.push(Check::fail("tls", format!("{e:#}"))),
        },
        (Err(e), _) => checks.push(Check::fail("tls", format!("{e:#}"))),
        (_, None) => checks.push(Check::fail("tls", "no usable identity; enroll first")),
    }
    with_ollama(checks, ollama_url).await
}

async fn with_ollama(mut checks: Vec<Check>, ollama_url: &str) -> Vec<Check> {
    checks.push(match Ollama::new(ollama_url) {
        Err(e) => Check::fail("ollama", format!("{e:#}")),
        Ok(ollama) => match ollama.models().await {
            Ok(models) if models.is_empty() => Check::fail(
                "ollama",
                format!(
                    "{} answers but has no models; pull one with `ollama pull llama3.2:3b`",
                    ollama.url()
                ),
            ),
            Ok(models) => Check::pass(
                "ollama",
                format!(
                    "{} has {} model(s): {}",
                    ollama.url(),
                    models.len(),
                    models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ),
            Err(e) => Check::fail("ollama", format!("{e:#}; start Ollama or pass --ollama-url")),
        },
    });
    checks
}

fn check_dir(files: &AgentFiles) -> Check {
    match std::fs::metadata(&files.dir) {
        Err(_) => {
            Check::fail("config directory", format!("{} does not exist; enroll first", files.dir.display()))
        }
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Check::fail(
                        "config directory",
                        format!(
                            "{} is open to other users (mode {mode:o}); run `chmod 700 {}`",
                            files.dir.display(),
                            files.dir.display()
                        ),
                    );
                }
            }
            #[cfg(not(unix))]
            let _ = meta;
            Check::pass("config directory", files.dir.display().to_string())
        }
    }
}

fn certificate_check(identity: &Identity, now: OffsetDateTime) -> Check {
    let left = identity.not_after - now;
    if left <= time::Duration::ZERO {
        Check::fail(
            "certificate",
            format!(
                "expired on {}; ask for a new enrollment token and run `marketer-agent enroll --force`",
                rfc3339(identity.not_after)
            ),
        )
    } else {
        Check::pass(
            "certificate",
            format!(
                "valid until {} ({} days left; renewed automatically)",
                rfc3339(identity.not_after),
                left.whole_days()
            ),
        )
    }
}

fn clock_check(server_time: OffsetDateTime, now: OffsetDateTime) -> Check {
    let skew = (server_time - now).abs();
    if skew > time::Duration::minutes(2) {
        Check::fail(
            "clock",
            format!(
                "this host's clock is {} s off the control plane's; fix NTP (certificates depend on it)",
                skew.whole_seconds()
            ),
        )
    } else {
        Check::pass("clock", format!("within {} ms of the control plane", skew.whole_milliseconds()))
    }
}

/// `marketer-agent status`: what this host is enrolled as, and how its last
/// connection went. Returns the report and whether the host is enrolled.
pub fn status(files: &AgentFiles) -> (String, bool) {
    let mut out = String::new();
    let config = match files.load_config() {
        Ok(config) => config,
        Err(e) => {
            let _ = writeln!(out, "enrolled:        no ({e:#})");
            let _ = writeln!(out, "config dir:      {}", files.dir.display());
            return (out, false);
        }
    };
    let state = files.load_state();
    let labels: Vec<String> = config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(out, "enrolled:        yes, since {}", rfc3339(config.enrolled_at));
    let _ = writeln!(out, "agent id:        {}", config.agent_id);
    let _ = writeln!(out, "tenant id:       {}", config.tenant_id);
    let _ = writeln!(out, "name:            {}", config.name);
    let _ = writeln!(out, "server:          {}", config.server);
    let _ = writeln!(
        out,
        "labels:          {}",
        if labels.is_empty() { "(none)".to_owned() } else { labels.join(", ") }
    );
    let certificate = match files.load_identity().and_then(|pem| Identity::parse(&pem)) {
        Ok(identity) => {
            let days = (identity.not_after - OffsetDateTime::now_utc()).whole_days();
            if days < 0 {
                format!("EXPIRED on {}", rfc3339(identity.not_after))
            } else {
                format!("valid until {} ({days} days left)", rfc3339(identity.not_after))
            }
        }
        Err(e) => format!("unusable: {e:#}"),
    };
    let _ = writeln!(out, "certificate:     {certificate}");
    let _ = writeln!(
        out,
        "last connected:  {}",
        state.last_connected_at.map_or_else(|| "never".to_owned(), rfc3339)
    );
    if let Some(error) = state.last_error {
        let _ = writeln!(out, "last error:      {error}");
    }
    let _ = writeln!(out, "config dir:      {}", files.dir.display());
    (out, true)
}

/// Times as people and tools read them: `2026-12-22T10:00:00Z`.
fn rfc3339(t: OffsetDateTime) -> String {
    t.replace_nanosecond(0).unwrap_or(t).format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_certificate_checks() {
        let now = OffsetDateTime::now_utc();
        assert!(clock_check(now + time::Duration::seconds(5), now).ok);
        assert!(!clock_check(now + time::Duration::minutes(5), now).ok);
        let report = render(&[Check::pass("tcp", "reached"), Check::fail("ollama", "down")]);
        assert_eq!(report, "ok    tcp              reached\nFAIL  ollama           down\n");
    }

    #[test]
    fn status_of_an_unenrolled_host() {
        let dir = tempfile::tempdir().unwrap();
        let (report, enrolled) = status(&AgentFiles::new(dir.path().to_path_buf()));
        assert!(!enrolled);
        assert!(report.contains("enrolled:        no"), "{report}");
    }
}
