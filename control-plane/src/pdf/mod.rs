//! The one PDF renderer: pages, the embedded fonts, wrapped text, colours
//! and photos prepared for print. Everything the product prints (flyers
//! today) draws through it, so every PDF embeds its fonts (subset, so a
//! page carries only the glyphs it uses), keeps its text selectable and
//! extractable, and holds photos at print resolution, not camera size.
//!
//! Built on krilla (a high-level PDF writer by the typst team, maintained,
//! subsetting and ToUnicode maps included); text is measured with
//! rustybuzz, the shaper krilla draws with, so a wrapped line is exactly as
//! wide as drawn. Typst as a library was the other candidate: a full
//! typesetter is more than a one-page layout needs and several times the
//! build; printpdf leaves subsetting and text measurement to the caller.
//!
//! Coordinates are points (1/72 inch) from the page's top left corner, y
//! growing downwards; a text position is its baseline.

pub mod flyer;
pub mod report;

use std::sync::LazyLock;

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect, Size, Transform};
use krilla::image::Image;
use krilla::num::NormalizedF32;
use krilla::paint::Fill;
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};

const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Photos are printed at this resolution: sharp on an office printer, and a
/// flyer stays a few hundred kilobytes.
pub const PHOTO_DPI: f32 = 200.0;
/// JPEG quality of a prepared photo.
const PHOTO_QUALITY: u8 = 82;

/// The paper a document is laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paper {
    /// 8.5 × 11 inches.
    Letter,
    /// 210 × 297 mm.
    A4,
}

impl Paper {
    /// Width and height in points.
    pub fn size(self) -> (f32, f32) {
        match self {
            Self::Letter => (612.0, 792.0),
            Self::A4 => (595.28, 841.89),
        }
    }
}

/// A colour, from `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    pub const WHITE: Self = Self(255, 255, 255);
    pub const INK: Self = Self(33, 37, 41);
    pub const MUTED: Self = Self(90, 98, 106);

    /// `#1f4e79` (case-insensitive); `None` for anything else.
    pub fn parse(hex: &str) -> Option<Self> {
        let digits = hex.strip_prefix('#')?;
        if digits.len() != 6 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        let byte = |i: usize| u8::from_str_radix(&digits[i..i + 2], 16).ok();
        Some(Self(byte(0)?, byte(2)?, byte(4)?))
    }

    /// White or ink, whichever reads better on this colour (WCAG relative
    /// luminance).
    pub fn text_on(self) -> Self {
        fn channel(c: u8) -> f32 {
            let c = f32::from(c) / 255.0;
            if c <= 0.039_28 { c / 12.92 } else { ((c + 0.055) / 1.055).powf(2.4) }
        }
        let luminance = 0.2126 * channel(self.0) + 0.7152 * channel(self.1) + 0.0722 * channel(self.2);
        // Contrast with white is (1.05)/(L+0.05); with ink about (L+0.05)/0.07.
        if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.07 { Self::WHITE } else { Self::INK }
    }

    fn fill(self) -> Fill {
        Fill {
            paint: rgb::Color::new(self.0, self.1, self.2).into(),
            opacity: NormalizedF32::ONE,
            ..Fill::default()
        }
    }
}

struct Face {
    font: Font,
    shaper: rustybuzz::Face<'static>,
}

struct Fonts {
    regular: Face,
    bold: Face,
}

static FONTS: LazyLock<Fonts> = LazyLock::new(|| {
    let face = |data: &'static [u8]| Face {
        font: Font::new(data.into(), 0).expect("the bundled font is a valid TrueType font"),
        shaper: rustybuzz::Face::from_slice(data, 0).expect("the bundled font is a valid TrueType font"),
    };
    Fonts { regular: face(REGULAR), bold: face(BOLD) }
});

/// How a run of text looks.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub size: f32,
    pub bold: bool,
    pub color: Rgb,
}

impl Style {
    pub fn new(size: f32, bold: bool, color: Rgb) -> Self {
        Self { size, bold, color }
    }

    fn face(self) -> &'static Face {
        if self.bold { &FONTS.bold } else { &FONTS.regular }
    }

    /// The distance between two baselines.
    pub fn leading(self) -> f32 {
        self.size * 1.32
    }
}

/// How wide `text` is when drawn in `style`, in points.
pub fn width(text: &str, style: Style) -> f32 {
    let face = style.face();
    let mut buffer = rustybuzz::UnicodeBuffer::new();
    buffer.push_str(text);
    let shaped = rustybuzz::shape(&face.shaper, &[], buffer);
    let units: i32 = shaped.glyph_positions().iter().map(|p| p.x_advance).sum();
    #[allow(clippy::cast_precision_loss)] // font units are far below 2^24
    let (units, per_em) = (units as f32, face.shaper.units_per_em() as f32);
    units * style.size / per_em
}

/// `text` broken into lines no wider than `max_width`: at spaces, and inside
/// a word only when the word alone is too wide. Line breaks in the text are
/// kept; blank lines are dropped.
pub fn wrap(text: &str, style: Style, max_width: f32) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let candidate = if line.is_empty() { word.to_owned() } else { format!("{line} {word}") };
            if width(&candidate, style) <= max_width {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            // A word wider than the line is cut where it must be.
            for c in word.chars() {
                line.push(c);
                if width(&line, style) > max_width && line.chars().count() > 1 {
                    line.pop();
                    lines.push(std::mem::take(&mut line));
                    line.push(c);
                }
            }
        }
        if !line.is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// At most `max` lines; the last one kept ends with an ellipsis when some
