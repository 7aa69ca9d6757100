//! Consuming events exactly once in effect.
//!
//! For each delivery: open a transaction, insert `(consumer, event id)` into the inbox (a
//! conflict means the event was already handled: ack and skip), run the handler in the same
//! transaction, commit, and only then ack. A failing handler rolls back what it wrote; the event
//! is re-published to the consumer's retry queue for the next delay and acked, and after the
//! last delay it goes to the dead-letter queue with its error. A delivery that is not a valid
//! envelope goes straight to the dead-letter queue: retrying cannot fix it, and dropping it would
//! hide it.
//!
//! Deliveries already waiting when one is taken (at most `broker.consume_batch`) share the
//! transaction, each inside a savepoint of its own, so a backlog pays one commit per batch
//! instead of one per event; none is acked before the commit. A failing handler rolls back its
//! own savepoint only. One that lost a lock (a deadlock with another replica's batch) is tried
//! again at once on its own; if the commit fails, every event of the batch is handled again on
//! its own (the inbox makes any that did commit a duplicate).
//!
//! If the broker goes away, unacked deliveries return to the queue and the consumer reconnects;
//! the inbox turns the redelivery into a no-op.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use gavel_common::metrics::Metrics;
use gavel_common::{BoxError, error_chain};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Confirmation};
use prometheus::{HistogramVec, IntCounterVec};
use sqlx::{Acquire, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::broker::{Backoff, Broker};
use crate::envelope::{DecodeError, Envelope};
use crate::topology;

/// How many times this event has failed before (0 on first delivery).
pub const ATTEMPT_HEADER: &str = "x-gavel-attempt";
/// The last error, on retried and dead-lettered messages.
pub const ERROR_HEADER: &str = "x-gavel-error";

/// Handles one event inside the consumer's transaction. Whatever it writes through `connection`
/// commits together with the inbox row, or not at all.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: a timeout, a lost connection, a dependency that is down.
    #[error("transient failure: {}", error_chain(.0.as_ref()))]
    Transient(BoxError),
    /// Retrying cannot help (a payload this code cannot read): dead-letter at once.
    #[error("permanent failure: {}", error_chain(.0.as_ref()))]
    Permanent(BoxError),
}

impl HandlerError {
    /// Whether the database gave up on a lock: a deadlock, a serialization failure or a lock
    /// that was not available. Worth an immediate try on its own, outside any batch.
    fn is_lock_conflict(&self) -> bool {
        let Self::Transient(error) = self else {
            return false;
        };
        error
            .downcast_ref::<sqlx::Error>()
            .is_some_and(gavel_common::db::is_lock_conflict)
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(Box::new(error))
    }
}

impl From<DecodeError> for HandlerError {
    fn from(error: DecodeError) -> Self {
        Self::Permanent(Box::new(error))
    }
}

/// Why a consumer lost its channel; it reconnects after each.
#[derive(Debug, thiserror::Error)]
enum ConsumeError {
    #[error("broker")]
    Broker(#[from] lapin::Error),
    #[error("the broker cancelled the subscription")]
    Cancelled,
    #[error("the broker refused a republished event")]
    Refused,
}

#[derive(Clone, Debug)]
pub struct ConsumerMetrics {
    outcomes: IntCounterVec,
    batch_size: HistogramVec,
}

impl ConsumerMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let outcomes = IntCounterVec::new(
            prometheus::Opts::new(
                "events_consumed_total",
                "Deliveries by consumer and outcome.",
            ),
            &["consumer", "outcome"],
        )
        .expect("static metric definition is valid");
        metrics.register(outcomes.clone());
        let batch_size = HistogramVec::new(
            prometheus::HistogramOpts::new(
                "events_consumer_batch_size",
                "Deliveries handled per consumer transaction.",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
            &["consumer"],
        )
        .expect("static metric definition is valid");
        metrics.register(batch_size.clone());
        Self {
            outcomes,
            batch_size,
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Handled,
    Duplicate,
    Retried,
    DeadLettered,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Duplicate => "duplicate",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

/// A named, durable subscription to some event types.
pub struct Consumer<H> {
    name: String,
    bindings: Vec<String>,
    pool: PgPool,
    broker: Broker,
    handler: Arc<H>,
    metrics: ConsumerMetrics,
}

impl<H> std::fmt::Debug for Consumer<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.name)
            .field("bindings", &self.bindings)
            .finish()
    }
}

