//! The outbound queue's sender. One replica sends at a time (a PostgreSQL advisory lock), since
//! Telegram's limits are per bot (`pace`). A message is marked `sending` (committed) just before
//! its request goes out, so a crash can lose one in flight but never send one twice; a message
//! still waiting for its turn is not claimed, so a crash during a long 429 pause loses nothing.

mod digest;
mod pace;
mod photos;

use std::collections::HashSet;
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
use pace::{ChatLimits, Pace};
use photos::Photos;

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

/// How one message's turn ended.
#[derive(Debug)]
enum Attempt {
    /// Not sent: the message was no longer pending (folded into a digest) or the sender stops.
    Skipped,
    /// The request went out at `at`.
    Sent {
        at: Instant,
        result: Result<(), SendError>,
    },
}

#[derive(Debug, Clone)]
pub struct Sender {
    pub pool: PgPool,
    pub telegram: Telegram,
    pub config: TelegramConfig,
    pub lots_url: Option<url::Url>,
    /// The site's public origin, for links in digests.
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
        let pace = Pace::new(self.config.messages_per_second);
        let mut chats = ChatLimits::new(&self.config);
        let mut batch: Vec<Message> = Vec::new();
        let mut in_flight: JoinSet<Result<(Message, Attempt), sqlx::Error>> = JoinSet::new();
        let mut flights = Flights::default();
        let photos = Photos::new(self.pool.clone(), self.lots_url.clone())?;
        let mut refetch = true;
        loop {
            while let Some(done) = in_flight.try_join_next() {
                let (message, attempt) = done??;
                flights.landed(&message);
                self.settle(&message, attempt, &pace, &mut chats, &mut batch)
                    .await?;
            }
            if cancel.is_cancelled() {
                // Finish what is in flight, so nothing is left uncertain by a clean stop.
                while let Some(done) = in_flight.join_next().await {
                    let (message, attempt) = done??;
                    self.settle(&message, attempt, &pace, &mut chats, &mut batch)
                        .await?;
                }
                return Ok(());
            }
            if refetch || batch.is_empty() {
                let digests =
                    digest::fold(&self.pool, self.config.digest_after, &self.public_url).await?;
                if digests > 0 {
                    info!(digests, "folded backlogs of new lots into digests");
                }
                batch = sqlx::query_as(
                    "SELECT id, chat_id, kind, text, lot_id, attempts FROM outbound
                     WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY id LIMIT 500",
                )
                .fetch_all(&self.pool)
                .await?;
                // A message in flight is still `pending` until its turn claims it: not twice.
                batch.retain(|message| !flights.ids.contains(&message.id));
                refetch = false;
            }
            let now = Instant::now();
            let paused_until = pace.paused_until();
            let candidate =
                if in_flight.len() >= self.config.concurrency.max(1) || paused_until > now {
                    None
                } else {
                    batch.iter().position(|message| {
                        flights.may_go(message) && chats.ready_at(message.chat_id, now) <= now
                    })
                };
            let Some(index) = candidate else {
                // Nothing can go now: wait for a send to finish, a new message, a chat to become
                // ready, a pause to end, or a retry to fall due.
                let next_ready = batch
                    .iter()
                    .filter(|message| flights.may_go(message))
                    .map(|message| chats.ready_at(message.chat_id, now))
                    .min()
                    .unwrap_or(now + Duration::from_millis(500))
                    .min(now + Duration::from_millis(500))
                    .max(paused_until);
                tokio::select! {
                    () = cancel.cancelled() => {}
                    Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                        let (message, attempt) = done??;
                        flights.landed(&message);
                        self.settle(&message, attempt, &pace, &mut chats, &mut batch).await?;
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
            flights.took_off(&message);
            let attempt = Turn {
                pool: self.pool.clone(),
                telegram: self.telegram.clone(),
                pace: pace.clone(),
                photos: photos.clone(),
                cancel: cancel.clone(),
            };
            in_flight.spawn(async move {
                let outcome = attempt.send(&message).await?;
                Ok((message, outcome))
            });
        }
    }

    /// Records how a send went.
    async fn settle(
        &self,
        message: &Message,
        attempt: Attempt,
        pace: &Pace,
        chats: &mut ChatLimits,
        batch: &mut Vec<Message>,
    ) -> Result<(), sqlx::Error> {
        let Attempt::Sent { at, result } = attempt else {
            return Ok(());
        };
        chats.record(message.chat_id, at);
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
                // Telegram asks the whole bot to wait (the send already paused the pace); this
                // message goes again afterwards.
                pace.pause(*wait);
                sqlx::query(
                    "UPDATE outbound SET status = 'pending', attempts = attempts - 1,
                         next_attempt_at = now() + $2, last_error = $3
                     WHERE id = $1",
                )
                .bind(message.id)
                .bind(*wait)
                .bind(SendError::RetryAfter(*wait).reason())
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
                reason = error.reason(),
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

/// What is in flight: messages (by id) and their chats, and the lots whose photo the first
/// message in flight is still uploading.
#[derive(Debug, Default)]
struct Flights {
    ids: HashSet<i64>,
    chats: HashSet<i64>,
    /// Lots with a new-lot message in flight whose photo is not settled yet.
    uploading: HashSet<Uuid>,
    /// Lots whose photo is settled (a file id, or none): their messages need no upload.
    settled: HashSet<Uuid>,
}

impl Flights {
    /// Whether `message` may take off now: its chat is free, and, for a new lot, no other message
    /// is still settling the lot's photo (the others would only wait for that upload, holding
    /// sending slots that other lots' and other kinds' messages could use).
    fn may_go(&self, message: &Message) -> bool {
        let waits_for_upload = message.kind == "new_lot"
            && message
                .lot_id
                .is_some_and(|lot| self.uploading.contains(&lot));
        !self.chats.contains(&message.chat_id) && !waits_for_upload
    }

    fn took_off(&mut self, message: &Message) {
        self.ids.insert(message.id);
        self.chats.insert(message.chat_id);
        if let (true, Some(lot)) = (message.kind == "new_lot", message.lot_id)
            && !self.settled.contains(&lot)
        {
            self.uploading.insert(lot);
        }
    }

    fn landed(&mut self, message: &Message) {
        self.ids.remove(&message.id);
        self.chats.remove(&message.chat_id);
        if let (true, Some(lot)) = (message.kind == "new_lot", message.lot_id)
            && self.uploading.remove(&lot)
        {
            if self.settled.len() >= 10_000 {
                self.settled.clear();
            }
            self.settled.insert(lot);
        }
    }
}

/// What one message's send needs, moved into its task.
struct Turn {
    pool: PgPool,
    telegram: Telegram,
    pace: Pace,
    photos: Photos,
    cancel: CancellationToken,
}

impl Turn {
    /// Prepares the photo, waits for the bot-wide turn, claims the message and sends it. A photo
    /// Telegram refuses is dropped and the text sent alone: the announcement is never lost.
    async fn send(self, message: &Message) -> Result<Attempt, sqlx::Error> {
        let prepared = match (message.kind.as_str(), message.lot_id) {
            ("new_lot", Some(lot_id)) => self.photos.prepare(lot_id).await?,
            _ => None,
        };
        if !self.pace.turn(&self.cancel).await {
            return Ok(Attempt::Skipped);
        }
        // Claim it: committed before the request, so it is never sent twice. A message folded
        // into a digest, or one backing off, is not claimed.
        let claimed = sqlx::query(
            "UPDATE outbound SET status = 'sending', attempts = attempts + 1
             WHERE id = $1 AND status = 'pending' AND next_attempt_at <= now()",
        )
        .bind(message.id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(Attempt::Skipped);
        }
        let mut at = Instant::now();
        let Some(prepared) = prepared else {
            let result = self
                .telegram
                .send(message.chat_id, &message.text, None)
                .await
                .map(drop);
            return Ok(self.sent(at, result));
        };
        let result = match self
            .telegram
            .send(message.chat_id, &message.text, Some(prepared.photo.clone()))
            .await
        {
            Ok(file_id) => {
                if let Err(error) = self.photos.sent(&prepared, file_id).await {
                    warn!(%error, "cannot keep the photo's file id; the next message uploads it again");
                }
                Ok(())
            }
            // Refused for good: the photo, or the chat itself. The text alone tells which.
            Err(SendError::Permanent(reason)) => {
                if self.pace.turn(&self.cancel).await {
                    at = Instant::now();
                    let text = self
                        .telegram
                        .send(message.chat_id, &message.text, None)
                        .await
                        .map(drop);
                    if text.is_ok() {
                        warn!(
                            chat = message.chat_id,
                            reason, "Telegram refused the photo: sent the text alone"
                        );
                        if let Err(error) = self.photos.refused(&prepared).await {
                            warn!(%error, "cannot mark the lot's photo as refused");
                        }
                    }
                    text
                } else {
                    // Nothing reached the chat yet: a stop meanwhile leaves it to be retried.
                    Err(SendError::Transient(
                        "the sender stopped before the text could go without the refused photo"
                            .to_owned(),
                    ))
                }
            }
            Err(other) => Err(other),
        };
        Ok(self.sent(at, result))
    }

    /// The attempt; after a 429 every other send waits from now, before this one is settled.
    fn sent(&self, at: Instant, result: Result<(), SendError>) -> Attempt {
        if let Err(SendError::RetryAfter(wait)) = &result {
            self.pace.pause(*wait);
        }
        Attempt::Sent { at, result }
    }
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
