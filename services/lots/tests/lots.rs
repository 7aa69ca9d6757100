//! Sellers' lots and the catalogue against real PostgreSQL, RabbitMQ and an S3 server.

mod common;

use common::{lot_body, seller, spawn};
use gavel_lots::config::PhotoLimits;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn create_upload_list_search_and_get_round_trip() {
    let app = spawn(PhotoLimits::default()).await;
    let alice = seller();
    let (status, lot) = app.create(&alice, lot_body()).await;
    assert_eq!(status, 201, "{lot}");
    let id = lot["id"].as_str().expect("id").to_owned();
    assert_eq!(
        lot["reserve"], "200000000000000000",
        "the seller sees the reserve"
    );

    let (status, photo) = app
        .upload(
            &alice,
            &id,
            common::images::jpeg(640, 480, true),
            "image/jpeg",
        )
        .await;
    assert_eq!(status, 201, "{photo}");
    assert_eq!(
        (photo["width"].as_i64(), photo["height"].as_i64()),
        (Some(640), Some(480))
    );
    let (status, second) = app
        .upload(&alice, &id, common::images::png(32, 16), "image/png")
        .await;
    assert_eq!(
        (status, second["position"].as_i64()),
        (201, Some(2)),
        "{second}"
    );

    // The stored photo has lost its metadata (EXIF, its GPS position, text chunks), and is served
    // as exactly the image it is.
    let stored = app
        .client
        .get(app.photo_url(&photo))
        .send()
        .await
        .expect("fetched");
    assert_eq!(stored.status(), 200);
    for (name, value) in [
        ("content-type", "image/jpeg"),
        ("x-content-type-options", "nosniff"),
        ("content-security-policy", "default-src 'none'; sandbox"),
    ] {
        assert_eq!(stored.headers()[name], value, "{name}");
    }
    let bytes = stored.bytes().await.expect("bytes");
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]), "still a JPEG");
    assert!(
        !contains(&bytes, b"Exif") && !contains(&bytes, b"GPS-52.52N"),
        "metadata removed"
    );
    let png = app
        .client
        .get(app.photo_url(&second))
        .send()
        .await
        .expect("fetched")
        .bytes()
        .await
        .expect("bytes");
    assert!(
        !contains(&png, b"Berlin") && !contains(&png, b"GPS-52.52N"),
        "PNG text and EXIF removed"
    );

    // Anyone sees it, without the reserve amount.
    let (status, public) = app
        .send(Method::GET, &format!("/lots/{id}"), None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(public["reserve"], Value::Null);
    assert_eq!(public["has_reserve"], true);
    assert_eq!(public["photos"].as_array().map(Vec::len), Some(2));

    let mut chair = lot_body();
    chair["title"] = json!("Oak chair");
    chair["description"] = json!("Solid oak");
    let (_, other) = app.create(&seller(), chair).await;
    let (status, found) = app
        .send(Method::GET, "/lots?q=brass%20lamp", None, None)
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = found["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|item| item["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [id.as_str()],
        "full-text search finds the lamp, not the chair"
    );
    let (_, by_seller) = app
        .send(
            Method::GET,
            &format!("/lots?seller={}", alice.account),
            None,
            None,
        )
        .await;
    assert_eq!(by_seller["items"].as_array().map(Vec::len), Some(1));
    let (_, cheap) = app
        .send(Method::GET, "/lots?max_price=50000000000000000", None, None)
        .await;
    assert_eq!(cheap["items"].as_array().map(Vec::len), Some(0));
    let (_, ending) = app
        .send(Method::GET, "/lots?ending_within_secs=7200", None, None)
        .await;
    assert_eq!(ending["items"].as_array().map(Vec::len), Some(2));

    // Cursor pagination walks every lot exactly once.
    let (_, first) = app.send(Method::GET, "/lots?limit=1", None, None).await;
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (_, second_page) = app
        .send(
            Method::GET,
            &format!("/lots?limit=1&cursor={cursor}"),
            None,
            None,
        )
        .await;
    assert_eq!(second_page["next_cursor"], Value::Null);
    let mut seen = vec![
        first["items"][0]["id"].clone(),
        second_page["items"][0]["id"].clone(),
    ];
    seen.sort_by_key(|value| value.to_string());
    let mut expected = vec![json!(id), other["id"].clone()];
    expected.sort_by_key(|value| value.to_string());
    assert_eq!(seen, expected);
    app.stop().await;
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test]
async fn each_bad_field_is_refused_by_name_and_nothing_is_written() {
    let app = spawn(PhotoLimits::default()).await;
    let alice = seller();
    let now = chrono::Utc::now();
    let cases: Vec<(&str, Value)> = vec![
        (
            "ends_at",
            json!({"ends_at": now - chrono::Duration::minutes(5)}),
        ),
        (
            "ends_at",
            json!({"ends_at": now + chrono::Duration::days(40)}),
        ),
        ("reserve", json!({"reserve": "1"})),
        ("buy_now", json!({"buy_now": "200000000000000000"})),
        ("start_price", json!({"start_price": "-5"})),
        ("start_price", json!({"start_price": "1.5"})),
        ("start_price", json!({"start_price": 0.5})),
        ("asset", json!({"asset": "DOGE"})),
        ("snipe_window_secs", json!({"snipe_window_secs": 99999})),
        (
            "increment",
            json!({"increment": {"kind": "basis_points", "bps": 0}}),
        ),
        ("title", json!({"title": ""})),
    ];
    for (field, change) in cases {
        let mut body = lot_body();
        for (key, value) in change.as_object().expect("object") {
            body[key] = value.clone();
        }
        let (status, problem) = app.create(&alice, body).await;
        assert_eq!(status, 400, "{field}: {problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert_eq!(problem["type"], "urn:gavel:problem:invalid_input");
    }
    let (status, _) = app
        .send(Method::POST, "/lots", None, Some(lot_body()))
        .await;
    assert_eq!(status, 401);
    assert_eq!(app.count("SELECT count(*) FROM lots").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn only_the_seller_changes_a_lot_and_only_before_the_first_bid() {
    let app = spawn(PhotoLimits::default()).await;
    let (alice, mallory) = (seller(), seller());
    let (_, lot) = app.create(&alice, lot_body()).await;
    let id = lot["id"].as_str().expect("id").to_owned();
    let mut edited = lot_body();
    edited["title"] = json!("Brass lamp, restored");

    let (status, _) = app
        .send(
            Method::PUT,
            &format!("/lots/{id}"),
            Some(&mallory.token),
            Some(edited.clone()),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/lots/{id}"),
            Some(&mallory.token),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, changed) = app
        .send(
            Method::PUT,
            &format!("/lots/{id}"),
            Some(&alice.token),
            Some(edited.clone()),
        )
        .await;
    assert_eq!(
        (status, changed["title"].as_str()),
        (200, Some("Brass lamp, restored")),
        "{changed}"
    );

    // The engine reports a first bid; from then on the lot is fixed. (A sequence well past
    // what the real engine has published for this lot, so that none of its events overtakes it.)
    common::auction_event(
        &app,
        &id,
        100,
        "auction.bid_accepted",
        json!({"price": "100000000000000000", "bid_count": 1}),
    )
    .await;
    common::wait_for(
        &app,
        &format!("SELECT bid_count = 1 FROM lots WHERE id = '{id}'"),
    )
    .await;
    let (status, problem) = app
        .send(
            Method::PUT,
            &format!("/lots/{id}"),
            Some(&alice.token),
            Some(edited),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("has_bids")),
        "{problem}"
    );
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/lots/{id}"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, 409);

    let events: Vec<String> =
        sqlx::query_scalar("SELECT routing_key FROM outbox ORDER BY position")
            .fetch_all(&app.db.pool)
            .await
            .expect("outbox");
    assert_eq!(events, ["lot.created", "lot.updated"]);
    app.stop().await;
}

#[tokio::test]
async fn the_catalogue_sorts_by_price_both_ways_and_pages_through_each_order() {
    let app = spawn(PhotoLimits::default()).await;
    let alice = seller();
    let mut ids = Vec::new();
    // Start prices 0.1, 0.3, 0.2 ETH; the first is then bid up to 0.4 ETH.
    for start in [
        "100000000000000000",
        "300000000000000000",
        "200000000000000000",
    ] {
        let mut body = lot_body();
        body["start_price"] = json!(start);
        body["reserve"] = Value::Null;
        body["starts_at"] = json!(chrono::Utc::now() + chrono::Duration::minutes(30));
        body["ends_at"] = json!(chrono::Utc::now() + chrono::Duration::hours(2));
        let (status, lot) = app.create(&alice, body).await;
        assert_eq!(status, 201, "{lot}");
        ids.push(lot["id"].as_str().expect("id").to_owned());
    }
    common::auction_event(
        &app,
        &ids[0],
        1,
        "auction.bid_accepted",
        json!({"price": "400000000000000000", "bid_count": 1}),
    )
    .await;
    common::wait_for(
        &app,
        &format!("SELECT price IS NOT NULL FROM lots WHERE id = '{}'", ids[0]),
    )
    .await;

    // Page by page, one lot at a time: each order walks every lot exactly once.
    let walk = |sort: &'static str| {
        let app = &app;
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            // Three lots, one per page: a fourth page means the cursor does not move on.
            for _ in 0..4 {
                let path = match &cursor {
                    Some(cursor) => format!("/lots?sort={sort}&limit=1&cursor={cursor}"),
                    None => format!("/lots?sort={sort}&limit=1"),
                };
                let (status, page) = app.send(Method::GET, &path, None, None).await;
                assert_eq!(status, 200, "{page}");
                seen.extend(
                    page["items"]
                        .as_array()
                        .expect("items")
                        .iter()
                        .map(|item| item["id"].as_str().expect("id").to_owned()),
                );
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => return seen,
                }
            }
            panic!("{sort}: still a next page after four pages of one lot: {seen:?}");
        }
    };
    let expected_low = [ids[2].clone(), ids[1].clone(), ids[0].clone()];
    assert_eq!(
        walk("price_low").await,
        expected_low,
        "0.2, 0.3, then 0.4 (bid up)"
    );
    let mut expected_high = expected_low.clone();
    expected_high.reverse();
    assert_eq!(walk("price_high").await, expected_high);

    let (_, newest) = app.send(Method::GET, "/lots?limit=1", None, None).await;
    let time_cursor = newest["next_cursor"].as_str().expect("a cursor");
    let (status, problem) = app
        .send(
            Method::GET,
            &format!("/lots?sort=price_low&cursor={time_cursor}"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (400, Some("cursor")),
        "a cursor of another order is refused: {problem}"
    );
    let (status, problem) = app
        .send(Method::GET, "/lots?sort=cheapest", None, None)
        .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("sort")));
    app.stop().await;
}

