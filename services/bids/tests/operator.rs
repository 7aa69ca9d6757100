//! The operator's tools on `bids` (what `gavel-admin releases` and `gavel-admin reconcile` run),
//! against the real engine and a real `wallets`. The fault: `wallets`' database refuses to
//! release one wallet's hold (a trigger raising an error), so the engine's release of it fails
//! until it is parked.

mod common;

use std::time::Duration;

use common::{Bidder, DEADLINE, Engine, World, rules, world};
use gavel_bids::engine::Hooks;
use gavel_bids::operator::{self, Difference, Ended, HeldHold};
use gavel_bids::rules::Status;
use gavel_events::Outcome;
use gavel_test_support::wait_until_async;
use gavel_types::{AccountId, BidId, LotId, Wei};

const GRACE: Duration = Duration::from_secs(60);

/// A lot on which `first` bid 100 and `second` outbid it at 200, with the release of `first`'s
/// hold parked because `wallets` could not apply it.
struct Parked {
    world: World,
    engine: Engine,
    lot: LotId,
    first: Bidder,
    second: Bidder,
    release: operator::ParkedRelease,
}

async fn a_parked_release() -> Parked {
    let world = world(Duration::from_secs(3600)).await;
    let mut config = world.config(10_000);
    config.releases.retry = Duration::from_millis(50);
    config.releases.backoff_max = Duration::from_millis(50);
    config.releases.max_attempts = 2;
    let engine = world.engine_with(config, Hooks::default()).await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let (first, second) = (world.bidder("1000").await, world.bidder("1000").await);
    assert_eq!(world.bid(&engine, &first, lot, "1", 100, None).await.0, 201);
    world
        .break_releases(&format!(
            "OLD.wallet = '{}'",
            first.wallet.to_lowercase_hex()
        ))
        .await;
    assert_eq!(
        world.bid(&engine, &second, lot, "2", 200, None).await.0,
        201
    );
    wait_until_async("the failing release to be parked", DEADLINE, || async {
        world
            .scalar::<i64>("SELECT count(*) FROM pending_releases WHERE parked_at IS NOT NULL")
            .await
            == 1
    })
    .await;
    let mut parked = operator::parked_releases(&world.db.pool, 10)
        .await
        .expect("listed");
    let release = parked.pop().expect("one parked release");
    // Both holds count as recorded (wallets heard both auction.bid_accepted).
    wait_until_async("wallets to record both bids", DEADLINE, || async {
        world
            .wallets_scalar::<i64>(
                "SELECT count(*) FROM holds WHERE status = 'active' AND bid_recorded",
            )
            .await
            == 2
    })
    .await;
    Parked {
        world,
        engine,
        lot,
        first,
        second,
        release,
    }
}

async fn reconcile(world: &World, repair: bool) -> operator::Reconciliation {
    operator::reconcile(&world.db.pool, &world.wallets_db.pool, GRACE, repair)
        .await
        .expect("reconciled")
}

#[tokio::test]
async fn a_parked_release_is_listed_shown_by_reconciling_and_delivered_when_retried() {
    let Parked {
        world,
        engine,
        lot,
        first,
        second,
        release,
    } = a_parked_release().await;
    assert_eq!(
        (release.wallet.as_str(), release.lot_id, release.attempts),
        (first.wallet.to_lowercase_hex().as_str(), lot, 2)
    );
    let error = release.last_error.clone().unwrap_or_default();
    assert!(
        error.contains("500") || error.contains("wallets"),
        "{error}"
    );
    assert!(release.to_string().contains("parked"), "{release}");

    let found = reconcile(&world, false).await;
    assert_eq!(
        found.differences,
        [Difference::ReleaseParked {
            lot_id: lot,
            wallet: first.wallet,
            bid_id: release.bid_id,
            release: release.id,
        }]
    );
    assert_eq!((found.leaders, found.holds), (1, 2));

    world.heal_releases().await;
    assert_eq!(
        operator::retry_releases(&world.db.pool, Some(release.id + 1))
            .await
            .expect("retried"),
        0,
        "no parked release has that id"
    );
    assert_eq!(
        operator::retry_releases(&world.db.pool, Some(release.id))
            .await
            .expect("retried"),
        1
    );
    wait_until_async("the retried release to be delivered", DEADLINE, || async {
        world.active_holds(lot).await == [(second.wallet.to_string(), "200".to_owned())]
    })
    .await;
    assert!(
        operator::parked_releases(&world.db.pool, 10)
            .await
            .expect("listed")
            .is_empty()
    );
    let found = reconcile(&world, false).await;
    assert_eq!((found.differences, found.holds), (vec![], 1));
    engine.stop().await;
}

