//! What an operator asks of `bids` when something went wrong (`gavel-admin`, docs/operations.md):
//! the hold releases parked after failing, whether `wallets`' holds agree with what `bids` says
//! each lot needs, and ending a lot early (closing it now, or cancelling it) with a reason.
//!
//! Reconciling never guesses at a bid in flight. It reads `bids` in one snapshot first and
//! `wallets` after it, so a hold `wallets` shows for a bid the snapshot does not know is newer
//! than the snapshot and is left alone, and a hold whose bid is not yet recorded belongs to
//! [`crate::repair`]. The only repair it makes is queueing a release, through the same table and
//! task as the engine's own: a release names the bid it is for, and `wallets` ignores it if the
//! hold has moved on to another bid since.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gavel_common::db::{CorruptValue, parse_column};
use gavel_types::{BidId, EthAddress, LotId, Wei};
use sqlx::{Connection, PgPool};

use gavel_events::{AuctionCancelled, Outcome};

use crate::rules::Status;
use crate::store::{self, StoreError};

/// A hold release that failed too often and waits for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedRelease {
    pub id: i64,
    pub wallet: String,
    pub lot_id: LotId,
    pub bid_id: BidId,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub queued_at: DateTime<Utc>,
    pub parked_at: DateTime<Utc>,
}

impl fmt::Display for ParkedRelease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "release {id}: wallet {wallet} lot {lot} bid {bid}; queued {queued}, parked {parked} after {attempts} attempts: {error}",
            id = self.id,
            wallet = self.wallet,
            lot = self.lot_id,
            bid = self.bid_id,
            queued = self.queued_at.to_rfc3339(),
            parked = self.parked_at.to_rfc3339(),
            attempts = self.attempts,
            error = self.last_error.as_deref().unwrap_or("(no error recorded)"),
        )
    }
}

/// The parked releases, oldest first.
pub async fn parked_releases(pool: &PgPool, limit: i64) -> Result<Vec<ParkedRelease>, sqlx::Error> {
    let rows: Vec<ParkedRow> = sqlx::query_as(
        "SELECT id, wallet, lot_id, bid_id, attempts, last_error, created_at, parked_at
         FROM pending_releases WHERE parked_at IS NOT NULL ORDER BY parked_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| ParkedRelease {
            id: row.id,
            wallet: row.wallet,
            lot_id: LotId(row.lot_id),
            bid_id: BidId(row.bid_id),
            attempts: row.attempts,
            last_error: row.last_error,
            queued_at: row.created_at,
            parked_at: row.parked_at,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct ParkedRow {
    id: i64,
    wallet: String,
    lot_id: uuid::Uuid,
    bid_id: uuid::Uuid,
    attempts: i32,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    parked_at: DateTime<Utc>,
}

/// Puts parked releases (only `id`, or all) back in the queue with their attempts reset; the
/// release task of any replica delivers them within `release.retry`. Returns how many.
pub async fn retry_releases(pool: &PgPool, only: Option<i64>) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE pending_releases SET parked_at = NULL, attempts = 0, next_attempt_at = now()
         WHERE parked_at IS NOT NULL AND ($1::bigint IS NULL OR id = $1)",
    )
    .bind(only)
    .execute(pool)
    .await?
    .rows_affected())
}

