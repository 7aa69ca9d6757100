//! The internal holds API, for `bids`: place/raise, release, capture, each idempotent by the
//! `Idempotency-Key` header (scoped to the calling service); releases in batches, each with its
//! own key; a listing; and the repair of holds whose bid is unconfirmed (`bids` reads them and
//! sends its verdict on each).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::Response;
use gavel_common::extract;
use gavel_common::extract::Query;
use gavel_common::idempotency::{IdempotencyKey, StoredAnswer};
use gavel_common::internal::Caller;
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::ledger::repair::{self, Applied, Unconfirmed, Verdict};
use crate::ledger::{self, LedgerError, Operation};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceRequest {
    account: AccountId,
    wallet: EthAddress,
    lot_id: LotId,
    amount: Wei,
    bid_id: BidId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    wallet: EthAddress,
    lot_id: LotId,
    #[serde(default)]
    bid_id: Option<BidId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    wallet: EthAddress,
    lot_id: LotId,
    amount: Wei,
}

pub async fn place(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    extract::Json(request): extract::Json<PlaceRequest>,
) -> Result<Response, ApiError> {
    if request.amount.is_zero() {
        return Err(ApiError::invalid(
            "amount",
            "a hold must be for more than zero wei",
        ));
    }
    // Read before taking the wallet's lock: the node may be slow, the lock must not wait on it.
    let balance = state.chain.confirmed_balance(request.wallet).await?;
    let operation = Operation::Place {
        account: request.account,
        wallet: request.wallet,
        lot_id: request.lot_id,
        amount: request.amount,
        bid_id: request.bid_id,
    };
    execute(&state, &caller, &key, &operation, Some(balance.amount)).await
}

pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    extract::Json(request): extract::Json<ReleaseRequest>,
) -> Result<Response, ApiError> {
    let operation = Operation::Release {
        wallet: request.wallet,
        lot_id: request.lot_id,
        bid_id: request.bid_id,
    };
    execute(&state, &caller, &key, &operation, None).await
}

/// One release of a batch, with the idempotency key it would carry on its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseItem {
    key: String,
    wallet: EthAddress,
    lot_id: LotId,
    #[serde(default)]
    bid_id: Option<BidId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleasesRequest {
    releases: Vec<ReleaseItem>,
}

/// The answer to one release of a batch: what `POST /internal/holds/release` with its key would
/// have answered.
#[derive(Debug, Serialize)]
pub struct KeyedAnswer {
    key: String,
    status: u16,
    body: serde_json::Value,
    replayed: bool,
}

#[derive(Debug, Serialize)]
pub struct ReleasesResponse {
    results: Vec<KeyedAnswer>,
}

