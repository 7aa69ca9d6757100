//! PostgreSQL access: lots, photos, the catalogue query, and the live summary.

use chrono::{DateTime, Utc};
use gavel_events::{Increment, LotRules};
use gavel_types::{AccountId, EthAddress, LotId, Wei};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, PgPool, QueryBuilder};
use utoipa::ToSchema;

use gavel_common::db::{CorruptValue, parse_column};

use crate::domain::LotSpec;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LotRow {
    pub id: uuid::Uuid,
    pub seller: uuid::Uuid,
    pub seller_wallet: String,
    pub title: String,
    pub description: String,
    pub asset: String,
    pub start_price: String,
    pub increment: sqlx::types::Json<Increment>,
    pub reserve: Option<String>,
    pub buy_now: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub latest_end: DateTime<Utc>,
    pub snipe_window_secs: i32,
    pub extension_secs: i32,
    pub status: String,
    pub first_bid_at: Option<DateTime<Utc>>,
    pub price: Option<String>,
    pub bid_count: i64,
    pub current_end: DateTime<Utc>,
    pub reserve_met: Option<bool>,
    pub outcome: Option<String>,
    pub created_at: DateTime<Utc>,
    /// A seller's change waits for the auction engine's answer.
    pub pending: bool,
}

const COLUMNS: &str = "id, seller, seller_wallet, title, description, asset, start_price::text AS start_price, increment,
    reserve::text AS reserve, buy_now::text AS buy_now, starts_at, ends_at, latest_end, snipe_window_secs, extension_secs,
    status, first_bid_at, price::text AS price, bid_count, current_end, reserve_met, outcome, created_at,
    pending_change IS NOT NULL AS pending";

impl LotRow {
    /// The rules as stored; a value this version cannot read is an error, never a default.
    pub fn rules(&self) -> Result<LotRules, CorruptValue> {
        let wei = |column, raw: &str| parse_column::<Wei>(column, raw);
        let seconds = |column, value: i32| {
            u32::try_from(value).map_err(|_| CorruptValue {
                column,
                value: value.to_string(),
            })
        };
        Ok(LotRules {
            start_price: wei("lots.start_price", &self.start_price)?,
            increment: self.increment.0,
            reserve: self
                .reserve
                .as_deref()
                .map(|raw| wei("lots.reserve", raw))
                .transpose()?,
            buy_now: self
                .buy_now
                .as_deref()
                .map(|raw| wei("lots.buy_now", raw))
                .transpose()?,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            latest_end: self.latest_end,
            snipe_window_secs: seconds("lots.snipe_window_secs", self.snipe_window_secs)?,
            extension_secs: seconds("lots.extension_secs", self.extension_secs)?,
        })
    }

    pub fn seller_wallet(&self) -> Result<EthAddress, CorruptValue> {
        parse_column("lots.seller_wallet", &self.seller_wallet)
    }
}

pub async fn insert(
    connection: &mut PgConnection,
    id: LotId,
    seller: AccountId,
    wallet: EthAddress,
    spec: &LotSpec,
) -> Result<(), sqlx::Error> {
    let rules = &spec.rules;
    sqlx::query(
        "INSERT INTO lots (id, seller, seller_wallet, title, description, asset, start_price, increment, reserve, buy_now,
             starts_at, ends_at, latest_end, snipe_window_secs, extension_secs, status, current_end)
         VALUES ($1, $2, $3, $4, $5, $6, $7::numeric, $8, $9::numeric, $10::numeric, $11, $12, $13, $14, $15, 'scheduled', $12)",
    )
    .bind(id.0)
    .bind(seller.0)
    .bind(wallet.to_lowercase_hex())
    .bind(&spec.title)
    .bind(&spec.description)
    .bind(&spec.asset)
    .bind(rules.start_price.to_string())
    .bind(sqlx::types::Json(rules.increment))
    .bind(rules.reserve.map(|wei| wei.to_string()))
    .bind(rules.buy_now.map(|wei| wei.to_string()))
    .bind(rules.starts_at)
    .bind(rules.ends_at)
    .bind(rules.latest_end)
    .bind(i32::try_from(rules.snipe_window_secs).unwrap_or(i32::MAX))
    .bind(i32::try_from(rules.extension_secs).unwrap_or(i32::MAX))
    .execute(connection)
    .await?;
    Ok(())
}

