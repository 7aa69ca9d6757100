//! A `lots` instance per test: its own database, vhost and S3 bucket (on the local S3 server the
//! stack runs), served on ephemeral ports, with a real auction engine (`bids`, its own database,
//! the same vhost) that decides sellers' changes; plus sellers with tokens and hand-built images.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::time::Duration;

use gavel_common::config::{ListenConfig, Secret, ShutdownConfig};
use gavel_common::internal::PeerConfig;
use gavel_common::server::Running;
use gavel_lots::config::{ChangesConfig, Config, PhotoLimits, S3Config};
use gavel_lots::storage::Storage;
use gavel_test_support::{TestDatabase, TestVhost, auth};
use gavel_types::{AccountId, EthAddress};
use serde_json::{Value, json};

const LOTS_TOKEN: &str = "lots-test-token";

pub struct TestApp {
    pub base: String,
    pub db: TestDatabase,
    pub vhost: TestVhost,
    pub storage: Storage,
    pub client: reqwest::Client,
    /// The auction engine's database, when this app started its own engine.
    pub engine_db: Option<TestDatabase>,
    running: Running,
    engine: Option<Running>,
}

pub fn s3_config(bucket: &str) -> S3Config {
    S3Config {
        endpoint: std::env::var("GAVEL_TEST_S3_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:9000".to_owned())
            .parse()
            .expect("url"),
        region: "us-east-1".to_owned(),
        bucket: bucket.to_owned(),
        access_key_id: Secret::new("gavel"),
        secret_access_key: Secret::new("gavel-secret"),
        path_style: true,
        create_bucket: true,
        public_url: None,
    }
}

/// `lots` with an auction engine of its own, on the same vhost.
pub async fn spawn(limits: PhotoLimits) -> TestApp {
    gavel_test_support::init_logs();
    let vhost = TestVhost::create().await;
    let engine_db = TestDatabase::create().await;
    let engine_config = gavel_bids::testing::config(&gavel_bids::testing::Options {
        database: engine_db.config(),
        broker: vhost.config(),
        redis: gavel_test_support::redis_config(),
        auth: auth::auth_config(),
        // No bid is placed in these tests, so `wallets` is never called.
        wallets_url: "http://127.0.0.1:1".parse().expect("url"),
        wallets_token: "unused".to_owned(),
        callers: vec![("lots".to_owned(), LOTS_TOKEN.to_owned())],
        bids_per_second: 100,
        repair_after: Duration::from_secs(3600),
    });
    let engine = gavel_bids::testing::serve(&engine_config).await;
    let engine_url = engine.internal.clone();
    let mut app = spawn_on(limits, vhost, &engine_url, LOTS_TOKEN).await;
    app.engine = Some(engine);
    app.engine_db = Some(engine_db);
    app
}

/// `lots` on `vhost`, asking the engine whose internal API is at `engine_url` about changes.
pub async fn spawn_on(
    limits: PhotoLimits,
    vhost: TestVhost,
    engine_url: &str,
    token: &str,
) -> TestApp {
    gavel_test_support::init_logs();
    let db = TestDatabase::create().await;
    let bucket = format!(
        "gavel-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let config = Config {
        http: ListenConfig::loopback(),
        admin: ListenConfig::loopback(),
        log: Default::default(),
        shutdown: ShutdownConfig {
            readiness_grace: Duration::ZERO,
            drain_deadline: Duration::from_secs(5),
        },
        database: db.config(),
        broker: vhost.config(),
        auth: auth::auth_config(),
        s3: s3_config(&bucket),
        photos: limits,
        bids: PeerConfig {
            url: engine_url.parse().expect("url"),
            token: Secret::new(token),
            timeout: Duration::from_secs(5),
        },
        changes: ChangesConfig {
            retry_interval: Duration::from_millis(200),
        },
    };
    let service = gavel_lots::build(&config).await.expect("lots builds");
    let running = Running::start(service, config.shutdown.clone())
        .await
        .expect("bind");
    let storage = Storage::new(&config.s3);
    TestApp {
        base: running.base.clone(),
        db,
        vhost,
        storage,
        client: reqwest::Client::new(),
        engine_db: None,
        running,
        engine: None,
    }
}

pub struct Seller {
    pub account: AccountId,
    pub token: String,
}

