//! Projects (a brand or product line with its voice and LLM policy) and the
//! campaigns inside them.

use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Description, LongText, Name, ParseError, Timestamp};

/// Where a project's LLM work may run.
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
pub enum LlmPolicy {
    /// Only on the tenant's own edge agents; nothing leaves the customer's network.
    EdgeOnly,
    /// On an edge agent when one is available, otherwise on the tenant's
    /// configured cloud provider.
    CloudAllowed,
}

/// An LLM model reference as Ollama and OpenAI-compatible servers name them,
/// for example `llama3.2:3b` or `hf.co/org/repo:Q4_K_M`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(try_from = "String", into = "String")]
#[schema(value_type = String, example = "llama3.2:3b")]
pub struct ModelName(String);

impl ModelName {
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let v = value.trim();
        let ok = (1..=200).contains(&v.len())
            && v.chars().all(|c| c.is_ascii_alphanumeric() || "._:/-+@".contains(c));
        if ok {
            Ok(Self(v.to_owned()))
        } else {
            Err(ParseError::new(
                "must be 1-200 characters of letters, digits and . _ : / - + @ (for example llama3.2:3b)",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ModelName {
    type Error = ParseError;
    fn try_from(value: String) -> Result<Self, ParseError> {
        Self::parse(&value)
    }
}

impl From<ModelName> for String {
    fn from(value: ModelName) -> String {
        value.0
    }
}

/// A brand or product line: the unit that owns content, documents and policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Project {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: Name,
    pub description: Description,
    pub brand_voice: LongText,
    pub llm_policy: LlmPolicy,
    pub default_model: Option<ModelName>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A marketing campaign inside a project, optionally bounded in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Campaign {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub project_id: Uuid,
    pub name: Name,
    #[schema(value_type = Option<String>, format = Date)]
    #[serde(with = "super::iso_date::option")]
    pub start_date: Option<Date>,
    #[schema(value_type = Option<String>, format = Date)]
    #[serde(with = "super::iso_date::option")]
    pub end_date: Option<Date>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Campaign {
    /// The one cross-field rule of a campaign, checked wherever dates change.
    pub fn check_dates(start: Option<Date>, end: Option<Date>) -> Result<(), ParseError> {
        match (start, end) {
            (Some(s), Some(e)) if e < s => Err(ParseError::new("end_date must not be before start_date")),
            _ => Ok(()),
        }
    }
}
