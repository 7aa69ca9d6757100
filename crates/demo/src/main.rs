//! `gavel-demo`: seeds a locally running Gavel (`bash scripts/up`) with demo lots, photos and a first
//! bid, going through the same APIs a browser would: Sign-In with Ethereum against `wallets`
//! with the dev chain's well-known test keys, lots and photos through `lots`, a bid through
//! `bids` (held by `wallets` against the chain balance). Running it again adds nothing.
//!
//! `gavel-demo token` prints an access token of the demo bidder instead (for tools).
//!
//! `gavel-demo keep [--open N] [--every SECONDS] [--once]` keeps the demo alive: every round (20 s)
//! it puts up new lots, each with a drawn photo and an opening bid, until `N` (4) of the demo
//! seller's lots are open and not about to end, so a newcomer never finds only dead auctions.
//! `--once` does one round and exits (the local check runs it). SIGTERM or Ctrl-C ends it.
//!
//! The keys are anvil's public test keys (mnemonic "test test … junk"): never use them elsewhere.

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use gavel_demo::pictures::{Palette, Shape, picture};
use gavel_demo::{SignIn, expect_ok, wait_until_open};
use serde_json::{Value, json};

const SELLER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const BIDDER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// The demo catalogue: what the seeder and the keeper put up, in turn.
struct Item {
    title: &'static str,
    description: &'static str,
    shape: Shape,
    palette: Palette,
}

const ITEMS: &[Item] = &[
    Item {
        title: "Brass desk lamp, 1920s",
        description: "A working brass lamp with its original green glass shade.",
        shape: Shape::Tall,
        palette: Palette {
            backdrop: [222, 210, 190],
            object: [190, 150, 60],
            accent: [60, 110, 70],
        },
    },
    Item {
        title: "Mechanical chronograph",
        description: "Hand-wound, serviced last year, with box and papers.",
        shape: Shape::Disc,
        palette: Palette {
            backdrop: [205, 210, 220],
            object: [40, 60, 110],
            accent: [200, 190, 170],
        },
    },
    Item {
        title: "First-edition novel",
        description: "Signed by the author; small tear on the dust jacket.",
        shape: Shape::Block,
        palette: Palette {
            backdrop: [228, 218, 198],
            object: [150, 40, 40],
            accent: [215, 185, 120],
        },
    },
    Item {
        title: "Celadon vase",
        description: "Song-style crackle glaze, 31 cm, no chips or repairs.",
        shape: Shape::Tall,
        palette: Palette {
            backdrop: [214, 222, 220],
            object: [130, 175, 150],
            accent: [80, 120, 100],
        },
    },
    Item {
        title: "Enamel wall clock",
        description: "Railway station clock, electric movement replaced, keeps time.",
        shape: Shape::Disc,
        palette: Palette {
            backdrop: [232, 226, 214],
            object: [235, 235, 225],
            accent: [30, 30, 30],
        },
    },
    Item {
        title: "Rangefinder camera",
        description: "1950s 35 mm rangefinder with a 50 mm f/2 lens; shutter tested.",
        shape: Shape::Block,
        palette: Palette {
            backdrop: [200, 205, 210],
            object: [45, 45, 50],
            accent: [190, 190, 195],
        },
    },
    Item {
        title: "Copper kettle",
        description: "Hand-hammered, tinned inside, from a farmhouse in Normandy.",
        shape: Shape::Tall,
        palette: Palette {
            backdrop: [225, 214, 200],
            object: [184, 100, 60],
            accent: [110, 60, 35],
        },
    },
    Item {
        title: "Celestial globe",
        description: "Table globe of the night sky on a turned walnut stand.",
        shape: Shape::Disc,
        palette: Palette {
            backdrop: [198, 204, 216],
            object: [30, 50, 90],
            accent: [200, 170, 90],
        },
    },
];

