//! Protocol version 1 is `gavel-protocol`; what the gateway adds is the `event` message made from
//! a broker or log envelope.

pub use gavel_protocol::*;

/// An `event` message for one envelope of the `bids` log or the broker.
pub fn event(envelope: &gavel_messaging::Envelope, sequence: i64) -> String {
    gavel_protocol::event(
        &envelope.aggregate_id,
        sequence,
        &envelope.event_type,
        envelope.occurred_at,
        &envelope.payload,
    )
}
