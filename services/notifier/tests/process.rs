//! The `notifier` binary starts against its real dependencies, reports ready, and stops cleanly on
//! SIGTERM.

use gavel_test_support::{TestDatabase, TestVhost, assert_lifecycle};

#[tokio::test]
async fn the_binary_starts_reports_ready_and_stops_on_sigterm() {
    let db = TestDatabase::create().await;
    let vhost = TestVhost::create().await;
    let env = [
        ("GAVEL_DATABASE__URL", db.url()),
        ("GAVEL_BROKER__URL", vhost.url()),
        (
            "GAVEL_AUTH__JWT_PUBLIC_KEY",
            gavel_test_support::auth::PUBLIC_KEY_PEM.to_owned(),
        ),
    ];
    assert_lifecycle(env!("CARGO_BIN_EXE_gavel-notifier"), "notifier", &env).await;
}
