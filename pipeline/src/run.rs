//! One pipeline run's context: the model, where progress goes, and the
//! record of every call made (template, usage, duration), with the two ways
//! of calling the model: for text, and for a structured answer that is
//! parsed and validated, with one repair attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use marketer_protocol::Usage;
use marketer_protocol::activity::{ActivityResult, Provenance, StepRecord, Warning};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::gates::{self, Instructions, Problem};
use crate::lenient;
use crate::llm::{ChatRequest, Llm, LlmError, Message, Progress, Reply};
use crate::prompts::{self, Template};

/// Bumped when the pipeline's flow changes (steps, their order, the rules).
pub const PIPELINE_VERSION: u32 = 2;

/// The steps whose output budgets a job (or an agent's `--output-budget`)
/// may set.
pub const BUDGET_STEPS: &[&str] = &[
    "seo",
    "research",
    "writing",
    "editing",
    "refining",
    "extend",
    "social",
    "analysis",
    "compliance",
    "flyer",
];

/// Characters of a worst-case JSON answer per token: JSON punctuation and
/// repeated words tokenise densely, so budgets are sized at 3.
pub const CHARS_PER_TOKEN: usize = 3;

/// Whether `budget` tokens fit the longest answer `T`'s schema allows
/// (for tests: every structured step's budget must).
pub fn budget_fits<T: JsonSchema>(budget: u32) -> bool {
    lenient::max_chars(&schema_for::<T>())
        .is_some_and(|chars| chars.div_ceil(CHARS_PER_TOKEN) <= usize::try_from(budget).unwrap_or(usize::MAX))
}

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
    /// A structured answer was still cut off at its output budget after the
    /// repair attempt.
    pub const TRUNCATED: &str = "truncated";
    /// Free text failed the quality gates twice with nothing usable left.
    pub const UNUSABLE_OUTPUT: &str = "unusable_output";
    /// A prompt template did not render (a bug; not retried).
    pub const TEMPLATE: &str = "template_error";
}

impl From<LlmError> for PipelineError {
    fn from(e: LlmError) -> Self {
        Self { code: e.code, message: e.message, retryable: e.retryable }
    }
}

pub type Result<T> = std::result::Result<T, PipelineError>;

/// Free text as the gates left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub content: String,
    /// A problem that persisted after one regeneration (the content is what
    /// could be salvaged), or `None`.
    pub problem: Option<Problem>,
}

/// The context of one run.
pub struct Run<'a, L: Llm> {
    llm: &'a L,
    progress: &'a mut dyn Progress,
    steps: Vec<StepRecord>,
    templates: BTreeSet<String>,
    budgets: &'a BTreeMap<String, u32>,
    warnings: Vec<Warning>,
    /// What the run has completed so far, for checkpoints.
    pub(crate) done: ActivityResult,
    resume: Option<&'a ActivityResult>,
    /// How far along the step last announced is.
    percent: u8,
}

impl<L: Llm> std::fmt::Debug for Run<'_, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run").field("model", &self.llm.model()).field("steps", &self.steps.len()).finish()
    }
}

/// One model call's numbers, added up over a step's calls.
#[derive(Debug, Clone, Default)]
struct Calls {
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_eval_duration_ns: u64,
    eval_duration_ns: u64,
    load_duration_ns: u64,
    done_reason: String,
}

impl Calls {
    fn add(&mut self, reply: &Reply) {
        self.prompt_tokens += reply.prompt_tokens;
        self.completion_tokens += reply.completion_tokens;
        self.prompt_eval_duration_ns += reply.prompt_eval_duration_ns;
        self.eval_duration_ns += reply.eval_duration_ns;
        self.load_duration_ns += reply.load_duration_ns;
        self.done_reason.clone_from(&reply.done_reason);
    }
}

