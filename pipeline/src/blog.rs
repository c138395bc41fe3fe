//! The blog article pipeline (seed 004, sections 3.3 and 4.2): SEO research
//! → content research → writer → editor (review, and refinement while the
//! score is below 8, at most twice) → companion social posts.

use marketer_protocol::activity::{
    BlogArticle, Headings, QualityReport, QualityScores, ResearchNotes, SeoData, Source, WhatWorked,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use crate::gates;
use crate::llm::{Llm, Passage, Retriever};
use crate::platforms;
use crate::prompts;
use crate::run::Written;
use crate::run::{PipelineError, Result, Run, codes};
use crate::social::{self, Brief};

/// Output budgets of the structured steps, in tokens: each fits the
/// longest answer its schema allows (a test holds them to it), so a model
/// that loops inside the grammar is stopped by the schema, not cut off.
const SEO_BUDGET: u32 = 1_400;
const RESEARCH_BUDGET: u32 = 1_600;
const REVIEW_BUDGET: u32 = 700;

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

/// The SEO plan. The length is the marketer's to choose, never asked of
/// the model.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SeoReply {
    /// The one search phrase the piece should rank for.
    #[schemars(length(min = 2, max = 80))]
    primary_keyword: String,
    /// Supporting search phrases.
    #[schemars(length(min = 3, max = 8), inner(length(min = 2, max = 60)))]
    related_keywords: Vec<String>,
    search_intent: SearchIntent,
    /// The page title, 50 to 60 characters, with the primary keyword.
    #[schemars(length(min = 20, max = 60))]
    title: String,
    /// 150 to 160 characters, with the primary keyword.
    #[schemars(length(min = 50, max = 160))]
    meta_description: String,
    headings: HeadingsReply,
    /// What the piece covers, in order.
    #[schemars(length(min = 3, max = 10), inner(length(min = 3, max = 100)))]
    outline: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HeadingsReply {
    #[schemars(length(min = 10, max = 90))]
    h1: String,
    #[schemars(length(min = 3, max = 7), inner(length(min = 3, max = 80)))]
    h2: Vec<String>,
    #[schemars(length(max = 12), inner(length(min = 3, max = 80)))]
    h3: Vec<String>,
}

/// Research notes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResearchReply {
    /// Statements a writer can safely make.
    #[schemars(length(min = 1, max = 8), inner(length(min = 10, max = 280)))]
    facts: Vec<String>,
    /// How the brand voice guidelines apply.
    #[schemars(length(max = 5), inner(length(min = 3, max = 200)))]
    brand_voice_notes: Vec<String>,
    /// What to check before publishing.
    #[schemars(length(max = 5), inner(length(min = 3, max = 200)))]
    gaps: Vec<String>,
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
    #[schemars(length(max = 8), inner(length(min = 3, max = 200)))]
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

/// The pipeline, its outputs kept in the run as each step completes; steps
/// an earlier run completed are reused.
pub(crate) async fn article<L: Llm, R: Retriever>(
    run: &mut Run<'_, L>,
    documents: &R,
    input: &BlogArticle,
    brand_voice: &str,
    what_worked: &[WhatWorked],
) -> Result<()> {
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
    let earlier = run.resumed();

    let seo = if let Some(seo) = earlier.and_then(|r| r.seo.clone()) {
        run.reuse(&["seo"]);
        seo
    } else {
        run.step("seo", 5, "Researching keywords and search intent");
        let budget = run.budget("seo", SEO_BUDGET);
        let seo: SeoReply = run.structured("seo", prompts::SEO_RESEARCH, &base, budget).await?;
        SeoData {
            primary_keyword: seo.primary_keyword,
            related_keywords: seo.related_keywords,
            search_intent: seo.search_intent.as_str().to_owned(),
            title: seo.title,
            meta_description: seo.meta_description,
            headings: Headings { h1: seo.headings.h1, h2: seo.headings.h2, h3: seo.headings.h3 },
            outline: seo.outline,
            // The marketer's length; never asked of the model.
            target_word_count: input.target_word_count,
        }
    };
    run.keep(|r| r.seo = Some(seo.clone()));

    let mut research = if let Some(research) = earlier.and_then(|r| r.research.clone()) {
        run.reuse(&["research"]);
        research
    } else {
        run.step("research", 20, "Gathering facts and brand voice notes");
        research(run, documents, input, brand_voice, &base, &seo).await?
    };
    run.keep(|r| r.research = Some(research.clone()));

    // Writing, then editing: an earlier run's draft is reused, and its
    // review with it when that was done too.
    let writing_budget = run.budget("writing", writing_budget(input.target_word_count));
    let earlier_draft = earlier.filter(|r| !r.content.trim().is_empty());
    let mut draft = if let Some(earlier) = earlier_draft {
        run.reuse(&["writing", "extend"]);
        earlier.content.clone()
    } else {
        run.step("writing", 35, "Writing the draft");
        let context = with(&base, json!({ "seo": seo, "research": research }));
        let written = run.text("writing", prompts::WRITER, &context, 0.7, true, writing_budget).await?;
        let draft = usable_draft(run, "writing", written)?;
        extend_if_short(run, &base, &seo, draft, input.target_word_count, writing_budget).await?
    };
    run.keep(|r| r.content.clone_from(&draft));

    let editing_end: u8 = if has_social { 75 } else { 92 };
    let quality = if let Some(quality) = earlier_draft.and_then(|r| r.quality.clone()) {
        run.reuse(&["editing", "refining"]);
        quality
    } else {
        run.step("editing", 60, "Reviewing the draft");
        // The editor holds the draft to the company's own writing guidance,
        // where its documents have some.
        let guidance = match documents.unavailable() {
            Some(_) => Vec::new(),
            None => documents.search(&GUIDANCE_QUERIES.map(str::to_owned), GUIDANCE_PASSAGES).await?,
        };
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
        run.keep(|r| r.research = Some(research.clone()));
        let base = with(&base, json!({ "guidance": prompt_passages(&guidance) }));
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
            let refined =
                run.text("refining", prompts::EDITOR_REFINE, &context, 0.3, true, writing_budget).await?;
            // A refinement that echoed, looped or shrank the draft to a
            // fraction is not an improvement: the draft stays.
            let shrank = gates::word_count(&refined.content) * 2 < gates::word_count(&draft);
            if let Some(problem) = &refined.problem {
                run.warn(
                    "refining",
                    problem.code(),
                    format!("Refinement round {rounds} was not used: {}", problem.describe()),
                );
                break;
            }
            if shrank {
                run.warn(
                    "refining",
                    "too_short",
                    format!("Refinement round {rounds} was not used: it cut the draft to less than half"),
                );
                break;
            }
            draft = refined.content;
            run.keep(|r| r.content.clone_from(&draft));
            run.step("editing", percent, &format!("Reviewing the refined draft (round {rounds})"));
            review = self::review(run, &base, &seo, &draft).await?;
            history.push(review.overall());
        }
        QualityReport {
            overall: review.overall(),
            scores: review.scores(),
            suggestions: review.suggestions,
            refinement_rounds: rounds,
            history,
        }
    };
    run.keep(|r| r.quality = Some(quality));

    if has_social {
        // The keywords first (the marketer chose them), then the topic's
        // words, then the plan's keywords.
        let mut hashtags: Vec<String> =
            input.keywords.iter().flat_map(|k| platforms::topic_hashtags(k).into_iter().take(1)).collect();
        hashtags.extend(platforms::topic_hashtags(&input.topic));
        for keyword in &seo.related_keywords {
            hashtags.extend(platforms::topic_hashtags(keyword).into_iter().take(1));
        }
        let brief = Brief {
            topic: &input.topic,
            tone: input.tone,
            source: &draft,
            brand_voice,
            hashtags,
            what_worked,
        };
        social::posts(run, &input.platforms, &brief, 1, (editing_end, 94)).await?;
    }
    Ok(())
}

