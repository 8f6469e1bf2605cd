//! The load engine: an HTTP/SSE client for OpenAI-compatible engines, the
//! benchmark scenarios, and per-request timing records.
//!
//! Architecture Invariant: the load engine knows no Docker; it is given a base
//! URL and measures whatever answers there.
