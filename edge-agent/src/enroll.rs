//! `marketer-agent enroll`: trade an enrollment token for an identity.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use marketer_protocol::{EnrollRequest, EnrollResponse, EnrollmentToken, ErrorBody, paths};

use crate::config::{AgentConfig, AgentFiles};
use crate::identity::{identity_pem, new_key_and_csr};
use crate::net::{self, ServerAddr};

#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub server: String,
    pub token: String,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Replace an existing enrollment.
    pub force: bool,
}

/// Enrolls this host and saves its identity in `files`.
pub async fn enroll(files: &AgentFiles, options: EnrollOptions) -> anyhow::Result<AgentConfig> {
    if files.is_enrolled() && !options.force {
        let existing = files.load_config()?;
        bail!(
            "this host is already enrolled as {} ({}) with {}; pass --force to replace that identity",
            existing.name,
            existing.agent_id,
            existing.server
        );
    }
    let token = EnrollmentToken::parse(&options.token).context(
        "the token is not a Marketer enrollment token (it looks like mkt_et_... followed by a dot and 64 hex digits); copy it whole",
    )?;
    let server = ServerAddr::parse(&options.server)?;
    let host = crate::host_info();
    let generated = new_key_and_csr(options.name.as_deref().unwrap_or(&host.hostname))?;
    let request = EnrollRequest {
        token: token.secret.clone(),
        csr_pem: generated.csr_pem,
        name: options.name.clone(),
        labels: options.labels.clone(),
        host,
        agent_version: crate::VERSION.to_owned(),
    };
    let body = serde_json::to_vec(&request)?;
    let (status, answer) = net::request(
        &server,
        net::pinned_config(token.ca_sha256)?,
        http::Method::POST,
        paths::ENROLL,
        Some(body),
    )
    .await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ErrorBody>(&answer)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| format!("the server answered {status}"));
        bail!("enrollment refused: {message}");
    }
    let enrolled: EnrollResponse =
        serde_json::from_slice(&answer).context("the server's enrollment answer is not valid")?;
    let config = AgentConfig {
        server: server.url.clone(),
        agent_id: enrolled.agent_id,
        tenant_id: enrolled.tenant_id,
        name: enrolled.name,
        labels: enrolled.labels,
        enrolled_at: time::OffsetDateTime::now_utc(),
    };
    files.save_enrollment(
        &config,
        &identity_pem(&generated.key_pem, &enrolled.certificate_pem),
        &enrolled.ca_certificate_pem,
    )?;
    files.save_state(&Default::default())?;
    Ok(config)
}
