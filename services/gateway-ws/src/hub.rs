//! Who on this replica watches which lot, and the fan-out to them. Fan-out never waits for a
//! connection: a full queue marks the lot as behind for that connection only, and the
//! connection catches up from the `bids` log when it next gets to write.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::extract::ws::Utf8Bytes;
use gavel_types::LotId;
use tokio::sync::{Notify, mpsc};

/// An event ready to send: serialised once, shared by every connection watching its lot.
#[derive(Debug)]
pub struct LiveEvent {
    pub lot_id: LotId,
    pub sequence: i64,
    pub text: Utf8Bytes,
}

/// What a connection's queue carries.
#[derive(Debug)]
pub enum Push {
    Event(Arc<LiveEvent>),
    /// A message that may be dropped when the queue is full (a presence update).
    Droppable(Utf8Bytes),
    /// The answer to one of the connection's bids; it frees a bid slot.
    BidAnswer(String),
}

/// The lots a connection fell behind on.
#[derive(Debug, Default)]
pub struct Behind {
    lots: Mutex<HashSet<LotId>>,
    pub notify: Notify,
}

impl Behind {
    pub fn mark(&self, lot_id: LotId) {
        self.lots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(lot_id);
        self.notify.notify_one();
    }

    pub fn take(&self) -> Vec<LotId> {
        self.lots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect()
    }
}

/// The hub's handle on one connection.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub connection: u64,
    pub queue: mpsc::Sender<Push>,
    pub behind: Arc<Behind>,
}

#[derive(Debug, Default)]
struct Lot {
    subscribers: Vec<Subscriber>,
    /// Watchers on all replicas, as last read from Redis.
    watchers: u64,
}

#[derive(Debug, Default)]
pub struct Hub {
    lots: RwLock<HashMap<LotId, Lot>>,
    /// Lots whose last local watcher left since presence last ran.
    emptied: Mutex<HashSet<LotId>>,
    next_connection: AtomicU64,
}

/// How one fan-out went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    pub queued: usize,
    pub behind: usize,
}

impl Hub {
    pub fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn subscribe(&self, lot_id: LotId, subscriber: Subscriber) {
        let mut lots = self.lots.write().unwrap_or_else(PoisonError::into_inner);
        let lot = lots.entry(lot_id).or_default();
        lot.subscribers
            .retain(|existing| existing.connection != subscriber.connection);
        lot.subscribers.push(subscriber);
    }

    pub fn unsubscribe(&self, lot_id: LotId, connection: u64) {
        let mut lots = self.lots.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(lot) = lots.get_mut(&lot_id) {
            lot.subscribers
                .retain(|existing| existing.connection != connection);
            if lot.subscribers.is_empty() {
                lots.remove(&lot_id);
                self.emptied
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(lot_id);
            }
        }
    }

