//! The RabbitMQ topology, declared idempotently by whoever needs it.
//!
//! - `gavel.events` (topic, durable): every event, routed by its type (`lot.created`). Unroutable
//!   messages go to its alternate exchange and queue `gavel.unrouted` instead of vanishing.
//! - per consumer `C`: the durable queue `C`, bound to the event patterns it wants; retry queues
//!   `C.retry.1 … C.retry.N`, each holding a message for its delay and then dead-lettering it back
//!   to `C` through the default exchange (one queue per delay, so a long delay never holds back a
//!   short one); the dead-letter queue `C.dlq`, bound to the direct exchange `gavel.dead-letter`
//!   with routing key `C`, where events that exhausted their retries wait for an operator.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::config::QueueType;

pub const DEAD_LETTER_EXCHANGE: &str = "gavel.dead-letter";
pub const UNROUTED_EXCHANGE: &str = "gavel.unrouted";
pub const UNROUTED_QUEUE: &str = "gavel.unrouted";

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// The arguments every durable queue of Gavel's starts with: its type.
fn queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("x-queue-type"),
        string(queue_type.as_str()),
    );
    arguments
}

fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

/// The events exchange and its catch-all for unroutable messages.
pub async fn declare_exchange(
    channel: &Channel,
    exchange: &str,
    queue_type: QueueType,
) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            UNROUTED_EXCHANGE.into(),
            ExchangeKind::Fanout,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            UNROUTED_QUEUE.into(),
            durable_queue(),
            queue_arguments(queue_type),
        )
        .await?;
    channel
        .queue_bind(
            UNROUTED_QUEUE.into(),
            UNROUTED_EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        ShortString::from("alternate-exchange"),
        string(UNROUTED_EXCHANGE),
    );
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            durable_exchange(),
            arguments,
        )
        .await
}

pub fn retry_queue(consumer: &str, attempt: usize) -> String {
    format!("{consumer}.retry.{attempt}")
}

pub fn dead_letter_queue(consumer: &str) -> String {
    format!("{consumer}.dlq")
}

/// Everything consumer `name` reads from: its queue and bindings, retry queues, dead-letter queue.
pub async fn declare_consumer(
    channel: &Channel,
    exchange: &str,
    name: &str,
    bindings: &[String],
    retry_delays: &[std::time::Duration],
    queue_type: QueueType,
) -> Result<(), lapin::Error> {
    declare_exchange(channel, exchange, queue_type).await?;
    channel
        .exchange_declare(
            DEAD_LETTER_EXCHANGE.into(),
            ExchangeKind::Direct,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
    let dlq = dead_letter_queue(name);
    channel
        .queue_declare(
            dlq.as_str().into(),
            durable_queue(),
            queue_arguments(queue_type),
        )
        .await?;
    channel
        .queue_bind(
            dlq.as_str().into(),
            DEAD_LETTER_EXCHANGE.into(),
            name.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    // Messages the broker itself rejects (e.g. a nack without requeue) also end up in the DLQ.
    let mut arguments = queue_arguments(queue_type);
    arguments.insert(
        ShortString::from("x-dead-letter-exchange"),
        string(DEAD_LETTER_EXCHANGE),
    );
    arguments.insert(ShortString::from("x-dead-letter-routing-key"), string(name));
    channel
        .queue_declare(name.into(), durable_queue(), arguments)
        .await?;
    for pattern in bindings {
        channel
            .queue_bind(
                name.into(),
                exchange.into(),
                pattern.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }

    for (index, delay) in retry_delays.iter().enumerate() {
        let mut arguments = queue_arguments(queue_type);
        let ttl = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        arguments.insert(
            ShortString::from("x-message-ttl"),
            AMQPValue::LongLongInt(ttl),
        );
        arguments.insert(ShortString::from("x-dead-letter-exchange"), string(""));
        arguments.insert(ShortString::from("x-dead-letter-routing-key"), string(name));
        let queue = retry_queue(name, index + 1);
        channel
            .queue_declare(queue.as_str().into(), durable_queue(), arguments)
            .await?;
    }
    Ok(())
}
