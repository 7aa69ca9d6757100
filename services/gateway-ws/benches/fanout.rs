//! Load generator: N subscribers (default 10,000) on one hot lot of a real `gateway-ws` process
//! with real `bids` and `wallets` behind it. Prints the gateway's memory per idle connection,
//! deliveries per second, and the latency from a bid's acceptance (its event's `occurred_at`,
//! stamped by bids in the committing transaction) to its arrival at each subscriber.
//!
//! `cargo bench -p gavel-gateway-ws --bench fanout` (env `SUBSCRIBERS`, `BIDS`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};
use tokio_tungstenite::tungstenite::Message;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let subscribers = env_or("SUBSCRIBERS", 10_000);
    let bids = env_or("BIDS", 100);
    let world = common::world().await;
    let gateway = world
        .gateway(&[
            ("GAVEL_GATEWAY__PRESENCE_INTERVAL", "2s"),
            ("GAVEL_EDGE__CONNECTIONS_PER_MINUTE", "1000000"),
            ("GAVEL_EDGE__ANONYMOUS_SUBSCRIPTIONS", "1000000"),
        ])
        .await;
    let lot = world.open_lot().await;
    let address = gateway
        .ws
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .expect("host:port")
        .to_owned();

    // Connect everyone (idle, nothing subscribed), then read the gateway's memory.
    let baseline = gateway.rss_bytes();
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(256));
    let mut connecting = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let gate = gate.clone();
        let (address, url) = (address.clone(), gateway.ws.clone());
        connecting.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("open");
            let stream = tokio::net::TcpStream::connect(&address)
                .await
                .expect("connects");
            let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
                .await
                .expect("handshake");
            let welcome = ws.next().await.expect("welcome").expect("frame");
            assert!(welcome.to_text().expect("text").contains("welcome"));
            ws
        }));
    }
    let mut sockets = Vec::with_capacity(subscribers);
    for task in connecting {
        sockets.push(task.await.expect("joined"));
    }
    let connect_time = started.elapsed();
    // Let the allocator settle before reading.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = gateway.rss_bytes();
    let per_idle = (idle.saturating_sub(baseline)) as f64 / subscribers as f64;

    // Subscribe everyone to the hot lot.
    let subscribed_at = Instant::now();
    let mut subscribing = Vec::with_capacity(subscribers);
    for mut ws in sockets {
        let gate = gate.clone();
        subscribing.push(tokio::spawn(async move {
            let _permit = gate.acquire().await.expect("open");
            ws.send(Message::text(
                json!({"type": "subscribe", "lot_id": lot}).to_string(),
            ))
            .await
            .expect("sent");
            loop {
                let frame = ws.next().await.expect("open").expect("frame");
                if let Message::Text(text) = frame
                    && text.as_str().contains("\"subscribed\"")
                {
                    break;
                }
            }
            ws
        }));
    }
    let mut sockets = Vec::with_capacity(subscribers);
    for task in subscribing {
        sockets.push(task.await.expect("joined"));
    }
    let subscribe_time = subscribed_at.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let watching = gateway.rss_bytes();
    let per_subscribed = (watching.saturating_sub(baseline)) as f64 / subscribers as f64;

    // Each subscriber records the latency of every event until the last one.
    let start_seq = world.snapshot(lot).await["sequence"]
        .as_i64()
        .expect("sequence");
    let last_seq = start_seq + bids as i64;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(subscribers * bids)));
    let mut readers = Vec::with_capacity(subscribers);
    for mut ws in sockets {
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(bids);
            let mut last = start_seq;
            while last < last_seq {
                let frame = ws.next().await.expect("open").expect("frame");
                let Message::Text(text) = frame else { continue };
                let received = Utc::now();
                let message: Value = serde_json::from_str(text.as_str()).expect("json");
                if message["type"] != "event" {
                    continue;
                }
                let sequence = message["sequence"].as_i64().expect("sequence");
                assert_eq!(sequence, last + 1, "in order, without gaps");
                last = sequence;
                let occurred: DateTime<Utc> =
                    serde_json::from_value(message["occurred_at"].clone()).expect("a time");
                mine.push((received - occurred).as_seconds_f64() * 1000.0);
            }
            latencies.lock().await.extend(mine);
            Instant::now()
        }));
    }

    let bidders = [world.bidder().await, world.bidder().await];
    let first_bid = Instant::now();
    for index in 0..bids {
        let (status, answer) = world
            .bid(
                &bidders[index % 2],
                lot,
                &format!("bench-{index}"),
                100 + 10 * index as u128,
            )
            .await;
        assert_eq!(status, 201, "{answer}");
    }
    let bidding_time = first_bid.elapsed();
    let mut last_delivery = first_bid;
    for reader in readers {
        last_delivery = last_delivery.max(reader.await.expect("every event arrives"));
    }
    let delivering = last_delivery.duration_since(first_bid).as_secs_f64();
    let mut latencies = Arc::try_unwrap(latencies)
        .expect("readers done")
        .into_inner();
    latencies.sort_by(f64::total_cmp);
    let deliveries = latencies.len();

    println!("gateway-ws fan-out: {subscribers} subscribers on one lot, {bids} bids");
    println!(
        "  connect {subscribers}: {:.1}s; subscribe (snapshot from bids each): {:.1}s",
        connect_time.as_secs_f64(),
        subscribe_time.as_secs_f64()
    );
    println!(
        "  gateway RSS: {:.1} MiB before, {:.1} MiB with {subscribers} idle connections, {:.1} MiB subscribed",
        baseline as f64 / 1048576.0,
        idle as f64 / 1048576.0,
        watching as f64 / 1048576.0
    );
    println!(
        "  memory per idle connection: {:.2} KiB; per subscribed idle connection: {:.2} KiB",
        per_idle / 1024.0,
        per_subscribed / 1024.0
    );
    println!(
        "  bids placed in {:.1}s ({:.0}/s); {deliveries} deliveries in {delivering:.1}s = {:.0} deliveries/s",
        bidding_time.as_secs_f64(),
        bids as f64 / bidding_time.as_secs_f64(),
        deliveries as f64 / delivering
    );
    println!(
        "  accepted → delivered: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  gateway metrics: behind {} catch-ups {}",
        gateway.metric("gavel_ws_events_behind_total").await,
        gateway.metric("gavel_ws_catch_ups_total").await
    );
}
