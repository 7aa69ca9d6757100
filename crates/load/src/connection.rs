//! One WebSocket connection to the gateway: a bidder (authenticated, bidding on its lots and
//! watching them) or a watcher (anonymous, watching), each checking what it receives.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpSocket;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::report::{Ack, Shared, histogram};
use crate::setup::{Gateway, INCREMENT_WEI, START_WEI};

const HANDSHAKE: Duration = Duration::from_secs(20);
/// How long a watcher may take, once bidding ended, to receive the last accepted event.
const CATCH_UP: Duration = Duration::from_secs(15);

/// A bid the schedule gives a bidder: number `number`, on its lot `lot` (an index into its
/// lots), due at `due`.
#[derive(Debug, Clone, Copy)]
pub struct Due {
    pub number: u64,
    pub lot: usize,
    pub due: Instant,
}

#[derive(Debug)]
pub struct Setup {
    pub index: usize,
    pub token: Option<String>,
    pub lots: Vec<String>,
    /// Whether this connection's deliveries also go into the latency-over-time samples.
    pub sampled: bool,
    /// Where to connect again when the connection is lost (`--reconnect`), as a browser does;
    /// without it, a lost connection ends this client with an error.
    pub resume: Option<Resume>,
}

#[derive(Debug, Clone)]
pub struct Resume {
    pub gateway: Arc<Gateway>,
    /// The client's number: which gateway replica it goes to.
    pub index: usize,
    pub source: Option<IpAddr>,
}

/// How long a client keeps trying to connect again.
const RECONNECT_FOR: Duration = Duration::from_secs(60);

/// What one connection saw, merged into the report at the end.
#[derive(Debug)]
pub struct Seen {
    pub delivery: Histogram<u32>,
    pub deliveries: u64,
    /// Events that arrived out of order or twice.
    pub disorder: u64,
    /// Events up to the last accepted sequence that never arrived.
    pub missing: u64,
    /// Times the connection was lost and made again (`--reconnect`).
    pub reconnects: u64,
    pub error: Option<String>,
}

/// The parts of a server message the load generator reads.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    id: Option<&'a str>,
    #[serde(default)]
    lot_id: Option<&'a str>,
    #[serde(default)]
    sequence: Option<i64>,
    #[serde(default)]
    event: Option<&'a str>,
    #[serde(default)]
    occurred_at: Option<&'a str>,
    #[serde(default)]
    code: Option<&'a str>,
    #[serde(default)]
    minimum: Option<&'a str>,
    #[serde(default, borrow)]
    data: Option<Priced<'a>>,
    #[serde(default, borrow)]
    lot: Option<Priced<'a>>,
    /// A bid result's answer; in a refusal, the refusal's code.
    #[serde(default, borrow)]
    result: Option<Answer<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Answer<'a> {
    #[serde(borrow)]
    Decided(Priced<'a>),
    Code(#[allow(dead_code)] &'a str),
}

#[derive(Deserialize)]
struct Priced<'a> {
    #[serde(default)]
    price: Option<&'a str>,
    #[serde(default)]
    sequence: Option<i64>,
}

