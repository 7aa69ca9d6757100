//! Accounts and their linked wallets.

use gavel_types::{AccountId, EthAddress};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the wallet belongs to another account")]
    Taken,
    #[error("database")]
    Database(#[from] sqlx::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum UnlinkError {
    #[error("the wallet is not linked to this account")]
    NotLinked,
    #[error("an account keeps at least one wallet")]
    LastWallet,
    #[error("the wallet still backs active or captured holds")]
    HasHolds,
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
}

/// The account that owns `wallet`, creating both on first sign-in. Concurrent first sign-ins of
/// one wallet end up with one account.
pub async fn sign_in(pool: &PgPool, wallet: EthAddress) -> Result<AccountId, sqlx::Error> {
    let address = wallet.to_lowercase_hex();
    if let Some(account) = owner(pool, wallet).await? {
        return Ok(account);
    }
    let mut tx = pool.begin().await?;
    let account = AccountId::new();
    sqlx::query("INSERT INTO accounts (id) VALUES ($1)")
        .bind(account.0)
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO wallets (address, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(&address)
    .bind(account.0)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        // Someone else's first sign-in with this wallet won the race; use theirs.
        tx.rollback().await?;
        return owner(pool, wallet).await?.ok_or(sqlx::Error::RowNotFound);
    }
    tx.commit().await?;
    Ok(account)
}

pub async fn owner(pool: &PgPool, wallet: EthAddress) -> Result<Option<AccountId>, sqlx::Error> {
    let account: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT account_id FROM wallets WHERE address = $1")
            .bind(wallet.to_lowercase_hex())
            .fetch_optional(pool)
            .await?;
    Ok(account.map(AccountId))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LinkedWallet {
    pub address: EthAddress,
    pub linked_at: chrono::DateTime<chrono::Utc>,
}

pub async fn wallets(pool: &PgPool, account: AccountId) -> Result<Vec<LinkedWallet>, sqlx::Error> {
    let rows: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
        "SELECT address, linked_at FROM wallets WHERE account_id = $1 ORDER BY linked_at, address",
    )
    .bind(account.0)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(address, linked_at)| {
            let address = gavel_common::db::parse_column("wallets.address", &address)
                .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
            Ok(LinkedWallet { address, linked_at })
        })
        .collect()
}

/// Links `wallet` to `account`; linking a wallet the account already has succeeds.
pub async fn link(pool: &PgPool, account: AccountId, wallet: EthAddress) -> Result<(), LinkError> {
    sqlx::query("INSERT INTO wallets (address, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(wallet.to_lowercase_hex())
        .bind(account.0)
        .execute(pool)
        .await?;
    match owner(pool, wallet).await? {
        Some(owner) if owner == account => Ok(()),
        _ => Err(LinkError::Taken),
    }
}

/// Unlinks `wallet` unless it is the account's last one or still backs holds. Takes the wallet's
/// ledger lock so no hold can be placed on it meanwhile.
pub async fn unlink(
    pool: &PgPool,
    account: AccountId,
    wallet: EthAddress,
) -> Result<(), UnlinkError> {
    let mut tx = pool.begin().await?;
    crate::ledger::lock_wallet(&mut tx, wallet).await?;
    let linked: Vec<String> =
        sqlx::query_scalar("SELECT address FROM wallets WHERE account_id = $1 FOR UPDATE")
            .bind(account.0)
            .fetch_all(&mut *tx)
            .await?;
    let address = wallet.to_lowercase_hex();
    if !linked.contains(&address) {
        return Err(UnlinkError::NotLinked);
    }
    if linked.len() == 1 {
        return Err(UnlinkError::LastWallet);
    }
    if !crate::ledger::committed(&mut tx, wallet, None)
        .await?
        .is_zero()
    {
        return Err(UnlinkError::HasHolds);
    }
    sqlx::query("DELETE FROM wallets WHERE address = $1")
        .bind(&address)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
