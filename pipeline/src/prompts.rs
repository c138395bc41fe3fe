//! The prompt templates, all in one place (`pipeline/prompts/*.j2`), each
//! with a version that results record. A template is a system prompt, a
//! line `--- user ---`, and the user prompt, both rendered with minijinja.
//!
//! Changing a template's text means bumping its version here; a test pins
//! each text's hash to its version so that cannot be forgotten.

use minijinja::Environment;
use serde::Serialize;

use crate::llm::Message;

/// A versioned prompt template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    pub name: &'static str,
    pub version: u32,
    source: &'static str,
}

macro_rules! template {
    ($name:literal, $version:literal) => {
        Template {
            name: $name,
            version: $version,
            source: include_str!(concat!("../prompts/", $name, ".j2")),
        }
    };
}

pub const SEO_RESEARCH: Template = template!("seo_research", 2);
pub const CONTENT_RESEARCH: Template = template!("content_research", 2);
pub const WRITER: Template = template!("writer", 1);
pub const EDITOR_REVIEW: Template = template!("editor_review", 2);
pub const EDITOR_REFINE: Template = template!("editor_refine", 1);
pub const SOCIAL_POST: Template = template!("social_post", 2);
pub const SOCIAL_SHORTEN: Template = template!("social_shorten", 1);
pub const LISTING_ANALYSIS: Template = template!("listing_analysis", 1);
pub const LISTING_COPY: Template = template!("listing_copy", 1);
pub const FAIR_HOUSING_REVIEW: Template = template!("fair_housing_review", 1);
pub const FLYER: Template = template!("flyer", 1);
pub const REPAIR: Template = template!("repair", 2);
pub const WRITER_EXTEND: Template = template!("writer_extend", 1);
pub const CLASSIFY_INBOX: Template = template!("classify_inbox", 1);
pub const REPLY_INBOX: Template = template!("reply_inbox", 1);

pub const ALL: [Template; 15] = [
    SEO_RESEARCH,
    CONTENT_RESEARCH,
    WRITER,
    EDITOR_REVIEW,
    EDITOR_REFINE,
    SOCIAL_POST,
    SOCIAL_SHORTEN,
    LISTING_ANALYSIS,
    LISTING_COPY,
    FAIR_HOUSING_REVIEW,
    FLYER,
    REPAIR,
    WRITER_EXTEND,
    CLASSIFY_INBOX,
    REPLY_INBOX,
];

const USER_MARKER: &str = "--- user ---";

impl Template {
    /// `name@version`, as results record it.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The template's text (for tests and inspection).
    pub fn source(&self) -> &'static str {
        self.source
    }

    /// The template's own words, without its placeholders and control
    /// tags: the instructions a model must not hand back as its answer.
    pub fn instruction_text(&self) -> String {
        let mut out = String::with_capacity(self.source.len());
        let mut rest = self.source.replace(USER_MARKER, "\n");
        while let Some(open) = rest.find('{') {
            let tail = &rest[open..];
            let close = if tail.starts_with("{{") {
                tail.find("}}").map(|c| c + 2)
            } else if tail.starts_with("{%") {
                tail.find("%}").map(|c| c + 2)
            } else {
                Some(1)
            };
            let Some(close) = close else { break };
            out.push_str(&rest[..open]);
            // A placeholder separates words: "about {{ n }} words".
            out.push_str(if close > 1 { " | " } else { "{" });
            rest = rest[open + close..].to_owned();
        }
        out.push_str(&rest);
        out
    }

    /// Renders the template into its messages: the system prompt (if the
    /// template has one) and the user prompt.
    pub fn render(&self, context: &impl Serialize) -> Result<Vec<Message>, minijinja::Error> {
        let (system, user) = self.source.split_once(USER_MARKER).unwrap_or(("", self.source));
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Prompts are plain text: nothing is HTML-escaped.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let mut messages = Vec::with_capacity(2);
        let system = system.trim();
        if !system.is_empty() {
            messages.push(Message::system(env.render_str(system, context)?.trim()));
        }
        messages.push(Message::user(env.render_str(user.trim(), context)?.trim()));
        Ok(messages)
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    /// The first 12 hex digits of each template's SHA-256, at its version.
    /// A failure here means a template changed: bump its version above and
    /// update the hash, so results say which text produced them.
    const PINNED: [(&str, u32, &str); 15] = [
        ("seo_research", 2, "92980a89a9af"),
        ("content_research", 2, "d40a14749aeb"),
        ("writer", 1, "8b3f7aeabfe1"),
        ("editor_review", 2, "5c7562cce93d"),
        ("editor_refine", 1, "792ced1c9bfa"),
        ("social_post", 2, "9aa2e9a3b91b"),
        ("social_shorten", 1, "036b91f45915"),
        ("listing_analysis", 1, "0b182ca4cddc"),
        ("listing_copy", 1, "67c481e1c047"),
        ("fair_housing_review", 1, "0b5537c8967c"),
        ("flyer", 1, "7cd0c36b7505"),
        ("repair", 2, "06b813ee0217"),
        ("writer_extend", 1, "dbb9521f130d"),
        ("classify_inbox", 1, "020359f4a75c"),
        ("reply_inbox", 1, "77f80549a09e"),
    ];

    #[test]
    fn template_texts_match_their_versions() {
        let mut wrong = Vec::new();
        for (template, (name, version, hash)) in ALL.iter().zip(PINNED) {
            let actual = Sha256::digest(template.source.as_bytes());
            let actual: String = actual.iter().take(6).map(|b| format!("{b:02x}")).collect();
            if template.name != name || template.version != version || actual != hash {
                wrong.push(format!("(\"{}\", {}, \"{actual}\")", template.name, template.version));
            }
        }
        assert!(wrong.is_empty(), "templates changed; bump their versions and pin:\n{}", wrong.join(",\n"));
    }

    #[test]
    fn templates_render_system_and_user_prompts() {
        let context = serde_json::json!({
            "content_type": "blog article", "topic": "Solar roofs", "keywords": ["solar"],
            "audience": "homeowners", "tone": "friendly", "target_word_count": 900,
        });
        let messages = SEO_RESEARCH.render(&context).unwrap();
        assert_eq!(messages.len(), 2);
        assert!(messages[0].content.starts_with("You are an SEO strategist"));
        assert!(messages[1].content.contains("Topic: Solar roofs"));
        assert!(messages[1].content.contains("Keywords from the marketer: solar"));
        // No HTML escaping in prompts.
        let context = serde_json::json!({
            "answer": "{\"a\": 1", "problems": ["a < b & \"c\"", "two"], "truncated": false, "task": "t",
        });
        let repair = REPAIR.render(&context).unwrap();
        assert!(repair[1].content.contains("1. a < b & \"c\"\n2. two"), "{}", repair[1].content);
        assert!(repair[1].content.contains("(2 problems)"), "{}", repair[1].content);
        assert!(!repair[1].content.contains("cut off"));
    }

    #[test]
    fn instructions_are_the_templates_own_words() {
        let text = SOCIAL_POST.instruction_text();
        assert!(text.contains("You are a social media copywriter."), "{text}");
        assert!(!text.contains("{{") && !text.contains("{%") && !text.contains("--- user ---"), "{text}");
        assert!(text.contains("at most  |  characters in all"), "{text}");
    }

    #[test]
    fn every_template_names_itself() {
        let names: std::collections::HashSet<&str> = ALL.iter().map(|t| t.name).collect();
        assert_eq!(names.len(), ALL.len());
    }
}
