//! The ground-truth log (`--truth-log FILE`): one JSON line per finished request.
//!
//! Records go through a channel to a dedicated writer thread that owns the
//! `BufWriter` and flushes after every line, so a request never waits on the
//! disk. Times are CLOCK_MONOTONIC nanoseconds (comparable with any process on
//! the same machine) plus the arrival's Unix time; docs/SIM.md explains how a
//! client compares them with its own clock.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// CLOCK_MONOTONIC in nanoseconds: the clock of the truth log.
///
/// `std::time::Instant` reads the same clock on Linux but does not expose its
/// value, so it cannot be compared across processes.
pub fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock Unix time in nanoseconds.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    /// The whole response was handed to hyper.
    Ok,
    /// `--fail-rate`: answered HTTP 500.
    Http500,
    /// `--error-after`: in-band error event, then `[DONE]`.
    ErrorAfter,
    /// `--disconnect-after`: the connection was dropped mid-stream.
    DisconnectAfter,
    /// `--stall-after`: stopped sending; ended at shutdown.
    StallAfter,
    /// The client went away before the response ended.
    ClientDisconnect,
    /// The process crashed (`--exit-after-requests`) or stopped mid-response.
    ServerStopped,
}

/// One line of the truth log.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TruthRecord {
    pub(crate) request_id: String,
    pub(crate) endpoint: &'static str,
    pub(crate) stream: bool,
    pub(crate) arrival_mono_ns: u64,
    pub(crate) arrival_unix_ns: u64,
    /// Send time of the first token's chunk (streams), or of the whole body.
    pub(crate) first_token_mono_ns: Option<u64>,
    /// Send time of each completion token's chunk, in order (streams only).
    pub(crate) token_mono_ns: Vec<u64>,
    /// When the last byte of the response was handed to hyper (or the request ended).
    pub(crate) end_mono_ns: u64,
    pub(crate) prompt_tokens: u32,
    pub(crate) cached_tokens: u32,
    pub(crate) completion_tokens: u32,
    pub(crate) finish_reason: Option<&'static str>,
    pub(crate) outcome: Outcome,
}

/// Sending side of the log; cheap to share.
#[derive(Debug, Clone)]
pub(crate) struct TruthSink {
    tx: mpsc::Sender<TruthRecord>,
}

/// Owns the writer thread; joining it flushes the file.
#[derive(Debug)]
pub(crate) struct TruthWriter {
    handle: JoinHandle<()>,
}

impl TruthSink {
    pub(crate) fn record(&self, record: TruthRecord) {
        // The writer only goes away at shutdown; a record lost then is fine.
        let _ = self.tx.send(record);
    }
}

impl TruthWriter {
    /// Waits until every record sent so far is on disk (all sinks must be dropped).
    pub(crate) fn join(self) {
        let _ = self.handle.join();
    }
}

/// Opens (truncates) `path` and starts the writer thread.
pub(crate) fn open(path: &Path) -> std::io::Result<(TruthSink, TruthWriter)> {
    let file = File::create(path)?;
    let (tx, rx) = mpsc::channel::<TruthRecord>();
    let handle = std::thread::Builder::new()
        .name("spark-sim-truth".to_owned())
        .spawn(move || {
            let mut out = BufWriter::new(file);
            for record in rx {
                let written = serde_json::to_writer(&mut out, &record)
                    .map_err(std::io::Error::from)
                    .and_then(|()| out.write_all(b"\n"))
                    .and_then(|()| out.flush());
                if let Err(err) = written {
                    tracing::error!("cannot write the truth log: {err}");
                }
            }
        })?;
    Ok((TruthSink { tx }, TruthWriter { handle }))
}
