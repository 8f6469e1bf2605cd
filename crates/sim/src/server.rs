//! The server: binding, the loading phase, the accept loop and shutdown.
//!
//! `Sim::bind` reserves the address with a `TcpSocket` but does not listen, so
//! the port is known (and printed) while connections are still refused, like
//! an engine that is loading weights. `Sim::run` listens once the closed part
//! of `--load-time` is over and stops on the shutdown future: in-flight
//! responses get a short grace period, stalled streams end at once, and
//! whatever is still open after the hard deadline is cut.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::SimError;
use crate::args::SimArgs;
use crate::engine::Engine;
use crate::truth::{self, TruthSink, TruthWriter};

/// How long in-flight responses may go on after a stop signal.
const STOP_GRACE: Duration = Duration::from_millis(600);
/// How long a crash (`--exit-after-requests`) waits so that the last finished
/// response reaches the socket before every connection is cut.
const CRASH_FLUSH: Duration = Duration::from_millis(50);

/// How `Sim::run` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimExit {
    /// Stopped by the shutdown future (SIGTERM/SIGINT in the binary).
    Stopped,
    /// Crashed on purpose (`--exit-after-requests`).
    Crashed,
}

impl SimExit {
    /// The process exit code: 0 when stopped, 3 after a simulated crash.
    pub fn code(self) -> i32 {
        match self {
            SimExit::Stopped => 0,
            SimExit::Crashed => 3,
        }
    }
}

