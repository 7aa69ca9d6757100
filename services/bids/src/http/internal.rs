//! Sellers' changes, relayed by `lots` on the internal listener.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gavel_common::extract;
use gavel_common::internal::Caller;
use gavel_common::problem::Problem;
use serde_json::json;

use super::public::parse_lot;
use super::{ApiError, AppState};
use crate::changes::{self, LotDefinition, Outcome};

pub async fn update(
    State(state): State<AppState>,
    _caller: Caller,
    Path(lot_id): Path<String>,
    extract::Json(lot): extract::Json<LotDefinition>,
) -> Result<Response, ApiError> {
    let lot_id = parse_lot(&lot_id)?;
    let outcome = changes::update(&state.engine.pool, lot_id, &lot).await?;
    Ok(answer(lot_id, outcome))
}

pub async fn cancel(
    State(state): State<AppState>,
    _caller: Caller,
    Path(lot_id): Path<String>,
    extract::Json(lot): extract::Json<LotDefinition>,
) -> Result<Response, ApiError> {
    let lot_id = parse_lot(&lot_id)?;
    let outcome = changes::cancel(&state.engine.pool, lot_id, &lot).await?;
    Ok(answer(lot_id, outcome))
}

fn answer(lot_id: gavel_types::LotId, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Applied(status) => {
            Json(json!({"lot_id": lot_id, "status": status.as_str()})).into_response()
        }
        Outcome::HasBids => Problem::new(
            StatusCode::CONFLICT,
            "has_bids",
            "A lot cannot change once it has a bid",
        )
        .into_response(),
        Outcome::Ended(status) => Problem::new(
            StatusCode::CONFLICT,
            "lot_ended",
            format!("The lot is {}", status.as_str()),
        )
        .with("status", status.as_str())
        .into_response(),
    }
}
