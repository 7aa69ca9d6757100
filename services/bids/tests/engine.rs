//! The engine against real PostgreSQL, Redis, RabbitMQ, a real `wallets` and a dev chain.

mod common;

use std::time::Duration;

use common::{DEADLINE, rules, world};
use futures_util::future::join_all;
use gavel_test_support::wait_until_async;
use gavel_types::{AccountId, Wei};
use serde_json::Value;

#[tokio::test]
async fn five_hundred_concurrent_bids_from_fifty_bidders_leave_one_leader_an_ordered_log_and_one_hold()
 {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let mut bidders = Vec::new();
    for _ in 0..50 {
        bidders.push(world.bidder("1000000000000000000").await);
    }

    let requests = (0..500u128).map(|i| {
        let bidder = &bidders[(i % 50) as usize];
        // Everyone races upwards; many bids lose the race and are too low by the time they land.
        let amount = 100 + i * 10 + (i % 7) * 3;
        let world = &world;
        let engine = &engine;
        async move {
            world
                .bid(engine, bidder, lot, &format!("bid-{i}"), amount, None)
                .await
        }
    });
    let answers = join_all(requests).await;
    let odd: Vec<_> = answers
        .iter()
        .filter(|(_, body, _)| body["result"].is_null())
        .take(3)
        .collect();
    assert!(odd.is_empty(), "answers without a result: {odd:?}");
    let results = common::raced_results(&answers);
    let accepted = results
        .iter()
        .filter(|result| **result == "accepted")
        .count();
    // Bids land in random order, so only the running maxima win (about ln 500 ≈ 6 of them).
    assert!(accepted >= 2, "bids competed ({accepted} accepted)");

    // The per-lot log is contiguous from 1 (opened) with one event per accepted bid.
    let seqs = world.log_seqs(lot).await;
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "no gaps, no duplicates"
    );
    assert_eq!(seqs.len(), accepted + 1);

    // Every recorded bid beats the previous one by at least the increment.
    let amounts = world.bid_amounts(lot).await;
    assert!(
        amounts.windows(2).all(|pair| pair[1] >= pair[0] + 10),
        "{amounts:?}"
    );

    // Exactly one leader: the author of the highest bid, whose hold alone remains.
    let state = world.get(&engine, &format!("/lots/{lot}")).await;
    let top: Value = sqlx::query_scalar(&format!(
        "SELECT to_jsonb(b) FROM bids b WHERE lot_id = '{lot}' ORDER BY seq DESC LIMIT 1"
    ))
    .fetch_one(&world.db.pool)
    .await
    .expect("top bid");
    assert_eq!(state["leader"], top["bidder"]);
    assert_eq!(state["price"], amounts.last().expect("bids").to_string());
    wait_until_async("released holds to settle", DEADLINE, || async {
        let holds = world.holds(lot).await;
        holds
            .iter()
            .filter(|(_, status, _)| status == "active")
            .count()
            == 1
    })
    .await;
    let holds = world.holds(lot).await;
    let active: Vec<_> = holds
        .iter()
        .filter(|(_, status, _)| status == "active")
        .collect();
    assert_eq!(
        active[0].0.to_lowercase(),
        top["wallet"].as_str().expect("wallet")
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_retried_bid_returns_the_original_answer_and_changes_nothing() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let bidder = world.bidder("1000000000000000000").await;

    let first = world.bid(&engine, &bidder, lot, "k-1", 150, None).await;
    assert_eq!(
        (first.0, first.1["result"].as_str()),
        (201, Some("accepted")),
        "{}",
        first.1
    );
    let retry = world.bid(&engine, &bidder, lot, "k-1", 150, None).await;
    assert_eq!((retry.0, &retry.1, retry.2), (201, &first.1, true));
    let reused = world.bid(&engine, &bidder, lot, "k-1", 170, None).await;
    assert_eq!(
        (reused.0, reused.1["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );

    let bids: i64 = world
        .scalar(&format!("SELECT count(*) FROM bids WHERE lot_id = '{lot}'"))
        .await;
    let events: i64 = world
        .scalar("SELECT count(*) FROM outbox WHERE routing_key = 'auction.bid_accepted'")
        .await;
    assert_eq!((bids, events), (1, 1), "the retry recorded nothing");
    engine.stop().await;
}

#[tokio::test]
async fn a_proxy_answers_a_challenger_whose_hold_is_then_released() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let (leader, challenger) = (world.bidder("1000000").await, world.bidder("1000000").await);

    let (status, body, _) = world
        .bid(&engine, &leader, lot, "l-1", 100, Some(500))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body, _) = world.bid(&engine, &challenger, lot, "c-1", 200, None).await;
    assert_eq!(
        (status, body["result"].as_str(), body["leading"].as_bool()),
        (200, Some("outbid_by_proxy"), Some(false)),
        "{body}"
    );
    assert_eq!(
        body["price"], "210",
        "the proxy answered one increment above"
    );

    let state = world.get(&engine, &format!("/lots/{lot}")).await;
    assert_eq!(state["leader"], serde_json::json!(leader.account));
    wait_until_async("the challenger's hold to be released", DEADLINE, || async {
        world.holds(lot).await.iter().any(|(wallet, status, _)| {
            *wallet == challenger.wallet.to_string() && status == "released"
        })
    })
    .await;
    let holds = world.holds(lot).await;
    assert!(
        holds.iter().any(
            |(wallet, status, amount)| *wallet == leader.wallet.to_string()
                && status == "active"
                && amount == "500"
        ),
        "{holds:?}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn bad_bids_get_clear_answers() {
    let world = world(Duration::from_secs(3600)).await;
    let mut config = world.config(3);
    config.engine.bids_per_second = 3;
    let engine = world.engine_with(config, Default::default()).await;
    let seller = world.bidder("1000000").await;
    let lot = world.create_lot(&engine, rules(), seller.account).await;
    let poor = world.bidder("150").await;
    let rich = world.bidder("1000000").await;

    let (status, body, _) = world.bid(&engine, &seller, lot, "s-1", 500, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("own_lot")),
        "{body}"
    );
    let (status, body, _) = world.bid(&engine, &rich, lot, "r-1", 50, None).await;
    assert_eq!(
        (status, body["code"].as_str(), body["minimum"].as_str()),
        (409, Some("too_low"), Some("100")),
        "{body}"
    );
    let (status, body, _) = world.bid(&engine, &poor, lot, "p-1", 200, None).await;
    assert_eq!(
        (status, body["code"].as_str(), body["available"].as_str()),
        (409, Some("insufficient_funds"), Some("150")),
        "{body}"
    );

    let response = world
        .client
        .post(format!("{}/lots/{lot}/bids", engine.base))
        .bearer_auth(&rich.token)
        .json(&serde_json::json!({"amount": "300"}))
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 400, "no Idempotency-Key");
    for (body, field) in [
        (r#"{"amount": "-3"}"#, "amount"),
        (r#"{"amount": "300", "max_amount": "200"}"#, "max_amount"),
        (r#"{"amount": 1.5}"#, "amount"),
    ] {
        let response = world
            .client
            .post(format!("{}/lots/{lot}/bids", engine.base))
            .bearer_auth(&rich.token)
            .header("idempotency-key", format!("bad-{field}-{}", body.len()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("served");
        assert_eq!(response.status(), 400, "{body}");
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["field"], field, "{problem}");
    }
    let anonymous = world
        .client
        .post(format!("{}/lots/{lot}/bids", engine.base))
        .json(&serde_json::json!({"amount": "300"}))
        .send()
        .await
        .expect("served");
    assert_eq!(anonymous.status(), 401);
    let missing = world
        .bid(
            &engine,
            &rich,
            gavel_types::LotId::new(),
            "nobody",
            300,
            None,
        )
        .await;
    assert_eq!(missing.0, 404);

    // The rate limit: a burst beyond the allowance is refused with 429.
    let keys: Vec<String> = (0..8).map(|i| format!("burst-{i}")).collect();
    let burst = join_all(
        keys.iter()
            .zip(0u128..)
            .map(|(key, i)| world.bid(&engine, &rich, lot, key, 1000 + i * 100, None)),
    )
    .await;
    assert!(
        burst
            .iter()
            .any(|(status, body, _)| *status == 429 && body["result"] == "rate_limited"),
        "{burst:?}"
    );
    engine.stop().await;
}

#[tokio::test]
async fn a_bid_in_the_snipe_window_extends_the_end_and_buy_now_closes_at_once() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let mut snipe = rules();
    snipe.ends_at = chrono::Utc::now() + chrono::Duration::seconds(30);
    snipe.snipe_window_secs = 60;
    snipe.extension_secs = 120;
    let lot = world
        .create_lot(&engine, snipe.clone(), AccountId::new())
        .await;
    let bidder = world.bidder("1000000").await;
    let (status, body, _) = world.bid(&engine, &bidder, lot, "late", 100, None).await;
    assert_eq!(status, 201, "{body}");
    let ends_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(body["ends_at"].clone()).expect("a time");
    // PostgreSQL keeps microseconds.
    assert_eq!(
        ends_at.timestamp_micros(),
        (snipe.ends_at + chrono::Duration::seconds(120)).timestamp_micros()
    );

    let mut buy = rules();
    buy.buy_now = Some(Wei::from_u128(1000));
    let lot = world.create_lot(&engine, buy, AccountId::new()).await;
    let (status, body, _) = world.bid(&engine, &bidder, lot, "buy", 5000, None).await;
    assert_eq!(
        (status, body["closed"].as_bool(), body["price"].as_str()),
        (201, Some(true), Some("1000")),
        "{body}"
    );
    let state = world.get(&engine, &format!("/lots/{lot}")).await;
    assert_eq!(state["status"], "closed");
    // wallets hears auction.closed and captures the buyer's hold at the price.
    wait_until_async("the capture", DEADLINE, || async {
        world
            .holds(lot)
            .await
            .iter()
            .any(|(_, status, amount)| status == "captured" && amount == "1000")
    })
    .await;
    let after = world
        .bid(
            &engine,
            &world.bidder("1000000").await,
            lot,
            "too-late",
            6000,
            None,
        )
        .await;
    assert_eq!(after.1["code"], "closed");
    engine.stop().await;
}

/// Issue 19: a bid certainly below the minimum of a lot this replica has seen bid on is refused
/// without the lot's queue or row — here while another transaction holds the row — with the same
/// answer the full path gives, stored under its key so a retry replays it.
#[tokio::test]
async fn a_bid_certainly_too_low_is_refused_without_waiting_for_the_lot() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let (leader, late) = (
        world.bidder("1000000000000000000").await,
        world.bidder("1000000000000000000").await,
    );
    let (status, body, _) = world.bid(&engine, &leader, lot, "lead", 300, None).await;
    assert_eq!(status, 201, "{body}");
    // The full path's answer for a bid below the minimum (310).
    let (status, full, _) = world.bid(&engine, &late, lot, "low-1", 305, None).await;
    assert_eq!(
        (status, full["code"].as_str()),
        (409, Some("too_low")),
        "{full}"
    );

    let mut holder = world.db.pool.begin().await.expect("a transaction");
    sqlx::query(&format!(
        "SELECT 1 FROM lots WHERE lot_id = '{lot}' FOR UPDATE"
    ))
    .execute(&mut *holder)
    .await
    .expect("the row lock");
    let quick = tokio::time::timeout(DEADLINE, world.bid(&engine, &late, lot, "low-2", 305, None))
        .await
        .expect("answered while the lot's row is locked");
    assert_eq!((quick.0, &quick.1, quick.2), (409, &full, false));
    let replay = world.bid(&engine, &late, lot, "low-2", 305, None).await;
    assert_eq!((replay.0, &replay.1, replay.2), (409, &full, true));
    let reused = world.bid(&engine, &late, lot, "low-2", 400, None).await;
    assert_eq!(reused.1["code"].as_str(), Some("idempotency_key_reused"));
    holder.rollback().await.expect("released");

    // At the minimum, the engine decides under the lock as always.
    let (status, body, _) = world.bid(&engine, &late, lot, "at-min", 310, None).await;
    assert_eq!(
        (status, body["result"].as_str()),
        (201, Some("accepted")),
        "{body}"
    );
    engine.stop().await;
}

/// A request sent again under its key (a browser's retry, the gateway resending a bid whose
/// connection closed before the answer) is answered as the first was, even when the bidder is
/// over their rate allowance: the retry is not a new bid. Before, a resent accepted bid over the
/// allowance was answered 429 `rate_limited`.
#[tokio::test]
async fn a_bid_sent_again_is_answered_as_before_even_at_the_rate_limit() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine_with(world.config(1), Default::default()).await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let bidder = world.bidder("1000000").await;

    let (status, first, _) = world.bid(&engine, &bidder, lot, "once", 100, None).await;
    assert_eq!(status, 201, "{first}");
    // Over the allowance in the current window (it counts per second): new bids until one is
    // refused 429, then at once the first one again.
    let mut limited = None;
    for attempt in 0..20 {
        let key = format!("more-{attempt}");
        let (status, answer, _) = world.bid(&engine, &bidder, lot, &key, 200, None).await;
        if status == 429 {
            limited = Some(answer);
            break;
        }
    }
    let limited = limited.expect("a new bid over the allowance is refused");
    assert_eq!(limited["result"], "rate_limited", "{limited}");
    let (status, again, replayed) = world.bid(&engine, &bidder, lot, "once", 100, None).await;
    assert_eq!((status, replayed), (201, true), "{again}");
    assert_eq!(again, first);
    engine.stop().await;
}
