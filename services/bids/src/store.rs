//! PostgreSQL access for the engine: lot state in and out, the per-lot event log (with its outbox
//! copy), bid rows and pending hold releases.

use chrono::{DateTime, Utc};
use gavel_common::db::{CorruptValue, parse_column};
use gavel_events::{AuctionClosed, BidAccepted, LotRules, Outcome};
use gavel_messaging::outbox::enqueue;
use gavel_messaging::{Envelope, Event};
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use sqlx::{PgConnection, PgExecutor};

use crate::rules::{self, Leader, Lot, Status};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptValue),
    #[error("cannot encode an event")]
    Encode(#[from] serde_json::Error),
}

#[derive(sqlx::FromRow)]
struct LotRow {
    seller: uuid::Uuid,
    seller_wallet: String,
    title: String,
    rules: sqlx::types::Json<LotRules>,
    status: String,
    ends_at: DateTime<Utc>,
    price: Option<String>,
    leader: Option<uuid::Uuid>,
    leader_wallet: Option<String>,
    leader_max: Option<String>,
    leader_hold_bid: Option<uuid::Uuid>,
    bid_count: i64,
    seq: i64,
    outcome: Option<sqlx::types::Json<Outcome>>,
    now: DateTime<Utc>,
}

/// A lot as stored, with its sequence and the database's clock at the time of reading.
#[derive(Debug, Clone)]
pub struct Stored {
    pub lot: Lot,
    pub seller_wallet: EthAddress,
    pub title: String,
    pub seq: i64,
    /// How the auction ended, once it has.
    pub outcome: Option<Outcome>,
    /// `clock_timestamp()` when read: the one clock every replica agrees on.
    pub now: DateTime<Utc>,
}

const SELECT: &str =
    "SELECT seller, seller_wallet, title, rules, status, ends_at, price::text AS price, leader,
    leader_wallet, leader_max::text AS leader_max, leader_hold_bid, bid_count, seq, outcome,
    clock_timestamp() AS now
    FROM lots WHERE lot_id = $1";

/// Reads a lot; with `lock`, takes its row lock for the rest of the transaction, which is what
/// serialises everything that happens to one lot.
pub async fn load<'e>(
    executor: impl PgExecutor<'e>,
    lot_id: LotId,
    lock: bool,
) -> Result<Option<Stored>, StoreError> {
    let sql = if lock {
        format!("{SELECT} FOR UPDATE")
    } else {
        SELECT.to_owned()
    };
    let Some(row) = sqlx::query_as::<_, LotRow>(&sql)
        .bind(lot_id.0)
        .fetch_optional(executor)
        .await?
    else {
        return Ok(None);
    };
    let status: Status = parse_column("lots.status", &row.status)?;
    let leader = match (
        row.leader,
        row.leader_wallet,
        row.leader_max,
        row.leader_hold_bid,
    ) {
        (Some(bidder), Some(wallet), Some(max), Some(hold_bid)) => Some(Leader {
            bidder: AccountId(bidder),
            wallet: parse_column("lots.leader_wallet", &wallet)?,
            max: parse_column("lots.leader_max", &max)?,
            hold_bid: BidId(hold_bid),
        }),
        (None, None, None, None) => None,
        _ => {
            return Err(CorruptValue {
                column: "lots.leader",
                value: format!("a partial leader on lot {lot_id}"),
            }
            .into());
        }
    };
    let price = row
        .price
        .map(|raw| parse_column::<Wei>("lots.price", &raw))
        .transpose()?;
    Ok(Some(Stored {
        lot: Lot {
            seller: AccountId(row.seller),
            rules: row.rules.0,
            status,
            price,
            leader,
            ends_at: row.ends_at,
            bid_count: row.bid_count,
        },
        seller_wallet: parse_column("lots.seller_wallet", &row.seller_wallet)?,
        title: row.title,
        seq: row.seq,
        outcome: row.outcome.map(|outcome| outcome.0),
        now: row.now,
    }))
}