impl<'a, L: Llm> Run<'a, L> {
    pub fn new(
        llm: &'a L,
        progress: &'a mut dyn Progress,
        budgets: &'a BTreeMap<String, u32>,
        resume: Option<&'a ActivityResult>,
    ) -> Self {
        Self {
            llm,
            progress,
            steps: Vec::new(),
            templates: BTreeSet::new(),
            budgets,
            warnings: Vec::new(),
            done: ActivityResult::default(),
            resume,
            percent: 0,
        }
    }

    /// Announces a step.
    pub fn step(&mut self, step: &str, percent: u8, message: &str) {
        self.percent = percent;
        self.progress.step(step, percent, message);
    }

    /// The output budget of `step`: the job's, or `default`.
    pub fn budget(&self, step: &str, default: u32) -> u32 {
        self.budgets.get(step).copied().unwrap_or(default).max(16)
    }

    /// What an earlier run completed, when this one resumes it.
    pub fn resumed(&self) -> Option<&'a ActivityResult> {
        self.resume
    }

    /// Records that `steps` were taken from the earlier run: their call
    /// records come along, marked `reused`, and count no usage here.
    pub fn reuse(&mut self, steps: &[&str]) {
        let Some(earlier) = self.resume else { return };
        for record in earlier.steps.iter().filter(|r| steps.contains(&r.step.as_str())) {
            let mut record = record.clone();
            record.note = "reused".into();
            if !self.steps.contains(&record) {
                self.steps.push(record);
            }
        }
        for warning in earlier.warnings.iter().filter(|w| steps.contains(&w.step.as_str())) {
            if !self.warnings.contains(warning) {
                self.warnings.push(warning.clone());
            }
        }
    }

    /// The model's name.
    pub fn model(&self) -> &str {
        self.llm.model()
    }

    /// Adds a warning for the reviewer.
    pub fn warn(&mut self, step: &str, code: &str, message: String) {
        self.warnings.push(Warning { step: step.to_owned(), code: code.to_owned(), message });
    }

    /// Updates what the run has completed and reports it, so that a run
    /// that stops later keeps it.
    pub fn keep(&mut self, update: impl FnOnce(&mut ActivityResult)) {
        update(&mut self.done);
        let mut snapshot = self.done.clone();
        snapshot.steps.clone_from(&self.steps);
        snapshot.warnings.clone_from(&self.warnings);
        snapshot.provenance = self.provenance();
        let usage = usage(&snapshot.steps);
        self.progress.checkpoint(&snapshot, &usage);
    }

    async fn call(
        &mut self,
        messages: &[Message],
        schema: Option<&serde_json::Value>,
        temperature: f32,
        max_tokens: u32,
        seed: Option<u32>,
        stream: bool,
    ) -> Result<Reply> {
        let progress = &mut *self.progress;
        let mut forward = |text: &str| {
            if stream {
                progress.text(text);
            }
        };
        let request = ChatRequest { messages, schema, temperature, max_tokens: Some(max_tokens), seed };
        Ok(self.llm.chat(request, &mut forward).await?)
    }

    /// Asks for free text within `max_tokens`; with `stream`, the text goes
    /// to the progress sink as it is written. An answer cut off at its
    /// budget is said in the warnings. An answer that repeats the prompt's
    /// instructions or loops is asked for once more (another seed, a little
    /// more temperature); if the second answer has the problem too, what
    /// can be salvaged of it is returned with the problem named.
    pub async fn text(
        &mut self,
        step: &str,
        template: Template,
        context: &impl Serialize,
        temperature: f32,
        stream: bool,
        max_tokens: u32,
    ) -> Result<Written> {
        let messages = render(template, context)?;
        let instructions = Instructions::new([template.instruction_text().as_str()]);
        let began = Instant::now();
        let mut calls = Calls::default();
        let first = self.call(&messages, None, temperature, max_tokens, None, stream).await?;
        calls.add(&first);
        let mut content = clean_text(&first.content);
        let mut note = "";
        let mut problem = gates::inspect(&content, &instructions);
        if let Some(found) = &problem {
            note = "regenerated";
            if stream {
                // A new step event starts the partial text afresh.
                let message = format!("Writing again: {}", found.describe());
                self.progress.step(step, self.percent, &message);
            }
            let seed = Some(seed_after(&first.content));
            let warmer = (temperature + 0.2).min(1.0);
            let second = self.call(&messages, None, warmer, max_tokens, seed, stream).await?;
            calls.add(&second);
            content = clean_text(&second.content);
            problem = gates::inspect(&content, &instructions);
            if problem.is_some() {
                content = gates::salvage(&content, &instructions);
            }
        }
        if calls.done_reason == "length" {
            self.warn(
                step,
                "truncated",
                format!(
                    "{} was cut off at its {max_tokens}-token output budget; its end may be missing",
                    capitalised(step_output(step))
                ),
            );
        }
        self.record(step, template, began, &calls, u64::from(max_tokens), note, Vec::new());
        Ok(Written { content, problem })
    }

    /// Asks for a JSON answer following `T`'s schema within `max_tokens`;
    /// reads it leniently, fixes what need not fail the run (said in the
    /// step record's adjustments), and on remaining problems asks once
    /// more, quoting the answer and listing every problem.
    pub async fn structured<T>(
        &mut self,
        step: &str,
        template: Template,
        context: &impl Serialize,
        max_tokens: u32,
    ) -> Result<T>
    where
        T: DeserializeOwned + JsonSchema,
    {
        let schema = schema_for::<T>();
        let messages = render(template, context)?;
        let began = Instant::now();
        let mut calls = Calls::default();
        let first = self.call(&messages, Some(&schema), 0.2, max_tokens, None, false).await?;
        calls.add(&first);
        let first_truncated = first.done_reason == "length";
        let problems = match interpret::<T>(&first.content, &schema) {
            Ok((value, adjustments)) => {
                self.record(step, template, began, &calls, u64::from(max_tokens), "", adjustments);
                return Ok(value);
            }
            Err(problems) => problems,
        };
        // One repair: a new request quoting the answer and every problem,
        // with another seed, rather than the same request again.
        let task = messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n\n");
        let repair = render(
            prompts::REPAIR,
            &serde_json::json!({
                "answer": excerpt_chars(&first.content, 6_000),
                "problems": problems,
                "truncated": first_truncated,
                "task": task,
            }),
        )?;
        self.templates.insert(prompts::REPAIR.id());
        let seed = Some(seed_after(&first.content));
        let second = self.call(&repair, Some(&schema), 0.4, max_tokens, seed, false).await?;
        calls.add(&second);
        match interpret::<T>(&second.content, &schema) {
            Ok((value, adjustments)) => {
                self.record(step, template, began, &calls, u64::from(max_tokens), "repaired", adjustments);
                Ok(value)
            }
            Err(again) => {
                self.record(step, template, began, &calls, u64::from(max_tokens), "failed", Vec::new());
                let truncated = second.done_reason == "length";
                let (code, what) = if truncated {
                    (codes::TRUNCATED, format!("was cut off at its {max_tokens}-token output budget twice"))
                } else {
                    (codes::INVALID_OUTPUT, "was still not usable after a repair attempt".to_owned())
                };
                Err(PipelineError {
                    code: code.into(),
                    message: format!(
                        "the {step} step's answer from {} {what}: {}. The steps completed before it are kept: \
                         regenerate to resume from this step, or use a larger model (models under 1B parameters \
                         often break structured answers)",
                        self.llm.model(),
                        again.join("; "),
                    ),
                    retryable: false,
                })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        step: &str,
        template: Template,
        began: Instant,
        calls: &Calls,
        max_tokens: u64,
        note: &str,
        adjustments: Vec<String>,
    ) {
        self.templates.insert(template.id());
        self.steps.push(StepRecord {
            step: step.to_owned(),
            template: template.name.to_owned(),
            template_version: template.version,
            prompt_tokens: calls.prompt_tokens,
            completion_tokens: calls.completion_tokens,
            duration_ms: u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX),
            prompt_eval_duration_ns: calls.prompt_eval_duration_ns,
            eval_duration_ns: calls.eval_duration_ns,
            load_duration_ns: calls.load_duration_ns,
            max_tokens,
            done_reason: calls.done_reason.clone(),
            note: note.to_owned(),
            adjustments,
        });
    }

    fn provenance(&self) -> Provenance {
        let mut templates = self.templates.clone();
        if let Some(earlier) = self.resume {
            templates.extend(earlier.provenance.templates.iter().cloned());
        }
        Provenance {
            backend: self.llm.backend().to_owned(),
            model: self.llm.model().to_owned(),
            temperature: None,
            templates: templates.into_iter().collect(),
            pipeline_version: PIPELINE_VERSION,
        }
    }

    /// The result: what the run completed, every call, the warnings and
    /// how it was made.
    pub fn finish(self) -> ActivityResult {
        let provenance = self.provenance();
        let mut result = self.done;
        result.steps = self.steps;
        result.warnings = self.warnings;
        result.provenance = provenance;
        result
    }
}

