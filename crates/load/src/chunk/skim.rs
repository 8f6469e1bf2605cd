//! The fast look into a chunk: walks the raw JSON bytes once and decodes
//! only what the measurement reads.
//!
//! Whether `content`, `text` or reasoning is non-empty is seen from the raw
//! string (its first byte after the quote), without decoding or keeping it;
//! unknown fields (`id`, `model`, `logprobs`, …) are stepped over by their
//! structure; `finish_reason` is borrowed; `usage`'s counts are read as
//! integers. Anything this walk does not fully understand (an error object,
//! a `\u` escape in a string it reads, llama-server's `timings`, a duplicate
//! field, a number where a count should be…) makes it give up (`None`), and
//! the payload goes through serde in `ChunkReader::parse`, whose answer is the
//! reference: the tests check that wherever this walk answers, serde answers
//! the same.

use std::borrow::Cow;

use super::shape::{Count, Field, Hole, HoleKind, Holes, plain_count};
use super::{ChunkInfo, Usage};

/// Deeper than this, serde decides (it has a recursion limit of its own).
const MAX_DEPTH: u32 = 64;

/// The chunk `data` describes, or `None` where serde must decide.
#[cfg(test)]
pub(super) fn skim(data: &[u8]) -> Option<ChunkInfo<'_>> {
    skim_with_holes(data).map(|(info, _)| info)
}

/// The chunk `data` describes and, where it is a token chunk that the next
/// ones can be matched against (`shape.rs`), its holes; `None` where serde
/// must decide.
pub(super) fn skim_with_holes(data: &[u8]) -> Option<(ChunkInfo<'_>, Option<Holes>)> {
    let mut walk = Walk {
        data,
        pos: 0,
        holes: Holes::default(),
    };
    let info = walk.chunk()?;
    walk.ws();
    if walk.pos != data.len() {
        return None;
    }
    let holes = (walk.holes.usable() && info.finish_reason.is_none()).then_some(walk.holes);
    Some((info, holes))
}

struct Walk<'a> {
    data: &'a [u8],
    pos: usize,
    /// The values read that may change from one chunk to the next.
    holes: Holes,
}

/// Fields of one object already seen: a second one is serde's duplicate-field
/// error, so it is left to serde.
#[derive(Default)]
struct Seen(u8);

impl Seen {
    fn first(&mut self, bit: u8) -> Option<()> {
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }
}

