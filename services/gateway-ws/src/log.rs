//! This replica's window on the `bids` log, shared by its connections so that a herd of them
//! catching up at once (after a broker reconnect, a rolling update, reordered batches) costs
//! `bids` one request per lot, not one per connection:
//!
//! - **Recent events in memory.** The fan-out records every event it receives, per lot (the
//!   last [`RECENT`]). A connection that fell behind (a full queue, an event that overtook
//!   another) catches up from here when the run it needs is complete. After a broker reconnect
//!   the memory cannot vouch for what was missed, so it is forgotten.
//! - **Coalesced fetches.** Requests for the same lot and position share one call to `bids`,
//!   and its answer serves callers for [`FETCH_TTL`]; snapshots likewise for [`SNAPSHOT_TTL`]
//!   (a snapshot a moment old is fine: events after it follow by sequence).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use gavel_messaging::Envelope;
use gavel_types::LotId;
use prometheus::IntCounterVec;
use tokio::sync::OnceCell;

use crate::hub::LiveEvent;
use crate::protocol;
use crate::upstream::{Snapshot, UpstreamError, Upstreams};

/// Events kept in memory per lot.
pub const RECENT: usize = 256;
/// How long a fetched page of the log answers further callers.
pub const FETCH_TTL: Duration = Duration::from_secs(1);
pub const SNAPSHOT_TTL: Duration = Duration::from_millis(250);
/// A lot nobody has touched for this long is dropped from memory.
const IDLE: Duration = Duration::from_secs(300);

pub type Events = Arc<[Arc<LiveEvent>]>;

/// Shared calls in flight or freshly answered, by what they ask.
type Flights<K, T> = Mutex<HashMap<K, Arc<Flight<T>>>>;

/// A call to `bids` shared by everyone who asks for the same thing meanwhile.
struct Flight<T> {
    started: Instant,
    result: OnceCell<Result<T, String>>,
}

impl<T: Clone> Flight<T> {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            result: OnceCell::new(),
        })
    }
}

#[derive(Default)]
struct Recent {
    events: BTreeMap<i64, Arc<LiveEvent>>,
    touched: Option<Instant>,
}

/// Where answers came from: `memory`, `shared` (another caller's fetch), `fetched`.
#[derive(Debug, Clone)]
pub struct LogMetrics {
    pub answers: IntCounterVec,
}

impl LogMetrics {
    pub fn new(metrics: &gavel_common::metrics::Metrics) -> Self {
        let answers = IntCounterVec::new(
            prometheus::Opts::new(
                "ws_log_answers_total",
                "Catch-ups and snapshots by where the answer came from (memory, shared, fetched).",
            ),
            &["source"],
        )
        .expect("static metric definition is valid");
        for source in ["memory", "shared", "fetched"] {
            answers.with_label_values(&[source]);
        }
        metrics.register(answers.clone());
        Self { answers }
    }
}

pub struct LotLog {
    upstreams: Upstreams,
    recent: Mutex<HashMap<LotId, Recent>>,
    fetches: Flights<(LotId, i64), Events>,
    snapshots: Flights<LotId, Option<Snapshot>>,
    metrics: LogMetrics,
}

impl std::fmt::Debug for LotLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LotLog").finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LotLog {
    pub fn new(upstreams: Upstreams, metrics: LogMetrics) -> Self {
        Self {
            upstreams,
            recent: Mutex::default(),
            fetches: Mutex::default(),
            snapshots: Mutex::default(),
            metrics,
        }
    }

    /// Remembers an event the fan-out received.
    pub fn record(&self, event: &Arc<LiveEvent>) {
        let now = Instant::now();
        let mut recent = lock(&self.recent);
        let lot = recent.entry(event.lot_id).or_default();
        lot.events.insert(event.sequence, event.clone());
        while lot.events.len() > RECENT {
            lot.events.pop_first();
        }
        lot.touched = Some(now);
        if recent.len() > 10_000 {
            recent.retain(|_, lot| lot.touched.is_some_and(|at| now - at < IDLE));
        }
    }

    /// After a broker reconnect: what was published meanwhile is neither in memory nor in the
    /// answers fetched before.
    pub fn forget(&self) {
        lock(&self.recent).clear();
        lock(&self.fetches).clear();
        lock(&self.snapshots).clear();
    }

    /// The events after `since` from memory, if memory holds every one of them up to the newest
    /// it knows; `None` when it cannot vouch for them.
    fn remembered(&self, lot_id: LotId, since: i64) -> Option<Events> {
        let recent = lock(&self.recent);
        let lot = recent.get(&lot_id)?;
        let (&first, _) = lot.events.first_key_value()?;
        if first > since + 1 {
            return None;
        }
        let run: Vec<Arc<LiveEvent>> = lot
            .events
            .range(since + 1..)
            .map(|(_, e)| e.clone())
            .collect();
        let contiguous = run
            .iter()
            .zip(since + 1..)
            .all(|(event, expected)| event.sequence == expected);
        (contiguous && !run.is_empty()).then(|| run.into())
    }

    /// The events of `lot_id` after `since`, in order (at most [`crate::upstream::REPLAY_LIMIT`]
    /// when fetched): from memory when it can vouch, else one shared call to `bids`. `through`
    /// is a sequence the caller knows exists (an event that arrived after a gap): an answer
    /// fetched before it existed is not reused.
    pub async fn events_since(
        &self,
        lot_id: LotId,
        since: i64,
        through: Option<i64>,
    ) -> Result<Events, UpstreamError> {
        if let Some(events) = self.remembered(lot_id, since)
            && through.is_none_or(|through| events.last().is_some_and(|e| e.sequence >= through))
        {
            self.metrics.answers.with_label_values(&["memory"]).inc();
            return Ok(events);
        }
        self.fetch_since(lot_id, since, through).await
    }

    /// Like [`Self::events_since`], but never from memory: what `bids` has committed by now
    /// (a subscription with `since` gets everything up to the moment it subscribed).
    pub async fn fetch_since(
        &self,
        lot_id: LotId,
        since: i64,
        through: Option<i64>,
    ) -> Result<Events, UpstreamError> {
        let reaches = |events: &Events| {
            through.is_none_or(|through| events.last().is_some_and(|e| e.sequence >= through))
        };
        let flight = shared(&self.fetches, (lot_id, since), FETCH_TTL, reaches);
        let upstreams = &self.upstreams;
        self.fly(&flight, || async move {
            let envelopes = upstreams.events_since(lot_id, since).await?;
            Ok(envelopes
                .iter()
                .filter_map(|envelope| live(lot_id, envelope))
                .map(Arc::new)
                .collect::<Vec<_>>()
                .into())
        })
        .await
    }

    /// The lot as `bids` has it now (give or take [`SNAPSHOT_TTL`]), at `at_least` or later;
    /// `None` for an unknown lot.
    pub async fn snapshot(
        &self,
        lot_id: LotId,
        at_least: i64,
    ) -> Result<Option<Snapshot>, UpstreamError> {
        let recent_enough = |snapshot: &Option<Snapshot>| {
            snapshot
                .as_ref()
                .is_some_and(|snapshot| snapshot.sequence >= at_least)
        };
        let flight = shared(&self.snapshots, lot_id, SNAPSHOT_TTL, recent_enough);
        let upstreams = &self.upstreams;
        self.fly(&flight, || async move { upstreams.snapshot(lot_id).await })
            .await
    }

    async fn fly<T, F, Fut>(&self, flight: &Flight<T>, fetch: F) -> Result<T, UpstreamError>
    where
        T: Clone,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let mut fetched = false;
        let result = flight
            .result
            .get_or_init(|| async {
                fetched = true;
                fetch()
                    .await
                    .map_err(|error| gavel_common::error_chain(&error))
            })
            .await
            .clone();
        let source = if fetched { "fetched" } else { "shared" };
        self.metrics.answers.with_label_values(&[source]).inc();
        result.map_err(|message| UpstreamError::Shared {
            service: "bids",
            message,
        })
    }
}