struct Urls {
    wallets: String,
    lots: String,
    bids: String,
    domain: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let env =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let urls = Urls {
        wallets: env("GAVEL_DEMO_WALLETS", "http://127.0.0.1:8083"),
        lots: env("GAVEL_DEMO_LOTS", "http://127.0.0.1:8081"),
        bids: env("GAVEL_DEMO_BIDS", "http://127.0.0.1:8082"),
        domain: env("GAVEL_DEMO_DOMAIN", "localhost:8080"),
    };
    // Every request has a deadline: a hung service must not stall the keeper for good.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let seller: PrivateKeySigner = SELLER_KEY.parse()?;
    let bidder: PrivateKeySigner = BIDDER_KEY.parse()?;
    // `gavel-demo token`: an access token of the demo bidder, for tools (the API fuzzing run).
    if std::env::args().nth(1).as_deref() == Some("token") {
        let (token, _) = sign_in(&http, &urls, &bidder)
            .await
            .context("signing the bidder in")?;
        println!("{token}");
        return Ok(());
    }
    if std::env::args().nth(1).as_deref() == Some("keep") {
        let options = KeepOptions::from_args(std::env::args().skip(2))?;
        return keep(&http, &urls, &seller, &bidder, options).await;
    }
    let (seller_token, seller_account) = sign_in(&http, &urls, &seller)
        .await
        .context("signing the seller in")?;
    let (bidder_token, _) = sign_in(&http, &urls, &bidder)
        .await
        .context("signing the bidder in")?;

    let existing: Value = http
        .get(format!("{}/lots?seller={seller_account}", urls.lots))
        .send()
        .await?
        .json()
        .await?;
    if existing["items"]
        .as_array()
        .is_some_and(|items| !items.is_empty())
    {
        println!("demo data already present");
        print_accounts(&seller, &bidder);
        return Ok(());
    }

    let mut first = None;
    for item in &ITEMS[..3] {
        let id = put_up(
            &http,
            &urls,
            &seller_token,
            item,
            chrono::Duration::hours(2),
        )
        .await?;
        println!("lot  {}: {}/lots/{id}", item.title, urls.lots);
        first.get_or_insert(id);
    }

    // The engine hears of the lots through RabbitMQ; wait for the first, then bid on it.
    let lot = first.context("no lot was created")?;
    wait_until_open(
        &http,
        &format!("{}/lots/{lot}", urls.bids),
        Instant::now() + Duration::from_secs(30),
    )
    .await?;
    let bid: Value = expect_ok(
        http.post(format!("{}/lots/{lot}/bids", urls.bids))
            .bearer_auth(&bidder_token)
            .header("idempotency-key", format!("demo-{lot}"))
            .json(&json!({"amount": "10000000000000000", "max_amount": "30000000000000000"}))
            .send()
            .await?,
    )
    .await?;
    println!(
        "bid  {} wei on the first lot: {}",
        bid["price"], bid["result"]
    );
    print_accounts(&seller, &bidder);
    Ok(())
}

fn print_accounts(seller: &PrivateKeySigner, bidder: &PrivateKeySigner) {
    println!(
        "demo seller wallet {} (anvil test key #0)",
        seller.address()
    );
    println!(
        "demo bidder wallet {} (anvil test key #1)",
        bidder.address()
    );
}

/// Signs in with EIP-4361 exactly as a browser wallet would; returns the token and account id.
async fn sign_in(
    http: &reqwest::Client,
    urls: &Urls,
    key: &PrivateKeySigner,
) -> Result<(String, String)> {
    let sign_in = SignIn {
        auth: format!("{}/auth", urls.wallets),
        domain: urls.domain.clone(),
        uri: format!("http://{}", urls.domain),
        chain_id: 31337,
        statement: "Sign in to Gavel",
    };
    let answer = sign_in.sign_in(http, key).await?;
    Ok((
        answer["access_token"]
            .as_str()
            .context("a token")?
            .to_owned(),
        answer["account_id"]
            .as_str()
            .context("an account")?
            .to_owned(),
    ))
}

