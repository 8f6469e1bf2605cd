//! The load engine: an HTTP/SSE client for OpenAI-compatible engines, the
//! benchmark scenarios, and per-request timing records.
//!
//! ```no_run
//! # async fn demo() -> Result<(), spark_load::LoadError> {
//! use spark_load::{Engine, EngineConfig, JsonlSink, RunOptions, scenario};
//! let engine = Engine::connect(EngineConfig::new("http://127.0.0.1:8000")).await?;
//! let scenarios = scenario::select(&scenario::builtin(), None)?;
//! let mut sink = JsonlSink::create("requests.jsonl".as_ref())?;
//! let cancel = tokio_util::sync::CancellationToken::new();
//! let results = spark_load::run(&engine, &scenarios, &mut sink, &RunOptions::default(), &cancel).await;
//! println!("{} scenarios", results.scenarios.len());
//! # Ok(()) }
//! ```
//!
//! The records and aggregates are `spark_results` types; docs/METRICS.md
//! defines every metric.
//!
//! Architecture Invariant: the load engine knows no Docker; it is given a base
//! URL and measures whatever answers there.
//!
//! Architecture Invariant: the per-chunk path (`request.rs`, `direct.rs`,
//! `sse.rs`, `chunk.rs`, `histogram.rs`) does no allocation, no locking and no
//! formatting; a chunk is timestamped on arrival, before it is parsed.

mod chunk;
mod clock;
mod direct;
mod engine;
mod histogram;
mod prompt;
mod request;
mod runner;
mod rxstamp;
pub mod scenario;
mod sink;
pub mod slo;
mod sse;
pub mod sweep;

use std::path::PathBuf;

pub use engine::{ApiKey, Engine, EngineConfig, Timeouts};
pub use runner::{CapacitySearch, RunOptions, run, run_scenario};
pub use scenario::{Overrides, Scenario};
pub use sink::{JsonlSink, NullSink, RecordSink};
pub use slo::Slo;

/// Errors of the load engine. Failed requests are not errors: they are
/// records with a failure class.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The base URL cannot be used.
    #[error("invalid engine URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (redacted when it holds credentials).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The API key cannot be sent in a header.
    #[error("the API key contains characters that cannot go in an HTTP header")]
    InvalidApiKey,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    BuildClient(#[source] reqwest::Error),
    /// `GET /v1/models` failed.
    #[error("cannot list the models at {url}: {message}")]
    ListModels {
        /// The models URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The engine lists no model.
    #[error("the engine at {url} serves no model")]
    NoModel {
        /// The base URL.
        url: String,
    },
    /// The requested model is not served.
    #[error("model {model:?} is not served at {url}; it serves: {served}")]
    UnknownModel {
        /// The base URL.
        url: String,
        /// The model asked for.
        model: String,
        /// The models served.
        served: String,
    },
    /// A scenario file cannot be read.
    #[error("cannot read the scenario file {path}: {err}")]
    ReadScenarios {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        err: std::io::Error,
    },
    /// A scenario file is invalid.
    #[error("invalid scenario file {path}: {message}")]
    ParseScenarios {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A scenario name that is neither a scenario nor a group.
    #[error("unknown scenario {name:?}; known: {known}")]
    UnknownScenario {
        /// The name given.
        name: String,
        /// The names and groups known.
        known: String,
    },
    /// The records file cannot be created.
    #[error("cannot create the records file {path}: {err}")]
    CreateRecords {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        err: std::io::Error,
    },
}

/// For `cargo bench -p spark-load` only, not an API: parses a stream body
/// the way a request does (SSE framing, then each payload), fed in reads of
/// `read_size` bytes, and returns the number of token-carrying chunks.
#[doc(hidden)]
pub fn bench_parse_body(body: &[u8], read_size: usize) -> u32 {
    use std::ops::ControlFlow;
    let mut parser = sse::SseParser::default();
    let mut chunks = chunk::ChunkReader::default();
    let mut n_tokens = 0u32;
    let mut on_event = |kind: sse::EventKind, data: &[u8]| {
        if kind != sse::EventKind::Message {
            return ControlFlow::Break(());
        }
        if let chunk::Payload::Chunk(info) = chunks.parse(data) {
            n_tokens += u32::from(info.content || info.reasoning);
        }
        ControlFlow::Continue(())
    };
    for read in body.chunks(read_size.max(1)) {
        let _ = parser.feed(read, &mut on_event);
    }
    let _ = parser.finish(&mut on_event);
    n_tokens
}
