//! Following `lots`: a lot created there becomes an auction here. Changes and withdrawals do not
//! come as events: `lots` asks this engine first ([`crate::changes`]), so that the seller gets the
//! engine's answer. Older `lot.updated`/`lot.cancelled` events still bound to the queue are
//! ignored.

use gavel_events::LotCreated;
use gavel_messaging::{Envelope, Event as _, Handler, HandlerError};
use sqlx::PgConnection;

use crate::changes::{self, LotDefinition};

#[derive(Debug, Clone, Copy)]
pub struct LotEvents;

impl Handler for LotEvents {
    async fn handle(
        &self,
        connection: &mut PgConnection,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        if event.event_type == LotCreated::TYPE {
            let lot: LotCreated = event.decode()?;
            // A change that reached the engine first already created the lot with newer rules.
            changes::insert_if_missing(connection, lot.lot_id, &LotDefinition::from(&lot)).await?;
        }
        Ok(())
    }
}
