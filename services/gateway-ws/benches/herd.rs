//! The herd: N subscribers (default 10,000) on a few lots of a real `gateway-ws`, all marked
//! behind at once by a broker reconnect while bids go on. Prints how many requests `bids`
//! received to catch them up, and how long until every subscriber had every event.
//!
//! `cargo bench -p gavel-gateway-ws --bench herd` (env `SUBSCRIBERS`, `LOTS`, `BIDS`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let subscribers = env_or("SUBSCRIBERS", 10_000);
    let lot_count = env_or("LOTS", 10);
    let bids = env_or("BIDS", 20);
    let world = common::world().await;
    let gateway = world
        .gateway(&[
            ("GAVEL_GATEWAY__PRESENCE_INTERVAL", "5s"),
            ("GAVEL_EDGE__CONNECTIONS_PER_MINUTE", "1000000"),
            ("GAVEL_EDGE__ANONYMOUS_SUBSCRIPTIONS", "1000000"),
        ])
        .await;
    let mut lots = Vec::new();
    for _ in 0..lot_count {
        lots.push(world.open_lot().await);
    }
    let address = gateway.address();
    let gate = Arc::new(Semaphore::new(256));
    let mut connecting = Vec::with_capacity(subscribers);
    for index in 0..subscribers {
        let gate = gate.clone();
        let (address, url) = (address.clone(), gateway.ws.clone());
        let lot = lots[index % lots.len()];
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("open");
            let stream = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connects");
            let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
                .await
                .expect("handshake");
            ws.send(Message::text(
                json!({"type": "subscribe", "lot_id": lot}).to_string(),
            ))
            .await
            .expect("sent");
            let last = loop {
                let frame = ws.next().await.expect("open").expect("frame");
                let Message::Text(text) = frame else { continue };
                let message: Value = serde_json::from_str(text.as_str()).expect("json");
                if message["type"] == "subscribed" {
                    break message["sequence"].as_i64().expect("sequence");
                }
            };
            (ws, lot, last)
        }));
    }
    let mut sockets = Vec::with_capacity(subscribers);
    for task in connecting {
        sockets.push(task.await.expect("joined"));
    }
    println!(
        "gateway-ws herd: {subscribers} subscribers on {lot_count} lots, {bids} bids each, then a broker reconnect marks them all behind"
    );

    let events_route = r#"route="/lots/{lot_id}/events""#;
    let snapshot_route = r#"route="/lots/{lot_id}""#;
    let events_before = world
        .engine
        .metric("gavel_http_requests_total", &[events_route])
        .await;
    let snapshots_before = world
        .engine
        .metric("gavel_http_requests_total", &[snapshot_route])
        .await;
    let catch_ups_before = gateway.metric("gavel_ws_catch_ups_total").await;

    // Bids go on, and every broker connection of the vhost is cut (until the gateway's is too):
    // every subscription is marked behind at once.
    let outage = Instant::now();
    let bidders = [world.bidder().await, world.bidder().await];
    for index in 0..bids {
        for (lot_index, lot) in lots.iter().enumerate() {
            let (status, answer) = world
                .bid(
                    &bidders[(index + lot_index) % 2],
                    *lot,
                    &format!("herd-{lot_index}-{index}"),
                    100 + 10 * index as u128,
                )
                .await;
            assert_eq!(status, 201, "{answer}");
        }
    }
    let mut finals = std::collections::HashMap::new();
    for lot in &lots {
        finals.insert(
            *lot,
            world.snapshot(*lot).await["sequence"]
                .as_i64()
                .expect("sequence"),
        );
    }
    let finals = Arc::new(finals);
    gateway
        .cut_broker_until_caught_up(&world, subscribers as f64)
        .await;
    let mut readers = Vec::with_capacity(subscribers);
    for (mut ws, lot, mut last) in sockets {
        let finals = finals.clone();
        readers.push(tokio::spawn(async move {
            let target = finals[&lot];
            while last < target {
                let frame = tokio::time::timeout(Duration::from_secs(120), ws.next())
                    .await
                    .expect("caught up within two minutes")
                    .expect("open")
                    .expect("frame");
                let Message::Text(text) = frame else { continue };
                let message: Value = serde_json::from_str(text.as_str()).expect("json");
                if message["type"] == "event" {
                    let sequence = message["sequence"].as_i64().expect("sequence");
                    assert_eq!(sequence, last + 1, "in order, without gaps");
                    last = sequence;
                }
            }
            Instant::now()
        }));
    }
    let mut all_caught_up = outage;
    for reader in readers {
        all_caught_up = all_caught_up.max(reader.await.expect("every event arrives"));
    }
    let events = world
        .engine
        .metric("gavel_http_requests_total", &[events_route])
        .await
        - events_before;
    let snapshots = world
        .engine
        .metric("gavel_http_requests_total", &[snapshot_route])
        .await
        - snapshots_before;
    let catch_ups = gateway.metric("gavel_ws_catch_ups_total").await - catch_ups_before;
    println!(
        "  catch-ups by connections: {catch_ups}; requests bids received: {events} for events, {snapshots} for snapshots"
    );
    println!(
        "  from the first bid to every subscriber having every event: {:.2}s",
        all_caught_up.duration_since(outage).as_secs_f64()
    );
}
