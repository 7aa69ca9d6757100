//! One writer per lot: the bids that reach a lot's queue are decided in order, in batches that
//! share one transaction and one commit (group commit).
//!
//! Each replica has [`LANES`] writer tasks; a lot always goes to the same one (by its id), so
//! a lot's bids in this replica are decided one after another by one task, and no request
//! holds a database connection while it waits. Across replicas the lot's row lock still decides.
//!
//! A writer takes every bid already waiting for the lot (at most [`BATCH`]), locks the lot's row
//! once and decides them in arrival order against the lot's state as it changes in memory. Each
//! bid runs in a savepoint of its own: claim, rules, the hold in `wallets` for an accepted one,
//! the records and the answer. One commit then makes every decision of the batch durable at
//! once, and only then is any bidder answered — nobody hears of a bid before it is committed.
//! A batch of one needs no savepoint: the transaction is the bid's, and rolling it back is what
//! rolling back its savepoint would have been.
//!
//! Failures stay with their bid where they can:
//! - a reused key, or a statement that fails for one bid, rolls back that bid's savepoint and
//!   fails it alone; the batch goes on;
//! - `wallets` failing (down, timing out) rolls back that bid's savepoint, answers it with the
//!   error, commits what was decided before it, and leaves the bids behind it for the next
//!   batch, so an outage costs each waiting bid one try, as it did one bid at a time;
//! - losing the transaction (the connection, the commit) loses the whole batch: nothing of it
//!   commits, every bid of it gets the error, and a retry under the same key decides afresh.
//!
//! The crash-repair story is unchanged: a bid id still lives only in the transaction that chose
//! it. A hold placed for a bid whose savepoint or batch did not commit backs nothing that will
//! ever be recorded, and [`crate::repair`] releases it exactly as after a crash.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use gavel_common::BoxError;

use gavel_common::idempotency::{IdempotencyKey, StoredAnswer};
use gavel_events::BidAccepted;
use gavel_types::{AccountId, BidId, LotId, Wei};
use prometheus::Histogram;
use serde_json::Value;
use sqlx::{Acquire, PgConnection, PgPool};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::answer::{Accepted, Decision, Refused};
use crate::engine::{BidRequest, Bidder, EngineError, Hooks};
use crate::known::Known;
use crate::rules::{self, Offer};
use crate::store::{self, StoreError, Stored};
use crate::wallets::{Placed, Wallets};

/// How many writer tasks (and queues) a replica runs; lots share them by hash.
pub const LANES: usize = 1024;
/// The most bids one batch decides.
pub const BATCH: usize = 32;
/// Bids waiting in one lane before senders wait too (the gateway bounds what it sends anyway).
const LANE_DEPTH: usize = 1024;

/// A bid waiting for its lot's writer.
#[derive(Debug)]
struct Pending {
    bidder: Bidder,
    key: IdempotencyKey,
    fingerprint: String,
    request: BidRequest,
    lot_id: LotId,
    reply: oneshot::Sender<Result<StoredAnswer, EngineError>>,
}

/// What a writer needs to decide bids.
#[derive(Clone, Debug)]
pub struct Decider {
    pub pool: PgPool,
    pub wallets: Wallets,
    pub hooks: Hooks,
    pub known: Known,
    /// Wakes the release task after a commit that queued releases.
    pub releases: Arc<Notify>,
    /// Bids per batch.
    pub batch_size: Histogram,
}

/// The senders of every lane.
#[derive(Clone, Debug)]
pub struct Writers {
    lanes: Arc<[mpsc::Sender<Pending>]>,
}

/// The writers themselves, to be run as one of the service's tasks ([`Lanes::run`]).
#[derive(Debug)]
pub struct Lanes {
    decider: Decider,
    receivers: Vec<mpsc::Receiver<Pending>>,
}

impl Writers {
    /// The queues of [`LANES`] writers, and the writers to run.
    pub fn new(decider: Decider) -> (Self, Lanes) {
        let (lanes, receivers): (Vec<_>, Vec<_>) =
            (0..LANES).map(|_| mpsc::channel(LANE_DEPTH)).unzip();
        (
            Self {
                lanes: lanes.into(),
            },
            Lanes { decider, receivers },
        )
    }

