//! The blog article pipeline (seed 004, sections 3.3 and 4.2): SEO research
//! → content research → writer → editor (review, and refinement while the
//! score is below 8, at most twice) → companion social posts.

use marketer_protocol::activity::{
    BlogArticle, Headings, QualityReport, QualityScores, ResearchNotes, SeoData, SocialVariant, Source,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::llm::{Llm, Passage, Retriever};
use crate::platforms;
use crate::prompts;
use crate::run::{Result, Run, Validate, check_chars, check_filled, check_items};
use crate::social::{self, Brief};

/// Below this overall score the editor refines the draft.
pub const REFINE_BELOW: f32 = 8.0;
/// Refinement rounds at most.
pub const MAX_REFINEMENTS: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum SearchIntent {
    Informational,
    Commercial,
    Transactional,
    Navigational,
}

impl SearchIntent {
    fn as_str(self) -> &'static str {
        match self {
            SearchIntent::Informational => "informational",
            SearchIntent::Commercial => "commercial",
            SearchIntent::Transactional => "transactional",
            SearchIntent::Navigational => "navigational",
        }
    }
}

/// The SEO plan.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SeoReply {
    /// The one search phrase the piece should rank for.
    #[schemars(length(min = 2, max = 80))]
    primary_keyword: String,
    /// Supporting search phrases.
    #[schemars(length(min = 3, max = 8))]
    related_keywords: Vec<String>,
    search_intent: SearchIntent,
    /// The page title, 50 to 60 characters, with the primary keyword.
    #[schemars(length(min = 50, max = 60))]
    title: String,
    /// 150 to 160 characters, with the primary keyword.
    #[schemars(length(min = 150, max = 160))]
    meta_description: String,
    headings: HeadingsReply,
    /// What the piece covers, in order.
    #[schemars(length(min = 3, max = 10))]
    outline: Vec<String>,
    /// The length recommended, in words.
    #[schemars(range(min = 300, max = 5000))]
    target_word_count: u32,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HeadingsReply {
    #[schemars(length(min = 10, max = 90))]
    h1: String,
    #[schemars(length(min = 3, max = 7))]
    h2: Vec<String>,
    #[schemars(length(max = 12))]
    h3: Vec<String>,
}

impl Validate for SeoReply {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_chars(&mut p, "primary_keyword", &self.primary_keyword, 2, 80);
        check_items(&mut p, "related_keywords", &self.related_keywords, 3, 8);
        check_filled(&mut p, "related_keywords", &self.related_keywords);
        check_chars(&mut p, "title", &self.title, 50, 60);
        check_chars(&mut p, "meta_description", &self.meta_description, 150, 160);
        check_chars(&mut p, "headings.h1", &self.headings.h1, 10, 90);
        check_items(&mut p, "headings.h2", &self.headings.h2, 3, 7);
        check_filled(&mut p, "headings.h2", &self.headings.h2);
        check_items(&mut p, "headings.h3", &self.headings.h3, 0, 12);
        check_items(&mut p, "outline", &self.outline, 3, 10);
        check_filled(&mut p, "outline", &self.outline);
        if !(300..=5000).contains(&self.target_word_count) {
            p.push(format!("target_word_count must be 300 to 5000, but it is {}", self.target_word_count));
        }
        p
    }
}

/// Research notes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResearchReply {
    /// Statements a writer can safely make.
    #[schemars(length(min = 1, max = 12))]
    facts: Vec<String>,
    /// How the brand voice guidelines apply.
    #[schemars(length(max = 8))]
    brand_voice_notes: Vec<String>,
    /// What to check before publishing.
    #[schemars(length(max = 8))]
    gaps: Vec<String>,
}

impl Validate for ResearchReply {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        check_items(&mut p, "facts", &self.facts, 1, 12);
        check_filled(&mut p, "facts", &self.facts);
        check_items(&mut p, "brand_voice_notes", &self.brand_voice_notes, 0, 8);
        check_items(&mut p, "gaps", &self.gaps, 0, 8);
        p
    }
}

