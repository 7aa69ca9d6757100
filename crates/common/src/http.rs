//! The layers that wrap every router a service serves: a request id (taken from `x-request-id` or
//! minted), echoed on the response and carried in the request's span together with the matched
//! route; per-route metrics with bounded labels; a body limit with a lingering read; and
//! `problem+json` for the answers axum would otherwise give as plain text or an empty body.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, BodyDataStream};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::oneshot;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::metrics::{Metrics, track_http};
use crate::problem::Problem;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long an answer given before the request body was read waits while the rest of the body
/// is read and thrown away (see [`guard_body`]).
const LINGER: Duration = Duration::from_secs(5);

/// Wraps `router` with request ids, tracing spans, metrics, the body limit, and problem answers
/// for a known path called with the wrong method.
pub fn instrument(router: Router, metrics: Metrics, body_limit: usize) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request<_>| {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            let request_id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|value| value.to_str().ok());
            tracing::info_span!(
                "request",
                method = %request.method(),
                route = route.unwrap_or("unmatched"),
                request_id = request_id.unwrap_or(""),
            )
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    // Layers run outside-in in the reverse order they are added: the id is set first, then the
    // span opens (and sees it), then metrics are taken, then the body is guarded.
    router
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(body_limit, guard_body))
        .layer(axum::middleware::from_fn_with_state(metrics, track_http))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This resource does not take that method",
    )
}

/// Bounds the request body and reads away what an early answer left unread.
///
/// A body declared larger than `limit` is refused (413) without being used. Otherwise the
/// body can be read up to `limit`, and no further. When the handler answers without reading the
/// whole body (401 before an upload, 413 at the photo limit), the rest (up to `limit`) is read and
/// dropped before the answer goes out, for at most [`LINGER`]: a client still sending would
/// otherwise see the connection reset under it and lose the answer (a proxy in front reports that
/// as a 502).
pub async fn guard_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = declared.filter(|length| *length > limit as u64) {
        // A body a few times too large is read away first, so the client hears the 413; an
        // absurd one is not worth reading.
        if length <= 4 * limit as u64 {
            let body = request.into_body().into_data_stream();
            let _ = tokio::time::timeout(LINGER, drain(body, 4 * limit)).await;
        }
        return too_large(limit).into_response();
    }
    let (parts, body) = request.into_parts();
    let (leftover, unread) = oneshot::channel();
    let tracked = Tracked {
        inner: Some(body.into_data_stream()),
        finished: false,
        leftover: Some(leftover),
    };
    let limited = http_body_util::Limited::new(Body::from_stream(tracked), limit);
    let response = next
        .run(Request::from_parts(parts, Body::new(limited)))
        .await;
    if let Ok(rest) = unread.await {
        let _ = tokio::time::timeout(LINGER, drain(rest, limit)).await;
    }
    response
}

fn too_large(limit: usize) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "The request body is too large",
    )
    .with_detail(format!("at most {limit} bytes"))
}

async fn drain(mut rest: BodyDataStream, limit: usize) {
    let mut read = 0usize;
    while let Some(Ok(chunk)) = rest.next().await {
        read += chunk.len();
        if read > limit {
            return;
        }
    }
}

/// The request body as a stream that, dropped before its end, hands what is left back to
/// [`guard_body`].
struct Tracked {
    inner: Option<BodyDataStream>,
    finished: bool,
    leftover: Option<oneshot::Sender<BodyDataStream>>,
}

impl Stream for Tracked {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let next = inner.poll_next_unpin(cx);
        if let Poll::Ready(None | Some(Err(_))) = next {
            self.finished = true;
        }
        next
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.finished
            && let (Some(inner), Some(leftover)) = (self.inner.take(), self.leftover.take())
        {
            let _ = leftover.send(inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use tower::ServiceExt;

    fn app(limit: usize) -> Router {
        let router = Router::new()
            .route(
                "/read",
                post(|body: Bytes| async move { body.len().to_string() }),
            )
            .route("/ignore", post(|| async { StatusCode::UNAUTHORIZED }));
        instrument(router, Metrics::new("test"), limit)
    }

    async fn call(router: Router, path: &str, body: Body, length: Option<usize>) -> Response {
        let mut request = Request::post(path);
        if let Some(length) = length {
            request = request.header(header::CONTENT_LENGTH, length);
        }
        router
            .oneshot(request.body(body).expect("a request"))
            .await
            .expect("infallible")
    }

    #[tokio::test]
    async fn a_declared_body_over_the_limit_is_refused_unread_and_a_streamed_one_is_cut() {
        let response = call(app(10), "/read", Body::from("x".repeat(11)), Some(11)).await;
        assert_eq!(response.status(), 413);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let stream = futures_util::stream::iter(
            (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from_static(b"xxxx"))),
        );
        let response = call(app(10), "/read", Body::from_stream(stream), None).await;
        assert_eq!(response.status(), 413);
        let response = call(app(10), "/read", Body::from("x".repeat(10)), Some(10)).await;
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn an_early_answer_waits_for_the_unread_body_to_be_read_away() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let body = Body::from_stream(tokio_stream_like(receiver));
        let answered = tokio::spawn(call(app(1024), "/ignore", body, None));
        // The answer is held while the client still sends...
        sender
            .send(Ok(Bytes::from_static(b"part")))
            .await
            .expect("read");
        sender
            .send(Ok(Bytes::from_static(b"more")))
            .await
            .expect("read");
        assert!(!answered.is_finished());
        // ...and goes out once the body ends.
        drop(sender);
        assert_eq!(answered.await.expect("joined").status(), 401);
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_problem() {
        let response = app(10)
            .oneshot(
                Request::get("/read")
                    .body(Body::empty())
                    .expect("a request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), 405);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    fn tokio_stream_like(
        mut receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
    }
}
