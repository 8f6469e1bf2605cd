//! The library's one error type: one variant per operation that can fail.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the sim could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// `--host` did not resolve.
    #[error("cannot resolve host `{host}`: {err}")]
    Resolve {
        host: String,
        #[source]
        err: std::io::Error,
    },
    /// The address could not be bound.
    #[error("cannot bind {addr}: {err}")]
    Bind {
        addr: SocketAddr,
        #[source]
        err: std::io::Error,
    },
    /// The bound socket could not listen.
    #[error("cannot listen on {addr}: {err}")]
    Listen {
        addr: SocketAddr,
        #[source]
        err: std::io::Error,
    },
    /// `--truth-log` could not be created.
    #[error("cannot create the truth log {}: {err}", path.display())]
    OpenTruthLog {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    /// A flag value is out of range.
    #[error("invalid arguments: {0}")]
    InvalidArgs(String),
}
