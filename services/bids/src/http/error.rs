//! The one error type of the `bids` APIs and its `problem+json` rendering.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gavel_common::problem::Problem;

use crate::engine::EngineError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Input refused at the edge (a bad id, a bad header, a bad body).
    #[error(transparent)]
    Input(#[from] Problem),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The outcome a failed bid request counts as in `gavel_bids_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Input(_) => "invalid",
            Self::NotFound(_) | Self::Engine(EngineError::UnknownLot) => "unknown_lot",
            Self::Engine(EngineError::KeyReused) => "idempotency_key_reused",
            Self::Engine(EngineError::RateLimited) => "rate_limited",
            Self::Engine(EngineError::Wallets(_)) => "holds_unavailable",
            Self::Engine(EngineError::Stopping) => "busy",
            Self::Engine(error)
                if matches!(
                    error.store(),
                    Some(StoreError::Database(sqlx::Error::PoolTimedOut))
                ) =>
            {
                "busy"
            }
            Self::Store(StoreError::Database(sqlx::Error::PoolTimedOut)) => "busy",
            Self::Engine(_) | Self::Store(_) => "error",
        }
    }

    fn problem(&self) -> Problem {
        match self {
            Self::Input(problem) => problem.clone(),
            Self::NotFound(what) => Problem::not_found(what),
            Self::Engine(EngineError::UnknownLot) => Problem::not_found("lot"),
            Self::Engine(EngineError::KeyReused) => Problem::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "This Idempotency-Key was already used for a different bid",
            ),
            Self::Engine(EngineError::RateLimited) => Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many bids; slow down",
            )
            .with("result", "rate_limited"),
            Self::Engine(EngineError::Wallets(error)) => {
                tracing::warn!(error = %gavel_common::error_chain(error), "wallets unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "holds_unavailable",
                    "Funds cannot be checked right now; try again",
                )
            }
            Self::Engine(EngineError::Redis(error)) => Problem::internal(error),
            Self::Engine(EngineError::Stopping) => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "The engine is stopping; try again shortly",
            ),
            Self::Engine(EngineError::Store(error)) | Self::Store(error) => store_problem(error),
            Self::Engine(EngineError::Batch(error)) => store_problem(error),
            Self::Engine(error @ EngineError::Interrupted) => Problem::internal(error),
        }
    }
}

fn store_problem(error: &StoreError) -> Problem {
    match error {
        StoreError::Database(sqlx::Error::PoolTimedOut) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "The engine is busy; try again shortly",
        ),
        other => Problem::internal(other),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}
