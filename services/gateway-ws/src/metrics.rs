//! The gateway's own metrics, beside the HTTP ones every service has.

use gavel_common::metrics::Metrics;

/// Every reason `gavel_ws_closes_total` counts (session::End::label), zero from the start.
pub const CLOSE_REASONS: &[&str] = &[
    "client",
    "going_away",
    "binary",
    "flood",
    "too_big",
    "too_slow",
    "other",
];
use prometheus::{IntCounter, IntCounterVec, IntGauge};

#[derive(Debug, Clone)]
pub struct GatewayMetrics {
    pub connections: IntGauge,
    /// Live events written to clients.
    pub delivered: IntCounter,
    /// Events written to clients from the `bids` log (replay and catch-up).
    pub replayed: IntCounter,
    /// Events not queued for a connection because its queue was full.
    pub behind: IntCounter,
    pub catch_ups: IntCounter,
    /// Events received from the broker.
    pub received: IntCounter,
    pub closes: IntCounterVec,
    /// Bids this replica has waiting on `bids`.
    pub bids_waiting: IntGauge,
    /// Bids turned away with `engine_busy`.
    pub bids_busy: IntCounter,
}

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("static metric definition is valid")
}

impl GatewayMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let this = Self {
            connections: IntGauge::new("ws_connections", "Open WebSocket connections.")
                .expect("static metric definition is valid"),
            delivered: counter(
                "ws_events_delivered_total",
                "Live events written to clients.",
            ),
            replayed: counter(
                "ws_events_replayed_total",
                "Events written to clients from the bids log.",
            ),
            behind: counter(
                "ws_events_behind_total",
                "Events a full connection queue could not take (caught up from the log).",
            ),
            catch_ups: counter("ws_catch_ups_total", "Gap fills from the bids log."),
            received: counter(
                "ws_broker_events_total",
                "Auction events received from the broker.",
            ),
            bids_waiting: IntGauge::new(
                "ws_bids_waiting",
                "Bids this replica has waiting on bids (at most upstream.max_bids_in_flight).",
            )
            .expect("static metric definition is valid"),
            bids_busy: counter(
                "ws_bids_engine_busy_total",
                "Bids turned away at once because upstream.max_bids_in_flight were waiting.",
            ),
            closes: gavel_common::metrics::counter_vec(
                "ws_closes_total",
                "Connections ended, by reason.",
                "reason",
                CLOSE_REASONS,
            ),
        };
        metrics.register(this.connections.clone());
        metrics.register(this.delivered.clone());
        metrics.register(this.replayed.clone());
        metrics.register(this.behind.clone());
        metrics.register(this.catch_ups.clone());
        metrics.register(this.received.clone());
        metrics.register(this.closes.clone());
        metrics.register(this.bids_waiting.clone());
        metrics.register(this.bids_busy.clone());
        this
    }
}
