//! The configuration of `notifier`. See `docs/configuration.md` for every key.

use std::time::Duration;

use gavel_common::auth::AuthConfig;
use gavel_common::config::{ListenConfig, Secret, ServiceConfig, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
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
    pub auth: AuthConfig,
    #[serde(default)]
    pub telegram: TelegramConfig,
    #[serde(default)]
    pub links: LinksConfig,
}

impl ServiceConfig for Config {
    const DEFAULTS: &'static str = r#"
http.addr = "0.0.0.0:8084"
admin.addr = "0.0.0.0:9084"
"#;
}

/// How updates arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `getUpdates` in a loop: local runs, no public URL needed.
    Polling,
    /// Telegram posts updates to `telegram.webhook_url` (Kubernetes).
    Webhook,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// The bot token; without one the notifier runs dry: it logs messages instead of sending.
    pub token: Option<Secret>,
    /// The Bot API server (a local one in tests).
    pub api_url: url::Url,
    pub mode: Mode,
    /// The public URL Telegram posts to in webhook mode (`…/telegram/webhook`).
    pub webhook_url: Option<url::Url>,
    /// Checked against `X-Telegram-Bot-Api-Secret-Token` on every webhook call.
    pub webhook_secret: Option<Secret>,
    /// Messages per second overall (Telegram allows about 30; the margin absorbs jitter).
    pub messages_per_second: u32,
    /// The least time between two messages to one chat (Telegram: 1 per second).
    #[serde(with = "humantime_serde")]
    pub chat_interval: Duration,
    /// Messages per minute to one group (Telegram: 20).
    pub group_messages_per_minute: u32,
    /// Sends in flight at once.
    pub concurrency: usize,
    /// Attempts before a message is given up on (transient errors only).
    pub max_attempts: i32,
    /// More new-lot messages than this waiting for one chat are sent as one digest.
    pub digest_after: usize,
    /// Per request; long polling waits `poll_timeout` on top.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub poll_timeout: Duration,
}

impl Default for TelegramConfig {
    fn default() -> Self {
        Self {
            token: None,
            api_url: "https://api.telegram.org"
                .parse()
                .expect("a valid default URL"),
            mode: Mode::Polling,
            webhook_url: None,
            webhook_secret: None,
            messages_per_second: 25,
            chat_interval: Duration::from_millis(1100),
            group_messages_per_minute: 18,
            concurrency: 8,
            max_attempts: 8,
            digest_after: 5,
            request_timeout: Duration::from_secs(15),
            poll_timeout: Duration::from_secs(25),
        }
    }
}

/// Links in messages, and the account link codes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinksConfig {
    /// Where the web client is, for links to lots.
    pub public_url: url::Url,
    /// The lots API, for a lot's first photo; none sends text only.
    pub lots_url: Option<url::Url>,
    /// How long a `/link` code is valid.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
}

impl Default for LinksConfig {
    fn default() -> Self {
        Self {
            public_url: "http://localhost:8080"
                .parse()
                .expect("a valid default URL"),
            lots_url: None,
            code_ttl: Duration::from_secs(600),
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
            Ports::from_deploy_manifest("notifier"),
        );
    }
}
