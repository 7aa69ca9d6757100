//! The holds ledger under concurrency, retries and crashes, against real PostgreSQL and a dev
//! chain balance.

mod common;

use std::collections::BTreeMap;

use alloy::primitives::U256;
use common::{Options, funded_wallet, publish, spawn, spawn_with, wait_for_sql};
use futures_util::future::join_all;
use gavel_events::BidAccepted;
use gavel_messaging::Envelope;
use gavel_types::{AccountId, BidId, EthAddress, LotId, Wei};
use serde_json::{Value, json};

const ETHER: u128 = 1_000_000_000_000_000_000;

fn wei(value: &Value) -> U256 {
    value
        .as_str()
        .and_then(|raw| raw.parse().ok())
        .unwrap_or_else(|| panic!("not an amount: {value}"))
}

#[tokio::test]
async fn two_hundred_concurrent_holds_across_fifty_lots_never_exceed_the_balance_and_match_a_serial_replay()
 {
    let app = spawn().await;
    let balance = 10_000 * ETHER;
    let signer = funded_wallet(&app.chain, &balance.to_string()).await;
    let wallet = signer.address().to_checksum(None);
    let lots: Vec<LotId> = (0..50).map(|_| LotId::new()).collect();

    let requests = (0..200u128).map(|i| {
        // Demand far beyond the balance, with raises and would-be decreases on the same lots.
        let amount = (1 + (i * 7919) % 400) * ETHER;
        let body = json!({"wallet": wallet, "lot_id": lots[(i % 50) as usize], "amount": amount.to_string(), "bid_id": BidId::new()});
        let app = &app;
        async move { app.hold("place", &format!("concurrent-{i}"), body).await }
    });
    let answers = join_all(requests).await;
    let accepted = answers.iter().filter(|(status, ..)| *status == 200).count();
    let refused = answers.iter().filter(|(status, ..)| *status == 409).count();
    assert_eq!(
        accepted + refused,
        200,
        "every request got a definite answer"
    );
    assert!(
        accepted >= 10 && refused >= 10,
        "the test exercised both paths ({accepted} accepted)"
    );
    for (status, body, _) in &answers {
        if body["code"] == "insufficient_funds" {
            assert_eq!(*status, 409);
            assert!(
                body["available"].is_string(),
                "the refusal says what is available: {body}"
            );
        }
    }

    let holds = app.holds(&format!("wallet={wallet}")).await;
    let held: U256 = holds
        .iter()
        .filter(|hold| hold["status"] == "active")
        .map(|hold| wei(&hold["amount"]))
        .sum();
    assert!(
        held <= U256::from(balance),
        "active holds {held} exceed the balance {balance}"
    );

    // Replay the ledger's own serial order (the order operations took the wallet lock) through an
    // independent model; every answer and the final state must agree.
    let log: Vec<(String, i16)> =
        sqlx::query_as("SELECT fingerprint, status_code FROM hold_requests ORDER BY seq")
            .fetch_all(&app.db.pool)
            .await
            .expect("the request log");
    assert_eq!(log.len(), 200);
    let mut model: BTreeMap<String, U256> = BTreeMap::new();
    for (fingerprint, status) in &log {
        let operation: Value = serde_json::from_str(fingerprint).expect("json");
        let lot = operation["lot_id"].as_str().expect("lot").to_owned();
        let amount = wei(&operation["amount"]);
        let current = model.get(&lot).copied().unwrap_or_default();
        let others: U256 = model
            .iter()
            .filter(|(other, _)| **other != lot)
            .map(|(_, held)| *held)
            .sum();
        let expected = if amount < current || others + amount > U256::from(balance) {
            409
        } else {
            200
        };
        assert_eq!(
            *status, expected,
            "operation {operation} answered {status}, the model says {expected}"
        );
        if expected == 200 {
            model.insert(lot, amount);
        }
        let total: U256 = model.values().copied().sum();
        assert!(total <= U256::from(balance));
    }
    let actual: BTreeMap<String, U256> = holds
        .iter()
        .filter(|hold| hold["status"] == "active")
        .map(|hold| {
            (
                hold["lot_id"].as_str().expect("lot").to_owned(),
                wei(&hold["amount"]),
            )
        })
        .collect();
    assert_eq!(actual, model, "the ledger equals the serial replay");
    app.stop().await;
}

