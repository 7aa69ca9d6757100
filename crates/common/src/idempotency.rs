//! The `Idempotency-Key` plumbing every API that changes money shares: the header as a validated
//! extractor, and a stored answer that replays as the same response with
//! `idempotent-replayed: true`, kept for `retention.idempotency`. Where the key is stored, and
//! what it is scoped to, belongs to each service's own transaction.

use std::time::Duration;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::BoxError;
use crate::problem::{CONTENT_TYPE, Problem};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// The `Idempotency-Key` header: 1 to 200 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(pub String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        if raw.is_empty() || raw.len() > 200 || !raw.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(Problem::invalid(
                "Idempotency-Key",
                "an `Idempotency-Key` header of 1 to 200 visible ASCII characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get(HEADER).ok_or_else(|| {
            Problem::invalid(
                "Idempotency-Key",
                "this operation needs an `Idempotency-Key` header",
            )
        })?;
        Self::parse(value.to_str().unwrap_or_default())
    }
}

/// An answer as stored with its key: replaying it gives the client the same response.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: Value,
    /// True when this is the stored answer to an earlier request with the same key.
    pub replayed: bool,
}

impl StoredAnswer {
    pub fn fresh(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            replayed: false,
        }
    }
}

impl IntoResponse for StoredAnswer {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body)).into_response();
        if status.is_client_error() {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        }
        if self.replayed {
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}

/// How long stored answers are kept (`retention.idempotency`, 7 days by default): a retry with
/// the same key after that is a new request. Browsers retry within seconds and `bids` retries its
/// calls to `wallets` within minutes, so a week leaves a wide margin and bounds the tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    #[serde(with = "humantime_serde")]
    pub idempotency: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            idempotency: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// One service's table of stored answers, pruned by age at start and hourly.
#[derive(Debug, Clone)]
pub struct StoredAnswers {
    pub pool: PgPool,
    /// A table with a `created_at` column (and an index on it).
    pub table: &'static str,
    /// Which of the old rows may go (`"true"` for all), e.g. only decided requests.
    pub only: &'static str,
    pub older_than: Duration,
}

impl StoredAnswers {
    /// Deletes the rows older than `older_than`, 10,000 per statement so no statement holds
    /// many locks; returns how many.
    pub async fn prune(&self) -> Result<u64, sqlx::Error> {
        let sql = format!(
            "DELETE FROM {table} WHERE ctid IN (
                 SELECT ctid FROM {table} WHERE created_at < now() - $1 AND ({only})
                 ORDER BY created_at LIMIT {BATCH})",
            table = self.table,
            only = self.only,
        );
        let mut total = 0;
        loop {
            let deleted = sqlx::query(&sql)
                .bind(self.older_than)
                .execute(&self.pool)
                .await?
                .rows_affected();
            total += deleted;
            if deleted < BATCH {
                return Ok(total);
            }
        }
    }

    /// Prunes at start and every hour until cancelled.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        crate::db::prune_hourly(self.table, cancel, || self.prune()).await;
        Ok(())
    }
}

const BATCH: u64 = 10_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_two_hundred_visible_characters() {
        assert!(IdempotencyKey::parse("bid-1").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(200)).is_ok());
        for bad in ["", "has space", "tab\t", "é"] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(201)).is_err());
    }

    #[test]
    fn a_replayed_refusal_is_a_problem_marked_as_replayed() {
        let response = StoredAnswer {
            status: 409,
            body: serde_json::json!({"code": "too_low"}),
            replayed: true,
        }
        .into_response();
        assert_eq!(response.status(), 409);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(response.headers()[REPLAYED], "true");
    }
}
