//! Charts as pictures: line and bar charts drawn on the server as SVG with
//! `plotters`, so they need no JavaScript and can go into exported
//! reports. Each carries a title and a description for screen readers
//! (`role="img"`, `<title>`, `<desc>`); pages show the numbers as a table
//! too. Text is escaped by plotters' SVG backend.

use plotters::prelude::*;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 280;
/// Series colours (the UI's accent first), distinguishable in grey too.
const COLOURS: [RGBColor; 3] =
    [RGBColor(0x2f, 0x5b, 0xea), RGBColor(0xb4, 0x23, 0x18), RGBColor(0x1d, 0x7a, 0x46)];

/// A series of a line chart: its name and one value per x label (`None`:
/// nothing to plot there).
#[derive(Debug)]
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<Option<f64>>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Adds the accessible name and description to plotters' SVG.
fn accessible(svg: String, title: &str, description: &str) -> String {
    let Some(open_end) = svg.find('>') else { return svg };
    let (open, rest) = svg.split_at(open_end);
    format!(
        "{} role=\"img\" aria-label=\"{}\" class=\"chart\"><title>{}</title><desc>{}</desc>{}",
        open,
        escape(title),
        escape(title),
        escape(description),
        &rest[1..]
    )
}

/// The top of a value axis: a little above the largest value, at least 1.
fn axis_top(max: f64) -> f64 {
    if max <= 0.0 { 1.0 } else { max * 1.1 }
}

fn number(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1_000.0)
    } else if v.fract().abs() < 1e-9 || v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A line chart of `series` over `labels` (x axis), with `y_label` on the
/// value axis.
pub fn line(
    title: &str,
    description: &str,
    labels: &[String],
    series: &[Series<'_>],
    y_label: &str,
) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max = series.iter().flat_map(|s| s.values.iter().flatten()).copied().fold(0.0, f64::max);
        let last = labels.len().saturating_sub(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d(0..last, 0.0..axis_top(max))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(labels.len().clamp(2, 8))
            .x_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
            .y_labels(6)
            .y_label_formatter(&|v| number(*v))
            .y_desc(y_label)
            .light_line_style(RGBColor(0xee, 0xf0, 0xf3))
            .draw()
            .map_err(|e| e.to_string())?;
        for (s, colour) in series.iter().zip(COLOURS.iter().cycle()) {
            let points: Vec<(usize, f64)> =
                s.values.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i, v))).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2)));
            chart
                .draw_series(points.into_iter().map(|p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| e.to_string())?;
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(0xdd, 0xe2, 0xe8))
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(accessible(svg, title, description))
}

/// The room each side of a bar, in pixels: at least 9, and enough that a bar is
/// no wider than 120 (one network's bar does not fill the chart).
fn bar_margin(bars: usize) -> u32 {
    const PLOT_WIDTH: f64 = 632.0;
    #[allow(clippy::cast_precision_loss)]
    let slot = PLOT_WIDTH / bars.max(1) as f64;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let margin = ((slot - 120.0) / 2.0).max(9.0) as u32;
    margin
}

/// A bar chart: one bar per `(label, value)`.
pub fn bars(title: &str, description: &str, bars: &[(String, f64)], y_label: &str) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let max = bars.iter().map(|(_, v)| *v).fold(0.0, f64::max);
        // At least three slots, the bars in the middle ones: plotters
        // misplaces the label of a lone segment. Integer ranges are
        // inclusive: `slots` slots are 0..=slots-1.
        let slots = bars.len().max(3);
        let first = (slots - bars.len()) / 2;
        let mut chart = ChartBuilder::on(&root)
            .margin(14)
            .x_label_area_size(34)
            .y_label_area_size(60)
            .build_cartesian_2d((0..slots - 1).into_segmented(), 0.0..axis_top(max))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(slots)
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => {
                    i.checked_sub(first).and_then(|i| bars.get(i)).map(|(l, _)| l.clone()).unwrap_or_default()
                }
                _ => String::new(),
            })
            .y_labels(6)
            .y_label_formatter(&|v| number(*v))
            .y_desc(y_label)
            .light_line_style(RGBColor(0xee, 0xf0, 0xf3))
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                Histogram::vertical(&chart)
                    .style(COLOURS[0].filled())
                    .margin(bar_margin(slots))
                    .data(bars.iter().enumerate().map(|(i, (_, v))| (first + i, *v))),
            )
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(accessible(svg, title, description))
}

