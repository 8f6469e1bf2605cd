//! The serve flags (`SimArgs`), the named timing profiles and the flavors.
//!
//! `SimArgs` derives `clap::Args` so that both the `spark-sim` binary and the
//! `spark-perf sim` subcommand can flatten it into their own parsers.

use std::path::PathBuf;
use std::time::Duration;

/// Flags of `spark-sim` (serve). Every timing flag overrides the profile's value.
#[derive(Debug, Clone, clap::Args)]
pub struct SimArgs {
    /// Address to bind.
    #[arg(long, default_value = "0.0.0.0")]
    pub host: String,
    /// Port to bind; 0 picks a free one (read it from the `listening on` line).
    /// Without it: 8000, or 80 for `--flavor tgi` (TGI's image listens on 80).
    #[arg(long)]
    pub port: Option<u16>,
    /// The model "path", reported as `root` in /v1/models; also served when no
    /// --served-model-name is given. `--model-id` is TGI's launcher spelling.
    #[arg(long, alias = "model-id", default_value = "spark-sim/sim-1")]
    pub model: String,
    /// Names the model answers to (repeatable); the first is reported in responses.
    #[arg(long = "served-model-name", num_args = 1..)]
    pub served_model_name: Vec<String>,
    /// Which engine's small differences to imitate.
    #[arg(long, value_enum, default_value_t = Flavor::Vllm)]
    pub flavor: Flavor,
    /// Named timing profile; the individual timing flags override it.
    #[arg(long, value_enum, default_value_t = ProfileName::Fp8Moe)]
    pub profile: ProfileName,
    /// Context length: prompt + max_tokens must fit. `--max-total-tokens` is
    /// TGI's launcher spelling.
    #[arg(long, alias = "max-total-tokens", default_value_t = 8192)]
    pub max_model_len: u32,
    /// Longest prompt accepted (TGI's `--max-input-tokens`); without it one
    /// less than the context, as TGI defaults it.
    #[arg(long)]
    pub max_input_tokens: Option<u32>,
    /// Sequences decoded at once; later requests wait in the queue.
    #[arg(long)]
    pub max_num_seqs: Option<u32>,
    /// Fixed prefill cost per request, in milliseconds.
    #[arg(long)]
    pub prefill_base_ms: Option<f64>,
    /// Linear prefill cost per uncached prompt token, in microseconds.
    #[arg(long)]
    pub prefill_us_per_token: Option<f64>,
    /// Quadratic prefill cost per uncached prompt token squared, in nanoseconds.
    #[arg(long)]
    pub prefill_ns_per_token_sq: Option<f64>,
    /// Inter-token latency with one running sequence, in milliseconds.
    #[arg(long)]
    pub decode_ms: Option<f64>,
    /// Extra inter-token latency per additional running sequence, in milliseconds.
    #[arg(long)]
    pub decode_ms_per_seq: Option<f64>,
    /// KV-cache capacity in tokens (for vllm:kv_cache_usage_perc and the prefix cache size).
    #[arg(long)]
    pub kv_cache_tokens: Option<u64>,
    /// Tokens per prefix-cache block.
    #[arg(long, default_value_t = 16)]
    pub block_size: u32,
    /// Turn the prefix cache off.
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// Mean length (tokens, EOS included) of a response that may stop early.
    #[arg(long, default_value_t = 256)]
    pub mean_output_tokens: u32,
    /// Seed of every pseudo-random choice (output text, early stops, --fail-rate).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Simulated model loading time (e.g. 500ms, 3s, 1m).
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub load_time: Duration,
    /// Part of --load-time during which the port refuses connections; /health
    /// answers 503 for the rest.
    #[arg(long, default_value_t = 0.5)]
    pub load_closed_fraction: f64,
    /// Never become ready: /health stays 503 after the port opens.
    #[arg(long)]
    pub never_ready: bool,
    /// The first N tokens of each response are reasoning.
    #[arg(long, default_value_t = 0)]
    pub reasoning: u32,
    /// Field of the delta that carries reasoning.
    #[arg(long, value_enum, default_value_t = ReasoningField::ReasoningContent)]
    pub reasoning_field: ReasoningField,
    /// Write one JSON line per finished request (ground truth) to this file.
    #[arg(long)]
    pub truth_log: Option<PathBuf>,
    /// Run-to-run drift: one factor per process, uniform in ±P %, drawn from
    /// --seed, on every timing (prefill and decode), as a container start,
    /// GPU clocks and heat move a real engine from night to night.
    #[arg(long, default_value_t = 0.0)]
    pub run_drift_pct: f64,
    /// Per-request jitter: each request's prefill and decode times are scaled
    /// by a factor uniform in ±P %, drawn from --seed and the request's number.
    #[arg(long, default_value_t = 0.0)]
    pub jitter_pct: f64,
    /// Fraction of generation requests answered with HTTP 500 (seeded, deterministic).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Send an in-band error event after N tokens of a stream, then end it.
    #[arg(long)]
    pub error_after: Option<u32>,
    /// Drop the connection after N tokens of a stream.
    #[arg(long)]
    pub disconnect_after: Option<u32>,
    /// Stop sending after N tokens of a stream but keep the connection open.
    #[arg(long)]
    pub stall_after: Option<u32>,
    /// Crash (exit code 3) once N generation requests have finished.
    #[arg(long)]
    pub exit_after_requests: Option<u64>,
    /// Tokens per stream chunk (SGLang's `--stream-interval`, a gateway that
    /// batches): each chunk's text and per-chunk usage cover N tokens.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub tokens_per_chunk: u32,
    /// Answer 400 to any request with `stream_options`, as servers that do
    /// not know the field do.
    #[arg(long)]
    pub reject_stream_options: bool,
    /// Answer 400 to any request with `ignore_eos` or `min_tokens`, as
    /// strict OpenAI-compatible servers and gateways do.
    #[arg(long)]
    pub reject_ignore_eos: bool,
    /// Serve no Prometheus metrics: /metrics answers 501, as llama-server
    /// started without `--metrics` does.
    #[arg(long)]
    pub no_metrics: bool,
    /// Require `Authorization: Bearer KEY` on /v1/* (as vLLM's --api-key).
    #[arg(long, env = "VLLM_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl SimArgs {
    /// The defaults, as if `spark-sim` were run with no flags.
    pub fn defaults() -> SimArgs {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SimArgs,
        }
        <Wrapper as clap::Parser>::parse_from(["spark-sim"]).args
    }

    /// The port to bind: `--port`, else the flavor's own default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.flavor {
            Flavor::Tgi => 80,
            _ => 8000,
        })
    }

    /// The longest prompt accepted: `--max-input-tokens`, else the context
    /// less one token (room for one generated token).
    pub fn max_input_tokens(&self) -> u32 {
        self.max_input_tokens
            .unwrap_or(self.max_model_len.saturating_sub(1))
    }

    /// Names the model answers to; the first is the one reported.
    pub fn served_names(&self) -> Vec<String> {
        if self.served_model_name.is_empty() {
            vec![self.model.clone()]
        } else {
            self.served_model_name.clone()
        }
    }

    /// This process's run-drift factor (1 without --run-drift-pct).
    pub fn drift_factor(&self) -> f64 {
        if self.run_drift_pct == 0.0 {
            return 1.0;
        }
        let draw = crate::tokenizer::splitmix64(self.seed ^ 0xD81F_7000_0000_0001);
        1.0 + signed_unit(draw) * self.run_drift_pct / 100.0
    }

    /// The profile's timing with the individual flags applied on top.
    pub fn timing(&self) -> Timing {
        let mut timing = self.profile.timing();
        let ms = |v: f64| Duration::from_secs_f64(v.max(0.0) / 1e3);
        if let Some(v) = self.prefill_base_ms {
            timing.prefill_base = ms(v);
        }
        if let Some(v) = self.prefill_us_per_token {
            timing.prefill_ns_per_token = v.max(0.0) * 1e3;
        }
        if let Some(v) = self.prefill_ns_per_token_sq {
            timing.prefill_ns_per_token_sq = v.max(0.0);
        }
        if let Some(v) = self.decode_ms {
            timing.decode_base = ms(v);
        }
        if let Some(v) = self.decode_ms_per_seq {
            timing.decode_per_seq = ms(v);
        }
        if let Some(v) = self.max_num_seqs {
            timing.max_num_seqs = v.max(1);
        }
        let drift = self.drift_factor();
        if drift != 1.0 {
            let scale = |d: Duration| d.mul_f64(drift);
            timing.prefill_base = scale(timing.prefill_base);
            timing.prefill_ns_per_token *= drift;
            timing.prefill_ns_per_token_sq *= drift;
            timing.decode_base = scale(timing.decode_base);
            timing.decode_per_seq = scale(timing.decode_per_seq);
        }
        if let Some(v) = self.kv_cache_tokens {
            timing.kv_cache_tokens = v.max(1);
        }
        timing
    }
}

