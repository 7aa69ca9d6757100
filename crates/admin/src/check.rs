//! `gavel-admin check`: the invariant checker of the fault-injection suite (docs/reliability.md).
//! After a run under load, it compares what the clients were told (`gavel-load --acks`) with the
//! databases and the chain, and counts every way money or events went wrong. Checks that can lag
//! behind (events still on their way, holds being repaired, lots about to close) are retried
//! until they hold or `settle` passes; the others are read once.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gavel_bids::operator;
use gavel_common::config::{SecretUrl, ServiceConfig};
use gavel_common::db::DatabaseConfig;
use serde::Deserialize;
use sqlx::PgPool;

/// Refusals that guarantee the bid was not recorded: the engine's rules and money checks, and
/// the gateway's own refusals before a bid reaches `bids`. Any other code (the gateway lost its
/// answer, an internal error, a rate limit or key reuse that may hide an earlier recorded
/// attempt) leaves the outcome unknown to the client, so it is not judged.
const DECIDED: [&str; 9] = [
    "too_low",
    "closed",
    "not_open",
    "own_lot",
    "insufficient_funds",
    "wallet_not_linked",
    "engine_busy",
    "too_many_bids",
    "invalid",
];

#[derive(Debug, Deserialize)]
struct Settings {
    database: DatabaseConfig,
    wallets_database: DatabaseConfig,
    lots_database: DatabaseConfig,
    chain: Chain,
}

#[derive(Debug, Deserialize)]
struct Chain {
    rpc_url: SecretUrl,
}

impl ServiceConfig for Settings {}

#[derive(Debug, Deserialize)]
struct Ack {
    key: String,
    lot: uuid::Uuid,
    outcome: String,
    #[serde(default)]
    sequence: Option<i64>,
}

/// The counts the suite requires to be zero, in the order they are printed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// Bids a client was told were accepted that are not recorded at that sequence.
    pub lost: u64,
    /// Bids a client was told were refused that are recorded anyway.
    pub phantom: u64,
    /// Lots whose event log has a gap or a repeat.
    pub gaps: u64,
    /// Lots closed more than once.
    pub double_closes: u64,
    /// Open lots past their end.
    pub unclosed: u64,
    /// Wallets whose active and captured holds exceed their balance on chain.
    pub over_committed: u64,
    /// Differences between `bids`' leaders and `wallets`' holds (`gavel-admin reconcile`).
    pub holds: u64,
    /// Events still in an outbox, or published but not handled by a consumer.
    pub undelivered: u64,
}

impl Findings {
    fn clean(&self) -> bool {
        *self == Self::default()
    }
}

