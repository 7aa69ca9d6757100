//! A world for gateway tests: real `wallets` and `bids` (in-process, their own databases), a dev
//! chain, a vhost and Redis prefix of their own, and any number of real `gateway-ws` processes,
//! which a test can stop with a real SIGTERM.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::time::Duration;

use chrono::Utc;
use futures_util::{SinkExt, StreamExt};
use gavel_bids::config::{EngineConfig, WalletsConfig};
use gavel_bids::engine::Hooks;
use gavel_common::cache::RedisConfig;
use gavel_common::config::{ListenConfig, Secret, ShutdownConfig};
use gavel_common::server::{Listeners, run};
use gavel_events::{Increment, LotCreated, LotRules};
use gavel_messaging::Envelope;
use gavel_test_support::{
    DevChain, ServiceProcess, TestDatabase, TestVhost, auth, wait_until_async,
};
use gavel_types::{AccountId, EthAddress, LotId, Wei};
use gavel_wallets::testing;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub const BIDS_TOKEN: &str = "gateway-test-token";
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct World {
    pub bids_db: TestDatabase,
    pub wallets_db: TestDatabase,
    pub vhost: TestVhost,
    pub chain: DevChain,
    pub redis: RedisConfig,
    pub wallets: testing::Running,
    pub bids: String,
    stop_bids: Option<oneshot::Sender<()>>,
    pub client: reqwest::Client,
}

pub async fn world() -> World {
    gavel_test_support::init_logs();
    let bids_db = TestDatabase::create().await;
    let wallets_db = TestDatabase::create().await;
    let vhost = TestVhost::create().await;
    let chain = DevChain::start();
    let redis = gavel_test_support::redis_config();
    let options = testing::Options {
        confirmations: 1,
        balance_cache_ttl: Duration::from_secs(2),
        orphan_grace: Duration::from_secs(60),
        payment_window: Duration::from_secs(3600),
        bids_token: BIDS_TOKEN.to_owned(),
        private_key: auth::PRIVATE_KEY_PEM.to_owned(),
    };
    let config = testing::config(
        wallets_db.config(),
        vhost.config(),
        redis.clone(),
        &chain.url,
        &options,
    );
    let wallets = testing::serve(&config).await;

    let bids_config = gavel_bids::config::Config {
        http: ListenConfig {
            addr: ([127, 0, 0, 1], 0).into(),
        },
        admin: ListenConfig {
            addr: ([127, 0, 0, 1], 0).into(),
        },
        log: Default::default(),
        shutdown: ShutdownConfig {
            readiness_grace: Duration::ZERO,
            drain_deadline: Duration::from_secs(5),
        },
        database: bids_db.config(),
        broker: vhost.config(),
        redis: redis.clone(),
        auth: auth::auth_config(),
        wallets: WalletsConfig {
            url: wallets.base.parse().expect("url"),
            token: Secret::new(BIDS_TOKEN),
            timeout: Duration::from_secs(10),
        },
        engine: EngineConfig {
            tick: Duration::from_millis(100),
            bids_per_second: 10_000,
            release_retry: Duration::from_millis(200),
        },
    };
    let service = gavel_bids::build_with(&bids_config, Hooks::default())
        .await
        .expect("bids builds");
    let listeners = Listeners::ephemeral().await.expect("bind");
    let bids = format!("http://{}", listeners.http_addr().expect("bound"));
    let (stop_bids, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        run(
            service,
            listeners,
            async { stopped.await.unwrap_or(()) },
            &bids_config.shutdown,
        )
        .await
        .expect("bids stops cleanly");
    });
    World {
        bids_db,
        wallets_db,
        vhost,
        chain,
        redis,
        wallets,
        bids,
        stop_bids: Some(stop_bids),
        client: reqwest::Client::new(),
    }
}

