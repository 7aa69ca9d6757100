//! Creating, changing, cancelling and browsing lots.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use gavel_common::auth::{Authenticated, Claims};
use gavel_common::extract;
use gavel_common::extract::Query;
use gavel_common::problem::Problem;
use gavel_events::LotCreated;
use gavel_messaging::Envelope;
use gavel_messaging::outbox::enqueue;
use gavel_types::{AccountId, EthAddress, LotId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, AppState};
use crate::changes::{self, Change, Verdict};
use crate::domain::LotInput;
use crate::store::{self, LotRow};

/// A lot as the API shows it. `reserve` is shown to the seller only; everyone sees `reserve_met`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LotView {
    pub id: uuid::Uuid,
    pub seller: uuid::Uuid,
    pub seller_wallet: String,
    pub title: String,
    pub description: String,
    pub asset: String,
    pub start_price: String,
    #[schema(value_type = Object)]
    pub increment: serde_json::Value,
    pub has_reserve: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserve: Option<String>,
    pub buy_now: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub latest_end: DateTime<Utc>,
    pub snipe_window_secs: i32,
    pub extension_secs: i32,
    pub status: String,
    pub summary: Summary,
    pub photos: Vec<PhotoView>,
    pub created_at: DateTime<Utc>,
}

/// The live state, from the auction engine's events.
#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub price: Option<String>,
    pub bid_count: i64,
    /// The current end, after any anti-sniping extension.
    pub ends_at: DateTime<Utc>,
    pub reserve_met: Option<bool>,
    pub outcome: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhotoView {
    pub id: uuid::Uuid,
    pub position: i32,
    pub url: String,
    pub content_type: String,
    pub width: i32,
    pub height: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Page {
    pub items: Vec<LotView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

pub(super) async fn view(
    state: &AppState,
    row: LotRow,
    viewer: Option<AccountId>,
    with_photos: bool,
) -> Result<LotView, ApiError> {
    let mut photos = Vec::new();
    if with_photos {
        for photo in store::photos(&state.pool, LotId(row.id)).await? {
            photos.push(PhotoView {
                id: photo.id,
                position: photo.position,
                url: super::photos::url(state, LotId(row.id), photo.id, &photo.object_key),
                content_type: photo.content_type,
                width: photo.width,
                height: photo.height,
            });
        }
    }
    let is_seller = viewer.is_some_and(|viewer| viewer.0 == row.seller);
    Ok(LotView {
        id: row.id,
        seller: row.seller,
        seller_wallet: row
            .seller_wallet
            .parse::<EthAddress>()
            .map(|w| w.to_string())
            .unwrap_or(row.seller_wallet),
        title: row.title,
        description: row.description,
        asset: row.asset,
        start_price: row.start_price,
        increment: serde_json::to_value(row.increment.0)?,
        has_reserve: row.reserve.is_some(),
        reserve: if is_seller { row.reserve } else { None },
        buy_now: row.buy_now,
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        latest_end: row.latest_end,
        snipe_window_secs: row.snipe_window_secs,
        extension_secs: row.extension_secs,
        status: row.status,
        summary: Summary {
            price: row.price,
            bid_count: row.bid_count,
            ends_at: row.current_end,
            reserve_met: row.reserve_met,
            outcome: row.outcome,
        },
        photos,
        created_at: row.created_at,
    })
}

fn seller_of(claims: &Claims) -> Result<(AccountId, EthAddress), ApiError> {
    let wallet = claims
        .wallet
        .parse()
        .map_err(|_| Problem::unauthorized("the token names no valid wallet"))?;
    Ok((AccountId(claims.sub), wallet))
}

pub(super) fn parse_lot(raw: &str) -> Result<LotId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::Problem(Problem::invalid("lot_id", "a lot id is a UUID")))
}

/// Put a lot up for auction.
#[utoipa::path(post, path = "/lots", request_body = LotInput, security(("bearer" = [])),
    responses((status = 201, body = LotView), (status = 400, description = "invalid field"), (status = 401, description = "not signed in")))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    extract::Json(input): extract::Json<LotInput>,
) -> Result<(StatusCode, Json<LotView>), ApiError> {
    let (seller, wallet) = seller_of(&claims)?;
    let spec = input.validate(Utc::now())?;
    let id = LotId::new();
    let event = LotCreated {
        lot_id: id,
        seller,
        seller_wallet: wallet,
        title: spec.title.clone(),
        rules: spec.rules.clone(),
    };
    let mut tx = state.pool.begin().await?;
    store::insert(&mut tx, id, seller, wallet, &spec).await?;
    enqueue(&mut tx, &Envelope::new(id.to_string(), None, &event)?).await?;
    tx.commit().await?;
    state.metrics.lot_created();
    let row = store::load(&state.pool, id, false)
        .await?
        .ok_or(ApiError::NotFound("lot"))?;
    Ok((
        StatusCode::CREATED,
        Json(view(&state, row, Some(seller), true).await?),
    ))
}

