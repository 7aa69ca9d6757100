//! A notifier world: a real `notifier` process on a fresh database and vhost, talking to a local
//! fake of the Telegram Bot API.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::time::Duration;

use chrono::Utc;
use gavel_events::{AuctionOpened, Increment, LotCreated, LotRules};
use gavel_messaging::{Envelope, Event};
use gavel_test_support::{
    FakeTelegram, Sent, ServiceProcess, TestDatabase, TestVhost, auth, wait_until,
};
use gavel_types::{AccountId, EthAddress, LotId, Wei};

pub const DEADLINE: Duration = Duration::from_secs(60);

pub struct World {
    pub db: TestDatabase,
    pub vhost: TestVhost,
    pub telegram: FakeTelegram,
    pub notifier: Option<ServiceProcess>,
    extra: Vec<(&'static str, String)>,
}

pub async fn world(extra: &[(&'static str, &str)]) -> World {
    gavel_test_support::init_logs();
    let mut world = World {
        db: TestDatabase::create().await,
        vhost: TestVhost::create().await,
        telegram: FakeTelegram::start().await,
        notifier: None,
        extra: extra
            .iter()
            .map(|(name, value)| (*name, (*value).to_owned()))
            .collect(),
    };
    world.start().await;
    world
}

impl World {
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("GAVEL_DATABASE__URL", self.db.url()),
            ("GAVEL_BROKER__URL", self.vhost.url()),
            (
                "GAVEL_AUTH__JWT_PUBLIC_KEY",
                auth::PUBLIC_KEY_PEM.to_owned(),
            ),
            ("GAVEL_TELEGRAM__TOKEN", self.telegram.token.clone()),
            ("GAVEL_TELEGRAM__API_URL", self.telegram.url.clone()),
            ("GAVEL_TELEGRAM__POLL_TIMEOUT", "2s".to_owned()),
            ("GAVEL_LINKS__PUBLIC_URL", "http://gavel.test".to_owned()),
            ("GAVEL_SHUTDOWN__READINESS_GRACE", "0s".to_owned()),
            ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
        ];
        for (name, value) in &self.extra {
            env.retain(|(existing, _)| existing != name);
            env.push((name, value.clone()));
        }
        // An empty value in `extra` removes the variable.
        env.retain(|(_, value)| !value.is_empty());
        env
    }

    /// Starts the notifier process (it must not be running).
    pub async fn start(&mut self) {
        let env = self.env();
        let process = tokio::task::spawn_blocking(move || {
            ServiceProcess::spawn(env!("CARGO_BIN_EXE_gavel-notifier"), &env)
        })
        .await
        .expect("started");
        self.notifier = Some(process);
    }

    /// Kills the notifier with SIGKILL.
    pub async fn kill(&mut self) {
        let process = self.notifier.take().expect("running");
        tokio::task::spawn_blocking(move || process.kill())
            .await
            .expect("killed");
    }

    /// Stops the notifier with SIGTERM; returns its log lines.
    pub async fn terminate(&mut self) -> Vec<String> {
        let process = self.notifier.take().expect("running");
        let (status, logs) =
            tokio::task::spawn_blocking(move || process.terminate(Duration::from_secs(30)))
                .await
                .expect("stopped");
        assert!(status.success(), "exit status {status}");
        logs
    }

    pub fn http(&self) -> String {
        self.notifier.as_ref().expect("running").http.clone()
    }

    /// `POST /link-codes` as `account`: the notifier's answer.
    pub async fn link_code(&self, account: AccountId) -> serde_json::Value {
        reqwest::Client::new()
            .post(format!("{}/link-codes", self.http()))
            .bearer_auth(token(account))
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json")
    }

    pub async fn publish<E: Event>(
        &self,
        aggregate: &str,
        sequence: Option<i64>,
        event: &E,
    ) -> Envelope {
        let envelope = Envelope::new(aggregate.to_owned(), sequence, event).expect("serializable");
        self.vhost.publish(&envelope, "notifier.events").await;
        envelope
    }

    /// Publishes a lot and its opening; returns its id.
    pub async fn open_lot(&self, title: &str, start_wei: u128, seller: AccountId) -> LotId {
        let lot_id = LotId::new();
        let now = Utc::now();
        let created = LotCreated {
            lot_id,
            seller,
            seller_wallet: EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x5e)),
            title: title.to_owned(),
            rules: LotRules {
                start_price: Wei::from_u128(start_wei),
                increment: Increment::Absolute {
                    wei: Wei::from_u128(10),
                },
                reserve: None,
                buy_now: None,
                starts_at: now,
                ends_at: now + chrono::Duration::hours(1),
                latest_end: now + chrono::Duration::hours(1),
                snipe_window_secs: 0,
                extension_secs: 0,
            },
        };
        self.publish(&lot_id.to_string(), None, &created).await;
        let opened = AuctionOpened {
            lot_id,
            ends_at: now + chrono::Duration::hours(1),
        };
        self.publish(&lot_id.to_string(), Some(1), &opened).await;
        lot_id
    }

    /// Subscribed private chats `first..first+count`, as `/subscribe` would leave them.
    pub async fn subscribers(&self, first: i64, count: i64) {
        sqlx::query(
            "INSERT INTO chats (chat_id, kind, subscribed)
             SELECT id, 'private', TRUE FROM generate_series($1::bigint, $2::bigint) AS id",
        )
        .bind(first)
        .bind(first + count - 1)
        .execute(&self.db.pool)
        .await
        .expect("chats");
    }

    /// Waits until `count` messages were delivered.
    pub async fn delivered(&self, count: usize) -> Vec<Sent> {
        wait_until(&format!("{count} delivered messages"), DEADLINE, || {
            self.telegram.delivered().len() >= count
        })
        .await;
        self.telegram.delivered()
    }

    /// Waits for the next delivered message to `chat` after the first `skip`, and returns it.
    pub async fn reply(&self, chat: i64, skip: usize) -> String {
        wait_until(&format!("a reply to chat {chat}"), DEADLINE, || {
            self.to_chat(chat).len() > skip
        })
        .await;
        self.to_chat(chat)[skip].text.clone()
    }

    pub fn to_chat(&self, chat: i64) -> Vec<Sent> {
        self.telegram
            .delivered()
            .into_iter()
            .filter(|sent| sent.chat_id == chat)
            .collect()
    }

    /// Statuses of the outbound rows of `event`, by chat.
    pub async fn outbound(&self, event: uuid::Uuid) -> Vec<(i64, String)> {
        sqlx::query_as("SELECT chat_id, status FROM outbound WHERE event_id = $1 ORDER BY chat_id")
            .bind(event)
            .fetch_all(&self.db.pool)
            .await
            .expect("outbound")
    }
}

pub fn token(account: AccountId) -> String {
    auth::mint(&auth::claims(
        account.0,
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    ))
}
