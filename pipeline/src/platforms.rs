//! Each social platform's rules (seed 004's platform specifications), and
//! their enforcement in code: a model is asked to follow them, but what
//! leaves the pipeline is checked here, not trusted.

use marketer_protocol::activity::Platform;

/// Where a platform wants hashtags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashtagPlacement {
    /// Woven into the text or after it; left where the writer put them.
    Inline,
    /// Together on the last line.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformSpec {
    pub platform: Platform,
    pub name: &'static str,
    /// Characters the platform accepts in a post.
    pub char_limit: usize,
    /// What performs best, for the prompt.
    pub optimal_length: usize,
    /// Hashtags the post may carry.
    pub max_hashtags: usize,
    /// Hashtags to ask for.
    pub suggested_hashtags: (usize, usize),
    pub placement: HashtagPlacement,
    pub style: &'static str,
}

pub fn spec(platform: Platform) -> PlatformSpec {
    use HashtagPlacement::{End, Inline};
    let (name, char_limit, optimal_length, max_hashtags, suggested_hashtags, placement, style) =
        match platform {
            Platform::X => ("X", 280, 240, 2, (1, 2), Inline, "conversational and punchy, one idea"),
            Platform::Linkedin => (
                "LinkedIn",
                3_000,
                1_200,
                5,
                (3, 5),
                End,
                "professional, insight first, short paragraphs with line breaks, ask a question",
            ),
            Platform::Facebook => {
                ("Facebook", 63_206, 250, 3, (0, 3), End, "friendly and conversational, invite comments")
            }
            Platform::Instagram => (
                "Instagram",
                2_200,
                600,
                30,
                (10, 15),
                End,
                "casual, a strong hook in the first line, short paragraphs, emojis welcome",
            ),
            Platform::Tiktok => {
                ("TikTok", 2_200, 150, 5, (3, 5), End, "casual and energetic, a caption for a short video")
            }
            Platform::Threads => {
                ("Threads", 500, 300, 1, (0, 1), Inline, "conversational, like talking to a friend")
            }
            Platform::Pinterest => {
                ("Pinterest", 500, 200, 5, (2, 5), End, "descriptive and searchable, say what the pin shows")
            }
        };
    PlatformSpec {
        platform,
        name,
        char_limit,
        optimal_length,
        max_hashtags,
        suggested_hashtags,
        placement,
        style,
    }
}

impl PlatformSpec {
    /// The hashtag rule in words, for prompts.
    pub fn hashtag_rule(&self) -> String {
        let (low, high) = self.suggested_hashtags;
        let placement = match self.placement {
            HashtagPlacement::Inline => "",
            HashtagPlacement::End => ", all together on the last line",
        };
        match (low, high) {
            (0, 1) => format!("at most one hashtag{placement}"),
            (0, n) => format!("up to {n} hashtags{placement}"),
            (low, high) => format!("{low} to {high} hashtags{placement}"),
        }
    }
}

/// Characters as platforms count them: Unicode scalar values.
pub fn char_count(text: &str) -> usize {
    text.chars().count()
}

