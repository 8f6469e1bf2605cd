//! Response bodies: the SSE token stream and plain full bodies.
//!
//! The stream is a hand-written `http_body::Body`: hyper polls it, the
//! [`Generation`] says how many tokens are due, and every due token becomes
//! its own SSE event appended to one `BytesMut`, so several late tokens leave
//! in one frame. Per-response JSON around the token text is rendered once
//! ([`Frames`]); token texts come pre-escaped from the static vocabulary, so
//! the per-token work is three `memcpy`s (plus number formatting only when
//! `continuous_usage_stats` asks for per-chunk usage).
//!
//! With `--tokens-per-chunk N` due tokens are held back until N are due (or
//! the response ends), and one event carries all N texts, as SGLang's
//! `stream_interval` and batching gateways do; an event never mixes
//! reasoning and content.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use crate::engine::Generation;
use crate::server::Shared;
use crate::tokenizer;
use crate::truth::{Outcome, monotonic_ns};

/// Most tokens put in one frame, so one body write stays around 100 KiB.
const MAX_BATCH: u32 = 512;

/// Which endpoint a response belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Chat,
    Completion,
}

impl Endpoint {
    pub(crate) fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completion => "/v1/completions",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Ends with an EOS token (counted, empty text).
    Stop,
    Length,
}

impl Finish {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Error,
    Disconnect,
    Stall,
}

/// Everything decided about a response before its first token.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) endpoint: Endpoint,
    pub(crate) id: String,
    pub(crate) created: u64,
    pub(crate) model: String,
    pub(crate) prompt_tokens: u32,
    /// Completion tokens, the EOS token included when `finish` is `Stop`.
    pub(crate) total_tokens: u32,
    pub(crate) finish: Finish,
    pub(crate) seed: u64,
    pub(crate) reasoning: u32,
    pub(crate) include_usage: bool,
    pub(crate) continuous_usage: bool,
    /// A stream fault and the number of tokens sent before it.
    pub(crate) fault: Option<(FaultKind, u32)>,
    /// Tokens per SSE event (at least 1).
    pub(crate) tokens_per_chunk: u32,
    /// llama-server's stream: errors inside it are its `error:` field, and
    /// its end carries the engine's `timings`.
    pub(crate) llamacpp: bool,
}

impl Plan {
    /// Tokens the engine produces: all of them, or those before the fault.
    pub(crate) fn produced_tokens(&self) -> u32 {
        match self.fault {
            Some((_, at)) => at.min(self.total_tokens),
            None => self.total_tokens,
        }
    }

    fn active_fault(&self) -> Option<FaultKind> {
        self.fault
            .and_then(|(kind, at)| (at < self.total_tokens).then_some(kind))
    }

    /// Text (JSON-escaped and raw) of completion token `idx`, and whether it is reasoning.
    pub(crate) fn token(&self, idx: u32) -> (&'static str, &'static str, bool) {
        let reasoning = self.endpoint == Endpoint::Chat && idx < self.reasoning;
        if self.finish == Finish::Stop && idx + 1 == self.total_tokens {
            return ("", "", reasoning);
        }
        let token = tokenizer::output_token(self.seed, idx);
        (token.json_text, token.text, reasoning)
    }
}

/// The JSON around token texts, rendered once per response.
#[derive(Debug)]
struct Frames {
    role: Vec<u8>,
    role_usage: Vec<u8>,
    head_content: Vec<u8>,
    head_reasoning: Vec<u8>,
    tail_mid: Vec<u8>,
    tail_final: Vec<u8>,
    usage_head: Vec<u8>,
}

