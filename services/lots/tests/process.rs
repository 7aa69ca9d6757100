//! The `lots` binary starts against its real dependencies, reports ready, and stops cleanly on
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
        ("GAVEL_S3__ENDPOINT", "http://127.0.0.1:9000".to_owned()),
        (
            "GAVEL_S3__BUCKET",
            format!(
                "gavel-test-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..16]
            ),
        ),
        ("GAVEL_S3__ACCESS_KEY_ID", "gavel".to_owned()),
        ("GAVEL_S3__SECRET_ACCESS_KEY", "gavel-secret".to_owned()),
        ("GAVEL_S3__CREATE_BUCKET", "true".to_owned()),
        // Asked only when a seller changes a lot.
        ("GAVEL_BIDS__URL", "http://127.0.0.1:1".to_owned()),
        ("GAVEL_BIDS__TOKEN", "unused".to_owned()),
    ];
    assert_lifecycle(env!("CARGO_BIN_EXE_gavel-lots"), "lots", &env).await;
}
