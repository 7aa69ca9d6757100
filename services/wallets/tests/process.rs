//! The `wallets` binary starts against its real dependencies, reports ready, and stops cleanly on
//! SIGTERM.

use gavel_test_support::{DevChain, TestDatabase, TestVhost, assert_lifecycle, auth};

#[tokio::test]
async fn the_binary_starts_reports_ready_and_stops_on_sigterm() {
    let db = TestDatabase::create().await;
    let vhost = TestVhost::create().await;
    let redis = gavel_test_support::redis_config();
    let chain = DevChain::start();
    let env = [
        // Not the default port: tests and a local run bind side by side.
        ("GAVEL_INTERNAL__ADDR", "127.0.0.1:0".to_owned()),
        ("GAVEL_DATABASE__URL", db.url()),
        ("GAVEL_BROKER__URL", vhost.url()),
        ("GAVEL_REDIS__URL", redis.url.expose().to_string()),
        ("GAVEL_REDIS__KEY_PREFIX", redis.key_prefix.clone()),
        ("GAVEL_CHAIN__RPC_URL", chain.url.clone()),
        ("GAVEL_CHAIN__CHAIN_ID", "31337".to_owned()),
        ("GAVEL_SIGN_IN__DOMAIN", "localhost:8080".to_owned()),
        ("GAVEL_SIGN_IN__URI", "http://localhost:8080".to_owned()),
        (
            "GAVEL_TOKENS__PRIVATE_KEY",
            auth::PRIVATE_KEY_PEM.to_owned(),
        ),
    ];
    assert_lifecycle(env!("CARGO_BIN_EXE_gavel-wallets"), "wallets", &env).await;
}
