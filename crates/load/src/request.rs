//! One streaming request, timed: the per-chunk hot path.
//!
//! The loop reads a body frame, reads the clock once, then parses; every
//! event of that frame gets that arrival time (the client cannot know
//! better: the bytes arrived together). Per chunk there is no allocation
//! (the SSE buffers are reused, the JSON is borrowed), no lock and no
//! formatting; inter-token gaps go into the worker's own histogram.
//!
//! Timeouts use one timer per request that is re-armed lazily: when it fires
//! the current phase's deadline is recomputed from the last progress, and
//! only if that deadline has passed is it a timeout. So the timer is not
//! touched per chunk.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spark_results::{Failure, FailureClass, RequestRecord, TimeoutPhase};
use tokio_util::sync::CancellationToken;

use crate::chunk::{self, Payload};
use crate::clock::MonoClock;
use crate::engine::{Engine, error_chain};
use crate::histogram::LogHistogram;
use crate::sse::SseParser;

/// At most this much of an error body is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What a request is (everything but the timing).
#[derive(Debug, Clone)]
pub(crate) struct RequestSpec {
    pub(crate) scenario: String,
    pub(crate) request_idx: u32,
    pub(crate) request_id: String,
    pub(crate) url_endpoint: spark_results::Endpoint,
    pub(crate) body: Bytes,
    pub(crate) requested_input_tokens: u32,
    pub(crate) max_tokens: u32,
    pub(crate) exact_output: bool,
    /// When it was due (open loop), ms from the scenario's start.
    pub(crate) scheduled_ms: Option<f64>,
}

/// Per-stream state updated by each event.
#[derive(Debug)]
struct StreamState {
    first_token: Option<Instant>,
    last_token: Option<Instant>,
    token_chunks: u32,
    reasoning_chunks: u32,
    itl_count: u32,
    itl_min_ns: u64,
    itl_max_ns: u64,
    itl_sum_ns: u64,
    finish_reason: Option<String>,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    done: bool,
    /// When `[DONE]` arrived: the end of the response for E2E, even if the
    /// body lingers after it.
    done_at: Option<Instant>,
    failure: Option<Failure>,
}

impl StreamState {
    fn new() -> StreamState {
        StreamState {
            first_token: None,
            last_token: None,
            token_chunks: 0,
            reasoning_chunks: 0,
            itl_count: 0,
            itl_min_ns: u64::MAX,
            itl_max_ns: 0,
            itl_sum_ns: 0,
            finish_reason: None,
            prompt_tokens: None,
            completion_tokens: None,
            done: false,
            done_at: None,
            failure: None,
        }
    }

