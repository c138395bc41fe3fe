//! Text out of files: plain text, Markdown, HTML (visible text only), PDF
//! (its text layer) and DOCX. The type is told from the content, not the
//! name: a `.pdf` that is not a PDF is refused as what it is.
//!
//! What comes out is a list of blocks (paragraphs) with the heading they sit
//! under and, for PDFs, their page, for chunking and for citing.

use std::io::Read;

/// A paragraph of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub heading: String,
    pub page: Option<u32>,
    pub text: String,
}

/// A file's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub media_type: &'static str,
    pub blocks: Vec<Block>,
}

pub use marketer_pipeline::formats::{DOCX, HTML, MARKDOWN, PDF, TEXT, sniff};

/// Why a file yields no text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Format(#[from] marketer_pipeline::formats::FormatError),
    #[error("the PDF cannot be read: {0}")]
    Pdf(String),
    #[error("the DOCX cannot be read: {0}")]
    Docx(String),
    #[error("the file has no text (a scanned PDF needs OCR first)")]
    Empty,
}

/// Extracts a file's text (its format told from its content; see
/// `marketer_pipeline::formats`).
pub fn extract(name: &str, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let media_type = marketer_pipeline::formats::classify(name, bytes)?;
    let blocks = match media_type {
        PDF => pdf(bytes)?,
        DOCX => docx(bytes)?,
        HTML => html(&String::from_utf8_lossy(bytes)),
        MARKDOWN => markdown(&String::from_utf8_lossy(bytes)),
        _ => plain(&String::from_utf8_lossy(bytes)),
    };
    if blocks.iter().all(|b| b.text.trim().is_empty()) {
        return Err(ExtractError::Empty);
    }
    Ok(Extracted { media_type, blocks })
}

/// Paragraphs separated by blank lines.
fn paragraphs(text: &str, heading: &str, page: Option<u32>, out: &mut Vec<Block>) {
    for paragraph in text.split("\n\n") {
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if !paragraph.is_empty() {
            out.push(Block { heading: heading.to_owned(), page, text: paragraph });
        }
    }
}

fn plain(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    paragraphs(&text.replace("\r\n", "\n"), "", None, &mut blocks);
    blocks
}

/// Markdown: `#` headings start sections; the rest is paragraphs.
fn markdown(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut body = String::new();
    for line in text.replace("\r\n", "\n").lines() {
        let trimmed = line.trim_start();
        let level = trimmed.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&level) && trimmed[level..].starts_with(' ') {
            paragraphs(&body, &heading, None, &mut blocks);
            body.clear();
            heading = trimmed[level..].trim().to_owned();
        } else {
            body.push_str(line);
            body.push('\n');
        }
    }
    paragraphs(&body, &heading, None, &mut blocks);
    blocks
}

/// HTML: visible text only (no scripts, styles, templates or the head),
/// sectioned by `h1`–`h6`, with block elements as paragraphs.
fn html(source: &str) -> Vec<Block> {
    use scraper::{Html, Node};
    let document = Html::parse_document(source);
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut current = String::new();
    fn walk(
        node: ego_tree::NodeRef<'_, Node>,
        heading: &mut String,
        current: &mut String,
        blocks: &mut Vec<Block>,
    ) {
        match node.value() {
            Node::Text(text) => {
                current.push_str(text);
            }
            Node::Element(element) => {
                let name = element.name();
                if matches!(name, "script" | "style" | "noscript" | "template" | "head" | "svg" | "iframe") {
                    return;
                }
                let is_heading = matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6");
                let is_block = is_heading
                    || matches!(
                        name,
                        "p" | "div"
                            | "li"
                            | "br"
                            | "tr"
                            | "section"
                            | "article"
                            | "header"
                            | "footer"
                            | "blockquote"
                            | "pre"
                            | "ul"
                            | "ol"
                            | "table"
                            | "main"
                            | "nav"
                            | "aside"
                    );
                if is_block {
                    flush(current, heading, blocks);
                }
                if is_heading {
                    let mut text = String::new();
                    collect_text(node, &mut text);
                    *heading = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    return;
                }
                for child in node.children() {
                    walk(child, heading, current, blocks);
                }
                if is_block {
                    flush(current, heading, blocks);
                }
            }
            _ => {
                for child in node.children() {
                    walk(child, heading, current, blocks);
                }
            }
        }
    }
    fn collect_text(node: ego_tree::NodeRef<'_, Node>, out: &mut String) {
        for descendant in node.descendants() {
            if let Node::Text(text) = descendant.value() {
                out.push_str(text);
                out.push(' ');
            }
        }
    }
    fn flush(current: &mut String, heading: &str, blocks: &mut Vec<Block>) {
        let text = current.split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() {
            blocks.push(Block { heading: heading.to_owned(), page: None, text });
        }
        current.clear();
    }
    walk(document.tree.root(), &mut heading, &mut current, &mut blocks);
    flush(&mut current, &heading, &mut blocks);
    blocks
}

/// PDF: the text layer, page by page. The parser can panic on malformed
/// input; that is caught and reported as an unreadable PDF.
fn pdf(bytes: &[u8]) -> Result<Vec<Block>, ExtractError> {
    let owned = bytes.to_vec();
    let pages = std::panic::catch_unwind(move || pdf_extract::extract_text_from_mem_by_pages(&owned))
        .map_err(|_| ExtractError::Pdf("the file is damaged".into()))?
        .map_err(|e| ExtractError::Pdf(e.to_string()))?;
    let mut blocks = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let page_number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        paragraphs(&page.replace("\r\n", "\n"), "", Some(page_number), &mut blocks);
    }
    Ok(blocks)
}

