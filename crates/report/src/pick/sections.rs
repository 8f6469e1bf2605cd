//! The pick as each report opens with it: the summary table, the reasons for
//! its N/A cells, and "which to run" with the rule of each use case. One
//! function per format; each renderer calls its own first.

use std::fmt::Write as _;

use spark_results::{Pick, PickFigure, PickSummaryRow};
use unicode_width::UnicodeWidthStr;

use crate::compare_table::Format;
use crate::render::svg::escape as html_escape;

/// The section's heading.
pub const HEADING: &str = "The pick";

/// The noise rule every verdict follows, in one sentence.
pub const NOISE_RULE: &str = "A lead counts only beyond the noise: by more than the standard deviations of both engines' requests (by 5 % where a figure has no spread), the rule of the trophies in the tables; otherwise it is a tie.";

/// The summary table's columns after the engine's name.
const COLUMNS: [&str; 7] = [
    "TTFT c=1 (ms)",
    "decode c=1 (tok/s)",
    "saturation (tok/s)",
    "capacity (SLO)",
    "long-context TTFT (ms)",
    "model (GB)",
    "memory (GB)",
];

fn figures(row: &PickSummaryRow) -> [&PickFigure; 7] {
    [
        &row.ttft_c1_ms,
        &row.decode_c1_tok_s,
        &row.saturation_output_tok_s,
        &row.capacity_within_slo,
        &row.longest_context_ttft_ms,
        &row.model_size_gb,
        &row.runtime_memory_gb,
    ]
}

/// The cells of one engine's row, N/A where a figure is missing.
fn cells(row: &PickSummaryRow) -> Vec<String> {
    let mut cells = vec![row.engine.clone()];
    for (idx, figure) in figures(row).into_iter().enumerate() {
        let text = match figure.value {
            Some(value) => {
                // The last two columns are model size and memory, in GB.
                let format = if idx >= 5 {
                    Format::Gigabytes
                } else {
                    Format::OneDecimal
                };
                let text = format.apply(value);
                match (idx, row.longest_context_tokens) {
                    (4, Some(tokens)) => format!("{text} @ {tokens} tok"),
                    _ => text,
                }
            }
            None => "N/A".to_owned(),
        };
        cells.push(text);
    }
    cells
}

/// Why cells are N/A: one line per excluded engine, then per column either
/// one reason shared by every engine or one per engine.
fn reasons(pick: &Pick) -> Vec<String> {
    let mut lines: Vec<String> = pick
        .summary
        .iter()
        .filter_map(|row| {
            row.excluded
                .as_ref()
                .map(|why| format!("{} is left out of the pick: {why}", row.engine))
        })
        .collect();
    let taking_part: Vec<&PickSummaryRow> = pick
        .summary
        .iter()
        .filter(|r| r.excluded.is_none())
        .collect();
    for (idx, column) in COLUMNS.iter().enumerate() {
        let missing: Vec<(&str, &str)> = taking_part
            .iter()
            .filter_map(|row| {
                let figure = figures(row)[idx];
                figure
                    .not_available
                    .as_deref()
                    .filter(|_| figure.value.is_none())
                    .map(|why| (row.engine.as_str(), why))
            })
            .collect();
        let shared = missing.len() == taking_part.len()
            && missing.len() > 1
            && missing.iter().all(|(_, why)| *why == missing[0].1);
        if shared {
            lines.push(format!("{column} N/A: {}", missing[0].1));
        } else {
            for (engine, why) in missing {
                lines.push(format!("{column} N/A for {engine}: {why}"));
            }
        }
    }
    lines
}

/// The pick for the terminal and the text file.
pub fn text(out: &mut String, pick: &Pick) {
    let _ = writeln!(out, "{HEADING}");
    let mut grid = vec![
        std::iter::once("engine")
            .chain(COLUMNS)
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    ];
    grid.extend(pick.summary.iter().map(cells));
    text_grid(out, &grid);
    for line in reasons(pick) {
        let _ = writeln!(out, "  {line}");
    }
    out.push('\n');
    out.push_str("Which to run\n");
    for use_case in &pick.use_cases {
        let _ = writeln!(out, "  {} → {}", use_case.use_case, use_case.line);
        let _ = writeln!(out, "      why: {}", use_case.rule);
        for left_out in &use_case.left_out {
            let _ = writeln!(out, "      left out: {left_out}");
        }
    }
    let _ = writeln!(out, "  {NOISE_RULE}\n");
}

