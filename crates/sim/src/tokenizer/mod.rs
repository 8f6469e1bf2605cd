//! The sim's deterministic, reversible tokenizer and its chat template.
//!
//! It exists so that token counts are *not* "characters / 4": a client that
//! guesses lengths from characters is wrong against the sim exactly as it is
//! against a real BPE engine. `/tokenize`, `/detokenize`, `usage` and the
//! context-length check all go through this module, and it is public so that
//! tests (ours and the load crate's) can count tokens the way the sim does.
//! `docs/SIM.md` describes the algorithm; in short:
//!
//! * ids 0..3 are special tokens (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>`),
//!   recognised anywhere in the text;
//! * ids 3..259 are the 256 bytes (digits, punctuation, whitespace and every
//!   byte of a non-ASCII character are one token each);
//! * a run of ASCII letters, with at most one leading space, is one token when
//!   it is a vocabulary word (lower case or Capitalised, e.g. `" the"`, `"The"`);
//! * any other letter run is cut into chunks of up to four letters, each one
//!   token (the first chunk carries the leading space).

use std::collections::HashMap;
use std::sync::OnceLock;

/// `<|endoftext|>`: end of sequence for `/v1/completions`.
pub const ENDOFTEXT: u32 = 0;
/// `<|im_start|>`: opens a chat turn.
pub const IM_START: u32 = 1;
/// `<|im_end|>`: closes a chat turn; end of sequence for chat completions.
pub const IM_END: u32 = 2;

const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
const BYTE_BASE: u32 = 3;
const CHUNK_BASE: u32 = BYTE_BASE + 256;
/// Longest letter chunk of an out-of-vocabulary word.
const MAX_CHUNK: usize = 4;
/// 26^1 + 26^2 + 26^3 + 26^4, times four variants (plain, space, Capital, space + Capital).
const N_CHUNK_IDS: u32 = 4 * (26 + 676 + 17_576 + 456_976);
const WORD_BASE: u32 = CHUNK_BASE + N_CHUNK_IDS;

/// The built-in vocabulary words, one per line, most frequent first.
const WORDS: &str = include_str!("words.txt");

/// How many of the most frequent words the generator draws output from.
const N_OUTPUT_WORDS: usize = 800;

/// A token the sim generates: its id and its text, already escaped for a JSON string.
#[derive(Debug, Clone, Copy)]
pub struct OutputToken {
    /// The token id, as `/detokenize` takes it.
    pub id: u32,
    /// The token text, escaped for the inside of a JSON string.
    pub json_text: &'static str,
    /// The token text as it is.
    pub text: &'static str,
}

/// A chat message after its content parts are joined: what the template sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant`, `tool`...
    pub role: String,
    /// The text content.
    pub content: String,
}

/// An id that is not in the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("token id {0} is out of vocabulary")]
pub struct UnknownToken(pub u32);

#[derive(Debug)]
struct Vocab {
    /// Word forms (`"the"`, `" the"`, `"The"`, `" The"`) to ids.
    word_ids: HashMap<Box<str>, u32>,
    /// Texts of the word ids, indexed by `id - WORD_BASE`.
    word_texts: Vec<Box<str>>,
    /// Generator tables: a first token (Capitalised, no space) and continuations.
    first_tokens: Vec<OutputToken>,
    next_tokens: Vec<OutputToken>,
    comma: OutputToken,
    period: OutputToken,
}

fn vocab() -> &'static Vocab {
    static VOCAB: OnceLock<Vocab> = OnceLock::new();
    VOCAB.get_or_init(Vocab::build)
}

fn capitalise(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    if let Some(first) = chars.next() {
        out.push(first.to_ascii_uppercase());
        out.push_str(chars.as_str());
    }
    out
}

fn leak(text: String) -> &'static str {
    // The vocabulary lives for the whole process (it sits in a static), so
    // handing out `'static` strings lets the hot path copy them without
    // reference counting.
    Box::leak(text.into_boxed_str())
}

fn json_escape(text: &str) -> String {
    let quoted = serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""));
    quoted[1..quoted.len() - 1].to_owned()
}

impl Vocab {
    fn build() -> Vocab {
        let mut word_ids = HashMap::new();
        let mut word_texts: Vec<Box<str>> = Vec::new();
        let words: Vec<&str> = WORDS
            .lines()
            .map(str::trim)
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
            .collect();
        for word in &words {
            let cap = capitalise(word);
            for form in [
                (*word).to_owned(),
                format!(" {word}"),
                cap.clone(),
                format!(" {cap}"),
            ] {
                if word_ids.contains_key(form.as_str()) {
                    continue;
                }
                let id = WORD_BASE + word_texts.len() as u32;
                word_ids.insert(form.clone().into_boxed_str(), id);
                word_texts.push(form.into_boxed_str());
            }
        }
        let token = |text: String, id: u32| {
            let json_text = leak(json_escape(&text));
            OutputToken {
                id,
                json_text,
                text: leak(text),
            }
        };
        let mut first_tokens = Vec::new();
        let mut next_tokens = Vec::new();
        for word in words.iter().take(N_OUTPUT_WORDS) {
            let cap = capitalise(word);
            if let Some(&id) = word_ids.get(cap.as_str()) {
                first_tokens.push(token(cap, id));
            }
            let spaced = format!(" {word}");
            if let Some(&id) = word_ids.get(spaced.as_str()) {
                next_tokens.push(token(spaced, id));
            }
        }
        Vocab {
            word_ids,
            word_texts,
            first_tokens,
            next_tokens,
            comma: token(",".to_owned(), BYTE_BASE + u32::from(b',')),
            period: token(".".to_owned(), BYTE_BASE + u32::from(b'.')),
        }
    }
}

