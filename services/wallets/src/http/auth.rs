//! Sign-in: nonce, verification, first-sign-in account creation, token; and the JWKS.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use gavel_common::extract;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ApiError, AppState};
use crate::accounts;
use crate::signin::SignInError;

#[derive(Debug, Serialize)]
pub struct NonceResponse {
    nonce: String,
    expires_in: u64,
}

pub async fn nonce(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let nonce = state.nonces.issue().await?;
    let body = NonceResponse {
        nonce,
        expires_in: state.nonces.ttl().as_secs(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedMessage {
    pub message: String,
    pub signature: String,
}

#[derive(Debug, Serialize)]
pub struct SignInResponse {
    #[serde(flatten)]
    token: crate::tokens::AccessToken,
    account_id: gavel_types::AccountId,
    wallet: gavel_types::EthAddress,
}

pub async fn sign_in(
    State(state): State<AppState>,
    extract::Json(body): extract::Json<SignedMessage>,
) -> Result<Json<SignInResponse>, ApiError> {
    let verified = state.policy.verify(
        &body.message,
        &body.signature,
        None,
        OffsetDateTime::now_utc(),
    )?;
    // Consumed only after the signature checks out, and atomically: a replay finds it gone.
    if !state.nonces.consume(&verified.nonce).await? {
        return Err(SignInError::BadNonce.into());
    }
    let account = accounts::sign_in(&state.pool, verified.address).await?;
    let token = state
        .issuer
        .mint(account, verified.address)
        .map_err(|error| ApiError::Internal(Box::new(error)))?;
    tracing::info!(%account, wallet = %verified.address, "signed in");
    Ok(Json(SignInResponse {
        token,
        account_id: account,
        wallet: verified.address,
    }))
}

pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.issuer.jwks()),
    )
}
