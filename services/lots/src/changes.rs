//! A seller's change to a lot (new rules, or withdrawal), decided by the auction engine.
//!
//! `bids` serialises bids; only it knows whether a change lands before the first bid. So a
//! change goes in three steps:
//!
//! 1. it is written down as the lot's *pending change* (one at a time per lot);
//! 2. `bids` is asked (`PUT /internal/lots/{id}`, `POST /internal/lots/{id}/cancel`), and decides
//!    under the lot's lock: applied, `has_bids`, or `lot_ended`;
//! 3. the answer is *settled*: an applied change is written to this copy with its `lot.*` event,
//!    a refused one is dropped; the pending change is cleared either way, in one transaction.
//!
//! If the answer is lost (`lots` crashes, `bids` is away), the change stays pending and
//! [`run`] asks again until it gets an answer; asking twice is harmless because `bids` answers by
//! content. So the seller's view and the engine's never diverge for longer than that.

use std::time::Duration;

use gavel_common::BoxError;
use gavel_common::db::CorruptValue;
use gavel_common::internal::{CallError, Method, PeerConfig, ServiceClient};
use gavel_events::{LotCancelled, LotRules, LotUpdated};
use gavel_messaging::Envelope;
use gavel_messaging::outbox::enqueue;
use gavel_types::{AccountId, EthAddress, LotId};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::domain::LotSpec;
use crate::store::{self, LotRow};

/// A change as it waits for the engine's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Replace { spec: Box<LotSpec> },
    Cancel,
}

/// What the engine answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Applied,
    HasBids,
    Ended { status: String },
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("the auction engine is unreachable")]
    Unreachable(#[from] CallError),
    #[error("the auction engine answered {status}: {body}")]
    Unexpected { status: u16, body: String },
    #[error(transparent)]
    Corrupt(#[from] CorruptValue),
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error("cannot encode the change")]
    Encode(#[from] serde_json::Error),
}

/// The client of the engine's internal lot API.
#[derive(Debug, Clone)]
pub struct Engine {
    client: ServiceClient,
}

#[derive(Debug, Serialize)]
struct Definition<'a> {
    seller: AccountId,
    seller_wallet: EthAddress,
    title: &'a str,
    rules: &'a LotRules,
}

impl Engine {
    pub fn new(config: &PeerConfig) -> Result<Self, CallError> {
        Ok(Self {
            client: ServiceClient::new(config)?,
        })
    }

    /// Asks the engine to make `change` to the lot `row` describes.
    pub async fn ask(&self, row: &LotRow, change: &Change) -> Result<Verdict, ChangeError> {
        let current = row.rules()?;
        let (title, rules) = match change {
            Change::Replace { spec } => (spec.title.as_str(), &spec.rules),
            Change::Cancel => (row.title.as_str(), &current),
        };
        let definition = Definition {
            seller: AccountId(row.seller),
            seller_wallet: row.seller_wallet()?,
            title,
            rules,
        };
        let body = serde_json::to_value(&definition)?;
        let (method, path) = match change {
            Change::Replace { .. } => (Method::PUT, format!("/internal/lots/{}", row.id)),
            Change::Cancel => (Method::POST, format!("/internal/lots/{}/cancel", row.id)),
        };
        let (status, answer) = self.client.send(method, &path, None, Some(&body)).await?;
        match (status, answer["code"].as_str()) {
            (200, _) => Ok(Verdict::Applied),
            (409, Some("has_bids")) => Ok(Verdict::HasBids),
            (409, Some("lot_ended")) => Ok(Verdict::Ended {
                status: answer["status"].as_str().unwrap_or("ended").to_owned(),
            }),
            _ => Err(ChangeError::Unexpected {
                status,
                body: answer.to_string(),
            }),
        }
    }
}

/// Step 1: records `change` as the lot's pending change, in the caller's transaction.
pub async fn begin(
    connection: &mut sqlx::PgConnection,
    lot: LotId,
    change: &Change,
) -> Result<(), ChangeError> {
    sqlx::query("UPDATE lots SET pending_change = $2, pending_since = now() WHERE id = $1")
        .bind(lot.0)
        .bind(sqlx::types::Json(change))
        .execute(connection)
        .await?;
    Ok(())
}

/// Step 3: applies or drops `change` per `verdict`, if it is still the lot's pending change
/// (otherwise the retry task settled it already). Returns whether this call settled it.
pub async fn settle(
    pool: &PgPool,
    lot: LotId,
    change: &Change,
    verdict: &Verdict,
) -> Result<bool, ChangeError> {
    let mut tx = pool.begin().await?;
    let pending: Option<Option<sqlx::types::Json<Change>>> =
        sqlx::query_scalar("SELECT pending_change FROM lots WHERE id = $1 FOR UPDATE")
            .bind(lot.0)
            .fetch_optional(&mut *tx)
            .await?;
    if pending.flatten().map(|pending| pending.0).as_ref() != Some(change) {
        return Ok(false);
    }
    if *verdict == Verdict::Applied {
        match change {
            Change::Replace { spec } => {
                store::replace(&mut tx, lot, spec).await?;
                let event = LotUpdated {
                    lot_id: lot,
                    title: spec.title.clone(),
                    rules: spec.rules.clone(),
                };
                enqueue(&mut tx, &Envelope::new(lot.to_string(), None, &event)?).await?;
            }
            Change::Cancel => {
                sqlx::query(
                    "UPDATE lots SET status = 'cancelled', updated_at = now() WHERE id = $1",
                )
                .bind(lot.0)
                .execute(&mut *tx)
                .await?;
                let event = LotCancelled { lot_id: lot };
                enqueue(&mut tx, &Envelope::new(lot.to_string(), None, &event)?).await?;
            }
        }
    }
    sqlx::query("UPDATE lots SET pending_change = NULL, pending_since = NULL WHERE id = $1")
        .bind(lot.0)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Asks the engine about pending changes whose answer was lost, until each is settled.
pub async fn run(
    pool: PgPool,
    engine: Engine,
    interval: Duration,
    cancel: CancellationToken,
) -> Result<(), BoxError> {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        if let Err(error) = retry_stale(&pool, &engine, interval).await {
            warn!(error = %gavel_common::error_chain(&error), "settling pending lot changes failed; will retry");
        }
    }
}

/// One pass over the changes pending for longer than `age`.
pub async fn retry_stale(
    pool: &PgPool,
    engine: &Engine,
    age: Duration,
) -> Result<usize, ChangeError> {
    let stale: Vec<(uuid::Uuid, sqlx::types::Json<Change>)> = sqlx::query_as(
        "SELECT id, pending_change FROM lots
         WHERE pending_change IS NOT NULL AND pending_since < now() - make_interval(secs => $1)
         ORDER BY pending_since LIMIT 50",
    )
    .bind(age.as_secs_f64())
    .fetch_all(pool)
    .await?;
    let mut settled = 0;
    for (id, change) in stale {
        let lot = LotId(id);
        let Some(row) = store::load(pool, lot, false).await? else {
            continue;
        };
        let verdict = engine.ask(&row, &change.0).await?;
        if settle(pool, lot, &change.0, &verdict).await? {
            settled += 1;
            info!(%lot, ?verdict, "settled a lot change whose answer had been lost");
        }
    }
    Ok(settled)
}
