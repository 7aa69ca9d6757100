//! Redis: shared short-lived state (nonces, rate limits, presence). Never the only copy of money.
//! Every key a service writes starts with the configured prefix, which keeps tests isolated.

use serde::Deserialize;

use crate::config::SecretUrl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[:password@]host:port[/db]`.
    pub url: SecretUrl,
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
}

fn default_prefix() -> String {
    "gavel:".to_owned()
}

/// A reconnecting Redis connection plus the key prefix. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    connection: redis::aio::ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub async fn connect(config: &RedisConfig) -> redis::RedisResult<Self> {
        let client = redis::Client::open(config.url.expose().as_str())?;
        // The crate's 500 ms response timeout turns a loaded machine into errors; Redis calls here
        // are on request paths that already have their own deadlines.
        let options = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(std::time::Duration::from_secs(5)))
            .set_connection_timeout(Some(std::time::Duration::from_secs(3)));
        let connection = redis::aio::ConnectionManager::new_with_config(client, options).await?;
        Ok(Self {
            connection,
            prefix: config.key_prefix.clone(),
        })
    }

    /// The full key for `name` under this service's prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn connection(&self) -> redis::aio::ConnectionManager {
        self.connection.clone()
    }

    /// The readiness check: a PING.
    pub async fn ping(self) -> Result<(), String> {
        let mut connection = self.connection;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(|error| error.to_string())
    }
}

/// A fixed-window rate limit shared by every replica: at most `limit` events per `window` for
/// each key, counted in Redis. Cheap to clone.
#[derive(Clone, Debug)]
pub struct WindowLimiter {
    cache: Cache,
    /// Names this limit in its keys (`rate:<name>:<key>:<window>`).
    name: &'static str,
    limit: u32,
    window: std::time::Duration,
}

impl WindowLimiter {
    pub fn new(cache: Cache, name: &'static str, limit: u32, window: std::time::Duration) -> Self {
        Self {
            cache,
            name,
            limit,
            window: window.max(std::time::Duration::from_millis(1)),
        }
    }

    /// Counts one event for `key`; false once this window's allowance is used.
    pub async fn allow(&self, key: &str) -> redis::RedisResult<bool> {
        let window_ms = u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX);
        let now_ms = u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let slot = now_ms / window_ms;
        let redis_key = self.cache.key(&format!("rate:{}:{key}:{slot}", self.name));
        let mut connection = self.cache.connection();
        let (count,): (u32,) = redis::pipe()
            .atomic()
            .incr(&redis_key, 1)
            .ignore()
            .pexpire(
                &redis_key,
                i64::try_from(window_ms.saturating_mul(2)).unwrap_or(i64::MAX),
            )
            .ignore()
            .get(&redis_key)
            .query_async(&mut connection)
            .await?;
        Ok(count <= self.limit)
    }
}
