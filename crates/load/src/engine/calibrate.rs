//! Prompt calibration: the prompt shape whose length, as the engine counts
//! it, is the scenario's input length.
//!
//! A failed probe (a transient error, a timeout, the probe budget spent)
//! never turns into a wrong prompt sent under the scenario's name: the
//! search keeps the best bracket it found, and when that is not close
//! enough to the target the calibration fails with the reason, and the
//! scenario is not run (a row marked N/A in the reports).

use spark_results::{CalibrationMethod, Endpoint};

use super::Engine;
use crate::prompt::{self, PromptShape};

/// A calibrated prompt shape and what the engine counted for it.
#[derive(Debug, Clone)]
pub(crate) struct Calibrated {
    pub(crate) shape: PromptShape,
    /// Tokens the engine counted (equal to the target when calibration is exact).
    pub(crate) tokens: u32,
    pub(crate) note: Option<String>,
}

/// At most this many tokenize or usage probes per calibration.
const MAX_PROBES: usize = 40;

/// Whether `tokens` is close enough to `target` to run a scenario under its
/// name after a probe failed: within 1 % (or 2 tokens).
fn close_enough(tokens: u32, target: u32) -> bool {
    target - tokens.min(target) <= (target / 100).max(2)
}

/// What a search established.
#[derive(Debug, PartialEq, Eq)]
struct Search {
    /// The largest `(x, count)` known to fit, if any did.
    best: Option<(usize, u32)>,
    /// `count(0)`, when it was measured.
    base: Option<u32>,
    /// Why the search stopped early.
    failure: Option<String>,
}

impl Engine {
    /// The calibrated shape of an `input_tokens` prompt (cached), or why no
    /// prompt of that length could be established.
    pub(crate) async fn calibrated(
        &self,
        endpoint: Endpoint,
        input_tokens: u32,
        shared_prefix_tokens: u32,
    ) -> Result<Calibrated, String> {
        let key = (endpoint, input_tokens, shared_prefix_tokens);
        if let Some(found) = self.lock_shapes().get(&key) {
            return found.clone();
        }
        let calibrated = self
            .calibrate(endpoint, input_tokens, shared_prefix_tokens)
            .await;
        self.lock_shapes().insert(key, calibrated.clone());
        calibrated
    }