#[tokio::test]
async fn place_release_and_capture_are_idempotent_under_retries() {
    let app = spawn().await;
    let signer = funded_wallet(&app.chain, &(10 * ETHER).to_string()).await;
    let wallet = signer.address().to_checksum(None);
    let lot = LotId::new();
    let place = json!({"wallet": wallet, "lot_id": lot, "amount": (4 * ETHER).to_string(), "bid_id": BidId::new()});

    let first = app.hold("place", "p-1", place.clone()).await;
    assert_eq!(first.0, 200, "{}", first.1);
    let retry = app.hold("place", "p-1", place.clone()).await;
    assert_eq!(
        (retry.0, &retry.1, retry.2),
        (200, &first.1, true),
        "a retry returns the original answer"
    );

    let mut changed = place.clone();
    changed["amount"] = json!((5 * ETHER).to_string());
    let reused = app.hold("place", "p-1", changed).await;
    assert_eq!(
        (reused.0, reused.1["code"].as_str()),
        (409, Some("idempotency_key_reused")),
        "{}",
        reused.1
    );

    let too_much = json!({"wallet": wallet, "lot_id": LotId::new(), "amount": (7 * ETHER).to_string(), "bid_id": BidId::new()});
    let refused = app.hold("place", "p-2", too_much.clone()).await;
    assert_eq!(
        (refused.0, refused.1["code"].as_str()),
        (409, Some("insufficient_funds")),
        "{}",
        refused.1
    );
    assert_eq!(refused.1["available"], (6 * ETHER).to_string());
    assert_eq!(
        app.hold("place", "p-2", too_much).await.1,
        refused.1,
        "a refusal is replayed too"
    );

    let capture = json!({"wallet": wallet, "lot_id": lot, "amount": (3 * ETHER).to_string()});
    let captured = app.hold("capture", "c-1", capture.clone()).await;
    assert_eq!(
        (captured.0, captured.1["hold"]["status"].as_str()),
        (200, Some("captured")),
        "{}",
        captured.1
    );
    assert_eq!(app.hold("capture", "c-1", capture).await.1, captured.1);

    let release = json!({"wallet": wallet, "lot_id": lot});
    let refused_release = app.hold("release", "r-1", release.clone()).await;
    assert_eq!(
        (refused_release.0, refused_release.1["code"].as_str()),
        (409, Some("hold_captured")),
        "only settlement frees a capture"
    );
    let other_lot = LotId::new();
    let small = json!({"wallet": wallet, "lot_id": other_lot, "amount": ETHER.to_string(), "bid_id": BidId::new()});
    assert_eq!(app.hold("place", "p-3", small).await.0, 200);
    let release = json!({"wallet": wallet, "lot_id": other_lot});
    let released = app.hold("release", "r-2", release.clone()).await;
    assert_eq!(released.1["hold"]["status"], "released");
    let again = app.hold("release", "r-2", release).await;
    assert_eq!((again.1.clone(), again.2), (released.1, true));

    // A late release for an older bid does not free the hold of the bidder's newer bid.
    let third_lot = LotId::new();
    let (old_bid, new_bid) = (BidId::new(), BidId::new());
    for (key, bid, amount) in [("p-4", old_bid, ETHER), ("p-5", new_bid, 2 * ETHER)] {
        let body = json!({"wallet": wallet, "lot_id": third_lot, "amount": amount.to_string(), "bid_id": bid});
        assert_eq!(app.hold("place", key, body).await.0, 200);
    }
    let stale = app
        .hold(
            "release",
            "r-3",
            json!({"wallet": wallet, "lot_id": third_lot, "bid_id": old_bid}),
        )
        .await;
    assert_eq!(
        (stale.0, stale.1["hold"]["status"].as_str()),
        (200, Some("active")),
        "{}",
        stale.1
    );

    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM hold_requests")
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!(rows, 9, "retries wrote nothing");
    let holds = app.holds(&format!("wallet={wallet}")).await;
    let by_lot: BTreeMap<_, _> = holds
        .iter()
        .map(|hold| {
            (
                hold["lot_id"].as_str().unwrap_or_default().to_owned(),
                hold["status"].clone(),
            )
        })
        .collect();
    assert_eq!(by_lot[&lot.to_string()], "captured");
    assert_eq!(by_lot[&other_lot.to_string()], "released");
    app.stop().await;
}

