//! The event contracts between Gavel's services: for each event type, its routing key, version
//! and payload. Producers and consumers both depend on this crate, so a payload change is a
//! compile error on both sides, and an incompatible one gets a new version.

use chrono::{DateTime, Utc};
use gavel_messaging::Event;
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use serde::{Deserialize, Serialize};

/// How much a bid must exceed the current price by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Increment {
    /// A fixed amount in wei.
    Absolute { wei: Wei },
    /// A share of the current price, in basis points (1/100 of a percent), at least 1 wei.
    BasisPoints { bps: u32 },
}

/// The rules of a lot's auction, fixed by the seller before the first bid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotRules {
    pub start_price: Wei,
    pub increment: Increment,
    /// Hidden from bidders: only whether it is met is shown.
    pub reserve: Option<Wei>,
    pub buy_now: Option<Wei>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Anti-sniping never extends the end past this.
    pub latest_end: DateTime<Utc>,
    /// A bid this close to the end extends it...
    pub snipe_window_secs: u32,
    /// ...by this much.
    pub extension_secs: u32,
}

/// `lots`: a seller put a lot up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotCreated {
    pub lot_id: LotId,
    pub seller: AccountId,
    pub seller_wallet: EthAddress,
    pub title: String,
    pub rules: LotRules,
}

impl Event for LotCreated {
    const TYPE: &'static str = "lot.created";
    const VERSION: u16 = 1;
}

/// `lots`: the seller changed a lot before its first bid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotUpdated {
    pub lot_id: LotId,
    pub title: String,
    pub rules: LotRules,
}

impl Event for LotUpdated {
    const TYPE: &'static str = "lot.updated";
    const VERSION: u16 = 1;
}

/// `lots`: the seller withdrew a lot before its first bid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotCancelled {
    pub lot_id: LotId,
}

impl Event for LotCancelled {
    const TYPE: &'static str = "lot.cancelled";
    const VERSION: u16 = 1;
}

/// `bids`: a lot's auction opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionOpened {
    pub lot_id: LotId,
    pub ends_at: DateTime<Utc>,
}

impl Event for AuctionOpened {
    const TYPE: &'static str = "auction.opened";
    const VERSION: u16 = 1;
}

/// `bids`: a lot was withdrawn before its first bid, or cancelled by an operator (with bids or
/// not; then `reason` says why, and the leader's hold is released).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionCancelled {
    pub lot_id: LotId,
    /// The operator's reason; absent when the seller withdrew the lot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event for AuctionCancelled {
    const TYPE: &'static str = "auction.cancelled";
    const VERSION: u16 = 1;
}

/// `bids`: the seller changed a lot before its first bid. Only what bidders may see: the reserve
/// itself stays hidden.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionUpdated {
    pub lot_id: LotId,
    pub title: String,
    pub start_price: Wei,
    pub increment: Increment,
    pub has_reserve: bool,
    pub buy_now: Option<Wei>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

impl Event for AuctionUpdated {
    const TYPE: &'static str = "auction.updated";
    const VERSION: u16 = 1;
}

/// `bids` recorded a bid (a bidder's own, or one the proxy placed for them), and the lot's state
/// after it. Carries the lot's sequence number in the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidAccepted {
    pub lot_id: LotId,
    pub bid_id: BidId,
    pub bidder: AccountId,
    pub wallet: EthAddress,
    pub amount: Wei,
    /// What `wallets` holds for this bidder on this lot after the bid.
    pub held: Wei,
    /// Placed by the proxy on the bidder's behalf.
    pub proxy: bool,
    pub at: DateTime<Utc>,
    /// The lot after this bid.
    pub price: Wei,
    pub leader: AccountId,
    pub previous_leader: Option<AccountId>,
    pub bid_count: i64,
    pub ends_at: DateTime<Utc>,
    pub reserve_met: bool,
}

impl Event for BidAccepted {
    const TYPE: &'static str = "auction.bid_accepted";
    const VERSION: u16 = 1;
}

/// How an auction ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Sold {
        winner: AccountId,
        winner_wallet: EthAddress,
        price: Wei,
        winning_bid: BidId,
    },
    Unsold,
    ReserveNotMet {
        highest: Wei,
    },
}

/// `bids` closed an auction (exactly once per lot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionClosed {
    pub lot_id: LotId,
    pub seller: AccountId,
    /// Where the winner pays.
    pub seller_wallet: EthAddress,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub closed_at: DateTime<Utc>,
    /// An operator's reason when the auction was closed before its end; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Event for AuctionClosed {
    const TYPE: &'static str = "auction.closed";
    const VERSION: u16 = 1;
}

/// `wallets` verified the winner's payment on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentConfirmed {
    pub lot_id: LotId,
    pub winner: AccountId,
    pub winner_wallet: EthAddress,
    pub seller_wallet: EthAddress,
    pub amount: Wei,
    pub tx_hash: String,
}

impl Event for PaymentConfirmed {
    const TYPE: &'static str = "payment.confirmed";
    const VERSION: u16 = 1;
}

/// The winner did not pay before the deadline; their capture was released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDefaulted {
    pub lot_id: LotId,
    pub winner: AccountId,
    pub winner_wallet: EthAddress,
    pub amount: Wei,
    pub deadline: DateTime<Utc>,
}

impl Event for PaymentDefaulted {
    const TYPE: &'static str = "payment.defaulted";
    const VERSION: u16 = 1;
}