/// The editor's review: each score 0 to 10.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReviewReply {
    #[schemars(range(min = 0, max = 10))]
    grammar: f32,
    #[schemars(range(min = 0, max = 10))]
    readability: f32,
    #[schemars(range(min = 0, max = 10))]
    seo: f32,
    #[schemars(range(min = 0, max = 10))]
    brand_voice: f32,
    #[schemars(range(min = 0, max = 10))]
    structure: f32,
    /// 10 means the draft makes no claim that could be false or unsupported.
    #[schemars(range(min = 0, max = 10))]
    factual_risk: f32,
    #[schemars(range(min = 0, max = 10))]
    engagement: f32,
    /// Concrete improvements, most important first.
    #[schemars(length(max = 8))]
    suggestions: Vec<String>,
}

impl ReviewReply {
    fn scores(&self) -> QualityScores {
        QualityScores {
            grammar: self.grammar,
            readability: self.readability,
            seo: self.seo,
            brand_voice: self.brand_voice,
            structure: self.structure,
            factual_risk: self.factual_risk,
            engagement: self.engagement,
        }
    }

    /// The overall score: the mean of the dimensions, computed here rather
    /// than taken from the model, one decimal.
    fn overall(&self) -> f32 {
        let s = self.scores();
        let all = [s.grammar, s.readability, s.seo, s.brand_voice, s.structure, s.factual_risk, s.engagement];
        (all.iter().sum::<f32>() / all.len() as f32 * 10.0).round() / 10.0
    }
}

impl Validate for ReviewReply {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        let s = self.scores();
        for (name, value) in [
            ("grammar", s.grammar),
            ("readability", s.readability),
            ("seo", s.seo),
            ("brand_voice", s.brand_voice),
            ("structure", s.structure),
            ("factual_risk", s.factual_risk),
            ("engagement", s.engagement),
        ] {
            if !(0.0..=10.0).contains(&value) || !value.is_finite() {
                p.push(format!("{name} must be a score from 0 to 10, but it is {value}"));
            }
        }
        check_items(&mut p, "suggestions", &self.suggestions, 0, 8);
        p
    }
}

/// What the blog pipeline produced.
#[derive(Debug)]
pub(crate) struct Article {
    pub content: String,
    pub seo: SeoData,
    pub research: ResearchNotes,
    pub quality: QualityReport,
    pub social: Vec<SocialVariant>,
}

