//! Placing a bid, end to end.
//!
//! 1. The `Idempotency-Key` is looked up: a decided request returns its stored answer; an
//!    undecided one (a crash, a concurrent retry) goes on with the bid id it was given.
//! 2. The bidder's rate limit is checked (Redis, shared by every replica).
//! 3. Before all of this, bids for one lot queue in this replica (striped mutexes), so they do not
//!    hold database connections while waiting; across replicas the row lock below decides.
//! 4. Under the lot's row lock the rules decide; a refusal costs no money. If the bid is accepted, `wallets` holds
//!    the bidder's exposure (their maximum), keyed by the bid id, while the lock is held; then the
//!    bids, the new state, the events (log + outbox), the holds to release and the answer commit
//!    in one transaction. Holding the lock across the hold keeps one bid per lot in flight, so
//!    no two holds of one bidder on one lot can race.
//! 5. After the commit, the release task frees the holds nobody needs any more: the displaced
//!    leader's, or the bidder's own when the proxy outbid them.
//!
//! A crash between the hold and the commit leaves a hold whose bid is never recorded: `wallets`
//! repairs it after its grace period. A crash after the commit leaves queued releases, which the
//! task picks up on restart.

use chrono::Utc;
use gavel_events::{AuctionClosed, BidAccepted, Outcome};
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::ratelimit::RateLimiter;
use crate::rules::{self, Lot, Offer, Refusal, Status};
use crate::store::{self, StoreError};
use crate::wallets::{Placed, Wallets, WalletsError};

/// What the bidder asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidRequest {
    pub amount: Wei,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Wei>,
}

