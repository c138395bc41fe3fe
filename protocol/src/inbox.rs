//! Classifying the engagement inbox on an agent: which items a job
//! labels, and the labels that come back. The items' texts are not in the
//! job: the agent fetches them over mTLS from the gateway
//! (`GET /agent/v1/classify/{job_id}`), so the job's stored spec never
//! holds what people wrote. What comes back is labels, and, when the
//! agent's policy redacts, each item's text as the policy left it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Items one job classifies at most.
pub const MAX_CLASSIFY_ITEMS: usize = 50;

/// An item to classify (its text is fetched from the gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifyItem {
    pub id: Uuid,
    /// `mastodon`, `x`, `bluesky`, ...
    pub platform: String,
    /// `mention`, `reply` or `listening`.
    pub kind: String,
}

/// `GET /agent/v1/classify/{job_id}`: the texts of a classify job's items,
/// in the job's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassifyTexts {
    pub texts: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sentiment {
    Positive,
    Neutral,
    Negative,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    Question,
    Complaint,
    Praise,
    PurchaseInterest,
    Spam,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    Low,
    Normal,
    High,
}

macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($name => Some($ty::$variant),)* _ => None }
            }
        }
    };
}

names!(Sentiment { Positive => "positive", Neutral => "neutral", Negative => "negative" });
names!(Intent {
    Question => "question",
    Complaint => "complaint",
    Praise => "praise",
    PurchaseInterest => "purchase_interest",
    Spam => "spam",
    Other => "other",
});
names!(Urgency { Low => "low", Normal => "normal", High => "high" });

/// One item's labels, in the job's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemLabels {
    pub sentiment: Sentiment,
    /// From -1 (very negative) to 1 (very positive).
    pub sentiment_score: f32,
    pub intent: Intent,
    pub urgency: Urgency,
    /// ISO 639-1 (`en`, `de`), or `und` when unknown.
    pub language: String,
    /// Personal or health data: the model's reading, or identifiers the
    /// agent's detector found.
    pub personal_data: bool,
    /// The text as the agent's policy left it: the control plane keeps
    /// this instead of what it collected. Agents always send it; the
    /// control plane's own cloud runner does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Whether the policy redacted anything in `text`.
    #[serde(default)]
    pub redacted: bool,
}
