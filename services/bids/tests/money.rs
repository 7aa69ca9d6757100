//! The money path's regression tests: each scenario of the money-path review, against the real
//! engine, a real `wallets`, PostgreSQL, RabbitMQ, Redis and a dev chain.

mod common;

use std::time::Duration;

use common::{DEADLINE, rules, world};
use gavel_common::config::SecretUrl;
use gavel_events::Increment;
use gavel_test_support::wait_until_async;
use gavel_types::{AccountId, Wei};

/// Scenario 1: `wallets` hears of recorded bids late (here: the broker is out of reach for the
/// engine, so its events stay in the outbox) for longer than the repair grace. Repair must learn
/// the truth from `bids`, so no recorded bid's hold is released and the wallet cannot lead a
/// second lot with the same money.
#[tokio::test]
async fn late_bid_events_never_free_the_hold_of_a_recorded_bid() {
    let world = world(Duration::from_millis(300)).await;
    let healthy = world.engine().await;
    let (first, second) = (
        world.create_lot(&healthy, rules(), AccountId::new()).await,
        world.create_lot(&healthy, rules(), AccountId::new()).await,
    );
    healthy.stop().await;

    let mut cut_off = world.config(10_000);
    cut_off.broker.url = SecretUrl::parse("amqp://guest:guest@127.0.0.1:1/%2f").expect("url");
    let engine = world.engine_with(cut_off, Default::default()).await;
    let bidder = world.bidder("1000").await;
    let (status, body, _) = world.bid(&engine, &bidder, first, "a", 600, None).await;
    assert_eq!(status, 201, "{body}");

    // Past the grace, every hold has been looked at by the repair.
    wait_until_async("the repair to decide every hold", DEADLINE, || async {
        world
            .wallets_scalar::<i64>(
                "SELECT count(*) FROM holds WHERE status = 'active' AND NOT bid_recorded",
            )
            .await
            == 0
    })
    .await;
    let holds = world.holds(first).await;
    assert_eq!(
        holds,
        [(bidder.wallet.to_string(), "active".into(), "600".into())],
        "the recorded bid's hold stands"
    );
    let (status, body, _) = world.bid(&engine, &bidder, second, "b", 600, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("insufficient_funds")),
        "the same 600 cannot back a second lot: {body}"
    );
    engine.stop().await;

    // The broker comes back: the late events change nothing.
    let resumed = world.engine().await;
    wait_until_async("the outbox to drain", DEADLINE, || async {
        world
            .scalar::<i64>("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .await
            == 0
    })
    .await;
    wait_until_async("wallets to record the bid", DEADLINE, || async {
        world
            .wallets_scalar::<i64>("SELECT count(*) FROM recorded_bids")
            .await
            == 1
    })
    .await;
    assert_eq!(
        world.holds(first).await,
        [(bidder.wallet.to_string(), "active".into(), "600".into())]
    );
    assert!(world.holds(second).await.is_empty());
    resumed.stop().await;
}

