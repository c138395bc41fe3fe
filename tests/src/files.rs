//! Documents for tests, built the way real tools write them: a DOCX is a
//! zip with `word/document.xml`, a PDF has a text layer in a content
//! stream.

use std::io::Write;

/// A minimal DOCX with a heading and two paragraphs.
pub fn docx(heading: &str, paragraphs: &[&str]) -> Vec<u8> {
    let mut body =
        format!(r#"<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>{heading}</w:t></w:r></w:p>"#);
    for p in paragraphs {
        body.push_str(&format!("<w:p><w:r><w:t xml:space=\"preserve\">{p}</w:t></w:r></w:p>"));
    }
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>"#
    );
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default();
    zip.start_file("[Content_Types].xml", options).unwrap();
    zip.write_all(b"<?xml version=\"1.0\"?><Types/>").unwrap();
    zip.start_file("word/document.xml", options).unwrap();
    zip.write_all(xml.as_bytes()).unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

/// A minimal one-page PDF whose text layer says `text`.
pub fn pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 720 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{object}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1)
            .as_bytes(),
    );
    pdf
}

/// A JPEG photo of `width`×`height`: a gradient, like a sky over a roof.
pub fn photo(width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbImage::from_fn(width, height, |x, y| {
        let sky = u8::try_from(255 * y / height.max(1)).unwrap_or(u8::MAX);
        image::Rgb([90, u8::try_from(120 + 100 * x / width.max(1)).unwrap_or(u8::MAX), 255 - sky / 2])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&pixels)
        .expect("encoding a JPEG in memory");
    out
}

/// Runs a poppler tool (Debian's `poppler-utils`) on a PDF: `pdftotext`
/// and `pdfinfo` give their standard output; `pdftoppm` gives page 1 as
/// a PNG.
pub fn poppler(tool: &str, args: &[&str], pdf: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("document.pdf");
    std::fs::write(&path, pdf).unwrap();
    let mut command = std::process::Command::new(tool);
    command.args(args).arg(&path);
    match tool {
        "pdftotext" => {
            command.arg("-");
        }
        "pdftoppm" => {
            command.args(["-png", "-f", "1", "-l", "1", "-singlefile"]).arg(dir.path().join("page"));
        }
        _ => {}
    }
    let out =
        command.output().unwrap_or_else(|e| panic!("{tool} (Debian's poppler-utils) must be installed: {e}"));
    assert!(out.status.success(), "{tool}: {}", String::from_utf8_lossy(&out.stderr));
    if tool == "pdftoppm" {
        return std::fs::read(dir.path().join("page.png")).unwrap();
    }
    out.stdout
}