    /// Queues the bid for its lot's writer and waits for its decision.
    pub async fn decide(
        &self,
        bidder: Bidder,
        lot_id: LotId,
        key: &IdempotencyKey,
        fingerprint: String,
        request: &BidRequest,
    ) -> Result<StoredAnswer, EngineError> {
        let lane = lane_of(lot_id);
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            bidder,
            key: key.clone(),
            fingerprint,
            request: request.clone(),
            lot_id,
            reply,
        };
        self.lanes[lane]
            .send(pending)
            .await
            .map_err(|_| EngineError::Stopping)?;
        // A dropped reply means the writer lost the batch (a panic): the outcome is unknown.
        answer.await.map_err(|_| EngineError::Interrupted)?
    }
}

/// The lane (writer) a lot's bids go to in every replica: by the random last bytes of its id.
/// Two lots in one lane wait for each other (a lot stuck on its row lock holds up the lots
/// behind it in its lane, one in [`LANES`]).
pub fn lane_of(lot_id: LotId) -> usize {
    let bytes = lot_id.0.as_bytes();
    (usize::from(bytes[15]) | (usize::from(bytes[14]) << 8)) % LANES
}

impl Lanes {
    /// Runs every writer until `cancel` (the service cancels its tasks only after the HTTP
    /// listeners have drained): each finishes the batch it is deciding, then answers the bids
    /// still queued with [`EngineError::Stopping`] (none decided, a retry goes to another
    /// replica) and stops.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        let mut lanes = JoinSet::new();
        for receiver in self.receivers {
            lanes.spawn(lane(self.decider.clone(), receiver, cancel.clone()));
        }
        while lanes.join_next().await.is_some() {}
        Ok(())
    }
}

/// A writer: takes what is waiting, a lot at a time, and decides it in batches.
async fn lane(decider: Decider, mut receiver: mpsc::Receiver<Pending>, cancel: CancellationToken) {
    let mut waiting: VecDeque<Pending> = VecDeque::new();
    while !cancel.is_cancelled() {
        if waiting.is_empty() {
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                next = receiver.recv() => match next {
                    Some(pending) => waiting.push_back(pending),
                    None => return,
                },
            }
        }
        while waiting.len() < BATCH * 4 {
            match receiver.try_recv() {
                Ok(pending) => waiting.push_back(pending),
                Err(_) => break,
            }
        }
        // The oldest bid's lot goes first, with every bid of that lot waiting behind it.
        let lot_id = waiting[0].lot_id;
        let mut batch = Vec::new();
        let mut others = VecDeque::with_capacity(waiting.len());
        for pending in waiting.drain(..) {
            if pending.lot_id == lot_id && batch.len() < BATCH {
                batch.push(pending);
            } else {
                others.push_back(pending);
            }
        }
        // A panic loses this batch only (its bids are answered `Interrupted`; nothing of it
        // committed unless the panic came after the commit, and then a retry replays), never
        // the lane: the lots behind it keep their writer.
        let left = match AssertUnwindSafe(decider.decide_batch(lot_id, batch))
            .catch_unwind()
            .await
        {
            Ok(left) => left,
            Err(_) => {
                error!(%lot_id, "a lot's writer panicked; the bids of its batch were interrupted");
                Vec::new()
            }
        };
        waiting = left.into_iter().chain(others).collect();
    }
    receiver.close();
    while let Ok(pending) = receiver.try_recv() {
        waiting.push_back(pending);
    }
    for pending in waiting {
        let _ = pending.reply.send(Err(EngineError::Stopping));
    }
}

/// The outcome of one bid inside a batch.
enum Step {
    /// Decided (accepted or refused), or replayed from a twin: answer it after the commit.
    Answer(StoredAnswer, bool),
    /// Not decided (a reused key, a statement that failed): its savepoint (alone: the
    /// transaction) is rolled back, it gets the error after the commit, the batch goes on.
    Fail(EngineError),
    /// `wallets` failed: answer it, commit the batch so far, leave the rest for the next one.
    Stop(EngineError),
}

impl Decider {
    /// Decides `batch` (bids of one lot, in arrival order) in one transaction. Returns the bids
    /// it did not get to (after a `wallets` failure), to go first in the next batch.
    async fn decide_batch(&self, lot_id: LotId, batch: Vec<Pending>) -> Vec<Pending> {
        self.batch_size.observe(batch.len() as f64);
        let mut answered = Vec::with_capacity(batch.len());
        let mut left = Vec::new();
        let result = self
            .decide_in_transaction(lot_id, batch, &mut answered, &mut left)
            .await;
        match result {
            Ok(outcome) => {
                if let Some(stored) = outcome.stored {
                    self.known.remember(lot_id, &stored.lot);
                }
                if outcome.accepted {
                    self.releases.notify_one();
                }
                for (pending, answer) in answered {
                    let _ = pending.reply.send(answer);
                }
            }
            Err(error) => {
                // Nothing of the batch committed: every bid in it gets the error.
                let error = Arc::new(error);
                for (pending, _) in answered {
                    let _ = pending.reply.send(Err(EngineError::Batch(error.clone())));
                }
                for pending in left.drain(..) {
                    let _ = pending.reply.send(Err(EngineError::Batch(error.clone())));
                }
            }
        }
        left
    }

