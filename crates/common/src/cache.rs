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
