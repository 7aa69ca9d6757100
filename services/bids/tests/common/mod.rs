//! A world for engine tests: a real `wallets` (in-process, its own database), a dev chain, a
//! shared vhost and Redis prefix, and any number of `bids` instances on one database, each in its
//! own runtime so that a test can kill one as abruptly as a crash.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use gavel_bids::config::Config;
use gavel_bids::engine::Hooks;
use gavel_common::cache::RedisConfig;
use gavel_common::server::{Listeners, run};
use gavel_events::{Increment, LotCreated, LotRules};
use gavel_messaging::Envelope;
use gavel_test_support::{DevChain, TestDatabase, TestVhost, auth, wait_until_async};
use gavel_types::{AccountId, EthAddress, LotId, Wei};
use gavel_wallets::testing;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const BIDS_TOKEN: &str = "engine-test-token";
/// The token `lots` presents to the engine's internal API.
pub const LOTS_TOKEN: &str = "lots-test-token";
pub const DEADLINE: Duration = Duration::from_secs(30);

pub struct World {
    pub db: TestDatabase,
    pub wallets_db: TestDatabase,
    pub vhost: TestVhost,
    pub chain: DevChain,
    pub redis: RedisConfig,
    pub wallets: testing::Running,
    pub client: reqwest::Client,
    pub repair_after: Duration,
}