/// Scenario 2: an account bids again on a lot it leads, from a second linked wallet. The hold
/// moves with the lead: the new wallet backs it, the old hold is released, and when outbid or
/// winning, exactly the holding wallet is released or captured.
#[tokio::test]
async fn a_leader_bidding_again_from_a_second_wallet_moves_the_hold_to_it() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let first = world.bidder("1000000").await;
    let second = world.second_wallet(&first, "1000000").await;
    let rival = world.bidder("1000000").await;

    // Outbid after switching wallets: nothing of the account stays held.
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    assert_eq!(world.bid(&engine, &first, lot, "1", 100, None).await.0, 201);
    let (status, body, _) = world.bid(&engine, &second, lot, "2", 200, None).await;
    assert_eq!(status, 201, "{body}");
    wait_until_async("the first wallet's hold to move", DEADLINE, || async {
        world.active_holds(lot).await == [(second.wallet.to_string(), "200".to_owned())]
    })
    .await;
    assert_eq!(world.bid(&engine, &rival, lot, "3", 300, None).await.0, 201);
    wait_until_async("the account's holds to be released", DEADLINE, || async {
        world.active_holds(lot).await == [(rival.wallet.to_string(), "300".to_owned())]
    })
    .await;

    // Winning after switching wallets: the wallet that holds is the one captured.
    let mut short = rules();
    short.ends_at = chrono::Utc::now() + chrono::Duration::seconds(3);
    let lot = world.create_lot(&engine, short, AccountId::new()).await;
    assert_eq!(world.bid(&engine, &first, lot, "4", 100, None).await.0, 201);
    assert_eq!(
        world.bid(&engine, &second, lot, "5", 150, None).await.0,
        201
    );
    wait_until_async("the sale to be captured", DEADLINE, || async {
        world
            .holds(lot)
            .await
            .iter()
            .any(|(_, status, _)| status == "captured")
    })
    .await;
    let mut holds = world.holds(lot).await;
    holds.sort();
    let mut expected = vec![
        (
            first.wallet.to_string(),
            "released".to_owned(),
            "100".to_owned(),
        ),
        (
            second.wallet.to_string(),
            "captured".to_owned(),
            "150".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(holds, expected);
    engine.stop().await;
}

/// Scenario 3: proxies carry the price past buy-now; from then on buy-now is gone, and a bid at
/// or above it is an ordinary bid (start 10, buy-now 80: A max 100, B max 90 → 91; C bids 92).
#[tokio::test]
async fn buy_now_disappears_once_the_price_reaches_it() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let mut buy_now = rules();
    buy_now.start_price = Wei::from_u128(10);
    buy_now.increment = Increment::Absolute {
        wei: Wei::from_u128(1),
    };
    buy_now.buy_now = Some(Wei::from_u128(80));
    let lot = world.create_lot(&engine, buy_now, AccountId::new()).await;
    let (a, b, c) = (
        world.bidder("1000").await,
        world.bidder("1000").await,
        world.bidder("1000").await,
    );
    assert_eq!(world.bid(&engine, &a, lot, "a", 10, Some(100)).await.0, 201);
    let (status, body, _) = world.bid(&engine, &b, lot, "b", 11, Some(90)).await;
    assert_eq!(
        (status, body["price"].as_str()),
        (200, Some("91")),
        "{body}"
    );
    let state = world.get(&engine, &format!("/lots/{lot}")).await;
    assert_eq!(state["buy_now"], serde_json::Value::Null, "{state}");

    let (status, body, _) = world.bid(&engine, &c, lot, "c", 92, None).await;
    assert_eq!(
        (
            status,
            body["result"].as_str(),
            body["price"].as_str(),
            body["closed"].as_bool()
        ),
        (200, Some("outbid_by_proxy"), Some("93"), Some(false)),
        "{body}"
    );
    let state = world.get(&engine, &format!("/lots/{lot}")).await;
    assert_eq!(
        (state["status"].as_str(), state["leader"].clone()),
        (Some("open"), serde_json::json!(a.account))
    );
    engine.stop().await;
}

