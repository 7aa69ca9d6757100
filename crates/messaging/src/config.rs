//! Broker settings, shared by the relay and the consumers of a service.

use std::time::Duration;

use gavel_common::config::SecretUrl;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `amqp://user:password@host:port/vhost`; the password is redacted in logs.
    pub url: SecretUrl,
    /// The topic exchange all events are published to.
    #[serde(default = "default_exchange")]
    pub exchange: String,
    /// Deliveries a consumer may hold unacknowledged.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// The most deliveries a consumer handles in one transaction: when several are waiting,
    /// they share one commit (one flush) instead of paying one each. `1` handles each alone.
    #[serde(default = "default_consume_batch")]
    pub consume_batch: u16,
    /// Delays before the 1st, 2nd, … redelivery of a failed event; after the last one the event
    /// goes to the consumer's dead-letter queue. Their number is the retry count.
    #[serde(default = "default_retry_delays", with = "humantime_serde_vec")]
    pub retry_delays: Vec<Duration>,
    /// Rows the outbox relay publishes per transaction.
    #[serde(default = "default_batch")]
    pub relay_batch: i64,
    /// How often the relay looks for rows when no notification wakes it.
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub relay_poll_interval: Duration,
    /// The longest wait between two reconnection attempts.
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    pub reconnect_max_backoff: Duration,
    /// The type of the durable queues Gavel declares: `classic` (one broker) or `quorum` (a
    /// RabbitMQ cluster: replicated, survives a node). A queue keeps the type it was declared
    /// with; changing it on an existing broker needs the queues drained and deleted first.
    #[serde(default)]
    pub queue_type: QueueType,
    /// Published outbox rows are kept this long for inspection, then deleted.
    #[serde(default = "default_outbox_retention", with = "humantime_serde")]
    pub outbox_retention: Duration,
    /// Inbox rows (the events a consumer has handled) are kept this long, then deleted. An event
    /// redelivered or replayed after that is no longer recognised as handled, so keep it well
    /// beyond the longest a message can wait: the retry delays plus the time an operator may
    /// take to replay a dead-lettered one.
    #[serde(default = "default_inbox_retention", with = "humantime_serde")]
    pub inbox_retention: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
}

impl QueueType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classic => "classic",
            Self::Quorum => "quorum",
        }
    }
}

fn default_exchange() -> String {
    "gavel.events".to_owned()
}

fn default_prefetch() -> u16 {
    64
}

fn default_consume_batch() -> u16 {
    32
}

fn default_retry_delays() -> Vec<Duration> {
    [1, 5, 30, 120, 600]
        .into_iter()
        .map(Duration::from_secs)
        .collect()
}

fn default_batch() -> i64 {
    200
}

fn default_poll() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(10)
}

fn default_outbox_retention() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}

fn default_inbox_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

impl BrokerConfig {
    /// The defaults for everything but the URL.
    pub fn new(url: SecretUrl) -> Self {
        Self {
            url,
            exchange: default_exchange(),
            prefetch: default_prefetch(),
            consume_batch: default_consume_batch(),
            retry_delays: default_retry_delays(),
            relay_batch: default_batch(),
            relay_poll_interval: default_poll(),
            reconnect_max_backoff: default_max_backoff(),
            queue_type: QueueType::default(),
            outbox_retention: default_outbox_retention(),
            inbox_retention: default_inbox_retention(),
        }
    }
}

/// `["1s", "5s"]` for a list of durations.
mod humantime_serde_vec {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Duration>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|raw| humantime_serde::re::humantime::parse_duration(raw))
            .collect::<Result<_, _>>()
            .map_err(serde::de::Error::custom)
    }
}