    #[inline]
    fn on_event(&mut self, data: &[u8], now: Instant, itl: &mut LogHistogram) -> ControlFlow<()> {
        if self.done {
            // Nothing follows [DONE] in a well-formed stream; ignore it.
            return ControlFlow::Continue(());
        }
        match chunk::parse(data) {
            Payload::Done => {
                self.done = true;
                self.done_at = Some(now);
            }
            Payload::Chunk(info) => {
                if info.content || info.reasoning {
                    self.token_chunks += 1;
                    if info.reasoning {
                        self.reasoning_chunks += 1;
                    }
                    match self.last_token {
                        None => self.first_token = Some(now),
                        Some(last) => {
                            let gap = now.duration_since(last).as_nanos() as u64;
                            itl.record(gap);
                            self.itl_count += 1;
                            self.itl_sum_ns += gap;
                            self.itl_min_ns = self.itl_min_ns.min(gap);
                            self.itl_max_ns = self.itl_max_ns.max(gap);
                        }
                    }
                    self.last_token = Some(now);
                }
                if let Some(reason) = info.finish_reason {
                    // Once per request.
                    self.finish_reason = Some(reason.into_owned());
                }
                if let Some(usage) = info.usage {
                    self.prompt_tokens = usage.prompt_tokens.or(self.prompt_tokens);
                    self.completion_tokens = usage.completion_tokens.or(self.completion_tokens);
                }
            }
            Payload::Error(message) => {
                self.failure = Some(failure(FailureClass::StreamError, message));
                return ControlFlow::Break(());
            }
            Payload::Invalid(message) => {
                self.failure = Some(failure(FailureClass::InvalidResponse, message));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

fn failure(class: FailureClass, message: String) -> Failure {
    Failure {
        class,
        http_status: None,
        phase: None,
        message,
    }
}

fn timeout(phase: TimeoutPhase, limit: Duration) -> Failure {
    let what = match phase {
        TimeoutPhase::Connect => "connecting",
        TimeoutPhase::FirstToken => "waiting for the first token",
        TimeoutPhase::BetweenTokens => "waiting for the next token",
        TimeoutPhase::Total => "the whole request",
    };
    Failure {
        class: FailureClass::Timeout,
        http_status: None,
        phase: Some(phase),
        message: format!("timed out {what} (limit {:.1} s)", limit.as_secs_f64()),
    }
}

/// What ended the read loop.
enum Ended {
    Eof,
    Stopped,
}

/// Sends `spec` and measures it. Never panics on network data; every
/// outcome becomes a record. `scenario_start` anchors `start_ms`.
pub(crate) async fn execute(
    engine: &Engine,
    spec: RequestSpec,
    scenario_start: Instant,
    itl: &mut LogHistogram,
    cancel: &CancellationToken,
) -> RequestRecord {
    let timeouts = engine.inner.timeouts;
    let clock = MonoClock::get();
    let request = engine
        .post(engine.url(spec.url_endpoint), spec.body.clone())
        .header("x-request-id", spec.request_id.as_str());
    let sent = Instant::now();
    let total_deadline = sent + timeouts.total;
    let first_token_deadline = sent + timeouts.first_token.min(timeouts.total);
    let mut state = StreamState::new();
    let mut ttfb: Option<Instant> = None;

    let timer = tokio::time::sleep_until(first_token_deadline.into());
    tokio::pin!(timer);

    let response = tokio::select! {
        biased;
        result = request.send() => match result {
            Ok(response) => Some(response),
            Err(err) => {
                state.failure = Some(classify_send_error(&err, timeouts.connect));
                None
            }
        },
        () = &mut timer => {
            state.failure = Some(if Instant::now() >= total_deadline {
                timeout(TimeoutPhase::Total, timeouts.total)
            } else {
                timeout(TimeoutPhase::FirstToken, timeouts.first_token)
            });
            None
        },
        () = cancel.cancelled() => {
            state.failure = Some(failure(FailureClass::Cancelled, "cancelled before the response".to_owned()));
            None
        },
    };

    if let Some(mut response) = response {
        ttfb = Some(Instant::now());
        let status = response.status();
        if !status.is_success() {
            let message = read_error_body(&mut response, total_deadline).await;
            state.failure = Some(Failure {
                class: FailureClass::HttpStatus,
                http_status: Some(status.as_u16()),
                phase: None,
                message,
            });
        } else {
            let mut parser = SseParser::default();
            let mut between_armed = false;
            let ended = loop {
                tokio::select! {
                    biased;
                    chunk = response.chunk() => match chunk {
                        Ok(Some(bytes)) => {
                            // The arrival time, before any parsing.
                            let now = Instant::now();
                            let flow = parser.feed(&bytes, &mut |data| state.on_event(data, now, itl));
                            if flow.is_break() {
                                break Ended::Stopped;
                            }
                            if !between_armed && state.last_token.is_some() {
                                // Once, at the first token: the between-token
                                // deadline can be earlier than the first-token one.
                                between_armed = true;
                                timer.as_mut().reset((now + timeouts.between_tokens).min(total_deadline).into());
                            }
                        }
                        Ok(None) => {
                            let now = Instant::now();
                            let _ = parser.finish(&mut |data| state.on_event(data, now, itl));
                            break Ended::Eof;
                        }
                        Err(err) => {
                            // After [DONE] the response is complete; a broken
                            // body end (an engine that closes at once) is not a failure.
                            if !state.done {
                                state.failure = Some(classify_body_error(&err, &state));
                            }
                            break Ended::Stopped;
                        }
                    },
                    () = &mut timer => {
                        let now = Instant::now();
                        if state.done {
                            // [DONE] came but the body did not end: stop waiting,
                            // the measurement is complete.
                            break Ended::Stopped;
                        }
                        let (phase_deadline, phase, limit) = match state.last_token {
                            None => (first_token_deadline, TimeoutPhase::FirstToken, timeouts.first_token),
                            Some(last) => (last + timeouts.between_tokens, TimeoutPhase::BetweenTokens, timeouts.between_tokens),
                        };
                        if now >= total_deadline {
                            state.failure = Some(timeout(TimeoutPhase::Total, timeouts.total));
                            break Ended::Stopped;
                        }
                        if now >= phase_deadline {
                            state.failure = Some(timeout(phase, limit));
                            break Ended::Stopped;
                        }
                        timer.as_mut().reset(phase_deadline.min(total_deadline).into());
                    },
                    () = cancel.cancelled() => {
                        if !state.done {
                            state.failure = Some(failure(FailureClass::Cancelled, "cancelled while streaming".to_owned()));
                        }
                        break Ended::Stopped;
                    },
                }
                if state.done && state.failure.is_none() {
                    // Read on only to let the body end (so the connection is
                    // reused), for at most a short while.
                    let soon = Instant::now() + Duration::from_millis(200);
                    if timer.deadline().into_std() > soon {
                        timer.as_mut().reset(soon.into());
                    }
                }
            };
            if state.failure.is_none()
                && matches!(ended, Ended::Eof)
                && !state.done
                && state.finish_reason.is_none()
            {
                state.failure = Some(failure(
                    FailureClass::Truncated,
                    format!(
                        "the stream ended after {} token chunks without [DONE] or a finish_reason",
                        state.token_chunks
                    ),
                ));
            }
        }
    }
    let end = state.done_at.unwrap_or_else(Instant::now);
    build_record(spec, &state, sent, ttfb, end, scenario_start, clock)
}

fn build_record(
    spec: RequestSpec,
    state: &StreamState,
    sent: Instant,
    ttfb: Option<Instant>,
    end: Instant,
    scenario_start: Instant,
    clock: MonoClock,
) -> RequestRecord {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let ttft = state.first_token.map(|t| t.duration_since(sent));
    let e2e = end.duration_since(sent);
    let (output_tokens, estimated) = match state.completion_tokens {
        Some(n) => (Some(n), false),
        None if state.first_token.is_some() || state.done => (Some(state.token_chunks), true),
        None => (None, false),
    };
    let ok = state.failure.is_none();
    // docs/METRICS.md: TPOT = (E2E − TTFT) / (output tokens − 1), decode
    // tok/s its inverse, output tok/s = output tokens / E2E.
    let decode_span = ttft.map(|first| e2e.saturating_sub(first));
    let tpot = match (output_tokens, decode_span) {
        (Some(n), Some(span)) if n >= 2 && ok => Some(ms(span) / (n - 1) as f64),
        _ => None,
    };
    let decode_tok_s = match (output_tokens, decode_span) {
        (Some(n), Some(span)) if n >= 2 && ok && !span.is_zero() => {
            Some((n - 1) as f64 / span.as_secs_f64())
        }
        _ => None,
    };
    let prompt_tok_s = match (state.prompt_tokens, ttft) {
        (Some(n), Some(t)) if ok && !t.is_zero() => Some(n as f64 / t.as_secs_f64()),
        _ => None,
    };
    let output_tok_s = match output_tokens {
        Some(n) if ok && !e2e.is_zero() => Some(n as f64 / e2e.as_secs_f64()),
        _ => None,
    };
    let short_output =
        ok && spec.exact_output && output_tokens.is_some_and(|n| n < spec.max_tokens);
    RequestRecord {
        scenario: spec.scenario,
        request_idx: spec.request_idx,
        request_id: spec.request_id,
        scheduled_ms: spec.scheduled_ms,
        start_ms: ms(sent.saturating_duration_since(scenario_start)),
        // Set by the runner, which knows the schedule.
        lateness_ms: None,
        sent_mono_ns: clock.ns(sent),
        ttfb_ms: ttfb.map(|t| ms(t.duration_since(sent))),
        ttft_ms: ttft.map(ms),
        e2e_ms: ms(e2e),
        tpot_ms: tpot,
        itl_count: state.itl_count,
        itl_min_ms: (state.itl_count > 0).then(|| state.itl_min_ns as f64 / 1e6),
        itl_max_ms: (state.itl_count > 0).then(|| state.itl_max_ns as f64 / 1e6),
        itl_mean_ms: (state.itl_count > 0)
            .then(|| state.itl_sum_ns as f64 / 1e6 / state.itl_count as f64),
        first_token_mono_ns: state.first_token.map(|t| clock.ns(t)),
        last_token_mono_ns: state.last_token.map(|t| clock.ns(t)),
        requested_input_tokens: spec.requested_input_tokens,
        input_tokens: state.prompt_tokens,
        requested_output_tokens: spec.max_tokens,
        output_tokens,
        output_tokens_estimated: estimated,
        short_output,
        token_chunks: state.token_chunks,
        reasoning_chunks: state.reasoning_chunks,
        prompt_tok_s,
        decode_tok_s,
        output_tok_s,
        finish_reason: state.finish_reason.clone(),
        failure: state.failure.clone(),
    }
}

/// Reads at most `MAX_ERROR_BODY` of an error response, bounded in time.
async fn read_error_body(response: &mut reqwest::Response, deadline: Instant) -> String {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(bytes)) = response.chunk().await {
            body.extend_from_slice(&bytes);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let deadline = deadline.min(Instant::now() + Duration::from_secs(10));
    let _ = tokio::time::timeout_at(deadline.into(), read).await;
    if body.is_empty() {
        return "empty body".to_owned();
    }
    chunk::error_message(&body)
}

/// A failure before the response head arrived.
fn classify_send_error(err: &reqwest::Error, connect_limit: Duration) -> Failure {
    let message = error_chain(err);
    if err.is_connect() {
        if err.is_timeout() {
            return timeout(TimeoutPhase::Connect, connect_limit);
        }
        return failure(FailureClass::Connect, message);
    }
    if has_io_kind(err, &[std::io::ErrorKind::ConnectionRefused]) {
        return failure(FailureClass::Connect, message);
    }
    // The connection broke (or closed) before the response head.
    failure(FailureClass::Reset, message)
}

/// A failure while reading the body.
fn classify_body_error(err: &reqwest::Error, state: &StreamState) -> Failure {
    let message = error_chain(err);
    use std::io::ErrorKind::*;
    if has_io_kind(err, &[ConnectionReset, ConnectionAborted, BrokenPipe]) {
        return failure(FailureClass::Reset, message);
    }
    // The peer closed the connection mid-body (hyper: "incomplete message").
    failure(
        FailureClass::Truncated,
        format!(
            "the stream broke after {} token chunks: {message}",
            state.token_chunks
        ),
    )
}

fn has_io_kind(err: &(dyn std::error::Error + 'static), kinds: &[std::io::ErrorKind]) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && kinds.contains(&io.kind())
        {
            return true;
        }
        source = inner.source();
    }
    false
}
