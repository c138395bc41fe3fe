//! Quality gates on the model's free text, before anything reaches review:
//! an answer that repeats the prompt's own instructions back, and an answer
//! that loops (the same words over and over). Both are common with small
//! models; neither may be handed to a reviewer as if it were content.
//!
//! Both are measured on words (lower-case letters and digits), so spacing,
//! case and punctuation do not hide them.

use std::collections::{HashMap, HashSet};

/// Shingles of this many words make an instruction recognisable.
const ECHO_WORDS: usize = 5;
/// An answer sharing this many shingles with the instructions repeats them.
const ECHO_SHINGLES: usize = 3;

/// What is wrong with a text, for the result's warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The answer repeats the prompt's instructions.
    Echo,
    /// The answer repeats itself.
    Loop,
}

impl Problem {
    pub fn code(&self) -> &'static str {
        match self {
            Problem::Echo => "prompt_echo",
            Problem::Loop => "repetition",
        }
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Problem::Echo => "the model repeated its instructions instead of writing",
            Problem::Loop => "the model repeated the same words over and over",
        }
    }
}

/// The words of the product's own instructions, to recognise echoes by.
#[derive(Debug, Clone, Default)]
pub struct Instructions {
    shingles: HashSet<Vec<String>>,
}

impl Instructions {
    /// From the instruction texts (the template's own words: the user's
    /// inputs are not instructions, and may rightly be quoted).
    pub fn new<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        let mut shingles = HashSet::new();
        for text in texts {
            let words = words(text);
            for window in words.windows(ECHO_WORDS) {
                shingles.insert(window.to_vec());
            }
        }
        Self { shingles }
    }

    /// How many of `text`'s shingles are the instructions'.
    fn shared(&self, words: &[String]) -> usize {
        words.windows(ECHO_WORDS).filter(|w| self.shingles.contains(*w)).count()
    }

    /// Whether a sentence or line carries instruction wording.
    fn quotes(&self, text: &str) -> bool {
        self.shared(&words(text)) > 0
    }
}

/// The first problem of `text`, if any.
pub fn inspect(text: &str, instructions: &Instructions) -> Option<Problem> {
    let words = words(text);
    if instructions.shared(&words) >= ECHO_SHINGLES {
        return Some(Problem::Echo);
    }
    if loops(&words) {
        return Some(Problem::Loop);
    }
    None
}

/// Whether the words loop: in a text of some length, fewer than half of
/// its three-word sequences are different; in any text, one sequence of
/// three words four times or more.
fn loops(words: &[String]) -> bool {
    let triples: Vec<&[String]> = words.windows(3).collect();
    if triples.is_empty() {
        return false;
    }
    let mut counts: HashMap<&[String], usize> = HashMap::new();
    for triple in &triples {
        *counts.entry(triple).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    if most >= 4 {
        return true;
    }
    triples.len() >= 30 && counts.len() * 2 < triples.len()
}

/// `text` without the lines and sentences that carry instruction wording,
/// and without a line or sentence said before: what can be kept of an
/// answer that failed a gate twice. Paragraph breaks are kept.
pub fn salvage(text: &str, instructions: &Instructions) -> String {
    let mut seen = HashSet::new();
    let mut lines = Vec::new();
    for line in text.lines() {
        let mut kept = Vec::new();
        for sentence in sentences(line) {
            let key = words(sentence);
            if key.is_empty() {
                continue;
            }
            if instructions.quotes(sentence) || !seen.insert(key) {
                continue;
            }
            kept.push(sentence.trim());
        }
        if kept.is_empty() && !line.trim().is_empty() {
            continue;
        }
        lines.push(kept.join(" "));
    }
    let joined = lines.join("\n");
    // No more than one blank line in a row where lines were dropped.
    let mut out = String::with_capacity(joined.len());
    let mut blank = 0;
    for line in joined.lines() {
        if line.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim().to_owned()
}

/// The sentences of a line, each with its closing punctuation.
fn sentences(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    for (i, (at, c)) in chars.iter().enumerate() {
        let ends = matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_none_or(|(_, n)| n.is_whitespace());
        if ends {
            let end = at + c.len_utf8();
            out.push(&line[start..end]);
            start = end;
        }
    }
    if start < line.len() {
        out.push(&line[start..]);
    }
    out
}

/// The words of a text, lower-case, letters and digits only.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// The number of words of a text, as a reader counts them.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().filter(|w| w.chars().any(char::is_alphanumeric)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instructions() -> Instructions {
        Instructions::new([
            "You are a social media copywriter. You output the post text only, with no preamble.",
            "Rewrite it to at most characters, keeping the hashtags on the last line.",
        ])
    }

    #[test]
    fn an_answer_that_repeats_its_instructions_is_an_echo() {
        let echo = "You are a social media copywriter. You output the post text only. Rewrite it to at most 252 characters, keeping the hashtags.";
        assert_eq!(inspect(echo, &instructions()), Some(Problem::Echo));
        let post = "Spring is here: our garden sale starts Friday, with a social media contest for the best photo. #spring";
        assert_eq!(inspect(post, &instructions()), None);
    }

    #[test]
    fn loops_are_found_in_short_and_long_texts() {
        let heading = "Solar roof, solar roof, solar roof, solar roof, solar roof";
        assert_eq!(inspect(heading, &Instructions::default()), Some(Problem::Loop));
        let long = "The sun is bright. ".repeat(12);
        assert_eq!(inspect(&long, &Instructions::default()), Some(Problem::Loop));
        let fine = "Solar roofs turn sunlight into power. They last decades, cut bills, and raise a home's value. Installers quote by the square foot, and incentives lower the price further.";
        assert_eq!(inspect(fine, &Instructions::default()), None);
    }

    #[test]
    fn salvage_keeps_what_is_content() {
        let answer = "You are a social media copywriter. You output the post text only, with no preamble.\nOur spring sale starts Friday! Bring a friend.\nOur spring sale starts Friday!\n\n#spring #sale";
        assert_eq!(
            salvage(answer, &instructions()),
            "Our spring sale starts Friday! Bring a friend.\n\n#spring #sale"
        );
        assert_eq!(
            salvage("You are a social media copywriter. You output the post text only.", &instructions()),
            ""
        );
    }

    #[test]
    fn words_are_counted_as_a_reader_would() {
        assert_eq!(word_count("# Title\n\nTwo words — and a dash."), 6);
        assert_eq!(words("It's 2026, OK?"), ["it", "s", "2026", "ok"]);
    }
}
