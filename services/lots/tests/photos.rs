//! Refused photos: each gets a clear 4xx and leaves nothing in S3 or the database.

mod common;

use std::time::Duration;

use common::{lot_body, seller, spawn};
use gavel_lots::config::PhotoLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn limits() -> PhotoLimits {
    PhotoLimits {
        max_bytes: 1024 * 1024,
        max_side: 4000,
        max_pixels: 8_000_000,
        max_per_lot: 2,
        ..PhotoLimits::default()
    }
}

#[tokio::test]
async fn refused_photos_get_clear_errors_and_leave_nothing_behind() {
    let app = spawn(limits()).await;
    let (alice, mallory) = (seller(), seller());
    let (_, lot) = app.create(&alice, lot_body()).await;
    let id = lot["id"].as_str().expect("id").to_owned();

    let cases = [
        (
            &alice,
            b"definitely not a picture".to_vec(),
            "image/jpeg",
            415,
            "unsupported_image",
        ),
        (
            &alice,
            common::images::jpeg(5000, 100, true),
            "image/jpeg",
            422,
            "image_too_large",
        ),
        (
            &alice,
            common::images::webp(3000, 3000),
            "image/webp",
            422,
            "image_too_large",
        ),
        (
            &mallory,
            common::images::jpeg(10, 10, false),
            "image/jpeg",
            403,
            "not_seller",
        ),
    ];
    for (who, bytes, claimed, status, code) in cases {
        let (actual, problem) = app.upload(who, &id, bytes, claimed).await;
        assert_eq!(
            (actual, problem["code"].as_str()),
            (status, Some(code)),
            "{problem}"
        );
    }
    assert_eq!(
        app.storage.keys().await.expect("listing"),
        Vec::<String>::new(),
        "nothing stored in S3"
    );
    assert_eq!(app.count("SELECT count(*) FROM photos").await, 0);

    // WebP is accepted too; then the limit of two photos per lot holds.
    assert_eq!(
        app.upload(&alice, &id, common::images::webp(64, 48), "image/webp")
            .await
            .0,
        201
    );
    assert_eq!(
        app.upload(&alice, &id, common::images::png(8, 8), "image/png")
            .await
            .0,
        201
    );
    let (status, problem) = app
        .upload(&alice, &id, common::images::png(8, 8), "image/png")
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("too_many_photos")),
        "{problem}"
    );
    assert_eq!(app.storage.keys().await.expect("listing").len(), 2);

    // Deleting a photo removes its object and its row.
    let (_, shown) = app
        .send(reqwest::Method::GET, &format!("/lots/{id}"), None, None)
        .await;
    let photo = shown["photos"][0]["id"].as_str().expect("photo").to_owned();
    let (status, _) = app
        .send(
            reqwest::Method::DELETE,
            &format!("/lots/{id}/photos/{photo}"),
            Some(&alice.token),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(app.storage.keys().await.expect("listing").len(), 1);
    assert_eq!(app.count("SELECT count(*) FROM photos").await, 1);
    app.stop().await;
}

/// Streams `total` bytes of multipart body without a Content-Length and reports the status line
/// and how many bytes the server let us write before answering.
async fn stream_upload(
    app: &common::TestApp,
    token: &str,
    lot: &str,
    total: usize,
) -> (String, usize) {
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let boundary = "gavelboundary";
    let head = format!(
        "POST /lots/{lot}/photos HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    let (mut reader, mut writer) = socket.into_split();
    let answer = tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        let read = reader.read(&mut buffer).await.unwrap_or(0);
        String::from_utf8_lossy(&buffer[..read])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    });
    let part = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"big.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    );
    let mut written = 0;
    let mut first = part.into_bytes();
    first.extend_from_slice(&[0xFF, 0xD8, 0xFF]);
    let chunk = vec![0xAB; 64 * 1024];
    while written < total && !answer.is_finished() {
        let body: &[u8] = if written == 0 { &first } else { &chunk };
        let framed = [format!("{:x}\r\n", body.len()).as_bytes(), body, b"\r\n"].concat();
        let sent = tokio::time::timeout(Duration::from_secs(5), writer.write_all(&framed)).await;
        if !matches!(sent, Ok(Ok(()))) {
            break; // the server stopped reading, and closed its side
        }
        written += body.len();
    }
    let status = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("an answer")
        .expect("joined");
    (status, written)
}

#[tokio::test]
async fn an_oversize_photo_is_refused_without_reading_it_to_the_end() {
    let app = spawn(limits()).await;
    let alice = seller();
    let (_, lot) = app.create(&alice, lot_body()).await;
    let id = lot["id"].as_str().expect("id").to_owned();

    // Declared too large: refused before a byte of the body is read (by the service's limit on
    // every body, which is the photo limit and its multipart framing).
    let big = vec![0u8; 3 * 1024 * 1024];
    let (status, problem) = app.upload(&alice, &id, big, "image/jpeg").await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (413, Some("payload_too_large")),
        "{problem}"
    );

    // Not declared (chunked): refused once the limit is passed, long before the end.
    let total = 256 * 1024 * 1024;
    let (status_line, written) = stream_upload(&app, &alice.token, &id, total).await;
    assert!(status_line.contains("413"), "{status_line}");
    assert!(
        written < total / 4,
        "the server read {written} of {total} bytes"
    );
    assert_eq!(
        app.storage.keys().await.expect("listing"),
        Vec::<String>::new()
    );
    assert_eq!(app.count("SELECT count(*) FROM photos").await, 0);
    app.stop().await;
}