#[tokio::test]
async fn reconciling_queues_the_release_of_a_stale_hold_and_reports_an_unbacked_leader() {
    let Parked {
        world,
        engine,
        lot,
        first,
        second,
        release,
    } = a_parked_release().await;
    // The queued release is lost (e.g. the table restored from an earlier backup).
    sqlx::query("DELETE FROM pending_releases")
        .execute(&world.db.pool)
        .await
        .expect("lost");
    world.heal_releases().await;
    let stale = Difference::StaleHold {
        lot_id: lot,
        wallet: first.wallet,
        bid_id: release.bid_id,
        amount: Wei::from_u128(100),
    };
    let found = reconcile(&world, false).await;
    assert_eq!(
        (&found.differences, found.repaired),
        (&vec![stale.clone()], 0)
    );
    assert!(
        found.differences[0].to_string().starts_with("stale hold"),
        "{}",
        found.differences[0]
    );
    assert_eq!(
        world.active_holds(lot).await.len(),
        2,
        "reporting changes nothing"
    );

    let found = reconcile(&world, true).await;
    assert_eq!((&found.differences, found.repaired), (&vec![stale], 1));
    wait_until_async("the queued release to be delivered", DEADLINE, || async {
        world.active_holds(lot).await == [(second.wallet.to_string(), "200".to_owned())]
    })
    .await;
    assert_eq!(reconcile(&world, false).await.differences, []);

    // wallets loses the leader's hold: the money the engine counts on is not reserved.
    sqlx::query("UPDATE holds SET status = 'released' WHERE wallet = $1")
        .bind(second.wallet.to_lowercase_hex())
        .execute(&world.wallets_db.pool)
        .await
        .expect("lost");
    let bid: uuid::Uuid = world
        .scalar(&format!(
            "SELECT leader_hold_bid FROM lots WHERE lot_id = '{lot}'"
        ))
        .await;
    let found = reconcile(&world, true).await;
    assert_eq!(
        found.differences,
        [Difference::LeaderUnbacked {
            lot_id: lot,
            wallet: second.wallet,
            bid_id: BidId(bid),
            max: Wei::from_u128(200),
            held: Some(HeldHold {
                status: "released".to_owned(),
                amount: Wei::from_u128(200),
                bid_id: Some(BidId(bid)),
            }),
        }]
    );
    assert_eq!(found.repaired, 0, "an unbacked leader is only reported");
    engine.stop().await;
}

/// Stored answers go after `retention.idempotency`, in `bids` and in `wallets`; a bid cut off
/// before its answer was stored stays, so its retry can still finish it.
#[tokio::test]
async fn answers_past_their_retention_are_forgotten_but_undecided_requests_stay() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let bidder = world.bidder("1000").await;
    assert_eq!(
        world.bid(&engine, &bidder, lot, "old", 100, None).await.0,
        201
    );
    assert_eq!(
        world.bid(&engine, &bidder, lot, "new", 150, None).await.0,
        201
    );
    for sql in [
        "UPDATE bid_requests SET created_at = now() - interval '8 days' WHERE idempotency_key = 'old'",
        "INSERT INTO bid_requests (bidder, idempotency_key, bid_id, fingerprint, created_at)
         SELECT bidder, 'cut-off', gen_random_uuid(), fingerprint, now() - interval '8 days'
         FROM bid_requests WHERE idempotency_key = 'old'",
    ] {
        sqlx::query(sql)
            .execute(&world.db.pool)
            .await
            .expect("aged");
    }
    sqlx::query("UPDATE hold_requests SET created_at = now() - interval '8 days' WHERE seq = (SELECT min(seq) FROM hold_requests)")
        .execute(&world.wallets_db.pool)
        .await
        .expect("aged");
    let holds_before: i64 = world
        .wallets_scalar("SELECT count(*) FROM hold_requests")
        .await;

    let retention = gavel_common::idempotency::RetentionConfig::default();
    let bids = gavel_bids::stored_answers(world.db.pool.clone(), &retention);
    assert_eq!(bids.prune().await.expect("pruned"), 1);
    let keys: Vec<String> =
        sqlx::query_scalar("SELECT idempotency_key FROM bid_requests ORDER BY idempotency_key")
            .fetch_all(&world.db.pool)
            .await
            .expect("keys");
    assert_eq!(keys, ["cut-off", "new"]);
    let wallets = gavel_wallets::stored_answers(world.wallets_db.pool.clone(), &retention);
    assert_eq!(wallets.prune().await.expect("pruned"), 1);
    assert_eq!(
        world
            .wallets_scalar::<i64>("SELECT count(*) FROM hold_requests")
            .await,
        holds_before - 1
    );

    // A forgotten key is a new request; a kept one still replays.
    let (_, _, replayed) = world.bid(&engine, &bidder, lot, "old", 100, None).await;
    assert!(!replayed);
    let (status, _, replayed) = world.bid(&engine, &bidder, lot, "new", 150, None).await;
    assert_eq!((status, replayed), (201, true));
    engine.stop().await;
}

