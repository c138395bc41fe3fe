//! A report of numbers people print or mail on: a title, a few lines of
//! context, headline tiles, then charts and tables flowing over as many
//! pages as they need (a table that breaks repeats its heading), with the
//! page number and a footnote on every page. The caller gathers the texts
//! and the charts (SVG from `crate::charts`, drawn here as vectors with
//! selectable text); this lays them out.

use std::sync::{Arc, LazyLock};

use krilla::Document;
use krilla::geom::{Size, Transform};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla_svg::{SurfaceExt, SvgSettings};

use super::{BOLD, Canvas, Paper, REGULAR, Rgb, Style, clamp, width, wrap};

const MARGIN: f32 = 40.0;
const GAP: f32 = 14.0;
/// Room kept at the bottom of each page for the footer.
const FOOTER: f32 = 36.0;
/// Table cells show at most this many lines.
const CELL_LINES: usize = 3;
const RULE: Rgb = Rgb(0xdd, 0xe2, 0xe8);
const TILE: Rgb = Rgb(0xf3, 0xf5, 0xf8);

/// A headline number.
#[derive(Debug, Clone)]
pub struct Tile {
    pub label: String,
    pub value: String,
    /// Under the value, smaller: e.g. the previous period's and the change.
    pub note: String,
}

/// A table's column: its heading, its share of the width and whether its
/// cells are numbers (right-aligned).
#[derive(Debug, Clone)]
pub struct Column {
    pub heading: String,
    pub share: f32,
    pub numeric: bool,
}

impl Column {
    pub fn text(heading: &str, share: f32) -> Self {
        Self { heading: heading.into(), share, numeric: false }
    }

    pub fn number(heading: &str, share: f32) -> Self {
        Self { heading: heading.into(), share, numeric: true }
    }
}

/// A block of the report's body.
#[derive(Debug, Clone)]
pub enum Section {
    /// A chart, as the SVG `crate::charts` draws, scaled to the page's width.
    Chart { title: String, svg: String },
    /// A table; `empty` is printed instead when there are no rows.
    Table { title: String, columns: Vec<Column>, rows: Vec<Vec<String>>, empty: String },
}

/// Everything printed in a report.
#[derive(Debug, Clone)]
pub struct Report {
    pub paper: Paper,
    pub title: String,
    /// Printed above the title and in each page's footer.
    pub organisation: String,
    /// Under the title: the period, the filters, the comparison.
    pub context: Vec<String>,
    pub tiles: Vec<Tile>,
    pub sections: Vec<Section>,
    /// At the end of the report, e.g. how a number is defined.
    pub footnote: String,
    /// When it was produced, as the reader reads it.
    pub generated: String,
}

/// The report's fonts for the charts' text (plotters asks for `sans-serif`).
static SVG_OPTIONS: LazyLock<usvg::Options<'static>> = LazyLock::new(|| {
    let mut fonts = usvg::fontdb::Database::new();
    fonts.load_font_data(REGULAR.to_vec());
    fonts.load_font_data(BOLD.to_vec());
    fonts.set_sans_serif_family("DejaVu Sans");
    usvg::Options { font_family: "DejaVu Sans".into(), fontdb: Arc::new(fonts), ..usvg::Options::default() }
});

/// Draws pages one after the other, starting a new one when the next block
/// does not fit.
struct Flow {
    document: Document,
    paper: Paper,
    footer: String,
    pages: Vec<Vec<Block>>,
    y: f32,
}

/// What is drawn where on a page; drawn when the document is finished, so
/// the layout can decide page breaks first.
enum Block {
    Text { x: f32, y: f32, text: String, style: Style, right: bool },
    Rect { x: f32, y: f32, w: f32, h: f32, color: Rgb },
    Svg { tree: Box<usvg::Tree>, x: f32, y: f32, w: f32, h: f32 },
}

