//! The engine's own Prometheus counters and gauges, read right before a
//! scenario's first request and right after its last one ended, so a run
//! shows what the engine says it served beside what the client measured
//! (llama-server's `llamacpp:prompt_tokens_total` against the prompt tokens
//! sent, for example).
//!
//! Only the engine's own families are kept (names with a known engine
//! prefix), each summed over its label sets; of a histogram or a summary
//! only its `_sum` and `_count`, whose deltas give the engine's own mean
//! (its TTFT, its inter-token latency). An engine without a metrics
//! endpoint is asked once.
//!
//! [`Engine::read_metrics`] is the same read for the CLI's telemetry probe,
//! which samples the gauges (KV-cache usage, queued requests) during a
//! scenario.
//!
//! The text exposition format is parsed here: `prometheus-parse` 0.2.5, the
//! crate we tried first, reads metric names as `\w+` and so drops every
//! `llamacpp:` and `vllm:` family (colons are legal in names and every
//! engine uses them).

use std::collections::BTreeMap;
use std::time::Duration;

use super::Engine;

/// Where engines serve their metrics: vLLM, SGLang, llama-server (with
/// `--metrics`), TGI and spark-sim at `/metrics`; TensorRT-LLM's server at
/// `/prometheus/metrics`.
const PATHS: [&str; 2] = ["/metrics", "/prometheus/metrics"];

/// Prefixes of the engines' own metric families.
const PREFIXES: [&str; 6] = [
    "llamacpp:",
    "vllm:",
    "sglang:",
    "tgi_",
    "trtllm_",
    "ollama_",
];

/// A scrape is a local GET: it never holds a scenario up for long.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);

/// One read of the engine's metrics: the path and its values, `None` when
/// the engine serves none, or why the read failed.
pub(crate) type CounterRead = Result<Option<(&'static str, BTreeMap<String, f64>)>, String>;

/// What is known of the engine's metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum MetricsPath {
    /// Not asked yet.
    #[default]
    Unknown,
    /// Served at this path.
    At(&'static str),
    /// Neither path serves the engine's metrics: not asked again.
    Absent,
}

impl Engine {
    /// The engine's metrics now: the path and every value of its own
    /// families. `Ok(None)` when it serves none (asked once per engine).
    pub(crate) async fn read_counters(&self) -> CounterRead {
        let known = *self
            .inner
            .metrics_path
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let known_path;
        let candidates: &[&'static str] = match known {
            MetricsPath::Absent => return Ok(None),
            MetricsPath::At(path) => {
                known_path = [path];
                &known_path
            }
            MetricsPath::Unknown => &PATHS,
        };
        let mut last_error = None;
        for &path in candidates {
            match self.scrape(path).await {
                Ok(values) if !values.is_empty() => {
                    self.set_metrics_path(MetricsPath::At(path));
                    return Ok(Some((path, values)));
                }
                Ok(_) => {}
                Err(err) => last_error = Some(err),
            }
        }
        match (known, last_error) {
            // It answered before: a failure now is worth saying.
            (MetricsPath::At(path), Some(err)) => Err(format!("{path}: {err}")),
            (MetricsPath::At(_), None) => Ok(Some((candidates[0], BTreeMap::new()))),
            _ => {
                self.set_metrics_path(MetricsPath::Absent);
                Ok(None)
            }
        }
    }

    /// The engine's metrics now, every value of its own families summed
    /// over label sets; `Ok(None)` when it serves none. For sampling during
    /// a scenario beside the reads before and after it.
    pub async fn read_metrics(&self) -> Result<Option<BTreeMap<String, f64>>, String> {
        Ok(self.read_counters().await?.map(|(_, values)| values))
    }

    fn set_metrics_path(&self, path: MetricsPath) {
        *self
            .inner
            .metrics_path
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = path;
    }

    async fn scrape(&self, path: &str) -> Result<BTreeMap<String, f64>, String> {
        let url = format!("{}{path}", self.inner.base);
        let mut request = self.inner.client.get(&url).timeout(SCRAPE_TIMEOUT);
        if let Some(auth) = &self.inner.auth {
            request = request.header(reqwest::header::AUTHORIZATION, auth.clone());
        }
        let response = super::send_retrying_stale(request)
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let text = response.text().await.map_err(|e| e.to_string())?;
        parse(&text)
    }
}

/// The engine's own scalar families of an exposition, summed over label
/// sets. Of histogram and summary families (by their `# TYPE`) only the
/// `_sum` and `_count` series are kept; their buckets, quantiles and
/// `_created` are skipped.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut skipped_families: Vec<&str> = Vec::new();
    let mut values = BTreeMap::new();
    for (idx, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            if words.next() == Some("TYPE")
                && let (Some(family), Some(kind)) = (words.next(), words.next())
                && matches!(kind, "histogram" | "summary" | "gaugehistogram")
            {
                skipped_families.push(family);
            }
            continue;
        }
        let (name, value) =
            sample(line).ok_or_else(|| format!("line {}: not a sample: {line:.120}", idx + 1))?;
        if !PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let in_skipped = skipped_families.iter().any(|family| {
            name.strip_prefix(family)
                .is_some_and(|rest| matches!(rest, "" | "_bucket" | "_created"))
        });
        if !in_skipped && value.is_finite() {
            *values.entry(name.to_owned()).or_insert(0.0) += value;
        }
    }
    Ok(values)
}

