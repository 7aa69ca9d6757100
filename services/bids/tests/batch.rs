//! The lot's writer decides the bids waiting for a lot together, in one transaction: a batch must
//! decide each bid exactly as it would have alone, and a bid whose hold fails must spoil none of
//! the bids batched with it. Against the real engine, a real `wallets` (with faults installed as
//! triggers in its database), PostgreSQL, RabbitMQ, Redis and a dev chain.

mod common;

use std::time::Duration;

use common::{Bidder, DEADLINE, World, rules, world};
use futures_util::future::join_all;
use gavel_test_support::wait_until_async;
use gavel_types::AccountId;

/// Installs a trigger on `wallets`' holds: `body` runs before a hold for `bidder`'s wallet is
/// written.
async fn on_hold(world: &World, name: &str, bidder: &Bidder, body: &str) {
    for sql in [
        format!(
            "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} END $$"
        ),
        format!(
            "CREATE TRIGGER {name} BEFORE INSERT ON holds FOR EACH ROW
             WHEN (NEW.wallet = '{}' AND NEW.status = 'active') EXECUTE FUNCTION {name}()",
            bidder.wallet.to_lowercase_hex()
        ),
    ] {
        sqlx::query(&sql)
            .execute(&world.wallets_db.pool)
            .await
            .expect("fault installed");
    }
}

#[tokio::test]
async fn bids_waiting_for_a_lot_are_decided_together_and_a_failed_hold_spoils_none_of_them() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let slow = world.bidder("1000000").await;
    let doomed = world.bidder("1000000").await;
    let twin = world.bidder("1000000").await;
    let reuser = world.bidder("1000000").await;
    let mut others = Vec::new();
    for _ in 0..30 {
        others.push(world.bidder("1000000").await);
    }
    // The first bid's hold takes a second, so every other bid queues behind it; the doomed
    // bidder's hold fails (wallets answers 500).
    on_hold(
        &world,
        "slow_hold",
        &slow,
        "PERFORM pg_sleep(1); RETURN NEW;",
    )
    .await;
    on_hold(
        &world,
        "refuse_hold",
        &doomed,
        "RAISE EXCEPTION 'the disk is on fire';",
    )
    .await;

    let first = world.bid(&engine, &slow, lot, "slow", 100, None);
    let queued = async {
        wait_until_async("the first hold to be in progress", DEADLINE, || async {
            world
                .wallets_scalar::<i64>(
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event = 'PgSleep'",
                )
                .await
                > 0
        })
        .await;
        // A retry sent twice, and one key sent with two different bids, queue with the rest.
        let mut requests = vec![
            world.bid(&engine, &doomed, lot, "doomed", 5000, None),
            world.bid(&engine, &twin, lot, "twin", 150, None),
            world.bid(&engine, &twin, lot, "twin", 150, None),
            world.bid(&engine, &reuser, lot, "reused", 160, None),
            world.bid(&engine, &reuser, lot, "reused", 170, None),
        ];
        for (i, bidder) in others.iter().enumerate() {
            let amount = 200 + 10 * i as u128;
            requests.push(world.bid(&engine, bidder, lot, "other", amount, None));
        }
        join_all(requests).await
    };
    let (first, mut queued) = tokio::join!(first, queued);
    assert_eq!(first.0, 201, "{}", first.1);

    let reused: Vec<_> = queued.drain(3..5).collect();
    let twins: Vec<_> = queued.drain(1..3).collect();
    assert_eq!(twins[0].1, twins[1].1, "a twin gets the same answer");
    assert!(twins[0].1["result"].is_string(), "{twins:?}");
    assert_eq!(
        twins.iter().filter(|(_, _, replayed)| *replayed).count(),
        1,
        "one twin decided, the other replayed: {twins:?}"
    );
    let refused_reuse = reused
        .iter()
        .filter(|(status, body, _)| *status == 409 && body["code"] == "idempotency_key_reused")
        .count();
    assert_eq!(refused_reuse, 1, "{reused:?}");
    assert!(
        reused.iter().any(|(_, body, _)| body["result"].is_string()),
        "{reused:?}"
    );

    let (status, body, _) = &queued[0];
    assert_eq!(*status, 503, "the doomed bid's hold failed: {body}");
    assert_eq!(body["code"], "holds_unavailable", "{body}");
    let results = common::raced_results(&queued[1..]);
    let accepted = |answers: &[(u16, serde_json::Value, bool)]| {
        answers
            .iter()
            .filter(|(_, body, _)| body["result"] == "accepted")
            .count()
    };
    assert!(accepted(&queued) >= 1, "{results:?}");

    // The bids queued behind the slow hold were decided together.
    let batches = engine.metric("gavel_bid_batch_size_count", &[]).await;
    let alone = engine
        .metric("gavel_bid_batch_size_bucket", &[r#"le="1""#])
        .await;
    assert!(
        batches - alone >= 1.0,
        "{batches} batches, {alone} of one bid: none shared a transaction"
    );

    // Every decision holds as if the bids had come one at a time: a gapless log, each recorded
    // bid beating the one before by the increment, one hold left, the leader's.
    let seqs = world.log_seqs(lot).await;
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(
        seqs.len(),
        2 + accepted(&queued) + accepted(&twins[..1]) + accepted(&reused),
        "opened, the first bid, every accepted one"
    );
    let amounts = world.bid_amounts(lot).await;
    assert!(
        amounts.windows(2).all(|pair| pair[1] >= pair[0] + 10),
        "{amounts:?}"
    );
    assert_eq!(
        world
            .scalar::<i64>("SELECT count(*) FROM bid_requests WHERE idempotency_key = 'doomed'")
            .await,
        0,
        "the failed bid left nothing behind (its savepoint was rolled back): a retry decides it afresh"
    );
    wait_until_async("one active hold, the leader's", DEADLINE, || async {
        world.active_holds(lot).await.len() == 1
    })
    .await;

    // Once wallets recovers, the doomed bidder's retry under the same key leads.
    sqlx::query("DROP TRIGGER refuse_hold ON holds")
        .execute(&world.wallets_db.pool)
        .await
        .expect("fault removed");
    let (status, body, replayed) = world.bid(&engine, &doomed, lot, "doomed", 5000, None).await;
    assert_eq!((status, replayed), (201, false), "{body}");
    assert_eq!(body["leading"], true, "{body}");
    wait_until_async("the doomed bidder's hold alone", DEADLINE, || async {
        let active = world.active_holds(lot).await;
        active.len() == 1 && active[0].0.to_lowercase() == doomed.wallet.to_lowercase_hex()
    })
    .await;
    engine.stop().await;
}
