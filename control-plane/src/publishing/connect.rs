//! Connecting an account: OAuth 2.0 authorization code with PKCE (S256)
//! and a one-time `state` bound to the person who started it (X, and
//! Mastodon after registering Marketer on the instance once). The state is
//! stored hashed, the verifier sealed; both are used once and expire after
//! ten minutes.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// How long a person has to approve on the platform.
pub const STATE_TTL: time::Duration = time::Duration::minutes(10);

/// A PKCE verifier (43 characters of 256 random bits) and its S256 challenge.
pub fn pkce() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// A fresh `state` value and the hash it is stored under.
pub fn state() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let state = URL_SAFE_NO_PAD.encode(bytes);
    let hash = state_hash(&state);
    (state, hash)
}

pub fn state_hash(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_the_verifiers_s256() {
        let (verifier, challenge) = pkce();
        assert_eq!(verifier.len(), 43);
        assert_eq!(challenge, URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())));
        let (a, ha) = state();
        let (b, _) = state();
        assert_ne!(a, b);
        assert_eq!(ha, state_hash(&a));
    }
}
