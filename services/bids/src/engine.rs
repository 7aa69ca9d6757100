//! Placing a bid, end to end.
//!
//! 1. The bidder's rate limit counts the request (Redis, shared by every replica) — every
//!    request, retries included: a retry of an undecided bid costs as much as a new one. Over
//!    the allowance, a request already decided is still answered as it was (sent again, it is
//!    not a new bid; the same key with another body is 409 even then); anything else is 429.
//! 2. A bid certainly below the lot's minimum, by this replica's last view of a lot that has
//!    bids, is refused at once: its answer is stored under the key unless the key was used
//!    before, nothing else is touched (`crate::known` says why that view can only err on the
//!    side of the full path).
//! 3. Any other request already decided under its `Idempotency-Key` is answered again from the
//!    store.
//! 4. The bid then waits for its lot's writer (`crate::writer`: one task per lot in this replica,
//!    so queued bids hold no database connection), which decides the bids waiting for the lot
//!    in order, in one transaction, **under the lot's row lock**: per bid, the request is claimed
//!    (a fresh bid id, unless a twin decided it meanwhile); the rules decide; a refusal costs no
//!    money. If the bid is accepted, `wallets` holds the bidder's exposure (their maximum) on
//!    the bidding wallet, keyed by the bid id, while the lock is held; then the bids, the new
//!    state, the events (log + outbox), the holds to release and the answer are written. One
//!    commit makes the batch durable; only then is anyone answered. Holding the lock across the
//!    hold keeps one bid per lot in flight, so no two holds of one bidder on one lot can race.
//! 5. After the commit, the release task frees the holds nobody needs any more: the displaced
//!    leader's (or the bidder's own on another wallet), or the bidder's own when the proxy
//!    outbid them.
//!
//! A bid id exists only inside the transaction that chose it: if that transaction does not
//! commit (a crash, `wallets` timing out), the id is never recorded, by anyone, ever. That is what
//! lets [`crate::repair`] tell `wallets` for certain that such a hold backs nothing.

use gavel_common::idempotency::{IdempotencyKey, StoredAnswer};
use gavel_types::{AccountId, EthAddress, LotId, Wei};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::answer::{Decision, Refused};
use crate::known::Known;
use crate::ratelimit::RateLimiter;
use crate::rules;
use crate::store::StoreError;
use crate::wallets::WalletsError;
use crate::writer::Writers;

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
    /// The batch this bid was decided in did not commit (nothing of it was recorded).
    #[error("the lot's batch failed")]
    Batch(#[source] Arc<StoreError>),
    /// The replica is shutting down; the bid was not decided.
    #[error("the engine is stopping")]
    Stopping,
    /// The lot's writer lost the batch this bid was in (a panic): its outcome is unknown, and a
    /// retry under the same key tells.
    #[error("the bid's decision was interrupted")]
    Interrupted,
}

impl EngineError {
    /// The database failure behind this error, if one is.
    pub fn store(&self) -> Option<&StoreError> {
        match self {
            Self::Store(error) => Some(error),
            Self::Batch(error) => Some(error),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for EngineError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

#[derive(Clone, Debug)]
pub struct Engine {
    pub pool: PgPool,
    pub limiter: RateLimiter,
    /// Wakes the release task after a commit that queued releases.
    pub releases: Arc<Notify>,
    /// This replica's last view of each lot, for refusals that need no lock.
    pub known: Known,
    /// The lots' writers, which decide every bid that needs the lot's lock.
    pub writers: Writers,
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
        let fingerprint = serde_json::to_string(&(lot_id, request)).unwrap_or_default();
        if !self.limiter.allow(bidder.account).await? {
            // Over the allowance, a request already decided is still answered as it was: sent
            // again (a retry, the gateway resending after a closed connection) it is not a new
            // bid. Only requests over the allowance pay this lookup before their 429.
            if let Some(answer) = self.decided(bidder.account, key, &fingerprint).await? {
                return Ok(answer);
            }
            return Err(EngineError::RateLimited);
        }
        if let Some(answer) = self
            .refuse_from_memory(bidder, lot_id, key, &fingerprint, request)
            .await?
        {
            return Ok(answer);
        }
        if let Some(answer) = self.decided(bidder.account, key, &fingerprint).await? {
            return Ok(answer);
        }
        self.writers
            .decide(bidder, lot_id, key, fingerprint, request)
            .await
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
        let stored =
            crate::writer::store_decided(&self.pool, bidder.account, key, fingerprint, &answer)
                .await?;
        Ok(stored.then_some(answer))
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
