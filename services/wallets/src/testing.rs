//! Running a real `wallets` in-process for the tests of services that depend on it (`bids`):
//! the caller brings the database, broker, Redis and dev chain. Built only with the `testing`
//! feature, never into the binary.

use std::collections::BTreeMap;
use std::time::Duration;

use gavel_common::cache::RedisConfig;
use gavel_common::config::{ListenConfig, Secret, SecretUrl, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
use gavel_messaging::BrokerConfig;

use crate::config::{ChainConfig, Config, SettlementConfig, SignInConfig, TokenConfig};
use gavel_common::internal::InternalConfig;

/// The test config's second allowed origin (`sign_in.origins`).
pub const SECOND_ORIGIN: &str = "http://gavel-lan.test:8080";

/// What a test chooses about the instance.
#[derive(Debug, Clone)]
pub struct Options {
    pub confirmations: u64,
    pub balance_cache_ttl: Duration,
    pub payment_window: Duration,
    /// The bearer token of the internal caller `bids`.
    pub bids_token: String,
    /// Ed25519 private key (PKCS#8 PEM) that signs access tokens.
    pub private_key: String,
}

/// A config for tests: loopback ports, fast sweeps, sign-in for `gavel.test`.
pub fn config(
    database: DatabaseConfig,
    broker: BrokerConfig,
    redis: RedisConfig,
    rpc_url: &str,
    options: &Options,
) -> Config {
    Config {
        http: ListenConfig::loopback(),
        admin: ListenConfig::loopback(),
        log: Default::default(),
        shutdown: ShutdownConfig {
            readiness_grace: Duration::ZERO,
            drain_deadline: Duration::from_secs(5),
        },
        database,
        broker,
        redis,
        chain: ChainConfig {
            rpc_url: SecretUrl::parse(rpc_url)
                .unwrap_or_else(|error| panic!("bad dev chain URL {rpc_url}: {error}")),
            chain_id: 31337,
            confirmations: options.confirmations,
            balance_cache_ttl: options.balance_cache_ttl,
        },
        sign_in: SignInConfig {
            domain: "gavel.test".to_owned(),
            uri: url::Url::parse("https://gavel.test")
                .unwrap_or_else(|_| unreachable!("a literal URL")),
            // A second address the site is served under, as a LAN name or 127.0.0.1 would be.
            origins: vec![
                url::Url::parse(SECOND_ORIGIN).unwrap_or_else(|_| unreachable!("a literal URL")),
            ],
            nonce_ttl: Duration::from_secs(300),
            max_clock_skew: Duration::from_secs(60),
        },
        tokens: TokenConfig {
            private_key: Secret::new(options.private_key.clone()),
            previous_public_keys: Vec::new(),
            ttl: Duration::from_secs(900),
            issuer: "gavel-wallets".to_owned(),
            audience: "gavel".to_owned(),
        },
        internal: InternalConfig {
            addr: ([127, 0, 0, 1], 0).into(),
            tokens: BTreeMap::from([("bids".to_owned(), Secret::new(options.bids_token.clone()))]),
        },
        settlement: SettlementConfig {
            payment_window: options.payment_window,
            sweep_interval: Duration::from_millis(50),
        },
        retention: Default::default(),
    }
}

/// A running instance; `stop` drains it.
pub type Running = gavel_common::server::Running;

/// Builds and serves `config` on ephemeral loopback ports.
pub async fn serve(config: &Config) -> Running {
    let service = crate::build(config)
        .await
        .unwrap_or_else(|error| panic!("wallets does not build: {error:?}"));
    Running::start(service, config.shutdown.clone())
        .await
        .unwrap_or_else(|error| panic!("cannot bind: {error}"))
}
