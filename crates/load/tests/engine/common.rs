//! Helpers: a spark-sim on its own OS thread and runtime (so the client under
//! test never shares a scheduler with the server it measures), its truth log,
//! and scenario builders.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use spark_load::{Engine, EngineConfig, RunOptions, Scenario};
use spark_results::{Arrival, Endpoint, ScenarioConfig, ScenarioResult};
use spark_sim::{ProfileName, Sim, SimArgs, SimExit};
use tokio_util::sync::CancellationToken;

/// Held by every test for its whole run: the tests measure time on two
/// cores, so they run one at a time (the suite stays short anyway).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A spark-sim serving on 127.0.0.1:0 in a thread of its own.
pub struct TestSim {
    pub url: String,
    pub truth: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Option<SimExit>>>,
}

/// One line of the sim's truth log (the fields the tests read).
#[derive(Debug, Deserialize)]
pub struct Truth {
    pub request_id: String,
    pub first_token_mono_ns: Option<u64>,
    pub token_mono_ns: Vec<u64>,
    pub prompt_tokens: u32,
    pub cached_tokens: u32,
    pub completion_tokens: u32,
    pub outcome: String,
}

/// Starts a sim with the zero profile, a truth log and `configure` applied.
pub fn start(configure: impl FnOnce(&mut SimArgs)) -> TestSim {
    static N: AtomicU32 = AtomicU32::new(0);
    let truth = std::env::temp_dir().join(format!(
        "spark-load-test-{}-{}.jsonl",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let mut args = SimArgs::defaults();
    args.host = "127.0.0.1".to_owned();
    args.port = Some(0);
    args.profile = ProfileName::Zero;
    args.truth_log = Some(truth.clone());
    configure(&mut args);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("sim runtime");
        runtime.block_on(async move {
            let sim = Sim::bind(args).await.expect("bind the sim");
            addr_tx.send(sim.local_addr()).expect("send the address");
            sim.run(async {
                let _ = stop_rx.await;
            })
            .await
            .ok()
        })
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the sim binds");
    TestSim {
        url: format!("http://{addr}"),
        truth,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}

impl TestSim {
    /// Waits until the truth log has at least `n` lines (bounded), then reads it.
    pub fn truth_records(&self, n: usize) -> Vec<Truth> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.truth).unwrap_or_default();
            let complete: Vec<&str> = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .collect();
            if complete.len() >= n || Instant::now() > deadline {
                return complete
                    .iter()
                    .map(|l| serde_json::from_str(l.trim()).expect("truth line"))
                    .collect();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The truth lines of these request ids (`X-Request-Id`), waiting
    /// (bounded) until the sim's writer thread has written them all.
    pub fn truth_for(&self, request_ids: &[&str]) -> std::collections::HashMap<String, Truth> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut found: std::collections::HashMap<String, Truth> = self
                .truth_records(0)
                .into_iter()
                .filter_map(|t| {
                    let id = t
                        .request_id
                        .strip_prefix("chatcmpl-")
                        .or_else(|| t.request_id.strip_prefix("cmpl-"))
                        .unwrap_or(&t.request_id)
                        .to_owned();
                    request_ids.contains(&id.as_str()).then_some((id, t))
                })
                .collect();
            if found.len() == request_ids.len() || Instant::now() > deadline {
                found.shrink_to_fit();
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the sim's thread to end (after a simulated crash).
    pub fn join(mut self) -> Option<SimExit> {
        self.thread.take().and_then(|t| t.join().ok()).flatten()
    }
}

impl Drop for TestSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.truth);
    }
}

/// A closed-loop chat scenario.
pub fn scenario(
    name: &str,
    input_tokens: u32,
    max_tokens: u32,
    requests: u32,
    concurrency: u32,
) -> Scenario {
    Scenario {
        name: name.to_owned(),
        group: name.to_owned(),
        discard: false,
        config: ScenarioConfig {
            endpoint: Endpoint::Chat,
            input_tokens,
            max_tokens,
            temperature: 0.0,
            requests,
            concurrency,
            arrival: Arrival::Closed,
            shared_prefix_tokens: 0,
            exact_output: true,
            duration_s: None,
        },
    }
}

pub async fn connect(sim: &TestSim) -> Engine {
    Engine::connect(EngineConfig::new(sim.url.clone()))
        .await
        .expect("connect to the sim")
}

/// Runs one scenario, keeping its records, bounded in time.
pub async fn run_one(engine: &Engine, scenario: &Scenario, options: &RunOptions) -> ScenarioResult {
    let mut sink = Vec::new();
    let cancel = CancellationToken::new();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        spark_load::run_scenario(engine, scenario, &mut sink, options, &cancel),
    )
    .await
    .expect("the scenario ends in time");
    assert_eq!(
        sink.len(),
        result.requests.len(),
        "the sink saw every record"
    );
    result
}

/// The `q` quantile (nearest rank) of `values`.
pub fn quantile(values: &mut [i64], q: f64) -> i64 {
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}
