//! Running scenarios: workers, arrivals, the collector, early stops.
//!
//! A scenario runs `min(concurrency, requests)` worker tasks. Workers take
//! the next request index from a shared atomic counter (closed loop) or the
//! next (index, due time) from the one arrival generator, locked once per
//! request (open loop: arrivals are generated lazily, so memory does not grow
//! with the requests), wait for its arrival time, send it, and hand the
//! finished record to the collector over a channel: one message per
//! request, nothing per token. Each worker keeps its own inter-token
//! histogram and returns it when it ends, so the per-chunk path takes no
//! lock. The worker that ends the K-th consecutive failure (in the order
//! requests end: a lock once per request) stops the scenario. The
//! collector (the scenario's own task) takes the records in batches, at
//! most [`COLLECT_PERIOD`] after they ended, aggregates them, writes them
//! to the sink and flushes it once per batch: a wake-up of the collector's
//! thread and a write per request cost the client core more than a
//! request's own parsing at tens of thousands of tokens per second. Every
//! loop is bounded by the request count; every wait by a timeout or the
//! cancellation token.

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use spark_results::{
    Arrival, EngineCounters, RequestRecord, RunResults, SCHEMA_VERSION, ScenarioConfig,
    ScenarioResult, SweepLevel,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

mod arrivals;
mod capacity;
mod collect;
mod streak;

use arrivals::{Dispatch, arrival_schedule};
use collect::Collector;
use streak::Streak;

use crate::direct::ConnSlot;
use crate::engine::{BodyParams, CounterRead, Engine};
use crate::histogram::LogHistogram;
use crate::prompt::{self, PromptShape};
use crate::request::{self, RequestSpec};
use crate::scenario::Scenario;
use crate::sink::RecordSink;
use crate::slo::Slo;
use crate::sweep;
pub use capacity::CapacitySearch;

/// How scenarios are run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop a scenario after this many consecutive failed requests.
    pub max_consecutive_failures: u32,
    /// Keep every record in [`ScenarioResult::requests`] (memory grows with
    /// the requests; the sink gets them either way).
    pub keep_records: bool,
    /// Seed of the Poisson arrivals.
    pub seed: u64,
    /// Judge every scenario against these objectives (goodput, share met)
    /// and find the largest sweep level within them.
    pub slo: Option<Slo>,
    /// With an SLO: also search the largest Poisson rate within it.
    pub capacity: Option<CapacitySearch>,
    /// Run the workers on this many `current_thread` runtimes, each on a
    /// thread of its own, the connections spread over them round-robin;
    /// `None` (or 0): as tasks of the caller's runtime.
    pub client_cores: Option<u32>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            max_consecutive_failures: 10,
            keep_records: true,
            seed: 0,
            slo: None,
            capacity: None,
            client_cores: None,
        }
    }
}

/// Runs `scenarios` in order against `engine`. Stops early, keeping what was
/// measured, on cancellation or when a scenario stopped because the engine
/// kept failing.
pub async fn run(
    engine: &Engine,
    scenarios: &[Scenario],
    sink: &mut dyn RecordSink,
    options: &RunOptions,
    cancel: &CancellationToken,
) -> RunResults {
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut results: Vec<ScenarioResult> = Vec::with_capacity(scenarios.len());
    let mut stopped = None;
    let mut sweep_saturated = false;
    for scenario in scenarios {
        if cancel.is_cancelled() {
            stopped = Some("cancelled".to_owned());
            break;
        }
        if sweep_saturated && scenario.group == sweep::GROUP {
            tracing::info!(scenario = %scenario.name, "skipped: the sweep saturated");
            continue;
        }
        tracing::info!(scenario = %scenario.name, "running");
        sink.scenario_started(&scenario.name);
        let result = run_scenario(engine, scenario, sink, options, cancel).await;
        sink.scenario_ended(&scenario.name);
        let why = result.stopped.clone();
        results.push(result);
        if scenario.group == sweep::GROUP {
            sweep_saturated = sweep::mark_saturation(&mut results);
        }
        if let Some(why) = why {
            stopped = Some(format!("scenario {} stopped: {why}", scenario.name));
            break;
        }
    }
    let mut capacity = options
        .slo
        .as_ref()
        .map(|_| sweep::capacity_of_sweep(&results));
    if let (Some(found), None) = (&mut capacity, &stopped)
        && options.capacity.is_some()
    {
        capacity::search(engine, &results, sink, options, cancel, found).await;
    }
    RunResults {
        schema_version: SCHEMA_VERSION,
        tool: format!("spark-perf {}", env!("CARGO_PKG_VERSION")),
        started_unix_ms,
        engine: engine.info(),
        scenarios: results,
        stopped,
        capacity,
    }
}

