//! What a bid request is answered, typed: an accepted bid's summary, or why it was refused. The
//! answer is decided under the lot's lock and stored with the request's `Idempotency-Key` in the
//! same transaction, so a retry replays exactly it.

use chrono::{DateTime, Utc};
use gavel_common::idempotency::StoredAnswer;
use gavel_common::problem::Problem;
use gavel_types::{BidId, LotId, Wei};
use serde::Serialize;

use crate::rules::{self, Refusal};

/// An accepted bid, as its bidder hears of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// `accepted`, `accepted_below_reserve` or `outbid_by_proxy`.
    pub result: &'static str,
    #[schema(value_type = uuid::Uuid)]
    pub bid_id: BidId,
    #[schema(value_type = uuid::Uuid)]
    pub lot_id: LotId,
    /// What was recorded for this bid (the buy-now price, when it bought the lot).
    #[schema(value_type = String)]
    pub amount: Wei,
    /// The lot's price after the bid (and any proxy's answer).
    #[schema(value_type = String)]
    pub price: Wei,
    pub leading: bool,
    pub ends_at: DateTime<Utc>,
    pub closed: bool,
    pub sequence: i64,
}

/// Why a bid was refused. Nothing was recorded and nothing stays held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The auction's own rules (too low, not open, closed, own lot).
    Rules {
        refusal: Refusal,
        starts_at: DateTime<Utc>,
    },
    InsufficientFunds {
        available: Wei,
        needed: Wei,
    },
    /// The token names a wallet its account no longer owns.
    WalletNotLinked,
}

impl Refused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Rules { refusal, .. } => refusal.code(),
            Self::InsufficientFunds { .. } => "insufficient_funds",
            Self::WalletNotLinked => "wallet_not_linked",
        }
    }

    pub fn problem(&self) -> Problem {
        use axum::http::StatusCode;
        let problem = match self {
            Self::Rules { refusal, starts_at } => {
                let title = match refusal {
                    Refusal::NotOpen => "The auction has not opened yet",
                    Refusal::Closed => "The auction is closed",
                    Refusal::OwnLot => "Sellers cannot bid on their own lot",
                    Refusal::TooLow { .. } => "The bid is below the minimum",
                };
                let problem = Problem::new(StatusCode::CONFLICT, refusal.code(), title);
                match refusal {
                    Refusal::TooLow { minimum } => problem
                        .with("minimum", minimum.to_string())
                        .with_field("amount")
                        .with_detail(format!("the next bid must be at least {minimum} wei")),
                    Refusal::NotOpen => problem.with("starts_at", starts_at.to_rfc3339()),
                    Refusal::Closed | Refusal::OwnLot => problem,
                }
            }
            Self::InsufficientFunds { available, needed } => Problem::new(
                StatusCode::CONFLICT,
                "insufficient_funds",
                "Your wallet does not cover this bid",
            )
            .with("available", available.to_string())
            .with("needed", needed.to_string()),
            Self::WalletNotLinked => Problem::new(
                StatusCode::FORBIDDEN,
                "wallet_not_linked",
                "This wallet is no longer linked to your account; sign in again",
            ),
        };
        problem.with("result", self.code())
    }
}

/// The decision on one bid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accepted(Accepted),
    Refused(Refused),
}

impl Decision {
    pub fn status(&self) -> u16 {
        match self {
            Self::Accepted(accepted) if accepted.result == rules::Result::OutbidByProxy.code() => {
                200
            }
            Self::Accepted(_) => 201,
            Self::Refused(refused) => refused.problem().status().as_u16(),
        }
    }

    /// The stored form: status and JSON body.
    pub fn stored(&self) -> StoredAnswer {
        let body = match self {
            Self::Accepted(accepted) => {
                serde_json::to_value(accepted).unwrap_or(serde_json::Value::Null)
            }
            Self::Refused(refused) => refused.problem().to_json(),
        };
        StoredAnswer::fresh(self.status(), body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_code_as_the_result_and_carries_what_the_bidder_needs() {
        let too_low = Decision::Refused(Refused::Rules {
            refusal: Refusal::TooLow {
                minimum: Wei::from_u128(110),
            },
            starts_at: Utc::now(),
        })
        .stored();
        assert_eq!(too_low.status, 409);
        assert_eq!(too_low.body["result"], "too_low");
        assert_eq!(too_low.body["minimum"], "110");
        assert_eq!(too_low.body["field"], "amount");
        let unlinked = Decision::Refused(Refused::WalletNotLinked).stored();
        assert_eq!(
            (unlinked.status, &unlinked.body["code"]),
            (403, &"wallet_not_linked".into())
        );
    }
}
