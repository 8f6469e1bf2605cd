//! Health gating: wait until the engine's health path answers 200, while
//! watching the container so that a crash is noticed at once.
//!
//! One deadline in one place (the whole wait is bounded by
//! [`HealthOptions::timeout`]). Two clocks tick inside it: the container is
//! inspected every [`HealthOptions::watch_interval`] (250 ms by default, so an
//! exit, a restart or a removal is seen well within 2 s), and the health path
//! is probed every [`HealthOptions::interval`] (3 s, as the reference tool
//! does). A probe is a plain HTTP/1.1 GET with a 1 s timeout: the orchestrator
//! knows nothing more of the engine's protocol.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How to wait for an engine.
#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// Time between two probes of the health path (3 s).
    pub interval: Duration,
    /// Give up after this long (30 minutes: a first start downloads the model).
    pub timeout: Duration,
    /// Time between two looks at the container's state (250 ms).
    pub watch_interval: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            interval: Duration::from_secs(3),
            timeout: Duration::from_secs(30 * 60),
            watch_interval: Duration::from_millis(250),
        }
    }
}

/// What it cost to bring a service up, each measured from the request to
/// create the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartupCost {
    /// Until the container was created.
    pub create: Duration,
    /// Until the container was started.
    pub start: Duration,
    /// Until the engine first answered HTTP at all (any status); equal to
    /// `healthy` when the first answer was already 200.
    pub port_open: Duration,
    /// Until the health path answered 200.
    pub healthy: Duration,
}

/// What the container is doing, as the watcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContainerState {
    Running { restart_count: i64 },
    Restarting { restart_count: i64, exit_code: i64 },
    Exited { exit_code: i64 },
    Removed,
}

/// The answer of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeAnswer {
    /// An HTTP status.
    Status(u16),
    /// No HTTP answer: connection refused, reset, timeout, garbage.
    NoAnswer(String),
}

/// Why the gate gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GateFailure {
    Exited {
        exit_code: i64,
    },
    Restarted {
        restart_count: i64,
        exit_code: Option<i64>,
    },
    Removed,
    Timeout {
        elapsed: Duration,
        last: String,
    },
}

/// The times the gate saw, from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GateTimes {
    pub(crate) port_open: Duration,
    pub(crate) healthy: Duration,
}

/// What the gate waits on: a container to watch and a path to probe.
pub(crate) trait GateTarget {
    /// The container's state; an error ends the wait.
    async fn watch(&mut self) -> Result<ContainerState, crate::OrchestratorError>;
    /// One probe of the health path.
    async fn probe(&mut self) -> ProbeAnswer;
}

