//! The engagement inbox on an agent: classifying items (which items a
//! job labels, and the labels that come back) and drafting a suggested
//! reply to one. The items' texts are not in the jobs: the agent fetches
//! them over mTLS from the gateway (`GET /agent/v1/classify/{job_id}`,
//! `GET /agent/v1/reply/{job_id}`), so a job's stored spec never holds
//! what people wrote. What comes back is labels, and, when the agent's
//! policy redacts, each item's text as the policy left it; or a draft
//! reply, as the policy leaves it.

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

/// A suggested reply to draft for one inbox item: in the brand's voice,
/// grounded in the project's documents when the agent holds its index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyJob {
    pub item_id: Uuid,
    /// `mastodon`, `x`, `bluesky`, ...
    pub platform: String,
    /// `mention`, `reply` or `listening`.
    pub kind: String,
    /// The project whose documents ground the reply, if one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<Uuid>,
    /// The project's brand voice guidelines; empty when it has none.
    #[serde(default)]
    pub brand_voice: String,
    /// Characters the reply may have (the platform's limit, less the
    /// mention of the author the control plane puts first).
    pub max_chars: u32,
}

/// `GET /agent/v1/reply/{job_id}`: what a reply job answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyContext {
    /// What the person wrote (as the agent's policy left it when it
    /// classified the item).
    pub text: String,
    /// The brand's post it answers, when it answers one the product
    /// published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_text: Option<String>,
    /// The author's display name, if the platform gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
}

/// A drafted reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyDraft {
    /// The reply, without the mention of the author.
    pub text: String,
    /// The documents the reply draws on (their names), in the order the
    /// model cited them; empty when it drew on none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Why the reply is not grounded in documents, when it is not (no
    /// index of the project on this agent, nothing relevant found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ungrounded: Option<String>,
}
