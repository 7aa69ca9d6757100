//! From events to messages: new lots to matching subscribers, personal alerts to the chats
//! linked to an account. Every message is queued in the consumer's transaction, keyed by
//! (event, chat), so a redelivered event queues nothing twice.

use gavel_events::{
    AuctionCancelled, AuctionClosed, AuctionOpened, BidAccepted, LotCancelled, LotCreated,
    LotUpdated, Outcome, PaymentConfirmed, PaymentDefaulted,
};
use gavel_messaging::{Envelope, Event as _, Handler, HandlerError};
use gavel_types::{LotId, Wei};
use sqlx::PgConnection;
use teloxide::utils::html::escape;
use uuid::Uuid;

use crate::money::eth;

pub const BINDINGS: [&str; 3] = ["lot.*", "auction.*", "payment.*"];

#[derive(Debug, Clone)]
pub struct Alerts {
    /// Where the web client is: links to lots.
    pub public_url: url::Url,
}

/// A lot as the notifier knows it.
struct Lot {
    title: String,
    seller: Uuid,
    start_price: Wei,
}

impl Alerts {
    fn link(&self, lot_id: LotId) -> String {
        format!(
            "{}/lots/{lot_id}",
            self.public_url.as_str().trim_end_matches('/')
        )
    }

    async fn lot(connection: &mut PgConnection, lot_id: LotId) -> Result<Lot, HandlerError> {
        let row: Option<(String, Uuid, String)> =
            sqlx::query_as("SELECT title, seller, start_price::text FROM lots WHERE lot_id = $1")
                .bind(lot_id.0)
                .fetch_optional(connection)
                .await?;
        Self::known(lot_id, row)
    }

    /// The lot from its row (title, seller, start price), if it is known yet.
    fn known(lot_id: LotId, row: Option<(String, Uuid, String)>) -> Result<Lot, HandlerError> {
        // The lot's own event may still be on its way (another queue): try again later.
        let (title, seller, start_price) = row.ok_or_else(|| {
            HandlerError::Transient(format!("lot {lot_id} is not known yet").into())
        })?;
        Ok(Lot {
            title,
            seller,
            start_price: gavel_common::db::parse_column("lots.start_price", &start_price)
                .map_err(|error| HandlerError::Permanent(error.into()))?,
        })
    }

    /// Queues `text` for every chat linked to `account`.
    async fn tell(
        connection: &mut PgConnection,
        event: &Envelope,
        account: Uuid,
        kind: &str,
        text: &str,
        lot_id: LotId,
    ) -> Result<u64, HandlerError> {
        let queued = sqlx::query(
            "INSERT INTO outbound (event_id, chat_id, kind, text, lot_id)
             SELECT $1, chat_id, $3, $4, $5 FROM chats WHERE account_id = $2 AND blocked_at IS NULL
             ON CONFLICT DO NOTHING",
        )
        .bind(event.id)
        .bind(account)
        .bind(kind)
        .bind(text)
        .bind(lot_id.0)
        .execute(&mut *connection)
        .await?
        .rows_affected();
        wake(connection, queued).await?;
        Ok(queued)
    }
}

/// Wakes the sender when the transaction commits.
pub async fn wake(connection: &mut PgConnection, queued: u64) -> Result<(), sqlx::Error> {
    if queued > 0 {
        sqlx::query("SELECT pg_notify('notifier_outbound', '')")
            .execute(connection)
            .await?;
    }
    Ok(())
}