/// DOCX: the paragraphs of `word/document.xml`; paragraphs styled as
/// headings start sections.
fn docx(bytes: &[u8]) -> Result<Vec<Block>, ExtractError> {
    use quick_xml::events::Event;
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| ExtractError::Docx(e.to_string()))?;
    let mut xml = String::new();
    archive
        .by_name("word/document.xml")
        .map_err(|e| ExtractError::Docx(e.to_string()))?
        .take(64 * 1024 * 1024)
        .read_to_string(&mut xml)
        .map_err(|e| ExtractError::Docx(e.to_string()))?;
    let mut reader = quick_xml::Reader::from_str(&xml);
    let mut blocks = Vec::new();
    let mut heading = String::new();
    let mut paragraph = String::new();
    let mut is_heading = false;
    let mut in_text = false;
    loop {
        match reader.read_event().map_err(|e| ExtractError::Docx(e.to_string()))? {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "p" => {
                    paragraph.clear();
                    is_heading = false;
                }
                "pStyle" => {
                    let style = e
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == "val")
                        .map(|a| a.value.to_ascii_lowercase())
                        .unwrap_or_default();
                    is_heading = style.starts_with("heading") || style == "title";
                }
                "t" => in_text = true,
                "tab" => paragraph.push(' '),
                "br" => paragraph.push('\n'),
                _ => {}
            },
            Event::Text(text) if in_text => {
                paragraph.push_str(&text);
            }
            Event::GeneralRef(reference) if in_text => {
                // &amp; and the like, inside a run's text.
                if let Ok(Some(c)) = reference.resolve_char_ref() {
                    paragraph.push(c);
                }
                paragraph.push_str(match &*reference {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    _ => "",
                });
            }
            Event::End(e) => match e.local_name().as_ref() {
                "t" => in_text = false,
                "p" => {
                    let text = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
                    if is_heading {
                        heading = text;
                    } else if !text.is_empty() {
                        blocks.push(Block { heading: heading.clone(), page: None, text });
                    }
                    paragraph.clear();
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use marketer_tests::files::{docx as docx_bytes, pdf as pdf_bytes};

    use super::*;

    #[test]
    fn each_supported_type_gives_its_text_and_structure() {
        let md = extract(
            "guide.md",
            b"# Voice\n\nWe are warm.\n\nWe are brief.\n\n## Words\n\nSay home, not unit.",
        )
        .unwrap();
        assert_eq!(md.media_type, MARKDOWN);
        assert_eq!(md.blocks.len(), 3);
        assert_eq!(
            (md.blocks[2].heading.as_str(), md.blocks[2].text.as_str()),
            ("Words", "Say home, not unit.")
        );

        let html = extract(
            "page.html",
            b"<html><head><title>T</title><style>p{}</style></head><body><h1>About us</h1><p>We build  homes.</p>\
              <script>var secret = 1;</script><div>Since 1990.</div></body></html>",
        )
        .unwrap();
        assert_eq!(html.media_type, HTML);
        let texts: Vec<&str> = html.blocks.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(texts, ["We build homes.", "Since 1990."]);
        assert!(html.blocks.iter().all(|b| b.heading == "About us"));

        let docx = extract(
            "sheet.docx",
            &docx_bytes("Specs", &["Solar tiles, 30 year warranty.", "Fits any roof &amp; more."]),
        )
        .unwrap();
        assert_eq!(docx.media_type, DOCX);
        assert_eq!(docx.blocks.len(), 2);
        assert_eq!(docx.blocks[0].heading, "Specs");
        assert_eq!(docx.blocks[1].text, "Fits any roof & more.");

        let pdf = extract("brochure.pdf", &pdf_bytes("Roofs that pay for themselves")).unwrap();
        assert_eq!(pdf.media_type, PDF);
        assert!(pdf.blocks[0].text.contains("Roofs that pay for themselves"), "{pdf:?}");
        assert_eq!(pdf.blocks[0].page, Some(1));

        let text = extract("notes.txt", b"one\n\ntwo").unwrap();
        assert_eq!((text.media_type, text.blocks.len()), (TEXT, 2));
    }

    #[test]
    fn bad_files_fail_with_the_reason() {
        let corrupt = extract("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> garbage");
        assert!(matches!(corrupt, Err(ExtractError::Pdf(_))), "{corrupt:?}");
        let disguised = extract("photo.pdf", b"just some text pretending");
        assert!(
            matches!(
                disguised,
                Err(ExtractError::Format(marketer_pipeline::formats::FormatError::Disguised { .. }))
            ),
            "{disguised:?}"
        );
        assert!(matches!(
            extract("image.png", &[0x89, b'P', b'N', b'G', 0, 0]),
            Err(ExtractError::Format(marketer_pipeline::formats::FormatError::Unsupported(_)))
        ));
        assert!(matches!(
            extract("script.exe", b"MZ\x00\x00"),
            Err(ExtractError::Format(marketer_pipeline::formats::FormatError::Unsupported(_)))
        ));
        assert!(matches!(extract("empty.txt", b"  \n\n "), Err(ExtractError::Empty)));
        assert!(matches!(
            extract("table.csv", b"a,b"),
            Err(ExtractError::Format(marketer_pipeline::formats::FormatError::Unsupported(_)))
        ));
    }
}