/// A sample line's name and value: `name{labels} value [timestamp]`, label
/// values quoted with `\\`, `\"` and `\n` escapes.
fn sample(line: &str) -> Option<(&str, f64)> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_ascii_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let valid_name = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if name.is_empty() || !valid_name {
        return None;
    }
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        // Skip the labels, minding quoted values that may hold `}`.
        let mut in_quotes = false;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            match (in_quotes, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, _, '"') => in_quotes = !in_quotes,
                (false, _, '}') => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[end? + 1..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        other => other.parse().ok()?,
    };
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_server_metrics_are_kept_and_others_dropped() {
        // As llama-server (`--metrics`) writes them.
        let text = "\
# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1085
# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 247
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 0
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
";
        let values = parse(text).expect("parses");
        assert_eq!(values.get("llamacpp:prompt_tokens_total"), Some(&1085.0));
        assert_eq!(values.get("llamacpp:tokens_predicted_total"), Some(&247.0));
        assert_eq!(values.get("llamacpp:requests_processing"), Some(&0.0));
        assert!(!values.contains_key("process_cpu_seconds_total"));
    }

    #[test]
    fn quoted_label_values_and_special_values() {
        let text = "\
sglang:num_running_reqs{model=\"a}b\\\"c\",x=\"\"} 3 1700000000000
sglang:num_queue_reqs NaN
sglang:token_usage +Inf
";
        let values = parse(text).expect("parses");
        assert_eq!(values.get("sglang:num_running_reqs"), Some(&3.0));
        // Not finite: not a value anyone can take a difference of.
        assert!(!values.contains_key("sglang:num_queue_reqs"));
        assert!(!values.contains_key("sglang:token_usage"));
        let err = parse("vllm:x 1\n{garbage\n").expect_err("not a sample");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn label_sets_are_summed_and_histograms_keep_their_sum_and_count() {
        let text = "\
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine=\"0\",model_name=\"m\"} 100
vllm:prompt_tokens_total{engine=\"1\",model_name=\"m\"} 20
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le=\"0.1\"} 3
vllm:time_to_first_token_seconds_bucket{le=\"+Inf\"} 4
vllm:time_to_first_token_seconds_sum 0.5
vllm:time_to_first_token_seconds_count 4
";
        let values = parse(text).expect("parses");
        assert_eq!(values.get("vllm:prompt_tokens_total"), Some(&120.0));
        assert_eq!(
            values.get("vllm:time_to_first_token_seconds_sum"),
            Some(&0.5)
        );
        assert_eq!(
            values.get("vllm:time_to_first_token_seconds_count"),
            Some(&4.0)
        );
        assert!(
            values
                .keys()
                .all(|k| !k.starts_with("vllm:time_to_first_token_seconds_bucket")),
            "{values:?}"
        );
    }
}