    async fn calibrate(
        &self,
        endpoint: Endpoint,
        target: u32,
        shared_prefix: u32,
    ) -> Result<Calibrated, String> {
        let method = self.calibration_method(endpoint).await;
        let sample_id = self.next_request_id();
        let mut n_probes = 0usize;
        // One retry for a failed probe (a transient error), not for a
        // timeout (it would only double a long wait).
        let mut count = async |shape: &PromptShape| -> Result<u32, String> {
            let text = prompt::render(shape, sample_id);
            let mut last = String::new();
            for attempt in 0..2 {
                if n_probes >= MAX_PROBES {
                    return Err(format!("the budget of {MAX_PROBES} probes is spent"));
                }
                n_probes += 1;
                match self.count_tokens(method, endpoint, &text).await {
                    Ok(n) => return Ok(n),
                    Err(e) if e.starts_with("timed out") || attempt == 1 => return Err(e),
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        let estimate = |words: usize| (words as f64 * 1.3) as u32 + 12;
        // The shared prefix: the largest number of leading words whose whole
        // prompt stays within `shared_prefix` tokens (approximate by design).
        let shared_words = if shared_prefix == 0 {
            0
        } else if method == CalibrationMethod::Estimate {
            (shared_prefix as f64 / 1.3) as usize
        } else {
            let mut probe = async |words: usize| {
                count(&PromptShape {
                    shared_words: words,
                    words: 0,
                    pads: 0,
                })
                .await
            };
            let search = largest_within(shared_prefix, &mut probe).await;
            if let Some(why) = search.failure {
                return Err(format!(
                    "could not size the shared prefix of {shared_prefix} tokens: {why}"
                ));
            }
            search.best.map_or(0, |(w, _)| w)
        };
        if method == CalibrationMethod::Estimate {
            let words = ((target.saturating_sub(12)) as f64 / 1.3) as usize;
            return Ok(Calibrated {
                shape: PromptShape {
                    shared_words,
                    words: words.saturating_sub(shared_words),
                    pads: 0,
                },
                tokens: estimate(words),
                note: Some(format!(
                    "prompt of {target} tokens sized by an estimate (1.3 tokens per word): the engine has no /tokenize and did not report usage"
                )),
            });
        }
        let mut probe = async |words: usize| {
            count(&PromptShape {
                shared_words,
                words,
                pads: 0,
            })
            .await
        };
        let search = largest_within(target, &mut probe).await;
        let cannot = |why: &str| format!("could not calibrate a prompt of {target} tokens: {why}");
        let (words, tokens) = match (search.best, search.base) {
            (Some(best), _) => best,
            (None, Some(base)) => {
                // The shortest prompt is longer than asked: a known length,
                // sent with a note that says it.
                return Ok(Calibrated {
                    shape: PromptShape {
                        shared_words,
                        words: 0,
                        pads: 0,
                    },
                    tokens: base,
                    note: Some(format!(
                        "asked for a {target}-token prompt; the shortest prompt is {base} tokens"
                    )),
                });
            }
            (None, None) => {
                return Err(cannot(
                    search.failure.as_deref().unwrap_or("no probe answered"),
                ));
            }
        };
        let mut failure = search.failure;
        // After a failed probe the pads may bridge a small gap only: a prompt
        // of thousands of pads is not the scenario's prompt either.
        if failure.is_some() && target - tokens > (target / 20).max(64) {
            return Err(cannot(&format!(
                "the longest prompt established is {tokens} tokens; then {}",
                failure.unwrap_or_default()
            )));
        }
        // Pad with single tokens up to the target; re-check, since a pad can
        // merge with its neighbour in some tokenizers.
        let mut best = (
            PromptShape {
                shared_words,
                words,
                pads: 0,
            },
            tokens,
        );
        let mut pads = (target - tokens) as usize;
        for _ in 0..4 {
            if best.1 == target || pads == 0 {
                break;
            }
            let shape = PromptShape {
                shared_words,
                words,
                pads,
            };
            let got = match count(&shape).await {
                Ok(got) => got,
                Err(why) => {
                    failure = Some(why);
                    break;
                }
            };
            if got <= target && got > best.1 {
                best = (shape, got);
            }
            if got == target {
                break;
            }
            pads = (pads as i64 + target as i64 - got as i64).max(0) as usize;
        }
        let (shape, tokens) = best;
        if let Some(why) = failure
            && !close_enough(tokens, target)
        {
            return Err(cannot(&format!(
                "the closest prompt established is {tokens} tokens; then {why}"
            )));
        }
        let note = (tokens != target).then(|| {
            format!("asked for a {target}-token prompt; the closest the engine's tokenizer allowed is {tokens}")
        });
        Ok(Calibrated {
            shape,
            tokens,
            note,
        })
    }
}

/// The largest `x` with `count(x) ≤ target`, by secant steps inside a
/// shrinking bracket (counts grow with `x`). Bounded by `MAX_PROBES`; a
/// failed count ends the search with the best bracket found so far.
async fn largest_within(
    target: u32,
    count: &mut impl AsyncFnMut(usize) -> Result<u32, String>,
) -> Search {
    let base = match count(0).await {
        Ok(base) => base,
        Err(why) => {
            return Search {
                best: None,
                base: None,
                failure: Some(why),
            };
        }
    };
    if base > target {
        return Search {
            best: None,
            base: Some(base),
            failure: None,
        };
    }
    let mut lo = (0usize, base);
    let mut hi: Option<(usize, u32)> = None;
    let stopped = |lo: (usize, u32), why: String| Search {
        best: Some(lo),
        base: Some(base),
        failure: Some(why),
    };
    // First guess: 1.3 tokens per word.
    let mut x = ((target - base) as f64 / 1.3) as usize;
    for _ in 0..MAX_PROBES {
        if let Some(h) = hi {
            if h.0 <= lo.0 + 1 {
                break;
            }
            x = x.clamp(lo.0 + 1, h.0 - 1);
        } else {
            x = x.max(lo.0 + 1);
        }
        let got = match count(x).await {
            Ok(got) => got,
            Err(why) => return stopped(lo, why),
        };
        if got <= target {
            lo = (x, got);
            if got == target {
                // More words could still fit only if a word can be 0 tokens;
                // it cannot, so this is the largest.
                break;
            }
        } else {
            hi = Some((x, got));
        }
        // Secant from the bracket's ends (or from the origin).
        let (x0, y0) = lo;
        let next = match hi {
            Some((x1, y1)) if y1 > y0 => {
                let slope = (y1 - y0) as f64 / (x1 - x0) as f64;
                x0 as f64 + (target - y0) as f64 / slope
            }
            _ => {
                let slope = ((y0.max(base + 1) - base) as f64 / x0.max(1) as f64).max(0.05);
                x0 as f64 + (target - y0) as f64 / slope
            }
        };
        // Stay strictly inside the bracket so it shrinks; bisect when the
        // secant stalls at an end.
        let mut next = next.floor() as usize;
        if let Some(h) = hi
            && (next <= lo.0 || next >= h.0)
        {
            next = lo.0 + (h.0 - lo.0) / 2;
        }
        x = next;
    }
    Search {
        best: Some(lo),
        base: Some(base),
        failure: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1.7 tokens per word, 9 tokens of template.
    fn tokens_of(x: usize) -> u32 {
        9 + (x as f64 * 1.7).floor() as u32
    }

    #[tokio::test]
    async fn search_finds_the_largest_fit() {
        for target in [9u32, 10, 50, 1_000, 32_768] {
            let mut calls = 0;
            let mut count = async |x: usize| {
                calls += 1;
                Ok(tokens_of(x))
            };
            let search = largest_within(target, &mut count).await;
            let (x, got) = search.best.expect("fits");
            assert_eq!(search.failure, None);
            assert!(got <= target);
            assert!(tokens_of(x + 1) > target, "target {target}: {x}");
            assert!(calls <= 12, "target {target}: {calls} probes");
        }
        let mut too_big = async |_x: usize| Ok(100u32);
        let search = largest_within(10, &mut too_big).await;
        assert_eq!((search.best, search.base), (None, Some(100)));
    }

    #[tokio::test]
    async fn a_failed_probe_keeps_the_best_bracket() {
        // One token per word: the first guess (1.3 per word) undershoots and
        // fits. The third probe fails (say, it timed out): what the first
        // two established is kept, with the reason.
        let mut calls = 0;
        let mut count = async |x: usize| {
            calls += 1;
            if calls == 3 {
                Err("timed out after 120 s".to_owned())
            } else {
                Ok(9 + x as u32)
            }
        };
        let search = largest_within(32_768, &mut count).await;
        let first_guess = ((32_768 - 9) as f64 / 1.3) as usize;
        assert_eq!(search.best, Some((first_guess, 9 + first_guess as u32)));
        assert_eq!(search.failure.as_deref(), Some("timed out after 120 s"));
        // The very first probe failing establishes nothing.
        let mut failing = async |_x: usize| Err::<u32, _>("HTTP 500".to_owned());
        let search = largest_within(100, &mut failing).await;
        assert_eq!(
            search,
            Search {
                best: None,
                base: None,
                failure: Some("HTTP 500".to_owned())
            }
        );
    }

    #[test]
    fn close_enough_is_one_percent() {
        assert!(close_enough(32_768, 32_768));
        assert!(close_enough(32_441, 32_768));
        assert!(!close_enough(32_000, 32_768));
        assert!(close_enough(48, 50));
        assert!(!close_enough(40, 50));
    }
}
