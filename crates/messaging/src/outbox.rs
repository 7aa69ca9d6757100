//! The transactional outbox.
//!
//! [`enqueue`] writes an event in the caller's transaction: if the business change commits, so
//! does the event; if it rolls back, the event never existed. The [`Relay`] (one per replica)
//! claims pending rows with `FOR UPDATE SKIP LOCKED`, so replicas share the work without
//! publishing a row twice at the same time, publishes them as persistent messages, waits for the
//! broker's confirms and only then marks them published. A crash after publishing but before the
//! mark publishes the row again; consumers de-duplicate by event id, so the effect stays single.
//!
//! Order: within one relay, rows go out in commit-position order. With several relays, two batches
//! may interleave; consumers that need per-aggregate order use the envelope's `sequence`.

use std::time::{Duration, Instant};

use gavel_common::metrics::Metrics;
use gavel_common::{BoxError, error_chain};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation};
use prometheus::{Gauge, IntCounter, IntGauge};
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use uuid::Uuid;

use crate::broker::{Backoff, Broker};
use crate::envelope::Envelope;

/// The channel on which a commit that wrote outbox rows wakes the relays.
const NOTIFY_CHANNEL: &str = "gavel_outbox";
const CLEANUP_EVERY: Duration = Duration::from_secs(600);

/// Writes `envelope` to the outbox inside the caller's transaction.
pub async fn enqueue(
    connection: &mut PgConnection,
    envelope: &Envelope,
) -> Result<(), sqlx::Error> {
    // One statement (a round trip less per event); the notification is delivered only if and
    // when the transaction commits.
    sqlx::query(
        "WITH queued AS (
             INSERT INTO outbox (event_id, routing_key, envelope) VALUES ($1, $2, $3) RETURNING 1
         )
         SELECT pg_notify($4, '') FROM queued",
    )
    .bind(envelope.id)
    .bind(&envelope.event_type)
    .bind(sqlx::types::Json(envelope))
    .bind(NOTIFY_CHANNEL)
    .execute(connection)
    .await?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error("broker")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused event {0}")]
    Refused(Uuid),
    #[error("cannot encode event {0}")]
    Encode(Uuid, #[source] serde_json::Error),
}

#[derive(Clone, Debug)]
pub struct RelayMetrics {
    published: IntCounter,
    failures: IntCounter,
    backlog: IntGauge,
    oldest: Gauge,
}

/// How often the backlog gauges are measured (by their own loop: a stuck relay must still show).
const BACKLOG_EVERY: Duration = Duration::from_secs(5);
/// The backlog is counted up to this many rows (counting further would only cost the database).
const BACKLOG_COUNT_LIMIT: i64 = 100_000;

impl RelayMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let published = IntCounter::new(
            "outbox_published_total",
            "Outbox rows published and confirmed.",
        )
        .expect("static metric definition is valid");
        let failures = IntCounter::new(
            "outbox_relay_failures_total",
            "Relay batches that failed and will be retried.",
        )
        .expect("static metric definition is valid");
        let backlog = IntGauge::new(
            "outbox_backlog",
            "Outbox rows not published yet (counted up to 100000).",
        )
        .expect("static metric definition is valid");
        let oldest = Gauge::new(
            "outbox_oldest_unpublished_age_seconds",
            "Age of the oldest outbox row not published yet; 0 when there is none.",
        )
        .expect("static metric definition is valid");
        metrics.register(published.clone());
        metrics.register(failures.clone());
        metrics.register(backlog.clone());
        metrics.register(oldest.clone());
        Self {
            published,
            failures,
            backlog,
            oldest,
        }
    }
}

/// Publishes the outbox until cancelled.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    broker: Broker,
    metrics: RelayMetrics,
}

impl Relay {
    pub fn new(pool: PgPool, broker: Broker, metrics: RelayMetrics) -> Self {
        Self {
            pool,
            broker,
            metrics,
        }
    }

