//! What the engine can do, asked before any scenario: which tokenizer
//! endpoint it has (vLLM's or llama-server's), its context length (from
//! `/v1/models`, llama-server's `/props`, text-generation-inference's
//! `/info`, or the configuration), whether it
//! honours `ignore_eos`/`min_tokens`, and token counts for calibration.
//!
//! Every probe is bounded by a timeout that grows with the prompt it sends
//! (a usage probe of a 32K-token prompt is a full prefill on a slow engine).

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use spark_results::{CalibrationMethod, Endpoint};

use super::{BodyParams, Engine, error_chain};
use crate::chunk;

/// Limit of a probe with a short prompt (models, tokenize, short probes).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// Added to a probe's limit per prompt token (estimated from its bytes):
/// 10 ms a token is slower than any engine prefills.
const PROBE_TIMEOUT_PER_TOKEN: Duration = Duration::from_millis(10);

/// Which `/tokenize` the engine has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenizeApi {
    /// vLLM and SGLang: `{"model","prompt"|"messages"}` → `{"count", …}`.
    Vllm,
    /// llama-server: `{"content"}` → `{"tokens": [...]}`; chat prompts are
    /// templated by `/apply-template` first.
    LlamaCpp,
}

impl Engine {
    /// The limit of a probe that sends `text`, within the request limit.
    fn probe_timeout(&self, text: &str) -> Duration {
        let est_tokens = u32::try_from(text.len() / 4).unwrap_or(u32::MAX);
        (PROBE_TIMEOUT + PROBE_TIMEOUT_PER_TOKEN * est_tokens)
            .min(self.inner.timeouts.total.max(Duration::from_millis(1)))
    }

    /// How the engine counts `text` as a prompt of `endpoint`.
    pub(crate) async fn count_tokens(
        &self,
        method: CalibrationMethod,
        endpoint: Endpoint,
        text: &str,
    ) -> Result<u32, String> {
        match method {
            CalibrationMethod::Tokenize => {
                let api = self.discovered().tokenize_api.unwrap_or(TokenizeApi::Vllm);
                self.tokenize(api, endpoint, text).await
            }
            CalibrationMethod::UsageProbe => self.usage_probe(endpoint, text).await.map(|(p, _)| p),
            CalibrationMethod::Estimate => Err("the engine cannot count tokens".to_owned()),
        }
    }

    async fn tokenize(
        &self,
        api: TokenizeApi,
        endpoint: Endpoint,
        text: &str,
    ) -> Result<u32, String> {
        match api {
            TokenizeApi::Vllm => self.tokenize_vllm(endpoint, text).await,
            TokenizeApi::LlamaCpp => {
                let content = match endpoint {
                    Endpoint::Chat => self.apply_template(text).await?,
                    Endpoint::Completions => text.to_owned(),
                };
                self.tokenize_llamacpp(&content).await
            }
        }
    }

    /// POSTs a JSON body to `path` of the base URL; the body of a 2xx answer.
    async fn post_probe(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<Bytes, String> {
        let body = Bytes::from(serde_json::to_vec(body).map_err(|e| e.to_string())?);
        let url = format!("{}{path}", self.inner.base);
        let response = super::send_retrying_stale(self.post(&url, body).timeout(timeout))
            .await
            .map_err(|e| request_error(&e, timeout))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| request_error(&e, timeout))?;
        if !status.is_success() {
            return Err(format!(
                "{path}: HTTP {status}: {}",
                chunk::error_message(&bytes)
            ));
        }
        Ok(bytes)
    }

    async fn tokenize_vllm(&self, endpoint: Endpoint, text: &str) -> Result<u32, String> {
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
        let bytes = self
            .post_probe("/tokenize", &body, self.probe_timeout(text))
            .await?;
        serde_json::from_slice::<Tokenized>(&bytes)
            .map(|t| t.count)
            .map_err(|e| {
                format!(
                    "/tokenize: not vLLM's answer ({e}): {}",
                    chunk::excerpt(&bytes)
                )
            })
    }