impl<H: Handler> Consumer<H> {
    /// `name` is the queue (e.g. `bids.lot-events`); `bindings` are topic patterns (`lot.*`).
    pub fn new(
        name: impl Into<String>,
        bindings: &[&str],
        pool: PgPool,
        broker: Broker,
        handler: H,
        metrics: ConsumerMetrics,
    ) -> Self {
        let name = name.into();
        // Every outcome exists from the start, at zero: a dead-letter alert sees the series.
        for outcome in [
            Outcome::Handled,
            Outcome::Duplicate,
            Outcome::Retried,
            Outcome::DeadLettered,
        ] {
            metrics
                .outcomes
                .with_label_values(&[&name, outcome.label()]);
        }
        Self {
            name,
            bindings: bindings
                .iter()
                .map(|pattern| (*pattern).to_owned())
                .collect(),
            pool,
            broker,
            handler: Arc::new(handler),
            metrics,
        }
    }

    /// Consumes until cancelled, reconnecting whenever the broker goes away. A delivery being
    /// handled when cancellation arrives is finished first.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        let retention = tokio::spawn(keep_inbox_pruned(
            self.pool.clone(),
            self.name.clone(),
            self.broker.config().inbox_retention,
            cancel.clone(),
        ));
        let mut backoff = Backoff::new(self.broker.config().reconnect_max_backoff);
        while !cancel.is_cancelled() {
            match self.consume(&cancel, &mut backoff).await {
                Ok(()) => break,
                Err(error) => {
                    warn!(consumer = %self.name, error = %error_chain(&error), "consumer lost its channel; reconnecting");
                    backoff.wait(&cancel).await;
                }
            }
        }
        // A prune in progress is only a delete: stopping mid-way loses nothing.
        retention.abort();
        info!(consumer = %self.name, "consumer stopped");
        Ok(())
    }

    async fn consume(
        &self,
        cancel: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), ConsumeError> {
        let config = self.broker.config();
        let channel = self.broker.channel().await?;
        topology::declare_consumer(
            &channel,
            &config.exchange,
            &self.name,
            &self.bindings,
            &config.retry_delays,
            config.queue_type,
        )
        .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .basic_qos(config.prefetch, BasicQosOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                self.name.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        info!(consumer = %self.name, "consuming");
        backoff.reset();
        let most = usize::from(config.consume_batch.max(1));
        loop {
            let first = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                next = deliveries.next() => next,
            };
            let mut batch = match first {
                Some(Ok(delivery)) => vec![delivery],
                Some(Err(error)) => return Err(error.into()),
                None => return Err(ConsumeError::Cancelled),
            };
            // Whatever else has already arrived joins this batch; nothing waits for more.
            let mut ended = None;
            while batch.len() < most {
                match deliveries.next().now_or_never() {
                    Some(Some(Ok(delivery))) => batch.push(delivery),
                    Some(Some(Err(error))) => {
                        ended = Some(ConsumeError::from(error));
                        break;
                    }
                    Some(None) => {
                        ended = Some(ConsumeError::Cancelled);
                        break;
                    }
                    None => break,
                }
            }
            self.process_batch(&channel, batch).await?;
            if let Some(error) = ended {
                return Err(error);
            }
        }
    }

    /// Handles `batch` in one transaction, one savepoint per event, and acknowledges each event
    /// only after the commit. An event whose handler fails is rolled back to its savepoint alone
    /// and retried or dead-lettered as if it had come alone; if the commit itself fails, each
    /// event the batch had handled is handled again on its own (the inbox makes any that did
    /// commit a duplicate).
    async fn process_batch(
        &self,
        channel: &Channel,
        mut batch: Vec<Delivery>,
    ) -> Result<(), ConsumeError> {
        self.metrics
            .batch_size
            .with_label_values(&[&self.name])
            .observe(batch.len() as f64);
        if batch.len() == 1 {
            let delivery = batch.pop().expect("one delivery");
            return self.process(channel, delivery).await;
        }
        let mut parsed = Vec::with_capacity(batch.len());
        let mut unreadable = Vec::new();
        for delivery in batch {
            match serde_json::from_slice::<Envelope>(&delivery.data) {
                Ok(envelope) => parsed.push((delivery, envelope)),
                // Dead-lettered by the path for one delivery, which says why.
                Err(_) => unreadable.push(delivery),
            }
        }
        let envelopes: Vec<&Envelope> = parsed.iter().map(|(_, envelope)| envelope).collect();
        match self.handle_batch(&envelopes).await {
            Ok(results) => {
                let mut again = Vec::new();
                for ((delivery, envelope), result) in parsed.into_iter().zip(results) {
                    let attempt = attempt_of(&delivery);
                    let span = info_span!("event", consumer = %self.name, event_id = %envelope.id, event_type = %envelope.event_type, attempt);
                    let outcome = match result {
                        Ok(true) => Outcome::Handled,
                        Ok(false) => Outcome::Duplicate,
                        // Rows the batch held may be what it waited for (another replica's
                        // batch locking the same rows in another order): alone, it may pass.
                        Err(error) if error.is_lock_conflict() => {
                            again.push(delivery);
                            continue;
                        }
                        Err(error) => {
                            self.route_failure(channel, &delivery, attempt, error)
                                .instrument(span)
                                .await?
                        }
                    };
                    self.acknowledge(&delivery, &outcome).await?;
                }
                for delivery in again {
                    self.process(channel, delivery).await?;
                }
            }
            Err(error) => {
                warn!(consumer = %self.name, error = %error_chain(&error), events = parsed.len(), "a batch did not commit; handling its events one at a time");
                for (delivery, _) in parsed {
                    self.process(channel, delivery).await?;
                }
            }
        }
        for delivery in unreadable {
            self.process(channel, delivery).await?;
        }
        Ok(())
    }

    /// Runs `envelopes` through the handler in one transaction: for each, `Ok(true)` handled,
    /// `Ok(false)` already in the inbox, `Err` the handler's failure (its savepoint rolled back,
    /// the rest of the batch untouched). `Err` overall when the transaction itself failed.
    async fn handle_batch(
        &self,
        envelopes: &[&Envelope],
    ) -> Result<Vec<Result<bool, HandlerError>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut results = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let mut savepoint = Acquire::begin(&mut tx).await?;
            let result = self.handle_in(&mut savepoint, envelope).await;
            if matches!(result, Ok(true)) {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
            results.push(result);
        }
        tx.commit().await?;
        Ok(results)
    }

    async fn acknowledge(
        &self,
        delivery: &Delivery,
        outcome: &Outcome,
    ) -> Result<(), ConsumeError> {
        delivery.acker.ack(BasicAckOptions::default()).await?;
        self.metrics
            .outcomes
            .with_label_values(&[&self.name, outcome.label()])
            .inc();
        Ok(())
    }

    async fn process(&self, channel: &Channel, delivery: Delivery) -> Result<(), ConsumeError> {
        let attempt = attempt_of(&delivery);
        let outcome = match serde_json::from_slice::<Envelope>(&delivery.data) {
            Err(error) => {
                let reason = format!("unparseable event: {error}");
                warn!(consumer = %self.name, %reason, "dead-lettering");
                self.dead_letter(channel, &delivery, attempt + 1, &reason)
                    .await?;
                Outcome::DeadLettered
            }
            Ok(envelope) => {
                let span = info_span!("event", consumer = %self.name, event_id = %envelope.id, event_type = %envelope.event_type, attempt);
                self.handle(channel, &delivery, &envelope, attempt)
                    .instrument(span)
                    .await?
            }
        };
        self.acknowledge(&delivery, &outcome).await
    }

    async fn handle(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        envelope: &Envelope,
        attempt: u32,
    ) -> Result<Outcome, ConsumeError> {
        let error = match self.handle_in_transaction(envelope).await {
            Ok(true) => return Ok(Outcome::Handled),
            Ok(false) => return Ok(Outcome::Duplicate),
            Err(error) => error,
        };
        self.route_failure(channel, delivery, attempt, error).await
    }

    /// Sends a failed event to its next retry queue, or to the dead-letter queue when retrying
    /// cannot help or the retries are spent.
    async fn route_failure(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        attempt: u32,
        error: HandlerError,
    ) -> Result<Outcome, ConsumeError> {
        let reason = error.to_string();
        let delays = self.broker.config().retry_delays.len();
        let retry = matches!(error, HandlerError::Transient(_)) && (attempt as usize) < delays;
        if retry {
            warn!(%reason, "handler failed; retrying later");
            let queue = topology::retry_queue(&self.name, attempt as usize + 1);
            self.republish(channel, "", &queue, delivery, attempt + 1, &reason)
                .await?;
            Ok(Outcome::Retried)
        } else {
            warn!(%reason, "handler failed for good; dead-lettering");
            self.dead_letter(channel, delivery, attempt + 1, &reason)
                .await?;
            Ok(Outcome::DeadLettered)
        }
    }

    /// `Ok(false)` when the inbox already had this event.
    async fn handle_in_transaction(&self, envelope: &Envelope) -> Result<bool, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let fresh = self.handle_in(&mut tx, envelope).await?;
        if fresh {
            tx.commit().await?;
        }
        Ok(fresh)
    }

    /// Records `envelope` in the inbox and runs the handler on `connection`; `Ok(false)` when
    /// the inbox already had it (nothing else is done).
    async fn handle_in(
        &self,
        connection: &mut PgConnection,
        envelope: &Envelope,
    ) -> Result<bool, HandlerError> {
        let fresh = sqlx::query(
            "INSERT INTO inbox (consumer, event_id, event_type) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(&self.name)
        .bind(envelope.id)
        .bind(&envelope.event_type)
        .execute(&mut *connection)
        .await?
        .rows_affected()
            == 1;
        if fresh {
            self.handler.handle(connection, envelope).await?;
        }
        Ok(fresh)
    }

    async fn dead_letter(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        attempts: u32,
        reason: &str,
    ) -> Result<(), ConsumeError> {
        self.republish(
            channel,
            topology::DEAD_LETTER_EXCHANGE,
            &self.name,
            delivery,
            attempts,
            reason,
        )
        .await
    }

    /// Publishes a copy of `delivery` with updated attempt and error headers and waits for the
    /// broker's confirm, so that the original may be acked safely.
    async fn republish(
        &self,
        channel: &Channel,
        exchange: &str,
        routing_key: &str,
        delivery: &Delivery,
        attempts: u32,
        reason: &str,
    ) -> Result<(), ConsumeError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ShortString::from(ATTEMPT_HEADER),
            AMQPValue::LongUInt(attempts),
        );
        headers.insert(
            ShortString::from(ERROR_HEADER),
            AMQPValue::LongString(LongString::from(reason.as_bytes().to_vec())),
        );
        headers.insert(
            ShortString::from("x-gavel-consumer"),
            AMQPValue::LongString(LongString::from(self.name.as_bytes().to_vec())),
        );
        if copy_confirmed(channel, delivery, exchange, routing_key, headers).await? {
            Ok(())
        } else {
            Err(ConsumeError::Refused)
        }
    }
}