/// One way in which `wallets`' holds and `bids`' lots disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// `bids` says this wallet leads the open lot, backed by `bid`, but `wallets` holds nothing
    /// active for that bid, or less than the leader's maximum. Money the engine counts on is not
    /// reserved; no tool can reserve it after the fact. `held` is what `wallets` has.
    LeaderUnbacked {
        lot_id: LotId,
        wallet: EthAddress,
        bid_id: BidId,
        max: Wei,
        held: Option<HeldHold>,
    },
    /// An active hold on an open lot that `bids` does not need (the wallet does not lead) and
    /// has no release queued for: the bidder's money is locked for nothing. Repairable.
    StaleHold {
        lot_id: LotId,
        wallet: EthAddress,
        bid_id: BidId,
        amount: Wei,
    },
    /// The hold's release is queued but parked: `gavel-admin releases retry`.
    ReleaseParked {
        lot_id: LotId,
        wallet: EthAddress,
        bid_id: BidId,
        release: i64,
    },
    /// An active hold on a lot that closed longer ago than the grace: `wallets` has not applied
    /// the lot's `auction.closed` (capture or release); look at `wallets.auction-events.dlq`.
    NotSettled {
        lot_id: LotId,
        wallet: EthAddress,
        bid_id: BidId,
        closed_at: Option<DateTime<Utc>>,
    },
    /// An active hold on a lot `bids` does not know.
    UnknownLot { lot_id: LotId, wallet: EthAddress },
}

/// What `wallets` holds for a wallet on a lot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldHold {
    pub status: String,
    pub amount: Wei,
    pub bid_id: Option<BidId>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LeaderUnbacked {
                lot_id,
                wallet,
                bid_id,
                max,
                held,
            } => {
                write!(
                    f,
                    "leader unbacked: lot {lot_id}: {wallet} leads with bid {bid_id} up to {max} wei, but wallets holds "
                )?;
                match held {
                    None => write!(f, "nothing"),
                    Some(held) => write!(
                        f,
                        "{} wei ({}) for bid {}",
                        held.amount,
                        held.status,
                        held.bid_id
                            .map_or_else(|| "none".to_owned(), |bid| bid.to_string())
                    ),
                }
            }
            Self::StaleHold {
                lot_id,
                wallet,
                bid_id,
                amount,
            } => write!(
                f,
                "stale hold: lot {lot_id}: {wallet} holds {amount} wei for bid {bid_id}, which no longer leads, and no release is queued"
            ),
            Self::ReleaseParked {
                lot_id,
                wallet,
                bid_id,
                release,
            } => write!(
                f,
                "release parked: lot {lot_id}: {wallet}'s hold for bid {bid_id} waits on parked release {release} (gavel-admin releases retry --id {release})"
            ),
            Self::NotSettled {
                lot_id,
                wallet,
                bid_id,
                closed_at,
            } => write!(
                f,
                "not settled: lot {lot_id} closed at {closed}, but {wallet} still holds for bid {bid_id}: wallets has not applied auction.closed (see wallets.auction-events.dlq)",
                closed =
                    closed_at.map_or_else(|| "an unrecorded time".to_owned(), |at| at.to_rfc3339()),
            ),
            Self::UnknownLot { lot_id, wallet } => {
                write!(
                    f,
                    "unknown lot: {wallet} holds on lot {lot_id}, which bids does not know"
                )
            }
        }
    }
}