impl<'a> Walk<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&b) = self.data.get(self.pos) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.data.get(self.pos).copied()
    }

    #[inline]
    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    #[inline]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.data.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// `null`, consumed, when it comes next.
    fn null(&mut self) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(true);
        }
        Some(false)
    }

    /// A string's raw bytes (between the quotes, escapes as written) and
    /// whether it holds a backslash. Validates escapes and control bytes as
    /// serde does; a `\u` escape is left to serde.
    fn raw_string(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            let rest = self.data.get(self.pos..)?;
            let at = memchr::memchr2(b'"', b'\\', rest)?;
            if rest[..at].iter().any(|&b| b < 0x20) {
                return None;
            }
            self.pos += at;
            if rest[at] == b'"' {
                let raw = &self.data[start..self.pos];
                self.pos += 1;
                return Some((raw, escaped));
            }
            escaped = true;
            match self.data.get(self.pos + 1)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                _ => return None,
            }
        }
    }

    /// A key, which must be plain ASCII without escapes (serde decodes and
    /// checks every key; those are left to it).
    fn key(&mut self) -> Option<&'a [u8]> {
        let (raw, escaped) = self.raw_string()?;
        self.eat(b':')?;
        (!escaped && raw.is_ascii()).then_some(raw)
    }

    /// Whether a string (the chunk's `field`) is non-empty, or `None` for
    /// `null`. Its UTF-8 is checked where it is not ASCII, as serde would.
    fn non_empty(&mut self, field: Field) -> Option<Option<bool>> {
        if self.null()? {
            return Some(None);
        }
        let (raw, _) = self.raw_string()?;
        if !raw.is_ascii() {
            std::str::from_utf8(raw).ok()?;
        }
        let end = self.pos - 1;
        self.holes.push(Hole {
            start: end - raw.len(),
            end,
            kind: HoleKind::Text(field),
        });
        Some(Some(!raw.is_empty()))
    }

    /// Walks an object: `field` is called with each key and must consume
    /// its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The top-level chunk.
    fn chunk(&mut self) -> Option<ChunkInfo<'a>> {
        let mut info = ChunkInfo::default();
        let mut seen = Seen::default();
        self.object(|walk, key| match key {
            b"choices" => {
                seen.first(1)?;
                walk.choices(&mut info)
            }
            b"usage" => {
                seen.first(2)?;
                info.usage = walk.usage()?;
                Some(())
            }
            b"object" => {
                seen.first(4)?;
                if walk.null()? {
                    return Some(());
                }
                let (raw, escaped) = walk.raw_string()?;
                // An error object, or a value serde must decode: serde decides.
                (raw != b"error" && !escaped && raw.is_ascii()).then_some(())
            }
            // In-band errors and llama-server's timings: rare, serde reads them.
            b"error" | b"timings" => None,
            _ => walk.skip(0),
        })?;
        Some(info)
    }

    /// `choices`: the first element is read, the others stepped over.
    fn choices(&mut self, info: &mut ChunkInfo<'a>) -> Option<()> {
        if self.null()? {
            return Some(());
        }
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.pos += 1;
            return Some(());
        }
        self.choice(info)?;
        loop {
            match self.peek()? {
                b',' => {
                    self.pos += 1;
                    self.skip(1)?;
                }
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn choice(&mut self, info: &mut ChunkInfo<'a>) -> Option<()> {
        let mut seen = Seen::default();
        let mut text = None;
        self.object(|walk, key| match key {
            b"delta" => {
                seen.first(1)?;
                walk.delta(info)
            }
            b"text" => {
                seen.first(2)?;
                text = walk.non_empty(Field::Content)?;
                Some(())
            }
            b"finish_reason" => {
                seen.first(4)?;
                if walk.null()? {
                    return Some(());
                }
                let (raw, escaped) = walk.raw_string()?;
                if escaped {
                    return None;
                }
                info.finish_reason = Some(Cow::Borrowed(std::str::from_utf8(raw).ok()?));
                Some(())
            }
            _ => walk.skip(2),
        })?;
        info.content |= text.unwrap_or(false);
        Some(())
    }

    fn delta(&mut self, info: &mut ChunkInfo<'a>) -> Option<()> {
        if self.null()? {
            return Some(());
        }
        let mut seen = Seen::default();
        self.object(|walk, key| {
            let (bit, field) = match key {
                b"content" => (1, Field::Content),
                b"reasoning_content" => (2, Field::Reasoning),
                b"reasoning" => (4, Field::Reasoning),
                _ => return walk.skip(3),
            };
            seen.first(bit)?;
            let non_empty = walk.non_empty(field)?.unwrap_or(false);
            if field == Field::Content {
                info.content |= non_empty;
            } else {
                info.reasoning |= non_empty;
            }
            Some(())
        })
    }

    /// `usage`: the two counts as integers; the details are left to serde
    /// (they come once, on the last chunk).
    fn usage(&mut self) -> Option<Option<Usage>> {
        if self.null()? {
            return Some(None);
        }
        let mut usage = Usage::default();
        let mut seen = Seen::default();
        self.object(|walk, key| match key {
            b"prompt_tokens" => {
                seen.first(1)?;
                // Not a hole: a response's prompt count does not change.
                usage.prompt_tokens = walk.count(None)?;
                Some(())
            }
            b"completion_tokens" => {
                seen.first(2)?;
                usage.completion_tokens = walk.count(Some(Count::Completion))?;
                Some(())
            }
            b"total_tokens" => {
                seen.first(8)?;
                walk.count(Some(Count::Other)).map(|_| ())
            }
            b"completion_tokens_details" => {
                seen.first(4)?;
                if walk.null()? { Some(()) } else { None }
            }
            _ => walk.skip(2),
        })?;
        Some(Some(usage))
    }

    /// A `u32` count or `null`; anything else (a sign, a fraction, an
    /// exponent, too large) is left to serde.
    /// `hole`: which count it is, when a next chunk may change it.
    fn count(&mut self, hole: Option<Count>) -> Option<Option<u32>> {
        if self.null()? {
            return Some(None);
        }
        let (value, len) = plain_count(&self.data[self.pos..])?;
        if let Some(kind) = hole {
            self.holes.push(Hole {
                start: self.pos,
                end: self.pos + len,
                kind: HoleKind::Count(kind),
            });
        }
        self.pos += len;
        Some(Some(value))
    }

    /// Steps over one value of any kind, validating its structure.
    fn skip(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.peek()? {
            b'"' => self.raw_string().map(|_| ()),
            b'{' => self.object(|walk, _| walk.skip(depth + 1)),
            b'[' => {
                self.pos += 1;
                if self.peek()? == b']' {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// A JSON number, by its grammar.
    fn number(&mut self) -> Option<()> {
        let digits = |walk: &mut Self| {
            let start = walk.pos;
            while walk.data.get(walk.pos).is_some_and(u8::is_ascii_digit) {
                walk.pos += 1;
            }
            walk.pos - start
        };
        if self.data.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let start = self.pos;
        let n = digits(self);
        if n == 0 || (n > 1 && self.data[start] == b'0') {
            return None;
        }
        if self.data.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.data.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.data.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(())
    }
}
