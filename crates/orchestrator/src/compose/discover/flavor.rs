//! The inference engines spark-perf knows ([`Flavor`]): their identifiers,
//! names, default ports and health paths, and how a service's flavor is
//! recognised from its command words or, failing that, its image.

use std::fmt;

/// The inference engine a service runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    Vllm,
    TensorRtLlm,
    Sglang,
    LlamaCpp,
    Ollama,
    /// Hugging Face text-generation-inference (`text-generation-launcher`).
    Tgi,
    /// Marked as an engine with `x-spark-perf: {inference: true}`, kind unknown.
    Other,
}

impl Flavor {
    /// All flavors, in the order they are documented.
    pub const ALL: [Flavor; 7] = [
        Flavor::Vllm,
        Flavor::TensorRtLlm,
        Flavor::Sglang,
        Flavor::LlamaCpp,
        Flavor::Ollama,
        Flavor::Tgi,
        Flavor::Other,
    ];

    /// The identifier used in `x-spark-perf.flavor` and in reports.
    pub fn id(self) -> &'static str {
        match self {
            Flavor::Vllm => "vllm",
            Flavor::TensorRtLlm => "trtllm",
            Flavor::Sglang => "sglang",
            Flavor::LlamaCpp => "llamacpp",
            Flavor::Ollama => "ollama",
            Flavor::Tgi => "tgi",
            Flavor::Other => "other",
        }
    }

    /// The flavor with identifier `id`.
    pub fn from_id(id: &str) -> Option<Flavor> {
        Flavor::ALL.into_iter().find(|f| f.id() == id)
    }

    /// The path that answers 200 once the engine is ready.
    pub fn health_path(self) -> &'static str {
        match self {
            Flavor::Ollama => "/api/version",
            _ => "/health",
        }
    }

    /// The port the engine listens on when its command does not say.
    pub(super) fn default_port(self) -> u16 {
        match self {
            Flavor::Sglang => 30000,
            Flavor::LlamaCpp => 8080,
            Flavor::Ollama => 11434,
            // TGI's image sets PORT=80.
            Flavor::Tgi => 80,
            Flavor::Vllm | Flavor::TensorRtLlm | Flavor::Other => 8000,
        }
    }

    /// Engines that need a GPU to run at all.
    pub(super) fn needs_gpu(self) -> bool {
        matches!(
            self,
            Flavor::Vllm | Flavor::TensorRtLlm | Flavor::Sglang | Flavor::Tgi
        )
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Vllm => "vLLM",
            Flavor::TensorRtLlm => "TensorRT-LLM",
            Flavor::Sglang => "SGLang",
            Flavor::LlamaCpp => "llama.cpp",
            Flavor::Ollama => "Ollama",
            Flavor::Tgi => "TGI",
            Flavor::Other => "other",
        })
    }
}

pub(super) fn flavor_from_command(words: &[String]) -> Option<Flavor> {
    let followed_by_serve = |name: &str| {
        words
            .windows(2)
            .any(|w| w[0].rsplit('/').next() == Some(name) && w[1] == "serve")
    };
    let any = |pred: &dyn Fn(&str) -> bool| words.iter().any(|w| pred(w));
    if followed_by_serve("vllm") || any(&|w| w.contains("vllm.entrypoints")) {
        Some(Flavor::Vllm)
    } else if any(&|w| w.rsplit('/').next() == Some("trtllm-serve")) {
        Some(Flavor::TensorRtLlm)
    } else if any(&|w| w.contains("sglang.launch_server")) || followed_by_serve("sglang") {
        Some(Flavor::Sglang)
    } else if any(&|w| w.rsplit('/').next() == Some("llama-server")) {
        Some(Flavor::LlamaCpp)
    } else if followed_by_serve("ollama") {
        Some(Flavor::Ollama)
    } else if any(&|w| w.rsplit('/').next() == Some("text-generation-launcher")) {
        Some(Flavor::Tgi)
    } else {
        None
    }
}

/// Whether the image is spark-sim, the simulated engine.
pub(super) fn is_sim_image(image: &str) -> bool {
    image_repository(image).rsplit('/').next() == Some("spark-sim")
}

/// The repository part of an image reference (no tag, no digest), lower case.
fn image_repository(image: &str) -> String {
    crate::image_ref::ImageRef::parse(image)
        .repository
        .to_ascii_lowercase()
}

pub(super) fn flavor_from_image(image: &str) -> Option<Flavor> {
    let repo = image_repository(image);
    if repo.contains("vllm") {
        Some(Flavor::Vllm)
    } else if repo.contains("tensorrt-llm")
        || repo.contains("tensorrt_llm")
        || repo.contains("trtllm")
    {
        Some(Flavor::TensorRtLlm)
    } else if repo.contains("sglang") {
        Some(Flavor::Sglang)
    } else if repo.contains("llama.cpp") || repo.contains("llama-cpp") || repo.contains("llamacpp")
    {
        Some(Flavor::LlamaCpp)
    } else if repo.contains("ollama") {
        Some(Flavor::Ollama)
    } else if repo.contains("text-generation-inference") {
        Some(Flavor::Tgi)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_repositories() {
        assert_eq!(
            image_repository("nvcr.io/nvidia/vllm:25.09-py3"),
            "nvcr.io/nvidia/vllm"
        );
        assert_eq!(
            image_repository("localhost:5000/spark-sim"),
            "localhost:5000/spark-sim"
        );
        assert_eq!(image_repository("x/y@sha256:abc"), "x/y");
        assert!(is_sim_image("spark-sim:dev"));
        assert_eq!(
            flavor_from_image("nvcr.io/nvidia/tensorrt-llm/release:1.2.0"),
            Some(Flavor::TensorRtLlm)
        );
        assert_eq!(
            flavor_from_image("ghcr.io/ggml-org/llama.cpp:server-cuda"),
            Some(Flavor::LlamaCpp)
        );
        assert_eq!(
            flavor_from_image("ghcr.io/huggingface/text-generation-inference:3.3.4"),
            Some(Flavor::Tgi)
        );
        assert_eq!(flavor_from_image("redis:7"), None);
        assert_eq!(
            flavor_from_image("rocm/vllm:rocm6.4.1_vllm_0.9.1_20250715"),
            Some(Flavor::Vllm)
        );
    }
}
