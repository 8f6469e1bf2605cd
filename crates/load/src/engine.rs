//! The engine under test: the HTTP client, what `/v1/models` says, whether
//! `/tokenize` and `ignore_eos` work, and prompt calibration.
//!
//! Everything here runs before a scenario's timed part; none of it is on
//! the per-chunk path.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use spark_results::{CalibrationMethod, Endpoint, EngineInfo};

use crate::LoadError;
use crate::chunk;
use crate::prompt::{self, PromptShape};

/// An API key; `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key (read it from the environment; never take it as a flag value).
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Limits of each phase of a request (see [`spark_results::TimeoutPhase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// From sending to the first token (covers queueing and prefill).
    pub first_token: Duration,
    /// Between two token-carrying chunks.
    pub between_tokens: Duration,
    /// The whole request.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(10),
            // A 32K-token prefill on a slow engine takes minutes.
            first_token: Duration::from_secs(600),
            between_tokens: Duration::from_secs(60),
            total: Duration::from_secs(1800),
        }
    }
}

/// How to reach the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Base URL, e.g. `http://127.0.0.1:8000` (a trailing `/v1` is accepted).
    pub url: String,
    /// Model to request; `None` takes the first one `/v1/models` lists.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: Option<ApiKey>,
    /// Per-phase limits of every request.
    pub timeouts: Timeouts,
    /// Probe whether `ignore_eos`/`min_tokens` give exact output lengths.
    pub probe_ignore_eos: bool,
}

impl EngineConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> EngineConfig {
        EngineConfig {
            url: url.into(),
            model: None,
            api_key: None,
            timeouts: Timeouts::default(),
            probe_ignore_eos: true,
        }
    }
}

/// A connected engine; cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

#[derive(Debug)]
pub(crate) struct EngineInner {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) chat_url: String,
    pub(crate) completions_url: String,
    pub(crate) auth: Option<HeaderValue>,
    pub(crate) model: String,
    pub(crate) timeouts: Timeouts,
    pub(crate) info: Mutex<EngineInfo>,
    /// Calibrated prompt shapes by (endpoint, input tokens, shared prefix).
    shapes: Mutex<HashMap<(Endpoint, u32, u32), Calibrated>>,
    /// Makes request ids (and so prompts) unique within this process.
    pub(crate) next_id: AtomicU64,
    /// Makes them unique across runs against the same engine.
    pub(crate) session: u64,
}

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
/// Limits of discovery requests (models, tokenize, probes).
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// uvicorn (vLLM, SGLang) closes idle keep-alive connections after 5 s; an
/// idle pooled connection must be dropped first, or a request written on it
/// just as the server closes it fails with a reset.
const POOL_IDLE: Duration = Duration::from_secs(3);