/// Up to [`ledger::MAX_BATCH`] releases in one transaction and one commit, each as if sent alone
/// with its key (the same key replays, here or on the single route). One that fails is answered
/// with its own problem and leaves the others standing; a 5xx for the whole request means none
/// was done.
pub async fn release_many(
    State(state): State<AppState>,
    caller: Caller,
    extract::Json(request): extract::Json<ReleasesRequest>,
) -> Result<Json<ReleasesResponse>, ApiError> {
    if request.releases.is_empty() || request.releases.len() > ledger::MAX_BATCH {
        return Err(ApiError::invalid(
            "releases",
            format!("from 1 to {} releases", ledger::MAX_BATCH),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut releases = Vec::with_capacity(request.releases.len());
    for (at, item) in request.releases.into_iter().enumerate() {
        let ReleaseItem {
            key,
            wallet,
            lot_id,
            bid_id,
        } = item;
        let key = IdempotencyKey::parse(&key).map_err(|_| {
            ApiError::invalid(
                "releases",
                format!("releases[{at}].key: a key of 1 to 200 visible ASCII characters"),
            )
        })?;
        if !seen.insert(key.0.clone()) {
            return Err(ApiError::invalid(
                "releases",
                format!("releases[{at}].key: {:?} appears more than once", key.0),
            ));
        }
        releases.push(ledger::KeyedRelease {
            key: format!("{}:{}", caller.0, key.0),
            wallet,
            lot_id,
            bid_id,
        });
    }
    let released = ledger::release_many(&state.pool, &releases)
        .await
        .map_err(ledger_error)?;
    state.metrics.release_batch(released.together);
    let answers = released.answers;
    let prefix = caller.0.len() + 1;
    let results = releases
        .iter()
        .zip(answers)
        .map(|(release, answer)| {
            state.metrics.hold("release", outcome(&answer));
            let answer = answer.unwrap_or_else(|error| {
                let problem = ledger_error(error).problem();
                StoredAnswer::fresh(problem.status().as_u16(), problem.to_json())
            });
            KeyedAnswer {
                key: release.key[prefix..].to_owned(),
                status: answer.status,
                body: answer.body,
                replayed: answer.replayed,
            }
        })
        .collect();
    Ok(Json(ReleasesResponse { results }))
}

pub async fn capture(
    State(state): State<AppState>,
    caller: Caller,
    key: IdempotencyKey,
    extract::Json(request): extract::Json<CaptureRequest>,
) -> Result<Response, ApiError> {
    let operation = Operation::Capture {
        wallet: request.wallet,
        lot_id: request.lot_id,
        amount: request.amount,
    };
    execute(&state, &caller, &key, &operation, None).await
}

async fn execute(
    state: &AppState,
    caller: &Caller,
    key: &IdempotencyKey,
    operation: &Operation,
    balance: Option<Wei>,
) -> Result<Response, ApiError> {
    let scoped = format!("{}:{}", caller.0, key.as_str());
    let answer = ledger::execute(&state.pool, &scoped, operation, balance).await;
    state.metrics.hold(operation.name(), outcome(&answer));
    Ok(answer.map_err(ledger_error)?.into_response())
}

/// An operation's outcome as the holds metric counts it.
fn outcome(answer: &Result<StoredAnswer, LedgerError>) -> Result<&StoredAnswer, &'static str> {
    match answer {
        Ok(answer) => Ok(answer),
        Err(LedgerError::KeyReused) => Err("idempotency_key_reused"),
        Err(_) => Err("error"),
    }
}

fn ledger_error(error: LedgerError) -> ApiError {
    match error {
        LedgerError::KeyReused => ApiError::Conflict {
            code: "idempotency_key_reused",
            title: "This Idempotency-Key was already used for a different request".into(),
        },
        LedgerError::Database(error) => error.into(),
        other => ApiError::Internal(Box::new(other)),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    lot_id: Option<LotId>,
    wallet: Option<EthAddress>,
}

pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ledger::Hold>>, ApiError> {
    Ok(Json(
        ledger::list(&state.pool, query.lot_id, query.wallet)
            .await
            .map_err(ledger_error)?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnconfirmedQuery {
    /// Only holds unconfirmed for at least this many milliseconds.
    older_than_ms: u64,
    #[serde(default = "default_limit")]
    limit: u16,
}

fn default_limit() -> u16 {
    100
}

pub async fn unconfirmed(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<UnconfirmedQuery>,
) -> Result<Json<Vec<Unconfirmed>>, ApiError> {
    let older_than = Duration::from_millis(query.older_than_ms);
    let limit = i64::from(query.limit.clamp(1, 1000));
    Ok(Json(
        repair::unconfirmed(&state.pool, older_than, limit)
            .await
            .map_err(ledger_error)?,
    ))
}

/// (`deny_unknown_fields` does not combine with `flatten`; the verdict's own fields are checked.)
#[derive(Debug, Deserialize)]
pub struct VerdictRequest {
    wallet: EthAddress,
    lot_id: LotId,
    bid_id: BidId,
    #[serde(flatten)]
    verdict: Verdict,
}

#[derive(Debug, Serialize)]
pub struct VerdictResponse {
    applied: Applied,
}

/// `bids`' verdict on an unconfirmed hold's bid. Idempotent by nature: applying it again
/// changes nothing.
pub async fn verdict(
    State(state): State<AppState>,
    _caller: Caller,
    extract::Json(request): extract::Json<VerdictRequest>,
) -> Result<Json<VerdictResponse>, ApiError> {
    let applied = repair::apply(
        &state.pool,
        request.wallet,
        request.lot_id,
        request.bid_id,
        &request.verdict,
    )
    .await
    .map_err(ledger_error)?;
    Ok(Json(VerdictResponse { applied }))
}
