//! Running a real `bids` in-process for the tests of services that depend on it (`lots`): the
//! caller brings the database, broker and Redis, and names where `wallets` is. Built only with
//! the `testing` feature, never into the binary.

use std::time::Duration;

use gavel_common::auth::AuthConfig;
use gavel_common::cache::RedisConfig;
use gavel_common::config::{ListenConfig, Secret, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
use gavel_common::internal::{InternalConfig, PeerConfig};
use gavel_common::server::Running;
use gavel_messaging::BrokerConfig;

use crate::config::{Config, EngineConfig, ReleaseConfig, RepairConfig};

/// What a test brings.
#[derive(Debug, Clone)]
pub struct Options {
    pub database: DatabaseConfig,
    pub broker: BrokerConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    /// `wallets`' internal API, and the token `bids` presents there.
    pub wallets_url: url::Url,
    pub wallets_token: String,
    /// Callers of the engine's internal API, by name, with their tokens.
    pub callers: Vec<(String, String)>,
    pub bids_per_second: u32,
    pub repair_after: Duration,
}

/// A config for tests: loopback ports, fast ticks and retries.
pub fn config(options: &Options) -> Config {
    let loopback = ListenConfig::loopback;
    Config {
        http: loopback(),
        admin: loopback(),
        internal: InternalConfig {
            addr: ([127, 0, 0, 1], 0).into(),
            tokens: options
                .callers
                .iter()
                .map(|(name, token)| (name.clone(), Secret::new(token.clone())))
                .collect(),
        },
        log: Default::default(),
        shutdown: ShutdownConfig {
            readiness_grace: Duration::ZERO,
            drain_deadline: Duration::from_secs(5),
        },
        database: options.database.clone(),
        broker: options.broker.clone(),
        redis: options.redis.clone(),
        auth: options.auth.clone(),
        wallets: PeerConfig {
            url: options.wallets_url.clone(),
            token: Secret::new(options.wallets_token.clone()),
            timeout: Duration::from_secs(10),
        },
        engine: EngineConfig {
            tick: Duration::from_millis(100),
            bids_per_second: options.bids_per_second,
        },
        releases: ReleaseConfig {
            retry: Duration::from_millis(200),
            backoff_max: Duration::from_secs(1),
            max_attempts: 3,
        },
        repair: RepairConfig {
            after: options.repair_after,
            interval: Duration::from_millis(100),
        },
        retention: Default::default(),
    }
}

/// Builds and serves `config` on ephemeral loopback ports, in this runtime.
pub async fn serve(config: &Config) -> Running {
    let service = crate::build(config)
        .await
        .unwrap_or_else(|error| panic!("bids does not build: {error:?}"));
    Running::start(service, config.shutdown.clone())
        .await
        .unwrap_or_else(|error| panic!("cannot bind: {error}"))
}