/// The answer, as stored for retries: an HTTP status and a JSON body with a `result`.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
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
    pub releases: std::sync::Arc<Notify>,
    pub hooks: Hooks,
    /// In-process queues per lot (striped): bids for one lot wait here, not holding a database
    /// connection while the row lock is taken; across replicas the row lock still decides.
    pub stripes: Arc<[tokio::sync::Mutex<()>]>,
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
    pub stall_after_hold: Option<std::sync::Arc<Notify>>,
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
        key: &str,
        request: &BidRequest,
    ) -> Result<Answer, EngineError> {
        // One bid per lot at a time in this replica: the others wait here, without a database
        // connection, so a hot lot cannot starve the pool.
        let stripe =
            usize::from(lot_id.0.as_bytes()[15]) | (usize::from(lot_id.0.as_bytes()[14]) << 8);
        let _queued = self.stripes[stripe % self.stripes.len()].lock().await;
        let fingerprint = serde_json::to_string(&(lot_id, request)).unwrap_or_default();
        let bid_id = match self.lookup(bidder.account, key, &fingerprint).await? {
            Lookup::Decided(answer) => return Ok(answer),
            Lookup::Undecided(bid_id) => bid_id,
            Lookup::New => {
                if !self.limiter.allow(bidder.account).await? {
                    return Err(EngineError::RateLimited);
                }
                self.reserve(bidder.account, key, &fingerprint).await?
            }
        };
        let offer = Offer {
            bid_id,
            bidder: bidder.account,
            wallet: bidder.wallet,
            amount: request.amount,
            max: request.max_amount,
        };
        self.commit(bidder, lot_id, key, &offer).await
    }

    async fn commit(
        &self,
        bidder: Bidder,
        lot_id: LotId,
        key: &str,
        offer: &Offer,
    ) -> Result<Answer, EngineError> {
        let mut tx = self.pool.begin().await?;
        let mut stored = store::load(&mut *tx, lot_id, true)
            .await?
            .ok_or(EngineError::UnknownLot)?;
        // A concurrent retry of this very request may have decided it while we waited.
        if let Lookup::Decided(answer) = self.lookup_in(&mut tx, bidder.account, key).await? {
            return Ok(answer);
        }
        let (status, body) = match rules::decide(&stored.lot, offer, stored.now) {
            Err(refusal) => refusal_answer(&refusal, &stored.lot),
            Ok(accepted) => {
                let exposure = match stored.lot.leader {
                    Some(leader) if leader.bidder == bidder.account => offer.cap().max(leader.max),
                    _ => offer.cap(),
                };
                if let Placed::InsufficientFunds { available } = self
                    .wallets
                    .place(bidder.wallet, lot_id, exposure, offer.bid_id)
                    .await?
                {
                    let body = json!({
                        "type": "urn:gavel:problem:insufficient_funds", "code": "insufficient_funds",
                        "result": "insufficient_funds", "title": "Your wallet does not cover this bid",
                        "status": 409, "available": available, "needed": exposure,
                    });
                    store_answer(&mut tx, bidder.account, key, 409, &body).await?;
                    tx.commit().await?;
                    return Ok(Answer {
                        status: 409,
                        body,
                        replayed: false,
                    });
                }
                if let Some(stall) = &self.hooks.stall_after_hold {
                    stall.notify_one();
                    std::future::pending::<()>().await;
                }
                let old_leader = stored.lot.leader;
                let previous_leader = old_leader.map(|leader| leader.bidder);
                let lot = &mut stored.lot;
                for bid in &accepted.recorded {
                    stored.seq += 1;
                    lot.bid_count += 1;
                    store::insert_bid(&mut tx, lot_id, stored.seq, bid).await?;
                    // What `wallets` holds for this bid's bidder: the exposure just placed for the
                    // bidder, or a proxy's maximum for the leader it bid for.
                    let held = match old_leader {
                        _ if bid.bidder == bidder.account => exposure,
                        Some(old) if old.bidder == bid.bidder => old.max,
                        _ => accepted.leader.max,
                    };
                    let leader_now = if bid.proxy {
                        bid.bidder
                    } else {
                        accepted.leader.bidder
                    };
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
                        leader: leader_now,
                        previous_leader,
                        bid_count: lot.bid_count,
                        ends_at: accepted.ends_at,
                        reserve_met: lot
                            .rules
                            .reserve
                            .is_none_or(|reserve| bid.amount >= reserve),
                    };
                    store::append(&mut tx, lot_id, stored.seq, &event).await?;
                }
                lot.price = Some(accepted.price);
                lot.leader = Some(accepted.leader);
                lot.ends_at = accepted.ends_at;
                if let Some(displaced) = accepted.displaced {
                    store::queue_release(&mut tx, displaced.wallet, lot_id, displaced.hold_bid)
                        .await?;
                }
                if accepted.release_own {
                    store::queue_release(&mut tx, bidder.wallet, lot_id, offer.bid_id).await?;
                }
                if accepted.closes {
                    lot.status = Status::Closed;
                    stored.seq += 1;
                    let closed = closing_event(lot_id, stored.seller_wallet, lot);
                    store::append(&mut tx, lot_id, stored.seq, &closed).await?;
                }
                store::save(&mut tx, lot_id, lot, stored.seq).await?;
                let status = if accepted.result == rules::Result::OutbidByProxy {
                    200
                } else {
                    201
                };
                let body = json!({
                    "result": accepted.result.code(),
                    "bid_id": offer.bid_id,
                    "lot_id": lot_id,
                    "amount": accepted.recorded.iter().find(|bid| bid.bid_id == offer.bid_id).map(|bid| bid.amount),
                    "price": accepted.price,
                    "leading": accepted.leader.bidder == bidder.account,
                    "ends_at": accepted.ends_at,
                    "closed": accepted.closes,
                    "sequence": stored.seq,
                });
                (status, body)
            }
        };
        store_answer(&mut tx, bidder.account, key, status, &body).await?;
        tx.commit().await?;
        self.releases.notify_one();
        Ok(Answer {
            status,
            body,
            replayed: false,
        })
    }

    async fn lookup(
        &self,
        bidder: AccountId,
        key: &str,
        fingerprint: &str,
    ) -> Result<Lookup, EngineError> {
        let row: Option<(uuid::Uuid, String, Option<i16>, Option<Value>)> = sqlx::query_as(
            "SELECT bid_id, fingerprint, status_code, response FROM bid_requests WHERE bidder = $1 AND idempotency_key = $2",
        )
        .bind(bidder.0)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(Lookup::New),
            Some((_, stored, ..)) if stored != fingerprint => Err(EngineError::KeyReused),
            Some((_, _, Some(status), Some(body))) => Ok(Lookup::Decided(Answer {
                status: status.unsigned_abs(),
                body,
                replayed: true,
            })),
            Some((bid_id, ..)) => Ok(Lookup::Undecided(BidId(bid_id))),
        }
    }

    async fn lookup_in(
        &self,
        tx: &mut sqlx::PgConnection,
        bidder: AccountId,
        key: &str,
    ) -> Result<Lookup, EngineError> {
        let row: Option<(Option<i16>, Option<Value>)> = sqlx::query_as(
            "SELECT status_code, response FROM bid_requests WHERE bidder = $1 AND idempotency_key = $2 FOR UPDATE",
        )
        .bind(bidder.0)
        .bind(key)
        .fetch_optional(tx)
        .await?;
        Ok(match row {
            Some((Some(status), Some(body))) => Lookup::Decided(Answer {
                status: status.unsigned_abs(),
                body,
                replayed: true,
            }),
            _ => Lookup::New,
        })
    }

    /// Gives the request its bid id, or adopts the one a concurrent twin gave it.
    async fn reserve(
        &self,
        bidder: AccountId,
        key: &str,
        fingerprint: &str,
    ) -> Result<BidId, EngineError> {
        let (bid_id, stored): (uuid::Uuid, String) = sqlx::query_as(
            "INSERT INTO bid_requests (bidder, idempotency_key, bid_id, fingerprint) VALUES ($1, $2, $3, $4)
             ON CONFLICT (bidder, idempotency_key) DO UPDATE SET bidder = EXCLUDED.bidder
             RETURNING bid_id, fingerprint",
        )
        .bind(bidder.0)
        .bind(key)
        .bind(BidId::new().0)
        .bind(fingerprint)
        .fetch_one(&self.pool)
        .await?;
        // A concurrent twin with the same key but another body got there first.
        if stored != fingerprint {
            return Err(EngineError::KeyReused);
        }
        Ok(BidId(bid_id))
    }
}