/// Writes the lot's mutable state back.
pub async fn save(
    connection: &mut PgConnection,
    lot_id: LotId,
    lot: &Lot,
    seq: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE lots SET status = $2, ends_at = $3, price = $4::numeric, leader = $5, leader_wallet = $6,
             leader_max = $7::numeric, leader_hold_bid = $8, bid_count = $9, seq = $10,
             closed_at = CASE WHEN $2 IN ('closed', 'cancelled') THEN clock_timestamp() ELSE closed_at END
         WHERE lot_id = $1",
    )
    .bind(lot_id.0)
    .bind(lot.status.as_str())
    .bind(lot.ends_at)
    .bind(lot.price.map(|price| price.to_string()))
    .bind(lot.leader.map(|leader| leader.bidder.0))
    .bind(lot.leader.map(|leader| leader.wallet.to_lowercase_hex()))
    .bind(lot.leader.map(|leader| leader.max.to_string()))
    .bind(lot.leader.map(|leader| leader.hold_bid.0))
    .bind(lot.bid_count)
    .bind(seq)
    .execute(connection)
    .await?;
    Ok(())
}

/// Closes the lot now: its outcome decided from its state, the status, the outcome and the
/// `auction.closed` event written in the caller's transaction (which holds the lot's lock).
/// Closing on time and closing by buy-now both come through here.
/// Closes the auction as its rules decide; `reason` is an operator's, when closing it early.
pub async fn close(
    connection: &mut PgConnection,
    lot_id: LotId,
    stored: &mut Stored,
    reason: Option<String>,
) -> Result<AuctionClosed, StoreError> {
    let outcome = rules::outcome(&stored.lot);
    stored.lot.status = Status::Closed;
    stored.seq += 1;
    let closed = AuctionClosed {
        lot_id,
        seller: stored.lot.seller,
        seller_wallet: stored.seller_wallet,
        outcome: outcome.clone(),
        closed_at: stored.now,
        reason,
    };
    append(connection, lot_id, stored.seq, &closed).await?;
    sqlx::query("UPDATE lots SET outcome = $2 WHERE lot_id = $1")
        .bind(lot_id.0)
        .bind(sqlx::types::Json(&outcome))
        .execute(&mut *connection)
        .await?;
    stored.outcome = Some(outcome);
    save(connection, lot_id, &stored.lot, stored.seq).await?;
    Ok(closed)
}

/// Appends event number `seq` to the lot's log and to the outbox, in the caller's transaction.
pub async fn append<E: Event>(
    connection: &mut PgConnection,
    lot_id: LotId,
    seq: i64,
    event: &E,
) -> Result<Envelope, StoreError> {
    let envelope = Envelope::new(lot_id.to_string(), Some(seq), event)?;
    sqlx::query(
        "INSERT INTO lot_events (lot_id, seq, event_type, envelope) VALUES ($1, $2, $3, $4)",
    )
    .bind(lot_id.0)
    .bind(seq)
    .bind(E::TYPE)
    .bind(sqlx::types::Json(&envelope))
    .execute(&mut *connection)
    .await?;
    enqueue(connection, &envelope).await?;
    Ok(envelope)
}

/// Appends an accepted bid: its row in `bids` and its `auction.bid_accepted` event (number
/// `seq`) in the lot's log in one statement, then the event to the outbox, in the caller's
/// transaction.
pub async fn append_bid(
    connection: &mut PgConnection,
    lot_id: LotId,
    seq: i64,
    bid: &crate::rules::Recorded,
    event: &BidAccepted,
) -> Result<Envelope, StoreError> {
    let envelope = Envelope::new(lot_id.to_string(), Some(seq), event)?;
    sqlx::query(
        "WITH bid AS (
             INSERT INTO bids (bid_id, lot_id, seq, bidder, wallet, amount, proxy)
             VALUES ($3, $1, $2, $4, $5, $6::numeric, $7)
         )
         INSERT INTO lot_events (lot_id, seq, event_type, envelope) VALUES ($1, $2, $8, $9)",
    )
    .bind(lot_id.0)
    .bind(seq)
    .bind(bid.bid_id.0)
    .bind(bid.bidder.0)
    .bind(bid.wallet.to_lowercase_hex())
    .bind(bid.amount.to_string())
    .bind(bid.proxy)
    .bind(BidAccepted::TYPE)
    .bind(sqlx::types::Json(&envelope))
    .execute(&mut *connection)
    .await?;
    enqueue(connection, &envelope).await?;
    Ok(envelope)
}

