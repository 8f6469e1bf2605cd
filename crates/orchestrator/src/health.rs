//! Health gating: wait until the engine's health path answers 200, while
//! watching the container so that a crash is noticed at once.
//!
//! One deadline in one place (the whole wait is bounded by
//! [`HealthOptions::timeout`]). Two clocks tick inside it: the container is
//! inspected every [`HealthOptions::watch_interval`] (250 ms by default, so an
//! exit, a restart or a removal is seen well within 2 s), and the health path
//! is probed every [`HealthOptions::interval`] (3 s, as the reference tool
//! does) while nothing answers, then every [`HealthOptions::answering_interval`]
//! (200 ms) once the engine answers HTTP at all (a 503 while it loads): the
//! startup cost is then within a fast interval of the truth instead of being
//! rounded up to the next 3 s tick. A probe is a plain HTTP/1.1 GET with a
//! 1 s timeout: the orchestrator knows nothing more of the engine's protocol.
//!
//! Anything slow that a caller wants beside the wait (the engine's last log
//! line for a spinner) runs in [`gate_reporting`], concurrently with the gate
//! and never inside its loop, so it cannot delay a watch or a probe.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How to wait for an engine.
#[derive(Debug, Clone)]
pub struct HealthOptions {
    /// Time between two probes of the health path while it does not answer
    /// HTTP (3 s).
    pub interval: Duration,
    /// Time between two probes once the engine answered HTTP (a 503 while it
    /// loads): 200 ms, so that the moment it turns healthy is seen within
    /// 0.25 s. Never longer than `interval`.
    pub answering_interval: Duration,
    /// Give up after this long (30 minutes: a first start downloads the model).
    pub timeout: Duration,
    /// Time between two looks at the container's state (250 ms).
    pub watch_interval: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            interval: Duration::from_secs(3),
            answering_interval: Duration::from_millis(200),
            timeout: Duration::from_secs(30 * 60),
            watch_interval: Duration::from_millis(250),
        }
    }
}

/// How often [`gate_reporting`] asks for the engine's last log line.
pub(crate) const LOG_LINE_INTERVAL: Duration = Duration::from_secs(1);

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
/// Shared (`&self`), so that the log line can be read beside the gate.
pub(crate) trait GateTarget {
    /// The container's state; an error ends the wait.
    async fn watch(&self) -> Result<ContainerState, crate::OrchestratorError>;
    /// One probe of the health path.
    async fn probe(&self) -> ProbeAnswer;
    /// The container's last line of output, if it can be had; may be slow.
    async fn last_line(&self) -> Option<String>;
}

/// The probe timeout: short, so that watching is never held up for long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The gate's outcome: the times, why it gave up, or an error of the daemon.
pub(crate) type GateOutcome = Result<Result<GateTimes, GateFailure>, crate::OrchestratorError>;

/// [`gate`], with the target's last log line handed to `on_line` about once
/// a second. The line is read by a future of its own, polled beside the
/// gate: a slow read (up to its own timeout) never delays a watch or a
/// probe, so the crash watch keeps its 250 ms and the startup times stay
/// exact.
pub(crate) async fn gate_reporting<T: GateTarget>(
    target: &T,
    options: &HealthOptions,
    on_line: impl FnMut(String),
) -> GateOutcome {
    tokio::select! {
        // The gate first: when both are ready, the outcome is not held up.
        biased;
        outcome = gate(target, options) => outcome,
        never = report_lines(target, on_line) => match never {},
    }
}

/// Hands the target's last log line to `on_line` every
/// [`LOG_LINE_INTERVAL`], forever.
async fn report_lines<T: GateTarget>(
    target: &T,
    mut on_line: impl FnMut(String),
) -> std::convert::Infallible {
    let mut tick = tokio::time::interval(LOG_LINE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(line) = target.last_line().await {
            on_line(line);
        }
    }
}