pub fn seller() -> Seller {
    let account = AccountId::new();
    let mut bytes = [0u8; 20];
    bytes[..16].copy_from_slice(account.0.as_bytes());
    let wallet = EthAddress::from_alloy(alloy_primitives::Address::from(bytes));
    Seller {
        account,
        token: auth::mint(&auth::claims(account.0, &wallet.to_string())),
    }
}

/// A valid lot body starting now and ending in an hour.
pub fn lot_body() -> Value {
    let now = chrono::Utc::now();
    json!({
        "title": "Brass lamp, 1920s",
        "description": "A working brass desk lamp with a green glass shade.",
        "asset": "ETH",
        "start_price": "100000000000000000",
        "increment": {"kind": "absolute", "wei": "10000000000000000"},
        "reserve": "200000000000000000",
        "buy_now": "900000000000000000",
        "starts_at": now,
        "ends_at": now + chrono::Duration::hours(1),
        "snipe_window_secs": 60,
        "extension_secs": 120,
    })
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("served");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn create(&self, seller: &Seller, body: Value) -> (u16, Value) {
        self.send(
            reqwest::Method::POST,
            "/lots",
            Some(&seller.token),
            Some(body),
        )
        .await
    }

    pub async fn upload(
        &self,
        seller: &Seller,
        lot: &str,
        bytes: Vec<u8>,
        claimed: &str,
    ) -> (u16, Value) {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name("photo")
            .mime_str(claimed)
            .expect("mime");
        let form = reqwest::multipart::Form::new().part("photo", part);
        let response = self
            .client
            .post(self.url(&format!("/lots/{lot}/photos")))
            .bearer_auth(&seller.token)
            .multipart(form)
            .send()
            .await
            .expect("served");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Where this `lots` serves a photo whose link (for browsers, through the gateway's `/api`) is
    /// in `photo["url"]`.
    pub fn photo_url(&self, photo: &Value) -> String {
        let link = photo["url"].as_str().expect("a photo url");
        self.url(
            link.strip_prefix("/api")
                .expect("a link through the gateway"),
        )
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect("count")
    }

    pub async fn stop(self) {
        self.running.stop().await.expect("lots stops cleanly");
        if let Some(engine) = self.engine {
            engine.stop().await.expect("bids stops cleanly");
        }
    }
}

/// Hand-built images: structurally valid files with chosen dimensions and metadata, which is all
/// the service reads (it never decodes pixels).
pub mod images {
    use img_parts::{Bytes, ImageEXIF};

    /// EXIF with a GPS IFD pointer: enough for "metadata with a position" to be recognisable.
    pub const EXIF_WITH_GPS: &[u8] = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x88\x25\x00\x04\x00\x00\x00\x01\x00\x00\x00\x1aGPS-52.52N-13.40E\x00";

    pub fn jpeg(width: u16, height: u16, exif: bool) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8];
        bytes.extend_from_slice(&[
            0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
        ]);
        bytes.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
        bytes.extend_from_slice(&[1u8; 64]);
        bytes.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 0x08]);
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.extend_from_slice(&[0x01, 0x01, 0x11, 0x00]);
        bytes.extend_from_slice(&[
            0xFF, 0xC4, 0x00, 0x1F, 0x00, 0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2,
            3, 4, 5, 6, 7, 8, 9, 10, 11,
        ]);
        bytes.extend_from_slice(&[
            0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x00,
        ]);
        bytes.extend_from_slice(&[0xFF, 0xD9]);
        if !exif {
            return bytes;
        }
        let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(Bytes::from(bytes))
            .expect("a structurally valid JPEG");
        jpeg.set_exif(Some(Bytes::from_static(EXIF_WITH_GPS)));
        jpeg.encoder().bytes().to_vec()
    }

    /// A PNG header with the given size, a text chunk and EXIF.
    pub fn png(width: u32, height: u32) -> Vec<u8> {
        let mut png =
            img_parts::png::Png::from_bytes(Bytes::from(png_bytes(width, height))).expect("a PNG");
        png.set_exif(Some(Bytes::from_static(EXIF_WITH_GPS)));
        png.encoder().bytes().to_vec()
    }

    fn png_bytes(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = Vec::new();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        for (kind, data) in [
            (b"IHDR", ihdr.as_slice()),
            (b"tEXt", b"Location\x00Berlin".as_slice()),
            (b"IDAT", &[0x78, 0x9c, 0x63, 0, 0, 0, 1, 0, 1][..]),
            (b"IEND", &[][..]),
        ] {
            bytes.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut chunk = kind.to_vec();
            chunk.extend_from_slice(data);
            bytes.extend_from_slice(&chunk);
            bytes.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
        }
        bytes
    }

    /// A WebP with a VP8X header of the given size and EXIF.
    pub fn webp(width: u32, height: u32) -> Vec<u8> {
        let mut vp8x = vec![0u8; 10];
        vp8x[0] = 0x08; // EXIF present
        vp8x[4..7].copy_from_slice(&(width - 1).to_le_bytes()[..3]);
        vp8x[7..10].copy_from_slice(&(height - 1).to_le_bytes()[..3]);
        // A VP8L (lossless) bitstream header with the same size; the service never decodes it.
        let bits = (width - 1) | ((height - 1) << 14);
        let mut vp8l = vec![0x2f];
        vp8l.extend_from_slice(&bits.to_le_bytes());
        vp8l.extend_from_slice(&[0x00, 0x07, 0x00]);
        let mut body = b"WEBP".to_vec();
        for (id, data) in [
            (b"VP8X", vp8x.as_slice()),
            (b"VP8L", vp8l.as_slice()),
            (b"EXIF", EXIF_WITH_GPS),
        ] {
            body.extend_from_slice(id);
            body.extend_from_slice(&(data.len() as u32).to_le_bytes());
            body.extend_from_slice(data);
            if data.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }
}