/// The flight for `key`: the one under way, or a finished one still fresh whose answer is
/// `usable` to this caller, or a new one.
fn shared<K, T>(
    flights: &Flights<K, T>,
    key: K,
    ttl: Duration,
    usable: impl Fn(&T) -> bool,
) -> Arc<Flight<T>>
where
    K: std::hash::Hash + Eq,
    T: Clone,
{
    let now = Instant::now();
    let mut flights = lock(flights);
    // A finished flight past its time, or one that failed, answers nobody else.
    let fresh = |flight: &Flight<T>| {
        now - flight.started < ttl && !matches!(flight.result.get(), Some(Err(_)))
    };
    if flights.len() > 10_000 {
        flights.retain(|_, flight| fresh(flight) || flight.result.get().is_none());
    }
    let reusable = |flight: &Flight<T>| match flight.result.get() {
        None => true,
        Some(Ok(answer)) => fresh(flight) && usable(answer),
        Some(Err(_)) => false,
    };
    match flights.get(&key) {
        Some(flight) if reusable(flight) => flight.clone(),
        _ => {
            let flight = Flight::new();
            flights.insert(key, flight.clone());
            flight
        }
    }
}

fn live(lot_id: LotId, envelope: &Envelope) -> Option<LiveEvent> {
    let sequence = envelope.sequence?;
    Some(LiveEvent {
        lot_id,
        sequence,
        text: Utf8Bytes::from(protocol::event(envelope, sequence)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(lot_id: LotId, sequence: i64) -> Arc<LiveEvent> {
        Arc::new(LiveEvent {
            lot_id,
            sequence,
            text: Utf8Bytes::from(format!("{sequence}")),
        })
    }

    fn log() -> LotLog {
        let config = crate::config::UpstreamConfig {
            bids: "http://127.0.0.1:1".parse().expect("url"),
            lots: "http://127.0.0.1:1".parse().expect("url"),
            wallets: "http://127.0.0.1:1".parse().expect("url"),
            notifier: None,
            timeout: Duration::from_secs(1),
            max_body_bytes: 1024,
            max_bids_in_flight: 4,
            max_bids_in_flight_per_lot: 2,
        };
        LotLog::new(
            Upstreams::new(config).expect("a client"),
            LogMetrics::new(&gavel_common::metrics::Metrics::new("test")),
        )
    }

    #[test]
    fn memory_answers_only_for_a_complete_run() {
        let log = log();
        let lot = LotId::new();
        for sequence in [3, 4, 5, 7] {
            log.record(&event(lot, sequence));
        }
        let sequences = |events: Option<Events>| {
            events.map(|events| events.iter().map(|e| e.sequence).collect::<Vec<_>>())
        };
        assert_eq!(sequences(log.remembered(lot, 2)), None, "6 is missing");
        assert_eq!(sequences(log.remembered(lot, 1)), None, "2 was never seen");
        log.record(&event(lot, 6));
        assert_eq!(sequences(log.remembered(lot, 4)), Some(vec![5, 6, 7]));
        assert_eq!(
            sequences(log.remembered(lot, 7)),
            None,
            "nothing newer to vouch for"
        );
        log.forget();
        assert_eq!(sequences(log.remembered(lot, 4)), None);
    }
}
