//! Server-sent events framing, incremental and allocation-free once warm.
//!
//! Follows the WHATWG event-stream rules that matter for OpenAI-compatible
//! engines: lines end with LF, CRLF or a lone CR (a CRLF split across two
//! reads is one terminator); a line starting with `:` is a comment (pings);
//! `data:` loses one leading space; several `data:` lines of one event are
//! joined with `\n`; a blank line dispatches the event; other fields (`event`,
//! `id`, `retry`) are ignored. A leading UTF-8 BOM is skipped.
//!
//! One deviation, on purpose: at the end of the body a pending line and a
//! pending event are dispatched instead of dropped, because some engines end
//! the stream with `data: [DONE]\n` and no blank line.
//!
//! Reads can split anything anywhere, so the bytes of an unfinished line are
//! carried in a buffer that is reused for the whole stream; the tests feed
//! every framing split at every byte offset.

use std::ops::ControlFlow;

/// Incremental parser state for one response body.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of a line whose terminator has not arrived yet.
    partial: Vec<u8>,
    /// Data of the event being assembled.
    data: Vec<u8>,
    has_data: bool,
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
        on_event: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
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
        on_event: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
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
                Self::line(&mut self.data, &mut self.has_data, line_part, on_event)
            } else {
                self.partial.extend_from_slice(line_part);
                let flow = Self::line(&mut self.data, &mut self.has_data, &self.partial, on_event);
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
        on_event: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if !self.partial.is_empty() {
            let partial = std::mem::take(&mut self.partial);
            let flow = Self::line(&mut self.data, &mut self.has_data, &partial, on_event);
            self.partial = partial;
            self.partial.clear();
            flow?;
        }
        Self::line(&mut self.data, &mut self.has_data, b"", on_event)
    }

    fn line(
        data: &mut Vec<u8>,
        has_data: &mut bool,
        line: &[u8],
        on_event: &mut impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        if line.is_empty() {
            if *has_data {
                *has_data = false;
                let flow = on_event(data);
                data.clear();
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
        if field == b"data" {
            if *has_data {
                data.push(b'\n');
            }
            data.extend_from_slice(value);
            *has_data = true;
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `input` fed in the given pieces; returns the events as strings.
    fn parse_pieces(pieces: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        let mut on_event = |data: &[u8]| {
            events.push(String::from_utf8(data.to_vec()).expect("utf-8"));
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
            "event: error\nid: 7\nretry: 10\ndata:{\"error\":{}}\n\nevent: ping\n\n",
            &["{\"error\":{}}"],
        );
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
        let flow = parser.feed(b"data: a\n\ndata: b\n\n", &mut |_| {
            n_events += 1;
            ControlFlow::Break(())
        });
        assert_eq!(flow, ControlFlow::Break(()));
        assert_eq!(n_events, 1);
    }
}