    /// Publishes until cancelled, and measures the backlog alongside.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        let publish = self.publish(&cancel);
        tokio::pin!(publish);
        tokio::select! {
            result = &mut publish => result,
            () = self.measure_backlog(&cancel) => publish.await,
        }
    }

    /// Sets `gavel_outbox_backlog` and `gavel_outbox_oldest_unpublished_age_seconds` every few
    /// seconds, whatever the relay is doing.
    async fn measure_backlog(&self, cancel: &CancellationToken) {
        let mut ticker = tokio::time::interval(BACKLOG_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let measured: Result<(i64, Option<f64>), sqlx::Error> = sqlx::query_as(
                "SELECT
                     (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT $1) pending),
                     (SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 FROM outbox
                      WHERE published_at IS NULL ORDER BY position LIMIT 1)",
            )
            .bind(BACKLOG_COUNT_LIMIT)
            .fetch_one(&self.pool)
            .await;
            match measured {
                Ok((count, age)) => {
                    self.metrics.backlog.set(count);
                    self.metrics.oldest.set(age.unwrap_or(0.0).max(0.0));
                }
                Err(error) => debug!(%error, "cannot measure the outbox backlog"),
            }
        }
    }

    async fn publish(&self, cancel: &CancellationToken) -> Result<(), BoxError> {
        let config = self.broker.config().clone();
        let mut backoff = Backoff::new(config.reconnect_max_backoff);
        let mut channel: Option<Channel> = None;
        let mut listener: Option<PgListener> = None;
        let mut last_cleanup = Instant::now();
        info!("outbox relay started");
        while !cancel.is_cancelled() {
            let open = match channel.take() {
                Some(open) => open,
                None => match self.open_channel().await {
                    Ok(open) => open,
                    Err(error) => {
                        warn!(%error, "relay cannot reach the broker");
                        backoff.wait(cancel).await;
                        continue;
                    }
                },
            };
            match self
                .publish_batch(&open, &config.exchange, config.relay_batch)
                .await
            {
                Ok(count) => {
                    backoff.reset();
                    channel = Some(open);
                    if count >= config.relay_batch {
                        continue;
                    }
                    if last_cleanup.elapsed() >= CLEANUP_EVERY {
                        last_cleanup = Instant::now();
                        self.cleanup().await;
                    }
                    self.wait_for_work(&mut listener, config.relay_poll_interval, cancel)
                        .await;
                }
                Err(error) => {
                    self.metrics.failures.inc();
                    warn!(error = %error_chain(&error), "relay batch failed; retrying");
                    // A broker failure poisons the channel; a database failure leaves it usable.
                    if matches!(error, RelayError::Database(_)) {
                        channel = Some(open);
                    }
                    backoff.wait(cancel).await;
                }
            }
        }
        info!("outbox relay stopped");
        Ok(())
    }

    async fn open_channel(&self) -> Result<Channel, lapin::Error> {
        let channel = self.broker.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let config = self.broker.config();
        crate::topology::declare_exchange(&channel, &config.exchange, config.queue_type).await?;
        Ok(channel)
    }

    /// Publishes one batch of pending rows; returns how many it published.
    async fn publish_batch(
        &self,
        channel: &Channel,
        exchange: &str,
        limit: i64,
    ) -> Result<i64, RelayError> {
        let mut tx = self.pool.begin().await?;
        let rows: Vec<(i64, Uuid, String, serde_json::Value)> = sqlx::query_as(
            "SELECT position, event_id, routing_key, envelope FROM outbox
             WHERE published_at IS NULL ORDER BY position LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut confirms = Vec::with_capacity(rows.len());
        for (_, event_id, routing_key, envelope) in &rows {
            let body = serde_json::to_vec(envelope)
                .map_err(|error| RelayError::Encode(*event_id, error))?;
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(event_id.to_string().into())
                .with_type(routing_key.as_str().into());
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await?;
            confirms.push((*event_id, confirm));
        }
        for (event_id, confirm) in confirms {
            match confirm.await? {
                Confirmation::Ack(_) => {}
                Confirmation::Nack(_) | Confirmation::NotRequested => {
                    return Err(RelayError::Refused(event_id));
                }
            }
        }
        let positions: Vec<i64> = rows.iter().map(|(position, ..)| *position).collect();
        sqlx::query("UPDATE outbox SET published_at = now() WHERE position = ANY($1)")
            .bind(&positions)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let count = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        self.metrics.published.inc_by(count.unsigned_abs());
        debug!(count, "published outbox batch");
        Ok(count)
    }

    /// Sleeps until a commit notifies new rows, the poll interval passes, or cancellation.
    async fn wait_for_work(
        &self,
        listener: &mut Option<PgListener>,
        poll: Duration,
        cancel: &CancellationToken,
    ) {
        if listener.is_none() {
            *listener = self.listen().await;
        }
        let notified = async {
            match listener.as_mut() {
                Some(active) => {
                    if let Err(error) = active.recv().await {
                        warn!(%error, "outbox notifications lost; polling until they return");
                        *listener = None;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = cancel.cancelled() => {}
            () = tokio::time::sleep(poll) => {}
            () = notified => {}
        }
    }

    async fn listen(&self) -> Option<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await.ok()?;
        listener.listen(NOTIFY_CHANNEL).await.ok()?;
        Some(listener)
    }

    async fn cleanup(&self) {
        // Kept `broker.outbox_retention` for inspection, then deleted.
        let deleted = sqlx::query("DELETE FROM outbox WHERE published_at < now() - $1")
            .bind(self.broker.config().outbox_retention)
            .execute(&self.pool)
            .await;
        if let Err(error) = deleted {
            warn!(%error, "cannot delete old outbox rows");
        }
    }
}
