//! Readiness: a set of named checks against real dependencies (PostgreSQL, RabbitMQ, Redis), and a
//! draining flag that turns readiness off as soon as shutdown begins.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// How long one dependency check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Default)]
pub struct Readiness {
    draining: Arc<AtomicBool>,
    checks: Vec<(&'static str, CheckFn)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Readiness")
            .field("draining", &self.is_draining())
            .field("checks", &names)
            .finish()
    }
}

/// The outcome of every check, as `/readyz` reports it.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub ready: bool,
    pub draining: bool,
    pub checks: Vec<CheckReport>,
}

#[derive(Debug, serde::Serialize)]
pub struct CheckReport {
    pub name: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Readiness {
    /// Adds a dependency check; `check` is called on every `/readyz`.
    pub fn with_check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks
            .push((name, Arc::new(move || Box::pin(check()))));
        self
    }

    /// Adds the PostgreSQL round-trip check.
    pub fn with_postgres(self, pool: sqlx::PgPool) -> Self {
        self.with_check("postgres", move || crate::db::ping(pool.clone()))
    }

    /// Adds the Redis PING check.
    pub fn with_redis(self, cache: crate::cache::Cache) -> Self {
        self.with_check("redis", move || cache.clone().ping())
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Runs every check concurrently, each bounded by a timeout.
    pub async fn report(&self) -> Report {
        let checks = join_all(self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(CHECK_TIMEOUT, check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
            };
            CheckReport {
                name,
                ok: outcome.is_ok(),
                error: outcome.err(),
            }
        }))
        .await;
        let draining = self.is_draining();
        Report {
            ready: !draining && checks.iter().all(|check| check.ok),
            draining,
            checks,
        }
    }
}
