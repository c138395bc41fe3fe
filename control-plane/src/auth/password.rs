//! Argon2id password hashing, off the async runtime.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::domain::Password;

/// Hashes a password with Argon2id and the crate's default (OWASP-recommended)
/// parameters. Hashing takes tens of milliseconds of CPU on purpose, so it
/// runs on the blocking pool instead of stalling a runtime worker.
pub async fn hash(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
}

/// Checks a password against a stored PHC string. A malformed hash counts as
/// a mismatch (and is logged), never as a success.
pub async fn verify(candidate: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let parsed = match PasswordHash::new(&phc) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::error!(error = %e, "stored password hash is malformed");
                return false;
            }
        };
        Argon2::default().verify_password(candidate.as_bytes(), &parsed).is_ok()
    })
    .await
    .unwrap_or(false)
}

/// A real hash of a random password, verified against when the e-mail address
/// is unknown so that a failed login takes as long whether or not the
/// account exists (no account enumeration by timing).
pub fn decoy_hash() -> String {
    static DECOY: LazyLock<String> = LazyLock::new(|| {
        Argon2::default()
            .hash_password(Password::generate().expose().as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    DECOY.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let password = Password::parse("correct horse battery").unwrap();
        let phc = hash(password).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse battery".into(), phc.clone()).await);
        assert!(!verify("wrong horse battery".into(), phc).await);
        assert!(!verify("anything".into(), "not a hash".into()).await);
        assert!(!verify("anything".into(), decoy_hash()).await);
    }
}