/// Where a URL starts in a text (`http://` or `https://`) and its length in
/// bytes: up to the next whitespace.
fn urls(text: &str) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let rest = &text[i..];
        if rest.starts_with("https://") || rest.starts_with("http://") {
            let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
            found.push((i, len));
            i += len;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// A text's length as X counts it (twitter-text's weighted length): every
/// link counts 23; characters of Latin and common punctuation ranges count
/// 1, others (CJK, emoji, ...) 2, and the limit of 280 is in those units.
pub fn x_length(text: &str) -> usize {
    weighted(text, |c| {
        let c = u32::from(c);
        if (0..=0x10FF).contains(&c)
            || (0x2000..=0x200D).contains(&c)
            || (0x2010..=0x201F).contains(&c)
            || (0x2032..=0x2037).contains(&c)
        {
            1
        } else {
            2
        }
    })
}

/// A text's length as Mastodon counts it: every link counts 23, every
/// other character 1.
pub fn mastodon_length(text: &str) -> usize {
    weighted(text, |_| 1)
}

/// A text's length as Bluesky counts it: grapheme clusters (what a reader
/// sees as one character; an emoji with modifiers is one).
pub fn bluesky_length(text: &str) -> usize {
    unicode_segmentation::UnicodeSegmentation::graphemes(text, true).count()
}

fn weighted(text: &str, weight: impl Fn(char) -> usize) -> usize {
    let mut total = 0;
    let mut last = 0;
    for (start, len) in urls(text) {
        total += text[last..start].chars().map(&weight).sum::<usize>() + 23;
        last = start + len;
    }
    total + text[last..].chars().map(&weight).sum::<usize>()
}

/// The hashtags of a text, in order, without repeats (case-insensitive).
pub fn hashtags(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (i, c) in text.char_indices() {
        if c != '#' {
            continue;
        }
        // A hashtag starts a word.
        if text[..i].chars().next_back().is_some_and(|p| p.is_alphanumeric() || p == '#' || p == '&') {
            continue;
        }
        let tag: String = text[i + 1..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if tag.is_empty() || tag.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let tag = format!("#{tag}");
        if !found.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            found.push(tag);
        }
    }
    found
}

/// Applies the hashtag rules: at most the platform's number (the first
/// ones), and on the last line where the platform wants them there.
pub fn arrange_hashtags(text: &str, spec: &PlatformSpec) -> String {
    let tags = hashtags(text);
    if tags.len() <= spec.max_hashtags && spec.placement == HashtagPlacement::Inline {
        return text.trim().to_owned();
    }
    let keep: Vec<&String> = tags.iter().take(spec.max_hashtags).collect();
    match spec.placement {
        HashtagPlacement::Inline => {
            // Drop the extra tags where they stand.
            let mut out = text.to_owned();
            for extra in &tags[spec.max_hashtags..] {
                out = remove_tag(&out, extra);
            }
            tidy(&out)
        }
        HashtagPlacement::End => {
            let mut body = text.to_owned();
            for tag in &tags {
                body = remove_tag(&body, tag);
            }
            let body = tidy(&body);
            if keep.is_empty() {
                body
            } else {
                let line: Vec<&str> = keep.iter().map(|t| t.as_str()).collect();
                format!("{body}\n\n{}", line.join(" "))
            }
        }
    }
}

/// Words too common to make a useful hashtag.
const STOPWORDS: &[&str] = &[
    "about",
    "after",
    "also",
    "and",
    "are",
    "before",
    "but",
    "can",
    "does",
    "for",
    "from",
    "have",
    "how",
    "into",
    "its",
    "more",
    "not",
    "our",
    "that",
    "the",
    "their",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "what",
    "when",
    "where",
    "which",
    "who",
    "why",
    "will",
    "with",
    "you",
    "your",
];

/// Hashtags made from the words of `topic` (each word of four letters or
/// more that is not a common word, then the topic's first two such words
/// joined), for a post that came back with fewer than its platform asks.
pub fn topic_hashtags(topic: &str) -> Vec<String> {
    let words: Vec<String> = topic
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 4 && !STOPWORDS.contains(&w.to_lowercase().as_str()))
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|f| f.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect())
                .unwrap_or_default()
        })
        .collect();
    let mut tags: Vec<String> = Vec::new();
    if words.len() >= 2 {
        tags.push(format!("#{}{}", words[0], words[1]));
    }
    for word in &words {
        let tag = format!("#{word}");
        if !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            tags.push(tag);
        }
    }
    tags
}

/// Brings a post up to its platform's suggested minimum of hashtags with
/// `candidates` (skipping any it has), as far as they go and the limit
/// allows; returns the text and whether any were added.
pub fn fill_hashtags(text: &str, spec: &PlatformSpec, candidates: &[String]) -> (String, bool) {
    let present = hashtags(text);
    let wanted = spec.suggested_hashtags.0.min(spec.max_hashtags);
    if present.len() >= wanted {
        return (text.to_owned(), false);
    }
    let missing: Vec<&String> = candidates
        .iter()
        .filter(|c| !present.iter().any(|p| p.eq_ignore_ascii_case(c)))
        .take(wanted - present.len())
        .collect();
    if missing.is_empty() {
        return (text.to_owned(), false);
    }
    let added: Vec<&str> = missing.iter().map(|t| t.as_str()).collect();
    let joined = format!("{}\n\n{}", text.trim_end(), added.join(" "));
    // Placement rules apply to the new tags as to the model's.
    (arrange_hashtags(&joined, spec), true)
}