/// Scenario 3, the other half: when buy-now does close a lot, `auction.closed` and the last
/// `auction.bid_accepted` agree on the price, and the lot's outcome is recorded (scenario 7).
#[tokio::test]
async fn a_buy_now_close_records_one_price_and_its_outcome() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let mut buy_now = rules();
    buy_now.buy_now = Some(Wei::from_u128(1000));
    let lot = world.create_lot(&engine, buy_now, AccountId::new()).await;
    let (a, b) = (world.bidder("100000").await, world.bidder("100000").await);
    assert_eq!(
        world.bid(&engine, &a, lot, "a", 100, Some(5000)).await.0,
        201
    );
    let (status, body, _) = world.bid(&engine, &b, lot, "b", 1200, None).await;
    assert_eq!(
        (status, body["closed"].as_bool(), body["price"].as_str()),
        (201, Some(true), Some("1000")),
        "{body}"
    );
    let prices: Vec<(String, Option<String>)> = sqlx::query_as(&format!(
        "SELECT event_type, COALESCE(envelope->'payload'->>'price', envelope->'payload'->>'highest')
         FROM lot_events WHERE lot_id = '{lot}' AND event_type IN ('auction.bid_accepted', 'auction.closed')
         ORDER BY seq DESC LIMIT 2"
    ))
    .fetch_all(&world.db.pool)
    .await
    .expect("events");
    assert_eq!(
        prices,
        [
            ("auction.closed".to_owned(), Some("1000".to_owned())),
            ("auction.bid_accepted".to_owned(), Some("1000".to_owned()))
        ]
    );
    let outcome: Option<serde_json::Value> = world
        .scalar(&format!("SELECT outcome FROM lots WHERE lot_id = '{lot}'"))
        .await;
    assert_eq!(
        outcome.as_ref().map(|outcome| outcome["outcome"].clone()),
        Some(serde_json::json!("sold")),
        "{outcome:?}"
    );
    engine.stop().await;
}

/// Scenario 6: releases that keep failing back off and are parked with their error after a few
/// attempts; they never stop the releases queued behind them.
#[tokio::test]
async fn failing_releases_are_parked_and_never_block_the_others() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    // More undeliverable releases than one batch takes, all queued first.
    sqlx::query(
        "INSERT INTO pending_releases (wallet, lot_id, bid_id)
         SELECT 'not-a-wallet', gen_random_uuid(), gen_random_uuid() FROM generate_series(1, 150)",
    )
    .execute(&world.db.pool)
    .await
    .expect("queued");
    let (_, second) = world.outbid_once(&engine, lot).await;
    wait_until_async("the displaced hold to be released", DEADLINE, || async {
        world.active_holds(lot).await == [(second.wallet.to_string(), "200".to_owned())]
    })
    .await;
    wait_until_async("the undeliverable releases to be parked", DEADLINE, || async {
        world
            .scalar::<i64>("SELECT count(*) FROM pending_releases WHERE parked_at IS NOT NULL AND last_error IS NOT NULL")
            .await
            == 150
    })
    .await;
    engine.stop().await;
}

/// The releases due go to `wallets` in one request (one transaction there); one that `wallets`
/// fails to do waits for its retry alone while the others are done and forgotten.
#[tokio::test]
async fn releases_go_in_one_request_and_one_that_fails_waits_alone() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let mut lots = Vec::new();
    for _ in 0..3 {
        lots.push(world.create_lot(&engine, rules(), AccountId::new()).await);
    }
    // Releasing the hold on the last lot fails inside `wallets`' database.
    world
        .break_releases(&format!("NEW.lot_id = '{}'", lots[2]))
        .await;
    let (first, second) = (world.bidder("1000").await, world.bidder("1000").await);
    for (at, lot) in lots.iter().enumerate() {
        let (outbid, leading) = (format!("first-{at}"), format!("second-{at}"));
        assert_eq!(
            world.bid(&engine, &first, *lot, &outbid, 100, None).await.0,
            201
        );
        assert_eq!(
            world
                .bid(&engine, &second, *lot, &leading, 200, None)
                .await
                .0,
            201
        );
    }
    let leader_only = vec![(second.wallet.to_string(), "200".to_owned())];
    wait_until_async("the first two releases to be done", DEADLINE, || async {
        world.active_holds(lots[0]).await == leader_only
            && world.active_holds(lots[1]).await == leader_only
    })
    .await;
    wait_until_async(
        "the failed release to wait for its retry",
        DEADLINE,
        || async {
            world
                .scalar::<i64>(
                    "SELECT count(*) FROM pending_releases
                 WHERE attempts >= 1 AND last_error LIKE '%500%' AND parked_at IS NULL",
                )
                .await
                == 1
        },
    )
    .await;
    assert_eq!(
        world
            .scalar::<i64>("SELECT count(*) FROM pending_releases")
            .await,
        1,
        "the releases done are forgotten"
    );
    assert_eq!(world.active_holds(lots[2]).await.len(), 2);
    let requests = |route| {
        let admin = world.wallets.admin.clone();
        async move { gavel_test_support::metric(&admin, "gavel_http_requests_total", &[route]).await }
    };
    assert!(
        requests("route=\"/internal/holds/releases\"").await > 0.0,
        "the batch route was used"
    );
    assert_eq!(
        requests("route=\"/internal/holds/release\"").await,
        0.0,
        "no release went alone"
    );

    world.heal_releases().await;
    wait_until_async("the retried release to be done", DEADLINE, || async {
        world.active_holds(lots[2]).await == leader_only
    })
    .await;
    engine.stop().await;
}

