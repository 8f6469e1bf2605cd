//! Server-sent events framing, incremental and allocation-free once warm.
//!
//! Follows the WHATWG event-stream rules that matter for OpenAI-compatible
//! engines: lines end with LF, CRLF or a lone CR (a CRLF split across two
//! reads is one terminator); a line starting with `:` is a comment (pings);
//! `data:` loses one leading space; several `data:` lines of one event are
//! joined with `\n`; a blank line dispatches the event; `id` and `retry` are
//! ignored. A leading UTF-8 BOM is skipped.
//!
//! Errors inside a 200 stream come in two forms that are not `data` events:
//! `event: error` with a `data:` payload (TGI-style gateways), and
//! llama-server's field of its own, `error: {"code":…,"message":…}` (its
//! `server_sent_event(sink, "error", …)`). Both dispatch as
//! [`EventKind::Error`] with the payload as data, so an error is never taken
//! for a message; other event types are dispatched as messages.
//!
//! One deviation, on purpose: at the end of the body a pending line and a
//! pending event are dispatched instead of dropped, because some engines end
//! the stream with `data: [DONE]\n` and no blank line.
//!
//! Reads can split anything anywhere, so the bytes of an unfinished line are
//! carried in a buffer that is reused for the whole stream; the tests feed
//! every framing split at every byte offset.

use std::ops::ControlFlow;

/// What a dispatched event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    /// `data:` lines (of any event type but `error`).
    Message,
    /// `event: error`, or an `error:` field: the data is the server's error.
    Error,
}

/// The event being assembled.
#[derive(Debug, Default)]
struct Pending {
    /// Data of the event (`data:` and `error:` values).
    data: Vec<u8>,
    has_data: bool,
    /// `event: error` or an `error:` field was seen.
    is_error: bool,
}