#[tokio::test]
async fn internal_calls_need_a_service_token_and_an_idempotency_key() {
    let app = spawn().await;
    let body = json!({"wallet": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "lot_id": LotId::new(), "amount": "1", "bid_id": BidId::new()});
    let anonymous = app
        .client
        .post(format!("{}/internal/holds/place", app.internal))
        .header("idempotency-key", "k")
        .json(&body)
        .send()
        .await
        .expect("served");
    assert_eq!(anonymous.status(), 401);
    let no_key = app
        .client
        .post(format!("{}/internal/holds/place", app.internal))
        .bearer_auth(common::BIDS_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("served");
    assert_eq!(no_key.status(), 400);
    let problem: Value = no_key.json().await.expect("json");
    assert_eq!(problem["field"], "Idempotency-Key");

    let mut bad = body.clone();
    bad["amount"] = json!("-5");
    let (status, problem, _) = app.hold("place", "k-bad", bad).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("amount")),
        "{problem}"
    );
    let mut bad = body;
    bad["wallet"] = json!("0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
    let (status, problem, _) = app.hold("place", "k-bad-2", bad).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("wallet")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("checksum"),
        "{problem}"
    );
    app.stop().await;
}

#[tokio::test]
async fn unconfirmed_holds_wait_for_the_engines_verdict_and_nothing_else() {
    let app = spawn_with(Options::default()).await;
    let signer = funded_wallet(&app.chain, &(100 * ETHER).to_string()).await;
    let wallet: EthAddress = signer.address().to_checksum(None).parse().expect("address");
    let (orphan_lot, live_lot, raised_lot) = (LotId::new(), LotId::new(), LotId::new());
    let (orphan_bid, live_bid, raised_bid, unrecorded_raise) =
        (BidId::new(), BidId::new(), BidId::new(), BidId::new());

    // `bids` records these two bids; their events arrive through RabbitMQ.
    for (lot_id, bid_id, amount) in [
        (live_lot, live_bid, 5 * ETHER),
        (raised_lot, raised_bid, 2 * ETHER),
    ] {
        let event = BidAccepted {
            lot_id,
            bid_id,
            bidder: AccountId::new(),
            wallet,
            amount: Wei::from_u128(amount),
            held: Wei::from_u128(amount),
            proxy: false,
            at: chrono::Utc::now(),
            price: Wei::from_u128(amount),
            leader: AccountId::new(),
            previous_leader: None,
            bid_count: 1,
            ends_at: chrono::Utc::now(),
            reserve_met: true,
        };
        publish(
            &app,
            &Envelope::new(lot_id.to_string(), Some(1), &event).expect("serializable"),
        )
        .await;
        wait_for_sql(
            &app,
            "the bid to be recorded",
            &format!("SELECT EXISTS (SELECT 1 FROM recorded_bids WHERE bid_id = '{bid_id}')"),
        )
        .await;
    }

    let place = |key: &'static str, lot: LotId, bid: BidId, amount: u128| {
        let body =
            json!({"wallet": wallet, "lot_id": lot, "amount": amount.to_string(), "bid_id": bid});
        let app = &app;
        async move { app.hold("place", key, body).await }
    };
    for (key, lot, bid, amount) in [
        ("orphan", orphan_lot, orphan_bid, 10 * ETHER), // a crash: its bid never recorded
        ("live", live_lot, live_bid, 5 * ETHER),
        ("raised", raised_lot, raised_bid, 2 * ETHER),
        ("raise", raised_lot, unrecorded_raise, 3 * ETHER), // a crash after the raise
    ] {
        let (status, body, _) = place(key, lot, bid, amount).await;
        assert_eq!(status, 200, "{body}");
    }

    // The ledger lists what it cannot confirm, and releases none of it on its own.
    let unconfirmed: Vec<Value> = app
        .client
        .get(format!(
            "{}/internal/holds/unconfirmed?older_than_ms=0",
            app.internal
        ))
        .bearer_auth(common::BIDS_TOKEN)
        .send()
        .await
        .expect("served")
        .json()
        .await
        .expect("json");
    let mut bids: Vec<&str> = unconfirmed
        .iter()
        .map(|hold| hold["bid_id"].as_str().expect("bid"))
        .collect();
    bids.sort_unstable();
    let mut expected = vec![orphan_bid.to_string(), unrecorded_raise.to_string()];
    expected.sort();
    assert_eq!(bids, expected);

    let verdict = |bid: BidId, lot: LotId, verdict: Value| {
        let app = &app;
        async move {
            let mut body = json!({"wallet": wallet, "lot_id": lot, "bid_id": bid});
            if let (Some(body), Some(verdict)) = (body.as_object_mut(), verdict.as_object()) {
                body.extend(verdict.clone());
            }
            let response = app
                .client
                .post(format!("{}/internal/holds/verdict", app.internal))
                .bearer_auth(common::BIDS_TOKEN)
                .json(&body)
                .send()
                .await
                .expect("served");
            assert_eq!(response.status(), 200);
            let answer: Value = response.json().await.expect("json");
            answer["applied"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(
        verdict(orphan_bid, orphan_lot, json!({"verdict": "abandoned"})).await,
        "released"
    );
    let restore = json!({"verdict": "abandoned", "restore": {"amount": (2 * ETHER).to_string(), "bid_id": raised_bid}});
    assert_eq!(
        verdict(unrecorded_raise, raised_lot, restore.clone()).await,
        "restored"
    );
    assert_eq!(
        verdict(unrecorded_raise, raised_lot, restore).await,
        "unchanged",
        "a verdict applies once"
    );
    assert_eq!(
        verdict(live_bid, live_lot, json!({"verdict": "recorded"})).await,
        "unchanged"
    );

    let holds = app.holds(&format!("wallet={wallet}")).await;
    let status = |lot: LotId| {
        holds
            .iter()
            .find(|hold| hold["lot_id"] == lot.to_string())
            .map(|hold| {
                (
                    hold["status"].clone(),
                    hold["amount"].clone(),
                    hold["bid_id"].clone(),
                )
            })
    };
    assert_eq!(
        status(orphan_lot).map(|(status, ..)| status),
        Some(json!("released"))
    );
    assert_eq!(
        status(live_lot),
        Some((
            json!("active"),
            json!((5 * ETHER).to_string()),
            json!(live_bid)
        )),
        "a recorded hold is left alone"
    );
    assert_eq!(
        status(raised_lot),
        Some((
            json!("active"),
            json!((2 * ETHER).to_string()),
            json!(raised_bid)
        )),
        "the raise is rolled back to the recorded lead"
    );

    // A hold request for the abandoned bid that arrives late (a call that timed out) is refused.
    let (status, body, _) = place("orphan-late", orphan_lot, orphan_bid, 10 * ETHER).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("bid_abandoned")),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wallet_not_linked_to_the_bidding_account_backs_nothing() {
    let app = spawn().await;
    let signer = funded_wallet(&app.chain, &(10 * ETHER).to_string()).await;
    let wallet = signer.address().to_checksum(None);
    app.account_of(&wallet).await;
    let body = json!({"account": AccountId::new(), "wallet": wallet, "lot_id": LotId::new(), "amount": ETHER.to_string(), "bid_id": BidId::new()});
    let (status, problem, _) = app.hold("place", "stranger", body).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("wallet_not_linked")),
        "{problem}"
    );
    assert!(app.holds(&format!("wallet={wallet}")).await.is_empty());
    app.stop().await;
}

