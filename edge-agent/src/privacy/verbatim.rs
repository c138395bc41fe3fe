//! Keeping the project's documents out of results: with the policy's
//! `allow_document_text_in_results` off, a run of words copied from a
//! document passage longer than `max_verbatim_chars` is withheld from what
//! the agent sends. Passages are fingerprinted as overlapping windows of
//! words; text is checked window by window.

use std::collections::HashSet;

/// Replaces a withheld run.
pub const WITHHELD: &str = "[document text withheld]";

#[derive(Debug, Clone)]
pub struct VerbatimGuard {
    /// Words per window: about `max_verbatim_chars` / 6.
    window: usize,
    fingerprints: HashSet<u64>,
}

impl VerbatimGuard {
    pub fn new(max_verbatim_chars: u32) -> Self {
        let window = usize::try_from(max_verbatim_chars / 6).unwrap_or(usize::MAX).max(6);
        Self { window, fingerprints: HashSet::new() }
    }

    /// Remembers a passage that must not come back verbatim.
    pub fn add(&mut self, passage: &str) {
        let words = normalised_words(passage);
        for window in words.windows(self.window) {
            self.fingerprints.insert(fingerprint(window));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// `text` with every run that matches a passage window replaced by
    /// [`WITHHELD`]; the number of runs withheld.
    pub fn filter(&self, text: &str) -> (String, u64) {
        if self.fingerprints.is_empty() {
            return (text.to_owned(), 0);
        }
        // Words with their byte spans in the original text.
        let spans: Vec<(usize, usize, String)> = word_spans(text);
        if spans.len() < self.window {
            return (text.to_owned(), 0);
        }
        let mut withheld = vec![false; spans.len()];
        let keys: Vec<String> = spans.iter().map(|(_, _, w)| w.clone()).collect();
        for start in 0..=keys.len() - self.window {
            if self.fingerprints.contains(&fingerprint(&keys[start..start + self.window])) {
                withheld[start..start + self.window].iter_mut().for_each(|w| *w = true);
            }
        }
        if !withheld.contains(&true) {
            return (text.to_owned(), 0);
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        let mut runs = 0;
        let mut i = 0;
        while i < spans.len() {
            if !withheld[i] {
                i += 1;
                continue;
            }
            let start = spans[i].0;
            while i < spans.len() && withheld[i] {
                i += 1;
            }
            let end = spans[i - 1].1;
            out.push_str(&text[at..start]);
            out.push_str(WITHHELD);
            at = end;
            runs += 1;
        }
        out.push_str(&text[at..]);
        (out, runs)
    }
}

fn normalised_words(text: &str) -> Vec<String> {
    word_spans(text).into_iter().map(|(_, _, w)| w).collect()
}

/// Words (letters and digits), lowercased, with their byte spans.
fn word_spans(text: &str) -> Vec<(usize, usize, String)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i, text[s..i].to_lowercase()));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len(), text[s..].to_lowercase()));
    }
    spans
}

fn fingerprint(words: &[String]) -> u64 {
    words.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, word| {
        let hash = word.bytes().fold(hash, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        (hash ^ 0x20).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSAGE: &str = "Our roofing tiles carry a thirty year warranty and are installed by certified crews \
                           who complete most homes in two days with no mess left behind at all.";

    #[test]
    fn long_copies_are_withheld_and_short_quotes_pass() {
        let mut guard = VerbatimGuard::new(60);
        guard.add(PASSAGE);
        let copied = format!("Intro. {PASSAGE} Outro.");
        let (filtered, runs) = guard.filter(&copied);
        assert_eq!(runs, 1);
        assert_eq!(
            filtered,
            format!("Intro. {WITHHELD}. Outro."),
            "the words go, the punctuation around them stays"
        );
        // Case and punctuation do not hide a copy.
        let (filtered, runs) = guard.filter(&PASSAGE.to_uppercase().replace(' ', "  "));
        assert_eq!((filtered, runs), (format!("{WITHHELD}."), 1));
        // A few words in common are a quote, not a copy.
        let quote = "Tiles carry a thirty year warranty, which matters.";
        assert_eq!(guard.filter(quote), (quote.to_owned(), 0));
    }

    #[test]
    fn without_passages_nothing_changes() {
        let guard = VerbatimGuard::new(200);
        assert!(guard.is_empty());
        assert_eq!(guard.filter(PASSAGE), (PASSAGE.to_owned(), 0));
    }
}
