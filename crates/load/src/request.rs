//! One streaming request, timed: the per-chunk hot path.
//!
//! The loop reads a body frame, reads the clock once, then parses; every
//! event of that frame gets that arrival time (the client cannot know
//! better: the bytes arrived together). Per chunk there is no allocation
//! (the SSE buffers are reused, the JSON is borrowed, the gap buffer is
//! sized for `max_tokens` before the request), no lock and no formatting.
//! Inter-token gaps are kept with the request and go into the worker's
//! histogram only when it succeeded: a distribution counts successful
//! requests only (docs/METRICS.md), and the outcome is known at the end.
//!
//! Timeouts use one timer per request that is re-armed lazily: when it fires
//! the current phase's deadline is recomputed from the last progress, and
//! only if that deadline has passed is it a timeout. So the timer is not
//! touched per chunk, and it only ever moves later (`Sent::next_look`): a
//! timer moved earlier than the runtime's next wake-up costs a write to its
//! driver's eventfd.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use bytes::Bytes;
use spark_results::{Failure, FailureClass, RequestRecord, TimeoutPhase};
use tokio_util::sync::CancellationToken;

use crate::chunk::{self, Payload};
use crate::clock::MonoClock;
use crate::direct::{Conn, ConnSlot};
use crate::engine::Engine;
use crate::histogram::LogHistogram;
use crate::sse::{EventKind, SseParser};

mod send;

pub(crate) use send::closed_before_response;
use send::{
    Response, Sent, classify_body_error, drain_after_done, read_body, send_direct, send_reqwest,
};

/// At most this much of an error body is read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// How much of a body that is not an event stream its failure quotes.
const QUOTED_BODY: usize = 200;

/// The gap buffer is sized for this many gaps at most before the request
/// (a longer stream grows it, once).
const MAX_PRESIZED_GAPS: usize = 1 << 16;

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
    /// The first content chunk after reasoning (TTFO); `None` without reasoning.
    first_answer: Option<Instant>,
    last_token: Option<Instant>,
    token_chunks: u32,
    reasoning_chunks: u32,
    /// Tokens of reasoning chunks per the per-chunk (cumulative) usage.
    reasoning_usage_tokens: u32,
    /// A token chunk carried usage (`continuous_usage_stats`).
    per_chunk_usage: bool,
    /// `usage.completion_tokens_details.reasoning_tokens`, when sent.
    reported_reasoning_tokens: Option<u32>,
    itl_count: u32,
    itl_min_ns: u64,
    itl_max_ns: u64,
    itl_sum_ns: u64,
    /// Every gap of this request, ns; recorded into the scenario's
    /// histogram only if the request succeeds.
    gaps: Vec<u64>,
    /// Events dispatched (of any kind): none at the end of a body means
    /// the body was not an event stream at all.
    n_events: u32,
    finish_reason: Option<String>,
    prompt_tokens: Option<u32>,
    /// The latest `usage.completion_tokens`: the final usage chunk, or the
    /// cumulative per-chunk usage (`continuous_usage_stats`) so far.
    completion_tokens: Option<u32>,
    /// The latest `timings` (llama-server), kept as sent.
    timings: Option<chunk::Timings>,
    done: bool,
    /// When `[DONE]` arrived: the end of the response for E2E, even if the
    /// body lingers after it.
    done_at: Option<Instant>,
    failure: Option<Failure>,
    /// Reads the stream's chunks (it keeps the last token chunk's shape).
    chunks: chunk::ChunkReader,
}

impl StreamState {
    fn new(max_tokens: u32) -> StreamState {
        StreamState {
            first_token: None,
            first_answer: None,
            last_token: None,
            token_chunks: 0,
            reasoning_chunks: 0,
            reasoning_usage_tokens: 0,
            per_chunk_usage: false,
            reported_reasoning_tokens: None,
            itl_count: 0,
            itl_min_ns: u64::MAX,
            itl_max_ns: 0,
            itl_sum_ns: 0,
            gaps: Vec::with_capacity((max_tokens as usize).min(MAX_PRESIZED_GAPS)),
            n_events: 0,
            finish_reason: None,
            prompt_tokens: None,
            completion_tokens: None,
            timings: None,
            done: false,
            done_at: None,
            failure: None,
            chunks: chunk::ChunkReader::default(),
        }
    }