impl Flow {
    fn width(&self) -> f32 {
        self.paper.size().0 - 2.0 * MARGIN
    }

    fn bottom(&self) -> f32 {
        self.paper.size().1 - MARGIN - FOOTER
    }

    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = MARGIN;
    }

    /// Makes room for `h` points, on a new page if this one is too full.
    fn room(&mut self, h: f32) {
        if self.y + h > self.bottom() && self.y > MARGIN {
            self.new_page();
        }
    }

    fn push(&mut self, block: Block) {
        if let Some(page) = self.pages.last_mut() {
            page.push(block);
        }
    }

    fn text(&mut self, x: f32, baseline: f32, text: &str, style: Style) {
        self.push(Block::Text { x, y: baseline, text: text.into(), style, right: false });
    }

    fn text_right(&mut self, right: f32, baseline: f32, text: &str, style: Style) {
        self.push(Block::Text { x: right, y: baseline, text: text.into(), style, right: true });
    }

    /// Wrapped text at the flow's position, the whole width.
    fn paragraph(&mut self, text: &str, style: Style) {
        for line in wrap(text, style, self.width()) {
            self.room(style.leading());
            self.text(MARGIN, self.y + style.size, &line, style);
            self.y += style.leading();
        }
    }

    fn heading(&mut self, text: &str, keep_with: f32) {
        let style = Style::new(13.0, true, Rgb::INK);
        self.room(style.leading() + 6.0 + keep_with);
        self.y += 4.0;
        self.text(MARGIN, self.y + style.size, text, style);
        self.y += style.leading() + 6.0;
    }

    fn tiles(&mut self, tiles: &[Tile]) {
        if tiles.is_empty() {
            return;
        }
        let label = Style::new(8.5, false, Rgb::MUTED);
        let value = Style::new(17.0, true, Rgb::INK);
        let note = Style::new(8.0, false, Rgb::MUTED);
        #[allow(clippy::cast_precision_loss)]
        let n = tiles.len() as f32;
        let gap = 8.0;
        let w = (self.width() - gap * (n - 1.0)) / n;
        let inner = w - 16.0;
        let notes: Vec<Vec<String>> =
            tiles.iter().map(|t| clamp(wrap(&t.note, note, inner), 2, note, inner)).collect();
        let note_lines = notes.iter().map(Vec::len).max().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        let h = 14.0 + label.leading() + value.leading() + note.leading() * note_lines as f32 + 6.0;
        self.room(h);
        let top = self.y;
        let mut x = MARGIN;
        for (tile, note_text) in tiles.iter().zip(notes) {
            self.push(Block::Rect { x, y: top, w, h, color: TILE });
            let mut y = top + 8.0;
            let first = clamp(wrap(&tile.label, label, inner), 1, label, inner);
            self.text(x + 8.0, y + label.size, first.first().map_or("", String::as_str), label);
            y += label.leading();
            // A value that is words ("not reported") is set smaller to fit.
            let style =
                if width(&tile.value, value) <= inner { value } else { Style::new(10.0, true, Rgb::INK) };
            let shown = clamp(wrap(&tile.value, style, inner), 1, style, inner);
            self.text(x + 8.0, y + style.size, shown.first().map_or("", String::as_str), style);
            y += value.leading();
            for line in note_text {
                self.text(x + 8.0, y + note.size, &line, note);
                y += note.leading();
            }
            x += w + gap;
        }
        self.y = top + h + GAP;
    }

    fn chart(&mut self, title: &str, svg: &str) -> Result<(), String> {
        let tree = usvg::Tree::from_str(svg, &SVG_OPTIONS).map_err(|e| format!("reading a chart: {e}"))?;
        let size = tree.size();
        let w = self.width();
        let h = w * size.height() / size.width().max(1.0);
        self.heading(title, h);
        self.room(h);
        self.push(Block::Svg { tree: Box::new(tree), x: MARGIN, y: self.y, w, h });
        self.y += h + GAP;
        Ok(())
    }

    fn table(&mut self, title: &str, columns: &[Column], rows: &[Vec<String>], empty: &str) {
        let head = Style::new(8.5, true, Rgb::MUTED);
        let cell = Style::new(9.0, false, Rgb::INK);
        let pad = 4.0;
        let total: f32 = columns.iter().map(|c| c.share).sum::<f32>().max(f32::EPSILON);
        let widths: Vec<f32> = columns.iter().map(|c| self.width() * c.share / total).collect();
        let lay = |texts: &[String], style: Style| -> Vec<Vec<String>> {
            widths
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    let text = texts.get(i).map_or("", String::as_str);
                    clamp(wrap(text, style, w - 2.0 * pad), CELL_LINES, style, w - 2.0 * pad)
                })
                .collect()
        };
        let headings: Vec<String> = columns.iter().map(|c| c.heading.clone()).collect();
        let head_cells = lay(&headings, head);
        let height = |cells: &[Vec<String>], style: Style| {
            #[allow(clippy::cast_precision_loss)]
            let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1) as f32;
            lines * style.leading() + 2.0 * pad
        };
        let head_h = height(&head_cells, head);
        let laid: Vec<Vec<Vec<String>>> = rows.iter().map(|r| lay(r, cell)).collect();
        let first_h = laid.first().map_or(cell.leading(), |c| height(c, cell));
        self.heading(title, head_h + first_h);
        if rows.is_empty() {
            self.paragraph(empty, Style::new(9.5, false, Rgb::MUTED));
            self.y += GAP;
            return;
        }
        let draw_row = |flow: &mut Flow, cells: &[Vec<String>], style: Style, h: f32| {
            let mut x = MARGIN;
            for ((lines, w), column) in cells.iter().zip(&widths).zip(columns) {
                let mut baseline = flow.y + pad + style.size;
                for line in lines {
                    if column.numeric {
                        flow.text_right(x + w - pad, baseline, line, style);
                    } else {
                        flow.text(x + pad, baseline, line, style);
                    }
                    baseline += style.leading();
                }
                x += w;
            }
            flow.y += h;
            flow.push(Block::Rect { x: MARGIN, y: flow.y - 0.5, w: flow.width(), h: 0.5, color: RULE });
        };
        draw_row(self, &head_cells, head, head_h);
        for cells in &laid {
            let h = height(cells, cell);
            if self.y + h > self.bottom() {
                self.new_page();
                draw_row(self, &head_cells, head, head_h);
            }
            draw_row(self, cells, cell, h);
        }
        self.y += GAP;
    }

    fn finish(mut self) -> Result<Vec<u8>, String> {
        let (page_w, page_h) = self.paper.size();
        let settings = PageSettings::from_wh(page_w, page_h).ok_or("bad page size")?;
        let count = self.pages.len();
        let foot = Style::new(8.0, false, Rgb::MUTED);
        for (n, blocks) in std::mem::take(&mut self.pages).into_iter().enumerate() {
            let mut page = self.document.start_page_with(settings.clone());
            let mut surface = page.surface();
            {
                let mut c = Canvas::new(&mut surface);
                for block in &blocks {
                    match block {
                        Block::Text { x, y, text, style, right: false } => c.text(*x, *y, text, *style),
                        Block::Text { x, y, text, style, right: true } => c.text_right(*x, *y, text, *style),
                        Block::Rect { x, y, w, h, color } => c.rect(*x, *y, *w, *h, *color),
                        Block::Svg { .. } => {}
                    }
                }
                let baseline = page_h - MARGIN;
                c.rect(MARGIN, baseline - 14.0, page_w - 2.0 * MARGIN, 0.5, RULE);
                let number = format!("Page {} of {count}", n + 1);
                let room = page_w - 2.0 * MARGIN - width(&number, foot) - 12.0;
                let footer = clamp(wrap(&self.footer, foot, room), 1, foot, room);
                c.text(MARGIN, baseline, footer.first().map_or("", String::as_str), foot);
                c.text_right(page_w - MARGIN, baseline, &number, foot);
            }
            for block in blocks {
                if let Block::Svg { tree, x, y, w, h } = block {
                    let size = Size::from_wh(w, h).ok_or("bad chart size")?;
                    surface.push_transform(&Transform::from_translate(x, y));
                    let drawn = surface.draw_svg(&tree, size, SvgSettings::default());
                    surface.pop();
                    drawn.ok_or("a chart could not be drawn")?;
                }
            }
            surface.finish();
            page.finish();
        }
        self.document.finish().map_err(|e| format!("writing the PDF: {e:?}"))
    }
}

