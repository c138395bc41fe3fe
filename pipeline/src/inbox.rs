//! The engagement inbox's model work. Classifying: each item's
//! sentiment, intent, urgency, language and whether it holds personal
//! data, several items per model call (a busy account must not mean one
//! call per comment); the agent runs it on its Ollama, the control plane's
//! cloud runner on a tenant's provider for items the policy lets leave.
//! Drafting a reply: one item's suggested answer in the brand's voice,
//! grounded in the project's documents (the passages it cites are named);
//! only agents draft replies.

use std::collections::BTreeMap;

use marketer_protocol::Usage;
use marketer_protocol::inbox::{Intent, ItemLabels, ReplyDraft, Sentiment, Urgency};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::llm::{Llm, Progress, Retriever};
use crate::prompts;
use crate::run::{PipelineError, Run, codes};

/// Items per model call at most.
pub const BATCH_ITEMS: usize = 10;
/// Characters of text per model call at most (longer batches are split).
const BATCH_CHARS: usize = 6_000;
/// Characters of one item the model sees (the start says what it is about).
const ITEM_CHARS: usize = 1_500;
/// Output budget of one call: fits the longest answer for a full batch.
const BUDGET: u32 = 900;

/// An item to classify.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    pub platform: &'a str,
    pub kind: &'a str,
    pub text: &'a str,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ClassifyReply {
    #[schemars(length(min = 1, max = 10))]
    items: Vec<ReplyItem>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReplyItem {
    /// The message's number as given.
    #[schemars(range(min = 1, max = 10))]
    n: u32,
    sentiment: ModelSentiment,
    /// From -1 (very negative) to 1 (very positive).
    #[schemars(range(min = -1.0, max = 1.0))]
    score: f32,
    intent: ModelIntent,
    urgency: ModelUrgency,
    /// ISO 639-1, for example `en`.
    #[schemars(length(min = 2, max = 3))]
    language: String,
    personal_data: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ModelSentiment {
    Positive,
    Neutral,
    Negative,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ModelIntent {
    Question,
    Complaint,
    Praise,
    PurchaseInterest,
    Spam,
    Other,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum ModelUrgency {
    Low,
    Normal,
    High,
}

#[derive(Serialize)]
struct PromptItem<'a> {
    n: usize,
    platform: &'a str,
    kind: &'a str,
    text: String,
}

struct Quiet;

impl Progress for Quiet {
    fn step(&mut self, _step: &str, _percent: u8, _message: &str) {}
    fn text(&mut self, _text: &str) {}
    fn checkpoint(&mut self, _partial: &marketer_protocol::activity::ActivityResult, _usage: &Usage) {}
}

/// Labels for each of `items`, in order, and what the calls cost. An
/// answer that leaves items out is asked again for those alone, once.
pub async fn classify<L: Llm>(
    llm: &L,
    items: &[Item<'_>],
) -> Result<(Vec<ItemLabels>, Usage), PipelineError> {
    let budgets = BTreeMap::new();
    let mut quiet = Quiet;
    let mut run = Run::new(llm, &mut quiet, &budgets, None);
    let mut labels: Vec<Option<ItemLabels>> = vec![None; items.len()];
    for round in 0..2 {
        let missing: Vec<usize> = (0..items.len()).filter(|i| labels[*i].is_none()).collect();
        for batch in batches(items, &missing) {
            let prompt: Vec<PromptItem<'_>> = batch
                .iter()
                .enumerate()
                .map(|(n, i)| PromptItem {
                    n: n + 1,
                    platform: items[*i].platform,
                    kind: items[*i].kind,
                    text: cut(items[*i].text, ITEM_CHARS),
                })
                .collect();
            let reply: ClassifyReply = run
                .structured(
                    "classify",
                    prompts::CLASSIFY_INBOX,
                    &serde_json::json!({ "items": prompt }),
                    BUDGET,
                )
                .await?;
            for answer in reply.items {
                let Some(index) = usize::try_from(answer.n).ok().and_then(|n| n.checked_sub(1)) else {
                    continue;
                };
                if let Some(item) = batch.get(index) {
                    labels[*item].get_or_insert_with(|| answer.labels());
                }
            }
        }
        if round == 0 && labels.iter().all(Option::is_some) {
            break;
        }
    }
    let result = run.finish();
    let usage = crate::run::usage(&result.steps);
    let missing = labels.iter().filter(|l| l.is_none()).count();
    if missing > 0 {
        return Err(PipelineError {
            code: codes::INVALID_OUTPUT.into(),
            message: format!(
                "the model's answers left {missing} of {} items without labels, also when asked for them alone",
                items.len()
            ),
            retryable: true,
        });
    }
    Ok((labels.into_iter().flatten().collect(), usage))
}

/// Passages a reply's prompt holds at most.
const REPLY_PASSAGES: usize = 4;
/// Characters of one passage in a reply's prompt.
const PASSAGE_CHARS: usize = 800;
/// Output budget of a reply's call: fits the longest answer.
const REPLY_BUDGET: u32 = 400;

/// The item a reply answers.
#[derive(Debug, Clone, Copy)]
pub struct ReplyInput<'a> {
    pub platform: &'a str,
    pub kind: &'a str,
    pub text: &'a str,
    pub post_text: Option<&'a str>,
    pub author: Option<&'a str>,
    pub brand_voice: &'a str,
    /// Characters the reply may have.
    pub max_chars: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReplyAnswer {
    /// The reply, without the person's handle.
    #[schemars(length(min = 1, max = 600))]
    reply: String,
    /// The numbers of the sources the reply uses.
    #[schemars(length(max = 4))]
    sources: Vec<u32>,
}

#[derive(Serialize)]
struct PromptSource {
    n: usize,
    file: String,
    text: String,
}

/// A suggested reply to one item: the project's documents searched with
/// what the person wrote (and the post they answered), the best passages
/// given to the model, the files of those it cites named. A reply longer
/// than the platform allows is cut at its last sentence that fits.
pub async fn draft_reply<L: Llm, R: Retriever>(
    llm: &L,
    documents: &R,
    input: &ReplyInput<'_>,
) -> Result<(ReplyDraft, Usage), PipelineError> {
    let mut queries = vec![cut(input.text, 300)];
    if let Some(post) = input.post_text.filter(|p| !p.trim().is_empty()) {
        queries.push(cut(post, 300));
    }
    let passages = match documents.unavailable() {
        Some(_) => Vec::new(),
        None => documents.search(&queries, REPLY_PASSAGES).await.map_err(|e| PipelineError {
            code: e.code,
            message: e.message,
            retryable: e.retryable,
        })?,
    };
    let sources: Vec<PromptSource> = passages
        .iter()
        .enumerate()
        .map(|(i, p)| PromptSource { n: i + 1, file: p.file.clone(), text: cut(&p.text, PASSAGE_CHARS) })
        .collect();
    let budgets = BTreeMap::new();
    let mut quiet = Quiet;
    let mut run = Run::new(llm, &mut quiet, &budgets, None);
    let answer: ReplyAnswer = run
        .structured(
            "reply",
            prompts::REPLY_INBOX,
            &serde_json::json!({
                "platform": input.platform,
                "kind": input.kind,
                "text": cut(input.text, ITEM_CHARS),
                "post_text": input.post_text.map(|p| cut(p, ITEM_CHARS)),
                "author": input.author,
                "brand_voice": cut(input.brand_voice, 2_000),
                "max_chars": input.max_chars,
                "sources": sources,
            }),
            REPLY_BUDGET,
        )
        .await?;
    let usage = crate::run::usage(&run.finish().steps);
    let text = fit(answer.reply.trim(), input.max_chars);
    if text.is_empty() {
        return Err(PipelineError {
            code: codes::INVALID_OUTPUT.into(),
            message: "the model's reply was empty".into(),
            retryable: true,
        });
    }
    let mut cited: Vec<String> = Vec::new();
    for n in answer.sources {
        let file = usize::try_from(n).ok().and_then(|n| n.checked_sub(1)).and_then(|i| sources.get(i));
        if let Some(source) = file
            && !cited.contains(&source.file)
        {
            cited.push(source.file.clone());
        }
    }
    let ungrounded = if !cited.is_empty() {
        None
    } else if let Some(why) = documents.unavailable() {
        Some(why)
    } else if sources.is_empty() {
        Some("nothing in the project's documents matched the message".to_owned())
    } else {
        Some("the reply uses none of the passages found".to_owned())
    };
    Ok((ReplyDraft { text, sources: cited, ungrounded }, usage))
}

/// `text` within `max` characters: whole, else up to its last sentence
/// end that fits, else its last whole word and an ellipsis.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let head: String = text.chars().take(max.saturating_sub(1)).collect();
    if let Some(end) = head.rfind(['.', '!', '?']).filter(|end| *end >= head.len() / 2) {
        return head[..=end].to_owned();
    }
    match head.rfind(char::is_whitespace) {
        Some(space) if space > 0 => format!("{}…", head[..space].trim_end()),
        _ => format!("{head}…"),
    }
}

impl ReplyItem {
    fn labels(&self) -> ItemLabels {
        let language = self.language.trim().to_ascii_lowercase();
        let language =
            if (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase()) {
                language
            } else {
                "und".to_owned()
            };
        ItemLabels {
            sentiment: match self.sentiment {
                ModelSentiment::Positive => Sentiment::Positive,
                ModelSentiment::Neutral => Sentiment::Neutral,
                ModelSentiment::Negative => Sentiment::Negative,
            },
            sentiment_score: if self.score.is_finite() { self.score.clamp(-1.0, 1.0) } else { 0.0 },
            intent: match self.intent {
                ModelIntent::Question => Intent::Question,
                ModelIntent::Complaint => Intent::Complaint,
                ModelIntent::Praise => Intent::Praise,
                ModelIntent::PurchaseInterest => Intent::PurchaseInterest,
                ModelIntent::Spam => Intent::Spam,
                ModelIntent::Other => Intent::Other,
            },
            urgency: match self.urgency {
                ModelUrgency::Low => Urgency::Low,
                ModelUrgency::Normal => Urgency::Normal,
                ModelUrgency::High => Urgency::High,
            },
            language,
            personal_data: self.personal_data,
            text: None,
            redacted: false,
        }
    }
}

/// `wanted` (indexes into `items`) in batches of at most [`BATCH_ITEMS`]
/// items and [`BATCH_CHARS`] characters (an item longer than that alone).
fn batches(items: &[Item<'_>], wanted: &[usize]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut chars = 0;
    for &i in wanted {
        let size = items[i].text.chars().count().min(ITEM_CHARS);
        match out.last_mut() {
            Some(batch) if batch.len() < BATCH_ITEMS && chars + size <= BATCH_CHARS => {
                batch.push(i);
                chars += size;
            }
            _ => {
                out.push(vec![i]);
                chars = size;
            }
        }
    }
    out
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let head: String = text.chars().take(max).collect();
        format!("{head} …")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_fits_a_full_batchs_answer() {
        use crate::run::{budget_fits, schema_for};
        let max = crate::lenient::max_chars(&schema_for::<ClassifyReply>());
        assert!(budget_fits::<ClassifyReply>(BUDGET), "{max:?}");
    }

    #[test]
    fn a_replys_budget_fits_its_longest_answer() {
        assert!(crate::run::budget_fits::<ReplyAnswer>(REPLY_BUDGET));
    }

    #[test]
    fn long_replies_are_cut_at_a_sentence_or_a_word() {
        assert_eq!(fit("Short.", 10), "Short.");
        assert_eq!(fit("One sentence here. Another one that is long.", 30), "One sentence here.");
        assert_eq!(fit("words without any sentence end at all", 20), "words without any…");
        assert!(fit(&"x".repeat(50), 10).chars().count() <= 10);
    }

    #[test]
    fn batches_hold_ten_items_or_six_thousand_characters() {
        let long = "x".repeat(2_000);
        let short = Item { platform: "mastodon", kind: "mention", text: "hi" };
        let big = Item { platform: "mastodon", kind: "mention", text: &long };
        let items: Vec<Item<'_>> = (0..25).map(|_| short).collect();
        let all: Vec<usize> = (0..25).collect();
        let sizes: Vec<usize> = batches(&items, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        // Long items: four cut to 1,500 characters fill a batch.
        let items = vec![big; 9];
        let all: Vec<usize> = (0..9).collect();
        let sizes: Vec<usize> = batches(&items, &all).iter().map(Vec::len).collect();
        assert_eq!(sizes, [4, 4, 1]);
    }
}
