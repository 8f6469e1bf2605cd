//! The engine under test: the HTTP client, what `/v1/models` says, and the
//! request bodies. `probe.rs` asks what the engine can do (tokenizer,
//! context length, `ignore_eos`), `calibrate.rs` sizes prompts with it.
//!
//! Everything here runs before a scenario's timed part; none of it is on
//! the per-chunk path.

mod calibrate;
mod counters;
mod probe;

pub(crate) use counters::{CounterRead, MetricsPath};

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use spark_results::{CalibrationMethod, Endpoint, EngineInfo};

use crate::LoadError;
use crate::chunk;
pub(crate) use calibrate::Calibrated;
use probe::{PROBE_TIMEOUT, TokenizeApi};

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
    /// The context length, for engines that do not report it (TensorRT-LLM,
    /// Ollama): compose's `x-spark-perf.max_model_len` or `--max-model-len`.
    /// It wins over what the engine reports (a note says when they differ);
    /// 0 is unknown.
    pub max_model_len: Option<u32>,
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
            max_model_len: None,
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
    /// Where the measured streams go over the workers' own connections
    /// (`direct.rs`); `None`: through `client` (https, credentials in the URL).
    pub(crate) direct: Option<crate::direct::Target>,
    pub(crate) base: String,
    pub(crate) chat_url: String,
    pub(crate) completions_url: String,
    pub(crate) auth: Option<HeaderValue>,
    pub(crate) model: String,
    pub(crate) timeouts: Timeouts,
    pub(crate) info: Mutex<EngineInfo>,
    /// Calibrated prompt shapes (or why none could be) by (endpoint, input
    /// tokens, shared prefix).
    shapes: Mutex<Shapes>,
    /// What the probes found that is not in [`EngineInfo`].
    discovered: Mutex<Discovered>,
    /// Send `ignore_eos`/`min_tokens` for exact outputs: false once the
    /// engine answered them with a 4xx (it would reject every request).
    send_exact_output: AtomicBool,
    /// Send `stream_options.include_usage`: false once the engine rejected
    /// it (output tokens are then counted from chunks, and flagged).
    send_stream_options: AtomicBool,
    /// Where the engine serves its Prometheus metrics, once asked.
    pub(crate) metrics_path: Mutex<MetricsPath>,
    /// Makes request ids (and so prompts) unique within this process.
    pub(crate) next_id: AtomicU64,
    /// Makes them unique across runs against the same engine.
    pub(crate) session: u64,
}

/// Calibrated prompts (or why none could be) by (endpoint, input tokens,
/// shared prefix).
type Shapes = HashMap<(Endpoint, u32, u32), Result<Calibrated, String>>;

/// What the probes found, beyond [`EngineInfo`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Discovered {
    /// The `/tokenize` dialect, when calibration uses one.
    pub(crate) tokenize_api: Option<TokenizeApi>,
    /// How `/v1/completions` prompts are counted, once asked (chat's is
    /// `EngineInfo::prompt_calibration`).
    pub(crate) completions_method: Option<CalibrationMethod>,
}

/// Sends `request`, and once more when a pooled connection turned out to be
/// closed before any byte of the response (a stale keep-alive, see
/// `request::closed_before_response`): for the probes, the model list and
/// the metrics reads, which are all safe to send twice.
pub(crate) async fn send_retrying_stale(
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    let again = request.try_clone();
    match request.send().await {
        Err(err) if crate::request::closed_before_response(&err) => match again {
            Some(again) => again.send().await,
            None => Err(err),
        },
        other => other,
    }
}