/// Every step a run reports in its progress (the control plane's metrics
/// label steps by these names, and any other as `other`).
pub const STEPS: &[&str] = &[
    "seo",
    "research",
    "writing",
    "extend",
    "editing",
    "refining",
    "social",
    "social_shorten",
    "analysis",
    "compliance",
    "flyer",
    "finalise",
];

/// What a step produces, for people ("the SEO plan"): in warnings and on
/// the activity page.
pub fn step_output(step: &str) -> &'static str {
    match step {
        "seo" => "the SEO plan",
        "research" => "the research notes",
        "writing" => "the draft",
        "extend" => "the extended draft",
        "editing" => "the editor's review",
        "refining" => "the refined draft",
        "social" => "a social post",
        "social_shorten" => "a shortened social post",
        "analysis" => "the listing analysis",
        "compliance" => "the Fair Housing review",
        "flyer" => "the flyer",
        _ => "an answer",
    }
}

/// `text` with its first letter in capitals.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The steps of a result that completed (a step that failed leaves a
/// record of its calls, noted `failed`): what a later run can reuse.
pub fn completed_steps(result: &ActivityResult) -> impl Iterator<Item = &StepRecord> {
    result.steps.iter().filter(|s| s.note != "failed")
}

/// The usage of a run: the tokens and model time of its own calls (steps
/// reused from an earlier run counted there, not again).
pub fn usage(steps: &[StepRecord]) -> Usage {
    let own = || steps.iter().filter(|s| s.note != "reused");
    Usage {
        prompt_tokens: own().map(|s| s.prompt_tokens).sum(),
        completion_tokens: own().map(|s| s.completion_tokens).sum(),
        load_duration_ns: own().map(|s| s.load_duration_ns).sum(),
        prompt_eval_duration_ns: own().map(|s| s.prompt_eval_duration_ns).sum(),
        eval_duration_ns: own().map(|s| s.eval_duration_ns).sum(),
        total_duration_ns: own().map(|s| s.duration_ms.saturating_mul(1_000_000)).sum(),
        ..Usage::default()
    }
}

