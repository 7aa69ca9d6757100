//! `gavel-admin releases` and `gavel-admin reconcile` as an operator runs them: the binary, its
//! settings from the environment, and two real databases migrated as `bids` and `wallets` migrate
//! theirs. (What the commands decide is tested against the running services in
//! `services/bids/tests/operator.rs`.)

use std::process::Output;

use gavel_events::{Increment, LotRules};
use gavel_test_support::TestDatabase;
use gavel_types::Wei;

const FIRST: &str = "0x1111111111111111111111111111111111111111";
const SECOND: &str = "0x2222222222222222222222222222222222222222";

struct World {
    bids: TestDatabase,
    wallets: TestDatabase,
}

impl World {
    /// One open lot: `FIRST` bid 100, `SECOND` leads at 200; both hold; the release of
    /// `FIRST`'s hold is parked.
    async fn new() -> (Self, i64, uuid::Uuid) {
        let (bids, wallets) = (TestDatabase::create().await, TestDatabase::create().await);
        gavel_bids::migrate(&bids.pool).await.expect("bids' schema");
        gavel_wallets::migrate(&wallets.pool)
            .await
            .expect("wallets' schema");
        let (lot, first, second) = (
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
        );
        sqlx::query(
            "INSERT INTO lots (lot_id, seller, seller_wallet, title, rules, status, starts_at, ends_at,
                               price, leader, leader_wallet, leader_max, leader_hold_bid, bid_count, seq)
             VALUES ($1, gen_random_uuid(), $2, 'lamp', $5, 'open', now(), now() + interval '1 hour',
                     200, gen_random_uuid(), $3, 200, $4, 2, 3)",
        )
        .bind(lot)
        .bind(FIRST)
        .bind(SECOND)
        .bind(second)
        .bind(sqlx::types::Json(rules()))
        .execute(&bids.pool)
        .await
        .expect("lot");
        for (bid, wallet, seq, amount) in [(first, FIRST, 2, 100), (second, SECOND, 3, 200)] {
            sqlx::query(
                "INSERT INTO bids (bid_id, lot_id, seq, bidder, wallet, amount, proxy)
                 VALUES ($1, $2, $3, gen_random_uuid(), $4, $5, false)",
            )
            .bind(bid)
            .bind(lot)
            .bind(seq)
            .bind(wallet)
            .bind(amount)
            .execute(&bids.pool)
            .await
            .expect("bid");
            sqlx::query("INSERT INTO ledger_wallets (address) VALUES ($1)")
                .bind(wallet)
                .execute(&wallets.pool)
                .await
                .expect("ledger wallet");
            sqlx::query(
                "INSERT INTO holds (wallet, lot_id, status, amount, bid_id, bid_recorded)
                 VALUES ($1, $2, 'active', $3, $4, true)",
            )
            .bind(wallet)
            .bind(lot)
            .bind(amount)
            .bind(bid)
            .execute(&wallets.pool)
            .await
            .expect("hold");
        }
        let release: i64 = sqlx::query_scalar(
            "INSERT INTO pending_releases (wallet, lot_id, bid_id, attempts, last_error, parked_at)
             VALUES ($1, $2, $3, 10, 'wallets answered 503 Service Unavailable', now()) RETURNING id",
        )
        .bind(FIRST)
        .bind(lot)
        .bind(first)
        .fetch_one(&bids.pool)
        .await
        .expect("parked release");
        (Self { bids, wallets }, release, lot)
    }

    async fn admin(&self, args: &[&str], wallets: bool) -> Output {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gavel-admin"));
        command
            .args(&args)
            .env("GAVEL_DATABASE__URL", self.bids.url());
        if wallets {
            command.env("GAVEL_WALLETS_DATABASE__URL", self.wallets.url());
        }
        tokio::task::spawn_blocking(move || command.output().expect("gavel-admin runs"))
            .await
            .expect("joined")
    }
}

