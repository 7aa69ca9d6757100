//! The event backbone against real PostgreSQL and RabbitMQ: outbox → relay → exchange → consumer,
//! each test in its own database and vhost.

use std::time::Duration;

use gavel_common::metrics::Metrics;
use gavel_messaging::config::QueueType;
use gavel_messaging::consumer::ConsumerMetrics;
use gavel_messaging::outbox::{Relay, RelayMetrics, enqueue};
use gavel_messaging::{Broker, Consumer, Envelope, Event, Handler, HandlerError, topology};
use gavel_test_support::{TestDatabase, TestVhost, wait_until_async};
use lapin::options::BasicPublishOptions;
use lapin::types::AMQPValue;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const DEADLINE: Duration = Duration::from_secs(30);
const CONSUMER: &str = "test.notes";

#[derive(Debug, Serialize, Deserialize)]
struct Noted {
    number: u32,
    #[serde(default)]
    poison: bool,
}

impl Event for Noted {
    const TYPE: &'static str = "note.noted";
    const VERSION: u16 = 1;
}

/// Records every event it handles in the consumer's transaction, and every attempt outside it.
struct Recorder {
    pool: PgPool,
}

impl Handler for Recorder {
    async fn handle(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let note: Noted = event.decode()?;
        sqlx::query("INSERT INTO attempts (event_id) VALUES ($1)")
            .bind(event.id)
            .execute(&self.pool)
            .await?;
        if note.poison {
            // A statement that fails inside the transaction, as a real handler's would: it must
            // spoil nothing but this event, however many share the transaction.
            let failed = sqlx::query("SELECT 1 / 0").execute(&mut *connection).await;
            assert!(failed.is_err(), "division by zero fails");
            return Err(HandlerError::Transient("this note always fails".into()));
        }
        sqlx::query("INSERT INTO handled (event_id, number) VALUES ($1, $2)")
            .bind(event.id)
            .bind(i64::from(note.number))
            .execute(connection)
            .await?;
        Ok(())
    }
}

struct Harness {
    db: TestDatabase,
    vhost: TestVhost,
    broker: Broker,
    metrics: Metrics,
    relay_metrics: RelayMetrics,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn new() -> Self {
        Self::with_queue_type(QueueType::Classic).await
    }

    async fn with_queue_type(queue_type: QueueType) -> Self {
        gavel_test_support::init_logs();
        let db = TestDatabase::create().await;
        gavel_messaging::migrator()
            .run(&db.pool)
            .await
            .expect("migrations apply");
        for table in ["handled", "attempts"] {
            let extra = if table == "handled" {
                ", number BIGINT NOT NULL"
            } else {
                ""
            };
            sqlx::query(&format!(
                "CREATE TABLE {table} (event_id UUID NOT NULL{extra})"
            ))
            .execute(&db.pool)
            .await
            .expect("test table");
        }
        let vhost = TestVhost::create().await;
        let mut config = vhost.config();
        config.queue_type = queue_type;
        let broker = Broker::new(config, "test");
        let metrics = Metrics::new("test");
        let relay_metrics = RelayMetrics::new(&metrics);
        Self {
            db,
            vhost,
            broker,
            metrics,
            relay_metrics,
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }

    fn start_relay(&mut self) {
        let relay = Relay::new(
            self.db.pool.clone(),
            self.broker.clone(),
            self.relay_metrics.clone(),
        );
        let cancel = self.cancel.clone();
        self.tasks.push(tokio::spawn(async move {
            relay.run(cancel).await.expect("relay stops cleanly")
        }));
    }

    /// Starts the consumer and waits until its queue exists, so that nothing published after this
    /// returns can be unroutable.
    async fn start_consumer(&mut self) {
        let consumer = Consumer::new(
            CONSUMER,
            &["note.*"],
            self.db.pool.clone(),
            self.broker.clone(),
            Recorder {
                pool: self.db.pool.clone(),
            },
            ConsumerMetrics::new(&self.metrics),
        );
        let cancel = self.cancel.clone();
        self.tasks.push(tokio::spawn(async move {
            consumer.run(cancel).await.expect("consumer stops cleanly")
        }));
        self.vhost.wait_for_consumer(CONSUMER).await;
    }

    /// Declares the consumer's queues without consuming, so events can pile up in them.
    async fn declare_queues(&self) {
        let config = self.broker.config();
        let channel = self.broker.channel().await.expect("channel");
        topology::declare_consumer(
            &channel,
            &config.exchange,
            CONSUMER,
            &["note.*".to_owned()],
            &config.retry_delays,
            config.queue_type,
        )
        .await
        .expect("queues declared");
    }

    /// Writes notes `numbers` to the outbox, one transaction each, committed or rolled back.
    async fn write(&self, numbers: std::ops::Range<u32>, commit: bool) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for number in numbers {
            let envelope = Envelope::new(
                "notebook",
                None,
                &Noted {
                    number,
                    poison: false,
                },
            )
            .expect("serializable");
            let mut tx = self.db.pool.begin().await.expect("begin");
            enqueue(&mut tx, &envelope).await.expect("enqueue");
            if commit {
                tx.commit().await.expect("commit");
            } else {
                tx.rollback().await.expect("rollback");
            }
            ids.push(envelope.id);
        }
        ids
    }

