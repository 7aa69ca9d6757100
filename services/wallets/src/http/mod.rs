//! The HTTP API of `wallets`: sign-in, linked wallets, balances, payments (public, signed-in
//! users), the holds ledger (internal, for `bids`), the JWKS and the OpenAPI document.

mod auth;
mod error;
mod holds;
mod payments;
mod wallets;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRef;
use axum::http::header;
use axum::routing::{delete, get, post};
use gavel_common::auth::JwtVerifier;
use gavel_common::internal::Callers;
use sqlx::PgPool;

pub use error::ApiError;

use crate::chain::Chain;
use crate::nonces::Nonces;
use crate::signin::Policy;
use crate::tokens::TokenIssuer;

/// Cheap handles shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub pool: PgPool,
    pub nonces: Nonces,
    pub policy: Arc<Policy>,
    pub issuer: Arc<TokenIssuer>,
    pub verifier: JwtVerifier,
    pub chain: Chain,
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

/// The public API: what browsers (through the gateway) call.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/auth/nonce", get(auth::nonce))
        .route("/auth/sign-in", post(auth::sign_in))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .route("/wallets", get(wallets::list).post(wallets::link))
        .route("/wallets/{address}", delete(wallets::unlink))
        .route("/wallets/{address}/balance", get(wallets::balance))
        .route(
            "/payments/{lot_id}",
            get(payments::show).post(payments::submit),
        )
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
}

/// The internal API, for `bids` only, on the internal listener: the holds ledger and the repair
/// of holds whose bid is unconfirmed.
pub fn internal_router(state: AppState) -> Router {
    Router::new()
        .route("/internal/holds", get(holds::list))
        .route("/internal/holds/place", post(holds::place))
        .route("/internal/holds/release", post(holds::release))
        .route("/internal/holds/capture", post(holds::capture))
        .route("/internal/holds/unconfirmed", get(holds::unconfirmed))
        .route("/internal/holds/verdict", post(holds::verdict))
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}
