//! Payments: the winner of a lot submits the hash of the transaction that paid the seller.

use axum::Json;
use axum::extract::{Path, State};
use gavel_common::auth::Authenticated;
use gavel_common::extract;
use gavel_types::{AccountId, LotId};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::chain::Expected;
use crate::settlement::{self, ConfirmError, Payment, PaymentReadError, PaymentStatus};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// `0x` and 64 hex digits.
    tx_hash: String,
}

/// The payment for a sold lot: amount, seller's wallet, deadline, status. The winner reads it to
/// pay; the seller reads it to follow the payment.
#[utoipa::path(get, path = "/payments/{lot_id}", tag = "payments", security(("bearer" = [])),
    params(("lot_id" = uuid::Uuid, Path)),
    responses((status = 200, body = Object), (status = 403, description = "only the winner and the seller")))]
pub async fn show(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(lot_id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    let caller = AccountId(claims.sub);
    let payment = read_payment(&state, &lot_id).await?;
    if payment.winner != caller && payment.seller != Some(caller) {
        return Err(ApiError::Forbidden(
            "only the winner and the seller see a lot's payment".into(),
        ));
    }
    Ok(Json(payment))
}

/// The winner submits the hash of the transaction that paid the seller; it is checked on chain.
#[utoipa::path(post, path = "/payments/{lot_id}", tag = "payments", security(("bearer" = [])),
    params(("lot_id" = uuid::Uuid, Path)), request_body = Submission,
    responses((status = 200, body = Object), (status = 403, description = "only the winner"),
              (status = 409, description = "`payment_closed` or `transaction_used`"),
              (status = 422, description = "the transaction does not pay: the `code` names the check"),
              (status = 503, description = "`chain_unavailable`")))]
pub async fn submit(
    State(state): State<AppState>,
    Authenticated(claims): Authenticated,
    Path(lot_id): Path<String>,
    extract::Json(submission): extract::Json<Submission>,
) -> Result<Json<Payment>, ApiError> {
    let tx_hash: alloy::primitives::B256 = parse_hash(&submission.tx_hash)?;
    let canonical = format!("{tx_hash:#x}");
    let payment = own_payment(&state, &lot_id, AccountId(claims.sub)).await?;
    match payment.status {
        PaymentStatus::Awaiting => {}
        PaymentStatus::Confirmed if payment.tx_hash.as_deref() == Some(canonical.as_str()) => {
            return Ok(Json(payment));
        }
        other => {
            return Err(ApiError::conflict(
                "payment_closed",
                format!("The payment is already {}", other.as_str()),
            ));
        }
    }
    let expected = Expected {
        from: payment.winner_wallet,
        to: payment.seller_wallet,
        at_least: payment.amount,
        mined_from: payment.closed_at,
    };
    state.chain.verify_payment(tx_hash, expected).await??;
    settlement::confirm(&state.pool, &payment, &canonical)
        .await
        .map_err(|error| match error {
            ConfirmError::NotAwaiting(status) => {
                ApiError::conflict("payment_closed", format!("The payment is already {status}"))
            }
            ConfirmError::TransactionUsed => ApiError::conflict(
                "transaction_used",
                "This transaction already settled another payment",
            ),
            ConfirmError::Database(error) => error.into(),
            ConfirmError::Encode(error) => ApiError::Internal(Box::new(error)),
            ConfirmError::Corrupt(error) => ApiError::Internal(Box::new(error)),
        })?;
    state.metrics.payments_confirmed();
    let confirmed = settlement::payment(&state.pool, payment.lot_id)
        .await
        .map_err(read_error)?
        .ok_or(ApiError::NotFound("payment"))?;
    Ok(Json(confirmed))
}

async fn read_payment(state: &AppState, lot_id: &str) -> Result<Payment, ApiError> {
    let lot_id: LotId = lot_id
        .parse()
        .map_err(|error| ApiError::invalid("lot_id", error))?;
    settlement::payment(&state.pool, lot_id)
        .await
        .map_err(read_error)?
        .ok_or(ApiError::NotFound("payment for this lot"))
}

async fn own_payment(
    state: &AppState,
    lot_id: &str,
    caller: AccountId,
) -> Result<Payment, ApiError> {
    let payment = read_payment(state, lot_id).await?;
    if payment.winner != caller {
        return Err(ApiError::Forbidden("only the winner pays for a lot".into()));
    }
    Ok(payment)
}

fn read_error(error: PaymentReadError) -> ApiError {
    match error {
        PaymentReadError::Database(error) => error.into(),
        PaymentReadError::Corrupt(error) => ApiError::Internal(Box::new(error)),
    }
}

fn parse_hash(raw: &str) -> Result<alloy::primitives::B256, ApiError> {
    let digits = raw.strip_prefix("0x").unwrap_or_default();
    if digits.len() != 64 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ApiError::invalid(
            "tx_hash",
            "a transaction hash is 0x followed by 64 hex digits",
        ));
    }
    raw.parse()
        .map_err(|_| ApiError::invalid("tx_hash", "not a transaction hash"))
}
