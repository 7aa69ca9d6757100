//! A connection's lots: subscribing (a snapshot or a replay from the client's `since`), the
//! pushes of live events in sequence, bursts written at once, and catching up from the `bids` log
//! when the connection fell behind.

use std::sync::Arc;
use std::time::Duration;

use gavel_types::LotId;
use tokio::sync::mpsc;
use tracing::warn;

use super::{End, PUSH_BURST, Session};
use crate::hub::{LiveEvent, Push, Subscriber};
use crate::protocol::{self, Refusal};
use crate::upstream::{REPLAY_LIMIT, Snapshot, UpstreamError};

impl Session {
    pub(super) async fn subscribe(&mut self, lot_id: LotId, since: Option<i64>) -> Result<(), End> {
        let already = self.subscriptions.contains_key(&lot_id);
        if !already && self.subscriptions.len() >= self.context.limits.max_subscriptions {
            return self
                .refuse(
                    Refusal::new(
                        "too_many_subscriptions",
                        format!(
                            "at most {} lots per connection; unsubscribe from one first",
                            self.context.limits.max_subscriptions
                        ),
                    )
                    .for_lot(lot_id),
                )
                .await;
        }
        if !already && self.identity.is_none() {
            let Some(slot) = self.context.edge.watch_anonymously(self.client) else {
                return self
                    .refuse(
                        Refusal::new(
                            "too_many_subscriptions",
                            "your address watches too many lots anonymously; sign in to watch more",
                        )
                        .for_lot(lot_id),
                    )
                    .await;
            };
            self.anonymous.insert(lot_id, slot);
        }
        // Subscribe first: events published meanwhile wait in the queue and are sent after the
        // snapshot or replay, or skipped when it already covered them.
        self.context.hub.subscribe(
            lot_id,
            Subscriber {
                connection: self.connection,
                queue: self.queue.clone(),
                behind: self.behind.clone(),
            },
        );
        let outcome = match since {
            None => self.send_snapshot(lot_id, 0).await,
            Some(since) => self.replay(lot_id, since).await,
        };
        let last = match outcome {
            Ok(Some(last)) => last,
            Ok(None) | Err(Fetch::Upstream(_)) => {
                if !already {
                    self.context.hub.unsubscribe(lot_id, self.connection);
                    self.anonymous.remove(&lot_id);
                }
                let refusal = match outcome {
                    Ok(None) => {
                        Refusal::new("lot_not_found", format!("no auction for lot {lot_id}"))
                    }
                    _ => Refusal::new(
                        "upstream_unavailable",
                        "the auction engine cannot be reached; subscribe again shortly",
                    ),
                };
                return self.refuse(refusal.for_lot(lot_id)).await;
            }
            Err(Fetch::Ended(end)) => return Err(end),
        };
        self.subscriptions.insert(lot_id, last);
        let watchers = self.context.hub.watchers(lot_id);
        self.send(protocol::subscribed(lot_id, last, watchers).into())
            .await
    }

    /// Sends the snapshot (at `at_least` or later); the sequence it stands at, or `None` for an
    /// unknown lot.
    async fn send_snapshot(&mut self, lot_id: LotId, at_least: i64) -> Result<Option<i64>, Fetch> {
        let Some(Snapshot { sequence, lot }) = self.context.log.snapshot(lot_id, at_least).await?
        else {
            return Ok(None);
        };
        self.send(protocol::snapshot(lot_id, sequence, &lot).into())
            .await?;
        Ok(Some(sequence))
    }

    /// Sends the events after `since`; the last sequence sent (a snapshot when too far behind).
    async fn replay(&mut self, lot_id: LotId, since: i64) -> Result<Option<i64>, Fetch> {
        let events = self.context.log.fetch_since(lot_id, since, None).await?;
        if events.len() >= REPLAY_LIMIT {
            return self.send_snapshot(lot_id, since).await;
        }
        if events.is_empty() {
            // Nothing missed, or a lot bids does not know, or a client ahead of the log (which a
            // snapshot at least as new as its claim tells apart).
            let Some(Snapshot { sequence, lot }) = self.context.log.snapshot(lot_id, since).await?
            else {
                return Ok(None);
            };
            if sequence < since {
                self.send(protocol::snapshot(lot_id, sequence, &lot).into())
                    .await?;
                return Ok(Some(sequence));
            }
            return Ok(Some(since));
        }
        Ok(Some(self.send_events(since, &events).await?))
    }

