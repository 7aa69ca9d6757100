//! `gavel-admin` against a real RabbitMQ and PostgreSQL: an event dead-lettered by a consumer
//! whose handler fails is listed (and left in place), replayed once the handler works again,
//! and handled exactly once; an event nobody was bound for waits in `gavel.unrouted` and reaches
//! its consumer when replayed after the binding exists.

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gavel_common::metrics::Metrics;
use gavel_messaging::consumer::ConsumerMetrics;
use gavel_messaging::parked::{self, Parking};
use gavel_messaging::{Broker, Consumer, Envelope, Event, Handler, HandlerError, topology};
use gavel_test_support::{TestDatabase, TestVhost, wait_until_async};
use lapin::options::BasicPublishOptions;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);
const CONSUMER: &str = "test.admin";

#[derive(Debug, Serialize, Deserialize)]
struct Noted {
    number: u32,
}

impl Event for Noted {
    const TYPE: &'static str = "note.noted";
    const VERSION: u16 = 1;
}

/// Fails for good while `broken`, else records the event.
struct Flaky {
    broken: Arc<AtomicBool>,
}

impl Handler for Flaky {
    async fn handle(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(HandlerError::Permanent(
                "the handler is broken today".into(),
            ));
        }
        sqlx::query("INSERT INTO handled (event_id) VALUES ($1)")
            .bind(event.id)
            .execute(connection)
            .await?;
        Ok(())
    }
}

struct World {
    db: TestDatabase,
    vhost: TestVhost,
    broker: Broker,
    broken: Arc<AtomicBool>,
    cancel: CancellationToken,
}

async fn world() -> World {
    gavel_test_support::init_logs();
    let db = TestDatabase::create().await;
    gavel_messaging::migrator()
        .run(&db.pool)
        .await
        .expect("migrations");
    sqlx::query("CREATE TABLE handled (event_id UUID NOT NULL)")
        .execute(&db.pool)
        .await
        .expect("table");
    let vhost = TestVhost::create().await;
    let broker = Broker::new(vhost.config(), "test");
    World {
        db,
        vhost,
        broker,
        broken: Arc::new(AtomicBool::new(true)),
        cancel: CancellationToken::new(),
    }
}

impl World {
    async fn start_consumer(&self) {
        let consumer = Consumer::new(
            CONSUMER,
            &["note.*"],
            self.db.pool.clone(),
            self.broker.clone(),
            Flaky {
                broken: self.broken.clone(),
            },
            ConsumerMetrics::new(&Metrics::new("test")),
        );
        let cancel = self.cancel.clone();
        tokio::spawn(async move { consumer.run(cancel).await.expect("consumer stops cleanly") });
        self.vhost.wait_for_consumer(CONSUMER).await;
    }

    async fn handled(&self, event: uuid::Uuid) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM handled WHERE event_id = $1")
            .bind(event)
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    /// Waits until `count` events wait in the consumer's dead-letter queue; returns that queue.
    async fn parked(&self, count: usize) -> Parking {
        let parking = Parking::DeadLetters {
            consumer: CONSUMER.to_owned(),
        };
        wait_until_async("the events to be dead-lettered", DEADLINE, || async {
            parked::list(&self.broker, &parking, 10)
                .await
                .expect("listed")
                .len()
                == count
        })
        .await;
        parking
    }

