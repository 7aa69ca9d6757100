//! The HTTP API of `wallets`: sign-in, linked wallets, balances, payments (public, signed-in
//! users), the holds ledger (internal, for `bids`), the JWKS and the OpenAPI document.

mod auth;
mod error;
mod holds;
mod payments;
mod wallets;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use gavel_common::auth::JwtVerifier;
use gavel_common::config::Secret;
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
    pub internal_tokens: Arc<BTreeMap<String, Secret>>,
}

impl FromRef<AppState> for JwtVerifier {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}

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
        .route("/internal/holds", get(holds::list))
        .route("/internal/holds/place", post(holds::place))
        .route("/internal/holds/release", post(holds::release))
        .route("/internal/holds/capture", post(holds::capture))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(state)
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
}

/// A service calling the internal API, identified by its bearer token.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "the internal API needs `Authorization: Bearer <service token>`".into(),
                )
            })?;
        state
            .internal_tokens
            .iter()
            .find(|(_, token)| constant_time_eq(token.expose().as_bytes(), presented.as_bytes()))
            .map(|(name, _)| Caller(name.clone()))
            .ok_or_else(|| ApiError::Unauthorized("unknown service token".into()))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Idempotency-Key` header: 1 to 200 visible ASCII characters.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let value = parts.headers.get("idempotency-key").ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                "this operation needs an `Idempotency-Key` header",
            )
        })?;
        let key = value.to_str().unwrap_or_default();
        if key.is_empty() || key.len() > 200 || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                "1 to 200 visible ASCII characters",
            ));
        }
        Ok(Self(key.to_owned()))
    }
}
