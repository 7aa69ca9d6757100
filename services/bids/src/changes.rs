//! Sellers' changes to a lot (new rules, withdrawal), decided here, where bids are serialised.
//!
//! `lots` asks before it changes its own copy, and the seller gets this answer: a change that
//! races the first bid either lands before it (and the bid is judged by the new rules) or is
//! refused with `has_bids`. A change for a lot this engine has not heard of yet (its
//! `lot.created` is late: a retry queue, a broker outage) creates the lot from the definition the
//! call carries; the late `lot.created` then changes nothing. Both operations are idempotent by
//! content: asking again for a change already made succeeds.

use gavel_events::{AuctionCancelled, AuctionUpdated, LotCreated, LotRules};
use gavel_types::{AccountId, EthAddress, LotId};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::rules::Status;
use crate::store::{self, StoreError};

/// A lot as `lots` defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LotDefinition {
    pub seller: AccountId,
    pub seller_wallet: EthAddress,
    pub title: String,
    pub rules: LotRules,
}

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied(Status),
    HasBids,
    Ended(Status),
}

/// Inserts the lot if this engine does not know it yet (as `lot.created` would). Returns whether
/// it did.
pub async fn insert_if_missing(
    connection: &mut PgConnection,
    lot_id: LotId,
    lot: &LotDefinition,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO lots (lot_id, seller, seller_wallet, title, rules, status, starts_at, ends_at)
         VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7) ON CONFLICT (lot_id) DO NOTHING",
    )
    .bind(lot_id.0)
    .bind(lot.seller.0)
    .bind(lot.seller_wallet.to_lowercase_hex())
    .bind(&lot.title)
    .bind(sqlx::types::Json(&lot.rules))
    .bind(lot.rules.starts_at)
    .bind(lot.rules.ends_at)
    .execute(connection)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

impl From<&LotCreated> for LotDefinition {
    fn from(created: &LotCreated) -> Self {
        Self {
            seller: created.seller,
            seller_wallet: created.seller_wallet,
            title: created.title.clone(),
            rules: created.rules.clone(),
        }
    }
}

/// Replaces the lot's title and rules, unless a bid or the end came first.
pub async fn update(
    pool: &PgPool,
    lot_id: LotId,
    lot: &LotDefinition,
) -> Result<Outcome, StoreError> {
    let mut tx = pool.begin().await?;
    if insert_if_missing(&mut tx, lot_id, lot).await? {
        tx.commit().await?;
        return Ok(Outcome::Applied(Status::Scheduled));
    }
    let mut stored = store::load(&mut *tx, lot_id, true)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    if stored.title == lot.title && stored.lot.rules == lot.rules {
        return Ok(Outcome::Applied(stored.lot.status));
    }
    if stored.lot.status.ended() {
        return Ok(Outcome::Ended(stored.lot.status));
    }
    if stored.lot.bid_count > 0 {
        return Ok(Outcome::HasBids);
    }
    // A lot whose new start lies ahead waits for it again; the scheduler opens it.
    if lot.rules.starts_at > stored.now {
        stored.lot.status = Status::Scheduled;
    }
    stored.lot.rules = lot.rules.clone();
    stored.lot.ends_at = lot.rules.ends_at;
    stored.seq += 1;
    sqlx::query("UPDATE lots SET title = $2, rules = $3, starts_at = $4 WHERE lot_id = $1")
        .bind(lot_id.0)
        .bind(&lot.title)
        .bind(sqlx::types::Json(&lot.rules))
        .bind(lot.rules.starts_at)
        .execute(&mut *tx)
        .await?;
    let rules = &lot.rules;
    let event = AuctionUpdated {
        lot_id,
        title: lot.title.clone(),
        start_price: rules.start_price,
        increment: rules.increment,
        has_reserve: rules.reserve.is_some(),
        buy_now: rules.buy_now,
        starts_at: rules.starts_at,
        ends_at: rules.ends_at,
    };
    store::append(&mut tx, lot_id, stored.seq, &event).await?;
    store::save(&mut tx, lot_id, &stored.lot, stored.seq).await?;
    tx.commit().await?;
    Ok(Outcome::Applied(stored.lot.status))
}

/// Withdraws the lot, unless a bid or the end came first.
pub async fn cancel(
    pool: &PgPool,
    lot_id: LotId,
    lot: &LotDefinition,
) -> Result<Outcome, StoreError> {
    let mut tx = pool.begin().await?;
    insert_if_missing(&mut tx, lot_id, lot).await?;
    let mut stored = store::load(&mut *tx, lot_id, true)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?;
    match stored.lot.status {
        Status::Cancelled => return Ok(Outcome::Applied(Status::Cancelled)),
        Status::Closed => return Ok(Outcome::Ended(Status::Closed)),
        Status::Scheduled | Status::Open if stored.lot.bid_count > 0 => {
            return Ok(Outcome::HasBids);
        }
        Status::Scheduled | Status::Open => {}
    }
    stored.lot.status = Status::Cancelled;
    stored.seq += 1;
    store::append(
        &mut tx,
        lot_id,
        stored.seq,
        &AuctionCancelled {
            lot_id,
            reason: None,
        },
    )
    .await?;
    store::save(&mut tx, lot_id, &stored.lot, stored.seq).await?;
    tx.commit().await?;
    Ok(Outcome::Applied(Status::Cancelled))
}
