//! What Gavel's own clients (`gavel-demo`, `gavel-smoke`, `gavel-load`) share: signing in with
//! Sign-In with Ethereum exactly as a browser wallet does.

pub mod pictures;

use std::time::{Duration, Instant};

use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Where and how to sign in: `auth` is the base of `/nonce` and `/sign-in` (`wallets`' `/auth`,
/// or the gateway's `/api/auth`); `domain`, `uri` and `chain_id` must be what `wallets` expects.
#[derive(Debug, Clone)]
pub struct SignIn {
    pub auth: String,
    pub domain: String,
    pub uri: String,
    pub chain_id: u64,
    /// The message's statement, shown by a wallet.
    pub statement: &'static str,
}

impl SignIn {
    /// Signs `key` in (EIP-4361); returns `wallets`' answer (`access_token`, `account_id`, …).
    pub async fn sign_in(&self, http: &reqwest::Client, key: &PrivateKeySigner) -> Result<Value> {
        let nonce = expect_ok(http.get(format!("{}/nonce", self.auth)).send().await?)
            .await
            .context("a nonce")?;
        let message = format!(
            "{domain} wants you to sign in with your Ethereum account:\n{address}\n\n{statement}\n\nURI: {uri}\nVersion: 1\nChain ID: {chain}\nNonce: {nonce}\nIssued At: {issued}",
            domain = self.domain,
            address = key.address().to_checksum(None),
            statement = self.statement,
            uri = self.uri,
            chain = self.chain_id,
            nonce = nonce["nonce"]
                .as_str()
                .context("the nonce answer has no nonce")?,
            issued = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        let signature = key.sign_message_sync(message.as_bytes())?;
        let body = json!({"message": message,
            "signature": format!("0x{}", alloy::hex::encode(signature.as_bytes()))});
        expect_ok(
            http.post(format!("{}/sign-in", self.auth))
                .json(&body)
                .send()
                .await?,
        )
        .await
        .context("sign-in")
    }

    /// The access token of `key`.
    pub async fn token(&self, http: &reqwest::Client, key: &PrivateKeySigner) -> Result<String> {
        let answer = self.sign_in(http, key).await?;
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("the sign-in answer has no access_token")
    }
}

/// Waits until the engine's snapshot of a lot (`url`, a `bids` `/lots/{id}` through whatever
/// route) says it is open: the engine hears of new lots through RabbitMQ.
pub async fn wait_until_open(http: &reqwest::Client, url: &str, deadline: Instant) -> Result<()> {
    loop {
        let state: Value = http
            .get(url)
            .send()
            .await?
            .json()
            .await
            .unwrap_or(Value::Null);
        if state["status"] == "open" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the engine did not open {url} in time: is RabbitMQ flowing? ({state})");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JSON body of a successful response, or an error with the status and body.
pub async fn expect_ok(response: reqwest::Response) -> Result<Value> {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}
