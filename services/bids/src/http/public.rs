//! The public API: placing bids (signed-in bidders), and the state, history and per-lot event
//! log that browsers and the gateway read.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use gavel_common::auth::Authenticated;
use gavel_common::extract;
use gavel_common::extract::Query;
use gavel_common::idempotency::IdempotencyKey;
use gavel_common::problem::Problem;
use gavel_types::{AccountId, LotId};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, AppState};
use crate::engine::{BidRequest, Bidder};
use crate::metrics::BidMetrics;
use crate::rules;
use crate::store;

pub(super) fn parse_lot(raw: &str) -> Result<LotId, Problem> {
    raw.parse()
        .map_err(|_| Problem::invalid("lot_id", "a lot id is a UUID"))
}

/// Place a bid (optionally with a proxy maximum).
#[utoipa::path(post, path = "/lots/{lot_id}/bids", tag = "bids", request_body = BidRequest,
    security(("bearer" = [])),
    params(("lot_id" = uuid::Uuid, Path),
           ("Idempotency-Key" = String, Header, description = "a retry with the same key returns the original answer (`idempotent-replayed: true`)")),
    responses(
        (status = 201, body = crate::answer::Accepted, description = "`accepted` or `accepted_below_reserve`: the bidder leads"),
        (status = 200, body = crate::answer::Accepted, description = "`outbid_by_proxy`: recorded, but the leader's proxy answered"),
        (status = 403, description = "`wallet_not_linked`"),
        (status = 409, description = "`too_low` (with `minimum`), `not_open`, `closed`, `own_lot`, `insufficient_funds` (with `available`), `idempotency_key_reused`"),
        (status = 429, description = "`rate_limited`"),
        (status = 503, description = "`holds_unavailable` or `busy`: try again")))]
pub async fn place(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(lot_id): Path<String>,
    key: IdempotencyKey,
    extract::Json(request): extract::Json<BidRequest>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let answer = decide(&state, claims, &lot_id, &key, &request).await;
    let outcome = match &answer {
        Ok(answer) => BidMetrics::outcome_of(answer),
        Err(error) => error.outcome(),
    };
    state
        .bid_metrics
        .observe(outcome, started.elapsed().as_secs_f64());
    Ok(answer?.into_response())
}

async fn decide(
    state: &AppState,
    claims: gavel_common::auth::Claims,
    lot_id: &str,
    key: &IdempotencyKey,
    request: &BidRequest,
) -> Result<gavel_common::idempotency::StoredAnswer, ApiError> {
    let lot_id = parse_lot(lot_id)?;
    if request.max_amount.is_some_and(|max| max < request.amount) {
        return Err(
            Problem::invalid("max_amount", "the maximum cannot be below the amount").into(),
        );
    }
    let wallet = claims
        .wallet
        .parse()
        .map_err(|_| Problem::unauthorized("the token names no valid wallet"))?;
    let bidder = Bidder {
        account: gavel_types::AccountId(claims.sub),
        wallet,
    };
    Ok(state.engine.place(bidder, lot_id, key, request).await?)
}

/// The lot's public state. The reserve amount is never shown, only whether it is met; buy-now
/// only while it is on offer; the outcome once the auction has ended.
#[utoipa::path(get, path = "/lots/{lot_id}", tag = "lots", params(("lot_id" = uuid::Uuid, Path)),
    responses((status = 200, body = Object, description = "status, price, leader, bid count, next minimum, end, buy-now, reserve met, outcome, sequence, server time")))]
pub async fn snapshot(
    State(state): State<AppState>,
    Path(lot_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let lot_id = parse_lot(&lot_id)?;
    let stored = store::load(&state.engine.pool, lot_id, false)
        .await?
        .ok_or(ApiError::NotFound("lot"))?;
    let lot = &stored.lot;
    let open = !lot.status.ended();
    Ok(Json(json!({
        "lot_id": lot_id,
        "title": stored.title,
        "status": lot.status.as_str(),
        "price": lot.price,
        "leader": lot.leader.map(|leader| leader.bidder),
        "bid_count": lot.bid_count,
        "minimum_next": open.then(|| rules::minimum_next(lot)),
        "starts_at": lot.rules.starts_at,
        "ends_at": lot.ends_at,
        "buy_now": if open { rules::buy_now_available(lot) } else { None },
        "reserve_met": lot.rules.reserve.map(|reserve| lot.price.is_some_and(|price| price >= reserve)),
        "outcome": stored.outcome,
        "sequence": stored.seq,
        "server_time": stored.now,
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1 to 1000 (default 100; values outside are clamped).
    limit: Option<i64>,
}

/// The bid history, newest first.
#[utoipa::path(get, path = "/lots/{lot_id}/bids", tag = "bids", params(("lot_id" = uuid::Uuid, Path), HistoryQuery),
    responses((status = 200, body = Vec<Object>)))]
pub async fn history(
    State(state): State<AppState>,
    Path(lot_id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Vec<store::BidView>>, ApiError> {
    let lot_id = parse_lot(&lot_id)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        store::history(&state.engine.pool, lot_id, limit).await?,
    ))
}

/// The lots the signed-in account bid on, most recently bid on first (at most 100): whether it
/// leads, its highest bid, how each ended and whether it won.
#[utoipa::path(get, path = "/bidders/me/lots", tag = "bids", security(("bearer" = [])),
    responses((status = 200, body = Vec<Object>), (status = 401)))]
pub async fn my_lots(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Vec<store::BidderLot>>, ApiError> {
    let lots = store::bidder_lots(&state.engine.pool, AccountId(claims.sub), 100).await?;
    Ok(Json(lots))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The last sequence the client has (0 or more).
    since: Option<i64>,
    /// 1 to 1000 (default 500; values outside are clamped).
    limit: Option<i64>,
}

/// Events with a sequence above `since`, in order: what a client missed.
#[utoipa::path(get, path = "/lots/{lot_id}/events", tag = "lots", params(("lot_id" = uuid::Uuid, Path), EventsQuery),
    responses((status = 200, body = Object, description = "`{lot_id, since, events: [envelope]}`")))]
pub async fn events(
    State(state): State<AppState>,
    Path(lot_id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let lot_id = parse_lot(&lot_id)?;
    let since = query.since.unwrap_or(0);
    if since < 0 {
        return Err(Problem::invalid("since", "a sequence number is zero or more").into());
    }
    let limit = query.limit.unwrap_or(500).clamp(1, 1000);
    let events = store::events_since(&state.engine.pool, lot_id, since, limit).await?;
    Ok(Json(
        json!({"lot_id": lot_id, "since": since, "events": events}),
    ))
}