pub async fn run(acks: &Path, settle: Duration) -> anyhow::Result<bool> {
    let settings: Settings = gavel_common::config::load().context(
        "reading GAVEL_DATABASE__URL (bids), GAVEL_WALLETS_DATABASE__URL, GAVEL_LOTS_DATABASE__URL \
         and GAVEL_CHAIN__RPC_URL",
    )?;
    let bids = settings.database.pool().context("bids' database")?;
    let wallets = settings
        .wallets_database
        .pool()
        .context("wallets' database")?;
    let lots = settings.lots_database.pool().context("lots' database")?;
    let text =
        std::fs::read_to_string(acks).with_context(|| format!("reading {}", acks.display()))?;
    let acks: Vec<Ack> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not gavel-load's --acks output", acks.display()))?;
    let rpc = settings.chain.rpc_url.expose().to_string();

    let deadline = Instant::now() + settle;
    let started = Instant::now();
    let (findings, judged) = loop {
        let (findings, judged) = check(&bids, &wallets, &lots, &rpc, &acks).await?;
        if findings.clean() || Instant::now() >= deadline {
            break (findings, judged);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "{} answers ({} accepted, {} refused for certain, {} of unknown outcome); settled in {:.1} s",
        acks.len(),
        judged.accepted,
        judged.refused,
        judged.unknown,
        started.elapsed().as_secs_f64()
    );
    let rows = [
        ("accepted bids lost", findings.lost),
        ("refused bids recorded", findings.phantom),
        ("lots with a gap or repeat in their log", findings.gaps),
        ("lots closed more than once", findings.double_closes),
        ("open lots past their end", findings.unclosed),
        ("wallets over-committed", findings.over_committed),
        ("hold differences (reconcile)", findings.holds),
        (
            "events not delivered to every consumer",
            findings.undelivered,
        ),
    ];
    println!("| invariant | violations |\n|---|---|");
    for (what, count) in rows {
        println!("| {what} | {count} |");
    }
    if judged.accepted == 0 {
        println!("no answer says a bid was accepted: the run proved nothing");
        return Ok(false);
    }
    Ok(findings.clean())
}

/// A request's bid as recorded: its lot and sequence, when there is one.
type Stored = (Option<uuid::Uuid>, Option<i64>);

#[derive(Debug, Default)]
struct Judged {
    accepted: u64,
    refused: u64,
    unknown: u64,
}

async fn check(
    bids: &PgPool,
    wallets: &PgPool,
    lots: &PgPool,
    rpc: &str,
    acks: &[Ack],
) -> anyhow::Result<(Findings, Judged)> {
    let mut findings = Findings::default();
    let mut judged = Judged::default();

    let keys: Vec<&str> = acks.iter().map(|ack| ack.key.as_str()).collect();
    let recorded: Vec<(String, Option<uuid::Uuid>, Option<i64>)> = sqlx::query_as(
        "SELECT r.idempotency_key, b.lot_id, b.seq FROM bid_requests r
         LEFT JOIN bids b ON b.bid_id = r.bid_id WHERE r.idempotency_key = ANY($1)",
    )
    .bind(&keys)
    .fetch_all(bids)
    .await
    .context("reading bid requests")?;
    let mut by_key: HashMap<&str, Vec<Stored>> = HashMap::new();
    for (key, lot, seq) in &recorded {
        by_key.entry(key.as_str()).or_default().push((*lot, *seq));
    }
    for ack in acks {
        let rows = by_key
            .get(ack.key.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let stored: Vec<_> = rows.iter().filter(|(_, seq)| seq.is_some()).collect();
        if ack.outcome == "accepted" {
            judged.accepted += 1;
            let exact = stored.len() == 1
                && stored[0].0 == Some(ack.lot)
                && ack
                    .sequence
                    .is_none_or(|sequence| stored[0].1 == Some(sequence));
            if !exact {
                findings.lost += 1;
            }
        } else if DECIDED.contains(&ack.outcome.as_str()) {
            judged.refused += 1;
            if !stored.is_empty() {
                findings.phantom += 1;
            }
        } else {
            judged.unknown += 1;
        }
    }

    findings.gaps = count(
        bids,
        "SELECT count(*) FROM lots l WHERE l.seq <> (SELECT count(*) FROM lot_events e WHERE e.lot_id = l.lot_id)
            OR l.seq <> COALESCE((SELECT max(e.seq) FROM lot_events e WHERE e.lot_id = l.lot_id), 0)",
    )
    .await?;
    findings.double_closes = count(
        bids,
        "SELECT count(*) FROM (SELECT lot_id FROM lot_events WHERE event_type = 'auction.closed'
                                GROUP BY lot_id HAVING count(*) > 1) twice",
    )
    .await?;
    findings.unclosed = count(
        bids,
        "SELECT count(*) FROM lots WHERE status = 'open' AND ends_at < now() - interval '5 seconds'",
    )
    .await?;

    let committed: Vec<(String, String)> = sqlx::query_as(
        "SELECT wallet, sum(amount)::text FROM holds WHERE status IN ('active', 'captured') GROUP BY wallet",
    )
    .fetch_all(wallets)
    .await
    .context("reading holds")?;
    let client = reqwest::Client::new();
    for (wallet, held) in committed {
        let held: u128 = held.parse().context("a sum of holds")?;
        if held > balance(&client, rpc, &wallet).await? {
            findings.over_committed += 1;
        }
    }

    let reconciled = operator::reconcile(bids, wallets, Duration::from_secs(30), false)
        .await
        .map_err(|error| anyhow::anyhow!(gavel_common::error_chain(&error)))?;
    findings.holds = reconciled.differences.len() as u64 + reconciled.in_flight as u64;

    findings.undelivered = undelivered(bids, wallets, lots).await?;
    Ok((findings, judged))
}

async fn count(pool: &PgPool, sql: &str) -> anyhow::Result<u64> {
    let count: i64 = sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .with_context(|| format!("running {sql}"))?;
    Ok(u64::try_from(count).unwrap_or(0))
}

/// Events left in an outbox, plus each event not in the inbox of a consumer that takes it:
/// `wallets` (bids' `auction.bid_accepted` and `auction.closed`), `lots` (bids' `auction.*`) and
/// `bids` (lots' `lot.created`).
async fn undelivered(bids: &PgPool, wallets: &PgPool, lots: &PgPool) -> anyhow::Result<u64> {
    let mut missing = 0;
    for pool in [bids, wallets, lots] {
        missing += count(
            pool,
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        )
        .await?;
    }
    let routes: [(&PgPool, &str, &PgPool, &str); 3] = [
        (
            bids,
            "routing_key IN ('auction.bid_accepted', 'auction.closed')",
            wallets,
            "wallets.auction-events",
        ),
        (
            bids,
            "routing_key LIKE 'auction.%'",
            lots,
            "lots.auction-events",
        ),
        (lots, "routing_key = 'lot.created'", bids, "bids.lot-events"),
    ];
    for (producer, which, consumer_db, consumer) in routes {
        let published: Vec<uuid::Uuid> = sqlx::query_scalar(&format!(
            "SELECT event_id FROM outbox WHERE published_at IS NOT NULL AND {which}"
        ))
        .fetch_all(producer)
        .await
        .context("reading an outbox")?;
        let handled: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inbox WHERE consumer = $1 AND event_id = ANY($2)",
        )
        .bind(consumer)
        .bind(&published)
        .fetch_one(consumer_db)
        .await
        .context("reading an inbox")?;
        missing += u64::try_from(published.len() as i64 - handled).unwrap_or(0);
    }
    Ok(missing)
}

async fn balance(client: &reqwest::Client, rpc: &str, wallet: &str) -> anyhow::Result<u128> {
    let answer: serde_json::Value = client
        .post(rpc)
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "eth_getBalance", "params": [wallet, "latest"]
        }))
        .send()
        .await
        .context("asking the chain for a balance")?
        .json()
        .await
        .context("reading the chain's answer")?;
    let Some(hex) = answer["result"].as_str() else {
        bail!("the chain answered {answer}");
    };
    u128::from_str_radix(hex.trim_start_matches("0x"), 16).context("a balance in wei")
}
