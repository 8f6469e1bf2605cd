//! Reports: the nightly statistics over runs, the renderers (terminal, text,
//! Markdown, JSON, HTML) and the comparison of a run with a baseline.
//!
//! Architecture Invariant: report does no network I/O and never depends on
//! the load crate; it reads only the types of `spark-results`.

pub mod compare;
pub mod compare_table;
pub mod nightly;
pub mod pick;
pub mod render;
