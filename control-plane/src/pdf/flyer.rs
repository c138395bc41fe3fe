//! A listing's print-ready flyer: one page, US Letter or A4. The caller
//! gathers the texts, the photos (prepared with [`photo_boxes`] and
//! [`super::prepare_photo`]) and the tenant's brand; this lays them out.
//!
//! From the top: the logo and the price, the cover photo, a row of up to
//! four more photos, the headline and summary, the address and key facts
//! on a band of the accent colour, the description beside the features,
//! the call to action, and a footer in the brand colour with the agent's
//! details and the Equal Housing Opportunity statement.

use krilla::Document;
use krilla::metadata::Metadata;
use krilla::page::PageSettings;

use super::{Canvas, Paper, Rgb, Style, clamp, jpeg, png, wrap};

/// Photos on a flyer: the cover and up to four more.
pub const MAX_PHOTOS: usize = 5;
const MARGIN: f32 = 36.0;
const GAP: f32 = 8.0;
const FOOTER: f32 = 96.0;

/// Everything printed on a flyer.
#[derive(Debug, Clone)]
pub struct Flyer {
    pub paper: Paper,
    pub brand: Rgb,
    pub accent: Rgb,
    /// The tenant's logo, PNG.
    pub logo: Option<Vec<u8>>,
    /// "$450,000".
    pub price: String,
    /// "Active", "Coming soon".
    pub status: String,
    pub headline: String,
    pub summary: String,
    pub address: String,
    /// "3 bd · 2.5 ba · 1,850 sq ft", the type, the year built.
    pub facts: Vec<String>,
    pub description: String,
    pub features: Vec<String>,
    pub call_to_action: String,
    pub agent_name: String,
    pub agent_contact: String,
    /// The Equal Housing Opportunity statement and any other disclaimers.
    pub disclaimers: String,
    /// Prepared JPEGs, the cover first.
    pub photos: Vec<Vec<u8>>,
}

fn content_width(paper: Paper) -> f32 {
    paper.size().0 - 2.0 * MARGIN
}

/// The boxes, in points, the photos are printed in: the cover first, then
/// one per further photo. Prepare each photo for its box.
pub fn photo_boxes(paper: Paper, count: usize) -> Vec<(f32, f32)> {
    let count = count.min(MAX_PHOTOS);
    if count == 0 {
        return Vec::new();
    }
    let w = content_width(paper);
    let mut boxes = vec![(w, cover_height(paper))];
    let rest = count - 1;
    if rest > 0 {
        let (tw, th) = thumb_size(paper);
        boxes.extend(std::iter::repeat_n((tw, th), rest));
    }
    boxes
}

fn cover_height(paper: Paper) -> f32 {
    // Letter: 270 pt; A4 is taller and a little narrower.
    (paper.size().1 * 0.34).round()
}

fn thumb_size(paper: Paper) -> (f32, f32) {
    let w = (content_width(paper) - 3.0 * GAP) / 4.0;
    (w, (w * 0.68).round())
}