#[tokio::test]
async fn the_live_summary_follows_auction_events_in_sequence_order() {
    let app = spawn(PhotoLimits::default()).await;
    let alice = seller();
    // Starting later, so that the real engine stays quiet and these events are the only ones.
    let mut later = lot_body();
    later["starts_at"] = json!(chrono::Utc::now() + chrono::Duration::minutes(30));
    let (_, lot) = app.create(&alice, later).await;
    let id = lot["id"].as_str().expect("id").to_owned();

    common::auction_event(&app, &id, 1, "auction.opened", json!({})).await;
    common::auction_event(
        &app,
        &id,
        3,
        "auction.bid_accepted",
        json!({"price": "300000000000000000", "bid_count": 2, "reserve_met": true}),
    )
    .await;
    // A late, older event must not move the summary back.
    common::auction_event(
        &app,
        &id,
        2,
        "auction.bid_accepted",
        json!({"price": "100000000000000000", "bid_count": 1, "reserve_met": false}),
    )
    .await;
    common::auction_event(&app, &id, 4, "auction.closed", json!({})).await;
    common::wait_for(
        &app,
        &format!("SELECT last_seq = 4 FROM lots WHERE id = '{id}'"),
    )
    .await;
    common::wait_for(&app, "SELECT count(*) = 4 FROM inbox").await;

    let (_, shown) = app
        .send(Method::GET, &format!("/lots/{id}"), None, None)
        .await;
    let summary = &shown["summary"];
    assert_eq!(
        (summary["price"].as_str(), summary["bid_count"].as_i64()),
        (Some("300000000000000000"), Some(2)),
        "{shown}"
    );
    assert_eq!(
        (
            shown["status"].as_str(),
            summary["outcome"].as_str(),
            summary["reserve_met"].as_bool()
        ),
        (Some("closed"), Some("sold"), Some(true))
    );
    app.stop().await;
}

