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
//! lock. The collector (the scenario's own task) aggregates, writes the
//! record to the sink, and stops the scenario after K consecutive failures.
//! Every loop is bounded by the request count; every wait by a timeout or
//! the cancellation token.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spark_results::{
    Arrival, FailureClass, OpenLoopAggregate, RequestRecord, RunResults, SCHEMA_VERSION,
    ScenarioAggregate, ScenarioConfig, ScenarioResult,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::engine::{BodyParams, Engine};
use crate::histogram::LogHistogram;
use crate::prompt::{self, PromptShape};
use crate::request::{self, RequestSpec};
use crate::scenario::Scenario;
use crate::sink::RecordSink;

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
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            max_consecutive_failures: 10,
            keep_records: true,
            seed: 0,
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
    let mut results = Vec::with_capacity(scenarios.len());
    let mut stopped = None;
    for scenario in scenarios {
        if cancel.is_cancelled() {
            stopped = Some("cancelled".to_owned());
            break;
        }
        tracing::info!(scenario = %scenario.name, "running");
        let result = run_scenario(engine, scenario, sink, options, cancel).await;
        let why = result.stopped.clone();
        results.push(result);
        if let Some(why) = why {
            stopped = Some(format!("scenario {} stopped: {why}", scenario.name));
            break;
        }
    }
    RunResults {
        schema_version: SCHEMA_VERSION,
        tool: format!("spark-perf {}", env!("CARGO_PKG_VERSION")),
        started_unix_ms,
        engine: engine.info(),
        scenarios: results,
        stopped,
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
    });
    let (tx, mut rx) = mpsc::unbounded_channel::<RequestRecord>();
    let n_workers = config.concurrency.min(config.requests).max(1);
    let mut workers = Vec::with_capacity(n_workers as usize);
    for _ in 0..n_workers {
        let shared = shared.clone();
        let tx = tx.clone();
        workers.push(tokio::spawn(worker(shared, tx)));
    }
    drop(tx);

    let mut collector = Collector {
        open_loop: matches!(config.arrival, Arrival::Poisson { .. })
            .then(OpenLoopCollector::default),
        ..Collector::default()
    };
    let mut records = Vec::new();
    let mut consecutive_failures = 0u32;
    let mut stopped = None;
    let mut sink_error_reported = false;
    // Ends when every worker has ended (each is bounded by the request count).
    while let Some(record) = rx.recv().await {
        collector.add(&record);
        match &record.failure {
            None => consecutive_failures = 0,
            Some(f) if f.class == FailureClass::Cancelled => {}
            Some(f) => {
                consecutive_failures += 1;
                if consecutive_failures >= options.max_consecutive_failures && stopped.is_none() {
                    let why = format!(
                        "{consecutive_failures} consecutive failures, the engine looks gone; last: {}: {}",
                        f.class.as_str(),
                        f.message
                    );
                    tracing::warn!(scenario = %scenario.name, "{why}");
                    stopped = Some(why);
                    stop.cancel();
                }
            }
        }
        if !scenario.discard
            && let Err(err) = sink.write(&record)
            && !sink_error_reported
        {
            sink_error_reported = true;
            tracing::error!("cannot write a request record: {err}");
            notes.push(format!(
                "records could not be written as they were measured: {err}"
            ));
        }
        if options.keep_records {
            records.push(record);
        }
    }
    let mut itl = LogHistogram::default();
    for handle in workers {
        match handle.await {
            Ok(worker_itl) => itl.merge(&worker_itl),
            Err(err) => notes.push(format!("a worker ended abnormally: {err}")),
        }
    }
    if stopped.is_none() && cancel.is_cancelled() {
        stopped = Some("cancelled".to_owned());
    }
    if !engine.sends_stream_options() {
        notes.push("stream_options not sent (the engine rejects it): output tokens are counted from chunks".to_owned());
    }
    ScenarioResult {
        name: scenario.name.clone(),
        config,
        discarded: scenario.discard,
        notes,
        stopped,
        not_run: None,
        aggregate: collector.finish(&itl),
        requests: records,
    }
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
}

