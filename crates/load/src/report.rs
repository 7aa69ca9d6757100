//! What a run measured: latency histograms (HdrHistogram, microseconds), counts, the gateway's
//! memory, and the scenario's targets; printed as Markdown and written as JSON.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use hdrhistogram::{Counter, Histogram};
use serde::Serialize;

/// A histogram of microseconds from 1 µs to 60 s, two significant digits (1 %).
pub fn histogram<T: Counter>() -> Histogram<T> {
    Histogram::new_with_bounds(1, 60_000_000, 2)
        .expect("1 µs to 60 s at two digits is a valid range")
}

/// Refusals that never reached the lot's serialisation: the gateway's own (a connection's bids in
/// flight, `bids` unreachable), answers lost with a connection, and the bidder's rate limit. Everything else was decided by the
/// engine's rules (accepted, too low, closed, …).
pub const NOT_DECIDED: [&str; 5] = [
    "too_many_bids",
    "connection_lost",
    "upstream_unavailable",
    "engine_busy",
    "rate_limited",
];

/// What every connection reports as it happens (behind one lock: a few thousand answers a
/// second; the watchers' deliveries only from a sample of them).
#[derive(Debug)]
pub struct Shared {
    pub start: Instant,
    /// Acknowledgement latency by the second the bid was due in.
    pub ack: Vec<Histogram<u64>>,
    /// Accepted → delivered latency (sampled watchers) by the second it arrived in.
    pub delivery: Vec<Histogram<u64>>,
    pub sent: u64,
    pub answered: u64,
    pub accepted: u64,
    pub refused: BTreeMap<String, u64>,
    pub unanswered: u64,
    /// The highest sequence an accepted bid got, per lot: what every watcher must reach.
    pub last_sequence: HashMap<String, i64>,
    /// Every answer, as a client saw it (kept for `--acks`).
    pub acks: Vec<Ack>,
}

/// One bid's answer as the client saw it: what an invariant checker compares with the
/// databases (`gavel-admin check`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ack {
    /// The request id, which is also the bid's idempotency key (unique in a run).
    pub key: String,
    pub lot: String,
    /// `accepted`, or the refusal's code.
    pub outcome: String,
    /// The lot sequence an accepted bid got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<i64>,
}

impl Shared {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            ack: Vec::new(),
            delivery: Vec::new(),
            sent: 0,
            answered: 0,
            accepted: 0,
            refused: BTreeMap::new(),
            unanswered: 0,
            last_sequence: HashMap::new(),
            acks: Vec::new(),
        }
    }

    fn second(&self, at: Instant) -> usize {
        usize::try_from(at.saturating_duration_since(self.start).as_secs()).unwrap_or(0)
    }

    pub fn answered(&mut self, due: Instant, micros: u64, refusal: Option<&str>) {
        let second = self.second(due);
        record_at(&mut self.ack, second, micros);
        self.answered += 1;
        match refusal {
            None => self.accepted += 1,
            Some(code) => *self.refused.entry(code.to_owned()).or_default() += 1,
        }
    }

    pub fn delivered(&mut self, micros: u64) {
        let second = self.second(Instant::now());
        record_at(&mut self.delivery, second, micros);
    }

    pub fn acknowledged(&mut self, lot: &str, sequence: i64) {
        let last = self.last_sequence.entry(lot.to_owned()).or_default();
        *last = (*last).max(sequence);
    }

    pub fn unanswered(&mut self, count: usize) {
        self.unanswered += count as u64;
    }

    pub fn timeline(&self) -> Vec<Second> {
        let of = |seconds: &[Histogram<u64>], second: usize| {
            seconds
                .get(second)
                .filter(|histogram| !histogram.is_empty())
                .map(Latency::of)
        };
        (0..self.ack.len().max(self.delivery.len()))
            .map(|second| Second {
                second,
                ack: of(&self.ack, second),
                delivery: of(&self.delivery, second),
            })
            .collect()
    }

    /// The acknowledgement latencies of bids due in seconds `from..to`.
    pub fn ack_between(&self, from: usize, to: usize) -> Histogram<u64> {
        let mut merged = histogram();
        for second in self.ack.iter().take(to).skip(from) {
            let _ = merged.add(second);
        }
        merged
    }
}