/// Tokens for an article of `words` words: about 1.3 tokens a word in
/// English, plus Markdown and room to finish, within 512 to 8,192.
fn writing_budget(words: u32) -> u32 {
    words.saturating_mul(2).saturating_add(256).clamp(512, 8_192)
}

/// A draft fit to go on: what the gates left, with the problem said; a
/// draft with almost nothing left fails the run, saying what to do.
fn usable_draft<L: Llm>(run: &mut Run<'_, L>, step: &str, written: Written) -> Result<String> {
    let Some(problem) = written.problem else { return Ok(written.content) };
    if gates::word_count(&written.content) < MIN_DRAFT_WORDS {
        return Err(PipelineError {
            code: codes::UNUSABLE_OUTPUT.into(),
            message: format!(
                "the {step} step's draft from {} was unusable: {}, twice. The steps completed before it are \
                 kept: regenerate to resume from this step, or use a larger model (1B parameters or more)",
                run.model(),
                problem.describe()
            ),
            retryable: false,
        });
    }
    run.warn(
        step,
        problem.code(),
        format!("The draft: {}, twice; the sentences that did were removed", problem.describe()),
    );
    Ok(written.content)
}

/// Fewer words than this is not a draft.
const MIN_DRAFT_WORDS: usize = 40;

/// A draft far below its target length (under half) is extended once; if
/// it stays short, the result says so.
async fn extend_if_short<L: Llm>(
    run: &mut Run<'_, L>,
    base: &serde_json::Value,
    seo: &SeoData,
    draft: String,
    target: u32,
    budget: u32,
) -> Result<String> {
    let words = gates::word_count(&draft);
    let target = usize::try_from(target).unwrap_or(usize::MAX);
    if words * 2 >= target {
        return Ok(draft);
    }
    run.step("extend", 45, &format!("Extending the draft ({words} of about {target} words)"));
    let context = with(base, json!({ "seo": seo, "draft": draft, "words": words }));
    let extended = run.text("extend", prompts::WRITER_EXTEND, &context, 0.6, true, budget).await?;
    let longer = extended.problem.is_none() && gates::word_count(&extended.content) > words;
    let draft = if longer { extended.content } else { draft };
    let words = gates::word_count(&draft);
    if words * 2 < target {
        run.warn(
            "writing",
            "too_short",
            format!("The article has {words} words, far below the {target} asked for, after one extension"),
        );
    }
    Ok(draft)
}

