//! The `--svg` plot of `choir chaos`: goodput against checkpoint interval, with Young's, Daly's and the best
//! simulated interval marked.

use std::fmt::Write;

use units::{format_count, format_duration};

use super::ChaosReport;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 70.0;

/// The plot as SVG text. Without a sweep, a note saying so.
pub(super) fn goodput_svg(r: &ChaosReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!(
        "{} on {} × {}, {} days, {} seed(s), {} checkpoints",
        r.model,
        r.gpus,
        r.gpu,
        r.days,
        r.seeds,
        super::report::mode_name(r.checkpoint.mode)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        WIDTH / 2.0,
        xml(&title)
    );
    if r.sweep.len() < 2 {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">no interval sweep (--sweep-points 0)</text>"#,
            WIDTH / 2.0,
            HEIGHT / 2.0
        );
        s.push_str("</svg>\n");
        return s;
    }
    let x_lo = r.sweep.iter().map(|p| p.interval_s).fold(f64::INFINITY, f64::min).ln();
    let x_hi = r.sweep.iter().map(|p| p.interval_s).fold(0.0, f64::max).ln();
    let y_lo = r.sweep.iter().map(|p| p.goodput_tokens_per_s.p10).fold(f64::INFINITY, f64::min);
    let y_hi = r.sweep.iter().map(|p| p.goodput_tokens_per_s.p90).fold(0.0, f64::max);
    let pad = ((y_hi - y_lo) * 0.08).max(y_hi.abs() * 1e-6);
    let (y_lo, y_hi) = (y_lo - pad, y_hi + pad);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let span_x = (x_hi - x_lo).max(1e-9);
    let px = |interval_s: f64| LEFT + (interval_s.ln() - x_lo) / span_x * plot_w;
    let py = |goodput: f64| TOP + (y_hi - goodput) / (y_hi - y_lo) * plot_h;

    // Axes, grid and tick labels.
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>"##
    );
    for i in 0..=5 {
        let v = y_lo + (y_hi - y_lo) * i as f64 / 5.0;
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + plot_w
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            format_count(v)
        );
    }
    for i in 0..=6 {
        let t = (x_lo + span_x * i as f64 / 6.0).exp();
        let x = px(t);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/>"##,
            TOP + plot_h
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h + 18.0,
            format_duration(t)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">checkpoint interval (training time between checkpoints, log scale)</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 22.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">goodput (tokens/s)</text>"#,
        TOP + plot_h / 2.0
    );

    // The p10-p90 band, then the mean.
    let mut band = String::new();
    for p in &r.sweep {
        let _ = write!(band, "{:.1},{:.1} ", px(p.interval_s), py(p.goodput_tokens_per_s.p90));
    }
    for p in r.sweep.iter().rev() {
        let _ = write!(band, "{:.1},{:.1} ", px(p.interval_s), py(p.goodput_tokens_per_s.p10));
    }
    let _ = writeln!(
        s,
        r##"<polygon points="{}" fill="#9ecae1" fill-opacity="0.5" stroke="none"/>"##,
        band.trim_end()
    );
    let mean: Vec<String> = r
        .sweep
        .iter()
        .map(|p| format!("{:.1},{:.1}", px(p.interval_s), py(p.goodput_tokens_per_s.mean)))
        .collect();
    let _ = writeln!(
        s,
        r##"<polyline points="{}" fill="none" stroke="#08519c" stroke-width="2"/>"##,
        mean.join(" ")
    );
    for p in &r.sweep {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="#08519c"/>"##,
            px(p.interval_s),
            py(p.goodput_tokens_per_s.mean)
        );
    }

    // Markers: Young, Daly, best.
    let in_range = |t: f64| t.is_finite() && t > 0.0 && t.ln() >= x_lo - 1e-9 && t.ln() <= x_hi + 1e-9;
    let markers = [
        ("Young", Some(r.young_interval_s), "#31a354", "6 4", 0.0),
        ("Daly", Some(r.daly_interval_s), "#e6550d", "2 3", 16.0),
        ("best", r.best_interval_s, "#756bb1", "none", 32.0),
    ];
    for (name, value, color, dash, dy) in markers {
        let Some(t) = value.filter(|t| in_range(*t)) else { continue };
        let x = px(t);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="{color}" stroke-width="1.5" stroke-dasharray="{dash}"/>"#,
            TOP + plot_h
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{name} {}</text>"#,
            x + 4.0,
            TOP + 14.0 + dy,
            format_duration(t)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">line: mean over seeds; band: p10–p90</text>"##,
        LEFT + plot_w - 6.0,
        TOP + plot_h - 8.0
    );
    s.push_str("</svg>\n");
    s
}

/// Escapes text for SVG.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
