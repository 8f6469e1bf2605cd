//! The Markdown report, for wikis and CI job summaries: the same tables and
//! notes as the text report, as GitHub-flavoured Markdown.

use std::fmt::Write as _;

use spark_results::SuiteResults;

use crate::compare_table::tables;
use crate::render::text::TROPHY;
use crate::render::{DISPLACED_HEADING, displaced, failures, flags, format_unix_ms};

/// Renders the whole report as Markdown.
pub fn render(suite: &SuiteResults) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# spark-perf model comparison\n");
    let _ = writeln!(
        out,
        "{} · {} · started {}\n",
        suite.tool,
        escape(&suite.source),
        format_unix_ms(suite.started_unix_ms)
    );
    if let Some(gpu) = crate::compare_table::gpu_line(suite) {
        let _ = writeln!(out, "{}\n", escape(&gpu));
    }
    if !suite.complete {
        let reason = suite.stopped.as_deref().unwrap_or("stopped early");
        let _ = writeln!(out, "> **Incomplete run:** {}\n", escape(reason));
    }
    crate::pick::sections::markdown(&mut out, &crate::pick::pick(suite), escape);
    for table in tables(suite) {
        let _ = writeln!(out, "## {}\n", escape(&table.title));
        let mut head = String::from("| metric |");
        let mut rule = String::from("| --- |");
        for column in &table.columns {
            let _ = write!(head, " {} |", escape(column));
            rule.push_str(" ---: |");
        }
        let _ = writeln!(out, "{head}\n{rule}");
        for row in &table.rows {
            let winners = row.winners();
            let _ = write!(out, "| {} |", row.label());
            for idx in 0..row.cells.len() {
                match row.cell_text(idx) {
                    Some(text) if winners.contains(&idx) => {
                        let _ = write!(out, " **{text}** {TROPHY} |");
                    }
                    Some(text) => {
                        let _ = write!(out, " {text} |");
                    }
                    None => out.push_str(" N/A |"),
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }
    let failed = failures(suite);
    if !failed.is_empty() {
        let _ = writeln!(out, "## Engines without full results\n");
        for (service, reason) in failed {
            let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = writeln!(out, "- **{}**: {}", escape(service), escape(&reason));
        }
        out.push('\n');
    }
    let flagged = flags(suite);
    if !flagged.is_empty() {
        let _ = writeln!(out, "## What could not be guaranteed\n");
        for flag in flagged {
            let _ = writeln!(out, "- {}", escape(&flag));
        }
        out.push('\n');
    }
    let displaced = displaced(suite);
    if !displaced.is_empty() {
        let _ = writeln!(out, "## {DISPLACED_HEADING}\n");
        for line in displaced {
            let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = writeln!(out, "- {}", escape(&line));
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Metric definitions\n");
    for definition in crate::render::metric_definitions(suite) {
        let _ = writeln!(out, "- {definition}");
    }
    out
}

/// Escapes the characters that would break a table cell or start markup.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '|' | '*' | '_' | '`' | '<' | '>' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped
}