    /// llama-server's `/tokenize`, special tokens parsed and added as a
    /// generation request adds them (`add_special`).
    async fn tokenize_llamacpp(&self, content: &str) -> Result<u32, String> {
        #[derive(Deserialize)]
        struct Tokenized {
            tokens: Vec<serde::de::IgnoredAny>,
        }
        let body =
            serde_json::json!({"content": content, "add_special": true, "with_pieces": false});
        let bytes = self
            .post_probe("/tokenize", &body, self.probe_timeout(content))
            .await?;
        let tokens = serde_json::from_slice::<Tokenized>(&bytes)
            .map_err(|e| {
                format!(
                    "/tokenize: not llama-server's answer ({e}): {}",
                    chunk::excerpt(&bytes)
                )
            })?
            .tokens;
        // llama-server answers a body without `content` with no tokens; any
        // real prompt has some.
        if tokens.is_empty() {
            return Err("/tokenize counted no tokens".to_owned());
        }
        u32::try_from(tokens.len()).map_err(|e| e.to_string())
    }

    /// llama-server's `/apply-template`: the chat prompt as text.
    async fn apply_template(&self, text: &str) -> Result<String, String> {
        #[derive(Deserialize)]
        struct Templated {
            prompt: String,
        }
        let body = serde_json::json!({"messages": [{"role": "user", "content": text}]});
        let bytes = self
            .post_probe("/apply-template", &body, self.probe_timeout(text))
            .await?;
        serde_json::from_slice::<Templated>(&bytes)
            .map(|t| t.prompt)
            .map_err(|e| format!("/apply-template: {e}: {}", chunk::excerpt(&bytes)))
    }

    /// llama-server's `/props`: one slot's context (`n_ctx` is already
    /// divided among the `--parallel` slots; `total_slots` is their number).
    pub(crate) async fn props_context(&self) -> Option<u32> {
        #[derive(Deserialize)]
        struct Props {
            default_generation_settings: Settings,
        }
        #[derive(Deserialize)]
        struct Settings {
            n_ctx: u32,
        }
        let props: Props = self.get_json("/props").await?;
        Some(props.default_generation_settings.n_ctx).filter(|&n| n > 0)
    }

    /// text-generation-inference's `/info`: `max_total_tokens` is what a
    /// prompt and its new tokens may use together (its `max_input_tokens`
    /// is at most one less, so a prompt that leaves room for output fits).
    pub(crate) async fn info_context(&self) -> Option<u32> {
        #[derive(Deserialize)]
        struct Info {
            max_total_tokens: u32,
        }
        let info: Info = self.get_json("/info").await?;
        Some(info.max_total_tokens).filter(|&n| n > 0)
    }

