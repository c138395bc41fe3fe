//! Marketing activities as they travel between the control plane and the
//! pipeline that produces them (on an agent, or the control plane's cloud
//! runner): what was asked for ([`ActivityJob`]) and what came out
//! ([`ActivityResult`]).

use serde::{Deserialize, Serialize};

/// A piece of content to produce, and everything the pipeline needs for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityJob {
    pub input: ActivityInput,
    /// The project's brand voice guidelines; empty when it has none.
    pub brand_voice: String,
    /// The project, whose documents (if the agent holds its index) ground
    /// the research and the editor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<uuid::Uuid>,
    /// Output budgets in tokens by step name (`seo`, `writing`, `social`,
    /// …), replacing the pipeline's own for those steps.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub output_budgets: std::collections::BTreeMap<String, u32>,
    /// What an earlier run of the same activity completed before it failed
    /// or was cancelled: its finished steps are reused, not run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Box<ActivityResult>>,
    /// What won the tenant's A/B tests, by platform: the social step's
    /// prompt receives its platform's note. Traits only (lengths,
    /// hashtags, times), never a post's text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub what_worked: Vec<WhatWorked>,
}

/// A short note of what won a platform's A/B tests, for the prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhatWorked {
    pub platform: Platform,
    pub note: String,
}

/// What a marketer asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActivityInput {
    BlogArticle(BlogArticle),
    SocialPostSet(SocialPostSet),
    ListingKit(ListingKit),
}

impl ActivityInput {
    /// The platforms it writes social posts for.
    pub fn platforms(&self) -> &[Platform] {
        match self {
            ActivityInput::BlogArticle(a) => &a.platforms,
            ActivityInput::SocialPostSet(s) => &s.platforms,
            ActivityInput::ListingKit(k) => &k.platforms,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ActivityInput::BlogArticle(_) => "blog_article",
            ActivityInput::SocialPostSet(_) => "social_post_set",
            ActivityInput::ListingKit(_) => "listing_kit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlogArticle {
    pub topic: String,
    pub keywords: Vec<String>,
    pub audience: String,
    pub tone: Tone,
    pub target_word_count: u32,
    /// Platforms for companion social posts; none for an article alone.
    pub platforms: Vec<Platform>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocialPostSet {
    /// What the posts are about; at least one of topic and source text.
    pub topic: String,
    /// Text to adapt (an announcement, an article); may be empty.
    pub source_text: String,
    pub platforms: Vec<Platform>,
    pub tone: Tone,
    pub variants_per_platform: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListingKit {
    pub listing: Listing,
    pub platforms: Vec<Platform>,
    pub tone: Tone,
}

/// A property for sale or rent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listing {
    pub address: String,
    /// In whole units of the listing's currency.
    pub price: u64,
    pub beds: u32,
    /// Half baths count as 0.5.
    pub baths: f32,
    pub square_feet: u32,
    pub key_features: Vec<String>,
    pub description: String,
    pub agent_name: String,
    pub agent_contact: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    Professional,
    Casual,
    Technical,
    Friendly,
}

impl Tone {
    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Professional => "professional",
            Tone::Casual => "casual",
            Tone::Technical => "technical",
            Tone::Friendly => "friendly",
        }
    }
}

/// A social platform with rules of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// X (formerly Twitter).
    #[serde(alias = "twitter")]
    X,
    Linkedin,
    Facebook,
    Instagram,
    Tiktok,
    Threads,
    Pinterest,
}

impl Platform {
    pub const ALL: [Platform; 7] = [
        Platform::X,
        Platform::Linkedin,
        Platform::Facebook,
        Platform::Instagram,
        Platform::Tiktok,
        Platform::Threads,
        Platform::Pinterest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::X => "x",
            Platform::Linkedin => "linkedin",
            Platform::Facebook => "facebook",
            Platform::Instagram => "instagram",
            Platform::Tiktok => "tiktok",
            Platform::Threads => "threads",
            Platform::Pinterest => "pinterest",
        }
    }
}

/// What the pipeline produced, and how.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityResult {
    /// The finished content in Markdown: the article, the social post set's
    /// summary, or the listing description.
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seo: Option<SeoData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub research: Option<ResearchNotes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<QualityReport>,
    #[serde(default)]
    pub social: Vec<SocialVariant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flyer: Option<FlyerText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance: Option<ComplianceReview>,
    /// The listing kit's analysis of the listing (kept so a resumed run
    /// need not redo it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<ListingAnalysis>,
    /// What a reviewer should know about how the model behaved: answers cut
    /// off at their budget, instructions repeated back, loops, a draft far
    /// below its length, posts withheld.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// Every LLM call, in order.
    pub steps: Vec<StepRecord>,
    pub provenance: Provenance,
}

