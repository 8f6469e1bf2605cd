//! The shape of a stream's previous token chunk, matched against the next.
//!
//! An engine sends a response's token chunks from one template: the same
//! `id`, `created`, `model`, field order and trailer around the few values
//! that change, the token's text and, with `continuous_usage_stats`, the
//! usage counts. vLLM's
//! `{"id":"chatcmpl-…","object":"chat.completion.chunk","created":…,"model":…,"choices":[{"index":0,"delta":{"content":"`
//! … `"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":16,"total_tokens":17,"completion_tokens":1}}`
//! is one such.
//!
//! When the raw walk (`skim.rs`) has read a chunk in which exactly one
//! string was looked at, with no `finish_reason`, its bytes are kept with
//! the spans of its *holes*: that string and the completion and total
//! counts (the prompt's count does not change within a response, so it is
//! kept as bytes). A next chunk whose bytes between the holes are the kept
//! ones, with a string in the string's hole (no unescaped quote, no control
//! byte, a known escape, valid UTF-8: what the walk checks) and a plain
//! count in each count's hole, is the same JSON document but for those
//! values, so only they are read: word-wise comparisons and a short scan
//! instead of a walk over every byte. Anything else takes the walk, and the
//! tests check that both answer what serde answers.

use super::{ChunkInfo, Usage};

/// At most this many holes are kept; a chunk with more is walked.
const MAX_HOLES: usize = 6;

/// Which of the chunk's fields the varying string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    /// `delta.content` or `text`.
    Content,
    /// `delta.reasoning_content` or `delta.reasoning`.
    Reasoning,
}

/// Which usage count a number is (the prompt's does not change within a
/// response, so it is no hole).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    Completion,
    /// Read only to match (`total_tokens`).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HoleKind {
    /// A string's raw bytes between its quotes.
    Text(Field),
    /// A count's digits.
    Count(Count),
}

/// A span of the chunk whose value may change from one chunk to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hole {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) kind: HoleKind,
}

/// The holes of a walked chunk, in order.
#[derive(Debug, Clone, Copy)]
pub(super) struct Holes {
    list: [Hole; MAX_HOLES],
    len: usize,
    strings: usize,
    overflow: bool,
}

impl Default for Holes {
    fn default() -> Holes {
        let none = Hole {
            start: 0,
            end: 0,
            kind: HoleKind::Count(Count::Other),
        };
        Holes {
            list: [none; MAX_HOLES],
            len: 0,
            strings: 0,
            overflow: false,
        }
    }
}

impl Holes {
    pub(super) fn push(&mut self, hole: Hole) {
        if matches!(hole.kind, HoleKind::Text(_)) {
            self.strings += 1;
        }
        match self.list.get_mut(self.len) {
            Some(slot) => {
                *slot = hole;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Whether a chunk with these holes can be matched against: one string
    /// (the token's), and all of them kept.
    pub(super) fn usable(&self) -> bool {
        self.strings == 1 && !self.overflow
    }

    pub(super) fn as_slice(&self) -> &[Hole] {
        &self.list[..self.len]
    }
}

/// The previous token chunk's bytes, its holes and what it said besides.
#[derive(Debug, Default)]
pub(super) struct Shape {
    bytes: Vec<u8>,
    holes: Holes,
    /// Its usage, whose counts the holes replace; `None` without one.
    usage: Option<Usage>,
}

impl Shape {
    /// The chunk `data` describes, when it is the kept chunk with other
    /// values in its holes; `None` otherwise.
    #[inline]
    pub(super) fn matches<'a>(&self, data: &'a [u8]) -> Option<ChunkInfo<'a>> {
        // Nothing learned yet (a learned shape has its string's hole).
        if self.holes.as_slice().is_empty() {
            return None;
        }
        let mut info = ChunkInfo {
            usage: self.usage,
            ..ChunkInfo::default()
        };
        let mut pos = 0;
        let mut kept = 0;
        for hole in self.holes.as_slice() {
            let between = &self.bytes[kept..hole.start];
            if !same(data.get(pos..pos + between.len())?, between) {
                return None;
            }
            pos += between.len();
            kept = hole.end;
            let rest = &data[pos..];
            match hole.kind {
                HoleKind::Text(field) => {
                    let len = string_len(rest)?;
                    pos += len;
                    let non_empty = len > 0;
                    match field {
                        Field::Content => info.content = non_empty,
                        Field::Reasoning => info.reasoning = non_empty,
                    }
                }
                HoleKind::Count(count) => {
                    let (value, len) = plain_count(rest)?;
                    pos += len;
                    let usage = info.usage.as_mut()?;
                    if count == Count::Completion {
                        usage.completion_tokens = Some(value);
                    }
                }
            }
        }
        let rest = &self.bytes[kept..];
        (data.len() - pos == rest.len() && same(&data[pos..], rest)).then_some(info)
    }

    /// Keeps `data` as the shape to match: `holes` are its varying values
    /// (they must be `usable`), `usage` what it said of usage.
    pub(super) fn learn(&mut self, data: &[u8], holes: Holes, usage: Option<Usage>) {
        self.bytes.clear();
        self.bytes.extend_from_slice(data);
        self.holes = holes;
        self.usage = usage;
    }
}

/// Whether two slices of one length are equal, eight bytes at a time: the
/// pieces between holes are short (a few to a hundred-odd bytes) and many,
/// where a call to libc's `memcmp` costs more than the comparison.
#[inline]
fn same(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let mut a_words = a.chunks_exact(8);
    let mut b_words = b.chunks_exact(8);
    for (x, y) in a_words.by_ref().zip(b_words.by_ref()) {
        if u64::from_ne_bytes(x.try_into().unwrap_or_default())
            != u64::from_ne_bytes(y.try_into().unwrap_or_default())
        {
            return false;
        }
    }
    a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .all(|(x, y)| x == y)
}

/// The length of the string body at the start of `raw`, up to its closing
/// quote, when the walk would accept it whole: no control byte, only the
/// escapes the walk reads (`\u` is left to serde), valid UTF-8.
fn string_len(raw: &[u8]) -> Option<usize> {
    let mut idx = 0;
    let mut ascii = true;
    loop {
        match *raw.get(idx)? {
            b'"' => break,
            b'\\' => match raw.get(idx + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => idx += 2,
                _ => return None,
            },
            0..0x20 => return None,
            byte => {
                ascii &= byte.is_ascii();
                idx += 1;
            }
        }
    }
    (ascii || std::str::from_utf8(&raw[..idx]).is_ok()).then_some(idx)
}

/// A count at the start of `raw` as the walk reads one: 1 to 9 digits, no
/// leading zero, not followed by a fraction or an exponent. Its value and
/// length.
pub(super) fn plain_count(raw: &[u8]) -> Option<(u32, usize)> {
    let len = raw.iter().take_while(|b| b.is_ascii_digit()).count();
    if len == 0 || len > 9 || (len > 1 && raw[0] == b'0') {
        return None;
    }
    if matches!(raw.get(len), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    let value = raw[..len]
        .iter()
        .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    Some((value, len))
}
