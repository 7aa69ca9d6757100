//! `gavel-smoke`: is this Gavel up and doing its job? Run against any public base URL — the local
//! run, the compose stack, a deployed ingress — it checks, as a browser would:
//!
//! 1. `/api/config` answers, naming the WebSocket path;
//! 2. the catalogue (`/api/lots`) answers;
//! 3. a fresh wallet signs in with Sign-In with Ethereum and gets a token;
//! 4. a WebSocket connection is welcomed, authenticated, and a subscription gets a snapshot (of
//!    the first lot of the catalogue; with an empty catalogue, a clear `lot_not_found`);
//! 5. with `--admin URL` (repeatable), each service's `/healthz` and `/readyz`.
//!
//! `gavel-smoke http://localhost:8080 [--domain localhost:8080] [--admin http://127.0.0.1:9081]…`
//! Exits 1 at the first failed check, saying which.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use gavel_demo::SignIn;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const DEADLINE: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() {
    if let Err(error) = run().await {
        eprintln!("smoke test FAILED: {error:#}");
        std::process::exit(1);
    }
    println!("smoke test passed");
}

struct Args {
    base: url::Url,
    domain: String,
    admins: Vec<String>,
    chain_id: u64,
}

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut base = None;
    let mut domain = None;
    let mut admins = Vec::new();
    let mut chain_id = 31337;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--domain" => domain = Some(args.next().context("--domain needs a value")?),
            "--admin" => admins.push(args.next().context("--admin needs a URL")?),
            "--chain-id" => chain_id = args.next().context("--chain-id needs a value")?.parse()?,
            _ if base.is_none() => base = Some(url::Url::parse(&arg).context("the base URL")?),
            other => bail!("unexpected argument {other}"),
        }
    }
    let base = base.context(
        "usage: gavel-smoke BASE_URL [--domain HOST[:PORT]] [--chain-id N] [--admin URL]…",
    )?;
    let domain = domain.unwrap_or_else(|| {
        let host = base.host_str().unwrap_or_default();
        match base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    });
    Ok(Args {
        base,
        domain,
        admins,
        chain_id,
    })
}

fn check(name: &str) {
    println!("ok   {name}");
}

async fn run() -> Result<()> {
    let args = args()?;
    let http = reqwest::Client::builder().timeout(DEADLINE).build()?;
    let api = |path: &str| format!("{}{path}", args.base.as_str().trim_end_matches('/'));

    let config: Value = get_json(&http, &api("/api/config"))
        .await
        .context("/api/config")?;
    let ws_path = config["ws_path"]
        .as_str()
        .context("/api/config names no ws_path")?;
    check("/api/config");

    let lots: Value = get_json(&http, &api("/api/lots?limit=5"))
        .await
        .context("the catalogue")?;
    let first_lot = lots["items"]
        .as_array()
        .context("the catalogue has no items array")?
        .first()
        .and_then(|lot| lot["id"].as_str().map(str::to_owned));
    check("the catalogue");

    let token = sign_in(&http, &args, &api).await.context("sign-in")?;
    check("Sign-In with Ethereum");

    let mut ws_url = args.base.clone();
    let scheme = if args.base.scheme() == "https" {
        "wss"
    } else {
        "ws"
    };
    ws_url
        .set_scheme(scheme)
        .map_err(|()| anyhow::anyhow!("cannot make a WebSocket URL"))?;
    ws_url.set_path(ws_path);
    let (mut ws, _) =
        tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(ws_url.as_str()))
            .await
            .context("the WebSocket handshake timed out")?
            .context("the WebSocket handshake")?;
    expect_type(&mut ws, "welcome").await?;
    ws.send(Message::text(
        json!({"type": "auth", "token": token}).to_string(),
    ))
    .await?;
    expect_type(&mut ws, "authenticated").await?;
    let lot = first_lot
        .clone()
        .unwrap_or_else(|| "01a2f000-0000-7000-8000-000000000000".to_owned());
    ws.send(Message::text(
        json!({"type": "subscribe", "lot_id": lot}).to_string(),
    ))
    .await?;
    match first_lot {
        Some(_) => {
            expect_type(&mut ws, "snapshot").await?;
            check("a WebSocket subscription gets its snapshot");
        }
        None => {
            let error = expect_type(&mut ws, "error").await?;
            ensure!(error["code"] == "lot_not_found", "unexpected error {error}");
            check("a WebSocket subscription to an unknown lot is refused (the catalogue is empty)");
        }
    }
    let _ = ws.close(None).await;

    for admin in &args.admins {
        for path in ["/healthz", "/readyz"] {
            let url = format!("{}{path}", admin.trim_end_matches('/'));
            let status = http
                .get(&url)
                .send()
                .await
                .with_context(|| url.clone())?
                .status();
            ensure!(status.is_success(), "{url} answered {status}");
        }
        check(&format!("{admin} healthy and ready"));
    }
    Ok(())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value> {
    let response = http.get(url).send().await?;
    let status = response.status();
    ensure!(status.is_success(), "{url} answered {status}");
    Ok(response.json().await?)
}

async fn sign_in(
    http: &reqwest::Client,
    args: &Args,
    api: &dyn Fn(&str) -> String,
) -> Result<String> {
    let sign_in = SignIn {
        auth: api("/api/auth"),
        domain: args.domain.clone(),
        uri: args.base.origin().ascii_serialization(),
        chain_id: args.chain_id,
        statement: "Smoke test",
    };
    sign_in.token(http, &PrivateKeySigner::random()).await
}

async fn expect_type<S>(ws: &mut S, kind: &str) -> Result<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .with_context(|| format!("no `{kind}` message in time"))?
            .context("the WebSocket closed")??;
        let Message::Text(text) = frame else { continue };
        let message: Value = serde_json::from_str(text.as_str())?;
        if message["type"] == kind {
            return Ok(message);
        }
        if message["type"] == "error" && kind != "error" {
            bail!("expected `{kind}`, got {message}");
        }
    }
}
