//! Placing a bid, end to end.
//!
//! 1. The bidder's rate limit counts the request (Redis, shared by every replica) — every
//!    request, retries included: a retry of an undecided bid costs as much as a new one.
//! 2. A request already decided under its `Idempotency-Key` is answered again from the store.
//! 3. A bid certainly below the lot's minimum, by this replica's last view of a lot that has
//!    bids, is refused at once: its answer is stored under the key, nothing else is touched
//!    (`crate::known` says why that view can only err on the side of the full path).
//! 4. Bids for one lot then queue in this replica (striped mutexes), so they do not hold database
//!    connections while waiting; across replicas the row lock below decides.
//! 5. **Under the lot's row lock**, in one transaction: the request is claimed (a fresh bid id,
//!    unless a twin decided it meanwhile); the rules decide; a refusal costs no money. If the bid
//!    is accepted, `wallets` holds the bidder's exposure (their maximum) on the bidding wallet,
//!    keyed by the bid id, while the lock is held; then the bids, the new state, the events (log +
//!    outbox), the holds to release and the answer commit together. Holding the lock across the
//!    hold keeps one bid per lot in flight, so no two holds of one bidder on one lot can race.
//! 6. After the commit, the release task frees the holds nobody needs any more: the displaced
//!    leader's (or the bidder's own on another wallet), or the bidder's own when the proxy
//!    outbid them.
//!
//! A bid id exists only inside the transaction that chose it: if that transaction does not
//! commit (a crash, `wallets` timing out), the id is never recorded, by anyone, ever. That is what
//! lets [`crate::repair`] tell `wallets` for certain that such a hold backs nothing.

use gavel_common::idempotency::{IdempotencyKey, StoredAnswer};
use gavel_events::BidAccepted;
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;

use crate::answer::{Accepted, Decision, Refused};
use crate::known::Known;
use crate::ratelimit::RateLimiter;
use crate::rules::{self, Offer};
use crate::store::{self, StoreError, Stored};
use crate::wallets::{Placed, Wallets, WalletsError};