    #[inline]
    fn on_event(&mut self, kind: EventKind, data: &[u8], now: Instant) -> ControlFlow<()> {
        if self.done {
            // Nothing follows [DONE] in a well-formed stream; ignore it.
            return ControlFlow::Continue(());
        }
        self.n_events += 1;
        if kind == EventKind::Error {
            // `event: error` or llama-server's `error:` field (once per request).
            let message = if data.trim_ascii().is_empty() {
                "the server sent an error event without a message".to_owned()
            } else {
                chunk::error_message(data)
            };
            let class = chunk::error_class(&message, FailureClass::StreamError);
            self.failure = Some(failure(class, message));
            return ControlFlow::Break(());
        }
        match self.chunks.parse(data) {
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
                    if info.content && self.first_answer.is_none() && self.reasoning_chunks > 0 {
                        self.first_answer = Some(now);
                    }
                    if let Some(total) = info.usage.and_then(|u| u.completion_tokens) {
                        // Cumulative: this chunk's tokens are the increase.
                        self.per_chunk_usage = true;
                        if info.reasoning && !info.content {
                            let before = self.completion_tokens.unwrap_or(0);
                            self.reasoning_usage_tokens += total.saturating_sub(before);
                        }
                    }
                    match self.last_token {
                        None => self.first_token = Some(now),
                        Some(last) => {
                            let gap = now.duration_since(last).as_nanos() as u64;
                            self.gaps.push(gap);
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
                if info.timings.is_some() {
                    self.timings = info.timings;
                }
                if let Some(usage) = info.usage {
                    self.prompt_tokens = usage.prompt_tokens.or(self.prompt_tokens);
                    self.completion_tokens = usage.completion_tokens.or(self.completion_tokens);
                    if let Some(details) = usage.completion_tokens_details {
                        self.reported_reasoning_tokens =
                            details.reasoning_tokens.or(self.reported_reasoning_tokens);
                    }
                }
            }
            Payload::Error(message) => {
                let class = chunk::error_class(&message, FailureClass::StreamError);
                self.failure = Some(failure(class, message));
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
    /// `[DONE]` came; the rest of the body is read by `drain_after_done`.
    Done,
    Stopped,
}

/// Sends `spec` and measures it. Never panics on network data; every
/// outcome becomes a record. `scenario_start` anchors `start_ms`. A plain
/// `http://` engine is reached over the worker's own connection in `slot`
/// (see `direct.rs`), kept there for its next request when the response
/// was read to its end.
pub(crate) async fn execute(
    engine: &Engine,
    spec: RequestSpec,
    scenario_start: Instant,
    itl: &mut LogHistogram,
    cancel: &CancellationToken,
    slot: &mut ConnSlot,
) -> RequestRecord {
    let timeouts = engine.inner.timeouts;
    let clock = MonoClock::get();
    let mut state = StreamState::new(spec.max_tokens);
    let mut ttfb: Option<Instant> = None;
    let timer = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(timer);
    let mut conn: Option<Conn> = None;
    let mut body_ended = false;
    let (sent, response) = match &engine.inner.direct {
        Some(target) => {
            let (sent, head) =
                send_direct(engine, target, &spec, slot, timer.as_mut(), cancel).await;
            let response = match head {
                Ok((c, response)) => {
                    let (head, body) = response.into_parts();
                    Some(Response::Direct {
                        head,
                        body,
                        conn: conn.insert(c),
                    })
                }
                Err(failure) => {
                    state.failure = Some(failure);
                    None
                }
            };
            (sent, response)
        }
        None => {
            let (sent, head) = send_reqwest(engine, &spec, timer.as_mut(), cancel).await;
            let response = match head {
                Ok(response) => Some(Response::Reqwest(response)),
                Err(failure) => {
                    state.failure = Some(failure);
                    None
                }
            };
            (sent, response)
        }
    };
    let sending = sent;
    let Sent {
        at: sent,
        total_deadline,
        first_token_deadline,
    } = sent;

    if let Some(mut response) = response {
        let mut last_read = None;
        ttfb = Some(response.arrival(&clock, sent, &mut last_read));
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if !status.is_success() {
            let (body, ended) = read_body(&mut response, total_deadline).await;
            body_ended = ended;
            let message = if body.is_empty() {
                "empty body".to_owned()
            } else {
                chunk::error_message(&body)
            };
            state.failure = Some(Failure {
                class: chunk::error_class(&message, FailureClass::HttpStatus),
                http_status: Some(status.as_u16()),
                phase: None,
                message,
            });
        } else if let Some(content_type) = content_type.as_deref().filter(|t| !is_event_stream(t)) {
            // A JSON error with status 200, or an engine that ignored `stream`.
            let (body, ended) = read_body(&mut response, total_deadline).await;
            body_ended = ended;
            state.failure = Some(failure(
                FailureClass::InvalidResponse,
                format!(
                    "a 200 response that is not an event stream (content-type {}): {}",
                    chunk::head(content_type.as_bytes(), 60),
                    quote(&body)
                ),
            ));
        } else {
            let mut parser = SseParser::default();
            // Without a content-type, the start of the body is kept until
            // the first event, to quote if the body turns out not to be an
            // event stream.
            let sniff = content_type.is_none();
            let mut body_head: Vec<u8> = Vec::with_capacity(if sniff { QUOTED_BODY } else { 0 });
            let mut between_armed = false;
            let ended = loop {
                tokio::select! {
                    biased;
                    chunk = response.chunk() => match chunk {
                        Ok(Some(bytes)) => {
                            // The arrival time, before any parsing: the
                            // kernel's receive time of the read, where known.
                            let now = response.arrival(&clock, sent, &mut last_read);
                            if sniff && state.n_events == 0 && body_head.len() < QUOTED_BODY {
                                let take = (QUOTED_BODY - body_head.len()).min(bytes.len());
                                body_head.extend_from_slice(&bytes[..take]);
                            }
                            let flow = parser.feed(&bytes, &mut |kind, data| state.on_event(kind, data, now));
                            if flow.is_break() {
                                break Ended::Stopped;
                            }
                            if !between_armed && state.last_token.is_some() {
                                // Once, at the first token: the between-token
                                // deadline can be earlier than the first-token
                                // one. The timer is never further ahead than
                                // it (`Sent::next_look`), so this moves it later.
                                between_armed = true;
                                timer.as_mut().reset((now + timeouts.between_tokens).min(total_deadline).into());
                            }
                        }
                        Ok(None) => {
                            let now = Instant::now();
                            let _ = parser.finish(&mut |kind, data| state.on_event(kind, data, now));
                            body_ended = true;
                            break Ended::Eof;
                        }
                        Err(err) => {
                            // After [DONE] the response is complete; a broken
                            // body end (an engine that closes at once) is not a failure.
                            if !state.done {
                                state.failure = Some(classify_body_error(&*err, &state));
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
                        let next = match state.last_token {
                            None => sending.next_look(&timeouts, now),
                            Some(_) => phase_deadline,
                        };
                        timer.as_mut().reset(next.min(total_deadline).into());
                    },
                    () = cancel.cancelled() => {
                        if !state.done {
                            state.failure = Some(failure(FailureClass::Cancelled, "cancelled while streaming".to_owned()));
                        }
                        break Ended::Stopped;
                    },
                }
                if state.done && state.failure.is_none() {
                    break Ended::Done;
                }
            };
            if matches!(ended, Ended::Done) {
                body_ended = drain_after_done(&mut response, cancel).await;
            }
            if state.failure.is_none()
                && matches!(ended, Ended::Eof)
                && state.n_events == 0
                && !body_head.trim_ascii().is_empty()
            {
                state.failure = Some(failure(
                    FailureClass::InvalidResponse,
                    format!(
                        "a 200 response that is not an event stream: {}",
                        quote(&body_head)
                    ),
                ));
            }
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
    if let Some(conn) = conn
        && body_ended
        && !conn.is_closed()
    {
        // Read to its end: the connection is free for the worker's next request.
        slot.put(conn);
    }
    let end = state.done_at.unwrap_or_else(Instant::now);
    if state.failure.is_none() {
        for &gap in &state.gaps {
            itl.record(gap);
        }
    }
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
    // Reported by the engine, else counted from per-chunk usage; unknown
    // (null) without either, and null when nothing was reasoning.
    let reasoning_tokens = state
        .reported_reasoning_tokens
        .or((state.reasoning_chunks > 0 && state.per_chunk_usage)
            .then_some(state.reasoning_usage_tokens));
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
        ttfo_ms: state.first_answer.map(|t| ms(t.duration_since(sent))),
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
        reasoning_tokens,
        prompt_tok_s,
        decode_tok_s,
        output_tok_s,
        finish_reason: state.finish_reason.clone(),
        failure: state.failure.clone(),
        engine_timings: state.timings.map(chunk::Timings::to_record),
    }
}

/// Whether a content-type is `text/event-stream` (parameters allowed).
fn is_event_stream(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("text/event-stream")
}

/// The start of a body for a message; says so when it is empty.
fn quote(body: &[u8]) -> String {
    match chunk::head(body, QUOTED_BODY) {
        text if text.is_empty() => "empty body".to_owned(),
        text => text,
    }
}
