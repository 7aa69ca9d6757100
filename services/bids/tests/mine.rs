//! "My auctions": the lots an account bid on, read back through the public API with its token.

mod common;

use std::time::Duration;

use common::{rules, world};
use gavel_test_support::wait_until_async;
use gavel_types::AccountId;
use serde_json::Value;

#[tokio::test]
async fn an_account_sees_the_lots_it_bid_on_with_where_it_stands_and_what_it_won() {
    let world = world(Duration::from_secs(3600)).await;
    let engine = world.engine().await;
    let (alice, bob) = (world.bidder("1000000").await, world.bidder("1000000").await);
    let open = world.create_lot(&engine, rules(), AccountId::new()).await;
    let untouched = world.create_lot(&engine, rules(), AccountId::new()).await;
    let sold = world.create_lot(&engine, rules(), AccountId::new()).await;

    for (bidder, lot, key, amount) in [
        (&alice, sold, "a-sold", 100),
        (&bob, sold, "b-sold", 110),
        (&alice, sold, "a-sold-2", 150),
        (&alice, open, "a-open", 100),
        (&bob, open, "b-open", 120),
    ] {
        let (status, answer, _) = world.bid(&engine, bidder, lot, key, amount, None).await;
        assert_eq!(status, 201, "{key}: {answer}");
    }
    // Its time is up once its bids are in (however long a busy machine took to place them).
    sqlx::query("UPDATE lots SET ends_at = clock_timestamp() WHERE lot_id = $1")
        .bind(sold.0)
        .execute(&world.db.pool)
        .await
        .expect("the lot's end moved to now");
    wait_until_async("the sold lot to close", Duration::from_secs(30), || async {
        world.get(&engine, &format!("/lots/{sold}")).await["status"] == "closed"
    })
    .await;

    let mine = |token: String| {
        let client = world.client.clone();
        let url = format!("{}/bidders/me/lots", engine.base);
        async move {
            let response = client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("served");
            assert_eq!(response.status(), 200);
            response.json::<Vec<Value>>().await.expect("a list")
        }
    };
    let by_lot = |lots: &[Value], lot: gavel_types::LotId| {
        lots.iter()
            .find(|row| row["lot_id"] == lot.to_string())
            .cloned()
            .unwrap_or(Value::Null)
    };

    let of_alice = mine(alice.token.clone()).await;
    assert_eq!(
        of_alice.len(),
        2,
        "not the lot she never bid on: {of_alice:?}"
    );
    assert!(by_lot(&of_alice, untouched).is_null());
    let won = by_lot(&of_alice, sold);
    assert_eq!(
        (
            won["status"].as_str(),
            won["outcome"].as_str(),
            won["won"].as_bool(),
            won["highest_bid"].as_str(),
        ),
        (Some("closed"), Some("sold"), Some(true), Some("150")),
        "{won}"
    );
    let outbid = by_lot(&of_alice, open);
    assert_eq!(
        (outbid["leading"].as_bool(), outbid["price"].as_str()),
        (Some(false), Some("120")),
        "{outbid}"
    );
    // The most recently bid on first: her last bid was on the open lot.
    assert_eq!(of_alice[0]["lot_id"], open.to_string());

    let of_bob = mine(bob.token.clone()).await;
    let lost = by_lot(&of_bob, sold);
    assert_eq!(
        (lost["outcome"].as_str(), lost["won"].as_bool()),
        (Some("sold"), Some(false))
    );
    assert_eq!(by_lot(&of_bob, open)["leading"], true);

    let anonymous = world
        .client
        .get(format!("{}/bidders/me/lots", engine.base))
        .send()
        .await
        .expect("served");
    assert_eq!(anonymous.status(), 401);
    engine.stop().await;
}