/// Publishes an `auction.*` event for `lot` with sequence `seq`, as `bids` would; `extra` fills
/// the payload fields the test cares about.
pub async fn auction_event(app: &TestApp, lot: &str, seq: i64, kind: &str, extra: Value) {
    let now = chrono::Utc::now();
    let mut payload = match kind {
        "auction.opened" => json!({"lot_id": lot, "ends_at": now + chrono::Duration::hours(1)}),
        "auction.bid_accepted" => json!({
            "lot_id": lot, "bid_id": uuid::Uuid::now_v7(), "bidder": uuid::Uuid::now_v7(),
            "wallet": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "amount": "1", "held": "1", "proxy": false,
            "at": now, "price": "1", "leader": uuid::Uuid::now_v7(), "previous_leader": null, "bid_count": 1,
            "ends_at": now + chrono::Duration::hours(1), "reserve_met": false,
        }),
        _ => json!({
            "lot_id": lot, "seller": uuid::Uuid::now_v7(), "seller_wallet": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "outcome": "sold", "winner": uuid::Uuid::now_v7(), "winner_wallet": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            "price": "1", "winning_bid": uuid::Uuid::now_v7(), "closed_at": now,
        }),
    };
    for (key, value) in extra.as_object().cloned().unwrap_or_default() {
        payload[key] = value;
    }
    let envelope = json!({
        "id": uuid::Uuid::now_v7(), "type": kind, "version": 1, "occurred_at": now,
        "aggregate_id": lot, "sequence": seq, "payload": payload,
    });
    let envelope: gavel_messaging::Envelope =
        serde_json::from_value(envelope).expect("a valid envelope");
    app.vhost.publish(&envelope, "lots.auction-events").await;
}

/// Waits until `sql` (a boolean query) holds in the lots database.
pub async fn wait_for(app: &TestApp, sql: &str) {
    let pool = app.db.pool.clone();
    gavel_test_support::wait_until_async(sql, Duration::from_secs(20), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(sql)
                .fetch_one(&pool)
                .await
                .unwrap_or(false)
        }
    })
    .await;
}

/// A queue bound to `pattern` on the events exchange, to watch what `lots` publishes.
pub async fn listen(app: &TestApp, pattern: &str) -> String {
    let broker = gavel_messaging::Broker::new(app.vhost.config(), "test-listener");
    let channel = broker.channel().await.expect("channel");
    gavel_messaging::topology::declare_exchange(
        &channel,
        "gavel.events",
        gavel_messaging::config::QueueType::Classic,
    )
    .await
    .expect("exchange");
    let queue = "test.watch".to_owned();
    channel
        .queue_declare(
            queue.as_str().into(),
            Default::default(),
            Default::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.as_str().into(),
            "gavel.events".into(),
            pattern.into(),
            Default::default(),
            Default::default(),
        )
        .await
        .expect("bind");
    queue
}