fn rules() -> LotRules {
    let now = chrono::Utc::now();
    LotRules {
        start_price: Wei::from_u128(100),
        increment: Increment::Absolute {
            wei: Wei::from_u128(10),
        },
        reserve: None,
        buy_now: None,
        starts_at: now - chrono::Duration::minutes(1),
        ends_at: now + chrono::Duration::hours(1),
        latest_end: now + chrono::Duration::hours(2),
        snipe_window_secs: 0,
        extension_secs: 0,
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn an_operator_lists_reconciles_and_retries_a_parked_release() {
    let (world, release, _) = World::new().await;

    let listed = world.admin(&["releases", "list"], false).await;
    assert!(listed.status.success(), "{listed:?}");
    let text = stdout(&listed);
    assert!(text.starts_with("1 parked release(s):"), "{text}");
    assert!(
        text.contains(&format!("release {release}: wallet {FIRST}")),
        "{text}"
    );
    assert!(text.contains("503 Service Unavailable"), "{text}");

    let found = world.admin(&["reconcile"], true).await;
    assert_eq!(found.status.code(), Some(1), "{found:?}");
    let text = stdout(&found);
    assert!(
        text.contains("release parked: ")
            && text.contains(&format!("releases retry --id {release}")),
        "{text}"
    );
    assert!(
        text.contains("checked 1 leader(s) and 2 active hold(s)"),
        "{text}"
    );

    let missing = world.admin(&["reconcile"], false).await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("GAVEL_WALLETS_DATABASE__URL"),
        "{missing:?}"
    );

    let unknown = world
        .admin(
            &["releases", "retry", "--id", &(release + 1).to_string()],
            false,
        )
        .await;
    assert!(!unknown.status.success(), "{unknown:?}");
    let retried = world
        .admin(&["releases", "retry", "--id", &release.to_string()], false)
        .await;
    assert!(retried.status.success(), "{retried:?}");
    assert!(stdout(&retried).starts_with("queued 1 parked release(s) again"));
    let (attempts, parked): (i32, bool) = sqlx::query_as(
        "SELECT attempts, parked_at IS NOT NULL FROM pending_releases WHERE id = $1",
    )
    .bind(release)
    .fetch_one(&world.bids.pool)
    .await
    .expect("the release");
    assert_eq!((attempts, parked), (0, false));

    // Queued again, the release is what the hold waits for: nothing for an operator.
    let clean = world.admin(&["reconcile"], true).await;
    assert!(clean.status.success(), "{clean:?}");
    assert!(
        stdout(&clean).contains("0 difference(s)"),
        "{}",
        stdout(&clean)
    );

    let usage = world.admin(&["releases", "drop"], false).await;
    assert!(!usage.status.success());
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage:"));
}

#[tokio::test]
async fn an_operator_cancels_a_lot_with_a_reason() {
    let (world, _, lot) = World::new().await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let missing = world
        .admin(
            &["lots", "cancel", &unknown, "--reason", "stolen goods"],
            false,
        )
        .await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("bids does not know lot"),
        "{missing:?}"
    );

    let lot = lot.to_string();
    let cancelled = world
        .admin(&["lots", "cancel", &lot, "--reason", "stolen goods"], false)
        .await;
    assert!(cancelled.status.success(), "{cancelled:?}");
    assert_eq!(
        stdout(&cancelled).trim(),
        format!("cancelled lot {lot}; the release of {SECOND}'s hold is queued")
    );
    let (kind, reason): (String, Option<String>) = sqlx::query_as(
        "SELECT event_type, envelope->'payload'->>'reason' FROM lot_events ORDER BY seq DESC LIMIT 1",
    )
    .fetch_one(&world.bids.pool)
    .await
    .expect("the event");
    assert_eq!(
        (kind.as_str(), reason.as_deref()),
        ("auction.cancelled", Some("stolen goods"))
    );

    let again = world
        .admin(&["lots", "close", &lot, "--reason", "fake"], false)
        .await;
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is cancelled: nothing changed"),
        "{again:?}"
    );
}

/// The fault suite's checker is not vacuous: given answers that disagree with the databases and
/// wallets whose holds exceed their (empty) balances, it counts each violation and exits 1.
#[tokio::test]
async fn the_invariant_checker_counts_what_went_wrong() {
    let (world, _, lot) = World::new().await;
    let chain = gavel_test_support::DevChain::start();
    // `FIRST`'s bid (sequence 2) was requested with key "kept", `SECOND`'s with "refused".
    for (key, seq) in [("kept", 2), ("refused", 3)] {
        sqlx::query(
            "INSERT INTO bid_requests (bidder, idempotency_key, bid_id, fingerprint, status_code)
             SELECT bidder, $1, bid_id, 'f', 201 FROM bids WHERE seq = $2",
        )
        .bind(key)
        .bind(seq)
        .execute(&world.bids.pool)
        .await
        .expect("request");
    }
    let acks = [
        format!(r#"{{"key":"kept","lot":"{lot}","outcome":"accepted","sequence":2}}"#),
        format!(r#"{{"key":"lost","lot":"{lot}","outcome":"accepted","sequence":4}}"#),
        format!(r#"{{"key":"refused","lot":"{lot}","outcome":"too_low"}}"#),
        format!(r#"{{"key":"unknown","lot":"{lot}","outcome":"upstream_unavailable"}}"#),
    ];
    let file = std::env::temp_dir().join(format!("acks-{lot}.jsonl"));
    std::fs::write(&file, acks.join("\n")).expect("written");

    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gavel-admin"));
    command
        .args([
            "check",
            "--acks",
            file.to_str().expect("utf-8"),
            "--settle",
            "1s",
        ])
        .env("GAVEL_DATABASE__URL", world.bids.url())
        .env("GAVEL_WALLETS_DATABASE__URL", world.wallets.url())
        // Only outboxes and inboxes are read from lots' database: wallets' has both tables.
        .env("GAVEL_LOTS_DATABASE__URL", world.wallets.url())
        .env("GAVEL_CHAIN__RPC_URL", &chain.url);
    let output = tokio::task::spawn_blocking(move || command.output().expect("runs"))
        .await
        .expect("joined");
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        text.starts_with("4 answers (2 accepted, 1 refused for certain, 1 of unknown outcome)"),
        "{text}"
    );
    for row in [
        "| accepted bids lost | 1 |",
        "| refused bids recorded | 1 |",
        "| lots with a gap or repeat in their log | 1 |",
        "| lots closed more than once | 0 |",
        "| wallets over-committed | 2 |",
        "| hold differences (reconcile) | 1 |",
        "| events not delivered to every consumer | 0 |",
    ] {
        assert!(text.contains(row), "{row} in\n{text}");
    }
    let _ = std::fs::remove_file(file);
}