/// Number of ids in the vocabulary: valid ids are `0..vocab_size()`.
pub fn vocab_size() -> u32 {
    WORD_BASE + vocab().word_texts.len() as u32
}

/// Tokenizes `text` (no special tokens are added).
pub fn encode(text: &str) -> Vec<u32> {
    let mut ids = Vec::with_capacity(text.len() / 4 + 1);
    encode_into(text, &mut ids);
    ids
}

/// Number of tokens of `text`: `encode(text).len()` without keeping the ids.
pub fn count(text: &str) -> usize {
    encode(text).len()
}

fn encode_into(text: &str, ids: &mut Vec<u32>) {
    let vocab = vocab();
    let bytes = text.as_bytes();
    let mut idx = 0;
    while idx < bytes.len() {
        let byte = bytes[idx];
        if byte == b'<'
            && let Some((special_id, special)) = SPECIALS
                .iter()
                .enumerate()
                .find(|(_, s)| bytes[idx..].starts_with(s.as_bytes()))
        {
            ids.push(special_id as u32);
            idx += special.len();
            continue;
        }
        let has_space = byte == b' ' && bytes.get(idx + 1).is_some_and(u8::is_ascii_alphabetic);
        if byte.is_ascii_alphabetic() || has_space {
            let letters_start = if has_space { idx + 1 } else { idx };
            let mut end = letters_start;
            while end < bytes.len() && bytes[end].is_ascii_alphabetic() {
                end += 1;
            }
            // ASCII-only ranges, so slicing on these indexes cannot split a char.
            let segment = &text[idx..end];
            if let Some(&id) = vocab.word_ids.get(segment) {
                ids.push(id);
            } else {
                push_chunks(&text[letters_start..end], has_space, ids);
            }
            idx = end;
            continue;
        }
        ids.push(BYTE_BASE + u32::from(byte));
        idx += 1;
    }
}

/// Cuts an out-of-vocabulary letter run into chunks of up to `MAX_CHUNK`
/// letters. A chunk has an id only when its letters after the first are
/// lower case, so `"HTTP"` becomes four one-letter chunks.
fn push_chunks(letters: &str, has_space: bool, ids: &mut Vec<u32>) {
    let bytes = letters.as_bytes();
    let mut pos = 0;
    let mut space = has_space;
    while pos < bytes.len() {
        let mut take = MAX_CHUNK.min(bytes.len() - pos);
        while take > 1
            && !bytes[pos + 1..pos + take]
                .iter()
                .all(u8::is_ascii_lowercase)
        {
            take -= 1;
        }
        ids.push(chunk_id(&bytes[pos..pos + take], space));
        space = false;
        pos += take;
    }
}

fn chunk_offset(len: usize) -> u32 {
    (1..len).map(|l| 4 * 26u32.pow(l as u32)).sum()
}

fn chunk_id(letters: &[u8], space: bool) -> u32 {
    let cap = letters[0].is_ascii_uppercase();
    let variant = u32::from(space) + 2 * u32::from(cap);
    let index = letters.iter().fold(0u32, |acc, b| {
        acc * 26 + u32::from(b.to_ascii_lowercase() - b'a')
    });
    CHUNK_BASE + chunk_offset(letters.len()) + variant * 26u32.pow(letters.len() as u32) + index
}

fn push_chunk_text(id: u32, out: &mut Vec<u8>) {
    let mut rel = id - CHUNK_BASE;
    let mut len = 1;
    while rel >= 4 * 26u32.pow(len as u32) {
        rel -= 4 * 26u32.pow(len as u32);
        len += 1;
    }
    let per_variant = 26u32.pow(len as u32);
    let variant = rel / per_variant;
    let mut index = rel % per_variant;
    if variant & 1 == 1 {
        out.push(b' ');
    }
    let start = out.len();
    for _ in 0..len {
        out.push(b'a');
    }
    for pos in (0..len).rev() {
        out[start + pos] = b'a' + (index % 26) as u8;
        index /= 26;
    }
    if variant & 2 == 2 {
        out[start] = out[start].to_ascii_uppercase();
    }
}

