//! The internal holds API, for `bids`: place/raise, release, capture, each idempotent by the
//! `Idempotency-Key` header (scoped to the calling service), and a listing.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gavel_common::extract;
use gavel_types::{BidId, EthAddress, LotId, Wei};
use serde::Deserialize;

use super::{ApiError, AppState, Caller, IdempotencyKey};
use crate::ledger::{self, LedgerError, Operation};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceRequest {
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
    let scoped = format!("{}:{}", caller.0, key.0);
    let answer = ledger::execute(&state.pool, &scoped, operation, balance)
        .await
        .map_err(|error| match error {
            LedgerError::KeyReused => ApiError::Conflict {
                code: "idempotency_key_reused",
                title: "This Idempotency-Key was already used for a different request".into(),
            },
            LedgerError::MissingBalance => ApiError::Internal(Box::new(error)),
            LedgerError::Database(error) => error.into(),
        })?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(answer.body)).into_response();
    if status.is_client_error() {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(gavel_common::problem::CONTENT_TYPE),
        );
    }
    if answer.replayed {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
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
        ledger::list(&state.pool, query.lot_id, query.wallet).await?,
    ))
}