    async fn decide_in_transaction(
        &self,
        lot_id: LotId,
        batch: Vec<Pending>,
        answered: &mut Vec<(Pending, Result<StoredAnswer, EngineError>)>,
        left: &mut Vec<Pending>,
    ) -> Result<Committed, StoreError> {
        let mut tx = match self.pool.begin().await {
            Ok(tx) => tx,
            Err(error) => {
                left.extend(batch);
                return Err(error.into());
            }
        };
        let mut stored = match store::load(&mut *tx, lot_id, true).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                answered.extend(
                    batch
                        .into_iter()
                        .map(|pending| (pending, Err(EngineError::UnknownLot))),
                );
                return Ok(Committed {
                    stored: None,
                    accepted: false,
                });
            }
            Err(error) => {
                left.extend(batch);
                return Err(error);
            }
        };
        let mut accepted = false;
        // A batch of one (the common case across many lots) is the bid's own transaction: no
        // savepoint (two statements fewer); what it did not decide is rolled back with it.
        let alone = batch.len() == 1;
        let mut undone = false;
        let mut rest = batch.into_iter();
        while let Some(pending) = rest.next() {
            let before = stored.clone();
            let step = if alone {
                Ok(self
                    .decide_one(&mut tx, &mut stored, &pending)
                    .await
                    .unwrap_or_else(|error| Step::Fail(EngineError::Store(error))))
            } else {
                self.decide_saved(&mut tx, &mut stored, &pending).await
            };
            match step {
                Err(error) => {
                    left.push(pending);
                    left.extend(rest);
                    return Err(error);
                }
                Ok(Step::Answer(answer, was_accepted)) => {
                    accepted |= was_accepted;
                    answered.push((pending, Ok(answer)));
                }
                Ok(Step::Fail(error)) => {
                    stored = before;
                    undone = alone;
                    answered.push((pending, Err(error)));
                }
                Ok(Step::Stop(error)) => {
                    stored = before;
                    undone = alone;
                    answered.push((pending, Err(error)));
                    break;
                }
            }
        }
        left.extend(rest);
        if undone {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(Committed {
            stored: Some(stored),
            accepted,
        })
    }

    /// [`Self::decide_one`] inside a savepoint, kept when the bid was decided, rolled back when
    /// it was not. A statement that fails (a constraint, a deadlock with another lot's writer
    /// over one bidder's keys) fails this bid alone; `Err` only when the transaction itself is
    /// lost (the savepoint cannot even be rolled back), which loses the batch.
    async fn decide_saved(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        stored: &mut Stored,
        pending: &Pending,
    ) -> Result<Step, StoreError> {
        let mut savepoint = Acquire::begin(&mut *tx).await?;
        match self.decide_one(&mut savepoint, stored, pending).await {
            Ok(step @ Step::Answer(..)) => {
                savepoint.commit().await?;
                Ok(step)
            }
            Ok(step) => {
                savepoint.rollback().await?;
                Ok(step)
            }
            Err(error) => {
                savepoint.rollback().await?;
                Ok(Step::Fail(EngineError::Store(error)))
            }
        }
    }

    /// One bid, under the lot's lock, inside its savepoint. `Err` only for a database failure,
    /// which loses the batch.
    async fn decide_one(
        &self,
        tx: &mut PgConnection,
        stored: &mut Stored,
        pending: &Pending,
    ) -> Result<Step, StoreError> {
        if let Some(step) = refuse_at_once(tx, stored, pending).await? {
            return Ok(step);
        }
        let bid_id = match claim(
            tx,
            pending.bidder.account,
            &pending.key,
            &pending.fingerprint,
        )
        .await?
        {
            Claim::Decided(answer) => return Ok(Step::Answer(answer, false)),
            Claim::Reused => return Ok(Step::Fail(EngineError::KeyReused)),
            Claim::Fresh(bid_id) => bid_id,
        };
        let offer = Offer {
            bid_id,
            bidder: pending.bidder.account,
            wallet: pending.bidder.wallet,
            amount: pending.request.amount,
            max: pending.request.max_amount,
        };
        let decision = match rules::decide(&stored.lot, &offer, stored.now) {
            Err(refusal) => Decision::Refused(Refused::Rules {
                refusal,
                starts_at: stored.lot.rules.starts_at,
            }),
            Ok(accepted) => match self
                .accept(tx, pending.lot_id, stored, &offer, accepted)
                .await
            {
                Ok(decision) => decision,
                Err(AcceptError::Store(error)) => return Err(error),
                Err(AcceptError::Wallets(error)) => return Ok(Step::Stop(error.into())),
            },
        };
        let answer = decision.stored();
        store_answer(tx, pending.bidder.account, &pending.key, &answer).await?;
        Ok(Step::Answer(
            answer,
            matches!(decision, Decision::Accepted(_)),
        ))
    }

    /// Holds the money for an accepted bid and records it, or refuses it when the wallet cannot.
    async fn accept(
        &self,
        tx: &mut PgConnection,
        lot_id: LotId,
        stored: &mut Stored,
        offer: &Offer,
        accepted: rules::Accepted,
    ) -> Result<Decision, AcceptError> {
        // The bidder's whole exposure on this lot: their maximum, or the larger one they already
        // lead with (a raise never lowers what backs the lead).
        let exposure = match stored.lot.leader {
            Some(leader) if leader.bidder == offer.bidder => offer.cap().max(leader.max),
            _ => offer.cap(),
        };
        let placed = self
            .wallets
            .place(offer.bidder, offer.wallet, lot_id, exposure, offer.bid_id)
            .await
            .map_err(AcceptError::Wallets)?;
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
}

