//! Bidding throughput and latency through the real HTTP API, with holds in a real `wallets`:
//! one hot lot (every bid serialised on its lock) and 1,000 lots (bids in parallel).
//!
//! Run: `cargo bench -p gavel-bids --bench bidding` (needs `bash .ci/stack`). Prints a table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use gavel_types::{AccountId, LotId};

const CONCURRENCY: usize = 32;

fn report(
    label: &str,
    total: usize,
    accepted: usize,
    elapsed: Duration,
    mut latencies: Vec<Duration>,
) {
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1e3
    };
    println!(
        "{label:<40} {total:>6} bids  {accepted:>6} accepted  {:>7.0} accepted/s  {:>7.0} answered/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
        accepted as f64 / elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
    );
}

#[tokio::main]
async fn main() {
    let world = common::world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let mut bidders = Vec::new();
    for _ in 0..50 {
        bidders.push(world.bidder("1000000000000000000000").await);
    }
    println!("bids over HTTP with holds in wallets, {CONCURRENCY} concurrent clients");

    // One hot lot: bids climb in issue order; racing ones that land late are refused `too_low`,
    // which still took the lot's lock and counts as answered.
    let lot = world
        .create_lot(&engine, common::rules(), AccountId::new())
        .await;
    let keys: Vec<String> = (0..2000).map(|i| format!("hot-{i}")).collect();
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = stream::iter(keys.iter().enumerate())
        .map(|(i, key)| {
            let (world, engine, bidder) = (&world, &engine, &bidders[i % 50]);
            async move {
                let begun = Instant::now();
                let (status, body, _) = world
                    .bid(engine, bidder, lot, key, 100 + 10 * i as u128, None)
                    .await;
                assert!(
                    status == 201 || body["result"] == "too_low",
                    "{status} {body}"
                );
                (begun.elapsed(), status == 201)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let accepted = results.iter().filter(|(_, ok)| *ok).count();
    report(
        "one hot lot",
        results.len(),
        accepted,
        started.elapsed(),
        results.into_iter().map(|(d, _)| d).collect(),
    );

    // 1,000 lots, three bids each from different bidders, spread so that lots proceed in parallel.
    let mut lots: Vec<LotId> = Vec::new();
    for _ in 0..1000 {
        lots.push(
            world
                .create_lot_quietly(common::rules(), AccountId::new())
                .await,
        );
    }
    world.wait_for_lots(&engine, &lots).await;
    let plan: Vec<(LotId, usize, u128, String)> = (0..3)
        .flat_map(|round| {
            lots.iter().enumerate().map(move |(i, lot)| {
                (
                    *lot,
                    (i + round) % 50,
                    100 + 10 * round as u128,
                    format!("spread-{round}-{i}"),
                )
            })
        })
        .collect();
    let started = Instant::now();
    let results: Vec<(Duration, bool)> = stream::iter(plan.iter())
        .map(|(lot, bidder, amount, key)| {
            let (world, engine, bidder) = (&world, &engine, &bidders[*bidder]);
            async move {
                let begun = Instant::now();
                let (status, body, _) = world.bid(engine, bidder, *lot, key, *amount, None).await;
                assert!(
                    status == 201 || body["result"] == "too_low",
                    "{status} {body}"
                );
                (begun.elapsed(), status == 201)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let accepted = results.iter().filter(|(_, ok)| *ok).count();
    report(
        "1,000 lots, 3 bids each",
        results.len(),
        accepted,
        started.elapsed(),
        results.into_iter().map(|(d, _)| d).collect(),
    );
    engine.stop().await;
}