/// A batch of releases is done in one transaction, each release answered as if sent alone with
/// its key: one that fails (a reused key, a captured hold, a failing statement) spoils none of
/// the others, and the batch sent again replays what was done.
#[tokio::test]
async fn a_batch_of_releases_answers_each_as_if_sent_alone() {
    let app = spawn().await;
    let (alice, bob) = (
        funded_wallet(&app.chain, &(10 * ETHER).to_string()).await,
        funded_wallet(&app.chain, &(10 * ETHER).to_string()).await,
    );
    let (alice, bob) = (
        alice.address().to_checksum(None),
        bob.address().to_checksum(None),
    );
    let lots: Vec<LotId> = (0..5).map(|_| LotId::new()).collect();
    let bids: Vec<BidId> = (0..5).map(|_| BidId::new()).collect();
    let owners = [&alice, &alice, &bob, &alice, &bob];
    for (at, owner) in owners.iter().enumerate() {
        let body = json!({"wallet": owner, "lot_id": lots[at], "amount": ETHER.to_string(), "bid_id": bids[at]});
        assert_eq!(app.hold("place", &format!("p-{at}"), body).await.0, 200);
    }
    let capture = json!({"wallet": alice, "lot_id": lots[3], "amount": ETHER.to_string()});
    assert_eq!(app.hold("capture", "c-3", capture).await.0, 200);
    // Lot 1's hold is released alone under a key the batch then reuses for something else.
    let alone = json!({"wallet": alice, "lot_id": lots[1], "bid_id": bids[1]});
    assert_eq!(app.hold("release", "r-1", alone).await.0, 200);
    // Releasing lot 4's hold fails inside the database.
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'this release fails'; END $$;
         CREATE TRIGGER refuse_release BEFORE UPDATE ON holds FOR EACH ROW
         WHEN (NEW.lot_id = '{}') EXECUTE FUNCTION refuse_release();",
        lots[4]
    ))
    .execute(&app.db.pool)
    .await
    .expect("the failing release");

    let batch = json!([
        {"key": "r-0", "wallet": alice, "lot_id": lots[0], "bid_id": bids[0]},
        {"key": "r-1", "wallet": alice, "lot_id": lots[0], "bid_id": bids[0]},
        {"key": "r-2", "wallet": bob, "lot_id": lots[2], "bid_id": bids[2]},
        {"key": "r-3", "wallet": alice, "lot_id": lots[3], "bid_id": bids[3]},
        {"key": "r-4", "wallet": bob, "lot_id": lots[4], "bid_id": bids[4]},
        {"key": "r-stale", "wallet": bob, "lot_id": lots[2], "bid_id": BidId::new()},
    ]);
    let (status, answer) = app.releases(batch.clone()).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().expect("results");
    let summary: Vec<(&str, u64, Option<&str>, Option<&str>)> = results
        .iter()
        .map(|result| {
            (
                result["key"].as_str().unwrap_or_default(),
                result["status"].as_u64().unwrap_or_default(),
                result["body"]["code"].as_str(),
                result["body"]["hold"]["status"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("r-0", 200, None, Some("released")),
            ("r-1", 409, Some("idempotency_key_reused"), None),
            ("r-2", 200, None, Some("released")),
            ("r-3", 409, Some("hold_captured"), None),
            ("r-4", 500, Some("internal"), None),
            // A release naming a bid the hold does not back changes nothing and answers the
            // hold as it stands: released just before, in this batch.
            ("r-stale", 200, None, Some("released")),
        ],
        "{answer}"
    );
    let status_of = |holds: &[Value], lot: LotId| {
        holds
            .iter()
            .find(|hold| hold["lot_id"] == json!(lot))
            .map(|hold| hold["status"].clone())
    };
    let holds = app.holds("").await;
    let states: Vec<_> = lots.iter().map(|lot| status_of(&holds, *lot)).collect();
    assert_eq!(
        states,
        ["released", "released", "released", "captured", "active"]
            .map(|status| Some(json!(status))),
    );
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM hold_requests ORDER BY idempotency_key")
            .fetch_all(&app.db.pool)
            .await
            .expect("stored answers");
    assert!(
        !stored.iter().any(|key| key.ends_with(":r-4")),
        "the failed release stored nothing: {stored:?}"
    );

    // Sent again: what was done is replayed; the failed one fails again, until it can succeed.
    let (_, again) = app.releases(batch.clone()).await;
    assert_eq!(again["results"][0]["replayed"], true);
    assert_eq!(again["results"][0]["body"], results[0]["body"]);
    assert_eq!(again["results"][4]["status"], 500);
    sqlx::raw_sql("DROP TRIGGER refuse_release ON holds")
        .execute(&app.db.pool)
        .await
        .expect("the fault removed");
    let (_, healed) = app.releases(batch).await;
    assert_eq!(
        (
            &healed["results"][4]["status"],
            &healed["results"][4]["body"]["hold"]["status"]
        ),
        (&json!(200), &json!("released")),
        "{healed}"
    );
    // With the fault the batch was done one release at a time; without it, together.
    let name = "gavel_release_batches_total";
    assert_eq!(
        (
            app.metric(name, &["one_at_a_time"]).await,
            app.metric(name, &["together"]).await
        ),
        (2.0, 1.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_batch_of_releases_is_refused_whole_when_malformed() {
    let app = spawn().await;
    let release = |key: &str| json!({"key": key, "wallet": "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "lot_id": LotId::new()});
    let too_many: Vec<Value> = (0..101).map(|at| release(&format!("k-{at}"))).collect();
    for (batch, field) in [
        (json!([]), "releases"),
        (json!(too_many), "releases"),
        (json!([release("twice"), release("twice")]), "releases"),
        (json!([release("a key with spaces")]), "releases"),
    ] {
        let (status, problem) = app.releases(batch).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (400, Some(field)),
            "{problem}"
        );
    }
    let holds: i64 = sqlx::query_scalar("SELECT count(*) FROM hold_requests")
        .fetch_one(&app.db.pool)
        .await
        .expect("count");
    assert_eq!(holds, 0, "nothing was done");
    app.stop().await;
}

/// The set-based path of a batch answers, and leaves the holds, exactly as the same releases
/// sent one by one to the single route: the same scripted releases go one by one to one
/// `wallets` and as one batch to another, over the same wallets, lots and bids.
#[tokio::test]
async fn a_batch_of_releases_ends_as_the_same_releases_sent_one_by_one() {
    let (alone, together) = (spawn().await, spawn().await);
    let (first, second) = (
        funded_wallet(&alone.chain, &(10 * ETHER).to_string()).await,
        funded_wallet(&alone.chain, &(10 * ETHER).to_string()).await,
    );
    let (first, second) = (
        first.address().to_checksum(None),
        second.address().to_checksum(None),
    );
    for wallet in [&first, &second] {
        together
            .chain
            .set_balance(wallet, &(10 * ETHER).to_string())
            .await;
    }
    let lots: Vec<LotId> = (0..5).map(|_| LotId::new()).collect();
    let bids: Vec<BidId> = (0..7).map(|_| BidId::new()).collect();
    for app in [&alone, &together] {
        let places = [
            (&first, 0, 0),
            (&second, 0, 1),
            (&first, 1, 2),
            (&first, 2, 3),
            (&second, 3, 4),
            (&second, 3, 5),
        ];
        for (at, (wallet, lot, bid)) in places.into_iter().enumerate() {
            let amount = (1 + at as u128) * ETHER;
            let body = json!({"wallet": wallet, "lot_id": lots[lot], "amount": amount.to_string(), "bid_id": bids[bid]});
            let (status, answer, _) = app.hold("place", &format!("p-{at}"), body).await;
            assert_eq!(status, 200, "{answer}");
        }
        let capture = json!({"wallet": first, "lot_id": lots[2], "amount": ETHER.to_string()});
        assert_eq!(app.hold("capture", "c", capture).await.0, 200);
        let earlier = json!({"wallet": first, "lot_id": lots[1], "bid_id": bids[2]});
        assert_eq!(app.hold("release", "r-earlier", earlier).await.0, 200);
    }
    let script = json!([
        {"key": "r-0", "wallet": first, "lot_id": lots[0], "bid_id": bids[0]},
        // The same hold again under another key: already released.
        {"key": "r-1", "wallet": first, "lot_id": lots[0], "bid_id": bids[0]},
        // A release for a bid the hold no longer backs, then one for the bid it backs.
        {"key": "r-2", "wallet": second, "lot_id": lots[3], "bid_id": bids[4]},
        {"key": "r-3", "wallet": second, "lot_id": lots[3], "bid_id": bids[5]},
        {"key": "r-4", "wallet": first, "lot_id": lots[2], "bid_id": bids[3]},
        {"key": "r-5", "wallet": second, "lot_id": lots[4]},
        {"key": "r-earlier", "wallet": first, "lot_id": lots[0]},
        {"key": "r-6", "wallet": second, "lot_id": lots[0]},
        {"key": "r-7", "wallet": first, "lot_id": lots[1], "bid_id": bids[2]},
    ]);
    let releases = script.as_array().expect("script");
    let mut expected = Vec::new();
    for release in releases {
        let mut body = release.clone();
        let key = body["key"].as_str().expect("key").to_owned();
        body.as_object_mut().expect("object").remove("key");
        let (status, body, replayed) = alone.hold("release", &key, body).await;
        expected.push(json!({"key": key, "status": status, "body": body, "replayed": replayed}));
    }
    let (status, answer) = together.releases(script.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"], json!(expected));
    assert_eq!(
        together.holds("").await,
        alone.holds("").await,
        "the same holds"
    );
    let (_, again) = together.releases(script).await;
    for (first, second) in answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .zip(again["results"].as_array().expect("results"))
    {
        assert_eq!(
            (&first["status"], &first["body"]),
            (&second["status"], &second["body"])
        );
        assert_eq!(
            second["replayed"],
            first["status"] != 409 || first["body"]["code"] == "hold_captured"
        );
    }
    assert_eq!(
        together
            .metric("gavel_release_batches_total", &["together"])
            .await,
        2.0,
        "both batches took the set-based path"
    );
    alone.stop().await;
    together.stop().await;
}

/// A batch takes each wallet's lock before it decides: a hold another request re-places for a
/// newer bid while holding the lock is not freed by a release for the older bid that arrived
/// meanwhile.
#[tokio::test]
async fn a_batch_waits_for_the_wallets_lock_and_spares_a_hold_placed_meanwhile() {
    let app = spawn().await;
    let signer = funded_wallet(&app.chain, &(10 * ETHER).to_string()).await;
    let wallet = signer.address().to_checksum(None);
    let (lot, older, newer) = (LotId::new(), BidId::new(), BidId::new());
    let place =
        json!({"wallet": wallet, "lot_id": lot, "amount": ETHER.to_string(), "bid_id": older});
    assert_eq!(app.hold("place", "p-older", place).await.0, 200);

    // A raise for the newer bid, under the wallet's lock, not committed yet.
    let address = wallet.to_lowercase();
    let mut raise = app.db.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM ledger_wallets WHERE address = $1 FOR UPDATE")
        .bind(&address)
        .execute(&mut *raise)
        .await
        .expect("the wallet's lock");
    sqlx::query(
        "UPDATE holds SET bid_id = $3, amount = $4::numeric WHERE wallet = $1 AND lot_id = $2",
    )
    .bind(&address)
    .bind(lot.0)
    .bind(newer.0)
    .bind((2 * ETHER).to_string())
    .execute(&mut *raise)
    .await
    .expect("the raise");

    let late = json!([{"key": "r-older", "wallet": wallet, "lot_id": lot, "bid_id": older}]);
    let (answer, ()) = tokio::join!(app.releases(late), async {
        gavel_test_support::wait_until_async(
            "the batch to wait for the wallet's lock",
            std::time::Duration::from_secs(10),
            || async {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND wait_event_type = 'Lock'",
                )
                .fetch_one(&app.db.pool)
                .await
                .expect("activity")
                    > 0
            },
        )
        .await;
        raise.commit().await.expect("the raise commits");
    });
    let (status, answer) = answer;
    let hold = &answer["results"][0]["body"]["hold"];
    assert_eq!(
        (status, &hold["status"], &hold["bid_id"]),
        (200, &json!("active"), &json!(newer)),
        "{answer}"
    );
    let holds = app.holds(&format!("wallet={wallet}")).await;
    assert_eq!(holds.len(), 1);
    assert_eq!(
        (&holds[0]["status"], &holds[0]["amount"]),
        (&json!("active"), &json!((2 * ETHER).to_string()))
    );
    app.stop().await;
}