/// Puts `item` up for `lasting` from now, with its photo; returns the lot's id.
async fn put_up(
    http: &reqwest::Client,
    urls: &Urls,
    token: &str,
    item: &Item,
    lasting: chrono::Duration,
) -> Result<String> {
    let now = chrono::Utc::now();
    let body = json!({
        "title": item.title, "description": item.description, "asset": "ETH",
        "start_price": "10000000000000000", "increment": {"kind": "absolute", "wei": "5000000000000000"},
        "reserve": "50000000000000000", "buy_now": "2000000000000000000",
        "starts_at": now, "ends_at": now + lasting,
        "snipe_window_secs": 120, "extension_secs": 120,
    });
    let lot: Value = expect_ok(
        http.post(format!("{}/lots", urls.lots))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?,
    )
    .await?;
    let id = lot["id"].as_str().context("a lot id")?.to_owned();
    let part = reqwest::multipart::Part::bytes(picture(480, 360, item.shape, item.palette))
        .file_name("photo.png")
        .mime_str("image/png")?;
    let form = reqwest::multipart::Form::new().part("photo", part);
    expect_ok(
        http.post(format!("{}/lots/{id}/photos", urls.lots))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await?,
    )
    .await?;
    Ok(id)
}

#[derive(Debug, Clone, Copy)]
struct KeepOptions {
    open: usize,
    every: Duration,
    once: bool,
}

impl KeepOptions {
    fn from_args(args: impl Iterator<Item = String>) -> Result<Self> {
        let mut options = Self {
            open: 4,
            every: Duration::from_secs(20),
            once: false,
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--once" => options.once = true,
                "--open" => {
                    options.open = args
                        .next()
                        .context("--open takes a number of lots")?
                        .parse()
                        .context("--open takes a number of lots")?;
                }
                "--every" => {
                    let seconds: u64 = args
                        .next()
                        .context("--every takes seconds")?
                        .parse()
                        .context("--every takes seconds")?;
                    options.every = Duration::from_secs(seconds.max(1));
                }
                other => anyhow::bail!(
                    "unknown option {other}: gavel-demo keep [--open N] [--every SECONDS] [--once]"
                ),
            }
        }
        Ok(options)
    }
}

/// How many lots to put up when `live` of the demo seller's lots are open and not about to end.
fn missing(live: usize, wanted: usize) -> usize {
    wanted.saturating_sub(live)
}

/// The next `count` items to put up: those not already open first (in catalogue order, starting
/// after `round` turns), so the catalogue does not show the same lamp twice.
fn next_items(open_titles: &[&str], count: usize, round: usize) -> Vec<&'static Item> {
    let start = round % ITEMS.len();
    let in_turn = ITEMS[start..].iter().chain(&ITEMS[..start]);
    let (fresh, shown): (Vec<&Item>, Vec<&Item>) =
        in_turn.partition(|item| !open_titles.contains(&item.title));
    fresh.into_iter().chain(shown).cycle().take(count).collect()
}

/// Keeps `options.open` demo lots open, rolling new ones in as others end. A failed round (a
/// service restarting, a slow broker) is logged and tried again next round; with `--once` it
/// fails the run, so the local check notices.
async fn keep(
    http: &reqwest::Client,
    urls: &Urls,
    seller: &PrivateKeySigner,
    bidder: &PrivateKeySigner,
    options: KeepOptions,
) -> Result<()> {
    let mut round: usize = 0;
    let mut stop = std::pin::pin!(shutdown());
    loop {
        match keep_round(http, urls, seller, bidder, options.open, round).await {
            Ok(open) => println!("keep: {open} demo lots open"),
            Err(error) if options.once => return Err(error),
            Err(error) => eprintln!(
                "keep: this round failed, trying again in {} s: {error:#}",
                options.every.as_secs()
            ),
        }
        if options.once {
            return Ok(());
        }
        round += 1;
        tokio::select! {
            () = tokio::time::sleep(options.every) => {}
            () = &mut stop => return Ok(()),
        }
    }
}

