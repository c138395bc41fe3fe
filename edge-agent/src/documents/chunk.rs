//! Chunks for retrieval: paragraphs grouped under their heading to about
//! 512 tokens, never across a heading or a page, with the tail of one chunk
//! repeated at the head of the next so a fact at a boundary is whole in one
//! of them. Tokens are estimated at four characters each.

use super::extract::Block;

/// About 512 tokens.
pub const TARGET_CHARS: usize = 2048;
/// About 64 tokens of overlap.
pub const OVERLAP_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub text: String,
    pub section: String,
    pub page: Option<u32>,
}

pub fn chunks(blocks: &[Block]) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut current: Option<Chunk> = None;
    for block in blocks {
        for piece in split_long(&block.text) {
            let same_section =
                current.as_ref().is_some_and(|c| c.section == block.heading && c.page == block.page);
            let fits = current.as_ref().is_some_and(|c| c.text.len() + piece.len() < TARGET_CHARS);
            match current.as_mut() {
                Some(chunk) if same_section && fits => {
                    chunk.text.push('\n');
                    chunk.text.push_str(&piece);
                }
                _ => {
                    let overlap = match current.take() {
                        Some(done) => {
                            let tail = (done.section == block.heading && done.page == block.page)
                                .then(|| tail(&done.text, OVERLAP_CHARS));
                            out.push(done);
                            tail
                        }
                        None => None,
                    };
                    let mut text = overlap.unwrap_or_default();
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&piece);
                    current = Some(Chunk { text, section: block.heading.clone(), page: block.page });
                }
            }
        }
    }
    out.extend(current);
    out
}

/// A paragraph longer than a chunk, cut at sentence ends (or words).
fn split_long(text: &str) -> Vec<String> {
    let budget = TARGET_CHARS - OVERLAP_CHARS - 1;
    if text.len() <= budget {
        return vec![text.to_owned()];
    }
    let mut pieces = Vec::new();
    let mut current = String::new();
    for sentence in sentences(text) {
        if !current.is_empty() && current.len() + sentence.len() + 1 > budget {
            pieces.push(std::mem::take(&mut current));
        }
        if sentence.len() > budget {
            // One enormous sentence: by words.
            for word in sentence.split_whitespace() {
                if !current.is_empty() && current.len() + word.len() + 1 > budget {
                    pieces.push(std::mem::take(&mut current));
                }
                if !current.is_empty() {
                    current.push(' ');
                }
                current.push_str(word);
            }
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(sentence);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') && bytes.get(i + 1).is_none_or(|b| *b == b' ') {
            out.push(text[start..=i].trim());
            start = i + 1;
        }
    }
    if start < text.len() && !text[start..].trim().is_empty() {
        out.push(text[start..].trim());
    }
    out
}

/// The last whole sentences (or words) of `text` within `max` bytes.
fn tail(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let window = &text[start..];
    // After the first sentence end in the window, else after a space.
    let sentence_end = window.char_indices().zip(window.chars().skip(1)).find_map(|((i, c), next)| {
        (matches!(c, '.' | '!' | '?') && next.is_whitespace()).then_some(i + c.len_utf8())
    });
    let from = sentence_end.or_else(|| window.find(char::is_whitespace)).unwrap_or(0);
    window[from..].trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(heading: &str, text: &str) -> Block {
        Block { heading: heading.into(), page: None, text: text.into() }
    }

    #[test]
    fn paragraphs_group_under_their_heading_within_the_budget() {
        let blocks = [block("A", "one."), block("A", "two."), block("B", "three.")];
        let chunks = chunks(&blocks);
        assert_eq!(chunks.len(), 2);
        assert_eq!((chunks[0].text.as_str(), chunks[0].section.as_str()), ("one.\ntwo.", "A"));
        assert_eq!(
            (chunks[1].text.as_str(), chunks[1].section.as_str()),
            ("three.", "B"),
            "no overlap across headings"
        );
    }

    #[test]
    fn long_sections_split_with_overlap() {
        let sentence = "The solar tile line carries a thirty year warranty on every roof we install. ";
        let blocks: Vec<Block> = (0..60).map(|_| block("Specs", sentence.trim())).collect();
        let chunks = chunks(&blocks);
        assert!(chunks.len() > 1);
        for chunk in &chunks {
            assert!(chunk.text.len() <= TARGET_CHARS, "{}", chunk.text.len());
            assert_eq!(chunk.section, "Specs");
        }
        // The second begins with the end of the first.
        let head = &chunks[1].text[..60];
        assert!(chunks[0].text.contains(head), "overlap: {head}");
        let huge = "word ".repeat(2000);
        let split = super::chunks(&[block("", huge.trim())]);
        assert!(split.iter().all(|c| c.text.len() <= TARGET_CHARS));
    }
}
