//! The auction rules as pure functions: what a bid does to a lot's state. No I/O here, so every
//! case (increments, proxies, ties, buy-now, reserve, anti-sniping) is a table test; the engine
//! applies the decision under the lot's row lock.

use chrono::{DateTime, Duration, Utc};
use gavel_events::{Increment, LotRules, Outcome};
use gavel_types::{AccountId, BidId, EthAddress, Wei};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Scheduled,
    Open,
    Closed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the auction has ended (closed or withdrawn).
    pub fn ended(self) -> bool {
        matches!(self, Self::Closed | Self::Cancelled)
    }
}

impl std::str::FromStr for Status {
    type Err = ();

    fn from_str(raw: &str) -> std::result::Result<Self, ()> {
        match raw {
            "scheduled" => Ok(Self::Scheduled),
            "open" => Ok(Self::Open),
            "closed" => Ok(Self::Closed),
            "cancelled" => Ok(Self::Cancelled),
            _ => Err(()),
        }
    }
}

/// The current leader and how far their proxy may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    pub bidder: AccountId,
    pub wallet: EthAddress,
    /// The bidder's maximum (their amount when they gave no maximum).
    pub max: Wei,
    /// The bid whose hold covers `max`.
    pub hold_bid: BidId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lot {
    pub seller: AccountId,
    pub rules: LotRules,
    pub status: Status,
    pub price: Option<Wei>,
    pub leader: Option<Leader>,
    pub ends_at: DateTime<Utc>,
    pub bid_count: i64,
}

/// A bid as the bidder gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub bid_id: BidId,
    pub bidder: AccountId,
    pub wallet: EthAddress,
    pub amount: Wei,
    /// A proxy maximum: the engine bids for them up to this.
    pub max: Option<Wei>,
}

impl Offer {
    /// What the bidder is prepared to pay at most: what `wallets` must hold.
    pub fn cap(&self) -> Wei {
        self.max.map_or(self.amount, |max| max.max(self.amount))
    }
}

/// Why a bid was refused before anything was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotOpen,
    Closed,
    OwnLot,
    TooLow { minimum: Wei },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotOpen => "not_open",
            Self::Closed => "closed",
            Self::OwnLot => "own_lot",
            Self::TooLow { .. } => "too_low",
        }
    }
}

/// How an accepted bid turned out for its bidder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    Accepted,
    AcceptedBelowReserve,
    OutbidByProxy,
}

impl Result {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::AcceptedBelowReserve => "accepted_below_reserve",
            Self::OutbidByProxy => "outbid_by_proxy",
        }
    }
}

/// One bid to record, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub bid_id: BidId,
    pub bidder: AccountId,
    pub wallet: EthAddress,
    pub amount: Wei,
    pub proxy: bool,
}

/// What an accepted bid does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub result: Result,
    /// The bids to record, in order (a proxy's answer follows the bid it answers).
    pub recorded: Vec<Recorded>,
    pub price: Wei,
    pub leader: Leader,
    pub ends_at: DateTime<Utc>,
    /// Buy-now reached: the auction ends with this bid.
    pub closes: bool,
    /// The previous leader whose hold must be released, when someone else now leads.
    pub displaced: Option<Leader>,
    /// The bidder's own hold to release, when their bid did not take the lead.
    pub release_own: bool,
}

/// The smallest step above `price`.
pub fn increment(rules: &LotRules, price: Wei) -> Wei {
    match rules.increment {
        Increment::Absolute { wei } => wei.max(Wei::from_u128(1)),
        Increment::BasisPoints { bps } => {
            let step = price.as_u256() * alloy_primitives::U256::from(bps)
                / alloy_primitives::U256::from(10_000u32);
            Wei::from_u256(step).max(Wei::from_u128(1))
        }
    }
}

/// The least the next bid may be.
pub fn minimum_next(lot: &Lot) -> Wei {
    match lot.price {
        None => lot.rules.start_price,
        Some(price) => price
            .checked_add(increment(&lot.rules, price))
            .unwrap_or(price),
    }
}

/// `a + increment(a)`, capped at `cap`.
fn step_above(rules: &LotRules, a: Wei, cap: Wei) -> Wei {
    a.checked_add(increment(rules, a)).unwrap_or(cap).min(cap)
}

/// The buy-now price while it is still on offer: once the bidding has reached it, buy-now is gone
/// (as on eBay), so nobody can buy below the standing price.
pub fn buy_now_available(lot: &Lot) -> Option<Wei> {
    lot.rules
        .buy_now
        .filter(|buy_now| lot.price.is_none_or(|price| price < *buy_now))
}

/// Whether the lot accepts bids at `now`.
pub fn check_open(lot: &Lot, now: DateTime<Utc>) -> std::result::Result<(), Refusal> {
    match lot.status {
        Status::Open if now < lot.ends_at => Ok(()),
        Status::Scheduled if now < lot.rules.starts_at => Err(Refusal::NotOpen),
        // Past its start but not yet opened by the scheduler: the bid waits for nobody.
        Status::Scheduled if now < lot.ends_at => Err(Refusal::NotOpen),
        _ => Err(Refusal::Closed),
    }
}