pub async fn replace(
    connection: &mut PgConnection,
    id: LotId,
    spec: &LotSpec,
) -> Result<(), sqlx::Error> {
    let rules = &spec.rules;
    sqlx::query(
        "UPDATE lots SET title = $2, description = $3, start_price = $4::numeric, increment = $5, reserve = $6::numeric,
             buy_now = $7::numeric, starts_at = $8, ends_at = $9, latest_end = $10, snipe_window_secs = $11,
             extension_secs = $12, current_end = $9, updated_at = now()
         WHERE id = $1",
    )
    .bind(id.0)
    .bind(&spec.title)
    .bind(&spec.description)
    .bind(rules.start_price.to_string())
    .bind(sqlx::types::Json(rules.increment))
    .bind(rules.reserve.map(|wei| wei.to_string()))
    .bind(rules.buy_now.map(|wei| wei.to_string()))
    .bind(rules.starts_at)
    .bind(rules.ends_at)
    .bind(rules.latest_end)
    .bind(i32::try_from(rules.snipe_window_secs).unwrap_or(i32::MAX))
    .bind(i32::try_from(rules.extension_secs).unwrap_or(i32::MAX))
    .execute(connection)
    .await?;
    Ok(())
}

/// Reads a lot; with `lock`, for the rest of the transaction.
pub async fn load<'e>(
    executor: impl PgExecutor<'e>,
    id: LotId,
    lock: bool,
) -> Result<Option<LotRow>, sqlx::Error> {
    let lock = if lock { " FOR UPDATE" } else { "" };
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM lots WHERE id = $1{lock}"))
        .bind(id.0)
        .fetch_optional(executor)
        .await
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct PhotoRow {
    pub id: uuid::Uuid,
    #[serde(skip)]
    pub lot_id: uuid::Uuid,
    pub position: i32,
    #[serde(skip)]
    pub object_key: String,
    pub content_type: String,
    pub width: i32,
    pub height: i32,
    pub bytes: i32,
}

pub async fn photos<'e>(
    executor: impl PgExecutor<'e>,
    lot: LotId,
) -> Result<Vec<PhotoRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, lot_id, position, object_key, content_type, width, height, bytes FROM photos WHERE lot_id = $1 ORDER BY position")
        .bind(lot.0)
        .fetch_all(executor)
        .await
}

/// Catalogue filters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub seller: Option<AccountId>,
    pub ending_within_secs: Option<i64>,
    pub min_price: Option<Wei>,
    pub max_price: Option<Wei>,
    pub text: Option<String>,
    pub sort: Sort,
    /// Keyset cursor: the sort key and id of the last item of the previous page.
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// The catalogue's orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Sort {
    /// Put up most recently first.
    #[default]
    Newest,
    /// Ending soonest first (the current end, after extensions).
    Ending,
    /// Cheapest first: the current price, or the start price before the first bid.
    PriceLow,
    /// Dearest first.
    PriceHigh,
}

impl Sort {
    /// The column (or expression), the direction and the keyset comparison for the next page.
    fn order(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Newest => ("created_at", "DESC", "<"),
            Self::Ending => ("current_end", "ASC", ">"),
            Self::PriceLow => ("COALESCE(price, start_price)", "ASC", ">"),
            Self::PriceHigh => ("COALESCE(price, start_price)", "DESC", "<"),
        }
    }
}

/// Where the previous page ended: its last item's sort key and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cursor {
    At(DateTime<Utc>, uuid::Uuid),
    Price(Wei, uuid::Uuid),
}

pub async fn list(pool: &PgPool, filter: &Filter) -> Result<Vec<LotRow>, sqlx::Error> {
    let mut query = QueryBuilder::new(format!("SELECT {COLUMNS} FROM lots WHERE true"));
    if let Some(status) = &filter.status {
        query.push(" AND status = ").push_bind(status.clone());
    }
    if let Some(seller) = filter.seller {
        query.push(" AND seller = ").push_bind(seller.0);
    }
    if let Some(seconds) = filter.ending_within_secs {
        query.push(" AND status IN ('scheduled', 'open') AND current_end <= now() + make_interval(secs => ").push_bind(seconds as f64).push(")");
    }
    if let Some(min) = filter.min_price {
        query
            .push(" AND COALESCE(price, start_price) >= ")
            .push_bind(min.to_string())
            .push("::numeric");
    }
    if let Some(max) = filter.max_price {
        query
            .push(" AND COALESCE(price, start_price) <= ")
            .push_bind(max.to_string())
            .push("::numeric");
    }
    if let Some(text) = &filter.text {
        query
            .push(" AND search @@ websearch_to_tsquery('simple', ")
            .push_bind(text.clone())
            .push(")");
    }
    let (key, direction, comparison) = filter.sort.order();
    if let Some(after) = &filter.after {
        query.push(format!(" AND ({key}, id) {comparison} ("));
        match after {
            Cursor::At(at, _) => query.push_bind(*at),
            Cursor::Price(price, _) => query.push_bind(price.to_string()).push("::numeric"),
        };
        let (Cursor::At(_, id) | Cursor::Price(_, id)) = after;
        query.push(", ").push_bind(*id).push(")");
    }
    query
        .push(format!(
            " ORDER BY {key} {direction}, id {direction} LIMIT "
        ))
        .push_bind(filter.limit);
    query.build_query_as().fetch_all(pool).await
}