fn record_at(seconds: &mut Vec<Histogram<u64>>, second: usize, micros: u64) {
    while seconds.len() <= second {
        seconds.push(histogram());
    }
    let _ = seconds[second].record(micros);
}

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of<T: Counter>(histogram: &Histogram<T>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub rate: f64,
    pub decided_per_s: f64,
    pub ack: Latency,
}

/// One second of the run: the bids due in it and the events that arrived in it.
#[derive(Debug, Clone, Serialize)]
pub struct Second {
    pub second: usize,
    pub ack: Option<Latency>,
    pub delivery: Option<Latency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
    /// How far off a missed target is, as a factor (`7.4`: a rate at 1/7.4 of its target, or a
    /// latency 7.4 times its bound); `None` when met.
    pub missed_by: Option<f64>,
}

impl Target {
    /// A rate that must reach `target`.
    pub fn at_least(what: &str, target: f64, measured: f64, unit: &str) -> Self {
        let met = measured >= target;
        Self {
            what: what.to_owned(),
            target: format!("≥ {target:.0} {unit}"),
            measured: format!("{measured:.0} {unit}"),
            met,
            // Nothing measured is no factor at all (`met` still says false).
            missed_by: (!met && measured > 0.0).then(|| target / measured),
        }
    }

    /// A latency that must stay below `bound`.
    pub fn below(what: &str, bound: f64, measured: f64, unit: &str) -> Self {
        let met = measured < bound;
        Self {
            what: what.to_owned(),
            target: format!("< {bound} {unit}"),
            measured: format!("{measured:.1} {unit}"),
            met,
            missed_by: (!met).then(|| measured / bound),
        }
    }

    /// A size that must not exceed `bound`.
    pub fn at_most(what: &str, bound: f64, measured: f64, unit: &str) -> Self {
        let met = measured <= bound;
        Self {
            what: what.to_owned(),
            target: format!("≤ {bound} {unit}"),
            measured: format!("{measured:.2} {unit}"),
            met,
            missed_by: (!met).then(|| measured / bound),
        }
    }

