//! Exports of an activity's content: the Markdown as it is, or a standalone
//! HTML page. The HTML is rendered from the Markdown and then sanitised
//! (ammonia), so nothing a person or a model wrote can carry script, event
//! handlers, frames or styles into it.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pulldown_cmark::{Event, Options, Parser, html};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// The largest Markdown rendered: the largest content an activity may have.
pub const MAX_RENDER_BYTES: usize = 512 * 1024;
/// Renders running at once (each on the blocking pool, never on the async
/// workers that serve requests and agents).
const RENDER_SLOTS: usize = 2;
/// A render that takes longer is answered with an error (it finishes in the
/// background, holding its slot, so the CPU it may use stays bounded).
const RENDER_TIMEOUT: Duration = Duration::from_secs(10);
/// Rendered pages kept, by the hash of their Markdown.
const CACHE_ENTRIES: usize = 256;

/// Renders Markdown off the async workers: a few at a time, with a time
/// limit, and remembers the HTML of content shown again and again (a
/// version's text is immutable, so its hash names its HTML).
pub struct Renderer {
    slots: Arc<Semaphore>,
    cache: Mutex<lru::LruCache<[u8; 32], Arc<str>>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Self {
            slots: Arc::new(Semaphore::new(RENDER_SLOTS)),
            cache: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN),
            )),
        }
    }
}

impl Renderer {
    /// Sanitised HTML of stored content, from the cache when it was
    /// rendered before.
    pub async fn html(&self, markdown: &str) -> Result<Arc<str>> {
        let key: [u8; 32] = Sha256::digest(markdown.as_bytes()).into();
        if let Some(hit) = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key) {
            return Ok(hit.clone());
        }
        let html: Arc<str> = self.render(markdown.to_owned(), "content").await?.into();
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).put(key, html.clone());
        Ok(html)
    }

    /// Sanitised HTML of text being edited (not cached); `field` names it
    /// in errors.
    pub async fn preview(&self, markdown: String, field: &'static str) -> Result<String> {
        self.render(markdown, field).await
    }

    async fn render(&self, markdown: String, field: &'static str) -> Result<String> {
        if markdown.len() > MAX_RENDER_BYTES {
            return Err(Error::invalid(field, format!("must be at most {MAX_RENDER_BYTES} bytes")));
        }
        let slot = self.slots.clone().acquire_owned().await.map_err(Error::internal)?;
        let task = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            markdown_html(&markdown)
        });
        match tokio::time::timeout(RENDER_TIMEOUT, task).await {
            Ok(done) => done.map_err(Error::internal),
            Err(_) => Err(Error::invalid(field, "is too complex to render; simplify its formatting")),
        }
    }
}

/// Elements nested deeper than this are flattened to their text: no person
/// writes 32 levels of quotes or lists, and the HTML sanitiser's work grows
/// with the square of the nesting.
const MAX_NESTING: usize = 32;

/// `markdown` as sanitised HTML (a fragment, for a page or a document).
/// Its cost is bounded by the input's size: nesting is capped at
/// [`MAX_NESTING`]. Callers on the async runtime use [`Renderer`].
pub fn markdown_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut rendered = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut rendered, flatten_deep(Parser::new_ext(markdown, options)));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(["http", "https", "mailto", "tel"].into_iter().collect())
        .clean(&rendered)
        .to_string()
}

/// The events of `events` with every element deeper than [`MAX_NESTING`]
/// dropped (its text stays).
fn flatten_deep<'a>(events: impl Iterator<Item = Event<'a>>) -> impl Iterator<Item = Event<'a>> {
    let mut kept: Vec<bool> = Vec::new();
    let mut depth = 0usize;
    events
        .filter(move |event| match event {
            Event::Start(_) => {
                let keep = depth < MAX_NESTING;
                kept.push(keep);
                depth += usize::from(keep);
                keep
            }
            Event::End(_) => {
                let keep = kept.pop().unwrap_or(false);
                depth -= usize::from(keep);
                keep
            }
            _ => true,
        })
        // Raw HTML is shown as written, not interpreted: content is Markdown,
        // and markup of its own could nest without bound.
        .map(|event| match event {
            Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
            other => other,
        })
}

