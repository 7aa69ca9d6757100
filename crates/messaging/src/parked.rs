//! The operator's side of the dead-letter queues: what waits in a consumer's `C.dlq` (or in
//! `gavel.unrouted`), and putting it back.
//!
//! - [`list`] reads up to `limit` messages and puts each back at the end of its queue.
//! - [`replay`] moves messages (all, or the one with a given event id) back where they can be
//!   handled: a dead-lettered event to its consumer's own queue with its attempt count reset, an
//!   unrouted one to the events exchange under its routing key (now that something may be bound).
//!
//! A message is never handed back with a negative acknowledgement or a closed channel: on a
//! quorum queue (the production profile) every such return counts as a delivery, and past the
//! queue's delivery limit (20 by default in RabbitMQ 4) the message would be dropped. Instead each
//! is published again — to the end of the same queue, or to where it is replayed — with a
//! publisher confirm, and only then acknowledged. A crash in between duplicates at worst, which
//! every consumer's inbox ignores. Listing every message of a queue keeps their order; listing
//! fewer moves the ones shown behind the others.

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicGetOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use uuid::Uuid;

use crate::broker::Broker;
use crate::consumer::{ATTEMPT_HEADER, ERROR_HEADER, copy_confirmed, recorded_attempts};
use crate::envelope::Envelope;
use crate::topology;

/// Set on a replayed message: the queue it was parked in.
pub const REPLAYED_HEADER: &str = "x-gavel-replayed-from";
/// The routing key a parked message first arrived with, kept when listing moves it within its
/// queue (which changes the key it carries).
pub const ROUTING_KEY_HEADER: &str = "x-gavel-routing-key";

/// The routing key `delivery` first arrived with.
fn original_routing_key(delivery: &lapin::message::Delivery) -> String {
    match header(delivery.properties.headers().as_ref(), ROUTING_KEY_HEADER) {
        Some(AMQPValue::LongString(key)) => String::from_utf8_lossy(key.as_bytes()).into_owned(),
        _ => delivery.routing_key.to_string(),
    }
}

/// `delivery`'s headers, with its original routing key recorded.
fn headers_keeping_key(delivery: &lapin::message::Delivery) -> FieldTable {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        ShortString::from(ROUTING_KEY_HEADER),
        AMQPValue::LongString(original_routing_key(delivery).into_bytes().into()),
    );
    headers
}

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
    let attempts = recorded_attempts(delivery);
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
        routing_key: original_routing_key(delivery),
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

/// Publishes a copy of `delivery` to `routing_key` through `exchange` with `headers`, waits for
/// the broker's confirm, then acknowledges the original.
async fn move_message(
    channel: &Channel,
    delivery: &lapin::message::Delivery,
    exchange: &str,
    routing_key: &str,
    headers: FieldTable,
) -> Result<(), ParkedError> {
    if !copy_confirmed(channel, delivery, exchange, routing_key, headers).await? {
        return Err(ParkedError::NotConfirmed);
    }
    delivery.acker.ack(BasicAckOptions::default()).await?;
    Ok(())
}

/// The next message of `queue`, unacknowledged (it must be moved, then acknowledged).
async fn take(
    channel: &Channel,
    queue: &str,
) -> Result<Option<lapin::message::Delivery>, lapin::Error> {
    Ok(channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?
        .map(|message| message.delivery))
}

async fn confirming_channel(broker: &Broker) -> Result<Channel, ParkedError> {
    let channel = broker.channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Up to `limit` parked messages, oldest first; each goes back to the end of its queue.
pub async fn list(
    broker: &Broker,
    parking: &Parking,
    limit: usize,
) -> Result<Vec<Parked>, ParkedError> {
    let channel = confirming_channel(broker).await?;
    let queue = parking.queue();
    let waiting = depth(&channel, &queue).await? as usize;
    let mut found = Vec::new();
    while found.len() < limit.min(waiting) {
        let Some(delivery) = take(&channel, &queue).await? else {
            break;
        };
        found.push(parked(&delivery));
        let headers = headers_keeping_key(&delivery);
        move_message(&channel, &delivery, "", &queue, headers).await?;
    }
    channel.close(200, "listed".into()).await?;
    Ok(found)
}

/// Moves parked messages back to be handled: every one, or only the event `only`.
pub async fn replay(
    broker: &Broker,
    parking: &Parking,
    only: Option<Uuid>,
) -> Result<Replayed, ParkedError> {
    let channel = confirming_channel(broker).await?;
    let queue = parking.queue();
    // Only what waits now: a message that fails again while this runs is not taken twice.
    let waiting = depth(&channel, &queue).await?;
    let mut done = Replayed::default();
    for _ in 0..waiting {
        let Some(delivery) = take(&channel, &queue).await? else {
            break;
        };
        let event = serde_json::from_slice::<Envelope>(&delivery.data).ok();
        let id = event.as_ref().map(|event| event.id);
        let mut headers = headers_keeping_key(&delivery);
        if only.is_some_and(|only| id != Some(only)) {
            // Not chosen: back to the end of the parking queue, as it was.
            move_message(&channel, &delivery, "", &queue, headers).await?;
            done.left += 1;
            continue;
        }
        headers.insert(ShortString::from(ATTEMPT_HEADER), AMQPValue::LongUInt(0));
        headers.insert(
            ShortString::from(REPLAYED_HEADER),
            AMQPValue::LongString(queue.as_bytes().to_vec().into()),
        );
        let (exchange, routing_key) = match parking {
            Parking::DeadLetters { consumer } => (String::new(), consumer.clone()),
            Parking::Unrouted { exchange } => (exchange.clone(), original_routing_key(&delivery)),
        };
        move_message(&channel, &delivery, &exchange, &routing_key, headers).await?;
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

/// What expiring a parking queue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Events deleted: they happened before the cut-off.
    pub dropped: usize,
    /// Messages left where they were: younger events, and bodies that are not events (they have
    /// no time to judge by).
    pub kept: usize,
}

/// Deletes the parked events that happened more than `older_than` ago (an operator's retention
/// job); every other message goes back to the end of the queue. `deleted` is told of each event
/// as it goes, so the operator keeps a record even if the run stops half-way.
pub async fn expire(
    broker: &Broker,
    parking: &Parking,
    older_than: std::time::Duration,
    mut deleted: impl FnMut(&Parked),
) -> Result<Expired, ParkedError> {
    let cutoff = chrono::Duration::from_std(older_than)
        .ok()
        .and_then(|age| chrono::Utc::now().checked_sub_signed(age));
    let channel = confirming_channel(broker).await?;
    let queue = parking.queue();
    let waiting = depth(&channel, &queue).await?;
    let mut done = Expired::default();
    for _ in 0..waiting {
        let Some(delivery) = take(&channel, &queue).await? else {
            break;
        };
        let message = parked(&delivery);
        let old = message
            .event
            .as_ref()
            .zip(cutoff)
            .is_some_and(|(event, cutoff)| event.occurred_at < cutoff);
        if old {
            delivery.acker.ack(BasicAckOptions::default()).await?;
            deleted(&message);
            done.dropped += 1;
        } else {
            let headers = headers_keeping_key(&delivery);
            move_message(&channel, &delivery, "", &queue, headers).await?;
            done.kept += 1;
        }
    }
    channel.close(200, "expired".into()).await?;
    Ok(done)
}
