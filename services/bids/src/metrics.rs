//! The business metrics of `bids`: what bidders were answered and how fast, and whether lots open
//! and close on time. Every label value is one of a fixed list, zero from the start, so a rate
//! over a quiet outcome is 0 rather than absent.

use gavel_common::idempotency::StoredAnswer;
use gavel_common::metrics::{Metrics, counter_vec, seconds_histogram};
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec};

/// Every outcome `gavel_bids_total` counts.
pub const OUTCOMES: &[&str] = &[
    "accepted",
    "accepted_below_reserve",
    "outbid_by_proxy",
    "too_low",
    "not_open",
    "closed",
    "own_lot",
    "insufficient_funds",
    "wallet_not_linked",
    "replayed",
    "rate_limited",
    "unknown_lot",
    "idempotency_key_reused",
    "holds_unavailable",
    "busy",
    "invalid",
    "error",
];

#[derive(Clone, Debug)]
pub struct BidMetrics {
    bids: IntCounterVec,
    duration: Histogram,
}

impl BidMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let bids = counter_vec(
            "bids_total",
            "Bid requests by what the bidder was answered.",
            "outcome",
            OUTCOMES,
        );
        let duration = seconds_histogram(
            "bid_duration_seconds",
            "Time from a bid request's arrival to its answer, refusals included.",
        );
        metrics.register(bids.clone());
        metrics.register(duration.clone());
        Self { bids, duration }
    }

    /// Counts one answered bid request: `outcome` is a code from [`OUTCOMES`] (anything else
    /// counts as `error`).
    pub fn observe(&self, outcome: &str, seconds: f64) {
        let outcome = if OUTCOMES.contains(&outcome) {
            outcome
        } else {
            "error"
        };
        self.bids.with_label_values(&[outcome]).inc();
        self.duration.observe(seconds);
    }

    /// The outcome of an answer the engine decided (or replayed).
    pub fn outcome_of(answer: &StoredAnswer) -> &str {
        if answer.replayed {
            return "replayed";
        }
        answer
            .body
            .get("result")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("error")
    }
}

/// Opening and closing lots on time.
#[derive(Clone, Debug)]
pub struct ScheduleMetrics {
    pub opened: IntCounter,
    pub closed: IntCounter,
    /// Seconds between a lot's end and the tick that closed it.
    pub close_lag: Histogram,
}

impl ScheduleMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let opened = IntCounter::new("lots_opened_total", "Lots opened by the schedule.")
            .expect("static metric definition is valid");
        let closed = IntCounter::new("lots_closed_total", "Lots closed by the schedule.")
            .expect("static metric definition is valid");
        let close_lag = Histogram::with_opts(
            HistogramOpts::new(
                "lot_close_lag_seconds",
                "Seconds between a lot's end and its close.",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0]),
        )
        .expect("static metric definition is valid");
        metrics.register(opened.clone());
        metrics.register(closed.clone());
        metrics.register(close_lag.clone());
        Self {
            opened,
            closed,
            close_lag,
        }
    }
}

/// Bids decided per batch (one transaction, one commit) by the lots' writers.
pub fn batch_size(metrics: &Metrics) -> Histogram {
    let histogram = Histogram::with_opts(
        HistogramOpts::new(
            "bid_batch_size",
            "Bids a lot's writer decided in one transaction.",
        )
        .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
    )
    .expect("static metric definition is valid");
    metrics.register(histogram.clone());
    histogram
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_is_exposed_from_the_start_and_unknown_codes_count_as_error() {
        let metrics = Metrics::new("bids");
        let bids = BidMetrics::new(&metrics);
        bids.observe("FUZZ", 0.01);
        bids.observe("too_low", 0.01);
        let text = metrics.render();
        for outcome in OUTCOMES {
            assert!(
                text.contains(&format!("outcome=\"{outcome}\"")),
                "{outcome} missing from\n{text}"
            );
        }
        assert!(!text.contains("FUZZ"));
        assert!(text.contains("gavel_bids_total{outcome=\"error\",service=\"bids\"} 1"));
    }
}