/// A heat map of the hours of a week: a row per day (Monday at the top),
/// a column per hour; `cells` are `(hour of week, value)` (0 = Monday
/// 00:00), darker for more, blank where there is nothing.
pub fn week_heat_map(title: &str, description: &str, cells: &[(u16, f64)]) -> Result<String, String> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 220)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(0i32..24, (0i32..7).into_segmented())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(9)
            .x_label_formatter(&|h| if (0..24).contains(h) { format!("{h:02}:00") } else { String::new() })
            .y_labels(8)
            .y_label_formatter(&|row| match row {
                SegmentValue::CenterOf(row) => usize::try_from(6 - *row)
                    .ok()
                    .and_then(|d| DAYS.get(d))
                    .map(|d| (*d).to_owned())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| e.to_string())?;
        let max = cells.iter().map(|(_, v)| *v).fold(0.0, f64::max);
        let light = RGBColor(0xee, 0xf2, 0xfd);
        let dark = COLOURS[0];
        let blend = |a: u8, b: u8, t: f64| {
            let (a, b) = (f64::from(a), f64::from(b));
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let v = (a + (b - a) * t).round().clamp(0.0, 255.0) as u8;
            v
        };
        chart
            .draw_series(cells.iter().filter(|(h, _)| *h < 168).map(|(h, v)| {
                let t = if max > 0.0 { (v / max).clamp(0.0, 1.0) } else { 0.0 };
                let colour =
                    RGBColor(blend(light.0, dark.0, t), blend(light.1, dark.1, t), blend(light.2, dark.2, t));
                let (day, hour) = (i32::from(h / 24), i32::from(h % 24));
                let row = 6 - day;
                Rectangle::new(
                    [(hour, SegmentValue::Exact(row)), (hour + 1, SegmentValue::Exact(row + 1))],
                    colour.filled(),
                )
            }))
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(accessible(svg, title, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_svg_with_an_accessible_name_and_escaped_text() {
        let labels = vec!["Mar 1".to_owned(), "Mar 2".to_owned(), "Mar 3".to_owned()];
        let svg = line(
            "Engagements <by day>",
            "12, none, 30",
            &labels,
            &[Series { name: "Engagements", values: vec![Some(12.0), None, Some(30.0)] }],
            "engagements",
        )
        .unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("role=\"img\""));
        assert!(svg.contains("<title>Engagements &lt;by day&gt;</title>"));
        assert!(svg.contains("Mar 3"));
        let svg =
            bars("By network", "X 3", &[("<X>".into(), 3.0), ("Mastodon".into(), 0.0)], "posts").unwrap();
        assert!(svg.contains("&lt;X&gt;") && !svg.contains("<X>"), "{svg}");
        assert!(svg.contains("Mastodon"));
        let heat = week_heat_map("Best times", "Tue 09:00: 4 posts", &[(33, 0.1), (200, 1.0)]).unwrap();
        assert!(heat.contains("Tue") && heat.contains("<title>Best times</title>"), "{heat}");
        // A lone bar stands in the middle, under its label, no wider than 120.
        let one = bars("By network", "X 3", &[("X".into(), 3.0)], "posts").unwrap();
        let bar = one.split("<rect").filter(|r| r.contains("fill=\"#2F5BEA\"")).last().expect("the bar");
        let attribute = |name: &str| -> f64 {
            let at = bar.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            bar[at..].split('"').next().unwrap().parse().unwrap()
        };
        let (x, width) = (attribute("x"), attribute("width"));
        assert!(width <= 121.0, "{one}");
        assert!((x + width / 2.0 - 404.0).abs() < 40.0, "centred: {x} + {width}/2 in {one}");
        // Nothing to draw is still a chart, not an error.
        assert!(bars("Empty", "nothing", &[], "posts").is_ok());
        assert!(line("Empty", "nothing", &[], &[], "posts").is_ok());
    }
}