/// Waits until `target` answers 200 or fails. Bounded by `options.timeout`.
pub(crate) async fn gate<T: GateTarget>(target: &T, options: &HealthOptions) -> GateOutcome {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let watch_interval = options.watch_interval.max(Duration::from_millis(10));
    let answering_interval = options
        .answering_interval
        .min(options.interval)
        .max(Duration::from_millis(10));
    // Slow until the engine answers HTTP, then fast.
    let mut interval = options.interval;
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
                    // The engine is up and loading: it turns healthy soon,
                    // and the moment it does is the startup cost.
                    if interval > answering_interval {
                        interval = answering_interval;
                        next_probe = Instant::now();
                    }
                }
                ProbeAnswer::NoAnswer(why) => last = why,
            }
            next_probe += interval;
            if next_probe < Instant::now() {
                next_probe = Instant::now() + interval;
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
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;

    /// A scripted target: each watch pops a state (the last one repeats),
    /// each probe pops an answer (the last one repeats). Reading the last
    /// log line takes `log_delay`.
    struct Script {
        states: RefCell<VecDeque<ContainerState>>,
        answers: RefCell<VecDeque<ProbeAnswer>>,
        n_probes: Cell<usize>,
        log_delay: Duration,
    }

    impl Script {
        fn new(states: Vec<ContainerState>, answers: Vec<ProbeAnswer>) -> Self {
            Script {
                states: RefCell::new(states.into()),
                answers: RefCell::new(answers.into()),
                n_probes: Cell::new(0),
                log_delay: Duration::ZERO,
            }
        }
    }

    fn pop_or_last<T: Clone>(queue: &RefCell<VecDeque<T>>) -> T {
        let mut queue = queue.borrow_mut();
        if queue.len() > 1 {
            queue.pop_front().expect("non-empty")
        } else {
            queue.front().cloned().expect("non-empty")
        }
    }

    impl GateTarget for Script {
        async fn watch(&self) -> Result<ContainerState, crate::OrchestratorError> {
            Ok(pop_or_last(&self.states))
        }

        async fn probe(&self) -> ProbeAnswer {
            self.n_probes.set(self.n_probes.get() + 1);
            pop_or_last(&self.answers)
        }

        async fn last_line(&self) -> Option<String> {
            tokio::time::sleep(self.log_delay).await;
            Some("loading weights".into())
        }
    }

    /// An engine on a timeline from the gate's start: the port refuses until
    /// `open`, then the health path answers 503 until `ready`, then 200.
    struct Timeline {
        started: Instant,
        open: Duration,
        ready: Duration,
        log_delay: Duration,
        n_refused: Cell<usize>,
        n_probes: Cell<usize>,
    }

    impl Timeline {
        fn new(open: Duration, ready: Duration) -> Self {
            Timeline {
                started: Instant::now(),
                open,
                ready,
                log_delay: Duration::ZERO,
                n_refused: Cell::new(0),
                n_probes: Cell::new(0),
            }
        }
    }

    impl GateTarget for Timeline {
        async fn watch(&self) -> Result<ContainerState, crate::OrchestratorError> {
            Ok(running())
        }

        async fn probe(&self) -> ProbeAnswer {
            self.n_probes.set(self.n_probes.get() + 1);
            let now = self.started.elapsed();
            if now < self.open {
                self.n_refused.set(self.n_refused.get() + 1);
                ProbeAnswer::NoAnswer("connect: refused".into())
            } else if now < self.ready {
                ProbeAnswer::Status(503)
            } else {
                ProbeAnswer::Status(200)
            }
        }

        async fn last_line(&self) -> Option<String> {
            tokio::time::sleep(self.log_delay).await;
            Some("loading weights".into())
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running { restart_count: 0 }
    }

    fn options() -> HealthOptions {
        HealthOptions {
            interval: Duration::from_secs(3),
            answering_interval: Duration::from_millis(200),
            timeout: Duration::from_secs(30 * 60),
            watch_interval: Duration::from_millis(250),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn healthy_after_loading_records_port_open_and_healthy() {
        let target = Script::new(
            vec![running()],
            vec![
                ProbeAnswer::NoAnswer("refused".into()),
                ProbeAnswer::Status(503),
                ProbeAnswer::Status(503),
                ProbeAnswer::Status(200),
            ],
        );
        let times = gate(&target, &options()).await.unwrap().unwrap();
        // Refused at 0 s, 503 at 3 s, then every 200 ms: 503, 200.
        assert_eq!(times.port_open, Duration::from_secs(3));
        assert_eq!(times.healthy, Duration::from_millis(3400));
        assert_eq!(target.n_probes.get(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn an_answering_engine_is_probed_fast_so_healthy_is_within_a_quarter_second() {
        // compose/sim.yml's case: the port opens at 2 s, the engine is
        // healthy at 4.3 s. At a 3 s cadence throughout, "healthy" read 6 s.
        let ready = Duration::from_millis(4300);
        let target = Timeline::new(Duration::from_secs(2), ready);
        let times = gate(&target, &options()).await.unwrap().unwrap();
        assert!(times.healthy >= ready, "{times:?}");
        assert!(
            times.healthy - ready <= Duration::from_millis(250),
            "{times:?}"
        );
        assert_eq!(times.port_open, Duration::from_secs(3));
        // While the port is closed, the 3 s cadence holds: one probe at 0 s.
        assert_eq!(target.n_refused.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_log_line_delays_neither_the_crash_watch_nor_healthy() {
        // Reading the log line takes the whole of its 1 s timeout.
        let mut states = vec![running(); 5];
        states.push(ContainerState::Exited { exit_code: 2 });
        let mut target = Script::new(states, vec![ProbeAnswer::NoAnswer("refused".into())]);
        target.log_delay = Duration::from_secs(1);
        let started = Instant::now();
        let failure = gate_reporting(&target, &options(), |_| {})
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(failure, GateFailure::Exited { exit_code: 2 });
        // The sixth watch, 250 ms apart: exactly 1.25 s.
        assert_eq!(Instant::now() - started, Duration::from_millis(1250));

        let ready = Duration::from_millis(4300);
        let mut target = Timeline::new(Duration::from_secs(2), ready);
        target.log_delay = Duration::from_secs(1);
        let mut lines = Vec::new();
        let times = gate_reporting(&target, &options(), |line| lines.push(line))
            .await
            .unwrap()
            .unwrap();
        let alone = gate(&Timeline::new(Duration::from_secs(2), ready), &options())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(times, alone);
        // A line every second or so (each read takes 1 s), beside the gate.
        assert!(lines.len() >= 2, "{lines:?}");
        assert_eq!(lines[0], "loading weights");
    }

    #[tokio::test]
    async fn a_real_engine_turning_healthy_is_seen_within_a_fast_interval() {
        // A loopback engine: 503 until 1.2 s after it started, then 200.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let ready = Duration::from_millis(1200);
        let started = Instant::now();
        let server = tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let status = if started.elapsed() < ready {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let response = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        struct Loopback(u16);
        impl GateTarget for Loopback {
            async fn watch(&self) -> Result<ContainerState, crate::OrchestratorError> {
                Ok(running())
            }
            async fn probe(&self) -> ProbeAnswer {
                http_get_status("127.0.0.1", self.0, "/health").await
            }
            async fn last_line(&self) -> Option<String> {
                None
            }
        }
        let times = gate(&Loopback(port), &options()).await.unwrap().unwrap();
        let healthy = started.elapsed();
        server.abort();
        assert!(healthy >= ready, "{healthy:?}");
        // Tight would be 0.25 s; a busy two-core box gets a generous bound,
        // still far below the 3 s interval that rounded it up before.
        assert!(healthy - ready < Duration::from_secs(1), "{healthy:?}");
        assert!(times.healthy <= healthy);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_after_exactly_the_timeout() {
        let target = Script::new(vec![running()], vec![ProbeAnswer::Status(503)]);
        let failure = gate(&target, &options()).await.unwrap().unwrap_err();
        assert_eq!(
            failure,
            GateFailure::Timeout {
                elapsed: Duration::from_secs(30 * 60),
                last: "HTTP 503".into()
            }
        );
        // An answering engine is probed every 200 ms: at most 5 a second.
        assert!(target.n_probes.get() <= 9001, "{}", target.n_probes.get());
    }

    #[tokio::test(start_paused = true)]
    async fn an_exit_is_seen_at_the_next_watch() {
        let mut states = vec![running(); 5];
        states.push(ContainerState::Exited { exit_code: 2 });
        let target = Script::new(states, vec![ProbeAnswer::NoAnswer("refused".into())]);
        let started = Instant::now();
        let failure = gate(&target, &options()).await.unwrap().unwrap_err();
        assert_eq!(failure, GateFailure::Exited { exit_code: 2 });
        assert!(Instant::now() - started <= Duration::from_millis(1250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_growing_restart_count_is_a_crash_loop() {
        let target = Script::new(
            vec![
                running(),
                running(),
                ContainerState::Running { restart_count: 1 },
            ],
            vec![ProbeAnswer::NoAnswer("refused".into())],
        );
        let failure = gate(&target, &options()).await.unwrap().unwrap_err();
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
        let target = Script::new(
            vec![running(), ContainerState::Removed],
            vec![ProbeAnswer::Status(503)],
        );
        assert_eq!(
            gate(&target, &options()).await.unwrap().unwrap_err(),
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