/// Queues the release of `wallet`'s hold on `lot_id` if it still backs `bid_id`.
pub async fn queue_release(
    connection: &mut PgConnection,
    wallet: EthAddress,
    lot_id: LotId,
    bid_id: BidId,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO pending_releases (wallet, lot_id, bid_id) VALUES ($1, $2, $3)")
        .bind(wallet.to_lowercase_hex())
        .bind(lot_id.0)
        .bind(bid_id.0)
        .execute(connection)
        .await?;
    Ok(())
}

/// A bid as the history shows it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct BidView {
    pub bid_id: uuid::Uuid,
    pub seq: i64,
    pub bidder: uuid::Uuid,
    pub amount: String,
    pub proxy: bool,
    pub placed_at: DateTime<Utc>,
}

pub async fn history<'e>(
    executor: impl PgExecutor<'e>,
    lot_id: LotId,
    limit: i64,
) -> Result<Vec<BidView>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT bid_id, seq, bidder, amount::text AS amount, proxy, placed_at FROM bids WHERE lot_id = $1 ORDER BY seq DESC LIMIT $2",
    )
    .bind(lot_id.0)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// A lot an account bid on, as its "my auctions" page lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BidderLot {
    pub lot_id: uuid::Uuid,
    pub title: String,
    pub status: String,
    pub price: Option<String>,
    pub bid_count: i64,
    pub ends_at: DateTime<Utc>,
    /// Whether the account leads (while open) or led when it ended.
    pub leading: bool,
    /// The account's highest bid on the lot.
    pub highest_bid: String,
    pub last_bid_at: DateTime<Utc>,
    /// `sold`, `unsold` or `reserve_not_met` once the auction ended.
    pub outcome: Option<&'static str>,
    /// Sold to this account.
    pub won: bool,
}

#[derive(sqlx::FromRow)]
struct BidderLotRow {
    lot_id: uuid::Uuid,
    title: String,
    status: String,
    price: Option<String>,
    bid_count: i64,
    ends_at: DateTime<Utc>,
    leader: Option<uuid::Uuid>,
    outcome: Option<sqlx::types::Json<Outcome>>,
    highest_bid: String,
    last_bid_at: DateTime<Utc>,
}

/// The lots `bidder` bid on, the most recently bid on first (at most `limit`).
pub async fn bidder_lots<'e>(
    executor: impl PgExecutor<'e>,
    bidder: AccountId,
    limit: i64,
) -> Result<Vec<BidderLot>, StoreError> {
    let rows: Vec<BidderLotRow> = sqlx::query_as(
        "SELECT l.lot_id, l.title, l.status, l.price::text AS price, l.bid_count, l.ends_at, l.leader,
                l.outcome, mine.highest::text AS highest_bid, mine.last_at AS last_bid_at
         FROM (SELECT lot_id, max(amount) AS highest, max(placed_at) AS last_at
               FROM bids WHERE bidder = $1 GROUP BY lot_id) mine
         JOIN lots l USING (lot_id)
         ORDER BY mine.last_at DESC, l.lot_id LIMIT $2",
    )
    .bind(bidder.0)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (outcome, won) = match row.outcome.map(|outcome| outcome.0) {
                Some(Outcome::Sold { winner, .. }) => (Some("sold"), winner == bidder),
                Some(Outcome::Unsold) => (Some("unsold"), false),
                Some(Outcome::ReserveNotMet { .. }) => (Some("reserve_not_met"), false),
                None => (None, false),
            };
            BidderLot {
                lot_id: row.lot_id,
                title: row.title,
                status: row.status,
                price: row.price,
                bid_count: row.bid_count,
                ends_at: row.ends_at,
                leading: row.leader == Some(bidder.0),
                highest_bid: row.highest_bid,
                last_bid_at: row.last_bid_at,
                outcome,
                won,
            }
        })
        .collect())
}

/// Events after `since`, in order.
pub async fn events_since<'e>(
    executor: impl PgExecutor<'e>,
    lot_id: LotId,
    since: i64,
    limit: i64,
) -> Result<Vec<serde_json::Value>, StoreError> {
    let rows: Vec<sqlx::types::Json<serde_json::Value>> = sqlx::query_scalar(
        "SELECT envelope FROM lot_events WHERE lot_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(lot_id.0)
    .bind(since)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|row| row.0).collect())
}