    /// Commits one event whose handler always fails.
    async fn write_poison(&self) -> Envelope {
        let poison = Envelope::new(
            "notebook",
            None,
            &Noted {
                number: 0,
                poison: true,
            },
        )
        .expect("serializable");
        let mut tx = self.db.pool.begin().await.expect("begin");
        enqueue(&mut tx, &poison).await.expect("enqueue");
        tx.commit().await.expect("commit");
        poison
    }

    /// How many times the handler was tried on `event`.
    async fn attempts(&self, event: Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM attempts WHERE event_id = $1")
            .bind(event)
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect("count query")
    }

    async fn wait_for_handled(&self, expected: i64) {
        let pool = self.db.pool.clone();
        wait_until_async(&format!("{expected} handled events"), DEADLINE, || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT count(*) FROM handled")
                    .fetch_one(&pool)
                    .await
                    .unwrap_or(0)
                    >= expected
            }
        })
        .await;
    }

    /// Asserts every event was handled once, and nothing was duplicated or went astray.
    async fn assert_each_handled_once(&self, expected: i64) {
        assert_eq!(
            self.count("SELECT count(*) FROM handled").await,
            expected,
            "handled rows"
        );
        assert_eq!(
            self.count("SELECT count(DISTINCT event_id) FROM handled")
                .await,
            expected,
            "no event handled twice"
        );
        assert_eq!(
            self.count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                .await,
            0,
            "outbox drained"
        );
        assert_eq!(
            self.vhost.queue_depth(topology::UNROUTED_QUEUE).await,
            0,
            "nothing unroutable"
        );
        assert_eq!(
            self.vhost
                .queue_depth(&topology::dead_letter_queue(CONSUMER))
                .await,
            0,
            "nothing dead-lettered"
        );
    }

    async fn stop(self) {
        self.cancel.cancel();
        for task in self.tasks {
            tokio::time::timeout(DEADLINE, task)
                .await
                .expect("tasks stop when cancelled")
                .expect("task did not panic");
        }
    }
}

#[tokio::test]
async fn a_committed_event_reaches_its_consumer_once_and_a_rolled_back_one_never() {
    let mut harness = Harness::new().await;
    harness.start_consumer().await;
    harness.start_relay();

    let rolled_back = harness.write(0..1, false).await;
    let committed = harness.write(1..2, true).await;
    harness.wait_for_handled(1).await;

    let handled: Uuid = sqlx::query_scalar("SELECT event_id FROM handled")
        .fetch_one(&harness.db.pool)
        .await
        .expect("one row");
    assert_eq!(handled, committed[0]);
    assert_ne!(handled, rolled_back[0]);
    assert_eq!(
        harness.count("SELECT count(*) FROM outbox").await,
        1,
        "the rolled-back event was never written"
    );
    harness.assert_each_handled_once(1).await;
    harness.stop().await;
}

