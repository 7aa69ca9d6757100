//! The configuration of `lots`. See `docs/configuration.md` for every key.

use std::time::Duration;

use gavel_common::auth::AuthConfig;
use gavel_common::config::{ListenConfig, Secret, ServiceConfig, ShutdownConfig};
use gavel_common::db::DatabaseConfig;
use gavel_common::internal::PeerConfig;
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
    pub s3: S3Config,
    #[serde(default)]
    pub photos: PhotoLimits,
    /// The auction engine's internal API, which decides sellers' changes.
    pub bids: PeerConfig,
    #[serde(default)]
    pub changes: ChangesConfig,
}

impl ServiceConfig for Config {
    const DEFAULTS: &'static str = r#"
http.addr = "0.0.0.0:8081"
admin.addr = "0.0.0.0:9081"
"#;
}

/// Settling changes whose answer from the engine was lost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChangesConfig {
    /// How often, and after how long, a pending change is asked about again.
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
}

impl Default for ChangesConfig {
    fn default() -> Self {
        Self {
            retry_interval: Duration::from_secs(5),
        }
    }
}

/// Any S3-compatible store: a local s3s-fs, MinIO, Yandex Object Storage, AWS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// e.g. `http://127.0.0.1:9000` or `https://storage.yandexcloud.net`.
    pub endpoint: url::Url,
    #[serde(default = "default_region")]
    pub region: String,
    pub bucket: String,
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// `http://endpoint/bucket/key` rather than `http://bucket.endpoint/key`.
    #[serde(default = "yes")]
    pub path_style: bool,
    /// Create the bucket at start-up when it is missing.
    #[serde(default)]
    pub create_bucket: bool,
    /// Photo links point at this public base URL (`<public_url>/<key>`, a public bucket or a CDN)
    /// instead of at `lots` itself, which serves them from the bucket.
    #[serde(default)]
    pub public_url: Option<url::Url>,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhotoLimits {
    /// Largest accepted upload, in bytes (10 MiB).
    pub max_bytes: usize,
    /// Largest accepted width or height, in pixels.
    pub max_side: u32,
    /// Largest accepted width × height.
    pub max_pixels: u64,
    pub max_per_lot: i64,
    /// Photo links are `<url_prefix>/lots/{lot}/photos/{photo}`: `/api` is where the gateway
    /// forwards to `lots`, so browsers fetch photos from the site's own origin.
    pub url_prefix: String,
}

impl PhotoLimits {
    /// The dimensions an image may have.
    pub fn image(&self) -> gavel_photos::Limits {
        gavel_photos::Limits {
            max_side: self.max_side,
            max_pixels: self.max_pixels,
        }
    }
}

impl Default for PhotoLimits {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            max_side: 8000,
            max_pixels: 40_000_000,
            max_per_lot: 10,
            url_prefix: "/api".to_owned(),
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
            Ports::from_deploy_manifest("lots"),
        );
    }
}
