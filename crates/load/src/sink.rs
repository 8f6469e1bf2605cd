//! Where request records go as they are measured.
//!
//! Records are handed to the sink in batches, each at most a few
//! milliseconds after its request ended (the runner's `COLLECT_PERIOD`),
//! and the sink is flushed after each batch, so a crash of the tool loses
//! at most the requests in flight and those of the last batch. The JSON
//! Lines sink writes the file at each flush for that reason (a write per
//! batch, not per request or token).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use spark_results::RequestRecord;

use crate::LoadError;

/// Receives every request record, in the order requests end.
pub trait RecordSink: Send {
    /// Stores one record. An error is reported once and the run goes on.
    fn write(&mut self, record: &RequestRecord) -> std::io::Result<()>;

    /// Makes the records written so far durable (called after each batch).
    /// Nothing by default.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    /// [`run`](crate::run) is about to run the scenario `name` (its
    /// calibration, then its requests): where a caller marks the start of
    /// what it samples beside the load. Nothing by default.
    fn scenario_started(&mut self, _name: &str) {}

    /// The scenario `name` ended (its last request, or its early stop).
    fn scenario_ended(&mut self, _name: &str) {}
}

/// Discards records (when only aggregates are wanted).
#[derive(Debug, Default)]
pub struct NullSink;

impl RecordSink for NullSink {
    fn write(&mut self, _record: &RequestRecord) -> std::io::Result<()> {
        Ok(())
    }
}

impl RecordSink for Vec<RequestRecord> {
    fn write(&mut self, record: &RequestRecord) -> std::io::Result<()> {
        self.push(record.clone());
        Ok(())
    }
}

/// Appends one JSON object per line to a file, written out at each flush.
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl JsonlSink {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<JsonlSink, LoadError> {
        let file = File::create(path).map_err(|err| LoadError::CreateRecords {
            path: path.to_owned(),
            err,
        })?;
        Ok(JsonlSink {
            path: path.to_owned(),
            out: BufWriter::new(file),
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl RecordSink for JsonlSink {
    fn write(&mut self, record: &RequestRecord) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, record)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
