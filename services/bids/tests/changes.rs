//! Sellers' changes decided by the engine (scenario 4 of the money-path review): a change that
//! races the first bid gets the engine's answer, and a change that arrives before `lot.created`
//! is kept.

mod common;

use std::time::Duration;

use common::{DEADLINE, LOTS_TOKEN, rules, world};
use gavel_events::LotCreated;
use gavel_messaging::Envelope;
use gavel_test_support::wait_until_async;
use gavel_types::{AccountId, EthAddress, LotId, Wei};
use serde_json::{Value, json};

fn definition(seller: AccountId, title: &str, rules: &gavel_events::LotRules) -> Value {
    json!({
        "seller": seller,
        "seller_wallet": EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x5e)),
        "title": title,
        "rules": rules,
    })
}

async fn change(
    world: &common::World,
    engine: &common::Engine,
    lot: LotId,
    cancel: bool,
    body: &Value,
) -> (u16, Value) {
    let request = if cancel {
        world
            .client
            .post(format!("{}/internal/lots/{lot}/cancel", engine.internal))
    } else {
        world
            .client
            .put(format!("{}/internal/lots/{lot}", engine.internal))
    };
    let response = request
        .bearer_auth(LOTS_TOKEN)
        .json(body)
        .send()
        .await
        .expect("served");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_change_after_the_first_bid_is_refused_and_one_before_it_is_applied_once() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let seller = AccountId::new();
    let lot = world.create_lot(&engine, rules(), seller).await;
    let mut edited = rules();
    edited.start_price = Wei::from_u128(500);
    let body = definition(seller, "A test lot, restored", &edited);

    let (status, answer) = change(&world, &engine, lot, false, &body).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("open")),
        "{answer}"
    );
    let state = world.get(&engine, &format!("/lots/{lot}")).await;
    assert_eq!(
        (state["title"].as_str(), state["minimum_next"].as_str()),
        (Some("A test lot, restored"), Some("500"))
    );
    let events: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT event_type FROM lot_events WHERE lot_id = '{lot}' ORDER BY seq"
    ))
    .fetch_all(&world.db.pool)
    .await
    .expect("log");
    assert_eq!(events, ["auction.opened", "auction.updated"]);
    // Asking again for the same change is harmless.
    assert_eq!(change(&world, &engine, lot, false, &body).await.0, 200);

    let bidder = world.bidder("1000000").await;
    assert_eq!(
        world.bid(&engine, &bidder, lot, "b", 500, None).await.0,
        201
    );
    let mut again = edited.clone();
    again.start_price = Wei::from_u128(50);
    let (status, problem) = change(
        &world,
        &engine,
        lot,
        false,
        &definition(seller, "Cheaper", &again),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("has_bids")),
        "{problem}"
    );
    let (status, problem) = change(&world, &engine, lot, true, &body).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("has_bids")),
        "{problem}"
    );
    assert_eq!(
        world.get(&engine, &format!("/lots/{lot}")).await["status"],
        "open"
    );

    // Without a bid, a withdrawal lands once and the lot is then ended for every change.
    let quiet = world.create_lot(&engine, rules(), seller).await;
    let quiet_body = definition(seller, "A test lot", &rules());
    for _ in 0..2 {
        let (status, answer) = change(&world, &engine, quiet, true, &quiet_body).await;
        assert_eq!(
            (status, answer["status"].as_str()),
            (200, Some("cancelled"))
        );
    }
    let (status, problem) = change(&world, &engine, quiet, false, &body).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("lot_ended")),
        "{problem}"
    );
    let cancelled: i64 = world
        .scalar(&format!(
            "SELECT count(*) FROM lot_events WHERE lot_id = '{quiet}' AND event_type = 'auction.cancelled'"
        ))
        .await;
    assert_eq!(cancelled, 1);
    engine.stop().await;
}

#[tokio::test]
async fn an_edit_that_reaches_the_engine_before_lot_created_is_kept() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let (lot, seller) = (LotId::new(), AccountId::new());
    let original = rules();
    let mut edited = original.clone();
    edited.start_price = Wei::from_u128(700);

    // The edit reaches the engine first (its `lot.created` is late: a retry queue, an outage).
    let (status, answer) = change(
        &world,
        &engine,
        lot,
        false,
        &definition(seller, "Edited", &edited),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let created = LotCreated {
        lot_id: lot,
        seller,
        seller_wallet: EthAddress::from_alloy(alloy_primitives::Address::repeat_byte(0x5e)),
        title: "Original".to_owned(),
        rules: original,
    };
    world
        .publish(
            &Envelope::new(lot.to_string(), None, &created).expect("serializable"),
            "bids.lot-events",
        )
        .await;
    wait_until_async("the late lot.created to be handled", DEADLINE, || async {
        world
            .scalar::<i64>("SELECT count(*) FROM inbox WHERE event_type = 'lot.created'")
            .await
            == 1
    })
    .await;
    let state = world.get(&engine, &format!("/lots/{lot}")).await;
    assert_eq!(
        (state["title"].as_str(), state["minimum_next"].as_str()),
        (Some("Edited"), Some("700")),
        "{state}"
    );
    engine.stop().await;
}