impl World {
    /// The environment of a `gateway-ws` process in this world, plus `extra`.
    pub fn gateway_env(&self, extra: &[(&str, &str)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("GAVEL_BROKER__URL", self.vhost.url()),
            ("GAVEL_REDIS__URL", self.redis.url.expose().to_string()),
            ("GAVEL_REDIS__KEY_PREFIX", self.redis.key_prefix.clone()),
            (
                "GAVEL_AUTH__JWT_PUBLIC_KEY",
                auth::PUBLIC_KEY_PEM.to_owned(),
            ),
            ("GAVEL_UPSTREAM__BIDS", self.bids.clone()),
            ("GAVEL_UPSTREAM__LOTS", self.wallets.base.clone()),
            ("GAVEL_UPSTREAM__WALLETS", self.wallets.base.clone()),
            ("GAVEL_WEB__DIR", "/nonexistent".to_owned()),
            ("GAVEL_SHUTDOWN__READINESS_GRACE", "0s".to_owned()),
            ("GAVEL_SHUTDOWN__DRAIN_DEADLINE", "10s".to_owned()),
            ("GAVEL_GATEWAY__PRESENCE_INTERVAL", "200ms".to_owned()),
        ];
        for (name, value) in extra {
            let name: &'static str = Box::leak(name.to_string().into_boxed_str());
            env.retain(|(existing, _)| *existing != name);
            env.push((name, (*value).to_owned()));
        }
        env
    }

    /// A `gateway-ws` process, ready (which includes its fan-out queue consuming).
    pub async fn gateway(&self, extra: &[(&str, &str)]) -> Gateway {
        let process = ServiceProcess::spawn(
            env!("CARGO_BIN_EXE_gavel-gateway-ws"),
            &self.gateway_env(extra),
        );
        let admin = process.admin.clone();
        wait_until_async("the gateway to be ready", DEADLINE, || async {
            self.client
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

    /// Publishes `lot.created` as `lots` would and waits until bids has the lot open.
    pub async fn open_lot(&self) -> LotId {
        let lot_id = LotId::new();
        let now = Utc::now();
        let event = LotCreated {
            lot_id,
            seller: AccountId::new(),
            seller_wallet: EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x5e)),
            title: "A test lot".to_owned(),
            rules: LotRules {
                start_price: Wei::from_u128(100),
                increment: Increment::Absolute {
                    wei: Wei::from_u128(10),
                },
                reserve: None,
                buy_now: None,
                starts_at: now - chrono::Duration::seconds(1),
                ends_at: now + chrono::Duration::hours(1),
                latest_end: now + chrono::Duration::hours(2),
                snipe_window_secs: 0,
                extension_secs: 0,
            },
        };
        self.vhost
            .publish(
                &Envelope::new(lot_id.to_string(), None, &event).expect("serializable"),
                "bids.lot-events",
            )
            .await;
        wait_until_async("the lot to open", DEADLINE, || async {
            self.snapshot(lot_id).await["status"] == "open"
        })
        .await;
        lot_id
    }

    pub async fn snapshot(&self, lot_id: LotId) -> Value {
        self.client
            .get(format!("{}/lots/{lot_id}", self.bids))
            .send()
            .await
            .expect("bids answers")
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// A bidder with 10 ETH and an access token.
    pub async fn bidder(&self) -> Bidder {
        let wallet = EthAddress::from_alloy(alloy_primitives::Address::from_slice(
            &uuid::Uuid::new_v4().as_bytes()[..].repeat(2)[..20],
        ));
        self.chain
            .set_balance(&wallet.to_string(), "10000000000000000000")
            .await;
        let account = AccountId::new();
        Bidder {
            account,
            token: auth::mint(&auth::claims(account.0, &wallet.to_string())),
        }
    }

    /// Bids straight at `bids` (not through a gateway); returns the status and answer.
    pub async fn bid(
        &self,
        bidder: &Bidder,
        lot_id: LotId,
        key: &str,
        amount: u128,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/lots/{lot_id}/bids", self.bids))
            .bearer_auth(&bidder.token)
            .header("idempotency-key", key)
            .json(&json!({"amount": amount.to_string()}))
            .send()
            .await
            .expect("bids answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(stop) = self.stop_bids.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Bidder {
    pub account: AccountId,
    pub token: String,
}

pub struct Gateway {
    pub http: String,
    pub ws: String,
    process: Option<ServiceProcess>,
}

impl Gateway {
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
        let text = reqwest::get(format!("{admin}/metrics"))
            .await
            .expect("admin answers")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|line| line.starts_with(name))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
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
