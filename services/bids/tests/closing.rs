//! Three engine instances on one database: every due lot opens once and closes once, on time.

mod common;

use std::time::Duration;

use common::{DEADLINE, rules, world};
use gavel_test_support::wait_until_async;
use gavel_types::AccountId;

#[tokio::test]
async fn three_instances_close_each_due_lot_exactly_once_and_within_a_second() {
    let world = world(Duration::from_secs(3600)).await;
    let engines = [
        world.engine().await,
        world.engine().await,
        world.engine().await,
    ];
    let bidder = world.bidder("1000000").await;

    let mut lots = Vec::new();
    for i in 0..12i64 {
        let mut rules = rules();
        // Starting shortly, ending a little later, spread over a second and a half.
        rules.starts_at = chrono::Utc::now() + chrono::Duration::milliseconds(300);
        rules.ends_at = chrono::Utc::now() + chrono::Duration::milliseconds(1500 + i * 100);
        rules.latest_end = rules.ends_at;
        lots.push(
            world
                .create_lot(&engines[(i % 3) as usize], rules, AccountId::new())
                .await,
        );
    }
    // One lot gets a bid on whichever instance, so that one closes as sold.
    wait_until_async("the first lot to open", DEADLINE, || async {
        world.get(&engines[1], &format!("/lots/{}", lots[11])).await["status"] == "open"
    })
    .await;
    let (status, body, _) = world
        .bid(&engines[2], &bidder, lots[11], "only-bid", 100, None)
        .await;
    assert_eq!(status, 201, "{body}");

    wait_until_async("every lot to close", DEADLINE, || async {
        world
            .scalar::<i64>("SELECT count(*) FROM lots WHERE status = 'closed'")
            .await
            == 12
    })
    .await;
    for lot in &lots {
        let (opened, closed): (i64, i64) = sqlx::query_as(&format!(
            "SELECT count(*) FILTER (WHERE event_type = 'auction.opened'), count(*) FILTER (WHERE event_type = 'auction.closed')
             FROM lot_events WHERE lot_id = '{lot}'"
        ))
        .fetch_one(&world.db.pool)
        .await
        .expect("counts");
        assert_eq!((opened, closed), (1, 1), "lot {lot}");
        let published: i64 = world.scalar(&format!("SELECT count(*) FROM outbox WHERE routing_key = 'auction.closed' AND envelope->>'aggregate_id' = '{lot}'")).await;
        assert_eq!(published, 1, "lot {lot}: one auction.closed in the outbox");
    }
    let late: f64 = world
        .scalar("SELECT max(extract(epoch FROM closed_at - ends_at))::float8 FROM lots")
        .await;
    assert!(late < 1.0, "a lot closed {late:.3}s after its end");
    let outcome: serde_json::Value = world
        .scalar(&format!(
            "SELECT outcome FROM lots WHERE lot_id = '{}'",
            lots[11]
        ))
        .await;
    assert_eq!(outcome["outcome"], "sold");
    for engine in engines {
        engine.stop().await;
    }
}
