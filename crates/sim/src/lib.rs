//! spark-sim: a simulated vLLM-like OpenAI-compatible engine.
