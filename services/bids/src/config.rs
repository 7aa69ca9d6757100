//! The configuration of `bids`. See `docs/configuration.md` for every key.

use std::time::Duration;

use gavel_common::auth::AuthConfig;
use gavel_common::cache::RedisConfig;
use gavel_common::config::{ListenConfig, ServiceConfig, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
use gavel_common::idempotency::RetentionConfig;
use gavel_common::internal::{InternalConfig, PeerConfig};
use gavel_common::telemetry::LogConfig;
use gavel_messaging::BrokerConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: ListenConfig,
    pub admin: ListenConfig,
    /// The internal API (lot changes from `lots`); callers in `internal.tokens`.
    pub internal: InternalConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    pub database: DatabaseConfig,
    pub broker: BrokerConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    /// `wallets`' internal holds API.
    pub wallets: PeerConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub releases: ReleaseConfig,
    #[serde(default)]
    pub repair: RepairConfig,
    /// How long answers to bid requests are kept for retries (`retention.idempotency`).
    #[serde(default)]
    pub retention: RetentionConfig,
}

impl ServiceConfig for Config {
    const DEFAULTS: &'static str = r#"
http.addr = "0.0.0.0:8082"
admin.addr = "0.0.0.0:9082"
internal.addr = "0.0.0.0:8182"
"#;
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// How often due lots are opened and closed (a lot closes within this of its end).
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// Bids one bidder may place per second, across all replicas (retries included).
    pub bids_per_second: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            tick: Duration::from_millis(200),
            bids_per_second: 5,
        }
    }
}

/// Delivering hold releases to `wallets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReleaseConfig {
    /// How often the queue is looked at without a wake-up, and the first retry's delay.
    #[serde(with = "humantime_serde")]
    pub retry: Duration,
    /// The longest delay between two attempts of one release (the delay doubles up to it).
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// After this many failed attempts a release is parked for an operator.
    pub max_attempts: i32,
}

impl Default for ReleaseConfig {
    fn default() -> Self {
        Self {
            retry: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            max_attempts: 10,
        }
    }
}

impl ReleaseConfig {
    /// The delay before attempt `attempts + 1`: `retry · 2^attempts`, at most `backoff_max`.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let factor = 2u32.saturating_pow(u32::try_from(attempts).unwrap_or(0).min(20));
        self.retry.saturating_mul(factor).min(self.backoff_max)
    }
}

/// Repairing holds whose bid `wallets` has not seen recorded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RepairConfig {
    /// A hold is looked at once unconfirmed this long: longer than a bid takes from hold to
    /// commit plus normal event delivery, so that the repair is the exception.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// How often the repair asks `wallets` for such holds.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            after: crate::repair::DEFAULT_AFTER,
            interval: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_common::config::Ports;

    #[test]
    fn default_ports_match_the_deploy_manifest() {
        assert_eq!(
            Ports::from_defaults::<Config>(),
            Ports::from_deploy_manifest("bids"),
        );
    }

    #[test]
    fn release_backoff_doubles_up_to_its_cap() {
        let config = ReleaseConfig {
            retry: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_attempts: 10,
        };
        let delays: Vec<u64> = (0..8).map(|n| config.backoff(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(config.backoff(i32::MAX), Duration::from_secs(60));
    }
}
