//! Protocol v1 against the real services: watching, bidding, replay, every kind of bad input.

mod common;

use common::{Client, Incoming, world};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_bids_and_a_bidder_gets_answers() {
    let world = world().await;
    let gateway = world.gateway(&[]).await;
    let lot = world.open_lot().await;
    let bidder = world.bidder().await;

    let mut watcher = Client::connect(&gateway.ws).await;
    let mut snapshot_seq = {
        watcher
            .send(json!({"type": "subscribe", "lot_id": lot}))
            .await;
        let snapshot = watcher.expect("snapshot").await;
        assert_eq!(snapshot["lot"]["status"], "open");
        assert_eq!(snapshot["lot"]["minimum_next"], "100");
        assert!(snapshot["lot"]["server_time"].is_string());
        let subscribed = watcher.expect("subscribed").await;
        assert!(subscribed["watchers"].as_u64().is_some());
        subscribed["sequence"].as_i64().expect("sequence")
    };

    let mut client = Client::connect(&gateway.ws).await;
    // Anonymous bids are refused, with the bid's id.
    client
        .send(json!({"type": "bid", "id": "b-0", "lot_id": lot, "amount": "100"}))
        .await;
    let refused = client.expect("error").await;
    assert_eq!(
        (refused["code"].as_str(), refused["id"].as_str()),
        (Some("unauthorized"), Some("b-0"))
    );

    client
        .send(json!({"type": "auth", "token": "not-a-token"}))
        .await;
    assert_eq!(client.expect("error").await["code"], "unauthorized");
    client
        .send(json!({"type": "auth", "token": bidder.token}))
        .await;
    let authenticated = client.expect("authenticated").await;
    assert_eq!(authenticated["account_id"], json!(bidder.account));

    // Too low: bids' refusal comes back with the minimum.
    client
        .send(json!({"type": "bid", "id": "b-1", "lot_id": lot, "amount": "50"}))
        .await;
    let too_low = client.expect("error").await;
    assert_eq!(too_low["code"], "too_low", "{too_low}");
    assert_eq!(too_low["id"], "b-1");
    assert_eq!(too_low["minimum"], "100");
    assert_eq!(too_low["field"], "amount");

    client
        .send(json!({"type": "bid", "id": "b-2", "lot_id": lot, "amount": "100"}))
        .await;
    let placed = client.until("bid_result", |_| true).await;
    assert_eq!(placed["id"], "b-2");
    assert_eq!(placed["status"], 201);
    assert_eq!(placed["replayed"], false);
    assert_eq!(placed["result"]["result"], "accepted");
    assert_eq!(placed["result"]["leading"], true);
    let sequence = placed["result"]["sequence"].as_i64().expect("sequence");

    let event = watcher.expect("event").await;
    assert_eq!(event["event"], "auction.bid_accepted");
    assert_eq!(event["sequence"].as_i64(), Some(snapshot_seq + 1));
    assert_eq!(event["sequence"].as_i64(), Some(sequence));
    assert_eq!(event["data"]["price"], "100");
    snapshot_seq += 1;

    // The same id again is the same bid: answered again, no second event.
    client
        .send(json!({"type": "bid", "id": "b-2", "lot_id": lot, "amount": "100"}))
        .await;
    let replayed = client.until("bid_result", |_| true).await;
    assert_eq!(replayed["replayed"], true);
    assert_eq!(replayed["result"]["bid_id"], placed["result"]["bid_id"]);

    // A second bid proves nothing arrived in between on the watcher's side.
    client
        .send(json!({"type": "bid", "id": "b-3", "lot_id": lot, "amount": "110"}))
        .await;
    client.until("bid_result", |_| true).await;
    let next = watcher.expect("event").await;
    assert_eq!(next["sequence"].as_i64(), Some(snapshot_seq + 1));
    assert_eq!(next["data"]["price"], "110");

    // Ping carries the server's clock.
    watcher.send(json!({"type": "ping", "id": "p1"})).await;
    let pong = watcher.expect("pong").await;
    assert_eq!(pong["id"], "p1");
    assert!(pong["server_time"].is_string());

    watcher
        .send(json!({"type": "unsubscribe", "lot_id": lot}))
        .await;
    assert_eq!(watcher.expect("unsubscribed").await["lot_id"], json!(lot));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_client_gets_what_it_missed_once() {
    let world = world().await;
    let gateway = world.gateway(&[]).await;
    let lot = world.open_lot().await;
    let bidder = world.bidder().await;

    let mut client = Client::connect(&gateway.ws).await;
    let start = client.subscribe(lot).await;
    drop(client);

    for (index, amount) in [100u128, 110, 120].into_iter().enumerate() {
        let (status, answer) = world.bid(&bidder, lot, &format!("k{index}"), amount).await;
        assert_eq!(status, 201, "{answer}");
    }

    let mut client = Client::connect(&gateway.ws).await;
    client
        .send(json!({"type": "subscribe", "lot_id": lot, "since": start + 1}))
        .await;
    for expected in [start + 2, start + 3] {
        let event = client.expect("event").await;
        assert_eq!(event["sequence"].as_i64(), Some(expected));
    }
    let subscribed = client.expect("subscribed").await;
    assert_eq!(subscribed["sequence"].as_i64(), Some(start + 3));

    // Up to date: nothing replayed, and live events continue after it.
    let mut current = Client::connect(&gateway.ws).await;
    current
        .send(json!({"type": "subscribe", "lot_id": lot, "since": start + 3}))
        .await;
    assert_eq!(
        current.expect("subscribed").await["sequence"].as_i64(),
        Some(start + 3)
    );
    let (status, _) = world.bid(&bidder, lot, "k-live", 130).await;
    assert_eq!(status, 201);
    for client in [&mut client, &mut current] {
        let event = client.expect("event").await;
        assert_eq!(event["sequence"].as_i64(), Some(start + 4));
    }

    // A client claiming a sequence the lot never reached is reset with a snapshot.
    let mut confused = Client::connect(&gateway.ws).await;
    confused
        .send(json!({"type": "subscribe", "lot_id": lot, "since": 1000}))
        .await;
    let snapshot = confused.expect("snapshot").await;
    assert_eq!(snapshot["sequence"].as_i64(), Some(start + 4));
    confused.expect("subscribed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_an_error_or_a_documented_close() {
    let world = world().await;
    let gateway = world
        .gateway(&[
            ("GAVEL_GATEWAY__MAX_SUBSCRIPTIONS", "2"),
            ("GAVEL_GATEWAY__MESSAGES_PER_SECOND", "10"),
        ])
        .await;
    let lot = world.open_lot().await;
    let mut client = Client::connect(&gateway.ws).await;

    let cases = [
        ("not json".to_owned(), "bad_json"),
        (json!({"type": "dance"}).to_string(), "unknown_type"),
        (
            json!({"type": "subscribe", "lot_id": "nope"}).to_string(),
            "invalid",
        ),
        (
            json!({"type": "subscribe", "lot_id": lot, "extra": 1}).to_string(),
            "invalid",
        ),
        (
            json!({"type": "subscribe", "lot_id": uuid::Uuid::now_v7()}).to_string(),
            "lot_not_found",
        ),
    ];
    for (text, code) in cases {
        client.send_raw(Message::text(text.clone())).await;
        let error = client.expect("error").await;
        assert_eq!(error["code"], code, "{text}: {error}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Two subscriptions allowed, the third refused.
    let second = world.open_lot().await;
    let third = world.open_lot().await;
    client.subscribe(lot).await;
    client.subscribe(second).await;
    client
        .send(json!({"type": "subscribe", "lot_id": third}))
        .await;
    let refused = client.expect("error").await;
    assert_eq!(refused["code"], "too_many_subscriptions");
    assert_eq!(refused["lot_id"], json!(third));

    // A client that stops reading is cut off (4008) once a write waits past the timeout; see
    // `backpressure.rs` for one that catches up instead.

    // Another connection is unaffected by everything below.
    let mut bystander = Client::connect(&gateway.ws).await;

    // Oversized frame: 1009.
    let mut big = Client::connect(&gateway.ws).await;
    big.send_raw(Message::text("x".repeat(10_000))).await;
    assert_eq!(big.closed().await, Some(1009));

    // Binary frame: 1003.
    let mut binary = Client::connect(&gateway.ws).await;
    binary.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(binary.closed().await, Some(1003));

    // A flood: 1008, after a burst of twice the rate.
    let mut flood = Client::connect(&gateway.ws).await;
    for index in 0..200 {
        flood
            .send_raw(Message::text(
                json!({"type": "ping", "id": format!("p{index}")}).to_string(),
            ))
            .await;
    }
    let mut pongs = 0;
    let code = loop {
        match flood.recv().await {
            Incoming::Json(message) if message["type"] == "pong" => pongs += 1,
            Incoming::Json(other) => panic!("unexpected {other}"),
            Incoming::Closed(code) => break code,
        }
    };
    assert_eq!(code, Some(1008));
    assert!((15..=25).contains(&pongs), "{pongs} pongs before the close");

    bystander.send(json!({"type": "ping"})).await;
    bystander.expect("pong").await;
}

/// Issue 19: when `bids` is behind, a gateway keeps at most `upstream.max_bids_in_flight` bids
/// waiting on it and turns the next one away at once (`engine_busy`), instead of opening one more
/// connection per waiting bid until the connects time out. Nothing is lost: the waiting bids are
/// answered once `bids` catches up, and the turned-away one succeeds when sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bids_beyond_the_gateways_bound_are_turned_away_at_once_while_bids_is_behind() {
    let world = world().await;
    let gateway = world
        .gateway(&[("GAVEL_UPSTREAM__MAX_BIDS_IN_FLIGHT", "2")])
        .await;
    let lot = world.open_lot().await;
    let mut clients = world.signed_in_clients(&gateway, 3).await;

    // `bids` is behind: the lot's row is locked, so bids for it wait.
    let holder = world.lock_lot(lot).await;
    for (index, client) in clients.iter_mut().take(2).enumerate() {
        let amount = (100 + 10 * index).to_string();
        client
            .send(
                json!({"type": "bid", "id": format!("w-{index}"), "lot_id": lot, "amount": amount}),
            )
            .await;
    }
    // Both wait on bids before the third is sent.
    gavel_test_support::wait_until_async("two bids waiting on bids", common::DEADLINE, || async {
        gateway.metric("gavel_ws_bids_waiting").await >= 2.0
    })
    .await;
    clients[2]
        .send(json!({"type": "bid", "id": "third", "lot_id": lot, "amount": "500"}))
        .await;
    let busy = clients[2].expect("error").await;
    assert_eq!(
        (busy["code"].as_str(), busy["id"].as_str()),
        (Some("engine_busy"), Some("third")),
        "{busy}"
    );

    holder.rollback().await.expect("released");
    // Each waiting bid gets its answer: placed, or too low if the other one went first.
    let mut placed = 0;
    for client in clients.iter_mut().take(2) {
        let answer = loop {
            match client.recv().await {
                Incoming::Json(value)
                    if value["type"] == "bid_result" || value["type"] == "error" =>
                {
                    break value;
                }
                Incoming::Json(_) => {}
                Incoming::Closed(code) => panic!("closed ({code:?}) before the answer"),
            }
        };
        if answer["type"] == "bid_result" {
            assert_eq!(answer["status"], 201, "{answer}");
            placed += 1;
        } else {
            assert_eq!(answer["code"], "too_low", "{answer}");
        }
    }
    assert!(placed >= 1);
    clients[2]
        .send(json!({"type": "bid", "id": "third", "lot_id": lot, "amount": "500"}))
        .await;
    let answer = clients[2].until("bid_result", |_| true).await;
    assert_eq!(
        (answer["status"].as_u64(), answer["replayed"].as_bool()),
        (Some(201), Some(false)),
        "{answer}"
    );
    assert_eq!(gateway.metric("gavel_ws_bids_engine_busy_total").await, 1.0);
    assert_eq!(gateway.metric("gavel_ws_bids_waiting").await, 0.0);
}

/// A hot lot whose bids queue in `bids` takes at most `upstream.max_bids_in_flight_per_lot` of
/// the gateway's slots: a bid for another lot still goes through at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lot_queueing_in_bids_cannot_take_the_slots_of_other_lots() {
    let world = world().await;
    let gateway = world
        .gateway(&[
            ("GAVEL_UPSTREAM__MAX_BIDS_IN_FLIGHT", "10"),
            ("GAVEL_UPSTREAM__MAX_BIDS_IN_FLIGHT_PER_LOT", "2"),
        ])
        .await;
    let hot = world.open_lot().await;
    // A lot sharing the hot lot's writer (one lane in 1,024) would rightly wait behind it.
    let mut calm = world.open_lot().await;
    while gavel_bids::writer::lane_of(calm) == gavel_bids::writer::lane_of(hot) {
        calm = world.open_lot().await;
    }
    let mut clients = world.signed_in_clients(&gateway, 4).await;
    let holder = world.lock_lot(hot).await;
    for (index, client) in clients.iter_mut().take(2).enumerate() {
        client
            .send(json!({"type": "bid", "id": format!("hot-{index}"), "lot_id": hot, "amount": (100 + 10 * index).to_string()}))
            .await;
    }
    gavel_test_support::wait_until_async(
        "two bids waiting on the hot lot",
        common::DEADLINE,
        || async { gateway.metric("gavel_ws_bids_waiting").await >= 2.0 },
    )
    .await;
    clients[2]
        .send(json!({"type": "bid", "id": "hot-2", "lot_id": hot, "amount": "500"}))
        .await;
    assert_eq!(clients[2].expect("error").await["code"], "engine_busy");
    // The calm lot is answered while the hot one is still stuck.
    clients[3]
        .send(json!({"type": "bid", "id": "calm", "lot_id": calm, "amount": "100"}))
        .await;
    let answer = clients[3].until("bid_result", |_| true).await;
    assert_eq!(answer["status"], 201, "{answer}");
    holder.rollback().await.expect("released");
}