    /// Runs `gavel-admin ARGS` against this world's vhost.
    async fn admin(&self, args: &[&str]) -> Output {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let url = self.vhost.url();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_gavel-admin"))
                .args(&args)
                .env("GAVEL_BROKER__URL", url)
                .output()
                .expect("gavel-admin runs")
        })
        .await
        .expect("joined")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_event_is_listed_then_replayed_and_handled_once() {
    let world = world().await;
    world.start_consumer().await;
    let event = Envelope::new("notebook", Some(7), &Noted { number: 7 }).expect("serializable");
    let bystander = Envelope::new("notebook", Some(8), &Noted { number: 8 }).expect("serializable");
    world.vhost.publish(&event, CONSUMER).await;
    world.vhost.publish(&bystander, CONSUMER).await;
    let parking = world.parked(2).await;

    let listed = world.admin(&["dead-letters", "list", CONSUMER]).await;
    assert!(listed.status.success(), "{listed:?}");
    let text = stdout(&listed);
    assert!(text.starts_with("2 message(s) in test.admin.dlq"), "{text}");
    assert!(
        text.contains(&event.id.to_string()) && text.contains("note.noted"),
        "{text}"
    );
    assert!(text.contains("the handler is broken today"), "{text}");
    // Listing took nothing.
    assert_eq!(
        parked::list(&world.broker, &parking, 10)
            .await
            .expect("listed")
            .len(),
        2
    );

    world.broken.store(false, Ordering::SeqCst);
    let unknown = uuid::Uuid::new_v4().to_string();
    let missing = world
        .admin(&["dead-letters", "replay", CONSUMER, "--event", &unknown])
        .await;
    assert!(!missing.status.success(), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no message with that event id"));

    let one = event.id.to_string();
    let replayed = world
        .admin(&["dead-letters", "replay", CONSUMER, "--event", &one])
        .await;
    assert!(replayed.status.success(), "{replayed:?}");
    assert!(stdout(&replayed).contains("replayed 1 message(s) from test.admin.dlq; 1 left there"));
    wait_until_async("the replayed event to be handled", DEADLINE, || async {
        world.handled(event.id).await == 1
    })
    .await;
    let left = parked::list(&world.broker, &parking, 10)
        .await
        .expect("listed");
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0].event.as_ref().map(|event| event.id),
        Some(bystander.id)
    );

    // Replaying everything, twice over, still handles each event once (the inbox).
    let all = world.admin(&["dead-letters", "replay", CONSUMER]).await;
    assert!(stdout(&all).contains("replayed 1 message(s)"), "{all:?}");
    wait_until_async("the bystander to be handled", DEADLINE, || async {
        world.handled(bystander.id).await == 1
    })
    .await;
    world.vhost.publish(&event, CONSUMER).await;
    let again = Envelope::new("notebook", Some(9), &Noted { number: 9 }).expect("serializable");
    world.vhost.publish(&again, CONSUMER).await;
    wait_until_async("a later event to be handled", DEADLINE, || async {
        world.handled(again.id).await == 1
    })
    .await;
    assert_eq!(
        (
            world.handled(event.id).await,
            world.handled(bystander.id).await
        ),
        (1, 1)
    );
    assert!(
        parked::list(&world.broker, &parking, 10)
            .await
            .expect("listed")
            .is_empty()
    );
    world.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrouted_event_reaches_its_consumer_when_replayed_after_the_binding_exists() {
    let world = world().await;
    world.broken.store(false, Ordering::SeqCst);
    let config = world.vhost.config();
    // The exchange exists, nobody is bound for `note.*` yet: the event is unroutable.
    let channel = world.broker.channel().await.expect("channel");
    topology::declare_exchange(&channel, &config.exchange, config.queue_type)
        .await
        .expect("exchange");
    let event = Envelope::new("notebook", Some(1), &Noted { number: 1 }).expect("serializable");
    let body = serde_json::to_vec(&event).expect("json");
    channel
        .basic_publish(
            config.exchange.as_str().into(),
            Noted::TYPE.into(),
            BasicPublishOptions::default(),
            &body,
            lapin::BasicProperties::default(),
        )
        .await
        .expect("published");
    let parking = Parking::Unrouted {
        exchange: config.exchange.clone(),
    };
    wait_until_async("the event to wait in gavel.unrouted", DEADLINE, || async {
        parked::list(&world.broker, &parking, 10)
            .await
            .is_ok_and(|found| found.len() == 1)
    })
    .await;
    let listed = world.admin(&["unrouted", "list"]).await;
    assert!(
        stdout(&listed).contains(&event.id.to_string()),
        "{listed:?}"
    );

    world.start_consumer().await;
    let replayed = world.admin(&["unrouted", "replay"]).await;
    assert!(
        stdout(&replayed).contains("replayed 1 message(s) from gavel.unrouted"),
        "{replayed:?}"
    );
    wait_until_async("the event to be handled", DEADLINE, || async {
        world.handled(event.id).await == 1
    })
    .await;
    assert!(
        parked::list(&world.broker, &parking, 10)
            .await
            .expect("listed")
            .is_empty()
    );
    world.cancel.cancel();
}

/// The operator's retention job for parked messages deletes only the events older than the age
/// it is given, prints each, and leaves the rest parked in their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_a_dead_letter_queue_deletes_only_the_old_events() {
    let world = world().await;
    world.start_consumer().await;
    let mut old = Envelope::new("notebook", Some(1), &Noted { number: 1 }).expect("serializable");
    old.occurred_at = chrono::Utc::now() - chrono::Duration::days(40);
    let recent = Envelope::new("notebook", Some(2), &Noted { number: 2 }).expect("serializable");
    world.vhost.publish(&old, CONSUMER).await;
    world.vhost.publish(&recent, CONSUMER).await;
    let parking = world.parked(2).await;

    let bad = world
        .admin(&["dead-letters", "expire", CONSUMER, "--older-than", "soon"])
        .await;
    assert!(!bad.status.success());
    let expired = world
        .admin(&["dead-letters", "expire", CONSUMER, "--older-than", "30d"])
        .await;
    assert!(expired.status.success(), "{expired:?}");
    let text = stdout(&expired);
    assert!(
        text.starts_with(&format!("deleted {}", old.id)),
        "the deleted event is printed first: {text}"
    );
    assert!(
        text.contains("deleted 1 message(s) from test.admin.dlq; 1 kept"),
        "{text}"
    );
    let left = parked::list(&world.broker, &parking, 10)
        .await
        .expect("listed");
    assert_eq!(
        left.iter()
            .map(|message| message.event.as_ref().map(|event| event.id))
            .collect::<Vec<_>>(),
        [Some(recent.id)]
    );
    world.cancel.cancel();
}
