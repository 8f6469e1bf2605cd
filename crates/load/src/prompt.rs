//! Prompt text of a chosen length, distinct per request.
//!
//! A prompt is `[shared words] [id] [words] [pads]`: plain English words
//! from a fixed list (a real tokenizer treats them as it treats prose), a
//! fixed-width decimal id that makes every request's prompt different from
//! its first tokens (so no accidental prefix-cache hits; the id's digits
//! tokenize to the same count whatever their value, in every tokenizer we
//! know), and `pad` copies of ` the`, one token almost everywhere, to land on
//! the exact count. The calibration in `engine.rs` chooses the numbers of
//! words and pads against the engine's own tokenizer.

/// Common words; the order is arbitrary but fixed so prompts are reproducible.
const WORDS: &[&str] = &[
    "time",
    "year",
    "people",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "student",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "president",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
    "good",
    "new",
    "first",
    "last",
    "long",
    "great",
    "little",
    "own",
    "other",
    "old",
    "big",
    "high",
    "different",
    "small",
    "large",
    "next",
    "early",
    "young",
    "important",
    "few",
    "public",
    "bad",
    "same",
    "able",
    "make",
    "know",
    "take",
    "see",
    "come",
    "think",
    "look",
    "want",
    "give",
    "use",
    "find",
    "tell",
    "ask",
    "seem",
    "feel",
    "try",
    "leave",
    "call",
    "keep",
    "let",
    "begin",
    "show",
    "hear",
    "play",
    "run",
    "move",
    "like",
    "live",
    "believe",
    "hold",
    "bring",
    "happen",
    "write",
    "provide",
    "sit",
    "stand",
    "lose",
    "pay",
    "meet",
    "include",
    "continue",
    "set",
    "learn",
    "lead",
    "understand",
    "watch",
    "follow",
    "stop",
    "create",
    "speak",
    "read",
    "allow",
    "add",
    "spend",
    "grow",
    "open",
    "walk",
    "win",
    "offer",
    "remember",
    "love",
    "consider",
    "appear",
    "buy",
    "wait",
    "serve",
    "die",
    "send",
    "expect",
    "build",
    "stay",
    "fall",
    "cut",
    "reach",
    "kill",
    "remain",
    "suggest",
    "raise",
    "pass",
    "sell",
    "require",
    "report",
    "decide",
    "pull",
    "memory",
    "network",
    "model",
    "engine",
    "signal",
    "river",
    "garden",
    "window",
    "market",
    "energy",
    "music",
    "paper",
];

/// The text around the id, chosen once per scenario by calibration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PromptShape {
    /// Words before the id (the shared prefix).
    pub(crate) shared_words: usize,
    /// Words after the id.
    pub(crate) words: usize,
    /// Copies of ` the` at the end.
    pub(crate) pads: usize,
}

/// Digits of the id: wide enough for any run, constant so counts are too.
pub(crate) const ID_DIGITS: usize = 12;

/// Renders the prompt of request `id` (only the id differs between requests).
pub(crate) fn render(shape: &PromptShape, id: u64) -> String {
    let n_words = shape.shared_words + shape.words;
    let mut text = String::with_capacity(n_words * 8 + shape.pads * 4 + ID_DIGITS + 8);
    push_words(&mut text, 0, shape.shared_words);
    if !text.is_empty() {
        text.push(' ');
    }
    // `{id}:` keeps the digits apart from the words in every tokenizer.
    let id = id % 10u64.pow(ID_DIGITS as u32);
    text.push_str(&format!("{id:0width$}:", width = ID_DIGITS));
    push_words(&mut text, shape.shared_words, shape.words);
    for _ in 0..shape.pads {
        text.push_str(" the");
    }
    text
}

fn push_words(text: &mut String, first_idx: usize, n_words: usize) {
    for word_idx in first_idx..first_idx + n_words {
        if !text.is_empty() && !text.ends_with(' ') {
            text.push(' ');
        }
        // A stride coprime with the list's length walks all of it before
        // repeating; a period every 12 words makes it read like sentences.
        text.push_str(WORDS[(word_idx * 7 + word_idx / WORDS.len()) % WORDS.len()]);
        if word_idx % 12 == 11 {
            text.push('.');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_differ_and_lengths_do_not() {
        let shape = PromptShape {
            shared_words: 3,
            words: 20,
            pads: 2,
        };
        let a = render(&shape, 1);
        let b = render(&shape, 987_654_321);
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        assert!(a.ends_with(" the the"));
        assert!(a.contains(" 000000000001:"));
        let no_shared = render(
            &PromptShape {
                shared_words: 0,
                words: 0,
                pads: 0,
            },
            5,
        );
        assert_eq!(no_shared, "000000000005:");
    }
}
