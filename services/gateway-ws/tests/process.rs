//! The `gateway-ws` binary starts against its real dependencies, reports ready, and stops cleanly on
//! SIGTERM.

use gavel_test_support::{TestVhost, assert_lifecycle};

#[tokio::test]
async fn the_binary_starts_reports_ready_and_stops_on_sigterm() {
    let vhost = TestVhost::create().await;
    let redis = gavel_test_support::redis_config();
    let env = [
        ("GAVEL_BROKER__URL", vhost.url()),
        ("GAVEL_REDIS__URL", redis.url.expose().to_string()),
        ("GAVEL_REDIS__KEY_PREFIX", redis.key_prefix.clone()),
        (
            "GAVEL_AUTH__JWT_PUBLIC_KEY",
            gavel_test_support::auth::PUBLIC_KEY_PEM.to_owned(),
        ),
        // Nothing listens there: the gateway calls its upstreams only for clients.
        ("GAVEL_UPSTREAM__BIDS", "http://127.0.0.1:9".to_owned()),
        ("GAVEL_UPSTREAM__LOTS", "http://127.0.0.1:9".to_owned()),
        ("GAVEL_UPSTREAM__WALLETS", "http://127.0.0.1:9".to_owned()),
    ];
    assert_lifecycle(env!("CARGO_BIN_EXE_gavel-gateway-ws"), "gateway-ws", &env).await;
}
