//! Gavel's event backbone: how services tell each other what happened, without losing or
//! repeating anything.
//!
//! - [`envelope`]: the versioned envelope every event travels in, and the [`Event`] trait that
//!   typed payloads implement.
//! - [`broker`]: one reconnecting RabbitMQ connection per process.
//! - [`topology`]: the exchanges and queues, declared idempotently by whoever needs them.
//! - [`outbox`]: writing events inside the business transaction, and the relay that publishes
//!   them with publisher confirms.
//! - [`parked`]: listing and replaying dead-lettered and unrouted messages (the operator's tool).
//! - [`consumer`]: handling events exactly once: handler and inbox row in one transaction, ack
//!   after commit, retries with backoff, then the dead-letter queue.
//!
//! Delivery is at-least-once on the wire and exactly-once in effect, because every consumer
//! de-duplicates by event id in the same transaction as its effect.

pub mod broker;
pub mod config;
pub mod consumer;
pub mod envelope;
pub mod outbox;
pub mod parked;
pub mod topology;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use consumer::{Consumer, Handler, HandlerError};
pub use envelope::{Envelope, Event};

/// The migrations that create the `outbox` and `inbox` tables. Services run them next to their
/// own migrations (the versions do not overlap, and both ignore each other's).
/// Applies the shared tables' migrations, then a service's `own`: what every service's `build`
/// does first, and all its `migrate` command does.
pub async fn migrate(
    pool: &sqlx::PgPool,
    own: &sqlx::migrate::Migrator,
) -> Result<(), gavel_common::server::StartError> {
    use gavel_common::server::StartError;
    migrator()
        .run(pool)
        .await
        .map_err(|e| StartError::new("migrating the outbox and inbox", e))?;
    own.run(pool)
        .await
        .map_err(|e| StartError::new("migrating the database", e))
}

pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}
