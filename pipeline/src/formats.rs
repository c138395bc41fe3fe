//! The document formats the product indexes, told from a file's content:
//! plain text, Markdown, HTML, PDF and DOCX. Both sides use this: the
//! control plane to refuse an upload before storing it, the agent before
//! extracting text. The name only decides between text and Markdown, and
//! catches a name that lies about the content.

pub const TEXT: &str = "text/plain";
pub const MARKDOWN: &str = "text/markdown";
pub const HTML: &str = "text/html";
pub const PDF: &str = "application/pdf";
pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// Why a file is not a document the product can index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "unsupported file type ({0}); supported: text (.txt), Markdown (.md), HTML (.html), PDF (.pdf), Word (.docx)"
    )]
    Unsupported(String),
    #[error("the file is named .{extension} but its content is {actual}")]
    Disguised { extension: String, actual: String },
}

/// What a file's bytes are, if one of the formats.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"%PDF-") {
        return Some(PDF);
    }
    if bytes.starts_with(b"PK\x03\x04") {
        // A zip: a DOCX when it has the main document part.
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).ok()?;
        return archive.by_name("word/document.xml").is_ok().then_some(DOCX);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    if text.chars().take(4096).any(|c| c == '\0') {
        return None;
    }
    let start = text.trim_start();
    let head = start.get(..512.min(start.len())).unwrap_or(start).to_ascii_lowercase();
    if head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<body") {
        return Some(HTML);
    }
    Some(TEXT)
}

/// The format of a file named `name` with content `bytes`.
pub fn classify(name: &str, bytes: &[u8]) -> Result<&'static str, FormatError> {
    let extension = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    let Some(sniffed) = sniff(bytes) else {
        return Err(FormatError::Unsupported(if extension.is_empty() {
            "binary".into()
        } else {
            format!(".{extension}")
        }));
    };
    let claimed = match extension.as_str() {
        "pdf" => Some(PDF),
        "docx" => Some(DOCX),
        "html" | "htm" => Some(HTML),
        "md" | "markdown" => Some(MARKDOWN),
        "txt" | "text" | "" => Some(TEXT),
        _ => None,
    };
    match (claimed, sniffed) {
        (Some(MARKDOWN), TEXT) => Ok(MARKDOWN),
        (Some(TEXT), HTML) => Ok(HTML),
        (Some(claimed), actual) if claimed != actual => {
            Err(FormatError::Disguised { extension, actual: describe(actual).into() })
        }
        (None, TEXT) => Err(FormatError::Unsupported(format!(".{extension}"))),
        (_, actual) => Ok(actual),
    }
}

fn describe(media_type: &str) -> &'static str {
    match media_type {
        PDF => "a PDF",
        DOCX => "a Word document",
        HTML => "HTML",
        _ => "plain text",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_and_names_that_lie_are_caught() {
        assert_eq!(classify("a.pdf", b"%PDF-1.4 ..."), Ok(PDF));
        assert_eq!(classify("notes.md", b"# Title\n\ntext"), Ok(MARKDOWN));
        assert_eq!(classify("page.txt", b"<!DOCTYPE html><html></html>"), Ok(HTML));
        assert_eq!(classify("README", b"plain words"), Ok(TEXT));
        assert!(matches!(classify("invoice.pdf", b"just text"), Err(FormatError::Disguised { .. })));
        assert!(matches!(
            classify("setup.docx", b"MZ\x90\x00\x03\x00\x00\x00\x04"),
            Err(FormatError::Unsupported(_))
        ));
        assert!(matches!(classify("photo.jpg", b"text that says jpg"), Err(FormatError::Unsupported(_))));
        assert!(matches!(classify("a.docx", b"PK\x03\x04broken zip"), Err(FormatError::Unsupported(_))));
    }
}
