//! Placing a client's bid through `bids`, off the connection's loop, and answering it.

use serde_json::{Value, json};
use tracing::warn;

use super::{End, Session};
use crate::hub::Push;
use crate::protocol::{self, Refusal};
use crate::upstream::{BidOutcome, UpstreamError};

impl Session {
    pub(super) async fn bid(&mut self, bid: protocol::Bid) -> Result<(), End> {
        let id = Some(bid.id.clone());
        let Some(identity) = &self.identity else {
            return self
                .refuse(
                    Refusal::new("unauthorized", "sign in (send `auth`) before bidding")
                        .with_id(id),
                )
                .await;
        };
        if identity.claims.exp <= chrono::Utc::now().timestamp() {
            return self
                .refuse(
                    Refusal::new("unauthorized", "the token has expired; sign in again")
                        .with_id(id),
                )
                .await;
        }
        if self.bids_in_flight >= self.context.limits.max_bids_in_flight {
            return self
                .refuse(
                    Refusal::new(
                        "too_many_bids",
                        "wait for the answers to your earlier bids first",
                    )
                    .with_id(id),
                )
                .await;
        }
        self.bids_in_flight += 1;
        let token = identity.token.clone();
        let upstreams = self.context.upstreams.clone();
        let queue = self.queue.clone();
        // The answer comes back through the queue so the connection keeps reading meanwhile.
        tokio::spawn(async move {
            let answer = match upstreams.place(&token, &bid).await {
                Ok(BidOutcome::Placed {
                    status,
                    result,
                    replayed,
                }) => json!({
                    "type": "bid_result", "id": bid.id, "status": status,
                    "replayed": replayed, "result": result,
                }),
                Ok(BidOutcome::Refused { status, problem }) => {
                    refused_bid(&bid.id, status, problem)
                }
                Err(UpstreamError::Busy { .. }) => json!({
                    "type": "error", "id": bid.id, "code": "engine_busy",
                    "message": "the auction engine is busy; send the same bid again in a moment",
                }),
                Err(error) => {
                    warn!(error = %gavel_common::error_chain(&error), "placing a bid failed");
                    json!({
                        "type": "error", "id": bid.id, "code": "upstream_unavailable",
                        "message": "the auction engine cannot be reached; send the same bid again",
                    })
                }
            };
            let _ = queue.send(Push::BidAnswer(answer.to_string())).await;
        });
        Ok(())
    }
}

/// A refused bid as an `error` message: bids' problem fields, the request id, and a message.
fn refused_bid(id: &str, status: u16, problem: Value) -> Value {
    let mut message = json!({"type": "error", "id": id, "status": status});
    let code = problem["code"]
        .as_str()
        .unwrap_or(if status == 401 {
            "unauthorized"
        } else {
            "refused"
        })
        .to_owned();
    let text = problem["detail"]
        .as_str()
        .or_else(|| problem["title"].as_str())
        .unwrap_or("the bid was refused")
        .to_owned();
    if let Value::Object(fields) = problem {
        for (key, value) in fields {
            if !matches!(key.as_str(), "type" | "title" | "instance") {
                message[key] = value;
            }
        }
    }
    message["type"] = json!("error");
    message["id"] = json!(id);
    message["code"] = json!(code);
    message["message"] = json!(text);
    message
}