/// Loads `lot` for a change by its seller. This copy can refuse early what it knows (not the
/// seller, a bid seen, ended, a change still pending); whether no bid came first is the engine's
/// call.
async fn for_change(
    tx: &mut sqlx::PgConnection,
    lot: LotId,
    caller: AccountId,
) -> Result<LotRow, ApiError> {
    let row = store::load(&mut *tx, lot, true)
        .await?
        .ok_or(ApiError::NotFound("lot"))?;
    if row.seller != caller.0 {
        return Err(ApiError::NotSeller);
    }
    if row.first_bid_at.is_some() || row.bid_count > 0 {
        return Err(ApiError::conflict(
            "has_bids",
            "A lot cannot change once it has a bid",
        ));
    }
    if !matches!(row.status.as_str(), "scheduled" | "open") {
        return Err(ApiError::conflict(
            "lot_ended",
            format!("The lot is {}", row.status),
        ));
    }
    if row.pending {
        return Err(ApiError::conflict(
            "change_pending",
            "An earlier change of this lot still awaits the auction engine's answer; try again shortly",
        ));
    }
    Ok(row)
}

/// Makes `change` through the engine (see [`crate::changes`]) and answers with its verdict.
async fn change_lot(
    state: &AppState,
    id: LotId,
    seller: AccountId,
    change: Change,
) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await?;
    let row = for_change(&mut tx, id, seller).await?;
    changes::begin(&mut tx, id, &change).await?;
    tx.commit().await?;
    let verdict = state.engine.ask(&row, &change).await.map_err(|error| {
        tracing::warn!(error = %gavel_common::error_chain(&error), lot = %id, "the auction engine did not answer a change");
        ApiError::EngineUnavailable
    })?;
    changes::settle(&state.pool, id, &change, &verdict).await?;
    match verdict {
        Verdict::Applied => Ok(()),
        Verdict::HasBids => Err(ApiError::conflict(
            "has_bids",
            "A lot cannot change once it has a bid",
        )),
        Verdict::Ended { status } => Err(ApiError::conflict(
            "lot_ended",
            format!("The lot is {status}"),
        )),
    }
}

/// Replace a lot's description and rules (seller only, before the first bid).
#[utoipa::path(put, path = "/lots/{lot_id}", request_body = LotInput, security(("bearer" = [])),
    params(("lot_id" = uuid::Uuid, Path)),
    responses((status = 200, body = LotView), (status = 400), (status = 403), (status = 404), (status = 409, description = "has bids, ended, or a change pending"), (status = 503, description = "the auction engine did not answer; the change is settled later")))]
pub async fn replace(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(lot_id): Path<String>,
    extract::Json(input): extract::Json<LotInput>,
) -> Result<Json<LotView>, ApiError> {
    let id = parse_lot(&lot_id)?;
    let (seller, _) = seller_of(&claims)?;
    let spec = input.validate(Utc::now())?;
    change_lot(
        &state,
        id,
        seller,
        Change::Replace {
            spec: Box::new(spec),
        },
    )
    .await?;
    let row = store::load(&state.pool, id, false)
        .await?
        .ok_or(ApiError::NotFound("lot"))?;
    Ok(Json(view(&state, row, Some(seller), true).await?))
}