/// During an upgrade `bids` may run before `wallets` has the batch route: releases then go one
/// by one. (The older `wallets` is the real one behind a proxy that does not know the route.)
#[tokio::test]
async fn releases_go_one_by_one_to_a_wallets_without_the_batch_route() {
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;

    let world = world(Duration::from_secs(3600)).await;
    async fn older_wallets(
        State(upstream): State<String>,
        request: Request,
    ) -> axum::response::Response {
        if request.uri().path() == "/internal/holds/releases" {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(serde_json::json!({"code": "not_found"})),
            )
                .into_response();
        }
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        let answer = reqwest::Client::new()
            .request(parts.method, format!("{upstream}{}", parts.uri))
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .expect("wallets answers");
        let status = answer.status();
        let body = answer.bytes().await.expect("body");
        (status, [("content-type", "application/json")], body).into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy = format!("http://{}", listener.local_addr().expect("address"));
    let router = axum::Router::new()
        .fallback(older_wallets)
        .with_state(world.wallets.internal.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let mut config = world.config(1000);
    config.wallets.url = proxy.parse().expect("url");
    let engine = world.engine_with(config, Default::default()).await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let (_, second) = world.outbid_once(&engine, lot).await;
    wait_until_async("the displaced hold to be released", DEADLINE, || async {
        world.active_holds(lot).await == [(second.wallet.to_string(), "200".to_owned())]
            && world
                .scalar::<i64>("SELECT count(*) FROM pending_releases")
                .await
                == 0
    })
    .await;
    engine.stop().await;
}

/// Scenario 7: a wallet unlinked from the account cannot back its bids, even with a token
/// minted while it was linked.
#[tokio::test]
async fn a_wallet_unlinked_from_the_account_cannot_back_a_bid() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let first = world.bidder("1000").await;
    let second = world.second_wallet(&first, "1000").await;
    let response = world
        .client
        .delete(format!("{}/wallets/{}", world.wallets.base, second.wallet))
        .bearer_auth(&first.token)
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 204);

    let (status, body, _) = world.bid(&engine, &second, lot, "1", 100, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("wallet_not_linked")),
        "{body}"
    );
    assert!(world.holds(lot).await.is_empty());
    engine.stop().await;
}

/// Scenario 7: a retried bid counts against the bidder's rate limit like a new one (here the
/// retries of a bid that `wallets` could not decide).
#[tokio::test]
async fn retries_of_an_undecided_bid_count_against_the_rate_limit() {
    let world = world(Duration::from_secs(3600)).await;
    let healthy = world.engine().await;
    let lot = world.create_lot(&healthy, rules(), AccountId::new()).await;
    healthy.stop().await;
    let mut config = world.config(3);
    config.wallets.url = "http://127.0.0.1:1".parse().expect("url");
    let engine = world.engine_with(config, Default::default()).await;
    let bidder = world.bidder("1000").await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(world.bid(&engine, &bidder, lot, "same", 100, None).await.0);
    }
    assert_eq!(statuses[0], 503, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    engine.stop().await;
}

