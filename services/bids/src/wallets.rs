//! The client of `wallets`' internal holds API (on its internal listener).

use std::time::Duration;

use gavel_common::internal::{CallError, PeerConfig, ServiceClient};
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum WalletsError {
    #[error("wallets is unreachable")]
    Unreachable(#[from] CallError),
    #[error("wallets answered {status}: {body}")]
    Unexpected { status: u16, body: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    Held,
    InsufficientFunds { available: Wei },
    WalletNotLinked,
}

/// A hold whose bid `wallets` has not seen recorded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Unconfirmed {
    pub wallet: EthAddress,
    pub lot_id: LotId,
    pub bid_id: BidId,
    pub amount: Wei,
}

/// What the engine found about an unconfirmed hold's bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Recorded,
    /// Never recorded and never to be; the wallet's hold goes back to `restore` (the account's
    /// recorded lead on the lot with this wallet), or is released.
    Abandoned {
        restore: Option<Restore>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Restore {
    pub amount: Wei,
    pub bid_id: BidId,
}

/// A release of the hold on `wallet` for `lot_id` if it still backs `bid_id`, under `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Release {
    pub key: String,
    pub wallet: EthAddress,
    pub lot_id: LotId,
    pub bid_id: BidId,
}

/// What `wallets`' answer to a release means.
fn released(status: u16, body: &Value) -> Result<(), WalletsError> {
    match status {
        200 => Ok(()),
        // A captured hold means the lot sold to this wallet: nothing for us to release.
        409 if body["code"] == "hold_captured" => Ok(()),
        status => Err(unexpected(status, body)),
    }
}

#[derive(Clone, Debug)]
pub struct Wallets {
    client: ServiceClient,
}

fn unexpected(status: u16, body: &Value) -> WalletsError {
    WalletsError::Unexpected {
        status,
        body: body.to_string(),
    }
}

impl Wallets {
    pub fn new(config: &PeerConfig) -> Result<Self, CallError> {
        Ok(Self {
            client: ServiceClient::new(config)?,
        })
    }

    /// Holds `amount` on `wallet` for `lot_id`, backing bid `bid_id` of `account` (idempotent by
    /// bid).
    pub async fn place(
        &self,
        account: AccountId,
        wallet: EthAddress,
        lot_id: LotId,
        amount: Wei,
        bid_id: BidId,
    ) -> Result<Placed, WalletsError> {
        let body = json!({"account": account, "wallet": wallet, "lot_id": lot_id, "amount": amount, "bid_id": bid_id});
        let key = format!("hold-{bid_id}");
        match self
            .client
            .post("/internal/holds/place", Some(&key), &body)
            .await?
        {
            (200, _) => Ok(Placed::Held),
            (409, body) if body["code"] == "insufficient_funds" => {
                let available = body["available"]
                    .as_str()
                    .and_then(|raw| raw.parse().ok())
                    .ok_or_else(|| unexpected(409, &body))?;
                Ok(Placed::InsufficientFunds { available })
            }
            (409, body) if body["code"] == "wallet_not_linked" => Ok(Placed::WalletNotLinked),
            (status, body) => Err(unexpected(status, &body)),
        }
    }

    /// Sends `release` alone, under its key (to a `wallets` without the batch route).
    pub async fn release(&self, release: &Release) -> Result<(), WalletsError> {
        let body =
            json!({"wallet": release.wallet, "lot_id": release.lot_id, "bid_id": release.bid_id});
        let (status, body) = self
            .client
            .post("/internal/holds/release", Some(&release.key), &body)
            .await?;
        released(status, &body)
    }

    /// Sends `releases` (at most 100) in one request, done in one transaction in `wallets`; each
    /// is answered as if sent alone with its key. `Err` means none is known to be done.
    pub async fn release_many(
        &self,
        releases: &[Release],
    ) -> Result<Vec<Result<(), WalletsError>>, WalletsError> {
        #[derive(Deserialize)]
        struct Answer {
            key: String,
            status: u16,
            body: Value,
        }
        #[derive(Deserialize)]
        struct Answers {
            results: Vec<Answer>,
        }
        let body = json!({ "releases": releases });
        let (status, body) = self
            .client
            .post_keyed_inside("/internal/holds/releases", &body)
            .await?;
        let answers = match status {
            200 => serde_json::from_value::<Answers>(body.clone())
                .ok()
                .filter(|answers| {
                    answers.results.len() == releases.len()
                        && answers
                            .results
                            .iter()
                            .zip(releases)
                            .all(|(answer, release)| answer.key == release.key)
                })
                .ok_or_else(|| unexpected(200, &body))?,
            status => return Err(unexpected(status, &body)),
        };
        Ok(answers
            .results
            .into_iter()
            .map(|answer| released(answer.status, &answer.body))
            .collect())
    }

    /// Holds whose bid has been unconfirmed for longer than `older_than`, oldest first.
    pub async fn unconfirmed(
        &self,
        older_than: Duration,
        limit: u16,
    ) -> Result<Vec<Unconfirmed>, WalletsError> {
        let path = format!(
            "/internal/holds/unconfirmed?older_than_ms={}&limit={limit}",
            older_than.as_millis()
        );
        match self.client.get(&path).await? {
            (200, body) => serde_json::from_value(body.clone()).map_err(|_| unexpected(200, &body)),
            (status, body) => Err(unexpected(status, &body)),
        }
    }

    /// Tells `wallets` what became of `hold`'s bid.
    pub async fn verdict(&self, hold: &Unconfirmed, verdict: Verdict) -> Result<(), WalletsError> {
        let mut body = serde_json::to_value(verdict).unwrap_or(Value::Null);
        if let Some(fields) = body.as_object_mut() {
            fields.insert("wallet".into(), json!(hold.wallet));
            fields.insert("lot_id".into(), json!(hold.lot_id));
            fields.insert("bid_id".into(), json!(hold.bid_id));
        }
        match self
            .client
            .post("/internal/holds/verdict", None, &body)
            .await?
        {
            (200, _) => Ok(()),
            (status, body) => Err(unexpected(status, &body)),
        }
    }
}
