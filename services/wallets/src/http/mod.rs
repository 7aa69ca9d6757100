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
use axum::routing::{delete, get, post};
use gavel_common::auth::JwtVerifier;
use gavel_common::internal::Callers;
use gavel_common::openapi::ProblemResponses;
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
    pub metrics: crate::metrics::WalletMetrics,
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
        .route("/internal/holds/releases", post(holds::release_many))
        .route("/internal/holds/capture", post(holds::capture))
        .route("/internal/holds/unconfirmed", get(holds::unconfirmed))
        .route("/internal/holds/verdict", post(holds::verdict))
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
}

/// The public API's OpenAPI document, generated from the handlers' annotations.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "Gavel wallets", version = "1", description = "Sign-In with Ethereum, access tokens and their keys, linked wallets and balances, payments. Errors are application/problem+json with a stable `code`."),
    paths(auth::nonce, auth::sign_in, auth::jwks, wallets::list, wallets::link, wallets::unlink,
          wallets::balance, payments::show, payments::submit),
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
                    .bearer_format("JWT (EdDSA)")
                    .build(),
            ),
        );
    }
}

async fn openapi() -> impl axum::response::IntoResponse {
    use utoipa::OpenApi as _;
    axum::Json(ApiDoc::openapi())
}
