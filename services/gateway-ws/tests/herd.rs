//! Item 9 of the edge review: a broker reconnect marks every subscription behind at once; the
//! catch-ups of one replica's connections share their calls to `bids`.

mod common;

use common::{Client, world};
use futures_util::future::join_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_herd_catching_up_costs_bids_a_request_per_lot_not_per_connection() {
    let world = world().await;
    let gateway = world.gateway(&[]).await;
    let lot = world.open_lot().await;
    let mut clients = join_all((0..150).map(|_| async {
        let mut client = Client::connect(&gateway.ws).await;
        let sequence = client.subscribe(lot).await;
        (client, sequence)
    }))
    .await;
    let before = world
        .engine
        .metric(
            "gavel_http_requests_total",
            &[r#"route="/lots/{lot_id}/events""#],
        )
        .await;

    // Bids are placed, then every broker connection is cut: the gateway's queue goes, comes
    // back empty, and every subscription is marked behind.
    let bidder = world.bidder().await;
    for (index, amount) in [100u128, 110, 120].into_iter().enumerate() {
        let (status, answer) = world
            .bid(&bidder, lot, &format!("herd-{index}"), amount)
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    gateway.cut_broker_until_caught_up(&world, 150.0).await;
    let last = world.snapshot(lot).await["sequence"]
        .as_i64()
        .expect("sequence");
    join_all(clients.iter_mut().map(|(client, sequence)| async move {
        while *sequence < last {
            let event = client.expect("event").await;
            let next = event["sequence"].as_i64().expect("sequence");
            assert_eq!(next, *sequence + 1, "in order, without gaps");
            *sequence = next;
        }
    }))
    .await;

    let requests = world
        .engine
        .metric(
            "gavel_http_requests_total",
            &[r#"route="/lots/{lot_id}/events""#],
        )
        .await
        - before;
    let catch_ups = gateway.metric("gavel_ws_catch_ups_total").await;
    assert!(
        requests <= 4.0,
        "{catch_ups} catch-ups cost bids {requests} requests for the log"
    );
}
