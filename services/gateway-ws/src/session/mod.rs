//! One WebSocket connection: its requests, its subscriptions and their sequence numbers, its
//! queue, and how it ends (`docs/gateway.md` lists the close codes).
//!
//! Layout: this module (the connection's loop, writing to the socket, sign-in), `bid` (placing a
//! bid through `bids` and answering it), `stream` (subscribing to lots, snapshots, replays,
//! pushes and catching up).

mod bid;
mod stream;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use gavel_common::auth::{Claims, JwtVerifier};
use gavel_types::LotId;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::config::GatewayConfig;
use crate::edge::{AnonymousSlot, Edge};
use crate::hub::{Behind, Hub, Push};
use crate::log::LotLog;
use crate::metrics::GatewayMetrics;
use crate::protocol::{self, Refusal, Request};
use crate::upstream::Upstreams;

/// How often the server pings an otherwise quiet connection, and how long it waits for any
/// frame before it gives the connection up.
const PING_EVERY: Duration = Duration::from_secs(20);
const SILENCE_LIMIT: Duration = Duration::from_secs(60);

pub const GOING_AWAY: u16 = 1001;
pub const UNSUPPORTED_DATA: u16 = 1003;
pub const POLICY_VIOLATION: u16 = 1008;
pub const MESSAGE_TOO_BIG: u16 = 1009;
pub const TOO_SLOW: u16 = 4008;

/// What every session shares.
#[derive(Debug)]
pub struct Context {
    pub hub: Arc<Hub>,
    /// The bids log as this replica sees it: recent events, coalesced fetches.
    pub log: Arc<LotLog>,
    pub edge: Edge,
    pub upstreams: Upstreams,
    pub verifier: JwtVerifier,
    pub limits: GatewayConfig,
    pub shutdown: CancellationToken,
    pub metrics: GatewayMetrics,
}

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed or the connection broke: nothing to send.
    Gone,
    Close(u16, &'static str),
}

impl End {
    fn label(self) -> &'static str {
        match self {
            End::Gone => "client",
            End::Close(GOING_AWAY, _) => "going_away",
            End::Close(UNSUPPORTED_DATA, _) => "binary",
            End::Close(POLICY_VIOLATION, _) => "flood",
            End::Close(MESSAGE_TOO_BIG, _) => "too_big",
            End::Close(TOO_SLOW, _) => "too_slow",
            End::Close(..) => "other",
        }
    }
}

/// The signed-in holder of the connection.
struct Identity {
    token: String,
    claims: Claims,
}

/// Messages per second, with a burst of twice the rate.
struct Bucket {
    tokens: f64,
    rate: f64,
    updated: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self {
            tokens: rate * 2.0,
            rate,
            updated: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.updated).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate * 2.0);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Session {
    context: Arc<Context>,
    socket: WebSocket,
    connection: u64,
    queue: mpsc::Sender<Push>,
    behind: Arc<Behind>,
    /// Lot → the last sequence sent to the client.
    subscriptions: HashMap<LotId, i64>,
    identity: Option<Identity>,
    bids_in_flight: usize,
    bucket: Bucket,
    last_heard: Instant,
    client: IpAddr,
    /// The slots of the lots watched anonymously (the address's cap is counted per replica).
    anonymous: HashMap<LotId, AnonymousSlot>,
    /// While a burst of pushes is written: messages gather in the write buffer (written each time
    /// it passes `WRITE_BUFFER_BYTES`) and the rest is flushed at the burst's end.
    corked: bool,
}

/// Pushes already waiting when one arrives are written with it and flushed at the end: under
/// load a burst costs a write per `WRITE_BUFFER_BYTES` instead of one per message.
const PUSH_BURST: usize = 32;

/// Serves one upgraded connection from `client` until it ends.
pub async fn serve(socket: WebSocket, context: Arc<Context>, client: IpAddr) {
    let connection = context.hub.connection_id();
    let (queue, mut inbox) = mpsc::channel(context.limits.queue.max(1));
    let bucket = Bucket::new(context.limits.messages_per_second);
    let mut session = Session {
        context: context.clone(),
        socket,
        connection,
        queue,
        behind: Arc::default(),
        subscriptions: HashMap::new(),
        identity: None,
        bids_in_flight: 0,
        bucket,
        last_heard: Instant::now(),
        client,
        anonymous: HashMap::new(),
        corked: false,
    };
    context.metrics.connections.inc();
    let end = session.run(&mut inbox).await;
    debug!(connection, ?end, "connection ends");
    context
        .metrics
        .closes
        .with_label_values(&[end.label()])
        .inc();
    if let End::Close(code, reason) = end {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // The closing handshake: send ours, then read until the client's close (bounded), so
        // that unread input does not turn the close into a reset the client never sees. A client
        // that reads nothing gets no close frame either; the socket is dropped anyway.
        let socket = &mut session.socket;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if socket.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(message)) = socket.recv().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            }
        })
        .await;
    }
    for lot_id in session.subscriptions.keys() {
        context.hub.unsubscribe(*lot_id, connection);
    }
    context.metrics.connections.dec();
}

