//! The event contracts between Gavel's services: for each event type, its routing key, version
//! and payload. Producers and consumers both depend on this crate, so a payload change is a
//! compile error on both sides, and an incompatible one gets a new version.

use chrono::{DateTime, Utc};
use gavel_messaging::Event;
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use serde::{Deserialize, Serialize};

/// `bids` accepted a bid (including one placed by the proxy on a bidder's behalf).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BidAccepted {
    pub lot_id: LotId,
    pub bid_id: BidId,
    pub bidder: AccountId,
    pub wallet: EthAddress,
    pub amount: Wei,
    /// What `wallets` holds for this bidder on this lot (their proxy maximum, or the amount).
    pub held: Wei,
    pub at: DateTime<Utc>,
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