/// Which engine's differences to imitate; see docs/SIM.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Flavor {
    /// vLLM's OpenAI server (the reference).
    Vllm,
    /// TensorRT-LLM's `trtllm-serve`.
    Trtllm,
    /// SGLang.
    Sglang,
    /// llama.cpp's `llama-server`.
    Llamacpp,
    /// Hugging Face text-generation-inference (`text-generation-launcher`).
    Tgi,
}

/// Delta field that carries reasoning tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReasoningField {
    /// `reasoning` (vLLM ≥ 0.12).
    Reasoning,
    /// `reasoning_content` (vLLM ≤ 0.11, SGLang, DeepSeek).
    ReasoningContent,
}

impl ReasoningField {
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReasoningField::Reasoning => "reasoning",
            ReasoningField::ReasoningContent => "reasoning_content",
        }
    }
}

/// Named timing profiles, so that comparing them has real winners and losers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileName {
    /// A fast FP8 mixture-of-experts model on a big GPU.
    Fp8Moe,
    /// A slower dense BF16 model.
    Bf16Dense,
    /// llama.cpp with a Q4 model: slow prefill, few parallel slots.
    LlamacppQ4,
    /// No delays at all, for benchmarking clients.
    Zero,
}

/// The timing model's parameters (see docs/SIM.md, "Timing model").
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// Fixed prefill cost.
    pub prefill_base: Duration,
    /// Linear prefill cost per uncached prompt token, in nanoseconds.
    pub prefill_ns_per_token: f64,
    /// Quadratic prefill cost per uncached prompt token squared, in nanoseconds.
    pub prefill_ns_per_token_sq: f64,
    /// Inter-token latency with one running sequence.
    pub decode_base: Duration,
    /// Extra inter-token latency per additional running sequence.
    pub decode_per_seq: Duration,
    /// Sequences decoded at once.
    pub max_num_seqs: u32,
    /// KV-cache capacity in tokens.
    pub kv_cache_tokens: u64,
}