fn push_token_bytes(id: u32, out: &mut Vec<u8>, skip_special: bool) -> Result<(), UnknownToken> {
    let vocab = vocab();
    if id < BYTE_BASE {
        if !skip_special {
            out.extend_from_slice(SPECIALS[id as usize].as_bytes());
        }
    } else if id < CHUNK_BASE {
        out.push((id - BYTE_BASE) as u8);
    } else if id < WORD_BASE {
        push_chunk_text(id, out);
    } else {
        let text = vocab
            .word_texts
            .get((id - WORD_BASE) as usize)
            .ok_or(UnknownToken(id))?;
        out.extend_from_slice(text.as_bytes());
    }
    Ok(())
}

/// Turns ids back into text; special tokens are kept, as vLLM's `/detokenize` does.
/// Bytes that do not form UTF-8 are replaced by U+FFFD.
pub fn decode(ids: &[u32]) -> Result<String, UnknownToken> {
    let mut bytes = Vec::with_capacity(ids.len() * 5);
    for &id in ids {
        push_token_bytes(id, &mut bytes, false)?;
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The text of one token, as `/tokenize` reports it in `token_strs`.
pub fn token_str(id: u32) -> Result<String, UnknownToken> {
    decode(&[id])
}

/// Applies the sim's chat template (ChatML, as Qwen models use) to `messages`:
///
/// ```text
/// <|im_start|>{role}\n{content}<|im_end|>\n    (for each message)
/// <|im_start|>assistant\n                       (when add_generation_prompt)
/// ```
pub fn render_chat(messages: &[ChatMessage], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    for message in messages {
        out.push_str("<|im_start|>");
        out.push_str(&message.role);
        out.push('\n');
        out.push_str(&message.content);
        out.push_str("<|im_end|>\n");
    }
    if add_generation_prompt {
        out.push_str("<|im_start|>assistant\n");
    }
    out
}

/// Token ids of a chat prompt: the template applied, then tokenized, as vLLM counts it.
pub fn encode_chat(messages: &[ChatMessage], add_generation_prompt: bool) -> Vec<u32> {
    encode(&render_chat(messages, add_generation_prompt))
}

/// One step of SplitMix64: the sim's only source of pseudo-randomness, so
/// every choice is reproducible from `--seed` and needs no RNG crate.
pub(crate) fn splitmix64(mut state: u64) -> u64 {
    state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `index`-th generated token of the response seeded with `seed`.
///
/// Token 0 is a Capitalised word without a leading space; later tokens are
/// `" word"`, `","` or `"."`. Every token is one token again when its text is
/// re-tokenized, so `count(concatenated output) == number of tokens`.
pub fn output_token(seed: u64, index: u32) -> OutputToken {
    let vocab = vocab();
    let r = splitmix64(seed ^ u64::from(index).wrapping_mul(0xD6E8_FEB8_6659_FD93));
    if index == 0 {
        return vocab.first_tokens[(r % vocab.first_tokens.len() as u64) as usize];
    }
    match r % 32 {
        0 | 1 => vocab.comma,
        2 => vocab.period,
        _ => vocab.next_tokens[((r >> 8) % vocab.next_tokens.len() as u64) as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_text() {
        for text in [
            "",
            "Hello, world!",
            "The quick brown fox jumps over the lazy dog.",
            "HTTP/1.1 200 OK\r\n\tx=42; y = 3.14",
            "naïve café — 東京 🚀",
            "<|im_start|>user\nhi<|im_end|>\n",
            "  double  spaces and trailing ",
            "Xylophonically McDonald iPhone",
        ] {
            let ids = encode(text);
            assert_eq!(decode(&ids).unwrap(), text, "{ids:?}");
        }
    }

    #[test]
    fn words_are_one_token_and_digits_are_split() {
        assert_eq!(encode(" the").len(), 1);
        assert_eq!(encode("The").len(), 1);
        assert_eq!(encode("2025").len(), 4);
        assert_eq!(encode("<|im_end|>"), vec![IM_END]);
        assert_eq!(encode("HTTP").len(), 4);
        assert_eq!(encode(" zzzzzzzzz").len(), 3);
    }

    #[test]
    fn prose_is_not_four_characters_per_token() {
        let prose = "When the server starts, it reads the configuration file and then \
            opens a window for each buffer. If you want to change the default behaviour, \
            set the option in your startup file before the first command runs. The \
            result is that every user sees the same layout, which makes it much easier \
            to explain what happened when something goes wrong later in the session.";
        let ratio = prose.len() as f64 / count(prose) as f64;
        assert!(ratio > 4.7, "chars per token {ratio}");
    }

    #[test]
    fn generated_text_retokenizes_to_the_same_ids() {
        let tokens: Vec<OutputToken> = (0..500).map(|i| output_token(7, i)).collect();
        let text: String = tokens.iter().map(|t| t.text).collect();
        let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
        assert_eq!(encode(&text), ids);
    }

    #[test]
    fn unknown_ids_are_rejected() {
        assert_eq!(decode(&[vocab_size()]), Err(UnknownToken(vocab_size())));
    }
}
