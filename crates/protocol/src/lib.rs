//! The WebSocket protocol, version 1 (`docs/gateway.md`): what clients may send, parsed into
//! typed requests, and the messages the gateway sends back. A crate of its own, free of the
//! gateway's server dependencies, so that the decoder can be fuzzed on its own (`fuzz/`).

use gavel_types::{LotId, Wei};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

pub const VERSION: u32 = 1;

/// A client's request, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Auth { token: String },
    Subscribe { lot_id: LotId, since: Option<i64> },
    Unsubscribe { lot_id: LotId },
    Bid(Bid),
    Ping { id: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bid {
    pub id: String,
    pub lot_id: LotId,
    pub amount: Wei,
    #[serde(default)]
    pub max_amount: Option<Wei>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Auth {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Subscribe {
    lot_id: LotId,
    #[serde(default)]
    since: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unsubscribe {
    lot_id: LotId,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Ping {
    #[serde(default)]
    id: Option<String>,
}

/// Why a message was refused; sent back as an `error` message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub id: Option<String>,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// The lot a refused subscription was for.
    pub lot_id: Option<LotId>,
}

impl Refusal {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            id: None,
            code,
            message: message.into(),
            field: None,
            lot_id: None,
        }
    }

    pub fn for_lot(mut self, lot_id: LotId) -> Self {
        self.lot_id = Some(lot_id);
        self
    }

    pub fn with_id(mut self, id: Option<String>) -> Self {
        self.id = id;
        self
    }

    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new("invalid", message)
        }
    }

    pub fn to_message(&self) -> String {
        let mut message = json!({"type": "error", "code": self.code, "message": self.message});
        if let Some(id) = &self.id {
            message["id"] = json!(id);
        }
        if let Some(field) = &self.field {
            message["field"] = json!(field);
        }
        if let Some(lot_id) = &self.lot_id {
            message["lot_id"] = json!(lot_id);
        }
        message.to_string()
    }
}

/// A request id (and bid idempotency key): 1–64 of `A–Z a–z 0–9 - _`.
fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// Parses one text frame.
pub fn parse(text: &str) -> Result<Request, Refusal> {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(text) else {
        return Err(Refusal::new("bad_json", "a message is one JSON object"));
    };
    // The id travels back on the error whatever else is wrong, so the client can match it.
    let id = match object.get("id") {
        None => None,
        Some(Value::String(id)) if valid_id(id) => Some(id.clone()),
        Some(_) => {
            return Err(Refusal::invalid(
                "id",
                "an id is 1 to 64 of the characters A-Z a-z 0-9 - _",
            ));
        }
    };
    let kind = match object.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => {
            return Err(Refusal::invalid("type", "a message needs a string `type`").with_id(id));
        }
    };
    let request = match kind.as_str() {
        "auth" => fields::<Auth>(object).map(|auth| Request::Auth { token: auth.token }),
        "subscribe" => fields::<Subscribe>(object).and_then(|subscribe| {
            if subscribe.since.is_some_and(|since| since < 0) {
                return Err(Refusal::invalid("since", "a sequence is zero or more"));
            }
            Ok(Request::Subscribe {
                lot_id: subscribe.lot_id,
                since: subscribe.since,
            })
        }),
        "unsubscribe" => fields::<Unsubscribe>(object).map(|unsubscribe| Request::Unsubscribe {
            lot_id: unsubscribe.lot_id,
        }),
        "bid" => fields::<Bid>(object).and_then(|bid| {
            if bid.max_amount.is_some_and(|max| max < bid.amount) {
                return Err(Refusal::invalid(
                    "max_amount",
                    "the maximum cannot be below the amount",
                ));
            }
            if bid.amount == Wei::ZERO {
                return Err(Refusal::invalid("amount", "a bid is more than zero"));
            }
            Ok(Request::Bid(bid))
        }),
        "ping" => fields::<Ping>(object).map(|ping| Request::Ping { id: ping.id }),
        _ => Err(Refusal::new(
            "unknown_type",
            format!("unknown message type `{kind}` (protocol version {VERSION})"),
        )),
    };
    request.map_err(|refusal| refusal.with_id(id))
}

fn fields<T: DeserializeOwned>(object: Map<String, Value>) -> Result<T, Refusal> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        // serde names an unknown or missing field in its message, not in the path.
        let field = if path == "." {
            field_in(&inner).unwrap_or_default()
        } else {
            path
        };
        Refusal::invalid(field, inner)
    })
}

fn field_in(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let end = start + message[start..].find('`')?;
    Some(message[start..end].to_owned())
}

pub fn welcome(connection_id: u64, limits: Value) -> String {
    json!({
        "type": "welcome",
        "protocol": VERSION,
        "connection_id": connection_id.to_string(),
        "server_time": chrono::Utc::now(),
        "limits": limits,
    })
    .to_string()
}

pub fn pong(id: Option<String>) -> String {
    let mut message = json!({"type": "pong", "server_time": chrono::Utc::now()});
    if let Some(id) = id {
        message["id"] = json!(id);
    }
    message.to_string()
}