/// The probe timeout: short, so that watching is never held up for long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Waits until `target` answers 200 or fails. Bounded by `options.timeout`.
pub(crate) async fn gate<T: GateTarget>(
    target: &mut T,
    options: &HealthOptions,
) -> Result<Result<GateTimes, GateFailure>, crate::OrchestratorError> {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let watch_interval = options.watch_interval.max(Duration::from_millis(10));
    let mut initial_restarts: Option<i64> = None;
    let mut port_open: Option<Duration> = None;
    let mut next_probe = started;
    let mut last = "no answer yet".to_owned();
    loop {
        match target.watch().await? {
            ContainerState::Removed => return Ok(Err(GateFailure::Removed)),
            ContainerState::Exited { exit_code } => {
                return Ok(Err(GateFailure::Exited { exit_code }));
            }
            ContainerState::Restarting {
                restart_count,
                exit_code,
            } => {
                return Ok(Err(GateFailure::Restarted {
                    restart_count: restart_count.max(1),
                    exit_code: Some(exit_code),
                }));
            }
            ContainerState::Running { restart_count } => {
                let initial = *initial_restarts.get_or_insert(restart_count);
                if restart_count > initial {
                    return Ok(Err(GateFailure::Restarted {
                        restart_count: restart_count - initial,
                        exit_code: None,
                    }));
                }
            }
        }
        let now = Instant::now();
        if now >= next_probe {
            let answer = match tokio::time::timeout(PROBE_TIMEOUT, target.probe()).await {
                Ok(answer) => answer,
                Err(_) => ProbeAnswer::NoAnswer(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            let at = Instant::now() - started;
            match answer {
                ProbeAnswer::Status(200) => {
                    return Ok(Ok(GateTimes {
                        port_open: port_open.unwrap_or(at),
                        healthy: at,
                    }));
                }
                ProbeAnswer::Status(status) => {
                    port_open.get_or_insert(at);
                    last = format!("HTTP {status}");
                }
                ProbeAnswer::NoAnswer(why) => last = why,
            }
            next_probe += options.interval;
            if next_probe < Instant::now() {
                next_probe = Instant::now() + options.interval;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(Err(GateFailure::Timeout {
                elapsed: now - started,
                last,
            }));
        }
        let wake = (now + watch_interval).min(next_probe).min(deadline);
        tokio::time::sleep_until(wake).await;
    }
}

/// One HTTP/1.1 GET of `path` on `host:port`; the status or why there was none.
pub(crate) async fn http_get_status(host: &str, port: u16, path: &str) -> ProbeAnswer {
    let connect = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port));
    let mut stream = match connect.await {
        Ok(stream) => stream,
        Err(err) => return ProbeAnswer::NoAnswer(format!("connect: {err}")),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: spark-perf\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if let Err(err) = stream.write_all(request.as_bytes()).await {
        return ProbeAnswer::NoAnswer(format!("send: {err}"));
    }
    // The status line is all we read: `HTTP/1.1 200 OK`.
    let mut buffer = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    while !buffer.contains(&b'\n') && buffer.len() < 1024 {
        match stream.read(&mut chunk).await {
            Ok(0) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(err) => return ProbeAnswer::NoAnswer(format!("read: {err}")),
        }
    }
    let line = String::from_utf8_lossy(&buffer);
    let status = line
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(status) => ProbeAnswer::Status(status),
        None if buffer.is_empty() => {
            ProbeAnswer::NoAnswer("connection closed without an answer".into())
        }
        None => ProbeAnswer::NoAnswer("not an HTTP answer".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted target: each watch pops a state (the last one repeats),
    /// each probe pops an answer (the last one repeats).
    struct Script {
        states: VecDeque<ContainerState>,
        answers: VecDeque<ProbeAnswer>,
        n_probes: usize,
    }

    impl Script {
        fn new(states: Vec<ContainerState>, answers: Vec<ProbeAnswer>) -> Self {
            Script {
                states: states.into(),
                answers: answers.into(),
                n_probes: 0,
            }
        }
    }

    impl GateTarget for Script {
        async fn watch(&mut self) -> Result<ContainerState, crate::OrchestratorError> {
            Ok(if self.states.len() > 1 {
                self.states.pop_front().expect("non-empty")
            } else {
                self.states.front().cloned().expect("non-empty")
            })
        }

        async fn probe(&mut self) -> ProbeAnswer {
            self.n_probes += 1;
            if self.answers.len() > 1 {
                self.answers.pop_front().expect("non-empty")
            } else {
                self.answers.front().cloned().expect("non-empty")
            }
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running { restart_count: 0 }
    }

    fn options() -> HealthOptions {
        HealthOptions {
            interval: Duration::from_secs(3),
            timeout: Duration::from_secs(30 * 60),
            watch_interval: Duration::from_millis(250),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_after_loading_records_port_open_and_healthy() {
        let mut target = Script::new(
            vec![running()],
            vec![
                ProbeAnswer::NoAnswer("refused".into()),
                ProbeAnswer::Status(503),
                ProbeAnswer::Status(503),
                ProbeAnswer::Status(200),
            ],
        );
        let times = gate(&mut target, &options()).await.unwrap().unwrap();
        assert_eq!(times.port_open, Duration::from_secs(3));
        assert_eq!(times.healthy, Duration::from_secs(9));
        assert_eq!(target.n_probes, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_after_exactly_the_timeout() {
        let mut target = Script::new(vec![running()], vec![ProbeAnswer::Status(503)]);
        let failure = gate(&mut target, &options()).await.unwrap().unwrap_err();
        assert_eq!(
            failure,
            GateFailure::Timeout {
                elapsed: Duration::from_secs(30 * 60),
                last: "HTTP 503".into()
            }
        );
        // One probe every 3 s, from t = 0 to t = 30 min inclusive at most.
        assert!(target.n_probes <= 601, "{}", target.n_probes);
    }

    #[tokio::test(start_paused = true)]
    async fn an_exit_is_seen_at_the_next_watch() {
        let mut states = vec![running(); 5];
        states.push(ContainerState::Exited { exit_code: 2 });
        let mut target = Script::new(states, vec![ProbeAnswer::NoAnswer("refused".into())]);
        let started = Instant::now();
        let failure = gate(&mut target, &options()).await.unwrap().unwrap_err();
        assert_eq!(failure, GateFailure::Exited { exit_code: 2 });
        assert!(Instant::now() - started <= Duration::from_millis(1250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_growing_restart_count_is_a_crash_loop() {
        let mut target = Script::new(
            vec![
                running(),
                running(),
                ContainerState::Running { restart_count: 1 },
            ],
            vec![ProbeAnswer::NoAnswer("refused".into())],
        );
        let failure = gate(&mut target, &options()).await.unwrap().unwrap_err();
        assert!(matches!(
            failure,
            GateFailure::Restarted {
                restart_count: 1,
                ..
            }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn removal_ends_the_wait() {
        let mut target = Script::new(
            vec![running(), ContainerState::Removed],
            vec![ProbeAnswer::Status(503)],
        );
        assert_eq!(
            gate(&mut target, &options()).await.unwrap().unwrap_err(),
            GateFailure::Removed
        );
    }

    #[tokio::test]
    async fn probes_a_real_loopback_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            for status in ["503 Service Unavailable", "200 OK"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 1024];
                let n = socket.read(&mut request).await.unwrap();
                assert!(
                    String::from_utf8_lossy(&request[..n]).starts_with("GET /health HTTP/1.1\r\n")
                );
                let response = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                socket.write_all(response.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(
            http_get_status("127.0.0.1", port, "/health").await,
            ProbeAnswer::Status(503)
        );
        assert_eq!(
            http_get_status("127.0.0.1", port, "/health").await,
            ProbeAnswer::Status(200)
        );
        server.await.unwrap();
        assert!(matches!(
            http_get_status("127.0.0.1", port, "/health").await,
            ProbeAnswer::NoAnswer(_)
        ));
    }
}