enum Lookup {
    New,
    Undecided(BidId),
    Decided(Answer),
}

async fn store_answer(
    tx: &mut sqlx::PgConnection,
    bidder: AccountId,
    key: &str,
    status: u16,
    body: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE bid_requests SET status_code = $3, response = $4 WHERE bidder = $1 AND idempotency_key = $2")
        .bind(bidder.0)
        .bind(key)
        .bind(i16::try_from(status).unwrap_or(500))
        .bind(body)
        .execute(tx)
        .await?;
    Ok(())
}

fn refusal_answer(refusal: &Refusal, lot: &Lot) -> (u16, Value) {
    let title = match refusal {
        Refusal::NotOpen => "The auction has not opened yet",
        Refusal::Closed => "The auction is closed",
        Refusal::OwnLot => "Sellers cannot bid on their own lot",
        Refusal::TooLow { .. } => "The bid is below the minimum",
    };
    let mut body = json!({
        "type": format!("urn:gavel:problem:{}", refusal.code()),
        "code": refusal.code(),
        "result": refusal.code(),
        "title": title,
        "status": 409,
    });
    if let Refusal::TooLow { minimum } = refusal {
        body["minimum"] = json!(minimum);
        body["field"] = json!("amount");
        body["detail"] = json!(format!("the next bid must be at least {minimum} wei"));
    }
    if let Refusal::NotOpen = refusal {
        body["starts_at"] = json!(lot.rules.starts_at);
    }
    (409, body)
}

/// The `auction.closed` event for a lot that has just closed.
pub fn closing_event(lot_id: LotId, seller_wallet: EthAddress, lot: &Lot) -> AuctionClosed {
    let outcome = match (lot.leader, lot.price) {
        (Some(leader), Some(price)) if lot.rules.reserve.is_none_or(|reserve| price >= reserve) => {
            Outcome::Sold {
                winner: leader.bidder,
                winner_wallet: leader.wallet,
                price,
                winning_bid: leader.hold_bid,
            }
        }
        (Some(_), Some(price)) => Outcome::ReserveNotMet { highest: price },
        _ => Outcome::Unsold,
    };
    AuctionClosed {
        lot_id,
        seller: lot.seller,
        seller_wallet,
        outcome,
        closed_at: Utc::now(),
    }
}
