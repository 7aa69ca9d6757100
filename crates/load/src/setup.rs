//! Getting ready as users would: wallets funded on the dev chain, signed in with Sign-In with
//! Ethereum through the gateway, a seller's lots created through it and opened by the engine.
//!
//! The gateway limits sign-ins and new connections per client address (`edge.*`), as it should
//! for the public. On a loopback gateway the load generator gives every client an address of its
//! own in 127.0.0.0/8 (HTTP clients 127.2.x.y, WebSocket connections 127.1.x.y), so no address
//! comes near the limits, even in runs one after the other; a remote gateway sees one address,
//! whose limits the operator raises for the run (docs/benchmarks.md).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, ensure};
use futures_util::{StreamExt, TryStreamExt, stream};
use gavel_demo::{SignIn, expect_ok, wait_until_open};
use serde_json::{Value, json};

use crate::Args;

/// HTTP clients on a loopback gateway, each from an address of its own.
const HTTP_SOURCES: usize = 1000;
/// WebSocket source addresses on a loopback gateway.
const WS_SOURCES: usize = 16_000;
const DEADLINE: Duration = Duration::from_secs(30);
/// Wei every bidder gets: far more than any run can hold.
const BALANCE_WEI: &str = "0xd3c21bcecceda1000000"; // 10^24
pub const START_WEI: u128 = 1_000_000_000_000;
pub const INCREMENT_WEI: u128 = 1_000_000_000_000;

#[derive(Debug, Clone)]
pub struct Gateway {
    /// One HTTP client per source address (on loopback), or one.
    clients: Vec<reqwest::Client>,
    api: String,
    /// Where WebSocket connections go: the gateway, then any `--also-gateway` replicas.
    endpoints: Vec<Endpoint>,
    pub loopback: bool,
    sign_in: SignIn,
    rpc: String,
}

/// One gateway replica's WebSocket address.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub ws: url::Url,
    pub socket: SocketAddr,
}

impl Endpoint {
    async fn of(gateway: &url::Url) -> Result<Self> {
        let host = gateway.host_str().context("the gateway URL has no host")?;
        let port = gateway
            .port_or_known_default()
            .context("the gateway URL has no port")?;
        let socket = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        let mut ws = gateway.clone();
        let scheme = if gateway.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        ws.set_scheme(scheme)
            .map_err(|()| anyhow::anyhow!("cannot make a WebSocket URL"))?;
        ws.set_path("/ws/v1");
        Ok(Self { ws, socket })
    }
}

/// A signed-in bidder.
#[derive(Debug, Clone)]
pub struct Bidder {
    pub token: String,
}

impl Gateway {
    pub async fn new(args: &Args) -> Result<Self> {
        let mut endpoints = vec![Endpoint::of(&args.gateway).await?];
        for also in &args.also {
            endpoints.push(Endpoint::of(also).await?);
        }
        let loopback = endpoints
            .iter()
            .all(|endpoint| endpoint.socket.ip().is_loopback() && endpoint.socket.is_ipv4());
        let sources = if loopback {
            (0..HTTP_SOURCES)
                .map(|index| Some(loopback_address(2, index)))
                .collect()
        } else {
            vec![None]
        };
        let clients = sources
            .into_iter()
            .map(|source| {
                reqwest::Client::builder()
                    .timeout(DEADLINE)
                    .local_address(source)
                    .build()
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            clients,
            api: format!("{}/api", args.gateway.as_str().trim_end_matches('/')),
            endpoints,
            loopback,
            sign_in: SignIn {
                auth: format!("{}/api/auth", args.gateway.as_str().trim_end_matches('/')),
                domain: args.domain.clone(),
                uri: format!("http://{}", args.domain),
                chain_id: args.chain_id,
                statement: "Load test",
            },
            rpc: args.rpc.clone(),
        })
    }

    /// The gateway replica client number `index` connects to.
    pub fn endpoint(&self, index: usize) -> &Endpoint {
        &self.endpoints[index % self.endpoints.len()]
    }

    /// How many gateway replicas the connections are spread over.
    pub fn replicas(&self) -> usize {
        self.endpoints.len()
    }

    /// The source address for client number `index` (None: the system's choice).
    pub fn source(&self, index: usize) -> Option<IpAddr> {
        self.loopback
            .then(|| loopback_address(1, index % WS_SOURCES))
    }

    fn client(&self, index: usize) -> &reqwest::Client {
        &self.clients[index % self.clients.len()]
    }

    /// Signs in `count` fresh wallets, funded first, a few at a time.
    pub async fn bidders(&self, count: usize) -> Result<Vec<Bidder>> {
        stream::iter(0..count)
            .map(|index| async move {
                let key = PrivateKeySigner::random();
                self.fund(&key).await?;
                // A pooled connection the gateway closed as idle fails the request that reuses
                // it; a fresh nonce and a second try are what a browser's user would do.
                let mut attempt = 0;
                let token = loop {
                    attempt += 1;
                    match self.sign_in(index, &key).await {
                        Ok(token) => break token,
                        Err(error) if attempt >= 3 => return Err(error),
                        Err(_) => continue,
                    }
                };
                Ok::<_, anyhow::Error>(Bidder { token })
            })
            .buffered(16)
            .try_collect()
            .await
    }

