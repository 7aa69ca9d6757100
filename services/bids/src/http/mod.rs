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
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use gavel_common::auth::JwtVerifier;
use gavel_common::internal::Callers;
use gavel_common::openapi::ProblemResponses;

pub use error::ApiError;

use crate::engine::Engine;

#[derive(Clone, Debug)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub bid_metrics: crate::metrics::BidMetrics,
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
        .route("/bidders/me/lots", get(public::my_lots))
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

/// The public API's OpenAPI document, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gavel bids", version = "1", description = "The auction engine's public API: a lot's live state, its bids and event log, and placing bids. Errors are application/problem+json with a stable `code`."),
    paths(
        public::snapshot,
        public::place,
        public::history,
        public::events,
        public::my_lots
    ),
    modifiers(&Security, &ProblemResponses)
)]
#[derive(Debug)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT (EdDSA) from wallets")
                    .build(),
            ),
        );
    }
}

async fn openapi() -> impl IntoResponse {
    use utoipa::OpenApi as _;
    axum::Json(ApiDoc::openapi())
}