/// Runs one scenario. Calibrates its prompt, clamps it to the context
/// length, sends its requests and returns its records and aggregates.
pub async fn run_scenario(
    engine: &Engine,
    scenario: &Scenario,
    sink: &mut dyn RecordSink,
    options: &RunOptions,
    cancel: &CancellationToken,
) -> ScenarioResult {
    let mut config = scenario.config.clone();
    let mut notes = Vec::new();
    clamp_to_context(&mut config, engine.info().max_model_len, &mut notes);
    let calibrated = match engine
        .calibrated(
            config.endpoint,
            config.input_tokens,
            config.shared_prefix_tokens,
        )
        .await
    {
        Ok(calibrated) => calibrated,
        Err(why) => {
            // Never a wrong prompt under the scenario's name: not run, and why.
            tracing::warn!(scenario = %scenario.name, "not run: {why}");
            return ScenarioResult {
                name: scenario.name.clone(),
                config,
                discarded: scenario.discard,
                notes,
                stopped: None,
                not_run: Some(why),
                aggregate: Collector::default().finish(&LogHistogram::default()),
                engine_counters: None,
                sweep: None,
                slo: None,
                requests: Vec::new(),
            };
        }
    };
    tracing::debug!(scenario = %scenario.name, tokens = calibrated.tokens, shape = ?calibrated.shape, "calibrated prompt");
    if let Some(note) = &calibrated.note {
        notes.push(note.clone());
    }
    let honoured = engine.info().ignore_eos_honoured;
    if config.exact_output && honoured == Some(false) {
        notes.push("exact output lengths asked for, but the engine does not honour ignore_eos/min_tokens: short outputs are flagged".to_owned());
    }

    let counters_before = engine.read_counters().await;
    let stop = cancel.child_token();
    let start = Instant::now();
    let dispatch = match arrival_schedule(&config, options.seed) {
        Some(arrivals) => Dispatch::Open(Mutex::new((0, arrivals))),
        None => Dispatch::Closed(AtomicU32::new(0)),
    };
    let shared = Arc::new(WorkerShared {
        engine: engine.clone(),
        scenario: scenario.name.clone(),
        shape: calibrated.shape.clone(),
        requested_input_tokens: config.input_tokens,
        params: BodyParams {
            max_tokens: config.max_tokens,
            temperature: config.temperature,
            stream: true,
            exact_output: config.exact_output,
        },
        endpoint: config.endpoint,
        n_requests: config.requests,
        dispatch,
        start,
        stop: stop.clone(),
        streak: Mutex::new(Streak::default()),
        max_consecutive_failures: options.max_consecutive_failures,
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
    let n_workers = config.concurrency.min(config.requests).max(1);
    let workers = spawn_workers(&shared, &tx, n_workers, options.client_cores);
    drop(tx);

    let mut collector = Collector::new(
        matches!(config.arrival, Arrival::Poisson { .. }),
        options.slo.as_ref(),
    );
    let mut records = Vec::new();
    let mut sink_error_reported = false;
    let mut sink_error = |err: std::io::Error, notes: &mut Vec<String>| {
        if !sink_error_reported {
            sink_error_reported = true;
            tracing::error!("cannot write a request record: {err}");
            notes.push(format!(
                "records could not be written as they were measured: {err}"
            ));
        }
    };
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    // Ends when every worker has ended (each is bounded by the request count).
    while rx.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        for record in batch.drain(..) {
            collector.add(&record);
            if !scenario.discard
                && let Err(err) = sink.write(&record)
            {
                sink_error(err, &mut notes);
            }
            if options.keep_records {
                records.push(record);
            }
        }
        if !scenario.discard
            && let Err(err) = sink.flush()
        {
            sink_error(err, &mut notes);
        }
        // Let the next records gather; the workers run meanwhile.
        tokio::time::sleep(COLLECT_PERIOD).await;
    }
    let mut stopped = shared
        .streak
        .lock()
        .map_or(None, |streak| streak.why().map(str::to_owned));
    if let Some(why) = &stopped {
        tracing::warn!(scenario = %scenario.name, "{why}");
    }
    let mut itl = LogHistogram::default();
    match workers {
        Workers::Tasks(handles) => {
            for handle in handles {
                match handle.await {
                    Ok(worker_itl) => itl.merge(&worker_itl),
                    Err(err) => notes.push(format!("a worker ended abnormally: {err}")),
                }
            }
        }
        Workers::Threads(threads) => {
            for thread in threads {
                match thread.await {
                    Ok(Ok(thread_itl)) => itl.merge(&thread_itl),
                    Ok(Err(why)) => notes.push(why),
                    Err(_) => notes.push("a client thread ended abnormally".to_owned()),
                }
            }
        }
    }
    if stopped.is_none() && cancel.is_cancelled() {
        stopped = Some("cancelled".to_owned());
    }
    let engine_counters = engine_counters(counters_before, engine.read_counters().await);
    if !engine.sends_stream_options() {
        notes.push("stream_options not sent (the engine rejects it): output tokens are counted from chunks".to_owned());
    }
    let aggregate = collector.finish(&itl);
    let slo = collector.slo_result(&aggregate);
    let sweep = (scenario.group == sweep::GROUP).then(|| {
        let w = collector.steady_window();
        SweepLevel {
            level: config.concurrency,
            steady_window_start_s: w.start_s,
            steady_window_end_s: w.end_s,
            steady_n_ok: w.n_ok,
            steady_request_throughput_rps: w.request_throughput_rps,
            steady_output_throughput_tok_s: w.output_throughput_tok_s,
            saturated_at: None,
        }
    });
    ScenarioResult {
        name: scenario.name.clone(),
        config,
        discarded: scenario.discard,
        notes,
        stopped,
        not_run: None,
        aggregate,
        engine_counters,
        sweep,
        slo,
        requests: records,
    }
}

/// The engine's counters before and after a scenario, from the two reads;
/// `None` when the engine serves no metrics.
fn engine_counters(before: CounterRead, after: CounterRead) -> Option<EngineCounters> {
    let mut counters = EngineCounters::default();
    let mut seen = false;
    for (read, into) in [(before, &mut counters.before), (after, &mut counters.after)] {
        match read {
            Ok(Some((path, values))) => {
                seen = true;
                counters.path = path.to_owned();
                *into = values;
            }
            Ok(None) => {}
            Err(err) => {
                seen = true;
                counters.error = Some(err);
            }
        }
    }
    seen.then_some(counters)
}

/// Clamps `max_tokens` and then the prompt so that both fit `max_model_len`,
/// with a note for each change. `None` or `Some(0)` is an unknown context:
/// nothing is clamped (0 is what some servers report when they do not know).
fn clamp_to_context(
    config: &mut ScenarioConfig,
    max_model_len: Option<u32>,
    notes: &mut Vec<String>,
) {
    let Some(max_len) = max_model_len.filter(|&n| n > 0) else {
        return;
    };
    if config.max_tokens >= max_len {
        let clamped = max_len.saturating_sub(1).max(1);
        notes.push(format!(
            "max_tokens {} clamped to {clamped}: the engine's max_model_len is {max_len}",
            config.max_tokens
        ));
        config.max_tokens = clamped;
    }
    let room = max_len.saturating_sub(config.max_tokens);
    if config.input_tokens > room {
        notes.push(format!(
            "input of {} tokens clamped to {room}: max_model_len {max_len} − max_tokens {}",
            config.input_tokens, config.max_tokens
        ));
        config.input_tokens = room;
        config.shared_prefix_tokens = config.shared_prefix_tokens.min(room);
    }
}

/// What every worker of a scenario reads.
#[derive(Debug)]
struct WorkerShared {
    engine: Engine,
    scenario: String,
    shape: PromptShape,
    requested_input_tokens: u32,
    params: BodyParams,
    endpoint: spark_results::Endpoint,
    n_requests: u32,
    dispatch: Dispatch,
    start: Instant,
    stop: CancellationToken,
    /// Consecutive failures, in the order requests end.
    streak: Mutex<Streak>,
    max_consecutive_failures: u32,
}

/// How long the collector lets records gather between batches: the most a
/// record waits before it reaches the sink and the aggregates.
const COLLECT_PERIOD: std::time::Duration = std::time::Duration::from_millis(5);

/// The most records the collector takes at once.
const RECORD_BATCH: usize = 1024;

impl WorkerShared {
    /// Counts `record` into the streak of consecutive failures; the K-th
    /// stops the scenario.
    fn observe(&self, record: &RequestRecord) {
        if let Ok(mut streak) = self.streak.lock() {
            streak.observe(record, self.max_consecutive_failures, &self.stop);
        }
    }
}

/// A scenario's running workers.
enum Workers {
    /// Tasks of the caller's runtime.
    Tasks(Vec<tokio::task::JoinHandle<LogHistogram>>),
    /// One `current_thread` runtime per client core: each thread's merged
    /// histogram, or why it failed.
    Threads(Vec<tokio::sync::oneshot::Receiver<Result<LogHistogram, String>>>),
}

/// Starts `n_workers` workers: as tasks of the caller's runtime, or spread
/// round-robin over `client_cores` threads that each run a `current_thread`
/// runtime (a worker's connection is polled by the thread that reads it, and
/// the threads share nothing but the dispatch counter and the record channel).
fn spawn_workers(
    shared: &Arc<WorkerShared>,
    tx: &mpsc::UnboundedSender<RequestRecord>,
    n_workers: u32,
    client_cores: Option<u32>,
) -> Workers {
    let n_threads = client_cores.unwrap_or(0).min(n_workers);
    if n_threads == 0 {
        let handles = (0..n_workers)
            .map(|_| tokio::spawn(worker(shared.clone(), tx.clone())))
            .collect();
        return Workers::Tasks(handles);
    }
    let mut threads = Vec::with_capacity(n_threads as usize);
    for thread_idx in 0..n_threads {
        let n_mine = (thread_idx..n_workers).step_by(n_threads as usize).count();
        let shared = shared.clone();
        let tx = tx.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("spark-load-{thread_idx}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let result = match runtime {
                    Ok(runtime) => runtime.block_on(run_workers(shared, tx, n_mine)),
                    Err(err) => Err(format!("cannot start a client runtime: {err}")),
                };
                let _ = done_tx.send(result);
            });
        if let Err(err) = spawned {
            // Its workers never run; the others still do the requests.
            let (failed_tx, failed_rx) = tokio::sync::oneshot::channel();
            let _ = failed_tx.send(Err(format!("cannot start a client thread: {err}")));
            threads.push(failed_rx);
            continue;
        }
        threads.push(done_rx);
    }
    Workers::Threads(threads)
}

