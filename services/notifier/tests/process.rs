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

/// Issue 17: when `getMe` fails the process says why in our words — and never prints the token,
/// which Telegram's request URLs carry.
#[tokio::test]
async fn a_failed_get_me_says_why_without_the_token() {
    let db = TestDatabase::create().await;
    let vhost = TestVhost::create().await;
    let telegram = gavel_test_support::FakeTelegram::start().await;
    let cases = [
        // Nothing listens on port 9 here: the connection is refused.
        (
            "http://127.0.0.1:9".to_owned(),
            telegram.token.clone(),
            "could not reach Telegram at all",
        ),
        (
            telegram.url.clone(),
            "123:not-the-token".to_owned(),
            "Telegram does not know the bot token",
        ),
    ];
    for (api_url, token, expected) in cases {
        let env = [
            ("GAVEL_DATABASE__URL", db.url()),
            ("GAVEL_BROKER__URL", vhost.url()),
            (
                "GAVEL_AUTH__JWT_PUBLIC_KEY",
                gavel_test_support::auth::PUBLIC_KEY_PEM.to_owned(),
            ),
            ("GAVEL_TELEGRAM__TOKEN", token.clone()),
            ("GAVEL_TELEGRAM__API_URL", api_url),
            ("GAVEL_HTTP__ADDR", "127.0.0.1:0".to_owned()),
            ("GAVEL_ADMIN__ADDR", "127.0.0.1:0".to_owned()),
            ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
        ];
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gavel-notifier"))
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("started");
        let pid = child.id();
        let output = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            tokio::task::spawn_blocking(move || child.wait_with_output()),
        )
        .await
        .unwrap_or_else(|_| {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("the notifier did not give up on getMe within 60 s")
        })
        .expect("joined")
        .expect("ran");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(stderr.contains("getMe"), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains(&token), "the token leaked: {stderr}");
    }
}
