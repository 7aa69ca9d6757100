//! Hold throughput and latency: one hot wallet (every operation serialised on its lock) and
//! 10,000 wallets (operations in parallel), through the real HTTP API, PostgreSQL and a dev chain.
//!
//! Run: `cargo bench -p gavel-wallets --bench holds` (needs `bash .ci/stack`). Prints a table.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use gavel_types::{BidId, LotId};
use serde_json::json;

const CONCURRENCY: usize = 32;

struct Run {
    label: &'static str,
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn print(&mut self) {
        self.latencies.sort();
        let at = |q: f64| {
            self.latencies
                [((self.latencies.len() as f64 * q) as usize).min(self.latencies.len() - 1)]
        };
        println!(
            "{:<34} {:>7} ops {:>9.0} ops/s   p50 {:>6.2} ms   p99 {:>6.2} ms",
            self.label,
            self.ops,
            self.ops as f64 / self.elapsed.as_secs_f64(),
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
        );
    }
}

async fn drive(
    app: &common::TestApp,
    label: &'static str,
    requests: Vec<(String, serde_json::Value)>,
) -> Run {
    let ops = requests.len();
    let started = Instant::now();
    let latencies: Vec<Duration> = stream::iter(requests)
        .map(|(key, body)| async move {
            let begun = Instant::now();
            let (status, answer, _) = app.hold("place", &key, body).await;
            // Concurrent raises may arrive out of order; a lower one is refused, which still
            // went through the whole serialised check.
            assert!(
                status == 200 || answer["code"] == "hold_would_decrease",
                "{answer}"
            );
            begun.elapsed()
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    Run {
        label,
        ops,
        elapsed: started.elapsed(),
        latencies,
    }
}

#[tokio::main]
async fn main() {
    let options = common::Options {
        balance_cache_ttl: Duration::from_secs(2),
        ..common::Options::default()
    };
    let app = common::spawn_with(options).await;
    println!("wallets hold placement over HTTP, {CONCURRENCY} concurrent clients");

    let hot = common::funded_wallet(&app.chain, &"1".repeat(30))
        .await
        .address()
        .to_checksum(None);
    // Raises across the 50 lots a busy bidder might lead at once: every operation takes the same
    // wallet lock, so this measures the serialised path.
    let lots: Vec<LotId> = (0..50).map(|_| LotId::new()).collect();
    let requests = (0..3000)
        .map(|i| {
            let amount = (1000 + i).to_string();
            let body = json!({"wallet": hot, "lot_id": lots[i % 50], "amount": amount, "bid_id": BidId::new()});
            (format!("hot-{i}"), body)
        })
        .collect();
    drive(&app, "one hot wallet, 3000 raises on 50 lots", requests)
        .await
        .print();

    let mut wallets = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        let signer = alloy::signers::local::PrivateKeySigner::random();
        wallets.push(signer.address().to_checksum(None));
    }
    stream::iter(&wallets)
        .for_each_concurrent(CONCURRENCY, |wallet| {
            app.chain.set_balance(wallet, "1000000000000000000")
        })
        .await;
    let requests = wallets
        .iter()
        .enumerate()
        .map(|(i, wallet)| (format!("spread-{i}"), json!({"wallet": wallet, "lot_id": LotId::new(), "amount": "1000", "bid_id": BidId::new()})))
        .collect();
    drive(&app, "10,000 wallets, one hold each", requests)
        .await
        .print();
    app.stop().await;
}