/// Sends requests until there are none left or the scenario stops; returns
/// its inter-token histogram.
async fn worker(
    shared: Arc<WorkerShared>,
    tx: mpsc::UnboundedSender<RequestRecord>,
) -> LogHistogram {
    let mut itl = LogHistogram::default();
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
            )
            .await;
        }
        if let Some(scheduled) = record.scheduled_ms {
            record.lateness_ms = Some((record.start_ms - scheduled).max(0.0));
        }
        if tx.send(record).is_err() {
            break;
        }
    }
    itl
}

/// Where the next request comes from.
#[derive(Debug)]
enum Dispatch {
    /// Closed loop: the next index.
    Closed(AtomicU32),
    /// Open loop: the next index and the arrival generator.
    Open(Mutex<(u32, PoissonArrivals)>),
}

impl Dispatch {
    /// The next request's index and, in open loop, when it is due; `None`
    /// when the scenario has sent them all.
    fn next(&self, n_requests: u32) -> Option<(u32, Option<Duration>)> {
        match self {
            Dispatch::Closed(next_idx) => {
                let idx = next_idx.fetch_add(1, Ordering::Relaxed);
                (idx < n_requests).then_some((idx, None))
            }
            Dispatch::Open(state) => {
                let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
                let (next_idx, arrivals) = &mut *guard;
                let due = arrivals.next()?;
                let idx = *next_idx;
                *next_idx += 1;
                Some((idx, Some(due)))
            }
        }
    }
}

/// Poisson arrival times (exponential gaps) from the scenario's start,
/// generated one at a time: at most `n_left` of them, and none after
/// `until` (a time-sized open loop).
#[derive(Debug, Clone)]
pub(crate) struct PoissonArrivals {
    state: u64,
    at_s: f64,
    rate_rps: f64,
    n_left: u32,
    until_s: Option<f64>,
}

