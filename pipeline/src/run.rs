//! One pipeline run's context: the model, where progress goes, and the
//! record of every call made (template, usage, duration), with the two ways
//! of calling the model: for text, and for a structured answer that is
//! parsed and validated, with one repair attempt.

use std::collections::BTreeSet;
use std::time::Instant;

use marketer_protocol::activity::{Provenance, StepRecord};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::llm::{ChatRequest, Llm, LlmError, Message, Progress};
use crate::prompts::{self, Template};

/// Bumped when the pipeline's flow changes (steps, their order, the rules).
pub const PIPELINE_VERSION: u32 = 1;

/// Why a pipeline failed, in the terms of job errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PipelineError {
    pub code: String,
    pub message: String,
    pub retryable: bool,
}

/// Error codes of the pipeline's own failures (the model's are passed on).
pub mod codes {
    /// A structured answer was still invalid after the repair attempt.
    pub const INVALID_OUTPUT: &str = "invalid_output";
    /// A prompt template did not render (a bug; not retried).
    pub const TEMPLATE: &str = "template_error";
}

impl From<LlmError> for PipelineError {
    fn from(e: LlmError) -> Self {
        Self { code: e.code, message: e.message, retryable: e.retryable }
    }
}

pub type Result<T> = std::result::Result<T, PipelineError>;

/// What a structured answer must satisfy beyond its schema's types (lengths,
/// counts, ranges): the problems found, empty when it is fine.
pub trait Validate {
    fn problems(&self) -> Vec<String>;
}

/// The context of one run.
pub struct Run<'a, L: Llm> {
    llm: &'a L,
    progress: &'a mut dyn Progress,
    steps: Vec<StepRecord>,
    templates: BTreeSet<String>,
}

impl<L: Llm> std::fmt::Debug for Run<'_, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("model", &self.llm.model()).field("steps", &self.steps.len()).finish()
    }
}

impl<'a, L: Llm> Run<'a, L> {
    pub fn new(llm: &'a L, progress: &'a mut dyn Progress) -> Self {
        Self { llm, progress, steps: Vec::new(), templates: BTreeSet::new() }
    }

    /// Announces a step.
    pub fn step(&mut self, step: &str, percent: u8, message: &str) {
        self.progress.step(step, percent, message);
    }

    /// Asks for free text; with `stream`, the text goes to the progress
    /// sink as it is written.
    pub async fn text(
        &mut self,
        step: &str,
        template: Template,
        context: &impl Serialize,
        temperature: f32,
        stream: bool,
    ) -> Result<String> {
        let messages = render(template, context)?;
        let began = Instant::now();
        let progress = &mut *self.progress;
        let mut forward = |text: &str| {
            if stream {
                progress.text(text);
            }
        };
        let request = ChatRequest { messages: &messages, schema: None, temperature, max_tokens: None };
        let reply = self.llm.chat(request, &mut forward).await?;
        self.record(step, template, began, reply.prompt_tokens, reply.completion_tokens, "");
        Ok(clean_text(&reply.content))
    }

    /// Asks for a JSON answer following `T`'s schema; parses and validates
    /// it, and on a problem asks once more, saying what was wrong.
    pub async fn structured<T>(
        &mut self,
        step: &str,
        template: Template,
        context: &impl Serialize,
    ) -> Result<T>
    where
        T: DeserializeOwned + JsonSchema + Validate,
    {
        let schema = schema_for::<T>();
        let mut messages = render(template, context)?;
        let began = Instant::now();
        let mut ignore = |_: &str| {};
        let request =
            ChatRequest { messages: &messages, schema: Some(&schema), temperature: 0.2, max_tokens: None };
        let first = self.llm.chat(request, &mut ignore).await?;
        let (mut prompt_tokens, mut completion_tokens) = (first.prompt_tokens, first.completion_tokens);
        let problem = match parse::<T>(&first.content) {
            Ok(value) => {
                self.record(step, template, began, prompt_tokens, completion_tokens, "");
                return Ok(value);
            }
            Err(problem) => problem,
        };
        // One repair: the conversation so far, the answer, and what is wrong.
        messages.push(Message::assistant(first.content));
        messages.extend(render(prompts::REPAIR, &serde_json::json!({ "problem": problem, "hint": "" }))?);
        self.templates.insert(prompts::REPAIR.id());
        let request =
            ChatRequest { messages: &messages, schema: Some(&schema), temperature: 0.1, max_tokens: None };
        let second = self.llm.chat(request, &mut ignore).await?;
        prompt_tokens += second.prompt_tokens;
        completion_tokens += second.completion_tokens;
        match parse::<T>(&second.content) {
            Ok(value) => {
                self.record(step, template, began, prompt_tokens, completion_tokens, "repaired");
                Ok(value)
            }
            Err(again) => Err(PipelineError {
                code: codes::INVALID_OUTPUT.into(),
                message: format!(
                    "the {step} step's answer from {} was not valid after a repair attempt: {again} (first answer: {problem})",
                    self.llm.model()
                ),
                retryable: false,
            }),
        }
    }

    fn record(
        &mut self,
        step: &str,
        template: Template,
        began: Instant,
        prompt_tokens: u64,
        completion_tokens: u64,
        note: &str,
    ) {
        self.templates.insert(template.id());
        self.steps.push(StepRecord {
            step: step.to_owned(),
            template: template.name.to_owned(),
            template_version: template.version,
            prompt_tokens,
            completion_tokens,
            duration_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
            note: note.to_owned(),
        });
    }

