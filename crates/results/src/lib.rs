//! The result model of a spark-perf run: plain serde types, no behaviour.
//!
//! The load engine produces these records, the report crate renders them and
//! `spark-perf compare` reads them back from a baseline. Keeping them in a
//! crate of their own means `report` never depends on `load`, and the JSON
//! written to disk has exactly one definition.
//!
//! Architecture Invariant: this crate depends on serde only; it does no I/O.