/// Removes one hashtag (whole word, any case) from a text.
fn remove_tag(text: &str, tag: &str) -> String {
    let lower = text.to_lowercase();
    let needle = tag.to_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(&needle) {
        let start = from + found;
        let end = start + needle.len();
        let boundary = lower[end..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if boundary && text.is_char_boundary(start) && text.is_char_boundary(end) {
            out.push_str(&text[rest..start]);
            rest = end;
        }
        from = end;
    }
    out.push_str(&text[rest..]);
    out
}

/// Collapses the spaces and empty lines that removing words leaves.
fn tidy(text: &str) -> String {
    let lines: Vec<String> =
        text.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        if line.is_empty() && out.last().is_none_or(String::is_empty) {
            continue;
        }
        out.push(line);
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out.join("\n")
}

/// Cuts a post to `limit` characters at a sentence boundary, keeping a
/// trailing hashtag line when it fits; failing a sentence boundary, at a
/// word boundary with an ellipsis.
pub fn trim_to(text: &str, limit: usize) -> String {
    if char_count(text) <= limit {
        return text.to_owned();
    }
    let (body, tag_line) = match text.rsplit_once('\n') {
        Some((body, last))
            if last.split_whitespace().all(|w| w.starts_with('#')) && !last.trim().is_empty() =>
        {
            (body.trim_end(), Some(last.trim()))
        }
        _ => (text, None),
    };
    let room_for_tags = tag_line.map_or(0, |t| char_count(t) + 2);
    let (budget, tag_line) =
        if room_for_tags < limit / 2 { (limit - room_for_tags, tag_line) } else { (limit, None) };
    let mut cut = cut_at_sentence(body, budget);
    if let Some(tags) = tag_line {
        cut = format!("{cut}\n\n{tags}");
    }
    cut
}

fn cut_at_sentence(text: &str, budget: usize) -> String {
    let prefix: String = text.chars().take(budget).collect();
    // The last sentence end inside the budget.
    let end = prefix.char_indices().rev().find(|(i, c)| {
        matches!(c, '.' | '!' | '?' | '…')
            && prefix[i + c.len_utf8()..].chars().next().is_none_or(char::is_whitespace)
    });
    if let Some((i, c)) = end
        && i > 0
    {
        return prefix[..i + c.len_utf8()].trim_end().to_owned();
    }
    // No sentence fits: the last whole word, and an ellipsis.
    let words: String = prefix.chars().take(budget.saturating_sub(1)).collect();
    let cut = words.rfind(char::is_whitespace).map_or(words.as_str(), |i| &words[..i]);
    format!("{}…", cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_counted_as_each_platform_counts() {
        assert_eq!(x_length("hello"), 5);
        // A link is 23 whatever its length; CJK counts 2.
        assert_eq!(x_length("see https://example.com/a/very/long/path/indeed ok"), 4 + 23 + 3);
        assert_eq!(x_length("日本"), 4);
        assert_eq!(mastodon_length("日本 https://example.com/x"), 3 + 23);
        assert_eq!(bluesky_length("👍🏽 e\u{301}"), 3);
    }

    #[test]
    fn limits_follow_the_issue() {
        let limits: Vec<(&str, usize)> =
            Platform::ALL.iter().map(|p| (spec(*p).name, spec(*p).char_limit)).collect();
        assert_eq!(
            limits,
            [
                ("X", 280),
                ("LinkedIn", 3000),
                ("Facebook", 63206),
                ("Instagram", 2200),
                ("TikTok", 2200),
                ("Threads", 500),
                ("Pinterest", 500)
            ]
        );
    }

    #[test]
    fn posts_below_the_hashtag_minimum_are_filled_from_the_topic() {
        let tags = topic_hashtags("How solar roofs pay for themselves");
        assert_eq!(tags, ["#SolarRoofs", "#Solar", "#Roofs"]);
        let instagram = spec(Platform::Instagram);
        let (text, added) = fill_hashtags("Sunny days ahead.", &instagram, &tags);
        assert!(added);
        assert_eq!(hashtags(&text), ["#SolarRoofs", "#Solar", "#Roofs"], "{text}");
        assert!(text.starts_with("Sunny days ahead."), "{text}");
        // Enough already, or a platform that asks for none: unchanged.
        let threads = spec(Platform::Threads);
        assert_eq!(fill_hashtags("Plain post.", &threads, &tags), ("Plain post.".to_owned(), false));
        let x = spec(Platform::X);
        assert!(!fill_hashtags("Go #solar", &x, &tags).1);
        let (text, _) = fill_hashtags("Go", &x, &tags);
        assert_eq!(hashtags(&text).len(), 1, "{text}");
    }

    #[test]
    fn hashtags_are_found_once_and_only_at_word_starts() {
        assert_eq!(
            hashtags("New #Launch today! #launch #AI_tools C# and #2024 x#y"),
            ["#Launch", "#AI_tools"]
        );
        assert_eq!(hashtags("Café #crème"), ["#crème"]);
    }

    #[test]
    fn hashtags_are_capped_and_placed() {
        let x = spec(Platform::X);
        assert_eq!(arrange_hashtags("Big #news #today #now for all", &x), "Big #news #today for all");
        let linkedin = spec(Platform::Linkedin);
        let arranged = arrange_hashtags("We grew #growth by #team effort.\nJoin us! #a #b #c #d", &linkedin);
        assert_eq!(arranged, "We grew by effort.\nJoin us!\n\n#growth #team #a #b #c");
        let threads = spec(Platform::Threads);
        assert_eq!(hashtags(&arrange_hashtags("#one and #two", &threads)), ["#one"]);
    }

    #[test]
    fn long_posts_are_cut_at_a_sentence() {
        let text = "First sentence here. Second one is longer. Third never fits at all.\n\n#tag";
        let cut = trim_to(text, 52);
        assert_eq!(cut, "First sentence here. Second one is longer.\n\n#tag");
        assert!(char_count(&cut) <= 52);
        let no_sentence = trim_to("one two three four five six seven", 16);
        assert_eq!(no_sentence, "one two three…");
        assert!(char_count(&no_sentence) <= 16);
        assert_eq!(trim_to("short", 10), "short");
    }
}