impl Frames {
    fn new(plan: &Plan, reasoning_field: &str) -> Frames {
        let model = serde_json::to_string(&plan.model).unwrap_or_else(|_| "\"\"".to_owned());
        let id = serde_json::to_string(&plan.id).unwrap_or_else(|_| "\"\"".to_owned());
        let object = match plan.endpoint {
            Endpoint::Chat => "chat.completion.chunk",
            Endpoint::Completion => "text_completion",
        };
        let prefix = format!(
            "data: {{\"id\":{id},\"object\":\"{object}\",\"created\":{},\"model\":{model},\"choices\":[",
            plan.created
        );
        let finish = plan.finish.as_str();
        let (head_content, head_reasoning, tail_mid, tail_final) = match plan.endpoint {
            Endpoint::Chat => (
                format!("{prefix}{{\"index\":0,\"delta\":{{\"content\":\""),
                format!("{prefix}{{\"index\":0,\"delta\":{{\"{reasoning_field}\":\""),
                "\"},\"logprobs\":null,\"finish_reason\":null,\"token_ids\":null}]".to_owned(),
                format!(
                    "\"}},\"logprobs\":null,\"finish_reason\":\"{finish}\",\"stop_reason\":null,\"token_ids\":null}}]"
                ),
            ),
            Endpoint::Completion => {
                let head = format!("{prefix}{{\"index\":0,\"text\":\"");
                (
                    head.clone(),
                    head,
                    "\",\"logprobs\":null,\"finish_reason\":null,\"stop_reason\":null,\"prompt_token_ids\":null,\"token_ids\":null}]".to_owned(),
                    format!(
                        "\",\"logprobs\":null,\"finish_reason\":\"{finish}\",\"stop_reason\":null,\"prompt_token_ids\":null,\"token_ids\":null}}]"
                    ),
                )
            }
        };
        let role_choice = "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]";
        let p = plan.prompt_tokens;
        Frames {
            role: format!("{prefix}{role_choice},\"prompt_token_ids\":null}}\n\n").into_bytes(),
            role_usage: format!(
                "{prefix}{role_choice},\"usage\":{{\"prompt_tokens\":{p},\"total_tokens\":{p},\"completion_tokens\":0}},\"prompt_token_ids\":null}}\n\n"
            )
            .into_bytes(),
            head_content: head_content.into_bytes(),
            head_reasoning: head_reasoning.into_bytes(),
            tail_mid: tail_mid.into_bytes(),
            tail_final: tail_final.into_bytes(),
            usage_head: format!(
                "data: {{\"id\":{id},\"object\":\"{object}\",\"created\":{},\"model\":{model},\"choices\":[],\"usage\":",
                plan.created
            )
            .into_bytes(),
        }
    }
}

/// Appends `value` in decimal without allocating.
fn push_u64(buf: &mut BytesMut, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut pos = digits.len();
    loop {
        pos -= 1;
        digits[pos] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[pos..]);
}

fn push_usage(buf: &mut BytesMut, prompt: u32, completion: u32) {
    buf.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(buf, u64::from(prompt));
    buf.extend_from_slice(b",\"total_tokens\":");
    push_u64(buf, u64::from(prompt) + u64::from(completion));
    buf.extend_from_slice(b",\"completion_tokens\":");
    push_u64(buf, u64::from(completion));
    buf.extend_from_slice(b"}");
}

/// The in-band error event vLLM sends when generation fails mid-stream; it
/// comes from `json.dumps`, hence the spaces after `:` and `,`.
pub(crate) const STREAM_ERROR_EVENT: &[u8] = b"data: {\"error\": {\"message\": \"Internal server error\", \"type\": \"InternalServerError\", \"param\": null, \"code\": 500}}\n\ndata: [DONE]\n\n";

/// llama-server's in-stream error: an `error` field of its own (its
/// `server_sent_event(sink, "error", …)`), the bare error object, no [DONE].
pub(crate) const LLAMACPP_STREAM_ERROR_EVENT: &[u8] =
    b"error: {\"code\":500,\"message\":\"Internal server error\",\"type\":\"server_error\"}\n\n";

/// Per-request ground truth, recorded once, when the request ends (or on drop).
#[derive(Debug)]
pub(crate) struct TruthGuard {
    shared: Arc<Shared>,
    pub(crate) record: Option<crate::truth::TruthRecord>,
    /// Token send times are kept only when the log is on.
    keep_times: bool,
}

impl TruthGuard {
    pub(crate) fn new(shared: Arc<Shared>, record: crate::truth::TruthRecord) -> TruthGuard {
        let keep_times = shared.truth.is_some();
        TruthGuard {
            shared,
            record: Some(record),
            keep_times,
        }
    }

    fn tokens_sent(&mut self, n: u32, at: u64, cached_tokens: u32) {
        if let Some(record) = self.record.as_mut() {
            if record.first_token_mono_ns.is_none() {
                record.first_token_mono_ns = Some(at);
                record.cached_tokens = cached_tokens;
            }
            record.completion_tokens += n;
            if self.keep_times {
                record
                    .token_mono_ns
                    .extend(std::iter::repeat_n(at, n as usize));
            }
        }
    }