    fn verdict(&self) -> String {
        match self.missed_by {
            None if self.met => "met".to_owned(),
            None => "MISSED (nothing measured)".to_owned(),
            // Two decimals near 1 (a miss of 2 % is not "by 1.0×"), one beyond.
            Some(factor) if factor < 2.0 => format!("MISSED by {factor:.2}×"),
            Some(factor) => format!("MISSED by {factor:.1}×"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Memory {
    pub pid: Option<u32>,
    pub rss_before_mib: Option<f64>,
    pub rss_connected_mib: Option<f64>,
    pub rss_end_mib: Option<f64>,
    pub per_connection_kib: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub gateway: String,
    /// Gateway replicas the connections were spread over (memory is the first one's).
    pub gateway_replicas: usize,
    pub rate: f64,
    pub duration_s: f64,
    pub lots: usize,
    pub bidders: usize,
    pub watchers: usize,
    pub connections: usize,
    pub connection_failures: usize,
    pub bids_sent: u64,
    pub bids_answered: u64,
    pub bids_unanswered: u64,
    pub accepted: u64,
    pub refused: BTreeMap<String, u64>,
    /// Over the bidding window: from the first bid due until the last answer.
    pub window_s: f64,
    /// Answers per second, of any kind.
    pub answered_per_s: f64,
    /// Bids the engine decided per second (accepted or refused by the rules).
    pub decided_per_s: f64,
    pub accepted_per_s: f64,
    pub ack: Latency,
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    pub delivery: Latency,
    pub events_out_of_order: u64,
    pub events_missing: u64,
    /// Connections lost and made again (`--reconnect`).
    pub reconnects: u64,
    pub errors: Vec<String>,
    pub memory: Memory,
    pub ramp: Vec<Step>,
    pub knee_rate: Option<f64>,
    pub targets: Vec<Target>,
    /// Latency over time (deliveries from a sample of the watchers).
    pub timeline: Vec<Second>,
    /// This machine's CPU by program while bidding, in percent of one core.
    pub cpu_percent: Vec<(String, f64)>,
    /// The machine's CPU per accepted bid while bidding (every program above 1 % of a core), in
    /// milliseconds: what a change to the bid path costs or saves, steadier from run to run than
    /// a throughput measured at saturation.
    pub cpu_ms_per_accepted: Option<f64>,
}

/// Milliseconds of CPU per accepted bid, from each program's share of a core and the accepted rate
/// over the same window; `None` without accepted bids.
pub fn cpu_per_accepted(cpu_percent: &[(String, f64)], accepted_per_s: f64) -> Option<f64> {
    let cores: f64 = cpu_percent.iter().map(|(_, percent)| percent / 100.0).sum();
    (accepted_per_s > 0.0 && cores > 0.0).then(|| 1000.0 * cores / accepted_per_s)
}

impl Report {
    /// No lost answer, no lost or disordered event, every connection made and kept.
    pub fn clean(&self) -> bool {
        self.bids_unanswered == 0
            && self.events_missing == 0
            && self.events_out_of_order == 0
            && self.connection_failures == 0
            && self.errors.is_empty()
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {} ({} lots, {} bidders, {} watchers, {} bids/s for {} s)\n\n| measure | result |\n|---|---|\n",
            self.scenario, self.lots, self.bidders, self.watchers, self.rate, self.duration_s
        );
        let mut row = |name: &str, value: String| out.push_str(&format!("| {name} | {value} |\n"));
        if self.bids_sent > 0 {
            row(
                "bids sent / answered / unanswered",
                format!(
                    "{} / {} / {}",
                    self.bids_sent, self.bids_answered, self.bids_unanswered
                ),
            );
            row(
                "answered / decided by the engine / accepted, per second",
                format!(
                    "{:.0} / {:.0} / {:.0} ({} accepted)",
                    self.answered_per_s, self.decided_per_s, self.accepted_per_s, self.accepted
                ),
            );
            let refused: Vec<String> = self
                .refused
                .iter()
                .map(|(code, count)| format!("{code} {count}"))
                .collect();
            row(
                "refused, by reason",
                if refused.is_empty() {
                    "none".to_owned()
                } else {
                    refused.join(", ")
                },
            );
            row("acknowledgement (from the due time)", latency(&self.ack));
        }
        if self.deliveries > 0 {
            row(
                "deliveries",
                format!("{} ({:.0}/s)", self.deliveries, self.deliveries_per_s),
            );
            row("accepted → delivered", latency(&self.delivery));
        }
        row(
            "events missing / out of order",
            format!("{} / {}", self.events_missing, self.events_out_of_order),
        );
        if self.reconnects > 0 {
            row(
                "connections lost and made again",
                self.reconnects.to_string(),
            );
        }
        row(
            "connections (failed)",
            format!("{} ({})", self.connections, self.connection_failures),
        );
        if self.gateway_replicas > 1 {
            row(
                "gateway replicas (memory: the first's)",
                self.gateway_replicas.to_string(),
            );
        }
        if let (Some(before), Some(connected), Some(end)) = (
            self.memory.rss_before_mib,
            self.memory.rss_connected_mib,
            self.memory.rss_end_mib,
        ) {
            row(
                "gateway RSS",
                format!("{before:.1} MiB → {connected:.1} MiB connected → {end:.1} MiB at the end"),
            );
        }
        if let Some(per) = self.memory.per_connection_kib {
            row("gateway memory per connection", format!("{per:.2} KiB"));
        }
        for step in &self.ramp {
            row(
                &format!("ramp {:.0} bids/s", step.rate),
                format!(
                    "{:.0} decided/s, {}",
                    step.decided_per_s,
                    latency(&step.ack)
                ),
            );
        }
        if let Some(knee) = self.knee_rate {
            row(
                "knee (last rate with p99 < 50 ms)",
                format!("{knee:.0} bids/s"),
            );
        }
        if !self.cpu_percent.is_empty() {
            let busiest: Vec<String> = self
                .cpu_percent
                .iter()
                .take(8)
                .map(|(name, percent)| format!("{name} {percent:.0} %"))
                .collect();
            row("CPU while bidding (% of one core)", busiest.join(", "));
        }
        if let Some(cpu) = self.cpu_ms_per_accepted {
            row(
                "CPU per accepted bid (all programs)",
                format!("{cpu:.2} ms"),
            );
        }
        for error in &self.errors {
            row("error", error.clone());
        }
        for target in &self.targets {
            row(
                &format!("target: {}", target.what),
                format!(
                    "{} — measured {} — {}",
                    target.target,
                    target.measured,
                    target.verdict()
                ),
            );
        }
        out
    }
}

fn latency(latency: &Latency) -> String {
    format!(
        "p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
        latency.p50_ms, latency.p95_ms, latency.p99_ms, latency.max_ms, latency.count
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn answers_are_counted_by_outcome_and_by_the_second_they_were_due() {
        let start = Instant::now();
        let mut shared = Shared::new(start);
        shared.answered(start, 10_000, None);
        shared.answered(start + Duration::from_millis(1500), 30_000, Some("too_low"));
        shared.answered(start + Duration::from_millis(1600), 20_000, Some("too_low"));
        shared.acknowledged("lot", 7);
        shared.acknowledged("lot", 5);
        assert_eq!((shared.answered, shared.accepted), (3, 1));
        assert_eq!(shared.refused.get("too_low"), Some(&2));
        assert_eq!(shared.last_sequence.get("lot"), Some(&7));
        assert_eq!(shared.ack_between(1, 2).len(), 2);
        let timeline = shared.timeline();
        assert_eq!(timeline.len(), 2);
        let second = timeline[1].ack.expect("second 1 has answers");
        assert!((second.max_ms - 30.0).abs() < 0.5, "{second:?}");
    }

    #[test]
    fn a_missed_target_says_by_how_much() {
        let rate = Target::at_least("accepted bids/s", 2000.0, 250.0, "/s");
        assert_eq!(rate.missed_by, Some(8.0));
        assert_eq!(rate.verdict(), "MISSED by 8.0×");
        let latency = Target::below("p99", 50.0, 1250.0, "ms");
        assert_eq!(latency.missed_by, Some(25.0));
        let nothing = Target::at_least("accepted bids/s", 2000.0, 0.0, "/s");
        assert_eq!((nothing.met, nothing.missed_by), (false, None));
        assert_eq!(nothing.verdict(), "MISSED (nothing measured)");
        let close = Target::at_least("deliveries/s", 100_000.0, 97_665.0, "/s");
        assert_eq!(close.verdict(), "MISSED by 1.02×");
        let memory = Target::at_most("per connection", 8.0, 6.25, "KiB");
        assert_eq!((memory.met, memory.missed_by), (true, None));
        assert_eq!(memory.verdict(), "met");
        assert_eq!(Target::below("p99", 50.0, 49.9, "ms").missed_by, None);
    }

    #[test]
    fn cpu_per_accepted_bid_adds_every_program() {
        let cpu = vec![("postgres".to_owned(), 70.0), ("bids".to_owned(), 30.0)];
        let per = cpu_per_accepted(&cpu, 250.0).expect("bids were accepted");
        assert!((per - 4.0).abs() < 1e-9, "{per}");
        assert_eq!(cpu_per_accepted(&cpu, 0.0), None);
    }
}