/// The report as a PDF.
pub fn render(report: &Report) -> Result<Vec<u8>, String> {
    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(report.title.clone())
            .description(report.context.join(" · "))
            .creator("Marketer".into())
            .language("en".into())
            .authors(vec![report.organisation.clone()]),
    );
    let mut flow = Flow {
        document,
        paper: report.paper,
        footer: format!("{} · {} · generated {}", report.organisation, report.title, report.generated),
        pages: Vec::new(),
        y: MARGIN,
    };
    flow.new_page();
    flow.paragraph(&report.organisation, Style::new(10.0, true, Rgb::MUTED));
    flow.paragraph(&report.title, Style::new(22.0, true, Rgb::INK));
    flow.y += 4.0;
    for line in &report.context {
        flow.paragraph(line, Style::new(10.0, false, Rgb::INK));
    }
    flow.y += GAP;
    flow.tiles(&report.tiles);
    for section in &report.sections {
        match section {
            Section::Chart { title, svg } => flow.chart(title, svg)?,
            Section::Table { title, columns, rows, empty } => flow.table(title, columns, rows, empty),
        }
    }
    if !report.footnote.is_empty() {
        flow.y += 4.0;
        flow.paragraph(&report.footnote, Style::new(8.5, false, Rgb::MUTED));
    }
    flow.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::charts;

    fn sample(rows: usize) -> Report {
        let chart = charts::bars("Engagements by network", "X: 12", &[("X".into(), 12.0)], "engagements")
            .expect("a chart");
        Report {
            paper: Paper::Letter,
            title: "Analytics report".into(),
            organisation: "Acme Realty".into(),
            context: vec!["1 Nov 2026 to 30 Nov 2026 (America/New_York)".into()],
            tiles: vec![Tile {
                label: "Impressions".into(),
                value: "1200".into(),
                note: "was 1000, +20 %".into(),
            }],
            sections: vec![
                Section::Chart { title: "By network".into(), svg: chart },
                Section::Table {
                    title: "Top posts".into(),
                    columns: vec![Column::text("Post", 3.0), Column::number("Engagements", 1.0)],
                    rows: (0..rows).map(|i| vec![format!("Post number {i}"), i.to_string()]).collect(),
                    empty: "No posts.".into(),
                },
            ],
            footnote: "Engagement rate = engagements ÷ impressions.".into(),
            generated: "2026-12-01 09:00".into(),
        }
    }

    /// The page count the page tree declares.
    fn page_count(pdf: &[u8]) -> usize {
        let text = String::from_utf8_lossy(pdf);
        let at = text.find("/Count ").expect("a page tree");
        text[at + 7..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a count")
    }

    #[test]
    fn a_report_is_a_pdf_and_long_tables_flow_onto_more_pages() {
        let short = render(&sample(3)).expect("a PDF");
        assert!(short.starts_with(b"%PDF-"));
        let long = render(&sample(200)).expect("a PDF");
        assert!(long.len() > short.len());
        assert_eq!(page_count(&short), 1);
        assert!(page_count(&long) > 2, "{}", page_count(&long));
    }
}
