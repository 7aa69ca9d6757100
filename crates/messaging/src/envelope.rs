//! The envelope every event travels in.
//!
//! ```json
//! {"id":"…uuid…","type":"lot.created","version":1,"occurred_at":"2026-11-23T10:00:00Z",
//!  "aggregate_id":"…lot id…","sequence":17,"payload":{…}}
//! ```
//!
//! The `type` is also the routing key. A payload's shape is fixed by its `(type, version)`: a
//! change that old consumers could not read gets a new version.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A typed event payload.
pub trait Event: Serialize + DeserializeOwned {
    /// The event type and routing key, `<aggregate>.<what happened>` (e.g. `lot.created`).
    const TYPE: &'static str;
    const VERSION: u16;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: u16,
    pub occurred_at: DateTime<Utc>,
    /// The id of the thing the event is about (a lot, an account).
    pub aggregate_id: String,
    /// The per-aggregate sequence number where the producer keeps one (every auction event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
    pub payload: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("expected event {expected} v{expected_version}, got {actual} v{actual_version}")]
    WrongType {
        expected: &'static str,
        expected_version: u16,
        actual: String,
        actual_version: u16,
    },
    #[error("payload of {event_type} v{version} does not match its schema")]
    Payload {
        event_type: String,
        version: u16,
        #[source]
        source: serde_json::Error,
    },
}

impl Envelope {
    /// Wraps `event` in a fresh envelope (time-ordered UUIDv7 id, occurred now).
    pub fn new<E: Event>(
        aggregate_id: impl Into<String>,
        sequence: Option<i64>,
        event: &E,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: Uuid::now_v7(),
            event_type: E::TYPE.to_owned(),
            version: E::VERSION,
            occurred_at: Utc::now(),
            aggregate_id: aggregate_id.into(),
            sequence,
            payload: serde_json::to_value(event)?,
        })
    }

    pub fn is<E: Event>(&self) -> bool {
        self.event_type == E::TYPE && self.version == E::VERSION
    }

    /// The typed payload, if this envelope carries an `E` of the version this code understands.
    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        if !self.is::<E>() {
            return Err(DecodeError::WrongType {
                expected: E::TYPE,
                expected_version: E::VERSION,
                actual: self.event_type.clone(),
                actual_version: self.version,
            });
        }
        serde_json::from_value(self.payload.clone()).map_err(|source| DecodeError::Payload {
            event_type: self.event_type.clone(),
            version: self.version,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rang {
        times: u32,
    }

    impl Event for Rang {
        const TYPE: &'static str = "bell.rang";
        const VERSION: u16 = 2;
    }

    #[test]
    fn an_envelope_round_trips_through_json() {
        let envelope = Envelope::new("bell-1", Some(3), &Rang { times: 2 }).expect("serializable");
        let json = serde_json::to_string(&envelope).expect("serializable");
        assert!(json.contains(r#""type":"bell.rang""#));
        let back: Envelope = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, envelope);
        assert_eq!(back.decode::<Rang>().expect("decodes"), Rang { times: 2 });
    }

    #[test]
    fn a_payload_of_another_version_is_refused() {
        let mut envelope = Envelope::new("bell-1", None, &Rang { times: 1 }).expect("serializable");
        envelope.version = 1;
        assert!(matches!(
            envelope.decode::<Rang>(),
            Err(DecodeError::WrongType { .. })
        ));
    }

    #[test]
    fn a_payload_of_the_wrong_shape_is_refused() {
        let mut envelope = Envelope::new("bell-1", None, &Rang { times: 1 }).expect("serializable");
        envelope.payload = serde_json::json!({"times": "many"});
        assert!(matches!(
            envelope.decode::<Rang>(),
            Err(DecodeError::Payload { .. })
        ));
    }
}