/// A standalone HTML document of `body` (HTML from [`markdown_html`]),
/// titled `title`.
pub fn html_document(title: &str, body: &str) -> String {
    let title = ammonia::clean_text(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src https: data:\">\n\
         <title>{title}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )
}

const STYLE: &str = "body { font-family: system-ui, sans-serif; line-height: 1.6; color: #1f2328; margin: 0; }\n\
main { max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }\n\
h1, h2, h3 { line-height: 1.25; }\n\
table { border-collapse: collapse; } td, th { border: 1px solid #d0d7de; padding: 0.3rem 0.6rem; }\n\
blockquote { margin: 0; padding-left: 1rem; border-left: 0.25rem solid #d0d7de; color: #59636e; }\n";

/// A file name for a download: the title's letters and digits, dashed.
pub fn file_name(title: &str, extension: &str) -> String {
    let mut slug = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.len() >= 60 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    format!("{}.{extension}", if slug.is_empty() { "activity" } else { slug })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deepest element nesting in `html`.
    fn nesting(html: &str) -> usize {
        let (mut depth, mut deepest) = (0usize, 0usize);
        let mut rest = html;
        while let Some(at) = rest.find('<') {
            rest = &rest[at + 1..];
            if rest.starts_with('/') {
                depth = depth.saturating_sub(1);
            } else if !["br", "hr", "img", "input"].iter().any(|void| rest.starts_with(void)) {
                depth += 1;
                deepest = deepest.max(depth);
            }
        }
        deepest
    }

    /// Pathological inputs of the largest size content may have: rendering
    /// stays linear (measured in CPU time with a wide margin: before the
    /// bound, 20,000 `>` alone took 1.3 s in a release build, and quadratic
    /// work on 512 KiB takes hours; a debug build sanitizing 512 KiB of
    /// `<div>` takes 2 to 4 s of CPU on a loaded 2-core machine) and the
    /// output's nesting is bounded.
    #[test]
    fn pathological_markdown_renders_in_bounded_time_and_depth() {
        let size = 512 * 1024;
        let fill = |unit: &str| unit.repeat(size / unit.len());
        let cases = [
            ("block quotes", fill(">")),
            ("spaced block quotes", fill("> ")),
            (
                "quote lines",
                fill("> > > > > > > > > > > > > > > > > > > > > > > > > > > > > > > > > > > >x\n"),
            ),
            ("lists", fill("- ")),
            ("numbered lists", fill("1. ")),
            ("indented lists", (0..2000).map(|i| format!("{}- x\n", "  ".repeat(i))).collect::<String>()),
            ("emphasis runs", fill("*a **a ")),
            ("stars", fill("*")),
            ("underscores", fill("_a __a ")),
            ("open links", fill("[")),
            ("links", fill("[a](")),
            ("nested links", fill("[[]](")),
            ("images", fill("![")),
            ("backticks", fill("`")),
            ("raw html", fill("<div>")),
            ("tables", format!("|{}\n|{}\n", fill("a|").get(..size / 4).unwrap_or(""), "-|".repeat(1000))),
        ];
        for (name, input) in &cases {
            let cpu = cpu_time::ThreadTime::now();
            let html = markdown_html(input);
            let spent = cpu.elapsed();
            assert!(spent < std::time::Duration::from_secs(15), "{name}: {spent:?}");
            assert!(nesting(&html) <= MAX_NESTING + 2, "{name}: nested {}", nesting(&html));
        }
    }

    #[test]
    fn scripts_and_handlers_do_not_survive() {
        let markdown = "# Title\n\nHello <script>alert('x')</script> world.\n\n\
                        <img src=x onerror=\"alert(1)\"> [link](javascript:alert(1)) \
                        <iframe src=\"https://evil.example\"></iframe>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let html = html_document("Title <script>", &markdown_html(markdown));
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"), "{html}");
        assert!(!lower.contains("<img"), "raw HTML is shown as text: {html}");
        assert!(lower.contains("&lt;img src=x onerror"), "{html}");
        assert!(!lower.contains("javascript:"), "{html}");
        assert!(!lower.contains("<iframe"), "{html}");
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<table>"));
        assert!(html.contains("&lt;script&gt;</title>"), "the title is escaped: {html}");
        assert!(html.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn file_names_are_tame() {
        assert_eq!(file_name("Solar Roofs: What They Cost!", "md"), "solar-roofs-what-they-cost.md");
        assert_eq!(file_name("???", "html"), "activity.html");
    }
}
