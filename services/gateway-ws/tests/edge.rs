//! The public door under hostile input, through the real gateway process and real services.

mod common;

use std::time::{Duration, Instant};

use common::{Client, DEADLINE, world, world_with_lots};
use futures_util::future::join_all;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Item 1: no path trick reaches an internal API, even with a leaked service token.
#[tokio::test]
async fn internal_apis_are_unreachable_through_the_gateway() {
    let world = world().await;
    let gateway = world.gateway(&[]).await;
    let leaked = format!("Bearer {}", common::bids::BIDS_TOKEN);
    for path in [
        "/api/wallets/../internal/holds",
        "/api/wallets/%2e%2e/internal/holds",
        "/api/wallets/%2E%2E/internal/holds",
        "/api/lots/..%2finternal%2fholds",
        "/api/internal/holds",
        "/api/wallets/x/../../internal/holds",
    ] {
        let answer = gateway
            .raw(
                &format!("GET {path} HTTP/1.1"),
                &[("Authorization", &leaked)],
            )
            .await;
        assert!(
            [400, 404].contains(&answer.status),
            "{path}: {} {}",
            answer.status,
            answer.body
        );
        assert!(
            answer
                .head
                .to_ascii_lowercase()
                .contains("application/problem+json"),
            "{path}: {}",
            answer.head
        );
        assert!(
            !answer.body.contains("\"wallet\""),
            "{path} leaked holds: {}",
            answer.body
        );
    }
}

