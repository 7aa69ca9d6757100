//! A world for gateway tests: the bids tests' world (real `wallets` in-process, a dev chain, a
//! vhost and Redis prefix of their own) with one `bids` engine, and any number of real
//! `gateway-ws` processes, which a test can stop with a real SIGTERM.

#![allow(dead_code, reason = "each test file uses a different subset")]

#[path = "../../../bids/tests/common/mod.rs"]
pub mod bids;
#[path = "../../../lots/tests/common/mod.rs"]
pub mod lots;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gavel_test_support::{ServiceProcess, auth, wait_until_async};
use gavel_types::{AccountId, LotId};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub use bids::Bidder;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct World {
    pub inner: bids::World,
    pub engine: bids::Engine,
    /// A real `lots` behind the gateway, when the test needs one.
    pub lots: Option<lots::TestApp>,
}

pub async fn world() -> World {
    let inner = bids::world(Duration::from_secs(60)).await;
    let engine = inner.engine().await;
    World {
        inner,
        engine,
        lots: None,
    }
}

/// [`world`] with a real `lots` (its own database and bucket, the world's vhost and engine).
pub async fn world_with_lots() -> World {
    let mut world = world().await;
    let vhost = gavel_test_support::TestVhost::create().await;
    world.lots = Some(
        lots::spawn_on(
            gavel_lots::config::PhotoLimits::default(),
            vhost,
            &world.engine.internal,
            bids::LOTS_TOKEN,
        )
        .await,
    );
    world
}

impl World {
    /// The environment of a `gateway-ws` process in this world, plus `extra`.
    pub fn gateway_env(&self, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let world = &self.inner;
        let mut env = vec![
            ("GAVEL_BROKER__URL", world.vhost.url()),
            ("GAVEL_REDIS__URL", world.redis.url.expose().to_string()),
            ("GAVEL_REDIS__KEY_PREFIX", world.redis.key_prefix.clone()),
            (
                "GAVEL_AUTH__JWT_PUBLIC_KEY",
                auth::PUBLIC_KEY_PEM.to_owned(),
            ),
            ("GAVEL_UPSTREAM__BIDS", self.engine.base.clone()),
            (
                "GAVEL_UPSTREAM__LOTS",
                self.lots
                    .as_ref()
                    .map_or_else(|| world.wallets.base.clone(), |lots| lots.base.clone()),
            ),
            ("GAVEL_UPSTREAM__WALLETS", world.wallets.base.clone()),
            ("GAVEL_WEB__DIR", "/nonexistent".to_owned()),
            ("GAVEL_SHUTDOWN__READINESS_GRACE", "0s".to_owned()),
            ("GAVEL_SHUTDOWN__DRAIN_DEADLINE", "10s".to_owned()),
            ("GAVEL_GATEWAY__PRESENCE_INTERVAL", "200ms".to_owned()),
            // Tests open many connections from one address; the edge tests set their own limits.
            ("GAVEL_EDGE__CONNECTIONS_PER_MINUTE", "1000000".to_owned()),
            ("GAVEL_EDGE__ANONYMOUS_SUBSCRIPTIONS", "1000000".to_owned()),
        ];
        for (name, value) in extra {
            env.retain(|(existing, _)| existing != name);
            env.push((name, (*value).to_owned()));
        }
        env
    }