#[tokio::test]
async fn lot_created_is_published_exactly_once() {
    let app = spawn(PhotoLimits::default()).await;
    let queue = common::listen(&app, "lot.*").await;
    let (status, _) = app.create(&seller(), lot_body()).await;
    assert_eq!(status, 201);
    common::wait_for(
        &app,
        "SELECT count(*) = 1 FROM outbox WHERE published_at IS NOT NULL",
    )
    .await;
    let vhost = &app.vhost;
    gavel_test_support::wait_until_async(
        "the event",
        std::time::Duration::from_secs(20),
        || async { vhost.queue_depth(&queue).await >= 1 },
    )
    .await;
    let message = app.vhost.get(&queue).await.expect("one message");
    let envelope: Value = serde_json::from_slice(&message.delivery.data).expect("json");
    assert_eq!(envelope["type"], "lot.created");
    assert_eq!(app.vhost.queue_depth(&queue).await, 0, "exactly one");
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_is_generated_from_the_handlers() {
    let app = spawn(PhotoLimits::default()).await;
    let (status, doc) = app.send(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for path in [
        "/lots",
        "/lots/{lot_id}",
        "/lots/{lot_id}/photos",
        "/lots/{lot_id}/photos/{photo_id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    assert!(doc["components"]["schemas"]["LotInput"].is_object());
    app.stop().await;
}
