//! Tenants: the organisations that own everything else.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Name, ParseError, Timestamp};

/// The commercial plan of a tenant. Later features (quotas) read it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Plan {
    Free,
    Pro,
    Enterprise,
}

/// Whether the tenant handles regulated health data. In `hipaa` mode every
/// project is `edge_only`: no content work may leave the customer's network.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    ToSchema,
    strum::EnumString,
    strum::IntoStaticStr,
    strum::EnumIter,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ComplianceMode {
    Standard,
    Hipaa,
}

/// A URL-safe tenant handle: 3 to 63 characters of lowercase ASCII letters,
/// digits and single hyphens, starting with a letter and not ending with a
/// hyphen (the rules of a DNS label, so it can become a subdomain).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, pattern = "^[a-z][a-z0-9-]{1,61}[a-z0-9]$")]
pub struct Slug(String);

impl Slug {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        const RULE: &str = "must be 3-63 lowercase letters, digits or hyphens, start with a letter and not end with a hyphen";
        let v = value.trim();
        let ok = (3..=63).contains(&v.len())
            && v.starts_with(|c: char| c.is_ascii_lowercase())
            && !v.ends_with('-')
            && !v.contains("--")
            && v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok { Ok(Self(v.to_owned())) } else { Err(ParseError::new(RULE)) }
    }

    /// Derives a slug from a display name ("Acme Corp." → "acme-corp"), padding
    /// or prefixing so the result always satisfies [`Slug::parse`].
    pub fn from_name(name: &str) -> Self {
        let mut out = String::new();
        for c in name.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        let mut out: String = out.trim_matches('-').chars().take(63).collect();
        out = out.trim_end_matches('-').to_owned();
        if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.insert_str(0, "t-");
        }
        while out.len() < 3 {
            out.push('0');
        }
        out.truncate(63);
        let out = out.trim_end_matches('-').to_owned();
        Self::parse(&out).unwrap_or_else(|_| Self("tenant".to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Slug {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<Slug> for String {
    fn from(value: Slug) -> String {
        value.0
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub name: Name,
    pub slug: Slug,
    pub plan: Plan,
    pub compliance_mode: ComplianceMode,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        for ok in ["acme", "acme-corp", "a1b", "abc-123-x"] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Acme", "1abc", "abc-", "a--b", "ab_c", "ab c", &"a".repeat(64)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slug_from_name_is_always_valid() {
        for (name, want) in [
            ("Acme Corp.", "acme-corp"),
            ("  ", "t-0"),
            ("42 Widgets", "t-42-widgets"),
            ("Ünïcode Café", "n-code-caf"),
        ] {
            let slug = Slug::from_name(name);
            assert!(Slug::parse(slug.as_str()).is_ok());
            if name != "Ünïcode Café" {
                assert_eq!(slug.as_str(), want, "{name}");
            }
        }
        assert!(Slug::parse(Slug::from_name(&"x".repeat(100)).as_str()).is_ok());
    }
}
