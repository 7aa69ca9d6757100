//! The signed-in user's wallets: list, link (by signing a link message), unlink, balance.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use gavel_common::auth::Authenticated;
use gavel_common::extract;
use gavel_types::{AccountId, EthAddress, Wei};
use serde::Serialize;
use time::OffsetDateTime;

use super::auth::SignedMessage;
use super::{ApiError, AppState};
use crate::accounts::{self, LinkError, UnlinkError};
use crate::signin::{SignInError, link_statement};

/// The signed-in account's linked wallets.
#[utoipa::path(get, path = "/wallets", tag = "wallets", security(("bearer" = [])), responses((status = 200, body = Vec<Object>)))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<Json<Vec<accounts::LinkedWallet>>, ApiError> {
    Ok(Json(
        accounts::wallets(&state.pool, AccountId(claims.sub)).await?,
    ))
}

/// Links the wallet that signed `message`, whose statement must be the account's link statement.
#[utoipa::path(post, path = "/wallets", tag = "wallets", security(("bearer" = [])), request_body = super::auth::SignedMessage,
    responses((status = 201, body = Vec<Object>), (status = 409, description = "`wallet_taken`")))]
pub async fn link(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    extract::Json(body): extract::Json<SignedMessage>,
) -> Result<(StatusCode, Json<Vec<accounts::LinkedWallet>>), ApiError> {
    let account = AccountId(claims.sub);
    let statement = link_statement(account);
    let verified = state.policy.verify(
        &body.message,
        &body.signature,
        Some(&statement),
        OffsetDateTime::now_utc(),
    )?;
    if !state.nonces.consume(&verified.nonce).await? {
        return Err(SignInError::BadNonce.into());
    }
    accounts::link(&state.pool, account, verified.address)
        .await
        .map_err(|error| match error {
            LinkError::Taken => {
                ApiError::conflict("wallet_taken", "The wallet is linked to another account")
            }
            LinkError::Database(error) => error.into(),
        })?;
    Ok((
        StatusCode::CREATED,
        Json(accounts::wallets(&state.pool, account).await?),
    ))
}

/// Unlinks a wallet (not the last one, not one that backs holds).
#[utoipa::path(delete, path = "/wallets/{address}", tag = "wallets", security(("bearer" = [])),
    params(("address" = String, Path, description = "an EIP-55 address")),
    responses((status = 204), (status = 409, description = "`last_wallet` or `wallet_has_holds`")))]
pub async fn unlink(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    let wallet = parse_address(&address)?;
    accounts::unlink(&state.pool, AccountId(claims.sub), wallet)
        .await
        .map_err(|error| match error {
            UnlinkError::NotLinked => ApiError::NotFound("wallet linked to this account"),
            UnlinkError::LastWallet => {
                ApiError::conflict("last_wallet", "An account keeps at least one wallet")
            }
            UnlinkError::HasHolds => ApiError::conflict(
                "wallet_has_holds",
                "The wallet still backs bids or payments",
            ),
            UnlinkError::Database(error) => error.into(),
            UnlinkError::Ledger(error) => ApiError::Internal(Box::new(error)),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize)]
pub struct BalanceResponse {
    wallet: EthAddress,
    /// Confirmed on-chain balance.
    balance: Wei,
    /// Sum of active and captured holds.
    held: Wei,
    available: Wei,
    /// The block the balance was read at.
    block: u64,
}

/// A linked wallet's confirmed balance, what its holds take, and what is available.
#[utoipa::path(get, path = "/wallets/{address}/balance", tag = "wallets", security(("bearer" = [])),
    params(("address" = String, Path, description = "an EIP-55 address")),
    responses((status = 200, body = Object), (status = 403, description = "not your wallet"), (status = 503, description = "`chain_unavailable`")))]
pub async fn balance(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(address): Path<String>,
) -> Result<Json<BalanceResponse>, ApiError> {
    let wallet = parse_address(&address)?;
    if accounts::owner(&state.pool, wallet).await? != Some(AccountId(claims.sub)) {
        return Err(ApiError::Forbidden(
            "the wallet is not linked to your account".into(),
        ));
    }
    let balance = state.chain.confirmed_balance(wallet).await?;
    let mut connection = state.pool.acquire().await?;
    let held = crate::ledger::committed(&mut connection, wallet, None)
        .await
        .map_err(|error| ApiError::Internal(Box::new(error)))?;
    Ok(Json(BalanceResponse {
        wallet,
        balance: balance.amount,
        held,
        available: balance.amount.saturating_sub(held),
        block: balance.block,
    }))
}

pub fn parse_address(raw: &str) -> Result<EthAddress, ApiError> {
    raw.parse()
        .map_err(|error| ApiError::invalid("address", error))
}
