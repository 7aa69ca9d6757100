//! An engine killed between placing the hold and recording the bid leaves no hold behind: the
//! next engine's repair finds the bid was never recorded and has `wallets` release the hold, and
//! the bidder's retry after the restart goes through normally.

mod common;

use std::time::Duration;

use common::{DEADLINE, rules, world};
use gavel_test_support::wait_until_async;
use gavel_types::AccountId;

#[tokio::test]
async fn an_engine_killed_between_hold_and_record_leaves_no_orphan_hold() {
    let world = world(Duration::from_millis(500)).await;
    let doomed = world.stalling_engine().await;
    let lot = world.create_lot(&doomed.0, rules(), AccountId::new()).await;
    let bidder = world.bidder("1000000").await;

    world
        .bid_and_crash_after_hold(doomed, &bidder, lot, "the-bid", 300)
        .await;
    let holds = world.holds(lot).await;
    assert_eq!(holds.len(), 1, "the hold was placed: {holds:?}");
    assert_eq!(holds[0].1, "active");

    // The restarted engine's repair releases the orphan once its grace has passed; nothing was
    // recorded.
    let restarted = world.engine().await;
    wait_until_async("the orphan hold to be released", DEADLINE, || async {
        world
            .holds(lot)
            .await
            .iter()
            .all(|(_, status, _)| status == "released")
    })
    .await;
    assert_eq!(world.scalar::<i64>("SELECT count(*) FROM bids").await, 0);

    // The bidder retries with the same key: a fresh hold, a recorded bid.
    let (status, body, _) = world
        .bid(&restarted, &bidder, lot, "the-bid", 300, None)
        .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (201, Some("accepted")),
        "{body}"
    );
    let holds = world.holds(lot).await;
    assert_eq!(
        holds
            .iter()
            .map(|(_, status, amount)| (status.as_str(), amount.as_str()))
            .collect::<Vec<_>>(),
        [("active", "300")]
    );
    restarted.stop().await;
}
