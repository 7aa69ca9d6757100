//! This replica's view of the auction: its own queue bound to `auction.*`, fanned out to local
//! subscribers. The queue is exclusive and goes with the connection; whatever is missed while
//! reconnecting is recovered from the `bids` log (every subscription is marked behind).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::ws::Utf8Bytes;
use futures_util::StreamExt;
use gavel_common::BoxError;
use gavel_messaging::broker::Backoff;
use gavel_messaging::{Broker, Envelope, topology};
use gavel_types::LotId;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::hub::{Hub, LiveEvent};
use crate::log::LotLog;
use crate::metrics::GatewayMetrics;
use crate::protocol;

pub const BINDING: &str = "auction.*";

#[derive(Debug)]
pub struct Fanout {
    pub broker: Broker,
    pub queue: String,
    pub hub: Arc<Hub>,
    /// Remembers recent events, so that connections behind on a lot catch up from memory.
    pub log: Arc<LotLog>,
    pub metrics: GatewayMetrics,
    /// True while the queue is bound and consumed: part of readiness, since a replica without
    /// it would serve clients no live events.
    pub consuming: Arc<AtomicBool>,
}

impl Fanout {
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        let mut backoff = Backoff::new(self.broker.config().reconnect_max_backoff);
        let mut first = true;
        while !cancel.is_cancelled() {
            match self.consume(&cancel, &mut backoff, first).await {
                Ok(()) => break,
                Err(error) => {
                    self.consuming.store(false, Ordering::Release);
                    warn!(queue = %self.queue, error = %gavel_common::error_chain(error.as_ref()), "fan-out lost the broker; reconnecting");
                    first = false;
                    backoff.wait(&cancel).await;
                }
            }
        }
        Ok(())
    }

    async fn consume(
        &self,
        cancel: &CancellationToken,
        backoff: &mut Backoff,
        first: bool,
    ) -> Result<(), BoxError> {
        let channel = self.broker.channel().await?;
        let exchange = &self.broker.config().exchange;
        topology::declare_exchange(&channel, exchange, self.broker.config().queue_type).await?;
        channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                self.queue.as_str().into(),
                exchange.as_str().into(),
                BINDING.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut deliveries = channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        info!(queue = %self.queue, "fanning out auction events");
        backoff.reset();
        self.consuming.store(true, Ordering::Release);
        if !first {
            // Events published while this replica had no queue are in the bids log, and memory
            // can no longer vouch for any lot.
            self.log.forget();
            self.hub.mark_all_behind();
        }
        loop {
            let delivery = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                next = deliveries.next() => next,
            };
            match delivery {
                Some(Ok(delivery)) => self.dispatch(&delivery.data),
                Some(Err(error)) => return Err(error.into()),
                None => return Err("the broker cancelled the subscription".into()),
            }
        }
    }

    fn dispatch(&self, data: &[u8]) {
        self.metrics.received.inc();
        let Some(event) = live_event(data) else {
            warn!("ignoring an auction event without a lot or sequence");
            return;
        };
        let event = Arc::new(event);
        self.log.record(&event);
        let fanout = self.hub.publish(&event);
        self.metrics.behind.inc_by(fanout.behind as u64);
    }
}

/// The event as clients get it, or `None` when it is not a numbered lot event.
pub fn live_event(data: &[u8]) -> Option<LiveEvent> {
    let envelope: Envelope = serde_json::from_slice(data).ok()?;
    let sequence = envelope.sequence?;
    let lot_id: LotId =
        serde_json::from_value(serde_json::Value::String(envelope.aggregate_id.clone())).ok()?;
    Some(LiveEvent {
        lot_id,
        sequence,
        text: Utf8Bytes::from(protocol::event(&envelope, sequence)),
    })
}