pub(crate) async fn article<L: Llm, R: Retriever>(
    run: &mut Run<'_, L>,
    documents: &R,
    input: &BlogArticle,
    brand_voice: &str,
) -> Result<Article> {
    let has_social = !input.platforms.is_empty();
    let base = json!({
        "content_type": "blog article",
        "topic": input.topic,
        "keywords": input.keywords,
        "audience": input.audience,
        "tone": input.tone.as_str(),
        "target_word_count": input.target_word_count,
        "brand_voice": brand_voice,
    });

    run.step("seo", 5, "Researching keywords and search intent");
    let seo: SeoReply = run.structured("seo", prompts::SEO_RESEARCH, &base).await?;
    let seo = SeoData {
        primary_keyword: seo.primary_keyword,
        related_keywords: seo.related_keywords,
        search_intent: seo.search_intent.as_str().to_owned(),
        title: seo.title,
        meta_description: seo.meta_description,
        headings: Headings { h1: seo.headings.h1, h2: seo.headings.h2, h3: seo.headings.h3 },
        outline: seo.outline,
        // The marketer's length wins over the model's recommendation.
        target_word_count: input.target_word_count,
    };

    run.step("research", 20, "Gathering facts and brand voice notes");
    let passages = match documents.unavailable() {
        Some(_) => Vec::new(),
        None => {
            // Seed 004: the topic, the primary keyword and related ones; the
            // marketer's own keywords are the first related ones.
            let mut queries = vec![input.topic.clone(), seo.primary_keyword.clone()];
            for keyword in input.keywords.iter().chain(&seo.related_keywords) {
                if queries.len() >= 6 {
                    break;
                }
                if !queries.iter().any(|q| q.eq_ignore_ascii_case(keyword)) {
                    queries.push(keyword.clone());
                }
            }
            documents.search(&queries, RESEARCH_PASSAGES).await?
        }
    };
    let context = with(&base, json!({ "seo": seo, "documents": prompt_passages(&passages) }));
    let notes: ResearchReply = run.structured("research", prompts::CONTENT_RESEARCH, &context).await?;
    let mut sources = vec![Source {
        title: "The request".into(),
        detail: "topic, keywords, audience and tone as the marketer gave them".into(),
    }];
    if !brand_voice.trim().is_empty() {
        sources
            .push(Source { title: "Brand voice guidelines".into(), detail: "the project's settings".into() });
    }
    sources.extend(passage_sources(&passages));
    let (grounding, note) = match documents.unavailable() {
        Some(why) => ("inputs_only", why),
        None if passages.is_empty() => {
            ("inputs_only", "none of the project's documents matched this topic".to_owned())
        }
        None => ("documents", String::new()),
    };
    let mut research = ResearchNotes {
        grounding: grounding.into(),
        // A model cites passages by number; a number that names no passage
        // would send a reader looking for a source that does not exist.
        facts: notes.facts.iter().map(|fact| known_citations(fact, passages.len())).collect(),
        brand_voice_notes: notes.brand_voice_notes,
        gaps: notes.gaps,
        sources,
        note,
    };

    run.step("writing", 35, "Writing the draft");
    let context = with(&base, json!({ "seo": seo, "research": research }));
    let mut draft = run.text("writing", prompts::WRITER, &context, 0.7, true).await?;

    let editing_end: u8 = if has_social { 75 } else { 92 };
    run.step("editing", 60, "Reviewing the draft");
    // The editor holds the draft to the company's own writing guidance,
    // where its documents have some.
    let guidance = match documents.unavailable() {
        Some(_) => Vec::new(),
        None => documents.search(&GUIDANCE_QUERIES.map(str::to_owned), GUIDANCE_PASSAGES).await?,
    };
    let base = with(&base, json!({ "guidance": prompt_passages(&guidance) }));
    research.sources.extend(guidance.iter().map(|p| {
        let label = section_label(p);
        Source {
            title: p.file.clone(),
            detail: if label.is_empty() {
                "the editor's guidance".into()
            } else {
                format!("the editor's guidance: {label}")
            },
        }
    }));
    let mut review = review(run, &base, &seo, &draft).await?;
    let mut history = vec![review.overall()];
    let mut rounds = 0;
    while review.overall() < REFINE_BELOW && rounds < MAX_REFINEMENTS {
        rounds += 1;
        let percent = 60 + u8::try_from(rounds).unwrap_or(2) * (editing_end - 60) / 3;
        run.step(
            "refining",
            percent,
            &format!("Refining the draft (round {rounds}; scored {:.1} of 10)", review.overall()),
        );
        let context = with(
            &base,
            json!({
                "seo": seo,
                "draft": draft,
                "scores": review.scores(),
                "suggestions": review.suggestions,
            }),
        );
        draft = run.text("refining", prompts::EDITOR_REFINE, &context, 0.3, true).await?;
        run.step("editing", percent, &format!("Reviewing the refined draft (round {rounds})"));
        review = self::review(run, &base, &seo, &draft).await?;
        history.push(review.overall());
    }
    let quality = QualityReport {
        overall: review.overall(),
        scores: review.scores(),
        suggestions: review.suggestions,
        refinement_rounds: rounds,
        history,
    };

    let social = if has_social {
        // The keywords first (the marketer chose them), then the topic's words.
        let mut hashtags: Vec<String> =
            input.keywords.iter().flat_map(|k| platforms::topic_hashtags(k).into_iter().take(1)).collect();
        hashtags.extend(platforms::topic_hashtags(&input.topic));
        let brief = Brief { topic: &input.topic, tone: input.tone, source: &draft, brand_voice, hashtags };
        social::posts(run, &input.platforms, &brief, 1, (editing_end, 94)).await?
    } else {
        Vec::new()
    };
    Ok(Article { content: draft, seo, research, quality, social })
}

