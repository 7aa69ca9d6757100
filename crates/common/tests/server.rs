//! The service runner: request ids, metrics, readiness, and draining on shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use gavel_common::config::ShutdownConfig;
use gavel_common::health::Readiness;
use gavel_common::metrics::Metrics;
use gavel_common::server::{Listeners, Service, run};
use tokio::sync::{Notify, oneshot};

struct Running {
    base: String,
    admin: String,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), gavel_common::server::ServeError>>,
}

async fn start(router: Router, drain_deadline: Duration) -> Running {
    let listeners = Listeners::ephemeral().await.expect("can bind loopback");
    let base = format!("http://{}", listeners.http_addr().expect("bound"));
    let admin = format!("http://{}", listeners.admin_addr().expect("bound"));
    let service = Service::new(router, Metrics::new("test"), Readiness::default());
    let (stop, stopped) = oneshot::channel::<()>();
    let config = ShutdownConfig {
        readiness_grace: Duration::ZERO,
        drain_deadline,
    };
    let done = tokio::spawn(async move {
        run(
            service,
            listeners,
            async { stopped.await.unwrap_or(()) },
            &config,
        )
        .await
    });
    Running {
        base,
        admin,
        stop,
        done,
    }
}

#[tokio::test]
async fn requests_carry_a_request_id_and_are_counted_by_route() {
    let app = start(
        Router::new().route("/lots/{id}", get(|| async { "lot" })),
        Duration::from_secs(5),
    )
    .await;
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{}/lots/42", app.base))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("served");
    assert_eq!(
        response.headers()["x-request-id"],
        "abc-123",
        "a given id is echoed"
    );
    let minted = client
        .get(format!("{}/lots/43", app.base))
        .send()
        .await
        .expect("served");
    assert!(
        !minted.headers()["x-request-id"].is_empty(),
        "a missing id is minted"
    );

    let metrics = client
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .expect("served")
        .text()
        .await
        .expect("text");
    let line = metrics
        .lines()
        .find(|line| {
            line.starts_with("gavel_http_requests_total") && line.contains(r#"route="/lots/{id}""#)
        })
        .unwrap_or_else(|| panic!("no per-route counter in:\n{metrics}"));
    assert!(
        line.ends_with(" 2"),
        "both requests counted under the route, not the raw path: {line}"
    );
    assert!(
        !metrics.contains("/lots/42"),
        "raw paths never become labels"
    );

    let _ = app.stop.send(());
    app.done.await.expect("joined").expect("clean stop");
}

#[tokio::test]
async fn on_shutdown_in_flight_requests_finish_and_readiness_turns_false() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let router = Router::new().route(
        "/slow",
        get({
            let (entered, release) = (entered.clone(), release.clone());
            move || async move {
                entered.notify_one();
                release.notified().await;
                "finished"
            }
        }),
    );
    let app = start(router, Duration::from_secs(10)).await;
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(format!("{}/readyz", app.admin))
            .send()
            .await
            .expect("served")
            .status(),
        200
    );

    let in_flight = tokio::spawn(client.get(format!("{}/slow", app.base)).send());
    entered.notified().await;
    let _ = app.stop.send(());

    gavel_test_support::wait_until_async(
        "readiness to turn false",
        Duration::from_secs(5),
        || async {
            client
                .get(format!("{}/readyz", app.admin))
                .send()
                .await
                .is_ok_and(|r| r.status() == 503)
        },
    )
    .await;
    assert!(
        !app.done.is_finished(),
        "the service waits for the in-flight request"
    );

    release.notify_one();
    let response = in_flight
        .await
        .expect("joined")
        .expect("the in-flight request is answered");
    assert_eq!(response.text().await.expect("body"), "finished");
    tokio::time::timeout(Duration::from_secs(5), app.done)
        .await
        .expect("stops once drained")
        .expect("joined")
        .expect("clean stop");
}

#[tokio::test]
async fn a_request_that_outlives_the_drain_deadline_does_not_hold_the_service() {
    let entered = Arc::new(Notify::new());
    let router = Router::new().route(
        "/stuck",
        get({
            let entered = entered.clone();
            move || async move {
                entered.notify_one();
                std::future::pending::<()>().await;
            }
        }),
    );
    let deadline = Duration::from_millis(300);
    let app = start(router, deadline).await;
    let _stuck = tokio::spawn(reqwest::get(format!("{}/stuck", app.base)));
    entered.notified().await;
    let started = std::time::Instant::now();
    let _ = app.stop.send(());
    tokio::time::timeout(Duration::from_secs(5), app.done)
        .await
        .expect("stops")
        .expect("joined")
        .expect("clean stop");
    // Generous bound: the deadline applies to the listener, tasks and admin in turn.
    assert!(
        started.elapsed() < deadline * 4,
        "stopped after {:?}",
        started.elapsed()
    );
}
