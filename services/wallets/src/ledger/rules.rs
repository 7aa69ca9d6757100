//! The ledger's vocabulary and its rules, without I/O: hold states, operations, refusals,
//! [`admit`] (placing or raising) and [`release`], table-tested below.

use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    Active,
    Released,
    Captured,
    Settled,
}

impl std::str::FromStr for HoldStatus {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        match raw {
            "active" => Ok(Self::Active),
            "released" => Ok(Self::Released),
            "captured" => Ok(Self::Captured),
            "settled" => Ok(Self::Settled),
            _ => Err(()),
        }
    }
}

/// One hold as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub wallet: EthAddress,
    pub lot_id: LotId,
    pub status: HoldStatus,
    pub amount: Wei,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bid_id: Option<BidId>,
}

/// A requested change to one (wallet, lot) hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Operation {
    /// Place a hold, or raise the existing one, to back bid `bid_id` of `account`.
    Place {
        account: AccountId,
        wallet: EthAddress,
        lot_id: LotId,
        amount: Wei,
        bid_id: BidId,
    },
    /// Release the hold; with `bid_id`, only if the hold still backs that bid (so that a late
    /// release for an outbid bid cannot free the hold of the same bidder's newer bid).
    Release {
        wallet: EthAddress,
        lot_id: LotId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bid_id: Option<BidId>,
    },
    /// Turn an active hold into a capture of `amount` (at most what is held).
    Capture {
        wallet: EthAddress,
        lot_id: LotId,
        amount: Wei,
    },
}

impl Operation {
    pub fn wallet(&self) -> EthAddress {
        match self {
            Self::Place { wallet, .. }
            | Self::Release { wallet, .. }
            | Self::Capture { wallet, .. } => *wallet,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Place { .. } => "place",
            Self::Release { .. } => "release",
            Self::Capture { .. } => "capture",
        }
    }