/// One round: tops the demo seller up to `wanted` lots open or coming up, not about to end.
/// Answers how many there are now.
async fn keep_round(
    http: &reqwest::Client,
    urls: &Urls,
    seller: &PrivateKeySigner,
    bidder: &PrivateKeySigner,
    wanted: usize,
    round: usize,
) -> Result<usize> {
    // Sign in each round: rounds are far apart, and a token outlives none of them by much.
    let (seller_token, seller_account) = sign_in(http, urls, seller)
        .await
        .context("signing the seller in")?;
    // Newest first, every status: a lot just put up is `scheduled` until bids opens it.
    let recent: Value = expect_ok(
        http.get(format!(
            "{}/lots?seller={seller_account}&limit=100",
            urls.lots
        ))
        .send()
        .await?,
    )
    .await?;
    let soon = chrono::Utc::now() + chrono::Duration::minutes(2);
    let items: Vec<Value> = recent["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|lot| matches!(lot["status"].as_str(), Some("open" | "scheduled")))
        .collect();
    let live = items
        .iter()
        .filter(|lot| {
            lot["summary"]["ends_at"]
                .as_str()
                .and_then(|end| chrono::DateTime::parse_from_rfc3339(end).ok())
                .is_some_and(|end| end > soon)
        })
        .count();
    let titles: Vec<&str> = items
        .iter()
        .filter_map(|lot| lot["title"].as_str())
        .collect();
    let add = missing(live, wanted);
    if add > 0 {
        let (bidder_token, _) = sign_in(http, urls, bidder)
            .await
            .context("signing the bidder in")?;
        for (index, item) in next_items(&titles, add, round).into_iter().enumerate() {
            // Staggered: 10, 16, 22, 28 minutes, so the lots end one after another.
            let lasting = chrono::Duration::minutes(10 + 6 * (index % 4) as i64);
            let id = put_up(http, urls, &seller_token, item, lasting).await?;
            opening_bid(http, urls, &bidder_token, &id).await?;
            println!(
                "keep: put up {} for {} minutes: {}/lots/{id}",
                item.title,
                lasting.num_minutes(),
                urls.lots
            );
        }
    }
    Ok(live + add)
}

/// The demo bidder opens the bidding (with a small automatic maximum), so the lot shows a bid.
async fn opening_bid(http: &reqwest::Client, urls: &Urls, token: &str, lot: &str) -> Result<()> {
    wait_until_open(
        http,
        &format!("{}/lots/{lot}", urls.bids),
        Instant::now() + Duration::from_secs(30),
    )
    .await?;
    expect_ok(
        http.post(format!("{}/lots/{lot}/bids", urls.bids))
            .bearer_auth(token)
            .header("idempotency-key", format!("demo-{lot}"))
            .json(&json!({"amount": "10000000000000000", "max_amount": "30000000000000000"}))
            .send()
            .await?,
    )
    .await?;
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keeper_tops_up_to_the_wanted_number_and_never_beyond() {
        assert_eq!(missing(0, 4), 4);
        assert_eq!(missing(3, 4), 1);
        assert_eq!(missing(4, 4), 0);
        assert_eq!(missing(9, 4), 0);
    }

    #[test]
    fn new_lots_are_items_not_on_show_yet() {
        let titles = |items: Vec<&Item>| items.iter().map(|item| item.title).collect::<Vec<_>>();
        let open = [ITEMS[0].title, ITEMS[1].title];
        let next = titles(next_items(&open, 3, 0));
        assert_eq!(next, [ITEMS[2].title, ITEMS[3].title, ITEMS[4].title]);
        assert_eq!(
            titles(next_items(&[], 2, 5)),
            [ITEMS[5].title, ITEMS[6].title]
        );
        // More wanted than the catalogue holds: repeats, the ones on show last.
        let all: Vec<&str> = ITEMS.iter().map(|item| item.title).collect();
        assert_eq!(next_items(&all, ITEMS.len() + 1, 0).len(), ITEMS.len() + 1);
    }

    #[test]
    fn options_are_read_and_unknown_ones_refused() {
        let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
        let options =
            KeepOptions::from_args(args(&["--open", "6", "--every", "5", "--once"]).into_iter())
                .expect("valid");
        assert_eq!(
            (options.open, options.every, options.once),
            (6, Duration::from_secs(5), true)
        );
        assert!(KeepOptions::from_args(args(&["--forever"]).into_iter()).is_err());
        assert!(KeepOptions::from_args(args(&["--open"]).into_iter()).is_err());
    }
}
