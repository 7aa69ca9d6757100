//! Following `lots`: a lot created there becomes an auction here; changes and cancellations apply
//! only while nobody has bid.

use gavel_events::{AuctionCancelled, LotCancelled, LotCreated, LotUpdated};
use gavel_messaging::{Envelope, Event as _, Handler, HandlerError};
use sqlx::PgConnection;
use tracing::warn;

use crate::store;

#[derive(Debug, Clone, Copy)]
pub struct LotEvents;

impl Handler for LotEvents {
    async fn handle(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            LotCreated::TYPE => {
                let lot: LotCreated = event.decode()?;
                sqlx::query(
                    "INSERT INTO lots (lot_id, seller, seller_wallet, title, rules, status, starts_at, ends_at)
                     VALUES ($1, $2, $3, $4, $5, 'scheduled', $6, $7) ON CONFLICT (lot_id) DO NOTHING",
                )
                .bind(lot.lot_id.0)
                .bind(lot.seller.0)
                .bind(lot.seller_wallet.to_lowercase_hex())
                .bind(&lot.title)
                .bind(sqlx::types::Json(&lot.rules))
                .bind(lot.rules.starts_at)
                .bind(lot.rules.ends_at)
                .execute(connection)
                .await?;
            }
            LotUpdated::TYPE => {
                let lot: LotUpdated = event.decode()?;
                let updated = sqlx::query(
                    "UPDATE lots SET title = $2, rules = $3, starts_at = $4, ends_at = $5
                     WHERE lot_id = $1 AND bid_count = 0 AND status IN ('scheduled', 'open')",
                )
                .bind(lot.lot_id.0)
                .bind(&lot.title)
                .bind(sqlx::types::Json(&lot.rules))
                .bind(lot.rules.starts_at)
                .bind(lot.rules.ends_at)
                .execute(connection)
                .await?;
                if updated.rows_affected() == 0 {
                    warn!(lot = %lot.lot_id, "ignored an update of a lot that already has bids or has ended");
                }
            }
            LotCancelled::TYPE => {
                let lot: LotCancelled = event.decode()?;
                let seq: Option<i64> = sqlx::query_scalar(
                    "UPDATE lots SET status = 'cancelled', closed_at = clock_timestamp(), seq = seq + 1
                     WHERE lot_id = $1 AND bid_count = 0 AND status IN ('scheduled', 'open') RETURNING seq",
                )
                .bind(lot.lot_id.0)
                .fetch_optional(&mut *connection)
                .await?;
                match seq {
                    Some(seq) => {
                        store::append(
                            connection,
                            lot.lot_id,
                            seq,
                            &AuctionCancelled { lot_id: lot.lot_id },
                        )
                        .await
                        .map_err(|error| HandlerError::Transient(Box::new(error)))?;
                    }
                    None => {
                        warn!(lot = %lot.lot_id, "ignored the cancellation of a lot that already has bids or has ended")
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
