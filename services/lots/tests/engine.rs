//! `lots` and the auction engine agree on sellers' changes (scenario 4 of the money-path
//! review). Here `lots` runs on a vhost of its own, so its event-fed copy never hears of any bid:
//! the worst case of a lagging copy. Whatever the copy believes, the seller gets the engine's
//! answer, and what the seller sees is what the engine applies.

#[path = "../../bids/tests/common/mod.rs"]
mod bids;
mod common;

use std::time::Duration;

use gavel_common::config::Secret;
use gavel_common::internal::PeerConfig;
use gavel_lots::config::PhotoLimits;
use gavel_messaging::Envelope;
use gavel_test_support::{TestVhost, wait_until_async};
use gavel_types::LotId;
use reqwest::Method;
use serde_json::{Value, json};

/// The lot `lots` created, forwarded to the engine as its relay would have.
async fn forward_created(world: &bids::World, app: &common::TestApp) {
    let envelope: sqlx::types::Json<Envelope> = sqlx::query_scalar(
        "SELECT envelope FROM outbox WHERE routing_key = 'lot.created' ORDER BY position DESC LIMIT 1",
    )
    .fetch_one(&app.db.pool)
    .await
    .expect("lot.created");
    world.publish(&envelope.0, "bids.lot-events").await;
}

#[tokio::test]
async fn a_cancel_after_the_first_bid_is_refused_whatever_the_copy_believes() {
    let world = bids::world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let app = common::spawn_on(
        PhotoLimits::default(),
        TestVhost::create().await,
        &engine.internal,
        bids::LOTS_TOKEN,
    )
    .await;
    let seller = common::seller();
    let mut body = common::lot_body();
    body["start_price"] = json!("100");
    body["increment"] = json!({"kind": "absolute", "wei": "10"});
    body["reserve"] = Value::Null;
    body["buy_now"] = Value::Null;
    let (status, lot) = app.create(&seller, body.clone()).await;
    assert_eq!(status, 201, "{lot}");
    let id: LotId = lot["id"].as_str().expect("id").parse().expect("uuid");
    forward_created(&world, &app).await;
    wait_until_async("the engine to open the lot", bids::DEADLINE, || async {
        world.get(&engine, &format!("/lots/{id}")).await["status"] == "open"
    })
    .await;

    let bidder = world.bidder("1000000").await;
    let (status, answer, _) = world.bid(&engine, &bidder, id, "first", 150, None).await;
    assert_eq!(status, 201, "{answer}");

    let (status, problem) = app
        .send(
            Method::DELETE,
            &format!("/lots/{id}"),
            Some(&seller.token),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("has_bids")),
        "{problem}"
    );
    let mut reserve = body;
    reserve["reserve"] = json!("1000000");
    let (status, problem) = app
        .send(
            Method::PUT,
            &format!("/lots/{id}"),
            Some(&seller.token),
            Some(reserve),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("has_bids")),
        "{problem}"
    );
    // Both sides still see the lot as it was: not withdrawn, with the rules it had.
    let (_, shown) = app
        .send(
            Method::GET,
            &format!("/lots/{id}"),
            Some(&seller.token),
            None,
        )
        .await;
    assert_ne!(shown["status"], "cancelled");
    assert_eq!(shown["reserve"], Value::Null);
    assert_eq!(
        world.get(&engine, &format!("/lots/{id}")).await["status"],
        "open"
    );
    let events: Vec<String> =
        sqlx::query_scalar("SELECT routing_key FROM outbox ORDER BY position")
            .fetch_all(&app.db.pool)
            .await
            .expect("outbox");
    assert_eq!(
        events,
        ["lot.created"],
        "nothing was published for the refused changes"
    );
    app.stop().await;
    engine.stop().await;
}

#[tokio::test]
async fn a_change_whose_answer_was_lost_is_settled_by_asking_again() {
    let world = bids::world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    // The engine is away when the seller withdraws the lot.
    let app = common::spawn_on(
        PhotoLimits::default(),
        TestVhost::create().await,
        "http://127.0.0.1:1",
        bids::LOTS_TOKEN,
    )
    .await;
    let seller = common::seller();
    let (_, lot) = app.create(&seller, common::lot_body()).await;
    let id: LotId = lot["id"].as_str().expect("id").parse().expect("uuid");
    forward_created(&world, &app).await;
    let (status, problem) = app
        .send(
            Method::DELETE,
            &format!("/lots/{id}"),
            Some(&seller.token),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("engine_unavailable")),
        "{problem}"
    );
    let (status, problem) = app
        .send(
            Method::DELETE,
            &format!("/lots/{id}"),
            Some(&seller.token),
            None,
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("change_pending")),
        "one change at a time: {problem}"
    );

    // The engine answers when asked again: the withdrawal lands on both sides, once.
    let client = gavel_lots::changes::Engine::new(&PeerConfig {
        url: engine.internal.parse().expect("url"),
        token: Secret::new(bids::LOTS_TOKEN),
        timeout: Duration::from_secs(5),
    })
    .expect("client");
    let settled = gavel_lots::changes::retry_stale(&app.db.pool, &client, Duration::ZERO)
        .await
        .expect("settled");
    assert_eq!(settled, 1);
    let (_, shown) = app
        .send(Method::GET, &format!("/lots/{id}"), None, None)
        .await;
    assert_eq!(shown["status"], "cancelled");
    assert_eq!(
        world.get(&engine, &format!("/lots/{id}")).await["status"],
        "cancelled"
    );
    let events: Vec<String> =
        sqlx::query_scalar("SELECT routing_key FROM outbox ORDER BY position")
            .fetch_all(&app.db.pool)
            .await
            .expect("outbox");
    assert_eq!(events, ["lot.created", "lot.cancelled"]);
    app.stop().await;
    engine.stop().await;
}
