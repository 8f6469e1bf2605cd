//! The text renderers: the terminal tables (with colour when allowed) and the
//! `model-comparison-<timestamp>.txt` file, which is the same text without
//! colour, as the reference tool wrote it.

use std::fmt::Write as _;

use spark_results::SuiteResults;
use unicode_width::UnicodeWidthStr;

use crate::compare_table::{Table, tables};
use crate::render::{self, flags, format_unix_ms};

/// The winner's mark.
pub const TROPHY: &str = "🏆";

/// Options of the text renderer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TextStyle {
    /// ANSI colour (bold green winners); off for files, pipes and `NO_COLOR`.
    pub color: bool,
}

/// Renders the whole report as text.
pub fn render(suite: &SuiteResults, style: TextStyle) -> String {
    let mut out = String::new();
    header(&mut out, suite);
    crate::pick::sections::text(&mut out, &crate::pick::pick(suite));
    for table in tables(suite) {
        render_table(&mut out, &table, style);
        out.push('\n');
    }
    failures(&mut out, suite);
    let flagged = flags(suite);
    if !flagged.is_empty() {
        out.push_str("What could not be guaranteed\n");
        for flag in flagged {
            let _ = writeln!(out, "  - {flag}");
        }
        out.push('\n');
    }
    let displaced = render::displaced(suite);
    if !displaced.is_empty() {
        let _ = writeln!(out, "{}", render::DISPLACED_HEADING);
        for line in displaced {
            let _ = writeln!(out, "  - {}", one_line(&line));
        }
        out.push('\n');
    }
    provenance(&mut out, suite);
    out.push_str("Metric definitions\n");
    for definition in render::metric_definitions(suite) {
        let _ = writeln!(out, "  {definition}");
    }
    out
}

fn header(out: &mut String, suite: &SuiteResults) {
    let _ = writeln!(out, "spark-perf model comparison");
    let _ = writeln!(out, "  tool:    {}", suite.tool);
    let _ = writeln!(out, "  source:  {}", suite.source);
    let _ = writeln!(out, "  started: {}", format_unix_ms(suite.started_unix_ms));
    if let Some(gpu) = crate::compare_table::gpu_line(suite) {
        let _ = writeln!(out, "  {gpu}");
    }
    if !suite.complete {
        let reason = suite.stopped.as_deref().unwrap_or("stopped early");
        let _ = writeln!(out, "  INCOMPLETE: {reason}");
    }
    out.push('\n');
}

fn failures(out: &mut String, suite: &SuiteResults) {
    let failed = render::failures(suite);
    if failed.is_empty() {
        return;
    }
    out.push_str("Engines without full results (N/A above)\n");
    for (service, reason) in failed {
        let _ = writeln!(out, "  {service}: {}", one_line(&reason));
    }
    out.push('\n');
}

fn provenance(out: &mut String, suite: &SuiteResults) {
    let with_provenance: Vec<_> = suite
        .engines
        .iter()
        .filter_map(|engine| engine.provenance.as_ref().map(|p| (engine, p)))
        .collect();
    if with_provenance.is_empty() {
        return;
    }
    out.push_str("Provenance\n");
    for (engine, provenance) in with_provenance {
        let _ = writeln!(out, "  {} ({}):", engine.service, engine.flavor);
        let _ = writeln!(out, "    image:   {}", provenance.image);
        if let Some(id) = &provenance.image_id {
            let _ = writeln!(out, "    id:      {id}");
        }
        for digest in &provenance.repo_digests {
            let _ = writeln!(out, "    digest:  {digest}");
        }
        if let Some(version) = &provenance.engine_version {
            let _ = writeln!(out, "    version: {version}");
        }
        if !provenance.command.is_empty() {
            let _ = writeln!(out, "    command: {}", provenance.command.join(" "));
        }
        if !provenance.env_names.is_empty() {
            let _ = writeln!(
                out,
                "    env:     {} (values not recorded)",
                provenance.env_names.join(", ")
            );
        }
    }
    out.push('\n');
}

/// A multi-line reason on one line, so tables and lists stay aligned.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One table with box-drawing borders, winners marked.
pub fn render_table(out: &mut String, table: &Table, style: TextStyle) {
    let mut grid: Vec<Vec<(String, bool)>> = Vec::new();
    let mut head = vec![("metric".to_owned(), false)];
    head.extend(table.columns.iter().map(|c| (c.clone(), false)));
    grid.push(head);
    for row in &table.rows {
        let winners = row.winners();
        let mut line = vec![(row.label(), false)];
        for idx in 0..row.cells.len() {
            let is_winner = winners.contains(&idx);
            let text = match row.cell_text(idx) {
                Some(text) if is_winner => format!("{text} {TROPHY}"),
                Some(text) => text,
                None => "N/A".to_owned(),
            };
            line.push((text, is_winner));
        }
        grid.push(line);
    }
    let n_columns = grid[0].len();
    let widths: Vec<usize> = (0..n_columns)
        .map(|col| {
            grid.iter()
                .map(|line| line[col].0.width())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let border = |left: &str, mid: &str, right: &str| {
        let parts: Vec<String> = widths.iter().map(|w| "─".repeat(w + 2)).collect();
        format!("{left}{}{right}\n", parts.join(mid))
    };
    let _ = writeln!(out, "{}", table.title);
    out.push_str(&border("┌", "┬", "┐"));
    for (line_idx, line) in grid.iter().enumerate() {
        out.push('│');
        for (col, (text, is_winner)) in line.iter().enumerate() {
            let pad = widths[col] - text.width();
            // Names left, numbers right.
            let (left, right) = if col == 0 || line_idx == 0 {
                (0, pad)
            } else {
                (pad, 0)
            };
            out.push(' ');
            out.push_str(&" ".repeat(left));
            if *is_winner && style.color {
                let _ = write!(out, "\x1b[1;32m{text}\x1b[0m");
            } else {
                out.push_str(text);
            }
            out.push_str(&" ".repeat(right));
            out.push_str(" │");
        }
        out.push('\n');
        if line_idx == 0 {
            out.push_str(&border("├", "┼", "┤"));
        }
    }
    out.push_str(&border("└", "┴", "┘"));
}
