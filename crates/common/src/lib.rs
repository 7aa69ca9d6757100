//! Shared plumbing for every Gavel service.
//!
//! Each module covers one concern that all five services need in the same shape:
//!
//! - [`cli`]: what a binary does besides serving (`probe <url>`, `migrate`).
//! - [`config`]: layered, typed configuration (defaults → optional TOML file → `GAVEL_…` env vars)
//!   with secrets that never print.
//! - [`telemetry`]: `tracing` set-up, JSON in production and readable in development.
//! - [`metrics`] and [`http`]: Prometheus metrics and the request-id/trace/metrics layers that wrap
//!   every public router.
//! - [`health`]: readiness made of real dependency checks, plus the draining flag.
//! - [`internal`]: service-to-service APIs on their own listener, with per-caller tokens, and the
//!   client that calls them.
//! - [`idempotency`]: the `Idempotency-Key` header and stored answers that replay.
//! - [`listener`]: serving one listener: header deadline, connection cap, client address.
//! - [`server`]: runs the public, internal and admin listeners and the background tasks until shutdown, then
//!   drains within a deadline.
//! - [`openapi`]: what every OpenAPI document says the same way (problem answers).
//! - [`problem`] and [`extract`]: the one `application/problem+json` error body and the extractors
//!   that reject bad input with it.
//! - [`auth`]: verification of the access tokens that `wallets` mints.
//! - [`db`] and [`cache`]: PostgreSQL and Redis connections with their readiness checks.

pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
pub mod db;
pub mod extract;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod internal;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod server;
pub mod telemetry;

/// A boxed error for places that carry causes of several kinds (background tasks, checks).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error and all its sources, `outer: inner: root`, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}
