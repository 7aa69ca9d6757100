//! The client of `wallets`' internal holds API.

use std::time::Duration;

use gavel_types::{BidId, EthAddress, LotId, Wei};
use serde_json::{Value, json};

use crate::config::WalletsConfig;

#[derive(Debug, thiserror::Error)]
pub enum WalletsError {
    #[error("wallets is unreachable")]
    Unreachable(#[from] reqwest::Error),
    #[error("wallets answered {status}: {body}")]
    Unexpected { status: u16, body: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    Held,
    InsufficientFunds { available: Wei },
}

#[derive(Clone, Debug)]
pub struct Wallets {
    http: reqwest::Client,
    base: url::Url,
    token: String,
}

impl Wallets {
    pub fn new(config: &WalletsConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Self {
            http,
            base: config.url.clone(),
            token: config.token.expose().to_owned(),
        })
    }

    async fn call(
        &self,
        operation: &str,
        key: &str,
        body: Value,
    ) -> Result<(u16, Value), WalletsError> {
        let url = format!(
            "{}/internal/holds/{operation}",
            self.base.as_str().trim_end_matches('/')
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// Holds `amount` on `wallet` for `lot_id`, backing bid `bid_id` (idempotent by bid).
    pub async fn place(
        &self,
        wallet: EthAddress,
        lot_id: LotId,
        amount: Wei,
        bid_id: BidId,
    ) -> Result<Placed, WalletsError> {
        let body = json!({"wallet": wallet, "lot_id": lot_id, "amount": amount, "bid_id": bid_id});
        match self.call("place", &format!("hold-{bid_id}"), body).await? {
            (200, _) => Ok(Placed::Held),
            (409, body) if body["code"] == "insufficient_funds" => {
                let available = body["available"]
                    .as_str()
                    .and_then(|raw| raw.parse().ok())
                    .unwrap_or(Wei::ZERO);
                Ok(Placed::InsufficientFunds { available })
            }
            (status, body) => Err(WalletsError::Unexpected {
                status,
                body: body.to_string(),
            }),
        }
    }

    /// Releases the hold on `wallet` for `lot_id` if it still backs `bid_id`.
    pub async fn release(
        &self,
        wallet: EthAddress,
        lot_id: LotId,
        bid_id: BidId,
        key: &str,
    ) -> Result<(), WalletsError> {
        let body = json!({"wallet": wallet, "lot_id": lot_id, "bid_id": bid_id});
        match self.call("release", key, body).await? {
            // A captured hold means the lot sold to this wallet: nothing for us to release.
            (200, _) => Ok(()),
            (409, body) if body["code"] == "hold_captured" => Ok(()),
            (status, body) => Err(WalletsError::Unexpected {
                status,
                body: body.to_string(),
            }),
        }
    }
}