/// Scenario 7: a value this version does not understand is an error, never a silent default
/// (an unknown lot status read as cancelled, a hold status as released, an amount as zero).
#[tokio::test]
async fn unknown_stored_values_are_errors_not_defaults() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let bidder = world.bidder("1000").await;
    assert_eq!(
        world.bid(&engine, &bidder, lot, "1", 100, None).await.0,
        201
    );

    // A status written by a newer version.
    for sql in [
        "ALTER TABLE lots DROP CONSTRAINT lots_status_check",
        "UPDATE lots SET status = 'paused'",
    ] {
        sqlx::query(sql).execute(&world.db.pool).await.expect(sql);
    }
    let response = world
        .client
        .get(format!("{}/lots/{lot}", engine.base))
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 500);

    let holds = |query: String| {
        let world = &world;
        async move {
            world
                .client
                .get(format!("{}/internal/holds?{query}", world.wallets.internal))
                .bearer_auth(common::BIDS_TOKEN)
                .send()
                .await
                .expect("served")
                .status()
        }
    };
    for sql in [
        "ALTER TABLE holds DROP CONSTRAINT holds_status_check",
        "UPDATE holds SET status = 'frozen'",
    ] {
        sqlx::query(sql)
            .execute(&world.wallets_db.pool)
            .await
            .expect(sql);
    }
    assert_eq!(holds(format!("lot_id={lot}")).await, 500);
    // An amount beyond 2^256 cannot be a wei amount.
    sqlx::query("UPDATE holds SET status = 'active', amount = 9 * 10::numeric ^ 77")
        .execute(&world.wallets_db.pool)
        .await
        .expect("update");
    assert_eq!(holds(format!("lot_id={lot}")).await, 500);
    engine.stop().await;
}

/// Two engines on one database bid on one lot at once: the row lock, not the in-process queue,
/// keeps one leader, a gapless log, rising prices and one hold.
#[tokio::test]
async fn two_engines_bidding_on_one_lot_keep_every_invariant() {
    let world = world(Duration::from_secs(3600)).await;
    let engines = [world.engine().await, world.engine().await];
    let lot = world
        .create_lot(&engines[0], rules(), AccountId::new())
        .await;
    let mut bidders = Vec::new();
    for _ in 0..20 {
        bidders.push(world.bidder("1000000000").await);
    }
    let requests = (0..200u128).map(|i| {
        let (world, engines, bidders) = (&world, &engines, &bidders);
        async move {
            let bidder = &bidders[(i % 20) as usize];
            let engine = &engines[(i % 2) as usize];
            let max = (i % 3 == 0).then_some(200 + i * 20);
            world
                .bid(engine, bidder, lot, &format!("bid-{i}"), 100 + i * 10, max)
                .await
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    assert!(
        answers
            .iter()
            .all(|(status, _, _)| [200, 201, 409].contains(status)),
        "{:?}",
        answers.iter().map(|answer| answer.0).collect::<Vec<_>>()
    );
    let seqs = world.log_seqs(lot).await;
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    let amounts = world.bid_amounts(lot).await;
    assert!(
        amounts.windows(2).all(|pair| pair[1] > pair[0]),
        "{amounts:?}"
    );
    let (leader, leader_wallet, leader_max): (uuid::Uuid, String, String) = sqlx::query_as(
        &format!("SELECT leader, leader_wallet, leader_max::text FROM lots WHERE lot_id = '{lot}'"),
    )
    .fetch_one(&world.db.pool)
    .await
    .expect("lot");
    assert!(bidders.iter().any(|bidder| bidder.account.0 == leader));
    wait_until_async("only the leader's hold to remain", DEADLINE, || async {
        world
            .active_holds(lot)
            .await
            .iter()
            .map(|(wallet, amount)| (wallet.to_lowercase(), amount.clone()))
            .collect::<Vec<_>>()
            == [(leader_wallet.clone(), leader_max.clone())]
    })
    .await;
    for engine in engines {
        engine.stop().await;
    }
}
