//! Bearer tokens.
//!
//! Access tokens are short-lived HS256 JWTs naming the user and the session
//! they belong to. Everything else (refresh tokens, API keys, invitation
//! tokens) is an opaque random string with a recognisable prefix; only its
//! SHA-256 is stored. A fast hash is right here: the tokens carry 256 bits of
//! entropy, so there is nothing to brute-force, unlike a password.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::Timestamp;

/// The kinds of opaque token, told apart by prefix so a leaked token is
/// recognisable (secret scanners key on such prefixes) and misuse (an API key
/// sent as a refresh token) fails early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Refresh,
    ApiKey,
    Invitation,
    Enrollment,
    /// A web UI session, held in an HttpOnly cookie; not rotated per use
    /// (a page and its event stream use it at once).
    Browser,
    /// A single-use link sent by e-mail (password reset, address
    /// verification, digest unsubscription).
    Link,
    /// An external reviewer's link to one activity's review.
    ReviewLink,
}

impl TokenKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            TokenKind::Refresh => "mkt_rt_",
            TokenKind::ApiKey => "mkt_ak_",
            TokenKind::Invitation => "mkt_inv_",
            TokenKind::Enrollment => "mkt_et_",
            TokenKind::Browser => "mkt_bs_",
            TokenKind::Link => "mkt_ln_",
            TokenKind::ReviewLink => "mkt_rv_",
        }
    }
}

/// A freshly generated opaque token: the text to hand out once, and the hash
/// to store.
#[derive(Debug)]
pub struct OpaqueToken {
    pub text: String,
    pub hash: Vec<u8>,
}

impl OpaqueToken {
    pub fn generate(kind: TokenKind) -> Self {
        let secret: [u8; 32] = rand::random();
        let text = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(secret));
        let hash = hash_token(&text);
        Self { text, hash }
    }
}

fn csrf_message(session_id: Uuid) -> Vec<u8> {
    let mut message = b"marketer csrf v1:".to_vec();
    message.extend_from_slice(session_id.as_bytes());
    message
}

fn challenge_message(body: &[u8]) -> Vec<u8> {
    let mut message = b"marketer second factor v1:".to_vec();
    message.extend_from_slice(body);
    message
}

/// The stored form of an opaque token.
pub fn hash_token(text: &str) -> Vec<u8> {
    Sha256::digest(text.as_bytes()).to_vec()
}