/// were dropped.
pub fn clamp(mut lines: Vec<String>, max: usize, style: Style, max_width: f32) -> Vec<String> {
    if lines.len() <= max {
        return lines;
    }
    lines.truncate(max);
    if let Some(last) = lines.last_mut() {
        while !last.is_empty() && width(&format!("{last}…"), style) > max_width {
            last.pop();
        }
        *last = format!("{}…", last.trim_end());
    }
    lines
}

/// A page being drawn.
#[allow(missing_debug_implementations)] // krilla's surface has no Debug
pub struct Canvas<'a, 'b> {
    surface: &'a mut Surface<'b>,
}

impl<'a, 'b> Canvas<'a, 'b> {
    pub fn new(surface: &'a mut Surface<'b>) -> Self {
        Self { surface }
    }

    /// A filled rectangle.
    pub fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: Rgb) {
        let Some(rect) = Rect::from_xywh(x, y, w, h) else { return };
        let mut path = PathBuilder::new();
        path.push_rect(rect);
        let Some(path) = path.finish() else { return };
        self.surface.set_fill(Some(color.fill()));
        self.surface.draw_path(&path);
    }

    /// One line of text with its baseline at `y`.
    pub fn text(&mut self, x: f32, y: f32, text: &str, style: Style) {
        if text.is_empty() {
            return;
        }
        self.surface.set_fill(Some(style.color.fill()));
        let font = style.face().font.clone();
        self.surface.draw_text(Point::from_xy(x, y), font, style.size, text, false, TextDirection::Auto);
    }

    /// One line of text ending at `right`.
    pub fn text_right(&mut self, right: f32, y: f32, text: &str, style: Style) {
        self.text(right - width(text, style), y, text, style);
    }

    /// Lines from the top `y` (the first line's top, not its baseline);
    /// returns the y below the last line.
    pub fn lines(&mut self, x: f32, y: f32, lines: &[String], style: Style) -> f32 {
        let mut baseline = y + style.size;
        for line in lines {
            self.text(x, baseline, line, style);
            baseline += style.leading();
        }
        y + style.leading() * lines.len() as f32
    }

    /// An image scaled into the box (keeping its proportions, centred).
    pub fn image(&mut self, image: Image, x: f32, y: f32, w: f32, h: f32) {
        let (iw, ih) = image.size();
        if iw == 0 || ih == 0 {
            return;
        }
        #[allow(clippy::cast_precision_loss)]
        let (iw, ih) = (iw as f32, ih as f32);
        let scale = (w / iw).min(h / ih);
        let (dw, dh) = (iw * scale, ih * scale);
        let Some(size) = Size::from_wh(dw, dh) else { return };
        self.surface.push_transform(&Transform::from_translate(x + (w - dw) / 2.0, y + (h - dh) / 2.0));
        self.surface.draw_image(image, size);
        self.surface.pop();
    }
}

/// A photo cropped to fill a `w` × `h` point box (centred) and resampled to
/// [`PHOTO_DPI`], as a JPEG krilla embeds without re-encoding.
pub fn prepare_photo(bytes: &[u8], w: f32, h: f32) -> Result<Vec<u8>, String> {
    let photo = image::load_from_memory(bytes).map_err(|e| format!("reading a photo: {e}"))?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (tw, th) =
        ((w / 72.0 * PHOTO_DPI).round().max(1.0) as u32, (h / 72.0 * PHOTO_DPI).round().max(1.0) as u32);
    let filled = photo.resize_to_fill(
        tw.min(photo.width()).max(1),
        th.min(photo.height()).max(1),
        image::imageops::FilterType::CatmullRom,
    );
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, PHOTO_QUALITY);
    filled.to_rgb8().write_with_encoder(encoder).map_err(|e| format!("encoding a photo: {e}"))?;
    Ok(out)
}

/// A JPEG for [`Canvas::image`].
pub fn jpeg(bytes: Vec<u8>) -> Result<Image, String> {
    Image::from_jpeg(bytes.into(), true)
}

/// A PNG for [`Canvas::image`].
pub fn png(bytes: Vec<u8>) -> Result<Image, String> {
    Image::from_png(bytes.into(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_and_pick_readable_text() {
        assert_eq!(Rgb::parse("#1F4E79"), Some(Rgb(0x1f, 0x4e, 0x79)));
        assert_eq!(Rgb::parse("1f4e79"), None);
        assert_eq!(Rgb::parse("#12345"), None);
        assert_eq!(Rgb::parse("#gg0000"), None);
        assert_eq!(Rgb(0x1f, 0x4e, 0x79).text_on(), Rgb::WHITE);
        assert_eq!(Rgb(0xff, 0xeb, 0x3b).text_on(), Rgb::INK);
    }

    #[test]
    fn wrapped_lines_fit_and_keep_every_word() {
        let style = Style::new(10.0, false, Rgb::INK);
        let text = "A bright corner home with a renovated kitchen, a fenced garden and \
                    Supercalifragilisticexpialidociousnessandthensome beside the park.";
        let lines = wrap(text, style, 120.0);
        assert!(lines.len() > 3, "{lines:?}");
        for line in &lines {
            assert!(width(line, style) <= 120.0, "{line}");
        }
        let joined: String = lines.concat().split_whitespace().collect();
        let original: String = text.split_whitespace().collect();
        assert_eq!(joined, original);
        let clamped = clamp(lines, 2, style, 120.0);
        assert_eq!(clamped.len(), 2);
        assert!(clamped[1].ends_with('…'));
        assert!(width("WWWW", style) > width("iiii", style));
    }
}
