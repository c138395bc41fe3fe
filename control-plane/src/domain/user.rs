//! People who sign in, and the credentials they sign in with.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Name, ParseError, Timestamp};

/// An e-mail address as typed by the user, validated against RFC 5322's
/// addr-spec with a mandatory domain part. Equality and uniqueness use the
/// [`normalized`](Email::normalized) form, so `Ann@Example.com` and
/// `ann@example.com` are the same account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, format = "email")]
pub struct Email(String);

impl Email {
    pub const MAX_LEN: usize = 254;

    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let v = value.trim();
        if v.len() > Self::MAX_LEN {
            return Err(ParseError::new("must be at most 254 characters"));
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            v,
            email_address::Options::default().without_display_text().with_required_tld(),
        )
        .map_err(|_| ParseError::new("must be an e-mail address such as name@example.com"))?;
        Ok(Self(parsed.as_str().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lookup key: the whole address lowercased. Lowercasing the local part
    /// is not RFC-pure, but every mail provider our customers use treats it
    /// case-insensitively, and two accounts differing only in case would be a
    /// support and security problem.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalized() == other.normalized()
    }
}
impl Eq for Email {}

impl TryFrom<String> for Email {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<Email> for String {
    fn from(value: Email) -> String {
        value.0
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password chosen by a person. Held as a secret so it can never be
/// logged or serialised by accident.
///
/// The policy follows NIST SP 800-63B: length is what matters (12 to 256
/// characters), every printable character is allowed, nothing about
/// composition is required.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(try_from = "String")]
#[schema(value_type = String, format = Password, min_length = 12, max_length = 256)]
pub struct Password(SecretString);

impl Password {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let len = value.chars().count();
        if len < Self::MIN_CHARS {
            return Err(ParseError::new(format!("must be at least {} characters", Self::MIN_CHARS)));
        }
        if len > Self::MAX_CHARS {
            return Err(ParseError::new(format!("must be at most {} characters", Self::MAX_CHARS)));
        }
        if value.chars().any(char::is_control) {
            return Err(ParseError::new("must not contain control characters"));
        }
        Ok(Self(SecretString::from(value.to_owned())))
    }

    /// A random 24-character password for generated accounts.
    pub fn generate() -> Self {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let text: String =
            (0..24).map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())])).collect();
        Self(SecretString::from(text))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl TryFrom<String> for Password {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A person with an account. The password hash never leaves the store layer's
/// credential lookups; this type does not carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: Email,
    pub display_name: Name,
    pub disabled: bool,
    /// When the person proved the address is theirs (a verification link,
    /// an e-mailed invitation, or the operator's word); `None`: not yet,
    /// and no notification e-mail goes to it.
    pub email_verified_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation() {
        for ok in ["a@example.com", "Ann.Lee+tag@Sub.Example.co.uk", " padded@example.org "] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in
            ["", "plain", "@example.com", "a@", "a@localhost", "Ann <a@example.com>", "a b@example.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Email::parse("Ann@Example.COM").unwrap(), Email::parse("ann@example.com").unwrap());
        assert_eq!(Email::parse("Ann@Example.COM").unwrap().as_str(), "Ann@Example.COM");
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("twelve chars").is_ok());
        assert!(Password::parse(&"p".repeat(257)).is_err());
        assert!(Password::parse("tab\tinside-password").is_err());
        let generated = Password::generate();
        assert_eq!(generated.expose().len(), 24);
        assert!(Password::parse(generated.expose()).is_ok());
        assert_eq!(format!("{generated:?}"), "Password([redacted])");
    }
}
