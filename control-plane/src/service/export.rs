//! Exports of an activity's content: the Markdown as it is, or a standalone
//! HTML page. The HTML is rendered from the Markdown and then sanitised
//! (ammonia), so nothing a person or a model wrote can carry script, event
//! handlers, frames or styles into it.

use pulldown_cmark::{Options, Parser, html};

/// `markdown` as sanitised HTML (a fragment, for a page or a document).
pub fn markdown_html(markdown: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let mut rendered = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut rendered, Parser::new_ext(markdown, options));
    ammonia::Builder::default()
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_schemes(["http", "https", "mailto", "tel"].into_iter().collect())
        .clean(&rendered)
        .to_string()
}

/// A standalone HTML document of `markdown`, titled `title`.
pub fn html_document(title: &str, markdown: &str) -> String {
    let body = markdown_html(markdown);
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

    #[test]
    fn scripts_and_handlers_do_not_survive() {
        let markdown = "# Title\n\nHello <script>alert('x')</script> world.\n\n\
                        <img src=x onerror=\"alert(1)\"> [link](javascript:alert(1)) \
                        <iframe src=\"https://evil.example\"></iframe>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n";
        let html = html_document("Title <script>", markdown);
        let lower = html.to_lowercase();
        assert!(!lower.contains("<script"), "{html}");
        assert!(!lower.contains("onerror"), "{html}");
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
