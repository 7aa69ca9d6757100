//! Prometheus metrics: one registry per service, HTTP metrics labelled by matched route (never the
//! raw path, which would explode the label set), the process and build metrics, and the
//! `/metrics` text encoding.
//!
//! Every metric is named `gavel_…` and carries the constant label `service`. Labels are bounded
//! by construction: a label's values come from a fixed list in the code, and counters whose
//! labels are known up front are created at zero ([`counter_vec`]), so that a rule such as
//! `increase(…[5m]) > 0` sees a series from the start.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// A gauge set from the service's state just before each scrape (pool sizes, queue lengths kept
/// in memory).
type Sampler = Box<dyn Fn() + Send + Sync>;

/// The service's registry and the HTTP metrics every service shares. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    in_flight: IntGauge,
    samplers: Arc<Mutex<Vec<Sampler>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The version of the binary (Cargo's) and the commit it was built from, when the image says
/// (`GIT_REVISION`, set by docker/Dockerfile).
fn build_info() -> IntGaugeVec {
    let info = IntGaugeVec::new(
        Opts::new(
            "build_info",
            "Always 1; the labels say which build of the service runs.",
        ),
        &["version", "revision"],
    )
    .expect("static metric definition is valid");
    let revision = std::env::var("GIT_REVISION").unwrap_or_else(|_| "unknown".to_owned());
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), &revision])
        .set(1);
    info
}

/// A counter family whose every label combination exists from the start, at zero.
pub fn counter_vec(name: &str, help: &str, label: &str, values: &[&str]) -> IntCounterVec {
    let counter = IntCounterVec::new(Opts::new(name, help), &[label])
        .expect("static metric definition is valid");
    for value in values {
        counter.with_label_values(&[value]);
    }
    counter
}

/// A histogram of durations in seconds, with buckets from 1 ms to 10 s.
pub fn seconds_histogram(name: &str, help: &str) -> prometheus::Histogram {
    prometheus::Histogram::with_opts(HistogramOpts::new(name, help).buckets(vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]))
    .expect("static metric definition is valid")
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
            samplers: Arc::default(),
        };
        metrics.register(metrics.requests.clone());
        metrics.register(metrics.duration.clone());
        metrics.register(metrics.in_flight.clone());
        metrics.register(build_info());
        metrics.register(prometheus::process_collector::ProcessCollector::for_self());
        metrics
    }

    /// Runs `sample` before every scrape: for gauges that mirror in-memory state.
    pub fn on_scrape(&self, sample: impl Fn() + Send + Sync + 'static) {
        self.samplers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(sample));
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
        for sample in self
            .samplers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            sample();
        }
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
