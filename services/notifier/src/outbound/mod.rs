//! The outbound queue's sender. One replica sends at a time (a PostgreSQL advisory lock), since
//! Telegram's limits are per bot: at most `messages_per_second` overall, one message per
//! `chat_interval` to a chat, `group_messages_per_minute` to a group; a 429 stops all sending for
//! its `retry_after`. A message is marked `sending` (committed) before its request goes out, so a
//! crash can lose one in flight but never send one twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use gavel_common::BoxError;
use prometheus::IntCounterVec;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::TelegramConfig;
use crate::telegram::{SendError, Telegram};

/// The advisory lock the sending replica holds.
const SENDER_LOCK: i64 = 0x6761_7665_6c5f_7467; // "gavel_tg"

#[derive(Debug, Clone, sqlx::FromRow)]
struct Message {
    id: i64,
    chat_id: i64,
    kind: String,
    text: String,
    lot_id: Option<Uuid>,
    attempts: i32,
}

/// Where sending stands against Telegram's limits.
#[derive(Debug)]
struct Limits {
    spacing: Duration,
    chat_interval: Duration,
    group_per_minute: usize,
    next_slot: Instant,
    paused_until: Instant,
    last_sent: HashMap<i64, Instant>,
    group_sends: HashMap<i64, VecDeque<Instant>>,
}

impl Limits {
    fn new(config: &TelegramConfig) -> Self {
        let now = Instant::now();
        Self {
            spacing: Duration::from_secs(1) / config.messages_per_second.max(1),
            chat_interval: config.chat_interval,
            group_per_minute: config.group_messages_per_minute.max(1) as usize,
            next_slot: now,
            paused_until: now,
            last_sent: HashMap::new(),
            group_sends: HashMap::new(),
        }
    }

    /// When `chat` may get its next message.
    fn chat_ready_at(&self, chat: i64) -> Instant {
        let mut ready = self
            .last_sent
            .get(&chat)
            .map_or(self.paused_until, |last| *last + self.chat_interval);
        if chat < 0
            && let Some(sends) = self.group_sends.get(&chat)
            && sends.len() >= self.group_per_minute
            && let Some(oldest) = sends.front()
        {
            ready = ready.max(*oldest + Duration::from_secs(60));
        }
        ready.max(self.paused_until)
    }

    /// Takes the next global slot; returns when it is.
    fn take_slot(&mut self, now: Instant) -> Instant {
        let slot = self.next_slot.max(now).max(self.paused_until);
        self.next_slot = slot + self.spacing;
        slot
    }