impl Iterator for PoissonArrivals {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.n_left == 0 || self.until_s.is_some_and(|until| self.at_s > until) {
            return None;
        }
        self.n_left -= 1;
        let due = Duration::from_secs_f64(self.at_s);
        // Uniform in (0, 1] from splitmix64, then an exponential gap.
        let u = ((splitmix64(&mut self.state) >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        self.at_s += -u.ln() / self.rate_rps;
        Some(due)
    }
}

/// The arrivals of an open-loop scenario, or `None` for a closed loop.
fn arrival_schedule(config: &ScenarioConfig, seed: u64) -> Option<PoissonArrivals> {
    let Arrival::Poisson { rate_rps } = config.arrival else {
        return None;
    };
    Some(PoissonArrivals {
        state: seed ^ 0x5eed_5eed_5eed_5eed,
        at_s: 0.0,
        rate_rps,
        n_left: config.requests,
        until_s: config.duration_s,
    })
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Streaming aggregates of a scenario (memory independent of the requests).
#[derive(Debug, Default)]
struct Collector {
    n_requests: u32,
    n_ok: u32,
    failures_by_class: std::collections::BTreeMap<String, u32>,
    n_short: u32,
    n_estimated: u32,
    first_start_ms: Option<f64>,
    last_end_ms: Option<f64>,
    input_tokens: u64,
    /// Successful requests without `usage.prompt_tokens`: the input total is unknown.
    n_ok_without_input: u32,
    output_tokens: u64,
    ttft: LogHistogram,
    ttfo: LogHistogram,
    reasoning_tokens: LogHistogram,
    tpot: LogHistogram,
    e2e: LogHistogram,
    prompt_rate: LogHistogram,
    decode_rate: LogHistogram,
    output_rate: LogHistogram,
    open_loop: Option<OpenLoopCollector>,
}

/// Width of the buckets of request ends that the steady window is cut from.
const STEADY_BUCKET_MS: f64 = 100.0;

/// Open-loop aggregates; memory grows with the scenario's duration (one
/// bucket per 100 ms), never with its requests.
#[derive(Debug, Default)]
struct OpenLoopCollector {
    lateness: LogHistogram,
    ttft_from_scheduled: LogHistogram,
    e2e_from_scheduled: LogHistogram,
    last_scheduled_ms: f64,
    /// Per 100 ms of end time: successful requests and their output tokens.
    ends: Vec<(u32, u64)>,
}

impl OpenLoopCollector {
    fn add(&mut self, r: &RequestRecord) {
        let (Some(scheduled), Some(lateness)) = (r.scheduled_ms, r.lateness_ms) else {
            return;
        };
        self.last_scheduled_ms = self.last_scheduled_ms.max(scheduled);
        self.lateness.record(ns(lateness));
        if !r.is_ok() {
            return;
        }
        if let Some(ttft) = r.ttft_ms {
            self.ttft_from_scheduled.record(ns(lateness + ttft));
        }
        self.e2e_from_scheduled.record(ns(lateness + r.e2e_ms));
        let bucket = ((r.start_ms + r.e2e_ms) / STEADY_BUCKET_MS).max(0.0) as usize;
        // Bounded: a scenario's end times are bounded by its request limits.
        if self.ends.len() <= bucket {
            self.ends.resize(bucket + 1, (0, 0));
        }
        self.ends[bucket].0 += 1;
        self.ends[bucket].1 += u64::from(r.output_tokens.unwrap_or(0));
    }

    /// The steady window is [10 % of the arrival span, the last arrival]:
    /// ramp-up (an empty engine filling) and drain (no new arrivals) are
    /// left out. Requests count by the 100 ms bucket their end falls in.
    fn finish(self) -> OpenLoopAggregate {
        let end_s = self.last_scheduled_ms / 1e3;
        let start_s = end_s * 0.1;
        let first = (start_s * 1e3 / STEADY_BUCKET_MS).ceil() as usize;
        let last = (end_s * 1e3 / STEADY_BUCKET_MS).floor() as usize;
        let (n_ok, tokens) = self
            .ends
            .iter()
            .enumerate()
            .filter(|(idx, _)| (first..last).contains(idx))
            .fold((0u32, 0u64), |(n, t), (_, &(bn, bt))| (n + bn, t + bt));
        let window_s = (last.saturating_sub(first)) as f64 * STEADY_BUCKET_MS / 1e3;
        let per_s = |x: f64| (window_s > 0.0).then(|| x / window_s);
        OpenLoopAggregate {
            lateness_ms: self.lateness.distribution(1e6),
            ttft_from_scheduled_ms: self.ttft_from_scheduled.distribution(1e6),
            e2e_from_scheduled_ms: self.e2e_from_scheduled.distribution(1e6),
            steady_window_start_s: first as f64 * STEADY_BUCKET_MS / 1e3,
            steady_window_end_s: (last.max(first)) as f64 * STEADY_BUCKET_MS / 1e3,
            steady_n_ok: n_ok,
            steady_request_throughput_rps: per_s(f64::from(n_ok)),
            steady_output_throughput_tok_s: per_s(tokens as f64),
        }
    }
}

/// ms → ns for the histograms.
fn ns(ms: f64) -> u64 {
    (ms * 1e6).round().max(0.0) as u64
}

/// tok/s → milli-tok/s for the histograms.
fn milli(rate: f64) -> u64 {
    (rate * 1e3).round().max(0.0) as u64
}

impl Collector {
    fn add(&mut self, r: &RequestRecord) {
        if let Some(open_loop) = &mut self.open_loop {
            open_loop.add(r);
        }
        self.n_requests += 1;
        let end_ms = r.start_ms + r.e2e_ms;
        self.first_start_ms = Some(
            self.first_start_ms
                .map_or(r.start_ms, |s| s.min(r.start_ms)),
        );
        self.last_end_ms = Some(self.last_end_ms.map_or(end_ms, |e| e.max(end_ms)));
        if let Some(f) = &r.failure {
            *self
                .failures_by_class
                .entry(f.class.as_str().to_owned())
                .or_default() += 1;
            return;
        }
        self.n_ok += 1;
        self.n_short += u32::from(r.short_output);
        self.n_estimated += u32::from(r.output_tokens_estimated);
        self.input_tokens += u64::from(r.input_tokens.unwrap_or(0));
        self.n_ok_without_input += u32::from(r.input_tokens.is_none());
        self.output_tokens += u64::from(r.output_tokens.unwrap_or(0));
        if let Some(v) = r.ttft_ms {
            self.ttft.record(ns(v));
        }
        if let Some(v) = r.tpot_ms {
            self.tpot.record(ns(v));
        }
        if let Some(v) = r.ttfo_ms {
            self.ttfo.record(ns(v));
        }
        if let Some(n) = r.reasoning_tokens {
            self.reasoning_tokens.record(u64::from(n));
        }
        self.e2e.record(ns(r.e2e_ms));
        if let Some(v) = r.prompt_tok_s {
            self.prompt_rate.record(milli(v));
        }
        if let Some(v) = r.decode_tok_s {
            self.decode_rate.record(milli(v));
        }
        if let Some(v) = r.output_tok_s {
            self.output_rate.record(milli(v));
        }
    }

    fn finish(self, itl: &LogHistogram) -> ScenarioAggregate {
        let duration_s = match (self.first_start_ms, self.last_end_ms) {
            (Some(s), Some(e)) => ((e - s) / 1e3).max(0.0),
            _ => 0.0,
        };
        let per_s = |x: f64| {
            if duration_s > 0.0 {
                x / duration_s
            } else {
                0.0
            }
        };
        let input_tokens = (self.n_ok_without_input == 0).then_some(self.input_tokens);
        ScenarioAggregate {
            n_requests: self.n_requests,
            n_ok: self.n_ok,
            n_failed: self.n_requests - self.n_ok,
            failures_by_class: self.failures_by_class,
            n_short_outputs: self.n_short,
            n_estimated_output_tokens: self.n_estimated,
            duration_s,
            input_tokens_total: input_tokens,
            output_tokens_total: self.output_tokens,
            request_throughput_rps: per_s(f64::from(self.n_ok)),
            input_throughput_tok_s: input_tokens.map(|n| per_s(n as f64)),
            output_throughput_tok_s: per_s(self.output_tokens as f64),
            ttft_ms: self.ttft.distribution(1e6),
            ttfo_ms: self.ttfo.distribution(1e6),
            reasoning_tokens: self.reasoning_tokens.distribution(1.0),
            tpot_ms: self.tpot.distribution(1e6),
            itl_ms: itl.distribution(1e6),
            e2e_ms: self.e2e.distribution(1e6),
            prompt_tok_s: self.prompt_rate.distribution(1e3),
            decode_tok_s: self.decode_rate.distribution(1e3),
            output_tok_s: self.output_rate.distribution(1e3),
            open_loop: self.open_loop.map(OpenLoopCollector::finish),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(rate_rps: f64, requests: u32, duration_s: Option<f64>) -> ScenarioConfig {
        let mut config = crate::scenario::builtin()
            .into_iter()
            .find(|s| s.name == "throughput")
            .expect("built in")
            .config;
        config.arrival = Arrival::Poisson { rate_rps };
        config.requests = requests;
        config.duration_s = duration_s;
        config
    }

    #[test]
    fn poisson_schedule_has_the_asked_rate() {
        let times: Vec<Duration> = arrival_schedule(&open(50.0, 20_000, None), 7)
            .expect("open loop")
            .collect();
        assert_eq!(times.len(), 20_000);
        let span = times.last().expect("times").as_secs_f64();
        let rate = (times.len() - 1) as f64 / span;
        assert!((rate - 50.0).abs() < 2.0, "rate {rate}");
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let mut closed = open(1.0, 10, None);
        closed.arrival = Arrival::Closed;
        assert!(arrival_schedule(&closed, 0).is_none());
    }

    #[test]
    fn arrivals_are_a_lazy_iterator_sized_by_time() {
        // Ten million requests cost the generator's few words, not a list.
        let mut arrivals = arrival_schedule(&open(1000.0, 10_000_000, None), 1).expect("open");
        assert!(std::mem::size_of_val(&arrivals) <= 64);
        let first: Vec<Duration> = arrivals.by_ref().take(3).collect();
        assert_eq!(first[0], Duration::ZERO);
        assert!(first[1] > first[0] && first[2] > first[1]);
        assert_eq!(arrivals.n_left, 10_000_000 - 3);
        // Sized by time: 30 s at 40 req/s is about 1,200 arrivals, none after 30 s.
        let timed: Vec<Duration> = arrival_schedule(&open(40.0, 10_000_000, Some(30.0)), 2)
            .expect("open")
            .collect();
        assert!((1_100..1_300).contains(&timed.len()), "{}", timed.len());
        assert!(timed.iter().all(|t| t.as_secs_f64() <= 30.0));
        // The request count stays a cap.
        assert_eq!(
            arrival_schedule(&open(40.0, 50, Some(30.0)), 2)
                .expect("open")
                .count(),
            50
        );
    }

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
