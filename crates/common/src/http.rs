//! The layers that wrap every public router: a request id (taken from `x-request-id` or minted),
//! echoed on the response and carried in the request's span together with the matched route, and
//! the per-route metrics.

use axum::Router;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::metrics::{Metrics, track_http};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps `router` with request ids, tracing spans and metrics.
pub fn instrument(router: Router, metrics: Metrics) -> Router {
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
    // span opens (and sees it), then metrics are taken.
    router
        .layer(axum::middleware::from_fn_with_state(metrics, track_http))
        .layer(trace)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}
