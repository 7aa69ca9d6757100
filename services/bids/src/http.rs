//! The HTTP API of `bids`: placing bids (signed-in bidders), and the public state, history and
//! per-lot event log that browsers and the gateway read.

use std::sync::Arc;

use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gavel_common::auth::{Authenticated, JwtVerifier};
use gavel_common::extract;
use gavel_common::problem::Problem;
use gavel_types::LotId;
use serde::Deserialize;
use serde_json::json;

use crate::engine::{BidRequest, Bidder, Engine, EngineError};
use crate::rules::{self, Status};
use crate::store;

#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub verifier: JwtVerifier,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/lots/{lot_id}", get(snapshot))
        .route("/lots/{lot_id}/bids", post(place).get(history))
        .route("/lots/{lot_id}/events", get(events))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { Problem::not_found("route") })
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
}

fn parse_lot(raw: &str) -> Result<LotId, Problem> {
    raw.parse()
        .map_err(|_| Problem::invalid("lot_id", "a lot id is a UUID"))
}

fn engine_problem(error: EngineError) -> Problem {
    match error {
        EngineError::UnknownLot => Problem::not_found("lot"),
        EngineError::KeyReused => Problem::new(
            StatusCode::CONFLICT,
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different bid",
        ),
        EngineError::RateLimited => Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many bids; slow down",
        )
        .with("result", "rate_limited"),
        EngineError::Wallets(error) => {
            tracing::warn!(error = %gavel_common::error_chain(&error), "wallets unavailable");
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "holds_unavailable",
                "Funds cannot be checked right now; try again",
            )
        }
        EngineError::Redis(error) => Problem::internal(&error),
        EngineError::Store(store::StoreError::Database(sqlx::Error::PoolTimedOut)) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "The engine is busy; try again shortly",
        ),
        EngineError::Store(error) => Problem::internal(&error),
    }
}

async fn place(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(lot_id): Path<String>,
    headers: axum::http::HeaderMap,
    extract::Json(request): extract::Json<BidRequest>,
) -> Result<Response, Problem> {
    let lot_id = parse_lot(&lot_id)?;
    let key = headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .filter(|key| {
            !key.is_empty() && key.len() <= 200 && key.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .ok_or_else(|| {
            Problem::invalid(
                "Idempotency-Key",
                "a bid needs an `Idempotency-Key` header of 1 to 200 visible ASCII characters",
            )
        })?;
    if request.max_amount.is_some_and(|max| max < request.amount) {
        return Err(Problem::invalid(
            "max_amount",
            "the maximum cannot be below the amount",
        ));
    }
    let wallet = claims
        .wallet
        .parse()
        .map_err(|_| Problem::unauthorized("the token names no valid wallet"))?;
    let bidder = Bidder {
        account: gavel_types::AccountId(claims.sub),
        wallet,
    };
    let answer = state
        .engine
        .place(bidder, lot_id, key, &request)
        .await
        .map_err(engine_problem)?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(answer.body)).into_response();
    if status.is_client_error() {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(gavel_common::problem::CONTENT_TYPE),
        );
    }
    if answer.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The lot's public state. The reserve amount is never shown, only whether it is met.
async fn snapshot(
    State(state): State<AppState>,
    Path(lot_id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let lot_id = parse_lot(&lot_id)?;
    let stored = store::load(&state.engine.pool, lot_id, false)
        .await
        .map_err(|error| Problem::internal(&error))?
        .ok_or_else(|| Problem::not_found("lot"))?;
    let lot = &stored.lot;
    let status = match lot.status {
        Status::Scheduled => "scheduled",
        Status::Open => "open",
        Status::Closed => "closed",
        Status::Cancelled => "cancelled",
    };
    Ok(Json(json!({
        "lot_id": lot_id,
        "title": stored.title,
        "status": status,
        "price": lot.price,
        "leader": lot.leader.map(|leader| leader.bidder),
        "bid_count": lot.bid_count,
        "minimum_next": rules::minimum_next(lot),
        "starts_at": lot.rules.starts_at,
        "ends_at": lot.ends_at,
        "buy_now": lot.rules.buy_now,
        "reserve_met": lot.rules.reserve.map(|reserve| lot.price.is_some_and(|price| price >= reserve)),
        "sequence": stored.seq,
        "server_time": stored.now,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    limit: Option<i64>,
}

async fn history(
    State(state): State<AppState>,
    Path(lot_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Vec<store::BidView>>, Problem> {
    let lot_id = parse_lot(&lot_id)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    store::history(&state.engine.pool, lot_id, limit)
        .await
        .map(Json)
        .map_err(|error| Problem::internal(&error))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    since: Option<i64>,
    limit: Option<i64>,
}

/// Events with a sequence above `since`, in order: what a client missed.
async fn events(
    State(state): State<AppState>,
    Path(lot_id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let lot_id = parse_lot(&lot_id)?;
    let since = query.since.unwrap_or(0);
    if since < 0 {
        return Err(Problem::invalid(
            "since",
            "a sequence number is zero or more",
        ));
    }
    let limit = query.limit.unwrap_or(500).clamp(1, 1000);
    let events = store::events_since(&state.engine.pool, lot_id, since, limit)
        .await
        .map_err(|error| Problem::internal(&error))?;
    Ok(Json(
        json!({"lot_id": lot_id, "since": since, "events": events}),
    ))
}
