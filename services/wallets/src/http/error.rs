//! The one error type of the `wallets` API and its `problem+json` rendering.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gavel_common::BoxError;
use gavel_common::problem::Problem;

use crate::chain::{ChainError, PaymentCheck};
use crate::signin::SignInError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Invalid { field: &'static str, detail: String },
    #[error(transparent)]
    SignIn(#[from] SignInError),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("{title}")]
    Conflict { code: &'static str, title: String },
    #[error(transparent)]
    Payment(#[from] PaymentCheck),
    #[error("the Ethereum node is unavailable")]
    ChainUnavailable(#[source] ChainError),
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn invalid(field: &'static str, detail: impl ToString) -> Self {
        Self::Invalid {
            field,
            detail: detail.to_string(),
        }
    }

    pub fn conflict(code: &'static str, title: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            title: title.into(),
        }
    }

    pub(crate) fn problem(&self) -> Problem {
        match self {
            Self::Invalid { field, detail } => Problem::invalid(*field, detail.clone()),
            Self::SignIn(error) if error.is_malformed() => {
                Problem::invalid(error.field(), error.to_string())
            }
            Self::SignIn(error) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "sign_in_refused",
                "Sign-in refused",
            )
            .with_detail(error.to_string())
            .with_field(error.field()),
            Self::Unauthorized(detail) => Problem::unauthorized(detail.clone()),
            Self::Forbidden(detail) => {
                Problem::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed")
                    .with_detail(detail.clone())
            }
            Self::NotFound(what) => Problem::not_found(what),
            Self::Conflict { code, title } => {
                Problem::new(StatusCode::CONFLICT, code, title.clone())
            }
            Self::Payment(check) => Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                check.code(),
                "The transaction does not settle this payment",
            )
            .with_detail(check.to_string())
            .with_field("tx_hash"),
            Self::ChainUnavailable(error) => {
                tracing::warn!(error = %gavel_common::error_chain(error), "Ethereum node unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "chain_unavailable",
                    "The Ethereum node is unavailable; try again",
                )
            }
            Self::Problem(problem) => problem.clone(),
            Self::Internal(error) => Problem::internal(error.as_ref()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.problem().into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<ChainError> for ApiError {
    fn from(error: ChainError) -> Self {
        match error {
            ChainError::Rpc(_) | ChainError::MissingBlock(_) => Self::ChainUnavailable(error),
            ChainError::Cache(error) => Self::Internal(Box::new(error)),
        }
    }
}