/// What reconciling found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Leaders of open lots checked.
    pub leaders: usize,
    /// Active holds checked.
    pub holds: usize,
    /// Holds left alone because their bid is newer than the snapshot or not yet recorded.
    pub in_flight: usize,
    pub differences: Vec<Difference>,
    /// Stale holds whose release was queued (with `repair`).
    pub repaired: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("reading bids' database")]
    Bids(#[source] sqlx::Error),
    #[error("reading wallets' database")]
    Wallets(#[source] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] CorruptValue),
    #[error("queueing a release")]
    Queue(#[source] StoreError),
}

#[derive(sqlx::FromRow)]
struct LeaderRow {
    lot_id: uuid::Uuid,
    leader_wallet: String,
    leader_max: String,
    leader_hold_bid: uuid::Uuid,
}

#[derive(sqlx::FromRow)]
struct HoldRow {
    wallet: String,
    lot_id: uuid::Uuid,
    status: String,
    amount: String,
    bid_id: Option<uuid::Uuid>,
    bid_recorded: bool,
}

#[derive(sqlx::FromRow)]
struct LotRow {
    lot_id: uuid::Uuid,
    status: String,
    leader_wallet: Option<String>,
    leader_hold_bid: Option<uuid::Uuid>,
    closed_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct ReleaseRow {
    id: i64,
    wallet: String,
    lot_id: uuid::Uuid,
    bid_id: uuid::Uuid,
    parked: bool,
}

const LEADERS: &str =
    "SELECT lot_id, leader_wallet, leader_max::text AS leader_max, leader_hold_bid FROM lots
     WHERE status = 'open' AND leader_wallet IS NOT NULL AND leader_hold_bid IS NOT NULL";
const LOTS: &str = "SELECT lot_id, status, leader_wallet, leader_hold_bid, closed_at FROM lots
     WHERE lot_id = ANY($1)";

/// Compares the leaders of open lots and the queued releases in `bids` with the active holds in
/// `wallets`. Holds on lots closed less than `grace` ago are left to `wallets`' event handling.
/// With `repair`, each stale hold gets its release queued.
pub async fn reconcile(
    bids: &PgPool,
    wallets: &PgPool,
    grace: Duration,
    repair: bool,
) -> Result<Reconciliation, ReconcileError> {
    let mut connection = bids.acquire().await.map_err(ReconcileError::Bids)?;
    let mut snapshot = connection.begin().await.map_err(ReconcileError::Bids)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *snapshot)
        .await
        .map_err(ReconcileError::Bids)?;
    // The snapshot starts with this read, before anything is read from wallets.
    let leaders: Vec<LeaderRow> = sqlx::query_as(LEADERS)
        .fetch_all(&mut *snapshot)
        .await
        .map_err(ReconcileError::Bids)?;
    let led: Vec<uuid::Uuid> = leaders.iter().map(|leader| leader.lot_id).collect();
    let holds: Vec<HoldRow> = sqlx::query_as(
        "SELECT wallet, lot_id, status, amount::text AS amount, bid_id, bid_recorded FROM holds
         WHERE status = 'active' OR lot_id = ANY($1)",
    )
    .bind(&led)
    .fetch_all(wallets)
    .await
    .map_err(ReconcileError::Wallets)?;
    let lot_ids: Vec<uuid::Uuid> = holds.iter().map(|hold| hold.lot_id).collect();
    let bid_ids: Vec<uuid::Uuid> = holds.iter().filter_map(|hold| hold.bid_id).collect();
    let lots: HashMap<uuid::Uuid, LotRow> = sqlx::query_as::<_, LotRow>(LOTS)
        .bind(&lot_ids)
        .fetch_all(&mut *snapshot)
        .await
        .map_err(ReconcileError::Bids)?
        .into_iter()
        .map(|lot| (lot.lot_id, lot))
        .collect();
    let known: HashSet<uuid::Uuid> =
        sqlx::query_scalar("SELECT bid_id FROM bids WHERE bid_id = ANY($1)")
            .bind(&bid_ids)
            .fetch_all(&mut *snapshot)
            .await
            .map_err(ReconcileError::Bids)?
            .into_iter()
            .collect();
    let releases: HashMap<(String, uuid::Uuid, uuid::Uuid), (i64, bool)> = sqlx::query_as::<
        _,
        ReleaseRow,
    >(
        "SELECT id, wallet, lot_id, bid_id, parked_at IS NOT NULL AS parked FROM pending_releases
             WHERE lot_id = ANY($1)",
    )
    .bind(&lot_ids)
    .fetch_all(&mut *snapshot)
    .await
    .map_err(ReconcileError::Bids)?
    .into_iter()
    .map(|row| ((row.wallet, row.lot_id, row.bid_id), (row.id, row.parked)))
    .collect();
    snapshot.commit().await.map_err(ReconcileError::Bids)?;
    drop(connection);

    let mut found = Reconciliation {
        leaders: leaders.len(),
        ..Reconciliation::default()
    };
    let by_wallet: HashMap<(&str, uuid::Uuid), &HoldRow> = holds
        .iter()
        .map(|hold| ((hold.wallet.as_str(), hold.lot_id), hold))
        .collect();
    let mut unbacked = Vec::new();
    for leader in &leaders {
        let hold = by_wallet.get(&(leader.leader_wallet.as_str(), leader.lot_id));
        if let Some(bid) = hold.and_then(|hold| hold.bid_id)
            && !known.contains(&bid)
        {
            found.in_flight += 1; // the wallet bid again after the snapshot
            continue;
        }
        let max: Wei = parse_column("lots.leader_max", &leader.leader_max)?;
        let held = hold
            .map(|hold| -> Result<_, CorruptValue> {
                Ok(HeldHold {
                    status: hold.status.clone(),
                    amount: parse_column("holds.amount", &hold.amount)?,
                    bid_id: hold.bid_id.map(BidId),
                })
            })
            .transpose()?;
        let sound = held.as_ref().is_some_and(|held| {
            held.status == "active"
                && held.bid_id == Some(BidId(leader.leader_hold_bid))
                && held.amount >= max
        });
        if !sound {
            unbacked.push(Difference::LeaderUnbacked {
                lot_id: LotId(leader.lot_id),
                wallet: parse_column("lots.leader_wallet", &leader.leader_wallet)?,
                bid_id: BidId(leader.leader_hold_bid),
                max,
                held,
            });
        }
    }
    if !unbacked.is_empty() {
        // A leader outbid after the snapshot has its hold released by then: only a lot whose
        // leader is still the same after wallets was read is reported.
        let flagged: Vec<uuid::Uuid> = unbacked
            .iter()
            .filter_map(|difference| match difference {
                Difference::LeaderUnbacked { lot_id, .. } => Some(lot_id.0),
                _ => None,
            })
            .collect();
        let now: HashMap<uuid::Uuid, LotRow> = sqlx::query_as::<_, LotRow>(LOTS)
            .bind(&flagged)
            .fetch_all(bids)
            .await
            .map_err(ReconcileError::Bids)?
            .into_iter()
            .map(|lot| (lot.lot_id, lot))
            .collect();
        for difference in unbacked {
            if let Difference::LeaderUnbacked {
                lot_id,
                wallet,
                bid_id,
                ..
            } = &difference
                && now.get(&lot_id.0).is_some_and(|lot| {
                    lot.status == "open"
                        && lot.leader_wallet.as_deref() == Some(wallet.to_lowercase_hex().as_str())
                        && lot.leader_hold_bid == Some(bid_id.0)
                })
            {
                found.differences.push(difference);
            } else {
                found.in_flight += 1;
            }
        }
    }

    for hold in holds.iter().filter(|hold| hold.status == "active") {
        found.holds += 1;
        let Some(bid) = hold.bid_id else { continue };
        if !hold.bid_recorded || !known.contains(&bid) {
            found.in_flight += 1; // crate::repair's, or newer than the snapshot
            continue;
        }
        let (lot_id, bid_id) = (LotId(hold.lot_id), BidId(bid));
        let wallet: EthAddress = parse_column("holds.wallet", &hold.wallet)?;
        let Some(lot) = lots.get(&hold.lot_id) else {
            found
                .differences
                .push(Difference::UnknownLot { lot_id, wallet });
            continue;
        };
        let open = lot.status == "open" || lot.status == "scheduled";
        if open && lot.leader_wallet.as_deref() == Some(hold.wallet.as_str()) {
            continue; // checked with the leaders
        }
        if let Some((release, parked)) = releases.get(&(hold.wallet.clone(), hold.lot_id, bid)) {
            if *parked {
                found.differences.push(Difference::ReleaseParked {
                    lot_id,
                    wallet,
                    bid_id,
                    release: *release,
                });
            }
            continue;
        }
        if open {
            if repair {
                let mut connection = bids.acquire().await.map_err(ReconcileError::Bids)?;
                store::queue_release(&mut connection, wallet, lot_id, bid_id)
                    .await
                    .map_err(ReconcileError::Queue)?;
                found.repaired += 1;
            }
            found.differences.push(Difference::StaleHold {
                lot_id,
                wallet,
                bid_id,
                amount: parse_column("holds.amount", &hold.amount)?,
            });
        } else if lot.closed_at.is_none_or(|at| at + grace < Utc::now()) {
            found.differences.push(Difference::NotSettled {
                lot_id,
                wallet,
                bid_id,
                closed_at: lot.closed_at,
            });
        }
    }
    Ok(found)
}

/// What an operator's early end of a lot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// Closed now, with the outcome its rules give (sold to the leader if the reserve is met).
    Closed(Outcome),
    /// Cancelled; the leader's hold (if any) has its release queued.
    Cancelled {
        released: Option<EthAddress>,
    },
    /// The lot had already ended (or, for closing, had not opened): nothing changed.
    AlreadyEnded(Status),
    NotFound,
}

#[derive(Debug, thiserror::Error)]
pub enum EndError {
    #[error("a reason of 1 to {MAX_REASON} characters is required")]
    Reason,
    #[error(transparent)]
    Store(#[from] StoreError),
}

const MAX_REASON: usize = 500;

fn reason(raw: &str) -> Result<String, EndError> {
    let reason = raw.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON {
        return Err(EndError::Reason);
    }
    Ok(reason.to_owned())
}

/// Closes an open lot now, as if its end had come, under the lot's lock like any bid: the rules
/// decide the outcome, `auction.closed` (carrying `reason`) goes out, and `wallets` captures the
/// winner's hold and releases the others as for any close.
pub async fn close_now(pool: &PgPool, lot_id: LotId, why: &str) -> Result<Ended, EndError> {
    let why = reason(why)?;
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let Some(mut stored) = store::load(&mut *tx, lot_id, true).await? else {
        return Ok(Ended::NotFound);
    };
    if stored.lot.status != Status::Open {
        return Ok(Ended::AlreadyEnded(stored.lot.status));
    }
    stored.lot.ends_at = stored.now;
    let closed = store::close(&mut tx, lot_id, &mut stored, Some(why.clone())).await?;
    tx.commit().await.map_err(StoreError::from)?;
    tracing::warn!(lot = %lot_id, reason = %why, "an operator closed the lot early");
    Ok(Ended::Closed(closed.outcome))
}

/// Cancels a scheduled or open lot, with bids or without: nobody wins, `auction.cancelled`
/// (carrying `reason`) goes out, and the leader's hold is released through the release queue.
pub async fn cancel(pool: &PgPool, lot_id: LotId, why: &str) -> Result<Ended, EndError> {
    let why = reason(why)?;
    let mut tx = pool.begin().await.map_err(StoreError::from)?;
    let Some(mut stored) = store::load(&mut *tx, lot_id, true).await? else {
        return Ok(Ended::NotFound);
    };
    if stored.lot.status.ended() {
        return Ok(Ended::AlreadyEnded(stored.lot.status));
    }
    stored.lot.status = Status::Cancelled;
    stored.seq += 1;
    let event = AuctionCancelled {
        lot_id,
        reason: Some(why.clone()),
    };
    store::append(&mut tx, lot_id, stored.seq, &event).await?;
    store::save(&mut tx, lot_id, &stored.lot, stored.seq).await?;
    if let Some(leader) = stored.lot.leader {
        store::queue_release(&mut tx, leader.wallet, lot_id, leader.hold_bid).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    tracing::warn!(lot = %lot_id, reason = %why, "an operator cancelled the lot");
    Ok(Ended::Cancelled {
        released: stored.lot.leader.map(|leader| leader.wallet),
    })
}