impl Engine {
    /// Builds the client, lists the models and probes `/tokenize` and
    /// `ignore_eos`. Fails only when no model can be chosen.
    pub async fn connect(config: EngineConfig) -> Result<Engine, LoadError> {
        let base = normalize_url(&config.url)?;
        let client = reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .pool_idle_timeout(POOL_IDLE)
            .connect_timeout(config.timeouts.connect)
            // A benchmark measures the engine, not a proxy from the environment.
            .no_proxy()
            .build()
            .map_err(LoadError::BuildClient)?;
        let auth = match &config.api_key {
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", key.0))
                    .map_err(|_| LoadError::InvalidApiKey)?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let (served, max_model_len) = list_models(&client, &base, auth.as_ref()).await?;
        let model = match config.model {
            Some(model) => {
                if !served.contains(&model) {
                    return Err(LoadError::UnknownModel {
                        url: base.clone(),
                        model,
                        served: served.join(", "),
                    });
                }
                model
            }
            None => served
                .first()
                .cloned()
                .ok_or_else(|| LoadError::NoModel { url: base.clone() })?,
        };
        // 0 is what a server reports when it does not know: unknown, not a
        // context of no tokens.
        let max_model_len = max_model_len
            .get(&model)
            .copied()
            .flatten()
            .filter(|&n| n > 0);
        let session = crate::clock::monotonic_ns() % 1_000_000;
        let engine = Engine {
            inner: Arc::new(EngineInner {
                chat_url: format!("{base}/v1/chat/completions"),
                completions_url: format!("{base}/v1/completions"),
                client,
                base: base.clone(),
                auth,
                model: model.clone(),
                timeouts: config.timeouts,
                info: Mutex::new(EngineInfo {
                    url: base,
                    model,
                    max_model_len,
                    prompt_calibration: CalibrationMethod::Estimate,
                    ignore_eos_honoured: None,
                    notes: Vec::new(),
                }),
                shapes: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                session,
            }),
        };
        let method = engine.probe_calibration().await;
        engine.update_info(|info| info.prompt_calibration = method);
        if config.probe_ignore_eos {
            let honoured = engine.probe_ignore_eos().await;
            engine.update_info(|info| info.ignore_eos_honoured = Some(honoured));
        }
        Ok(engine)
    }

    /// What was discovered about the engine.
    pub fn info(&self) -> EngineInfo {
        self.inner
            .info
            .lock()
            .map(|i| i.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The model every request names.
    pub fn model(&self) -> &str {
        &self.inner.model
    }

    fn update_info(&self, update: impl FnOnce(&mut EngineInfo)) {
        let mut guard = self.inner.info.lock().unwrap_or_else(|e| e.into_inner());
        update(&mut guard);
    }

    pub(crate) fn url(&self, endpoint: Endpoint) -> &str {
        match endpoint {
            Endpoint::Chat => &self.inner.chat_url,
            Endpoint::Completions => &self.inner.completions_url,
        }
    }

    /// A POST with JSON content and the API key.
    pub(crate) fn post(&self, url: &str, body: Bytes) -> reqwest::RequestBuilder {
        let mut request = self
            .inner
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some(auth) = &self.inner.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        request
    }

    /// The request body of a generation request.
    pub(crate) fn body(&self, endpoint: Endpoint, text: &str, params: &BodyParams) -> Bytes {
        let mut body = serde_json::Map::new();
        body.insert("model".into(), self.model().into());
        match endpoint {
            Endpoint::Chat => {
                body.insert(
                    "messages".into(),
                    serde_json::json!([{"role": "user", "content": text}]),
                );
            }
            Endpoint::Completions => {
                body.insert("prompt".into(), text.into());
            }
        }
        body.insert("max_tokens".into(), params.max_tokens.into());
        body.insert("temperature".into(), params.temperature.into());
        body.insert("stream".into(), params.stream.into());
        if params.stream {
            body.insert(
                "stream_options".into(),
                serde_json::json!({"include_usage": true}),
            );
        }
        if params.exact_output {
            body.insert("ignore_eos".into(), true.into());
            body.insert("min_tokens".into(), params.max_tokens.into());
        }
        Bytes::from(serde_json::to_vec(&serde_json::Value::Object(body)).unwrap_or_default())
    }

    /// A fresh id: unique per request, and the digits of its prompt.
    pub(crate) fn next_request_id(&self) -> u64 {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.session * 1_000_000 + n % 1_000_000
    }

    /// The calibrated shape of an `input_tokens` prompt (cached).
    pub(crate) async fn calibrated(
        &self,
        endpoint: Endpoint,
        input_tokens: u32,
        shared_prefix_tokens: u32,
    ) -> Calibrated {
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

    fn lock_shapes(&self) -> std::sync::MutexGuard<'_, HashMap<(Endpoint, u32, u32), Calibrated>> {
        self.inner.shapes.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn calibrate(&self, endpoint: Endpoint, target: u32, shared_prefix: u32) -> Calibrated {
        let method = self.info().prompt_calibration;
        let sample_id = self.next_request_id();
        let mut n_probes = 0usize;
        let mut count = async |shape: &PromptShape| -> Option<u32> {
            if n_probes >= MAX_PROBES {
                return None;
            }
            n_probes += 1;
            let text = prompt::render(shape, sample_id);
            self.count_tokens(method, endpoint, &text).await
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
            largest_within(shared_prefix, &mut probe)
                .await
                .map_or(0, |(w, _)| w)
        };
        if method == CalibrationMethod::Estimate {
            let words = ((target.saturating_sub(12)) as f64 / 1.3) as usize;
            return Calibrated {
                shape: PromptShape {
                    shared_words,
                    words: words.saturating_sub(shared_words),
                    pads: 0,
                },
                tokens: estimate(words),
                note: Some(format!(
                    "prompt of {target} tokens sized by an estimate (1.3 tokens per word): the engine has no /tokenize and did not report usage"
                )),
            };
        }
        let mut probe = async |words: usize| {
            count(&PromptShape {
                shared_words,
                words,
                pads: 0,
            })
            .await
        };
        let Some((words, tokens)) = largest_within(target, &mut probe).await else {
            return Calibrated {
                shape: PromptShape {
                    shared_words,
                    words: 0,
                    pads: 0,
                },
                tokens: 0,
                note: Some(format!(
                    "could not calibrate a prompt of {target} tokens; sent the shortest prompt"
                )),
            };
        };
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
            let Some(got) = count(&shape).await else {
                break;
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
        let note = (tokens != target).then(|| {
            format!("asked for a {target}-token prompt; the closest the engine's tokenizer allowed is {tokens}")
        });
        Calibrated {
            shape,
            tokens,
            note,
        }
    }

    /// How the engine counts `text` as a prompt of `endpoint`.
    async fn count_tokens(
        &self,
        method: CalibrationMethod,
        endpoint: Endpoint,
        text: &str,
    ) -> Option<u32> {
        match method {
            CalibrationMethod::Tokenize => self.tokenize(endpoint, text).await,
            CalibrationMethod::UsageProbe => self.usage_probe(endpoint, text).await.map(|(p, _)| p),
            CalibrationMethod::Estimate => None,
        }
    }

    async fn tokenize(&self, endpoint: Endpoint, text: &str) -> Option<u32> {
        #[derive(Deserialize)]
        struct Tokenized {
            count: u32,
        }
        let model = self.model();
        let body = match endpoint {
            Endpoint::Chat => serde_json::json!({
                "model": model,
                "messages": [{"role": "user", "content": text}],
                "add_generation_prompt": true,
            }),
            Endpoint::Completions => serde_json::json!({"model": model, "prompt": text}),
        };
        let body = Bytes::from(serde_json::to_vec(&body).ok()?);
        let url = format!("{}/tokenize", self.inner.base);
        let response = self
            .post(&url, body)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = response.bytes().await.ok()?;
        serde_json::from_slice::<Tokenized>(&bytes)
            .ok()
            .map(|t| t.count)
    }

    /// A non-streaming generation; returns (prompt tokens, completion tokens).
    async fn usage_probe(&self, endpoint: Endpoint, text: &str) -> Option<(u32, u32)> {
        let params = BodyParams {
            max_tokens: 1,
            temperature: 0.0,
            stream: false,
            exact_output: false,
        };
        let (prompt, completion) = self.generate_once(endpoint, text, &params).await.ok()?;
        Some((prompt?, completion.unwrap_or(0)))
    }

    /// A non-streaming generation; returns its usage or an error message.
    async fn generate_once(
        &self,
        endpoint: Endpoint,
        text: &str,
        params: &BodyParams,
    ) -> Result<(Option<u32>, Option<u32>), String> {
        #[derive(Deserialize)]
        struct Body {
            usage: Option<chunk::Usage>,
        }
        let body = self.body(endpoint, text, params);
        let response = self
            .post(self.url(endpoint), body)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", chunk::error_message(&bytes)));
        }
        let body: Body = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let usage = body.usage.unwrap_or_default();
        Ok((usage.prompt_tokens, usage.completion_tokens))
    }

    async fn probe_calibration(&self) -> CalibrationMethod {
        let text = "Hello there.";
        if self.tokenize(Endpoint::Chat, text).await.is_some() {
            return CalibrationMethod::Tokenize;
        }
        if self.usage_probe(Endpoint::Chat, text).await.is_some() {
            self.update_info(|info| {
                info.notes.push("no /tokenize endpoint: prompt lengths calibrated with max_tokens=1 usage probes".to_owned());
            });
            return CalibrationMethod::UsageProbe;
        }
        self.update_info(|info| {
            info.notes.push(
                "neither /tokenize nor usage answered: prompt lengths are estimates".to_owned(),
            );
        });
        CalibrationMethod::Estimate
    }

    /// Whether asking for exactly N tokens gives N tokens.
    async fn probe_ignore_eos(&self) -> bool {
        const N: u32 = 24;
        let params = BodyParams {
            max_tokens: N,
            temperature: 0.0,
            stream: false,
            exact_output: true,
        };
        match self
            .generate_once(Endpoint::Chat, "Say yes.", &params)
            .await
        {
            Ok((_, Some(n))) if n == N => true,
            Ok((_, got)) => {
                self.update_info(|info| {
                    info.notes.push(format!(
                        "ignore_eos/min_tokens not honoured (asked {N} tokens, got {}): outputs may be shorter than asked and are flagged",
                        got.map_or("no usage".to_owned(), |n| n.to_string())
                    ));
                });
                false
            }
            Err(message) => {
                self.update_info(|info| {
                    info.notes.push(format!("ignore_eos/min_tokens probe failed ({message}); outputs may be shorter than asked"));
                });
                false
            }
        }
    }
}

/// Generation parameters of a request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyParams {
    pub(crate) max_tokens: u32,
    pub(crate) temperature: f64,
    pub(crate) stream: bool,
    pub(crate) exact_output: bool,
}

/// The largest `x` with `count(x) ≤ target`, by secant steps inside a
/// shrinking bracket (counts grow with `x`). Bounded by the probe budget.
async fn largest_within(
    target: u32,
    count: &mut impl AsyncFnMut(usize) -> Option<u32>,
) -> Option<(usize, u32)> {
    let base = count(0).await?;
    if base > target {
        return None;
    }
    let mut lo = (0usize, base);
    let mut hi: Option<(usize, u32)> = None;
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
        let got = count(x).await?;
        if got <= target {
            lo = (x, got);
            if got == target {
                // More words could still fit only if a word can be 0 tokens;
                // it cannot, so this is the largest.
                return Some(lo);
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
    Some(lo)
}

/// `http://host:port` without a trailing `/` or `/v1`.
fn normalize_url(url: &str) -> Result<String, LoadError> {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    let parsed = reqwest::Url::parse(trimmed).map_err(|err| LoadError::InvalidUrl {
        url: url.to_owned(),
        reason: err.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(LoadError::InvalidUrl {
            url: url.to_owned(),
            reason: "the scheme must be http or https".to_owned(),
        });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(LoadError::InvalidUrl {
            url: "<redacted: the URL has credentials>".to_owned(),
            reason: "put the API key in an environment variable (--api-key-env), not in the URL"
                .to_owned(),
        });
    }
    Ok(trimmed.to_owned())
}

/// `GET /v1/models`: the served names and their `max_model_len`.
async fn list_models(
    client: &reqwest::Client,
    base: &str,
    auth: Option<&HeaderValue>,
) -> Result<(Vec<String>, HashMap<String, Option<u32>>), LoadError> {
    #[derive(Deserialize)]
    struct Models {
        data: Vec<Card>,
    }
    #[derive(Deserialize)]
    struct Card {
        id: String,
        #[serde(default)]
        max_model_len: Option<u32>,
    }
    let url = format!("{base}/v1/models");
    let mut request = client.get(&url).timeout(PROBE_TIMEOUT);
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, auth.clone());
    }
    let failed = |message: String| LoadError::ListModels {
        url: url.clone(),
        message,
    };
    let response = request.send().await.map_err(|e| failed(error_chain(&e)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| failed(error_chain(&e)))?;
    if !status.is_success() {
        return Err(failed(format!(
            "HTTP {status}: {}",
            chunk::error_message(&bytes)
        )));
    }
    let models: Models = serde_json::from_slice(&bytes).map_err(|e| {
        failed(format!(
            "not a model list ({e}): {}",
            chunk::excerpt(&bytes)
        ))
    })?;
    let names = models.data.iter().map(|c| c.id.clone()).collect();
    let lens = models
        .data
        .into_iter()
        .map(|c| (c.id, c.max_model_len))
        .collect();
    Ok((names, lens))
}

/// An error with its sources, `a: b: c`.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_and_credentials_refused() {
        assert_eq!(
            normalize_url("http://h:1/v1/").ok().as_deref(),
            Some("http://h:1")
        );
        assert_eq!(
            normalize_url("http://h:1").ok().as_deref(),
            Some("http://h:1")
        );
        assert!(normalize_url("ftp://h").is_err());
        let err = normalize_url("http://u:secret@h")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn api_key_is_never_shown() {
        let key = ApiKey::new("sk-very-secret");
        assert!(!format!("{key:?}").contains("secret"));
    }

    #[tokio::test]
    async fn search_finds_the_largest_fit() {
        // 1.7 tokens per word, 9 tokens of template.
        for target in [9u32, 10, 50, 1_000, 32_768] {
            let mut calls = 0;
            let mut count = async |x: usize| {
                calls += 1;
                Some(9 + (x as f64 * 1.7).floor() as u32)
            };
            let (x, got) = largest_within(target, &mut count).await.expect("fits");
            assert!(got <= target);
            assert!(
                9 + ((x + 1) as f64 * 1.7).floor() as u32 > target,
                "target {target}: {x}"
            );
            assert!(calls <= 12, "target {target}: {calls} probes");
        }
        let mut too_big = async |_x: usize| Some(100u32);
        assert!(largest_within(10, &mut too_big).await.is_none());
    }
}
