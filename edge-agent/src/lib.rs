//! The Marketer edge agent: a daemon inside the customer's network that
//! dials out to the control plane and runs LLM work against a local Ollama,
//! so documents and intermediate text never leave the customer's side.
//!
//! - `config`: the configuration directory and its files;
//! - `identity`: the key pair (generated here, never sent) and certificate;
//! - `net` and `proxy`: reaching the gateway, TLS, explanations of failures;
//! - `enroll`: trading a token for an identity;
//! - `tunnel`: holding the connection (heartbeats, renewal, reconnects);
//! - `jobs`: running assigned jobs and keeping their events until delivered;
//! - `ollama`: the local Ollama: its models, chat and embeddings;
//! - `documents`: project documents indexed and searched on this host;
//! - `privacy`: the local policy: redaction, verbatim guard, limits;
//! - `erase`: deleting what the agent holds when its tenant is erased;
//! - `doctor`: diagnostics.

pub mod backoff;
pub mod config;
pub mod doctor;
pub mod documents;
pub mod enroll;
pub mod erase;
pub mod identity;
pub mod jobs;
pub mod net;
pub mod ollama;
pub mod privacy;
pub mod proxy;
pub mod tunnel;

pub use marketer_protocol::PROTOCOL_VERSION;

/// This agent's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Facts about this host for enrollment and `Hello`.
pub fn host_info() -> marketer_protocol::HostInfo {
    let hostname = gethostname::gethostname().to_string_lossy().into_owned();
    marketer_protocol::HostInfo {
        hostname: if hostname.is_empty() { "unknown".to_owned() } else { hostname },
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
    }
}
