//! `lots`: the catalogue. Sellers put lots up with their rules and photos (in S3) and can change
//! or withdraw them until the first bid; everyone browses and searches them with their live
//! state. Every change is published as a `lot.*` event through the outbox.
//!
//! Layout: [`domain`] (validating a lot), [`changes`] (sellers' changes, decided by the auction
//! engine), [`store`] (PostgreSQL), [`photos`] (checking and
//! cleaning images), [`storage`] (S3), [`summary`] (following `auction.*`), [`http`] (the API and
//! its OpenAPI document).

pub mod changes;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod photos;
pub mod storage;
pub mod store;
pub mod summary;

use std::sync::Arc;

use gavel_common::auth::JwtVerifier;
use gavel_common::health::Readiness;
use gavel_common::metrics::Metrics;
use gavel_common::server::{Service, StartError};
use gavel_messaging::consumer::ConsumerMetrics;
use gavel_messaging::outbox::{Relay, RelayMetrics};
use gavel_messaging::{Broker, Consumer};

pub use config::Config;

/// The migrations of `lots`' own tables (the outbox's come from `gavel-messaging`).
/// Applies the shared messaging tables' migrations and this service's own (what `build` does
/// first, and all that `gavel-lots migrate` does).
pub async fn migrate(pool: &sqlx::PgPool) -> Result<(), StartError> {
    gavel_messaging::migrate(pool, &migrator()).await
}

pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// Connects to everything `lots` needs, migrates its database, and assembles the service.
pub async fn build(config: &Config) -> Result<Service, StartError> {
    let metrics = Metrics::new("lots");
    let verifier = JwtVerifier::from_config(&config.auth)
        .map_err(|e| StartError::new("loading the JWT key", e))?
        .with_metrics(&metrics);
    let pool = config
        .database
        .pool()
        .map_err(|e| StartError::new("configuring PostgreSQL", e))?;
    migrate(&pool).await?;
    let storage = storage::Storage::new(&config.s3).with_metrics(&metrics);
    if config.s3.create_bucket {
        storage
            .ensure_bucket()
            .await
            .map_err(|e| StartError::new("creating the photo bucket", e))?;
    }
    let broker = Broker::new(config.broker.clone(), "lots");
    gavel_common::db::watch_pool(&metrics, &pool);
    let readiness = Readiness::default()
        .with_postgres(pool.clone())
        .with_check("rabbitmq", broker.check())
        .with_check("s3", {
            let storage = storage.clone();
            move || storage.clone().ping()
        });
    let relay = Relay::new(pool.clone(), broker.clone(), RelayMetrics::new(&metrics));
    let consumer = Consumer::new(
        "lots.auction-events",
        &["auction.*"],
        pool.clone(),
        broker,
        summary::AuctionEvents,
        ConsumerMetrics::new(&metrics),
    );
    let engine = changes::Engine::new(&config.bids)
        .map_err(|e| StartError::new("configuring the auction engine client", e))?;
    let state = http::AppState {
        pool: pool.clone(),
        engine: engine.clone(),
        storage,
        verifier,
        limits: Arc::new(config.photos.clone()),
        metrics: metrics::LotMetrics::new(&metrics),
    };
    // Uploads are the largest bodies: a photo at the limit and its multipart framing.
    let body_limit = config.photos.max_bytes + 64 * 1024;
    let service = Service::new(http::router(state), metrics, readiness).with_body_limit(body_limit);
    let cancel = service.cancellation();
    Ok(service
        .with_task("outbox-relay", relay.run(cancel.clone()))
        .with_task("auction-events", consumer.run(cancel.clone()))
        .with_task(
            "pending-changes",
            changes::run(pool, engine, config.changes.retry_interval, cancel),
        ))
}
