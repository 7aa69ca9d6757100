//! The configuration of `bids`. See `docs/configuration.md` for every key.

use std::time::Duration;

use gavel_common::auth::AuthConfig;
use gavel_common::cache::RedisConfig;
use gavel_common::config::{ListenConfig, Secret, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
use gavel_common::telemetry::LogConfig;
use gavel_messaging::BrokerConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_http")]
    pub http: ListenConfig,
    #[serde(default = "default_admin")]
    pub admin: ListenConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    pub database: DatabaseConfig,
    pub broker: BrokerConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub wallets: WalletsConfig,
    #[serde(default)]
    pub engine: EngineConfig,
}

fn default_http() -> ListenConfig {
    ListenConfig::all_interfaces(8082)
}

fn default_admin() -> ListenConfig {
    ListenConfig::all_interfaces(9082)
}

/// Where the holds ledger is, and the token `bids` presents to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalletsConfig {
    pub url: url::Url,
    pub token: Secret,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// How often due lots are opened and closed (a lot closes within this of its end).
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// Bids one bidder may place per second, across all replicas.
    pub bids_per_second: u32,
    /// How often undelivered hold releases are retried.
    #[serde(with = "humantime_serde")]
    pub release_retry: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(200),
            bids_per_second: 5,
            release_retry: Duration::from_secs(1),
        }
    }
}
