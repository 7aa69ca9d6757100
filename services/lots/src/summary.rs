//! The live summary shown in the catalogue, kept from `auction.*` events. Each event carries the
//! lot's sequence number; an event not newer than the last applied one is ignored, so redelivery
//! and reordering cannot move the summary backwards.

use gavel_events::{AuctionCancelled, AuctionClosed, AuctionOpened, BidAccepted, Outcome};
use gavel_messaging::{Envelope, Event as _, Handler, HandlerError};
use sqlx::PgConnection;

#[derive(Debug, Clone, Copy)]
pub struct AuctionEvents;

/// Every update applies only to a newer sequence number than the last one applied.
const GUARD: &str = "last_seq = $2, updated_at = now() WHERE id = $1 AND last_seq < $2";

impl Handler for AuctionEvents {
    async fn handle(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        let Some(seq) = event.sequence else {
            return Ok(());
        };
        match event.event_type.as_str() {
            AuctionOpened::TYPE => {
                let opened: AuctionOpened = event.decode()?;
                sqlx::query(&format!(
                    "UPDATE lots SET status = 'open', current_end = $3, {GUARD}"
                ))
                .bind(opened.lot_id.0)
                .bind(seq)
                .bind(opened.ends_at)
                .execute(connection)
                .await?;
            }
            BidAccepted::TYPE => {
                let bid: BidAccepted = event.decode()?;
                sqlx::query(&format!(
                    "UPDATE lots SET price = $3::numeric, bid_count = $4, current_end = $5, reserve_met = $6,
                         first_bid_at = COALESCE(first_bid_at, $7), {GUARD}"
                ))
                .bind(bid.lot_id.0)
                .bind(seq)
                .bind(bid.price.to_string())
                .bind(bid.bid_count)
                .bind(bid.ends_at)
                .bind(bid.reserve_met)
                .bind(bid.at)
                .execute(connection)
                .await?;
            }
            AuctionClosed::TYPE => {
                let closed: AuctionClosed = event.decode()?;
                let outcome = match closed.outcome {
                    Outcome::Sold { .. } => "sold",
                    Outcome::Unsold => "unsold",
                    Outcome::ReserveNotMet { .. } => "reserve_not_met",
                };
                sqlx::query(&format!(
                    "UPDATE lots SET status = 'closed', outcome = $3, {GUARD}"
                ))
                .bind(closed.lot_id.0)
                .bind(seq)
                .bind(outcome)
                .execute(connection)
                .await?;
            }
            AuctionCancelled::TYPE => {
                let cancelled: AuctionCancelled = event.decode()?;
                sqlx::query(&format!("UPDATE lots SET status = 'cancelled', {GUARD}"))
                    .bind(cancelled.lot_id.0)
                    .bind(seq)
                    .execute(connection)
                    .await?;
            }
            _ => {}
        }
        Ok(())
    }
}
