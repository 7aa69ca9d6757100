//! The configuration of `wallets`. See `docs/configuration.md` for every key.

use std::time::Duration;

use gavel_common::cache::RedisConfig;
use gavel_common::config::{ListenConfig, Secret, SecretUrl, ServiceConfig, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
use gavel_common::idempotency::RetentionConfig;
use gavel_common::internal::InternalConfig;
use gavel_common::telemetry::LogConfig;
use gavel_messaging::BrokerConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: ListenConfig,
    pub admin: ListenConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    pub database: DatabaseConfig,
    pub broker: BrokerConfig,
    pub redis: RedisConfig,
    pub chain: ChainConfig,
    pub sign_in: SignInConfig,
    pub tokens: TokenConfig,
    pub internal: InternalConfig,
    #[serde(default)]
    pub settlement: SettlementConfig,
    /// How long answers to hold requests are kept for retries (`retention.idempotency`).
    #[serde(default)]
    pub retention: RetentionConfig,
}

impl ServiceConfig for Config {
    const DEFAULTS: &'static str = r#"
http.addr = "0.0.0.0:8083"
admin.addr = "0.0.0.0:9083"
internal.addr = "0.0.0.0:8183"
"#;
}

/// The internal holds API's listener; callers (`internal.tokens.bids`) are configured.
/// The Ethereum node balances and payments are read from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC endpoint, e.g. `http://127.0.0.1:8545` (may carry an API key: redacted in logs).
    pub rpc_url: SecretUrl,
    /// The EIP-155 chain id sign-in messages must name (1 mainnet, 31337 the local dev chain).
    pub chain_id: u64,
    /// Balances are read at `latest − (confirmations − 1)`, and a payment counts once its block
    /// has this many confirmations (its own block included).
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    /// How long a balance read from the node is reused.
    #[serde(default = "default_balance_ttl", with = "humantime_serde")]
    pub balance_cache_ttl: Duration,
}

fn default_confirmations() -> u64 {
    12
}

fn default_balance_ttl() -> Duration {
    Duration::from_secs(2)
}

/// What a Sign-In with Ethereum message must say to be accepted here.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInConfig {
    /// The RFC 3986 authority the browser shows, e.g. `gavel.example` or `localhost:8080`.
    pub domain: String,
    /// The URI the message must name, e.g. `https://gavel.example`; the message's URI must be on
    /// its origin.
    pub uri: url::Url,
    /// Further addresses the site is served under (`http://127.0.0.1:8080`,
    /// `https://gavel.lan:8443`): each accepts a message naming its own authority as the domain
    /// and a URI on its own origin, never one with the other's.
    #[serde(default)]
    pub origins: Vec<url::Url>,
    #[serde(default = "default_nonce_ttl", with = "humantime_serde")]
    pub nonce_ttl: Duration,
    /// Tolerated difference between the wallet's clock and ours for `Issued At`.
    #[serde(default = "default_skew", with = "humantime_serde")]
    pub max_clock_skew: Duration,
}

fn default_nonce_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_skew() -> Duration {
    Duration::from_secs(60)
}

/// The access tokens `wallets` mints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Ed25519 private key, PKCS#8 PEM. Only `wallets` holds it; others get the public key.
    pub private_key: Secret,
    /// Public keys (PEM) of earlier signing keys, still published in the JWKS so that tokens
    /// they signed verify until they expire: a rotation puts the old key here.
    #[serde(default)]
    pub previous_public_keys: Vec<String>,
    #[serde(default = "default_token_ttl", with = "humantime_serde")]
    pub ttl: Duration,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    #[serde(default = "default_audience")]
    pub audience: String,
}

fn default_token_ttl() -> Duration {
    Duration::from_secs(900)
}

fn default_issuer() -> String {
    "gavel-wallets".to_owned()
}

fn default_audience() -> String {
    "gavel".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SettlementConfig {
    /// How long a winner has to pay once the auction closes.
    #[serde(with = "humantime_serde")]
    pub payment_window: Duration,
    /// How often the payment-deadline sweep runs.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
}

impl Default for SettlementConfig {
    fn default() -> Self {
        Self {
            payment_window: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(5),
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
            Ports::from_deploy_manifest("wallets"),
        );
    }
}
