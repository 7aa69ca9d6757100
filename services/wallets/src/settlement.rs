//! Settlement and reconciliation: what happens to holds after bidding.
//!
//! - `auction.bid_accepted` marks the hold that backs the bid as recorded.
//! - `auction.closed` captures the winner's hold at the price, with a payment deadline, and
//!   releases every other hold on the lot; an unsold lot releases them all.
//! - The winner submits the payment's transaction hash; once the chain shows a confirmed,
//!   successful transfer of at least the price from the winner to the seller, the payment is
//!   confirmed (`payment.confirmed`) and the capture settled.
//! - Sweeps, safe to run in every replica: payments past their deadline default
//!   (`payment.defaulted`, capture released); holds whose bid was never recorded within the grace
//!   period go back to their last recorded state, or are released.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gavel_common::BoxError;
use gavel_events::{AuctionClosed, BidAccepted, Outcome, PaymentConfirmed, PaymentDefaulted};
use gavel_messaging::outbox::enqueue;
use gavel_messaging::{Envelope, Event as _, Handler, HandlerError};
use gavel_types::{AccountId, EthAddress, LotId, Wei};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::ledger::{self, parse_wei};

/// Consumes `auction.*` events into the ledger.
#[derive(Debug, Clone)]
pub struct AuctionEvents {
    pub payment_window: Duration,
}