/// The flyer as a PDF.
pub fn render(flyer: &Flyer) -> Result<Vec<u8>, String> {
    let (page_w, page_h) = flyer.paper.size();
    let w = content_width(flyer.paper);
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(flyer.headline.clone())
            .description(flyer.address.clone())
            .creator("Marketer".into())
            .language("en".into())
            .authors(vec![flyer.agent_name.clone()]),
    );
    let settings = PageSettings::from_wh(page_w, page_h).ok_or("bad page size")?;
    let mut page = document.start_page_with(settings);
    let mut surface = page.surface();
    let mut c = Canvas::new(&mut surface);
    let ink = Rgb::INK;
    let left = MARGIN;
    let right = MARGIN + w;

    // The header: logo left, status and price right.
    let mut y = MARGIN;
    let header = 44.0;
    if let Some(logo) = &flyer.logo {
        c.image(png(logo.clone())?, left, y, 160.0, header);
    }
    c.text_right(right, y + 14.0, &flyer.status.to_uppercase(), Style::new(10.0, true, flyer.accent));
    c.text_right(right, y + header - 4.0, &flyer.price, Style::new(26.0, true, flyer.brand));
    y += header + GAP + 4.0;

    // The photos.
    let boxes = photo_boxes(flyer.paper, flyer.photos.len());
    let mut photos = flyer.photos.iter().zip(&boxes);
    if let Some((cover, (bw, bh))) = photos.next() {
        c.image(jpeg(cover.clone())?, left, y, *bw, *bh);
        y += bh + GAP;
        let mut x = left;
        let mut row = 0.0_f32;
        for (photo, (tw, th)) in photos {
            c.image(jpeg(photo.clone())?, x, y, *tw, *th);
            x += tw + GAP;
            row = *th;
        }
        if row > 0.0 {
            y += row + GAP;
        }
    }

    // The headline and summary.
    y += 4.0;
    let headline = Style::new(22.0, true, flyer.brand);
    let lines = clamp(wrap(&flyer.headline, headline, w), 2, headline, w);
    y = c.lines(left, y, &lines, headline);
    if !flyer.summary.is_empty() {
        let summary = Style::new(11.5, false, Rgb::MUTED);
        let lines = clamp(wrap(&flyer.summary, summary, w), 2, summary, w);
        y = c.lines(left, y + 2.0, &lines, summary);
    }

    // The address and the facts on the accent band.
    y += GAP;
    let band = Style::new(10.5, true, flyer.accent.text_on());
    let facts = flyer.facts.join("  ·  ");
    let band_lines =
        clamp(wrap(&format!("{}  ·  {facts}", flyer.address), band, w - 20.0), 2, band, w - 20.0);
    #[allow(clippy::cast_precision_loss)]
    let band_h = 14.0 + band.leading() * band_lines.len() as f32;
    c.rect(left, y, w, band_h, flyer.accent);
    c.lines(left + 10.0, y + 7.0, &band_lines, band);
    y += band_h + 12.0;

    // The description beside the features, then the call to action, in
    // what is left above the footer.
    let footer_top = page_h - FOOTER;
    let cta = Style::new(12.5, true, flyer.brand);
    let cta_lines = clamp(wrap(&flyer.call_to_action, cta, w), 2, cta, w);
    #[allow(clippy::cast_precision_loss)]
    let cta_h = cta.leading() * cta_lines.len() as f32;
    let body_bottom = footer_top - 10.0 - cta_h - if cta_lines.is_empty() { 0.0 } else { 8.0 };
    let body = Style::new(10.0, false, ink);
    let features_w = if flyer.features.is_empty() { 0.0 } else { (w * 0.36).round() };
    let description_w = if features_w > 0.0 { w - features_w - 18.0 } else { w };
    let room = |top: f32, style: Style| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = ((body_bottom - top) / style.leading()).floor().max(0.0) as usize;
        n
    };
    let description =
        clamp(wrap(&flyer.description, body, description_w), room(y, body), body, description_w);
    let description_end = c.lines(left, y, &description, body);
    let mut features_end = y;
    if features_w > 0.0 {
        let x = left + description_w + 18.0;
        let heading = Style::new(11.0, true, flyer.brand);
        c.text(x, y + heading.size, "Features", heading);
        let mut fy = y + heading.leading() + 2.0;
        let bullet = Style::new(9.5, false, ink);
        for feature in &flyer.features {
            let lines = wrap(feature, bullet, features_w - 12.0);
            #[allow(clippy::cast_precision_loss)]
            if fy + bullet.leading() * lines.len() as f32 > body_bottom {
                break;
            }
            c.text(x, fy + bullet.size, "•", Style::new(9.5, true, flyer.accent));
            fy = c.lines(x + 12.0, fy, &lines, bullet) + 2.0;
        }
        features_end = fy;
    }
    let cta_top = description_end.max(features_end).min(body_bottom) + 8.0;
    c.lines(left, cta_top, &cta_lines, cta);

    // The footer: the agent, and the Equal Housing Opportunity statement.
    c.rect(0.0, footer_top, page_w, page_h - footer_top, flyer.brand);
    let on_brand = flyer.brand.text_on();
    let name = Style::new(13.0, true, on_brand);
    let contact = Style::new(10.0, false, on_brand);
    let small = Style::new(8.0, false, on_brand);
    let agent_w = w * 0.42;
    let mut fy = footer_top + 16.0;
    fy = c.lines(left, fy, &clamp(wrap(&flyer.agent_name, name, agent_w), 1, name, agent_w), name);
    c.lines(
        left,
        fy + 2.0,
        &clamp(wrap(&flyer.agent_contact, contact, agent_w), 3, contact, agent_w),
        contact,
    );
    let legal_x = left + agent_w + 18.0;
    let legal_w = right - legal_x;
    let legal_rows = ((FOOTER - 30.0) / small.leading()).floor();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let legal = clamp(wrap(&flyer.disclaimers, small, legal_w), legal_rows as usize, small, legal_w);
    c.lines(legal_x, footer_top + 16.0, &legal, small);

    surface.finish();
    page.finish();
    document.finish().map_err(|e| format!("writing the PDF: {e:?}"))
}

/// Every text of a flyer, named by where it is printed, for the Fair
/// Housing screen.
pub fn texts(flyer: &Flyer) -> Vec<(String, &str)> {
    let mut out = vec![
        ("flyer.headline".to_owned(), flyer.headline.as_str()),
        ("flyer.summary".to_owned(), flyer.summary.as_str()),
        ("flyer.description".to_owned(), flyer.description.as_str()),
        ("flyer.call_to_action".to_owned(), flyer.call_to_action.as_str()),
        ("flyer.address".to_owned(), flyer.address.as_str()),
        ("flyer.disclaimers".to_owned(), flyer.disclaimers.as_str()),
    ];
    for (i, feature) in flyer.features.iter().enumerate() {
        out.push((format!("flyer.features[{}]", i + 1), feature.as_str()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 120]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_flyer_with_five_photos_is_small_and_one_page() {
        for paper in [Paper::Letter, Paper::A4] {
            let boxes = photo_boxes(paper, 7);
            assert_eq!(boxes.len(), MAX_PHOTOS);
            let photos = boxes
                .iter()
                .map(|(w, h)| super::super::prepare_photo(&photo(2400, 1600), *w, *h).unwrap())
                .collect();
            let flyer = Flyer {
                paper,
                brand: Rgb(0x1f, 0x4e, 0x79),
                accent: Rgb(0xc8, 0x10, 0x2e),
                logo: None,
                price: "$450,000".into(),
                status: "Active".into(),
                headline: "Sunny craftsman on a quiet street".into(),
                summary: "Three bedrooms, two and a half baths.".into(),
                address: "12 Elm Street, Springfield, IL 62704".into(),
                facts: vec!["3 bd · 2.5 ba · 1,850 sq ft".into(), "Built 1998".into()],
                description: "Bright rooms. ".repeat(200),
                features: vec!["Renovated kitchen".into(), "Two-car garage".into()],
                call_to_action: "Call today to tour it.".into(),
                agent_name: "Dana Reyes".into(),
                agent_contact: "dana@example.com · 555-0100".into(),
                disclaimers: "Equal Housing Opportunity.".into(),
                photos,
            };
            let pdf = render(&flyer).unwrap();
            assert!(pdf.starts_with(b"%PDF-"));
            assert!(pdf.len() < 800_000, "{} bytes", pdf.len());
        }
    }
}
