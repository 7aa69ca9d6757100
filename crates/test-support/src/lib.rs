//! What Gavel's tests share: a fresh PostgreSQL database and a fresh RabbitMQ vhost per test,
//! isolated Redis keys, test signing keys, and waiting for a condition with a deadline instead of
//! sleeping.
//!
//! Everything talks to the real servers that `.ci/stack` starts. Their addresses can be moved
//! with `GAVEL_TEST_POSTGRES_URL`, `GAVEL_TEST_AMQP_URL`, `GAVEL_TEST_RABBITMQ_API` and
//! `GAVEL_TEST_REDIS_URL`.

pub mod auth;
mod broker;
mod chain;
mod closing;
mod database;
mod metrics;
mod process;
mod telegram;
mod wait;

pub use broker::TestVhost;
pub use chain::DevChain;
pub use closing::{Closing, ClosingPeer};
pub use database::TestDatabase;
pub use metrics::metric;
pub use process::{ServiceProcess, assert_lifecycle};
pub use telegram::{FakeTelegram, Sent};
pub use wait::{wait_until, wait_until_async};

use gavel_common::cache::RedisConfig;
use gavel_common::config::SecretUrl;

pub(crate) fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Redis settings whose key prefix no other test shares.
pub fn redis_config() -> RedisConfig {
    let url = env_or("GAVEL_TEST_REDIS_URL", "redis://127.0.0.1:6379");
    RedisConfig {
        url: SecretUrl::parse(&url).expect("GAVEL_TEST_REDIS_URL is a URL"),
        key_prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
    }
}

/// Installs a test log subscriber once per process (`RUST_LOG` picks the level).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
