//! Telegram's limits, kept on our side. Two parts:
//!
//! - [`Pace`], shared by every send in flight: one request per `1 / messages_per_second` overall,
//!   and after a 429 nothing at all until its `retry_after` has passed. A send takes its turn at
//!   the moment it goes out (after any photo was fetched), and takes a new one if a pause began
//!   while it waited, so requests queued behind a pause leave at the normal pace, not as a burst.
//! - [`ChatLimits`], kept by the sending loop: one message per `chat_interval` to a chat and
//!   `group_messages_per_minute` to a group, counted from when each request really went out.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::TelegramConfig;

#[derive(Debug)]
struct Clock {
    next_slot: Instant,
    paused_until: Instant,
}

/// The bot-wide pace: shared by every send.
#[derive(Debug, Clone)]
pub struct Pace {
    spacing: Duration,
    clock: Arc<Mutex<Clock>>,
}

impl Pace {
    pub fn new(messages_per_second: u32) -> Self {
        let now = Instant::now();
        Self {
            spacing: Duration::from_secs(1) / messages_per_second.max(1),
            clock: Arc::new(Mutex::new(Clock {
                next_slot: now,
                paused_until: now,
            })),
        }
    }

    fn clock(&self) -> std::sync::MutexGuard<'_, Clock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next free slot at or after `now`; returns when it is.
    fn take_slot(&self, now: Instant) -> Instant {
        let mut clock = self.clock();
        let slot = clock.next_slot.max(now).max(clock.paused_until);
        clock.next_slot = slot + self.spacing;
        slot
    }

    /// Until when everything waits (in the past when nothing does).
    pub fn paused_until(&self) -> Instant {
        self.clock().paused_until
    }

    /// Stops every send for `wait` from now (a 429's `retry_after`).
    pub fn pause(&self, wait: Duration) {
        let mut clock = self.clock();
        let until = Instant::now() + wait;
        clock.paused_until = clock.paused_until.max(until);
    }

    /// Waits for this send's turn. Returns `false` when cancelled first.
    pub async fn turn(&self, cancel: &CancellationToken) -> bool {
        loop {
            let slot = self.take_slot(Instant::now());
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep_until(slot) => {}
            }
            // A 429 may have come back for another send while this one waited.
            if self.paused_until() <= Instant::now() {
                return true;
            }
        }
    }
}

/// Per-chat and per-group limits, kept by the sending loop.
#[derive(Debug)]
pub struct ChatLimits {
    chat_interval: Duration,
    group_per_minute: usize,
    last_sent: HashMap<i64, Instant>,
    group_sends: HashMap<i64, VecDeque<Instant>>,
}

impl ChatLimits {
    pub fn new(config: &TelegramConfig) -> Self {
        Self {
            chat_interval: config.chat_interval,
            group_per_minute: config.group_messages_per_minute.max(1) as usize,
            last_sent: HashMap::new(),
            group_sends: HashMap::new(),
        }
    }

    /// When `chat` may get its next message (the bot-wide pause aside).
    pub fn ready_at(&self, chat: i64, now: Instant) -> Instant {
        let mut ready = self
            .last_sent
            .get(&chat)
            .map_or(now, |last| *last + self.chat_interval);
        if chat < 0
            && let Some(sends) = self.group_sends.get(&chat)
            && sends.len() >= self.group_per_minute
            && let Some(oldest) = sends.front()
        {
            ready = ready.max(*oldest + Duration::from_secs(60));
        }
        ready
    }

    /// A request to `chat` went out `at`.
    pub fn record(&mut self, chat: i64, at: Instant) {
        self.last_sent.insert(chat, at);
        if chat < 0 {
            let sends = self.group_sends.entry(chat).or_default();
            sends.push_back(at);
            while sends
                .front()
                .is_some_and(|first| at.duration_since(*first) >= Duration::from_secs(60))
            {
                sends.pop_front();
            }
        }
        if self.last_sent.len() > 10_000 {
            let horizon = self.chat_interval.max(Duration::from_secs(60));
            self.last_sent
                .retain(|_, last| at.duration_since(*last) < horizon);
            self.group_sends.retain(|_, sends| {
                sends
                    .back()
                    .is_some_and(|last| at.duration_since(*last) < horizon)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_and_a_pause_holds_everything_then_resumes_at_pace() {
        let pace = Pace::new(25);
        let now = Instant::now();
        assert_eq!(pace.take_slot(now), now);
        assert_eq!(pace.take_slot(now), now + Duration::from_millis(40));
        pace.pause(Duration::from_secs(3));
        let resume = pace.paused_until();
        assert!(resume >= now + Duration::from_secs(3));
        // Whoever queued behind the pause leaves one slot apart after it, not together.
        assert_eq!(pace.take_slot(now), resume);
        assert_eq!(pace.take_slot(now), resume + Duration::from_millis(40));
    }

    #[test]
    fn a_chat_waits_its_interval_and_a_group_its_minute() {
        let mut limits = ChatLimits::new(&TelegramConfig {
            chat_interval: Duration::from_millis(1100),
            group_messages_per_minute: 3,
            ..TelegramConfig::default()
        });
        let start = Instant::now();
        limits.record(7, start);
        assert_eq!(
            limits.ready_at(7, start),
            start + Duration::from_millis(1100)
        );
        assert_eq!(limits.ready_at(8, start), start);

        let group = -100;
        for second in 0..3 {
            limits.record(group, start + Duration::from_secs(2 * second));
        }
        // Three in the last minute: the fourth waits for the first to leave the window.
        assert_eq!(
            limits.ready_at(group, start),
            start + Duration::from_secs(60)
        );
        limits.record(group, start + Duration::from_secs(60));
        assert_eq!(
            limits.ready_at(group, start),
            start + Duration::from_secs(62)
        );
    }
}