/// Box-drawn, names left and numbers right, as the report's other tables.
fn text_grid(out: &mut String, grid: &[Vec<String>]) {
    let widths: Vec<usize> = (0..grid[0].len())
        .map(|col| grid.iter().map(|line| line[col].width()).max().unwrap_or(0))
        .collect();
    let border = |left: &str, mid: &str, right: &str| {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{left}{}{right}\n", parts.join(mid))
    };
    out.push_str(&border("┌", "┬", "┐"));
    for (line_idx, line) in grid.iter().enumerate() {
        out.push('│');
        for (col, text) in line.iter().enumerate() {
            let pad = " ".repeat(widths[col] - text.width());
            if col == 0 || line_idx == 0 {
                let _ = write!(out, " {text}{pad} │");
            } else {
                let _ = write!(out, " {pad}{text} │");
            }
        }
        out.push('\n');
        if line_idx == 0 {
            out.push_str(&border("├", "┼", "┤"));
        }
    }
    out.push_str(&border("└", "┴", "┘"));
}

/// The pick in Markdown; `escape` is the Markdown report's.
pub fn markdown(out: &mut String, pick: &Pick, escape: fn(&str) -> String) {
    let _ = writeln!(out, "## {HEADING}\n");
    let _ = write!(out, "| engine |");
    for column in COLUMNS {
        let _ = write!(out, " {column} |");
    }
    let _ = write!(out, "\n| --- |{}\n", " ---: |".repeat(COLUMNS.len()));
    for row in &pick.summary {
        out.push('|');
        for cell in cells(row) {
            let _ = write!(out, " {} |", escape(&cell));
        }
        out.push('\n');
    }
    out.push('\n');
    let reasons = reasons(pick);
    for line in &reasons {
        let _ = writeln!(out, "- {}", escape(line));
    }
    if !reasons.is_empty() {
        out.push('\n');
    }
    let _ = writeln!(out, "### Which to run\n");
    let _ = writeln!(out, "| use case | pick | why |\n| --- | --- | --- |");
    for use_case in &pick.use_cases {
        let mut why = escape(&use_case.rule);
        for left_out in &use_case.left_out {
            let _ = write!(why, " Left out: {}.", escape(left_out));
        }
        let _ = writeln!(
            out,
            "| {} | {} | {why} |",
            escape(&use_case.use_case),
            escape(&use_case.line)
        );
    }
    let _ = writeln!(out, "\n{}\n", escape(NOISE_RULE));
}

/// The pick in HTML.
pub fn html(out: &mut String, pick: &Pick) {
    let _ = write!(
        out,
        "<section id=\"pick\"><h2>{HEADING}</h2>\n<table class=\"pick\"><thead><tr><th>engine</th>"
    );
    for column in COLUMNS {
        let _ = write!(out, "<th>{}</th>", html_escape(column));
    }
    out.push_str("</tr></thead><tbody>\n");
    for row in &pick.summary {
        let cells = cells(row);
        let _ = write!(out, "<tr><td>{}</td>", html_escape(&cells[0]));
        for cell in &cells[1..] {
            let class = if cell == "N/A" { "na" } else { "num" };
            let _ = write!(out, "<td class=\"{class}\">{}</td>", html_escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    let reasons = reasons(pick);
    if !reasons.is_empty() {
        out.push_str("<ul class=\"pick-na\">\n");
        for line in reasons {
            let _ = writeln!(out, "<li>{}</li>", html_escape(&line));
        }
        out.push_str("</ul>\n");
    }
    out.push_str("<h3>Which to run</h3>\n<table class=\"pick\"><thead><tr><th>use case</th><th>pick</th><th>why</th></tr></thead><tbody>\n");
    for use_case in &pick.use_cases {
        let mut why = html_escape(&use_case.rule);
        for left_out in &use_case.left_out {
            let _ = write!(why, "<br>left out: {}", html_escape(left_out));
        }
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{why}</td></tr>",
            verdict_class(use_case.verdict),
            html_escape(&use_case.use_case),
            html_escape(&use_case.line)
        );
    }
    let _ = writeln!(
        out,
        "</tbody></table>\n<p class=\"meta\">{}</p></section>",
        html_escape(NOISE_RULE)
    );
}

fn verdict_class(verdict: spark_results::PickVerdict) -> &'static str {
    match verdict {
        spark_results::PickVerdict::Winner => "winner",
        spark_results::PickVerdict::Tie => "tie",
        spark_results::PickVerdict::NotAvailable => "na",
    }
}
