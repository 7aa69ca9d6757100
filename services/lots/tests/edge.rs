//! Hostile input at `lots`: every one a clear 4xx problem, nothing half-written, nothing hidden
//! in a photo served back.

mod common;

use common::{lot_body, seller, spawn};
use gavel_lots::config::PhotoLimits;
use reqwest::Method;
use serde_json::{Value, json};

const SCRIPT: &[u8] = b"<script>alert(document.cookie)</script>";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// A well-formed PNG chunk.
fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    chunk
}

#[tokio::test]
async fn payloads_hidden_in_photos_are_not_stored_or_served() {
    let app = spawn(PhotoLimits::default()).await;
    let alice = seller();
    let (_, lot) = app.create(&alice, lot_body()).await;
    let id = lot["id"].as_str().expect("id").to_owned();

    let mut jpeg = common::images::jpeg(64, 48, true);
    jpeg.extend_from_slice(SCRIPT);
    let mut png = common::images::png(16, 16);
    let iend = png.len() - 12;
    png.splice(iend..iend, png_chunk(b"ruSt", SCRIPT));
    png.extend_from_slice(&png_chunk(b"tEXt", SCRIPT));

    for (bytes, content_type) in [(jpeg, "image/jpeg"), (png, "image/png")] {
        let (status, photo) = app.upload(&alice, &id, bytes, content_type).await;
        assert_eq!(status, 201, "{photo}");
        let served = app
            .client
            .get(app.photo_url(&photo))
            .send()
            .await
            .expect("served");
        assert_eq!(served.headers()["content-type"], content_type);
        assert_eq!(served.headers()["x-content-type-options"], "nosniff");
        let bytes = served.bytes().await.expect("bytes");
        assert!(
            !contains(&bytes, SCRIPT),
            "{content_type} still carries the payload"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn an_upload_carries_the_photo_and_nothing_else() {
    let app = spawn(PhotoLimits::default()).await;
    let alice = seller();
    let (_, lot) = app.create(&alice, lot_body()).await;
    let id = lot["id"].as_str().expect("id").to_owned();
    // A large field under another name is refused without being read to its end.
    let form = reqwest::multipart::Form::new()
        .part(
            "padding",
            reqwest::multipart::Part::bytes(vec![b'x'; 4 * 1024 * 1024]),
        )
        .part(
            "photo",
            reqwest::multipart::Part::bytes(common::images::png(8, 8))
                .mime_str("image/png")
                .expect("mime"),
        );
    let response = app
        .client
        .post(app.url(&format!("/lots/{id}/photos")))
        .bearer_auth(&alice.token)
        .multipart(form)
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("json");
    assert_eq!(problem["field"], "photo", "{problem}");
    assert_eq!(app.count("SELECT count(*) FROM photos").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn text_that_cannot_be_stored_and_numbers_out_of_range_are_refused_by_name() {
    let app = spawn(PhotoLimits::default()).await;
    let alice = seller();
    for (field, value) in [
        ("title", "Lamp\u{0}"),
        ("description", "A lamp\u{0} with a shade"),
    ] {
        let mut body = lot_body();
        body[field] = json!(value);
        let (status, problem) = app.create(&alice, body).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (400, Some(field)),
            "{problem}"
        );
    }
    assert_eq!(app.count("SELECT count(*) FROM lots").await, 0);
    assert_eq!(app.count("SELECT count(*) FROM outbox").await, 0);

    for (query, field) in [
        ("q=lamp%00", "q"),
        ("ending_within_secs=92233720368547", "ending_within_secs"),
        ("limit=many", "limit"),
        ("colour=green", "colour"),
    ] {
        let response = app
            .client
            .get(app.url(&format!("/lots?{query}")))
            .send()
            .await
            .expect("served");
        assert_eq!(response.status(), 400, "{query}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{query}"
        );
        let problem: Value = response.json().await.expect("json");
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }

    let (status, problem) = app.send(Method::PATCH, "/lots", None, None).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    app.stop().await;
}
