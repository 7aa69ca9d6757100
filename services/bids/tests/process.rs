//! The `bids` binary starts against its real dependencies, reports ready, and stops cleanly on
//! SIGTERM.

use gavel_test_support::{TestDatabase, TestVhost, assert_lifecycle};

#[tokio::test]
async fn the_binary_starts_reports_ready_and_stops_on_sigterm() {
    let db = TestDatabase::create().await;
    let vhost = TestVhost::create().await;
    let redis = gavel_test_support::redis_config();
    let env = [
        // Not the default port: tests and a local run bind side by side.
        ("GAVEL_INTERNAL__ADDR", "127.0.0.1:0".to_owned()),
        ("GAVEL_DATABASE__URL", db.url()),
        ("GAVEL_BROKER__URL", vhost.url()),
        ("GAVEL_REDIS__URL", redis.url.expose().to_string()),
        ("GAVEL_REDIS__KEY_PREFIX", redis.key_prefix.clone()),
        (
            "GAVEL_AUTH__JWT_PUBLIC_KEY",
            gavel_test_support::auth::PUBLIC_KEY_PEM.to_owned(),
        ),
        ("GAVEL_WALLETS__URL", "http://127.0.0.1:9".to_owned()),
        ("GAVEL_WALLETS__TOKEN", "unused-in-this-test".to_owned()),
    ];
    assert_lifecycle(env!("CARGO_BIN_EXE_gavel-bids"), "bids", &env).await;
}