    async fn fund(&self, key: &PrivateKeySigner) -> Result<()> {
        let answer: Value = self.clients[0]
            .post(&self.rpc)
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "anvil_setBalance",
                "params": [key.address().to_checksum(None), BALANCE_WEI]}),
            )
            .send()
            .await
            .context("the dev chain")?
            .json()
            .await?;
        ensure!(
            answer.get("error").is_none(),
            "anvil_setBalance failed: {answer}"
        );
        Ok(())
    }

    /// Sign-In with Ethereum (EIP-4361), exactly as a browser wallet does.
    pub async fn sign_in(&self, index: usize, key: &PrivateKeySigner) -> Result<String> {
        self.sign_in.token(self.client(index), key).await
    }

    /// Creates `count` lots open for an hour, and waits until the engine has opened them all.
    /// Creates `count` lots open now, for an hour; with `early`, every second lot (the even
    /// ones) ends instead `early` + 3 s × its rank after now, so that closes happen during the run.
    pub async fn lots(&self, count: usize, early: Option<u64>) -> Result<Vec<String>> {
        let seller = PrivateKeySigner::random();
        let token = self.sign_in(0, &seller).await.context("the seller")?;
        let now = chrono::Utc::now();
        let ids: Vec<String> = stream::iter(0..count)
            .map(|index| {
                let token = token.clone();
                async move {
                    let ends_at = match early {
                        Some(secs) if index % 2 == 0 => {
                            now + chrono::Duration::seconds(i64::try_from(
                                secs + 3 * (index as u64 / 2),
                            )?)
                        }
                        _ => now + chrono::Duration::hours(1),
                    };
                    let body = json!({
                        "title": format!("Load test lot {index}"),
                        "description": "Made by gavel-load.",
                        "asset": "ETH",
                        "start_price": START_WEI.to_string(),
                        "increment": {"kind": "absolute", "wei": INCREMENT_WEI.to_string()},
                        "starts_at": now,
                        "ends_at": ends_at,
                    });
                    let lot = expect_ok(
                        self.client(index)
                            .post(format!("{}/lots", self.api))
                            .bearer_auth(&token)
                            .json(&body)
                            .send()
                            .await?,
                    )
                    .await
                    .context("creating a lot")?;
                    lot["id"]
                        .as_str()
                        .map(str::to_owned)
                        .context("the new lot has no id")
                }
            })
            .buffered(16)
            .try_collect()
            .await?;
        let deadline = Instant::now() + DEADLINE;
        for (index, id) in ids.iter().enumerate() {
            let url = format!("{}/auction/lots/{id}", self.api);
            wait_until_open(self.client(index), &url, deadline).await?;
        }
        Ok(ids)
    }
}

impl Gateway {
    /// Each lot's sequence as the engine has it now: what every watcher must reach once bidding
    /// has ended (it counts closes and other events no client's answer reported).
    pub async fn sequences(&self, lots: &[String]) -> Result<HashMap<String, i64>> {
        stream::iter(lots.iter().enumerate())
            .map(|(index, id)| async move {
                let url = format!("{}/auction/lots/{id}", self.api);
                // Read just after the load, while bids still drains its queue: a refused or
                // timed-out read is asked again, as a browser's user would, a few times.
                let mut attempt = 0;
                let state = loop {
                    attempt += 1;
                    match self.client(index).get(&url).send().await {
                        Ok(response) => match expect_ok(response).await {
                            Ok(state) => break state,
                            Err(error) if attempt >= 5 => return Err(error),
                            Err(_) => {}
                        },
                        Err(error) if attempt >= 5 => return Err(error.into()),
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                };
                let sequence = state["sequence"]
                    .as_i64()
                    .with_context(|| format!("{url} has no sequence: {state}"))?;
                Ok::<_, anyhow::Error>((id.clone(), sequence))
            })
            .buffered(16)
            .try_collect()
            .await
    }
}

/// Address `index` of 127.`block`.0.0/16, never ending in 0 or 255: 127.block.(i/250).(i%250+1).
fn loopback_address(block: u8, index: usize) -> IpAddr {
    let third = u8::try_from(index / 250 % 256).unwrap_or(0);
    let fourth = u8::try_from(index % 250 + 1).unwrap_or(1);
    IpAddr::V4(Ipv4Addr::new(127, block, third, fourth))
}

/// The resident memory of a process, in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The gateway's process on this machine, by its binary's name, when not given.
pub fn find_gateway() -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let program = cmdline.split(|byte| *byte == 0).next()?;
        program.ends_with(b"gavel-gateway-ws").then_some(pid)
    })
}
