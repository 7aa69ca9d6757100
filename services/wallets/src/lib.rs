//! `wallets`: accounts and their Ethereum wallets, Sign-In with Ethereum and the access tokens every
//! service checks, balances read from the chain, and the holds ledger that keeps a wallet from
//! backing more than it holds.
//!
//! So far the service has its skeleton: configuration, its connections with their readiness
//! checks, and the admin endpoints. Its API arrives with its own issue.

use axum::Router;
use gavel_common::cache::{Cache, RedisConfig};
use gavel_common::config::{ListenConfig, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
use gavel_common::health::Readiness;
use gavel_common::metrics::Metrics;
use gavel_common::server::{Service, StartError};
use gavel_common::telemetry::LogConfig;
use gavel_messaging::outbox::{Relay, RelayMetrics};
use gavel_messaging::{Broker, BrokerConfig};
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
}

fn default_http() -> ListenConfig {
    ListenConfig {
        addr: ([0, 0, 0, 0], 8083).into(),
    }
}

fn default_admin() -> ListenConfig {
    ListenConfig {
        addr: ([0, 0, 0, 0], 9083).into(),
    }
}

/// Connects to everything `wallets` needs and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    let metrics = Metrics::new("wallets");
    let pool = config
        .database
        .pool()
        .map_err(|e| StartError::new("configuring PostgreSQL", e))?;
    gavel_messaging::migrator()
        .run(&pool)
        .await
        .map_err(|e| StartError::new("migrating the database", e))?;
    let cache = Cache::connect(&config.redis)
        .await
        .map_err(|e| StartError::new("connecting to Redis", e))?;
    let broker = Broker::new(config.broker.clone(), "wallets");
    let readiness = Readiness::default()
        .with_postgres(pool.clone())
        .with_redis(cache.clone())
        .with_check("rabbitmq", {
            let broker = broker.clone();
            move || broker.clone().ping()
        });
    let relay = Relay::new(pool, broker, RelayMetrics::new(&metrics));
    let service = Service::new(Router::new(), metrics, readiness);
    let cancel = service.cancellation();
    Ok(service.with_task("outbox-relay", async move { relay.run(cancel).await }))
}