/// Connects client `index` from `source` to its gateway replica, waits for the welcome, signs in
/// when there is a token.
pub async fn connect(
    gateway: &Gateway,
    index: usize,
    source: Option<IpAddr>,
    token: Option<&str>,
) -> Result<Socket> {
    let endpoint = gateway.endpoint(index);
    let socket = if endpoint.socket.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(source) = source {
        socket.bind((source, 0).into())?;
    }
    let stream = tokio::time::timeout(HANDSHAKE, socket.connect(endpoint.socket))
        .await
        .context("connecting timed out")??;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio::time::timeout(
        HANDSHAKE,
        tokio_tungstenite::client_async(endpoint.ws.as_str(), stream),
    )
    .await
    .context("the WebSocket handshake timed out")??;
    expect(&mut ws, "welcome").await?;
    if let Some(token) = token {
        ws.send(Message::text(
            json!({"type": "auth", "token": token}).to_string(),
        ))
        .await?;
        expect(&mut ws, "authenticated").await?;
    }
    Ok(ws)
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn expect(ws: &mut Socket, kind: &str) -> Result<()> {
    loop {
        let frame = tokio::time::timeout(HANDSHAKE, ws.next())
            .await
            .with_context(|| format!("no `{kind}` in time"))?
            .context("the connection closed")??;
        let Message::Text(text) = frame else { continue };
        let message: Incoming = serde_json::from_str(text.as_str())?;
        if message.kind == kind {
            return Ok(());
        }
        if message.kind == "error" {
            bail!("expected `{kind}`, got {text}");
        }
    }
}

/// What the connection knows of one lot it watches.
#[derive(Debug, Default, Clone, Copy)]
struct Watched {
    last: i64,
    price: Option<u128>,
}

/// Subscribes to the lots and runs until the end of the run: bids when the schedule says
/// (bidders), and times and checks every event.
pub async fn run(
    mut ws: Socket,
    setup: Setup,
    shared: Arc<Mutex<Shared>>,
    mut dues: mpsc::UnboundedReceiver<Due>,
    mut finals: watch::Receiver<Option<Arc<HashMap<String, i64>>>>,
    ready: mpsc::Sender<()>,
) -> Seen {
    let mut seen = Seen {
        delivery: histogram(),
        deliveries: 0,
        disorder: 0,
        missing: 0,
        reconnects: 0,
        error: None,
    };
    let mut watched: Vec<Watched> = vec![Watched::default(); setup.lots.len()];
    let index_of: HashMap<&str, usize> = setup
        .lots
        .iter()
        .enumerate()
        .map(|(index, lot)| (lot.as_str(), index))
        .collect();
    if let Err(error) = subscribe(&mut ws, &setup, &index_of, &mut watched).await {
        seen.error = Some(format!("subscribing: {error:#}"));
        drop(ready);
        return seen;
    }
    let _ = ready.send(()).await;
    drop(ready);

    // Bids sent and not answered yet: when each was due, and on which of the lots.
    let mut outstanding: HashMap<String, (Instant, usize)> = HashMap::new();
    let mut sending = true;
    let mut target: Option<Arc<HashMap<String, i64>>> = None;
    // Once the target is known, how long the last events may still take.
    let mut deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    loop {
        if let Some(target) = &target {
            let caught_up = setup
                .lots
                .iter()
                .zip(&watched)
                .all(|(lot, watched)| target.get(lot).is_none_or(|last| watched.last >= *last));
            if caught_up {
                break;
            }
        }
        tokio::select! {
            due = dues.recv(), if sending => match due {
                Some(due) => {
                    let lot = &setup.lots[due.lot];
                    let known = watched[due.lot].price;
                    let minimum = known.map_or(START_WEI, |price| price + INCREMENT_WEI);
                    // A ladder: a bid due later bids more, so bids that reach the lot in the
                    // order they were due are all accepted, and only those overtaken on the way
                    // are too low (what the bidders' race allows).
                    let ladder = START_WEI + INCREMENT_WEI * (u128::from(due.number) + 1);
                    let amount = ladder.max(minimum);
                    let id = format!("b{}", due.number);
                    let bid = json!({"type": "bid", "id": id, "lot_id": lot, "amount": amount.to_string()});
                    outstanding.insert(id, (due.due, due.lot));
                    if let Err(error) = ws.send(Message::text(bid.to_string())).await
                        && setup.resume.is_none()
                    {
                        seen.error = Some(format!("sending a bid: {error}"));
                        break;
                    }
                    // With --reconnect, the next read sees the connection gone, connects again
                    // and counts this bid's answer as lost with it.
                }
                None => sending = false,
            },
            changed = finals.changed(), if target.is_none() => {
                if changed.is_err() {
                    break;
                }
                target = finals.borrow().clone();
                deadline = tokio::time::Instant::now() + CATCH_UP;
            }
            () = tokio::time::sleep_until(deadline), if target.is_some() => break,
            frame = ws.next() => {
                let lost = match frame {
                    Some(Ok(Message::Text(text))) => Ok(text),
                    Some(Ok(Message::Close(close))) => Err(format!("the gateway closed the connection: {close:?}")),
                    Some(Ok(_)) => continue,
                    Some(Err(error)) => Err(format!("reading: {error}")),
                    None => Err("the connection ended".to_owned()),
                };
                let text = match (lost, &setup.resume) {
                    (Ok(text), _) => text,
                    (Err(reason), None) => {
                        seen.error = Some(reason);
                        break;
                    }
                    (Err(reason), Some(resume)) => {
                        // The answers to bids in flight went with the connection: like a
                        // browser, this client cannot know them.
                        {
                            let mut shared = lock(&shared);
                            for (id, (due, lot)) in outstanding.drain() {
                                let micros = clamp_micros(Instant::now().saturating_duration_since(due).as_secs_f64());
                                shared.answered(due, micros, Some(LOST));
                                shared.acks.push(Ack { key: id, lot: setup.lots[lot].clone(), outcome: LOST.to_owned(), sequence: None });
                            }
                        }
                        match reconnect(resume, &setup, &watched).await {
                            Ok(socket) => {
                                ws = socket;
                                seen.reconnects += 1;
                                continue;
                            }
                            Err(error) => {
                                seen.error = Some(format!("{reason}; connecting again failed: {error:#}"));
                                break;
                            }
                        }
                    }
                };
                let arrived = Instant::now();
                let Ok(message) = serde_json::from_str::<Incoming>(text.as_str()) else {
                    seen.error = Some(format!("unreadable message {text}"));
                    break;
                };
                match message.kind {
                    "event" => {
                        let Some(lot) = message.lot_id.and_then(|lot| index_of.get(lot)) else { continue };
                        let state = &mut watched[*lot];
                        let sequence = message.sequence.unwrap_or_default();
                        if sequence != state.last + 1 {
                            seen.disorder += 1;
                        }
                        state.last = state.last.max(sequence);
                        if let Some(price) = message.data.as_ref().and_then(|data| data.price).and_then(|p| p.parse().ok()) {
                            state.price = state.price.max(Some(price));
                        }
                        if message.event == Some("auction.bid_accepted") {
                            seen.deliveries += 1;
                            if let Some(latency) = message.occurred_at.and_then(since) {
                                let micros = clamp_micros(latency);
                                let _ = seen.delivery.record(micros);
                                if setup.sampled {
                                    lock(&shared).delivered(micros);
                                }
                            }
                        }
                    }
                    "bid_result" | "error" if message.id.is_some() => {
                        let Some((due, lot)) = message.id.and_then(|id| outstanding.remove(id)) else { continue };
                        let micros = clamp_micros(arrived.saturating_duration_since(due).as_secs_f64());
                        let state = &mut watched[lot];
                        let mut shared = lock(&shared);
                        if message.kind == "bid_result" {
                            let result = match &message.result {
                                Some(Answer::Decided(result)) => Some(result),
                                _ => None,
                            };
                            let sequence = result.and_then(|result| result.sequence);
                            if let Some(sequence) = sequence {
                                shared.acknowledged(&setup.lots[lot], sequence);
                            }
                            shared.acks.push(Ack {
                                key: message.id.unwrap_or_default().to_owned(),
                                lot: setup.lots[lot].clone(),
                                outcome: "accepted".to_owned(),
                                sequence,
                            });
                            if let Some(price) = result.and_then(|result| result.price).and_then(|p| p.parse().ok()) {
                                state.price = state.price.max(Some(price));
                            }
                            shared.answered(due, micros, None);
                        } else {
                            let code = message.code.unwrap_or("unknown");
                            shared.answered(due, micros, Some(code));
                            shared.acks.push(Ack {
                                key: message.id.unwrap_or_default().to_owned(),
                                lot: setup.lots[lot].clone(),
                                outcome: code.to_owned(),
                                sequence: None,
                            });
                            // Too low: the minimum the engine named is a price floor to bid from.
                            if let Some(minimum) = message.minimum.and_then(|m| m.parse::<u128>().ok()) {
                                state.price = state.price.max(Some(minimum.saturating_sub(INCREMENT_WEI)));
                            }
                        }
                    }
                    "error" => {
                        seen.error = Some(format!("the gateway said {text}"));
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    if let Some(target) = &target {
        for (lot, state) in setup.lots.iter().zip(&watched) {
            if let Some(last) = target.get(lot) {
                seen.missing += u64::try_from((last - state.last).max(0)).unwrap_or(0);
            }
        }
    }
    lock(&shared).unanswered(outstanding.len());
    let _ = ws.close(None).await;
    seen
}

/// The outcome recorded for a bid whose answer was lost with the connection.
pub const LOST: &str = "connection_lost";

/// Connects again (for up to a minute) and subscribes to every lot from the last event seen;
/// the gateway replays what was missed, which the run loop then reads like any event.
async fn reconnect(resume: &Resume, setup: &Setup, watched: &[Watched]) -> Result<Socket> {
    let started = Instant::now();
    let mut ws = loop {
        match connect(
            &resume.gateway,
            resume.index,
            resume.source,
            setup.token.as_deref(),
        )
        .await
        {
            Ok(ws) => break ws,
            Err(error) if started.elapsed() > RECONNECT_FOR => return Err(error),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    for (lot, state) in setup.lots.iter().zip(watched) {
        ws.send(Message::text(
            json!({"type": "subscribe", "lot_id": lot, "since": state.last}).to_string(),
        ))
        .await?;
    }
    Ok(ws)
}

async fn subscribe(
    ws: &mut Socket,
    setup: &Setup,
    index_of: &HashMap<&str, usize>,
    watched: &mut [Watched],
) -> Result<()> {
    for lot in &setup.lots {
        ws.send(Message::text(
            json!({"type": "subscribe", "lot_id": lot}).to_string(),
        ))
        .await?;
    }
    let mut pending = setup.lots.len();
    while pending > 0 {
        let frame = tokio::time::timeout(HANDSHAKE, ws.next())
            .await
            .context("no snapshot in time")?
            .context("the connection closed")??;
        let Message::Text(text) = frame else { continue };
        let message: Incoming = serde_json::from_str(text.as_str())?;
        match message.kind {
            "snapshot" => {
                let lot = message
                    .lot_id
                    .and_then(|lot| index_of.get(lot))
                    .context("a snapshot of a lot not asked for")?;
                watched[*lot].last = message.sequence.unwrap_or_default();
                watched[*lot].price = message
                    .lot
                    .as_ref()
                    .and_then(|lot| lot.price)
                    .and_then(|price| price.parse().ok());
            }
            "subscribed" => pending -= 1,
            "error" => bail!("{text}"),
            _ => {}
        }
    }
    Ok(())
}

fn since(occurred_at: &str) -> Option<f64> {
    let at = chrono::DateTime::parse_from_rfc3339(occurred_at).ok()?;
    let elapsed = chrono::Utc::now().signed_duration_since(at);
    Some(elapsed.num_microseconds()? as f64 / 1e6)
}

fn clamp_micros(seconds: f64) -> u64 {
    (seconds.max(0.0) * 1e6).round().clamp(1.0, 60e6) as u64
}

pub fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_refusal_whose_result_is_its_code() {
        // As the gateway sends it: `result` is the refusal's code here, an object in a bid_result.
        let text = r#"{"code":"too_low","detail":"the next bid must be at least 12000000000000 wei","field":"amount","id":"b21","message":"the next bid must be at least 12000000000000 wei","minimum":"12000000000000","result":"too_low","status":409,"type":"error"}"#;
        let message: Incoming = serde_json::from_str(text).expect("a refusal parses");
        assert_eq!(message.kind, "error");
        assert_eq!(message.id, Some("b21"));
        assert_eq!(message.code, Some("too_low"));
        assert_eq!(message.minimum, Some("12000000000000"));
        assert!(matches!(message.result, Some(Answer::Code("too_low"))));
    }

    #[test]
    fn reads_a_bid_result_and_an_event() {
        let text = r#"{"type":"bid_result","id":"b1","status":201,"replayed":false,"result":{"result":"accepted","leading":true,"price":"25000","sequence":4}}"#;
        let message: Incoming = serde_json::from_str(text).expect("a bid result parses");
        let Some(Answer::Decided(result)) = message.result else {
            panic!("a decided answer")
        };
        assert_eq!((result.price, result.sequence), (Some("25000"), Some(4)));

        let text = r#"{"type":"event","lot_id":"l","sequence":5,"event":"auction.bid_accepted","occurred_at":"2026-11-28T20:00:00.123456Z","data":{"price":"30000","bid_count":3}}"#;
        let message: Incoming = serde_json::from_str(text).expect("an event parses");
        assert_eq!(message.sequence, Some(5));
        assert_eq!(message.data.and_then(|data| data.price), Some("30000"));
        assert!(since("2026-11-28T20:00:00.123456Z").is_some_and(|seconds| seconds > 0.0));
    }

    #[test]
    fn latencies_are_clamped_into_the_histogram_range() {
        assert_eq!(clamp_micros(-1.0), 1);
        assert_eq!(clamp_micros(0.0125), 12_500);
        assert_eq!(clamp_micros(1e9), 60_000_000);
    }
}