/// A world whose engines repair unconfirmed holds after `repair_after`.
pub async fn world(repair_after: Duration) -> World {
    gavel_test_support::init_logs();
    let db = TestDatabase::create().await;
    let wallets_db = TestDatabase::create().await;
    let vhost = TestVhost::create().await;
    let chain = DevChain::start();
    let redis = gavel_test_support::redis_config();
    let options = testing::Options {
        confirmations: 1,
        balance_cache_ttl: Duration::from_secs(2),
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
    World {
        db,
        wallets_db,
        vhost,
        chain,
        redis,
        wallets,
        client: reqwest::Client::new(),
        repair_after,
    }
}

/// One `bids` instance, in a runtime of its own.
pub struct Engine {
    pub base: String,
    /// The internal API (lot changes).
    pub internal: String,
    /// `/healthz`, `/readyz`, `/metrics`.
    pub admin: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

impl World {
    pub fn config(&self, bids_per_second: u32) -> Config {
        gavel_bids::testing::config(&gavel_bids::testing::Options {
            database: self.db.config(),
            broker: self.vhost.config(),
            redis: self.redis.clone(),
            auth: auth::auth_config(),
            wallets_url: self.wallets.internal.parse().expect("url"),
            wallets_token: BIDS_TOKEN.to_owned(),
            callers: vec![("lots".to_owned(), LOTS_TOKEN.to_owned())],
            bids_per_second,
            repair_after: self.repair_after,
        })
    }

    pub async fn engine(&self) -> Engine {
        self.engine_with(self.config(10_000), Hooks::default())
            .await
    }

    pub async fn engine_with(&self, config: Config, hooks: Hooks) -> Engine {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let (done_tx, done) = oneshot::channel();
        runtime.spawn(async move {
            let service = gavel_bids::build_with(&config, hooks)
                .await
                .expect("bids builds");
            let listeners = Listeners::ephemeral().await.expect("bind");
            let _ = ready_tx.send((
                format!("http://{}", listeners.http_addr().expect("bound")),
                format!("http://{}", listeners.internal_addr().expect("bound")),
                format!("http://{}", listeners.admin_addr().expect("bound")),
            ));
            run(
                service,
                listeners,
                async { stopped.await.unwrap_or(()) },
                &config.shutdown,
            )
            .await
            .expect("clean stop");
            let _ = done_tx.send(());
        });
        let (base, internal, admin) = ready_rx.await.expect("bids started");
        Engine {
            base,
            internal,
            admin,
            runtime: Some(runtime),
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// An engine whose every bid stops for good right after its hold is placed, and what it
    /// notifies when one does.
    pub async fn stalling_engine(&self) -> (Engine, Arc<tokio::sync::Notify>) {
        let stalled = Arc::new(tokio::sync::Notify::new());
        let engine = self
            .engine_with(
                self.config(1000),
                Hooks {
                    stall_after_hold: Some(stalled.clone()),
                },
            )
            .await;
        (engine, stalled)
    }

    /// Sends `bidder`'s bid of `amount` under `key` to a [`Self::stalling_engine`] and kills
    /// the engine once the hold is placed: the hold is in `wallets`, the bid never recorded,
    /// and the request dies with the engine.
    pub async fn bid_and_crash_after_hold(
        &self,
        (engine, stalled): (Engine, Arc<tokio::sync::Notify>),
        bidder: &Bidder,
        lot: LotId,
        key: &str,
        amount: u128,
    ) {
        let request = self
            .client
            .post(format!("{}/lots/{lot}/bids", engine.base))
            .bearer_auth(&bidder.token)
            .header("idempotency-key", key)
            .json(&json!({"amount": amount.to_string()}));
        let in_flight = tokio::spawn(request.send());
        stalled.notified().await;
        engine.kill();
        assert!(
            in_flight.await.expect("joined").is_err(),
            "the request died with the engine"
        );
    }

    /// Publishes `lot.created` as `lots` would and waits until the engine has the lot open (or
    /// scheduled, when it starts later).
    pub async fn create_lot(&self, engine: &Engine, rules: LotRules, seller: AccountId) -> LotId {
        let lot_id = LotId::new();
        let event = LotCreated {
            lot_id,
            seller,
            seller_wallet: EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x5e)),
            title: "A test lot".to_owned(),
            rules: rules.clone(),
        };
        self.publish(
            &Envelope::new(lot_id.to_string(), None, &event).expect("serializable"),
            "bids.lot-events",
        )
        .await;
        // A lot that starts in the future may already have opened (or even ended) by the time
        // the engine takes the event in: any later state counts as having reached it.
        let acceptable: &[&str] = if rules.starts_at <= Utc::now() {
            &["open"]
        } else {
            &["scheduled", "open", "closed"]
        };
        wait_until_async("the lot to reach the engine", DEADLINE, || async {
            let state = self.get(engine, &format!("/lots/{lot_id}")).await;
            acceptable.iter().any(|status| state["status"] == *status)
        })
        .await;
        lot_id
    }

    /// Publishes `lot.created` without waiting for the engine (for bulk set-up).
    pub async fn create_lot_quietly(&self, rules: LotRules, seller: AccountId) -> LotId {
        let lot_id = LotId::new();
        let event = LotCreated {
            lot_id,
            seller,
            seller_wallet: EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x5e)),
            title: "A test lot".to_owned(),
            rules,
        };
        self.publish(
            &Envelope::new(lot_id.to_string(), None, &event).expect("serializable"),
            "bids.lot-events",
        )
        .await;
        lot_id
    }

    /// Waits until the engine has opened every lot in `lots`.
    pub async fn wait_for_lots(&self, engine: &Engine, lots: &[LotId]) {
        for lot in lots {
            wait_until_async("the lot to open", DEADLINE, || async {
                self.get(engine, &format!("/lots/{lot}")).await["status"] == "open"
            })
            .await;
        }
    }

    pub async fn publish(&self, envelope: &Envelope, queue: &str) {
        self.vhost.publish(envelope, queue).await;
    }

    pub async fn get(&self, engine: &Engine, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", engine.base))
            .send()
            .await
            .expect("served")
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// A bidder with a funded wallet and an access token.
    pub async fn bidder(&self, wei: &str) -> Bidder {
        let wallet = EthAddress::from_alloy(alloy_primitives::Address::from_slice(
            &uuid::Uuid::new_v4().as_bytes()[..].repeat(2)[..20],
        ));
        self.chain.set_balance(&wallet.to_string(), wei).await;
        let account = AccountId::new();
        let token = auth::mint(&auth::claims(account.0, &wallet.to_string()));
        let bidder = Bidder {
            account,
            wallet,
            token,
        };
        self.link(&bidder).await;
        bidder
    }

    pub async fn bid(
        &self,
        engine: &Engine,
        bidder: &Bidder,
        lot: LotId,
        key: &str,
        amount: u128,
        max: Option<u128>,
    ) -> (u16, Value, bool) {
        let mut body = json!({"amount": amount.to_string()});
        if let Some(max) = max {
            body["max_amount"] = json!(max.to_string());
        }
        let response = self
            .client
            .post(format!("{}/lots/{lot}/bids", engine.base))
            .bearer_auth(&bidder.token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .expect("served");
        let status = response.status().as_u16();
        let replayed = response.headers().contains_key("idempotent-replayed");
        (
            status,
            response.json().await.unwrap_or(Value::Null),
            replayed,
        )
    }

    /// The sequence numbers of `lot`'s event log, in order.
    pub async fn log_seqs(&self, lot: LotId) -> Vec<i64> {
        sqlx::query_scalar("SELECT seq FROM lot_events WHERE lot_id = $1 ORDER BY seq")
            .bind(lot.0)
            .fetch_all(&self.db.pool)
            .await
            .expect("events")
    }

    /// The amounts of `lot`'s recorded bids, in the order they were recorded.
    pub async fn bid_amounts(&self, lot: LotId) -> Vec<u128> {
        let amounts: Vec<String> =
            sqlx::query_scalar("SELECT amount::text FROM bids WHERE lot_id = $1 ORDER BY seq")
                .bind(lot.0)
                .fetch_all(&self.db.pool)
                .await
                .expect("bids");
        amounts
            .iter()
            .map(|amount| amount.parse().expect("an integer"))
            .collect()
    }

    /// Holds `wallets` keeps for `lot`, as (wallet, status, amount).
    pub async fn holds(&self, lot: LotId) -> Vec<(String, String, String)> {
        let holds: Vec<Value> = self
            .client
            .get(format!(
                "{}/internal/holds?lot_id={lot}",
                self.wallets.internal
            ))
            .bearer_auth(BIDS_TOKEN)
            .send()
            .await
            .expect("served")
            .json()
            .await
            .expect("json");
        holds
            .iter()
            .map(|hold| {
                (
                    hold["wallet"].as_str().unwrap_or_default().to_owned(),
                    hold["status"].as_str().unwrap_or_default().to_owned(),
                    hold["amount"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Active holds on `lot`, as (wallet, amount).
    pub async fn active_holds(&self, lot: LotId) -> Vec<(String, String)> {
        self.holds(lot)
            .await
            .into_iter()
            .filter(|(_, status, _)| status == "active")
            .map(|(wallet, _, amount)| (wallet, amount))
            .collect()
    }

    /// Links `bidder`'s wallet to its account in `wallets`, as a sign-in or a link would.
    pub async fn link(&self, bidder: &Bidder) {
        for sql in [
            "INSERT INTO accounts (id) VALUES ($1) ON CONFLICT DO NOTHING",
            "INSERT INTO wallets (address, account_id) VALUES ($2, $1) ON CONFLICT DO NOTHING",
        ] {
            sqlx::query(sql)
                .bind(bidder.account.0)
                .bind(bidder.wallet.to_lowercase_hex())
                .execute(&self.wallets_db.pool)
                .await
                .expect("linked");
        }
    }

    /// A second funded wallet linked to `bidder`'s account, with a token naming it.
    pub async fn second_wallet(&self, bidder: &Bidder, wei: &str) -> Bidder {
        let other = self.bidder(wei).await;
        sqlx::query("UPDATE wallets SET account_id = $1 WHERE address = $2")
            .bind(bidder.account.0)
            .bind(other.wallet.to_lowercase_hex())
            .execute(&self.wallets_db.pool)
            .await
            .expect("linked");
        Bidder {
            account: bidder.account,
            token: auth::mint(&auth::claims(bidder.account.0, &other.wallet.to_string())),
            wallet: other.wallet,
        }
    }

    /// Two fresh bidders (1,000 wei each) on `lot`: the first bids 100, the second outbids it
    /// with 200, which queues the release of the first one's hold.
    pub async fn outbid_once(&self, engine: &Engine, lot: LotId) -> (Bidder, Bidder) {
        let (first, second) = (self.bidder("1000").await, self.bidder("1000").await);
        assert_eq!(self.bid(engine, &first, lot, "1", 100, None).await.0, 201);
        assert_eq!(self.bid(engine, &second, lot, "2", 200, None).await.0, 201);
        (first, second)
    }

    /// Makes `wallets` fail, inside its database, every release of a hold whose row matches
    /// `condition` (over the trigger's `OLD` and `NEW`), until [`Self::heal_releases`].
    pub async fn break_releases(&self, condition: &str) {
        sqlx::raw_sql(&format!(
            "CREATE OR REPLACE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS
                 $$ BEGIN RAISE EXCEPTION 'the disk is on fire'; END $$;
             CREATE OR REPLACE TRIGGER refuse_release BEFORE UPDATE ON holds FOR EACH ROW
             WHEN (NEW.status = 'released' AND {condition}) EXECUTE FUNCTION refuse_release();"
        ))
        .execute(&self.wallets_db.pool)
        .await
        .expect("fault installed");
    }

    pub async fn heal_releases(&self) {
        sqlx::raw_sql("DROP TRIGGER refuse_release ON holds")
            .execute(&self.wallets_db.pool)
            .await
            .expect("fault removed");
    }

    pub async fn wallets_scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        sqlx::query_scalar(sql)
            .fetch_one(&self.wallets_db.pool)
            .await
            .expect("query")
    }

    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db.pool)
            .await
            .expect("query")
    }
}

pub struct Bidder {
    pub account: AccountId,
    pub wallet: EthAddress,
    pub token: String,
}

impl Engine {
    /// The sum of the samples of `name` on the engine's `/metrics` whose labels contain every
    /// one of `labels` (0 when there are none).
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        gavel_test_support::metric(&self.admin, name, labels).await
    }

    /// Drains and stops the instance.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            let _ = tokio::time::timeout(DEADLINE, done).await;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Kills the instance mid-flight: every task is dropped where it stands, as in a crash.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The `result` of each bid answer (`?` for an answer without one), asserting that every one is
/// `accepted` or `too_low`: what a race of plain bids on one lot may answer.
pub fn raced_results(answers: &[(u16, Value, bool)]) -> Vec<&str> {
    let results: Vec<&str> = answers
        .iter()
        .map(|(_, body, _)| body["result"].as_str().unwrap_or("?"))
        .collect();
    assert!(
        results
            .iter()
            .all(|result| ["accepted", "too_low"].contains(result)),
        "every bid was decided: {results:?}"
    );
    results
}

/// Rules for a lot that is open now and ends in an hour, in wei: start 100, step 10.
pub fn rules() -> LotRules {
    let now = Utc::now();
    LotRules {
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
    }
}

pub fn at(offset_ms: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(offset_ms)
}

pub type Shared<T> = Arc<T>;
