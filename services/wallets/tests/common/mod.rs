//! A `wallets` instance per test: its own database, vhost, Redis prefix and dev chain, served on
//! ephemeral ports, plus helpers that act as a browser wallet (SIWE) and as `bids`.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::time::Duration;

use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use gavel_test_support::{DevChain, TestDatabase, TestVhost, auth};
use gavel_wallets::testing;
use serde_json::{Value, json};

pub const DOMAIN: &str = "gavel.test";
pub const BIDS_TOKEN: &str = "test-bids-token";

pub struct TestApp {
    pub base: String,
    /// The internal (holds) API.
    pub internal: String,
    pub db: TestDatabase,
    pub vhost: TestVhost,
    pub chain: DevChain,
    pub client: reqwest::Client,
    running: testing::Running,
}

pub struct Options {
    pub confirmations: u64,
    pub balance_cache_ttl: Duration,
    pub payment_window: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            confirmations: 1,
            balance_cache_ttl: Duration::from_millis(1),
            payment_window: Duration::from_secs(3600),
        }
    }
}

pub async fn spawn() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_with(options: Options) -> TestApp {
    gavel_test_support::init_logs();
    let db = TestDatabase::create().await;
    let vhost = TestVhost::create().await;
    let chain = DevChain::start();
    let options = testing::Options {
        confirmations: options.confirmations,
        balance_cache_ttl: options.balance_cache_ttl,
        payment_window: options.payment_window,
        bids_token: BIDS_TOKEN.to_owned(),
        private_key: auth::PRIVATE_KEY_PEM.to_owned(),
    };
    let config = testing::config(
        db.config(),
        vhost.config(),
        gavel_test_support::redis_config(),
        &chain.url,
        &options,
    );
    let running = testing::serve(&config).await;
    TestApp {
        base: running.base.clone(),
        internal: running.internal.clone(),
        db,
        vhost,
        chain,
        client: reqwest::Client::new(),
        running,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn nonce(&self) -> String {
        let body: Value = self
            .client
            .get(self.url("/auth/nonce"))
            .send()
            .await
            .expect("served")
            .json()
            .await
            .expect("json");
        body["nonce"].as_str().expect("a nonce").to_owned()
    }

    /// An EIP-4361 message for `address`, as a browser wallet would present it.
    pub fn message(
        &self,
        address: &str,
        nonce: &str,
        statement: &str,
        chain_id: u64,
        domain: &str,
    ) -> String {
        let issued = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        format!(
            "{domain} wants you to sign in with your Ethereum account:\n{address}\n\n{statement}\n\nURI: https://{DOMAIN}/\nVersion: 1\nChain ID: {chain_id}\nNonce: {nonce}\nIssued At: {issued}"
        )
    }

    pub fn sign(signer: &PrivateKeySigner, message: &str) -> String {
        let signature = signer.sign_message_sync(message.as_bytes()).expect("signs");
        format!("0x{}", alloy::hex::encode(signature.as_bytes()))
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("served");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("served");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Signs `signer` in and returns the access token and the sign-in answer.
    pub async fn sign_in(&self, signer: &PrivateKeySigner) -> (String, Value) {
        let nonce = self.nonce().await;
        let message = self.message(
            &signer.address().to_checksum(None),
            &nonce,
            "Sign in to Gavel",
            31337,
            DOMAIN,
        );
        let (status, body) = self
            .post(
                "/auth/sign-in",
                None,
                json!({"message": message, "signature": Self::sign(signer, &message)}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        (
            body["access_token"].as_str().expect("a token").to_owned(),
            body,
        )
    }

    /// Links `wallet` to an account of its own, as a first sign-in would, unless it is linked;
    /// returns the account.
    pub async fn account_of(&self, wallet: &str) -> uuid::Uuid {
        let address = wallet.to_lowercase();
        let existing: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT account_id FROM wallets WHERE address = $1")
                .bind(&address)
                .fetch_optional(&self.db.pool)
                .await
                .expect("query");
        if let Some(account) = existing {
            return account;
        }
        let account = uuid::Uuid::new_v4();
        for sql in [
            "INSERT INTO accounts (id) VALUES ($1)",
            "INSERT INTO wallets (address, account_id) VALUES ($2, $1) ON CONFLICT DO NOTHING",
        ] {
            sqlx::query(sql)
                .bind(account)
                .bind(&address)
                .execute(&self.db.pool)
                .await
                .expect("linked");
        }
        // A concurrent first link may have won: its account is the wallet's.
        sqlx::query_scalar("SELECT account_id FROM wallets WHERE address = $1")
            .bind(&address)
            .fetch_one(&self.db.pool)
            .await
            .expect("linked")
    }

    /// Calls the internal holds API as `bids`. A `place` without an `account` is made for the
    /// account the wallet is linked to (linking it first when it is new).
    pub async fn hold(&self, operation: &str, key: &str, mut body: Value) -> (u16, Value, bool) {
        if operation == "place"
            && body.get("account").is_none()
            && let Some(wallet) = body["wallet"].as_str().filter(|wallet| wallet.len() == 42)
        {
            body["account"] = json!(self.account_of(wallet).await);
        }
        let response = self
            .client
            .post(format!("{}/internal/holds/{operation}", self.internal))
            .bearer_auth(BIDS_TOKEN)
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

    /// The sum of the samples of `name` on `/metrics` whose labels contain each of `labels`.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        gavel_test_support::metric(&self.running.admin, name, labels).await
    }

    /// `POST /internal/holds/releases` with `releases` as the batch.
    pub async fn releases(&self, releases: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/internal/holds/releases", self.internal))
            .bearer_auth(BIDS_TOKEN)
            .json(&json!({ "releases": releases }))
            .send()
            .await
            .expect("served");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn holds(&self, query: &str) -> Vec<Value> {
        let response = self
            .client
            .get(format!("{}/internal/holds?{query}", self.internal))
            .bearer_auth(BIDS_TOKEN)
            .send()
            .await
            .expect("served");
        response.json().await.expect("json")
    }

    pub async fn stop(self) {
        self.running.stop().await.expect("wallets stops cleanly");
    }
}

/// A fresh funded wallet on the test's chain.
pub async fn funded_wallet(chain: &DevChain, wei: &str) -> PrivateKeySigner {
    let signer = PrivateKeySigner::random();
    chain
        .set_balance(&signer.address().to_checksum(None), wei)
        .await;
    signer
}

/// Publishes `envelope` as `bids` would, once the wallets consumer listens.
pub async fn publish(app: &TestApp, envelope: &gavel_messaging::Envelope) {
    app.vhost.publish(envelope, "wallets.auction-events").await;
}

/// Waits until the wallets database answers `sql` (a boolean query) with true.
pub async fn wait_for_sql(app: &TestApp, what: &str, sql: &str) {
    let pool = app.db.pool.clone();
    gavel_test_support::wait_until_async(what, Duration::from_secs(20), || {
        let pool = pool.clone();
        let sql = sql.to_owned();
        async move {
            sqlx::query_scalar::<_, bool>(&sql)
                .fetch_one(&pool)
                .await
                .unwrap_or(false)
        }
    })
    .await;
}
