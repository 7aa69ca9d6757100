//! PostgreSQL: the pool every service with data opens, and its readiness check.

use std::time::Duration;

use serde::Deserialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::SecretUrl;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`; the password is redacted in logs.
    pub url: SecretUrl,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_acquire_timeout", with = "humantime_serde")]
    pub acquire_timeout: Duration,
}

fn default_max_connections() -> u32 {
    10
}

fn default_acquire_timeout() -> Duration {
    Duration::from_secs(5)
}

impl DatabaseConfig {
    pub fn connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        self.url.expose().as_str().parse()
    }

    /// A pool that connects lazily: the service starts even while the database is away, reports
    /// not-ready, and recovers on its own when the database returns.
    pub fn pool(&self) -> Result<PgPool, sqlx::Error> {
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(self.connect_options()?))
    }
}

/// Exports the pool's use at every scrape: `gavel_db_pool_connections{state="idle"|"in_use"}` and
/// `gavel_db_pool_max_connections` (a pool always at its maximum is where requests queue).
pub fn watch_pool(metrics: &crate::metrics::Metrics, pool: &PgPool) {
    let connections = prometheus::IntGaugeVec::new(
        prometheus::Opts::new(
            "db_pool_connections",
            "PostgreSQL connections of the pool, idle or in use.",
        ),
        &["state"],
    )
    .expect("static metric definition is valid");
    let max = prometheus::IntGauge::new(
        "db_pool_max_connections",
        "The most connections the pool opens.",
    )
    .expect("static metric definition is valid");
    metrics.register(connections.clone());
    metrics.register(max.clone());
    let pool = pool.clone();
    metrics.on_scrape(move || {
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        connections.with_label_values(&["idle"]).set(idle);
        connections
            .with_label_values(&["in_use"])
            .set((size - idle).max(0));
        max.set(i64::from(pool.options().get_max_connections()));
    });
}

/// The readiness check: one round trip to the database.
pub async fn ping(pool: PgPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// A stored value this version cannot read: a status a newer version wrote, an amount out of
/// range. Never replaced by a default: the operation fails (a 500, logged) instead of silently
/// changing what money or state it means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored value {value:?} in column `{column}` cannot be read")]
pub struct CorruptValue {
    pub column: &'static str,
    pub value: String,
}

/// Runs `prune` (a deletion of rows past their retention, returning how many it deleted) at
/// start and every hour until cancelled, logging what it did under `what`. A failure is logged
/// and tried again at the next hour: retention is never worth stopping a service for.
pub async fn prune_hourly<F, Fut>(
    what: &str,
    cancel: tokio_util::sync::CancellationToken,
    mut prune: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>>,
{
    let mut ticker = tokio::time::interval(Duration::from_secs(3600));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match prune().await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(what, deleted, "deleted rows past their retention"),
            Err(error) => {
                tracing::warn!(what, %error, "cannot delete rows past their retention; trying again in an hour")
            }
        }
    }
}

/// Parses the text of `column`, or says which value could not be read.
pub fn parse_column<T: std::str::FromStr>(
    column: &'static str,
    raw: &str,
) -> Result<T, CorruptValue> {
    raw.parse().map_err(|_| CorruptValue {
        column,
        value: raw.to_owned(),
    })
}

/// Whether the database gave up on a lock: a deadlock, a serialization failure or a lock that
/// was not available. The transaction is lost; running it again may well succeed.
pub fn is_lock_conflict(error: &sqlx::Error) -> bool {
    let code = error.as_database_error().and_then(|error| error.code());
    matches!(code.as_deref(), Some("40P01" | "40001" | "55P03"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_value_names_its_column_and_is_never_defaulted() {
        assert_eq!(parse_column::<u8>("attempts", "7"), Ok(7));
        assert_eq!(
            parse_column::<u8>("attempts", "many"),
            Err(CorruptValue {
                column: "attempts",
                value: "many".to_owned()
            })
        );
    }
}
