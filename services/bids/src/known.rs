//! What this replica last saw of each lot, to refuse bids that are certainly too low without
//! queueing them behind the lot or touching its row.
//!
//! A snapshot is taken after every bid this replica commits. It is only ever *behind* the truth
//! (another replica's bids raise the price without it), and it is used only where being behind
//! cannot change a refusal into an acceptance:
//! - the lot has at least one bid, so its rules are frozen (sellers' changes are refused after
//!   the first bid) and its price only rises;
//! - the minimum next bid grows with the price (every increment rule is monotone), so an amount
//!   below the snapshot's minimum is below the true one;
//! - the snapshot's end is comfortably ahead of this machine's clock (ends only move later), so
//!   the lot is not about to be refused as closed instead.
//!
//! A refusal decided here is stored under its `Idempotency-Key` like any other, so a retry replays
//! it. Its `minimum` is the snapshot's: with one replica the exact one, with several possibly a
//! little low (the bidder's next try is then refused with the true one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use gavel_types::{AccountId, LotId, Wei};

use crate::rules::{self, Lot, Status};

const SHARDS: usize = 64;
/// Lots remembered per shard before the shard forgets them all (they are re-learned on the next
/// bid each): about a quarter of a million lots at most.
const PER_SHARD: usize = 4_096;
/// How far ahead of this machine's clock a lot's end must be for a refusal from memory.
const END_MARGIN: chrono::Duration = chrono::Duration::seconds(2);

type Shard = Mutex<HashMap<LotId, Arc<Lot>>>;

/// A snapshot of each lot this replica has bid on.
#[derive(Debug, Clone)]
pub struct Known {
    shards: Arc<[Shard]>,
}

impl Default for Known {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Known {
    fn shard(&self, lot_id: LotId) -> std::sync::MutexGuard<'_, HashMap<LotId, Arc<Lot>>> {
        self.shards[lot_id.0.as_u128() as usize % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers the lot as committed; forgets it once it has ended.
    pub fn remember(&self, lot_id: LotId, lot: &Lot) {
        let mut shard = self.shard(lot_id);
        if lot.status.ended() {
            shard.remove(&lot_id);
            return;
        }
        if shard.len() >= PER_SHARD && !shard.contains_key(&lot_id) {
            shard.clear();
        }
        shard.insert(lot_id, Arc::new(lot.clone()));
    }

    /// The minimum the bid certainly falls short of, if it does: a refusal that needs neither the
    /// lot's lock nor its row.
    pub fn certainly_too_low(
        &self,
        lot_id: LotId,
        bidder: AccountId,
        amount: Wei,
        now: DateTime<Utc>,
    ) -> Option<Wei> {
        let lot = self.shard(lot_id).get(&lot_id).cloned()?;
        too_low(&lot, bidder, amount, now)
    }
}

fn too_low(lot: &Lot, bidder: AccountId, amount: Wei, now: DateTime<Utc>) -> Option<Wei> {
    let settled = lot.status == Status::Open && lot.bid_count > 0 && lot.ends_at > now + END_MARGIN;
    // The seller is told it is their own lot, whatever the amount.
    if !settled || bidder == lot.seller {
        return None;
    }
    let minimum = rules::minimum_next(lot);
    (amount < minimum).then_some(minimum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_events::{Increment, LotRules};

    fn lot(price: Option<u128>, bid_count: i64, ends_in: i64) -> Lot {
        let now = Utc::now();
        Lot {
            seller: AccountId(uuid::Uuid::from_u128(1)),
            rules: LotRules {
                start_price: Wei::from_u128(100),
                increment: Increment::Absolute {
                    wei: Wei::from_u128(10),
                },
                reserve: None,
                buy_now: None,
                starts_at: now,
                ends_at: now + chrono::Duration::hours(1),
                latest_end: now + chrono::Duration::hours(1),
                snipe_window_secs: 0,
                extension_secs: 0,
            },
            status: Status::Open,
            price: price.map(Wei::from_u128),
            leader: None,
            ends_at: now + chrono::Duration::seconds(ends_in),
            bid_count,
        }
    }

    #[test]
    fn only_a_bid_below_a_settled_lots_minimum_is_refused_from_memory() {
        let bidder = AccountId(uuid::Uuid::from_u128(2));
        let now = Utc::now();
        let bid = |lot: &Lot, amount: u128| too_low(lot, bidder, Wei::from_u128(amount), now);
        let bidding = lot(Some(200), 3, 600);
        assert_eq!(bid(&bidding, 209), Some(Wei::from_u128(210)));
        assert_eq!(
            bid(&bidding, 210),
            None,
            "at the minimum: the engine decides"
        );
        // No bid yet: the seller may still lower the start price.
        assert_eq!(bid(&lot(None, 0, 600), 50), None);
        // About to end: the engine decides (it may be closed, not too low).
        assert_eq!(bid(&lot(Some(200), 3, 1), 100), None);
        let mut closed = lot(Some(200), 3, 600);
        closed.status = Status::Closed;
        assert_eq!(bid(&closed, 100), None);
        let seller = closed.seller;
        assert_eq!(too_low(&bidding, seller, Wei::from_u128(1), now), None);
    }

    #[test]
    fn an_ended_lot_is_forgotten() {
        let known = Known::default();
        let id = LotId(uuid::Uuid::from_u128(9));
        let bidder = AccountId(uuid::Uuid::from_u128(2));
        let mut lot = lot(Some(200), 1, 600);
        known.remember(id, &lot);
        assert!(
            known
                .certainly_too_low(id, bidder, Wei::from_u128(1), Utc::now())
                .is_some()
        );
        lot.status = Status::Closed;
        known.remember(id, &lot);
        assert!(
            known
                .certainly_too_low(id, bidder, Wei::from_u128(1), Utc::now())
                .is_none()
        );
    }
}