/// A bid the rules refuse (too low, not open, closed, the seller's own) needs no money and no
/// claim: one insert stores its answer under the key, and the lot is untouched. `None` when the
/// rules would accept it, or the key was used before (the full path then replays its answer or
/// refuses the reuse). It runs inside the bid's savepoint like the rest, so a failing insert (a
/// deadlock with another lot's writer over one bidder's keys) fails this bid alone.
async fn refuse_at_once(
    tx: &mut PgConnection,
    stored: &Stored,
    pending: &Pending,
) -> Result<Option<Step>, StoreError> {
    let offer = Offer {
        bid_id: BidId::new(),
        bidder: pending.bidder.account,
        wallet: pending.bidder.wallet,
        amount: pending.request.amount,
        max: pending.request.max_amount,
    };
    let Err(refusal) = rules::decide(&stored.lot, &offer, stored.now) else {
        return Ok(None);
    };
    let answer = Decision::Refused(Refused::Rules {
        refusal,
        starts_at: stored.lot.rules.starts_at,
    })
    .stored();
    let fresh = store_decided(
        &mut *tx,
        pending.bidder.account,
        &pending.key,
        &pending.fingerprint,
        &answer,
    )
    .await?;
    Ok(fresh.then_some(Step::Answer(answer, false)))
}

/// Stores a request decided without a claim (a refusal) with its answer; `false` when the key
/// was used before, which leaves the stored row as it was.
pub(crate) async fn store_decided(
    executor: impl sqlx::PgExecutor<'_>,
    bidder: AccountId,
    key: &IdempotencyKey,
    fingerprint: &str,
    answer: &StoredAnswer,
) -> Result<bool, sqlx::Error> {
    let stored = sqlx::query(
        "INSERT INTO bid_requests (bidder, idempotency_key, bid_id, fingerprint, status_code, response)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (bidder, idempotency_key) DO NOTHING",
    )
    .bind(bidder.0)
    .bind(key.as_str())
    .bind(BidId::new().0)
    .bind(fingerprint)
    .bind(i16::try_from(answer.status).unwrap_or(500))
    .bind(&answer.body)
    .execute(executor)
    .await?
    .rows_affected();
    Ok(stored == 1)
}

/// What a committed batch leaves behind.
struct Committed {
    /// The lot as the batch left it (`None`: no such lot).
    stored: Option<Stored>,
    /// Whether any bid was accepted (releases may be queued).
    accepted: bool,
}

#[derive(Debug, thiserror::Error)]
enum AcceptError {
    #[error(transparent)]
    Wallets(crate::wallets::WalletsError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
        store::append_bid(tx, lot_id, stored.seq, bid, &event).await?;
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
    /// A twin request with this key decided before this one.
    Decided(StoredAnswer),
    /// The key was used for a different bid.
    Reused,
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
) -> Result<Claim, sqlx::Error> {
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
        return Ok(Claim::Reused);
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