    /// A `gateway-ws` process, ready (which includes its fan-out queue consuming).
    pub async fn gateway(&self, extra: &[(&'static str, &str)]) -> Gateway {
        let process = ServiceProcess::spawn(
            env!("CARGO_BIN_EXE_gavel-gateway-ws"),
            &self.gateway_env(extra),
        );
        let admin = process.admin.clone();
        wait_until_async("the gateway to be ready", DEADLINE, || async {
            self.inner
                .client
                .get(format!("{admin}/readyz"))
                .send()
                .await
                .is_ok_and(|response| response.status() == 200)
        })
        .await;
        let http = process.http.clone();
        Gateway {
            ws: format!("{}/ws/v1", http.replacen("http://", "ws://", 1)),
            http,
            process: Some(process),
        }
    }

    /// A lot that bids has open now (start 100 wei, step 10, an hour to go).
    pub async fn open_lot(&self) -> LotId {
        self.inner
            .create_lot(&self.engine, bids::rules(), AccountId::new())
            .await
    }

    pub async fn snapshot(&self, lot_id: LotId) -> Value {
        self.inner
            .get(&self.engine, &format!("/lots/{lot_id}"))
            .await
    }

    /// A bidder with 10 ETH and an access token.
    pub async fn bidder(&self) -> Bidder {
        self.inner.bidder("10000000000000000000").await
    }

    /// Holds `lot`'s row lock in a transaction of its own until it is dropped or rolled back:
    /// `bids` is then behind on that lot, its bids waiting.
    pub async fn lock_lot(&self, lot: LotId) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let mut holder = self.inner.db.pool.begin().await.expect("a transaction");
        sqlx::query(&format!(
            "SELECT 1 FROM lots WHERE lot_id = '{lot}' FOR UPDATE"
        ))
        .execute(&mut *holder)
        .await
        .expect("the row lock");
        holder
    }

    /// `count` connections to `gateway`, each signed in as a new funded bidder.
    pub async fn signed_in_clients(&self, gateway: &Gateway, count: usize) -> Vec<Client> {
        let mut clients = Vec::new();
        for _ in 0..count {
            let bidder = self.bidder().await;
            let mut client = Client::connect(&gateway.ws).await;
            client
                .send(json!({"type": "auth", "token": bidder.token}))
                .await;
            client.expect("authenticated").await;
            clients.push(client);
        }
        clients
    }

    /// Bids straight at `bids` (not through a gateway); returns the status and answer.
    pub async fn bid(
        &self,
        bidder: &Bidder,
        lot_id: LotId,
        key: &str,
        amount: u128,
    ) -> (u16, Value) {
        let (status, answer, _) = self
            .inner
            .bid(&self.engine, bidder, lot_id, key, amount, None)
            .await;
        (status, answer)
    }
}

pub struct Gateway {
    pub http: String,
    pub ws: String,
    process: Option<ServiceProcess>,
}

/// An answer read off a raw connection: status and body.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Gateway {
    /// `host:port` of the public listener.
    pub fn address(&self) -> String {
        self.http.trim_start_matches("http://").to_owned()
    }

    /// Sends `request_line` and `headers` exactly as written (no client normalises the path)
    /// and reads the whole answer (`Connection: close`).
    pub async fn raw(&self, request_line: &str, headers: &[(&str, &str)]) -> RawAnswer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(self.address()).await.expect("connects");
        let mut request = format!("{request_line}\r\nHost: gavel.test\r\nConnection: close\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.expect("written");
        let mut raw = Vec::new();
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut raw))
            .await
            .expect("an answer in time")
            .expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let body = if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        };
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        RawAnswer {
            status,
            head: head.to_owned(),
            body,
        }
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        let admin = &self.process.as_ref().expect("running").admin;
        reqwest::get(format!("{admin}/metrics"))
            .await
            .expect("admin answers")
            .text()
            .await
            .expect("text")
    }

    /// The process's resident memory, from `/proc`.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.process.as_ref().expect("running").pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("procfs");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .expect("VmRSS")
            * 1024
    }

    /// The value of a counter or gauge on the gateway's `/metrics` (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let admin = &self.process.as_ref().expect("running").admin;
        gavel_test_support::metric(admin, name, &[]).await
    }

    /// Cuts every broker connection of the world's vhost until this gateway has reconnected and
    /// its `count` subscriptions have each caught up once (the management API lists connections
    /// with a lag, so one cut may miss the gateway's).
    pub async fn cut_broker_until_caught_up(&self, world: &World, count: f64) {
        let before = self.metric("gavel_ws_catch_ups_total").await;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            world.inner.vhost.close_connections().await;
            let cut = std::time::Instant::now();
            while cut.elapsed() < Duration::from_secs(3) {
                if self.metric("gavel_ws_catch_ups_total").await - before >= count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the gateway never reconnected and caught up"
            );
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn terminate(mut self) {
        let process = self.process.take().expect("running");
        let (status, _logs) =
            tokio::task::spawn_blocking(move || process.terminate(Duration::from_secs(30)))
                .await
                .expect("joined");
        assert!(status.success(), "the gateway exited with {status}");
    }
}