/// Decides what `offer` does to `lot` at `now`.
pub fn decide(
    lot: &Lot,
    offer: &Offer,
    now: DateTime<Utc>,
) -> std::result::Result<Accepted, Refusal> {
    check_open(lot, now)?;
    if offer.bidder == lot.seller {
        return Err(Refusal::OwnLot);
    }
    let minimum = minimum_next(lot);
    if offer.amount < minimum {
        return Err(Refusal::TooLow { minimum });
    }
    let rules = &lot.rules;
    let cap = offer.cap();
    let own = |amount: Wei| Recorded {
        bid_id: offer.bid_id,
        bidder: offer.bidder,
        wallet: offer.wallet,
        amount,
        proxy: false,
    };
    let newcomer = Leader {
        bidder: offer.bidder,
        wallet: offer.wallet,
        max: cap,
        hold_bid: offer.bid_id,
    };
    // The hold that stops backing the lead once this bid is recorded: another account's, or the
    // bidder's own on another wallet (a leader bidding again from a second linked wallet moves
    // the lead, and the hold, to the wallet that bids).
    let previous = lot
        .leader
        .filter(|leader| leader.bidder != offer.bidder || leader.wallet != offer.wallet);

    // Buy-now, while on offer: an explicit amount at or above it ends the auction at the buy-now
    // price, whatever proxies stand (a proxy never triggers buy-now on its own).
    if let Some(buy_now) = buy_now_available(lot)
        && offer.amount >= buy_now
    {
        let leader = Leader {
            max: buy_now.max(cap),
            ..newcomer
        };
        return Ok(finish(
            lot,
            now,
            Result::Accepted,
            vec![own(buy_now)],
            buy_now,
            leader,
            previous,
            true,
        ));
    }

    let (recorded, price, leader, result) = match lot.leader {
        // The leader bids again: their price rises to the amount, their maximum to the cap.
        Some(current) if current.bidder == offer.bidder => {
            // The engine holds max(cap, current max) on the bidding wallet for this bid, so that
            // hold now backs the lead.
            let leader = Leader {
                max: cap.max(current.max),
                hold_bid: offer.bid_id,
                wallet: offer.wallet,
                ..current
            };
            (
                vec![own(offer.amount)],
                offer.amount,
                leader,
                Result::Accepted,
            )
        }
        // The leader's proxy covers this bid: it answers just above it (or matches a tie,
        // which the earlier maximum wins).
        Some(current) if cap <= current.max => {
            let answer = step_above(rules, cap, current.max);
            let mut recorded = vec![own(offer.amount)];
            if answer > offer.amount {
                recorded.push(Recorded {
                    bid_id: BidId::new(),
                    bidder: current.bidder,
                    wallet: current.wallet,
                    amount: answer,
                    proxy: true,
                });
            }
            (
                recorded,
                answer.max(offer.amount),
                current,
                Result::OutbidByProxy,
            )
        }
        // The newcomer leads. If the old leader's proxy had room, it first bids up to its max.
        Some(current) => {
            let mut recorded = Vec::new();
            let price_now = lot.price.unwrap_or(Wei::ZERO);
            if current.max > price_now
                && current.max < offer.amount.max(step_above(rules, current.max, cap))
            {
                recorded.push(Recorded {
                    bid_id: BidId::new(),
                    bidder: current.bidder,
                    wallet: current.wallet,
                    amount: current.max,
                    proxy: true,
                });
            }
            let price = offer.amount.max(step_above(rules, current.max, cap));
            recorded.push(own(price));
            (recorded, price, newcomer, Result::Accepted)
        }
        None => (
            vec![own(offer.amount)],
            offer.amount,
            newcomer,
            Result::Accepted,
        ),
    };
    let result = match result {
        Result::Accepted if rules.reserve.is_some_and(|reserve| price < reserve) => {
            Result::AcceptedBelowReserve
        }
        other => other,
    };
    let displaced = if leader.bidder == offer.bidder {
        previous
    } else {
        None
    };
    Ok(finish(
        lot, now, result, recorded, price, leader, displaced, false,
    ))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one constructor for the two ways a bid ends up accepted"
)]
fn finish(
    lot: &Lot,
    now: DateTime<Utc>,
    result: Result,
    recorded: Vec<Recorded>,
    price: Wei,
    leader: Leader,
    displaced: Option<Leader>,
    closes: bool,
) -> Accepted {
    let release_own = result == Result::OutbidByProxy;
    let ends_at = if closes { now } else { extended_end(lot, now) };
    Accepted {
        result,
        recorded,
        price,
        leader,
        ends_at,
        closes,
        displaced,
        release_own,
    }
}

/// How the auction ends in its current state: sold to the leader at the price when the reserve is
/// met, otherwise reserve not met, or unsold without bids.
pub fn outcome(lot: &Lot) -> Outcome {
    match (lot.leader, lot.price) {
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
    }
}

/// Anti-sniping: a bid within the window before the end pushes the end out by the extension,
/// never past the latest end.
pub fn extended_end(lot: &Lot, now: DateTime<Utc>) -> DateTime<Utc> {
    let window = Duration::seconds(i64::from(lot.rules.snipe_window_secs));
    if lot.rules.snipe_window_secs == 0 || now < lot.ends_at - window {
        return lot.ends_at;
    }
    let extended = lot.ends_at + Duration::seconds(i64::from(lot.rules.extension_secs));
    extended.min(lot.rules.latest_end).max(lot.ends_at)
}

#[cfg(test)]
mod tests;
