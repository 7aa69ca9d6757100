//! The configuration of `gateway-ws`. See `docs/configuration.md` for every key.

use std::path::PathBuf;
use std::time::Duration;

use gavel_common::auth::AuthConfig;
use gavel_common::cache::RedisConfig;
use gavel_common::config::{ListenConfig, ServiceConfig, ShutdownConfig};
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
    pub broker: BrokerConfig,
    pub redis: RedisConfig,
    pub auth: AuthConfig,
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub edge: crate::edge::EdgeConfig,
    #[serde(default)]
    pub web: WebConfig,
}

impl ServiceConfig for Config {
    const DEFAULTS: &'static str = r#"
http.addr = "0.0.0.0:8080"
admin.addr = "0.0.0.0:9080"
"#;
}

/// Where the services are that the gateway forwards to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub bids: url::Url,
    pub lots: url::Url,
    pub wallets: url::Url,
    /// The notifier, for Telegram link codes; without it `/api/link-codes` is a 404.
    #[serde(default)]
    pub notifier: Option<url::Url>,
    /// Per request; an upload of photos gets four times as long.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The largest request body forwarded (a photo upload at `lots`' limit, with its framing).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Bids this gateway has waiting on `bids` at once; one more is answered `engine_busy` at
    /// once instead of opening yet another connection to an engine that is already behind.
    #[serde(default = "default_max_bids_in_flight")]
    pub max_bids_in_flight: usize,
    /// Of those, at most this many for one lot: a hot lot queueing in `bids` cannot take every
    /// slot from the bids for other lots, which `bids` answers at once.
    #[serde(default = "default_max_bids_in_flight_per_lot")]
    pub max_bids_in_flight_per_lot: usize,
}

fn default_max_bids_in_flight() -> usize {
    256
}

fn default_max_bids_in_flight_per_lot() -> usize {
    64
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_body_bytes() -> usize {
    10 * 1024 * 1024 + 64 * 1024
}

/// The WebSocket sessions' limits (`docs/gateway.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Messages queued for one connection before it is behind (and catches up from the log).
    pub queue: usize,
    /// Largest frame or message a client may send.
    pub max_frame_bytes: usize,
    pub max_subscriptions: usize,
    /// Bids of one connection awaiting their answer.
    pub max_bids_in_flight: usize,
    /// Sustained messages per second from one client; a burst of twice this is allowed.
    pub messages_per_second: u32,
    /// A connection whose socket takes nothing for this long is closed (4008).
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// The kernel send buffer per connection (`SO_SNDBUF`); the kernel's own when unset.
    pub socket_send_buffer: Option<usize>,
    /// How often the watcher counts are written to and read from Redis.
    #[serde(with = "humantime_serde")]
    pub presence_interval: Duration,
    /// The id of this replica in its queue name and presence entries; random when empty.
    pub replica_id: String,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            queue: 64,
            max_frame_bytes: 4096,
            max_subscriptions: 32,
            max_bids_in_flight: 4,
            messages_per_second: 20,
            write_timeout: Duration::from_secs(10),
            socket_send_buffer: None,
            presence_interval: Duration::from_secs(2),
            replica_id: String::new(),
        }
    }
}

/// The browser client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// The built client (`npm run build` in `web/`); a missing directory serves a short notice.
    pub dir: PathBuf,
    /// The chain the client signs in on.
    pub chain_id: u64,
    /// A JSON-RPC endpoint the client may show (a local dev chain); none in production.
    pub rpc_url: Option<url::Url>,
    /// Further origins the client may load images from (a public photo bucket or CDN), for its
    /// Content-Security-Policy.
    pub image_origins: Vec<url::Url>,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("web/dist"),
            chain_id: 31337,
            rpc_url: None,
            image_origins: Vec::new(),
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
            Ports::from_deploy_manifest("gateway-ws"),
        );
    }
}