    /// Sends the contiguous run of `events` after `last`; returns the new last sequence.
    async fn send_events(&mut self, mut last: i64, events: &[Arc<LiveEvent>]) -> Result<i64, End> {
        for event in events {
            if event.sequence != last + 1 {
                continue;
            }
            self.send(event.text.clone()).await?;
            self.context.metrics.replayed.inc();
            last = event.sequence;
        }
        Ok(last)
    }

    /// Writes `first` and the pushes already waiting behind it (at most [`PUSH_BURST`]), gathered
    /// in the write buffer, then flushes.
    pub(super) async fn push_burst(
        &mut self,
        first: Push,
        inbox: &mut mpsc::Receiver<Push>,
    ) -> Result<(), End> {
        self.corked = true;
        let mut written = self.push(first).await;
        for _ in 1..PUSH_BURST {
            if written.is_err() {
                break;
            }
            let Ok(next) = inbox.try_recv() else { break };
            written = self.push(next).await;
        }
        self.corked = false;
        written?;
        self.flush().await
    }

    async fn push(&mut self, push: Push) -> Result<(), End> {
        match push {
            Push::Droppable(text) => self.send(text).await,
            Push::BidAnswer(text) => {
                self.bids_in_flight = self.bids_in_flight.saturating_sub(1);
                self.send(text.into()).await
            }
            Push::Event(event) => {
                let Some(&last) = self.subscriptions.get(&event.lot_id) else {
                    return Ok(());
                };
                if event.sequence <= last {
                    return Ok(());
                }
                let last = if event.sequence == last + 1 {
                    last
                } else {
                    // A gap: what is missing comes from the log, usually this event too. What a
                    // burst gathered goes out first: it must not wait for the log.
                    if self.corked {
                        self.flush().await?;
                    }
                    self.catch_up(event.lot_id, Some(event.sequence - 1))
                        .await?
                };
                if event.sequence == last + 1 {
                    self.send(event.text.clone()).await?;
                    self.context.metrics.delivered.inc();
                    self.subscriptions.insert(event.lot_id, event.sequence);
                }
                Ok(())
            }
        }
    }

    pub(super) async fn catch_up_behind(&mut self) -> Result<(), End> {
        for lot_id in self.behind.take() {
            if self.subscriptions.contains_key(&lot_id) {
                self.catch_up(lot_id, None).await?;
            }
        }
        Ok(())
    }

    /// Fills the gap after the last sequence sent for `lot_id` from the log (`through`: a
    /// sequence known to exist); returns the new last sequence. Should the log be unreachable,
    /// the lot is checked again in a second.
    async fn catch_up(&mut self, lot_id: LotId, through: Option<i64>) -> Result<i64, End> {
        let Some(&last) = self.subscriptions.get(&lot_id) else {
            return Ok(0);
        };
        self.context.metrics.catch_ups.inc();
        let fetched = match self.context.log.events_since(lot_id, last, through).await {
            Ok(events) if events.len() >= REPLAY_LIMIT => self
                .send_snapshot(lot_id, last)
                .await
                .map(|sent| sent.unwrap_or(last)),
            Ok(events) => self.send_events(last, &events).await.map_err(Fetch::Ended),
            Err(error) => Err(Fetch::Upstream(error)),
        };
        let new_last = match fetched {
            Ok(new_last) => new_last,
            Err(Fetch::Ended(end)) => return Err(end),
            Err(Fetch::Upstream(error)) => {
                warn!(%lot_id, error = %gavel_common::error_chain(&error), "cannot catch up; retrying");
                let behind = self.behind.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    behind.mark(lot_id);
                });
                last
            }
        };
        self.subscriptions.insert(lot_id, new_last);
        Ok(new_last)
    }
}

/// Fetching for a client failed: the service is unreachable, or the client went away meanwhile.
enum Fetch {
    Upstream(UpstreamError),
    Ended(End),
}

impl From<UpstreamError> for Fetch {
    fn from(error: UpstreamError) -> Self {
        Fetch::Upstream(error)
    }
}

impl From<End> for Fetch {
    fn from(end: End) -> Self {
        Fetch::Ended(end)
    }
}
