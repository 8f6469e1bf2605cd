//! The streaming aggregates of a scenario: histograms and counters that
//! take each record once, so memory does not grow with the requests.

use spark_results::{
    EngineTimingsAggregate, OpenLoopAggregate, RequestRecord, ScenarioAggregate, SloResult,
};

use crate::histogram::LogHistogram;
use crate::slo::{Slo, SloCounter};

/// Streaming aggregates of a scenario (memory independent of the requests).
#[derive(Debug, Default)]
pub(super) struct Collector {
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
    /// Closed loop: the steady window by send time (the sweep's levels).
    closed_steady: SteadyEnds,
    engine: EngineTimingsCollector,
    slo: Option<SloCounter>,
}

/// The engine's own timings (llama-server's `timings`) against ours.
#[derive(Debug, Default)]
struct EngineTimingsCollector {
    n: u32,
    prefill: LogHistogram,
    tpot: LogHistogram,
    ttft_over_prefill: LogHistogram,
    n_ttft_below_prefill: u32,
    /// Client TPOT / engine TPOT, in thousandths.
    tpot_ratio: LogHistogram,
}

impl EngineTimingsCollector {
    /// Takes a successful record.
    fn add(&mut self, r: &RequestRecord) {
        let Some(timings) = &r.engine_timings else {
            return;
        };
        self.n += 1;
        if let Some(prompt_ms) = timings.prompt_ms {
            self.prefill.record(ns(prompt_ms));
            if let Some(ttft) = r.ttft_ms {
                let over = ttft - prompt_ms;
                self.n_ttft_below_prefill += u32::from(over < 0.0);
                self.ttft_over_prefill.record(ns(over));
            }
        }
        if let Some(engine_tpot) = timings.tpot_ms() {
            self.tpot.record(ns(engine_tpot));
            if let Some(client_tpot) = r.tpot_ms
                && engine_tpot > 0.0
            {
                self.tpot_ratio.record(milli(client_tpot / engine_tpot));
            }
        }
    }

    fn finish(&self) -> Option<EngineTimingsAggregate> {
        (self.n > 0).then(|| EngineTimingsAggregate {
            n: self.n,
            prefill_ms: self.prefill.distribution(1e6),
            tpot_ms: self.tpot.distribution(1e6),
            ttft_over_prefill_ms: self.ttft_over_prefill.distribution(1e6),
            n_ttft_below_prefill: self.n_ttft_below_prefill,
            tpot_ratio: self.tpot_ratio.distribution(1e3),
        })
    }
}

/// Width of the buckets of request ends that the steady window is cut from.
const STEADY_BUCKET_MS: f64 = 100.0;

/// Request ends by 100 ms of end time, and the last send (or scheduled
/// arrival) time: what a steady window is cut from. Memory grows with the
/// scenario's duration (one bucket per 100 ms), never with its requests.
#[derive(Debug, Default)]
pub(super) struct SteadyEnds {
    /// The last arrival (open loop: scheduled; closed loop: sent), ms.
    last_send_ms: f64,
    /// Per 100 ms of end time: successful requests and their output tokens.
    ends: Vec<(u32, u64)>,
}

/// A steady window and what ended inside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct SteadyWindow {
    pub(super) start_s: f64,
    pub(super) end_s: f64,
    pub(super) n_ok: u32,
    pub(super) request_throughput_rps: Option<f64>,
    pub(super) output_throughput_tok_s: Option<f64>,
}

impl SteadyEnds {
    /// Takes a record sent (or due) at `send_ms`.
    fn add(&mut self, r: &RequestRecord, send_ms: f64) {
        self.last_send_ms = self.last_send_ms.max(send_ms);
        if !r.is_ok() {
            return;
        }
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
    pub(super) fn window(&self) -> SteadyWindow {
        let end_s = self.last_send_ms / 1e3;
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
        SteadyWindow {
            start_s: first as f64 * STEADY_BUCKET_MS / 1e3,
            end_s: (last.max(first)) as f64 * STEADY_BUCKET_MS / 1e3,
            n_ok,
            request_throughput_rps: per_s(f64::from(n_ok)),
            output_throughput_tok_s: per_s(tokens as f64),
        }
    }
}

/// Open-loop aggregates; memory grows with the scenario's duration, never
/// with its requests.
#[derive(Debug, Default)]
struct OpenLoopCollector {
    lateness: LogHistogram,
    ttft_from_scheduled: LogHistogram,
    e2e_from_scheduled: LogHistogram,
    steady: SteadyEnds,
}

impl OpenLoopCollector {
    fn add(&mut self, r: &RequestRecord) {
        let (Some(scheduled), Some(lateness)) = (r.scheduled_ms, r.lateness_ms) else {
            return;
        };
        self.steady.add(r, scheduled);
        self.lateness.record(ns(lateness));
        if !r.is_ok() {
            return;
        }
        if let Some(ttft) = r.ttft_ms {
            self.ttft_from_scheduled.record(ns(lateness + ttft));
        }
        self.e2e_from_scheduled.record(ns(lateness + r.e2e_ms));
    }

    fn finish(&self) -> OpenLoopAggregate {
        let w = self.steady.window();
        OpenLoopAggregate {
            lateness_ms: self.lateness.distribution(1e6),
            ttft_from_scheduled_ms: self.ttft_from_scheduled.distribution(1e6),
            e2e_from_scheduled_ms: self.e2e_from_scheduled.distribution(1e6),
            steady_window_start_s: w.start_s,
            steady_window_end_s: w.end_s,
            steady_n_ok: w.n_ok,
            steady_request_throughput_rps: w.request_throughput_rps,
            steady_output_throughput_tok_s: w.output_throughput_tok_s,
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
    /// A collector; `open_loop` adds the open-loop aggregates.
    pub(super) fn new(open_loop: bool, slo: Option<&Slo>) -> Collector {
        Collector {
            open_loop: open_loop.then(OpenLoopCollector::default),
            slo: slo.map(SloCounter::new),
            ..Collector::default()
        }
    }

    /// The steady window of the scenario: the open loop's, or in a closed
    /// loop from 10 % of the span of sends to the last send.
    pub(super) fn steady_window(&self) -> SteadyWindow {
        match &self.open_loop {
            Some(open_loop) => open_loop.steady.window(),
            None => self.closed_steady.window(),
        }
    }

    /// The scenario against the SLO, judged on its aggregate.
    pub(super) fn slo_result(&self, aggregate: &ScenarioAggregate) -> Option<SloResult> {
        self.slo.as_ref().map(|counter| counter.finish(aggregate))
    }

    pub(super) fn add(&mut self, r: &RequestRecord) {
        if let Some(open_loop) = &mut self.open_loop {
            open_loop.add(r);
        } else {
            self.closed_steady.add(r, r.start_ms);
        }
        if let Some(slo) = &mut self.slo {
            slo.add(r);
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
        self.engine.add(r);
    }

    pub(super) fn finish(&self, itl: &LogHistogram) -> ScenarioAggregate {
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
            failures_by_class: self.failures_by_class.clone(),
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
            open_loop: self.open_loop.as_ref().map(OpenLoopCollector::finish),
            engine_timings: self.engine.finish(),
        }
    }
}
