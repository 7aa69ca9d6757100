//! The operator's side of the dead-letter queues: what waits in a consumer's `C.dlq` (or in
//! `gavel.unrouted`), and putting it back.
//!
//! - [`list`] reads up to `limit` messages without taking them: it never acknowledges, and closing
//!   its channel returns every one to the queue.
//! - [`replay`] moves messages (all, or the one with a given event id) back where they can be
//!   handled: a dead-lettered event to its consumer's own queue with its attempt count reset, an
//!   unrouted one to the events exchange under its routing key (now that something may be bound).
//!   Each is published with a publisher confirm before it is acknowledged in the parking queue,
//!   so a crash in between duplicates at worst, which every consumer's inbox ignores. Messages not
//!   chosen go back to the parking queue untouched.

use lapin::Confirmation;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use uuid::Uuid;

use crate::broker::Broker;
use crate::consumer::{ATTEMPT_HEADER, ERROR_HEADER};
use crate::envelope::Envelope;
use crate::topology;

/// Set on a replayed message: when, and from which queue.
pub const REPLAYED_HEADER: &str = "x-gavel-replayed-from";

/// Where parked messages wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parking {
    /// Consumer `C`'s dead-letter queue `C.dlq`; replayed to queue `C`.
    DeadLetters { consumer: String },
    /// `gavel.unrouted`; replayed to the events exchange under each message's routing key.
    Unrouted { exchange: String },
}

impl Parking {
    pub fn queue(&self) -> String {
        match self {
            Self::DeadLetters { consumer } => topology::dead_letter_queue(consumer),
            Self::Unrouted { .. } => topology::UNROUTED_QUEUE.to_owned(),
        }
    }
}

/// One parked message, as an operator needs to judge it.
#[derive(Debug, Clone)]
pub struct Parked {
    /// The event, when the body is one.
    pub event: Option<Envelope>,
    /// The body's start, when it is not an event.
    pub raw: Option<String>,
    pub routing_key: String,
    /// How many times handling failed.
    pub attempts: Option<u32>,
    /// The last error.
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ParkedError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm the replayed message; it stays parked")]
    NotConfirmed,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Replayed {
    pub replayed: usize,
    /// Parked messages left where they were (not chosen).
    pub left: usize,
    /// When the oldest replayed event happened: one older than the consumers' inbox retention
    /// may be handled a second time.
    pub oldest: Option<chrono::DateTime<chrono::Utc>>,
}

fn header<'a>(headers: Option<&'a FieldTable>, name: &str) -> Option<&'a AMQPValue> {
    headers?.inner().get(name)
}

fn parked(delivery: &lapin::message::Delivery) -> Parked {
    let headers = delivery.properties.headers().as_ref();
    let attempts = match header(headers, ATTEMPT_HEADER) {
        Some(AMQPValue::LongUInt(value)) => Some(*value),
        Some(AMQPValue::LongLongInt(value)) => u32::try_from(*value).ok(),
        Some(AMQPValue::LongInt(value)) => u32::try_from(*value).ok(),
        _ => None,
    };
    let error = match header(headers, ERROR_HEADER) {
        Some(AMQPValue::LongString(text)) => {
            Some(String::from_utf8_lossy(text.as_bytes()).into_owned())
        }
        _ => None,
    };
    let event: Option<Envelope> = serde_json::from_slice(&delivery.data).ok();
    let raw = event.is_none().then(|| {
        String::from_utf8_lossy(&delivery.data)
            .chars()
            .take(200)
            .collect()
    });
    Parked {
        event,
        raw,
        routing_key: delivery.routing_key.to_string(),
        attempts,
        error,
    }
}

/// How many messages wait in `queue` (which must exist).
async fn depth(channel: &Channel, queue: &str) -> Result<u32, lapin::Error> {
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(declared.message_count())
}

/// Up to `limit` parked messages, oldest first, left in place.
pub async fn list(
    broker: &Broker,
    parking: &Parking,
    limit: usize,
) -> Result<Vec<Parked>, ParkedError> {
    let channel = broker.channel().await?;
    let queue = parking.queue();
    let waiting = depth(&channel, &queue).await? as usize;
    let mut found = Vec::new();
    while found.len() < limit.min(waiting) {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        found.push(parked(&message.delivery));
    }
    // Never acknowledged: closing the channel puts every one back.
    channel.close(200, "listed".into()).await?;
    Ok(found)
}

/// Moves parked messages back to be handled: every one, or only the event `only`.
pub async fn replay(
    broker: &Broker,
    parking: &Parking,
    only: Option<Uuid>,
) -> Result<Replayed, ParkedError> {
    let channel = broker.channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = parking.queue();
    // Only what waits now: a message that fails again while this runs is not taken twice.
    let waiting = depth(&channel, &queue).await?;
    let mut done = Replayed::default();
    for _ in 0..waiting {
        let Some(message) = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await?
        else {
            break;
        };
        let delivery = message.delivery;
        let event = serde_json::from_slice::<Envelope>(&delivery.data).ok();
        let id = event.as_ref().map(|event| event.id);
        if only.is_some_and(|only| id != Some(only)) {
            // Left unacknowledged: the channel's close puts it back.
            done.left += 1;
            continue;
        }
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(ShortString::from(ATTEMPT_HEADER), AMQPValue::LongUInt(0));
        headers.insert(
            ShortString::from(REPLAYED_HEADER),
            AMQPValue::LongString(queue.as_bytes().to_vec().into()),
        );
        let properties: BasicProperties = delivery
            .properties
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2);
        let (exchange, routing_key) = match parking {
            Parking::DeadLetters { consumer } => (String::new(), consumer.clone()),
            Parking::Unrouted { exchange } => (exchange.clone(), delivery.routing_key.to_string()),
        };
        let confirmation = channel
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions::default(),
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        if !matches!(confirmation, Confirmation::Ack(_)) {
            return Err(ParkedError::NotConfirmed);
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
        done.replayed += 1;
        if let Some(event) = event {
            done.oldest = Some(
                done.oldest
                    .map_or(event.occurred_at, |oldest| oldest.min(event.occurred_at)),
            );
        }
    }
    channel.close(200, "replayed".into()).await?;
    Ok(done)
}