/// Whether `text` looks like a token of `kind` (prefix and length), checked
/// before any database lookup.
pub fn looks_like(kind: TokenKind, text: &str) -> bool {
    text.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user id.
    pub sub: Uuid,
    /// The session (refresh-token family) the token was issued for; revoking
    /// the session invalidates the token before it expires.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

const ISSUER: &str = "marketer-control-plane";
const AUDIENCE: &str = "marketer-api";

/// Issues and verifies access tokens with one HMAC key.
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: time::Duration,
    /// Signs the web UI's CSRF tokens (the same secret, another message
    /// domain), so every replica accepts every replica's forms.
    csrf: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl AccessTokens {
    pub fn new(key: &SecretBox<Vec<u8>>, ttl: time::Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(key.expose_secret()),
            decoding: DecodingKey::from_secret(key.expose_secret()),
            validation,
            ttl,
            csrf: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key.expose_secret()),
        }
    }

    pub fn ttl(&self) -> time::Duration {
        self.ttl
    }

    /// The CSRF token of a web UI session: a MAC of the session id, so it
    /// needs no storage and dies with the session.
    pub fn csrf_token(&self, session_id: Uuid) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.csrf, &csrf_message(session_id));
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `presented` is the session's CSRF token (compared in
    /// constant time).
    pub fn check_csrf(&self, session_id: Uuid, presented: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(presented)
            .is_ok_and(|tag| aws_lc_rs::hmac::verify(&self.csrf, &csrf_message(session_id), &tag).is_ok())
    }

    /// A sign-in half done, for the browser's second step: the password
    /// was right for `user_id`, and a code is to come before `expires`.
    /// The user id and expiry, MACed (another message domain of the same
    /// key); it proves nothing else and opens nothing by itself.
    pub fn second_factor_challenge(&self, user_id: Uuid, expires: Timestamp) -> String {
        let mut body = user_id.as_bytes().to_vec();
        body.extend_from_slice(&expires.unix_seconds().to_be_bytes());
        let tag = aws_lc_rs::hmac::sign(&self.csrf, &challenge_message(&body));
        body.extend_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The user a challenge from [`Self::second_factor_challenge`] names,
    /// if it is ours and has not expired at `now`.
    pub fn check_second_factor_challenge(&self, text: &str, now: Timestamp) -> Option<Uuid> {
        if text.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() != 16 + 8 + 32 {
            return None;
        }
        let (body, tag) = bytes.split_at(24);
        aws_lc_rs::hmac::verify(&self.csrf, &challenge_message(body), tag).ok()?;
        let user = Uuid::from_slice(&body[..16]).ok()?;
        let expires = i64::from_be_bytes(body[16..24].try_into().ok()?);
        (now.unix_seconds() < expires).then_some(user)
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid, now: Timestamp) -> anyhow::Result<String> {
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id,
            iat: now.unix_seconds(),
            exp: (now + self.ttl).unix_seconds(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
        };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }

    /// The claims of a valid, unexpired token signed with our key, or `None`.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> AccessTokens {
        AccessTokens::new(&SecretBox::new(Box::new(vec![7u8; 32])), time::Duration::minutes(15))
    }

    #[test]
    fn access_tokens_round_trip_and_reject_tampering() {
        let t = tokens();
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let jwt = t.issue(user, session, Timestamp::now()).unwrap();
        let claims = t.verify(&jwt).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, session));

        let mut tampered = jwt.clone();
        tampered.pop();
        tampered.push(if jwt.ends_with('A') { 'B' } else { 'A' });
        assert!(t.verify(&tampered).is_none());

        let other = AccessTokens::new(&SecretBox::new(Box::new(vec![8u8; 32])), time::Duration::minutes(15));
        assert!(other.verify(&jwt).is_none(), "a token signed with another key is refused");
    }

    #[test]
    fn expired_access_tokens_are_refused() {
        let t = tokens();
        let long_ago = Timestamp::now() - time::Duration::hours(1);
        let jwt = t.issue(Uuid::now_v7(), Uuid::now_v7(), long_ago).unwrap();
        assert!(t.verify(&jwt).is_none());
    }

    #[test]
    fn second_factor_challenges_name_their_user_until_they_expire() {
        let t = tokens();
        let user = Uuid::now_v7();
        let now = Timestamp::now();
        let challenge = t.second_factor_challenge(user, now + time::Duration::minutes(5));
        assert_eq!(t.check_second_factor_challenge(&challenge, now), Some(user));
        assert_eq!(t.check_second_factor_challenge(&challenge, now + time::Duration::minutes(6)), None);
        let mut tampered = challenge.into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(t.check_second_factor_challenge(&String::from_utf8(tampered).unwrap(), now), None);
        assert_eq!(t.check_second_factor_challenge("", now), None);
        assert_eq!(t.check_second_factor_challenge(&"A".repeat(10_000), now), None);
        // A CSRF token (same key, another domain) is not a challenge.
        assert_eq!(t.check_second_factor_challenge(&t.csrf_token(user), now), None);
    }

    #[test]
    fn opaque_tokens_have_prefix_and_hash() {
        let token = OpaqueToken::generate(TokenKind::ApiKey);
        assert!(token.text.starts_with("mkt_ak_"));
        assert!(looks_like(TokenKind::ApiKey, &token.text));
        assert!(!looks_like(TokenKind::Refresh, &token.text));
        assert_eq!(token.hash, hash_token(&token.text));
        assert_ne!(OpaqueToken::generate(TokenKind::ApiKey).text, token.text);
    }
}