impl ProfileName {
    /// The profile's parameters.
    pub fn timing(self) -> Timing {
        let ms = Duration::from_micros;
        match self {
            ProfileName::Fp8Moe => Timing {
                prefill_base: ms(15_000),
                prefill_ns_per_token: 50_000.0,
                prefill_ns_per_token_sq: 2.0,
                decode_base: ms(8_000),
                decode_per_seq: ms(150),
                max_num_seqs: 256,
                kv_cache_tokens: 500_000,
            },
            ProfileName::Bf16Dense => Timing {
                prefill_base: ms(25_000),
                prefill_ns_per_token: 120_000.0,
                prefill_ns_per_token_sq: 5.0,
                decode_base: ms(20_000),
                decode_per_seq: ms(400),
                max_num_seqs: 128,
                kv_cache_tokens: 200_000,
            },
            ProfileName::LlamacppQ4 => Timing {
                prefill_base: ms(50_000),
                prefill_ns_per_token: 800_000.0,
                prefill_ns_per_token_sq: 20.0,
                decode_base: ms(45_000),
                decode_per_seq: ms(6_000),
                max_num_seqs: 4,
                kv_cache_tokens: 32_768,
            },
            ProfileName::Zero => Timing {
                prefill_base: Duration::ZERO,
                prefill_ns_per_token: 0.0,
                prefill_ns_per_token_sq: 0.0,
                decode_base: Duration::ZERO,
                decode_per_seq: Duration::ZERO,
                max_num_seqs: 1024,
                kv_cache_tokens: 10_000_000,
            },
        }
    }
}

/// Parses `250ms`, `2s`, `1.5s`, `3m`, `100us` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 500ms, 2s, 1m)"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use us, ms, s or m)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("`{text}`: {err}"))
}

/// A uniform draw in [−1, 1) from 64 random bits.
pub(crate) fn signed_unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn flags_override_the_profile() {
        let mut args = SimArgs::defaults();
        args.profile = ProfileName::Zero;
        args.decode_ms = Some(2.0);
        let timing = args.timing();
        assert_eq!(timing.decode_base, Duration::from_millis(2));
        assert_eq!(timing.prefill_base, Duration::ZERO);
    }

    #[test]
    fn tgi_flags_and_port() {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SimArgs,
        }
        let parse = |words: &[&str]| <Wrapper as clap::Parser>::parse_from(words).args;
        let tgi = parse(&[
            "spark-sim",
            "--flavor",
            "tgi",
            "--model-id",
            "tiny",
            "--max-total-tokens",
            "2048",
        ]);
        assert_eq!(tgi.port(), 80);
        assert_eq!(tgi.model, "tiny");
        assert_eq!(tgi.max_model_len, 2048);
        assert_eq!(tgi.max_input_tokens(), 2047);
        assert_eq!(
            parse(&["spark-sim", "--flavor", "tgi", "--port", "0"]).port(),
            0
        );
        assert_eq!(parse(&["spark-sim"]).port(), 8000);
    }
}