/// An `event` message: one event of a lot's log (`data` is its payload).
pub fn event(
    lot_id: &str,
    sequence: i64,
    event_type: &str,
    occurred_at: chrono::DateTime<chrono::Utc>,
    data: &Value,
) -> String {
    json!({
        "type": "event",
        "lot_id": lot_id,
        "sequence": sequence,
        "event": event_type,
        "occurred_at": occurred_at,
        "data": data,
    })
    .to_string()
}

pub fn snapshot(lot_id: LotId, sequence: i64, lot: &Value) -> String {
    json!({"type": "snapshot", "lot_id": lot_id, "sequence": sequence, "lot": lot}).to_string()
}

pub fn subscribed(lot_id: LotId, sequence: i64, watchers: u64) -> String {
    json!({"type": "subscribed", "lot_id": lot_id, "sequence": sequence, "watchers": watchers})
        .to_string()
}

pub fn presence(lot_id: LotId, watchers: u64) -> String {
    json!({"type": "presence", "lot_id": lot_id, "watchers": watchers}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOT: &str = "0196f1c2-7a2b-7c00-8000-000000000001";

    fn refused(text: &str) -> Refusal {
        parse(text).expect_err("refused")
    }

    #[test]
    fn parses_every_request() {
        let lot: LotId = serde_json::from_value(json!(LOT)).expect("lot id");
        let cases = [
            (
                json!({"type": "auth", "token": "t"}),
                Request::Auth {
                    token: "t".to_owned(),
                },
            ),
            (
                json!({"type": "subscribe", "lot_id": LOT}),
                Request::Subscribe {
                    lot_id: lot,
                    since: None,
                },
            ),
            (
                json!({"type": "subscribe", "lot_id": LOT, "since": 7}),
                Request::Subscribe {
                    lot_id: lot,
                    since: Some(7),
                },
            ),
            (
                json!({"type": "unsubscribe", "lot_id": LOT}),
                Request::Unsubscribe { lot_id: lot },
            ),
            (
                json!({"type": "bid", "id": "b-1", "lot_id": LOT, "amount": "10", "max_amount": "20"}),
                Request::Bid(Bid {
                    id: "b-1".to_owned(),
                    lot_id: lot,
                    amount: "10".parse().expect("wei"),
                    max_amount: Some("20".parse().expect("wei")),
                }),
            ),
            (
                json!({"type": "ping", "id": "p"}),
                Request::Ping {
                    id: Some("p".to_owned()),
                },
            ),
            (json!({"type": "ping"}), Request::Ping { id: None }),
        ];
        for (message, expected) in cases {
            assert_eq!(parse(&message.to_string()), Ok(expected), "{message}");
        }
    }

    #[test]
    fn refuses_bad_messages_with_a_code_and_field() {
        let cases: [(&str, &str, Option<&str>, Option<&str>); 12] = [
            ("not json", "bad_json", None, None),
            ("[1, 2]", "bad_json", None, None),
            (r#"{"lot_id": "x"}"#, "invalid", Some("type"), None),
            (r#"{"type": "dance"}"#, "unknown_type", None, None),
            (r#"{"type": "subscribe"}"#, "invalid", Some("lot_id"), None),
            (
                r#"{"type": "subscribe", "lot_id": "nope"}"#,
                "invalid",
                Some("lot_id"),
                None,
            ),
            (
                &format!(r#"{{"type": "subscribe", "lot_id": "{LOT}", "since": -1}}"#),
                "invalid",
                Some("since"),
                None,
            ),
            (
                &format!(r#"{{"type": "subscribe", "lot_id": "{LOT}", "colour": 1}}"#),
                "invalid",
                Some("colour"),
                None,
            ),
            (
                &format!(r#"{{"type": "bid", "id": "b 1", "lot_id": "{LOT}", "amount": "1"}}"#),
                "invalid",
                Some("id"),
                None,
            ),
            (
                &format!(r#"{{"type": "bid", "id": "b1", "lot_id": "{LOT}", "amount": "1.5"}}"#),
                "invalid",
                Some("amount"),
                Some("b1"),
            ),
            (
                &format!(
                    r#"{{"type": "bid", "id": "b2", "lot_id": "{LOT}", "amount": "5", "max_amount": "4"}}"#
                ),
                "invalid",
                Some("max_amount"),
                Some("b2"),
            ),
            (
                &format!(r#"{{"type": "bid", "id": "b3", "lot_id": "{LOT}", "amount": "0"}}"#),
                "invalid",
                Some("amount"),
                Some("b3"),
            ),
        ];
        for (text, code, field, id) in cases {
            let refusal = refused(text);
            assert_eq!(refusal.code, code, "{text}: {refusal:?}");
            assert_eq!(refusal.field.as_deref(), field, "{text}: {refusal:?}");
            assert_eq!(refusal.id.as_deref(), id, "{text}: {refusal:?}");
            let message: Value = serde_json::from_str(&refusal.to_message()).expect("json");
            assert_eq!(message["type"], "error");
            assert_eq!(message["code"], code);
        }
    }
}