/// Incremental parser state for one response body.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of a line whose terminator has not arrived yet.
    partial: Vec<u8>,
    /// The event being assembled.
    pending: Pending,
    /// The previous read ended with CR: a LF at the start of the next one
    /// belongs to the same terminator.
    after_cr: bool,
    /// The first bytes have been checked for a BOM.
    started: bool,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseParser {
    /// Feeds one read; calls `on_event` with the data of each complete event.
    /// Stops early when `on_event` breaks.
    pub(crate) fn feed(
        &mut self,
        mut input: &[u8],
        on_event: &mut impl FnMut(EventKind, &[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if !self.started {
            // Collect the first three bytes (they may come one per read) to
            // see whether they are a BOM.
            let take = (BOM.len() - self.partial.len()).min(input.len());
            self.partial.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.partial.len() < BOM.len() && BOM.starts_with(&self.partial) {
                return ControlFlow::Continue(());
            }
            self.started = true;
            let head = std::mem::take(&mut self.partial);
            let head = head.strip_prefix(BOM).unwrap_or(&head);
            self.feed_lines(head, on_event)?;
        }
        self.feed_lines(input, on_event)
    }

    fn feed_lines(
        &mut self,
        mut input: &[u8],
        on_event: &mut impl FnMut(EventKind, &[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if self.after_cr && !input.is_empty() {
            self.after_cr = false;
            if let Some(rest) = input.strip_prefix(b"\n") {
                input = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\n', b'\r', input) {
            let terminator = input[end];
            let line_part = &input[..end];
            input = &input[end + 1..];
            if terminator == b'\r' {
                match input.first() {
                    Some(b'\n') => input = &input[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let flow = if self.partial.is_empty() {
                match (self.pending.is_empty(), line_part.strip_prefix(b"data:")) {
                    (true, Some(value)) if let Some((rest, after_cr)) = blank_line(input) => {
                        // The usual event, one `data:` line and the blank
                        // line that ends it, whole in this read: dispatched
                        // from the read itself, not copied.
                        input = rest;
                        self.after_cr = after_cr;
                        on_event(
                            EventKind::Message,
                            value.strip_prefix(b" ").unwrap_or(value),
                        )
                    }
                    _ => self.pending.line(line_part, on_event),
                }
            } else {
                self.partial.extend_from_slice(line_part);
                let flow = self.pending.line(&self.partial, on_event);
                self.partial.clear();
                flow
            };
            flow?;
        }
        self.partial.extend_from_slice(input);
        ControlFlow::Continue(())
    }

    /// End of the body: dispatches what is pending (see the module comment).
    pub(crate) fn finish(
        &mut self,
        on_event: &mut impl FnMut(EventKind, &[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if !self.partial.is_empty() {
            let partial = std::mem::take(&mut self.partial);
            let flow = self.pending.line(&partial, on_event);
            self.partial = partial;
            self.partial.clear();
            flow?;
        }
        self.pending.line(b"", on_event)
    }
}

/// The rest of `input` after the blank line it starts with, and whether
/// that line ended with a CR at the end of `input` (a LF may follow in the
/// next read); `None` when `input` does not start with a blank line.
fn blank_line(input: &[u8]) -> Option<(&[u8], bool)> {
    match input {
        [b'\n', rest @ ..] | [b'\r', b'\n', rest @ ..] => Some((rest, false)),
        [b'\r'] => Some((&[], true)),
        [b'\r', rest @ ..] => Some((rest, false)),
        _ => None,
    }
}

impl Pending {
    /// Nothing of an event has been seen since the last dispatch.
    fn is_empty(&self) -> bool {
        !self.has_data && !self.is_error && self.data.is_empty()
    }

    fn line(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(EventKind, &[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if line.is_empty() {
            // An error event is dispatched even without data (WHATWG drops
            // an event with no data, but an error must not pass unseen).
            if self.has_data || self.is_error {
                let kind = if self.is_error {
                    EventKind::Error
                } else {
                    EventKind::Message
                };
                self.has_data = false;
                self.is_error = false;
                let flow = on_event(kind, &self.data);
                self.data.clear();
                return flow;
            }
            return ControlFlow::Continue(());
        }
        if line[0] == b':' {
            return ControlFlow::Continue(());
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" | b"error" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
                self.is_error |= field == b"error";
            }
            b"event" if value == b"error" => self.is_error = true,
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` fed in the given pieces; returns the events as strings,
    /// error events prefixed with `!`.
    fn parse_pieces(pieces: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        let mut on_event = |kind: EventKind, data: &[u8]| {
            let prefix = if kind == EventKind::Error { "!" } else { "" };
            events.push(format!(
                "{prefix}{}",
                String::from_utf8(data.to_vec()).expect("utf-8")
            ));
            ControlFlow::Continue(())
        };
        for piece in pieces {
            let _ = parser.feed(piece, &mut on_event);
        }
        let _ = parser.finish(&mut on_event);
        events
    }

    /// Every split of `input` into two reads, and into one read per byte,
    /// gives `expected`.
    fn check_every_split(input: &str, expected: &[&str]) {
        let bytes = input.as_bytes();
        let whole = parse_pieces(&[bytes]);
        assert_eq!(whole, expected, "whole input {input:?}");
        for split_idx in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split_idx);
            let got = parse_pieces(&[a, b]);
            assert_eq!(got, expected, "split at {split_idx} of {input:?}");
            for second_idx in split_idx..=bytes.len() {
                let (b1, b2) = b.split_at(second_idx - split_idx);
                let got = parse_pieces(&[a, b1, b2]);
                assert_eq!(
                    got, expected,
                    "splits at {split_idx}, {second_idx} of {input:?}"
                );
            }
        }
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_pieces(&bytewise), expected, "byte by byte {input:?}");
    }

    const VLLM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";

    #[test]
    fn lf_framing() {
        check_every_split(
            VLLM,
            &["{\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}", "[DONE]"],
        );
    }

    #[test]
    fn crlf_framing() {
        check_every_split(
            "data: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n",
            &["{\"a\":1}", "[DONE]"],
        );
    }

    #[test]
    fn lone_cr_framing() {
        check_every_split("data: x\r\rdata: y\r\r", &["x", "y"]);
    }

    #[test]
    fn comments_and_pings_are_ignored() {
        check_every_split(
            ": ping\n\n:\ndata: a\n: inside\n\n: ping - 2025-01-01\r\n\r\ndata: b\n\n",
            &["a", "b"],
        );
    }

    #[test]
    fn multi_line_data_is_joined() {
        check_every_split("data: {\"a\":\ndata:1}\n\n", &["{\"a\":\n1}"]);
    }

    #[test]
    fn other_fields_are_ignored_and_space_is_optional() {
        check_every_split(
            "event: ping\nid: 7\nretry: 10\ndata:{\"a\":{}}\n\nevent: ping\n\n",
            &["{\"a\":{}}"],
        );
    }

    #[test]
    fn error_events_and_error_fields_are_errors() {
        // TGI-style gateways: an `event: error` with a data payload; the
        // event type lasts for one event only.
        check_every_split(
            "data: a\n\nevent: error\ndata: {\"error\":\"boom\"}\n\ndata: b\n\n",
            &["a", "!{\"error\":\"boom\"}", "b"],
        );
        // llama-server: `error:` as a field of its own, no [DONE] after it.
        check_every_split(
            "data: a\n\nerror: {\"code\":400,\"message\":\"m\",\"type\":\"t\"}\n\n",
            &["a", "!{\"code\":400,\"message\":\"m\",\"type\":\"t\"}"],
        );
        // An error event without data still dispatches, and at the end of
        // the body without a blank line.
        check_every_split("event: error\n\n", &["!"]);
        check_every_split("error: x", &["!x"]);
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        check_every_split("data:  x\n\ndata\n\n", &[" x", ""]);
    }

    #[test]
    fn missing_done_and_missing_blank_line_at_eof() {
        check_every_split("data: a\n\ndata: b\n", &["a", "b"]);
        check_every_split("data: a\n\ndata: [DONE]", &["a", "[DONE]"]);
    }

    #[test]
    fn bom_is_skipped() {
        check_every_split("\u{FEFF}data: a\n\n", &["a"]);
    }

    #[test]
    fn empty_deltas_and_reasoning_are_events() {
        check_every_split(
            "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"reasoning_content\":\"x\"}}]}\r\n\r\n",
            &[
                "{\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
                "{\"choices\":[{\"delta\":{\"reasoning_content\":\"x\"}}]}",
            ],
        );
    }

    #[test]
    fn break_stops_feeding() {
        let mut parser = SseParser::default();
        let mut n_events = 0;
        let flow = parser.feed(b"data: a\n\ndata: b\n\n", &mut |_, _| {
            n_events += 1;
            ControlFlow::Break(())
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(n_events, 1);
    }
}
