//! `bids`: the auction engine. It keeps the live state of every lot, serialises its bids on the
//! lot's row lock, holds bidders' money through `wallets`, opens and closes auctions on time
//! exactly once, and publishes every change as a numbered `auction.*` event (per-lot log +
//! outbox).
//!
//! Layout: [`rules`] (pure auction rules), [`engine`] (placing a bid) and [`answer`] (what the
//! bidder is told), [`schedule`] (opening and closing), [`changes`] (sellers' changes, asked by
//! `lots`), [`releases`] (giving holds back), [`repair`] (holds whose bid `wallets` has not seen
//! recorded), [`catalogue`] (following `lot.created`), [`store`] (PostgreSQL), [`wallets`]
//! (client), [`ratelimit`], [`http`].

pub mod answer;
pub mod catalogue;
pub mod changes;
pub mod config;
pub mod engine;
pub mod http;
pub mod known;
pub mod metrics;
pub mod operator;
pub mod ratelimit;
pub mod releases;
pub mod repair;
pub mod rules;
pub mod schedule;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wallets;
pub mod writer;

use std::sync::Arc;

use gavel_common::auth::JwtVerifier;
use gavel_common::cache::Cache;
use gavel_common::health::Readiness;
use gavel_common::idempotency::{RetentionConfig, StoredAnswers};
use gavel_common::metrics::Metrics;
use gavel_common::server::{Service, StartError};
use gavel_messaging::consumer::ConsumerMetrics;
use gavel_messaging::outbox::{Relay, RelayMetrics};
use gavel_messaging::{Broker, Consumer};

pub use config::Config;

/// The migrations of `bids`' own tables (the outbox's come from `gavel-messaging`).
/// Applies the shared messaging tables' migrations and this service's own (what `build` does
/// first, and all that `gavel-bids migrate` does).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), StartError> {
    gavel_messaging::migrate(pool, &migrator()).await
}

pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// The answers to bid requests kept for retries, pruned after `retention.idempotency`. An
/// undecided request (a bid cut off mid-way) stays: its retry finishes it.
pub fn stored_answers(pool: sqlx::PgPool, retention: &RetentionConfig) -> StoredAnswers {
    StoredAnswers {
        pool,
        table: "bid_requests",
        only: "status_code IS NOT NULL",
        older_than: retention.idempotency,
    }
}

/// Connects to everything `bids` needs, migrates its database, and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    build_with(config, engine::Hooks::default()).await
}

/// [`build`] with test hooks.
pub async fn build_with(config: &Config, hooks: engine::Hooks) -> Result<Service, StartError> {
    let metrics = Metrics::new("bids");
    let verifier = JwtVerifier::from_config(&config.auth)
        .map_err(|e| StartError::new("loading the JWT key", e))?
        .with_metrics(&metrics);
    let pool = config
        .database
        .pool()
        .map_err(|e| StartError::new("configuring PostgreSQL", e))?;
    migrate(&pool).await?;
    let cache = Cache::connect(&config.redis)
        .await
        .map_err(|e| StartError::new("connecting to Redis", e))?;
    let broker = Broker::new(config.broker.clone(), "bids");
    let wallets = wallets::Wallets::new(&config.wallets)
        .map_err(|e| StartError::new("configuring the wallets client", e))?;
    let releases_wake = Arc::<tokio::sync::Notify>::default();
    let known = known::Known::default();
    let (writers, lanes) = writer::Writers::new(writer::Decider {
        pool: pool.clone(),
        wallets: wallets.clone(),
        hooks,
        known: known.clone(),
        releases: releases_wake.clone(),
        batch_size: metrics::batch_size(&metrics),
    });
    let engine = Arc::new(engine::Engine {
        pool: pool.clone(),
        limiter: ratelimit::RateLimiter::new(cache.clone(), config.engine.bids_per_second),
        releases: releases_wake,
        known,
        writers,
    });
    gavel_common::db::watch_pool(&metrics, &pool);
    let readiness = Readiness::default()
        .with_postgres(pool.clone())
        .with_redis(cache)
        .with_check("rabbitmq", broker.check());
    let relay = Relay::new(pool.clone(), broker.clone(), RelayMetrics::new(&metrics));
    let consumer = Consumer::new(
        "bids.lot-events",
        &["lot.created"],
        pool.clone(),
        broker,
        catalogue::LotEvents,
        ConsumerMetrics::new(&metrics),
    );
    let wake = engine.releases.clone();
    let releases = releases::Releases {
        pool: pool.clone(),
        wallets: wallets.clone(),
        config: config.releases.clone(),
        metrics: releases::ReleaseMetrics::new(&metrics),
    };
    let answers = stored_answers(pool.clone(), &config.retention);
    let repair = repair::Repair::new(pool.clone(), wallets, config.repair.clone(), &metrics);
    let schedule_metrics = metrics::ScheduleMetrics::new(&metrics);
    let state = http::AppState {
        engine,
        bid_metrics: metrics::BidMetrics::new(&metrics),
        verifier,
        callers: config.internal.callers(),
    };
    let service = Service::new(http::router(state.clone()), metrics, readiness)
        .with_internal(http::internal_router(state));
    let cancel = service.cancellation();
    Ok(service
        .with_task("outbox-relay", relay.run(cancel.clone()))
        .with_task("lot-writers", lanes.run(cancel.clone()))
        .with_task("lot-events", consumer.run(cancel.clone()))
        .with_task(
            "schedule",
            schedule::run(pool, config.engine.tick, schedule_metrics, cancel.clone()),
        )
        .with_task("releases", releases.run(wake, cancel.clone()))
        .with_task("answers-retention", answers.run(cancel.clone()))
        .with_task("repair", repair.run(cancel)))
}