impl Session {
    async fn run(&mut self, inbox: &mut mpsc::Receiver<Push>) -> End {
        let limits = &self.context.limits;
        let welcome = protocol::welcome(
            self.connection,
            json!({
                "max_subscriptions": limits.max_subscriptions,
                "max_frame_bytes": limits.max_frame_bytes,
                "messages_per_second": limits.messages_per_second,
            }),
        );
        if let Err(end) = self.send(welcome.into()).await {
            return end;
        }
        let shutdown = self.context.shutdown.clone();
        let behind = self.behind.clone();
        let mut next_ping = Instant::now() + PING_EVERY;
        loop {
            let step = tokio::select! {
                () = shutdown.cancelled() => Err(End::Close(GOING_AWAY, "the server is restarting; reconnect")),
                frame = self.socket.recv() => match frame {
                    None | Some(Ok(Message::Close(_))) => Err(End::Gone),
                    Some(Ok(Message::Text(text))) => {
                        self.last_heard = Instant::now();
                        if self.bucket.take() {
                            Box::pin(self.request(text.as_str())).await
                        } else {
                            Err(End::Close(POLICY_VIOLATION, "too many messages"))
                        }
                    }
                    Some(Ok(Message::Binary(_))) => Err(End::Close(UNSUPPORTED_DATA, "text frames only")),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        self.last_heard = Instant::now();
                        Ok(())
                    }
                    Some(Err(error)) => Err(read_failure(&error)),
                },
                Some(push) = inbox.recv() => Box::pin(self.push_burst(push, inbox)).await,
                () = behind.notify.notified() => Box::pin(self.catch_up_behind()).await,
                () = tokio::time::sleep_until(next_ping) => {
                    next_ping = Instant::now() + PING_EVERY;
                    if self.last_heard.elapsed() > SILENCE_LIMIT {
                        Err(End::Close(GOING_AWAY, "no frame for a minute"))
                    } else {
                        self.send_message(Message::Ping(Default::default())).await
                    }
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    async fn send(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.send_message(Message::Text(text)).await
    }

    async fn send_message(&mut self, message: Message) -> Result<(), End> {
        let limit = self.context.limits.write_timeout;
        let write = async {
            if self.corked {
                self.socket.feed(message).await
            } else {
                self.socket.send(message).await
            }
        };
        written(limit, write).await
    }

    /// Writes what a burst queued.
    async fn flush(&mut self) -> Result<(), End> {
        let limit = self.context.limits.write_timeout;
        written(limit, SinkExt::flush(&mut self.socket)).await
    }

    async fn refuse(&mut self, refusal: Refusal) -> Result<(), End> {
        self.send(refusal.to_message().into()).await
    }

    async fn request(&mut self, text: &str) -> Result<(), End> {
        let request = match protocol::parse(text) {
            Ok(request) => request,
            Err(refusal) => return self.refuse(refusal).await,
        };
        match request {
            Request::Ping { id } => self.send(protocol::pong(id).into()).await,
            Request::Auth { token } => self.authenticate(token).await,
            Request::Subscribe { lot_id, since } => self.subscribe(lot_id, since).await,
            Request::Unsubscribe { lot_id } => {
                if self.subscriptions.remove(&lot_id).is_some() {
                    self.context.hub.unsubscribe(lot_id, self.connection);
                }
                self.anonymous.remove(&lot_id);
                self.send(
                    json!({"type": "unsubscribed", "lot_id": lot_id})
                        .to_string()
                        .into(),
                )
                .await
            }
            Request::Bid(bid) => self.bid(bid).await,
        }
    }

    async fn authenticate(&mut self, token: String) -> Result<(), End> {
        match self.context.verifier.verify(&token).await {
            Ok(claims) => {
                let expires_at = chrono::DateTime::from_timestamp(claims.exp, 0);
                let message = json!({
                    "type": "authenticated",
                    "account_id": claims.sub,
                    "wallet": claims.wallet,
                    "expires_at": expires_at,
                });
                self.identity = Some(Identity { token, claims });
                self.send(message.to_string().into()).await
            }
            Err(_) => {
                self.identity = None;
                self.refuse(Refusal::new(
                    "unauthorized",
                    "the token is not valid (expired, or not from this Gavel); sign in again",
                ))
                .await
            }
        }
    }
}

fn read_failure(error: &axum::Error) -> End {
    use std::error::Error as _;
    let capacity = error
        .source()
        .and_then(|source| source.downcast_ref::<tokio_tungstenite::tungstenite::Error>())
        .is_some_and(|error| matches!(error, tokio_tungstenite::tungstenite::Error::Capacity(_)));
    if capacity {
        End::Close(MESSAGE_TOO_BIG, "a message is at most max_frame_bytes")
    } else {
        End::Gone
    }
}

/// The outcome of a write to the socket, which must end within `limit`.
async fn written(
    limit: Duration,
    write: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), End> {
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(End::Gone),
        Err(_) => Err(End::Close(
            TOO_SLOW,
            "the client does not read its messages",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_close_reason_is_one_the_metric_starts_with() {
        let ends = [
            End::Gone,
            End::Close(GOING_AWAY, ""),
            End::Close(UNSUPPORTED_DATA, ""),
            End::Close(POLICY_VIOLATION, ""),
            End::Close(MESSAGE_TOO_BIG, ""),
            End::Close(TOO_SLOW, ""),
            End::Close(4999, ""),
        ];
        for end in ends {
            assert!(
                crate::metrics::CLOSE_REASONS.contains(&end.label()),
                "{end:?} counts as {}, which gavel_ws_closes_total does not start with",
                end.label()
            );
        }
    }
}