/// Publishes a persistent copy of `delivery` with `headers` and waits for the broker's confirm
/// (the channel is in confirm mode): `true` when the broker took it, so the original may be
/// acknowledged.
pub(crate) async fn copy_confirmed(
    channel: &Channel,
    delivery: &Delivery,
    exchange: &str,
    routing_key: &str,
    headers: FieldTable,
) -> Result<bool, lapin::Error> {
    let properties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let confirmation = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await?
        .await?;
    Ok(matches!(confirmation, Confirmation::Ack(_)))
}

/// Deletes `consumer`'s inbox rows handled more than `older_than` ago, a batch at a time so no
/// statement holds many locks; returns how many.
pub async fn prune_inbox(
    pool: &PgPool,
    consumer: &str,
    older_than: Duration,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        // Oldest first, through the `(consumer, handled_at)` index.
        let deleted = sqlx::query(
            "DELETE FROM inbox WHERE ctid IN (
                 SELECT ctid FROM inbox WHERE consumer = $1 AND handled_at < now() - $2
                 ORDER BY handled_at LIMIT 10000)",
        )
        .bind(consumer)
        .bind(older_than)
        .execute(pool)
        .await?
        .rows_affected();
        total += deleted;
        if deleted < 10_000 {
            return Ok(total);
        }
    }
}