    /// Queues `event` for every local subscriber of its lot without waiting for any of them.
    pub fn publish(&self, event: &Arc<LiveEvent>) -> Fanout {
        let lots = self.lots.read().unwrap_or_else(PoisonError::into_inner);
        let mut fanout = Fanout::default();
        let Some(lot) = lots.get(&event.lot_id) else {
            return fanout;
        };
        for subscriber in &lot.subscribers {
            match subscriber.queue.try_send(Push::Event(event.clone())) {
                Ok(()) => fanout.queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.behind.mark(event.lot_id);
                    fanout.behind += 1;
                }
                // The connection is closing; it unsubscribes itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        fanout
    }

    /// Every subscription may have missed events (the broker connection was lost): each
    /// connection checks the log for each of its lots.
    pub fn mark_all_behind(&self) {
        let lots = self.lots.read().unwrap_or_else(PoisonError::into_inner);
        for (lot_id, lot) in lots.iter() {
            for subscriber in &lot.subscribers {
                subscriber.behind.mark(*lot_id);
            }
        }
    }

    /// Local watchers per lot, including lots that lost their last one (count 0) since the
    /// previous call.
    pub fn local_counts(&self) -> Vec<(LotId, usize)> {
        let emptied: Vec<LotId> = self
            .emptied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain()
            .collect();
        let lots = self.lots.read().unwrap_or_else(PoisonError::into_inner);
        let mut counts: Vec<(LotId, usize)> = lots
            .iter()
            .map(|(lot_id, lot)| (*lot_id, lot.subscribers.len()))
            .collect();
        counts.extend(
            emptied
                .into_iter()
                .filter(|lot_id| !lots.contains_key(lot_id))
                .map(|lot_id| (lot_id, 0)),
        );
        counts
    }

    pub fn watchers(&self, lot_id: LotId) -> u64 {
        let lots = self.lots.read().unwrap_or_else(PoisonError::into_inner);
        lots.get(&lot_id)
            .map_or(0, |lot| lot.watchers.max(lot.subscribers.len() as u64))
    }

    /// Records the total for `lot_id` and tells its local watchers when it changed.
    pub fn set_watchers(&self, lot_id: LotId, watchers: u64) {
        let mut lots = self.lots.write().unwrap_or_else(PoisonError::into_inner);
        let Some(lot) = lots.get_mut(&lot_id) else {
            return;
        };
        if lot.watchers == watchers {
            return;
        }
        lot.watchers = watchers;
        let text = Utf8Bytes::from(crate::protocol::presence(lot_id, watchers));
        for subscriber in &lot.subscribers {
            let _ = subscriber.queue.try_send(Push::Droppable(text.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(hub: &Hub, capacity: usize) -> (Subscriber, mpsc::Receiver<Push>) {
        let (queue, receiver) = mpsc::channel(capacity);
        let subscriber = Subscriber {
            connection: hub.connection_id(),
            queue,
            behind: Arc::default(),
        };
        (subscriber, receiver)
    }

    fn event(lot_id: LotId, sequence: i64) -> Arc<LiveEvent> {
        Arc::new(LiveEvent {
            lot_id,
            sequence,
            text: Utf8Bytes::from(format!("{sequence}")),
        })
    }

    #[test]
    fn a_full_queue_marks_only_its_connection_behind() {
        let hub = Hub::default();
        let lot = LotId::new();
        let (slow, _slow_rx) = subscriber(&hub, 1);
        let (fast, mut fast_rx) = subscriber(&hub, 8);
        hub.subscribe(lot, slow.clone());
        hub.subscribe(lot, fast.clone());

        assert_eq!(
            hub.publish(&event(lot, 1)),
            Fanout {
                queued: 2,
                behind: 0
            }
        );
        assert_eq!(
            hub.publish(&event(lot, 2)),
            Fanout {
                queued: 1,
                behind: 1
            }
        );
        assert_eq!(slow.behind.take(), vec![lot]);
        assert!(fast.behind.take().is_empty());
        for expected in [1, 2] {
            match fast_rx.try_recv() {
                Ok(Push::Event(event)) => assert_eq!(event.sequence, expected),
                other => panic!("expected event {expected}, got {other:?}"),
            }
        }
    }

    #[test]
    fn counts_report_a_lot_that_emptied_once() {
        let hub = Hub::default();
        let (lot_a, lot_b) = (LotId::new(), LotId::new());
        let (one, _rx) = subscriber(&hub, 1);
        hub.subscribe(lot_a, one.clone());
        hub.subscribe(lot_b, one.clone());
        hub.subscribe(lot_b, one.clone());
        let mut counts = hub.local_counts();
        counts.sort();
        let mut expected = vec![(lot_a, 1), (lot_b, 1)];
        expected.sort();
        assert_eq!(counts, expected);

        hub.unsubscribe(lot_a, one.connection);
        let counts = hub.local_counts();
        assert!(counts.contains(&(lot_a, 0)), "{counts:?}");
        assert!(!hub.local_counts().contains(&(lot_a, 0)));
    }
}
