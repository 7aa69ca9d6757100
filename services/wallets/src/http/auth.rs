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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NonceResponse {
    nonce: String,
    expires_in: u64,
}

/// A fresh single-use nonce for a Sign-In with Ethereum message.
#[utoipa::path(get, path = "/auth/nonce", tag = "sign-in", responses((status = 200, body = NonceResponse)))]
pub async fn nonce(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let nonce = state.nonces.issue().await?;
    let body = NonceResponse {
        nonce,
        expires_in: state.nonces.ttl().as_secs(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedMessage {
    /// The EIP-4361 message, exactly as signed.
    pub message: String,
    /// The EIP-191 signature: `0x` and 65 bytes in hex.
    pub signature: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignInResponse {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    token: crate::tokens::AccessToken,
    #[schema(value_type = uuid::Uuid)]
    account_id: gavel_types::AccountId,
    #[schema(value_type = String)]
    wallet: gavel_types::EthAddress,
}

/// Sign in with a signed EIP-4361 message: an access token (and the account, on first sign-in).
#[utoipa::path(post, path = "/auth/sign-in", tag = "sign-in", request_body = SignedMessage,
    responses((status = 200, body = SignInResponse), (status = 401, description = "`sign_in_refused`: domain, URI, chain, time, nonce or signer")))]
pub async fn sign_in(
    State(state): State<AppState>,
    extract::Json(body): extract::Json<SignedMessage>,
) -> Result<Json<SignInResponse>, ApiError> {
    let signed_in = verify_and_mint(&state, &body).await;
    let outcome = match &signed_in {
        Ok(_) => "signed_in",
        Err(ApiError::SignIn(error)) => error.outcome(),
        Err(_) => "error",
    };
    state.metrics.sign_in(outcome);
    Ok(Json(signed_in?))
}

async fn verify_and_mint(
    state: &AppState,
    body: &SignedMessage,
) -> Result<SignInResponse, ApiError> {
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
    Ok(SignInResponse {
        token,
        account_id: account,
        wallet: verified.address,
    })
}

/// The public keys that verify access tokens (RFC 7517).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "sign-in", responses((status = 200, body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(state.issuer.jwks()),
    )
}
