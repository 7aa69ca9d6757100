//! `gavel-demo`: seeds a locally running Gavel (`bash scripts/up`) with demo lots, photos and a first
//! bid, going through the same APIs a browser would: Sign-In with Ethereum against `wallets`
//! with the dev chain's well-known test keys, lots and photos through `lots`, a bid through
//! `bids` (held by `wallets` against the chain balance). Running it again adds nothing.
//!
//! `gavel-demo token` prints an access token of the demo bidder instead (for tools).
//!
//! The keys are anvil's public test keys (mnemonic "test test … junk"): never use them elsewhere.

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result};
use gavel_demo::{SignIn, expect_ok, wait_until_open};
use serde_json::{Value, json};

const SELLER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
const BIDDER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

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
    let http = reqwest::Client::new();
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

    let demo = [
        (
            "Brass desk lamp, 1920s",
            "A working brass lamp with its original green glass shade.",
            [200, 160, 60],
        ),
        (
            "Mechanical chronograph",
            "Hand-wound, serviced last year, with box and papers.",
            [40, 60, 110],
        ),
        (
            "First-edition novel",
            "Signed by the author; small tear on the dust jacket.",
            [150, 40, 40],
        ),
    ];
    let mut first = None;
    for (title, description, colour) in demo {
        let now = chrono::Utc::now();
        let body = json!({
            "title": title, "description": description, "asset": "ETH",
            "start_price": "10000000000000000", "increment": {"kind": "absolute", "wei": "5000000000000000"},
            "reserve": "50000000000000000", "buy_now": "2000000000000000000",
            "starts_at": now, "ends_at": now + chrono::Duration::hours(2),
            "snipe_window_secs": 120, "extension_secs": 120,
        });
        let lot: Value = expect_ok(
            http.post(format!("{}/lots", urls.lots))
                .bearer_auth(&seller_token)
                .json(&body)
                .send()
                .await?,
        )
        .await?;
        let id = lot["id"].as_str().context("a lot id")?.to_owned();
        let part = reqwest::multipart::Part::bytes(png(320, 240, colour))
            .file_name("photo.png")
            .mime_str("image/png")?;
        let form = reqwest::multipart::Form::new().part("photo", part);
        expect_ok(
            http.post(format!("{}/lots/{id}/photos", urls.lots))
                .bearer_auth(&seller_token)
                .multipart(form)
                .send()
                .await?,
        )
        .await?;
        println!("lot  {title}: {}/lots/{id}", urls.lots);
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

/// A `width`×`height` RGB PNG shading `colour` from light to dark, zlib "stored" blocks (valid,
/// uncompressed): no image library needed for demo pictures.
fn png(width: u32, height: u32, colour: [u8; 3]) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // no filter
        for x in 0..width {
            let shade = 255 - ((x + y) * 128 / (width + height)) as u8;
            raw.extend(
                colour
                    .iter()
                    .map(|c| (u16::from(*c) * u16::from(shade) / 255) as u8),
            );
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (index, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(index + 1 == blocks.len()));
        let length = block.len() as u16;
        zlib.extend_from_slice(&length.to_le_bytes());
        zlib.extend_from_slice(&(!length).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for byte in &raw {
        a = (a + u32::from(*byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [
        (&b"IHDR"[..], header.as_slice()),
        (b"IDAT", zlib.as_slice()),
        (b"IEND", &[][..]),
    ] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let chunk = [kind, data].concat();
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32fast::hash(&chunk).to_be_bytes());
    }
    png
}
