//! More than one replica: fan-out through RabbitMQ, presence through Redis, and a rolling
//! restart under a stream of bids that loses and repeats nothing.

mod common;

use common::{Client, DEADLINE, Incoming, world};
use gavel_types::LotId;
use serde_json::json;
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bid_through_one_replica_reaches_a_watcher_on_the_other() {
    let world = world().await;
    let (a, b) = (world.gateway(&[]).await, world.gateway(&[]).await);
    let lot = world.open_lot().await;
    let bidder = world.bidder().await;

    let mut watcher = Client::connect(&b.ws).await;
    let start = watcher.subscribe(lot).await;
    let mut bidding = Client::connect(&a.ws).await;
    bidding.subscribe(lot).await;
    bidding
        .send(json!({"type": "auth", "token": bidder.token}))
        .await;
    bidding.expect("authenticated").await;
    bidding
        .send(json!({"type": "bid", "id": "across", "lot_id": lot, "amount": "100"}))
        .await;
    let result = bidding.until("bid_result", |_| true).await;
    assert_eq!(result["status"], 201, "{result}");

    let event = watcher.expect("event").await;
    assert_eq!(event["sequence"].as_i64(), Some(start + 1));
    assert_eq!(event["data"]["bidder"], json!(bidder.account));

    // Presence counts both replicas' watchers, on both replicas.
    for client in [&mut watcher, &mut bidding] {
        client.wait_watchers(2).await;
    }
}

/// Follows `lot` until `last` says the stream has ended, reconnecting to `fallback` when its
/// replica goes away; returns every sequence received, in order, and the close codes seen.
async fn follow(
    first: String,
    fallback: String,
    lot: LotId,
    start: i64,
    mut last: watch::Receiver<Option<i64>>,
) -> (Vec<i64>, Vec<Option<u16>>) {
    let mut seen = Vec::new();
    let mut closes = Vec::new();
    let mut client = Client::connect(&first).await;
    client
        .send(json!({"type": "subscribe", "lot_id": lot, "since": start}))
        .await;
    let mut current = start;
    loop {
        if last.borrow().is_some_and(|final_seq| current >= final_seq) {
            return (seen, closes);
        }
        let message = tokio::select! {
            message = client.recv() => message,
            _ = last.changed() => continue,
        };
        match message {
            Incoming::Json(message) if message["type"] == "event" => {
                current = message["sequence"].as_i64().expect("a sequence");
                seen.push(current);
            }
            Incoming::Json(message) if message["type"] == "subscribed" => {}
            Incoming::Json(other) => panic!("unexpected {other}"),
            Incoming::Closed(code) => {
                closes.push(code);
                client = Client::connect(&fallback).await;
                client
                    .send(json!({"type": "subscribe", "lot_id": lot, "since": current}))
                    .await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_mid_stream_loses_and_repeats_nothing() {
    let world = world().await;
    let (a, b) = (world.gateway(&[]).await, world.gateway(&[]).await);
    let lot = world.open_lot().await;
    let start = world.snapshot(lot).await["sequence"]
        .as_i64()
        .expect("sequence");
    let (done, last) = watch::channel(None);

    let mut followers = Vec::new();
    for index in 0..8 {
        let (first, fallback) = if index % 2 == 0 {
            (a.ws.clone(), b.ws.clone())
        } else {
            (b.ws.clone(), b.ws.clone())
        };
        followers.push(tokio::spawn(follow(
            first,
            fallback,
            lot,
            start,
            last.clone(),
        )));
    }
    // Every follower is subscribed once both replicas count all eight.
    let mut probe = Client::connect(&b.ws).await;
    probe.subscribe(lot).await;
    probe.wait_watchers(9).await;

    let bidders = [world.bidder().await, world.bidder().await];
    let bids = 40;
    let mut a = Some(a);
    let mut stopping = None;
    for index in 0..bids {
        let amount = 100 + 10 * index as u128;
        let (status, answer) = world
            .bid(&bidders[index % 2], lot, &format!("s{index}"), amount)
            .await;
        assert_eq!(status, 201, "{answer}");
        if index == 10 {
            let gateway = a.take().expect("once");
            stopping = Some(tokio::spawn(gateway.terminate()));
        }
    }
    let final_seq = start + bids as i64;
    done.send(Some(final_seq)).expect("followers listen");
    stopping
        .expect("stopped")
        .await
        .expect("the replica exits cleanly");

    let expected: Vec<i64> = (start + 1..=final_seq).collect();
    let mut going_away = 0;
    for follower in followers {
        let (seen, closes) = tokio::time::timeout(DEADLINE, follower)
            .await
            .expect("the follower finishes")
            .expect("joined");
        assert_eq!(seen, expected, "closes: {closes:?}");
        going_away += closes.iter().filter(|code| **code == Some(1001)).count();
    }
    assert_eq!(
        going_away, 4,
        "each client of the stopped replica was told to go away"
    );
}