    /// The calls made so far and how the result was made.
    pub fn finish(self) -> (Vec<StepRecord>, Provenance) {
        let provenance = Provenance {
            backend: self.llm.backend().to_owned(),
            model: self.llm.model().to_owned(),
            temperature: None,
            templates: self.templates.into_iter().collect(),
            pipeline_version: PIPELINE_VERSION,
        };
        (self.steps, provenance)
    }
}

fn render(template: Template, context: &impl Serialize) -> Result<Vec<Message>> {
    template.render(context).map_err(|e| PipelineError {
        code: codes::TEMPLATE.into(),
        message: format!("the prompt template {} did not render: {e}", template.id()),
        retryable: false,
    })
}

/// The JSON schema of `T`, self-contained (no `$ref`s: not every model
/// server resolves them).
pub fn schema_for<T: JsonSchema>() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
    }
    schema
}

/// Parses and validates a structured answer; the error says what is wrong,
/// where, in words a model can act on.
fn parse<T: DeserializeOwned + Validate>(text: &str) -> std::result::Result<T, String> {
    let json = extract_json(text);
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        if path == "." { e.inner().to_string() } else { format!("{path}: {}", e.inner()) }
    })?;
    let problems = value.problems();
    if problems.is_empty() { Ok(value) } else { Err(problems.join("; ")) }
}

/// The JSON document in an answer: models without schema enforcement often
/// wrap it in a Markdown code fence or a sentence.
fn extract_json(text: &str) -> &str {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        return trimmed;
    }
    match (trimmed.find('{'), trimmed.rfind('}')) {
        (Some(start), Some(end)) if end > start => &trimmed[start..=end],
        _ => trimmed,
    }
}

/// Free text without the wrapping models like to add: surrounding quotes
/// and a Markdown fence around the whole answer.
fn clean_text(text: &str) -> String {
    let mut text = text.trim();
    if let Some(inner) = text.strip_prefix("```") {
        let inner = inner.split_once('\n').map_or(inner, |(_, rest)| rest);
        text = inner.strip_suffix("```").unwrap_or(inner).trim();
    }
    if text.len() >= 2
        && text.starts_with('"')
        && text.ends_with('"')
        && !text[1..text.len() - 1].contains('"')
    {
        text = &text[1..text.len() - 1];
    }
    text.to_owned()
}

/// Checks a text's length in characters.
pub fn check_chars(problems: &mut Vec<String>, field: &str, value: &str, min: usize, max: usize) {
    let n = value.chars().count();
    if n < min || n > max {
        problems.push(format!("{field} must be {min} to {max} characters long, but it is {n}"));
    }
}

/// Checks a list's length.
pub fn check_items<T>(problems: &mut Vec<String>, field: &str, items: &[T], min: usize, max: usize) {
    if items.len() < min || items.len() > max {
        problems.push(format!("{field} must have {min} to {max} items, but it has {}", items.len()));
    }
}

/// Checks that no text in a list is blank.
pub fn check_filled<'s>(
    problems: &mut Vec<String>,
    field: &str,
    values: impl IntoIterator<Item = &'s String>,
) {
    if values.into_iter().any(|v| v.trim().is_empty()) {
        problems.push(format!("{field} must not contain empty text"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        /// Between 5 and 10 characters.
        #[schemars(length(min = 5, max = 10))]
        name: String,
        #[schemars(length(min = 1))]
        tags: Vec<String>,
    }

    impl Validate for Sample {
        fn problems(&self) -> Vec<String> {
            let mut problems = Vec::new();
            check_chars(&mut problems, "name", &self.name, 5, 10);
            check_items(&mut problems, "tags", &self.tags, 1, 3);
            problems
        }
    }

    #[test]
    fn schemas_are_inline_and_carry_constraints() {
        let schema = schema_for::<Sample>();
        let text = schema.to_string();
        assert!(!text.contains("$ref") && !text.contains("$schema"), "{text}");
        assert_eq!(schema["properties"]["name"]["minLength"], 5);
        assert_eq!(schema["properties"]["name"]["description"], "Between 5 and 10 characters.");
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn answers_are_parsed_and_problems_named() {
        let ok: Sample = parse(r#"{"name": "Marketer", "tags": ["a"]}"#).unwrap();
        assert_eq!(ok.name, "Marketer");
        let fenced: Sample =
            parse("Here you go:\n```json\n{\"name\": \"Fenced\", \"tags\": [\"x\"]}\n```").unwrap();
        assert_eq!(fenced.name, "Fenced");
        let wrong_type = parse::<Sample>(r#"{"name": "Marketer", "tags": "a"}"#).unwrap_err();
        assert!(wrong_type.starts_with("tags:"), "{wrong_type}");
        let unknown = parse::<Sample>(r#"{"name": "Marketer", "tags": [], "extra": 1}"#).unwrap_err();
        assert!(unknown.contains("extra"), "{unknown}");
        let broken = parse::<Sample>(r#"{"name": "Mark"#).unwrap_err();
        assert!(broken.contains("EOF"), "{broken}");
        let short = parse::<Sample>(r#"{"name": "Mar", "tags": []}"#).unwrap_err();
        assert_eq!(
            short,
            "name must be 5 to 10 characters long, but it is 3; tags must have 1 to 3 items, but it has 0"
        );
    }

    #[test]
    fn free_text_loses_its_wrapping() {
        assert_eq!(clean_text("  \"Just the post\"  "), "Just the post");
        assert_eq!(clean_text("```markdown\n# Title\n\nBody\n```"), "# Title\n\nBody");
        assert_eq!(clean_text("She said \"hi\" and left"), "She said \"hi\" and left");
    }
}