    fn record(&mut self, chat: i64, at: Instant) {
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
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sender {
    pub pool: PgPool,
    pub telegram: Telegram,
    pub config: TelegramConfig,
    pub lots_url: Option<url::Url>,
    /// The site's public origin: photo links from `lots` are relative to it.
    pub public_url: url::Url,
    pub outcomes: IntCounterVec,
}

impl Sender {
    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        while !cancel.is_cancelled() {
            match self.lead_when_possible(&cancel).await {
                Ok(()) => {}
                Err(error) => {
                    warn!(error = %gavel_common::error_chain(error.as_ref()), "sender stopped; starting again");
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Waits for the sender lock, then sends until cancelled.
    async fn lead_when_possible(&self, cancel: &CancellationToken) -> Result<(), BoxError> {
        let mut lock = self.pool.acquire().await?;
        loop {
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(SENDER_LOCK)
                .fetch_one(&mut *lock)
                .await?;
            if locked {
                break;
            }
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
        // A previous sender stopped with these in flight: they may have reached the chat.
        let uncertain = sqlx::query(
            "UPDATE outbound SET status = 'uncertain', last_error = 'the sender stopped with the request in flight'
             WHERE status = 'sending'",
        )
        .execute(&self.pool)
        .await?
        .rows_affected();
        if uncertain > 0 {
            warn!(
                uncertain,
                "messages in flight when the last sender stopped are not resent"
            );
            self.outcomes
                .with_label_values(&["uncertain"])
                .inc_by(uncertain);
        }
        info!("sending the outbound queue");
        let result = self.send_loop(cancel).await;
        let _: Result<bool, _> = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
            .bind(SENDER_LOCK)
            .fetch_one(&mut *lock)
            .await;
        result
    }

    async fn send_loop(&self, cancel: &CancellationToken) -> Result<(), BoxError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen("notifier_outbound").await?;
        let mut limits = Limits::new(&self.config);
        let mut batch: Vec<Message> = Vec::new();
        let mut in_flight: JoinSet<(Message, Result<(), SendError>)> = JoinSet::new();
        let mut busy_chats: HashSet<i64> = HashSet::new();
        let photos: Arc<tokio::sync::Mutex<HashMap<Uuid, Option<url::Url>>>> = Arc::default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let mut refetch = true;
        loop {
            while let Some(done) = in_flight.try_join_next() {
                let (message, result) = done?;
                busy_chats.remove(&message.chat_id);
                self.settle(&message, result, &mut limits, &mut batch)
                    .await?;
            }
            if cancel.is_cancelled() {
                // Finish what is in flight, so nothing is left uncertain by a clean stop.
                while let Some(done) = in_flight.join_next().await {
                    let (message, result) = done?;
                    self.settle(&message, result, &mut limits, &mut batch)
                        .await?;
                }
                return Ok(());
            }
            if refetch || batch.is_empty() {
                batch = sqlx::query_as(
                    "SELECT id, chat_id, kind, text, lot_id, attempts FROM outbound
                     WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY id LIMIT 500",
                )
                .fetch_all(&self.pool)
                .await?;
                refetch = false;
            }
            let now = Instant::now();
            let candidate = if in_flight.len() >= self.config.concurrency.max(1) {
                None
            } else {
                batch.iter().position(|message| {
                    !busy_chats.contains(&message.chat_id)
                        && limits.chat_ready_at(message.chat_id) <= now
                })
            };
            let Some(index) = candidate else {
                // Nothing can go now: wait for a send to finish, a new message, a chat to become
                // ready, or a retry to fall due.
                let next_ready = batch
                    .iter()
                    .filter(|message| !busy_chats.contains(&message.chat_id))
                    .map(|message| limits.chat_ready_at(message.chat_id))
                    .min()
                    .unwrap_or(now + Duration::from_millis(500))
                    .min(now + Duration::from_millis(500));
                tokio::select! {
                    () = cancel.cancelled() => {}
                    Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                        let (message, result) = done?;
                        busy_chats.remove(&message.chat_id);
                        self.settle(&message, result, &mut limits, &mut batch).await?;
                    }
                    notification = listener.recv() => {
                        notification?;
                        refetch = true;
                    }
                    () = tokio::time::sleep_until(next_ready) => {
                        if next_ready >= now + Duration::from_millis(500) {
                            refetch = true;
                        }
                    }
                }
                continue;
            };
            let message = batch.remove(index);
            let slot = limits.take_slot(now);
            tokio::select! {
                () = cancel.cancelled() => continue,
                () = tokio::time::sleep_until(slot) => {}
            }
            // Claim it: committed before the request, so it is never sent twice.
            let claimed = sqlx::query(
                "UPDATE outbound SET status = 'sending', attempts = attempts + 1
                 WHERE id = $1 AND status = 'pending'",
            )
            .bind(message.id)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if claimed == 0 {
                continue;
            }
            limits.record(message.chat_id, Instant::now());
            busy_chats.insert(message.chat_id);
            let telegram = self.telegram.clone();
            let (photos, http, lots_url) = (photos.clone(), http.clone(), self.lots_url.clone());
            let public_url = self.public_url.clone();
            in_flight.spawn(async move {
                let photo = match (message.kind.as_str(), message.lot_id, &lots_url) {
                    ("new_lot", Some(lot_id), Some(lots_url)) => {
                        first_photo(&photos, &http, lots_url, &public_url, lot_id).await
                    }
                    _ => None,
                };
                let result = telegram.send(message.chat_id, &message.text, photo).await;
                (message, result)
            });
        }
    }

    /// Records how a send went.
    async fn settle(
        &self,
        message: &Message,
        result: Result<(), SendError>,
        limits: &mut Limits,
        batch: &mut Vec<Message>,
    ) -> Result<(), sqlx::Error> {
        let outcome = match &result {
            Ok(()) => {
                sqlx::query(
                    "UPDATE outbound SET status = 'sent', sent_at = now(), last_error = NULL WHERE id = $1",
                )
                .bind(message.id)
                .execute(&self.pool)
                .await?;
                "sent"
            }
            Err(SendError::RetryAfter(wait)) => {
                // Telegram asks the whole bot to wait; this message goes again afterwards.
                limits.paused_until = limits.paused_until.max(Instant::now() + *wait);
                sqlx::query(
                    "UPDATE outbound SET status = 'pending', attempts = attempts - 1,
                         next_attempt_at = now() + $2, last_error = 'retry after'
                     WHERE id = $1",
                )
                .bind(message.id)
                .bind(*wait)
                .execute(&self.pool)
                .await?;
                warn!(chat = message.chat_id, ?wait, "Telegram asked to slow down");
                "retry_after"
            }
            Err(SendError::Blocked(reason)) => {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "UPDATE chats SET subscribed = FALSE, blocked_at = now() WHERE chat_id = $1",
                )
                .bind(message.chat_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE outbound SET status = 'dropped', last_error = $2
                     WHERE chat_id = $1 AND (id = $3 OR status = 'pending')",
                )
                .bind(message.chat_id)
                .bind(reason)
                .bind(message.id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                batch.retain(|queued| queued.chat_id != message.chat_id);
                info!(
                    chat = message.chat_id,
                    "the chat blocked the bot: unsubscribed"
                );
                "blocked"
            }
            Err(SendError::Transient(reason)) => {
                let attempts = message.attempts + 1;
                if attempts >= self.config.max_attempts {
                    self.finish(message.id, "failed", reason).await?;
                    "failed"
                } else {
                    let backoff = Duration::from_secs(1 << attempts.clamp(0, 8) as u32);
                    sqlx::query(
                        "UPDATE outbound SET status = 'pending', next_attempt_at = now() + $2, last_error = $3
                         WHERE id = $1",
                    )
                    .bind(message.id)
                    .bind(backoff)
                    .bind(reason)
                    .execute(&self.pool)
                    .await?;
                    "retry"
                }
            }
            Err(SendError::Uncertain(reason)) => {
                self.finish(message.id, "uncertain", reason).await?;
                "uncertain"
            }
            Err(SendError::Permanent(reason)) => {
                self.finish(message.id, "failed", reason).await?;
                "failed"
            }
        };
        if let Err(error) = &result {
            warn!(
                chat = message.chat_id,
                ?error,
                outcome,
                "a message was not sent"
            );
        }
        self.outcomes.with_label_values(&[outcome]).inc();
        Ok(())
    }

    async fn finish(&self, id: i64, status: &str, reason: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE outbound SET status = $2, last_error = $3 WHERE id = $1")
            .bind(id)
            .bind(status)
            .bind(reason)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// The first photo of a lot, asked of `lots` once per lot; none when it has none or cannot say.
async fn first_photo(
    cache: &tokio::sync::Mutex<HashMap<Uuid, Option<url::Url>>>,
    http: &reqwest::Client,
    lots_url: &url::Url,
    public_url: &url::Url,
    lot_id: Uuid,
) -> Option<url::Url> {
    if let Some(known) = cache.lock().await.get(&lot_id) {
        return known.clone();
    }
    let url = format!("{}/lots/{lot_id}", lots_url.as_str().trim_end_matches('/'));
    let lot: serde_json::Value = http.get(url).send().await.ok()?.json().await.ok()?;
    // A photo link is absolute (a public bucket) or a path on the site's own origin.
    let photo = lot["photos"][0]["url"]
        .as_str()
        .and_then(|url| url::Url::parse(url).or_else(|_| public_url.join(url)).ok());
    cache.lock().await.insert(lot_id, photo.clone());
    photo
}

/// Sets `gavel_telegram_queue_depth` (messages waiting, retries included) and
/// `gavel_telegram_oldest_pending_age_seconds` every few seconds, on every replica, until
/// cancelled: a stalled sender still shows.
pub async fn measure_queue(
    pool: PgPool,
    depth: prometheus::IntGauge,
    oldest: prometheus::Gauge,
    cancel: CancellationToken,
) -> Result<(), BoxError> {
    let mut ticker = tokio::time::interval(Duration::from_secs(5));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let measured: Result<(i64, Option<f64>), sqlx::Error> = sqlx::query_as(
            "SELECT count(*), extract(epoch FROM clock_timestamp() - min(created_at))::float8
             FROM outbound WHERE status = 'pending'",
        )
        .fetch_one(&pool)
        .await;
        match measured {
            Ok((count, age)) => {
                depth.set(count);
                oldest.set(age.unwrap_or(0.0).max(0.0));
            }
            Err(error) => tracing::debug!(%error, "cannot measure the outbound queue"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(&TelegramConfig {
            messages_per_second: 25,
            chat_interval: Duration::from_millis(1100),
            group_messages_per_minute: 3,
            ..TelegramConfig::default()
        })
    }

    #[test]
    fn slots_are_spaced_and_a_pause_holds_everything() {
        let mut limits = limits();
        let now = Instant::now();
        let first = limits.take_slot(now);
        let second = limits.take_slot(now);
        assert_eq!(first, now);
        assert_eq!(second.duration_since(first), Duration::from_millis(40));
        limits.paused_until = now + Duration::from_secs(3);
        assert_eq!(limits.take_slot(now), now + Duration::from_secs(3));
        assert_eq!(limits.chat_ready_at(42), now + Duration::from_secs(3));
    }

    #[test]
    fn a_chat_waits_its_interval_and_a_group_its_minute() {
        let mut limits = limits();
        let start = Instant::now();
        limits.record(7, start);
        assert_eq!(limits.chat_ready_at(7), start + Duration::from_millis(1100));

        let group = -100;
        for second in 0..3 {
            limits.record(group, start + Duration::from_secs(2 * second));
        }
        // Three in the last minute: the fourth waits for the first to leave the window.
        assert_eq!(limits.chat_ready_at(group), start + Duration::from_secs(60));
        limits.record(group, start + Duration::from_secs(60));
        assert_eq!(limits.chat_ready_at(group), start + Duration::from_secs(62));
    }
}
