//! Holds whose bid `bids` has not confirmed (no `auction.bid_accepted` seen yet). The ledger never
//! guesses what happened to such a bid: a late event is not a lost bid. `bids`, which serialises
//! every bid of a lot, decides under the lot's lock whether the bid was recorded or can never be,
//! and the ledger applies that verdict here:
//!
//! - **recorded**: the hold is marked recorded, as the event would have done;
//! - **abandoned**: the bid is remembered as abandoned (no hold may back it again), and if the
//!   hold still backs it, it goes to the state `bids` names (the account's recorded lead on the
//!   lot, when it leads with this wallet) or is released.

use std::time::Duration;

use gavel_common::db::parse_column;
use gavel_types::{BidId, EthAddress, LotId, Wei};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tracing::{error, info};

use super::{LedgerError, lock_wallet};

/// An active hold whose bid is not known to be recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unconfirmed {
    pub wallet: EthAddress,
    pub lot_id: LotId,
    pub bid_id: BidId,
    pub amount: Wei,
}

/// The active holds whose bid has been unconfirmed for longer than `older_than`, oldest first.
pub async fn unconfirmed(
    pool: &PgPool,
    older_than: Duration,
    limit: i64,
) -> Result<Vec<Unconfirmed>, LedgerError> {
    let rows: Vec<(String, uuid::Uuid, Option<uuid::Uuid>, String)> = sqlx::query_as(
        "SELECT wallet, lot_id, bid_id, amount::text FROM holds
         WHERE status = 'active' AND NOT bid_recorded AND bid_id IS NOT NULL
           AND updated_at < now() - make_interval(secs => $1)
         ORDER BY updated_at LIMIT $2",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .filter_map(|(wallet, lot_id, bid_id, amount)| Some((wallet, lot_id, bid_id?, amount)))
        .map(|(wallet, lot_id, bid_id, amount)| {
            Ok(Unconfirmed {
                wallet: parse_column("holds.wallet", &wallet)?,
                lot_id: LotId(lot_id),
                bid_id: BidId(bid_id),
                amount: parse_column("holds.amount", &amount)?,
            })
        })
        .collect()
}

/// The hold an abandoned bid's wallet should be left with: its account's recorded lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restore {
    pub amount: Wei,
    pub bid_id: BidId,
}

/// What `bids` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Recorded,
    Abandoned {
        #[serde(default)]
        restore: Option<Restore>,
    },
}

/// What applying a verdict changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    MarkedRecorded,
    Restored,
    Released,
    /// The hold had moved on (a newer bid, a capture): nothing to change.
    Unchanged,
}

impl Applied {
    pub fn label(self) -> &'static str {
        match self {
            Self::MarkedRecorded => "marked_recorded",
            Self::Restored => "restored",
            Self::Released => "released",
            Self::Unchanged => "unchanged",
        }
    }
}

/// Applies `verdict` about `bid_id`'s hold on (`wallet`, `lot_id`). Idempotent.
pub async fn apply(
    pool: &PgPool,
    wallet: EthAddress,
    lot_id: LotId,
    bid_id: BidId,
    verdict: &Verdict,
) -> Result<Applied, LedgerError> {
    let mut tx = pool.begin().await?;
    lock_wallet(&mut tx, wallet).await?;
    let address = wallet.to_lowercase_hex();
    let applied = match verdict {
        Verdict::Recorded => {
            sqlx::query("INSERT INTO recorded_bids (bid_id) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(bid_id.0)
                .execute(&mut *tx)
                .await?;
            let marked = sqlx::query(
                "UPDATE holds SET bid_recorded = true WHERE wallet = $1 AND lot_id = $2 AND bid_id = $3 AND NOT bid_recorded",
            )
            .bind(&address)
            .bind(lot_id.0)
            .bind(bid_id.0)
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() == 1 {
                Applied::MarkedRecorded
            } else {
                Applied::Unchanged
            }
        }
        Verdict::Abandoned { restore } => {
            sqlx::query("INSERT INTO abandoned_bids (bid_id) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(bid_id.0)
                .execute(&mut *tx)
                .await?;
            let held: Option<String> = sqlx::query_scalar(
                "SELECT amount::text FROM holds
                 WHERE wallet = $1 AND lot_id = $2 AND bid_id = $3 AND status = 'active' AND NOT bid_recorded",
            )
            .bind(&address)
            .bind(lot_id.0)
            .bind(bid_id.0)
            .fetch_optional(&mut *tx)
            .await?;
            match (held, restore) {
                (None, _) => Applied::Unchanged,
                (Some(held), Some(restore)) => {
                    let held: Wei = parse_column("holds.amount", &held)?;
                    if restore.amount > held {
                        // Holds only grow while an account leads: a larger recorded lead than
                        // the abandoned raise means the two services disagree. Change nothing.
                        error!(%wallet, %lot_id, %bid_id, %held, restore = %restore.amount,
                            "refusing to restore a hold above the one held; needs an operator");
                        Applied::Unchanged
                    } else {
                        sqlx::query(
                            "UPDATE holds SET amount = $4::numeric, bid_id = $5, bid_recorded = true, updated_at = now()
                             WHERE wallet = $1 AND lot_id = $2 AND bid_id = $3",
                        )
                        .bind(&address)
                        .bind(lot_id.0)
                        .bind(bid_id.0)
                        .bind(restore.amount.to_string())
                        .bind(restore.bid_id.0)
                        .execute(&mut *tx)
                        .await?;
                        Applied::Restored
                    }
                }
                (Some(_), None) => {
                    sqlx::query(
                        "UPDATE holds SET status = 'released', updated_at = now()
                         WHERE wallet = $1 AND lot_id = $2 AND bid_id = $3",
                    )
                    .bind(&address)
                    .bind(lot_id.0)
                    .bind(bid_id.0)
                    .execute(&mut *tx)
                    .await?;
                    Applied::Released
                }
            }
        }
    };
    tx.commit().await?;
    if applied != Applied::Unchanged {
        info!(%wallet, %lot_id, %bid_id, applied = applied.label(), "applied the engine's verdict on a hold");
    }
    Ok(applied)
}
