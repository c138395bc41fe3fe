//! Markdown rendering (the result view, the editor's preview, HTML
//! exports): pathological inputs of the largest size content may have, and
//! an ordinary article, each rendered and sanitised.
//!
//!     cargo bench -p marketer-control-plane --bench markdown
//!
//! Each input is rendered 5 times; the median and the slowest go to stdout.
//! docs/benchmarks.md records them. Before the nesting bound, 20,000 `>`
//! alone took 1.27 s (release build) and 100,000 took tens of seconds.

use std::time::{Duration, Instant};

use marketer_control_plane::service::export::markdown_html;

fn main() {
    let size = 512 * 1024;
    let fill = |unit: &str| unit.repeat(size / unit.len());
    let article = (0..400)
        .map(|i| {
            format!(
                "## Section {i}\n\nSolar roofs **pay for themselves** in _eight to twelve years_, \
                 [depending on the site](https://example.com/{i}).\n\n- panels\n- inverter\n  - wiring\n\n> A quote.\n\n"
            )
        })
        .collect::<String>();
    let cases: Vec<(&str, String)> = vec![
        ("ordinary article (400 sections)", article),
        ("512 KiB of `>`", fill(">")),
        ("512 KiB of `- `", fill("- ")),
        ("512 KiB of `*a **a `", fill("*a **a ")),
        ("512 KiB of `[`", fill("[")),
        ("512 KiB of `<div>`", fill("<div>")),
        ("512 KiB of `` ` ``", fill("`")),
    ];
    println!("| input | bytes | p50 | max |");
    println!("|---|---:|---:|---:|");
    for (name, input) in &cases {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let started = Instant::now();
                let html = markdown_html(input);
                std::hint::black_box(html);
                started.elapsed()
            })
            .collect();
        times.sort();
        println!("| {name} | {} | {:.2} ms | {:.2} ms |", input.len(), ms(times[2]), ms(times[4]));
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