    pub(crate) fn finish(&mut self, outcome: Outcome, finish_reason: Option<&'static str>) {
        if let Some(mut record) = self.record.take() {
            record.end_mono_ns = monotonic_ns();
            record.outcome = outcome;
            record.finish_reason = finish_reason;
            if outcome == Outcome::Ok {
                self.shared
                    .engine
                    .metrics
                    .requests_success
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(sink) = &self.shared.truth {
                sink.record(record);
            }
            self.shared.request_ended();
        }
    }
}

impl Drop for TruthGuard {
    fn drop(&mut self) {
        let outcome = if self.shared.stopping() {
            Outcome::ServerStopped
        } else {
            Outcome::ClientDisconnect
        };
        self.finish(outcome, None);
    }
}

type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

enum Stage {
    Tokens,
    Tail,
    Fault(FaultKind),
    Disconnecting(Wait),
    Stalled(Wait),
    Done,
}

/// The SSE body of a streaming response.
pub(crate) struct SseBody {
    plan: Plan,
    frames: Frames,
    generation: Generation,
    sent: u32,
    /// Tokens due but held back until a chunk of `tokens_per_chunk` is full.
    held: u32,
    stage: Stage,
    buf: BytesMut,
    guard: TruthGuard,
    /// When the first and the latest tokens went out, CLOCK_MONOTONIC ns
    /// (llama-server's `timings`).
    first_sent_ns: Option<u64>,
    last_sent_ns: u64,
}

impl std::fmt::Debug for SseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseBody")
            .field("id", &self.plan.id)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl SseBody {
    pub(crate) fn new(
        plan: Plan,
        reasoning_field: &str,
        generation: Generation,
        guard: TruthGuard,
    ) -> SseBody {
        SseBody {
            frames: Frames::new(&plan, reasoning_field),
            plan,
            generation,
            sent: 0,
            held: 0,
            stage: Stage::Tokens,
            buf: BytesMut::with_capacity(16 * 1024),
            guard,
            first_sent_ns: None,
            last_sent_ns: 0,
        }
    }

    /// llama-server's `timings` of this response, from the sim's own clock:
    /// the prompt took from arrival to the first token, generation from the
    /// first token to the last (llama.cpp's `t_prompt_processing` and
    /// `t_token_generation`). Rendered once per response.
    fn timings_json(&self) -> String {
        let arrival = self.guard.record.as_ref().map_or(0, |r| r.arrival_mono_ns);
        let first = self.first_sent_ns.unwrap_or(arrival);
        let prompt_ms = first.saturating_sub(arrival) as f64 / 1e6;
        let predicted_ms = self.last_sent_ns.saturating_sub(first) as f64 / 1e6;
        let cache_n = self.generation.cached_tokens();
        let prompt_n = self.plan.prompt_tokens.saturating_sub(cache_n);
        let predicted_n = self.sent;
        let per = |ms: f64, n: u32| if n > 0 { ms / f64::from(n) } else { 0.0 };
        let rate = |ms: f64, n: u32| {
            if ms > 0.0 {
                1e3 * f64::from(n) / ms
            } else {
                0.0
            }
        };
        format!(
            "\"timings\":{{\"cache_n\":{cache_n},\"prompt_n\":{prompt_n},\"prompt_ms\":{prompt_ms},\"prompt_per_token_ms\":{},\"prompt_per_second\":{},\"predicted_n\":{predicted_n},\"predicted_ms\":{predicted_ms},\"predicted_per_token_ms\":{},\"predicted_per_second\":{}}}",
            per(prompt_ms, prompt_n),
            rate(prompt_ms, prompt_n),
            per(predicted_ms, predicted_n),
            rate(predicted_ms, predicted_n),
        )
    }

    /// One event carrying tokens `start..end` (all reasoning or all content).
    fn push_chunk(&mut self, start: u32, end: u32) {
        let (_, _, reasoning) = self.plan.token(start);
        let is_last = end == self.plan.total_tokens;
        let frames = &self.frames;
        let buf = &mut self.buf;
        buf.extend_from_slice(if reasoning {
            &frames.head_reasoning
        } else {
            &frames.head_content
        });
        for idx in start..end {
            buf.extend_from_slice(self.plan.token(idx).0.as_bytes());
        }
        buf.extend_from_slice(if is_last {
            &frames.tail_final
        } else {
            &frames.tail_mid
        });
        if self.plan.continuous_usage {
            buf.extend_from_slice(b",\"usage\":");
            push_usage(buf, self.plan.prompt_tokens, end);
        }
        buf.extend_from_slice(b"}\n\n");
    }

    /// Events for the due tokens `start..end`: `tokens_per_chunk` per event,
    /// cut where reasoning turns into content; a partial chunk goes out only
    /// at the end. Returns how many tokens were written.
    fn push_tokens(&mut self, start: u32, end: u32, at_end: bool) -> u32 {
        let per_chunk = self.plan.tokens_per_chunk.max(1);
        let mut idx = start;
        while idx < end {
            let mut chunk_end = idx + per_chunk;
            if self.plan.endpoint == Endpoint::Chat
                && idx < self.plan.reasoning
                && chunk_end > self.plan.reasoning
            {
                chunk_end = self.plan.reasoning;
            }
            if chunk_end > end {
                if !at_end {
                    break;
                }
                chunk_end = end;
            }
            self.push_chunk(idx, chunk_end);
            idx = chunk_end;
        }
        idx - start
    }

    fn take_frame(&mut self) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Poll::Ready(Some(Ok(Frame::data(self.buf.split().freeze()))))
    }