/// What the bidder asks for.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BidRequest {
    /// The bid, in wei (a decimal string).
    #[schema(value_type = String, pattern = "^[0-9]{1,78}$", example = "150000000000000000")]
    pub amount: Wei,
    /// A proxy maximum: the engine bids for the bidder up to this, in wei.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = "^[0-9]{1,78}$")]
    pub max_amount: Option<Wei>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no such lot")]
    UnknownLot,
    #[error("the Idempotency-Key was already used for a different bid")]
    KeyReused,
    #[error("too many bids; slow down")]
    RateLimited,
    #[error("the holds ledger is unavailable")]
    Wallets(#[from] WalletsError),
    #[error("the rate limiter is unavailable")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EngineError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

#[derive(Clone, Debug)]
pub struct Engine {
    pub pool: PgPool,
    pub wallets: Wallets,
    pub limiter: RateLimiter,
    /// Wakes the release task after a commit that queued releases.
    pub releases: Arc<Notify>,
    pub hooks: Hooks,
    /// In-process queues per lot (striped): bids for one lot wait here, not holding a database
    /// connection while the row lock is taken; across replicas the row lock still decides.
    pub stripes: Arc<[tokio::sync::Mutex<()>]>,
    /// This replica's last view of each lot, for refusals that need no lock.
    pub known: Known,
}

/// How many in-process lot queues there are (lots share one by hash).
pub const STRIPES: usize = 1024;

pub fn stripes() -> Arc<[tokio::sync::Mutex<()>]> {
    (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect()
}

/// Test-only interference points; empty in production.
#[derive(Clone, Debug, Default)]
pub struct Hooks {
    /// When set, a bid stops for good right after its hold is placed, after notifying this: the
    /// test then kills the engine there, between hold and record.
    pub stall_after_hold: Option<Arc<Notify>>,
}

/// The bidder, as the access token names them.
#[derive(Debug, Clone, Copy)]
pub struct Bidder {
    pub account: AccountId,
    pub wallet: EthAddress,
}

impl Engine {
    pub async fn place(
        &self,
        bidder: Bidder,
        lot_id: LotId,
        key: &IdempotencyKey,
        request: &BidRequest,
    ) -> Result<StoredAnswer, EngineError> {
        if !self.limiter.allow(bidder.account).await? {
            return Err(EngineError::RateLimited);
        }
        let fingerprint = serde_json::to_string(&(lot_id, request)).unwrap_or_default();
        if let Some(answer) = self
            .refuse_from_memory(bidder, lot_id, key, &fingerprint, request)
            .await?
        {
            return Ok(answer);
        }
        if let Some(answer) = self.decided(bidder.account, key, &fingerprint).await? {
            return Ok(answer);
        }
        // One bid per lot at a time in this replica: the others wait here, without a database
        // connection, so a hot lot cannot starve the pool.
        let bytes = lot_id.0.as_bytes();
        let stripe = usize::from(bytes[15]) | (usize::from(bytes[14]) << 8);
        let _queued = self.stripes[stripe % self.stripes.len()].lock().await;

        let mut tx = self.pool.begin().await?;
        let mut stored = store::load(&mut *tx, lot_id, true)
            .await?
            .ok_or(EngineError::UnknownLot)?;
        let bid_id = match claim(&mut tx, bidder.account, key, &fingerprint).await? {
            Claim::Decided(answer) => return Ok(answer),
            Claim::Fresh(bid_id) => bid_id,
        };
        let offer = Offer {
            bid_id,
            bidder: bidder.account,
            wallet: bidder.wallet,
            amount: request.amount,
            max: request.max_amount,
        };
        let decision = match rules::decide(&stored.lot, &offer, stored.now) {
            Err(refusal) => Decision::Refused(Refused::Rules {
                refusal,
                starts_at: stored.lot.rules.starts_at,
            }),
            Ok(accepted) => {
                self.accept(&mut tx, lot_id, &mut stored, &offer, accepted)
                    .await?
            }
        };
        let answer = decision.stored();
        store_answer(&mut tx, bidder.account, key, &answer).await?;
        tx.commit().await?;
        self.known.remember(lot_id, &stored.lot);
        if matches!(decision, Decision::Accepted(_)) {
            self.releases.notify_one();
        }
        Ok(answer)
    }

    /// Holds the money for an accepted bid and records it, or refuses it when the wallet cannot.
    async fn accept(
        &self,
        tx: &mut PgConnection,
        lot_id: LotId,
        stored: &mut Stored,
        offer: &Offer,
        accepted: rules::Accepted,
    ) -> Result<Decision, EngineError> {
        // The bidder's whole exposure on this lot: their maximum, or the larger one they already
        // lead with (a raise never lowers what backs the lead).
        let exposure = match stored.lot.leader {
            Some(leader) if leader.bidder == offer.bidder => offer.cap().max(leader.max),
            _ => offer.cap(),
        };
        let placed = self
            .wallets
            .place(offer.bidder, offer.wallet, lot_id, exposure, offer.bid_id)
            .await?;
        match placed {
            Placed::Held => {}
            Placed::InsufficientFunds { available } => {
                return Ok(Decision::Refused(Refused::InsufficientFunds {
                    available,
                    needed: exposure,
                }));
            }
            Placed::WalletNotLinked => return Ok(Decision::Refused(Refused::WalletNotLinked)),
        }
        if let Some(stall) = &self.hooks.stall_after_hold {
            stall.notify_one();
            std::future::pending::<()>().await;
        }
        record(tx, lot_id, stored, offer, exposure, &accepted).await?;
        let own = accepted
            .recorded
            .iter()
            .find(|bid| bid.bid_id == offer.bid_id)
            .map_or(offer.amount, |bid| bid.amount);
        Ok(Decision::Accepted(Accepted {
            result: accepted.result.code(),
            bid_id: offer.bid_id,
            lot_id,
            amount: own,
            price: accepted.price,
            leading: accepted.leader.bidder == offer.bidder,
            ends_at: accepted.ends_at,
            closed: accepted.closes,
            sequence: stored.seq,
        }))
    }

    /// Refuses a bid certainly below the lot's minimum from this replica's last view of the lot
    /// (`crate::known`): no lot queue, no row lock, one insert that stores the answer under the
    /// key. `None` sends the bid down the full path: not certainly too low, or the key was used
    /// before (the full path replays its answer or refuses the reuse).
    async fn refuse_from_memory(
        &self,
        bidder: Bidder,
        lot_id: LotId,
        key: &IdempotencyKey,
        fingerprint: &str,
        request: &BidRequest,
    ) -> Result<Option<StoredAnswer>, EngineError> {
        let Some(minimum) = self.known.certainly_too_low(
            lot_id,
            bidder.account,
            request.amount,
            chrono::Utc::now(),
        ) else {
            return Ok(None);
        };
        // `starts_at` only shapes a not-open refusal's answer; a too-low one does not show it.
        let decision = Decision::Refused(Refused::Rules {
            refusal: rules::Refusal::TooLow { minimum },
            starts_at: chrono::DateTime::<chrono::Utc>::MIN_UTC,
        });
        let answer = decision.stored();
        let stored = sqlx::query(
            "INSERT INTO bid_requests (bidder, idempotency_key, bid_id, fingerprint, status_code, response)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (bidder, idempotency_key) DO NOTHING",
        )
        .bind(bidder.account.0)
        .bind(key.as_str())
        .bind(BidId::new().0)
        .bind(fingerprint)
        .bind(i16::try_from(answer.status).unwrap_or(500))
        .bind(&answer.body)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((stored == 1).then_some(answer))
    }

    /// The stored answer of a request already decided under `key`.
    async fn decided(
        &self,
        bidder: AccountId,
        key: &IdempotencyKey,
        fingerprint: &str,
    ) -> Result<Option<StoredAnswer>, EngineError> {
        let row: Option<(String, Option<i16>, Option<Value>)> = sqlx::query_as(
            "SELECT fingerprint, status_code, response FROM bid_requests WHERE bidder = $1 AND idempotency_key = $2",
        )
        .bind(bidder.0)
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some((stored, ..)) if stored != fingerprint => Err(EngineError::KeyReused),
            Some((_, Some(status), Some(body))) => Ok(Some(StoredAnswer {
                status: status.unsigned_abs(),
                body,
                replayed: true,
            })),
            _ => Ok(None),
        }
    }
}

/// Writes an accepted bid: its bid rows and events (a proxy's answer after the bid it answers),
/// the lot's new state, the releases it makes necessary, and the close when it bought the lot.
async fn record(
    tx: &mut PgConnection,
    lot_id: LotId,
    stored: &mut Stored,
    offer: &Offer,
    exposure: Wei,
    accepted: &rules::Accepted,
) -> Result<(), StoreError> {
    let old_leader = stored.lot.leader;
    let previous_leader = old_leader.map(|leader| leader.bidder);
    for bid in &accepted.recorded {
        stored.seq += 1;
        stored.lot.bid_count += 1;
        store::insert_bid(tx, lot_id, stored.seq, bid).await?;
        // What `wallets` holds for this bid's bidder: the exposure just placed for the bidder,
        // or a proxy's maximum for the leader it bid for.
        let held = match old_leader {
            _ if bid.bidder == offer.bidder => exposure,
            Some(old) if old.bidder == bid.bidder => old.max,
            _ => accepted.leader.max,
        };
        let lot = &stored.lot;
        let event = BidAccepted {
            lot_id,
            bid_id: bid.bid_id,
            bidder: bid.bidder,
            wallet: bid.wallet,
            amount: bid.amount,
            held,
            proxy: bid.proxy,
            at: stored.now,
            price: bid.amount.max(lot.price.unwrap_or(Wei::ZERO)),
            leader: if bid.proxy {
                bid.bidder
            } else {
                accepted.leader.bidder
            },
            previous_leader,
            bid_count: lot.bid_count,
            ends_at: accepted.ends_at,
            reserve_met: lot
                .rules
                .reserve
                .is_none_or(|reserve| bid.amount >= reserve),
        };
        store::append(tx, lot_id, stored.seq, &event).await?;
    }
    stored.lot.price = Some(accepted.price);
    stored.lot.leader = Some(accepted.leader);
    stored.lot.ends_at = accepted.ends_at;
    if let Some(displaced) = accepted.displaced {
        store::queue_release(tx, displaced.wallet, lot_id, displaced.hold_bid).await?;
    }
    if accepted.release_own {
        store::queue_release(tx, offer.wallet, lot_id, offer.bid_id).await?;
    }
    if accepted.closes {
        store::close(tx, lot_id, stored, None).await?;
    } else {
        store::save(tx, lot_id, &stored.lot, stored.seq).await?;
    }
    Ok(())
}

enum Claim {
    /// A twin request with this key decided while this one waited.
    Decided(StoredAnswer),
    /// Go on with this new bid id.
    Fresh(BidId),
}

/// Claims the request under the lot's lock: a fresh bid id, or the answer a twin already stored.
/// The claim commits only with the decision, so an undecided request leaves nothing behind.
async fn claim(
    tx: &mut PgConnection,
    bidder: AccountId,
    key: &IdempotencyKey,
    fingerprint: &str,
) -> Result<Claim, EngineError> {
    let (bid_id, stored, status, body): (uuid::Uuid, String, Option<i16>, Option<Value>) =
        sqlx::query_as(
            "INSERT INTO bid_requests (bidder, idempotency_key, bid_id, fingerprint) VALUES ($1, $2, $3, $4)
             ON CONFLICT (bidder, idempotency_key) DO UPDATE SET
                 bid_id = CASE WHEN bid_requests.status_code IS NULL THEN EXCLUDED.bid_id ELSE bid_requests.bid_id END
             RETURNING bid_id, fingerprint, status_code, response",
        )
        .bind(bidder.0)
        .bind(key.as_str())
        .bind(BidId::new().0)
        .bind(fingerprint)
        .fetch_one(&mut *tx)
        .await?;
    if stored != fingerprint {
        return Err(EngineError::KeyReused);
    }
    Ok(match (status, body) {
        (Some(status), Some(body)) => Claim::Decided(StoredAnswer {
            status: status.unsigned_abs(),
            body,
            replayed: true,
        }),
        _ => Claim::Fresh(BidId(bid_id)),
    })
}

async fn store_answer(
    tx: &mut PgConnection,
    bidder: AccountId,
    key: &IdempotencyKey,
    answer: &StoredAnswer,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE bid_requests SET status_code = $3, response = $4 WHERE bidder = $1 AND idempotency_key = $2")
        .bind(bidder.0)
        .bind(key.as_str())
        .bind(i16::try_from(answer.status).unwrap_or(500))
        .bind(&answer.body)
        .execute(tx)
        .await?;
    Ok(())
}