/// A seed for asking again that differs from the first call's (which had
/// none, or the backend's default) and is the same for the same answer.
fn seed_after(answer: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in answer.bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    // Ollama reads seeds as signed 32-bit numbers.
    hash & 0x7fff_ffff
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

/// Reads a structured answer and holds it to its schema: the value and
/// what was adjusted, or every problem found.
fn interpret<T: DeserializeOwned>(
    text: &str,
    schema: &serde_json::Value,
) -> std::result::Result<(T, Vec<String>), Vec<String>> {
    let value = lenient::read(text).map_err(|e| vec![e])?;
    let checked = lenient::check(value, schema);
    if !checked.problems.is_empty() {
        return Err(checked.problems);
    }
    let value: T = serde_path_to_error::deserialize(checked.value).map_err(|e| {
        let path = e.path().to_string();
        vec![if path == "." { e.inner().to_string() } else { format!("{path}: {}", e.inner()) }]
    })?;
    Ok((value, checked.adjustments))
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

/// At most `max` characters of `text`, marked when cut.
fn excerpt_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push_str(" [… cut]");
    out
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
        #[schemars(length(min = 1, max = 3), inner(length(min = 1, max = 20)))]
        tags: Vec<String>,
    }

    #[test]
    fn schemas_are_inline_and_carry_constraints() {
        let schema = schema_for::<Sample>();
        let text = schema.to_string();
        assert!(!text.contains("$ref") && !text.contains("$schema"), "{text}");
        assert_eq!(schema["properties"]["name"]["minLength"], 5);
        assert_eq!(schema["properties"]["name"]["description"], "Between 5 and 10 characters.");
        assert_eq!(schema["properties"]["tags"]["items"]["maxLength"], 20);
        assert_eq!(schema["properties"]["tags"]["maxItems"], 3);
        assert_eq!(schema["additionalProperties"], false);
        assert!(lenient::unknown_keywords(&schema).is_empty(), "{text}");
    }

    #[test]
    fn answers_are_interpreted_leniently_and_every_problem_named() {
        let schema = schema_for::<Sample>();
        let (ok, adjusted) =
            interpret::<Sample>("{\"name\": \"Marketer\", \"tags\": [\"a\", \"\"]}", &schema).unwrap();
        assert_eq!((ok.name.as_str(), ok.tags.as_slice()), ("Marketer", ["a".to_owned()].as_slice()));
        assert_eq!(adjusted, ["tags: dropped 1 empty item(s)"]);
        let (fenced, _) = interpret::<Sample>(
            "Here you go:\n```json\n{\"name\": \"Fen\nced\", \"tags\": [\"x\"]}\n```",
            &schema,
        )
        .unwrap();
        assert_eq!(fenced.name, "Fen\nced");
        let problems = interpret::<Sample>(r#"{"name": "Mar", "tags": "a"}"#, &schema).unwrap_err();
        assert_eq!(problems, ["name: must be at least 5 characters, but is 3", "tags: must be a list"]);
        let broken = interpret::<Sample>(r#"{"name": "Mark"#, &schema).unwrap_err();
        assert!(broken[0].contains("incomplete"), "{broken:?}");
    }

    #[test]
    fn free_text_loses_its_wrapping() {
        assert_eq!(clean_text("  \"Just the post\"  "), "Just the post");
        assert_eq!(clean_text("```markdown\n# Title\n\nBody\n```"), "# Title\n\nBody");
        assert_eq!(clean_text("She said \"hi\" and left"), "She said \"hi\" and left");
    }

    #[test]
    fn usage_adds_up_the_calls_of_this_run() {
        let record = |note: &str, tokens| StepRecord {
            step: "seo".into(),
            template: "seo_research".into(),
            template_version: 2,
            prompt_tokens: tokens,
            completion_tokens: tokens * 2,
            duration_ms: 1_500,
            prompt_eval_duration_ns: 100,
            eval_duration_ns: 1_000,
            load_duration_ns: 10,
            max_tokens: 600,
            done_reason: "stop".into(),
            note: note.into(),
            adjustments: vec![],
        };
        let usage = usage(&[record("", 10), record("repaired", 5), record("reused", 1_000)]);
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (15, 30));
        assert_eq!(
            (usage.eval_duration_ns, usage.prompt_eval_duration_ns, usage.load_duration_ns),
            (2_000, 200, 20)
        );
        assert_eq!(usage.total_duration_ns, 3_000_000_000);
    }
}