    /// A GET whose 2xx JSON body parses as `T`; anything else is `None`.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Option<T> {
        let url = format!("{}{path}", self.inner.base);
        let mut request = self.inner.client.get(&url).timeout(PROBE_TIMEOUT);
        if let Some(auth) = &self.inner.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let response = super::send_retrying_stale(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let bytes = response.bytes().await.ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A non-streaming generation; returns (prompt tokens, completion tokens).
    async fn usage_probe(&self, endpoint: Endpoint, text: &str) -> Result<(u32, u32), String> {
        let params = BodyParams {
            max_tokens: 1,
            temperature: 0.0,
            stream: false,
            exact_output: false,
        };
        let (prompt, completion) = self.generate_once(endpoint, text, &params).await?;
        let prompt = prompt.ok_or("the response has no usage.prompt_tokens")?;
        Ok((prompt, completion.unwrap_or(0)))
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
        let timeout = self.probe_timeout(text);
        let response =
            super::send_retrying_stale(self.post(self.url(endpoint), body).timeout(timeout))
                .await
                .map_err(|e| request_error(&e, timeout))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| request_error(&e, timeout))?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", chunk::error_message(&bytes)));
        }
        let body: Body = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        let usage = body.usage.unwrap_or_default();
        Ok((usage.prompt_tokens, usage.completion_tokens))
    }

    /// How prompts of `endpoint` will be counted, with a note unless exact
    /// by `/tokenize`.
    pub(crate) async fn probe_calibration(&self, endpoint: Endpoint) -> CalibrationMethod {
        let method = self.probe_method(endpoint).await;
        let note = match method {
            CalibrationMethod::Tokenize => None,
            CalibrationMethod::UsageProbe => Some(
                "no /tokenize endpoint: prompt lengths calibrated with max_tokens=1 usage probes",
            ),
            CalibrationMethod::Estimate => {
                Some("neither /tokenize nor usage answered: prompt lengths are estimates")
            }
        };
        if let Some(note) = note {
            self.update_info(|info| info.notes.push(note.to_owned()));
        }
        method
    }

    /// A tokenizer endpoint that counts prompts of `endpoint` (vLLM's, then
    /// llama-server's), else usage probes on `endpoint`, else estimates.
    pub(crate) async fn probe_method(&self, endpoint: Endpoint) -> CalibrationMethod {
        let text = "Hello there.";
        for api in [TokenizeApi::Vllm, TokenizeApi::LlamaCpp] {
            if self.tokenize(api, endpoint, text).await.is_ok() {
                self.update_discovered(|d| d.tokenize_api = Some(api));
                return CalibrationMethod::Tokenize;
            }
        }
        // Twice: one transient failure must not leave every prompt an estimate.
        for _ in 0..2 {
            if self.usage_probe(endpoint, text).await.is_ok() {
                return CalibrationMethod::UsageProbe;
            }
        }
        CalibrationMethod::Estimate
    }

    /// Whether asking for exactly N tokens gives N tokens, on chat or, when
    /// chat itself fails (a base model without a chat template), on
    /// completions. A 4xx to the fields themselves (the same request without
    /// them succeeds) means they are never sent again.
    pub(crate) async fn probe_ignore_eos(&self) -> bool {
        let mut outcome = self.probe_exact_output(Endpoint::Chat).await;
        if let ExactOutput::EndpointFailed(_) = outcome {
            let completions = self.probe_exact_output(Endpoint::Completions).await;
            if !matches!(completions, ExactOutput::EndpointFailed(_)) {
                outcome = completions;
            }
        }
        let note = match outcome {
            ExactOutput::Honoured => return true,
            ExactOutput::NotHonoured(got) => format!(
                "ignore_eos/min_tokens not honoured (asked {EXACT_PROBE_TOKENS} tokens, got {got}): outputs may be shorter than asked and are flagged"
            ),
            ExactOutput::Rejected(message) => {
                self.inner.send_exact_output.store(false, Ordering::Relaxed);
                format!(
                    "the engine rejects ignore_eos/min_tokens ({message}): they are not sent; outputs may be shorter than asked and are flagged"
                )
            }
            ExactOutput::EndpointFailed(message) => format!(
                "ignore_eos/min_tokens probe failed ({message}); outputs may be shorter than asked"
            ),
        };
        self.update_info(|info| info.notes.push(note));
        false
    }

    async fn probe_exact_output(&self, endpoint: Endpoint) -> ExactOutput {
        let exact = BodyParams {
            max_tokens: EXACT_PROBE_TOKENS,
            temperature: 0.0,
            stream: false,
            exact_output: true,
        };
        match self.generate_once(endpoint, "Say yes.", &exact).await {
            Ok((_, Some(n))) if n == EXACT_PROBE_TOKENS => ExactOutput::Honoured,
            Ok((_, got)) => {
                ExactOutput::NotHonoured(got.map_or("no usage".to_owned(), |n| n.to_string()))
            }
            Err(message) if message.starts_with("HTTP 4") => {
                let plain = BodyParams {
                    exact_output: false,
                    ..exact
                };
                match self.generate_once(endpoint, "Say yes.", &plain).await {
                    Ok(_) => ExactOutput::Rejected(message),
                    Err(other) => ExactOutput::EndpointFailed(other),
                }
            }
            Err(message) => ExactOutput::EndpointFailed(message),
        }
    }
}

/// Tokens asked for by the exact-output probe.
const EXACT_PROBE_TOKENS: u32 = 24;

/// What the exact-output probe found.
enum ExactOutput {
    Honoured,
    /// Accepted, but another length came back (the count, or "no usage").
    NotHonoured(String),
    /// A 4xx that the same request without the fields does not get.
    Rejected(String),
    /// The endpoint fails with or without the fields.
    EndpointFailed(String),
}

/// A failed probe request, saying so plainly when it ran out of time.
fn request_error(err: &reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        format!("timed out after {:.0} s", timeout.as_secs_f64())
    } else {
        error_chain(err)
    }
}
