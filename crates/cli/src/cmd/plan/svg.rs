//! The strategy plot of `choir plan --svg`: every simulated plan that fits as a point (peak memory per GPU
//! across, step time up), coloured by strategy family, with the memory-time frontier drawn and its plans ringed.

use std::collections::BTreeMap;
use std::fmt::Write;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 60.0;
/// Colour-blind-safe qualitative palette (Okabe & Ito 2008), then greys.
const PALETTE: [&str; 10] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000", "#999999",
    "#666666",
];

/// Round tick positions covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step =
        [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * mag).find(|s| span / s <= 7.0).unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The plot as an SVG document.
pub(super) fn plot(title: &str, result: &search::SearchResult) -> String {
    let points: Vec<(f64, f64)> =
        result.ranked.iter().map(|e| (e.report.memory_peak_bytes / 1e9, e.report.step_time_s)).collect();
    let limit_gb = result.memory_limit_bytes / 1e9;
    let mut families: BTreeMap<String, usize> = BTreeMap::new();
    for e in &result.ranked {
        let n = families.len();
        families.entry(search::family(&e.plan)).or_insert(n);
    }
    let x_max = points.iter().map(|p| p.0).fold(limit_gb, f64::max) * 1.02;
    let y_lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_hi = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let (y_lo, y_hi) = if points.is_empty() { (0.0, 1.0) } else { (y_lo * 0.95, y_hi * 1.03) };
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let sx = |x: f64| LEFT + x / x_max * plot_w;
    let sy = |y: f64| TOP + plot_h - (y - y_lo) / (y_hi - y_lo).max(1e-12) * plot_h;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ =
        writeln!(s, r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#, escape(title));
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="40" fill="#444">{} plans simulated that fit ({} feasible of {} valid); frontier: no plan is both smaller and faster</text>"##,
        points.len(),
        result.feasible,
        result.evaluated
    );
    // Axes and grid.
    for t in ticks(0.0, x_max) {
        let x = sx(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 16.0,
            format_tick(t)
        );
    }
    for t in ticks(y_lo, y_hi) {
        let y = sy(t);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0,
            format_tick(t)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">peak memory per GPU (GB)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">step time (s)</text>"#,
        TOP + plot_h / 2.0
    );
    // The memory limit.
    let lx = sx(limit_gb);
    let _ = writeln!(
        s,
        r##"<line x1="{lx:.1}" y1="{TOP}" x2="{lx:.1}" y2="{:.1}" stroke="#c00" stroke-dasharray="5 4"/><text x="{:.1}" y="{:.1}" fill="#c00" text-anchor="end">limit {limit_gb:.0} GB</text>"##,
        TOP + plot_h,
        lx - 4.0,
        TOP + 14.0
    );
    // Points.
    for (e, &(x, y)) in result.ranked.iter().zip(&points) {
        let colour = PALETTE[families[&search::family(&e.plan)] % PALETTE.len()];
        let _ = writeln!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}" fill-opacity="0.65"><title>{}: {:.3} s, {:.1} GB</title></circle>"#,
            sx(x),
            sy(y),
            escape(&search::describe(&e.plan)),
            y,
            x
        );
    }
    // The frontier.
    let front = search::frontier(&points);
    let path: Vec<String> =
        front.iter().map(|&i| format!("{:.1},{:.1}", sx(points[i].0), sy(points[i].1))).collect();
    if !path.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#222" stroke-width="1.5"/>"##,
            path.join(" ")
        );
    }
    for &i in &front {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="6" fill="none" stroke="#222" stroke-width="1.5"/>"##,
            sx(points[i].0),
            sy(points[i].1)
        );
    }
    if let Some(&best) = front.last() {
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-weight="bold">fastest: {:.2} s</text>"#,
            sx(points[best].0) + 9.0,
            sy(points[best].1) + 4.0,
            points[best].1
        );
    }
    // Legend.
    let lx = WIDTH - RIGHT + 20.0;
    let _ = writeln!(s, r#"<text x="{lx}" y="{}" font-weight="bold">strategy family</text>"#, TOP + 10.0);
    let mut by_index: Vec<(&String, &usize)> = families.iter().collect();
    by_index.sort_by_key(|(_, i)| **i);
    for (row, &(name, &i)) in by_index.iter().enumerate() {
        let y = TOP + 30.0 + row as f64 * 18.0;
        let _ = writeln!(
            s,
            r#"<circle cx="{}" cy="{:.1}" r="5" fill="{}"/><text x="{}" y="{:.1}">{}</text>"#,
            lx + 5.0,
            y - 4.0,
            PALETTE[i % PALETTE.len()],
            lx + 16.0,
            y,
            escape(name)
        );
    }
    let y = TOP + 40.0 + by_index.len() as f64 * 18.0;
    let _ = writeln!(
        s,
        r##"<circle cx="{}" cy="{:.1}" r="6" fill="none" stroke="#222" stroke-width="1.5"/><text x="{}" y="{:.1}">frontier</text>"##,
        lx + 5.0,
        y - 4.0,
        lx + 16.0,
        y
    );
    s.push_str("</svg>\n");
    s
}

fn format_tick(t: f64) -> String {
    if t.fract().abs() < 1e-9 {
        format!("{t:.0}")
    } else {
        format!("{t:.2}").trim_end_matches('0').to_owned()
    }
}