impl Handler for AuctionEvents {
    async fn handle(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        // `decode` refuses versions this code does not know, which parks the event in the DLQ.
        match event.event_type.as_str() {
            BidAccepted::TYPE => bid_recorded(connection, &event.decode()?).await?,
            AuctionClosed::TYPE => {
                let window = chrono::Duration::from_std(self.payment_window)
                    .unwrap_or(chrono::Duration::days(1));
                auction_closed(connection, &event.decode()?, Utc::now() + window).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

async fn bid_recorded(connection: &mut PgConnection, bid: &BidAccepted) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO recorded_bids (bid_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(bid.bid_id.0)
        .execute(&mut *connection)
        .await?;
    let wallet = bid.wallet.to_lowercase_hex();
    // The hold still backs this bid: it is now recorded.
    sqlx::query(
        "UPDATE holds SET bid_recorded = true, previous_amount = NULL, previous_bid_id = NULL
         WHERE wallet = $1 AND lot_id = $2 AND bid_id = $3",
    )
    .bind(&wallet)
    .bind(bid.lot_id.0)
    .bind(bid.bid_id.0)
    .execute(&mut *connection)
    .await?;
    // A later, still unrecorded raise backs another bid: this one becomes its fallback.
    sqlx::query(
        "UPDATE holds SET previous_amount = $4::numeric, previous_bid_id = $3
         WHERE wallet = $1 AND lot_id = $2 AND bid_id <> $3 AND status = 'active' AND NOT bid_recorded
           AND (previous_amount IS NULL OR previous_amount < $4::numeric)",
    )
    .bind(&wallet)
    .bind(bid.lot_id.0)
    .bind(bid.bid_id.0)
    .bind(bid.held.to_string())
    .execute(connection)
    .await?;
    Ok(())
}

async fn auction_closed(
    connection: &mut PgConnection,
    closed: &AuctionClosed,
    deadline: DateTime<Utc>,
) -> Result<(), HandlerError> {
    let winner_wallet = match &closed.outcome {
        Outcome::Sold {
            winner,
            winner_wallet,
            price,
            ..
        } => {
            ledger::lock_wallet(connection, *winner_wallet).await?;
            match ledger::capture(
                connection,
                *winner_wallet,
                closed.lot_id,
                *price,
                Some(deadline),
            )
            .await?
            {
                Ok(_) => {}
                Err(refusal) => {
                    // The engine only lets funded bids win, so this is a bug worth an alert, but
                    // the sale stands: record the capture the price requires.
                    warn!(lot = %closed.lot_id, code = refusal.code(), "winner's hold could not be captured as is");
                    force_capture(connection, *winner_wallet, closed.lot_id, *price, deadline)
                        .await?;
                }
            }
            sqlx::query(
                "INSERT INTO payments (lot_id, winner, winner_wallet, seller_wallet, amount, deadline, status)
                 VALUES ($1, $2, $3, $4, $5::numeric, $6, 'awaiting') ON CONFLICT (lot_id) DO NOTHING",
            )
            .bind(closed.lot_id.0)
            .bind(winner.0)
            .bind(winner_wallet.to_lowercase_hex())
            .bind(closed.seller_wallet.to_lowercase_hex())
            .bind(price.to_string())
            .bind(deadline)
            .execute(&mut *connection)
            .await?;
            Some(winner_wallet.to_lowercase_hex())
        }
        Outcome::Unsold | Outcome::ReserveNotMet { .. } => None,
    };
    sqlx::query(
        "UPDATE holds SET status = 'released', updated_at = now()
         WHERE lot_id = $1 AND status = 'active' AND wallet IS DISTINCT FROM $2",
    )
    .bind(closed.lot_id.0)
    .bind(winner_wallet)
    .execute(connection)
    .await?;
    Ok(())
}

async fn force_capture(
    connection: &mut PgConnection,
    wallet: EthAddress,
    lot_id: LotId,
    price: Wei,
    deadline: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO holds (wallet, lot_id, status, amount, bid_recorded, payment_deadline)
         VALUES ($1, $2, 'captured', $3::numeric, true, $4)
         ON CONFLICT (wallet, lot_id) DO UPDATE SET status = 'captured', amount = EXCLUDED.amount,
             payment_deadline = EXCLUDED.payment_deadline, updated_at = now()",
    )
    .bind(wallet.to_lowercase_hex())
    .bind(lot_id.0)
    .bind(price.to_string())
    .bind(deadline)
    .execute(connection)
    .await?;
    Ok(())
}

/// A payment awaiting (or past) settlement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Payment {
    pub lot_id: LotId,
    pub winner: AccountId,
    pub winner_wallet: EthAddress,
    pub seller_wallet: EthAddress,
    pub amount: Wei,
    pub deadline: DateTime<Utc>,
    pub status: String,
    pub tx_hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    winner: uuid::Uuid,
    winner_wallet: String,
    seller_wallet: String,
    amount: String,
    deadline: DateTime<Utc>,
    status: String,
    tx_hash: Option<String>,
}

pub async fn payment(pool: &PgPool, lot_id: LotId) -> Result<Option<Payment>, sqlx::Error> {
    let row: Option<PaymentRow> = sqlx::query_as(
        "SELECT winner, winner_wallet, seller_wallet, amount::text AS amount, deadline, status, tx_hash
         FROM payments WHERE lot_id = $1",
    )
    .bind(lot_id.0)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|row| {
        Some(Payment {
            lot_id,
            winner: AccountId(row.winner),
            winner_wallet: row.winner_wallet.parse().ok()?,
            seller_wallet: row.seller_wallet.parse().ok()?,
            amount: parse_wei(&row.amount),
            deadline: row.deadline,
            status: row.status,
            tx_hash: row.tx_hash,
        })
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfirmError {
    #[error("the payment is no longer awaiting (it is {0})")]
    NotAwaiting(String),
    #[error("this transaction already settled another payment")]
    TransactionUsed,
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error("cannot encode the event")]
    Encode(#[from] serde_json::Error),
}

/// Records a verified payment, settles the capture and publishes `payment.confirmed`, at once.
pub async fn confirm(pool: &PgPool, payment: &Payment, tx_hash: &str) -> Result<(), ConfirmError> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query(
        "UPDATE payments SET status = 'confirmed', tx_hash = $2, settled_at = now() WHERE lot_id = $1 AND status = 'awaiting'",
    )
    .bind(payment.lot_id.0)
    .bind(tx_hash)
    .execute(&mut *tx)
    .await;
    match updated {
        Err(sqlx::Error::Database(error)) if error.constraint() == Some("payments_tx_hash_key") => {
            return Err(ConfirmError::TransactionUsed);
        }
        Err(error) => return Err(error.into()),
        Ok(done) if done.rows_affected() == 0 => {
            let status: String =
                sqlx::query_scalar("SELECT status FROM payments WHERE lot_id = $1")
                    .bind(payment.lot_id.0)
                    .fetch_one(&mut *tx)
                    .await?;
            return Err(ConfirmError::NotAwaiting(status));
        }
        Ok(_) => {}
    }
    sqlx::query("UPDATE holds SET status = 'settled', updated_at = now() WHERE wallet = $1 AND lot_id = $2 AND status = 'captured'")
        .bind(payment.winner_wallet.to_lowercase_hex())
        .bind(payment.lot_id.0)
        .execute(&mut *tx)
        .await?;
    let event = PaymentConfirmed {
        lot_id: payment.lot_id,
        winner: payment.winner,
        winner_wallet: payment.winner_wallet,
        seller_wallet: payment.seller_wallet,
        amount: payment.amount,
        tx_hash: tx_hash.to_owned(),
    };
    enqueue(
        &mut tx,
        &Envelope::new(payment.lot_id.to_string(), None, &event)?,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Defaults every awaiting payment past its deadline. Returns how many.
pub async fn default_overdue(pool: &PgPool) -> Result<u64, ConfirmError> {
    let mut tx = pool.begin().await?;
    let due: Vec<(uuid::Uuid, uuid::Uuid, String, String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT lot_id, winner, winner_wallet, amount::text, deadline FROM payments
         WHERE status = 'awaiting' AND deadline < now() ORDER BY deadline LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    for (lot_id, winner, winner_wallet, amount, deadline) in &due {
        sqlx::query(
            "UPDATE payments SET status = 'defaulted', settled_at = now() WHERE lot_id = $1",
        )
        .bind(lot_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE holds SET status = 'released', updated_at = now() WHERE wallet = $1 AND lot_id = $2 AND status = 'captured'")
            .bind(winner_wallet)
            .bind(lot_id)
            .execute(&mut *tx)
            .await?;
        let Ok(wallet) = winner_wallet.parse() else {
            continue;
        };
        let event = PaymentDefaulted {
            lot_id: LotId(*lot_id),
            winner: AccountId(*winner),
            winner_wallet: wallet,
            amount: parse_wei(amount),
            deadline: *deadline,
        };
        enqueue(&mut tx, &Envelope::new(lot_id.to_string(), None, &event)?).await?;
    }
    tx.commit().await?;
    Ok(due.len() as u64)
}

/// Repairs holds whose bid was never recorded within `grace`: back to the last recorded state if
/// there is one, released otherwise. Returns how many holds it repaired.
///
/// Each repair takes the wallet's ledger lock first, like every other change to a wallet's holds
/// (the same lock order, so no deadlock), and re-checks the hold under it: a replica that lost the
/// race, or a bid recorded meanwhile, finds nothing to do.
pub async fn release_orphans(pool: &PgPool, grace: Duration) -> Result<u64, sqlx::Error> {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::minutes(1));
    let cutoff = Utc::now() - grace;
    let candidates: Vec<(String, uuid::Uuid)> = sqlx::query_as(
        "SELECT wallet, lot_id FROM holds WHERE status = 'active' AND NOT bid_recorded AND updated_at < $1
         ORDER BY updated_at LIMIT 100",
    )
    .bind(cutoff)
    .fetch_all(pool)
    .await?;
    let mut repaired = 0;
    for (wallet, lot_id) in candidates {
        let Ok(address) = wallet.parse::<EthAddress>() else {
            continue;
        };
        let mut tx = pool.begin().await?;
        ledger::lock_wallet(&mut tx, address).await?;
        // Under the wallet lock the hold's bid cannot change: this is the orphan's bid.
        let orphan_bid: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT bid_id FROM holds WHERE wallet = $1 AND lot_id = $2")
                .bind(&wallet)
                .bind(lot_id)
                .fetch_one(&mut *tx)
                .await?;
        let done = sqlx::query(
            "UPDATE holds SET
                 status = CASE WHEN previous_amount IS NULL THEN 'released' ELSE 'active' END,
                 amount = COALESCE(previous_amount, amount),
                 bid_id = CASE WHEN previous_amount IS NULL THEN bid_id ELSE previous_bid_id END,
                 bid_recorded = previous_amount IS NOT NULL,
                 previous_amount = NULL, previous_bid_id = NULL, updated_at = now()
             WHERE wallet = $1 AND lot_id = $2 AND status = 'active' AND NOT bid_recorded AND updated_at < $3
               AND NOT EXISTS (SELECT 1 FROM recorded_bids r WHERE r.bid_id = holds.bid_id)",
        )
        .bind(&wallet)
        .bind(lot_id)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            // Forget the placement of the orphaned bid: if `bids` retries it, the hold is placed
            // afresh instead of the stale "held" answer being replayed.
            sqlx::query("DELETE FROM hold_requests WHERE operation = 'place' AND bid_id = $1")
                .bind(orphan_bid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if done.rows_affected() == 1 {
            repaired += 1;
            info!(%wallet, %lot_id, "repaired a hold whose bid was never recorded");
        }
    }
    Ok(repaired)
}

/// The periodic sweeps, until cancelled.
pub async fn sweep(
    pool: PgPool,
    interval: Duration,
    grace: Duration,
    cancel: CancellationToken,
) -> Result<(), BoxError> {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        if let Err(error) = release_orphans(&pool, grace).await {
            warn!(%error, "orphan sweep failed; will retry");
        }
        if let Err(error) = default_overdue(&pool).await {
            warn!(error = %gavel_common::error_chain(&error), "payment deadline sweep failed; will retry");
        }
    }
}