/// State every request handler sees.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) args: SimArgs,
    pub(crate) served_names: Vec<String>,
    pub(crate) engine: Arc<Engine>,
    pub(crate) truth: Option<TruthSink>,
    pub(crate) ready: AtomicBool,
    pub(crate) request_counter: AtomicU64,
    ended: AtomicU64,
    crash: Notify,
    stopping: AtomicBool,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    /// Counts a generation request that ended; crashes the server after
    /// `--exit-after-requests` of them.
    pub(crate) fn request_ended(&self) {
        let n_ended = self.ended.fetch_add(1, Ordering::Relaxed) + 1;
        if self.args.exit_after_requests == Some(n_ended) {
            tracing::warn!("--exit-after-requests {n_ended}: crashing");
            self.crash.notify_one();
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub(crate) fn shutdown_receiver(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}

/// The socket before `run`: listening already when there is no loading phase,
/// so that a client may connect as soon as `bind` returns.
#[derive(Debug)]
enum Bound {
    Closed(TcpSocket),
    Listening(TcpListener),
}

/// A bound simulated engine (listening only once the loading phase allows).
#[derive(Debug)]
pub struct Sim {
    shared: Arc<Shared>,
    socket: Bound,
    local_addr: SocketAddr,
    shutdown_tx: watch::Sender<bool>,
    truth_writer: Option<TruthWriter>,
}

impl Sim {
    /// Binds `--host:--port` without listening yet and opens the truth log.
    pub async fn bind(args: SimArgs) -> Result<Sim, SimError> {
        let host = args.host.clone();
        let addr = tokio::net::lookup_host((host.as_str(), args.port()))
            .await
            .map_err(|err| SimError::Resolve {
                host: host.clone(),
                err,
            })?
            .next()
            .ok_or_else(|| SimError::Resolve {
                host: host.clone(),
                err: std::io::Error::other("no address"),
            })?;
        let bind = |addr: SocketAddr| -> std::io::Result<(TcpSocket, SocketAddr)> {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            let local = socket.local_addr()?;
            Ok((socket, local))
        };
        let (socket, local_addr) = bind(addr).map_err(|err| SimError::Bind { addr, err })?;
        let socket = if args.load_time.is_zero() || args.load_closed_fraction <= 0.0 {
            Bound::Listening(socket.listen(1024).map_err(|err| SimError::Listen {
                addr: local_addr,
                err,
            })?)
        } else {
            Bound::Closed(socket)
        };
        let (truth, truth_writer) = match &args.truth_log {
            Some(path) => {
                let (sink, writer) = truth::open(path).map_err(|err| SimError::OpenTruthLog {
                    path: path.clone(),
                    err,
                })?;
                (Some(sink), Some(writer))
            }
            None => (None, None),
        };
        if !(0.0..=1.0).contains(&args.fail_rate) {
            return Err(SimError::InvalidArgs(format!(
                "--fail-rate must be between 0 and 1, got {}",
                args.fail_rate
            )));
        }
        for (flag, pct) in [
            ("--run-drift-pct", args.run_drift_pct),
            ("--jitter-pct", args.jitter_pct),
        ] {
            if !(0.0..=50.0).contains(&pct) {
                return Err(SimError::InvalidArgs(format!(
                    "{flag} must be between 0 and 50, got {pct}"
                )));
            }
        }
        let engine = Arc::new(
            Engine::new(args.timing(), args.block_size, !args.no_prefix_cache)
                .with_jitter(args.seed, args.jitter_pct / 100.0),
        );
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            served_names: args.served_names(),
            // Without a loading phase the sim is ready before its first accept.
            ready: AtomicBool::new(args.load_time.is_zero() && !args.never_ready),
            args,
            engine,
            truth,
            request_counter: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            crash: Notify::new(),
            stopping: AtomicBool::new(false),
            shutdown: shutdown_rx,
        });
        Ok(Sim {
            shared,
            socket,
            local_addr,
            shutdown_tx,
            truth_writer,
        })
    }

    /// The bound address (the real port when `--port 0`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes (or a simulated crash).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<SimExit, SimError> {
        let Sim {
            shared,
            socket,
            local_addr,
            shutdown_tx,
            truth_writer,
        } = self;
        let args = &shared.args;
        let started = Instant::now();
        let closed_for = args
            .load_time
            .mul_f64(args.load_closed_fraction.clamp(0.0, 1.0));
        let ready_at = started + args.load_time;
        tokio::pin!(shutdown);

        let exit = 'serve: {
            tokio::select! {
                () = &mut shutdown => break 'serve SimExit::Stopped,
                () = tokio::time::sleep_until(started + closed_for) => {}
            }
            let listener = match socket {
                Bound::Listening(listener) => listener,
                Bound::Closed(socket) => socket.listen(1024).map_err(|err| SimError::Listen {
                    addr: local_addr,
                    err,
                })?,
            };
            tracing::info!("accepting connections on {local_addr}");
            let mut ready = shared.ready.load(Ordering::Relaxed);
            let mut conns = JoinSet::new();
            let exit = loop {
                tokio::select! {
                    // Stop and readiness first: a connection accepted in the
                    // same turn must already see the new state.
                    biased;
                    () = &mut shutdown => break SimExit::Stopped,
                    () = shared.crash.notified() => break SimExit::Crashed,
                    () = tokio::time::sleep_until(ready_at), if !ready && !args.never_ready => {
                        ready = true;
                        shared.ready.store(true, Ordering::Relaxed);
                        tracing::info!("model loaded: ready");
                    }
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            conns.spawn(serve_connection(Arc::clone(&shared), stream));
                        }
                        Err(err) => {
                            // Out of file descriptors and the like: back off
                            // instead of spinning.
                            tracing::warn!("accept failed: {err}");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            };
            drop(listener);
            shared.stopping.store(true, Ordering::Relaxed);
            let _ = shutdown_tx.send(true);
            let deadline = match exit {
                SimExit::Stopped => Instant::now() + STOP_GRACE,
                SimExit::Crashed => Instant::now() + CRASH_FLUSH,
            };
            if exit == SimExit::Stopped {
                while let Ok(Some(_)) = tokio::time::timeout_at(deadline, conns.join_next()).await {
                }
            } else {
                tokio::time::sleep_until(deadline).await;
            }
            conns.abort_all();
            while conns.join_next().await.is_some() {}
            exit
        };
        shared.stopping.store(true, Ordering::Relaxed);
        drop(shared);
        if let Some(writer) = truth_writer {
            // The last `Shared` (and its sink) is gone once every connection
            // task ended, so the writer sees the channel close and finishes.
            tokio::task::spawn_blocking(move || writer.join())
                .await
                .ok();
        }
        Ok(exit)
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) {
    // Token events are small and latency is what we measure: no Nagle.
    let _ = stream.set_nodelay(true);
    let mut shutdown = shared.shutdown_receiver();
    let service_shared = Arc::clone(&shared);
    let service = service_fn(move |req| {
        let shared = Arc::clone(&service_shared);
        async move { Ok::<_, Infallible>(crate::api::handle(shared, req).await) }
    });
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!("connection ended: {err}");
            }
        }
        () = stopped(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it before going on.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Binds, prints `spark-sim listening on http://HOST:PORT` on stdout, and
/// serves until `shutdown` completes: what the binary and `spark-perf sim` run.
pub async fn serve(args: SimArgs, shutdown: impl Future<Output = ()>) -> Result<SimExit, SimError> {
    let sim = Sim::bind(args).await?;
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "spark-sim listening on http://{}", sim.local_addr());
        let _ = stdout.flush();
    }
    sim.run(shutdown).await
}
