//! The orchestrator: reads a docker-compose file the way `docker compose`
//! does, and starts, health-gates and stops its inference services one at a
//! time through the Docker Engine API (bollard).
//!
//! Architecture Invariant: the orchestrator knows no OpenAI protocol; a plain
//! HTTP GET on a service's health path is all it ever sends to an engine.
