//! Small SVG chart builders for the HTML report: bars, ranges, lines and
//! a timeline with marked boundaries.
//!
//! Hand-written rather than a plotting crate because the report must be one
//! self-contained file with no scripts or fonts fetched, and these few
//! chart shapes are all it needs.

use std::fmt::Write as _;

/// Colours of the series, in order (colour-blind-safe Okabe–Ito palette).
pub const PALETTE: &[&str] = &[
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

const WIDTH: f64 = 530.0;
const LEFT: f64 = 120.0;
const RIGHT: f64 = 70.0;
const BAR_HEIGHT: f64 = 22.0;
const GAP: f64 = 8.0;

/// Escapes text for XML and HTML.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(ch),
        }
    }
    escaped
}

pub(crate) fn nice_max(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if value <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

pub(crate) fn label(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Horizontal bars, one per labelled value; `None` is drawn as "N/A".
pub fn bars(title: &str, unit: &str, items: &[(String, Option<f64>)]) -> String {
    let height = 40.0 + items.len() as f64 * (BAR_HEIGHT + GAP) + 20.0;
    let max = nice_max(items.iter().filter_map(|(_, v)| *v).fold(0.0, f64::max));
    let plot = WIDTH - LEFT - RIGHT;
    let mut svg = open(title, height);
    for (idx, (name, value)) in items.iter().enumerate() {
        let y = 40.0 + idx as f64 * (BAR_HEIGHT + GAP);
        row_label(&mut svg, y, name);
        match value {
            Some(value) => {
                let width = (value / max * plot).max(1.0);
                let _ = write!(
                    svg,
                    r#"<rect x="{LEFT:.1}" y="{y:.1}" width="{width:.1}" height="{BAR_HEIGHT:.1}" fill="{}"><title>{}: {} {}</title></rect><text x="{:.1}" y="{:.1}" class="value">{} {}</text>"#,
                    PALETTE[idx % PALETTE.len()],
                    escape(name),
                    label(*value),
                    escape(unit),
                    LEFT + width + 4.0,
                    y + BAR_HEIGHT * 0.7,
                    label(*value),
                    escape(unit)
                );
            }
            None => not_available(&mut svg, y),
        }
    }
    svg.push_str("</svg>");
    svg
}

/// A latency distribution per item: a line from min to max, a box from p50
/// to p99 and a tick at p50 (all `[min, p50, p90, p99, max]`).
pub fn ranges(title: &str, unit: &str, items: &[(String, Option<[f64; 5]>)]) -> String {
    let height = 40.0 + items.len() as f64 * (BAR_HEIGHT + GAP) + 30.0;
    let max = nice_max(
        items
            .iter()
            .filter_map(|(_, v)| v.map(|v| v[4]))
            .fold(0.0, f64::max),
    );
    let plot = WIDTH - LEFT - RIGHT;
    let x = |v: f64| LEFT + v / max * plot;
    let mut svg = open(title, height);
    for (idx, (name, value)) in items.iter().enumerate() {
        let y = 40.0 + idx as f64 * (BAR_HEIGHT + GAP);
        let mid = y + BAR_HEIGHT / 2.0;
        let colour = PALETTE[idx % PALETTE.len()];
        row_label(&mut svg, y, name);
        let Some([min, p50, p90, p99, top]) = value else {
            not_available(&mut svg, y);
            continue;
        };
        let _ = write!(
            svg,
            r#"<g><title>{name}: min {} · p50 {} · p90 {} · p99 {} · max {} {unit}</title><line x1="{:.1}" x2="{:.1}" y1="{mid:.1}" y2="{mid:.1}" stroke="{colour}"/><rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.35" stroke="{colour}"/><line x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{:.1}" stroke="{colour}" stroke-width="3"/></g>"#,
            label(*min),
            label(*p50),
            label(*p90),
            label(*p99),
            label(*top),
            x(*min),
            x(*top),
            x(*p50),
            y + 3.0,
            (x(*p99) - x(*p50)).max(1.0),
            BAR_HEIGHT - 6.0,
            x(*p50),
            x(*p50),
            y + BAR_HEIGHT,
            name = escape(name),
            unit = escape(unit),
        );
    }
    let axis_y = height - 20.0;
    let _ = write!(
        svg,
        r#"<text x="{LEFT:.1}" y="{axis_y:.1}" class="axis">0</text><text x="{:.1}" y="{axis_y:.1}" text-anchor="end" class="axis">{} {}</text>"#,
        LEFT + plot,
        label(max),
        escape(unit)
    );
    svg.push_str("</svg>");
    svg
}

/// Lines through (x, y) points, one series per name.
pub fn lines(
    title: &str,
    x_unit: &str,
    y_unit: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let height = 300.0;
    let (top, bottom, left) = (40.0, 40.0, 70.0);
    let plot_w = WIDTH - left - 150.0;
    let plot_h = height - top - bottom;
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let max_x = nice_max(points.clone().map(|p| p.0).fold(0.0, f64::max));
    let max_y = nice_max(points.map(|p| p.1).fold(0.0, f64::max));
    let sx = |v: f64| left + v / max_x * plot_w;
    let sy = |v: f64| top + plot_h - v / max_y * plot_h;
    let mut svg = open(title, height);
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888"/><line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{} {}</text><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{} {}</text><text x="{left}" y="{:.1}" class="axis">0</text>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h,
        left + plot_w,
        height - 12.0,
        label(max_x),
        escape(x_unit),
        left - 6.0,
        top + 4.0,
        label(max_y),
        escape(y_unit),
        height - 12.0,
    );
    for (idx, (name, points)) in series.iter().enumerate() {
        let colour = PALETTE[idx % PALETTE.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for &(x, y) in points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"><title>{}: {} {} → {} {}</title></circle>"#,
                sx(x),
                sy(y),
                escape(name),
                label(x),
                escape(x_unit),
                label(y),
                escape(y_unit)
            );
        }
        let legend_y = top + 14.0 + idx as f64 * 18.0;
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{colour}"/><text x="{:.1}" y="{:.1}" class="axis">{}</text>"#,
            left + plot_w + 16.0,
            legend_y - 10.0,
            left + plot_w + 32.0,
            legend_y,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One line over time, `(seconds, value)`, with a dashed mark and a label
/// at each `(seconds, name)` boundary: an engine's memory over its turn,
/// its scenarios marked where they start.
pub fn timeline(
    title: &str,
    y_unit: &str,
    points: &[(f64, f64)],
    marks: &[(f64, String)],
) -> String {
    // The scenarios' names sit in a band of staggered rows above the plot.
    const LABEL_ROWS: usize = 4;
    const LABEL_ROW_H: f64 = 13.0;
    let band_top = 40.0;
    let height = 290.0;
    let (top, bottom, left, right) = (
        band_top + LABEL_ROWS as f64 * LABEL_ROW_H + 8.0,
        36.0,
        70.0,
        20.0,
    );
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let last_mark = marks.iter().map(|m| m.0).fold(0.0, f64::max);
    let max_x = nice_max(points.iter().map(|p| p.0).fold(last_mark, f64::max));
    let max_y = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
    let sx = |v: f64| left + v.max(0.0) / max_x * plot_w;
    let sy = |v: f64| top + plot_h - v / max_y * plot_h;
    let mut svg = open(title, height);
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888"/><line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#888"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{} s</text><text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{} {}</text><text x="{left}" y="{:.1}" class="axis">0</text>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h,
        left + plot_w,
        height - 12.0,
        label(max_x),
        left - 6.0,
        top + 4.0,
        label(max_y),
        escape(y_unit),
        height - 12.0,
    );
    // Where each label row is free again: a name that would overlap the
    // previous one in its row goes to the next row, or (all rows taken)
    // keeps only its mark and tooltip.
    let mut row_free_at = [f64::NEG_INFINITY; LABEL_ROWS];
    for (at_s, name) in marks {
        let x = sx(*at_s);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#999" stroke-dasharray="4 3"><title>{} starts at {} s</title></line>"##,
            top + plot_h,
            escape(name),
            label(*at_s),
        );
        let width = name.chars().count() as f64 * 6.8 + 6.0;
        if let Some(row) = row_free_at.iter().position(|&free| x >= free) {
            row_free_at[row] = x + width;
            let y = band_top + (row + 1) as f64 * LABEL_ROW_H;
            let _ = write!(
                svg,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{top}" stroke="#ddd"/><text x="{:.1}" y="{y:.1}" class="axis">{}</text>"##,
                y + 2.0,
                x + 2.0,
                escape(name)
            );
        }
    }
    let path: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
        .collect();
    let _ = write!(
        svg,
        r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
        PALETTE[0],
        path.join(" ")
    );
    svg.push_str("</svg>");
    svg
}

/// The name of a bar or range row, right-aligned before the plot.
fn row_label(svg: &mut String, y: f64, name: &str) {
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end" class="axis">{}</text>"#,
        LEFT - 8.0,
        y + BAR_HEIGHT * 0.7,
        escape(name)
    );
}

/// "N/A" in place of a row's bar or range.
fn not_available(svg: &mut String, y: f64) {
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" class="na">N/A</text>"#,
        LEFT + 4.0,
        y + BAR_HEIGHT * 0.7
    );
}

fn open(title: &str, height: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}" role="img" aria-label="{title}"><text x="10" y="22" class="title">{title}</text>"#,
        title = escape(title)
    )
}