/// Withdraw a lot (seller only, before the first bid).
#[utoipa::path(delete, path = "/lots/{lot_id}", security(("bearer" = [])), params(("lot_id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 403), (status = 404), (status = 409), (status = 503)))]
pub async fn cancel(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(lot_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_lot(&lot_id)?;
    let (seller, _) = seller_of(&claims)?;
    change_lot(&state, id, seller, Change::Cancel).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One lot, with its photos and live summary.
#[utoipa::path(get, path = "/lots/{lot_id}", params(("lot_id" = uuid::Uuid, Path)), responses((status = 200, body = LotView), (status = 404)))]
pub async fn show(
    State(state): State<AppState>,
    viewer: Option<Authenticated>,
    Path(lot_id): Path<String>,
) -> Result<Json<LotView>, ApiError> {
    let id = parse_lot(&lot_id)?;
    let row = store::load(&state.pool, id, false)
        .await?
        .ok_or(ApiError::NotFound("lot"))?;
    let viewer = viewer.map(|Authenticated(claims)| AccountId(claims.sub));
    Ok(Json(view(&state, row, viewer, true).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `scheduled`, `open`, `closed` or `cancelled`.
    status: Option<String>,
    seller: Option<uuid::Uuid>,
    /// Only lots ending within this many seconds (and sorted by end).
    ending_within_secs: Option<i64>,
    /// Current price (or start price) at least this, in wei.
    min_price: Option<String>,
    max_price: Option<String>,
    /// Full-text search over title and description.
    q: Option<String>,
    /// `newest` (default), `ending`, `price_low` or `price_high` (the current price, or the start
    /// price before the first bid; prices move, so paging a price order may show a lot twice or
    /// skip one that moved across the page boundary).
    sort: Option<String>,
    cursor: Option<String>,
    /// 1 to 100, default 20.
    limit: Option<i64>,
}

/// Lots ending further ahead than a year are not worth a filter (and the bound keeps the interval
/// arithmetic in range).
const MAX_ENDING_WITHIN_SECS: i64 = 366 * 24 * 3600;

/// The catalogue: filters, full-text search, cursor pagination.
#[utoipa::path(get, path = "/lots", params(ListQuery), responses((status = 200, body = Page), (status = 400)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Page>, ApiError> {
    let invalid = |field: &str, message: &str| {
        ApiError::Problem(Problem::invalid(field.to_owned(), message.to_owned()))
    };
    if let Some(status) = &query.status
        && !["scheduled", "open", "closed", "cancelled"].contains(&status.as_str())
    {
        return Err(invalid(
            "status",
            "one of scheduled, open, closed, cancelled",
        ));
    }
    let price = |raw: &Option<String>, field: &str| {
        raw.as_deref()
            .map(|raw| {
                raw.parse::<gavel_types::Wei>()
                    .map_err(|error| invalid(field, &error.to_string()))
            })
            .transpose()
    };
    let sort = match query.sort.as_deref() {
        None if query.ending_within_secs.is_some() => store::Sort::Ending,
        None | Some("newest") => store::Sort::Newest,
        Some("ending") => store::Sort::Ending,
        Some("price_low") => store::Sort::PriceLow,
        Some("price_high") => store::Sort::PriceHigh,
        Some(_) => {
            return Err(invalid(
                "sort",
                "`newest`, `ending`, `price_low` or `price_high`",
            ));
        }
    };
    if query
        .ending_within_secs
        .is_some_and(|seconds| !(1..=MAX_ENDING_WITHIN_SECS).contains(&seconds))
    {
        return Err(invalid(
            "ending_within_secs",
            "a number of seconds from 1 to 31622400 (a year)",
        ));
    }
    if let Some(text) = &query.q {
        crate::domain::check_text("q", text, 200, false).map_err(ApiError::Invalid)?;
    }
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(invalid("limit", "between 1 and 100"));
    }
    let after = query
        .cursor
        .as_deref()
        .map(|cursor| {
            decode_cursor(cursor, sort)
                .ok_or_else(|| invalid("cursor", "not a cursor from this API for this order"))
        })
        .transpose()?;
    let filter = store::Filter {
        status: query.status.clone(),
        seller: query.seller.map(AccountId),
        ending_within_secs: query.ending_within_secs,
        min_price: price(&query.min_price, "min_price")?,
        max_price: price(&query.max_price, "max_price")?,
        text: query.q.clone().filter(|text| !text.trim().is_empty()),
        sort,
        after,
        limit: limit + 1,
    };
    let mut rows = store::list(&state.pool, &filter).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(row) if more => Some(encode_cursor(&cursor_of(row, sort)?)),
        _ => None,
    };
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        items.push(view(&state, row, None, false).await?);
    }
    Ok(Json(Page { items, next_cursor }))
}

/// The cursor after `row` in `sort` order.
fn cursor_of(row: &LotRow, sort: store::Sort) -> Result<store::Cursor, ApiError> {
    Ok(match sort {
        store::Sort::Newest => store::Cursor::At(row.created_at, row.id),
        store::Sort::Ending => store::Cursor::At(row.current_end, row.id),
        store::Sort::PriceLow | store::Sort::PriceHigh => {
            let price = row.price.as_deref().unwrap_or(&row.start_price);
            let price = price
                .parse()
                .map_err(|error| ApiError::Internal(Box::new(error)))?;
            store::Cursor::Price(price, row.id)
        }
    })
}

/// `{micros}_{id}` for a time, `p{wei}_{id}` for a price.
fn encode_cursor(cursor: &store::Cursor) -> String {
    match cursor {
        store::Cursor::At(at, id) => format!("{}_{}", at.timestamp_micros(), id.simple()),
        store::Cursor::Price(price, id) => format!("p{price}_{}", id.simple()),
    }
}

/// A cursor of this API for `sort`: a time cursor cannot continue a price order, nor the reverse.
fn decode_cursor(raw: &str, sort: store::Sort) -> Option<store::Cursor> {
    let (key, id) = raw.split_once('_')?;
    let id = uuid::Uuid::parse_str(id).ok()?;
    match (sort, key.strip_prefix('p')) {
        (store::Sort::PriceLow | store::Sort::PriceHigh, Some(price)) => {
            Some(store::Cursor::Price(price.parse().ok()?, id))
        }
        (store::Sort::Newest | store::Sort::Ending, None) => Some(store::Cursor::At(
            DateTime::from_timestamp_micros(key.parse().ok()?)?,
            id,
        )),
        _ => None,
    }
}