/// The operator's early ends go through the lot's lock and out as events like any close: a
/// closed lot sells to its leader (wallets captures the hold), a cancelled one releases it.
#[tokio::test]
async fn an_operator_closes_one_lot_early_and_cancels_another_with_bids() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let seller = AccountId::new();
    let (sold, cancelled) = (
        world.create_lot(&engine, rules(), seller).await,
        world.create_lot(&engine, rules(), seller).await,
    );
    let (first, second) = (world.bidder("1000").await, world.bidder("1000").await);
    assert_eq!(
        world.bid(&engine, &first, sold, "1", 100, None).await.0,
        201
    );
    assert_eq!(
        world.bid(&engine, &second, sold, "2", 200, None).await.0,
        201
    );
    assert_eq!(
        world
            .bid(&engine, &first, cancelled, "3", 100, None)
            .await
            .0,
        201
    );
    let pool = &world.db.pool;

    assert!(matches!(
        operator::close_now(pool, sold, "  ").await,
        Err(operator::EndError::Reason)
    ));
    let ended = operator::close_now(pool, sold, "the listing was a fake")
        .await
        .expect("closed");
    let Ended::Closed(Outcome::Sold {
        winner_wallet,
        price,
        ..
    }) = ended
    else {
        panic!("sold to the leader: {ended:?}");
    };
    assert_eq!((winner_wallet, price), (second.wallet, Wei::from_u128(200)));
    let last = |lot: LotId| {
        let world = &world;
        async move {
            world
                .scalar::<serde_json::Value>(&format!(
                    "SELECT envelope FROM lot_events WHERE lot_id = '{lot}' ORDER BY seq DESC LIMIT 1"
                ))
                .await
        }
    };
    let event = last(sold).await;
    assert_eq!(
        (event["type"].as_str(), event["payload"]["reason"].as_str()),
        (Some("auction.closed"), Some("the listing was a fake")),
        "{event}"
    );
    wait_until_async("wallets to capture the winner's hold", DEADLINE, || async {
        world.holds(sold).await.contains(&(
            second.wallet.to_string(),
            "captured".to_owned(),
            "200".to_owned(),
        ))
    })
    .await;
    let (status, body, _) = world.bid(&engine, &first, sold, "4", 300, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("closed")),
        "{body}"
    );
    assert_eq!(
        operator::close_now(pool, sold, "again")
            .await
            .expect("answered"),
        Ended::AlreadyEnded(Status::Closed)
    );
    assert_eq!(
        operator::cancel(pool, sold, "too late")
            .await
            .expect("answered"),
        Ended::AlreadyEnded(Status::Closed)
    );

    assert_eq!(
        operator::cancel(pool, cancelled, "stolen goods")
            .await
            .expect("cancelled"),
        Ended::Cancelled {
            released: Some(first.wallet)
        }
    );
    let event = last(cancelled).await;
    assert_eq!(
        (event["type"].as_str(), event["payload"]["reason"].as_str()),
        (Some("auction.cancelled"), Some("stolen goods")),
        "{event}"
    );
    wait_until_async("the leader's hold to be released", DEADLINE, || async {
        world.active_holds(cancelled).await.is_empty()
    })
    .await;
    let (status, _, _) = world.bid(&engine, &second, cancelled, "5", 500, None).await;
    assert_eq!(status, 409);
    assert_eq!(
        operator::cancel(pool, LotId::new(), "no such lot")
            .await
            .expect("answered"),
        Ended::NotFound
    );
    assert_eq!(reconcile(&world, false).await.differences, []);
    engine.stop().await;
}

/// Found in review: a lot cancelled while its leader's newer hold was in flight (the engine died
/// between placing the hold and recording the bid) must not get that hold "restored" to the
/// leader's earlier bid by repair — `wallets` does not follow `auction.cancelled`, so the restored
/// hold would lock the bidder's money for good. Repair releases it instead.
#[tokio::test]
async fn repair_after_a_cancel_releases_the_hold_instead_of_restoring_it() {
    let world = world(Duration::from_millis(500)).await;
    let engine = world.engine().await;
    let lot = world.create_lot(&engine, rules(), AccountId::new()).await;
    let bidder = world.bidder("100000").await;
    assert_eq!(
        world.bid(&engine, &bidder, lot, "first", 100, None).await.0,
        201
    );
    wait_until_async("wallets to record the first bid", DEADLINE, || async {
        world
            .wallets_scalar::<i64>("SELECT count(*) FROM holds WHERE bid_recorded")
            .await
            == 1
    })
    .await;
    engine.stop().await;

    // The bidder raises; the engine dies with the new hold placed and the bid not recorded.
    let doomed = world.stalling_engine().await;
    world
        .bid_and_crash_after_hold(doomed, &bidder, lot, "raise", 300)
        .await;

    assert_eq!(
        operator::cancel(&world.db.pool, lot, "stolen goods")
            .await
            .expect("cancelled"),
        Ended::Cancelled {
            released: Some(bidder.wallet)
        }
    );
    let restarted = world.engine().await;
    wait_until_async(
        "every hold on the cancelled lot to be released",
        DEADLINE,
        || async { world.active_holds(lot).await.is_empty() },
    )
    .await;
    assert_eq!(reconcile(&world, false).await.differences, []);
    restarted.stop().await;
}
