//! The one error type of the `lots` API and its `problem+json` rendering.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gavel_common::BoxError;
use gavel_common::problem::Problem;

use crate::domain::Invalid;
use crate::photos::Rejected;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("only the seller may change this lot")]
    NotSeller,
    #[error("{title}")]
    Conflict { code: &'static str, title: String },
    #[error("the photo is larger than {max} bytes")]
    TooLarge { max: usize },
    #[error(transparent)]
    Photo(#[from] Rejected),
    #[error("the auction engine did not answer")]
    EngineUnavailable,
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl ApiError {
    pub fn conflict(code: &'static str, title: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            title: title.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let problem = match self {
            Self::Invalid(invalid) => Problem::invalid(invalid.field, invalid.message),
            Self::Problem(problem) => problem,
            Self::NotFound(what) => Problem::not_found(what),
            Self::NotSeller => Problem::new(
                StatusCode::FORBIDDEN,
                "not_seller",
                "Only the seller may change this lot",
            ),
            Self::Conflict { code, title } => Problem::new(StatusCode::CONFLICT, code, title),
            Self::TooLarge { max } => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "photo_too_large",
                "The photo is too large",
            )
            .with_detail(format!("at most {max} bytes"))
            .with_field("photo"),
            Self::Photo(rejected) => {
                let (status, code) = match rejected {
                    Rejected::NotAnImage => {
                        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_image")
                    }
                    Rejected::TooLarge { .. } => {
                        (StatusCode::UNPROCESSABLE_ENTITY, "image_too_large")
                    }
                    Rejected::Damaged(_) => (StatusCode::UNPROCESSABLE_ENTITY, "damaged_image"),
                };
                Problem::new(status, code, "The photo was refused")
                    .with_detail(rejected.to_string())
                    .with_field("photo")
            }
            Self::EngineUnavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "engine_unavailable",
                "The auction engine did not answer",
            )
            .with_detail(
                "your change waits for the engine's answer and will be applied, or refused if a \
                 bid came first; look at the lot again in a few seconds",
            ),
            Self::Internal(error) => Problem::internal(error.as_ref()),
        };
        problem.into_response()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(error: serde_json::Error) -> Self {
        Self::Internal(Box::new(error))
    }
}

impl From<crate::changes::ChangeError> for ApiError {
    fn from(error: crate::changes::ChangeError) -> Self {
        Self::Internal(Box::new(error))
    }
}
