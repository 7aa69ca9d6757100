//! `gateway-ws`: the browsers' WebSocket sessions. It fans `auction.*` events out to subscribers,
//! replays what a reconnecting client missed, forwards bids to `bids`, and serves the web client.
//!
//! So far the service has its skeleton: configuration, its connections with their readiness
//! checks, and the admin endpoints. Its API arrives with its own issue.

use axum::Router;
use gavel_common::auth::{AuthConfig, JwtVerifier};
use gavel_common::cache::{Cache, RedisConfig};
use gavel_common::config::{ListenConfig, ShutdownConfig};
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
    pub broker: BrokerConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
}

fn default_http() -> ListenConfig {
    ListenConfig::all_interfaces(8080)
}

fn default_admin() -> ListenConfig {
    ListenConfig::all_interfaces(9080)
}

/// Connects to everything `gateway-ws` needs and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    let metrics = Metrics::new("gateway-ws");
    let _verifier = JwtVerifier::from_config(&config.auth)
        .map_err(|e| StartError::new("loading the JWT key", e))?;
    let cache = Cache::connect(&config.redis)
        .await
        .map_err(|e| StartError::new("connecting to Redis", e))?;
    let broker = Broker::new(config.broker.clone(), "gateway-ws");
    let readiness = Readiness::default()
        .with_redis(cache.clone())
        .with_check("rabbitmq", broker.check());
    Ok(Service::new(Router::new(), metrics, readiness))
}