/// Something about the result a reviewer should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// The step it concerns (`writing`, `social`, …).
    pub step: String,
    /// `truncated`, `prompt_echo`, `repetition`, `too_short`, `withheld`.
    pub code: String,
    pub message: String,
}

/// The listing kit's analysis step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListingAnalysis {
    pub headline_ideas: Vec<String>,
    pub selling_points: Vec<String>,
    pub property_type: String,
    pub price_positioning: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeoData {
    pub primary_keyword: String,
    pub related_keywords: Vec<String>,
    /// informational, commercial, transactional or navigational.
    pub search_intent: String,
    /// 50 to 60 characters.
    pub title: String,
    /// 150 to 160 characters.
    pub meta_description: String,
    pub headings: Headings,
    pub outline: Vec<String>,
    pub target_word_count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headings {
    pub h1: String,
    pub h2: Vec<String>,
    pub h3: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResearchNotes {
    /// What the notes stand on: `inputs_only` (the request and the brand
    /// voice), or `documents` (the project's own documents).
    pub grounding: String,
    pub facts: Vec<String>,
    pub brand_voice_notes: Vec<String>,
    pub gaps: Vec<String>,
    pub sources: Vec<Source>,
    /// Why the notes stand on the request alone, when they do.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub title: String,
    /// Where in it: a section, a page, or what part of the request.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// 0 to 10, of the final content.
    pub overall: f32,
    pub scores: QualityScores,
    pub suggestions: Vec<String>,
    /// Refinement rounds that ran (at most 2).
    pub refinement_rounds: u32,
    /// The overall score of each review, first to last.
    pub history: Vec<f32>,
}

/// Each 0 to 10; for `factual_risk`, 10 means no risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityScores {
    pub grammar: f32,
    pub readability: f32,
    pub seo: f32,
    pub brand_voice: f32,
    pub structure: f32,
    pub factual_risk: f32,
    pub engagement: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocialVariant {
    pub platform: Platform,
    pub text: String,
    /// Characters as the platform counts them (Unicode scalar values).
    pub char_count: u32,
    pub char_limit: u32,
    pub hashtags: Vec<String>,
    /// How the platform's rules were met: `as_written`, `hashtags_added`
    /// (fewer hashtags than the platform asks for; the topic's words made
    /// up the rest), `regenerated` (the first answer was over the limit) or
    /// `trimmed` (cut at a sentence boundary after a regeneration still
    /// was).
    pub enforcement: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlyerText {
    pub headline: String,
    pub property_summary: String,
    pub features: Vec<String>,
    pub call_to_action: String,
    pub disclaimers: String,
}

/// The Fair Housing review of a listing kit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComplianceReview {
    pub passed: bool,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The offending wording, as written.
    pub phrase: String,
    /// Where: `description`, `flyer`, or `social:<platform>`.
    pub location: String,
    pub reason: String,
    pub suggestion: String,
    /// `rules` (the built-in phrase list) or `model` (the LLM review).
    pub source: String,
}

/// One LLM call of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: String,
    pub template: String,
    pub template_version: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub duration_ms: u64,
    /// Time the model spent reading the prompt and writing the answer, as
    /// it reports them (0 when it does not).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prompt_eval_duration_ns: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub eval_duration_ns: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub load_duration_ns: u64,
    /// The output budget the step had, in tokens.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_tokens: u64,
    /// Why the model stopped: `stop` (it finished) or `length` (it reached
    /// the budget); empty when the backend does not say.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub done_reason: String,
    /// What happened beyond a plain answer: `repaired` (an invalid structured
    /// answer was fixed on the second try), `regenerated` (a quality gate
    /// asked again), `reused` (taken from an earlier run), or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// Values of a structured answer that were clamped, defaulted or
    /// dropped rather than failing the run, for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<String>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How the result was made.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `ollama` on an agent, or `openai_compatible` in the cloud.
    pub backend: String,
    pub model: String,
    pub temperature: Option<f32>,
    /// The prompt templates used, as `name@version`.
    pub templates: Vec<String>,
    pub pipeline_version: u32,
}
