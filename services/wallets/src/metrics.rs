//! The business metrics of `wallets`: hold requests by operation and outcome, batches of
//! releases by path, payments, and how the Ethereum node answers. Every label value is one of a
//! fixed list, zero from the start.

use std::time::Instant;

use gavel_common::idempotency::StoredAnswer;
use gavel_common::metrics::{Metrics, counter_vec};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

pub const OPERATIONS: &[&str] = &["place", "release", "capture"];
/// `ok`, `replayed`, every refusal code of the ledger, and `error`.
pub const HOLD_OUTCOMES: &[&str] = &[
    "ok",
    "replayed",
    "insufficient_funds",
    "hold_would_decrease",
    "hold_captured",
    "no_active_hold",
    "capture_exceeds_hold",
    "wallet_not_linked",
    "bid_abandoned",
    "idempotency_key_reused",
    "error",
];
/// Sign-in outcomes: `signed_in`, each kind of refusal, `error`.
pub const SIGN_IN_OUTCOMES: &[&str] = &[
    "signed_in",
    "malformed",
    "wrong_site",
    "stale",
    "bad_nonce",
    "bad_signature",
    "error",
];
pub const CHAIN_OPERATIONS: &[&str] = &["balance", "payment"];

#[derive(Clone, Debug)]
pub struct WalletMetrics {
    holds: IntCounterVec,
    release_batches: IntCounterVec,
    payments: IntCounterVec,
    sign_ins: IntCounterVec,
}

impl WalletMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let holds = IntCounterVec::new(
            Opts::new(
                "hold_requests_total",
                "Hold requests from bids by operation and outcome.",
            ),
            &["operation", "outcome"],
        )
        .expect("static metric definition is valid");
        for operation in OPERATIONS {
            for outcome in HOLD_OUTCOMES {
                holds.with_label_values(&[operation, outcome]);
            }
        }
        let release_batches = counter_vec(
            "release_batches_total",
            "Batches of releases from bids, by how they were done: together (a few statements \
             for the batch) or one_at_a_time (after the set-based path failed).",
            "path",
            &["together", "one_at_a_time"],
        );
        let payments = counter_vec(
            "payments_total",
            "Won lots' payments by how they ended.",
            "outcome",
            &["confirmed", "defaulted"],
        );
        let sign_ins = counter_vec(
            "sign_ins_total",
            "Sign-in attempts by outcome.",
            "outcome",
            SIGN_IN_OUTCOMES,
        );
        metrics.register(holds.clone());
        metrics.register(release_batches.clone());
        metrics.register(payments.clone());
        metrics.register(sign_ins.clone());
        Self {
            holds,
            release_batches,
            payments,
            sign_ins,
        }
    }

    pub fn sign_in(&self, outcome: &str) {
        let outcome = if SIGN_IN_OUTCOMES.contains(&outcome) {
            outcome
        } else {
            "error"
        };
        self.sign_ins.with_label_values(&[outcome]).inc();
    }

    /// Counts one batch of releases, done together or one at a time.
    pub fn release_batch(&self, together: bool) {
        let path = if together {
            "together"
        } else {
            "one_at_a_time"
        };
        self.release_batches.with_label_values(&[path]).inc();
    }

    /// Counts one answered hold request.
    pub fn hold(&self, operation: &str, answer: Result<&StoredAnswer, &str>) {
        let outcome = match answer {
            Ok(answer) if answer.replayed => "replayed",
            Ok(answer) if answer.status < 300 => "ok",
            Ok(answer) => answer
                .body
                .get("code")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("error"),
            Err(code) => code,
        };
        let outcome = if HOLD_OUTCOMES.contains(&outcome) {
            outcome
        } else {
            "error"
        };
        self.holds.with_label_values(&[operation, outcome]).inc();
    }

    pub fn payments_confirmed(&self) {
        self.payments.with_label_values(&["confirmed"]).inc();
    }

    pub fn payments_defaulted(&self, count: u64) {
        self.payments
            .with_label_values(&["defaulted"])
            .inc_by(count);
    }
}

/// How the Ethereum node answers: requests that reached it (cache hits are not counted), by
/// operation and outcome, and how long they took.
#[derive(Clone, Debug)]
pub struct ChainMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl ChainMetrics {
    pub fn new(metrics: &Metrics) -> Self {
        let requests = IntCounterVec::new(
            Opts::new(
                "chain_requests_total",
                "Reads from the Ethereum node by operation and outcome (ok or error).",
            ),
            &["operation", "outcome"],
        )
        .expect("static metric definition is valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "chain_request_duration_seconds",
                "Time the Ethereum node took to answer a read, by operation.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["operation"],
        )
        .expect("static metric definition is valid");
        for operation in CHAIN_OPERATIONS {
            duration.with_label_values(&[operation]);
            for outcome in ["ok", "error"] {
                requests.with_label_values(&[operation, outcome]);
            }
        }
        metrics.register(requests.clone());
        metrics.register(duration.clone());
        Self { requests, duration }
    }

    /// Records one read that started at `started`.
    pub fn observe(&self, operation: &'static str, started: Instant, ok: bool) {
        self.duration
            .with_label_values(&[operation])
            .observe(started.elapsed().as_secs_f64());
        let outcome = if ok { "ok" } else { "error" };
        self.requests.with_label_values(&[operation, outcome]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_outcomes_come_from_the_answer_and_stay_bounded() {
        let metrics = Metrics::new("wallets");
        let wallets = WalletMetrics::new(&metrics);
        let refused = StoredAnswer::fresh(409, serde_json::json!({"code": "insufficient_funds"}));
        wallets.hold("place", Ok(&refused));
        wallets.hold(
            "place",
            Ok(&StoredAnswer::fresh(
                409,
                serde_json::json!({"code": "FUZZ"}),
            )),
        );
        let text = metrics.render();
        assert!(text.contains(
            "gavel_hold_requests_total{operation=\"place\",outcome=\"insufficient_funds\",service=\"wallets\"} 1"
        ));
        assert!(text.contains(
            "gavel_hold_requests_total{operation=\"place\",outcome=\"error\",service=\"wallets\"} 1"
        ));
        assert!(text.contains("gavel_payments_total{outcome=\"defaulted\",service=\"wallets\"} 0"));
        assert!(!text.contains("FUZZ"));
    }
}
