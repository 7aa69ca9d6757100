//! Delivering queued hold releases to `wallets` until it confirms each one.

use std::sync::Arc;
use std::time::Duration;

use gavel_common::BoxError;
use gavel_types::{BidId, LotId};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::wallets::Wallets;

pub async fn run(
    pool: PgPool,
    wallets: Wallets,
    wake: Arc<Notify>,
    retry: Duration,
    cancel: CancellationToken,
) -> Result<(), BoxError> {
    loop {
        if let Err(error) = deliver(&pool, &wallets).await {
            warn!(error = %gavel_common::error_chain(&error), "releasing holds failed; will retry");
        }
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            () = wake.notified() => {}
            () = tokio::time::sleep(retry) => {}
        }
    }
}

/// Sends one batch; each row is deleted once `wallets` confirmed it. Returns how many went out.
pub async fn deliver(pool: &PgPool, wallets: &Wallets) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows: Vec<(i64, String, uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT id, wallet, lot_id, bid_id FROM pending_releases ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut delivered = 0;
    for (id, wallet, lot_id, bid_id) in rows {
        let Ok(wallet) = wallet.parse() else { continue };
        match wallets
            .release(
                wallet,
                LotId(lot_id),
                BidId(bid_id),
                &format!("release-{id}"),
            )
            .await
        {
            Ok(()) => {
                sqlx::query("DELETE FROM pending_releases WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                delivered += 1;
            }
            Err(error) => {
                warn!(%error, id, "hold release not delivered; will retry");
                sqlx::query("UPDATE pending_releases SET attempts = attempts + 1 WHERE id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(delivered)
}