/// Item 2: made-up methods do not grow the metrics' label set.
#[tokio::test]
async fn made_up_methods_do_not_become_metric_labels() {
    let world = world().await;
    let gateway = world.gateway(&[]).await;
    for method in ["FUZZCARD1", "FUZZCARD2", "BREW"] {
        let answer = gateway
            .raw(&format!("{method} /api/lots HTTP/1.1"), &[])
            .await;
        assert_eq!(answer.status, 405, "{method}");
    }
    let metrics = gateway.metrics_text().await;
    assert!(!metrics.contains("FUZZCARD"), "{metrics}");
    assert!(metrics.contains(r#"method="other""#), "{metrics}");
}

/// Item 3: an upstream that answers before reading the body (401 without a token) reaches the
/// client as that answer, not as a 502, whatever the upload's size.
#[tokio::test]
async fn early_answers_to_uploads_reach_the_client() {
    let world = world_with_lots().await;
    let gateway = world.gateway(&[]).await;
    let lots = world.lots.as_ref().expect("lots");
    let seller = common::lots::seller();
    let (_, lot) = lots.create(&seller, common::lots::lot_body()).await;
    let id = lot["id"].as_str().expect("id").to_owned();
    let client = reqwest::Client::new();
    let uploads = (0..20).map(|i| {
        let size = (1 + i % 5) * 1024 * 1024;
        let form = reqwest::multipart::Form::new().part(
            "photo",
            reqwest::multipart::Part::bytes(vec![0xAB; size])
                .mime_str("image/jpeg")
                .expect("mime"),
        );
        client
            .post(format!("{}/api/lots/{id}/photos", gateway.http))
            .multipart(form)
            .send()
    });
    let statuses: Vec<u16> = join_all(uploads)
        .await
        .into_iter()
        .map(|answer| answer.expect("answered").status().as_u16())
        .collect();
    assert!(statuses.iter().all(|status| *status == 401), "{statuses:?}");
}

/// Item 4: inputs that used to be 500s are 400s naming their field, through the gateway.
#[tokio::test]
async fn hostile_queries_are_clear_400s_through_the_gateway() {
    let world = world_with_lots().await;
    let gateway = world.gateway(&[]).await;
    for (query, field) in [
        ("q=lamp%00", "q"),
        ("ending_within_secs=92233720368547", "ending_within_secs"),
    ] {
        let answer = gateway
            .raw(&format!("GET /api/lots?{query} HTTP/1.1"), &[])
            .await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.body);
        let problem: Value = serde_json::from_str(&answer.body).expect("json");
        assert_eq!(problem["field"], field);
    }
}

/// Item 5: a client dribbling its headers, or idling on a kept-alive connection, is cut off; a
/// full house leaves newcomers waiting until a slot frees.
#[tokio::test]
async fn slow_and_idle_connections_are_cut_off_and_connections_are_capped() {
    let world = world().await;
    let gateway = world
        .gateway(&[
            ("GAVEL_HTTP__HEADER_READ_TIMEOUT", "1s"),
            ("GAVEL_HTTP__MAX_CONNECTIONS", "2"),
        ])
        .await;
    let closed_within = |mut stream: TcpStream| async move {
        let mut buffer = [0u8; 4096];
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    };

    // Two connections hold the only slots: one dribbles a header, one never sends.
    let mut dribbling = TcpStream::connect(gateway.address())
        .await
        .expect("connects");
    dribbling
        .write_all(b"GET /api/config HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("written");
    let silent = TcpStream::connect(gateway.address())
        .await
        .expect("connects");
    // A third is served only once a slot frees: by then both others are cut off.
    let answered = gateway.raw("GET /api/config HTTP/1.1", &[]).await;
    assert_eq!(answered.status, 200);
    let started = Instant::now();
    assert!(
        closed_within(dribbling).await,
        "the dribbling connection was not closed"
    );
    assert!(
        closed_within(silent).await,
        "the silent connection was not closed"
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "both were already closed when the third was served"
    );

    // A kept-alive connection that goes quiet is closed too.
    let mut idle = TcpStream::connect(gateway.address())
        .await
        .expect("connects");
    idle.write_all(b"GET /api/config HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("written");
    assert!(
        closed_within(idle).await,
        "the idle keep-alive connection was not closed"
    );
}

/// Item 6: sign-ins, link codes and new WebSocket connections are limited per client address
/// (the forwarded one only from a trusted proxy), with a 429 problem.
#[tokio::test]
async fn each_address_gets_a_limited_number_of_sign_ins_link_codes_and_connections() {
    let world = world().await;
    let gateway = world
        .gateway(&[
            ("GAVEL_EDGE__SIGN_INS_PER_MINUTE", "2"),
            ("GAVEL_EDGE__LINK_CODES_PER_MINUTE", "1"),
            ("GAVEL_EDGE__CONNECTIONS_PER_MINUTE", "2"),
            ("GAVEL_EDGE__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#),
        ])
        .await;
    let nonce = |forwarded: &'static str| {
        let gateway = &gateway;
        async move {
            gateway
                .raw(
                    "GET /api/auth/nonce HTTP/1.1",
                    &[("X-Forwarded-For", forwarded)],
                )
                .await
        }
    };
    assert_eq!(nonce("203.0.113.1").await.status, 200);
    assert_eq!(nonce("203.0.113.1").await.status, 200);
    let limited = nonce("203.0.113.1").await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    let problem: Value = serde_json::from_str(&limited.body).expect("json");
    assert_eq!(problem["code"], "rate_limited");
    assert_eq!(
        nonce("203.0.113.2").await.status,
        200,
        "another address has its own allowance"
    );

    let link = || gateway.raw("POST /api/link-codes HTTP/1.1", &[("Content-Length", "0")]);
    assert_ne!(link().await.status, 429);
    assert_eq!(link().await.status, 429);

    for _ in 0..2 {
        Client::connect(&gateway.ws).await;
    }
    let refused = tokio_tungstenite::connect_async(gateway.ws.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
        }
        other => panic!("a third connection was not refused: {other:?}"),
    }
}

/// Item 9: an address watches a bounded number of lots anonymously; signed in, it watches more.
#[tokio::test]
async fn anonymous_watching_is_capped_per_address() {
    let world = world().await;
    let gateway = world
        .gateway(&[("GAVEL_EDGE__ANONYMOUS_SUBSCRIPTIONS", "2")])
        .await;
    let lots = [
        world.open_lot().await,
        world.open_lot().await,
        world.open_lot().await,
    ];
    let mut first = Client::connect(&gateway.ws).await;
    let mut second = Client::connect(&gateway.ws).await;
    first.subscribe(lots[0]).await;
    second.subscribe(lots[1]).await;
    second
        .send(json!({"type": "subscribe", "lot_id": lots[2]}))
        .await;
    let refused = second.expect("error").await;
    assert_eq!(refused["code"], "too_many_subscriptions", "{refused}");

    let bidder = world.bidder().await;
    let mut signed_in = Client::connect(&gateway.ws).await;
    signed_in
        .send(json!({"type": "auth", "token": bidder.token}))
        .await;
    signed_in.expect("authenticated").await;
    signed_in.subscribe(lots[2]).await;
    // Leaving frees the slot.
    drop(first);
    gavel_test_support::wait_until_async("the slot to be given back", DEADLINE, || async {
        let mut again = Client::connect(&gateway.ws).await;
        again
            .send(json!({"type": "subscribe", "lot_id": lots[0]}))
            .await;
        again.next_type().await == "snapshot"
    })
    .await;
}

/// Item 7: the page and the photos carry headers that keep a browser from running or framing
/// what it should not.
#[tokio::test]
async fn the_page_and_photos_are_served_with_protective_headers() {
    let world = world_with_lots().await;
    let web = std::env::temp_dir().join(format!("gavel-web-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&web).expect("a directory");
    std::fs::write(
        web.join("index.html"),
        "<!doctype html><title>Gavel</title>",
    )
    .expect("written");
    let web_dir = web.display().to_string();
    let gateway = world.gateway(&[("GAVEL_WEB__DIR", &web_dir)]).await;
    let page = reqwest::get(format!("{}/lots/some-lot", gateway.http))
        .await
        .expect("served");
    assert_eq!(page.status(), 200);
    let headers = page.headers();
    let policy = headers["content-security-policy"].to_str().expect("ascii");
    for directive in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.contains_key("referrer-policy"));

    let lots = world.lots.as_ref().expect("lots");
    let seller = common::lots::seller();
    let (_, lot) = lots.create(&seller, common::lots::lot_body()).await;
    let id = lot["id"].as_str().expect("id").to_owned();
    let (status, photo) = lots
        .upload(&seller, &id, common::lots::images::png(8, 8), "image/png")
        .await;
    assert_eq!(status, 201, "{photo}");
    let served = reqwest::get(format!(
        "{}{}",
        gateway.http,
        photo["url"].as_str().expect("url")
    ))
    .await
    .expect("served");
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "image/png");
    assert_eq!(served.headers()["x-content-type-options"], "nosniff");
    assert!(
        served.headers()["content-security-policy"]
            .to_str()
            .expect("ascii")
            .contains("sandbox")
    );
    let _ = std::fs::remove_dir_all(web);
}

/// A bid sent on a kept-alive connection `bids` closes as it arrives (idle too long, or `bids`
/// stopping) is sent again under the same id, and the bidder gets an answer, not an error.
#[tokio::test]
async fn a_bid_caught_by_a_closing_connection_is_sent_again_under_its_id() {
    use gavel_gateway_ws::protocol::Bid;
    use gavel_gateway_ws::upstream::{BidOutcome, Upstreams};
    use gavel_test_support::ClosingPeer;

    let bids = ClosingPeer::start().await;
    let upstreams = Upstreams::new(
        serde_json::from_value(json!({"bids": bids.url, "lots": bids.url, "wallets": bids.url}))
            .expect("config"),
    )
    .expect("client");
    let bid = |id: &str| Bid {
        id: id.to_owned(),
        lot_id: gavel_types::LotId(uuid::Uuid::now_v7()),
        amount: "1000".parse().expect("wei"),
        max_amount: None,
    };
    for id in ["bid-1", "bid-2"] {
        let outcome = upstreams.place("token", &bid(id)).await.expect("answered");
        assert!(
            matches!(outcome, BidOutcome::Placed { status: 200, .. }),
            "{outcome:?}"
        );
    }
    let keys: Vec<_> = bids
        .heads()
        .iter()
        .filter_map(|head| {
            head.lines()
                .find_map(|line| line.strip_prefix("idempotency-key: "))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(keys, ["bid-1", "bid-2", "bid-2"]);
}