impl Handler for Alerts {
    async fn handle(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        match event.event_type.as_str() {
            LotCreated::TYPE => {
                let lot: LotCreated = event.decode()?;
                sqlx::query(
                    "INSERT INTO lots (lot_id, seller, title, start_price, ends_at)
                     VALUES ($1, $2, $3, $4::numeric, $5) ON CONFLICT (lot_id) DO NOTHING",
                )
                .bind(lot.lot_id.0)
                .bind(lot.seller.0)
                .bind(&lot.title)
                .bind(lot.rules.start_price.to_string())
                .bind(lot.rules.ends_at)
                .execute(connection)
                .await?;
            }
            LotUpdated::TYPE => {
                let lot: LotUpdated = event.decode()?;
                sqlx::query(
                    "UPDATE lots SET title = $2, start_price = $3::numeric, ends_at = $4 WHERE lot_id = $1",
                )
                .bind(lot.lot_id.0)
                .bind(&lot.title)
                .bind(lot.rules.start_price.to_string())
                .bind(lot.rules.ends_at)
                .execute(connection)
                .await?;
            }
            LotCancelled::TYPE => {
                let lot: LotCancelled = event.decode()?;
                set_status(connection, lot.lot_id, "cancelled").await?;
            }
            AuctionCancelled::TYPE => {
                let lot: AuctionCancelled = event.decode()?;
                set_status(connection, lot.lot_id, "cancelled").await?;
            }
            AuctionOpened::TYPE => {
                let opened: AuctionOpened = event.decode()?;
                self.lot_opened(connection, event, &opened).await?;
            }
            BidAccepted::TYPE => {
                let bid: BidAccepted = event.decode()?;
                // The price /lots shows (bids may arrive out of order: the count orders
                // them) and the lot an outbid alert names, in one statement.
                let row: Option<(String, Uuid, String)> = sqlx::query_as(
                    "WITH priced AS (
                         UPDATE lots SET price = $2::numeric, bids = $3, ends_at = $4
                         WHERE lot_id = $1 AND bids < $3
                     )
                     SELECT title, seller, start_price::text FROM lots WHERE lot_id = $1",
                )
                .bind(bid.lot_id.0)
                .bind(bid.price.to_string())
                .bind(i32::try_from(bid.bid_count).unwrap_or(i32::MAX))
                .bind(bid.ends_at)
                .fetch_optional(&mut *connection)
                .await?;
                if let Some(previous) = bid
                    .previous_leader
                    .filter(|previous| *previous != bid.leader)
                {
                    let lot = Self::known(bid.lot_id, row)?;
                    let text = format!(
                        "You have been outbid on <b>{}</b>: the price is now {} ETH.\n{}",
                        escape(&lot.title),
                        eth(&bid.price),
                        self.link(bid.lot_id)
                    );
                    Self::tell(connection, event, previous.0, "outbid", &text, bid.lot_id).await?;
                }
            }
            AuctionClosed::TYPE => {
                let closed: AuctionClosed = event.decode()?;
                set_status(connection, closed.lot_id, "closed").await?;
                let lot = Self::lot(connection, closed.lot_id).await?;
                let title = escape(&lot.title);
                let link = self.link(closed.lot_id);
                match &closed.outcome {
                    Outcome::Sold { winner, price, .. } => {
                        let won = format!(
                            "🎉 You won <b>{title}</b> for {} ETH. Pay the seller's wallet {} before the deadline.\n{link}",
                            eth(price),
                            closed.seller_wallet
                        );
                        Self::tell(connection, event, winner.0, "won", &won, closed.lot_id).await?;
                        let sold = format!(
                            "Your lot <b>{title}</b> sold for {} ETH.\n{link}",
                            eth(price)
                        );
                        Self::tell(
                            connection,
                            event,
                            closed.seller.0,
                            "sold",
                            &sold,
                            closed.lot_id,
                        )
                        .await?;
                    }
                    Outcome::Unsold => {
                        let text = format!("Your lot <b>{title}</b> ended without bids.\n{link}");
                        Self::tell(
                            connection,
                            event,
                            closed.seller.0,
                            "unsold",
                            &text,
                            closed.lot_id,
                        )
                        .await?;
                    }
                    Outcome::ReserveNotMet { highest } => {
                        let text = format!(
                            "Your lot <b>{title}</b> ended below its reserve (highest bid {} ETH).\n{link}",
                            eth(highest)
                        );
                        Self::tell(
                            connection,
                            event,
                            closed.seller.0,
                            "unsold",
                            &text,
                            closed.lot_id,
                        )
                        .await?;
                    }
                }
            }
            PaymentConfirmed::TYPE => {
                let paid: PaymentConfirmed = event.decode()?;
                let lot = Self::lot(connection, paid.lot_id).await?;
                let text = format!(
                    "✅ Payment of {} ETH for <b>{}</b> is confirmed.\n{}",
                    eth(&paid.amount),
                    escape(&lot.title),
                    self.link(paid.lot_id)
                );
                for account in [paid.winner.0, lot.seller] {
                    Self::tell(
                        connection,
                        event,
                        account,
                        "payment_confirmed",
                        &text,
                        paid.lot_id,
                    )
                    .await?;
                }
            }
            PaymentDefaulted::TYPE => {
                let defaulted: PaymentDefaulted = event.decode()?;
                let lot = Self::lot(connection, defaulted.lot_id).await?;
                let text = format!(
                    "⚠️ No payment of {} ETH for <b>{}</b> arrived by {}: the sale is void.\n{}",
                    eth(&defaulted.amount),
                    escape(&lot.title),
                    defaulted.deadline.format("%Y-%m-%d %H:%M UTC"),
                    self.link(defaulted.lot_id)
                );
                for account in [defaulted.winner.0, lot.seller] {
                    Self::tell(
                        connection,
                        event,
                        account,
                        "payment_defaulted",
                        &text,
                        defaulted.lot_id,
                    )
                    .await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

impl Alerts {
    /// A lot opened: one message to every subscribed chat whose filters it matches.
    async fn lot_opened(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
        opened: &AuctionOpened,
    ) -> Result<(), HandlerError> {
        let lot_id = opened.lot_id;
        let lot = Self::lot(connection, lot_id).await?;
        set_status(connection, lot_id, "open").await?;
        let text = format!(
            "🔨 New lot: <b>{}</b>\nFrom {} ETH, ends {}.\n{}",
            escape(&lot.title),
            eth(&lot.start_price),
            opened.ends_at.format("%Y-%m-%d %H:%M UTC"),
            self.link(lot_id)
        );
        let queued = sqlx::query(
            "INSERT INTO outbound (event_id, chat_id, kind, text, lot_id)
             SELECT $1, c.chat_id, 'new_lot', $2, l.lot_id
             FROM chats c JOIN lots l ON l.lot_id = $3
             WHERE c.subscribed AND c.blocked_at IS NULL
               AND (c.min_price IS NULL OR l.start_price >= c.min_price)
               AND (c.max_price IS NULL OR l.start_price <= c.max_price)
               AND NOT EXISTS (
                   SELECT 1 FROM unnest(c.keywords) AS keyword
                   WHERE strpos(lower(l.title), keyword) = 0)
             ORDER BY c.chat_id
             ON CONFLICT DO NOTHING",
        )
        .bind(event.id)
        .bind(&text)
        .bind(lot_id.0)
        .execute(&mut *connection)
        .await?
        .rows_affected();
        wake(connection, queued).await?;
        Ok(())
    }
}

async fn set_status(
    connection: &mut PgConnection,
    lot_id: LotId,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE lots SET status = $2 WHERE lot_id = $1")
        .bind(lot_id.0)
        .bind(status)
        .execute(connection)
        .await?;
    Ok(())
}