    fn wait_for_shutdown(&self, delay: Option<Duration>) -> Wait {
        let mut stopping = self.guard.shared.shutdown_receiver();
        match delay {
            Some(delay) => Box::pin(tokio::time::sleep(delay)),
            None => Box::pin(async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            }),
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        loop {
            match &mut this.stage {
                Stage::Tokens => {
                    let due = ready!(this.generation.poll_tokens(cx, MAX_BATCH));
                    // At the end (no more due) what is held back goes out,
                    // however few.
                    let at_end = due == 0;
                    this.held += due;
                    if this.held == 0 {
                        this.stage = match this.plan.active_fault() {
                            Some(kind) => Stage::Fault(kind),
                            None => Stage::Tail,
                        };
                        continue;
                    }
                    let role_len = this.buf.len();
                    if this.sent == 0 && this.plan.endpoint == Endpoint::Chat {
                        let role = if this.plan.continuous_usage {
                            &this.frames.role_usage
                        } else {
                            &this.frames.role
                        };
                        this.buf.extend_from_slice(role);
                    }
                    let n = this.push_tokens(this.sent, this.sent + this.held, at_end);
                    if n == 0 {
                        // Not a full chunk yet: take the role chunk back
                        // and wait for more tokens.
                        this.buf.truncate(role_len);
                        continue;
                    }
                    this.held -= n;
                    this.sent += n;
                    let now = monotonic_ns();
                    this.first_sent_ns.get_or_insert(now);
                    this.last_sent_ns = now;
                    this.guard
                        .tokens_sent(n, now, this.generation.cached_tokens());
                    return this.take_frame();
                }
                Stage::Tail => {
                    if this.plan.include_usage {
                        this.buf.extend_from_slice(&this.frames.usage_head);
                        push_usage(&mut this.buf, this.plan.prompt_tokens, this.sent);
                        if this.plan.llamacpp {
                            this.buf.extend_from_slice(b",");
                            let timings = this.timings_json();
                            this.buf.extend_from_slice(timings.as_bytes());
                        }
                        this.buf.extend_from_slice(b"}\n\n");
                    } else if this.plan.llamacpp {
                        // The usage chunk's envelope, without usage.
                        let head = &this.frames.usage_head;
                        let envelope = &head[..head.len() - b",\"usage\":".len()];
                        this.buf.extend_from_slice(envelope);
                        this.buf.extend_from_slice(b",");
                        let timings = this.timings_json();
                        this.buf.extend_from_slice(timings.as_bytes());
                        this.buf.extend_from_slice(b"}\n\n");
                    }
                    this.buf.extend_from_slice(b"data: [DONE]\n\n");
                    this.stage = Stage::Done;
                    this.guard
                        .finish(Outcome::Ok, Some(this.plan.finish.as_str()));
                    return this.take_frame();
                }
                Stage::Fault(FaultKind::Error) => {
                    this.buf.extend_from_slice(if this.plan.llamacpp {
                        LLAMACPP_STREAM_ERROR_EVENT
                    } else {
                        STREAM_ERROR_EVENT
                    });
                    this.stage = Stage::Done;
                    this.guard.finish(Outcome::ErrorAfter, None);
                    return this.take_frame();
                }
                Stage::Fault(FaultKind::Disconnect) => {
                    // Give hyper a moment to flush the tokens already handed
                    // over, so the client sees exactly N of them.
                    let wait = this.wait_for_shutdown(Some(Duration::from_millis(5)));
                    this.stage = Stage::Disconnecting(wait);
                }
                Stage::Fault(FaultKind::Stall) => {
                    let wait = this.wait_for_shutdown(None);
                    this.stage = Stage::Stalled(wait);
                }
                Stage::Disconnecting(wait) => {
                    ready!(wait.as_mut().poll(cx));
                    this.stage = Stage::Done;
                    this.guard.finish(Outcome::DisconnectAfter, None);
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "--disconnect-after: dropping the connection",
                    ))));
                }
                Stage::Stalled(wait) => {
                    ready!(wait.as_mut().poll(cx));
                    this.stage = Stage::Done;
                    this.guard.finish(Outcome::StallAfter, None);
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "--stall-after: server stopping",
                    ))));
                }
                Stage::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }
}

/// Every response body the sim sends.
#[derive(Debug)]
pub(crate) enum SimBody {
    Full(Option<Bytes>),
    Stream(Box<SseBody>),
}

impl SimBody {
    pub(crate) fn empty() -> SimBody {
        SimBody::Full(None)
    }

    pub(crate) fn full(bytes: impl Into<Bytes>) -> SimBody {
        SimBody::Full(Some(bytes.into()))
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            SimBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Stream(body) => Pin::new(body.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            SimBody::Full(bytes) => bytes.is_none(),
            SimBody::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            SimBody::Full(None) => SizeHint::with_exact(0),
            SimBody::Stream(_) => SizeHint::default(),
        }
    }
}
