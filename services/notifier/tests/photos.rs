//! A new lot's message carries its first photo: the real `lots` service (its database, its S3
//! bucket on the local S3 server) publishes the lot, the notifier fetches the photo from it and
//! uploads the bytes (Telegram never has to reach a URL of ours), then reuses Telegram's file id.
//! A photo Telegram refuses, or one that cannot be fetched, leaves the text alone: the
//! announcement is never lost.

mod common;
#[path = "../../lots/tests/common/mod.rs"]
mod lots;

use std::collections::HashSet;

use gavel_lots::config::PhotoLimits;
use gavel_test_support::Sent;
use gavel_types::AccountId;

/// A lot with one photo on the real `lots`, opened for `subscribers` chats; returns what
/// Telegram got and the photo's bytes as `lots` serves them.
async fn announce_a_lot_with_a_photo(
    subscribers: i64,
    first_chat: i64,
    refuse_photos: bool,
) -> (Vec<Sent>, Vec<u8>, common::World) {
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
    if refuse_photos {
        world.telegram.refuse_photos();
    }
    world.subscribers(first_chat, subscribers).await;
    app.vhost.wait_for_consumer("notifier.events").await;

    // The lot starts in a moment, as sellers schedule them: the photo is up before `bids`
    // opens it and the notifier announces it.
    let seller = lots::seller();
    let mut body = lots::lot_body();
    body["starts_at"] = serde_json::json!(chrono::Utc::now() + chrono::Duration::seconds(3));
    let (status, lot) = app.create(&seller, body).await;
    assert_eq!(status, 201, "{lot}");
    let id = lot["id"].as_str().expect("an id").to_owned();
    let (status, photo) = app
        .upload(&seller, &id, lots::images::png(64, 48), "image/png")
        .await;
    assert_eq!(status, 201, "{photo}");
    let path = url::Url::parse(&format!(
        "http://gavel.test{}",
        photo["url"].as_str().expect("a url")
    ))
    .expect("a path")
    .path()
    .to_owned();
    let served = reqwest::get(app.url(path.strip_prefix("/api").expect("/api")))
        .await
        .expect("lots answers")
        .bytes()
        .await
        .expect("bytes")
        .to_vec();
    let sent = world.delivered(subscribers as usize).await;
    (sent, served, world)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_lot_with_a_photo_is_announced_with_it_uploaded_once() {
    let (sent, served, world) = announce_a_lot_with_a_photo(3, 9_000_001, false).await;
    assert_eq!(sent.len(), 3);
    for message in &sent {
        assert_eq!(message.method, "sendphoto");
        assert!(
            message.text.contains("New lot: <b>Brass lamp, 1920s</b>"),
            "{}",
            message.text
        );
    }
    // The first message uploads the bytes lots serves; the others name Telegram's file id.
    let uploads: Vec<&Sent> = sent
        .iter()
        .filter(|message| message.upload.is_some())
        .collect();
    assert_eq!(uploads.len(), 1, "one upload: {sent:#?}");
    assert_eq!(uploads[0].upload.as_deref(), Some(&served[..]));
    assert!(
        uploads[0]
            .photo
            .as_deref()
            .is_some_and(|photo| photo.starts_with("upload:") && photo.ends_with(".png")),
        "{:?}",
        uploads[0].photo
    );
    let file_ids: HashSet<Option<&str>> = sent
        .iter()
        .filter(|message| message.upload.is_none())
        .map(|message| message.photo.as_deref())
        .collect();
    assert_eq!(file_ids, HashSet::from([Some("file-0")]));
    let kept: Option<String> = sqlx::query_scalar("SELECT photo_file_id FROM lots")
        .fetch_one(&world.db.pool)
        .await
        .expect("lot");
    assert_eq!(kept.as_deref(), Some("file-0"));
}

/// Issue 17: Telegram refusing the photo (it could not fetch or read it) must not lose the
/// announcement: every matching subscriber still gets exactly one message, with the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_photo_still_yields_exactly_one_message_per_subscriber() {
    let (sent, _, world) = announce_a_lot_with_a_photo(3, 9_100_001, true).await;
    let chats: HashSet<i64> = sent.iter().map(|message| message.chat_id).collect();
    assert_eq!((sent.len(), chats.len()), (3, 3), "{sent:#?}");
    for message in &sent {
        assert_eq!(message.method, "sendmessage");
        assert!(
            message.text.contains("New lot: <b>Brass lamp, 1920s</b>"),
            "{}",
            message.text
        );
    }
    // One refused upload; the others did not try the photo again.
    let refused = world
        .telegram
        .sends()
        .iter()
        .filter(|sent| sent.status == 400)
        .count();
    assert_eq!(refused, 1);
    let statuses: Vec<(i64, String, String, i32, Option<String>)> = sqlx::query_as(
        "SELECT chat_id, kind, status, attempts, last_error FROM outbound ORDER BY chat_id",
    )
    .fetch_all(&world.db.pool)
    .await
    .expect("rows");
    assert_eq!(
        statuses
            .iter()
            .map(|row| row.2.as_str())
            .collect::<Vec<_>>(),
        ["sent", "sent", "sent"],
        "{statuses:#?}"
    );
}

/// With `lots` out of reach, the announcement goes without its photo rather than not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_that_cannot_be_fetched_leaves_the_text_alone() {
    let world = common::world(&[("GAVEL_LINKS__LOTS_URL", "http://127.0.0.1:9")]).await;
    world.subscribers(9_200_001, 2).await;
    world
        .open_lot("Lamp without lots", 10u128.pow(17), AccountId::new())
        .await;
    let sent = world.delivered(2).await;
    assert!(
        sent.iter().all(|message| message.method == "sendmessage"),
        "{sent:#?}"
    );
    assert_eq!(
        world.telegram.sends().len(),
        2,
        "nothing refused or repeated"
    );
}
