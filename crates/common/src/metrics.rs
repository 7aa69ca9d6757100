//! Prometheus metrics: one registry per service, HTTP metrics labelled by matched route (never the
//! raw path, which would explode the label set), and the `/metrics` text encoding.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The service's registry and the HTTP metrics every service shares. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
}

impl Metrics {
    /// A fresh registry whose metrics carry `service` as a constant label.
    pub fn new(service: &str) -> Self {
        let labels = [("service".to_owned(), service.to_owned())]
            .into_iter()
            .collect();
        // Registration only fails on duplicate names, which a fresh registry cannot have.
        let registry = Registry::new_custom(Some("gavel".to_owned()), Some(labels))
            .unwrap_or_else(|_| Registry::new());
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, matched route and status.",
            ),
            &["method", "route", "status"],
        )
        .expect("static metric definition is valid");
        let duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency.").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
            &["method", "route"],
        )
        .expect("static metric definition is valid");
        let in_flight = IntGauge::new("http_requests_in_flight", "HTTP requests being served.")
            .expect("static metric definition is valid");
        let metrics = Self {
            registry,
            requests,
            duration,
            in_flight,
        };
        metrics.register(metrics.requests.clone());
        metrics.register(metrics.duration.clone());
        metrics.register(metrics.in_flight.clone());
        metrics
    }

    /// Adds a collector. Names are static and unique per service, so a clash is a programming
    /// error caught by the first test that builds the service.
    pub fn register<C: prometheus::core::Collector + 'static>(&self, collector: C) {
        if let Err(error) = self.registry.register(Box::new(collector)) {
            panic!("metric registered twice: {error}");
        }
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec cannot fail on I/O; a malformed metric would be a bug in this crate.
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(%error, "failed to encode metrics");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

/// The method as a label: one of the methods HTTP defines, or `other`, so that a client sending
/// made-up methods cannot grow the label set.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware recording count, latency and in-flight gauge per matched route (or `unmatched`)
/// and bounded method.
pub async fn track_http(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    metrics.in_flight.inc();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.in_flight.dec();
    metrics
        .duration
        .with_label_values(&[method, &route])
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .with_label_values(&[method, &route, response.status().as_str()])
        .inc();
    response
}