async fn review<L: Llm>(
    run: &mut Run<'_, L>,
    base: &serde_json::Value,
    seo: &SeoData,
    draft: &str,
) -> Result<ReviewReply> {
    let context = with(base, json!({ "seo": seo, "draft": draft }));
    run.structured("editing", prompts::EDITOR_REVIEW, &context).await
}

/// How many passages of the project's documents the research step reads:
/// enough to ground a long article, few enough for a small model's context.
const RESEARCH_PASSAGES: usize = 8;

/// What the editor looks for in the project's documents.
const GUIDANCE_QUERIES: [&str; 3] = ["brand voice", "style guide", "tone of voice and words to use"];
const GUIDANCE_PASSAGES: usize = 3;

/// Passages as the prompts show them.
fn prompt_passages(passages: &[Passage]) -> serde_json::Value {
    passages.iter().map(|p| json!({ "file": p.file, "section": section_label(p), "text": p.text })).collect()
}

/// `text` without bracketed passage numbers (`[3]`, `[passage 3]`) that
/// name no passage of `count`; the others are kept as written.
fn known_citations(text: &str, count: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']').map(|c| open + c) else { break };
        let inner = rest[open + 1..close].trim();
        let number = inner.strip_prefix("passage").map_or(inner, str::trim).parse::<usize>().ok();
        out.push_str(&rest[..open]);
        match number {
            Some(n) if n == 0 || n > count => {
                // Drop the citation and the space before it.
                let trimmed = out.trim_end().len();
                out.truncate(trimmed);
            }
            _ => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// One source per passage, in the order the prompt numbered them.
fn passage_sources(passages: &[Passage]) -> impl Iterator<Item = Source> + '_ {
    passages.iter().enumerate().map(|(i, p)| {
        let label = section_label(p);
        Source {
            title: p.file.clone(),
            detail: if label.is_empty() {
                format!("passage {}", i + 1)
            } else {
                format!("passage {}: {label}", i + 1)
            },
        }
    })
}

fn section_label(p: &Passage) -> String {
    match (p.section.is_empty(), p.page) {
        (true, None) => String::new(),
        (true, Some(page)) => format!("page {page}"),
        (false, None) => p.section.clone(),
        (false, Some(page)) => format!("{}, page {page}", p.section),
    }
}

/// `base` with the fields of `extra` added.
pub(crate) fn with(base: &serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut merged = base.clone();
    if let (Some(target), serde_json::Value::Object(fields)) = (merged.as_object_mut(), extra) {
        target.extend(fields);
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_name_passages_that_exist() {
        assert_eq!(known_citations("Flu shots are free [1].", 2), "Flu shots are free [1].");
        assert_eq!(known_citations("Flu shots are free [3].", 2), "Flu shots are free.");
        assert_eq!(
            known_citations("Ten minutes [passage 2] at any clinic [passage 7]", 2),
            "Ten minutes [passage 2] at any clinic"
        );
        assert_eq!(known_citations("No passages [1], none at all [0].", 0), "No passages, none at all.");
        assert_eq!(known_citations("A [note] stays, so does [", 1), "A [note] stays, so does [");
    }

    #[test]
    fn overall_is_the_rounded_mean() {
        let review = ReviewReply {
            grammar: 9.0,
            readability: 8.0,
            seo: 7.0,
            brand_voice: 8.0,
            structure: 9.0,
            factual_risk: 6.0,
            engagement: 7.0,
            suggestions: vec![],
        };
        assert!((review.overall() - 7.7).abs() < f32::EPSILON);
        assert!(review.problems().is_empty());
        let bad = ReviewReply { grammar: 11.0, ..review };
        assert_eq!(bad.problems(), ["grammar must be a score from 0 to 10, but it is 11"]);
    }
}