    pub(super) fn fingerprint(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Why the ledger refused an operation (HTTP 409, with the code as the problem's code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    InsufficientFunds {
        available: Wei,
    },
    WouldDecrease {
        current: Wei,
    },
    AlreadyCaptured,
    NoActiveHold,
    CaptureExceedsHold {
        held: Wei,
    },
    /// The wallet is not (or no longer) linked to the account that bids with it.
    WalletNotLinked,
    /// `bids` declared this bid abandoned: it can never be recorded, so it gets no hold.
    BidAbandoned,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::WouldDecrease { .. } => "hold_would_decrease",
            Self::AlreadyCaptured => "hold_captured",
            Self::NoActiveHold => "no_active_hold",
            Self::CaptureExceedsHold { .. } => "capture_exceeds_hold",
            Self::WalletNotLinked => "wallet_not_linked",
            Self::BidAbandoned => "bid_abandoned",
        }
    }

    pub(super) fn body(&self) -> Value {
        let (title, extra) = match self {
            Self::InsufficientFunds { available } => (
                "The wallet does not cover this amount",
                json!({"available": available}),
            ),
            Self::WouldDecrease { current } => {
                ("A hold can only be raised", json!({"current": current}))
            }
            Self::AlreadyCaptured => ("The hold is already captured for payment", json!({})),
            Self::NoActiveHold => ("There is no active hold to capture", json!({})),
            Self::CaptureExceedsHold { held } => {
                ("The capture exceeds the hold", json!({"held": held}))
            }
            Self::WalletNotLinked => ("The wallet is not linked to the bidding account", json!({})),
            Self::BidAbandoned => ("The bid was abandoned and cannot be held", json!({})),
        };
        let mut body = json!({
            "type": format!("urn:gavel:problem:{}", self.code()),
            "code": self.code(),
            "title": title,
            "status": 409,
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }
}

/// The rule for placing or raising a hold, given the wallet's confirmed `balance`, the sum of its
/// `others` (active and captured holds on other lots) and the `current` hold on this lot.
pub fn admit(
    balance: Wei,
    others: Wei,
    current: Option<(HoldStatus, Wei)>,
    requested: Wei,
) -> Result<(), Refusal> {
    match current {
        Some((HoldStatus::Captured | HoldStatus::Settled, _)) => {
            return Err(Refusal::AlreadyCaptured);
        }
        Some((HoldStatus::Active, current)) if requested < current => {
            return Err(Refusal::WouldDecrease { current });
        }
        _ => {}
    }
    match others.checked_add(requested) {
        Some(total) if total <= balance => Ok(()),
        _ => Err(Refusal::InsufficientFunds {
            available: balance.saturating_sub(others),
        }),
    }
}

/// What releasing the hold on (`wallet`, `lot_id`) comes to, given the `current` one: the answer
/// (the hold as it will stand, or a refusal), and whether its row must change to `released`.
/// `only_for` limits the release to the hold backing that bid: a release for an older bid is a
/// no-op once the hold backs a newer one.
pub fn release(
    current: Option<&Hold>,
    wallet: EthAddress,
    lot_id: LotId,
    only_for: Option<BidId>,
) -> (Result<Hold, Refusal>, bool) {
    match current {
        Some(hold) if only_for.is_some() && hold.bid_id != only_for => (Ok(hold.clone()), false),
        // The lot is sold to this wallet: only settlement may free the capture.
        Some(hold) if matches!(hold.status, HoldStatus::Captured | HoldStatus::Settled) => {
            (Err(Refusal::AlreadyCaptured), false)
        }
        Some(hold) => (
            Ok(Hold {
                status: HoldStatus::Released,
                ..hold.clone()
            }),
            hold.status == HoldStatus::Active,
        ),
        // Releasing what is not held is a no-op that succeeds: the goal, nothing held, is reached.
        None => (
            Ok(Hold {
                wallet,
                lot_id,
                status: HoldStatus::Released,
                amount: Wei::ZERO,
                bid_id: None,
            }),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wei(value: u128) -> Wei {
        Wei::from_u128(value)
    }

    #[test]
    fn a_hold_fits_when_the_others_plus_it_stay_within_the_balance() {
        assert_eq!(admit(wei(100), wei(60), None, wei(40)), Ok(()));
        assert_eq!(
            admit(wei(100), wei(60), None, wei(41)),
            Err(Refusal::InsufficientFunds { available: wei(40) })
        );
    }

    #[test]
    fn a_raise_replaces_the_current_amount_rather_than_adding_to_it() {
        let active = |amount| Some((HoldStatus::Active, wei(amount)));
        assert_eq!(admit(wei(100), wei(0), active(90), wei(100)), Ok(()));
        assert_eq!(
            admit(wei(100), wei(0), active(90), wei(80)),
            Err(Refusal::WouldDecrease { current: wei(90) })
        );
    }

    #[test]
    fn a_captured_hold_cannot_be_placed_again() {
        assert_eq!(
            admit(
                wei(100),
                wei(0),
                Some((HoldStatus::Captured, wei(10))),
                wei(20)
            ),
            Err(Refusal::AlreadyCaptured)
        );
    }

    #[test]
    fn released_holds_do_not_count() {
        assert_eq!(
            admit(
                wei(100),
                wei(0),
                Some((HoldStatus::Released, wei(100))),
                wei(10)
            ),
            Ok(())
        );
    }

    #[test]
    fn release_table() {
        let (wallet, lot) = (
            "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
                .parse::<EthAddress>()
                .expect("address"),
            LotId(uuid::Uuid::from_u128(1)),
        );
        let (backed, other) = (
            BidId(uuid::Uuid::from_u128(2)),
            BidId(uuid::Uuid::from_u128(3)),
        );
        let hold = |status| Hold {
            wallet,
            lot_id: lot,
            status,
            amount: wei(5),
            bid_id: Some(backed),
        };
        use HoldStatus::{Active, Captured, Released, Settled};
        // (current hold, release only for, answer's status or refusal, whether the row changes)
        let table = [
            (Some(Active), None, Ok(Released), true),
            (Some(Active), Some(backed), Ok(Released), true),
            // The hold backs a newer bid: a no-op answering the hold as it stands.
            (Some(Active), Some(other), Ok(Active), false),
            (Some(Released), Some(backed), Ok(Released), false),
            (Some(Captured), None, Err(Refusal::AlreadyCaptured), false),
            (
                Some(Settled),
                Some(backed),
                Err(Refusal::AlreadyCaptured),
                false,
            ),
            (Some(Captured), Some(other), Ok(Captured), false),
            (None, Some(backed), Ok(Released), false),
        ];
        for (current, only_for, expected, changes) in table {
            let current = current.map(hold);
            let (answer, changed) = release(current.as_ref(), wallet, lot, only_for);
            assert_eq!(
                (answer.map(|hold| hold.status), changed),
                (expected, changes),
                "{current:?} released for {only_for:?}"
            );
        }
        let (nothing, _) = release(None, wallet, lot, None);
        assert_eq!(
            nothing.map(|hold| (hold.amount, hold.bid_id)),
            Ok((Wei::ZERO, None)),
            "releasing what is not held answers an empty released hold"
        );
    }

    #[test]
    fn an_unknown_hold_status_is_not_read_as_any_known_one() {
        assert_eq!("captured".parse::<HoldStatus>(), Ok(HoldStatus::Captured));
        assert!("frozen".parse::<HoldStatus>().is_err());
    }
}