/// uvicorn (vLLM, SGLang) closes idle keep-alive connections after 5 s; an
/// idle pooled connection must be dropped first, or a request written on it
/// just as the server closes it fails with a reset.
pub(crate) const POOL_IDLE: Duration = Duration::from_secs(3);

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
        let reported = max_model_len
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
                direct: crate::direct::Target::of(&base),
                base: base.clone(),
                auth,
                model: model.clone(),
                timeouts: config.timeouts,
                info: Mutex::new(EngineInfo {
                    url: base,
                    model,
                    max_model_len: reported,
                    prompt_calibration: CalibrationMethod::Estimate,
                    ignore_eos_honoured: None,
                    notes: Vec::new(),
                }),
                shapes: Mutex::new(HashMap::new()),
                discovered: Mutex::new(Discovered::default()),
                send_exact_output: AtomicBool::new(true),
                send_stream_options: AtomicBool::new(true),
                metrics_path: Mutex::new(MetricsPath::Unknown),
                next_id: AtomicU64::new(0),
                session,
            }),
        };
        engine
            .resolve_context(reported, config.max_model_len.filter(|&n| n > 0))
            .await;
        let method = engine.probe_calibration(Endpoint::Chat).await;
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

    pub(crate) fn discovered(&self) -> Discovered {
        self.inner
            .discovered
            .lock()
            .map(|d| d.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    fn update_discovered(&self, update: impl FnOnce(&mut Discovered)) {
        let mut guard = self
            .inner
            .discovered
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        update(&mut guard);
    }

    fn lock_shapes(&self) -> std::sync::MutexGuard<'_, Shapes> {
        self.inner.shapes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The context length: the configured one, else what `/v1/models` said,
    /// else llama-server's `/props`, else text-generation-inference's
    /// `/info`; a note when it stays unknown.
    async fn resolve_context(&self, reported: Option<u32>, configured: Option<u32>) {
        let reported = match reported {
            Some(n) => Some(n),
            None => match self.props_context().await {
                Some(n) => Some(n),
                None => self.info_context().await,
            },
        };
        let (max_model_len, note) = match (configured, reported) {
            (Some(c), Some(r)) if c != r => (
                Some(c),
                Some(format!(
                    "max_model_len {c} as configured; the engine reports {r}"
                )),
            ),
            (Some(c), _) => (Some(c), None),
            (None, Some(r)) => (Some(r), None),
            (None, None) => (
                None,
                Some("the engine reports no context length (set x-spark-perf.max_model_len in compose or --max-model-len): prompts and max_tokens are not clamped to it".to_owned()),
            ),
        };
        self.update_info(|info| {
            info.max_model_len = max_model_len;
            info.notes.extend(note);
        });
    }

    /// How prompts of `endpoint` are counted: chat's was probed at connect,
    /// completions' is probed on first use, on that endpoint (a base model
    /// without a chat template gets exact lengths too).
    pub(crate) async fn calibration_method(&self, endpoint: Endpoint) -> CalibrationMethod {
        let chat = self.info().prompt_calibration;
        if endpoint == Endpoint::Chat {
            return chat;
        }
        if let Some(method) = self.discovered().completions_method {
            return method;
        }
        let method = self.probe_method(Endpoint::Completions).await;
        self.update_discovered(|d| d.completions_method = Some(method));
        if method != chat {
            self.update_info(|info| {
                info.notes.push(format!(
                    "/v1/completions prompts calibrated by {} (chat prompts: {})",
                    method_name(method),
                    method_name(chat)
                ));
            });
        }
        method
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
        if params.stream && self.inner.send_stream_options.load(Ordering::Relaxed) {
            // Per-chunk (cumulative) usage where the engine supports it
            // (vLLM): tokens are counted from usage, not chunks, when a
            // chunk carries several (docs/METRICS.md).
            body.insert(
                "stream_options".into(),
                serde_json::json!({"include_usage": true, "continuous_usage_stats": true}),
            );
        }
        if params.exact_output && self.inner.send_exact_output.load(Ordering::Relaxed) {
            body.insert("ignore_eos".into(), true.into());
            body.insert("min_tokens".into(), params.max_tokens.into());
        }
        Bytes::from(serde_json::to_vec(&serde_json::Value::Object(body)).unwrap_or_default())
    }

    /// Whether a rejection of a stream's request names `stream_options`; if
    /// so, and it is the first, streams are sent without it from now on
    /// (true: retry the request once without it).
    pub(crate) fn stream_options_rejected(&self, record: &spark_results::RequestRecord) -> bool {
        let Some(failure) = &record.failure else {
            return false;
        };
        let rejected = failure.http_status.is_some_and(|s| (400..500).contains(&s))
            && failure.message.contains("stream_options");
        if !rejected {
            return false;
        }
        if self
            .inner
            .send_stream_options
            .swap(false, Ordering::Relaxed)
        {
            let message = failure.message.clone();
            self.update_info(|info| {
                info.notes.push(format!(
                    "the engine rejects stream_options ({message}): streams are sent without it, so output tokens are counted from chunks (output_tokens_estimated)"
                ));
            });
        }
        true
    }

    /// Whether streams still carry `stream_options`.
    pub(crate) fn sends_stream_options(&self) -> bool {
        self.inner.send_stream_options.load(Ordering::Relaxed)
    }

    /// A fresh id: unique per request, and the digits of its prompt.
    pub(crate) fn next_request_id(&self) -> u64 {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.session * 1_000_000 + n % 1_000_000
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

/// A calibration method as the JSON names it.
fn method_name(method: CalibrationMethod) -> &'static str {
    match method {
        CalibrationMethod::Tokenize => "tokenize",
        CalibrationMethod::UsageProbe => "usage_probe",
        CalibrationMethod::Estimate => "estimate",
    }
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
    let response = send_retrying_stale(request)
        .await
        .map_err(|e| failed(error_chain(&e)))?;
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
}