#[tokio::test]
async fn a_thousand_events_survive_the_broker_dropping_every_connection_twice() {
    let mut harness = Harness::new().await;
    harness.start_consumer().await;
    harness.start_relay();

    let closed = std::cell::Cell::new(0);
    for batch in 0..10u32 {
        harness.write(batch * 100..(batch + 1) * 100, true).await;
        if batch == 3 || batch == 6 {
            // Mid-stream: the relay and the consumer are both busy when their connection dies.
            let vhost = &harness.vhost;
            wait_until_async("connections to force-close", DEADLINE, || async {
                let count = vhost.close_connections().await;
                closed.set(closed.get() + count);
                count > 0
            })
            .await;
        }
    }
    assert!(
        closed.get() >= 2,
        "connections were really closed ({})",
        closed.get()
    );

    harness.wait_for_handled(1000).await;
    harness.assert_each_handled_once(1000).await;
    let numbers: i64 = harness
        .count("SELECT count(DISTINCT number) FROM handled")
        .await;
    assert_eq!(numbers, 1000, "every note, not just some, arrived");
    harness.stop().await;
}

#[tokio::test]
async fn two_relays_share_the_outbox_and_consumers_still_handle_each_event_once() {
    let mut harness = Harness::new().await;
    harness.start_consumer().await;
    harness.start_relay();
    harness.start_relay();

    harness.write(0..500, true).await;
    harness.wait_for_handled(500).await;
    harness.assert_each_handled_once(500).await;
    let metrics = harness.metrics.render();
    // Every outcome is exported from the start; the duplicate count must still be zero.
    let duplicates: Vec<&str> = metrics
        .lines()
        .filter(|line| line.contains(r#"outcome="duplicate""#))
        .collect();
    assert!(
        !duplicates.is_empty() && duplicates.iter().all(|line| line.ends_with(" 0")),
        "no row was published twice, so no duplicate was even delivered:\n{metrics}"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_handler_that_always_fails_is_retried_then_dead_lettered_while_others_flow() {
    let mut harness = Harness::new().await;
    harness.start_consumer().await;
    harness.start_relay();

    let poison = harness.write_poison().await;
    harness.write(1..11, true).await;

    harness.wait_for_handled(10).await;
    let dlq = topology::dead_letter_queue(CONSUMER);
    let vhost = &harness.vhost;
    wait_until_async(
        "the poison event in the dead-letter queue",
        DEADLINE,
        || async { vhost.queue_depth(&dlq).await == 1 },
    )
    .await;

    let retries = harness.vhost.config().retry_delays.len() as i64;
    let attempts = harness.attempts(poison.id).await;
    assert_eq!(attempts, 1 + retries, "first try plus one per retry delay");

    let parked = harness.vhost.get(&dlq).await.expect("one message");
    let headers = parked
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    let error = headers.inner().get("x-gavel-error").expect("error header");
    assert!(
        matches!(error, AMQPValue::LongString(text) if text.to_string().contains("always fails")),
        "{error:?}"
    );
    assert_eq!(
        headers.inner().get("x-gavel-attempt"),
        Some(&AMQPValue::LongUInt(1 + retries as u32))
    );
    let body: Envelope =
        serde_json::from_slice(&parked.delivery.data).expect("the original envelope is kept");
    assert_eq!(body.id, poison.id);
    harness.stop().await;
}

#[tokio::test]
async fn unparseable_and_unknown_version_events_are_dead_lettered_not_dropped() {
    let mut harness = Harness::new().await;
    harness.start_consumer().await;

    let channel = harness.broker.channel().await.expect("channel");
    let exchange = harness.broker.config().exchange.clone();
    let mut future = Envelope::new(
        "notebook",
        None,
        &Noted {
            number: 7,
            poison: false,
        },
    )
    .expect("serializable");
    future.version = 99;
    for body in [
        b"{not json".to_vec(),
        serde_json::to_vec(&future).expect("serializable"),
    ] {
        channel
            .basic_publish(
                exchange.as_str().into(),
                "note.noted".into(),
                BasicPublishOptions::default(),
                &body,
                Default::default(),
            )
            .await
            .expect("published")
            .await
            .expect("confirmed");
    }

    let dlq = topology::dead_letter_queue(CONSUMER);
    let vhost = &harness.vhost;
    wait_until_async("both events in the dead-letter queue", DEADLINE, || async {
        vhost.queue_depth(&dlq).await == 2
    })
    .await;
    let mut reasons = Vec::new();
    while let Some(message) = harness.vhost.get(&dlq).await {
        let headers = message
            .delivery
            .properties
            .headers()
            .clone()
            .expect("headers");
        if let Some(AMQPValue::LongString(text)) = headers.inner().get("x-gavel-error") {
            reasons.push(text.to_string());
        }
    }
    assert!(
        reasons.iter().any(|r| r.contains("unparseable event")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("v99")), "{reasons:?}");
    assert_eq!(
        harness.count("SELECT count(*) FROM attempts").await,
        0,
        "no retries for what cannot parse"
    );
    harness.stop().await;
}

#[tokio::test]
async fn with_quorum_queues_events_flow_and_failures_still_retry_into_the_dead_letter_queue() {
    let mut harness = Harness::with_queue_type(QueueType::Quorum).await;
    harness.start_consumer().await;
    harness.start_relay();
    let dlq = topology::dead_letter_queue(CONSUMER);
    let first_retry = topology::retry_queue(CONSUMER, 1);
    for queue in [CONSUMER, &dlq, &first_retry, topology::UNROUTED_QUEUE] {
        assert_eq!(harness.vhost.queue_type(queue).await, "quorum", "{queue}");
    }

    let poison = harness.write_poison().await;
    harness.write(1..6, true).await;

    harness.wait_for_handled(5).await;
    let vhost = &harness.vhost;
    wait_until_async(
        "the poison event in the quorum dead-letter queue, after its retries",
        DEADLINE,
        || async { vhost.queue_depth(&dlq).await == 1 },
    )
    .await;
    let retries = harness.vhost.config().retry_delays.len() as i64;
    let attempts = harness.attempts(poison.id).await;
    assert_eq!(
        attempts,
        1 + retries,
        "the retry queues' TTLs work on quorum queues"
    );
    harness.stop().await;
}

#[tokio::test]
async fn a_backlog_is_handled_in_batches_and_a_failing_event_spoils_none_of_its_batch() {
    let mut harness = Harness::new().await;
    harness.declare_queues().await;
    let mut poisons = Vec::new();
    for chunk in 0..12u32 {
        harness.write(chunk * 25..(chunk + 1) * 25, true).await;
        poisons.push(harness.write_poison().await.id);
    }
    harness.start_relay();
    {
        let vhost = &harness.vhost;
        wait_until_async("the backlog in the queue", DEADLINE, || async {
            vhost.queue_depth(CONSUMER).await == 312
        })
        .await;
    }

    harness.start_consumer().await;
    let vhost = &harness.vhost;
    harness.wait_for_handled(300).await;
    let dlq = topology::dead_letter_queue(CONSUMER);
    wait_until_async("every poison event dead-lettered", DEADLINE, || async {
        vhost.queue_depth(&dlq).await == 12
    })
    .await;

    assert_eq!(harness.count("SELECT count(*) FROM handled").await, 300);
    assert_eq!(
        harness
            .count("SELECT count(DISTINCT event_id) FROM handled")
            .await,
        300,
        "no event handled twice"
    );
    assert_eq!(
        harness
            .count("SELECT count(*) FROM attempts WHERE event_id IN (SELECT event_id FROM handled)")
            .await,
        300,
        "each good event was tried once: a failing neighbour in its batch cost it nothing"
    );
    let retries = harness.vhost.config().retry_delays.len() as i64;
    for poison in poisons {
        assert_eq!(harness.attempts(poison).await, 1 + retries);
    }
    let metrics = harness.metrics.render();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|line| line.starts_with(name) && line.contains(CONSUMER))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} in\n{metrics}"))
    };
    let deliveries = value("gavel_events_consumer_batch_size_sum");
    let transactions = value("gavel_events_consumer_batch_size_count");
    assert!(
        deliveries >= 312.0,
        "every delivery is counted ({deliveries})"
    );
    assert!(
        transactions * 4.0 < 312.0,
        "a waiting backlog shares transactions: {transactions} for {deliveries} deliveries"
    );
    harness.stop().await;
}