/// Prunes the inbox at start and every hour until cancelled.
async fn keep_inbox_pruned(
    pool: PgPool,
    consumer: String,
    older_than: Duration,
    cancel: CancellationToken,
) {
    let what = format!("inbox of {consumer}");
    gavel_common::db::prune_hourly(&what, cancel, || prune_inbox(&pool, &consumer, older_than))
        .await;
}

fn attempt_of(delivery: &Delivery) -> u32 {
    recorded_attempts(delivery).unwrap_or(0)
}

/// The failed attempts recorded on `delivery` (`x-gavel-attempt`), if any.
pub(crate) fn recorded_attempts(delivery: &Delivery) -> Option<u32> {
    let headers: Option<&FieldTable> = delivery.properties.headers().as_ref();
    match headers.and_then(|headers| headers.inner().get(ATTEMPT_HEADER))? {
        AMQPValue::LongUInt(value) => Some(*value),
        AMQPValue::LongLongInt(value) => Some(u32::try_from(*value).unwrap_or(u32::MAX)),
        AMQPValue::LongInt(value) => Some(u32::try_from(*value).unwrap_or(0)),
        _ => None,
    }
}

#[allow(unused)]
fn _assert_send<H: Handler>(
    consumer: Consumer<H>,
) -> impl Future<Output = Result<(), BoxError>> + Send {
    consumer.run(CancellationToken::new())
}
