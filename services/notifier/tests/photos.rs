//! A new lot's message carries its first photo: the real `lots` service (its database, its S3
//! bucket on the local S3 server) publishes the lot, the notifier asks it for the photo.

mod common;
#[path = "../../lots/tests/common/mod.rs"]
mod lots;

use gavel_events::AuctionOpened;
use gavel_lots::config::PhotoLimits;
use gavel_messaging::Envelope;
use gavel_types::LotId;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_lot_with_a_photo_is_announced_with_it() {
    let app = lots::spawn(PhotoLimits {
        max_bytes: 1024 * 1024,
        max_side: 4000,
        max_pixels: 8_000_000,
        max_per_lot: 2,
        ..PhotoLimits::default()
    })
    .await;
    // The notifier listens on the vhost lots publishes to.
    let world = common::world(&[
        ("GAVEL_BROKER__URL", &app.vhost.url()),
        ("GAVEL_LINKS__LOTS_URL", &app.base),
    ])
    .await;
    world.subscribers(9_000_001, 2).await;
    app.vhost.wait_for_consumer("notifier.events").await;

    let seller = lots::seller();
    let (status, lot) = app.create(&seller, lots::lot_body()).await;
    assert_eq!(status, 201, "{lot}");
    let id = lot["id"].as_str().expect("an id").to_owned();
    let (status, photo) = app
        .upload(&seller, &id, lots::images::png(64, 48), "image/png")
        .await;
    assert_eq!(status, 201, "{photo}");

    // bids would open it; here the test does, once the notifier knows the lot.
    let lot_id: LotId = serde_json::from_value(serde_json::json!(id)).expect("lot id");
    gavel_test_support::wait_until_async(
        "the notifier to know the lot",
        common::DEADLINE,
        || async {
            let known: Option<String> =
                sqlx::query_scalar("SELECT title FROM lots WHERE lot_id = $1")
                    .bind(lot_id.0)
                    .fetch_optional(&world.db.pool)
                    .await
                    .expect("query");
            known.is_some()
        },
    )
    .await;
    let opened = AuctionOpened {
        lot_id,
        ends_at: chrono::Utc::now() + chrono::Duration::hours(1),
    };
    app.vhost
        .publish(
            &Envelope::new(id.clone(), Some(1), &opened).expect("serializable"),
            "notifier.events",
        )
        .await;

    let sent = world.delivered(2).await;
    for message in &sent {
        assert_eq!(message.method, "sendphoto");
        assert!(
            message.text.contains("New lot: <b>Brass lamp, 1920s</b>"),
            "{}",
            message.text
        );
        let url = message.photo.as_deref().expect("a photo URL");
        assert!(
            url.contains("/api/lots/") && url.contains(&id),
            "a link on the site's origin: {url}"
        );
        // Behind that origin (the gateway's `/api`), lots serves the photo.
        let path = url::Url::parse(url).expect("absolute").path().to_owned();
        let fetched = reqwest::get(app.url(path.strip_prefix("/api").expect("/api")))
            .await
            .expect("lots answers");
        assert_eq!(fetched.status(), 200, "{url}");
        assert_eq!(fetched.headers()["content-type"], "image/png");
    }
}
