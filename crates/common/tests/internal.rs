//! Calls between services survive a kept-alive connection the server closes as a request goes
//! out, when the request is safe to send again.

use std::time::Duration;

use gavel_common::config::Secret;
use gavel_common::internal::{PeerConfig, ServiceClient};
use gavel_test_support::{Closing, ClosingPeer};
use serde_json::json;

fn client(peer: &ClosingPeer) -> ServiceClient {
    ServiceClient::new(&PeerConfig {
        url: peer.url.parse().expect("url"),
        token: Secret::new("token"),
        timeout: Duration::from_secs(5),
    })
    .expect("client")
}

fn keys(heads: &[String]) -> Vec<Option<String>> {
    heads
        .iter()
        .map(|head| {
            head.lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("idempotency-key"))
                .map(|(_, value)| value.trim().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_keyed_change_closed_before_its_answer_is_sent_again_with_its_key() {
    let peer = ClosingPeer::start().await;
    let client = client(&peer);
    let first = client
        .post("/internal/holds/release", Some("release-1"), &json!({}))
        .await
        .expect("the first call is answered");
    assert_eq!(first.0, 200);

    // The pooled connection is reused and closed under the request: it goes out again.
    let second = client
        .post("/internal/holds/release", Some("release-2"), &json!({}))
        .await
        .expect("the request is sent again on a fresh connection");
    assert_eq!(second, (200, json!({"ok": true})));
    assert_eq!(
        keys(&peer.heads()),
        [
            Some("release-1".to_owned()),
            Some("release-2".to_owned()),
            Some("release-2".to_owned())
        ],
        "the second request went out twice, under its key both times",
    );
}

#[tokio::test]
async fn a_read_closed_before_its_answer_is_sent_again() {
    let peer = ClosingPeer::start().await;
    let client = client(&peer);
    assert_eq!(client.get("/internal/holds").await.expect("first").0, 200);
    assert_eq!(
        client.get("/internal/holds").await.expect("sent again").0,
        200
    );
    assert_eq!(peer.heads().len(), 3);
}

#[tokio::test]
async fn a_change_without_a_key_is_never_sent_twice() {
    let peer = ClosingPeer::start().await;
    let client = client(&peer);
    assert_eq!(
        client
            .post("/internal/holds/verdict", None, &json!({}))
            .await
            .expect("first")
            .0,
        200
    );
    client
        .post("/internal/holds/verdict", None, &json!({}))
        .await
        .expect_err("the server may have acted on it: the caller decides");
    assert_eq!(peer.heads().len(), 2);
}

#[tokio::test]
async fn a_keyed_change_whose_connection_is_reset_is_sent_again() {
    let peer = ClosingPeer::closing(Closing::WithUnreadRequest).await;
    let client = client(&peer);
    assert_eq!(
        client
            .post("/internal/holds/place", Some("hold-1"), &json!({}))
            .await
            .expect("first")
            .0,
        200
    );
    let second = client
        .post("/internal/holds/place", Some("hold-2"), &json!({}))
        .await
        .expect("the request is sent again after the reset");
    assert_eq!(second.0, 200);
    assert_eq!(peer.heads().len(), 3);
}
