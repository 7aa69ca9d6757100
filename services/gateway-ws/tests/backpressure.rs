//! A client that stops reading falls behind alone: the others get every event at once, and it
//! gets the ones it missed from the log when it reads again.

mod common;

use common::{Client, DEADLINE, Incoming, world};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_does_not_delay_a_fast_one() {
    let world = world().await;
    let gateway = world
        .gateway(&[
            ("GAVEL_GATEWAY__QUEUE", "4"),
            ("GAVEL_GATEWAY__WRITE_TIMEOUT", "120s"),
            ("GAVEL_GATEWAY__SOCKET_SEND_BUFFER", "4096"),
        ])
        .await;
    let lot = world.open_lot().await;
    let bidders = [world.bidder().await, world.bidder().await];

    let mut slow = Client::connect_tiny(&gateway.ws).await;
    let start = slow.subscribe(lot).await;
    let mut fast = Client::connect(&gateway.ws).await;
    assert_eq!(fast.subscribe(lot).await, start);

    // The slow client reads nothing now. Each bid waits for the fast client's event: were the
    // fan-out waiting on the slow one, this would stall and miss the deadline.
    let bids = 150;
    for index in 0..bids {
        let (status, answer) = world
            .bid(
                &bidders[index % 2],
                lot,
                &format!("b{index}"),
                100 + 10 * index as u128,
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        let event = fast.expect("event").await;
        assert_eq!(event["sequence"].as_i64(), Some(start + 1 + index as i64));
    }
    assert!(
        gateway.metric("gavel_ws_events_behind_total").await > 0.0,
        "the slow client never fell behind; the test proves nothing"
    );

    // Reading again, it gets everything, in order, once.
    let mut seen = Vec::new();
    while seen.last().copied() != Some(start + bids as i64) {
        match slow.recv().await {
            Incoming::Json(message) if message["type"] == "event" => {
                seen.push(message["sequence"].as_i64().expect("sequence"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<i64> = (start + 1..=start + bids as i64).collect();
    assert_eq!(seen, expected);
    assert!(gateway.metric("gavel_ws_catch_ups_total").await > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_the_rest_go_on() {
    let world = world().await;
    let gateway = world
        .gateway(&[
            ("GAVEL_GATEWAY__QUEUE", "4"),
            ("GAVEL_GATEWAY__WRITE_TIMEOUT", "300ms"),
            ("GAVEL_GATEWAY__SOCKET_SEND_BUFFER", "4096"),
        ])
        .await;
    let lot = world.open_lot().await;
    let bidders = [world.bidder().await, world.bidder().await];

    let mut stalled = Client::connect_tiny(&gateway.ws).await;
    let start = stalled.subscribe(lot).await;
    let mut fast = Client::connect(&gateway.ws).await;
    fast.subscribe(lot).await;

    let mut index = 0;
    while gateway
        .metric(r#"gavel_ws_closes_total{reason="too_slow""#)
        .await
        < 1.0
    {
        assert!(index < 2000, "the stalled client was never cut off");
        let (status, answer) = world
            .bid(
                &bidders[index % 2],
                lot,
                &format!("c{index}"),
                100 + 10 * index as u128,
            )
            .await;
        assert_eq!(status, 201, "{answer}");
        let event = fast.expect("event").await;
        assert_eq!(event["sequence"].as_i64(), Some(start + 1 + index as i64));
        index += 1;
    }
    // The connection is gone: what was buffered drains, then the stream ends.
    loop {
        if let Incoming::Closed(_) = stalled.recv().await {
            break;
        }
    }
    gavel_test_support::wait_until_async("only the fast client left", DEADLINE, || async {
        gateway.metric("gavel_ws_connections").await == 1.0
    })
    .await;
}
