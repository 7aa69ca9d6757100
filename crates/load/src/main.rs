//! `gavel-load`: drives a running Gavel through its gateway the way browsers do, and measures it.
//!
//! Bidders are fresh wallets, funded on the dev chain (`anvil_setBalance`) and signed in with
//! Sign-In with Ethereum; every bidder and watcher is a WebSocket connection to `gateway-ws`.
//! Bids are sent **open loop**: bid *i* is due at `start + i / rate` whatever happened to the
//! bids before it, and its acknowledgement latency counts from that due time, so a slow server
//! cannot hide its queueing (no coordinated omission). Watchers time each `bid_accepted` event
//! from its `occurred_at` (stamped by `bids` when it commits) to its arrival.
//!
//! ```text
//! gavel-load SCENARIO [--gateway URL] [--rpc URL] [--domain HOST:PORT] [--rate N]
//!     [--duration SECS] [--lots N] [--bidders N] [--watchers N] [--gateway-pid PID] [--out DIR]
//!     [--also-gateway URL]...   (more gateway replicas: WebSocket connections are spread over all)
//!     [--acks FILE] [--reconnect] [--lots-end SECS]
//! ```
//! Scenarios: `hot`, `many`, `fanout`, `idle`, `ramp`, `smoke` (docs/benchmarks.md). The report
//! goes to stdout as a Markdown table and to `DIR/SCENARIO.json` (default `target/load`), with
//! `DIR/SCENARIO.png`, latency over time. Exits 1 when the run saw errors (lost answers, lost or
//! out-of-order events, failed connections).

mod connection;
mod cpu;
mod plot;
mod report;
mod scenario;
mod setup;

use anyhow::{Context, Result, bail};

use crate::scenario::{Plan, Scenario};

#[derive(Debug, Clone)]
pub struct Args {
    pub scenario: Scenario,
    pub gateway: url::Url,
    /// Further gateway replicas (`--also-gateway`, repeatable): connection `i` goes to gateway
    /// `i mod n`; REST (set-up, sign-in) uses the first.
    pub also: Vec<url::Url>,
    pub rpc: String,
    pub domain: String,
    pub chain_id: u64,
    pub gateway_pid: Option<u32>,
    pub out: std::path::PathBuf,
    /// Where to write every answer as JSON lines (for `gavel-admin check`).
    pub acks: Option<std::path::PathBuf>,
    /// Connect again when a connection is lost, resuming from the last event (as browsers do).
    pub reconnect: bool,
    /// Every second lot ends this many seconds after it is made (staggered 3 s apart), so that
    /// lots close during the run; the others last an hour.
    pub lots_end: Option<u64>,
    pub plan: Plan,
}

fn usage() -> &'static str {
    "usage: gavel-load hot|many|fanout|idle|ramp|smoke [--gateway URL] [--rpc URL] [--domain HOST:PORT] \
     [--chain-id N] [--rate N] [--duration SECS] [--lots N] [--bidders N] [--watchers N] \
     [--gateway-pid PID] [--out DIR] [--acks FILE] [--reconnect] [--lots-end SECS] [--also-gateway URL]..."
}

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let scenario: Scenario = args.next().context(usage())?.parse()?;
    let mut plan = scenario.defaults();
    let mut gateway = url::Url::parse("http://127.0.0.1:8080")?;
    let mut rpc = "http://127.0.0.1:8545".to_owned();
    let mut domain = None;
    let mut chain_id = 31337;
    let mut gateway_pid = None;
    let mut out = std::path::PathBuf::from("target/load");
    let mut acks = None;
    let mut reconnect = false;
    let mut lots_end = None;
    let mut also = Vec::new();
    while let Some(flag) = args.next() {
        if flag == "--reconnect" {
            reconnect = true;
            continue;
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value\n{}", usage()))?;
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("{flag} takes a whole number, not {value:?}"))
        };
        match flag.as_str() {
            "--gateway" => gateway = url::Url::parse(&value).context("--gateway")?,
            "--also-gateway" => also.push(url::Url::parse(&value).context("--also-gateway")?),
            "--rpc" => rpc = value,
            "--domain" => domain = Some(value),
            "--chain-id" => chain_id = number()?,
            "--rate" => plan.rate = number()? as f64,
            "--duration" => plan.duration = std::time::Duration::from_secs(number()?),
            "--lots" => plan.lots = usize::try_from(number()?)?,
            "--bidders" => plan.bidders = usize::try_from(number()?)?,
            "--watchers" => plan.watchers = usize::try_from(number()?)?,
            "--gateway-pid" => gateway_pid = Some(u32::try_from(number()?)?),
            "--out" => out = value.into(),
            "--acks" => acks = Some(value.into()),
            "--lots-end" => lots_end = Some(number()?.max(60)),
            other => bail!("unknown option {other}\n{}", usage()),
        }
    }
    if plan.lots == 0 && scenario != Scenario::Idle {
        bail!("--lots must be at least 1");
    }
    if plan.bidders == 0 && plan.rate > 0.0 {
        bail!("bidding needs at least one bidder");
    }
    let domain = domain.unwrap_or_else(|| "localhost:8080".to_owned());
    Ok(Args {
        scenario,
        gateway,
        also,
        rpc,
        domain,
        chain_id,
        gateway_pid,
        out,
        acks,
        reconnect,
        lots_end,
        plan,
    })
}

#[tokio::main]
async fn main() {
    let outcome = match args() {
        Ok(args) => scenario::run(args).await,
        Err(error) => {
            eprintln!("{error:#}");
            std::process::exit(2);
        }
    };
    match outcome {
        Ok(clean) if clean => {}
        Ok(_) => {
            eprintln!("gavel-load: the run saw errors (see the report)");
            std::process::exit(1);
        }
        Err(error) => {
            eprintln!("gavel-load FAILED: {error:#}");
            std::process::exit(1);
        }
    }
}
