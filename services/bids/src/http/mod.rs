//! The HTTP APIs of `bids`: the public one (placing bids as a signed-in bidder; the state,
//! history and per-lot event log browsers and the gateway read) and, on the internal listener,
//! sellers' changes relayed by `lots`.
//!
//! Layout: [`public`], [`internal`], [`error`] (the one error type and its `problem+json`).

mod error;
mod internal;
mod public;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use gavel_common::auth::JwtVerifier;
use gavel_common::internal::Callers;

pub use error::ApiError;

use crate::engine::Engine;

#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub verifier: JwtVerifier,
    pub callers: Callers,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

impl FromRef<AppState> for Callers {
    fn from_ref(state: &AppState) -> Self {
        state.callers.clone()
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/lots/{lot_id}", get(public::snapshot))
        .route(
            "/lots/{lot_id}/bids",
            post(public::place).get(public::history),
        )
        .route("/lots/{lot_id}/events", get(public::events))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
}

pub fn internal_router(state: AppState) -> Router {
    Router::new()
        .route("/internal/lots/{lot_id}", put(internal::update))
        .route("/internal/lots/{lot_id}/cancel", post(internal::cancel))
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