async fn research<L: Llm, R: Retriever>(
    run: &mut Run<'_, L>,
    documents: &R,
    input: &BlogArticle,
    brand_voice: &str,
    base: &serde_json::Value,
    seo: &SeoData,
) -> Result<ResearchNotes> {
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
    let context = with(base, json!({ "seo": seo, "documents": prompt_passages(&passages) }));
    let budget = run.budget("research", RESEARCH_BUDGET);
    let notes: ResearchReply =
        run.structured("research", prompts::CONTENT_RESEARCH, &context, budget).await?;
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
    Ok(ResearchNotes {
        grounding: grounding.into(),
        // A model cites passages by number; a number that names no passage
        // would send a reader looking for a source that does not exist.
        facts: notes.facts.iter().map(|fact| known_citations(fact, passages.len())).collect(),
        brand_voice_notes: notes.brand_voice_notes,
        gaps: notes.gaps,
        sources,
        note,
    })
}

async fn review<L: Llm>(
    run: &mut Run<'_, L>,
    base: &serde_json::Value,
    seo: &SeoData,
    draft: &str,
) -> Result<ReviewReply> {
    let context = with(base, json!({ "seo": seo, "draft": draft }));
    let budget = run.budget("editing", REVIEW_BUDGET);
    run.structured("editing", prompts::EDITOR_REVIEW, &context, budget).await
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
    fn every_structured_budget_fits_its_longest_answer() {
        use crate::run::budget_fits;
        assert!(
            budget_fits::<SeoReply>(SEO_BUDGET),
            "{:?}",
            crate::lenient::max_chars(&crate::run::schema_for::<SeoReply>())
        );
        assert!(
            budget_fits::<ResearchReply>(RESEARCH_BUDGET),
            "{:?}",
            crate::lenient::max_chars(&crate::run::schema_for::<ResearchReply>())
        );
        assert!(
            budget_fits::<ReviewReply>(REVIEW_BUDGET),
            "{:?}",
            crate::lenient::max_chars(&crate::run::schema_for::<ReviewReply>())
        );
    }

    #[test]
    fn the_length_is_never_asked_of_the_model() {
        let schema = crate::run::schema_for::<SeoReply>().to_string();
        assert!(!schema.contains("target_word_count"), "{schema}");
        assert!(crate::lenient::unknown_keywords(&crate::run::schema_for::<SeoReply>()).is_empty());
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
        // Out-of-range scores are clamped by the schema, not failed.
        let schema = crate::run::schema_for::<ReviewReply>();
        let checked = crate::lenient::check(
            serde_json::json!({
                "grammar": 11, "readability": 8, "seo": 7, "brand_voice": 8, "structure": 9,
                "factual_risk": -1, "engagement": 7, "suggestions": []
            }),
            &schema,
        );
        assert!(checked.problems.is_empty(), "{:?}", checked.problems);
        assert_eq!(
            (checked.value["grammar"].as_f64(), checked.value["factual_risk"].as_f64()),
            (Some(10.0), Some(0.0))
        );
    }
}
