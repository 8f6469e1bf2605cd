//! Trends in the HTML report: per engine, scenario and key metric, the last
//! runs of the history as a small inline SVG line, with the change points
//! (the first run of a new level) and tonight's verdict marked. The CLI
//! reads the history and hands the series in: this crate does no I/O.

use std::fmt::Write as _;

use super::svg::escape;

/// One run of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendPoint {
    /// When it ran, as printed (`2026-12-02`).
    pub label: String,
    pub value: f64,
    /// The first run of a new level (E-divisive change point).
    pub change_point: bool,
}

/// What tonight's verdict on a series was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendVerdict {
    Unchanged,
    Improved,
    Regressed,
    /// Too little comparable history to judge.
    NotJudged,
}

/// The series of one engine × scenario × metric, oldest first; the last
/// point is tonight.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub engine: String,
    pub scenario: String,
    /// e.g. `tpot_ms.p50`.
    pub metric: String,
    pub points: Vec<TrendPoint>,
    pub verdict: TrendVerdict,
}

const WIDTH: f64 = 260.0;
const HEIGHT: f64 = 60.0;
const PAD: f64 = 6.0;

/// One sparkline: the series, red lines at change points, tonight's point
/// coloured by its verdict, and each point's value in its tooltip.
fn sparkline(trend: &Trend) -> String {
    let values: Vec<f64> = trend.points.iter().map(|p| p.value).collect();
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if max > min { max - min } else { 1.0 };
    let n = values.len().max(2) as f64 - 1.0;
    let x = |i: usize| PAD + i as f64 / n * (WIDTH - 2.0 * PAD);
    let y = |v: f64| HEIGHT - PAD - (v - min) / span * (HEIGHT - 2.0 * PAD);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{} / {} {}</title>"#,
        escape(&trend.engine),
        escape(&trend.scenario),
        escape(&trend.metric)
    );
    for (i, point) in trend.points.iter().enumerate() {
        if point.change_point {
            let _ = write!(
                svg,
                r##"<line class="change" x1="{0:.1}" y1="0" x2="{0:.1}" y2="{HEIGHT}" stroke="#d33" stroke-dasharray="3,2"><title>change point: {1}</title></line>"##,
                x(i),
                escape(&point.label)
            );
        }
    }
    let path: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#36c" stroke-width="1.5" points="{}"/>"##,
        path.join(" ")
    );
    let last = trend.points.len().saturating_sub(1);
    for (i, point) in trend.points.iter().enumerate() {
        let (r, fill) = if i == last {
            let colour = match trend.verdict {
                TrendVerdict::Regressed => "#d33",
                TrendVerdict::Improved => "#2a2",
                TrendVerdict::Unchanged | TrendVerdict::NotJudged => "#36c",
            };
            (4.0, colour)
        } else {
            (2.0, "#36c")
        };
        let _ = write!(
            svg,
            r#"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{fill}"><title>{}: {}</title></circle>"#,
            x(i),
            y(point.value),
            escape(&point.label),
            super::super::compare_table::Format::TwoDecimals.apply(point.value)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The trends section of the HTML report; empty without trends.
pub fn section(trends: &[Trend]) -> String {
    if trends.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "<h2>Trends</h2>\n<p class=\"meta\">The last runs of the history, oldest first; dashed red lines: change points (the first run of a new level); the large point is tonight, red when it regressed, green when it improved.</p>\n<table class=\"trends\"><thead><tr><th>engine</th><th>scenario</th><th>metric</th><th>runs</th><th>tonight</th><th>verdict</th></tr></thead><tbody>\n",
    );
    for trend in trends.iter().filter(|t| !t.points.is_empty()) {
        let verdict = match trend.verdict {
            TrendVerdict::Unchanged => "unchanged",
            TrendVerdict::Improved => "improved",
            TrendVerdict::Regressed => "REGRESSED",
            TrendVerdict::NotJudged => "not judged (too few runs)",
        };
        let tonight = trend.points.last().map_or(f64::NAN, |p| p.value);
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{verdict}</td></tr>",
            escape(&trend.engine),
            escape(&trend.scenario),
            escape(&trend.metric),
            sparkline(trend),
            super::super::compare_table::Format::TwoDecimals.apply(tonight)
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(values: &[f64], change_at: Option<usize>, verdict: TrendVerdict) -> Trend {
        Trend {
            engine: "vllm".to_owned(),
            scenario: "throughput".to_owned(),
            metric: "tpot_ms.p50".to_owned(),
            points: values
                .iter()
                .enumerate()
                .map(|(i, &value)| TrendPoint {
                    label: format!("night {i}"),
                    value,
                    change_point: change_at == Some(i),
                })
                .collect(),
            verdict,
        }
    }

    #[test]
    fn change_points_and_tonights_verdict_are_marked() {
        let html = section(&[trend(
            &[10.0, 10.1, 9.9, 10.0, 11.0, 11.1, 11.0],
            Some(4),
            TrendVerdict::Regressed,
        )]);
        assert_eq!(html.matches("<circle").count(), 7);
        assert_eq!(html.matches("class=\"change\"").count(), 1);
        assert!(html.contains("change point: night 4"), "{html}");
        // Tonight is the large red point.
        assert!(
            html.contains(r##"r="4" fill="#d33"><title>night 6: 11.00"##),
            "{html}"
        );
        assert!(html.contains("REGRESSED"));
    }

    #[test]
    fn no_trends_no_section_and_a_flat_series_is_drawn() {
        assert!(section(&[]).is_empty());
        let flat = section(&[trend(&[5.0, 5.0], None, TrendVerdict::NotJudged)]);
        assert!(flat.contains("not judged"), "{flat}");
        assert!(!flat.contains("NaN"), "{flat}");
    }
}
