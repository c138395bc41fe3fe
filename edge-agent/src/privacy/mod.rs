//! What the agent's policy lets leave the host: identifiers redacted
//! (`redact.rs`), document passages not sent back verbatim (`verbatim.rs`),
//! models and output sizes limited (`policy.rs`).

pub mod policy;
pub mod redact;
pub mod verbatim;

pub use policy::{Policy, PolicyFile};
pub use redact::Redactor;
pub use verbatim::VerbatimGuard;