/// The body of a chunked HTTP/1.1 answer.
fn dechunk(mut raw: &str) -> String {
    let mut body = String::new();
    while let Some((size, rest)) = raw.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        body.push_str(&rest[..size]);
        raw = rest[size..].trim_start_matches("\r\n");
    }
    body
}

/// What a client read.
#[derive(Debug)]
pub enum Incoming {
    Json(Value),
    Closed(Option<u16>),
}

/// A protocol client on a real WebSocket.
pub struct Client {
    ws: WebSocketStream<TcpStream>,
    /// The last watcher count seen (`presence` or `subscribed`), whoever read the message.
    pub watchers: Option<u64>,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let address = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port")
            .to_owned();
        let stream = TcpStream::connect(&address).await.expect("connects");
        Self::handshake(url, stream).await
    }

    /// A client whose socket buffers almost nothing: it falls behind at once when it stops
    /// reading.
    pub async fn connect_tiny(url: &str) -> Client {
        let address: std::net::SocketAddr = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .expect("host:port")
            .parse()
            .expect("an ip:port");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(2048).expect("buffer size");
        let stream = socket.connect(address).await.expect("connects");
        Self::handshake(url, stream).await
    }

    async fn handshake(url: &str, stream: TcpStream) -> Client {
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("handshake");
        let mut client = Client { ws, watchers: None };
        let welcome = client.expect("welcome").await;
        assert_eq!(welcome["protocol"], 1);
        client
    }

    pub async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("sent");
    }

    pub async fn send_raw(&mut self, message: Message) {
        let _ = self.ws.send(message).await;
    }

    /// The next message other than `presence` and pings.
    pub async fn recv(&mut self) -> Incoming {
        loop {
            match self.recv_any().await {
                Incoming::Json(value) if value["type"] == "presence" => {}
                other => return other,
            }
        }
    }

    /// The next message, `presence` included.
    pub async fn recv_any(&mut self) -> Incoming {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("a message within the deadline");
            match next {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(text.as_str()).expect("json");
                    if value["type"] == "presence" || value["type"] == "subscribed" {
                        self.watchers = value["watchers"].as_u64();
                    }
                    return Incoming::Json(value);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Incoming::Closed(frame.map(|frame| u16::from(frame.code)));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Incoming::Closed(None),
            }
        }
    }

    /// Reads until the lot's watcher count is `count` (one lot per client in these tests).
    pub async fn wait_watchers(&mut self, count: u64) {
        while self.watchers != Some(count) {
            if let Incoming::Closed(code) = self.recv_any().await {
                panic!("closed ({code:?}) waiting for {count} watchers");
            }
        }
    }

    /// The type of the next message (`closed` when the connection ends).
    pub async fn next_type(&mut self) -> String {
        match self.recv().await {
            Incoming::Json(value) => value["type"].as_str().unwrap_or_default().to_owned(),
            Incoming::Closed(_) => "closed".to_owned(),
        }
    }

    /// The next message, which must be of type `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        match self.recv().await {
            Incoming::Json(value) if value["type"] == kind => value,
            other => panic!("expected a `{kind}` message, got {other:?}"),
        }
    }

    /// Messages until one of type `kind` for which `matches` holds, skipping others.
    pub async fn until(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.recv().await {
                Incoming::Json(value) if value["type"] == kind && matches(&value) => return value,
                Incoming::Json(_) => {}
                Incoming::Closed(code) => panic!("closed ({code:?}) before a `{kind}` message"),
            }
        }
    }

    /// The close code the server ends with, skipping messages before it.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Incoming::Closed(code) = self.recv().await {
                return code;
            }
        }
    }

    /// Subscribes from scratch; returns the snapshot's sequence.
    pub async fn subscribe(&mut self, lot_id: LotId) -> i64 {
        self.send(json!({"type": "subscribe", "lot_id": lot_id}))
            .await;
        let snapshot = self.expect("snapshot").await;
        let subscribed = self.expect("subscribed").await;
        assert_eq!(snapshot["sequence"], subscribed["sequence"]);
        subscribed["sequence"].as_i64().expect("a sequence")
    }
}
