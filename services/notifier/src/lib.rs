//! `notifier`: the Telegram bot. It keeps subscribers, account links and preferences, and turns
//! events into messages through a throttled, durable outbound queue.
//!
//! So far the service has its skeleton: configuration, its connections with their readiness
//! checks, and the admin endpoints. Its API arrives with its own issue.

use axum::Router;
use gavel_common::config::{ListenConfig, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
use gavel_common::health::Readiness;
use gavel_common::metrics::Metrics;
use gavel_common::server::{Service, StartError};
use gavel_common::telemetry::LogConfig;
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
}

fn default_http() -> ListenConfig {
    ListenConfig::all_interfaces(8084)
}

fn default_admin() -> ListenConfig {
    ListenConfig::all_interfaces(9084)
}

/// Connects to everything `notifier` needs and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    let metrics = Metrics::new("notifier");
    let pool = config
        .database
        .pool()
        .map_err(|e| StartError::new("configuring PostgreSQL", e))?;
    gavel_messaging::migrator()
        .run(&pool)
        .await
        .map_err(|e| StartError::new("migrating the database", e))?;
    let broker = Broker::new(config.broker.clone(), "notifier");
    let readiness = Readiness::default()
        .with_postgres(pool.clone())
        .with_check("rabbitmq", broker.check());
    Ok(Service::new(Router::new(), metrics, readiness))
}