/// One client thread's workers, as tasks of its runtime; their merged
/// inter-token histogram, or how many ended abnormally.
async fn run_workers(
    shared: Arc<WorkerShared>,
    tx: mpsc::UnboundedSender<RequestRecord>,
    n_workers: usize,
) -> Result<LogHistogram, String> {
    let handles: Vec<_> = (0..n_workers)
        .map(|_| tokio::spawn(worker(shared.clone(), tx.clone())))
        .collect();
    drop(tx);
    let mut itl = LogHistogram::default();
    let mut n_abnormal = 0;
    for handle in handles {
        match handle.await {
            Ok(worker_itl) => itl.merge(&worker_itl),
            Err(_) => n_abnormal += 1,
        }
    }
    if n_abnormal > 0 {
        return Err(format!("{n_abnormal} workers ended abnormally"));
    }
    Ok(itl)
}

/// Sends requests until there are none left or the scenario stops; returns
/// its inter-token histogram.
async fn worker(
    shared: Arc<WorkerShared>,
    tx: mpsc::UnboundedSender<RequestRecord>,
) -> LogHistogram {
    let mut itl = LogHistogram::default();
    // The worker's own keep-alive connection, reused request after request.
    let mut conn = ConnSlot::default();
    loop {
        if shared.stop.is_cancelled() {
            break;
        }
        let Some((request_idx, due)) = shared.dispatch.next(shared.n_requests) else {
            break;
        };
        if let Some(due) = due {
            tokio::select! {
                () = tokio::time::sleep_until((shared.start + due).into()) => {}
                () = shared.stop.cancelled() => break,
            }
        }
        let id = shared.engine.next_request_id();
        let text = prompt::render(&shared.shape, id);
        let spec = |body| RequestSpec {
            scenario: shared.scenario.clone(),
            request_idx,
            request_id: format!("spark-{id:012}"),
            url_endpoint: shared.endpoint,
            body,
            requested_input_tokens: shared.requested_input_tokens,
            max_tokens: shared.params.max_tokens,
            exact_output: shared.params.exact_output,
            scheduled_ms: due.map(|d| d.as_secs_f64() * 1e3),
        };
        let body = shared.engine.body(shared.endpoint, &text, &shared.params);
        let mut record = request::execute(
            &shared.engine,
            spec(body),
            shared.start,
            &mut itl,
            &shared.stop,
            &mut conn,
        )
        .await;
        if shared.engine.stream_options_rejected(&record) {
            // Once, without the field the engine rejected (the engine now
            // leaves it out of every body).
            let body = shared.engine.body(shared.endpoint, &text, &shared.params);
            record = request::execute(
                &shared.engine,
                spec(body),
                shared.start,
                &mut itl,
                &shared.stop,
                &mut conn,
            )
            .await;
        }
        if let Some(scheduled) = record.scheduled_ms {
            record.lateness_ms = Some((record.start_ms - scheduled).max(0.0));
        }
        shared.observe(&record);
        if tx.send(record).is_err() {
            break;
        }
    }
    itl
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_context_of_zero_is_unknown_and_clamps_nothing() {
        let base = crate::scenario::builtin()
            .into_iter()
            .find(|s| s.name == "long-context-32k")
            .expect("built in")
            .config;
        for unknown in [None, Some(0)] {
            let mut config = base.clone();
            let mut notes = Vec::new();
            clamp_to_context(&mut config, unknown, &mut notes);
            assert_eq!(config, base, "{unknown:?}");
            assert!(notes.is_empty(), "{notes:?}");
        }
        // The smallest known contexts clamp without underflow.
        for max_len in [1, 2, 100] {
            let mut config = base.clone();
            let mut notes = Vec::new();
            clamp_to_context(&mut config, Some(max_len), &mut notes);
            assert!(config.input_tokens + config.max_tokens <= max_len.max(1));
            assert!(config.max_tokens >= 1);
            assert!(!notes.is_empty());
        }
    }
}
