//! Watchers per lot across replicas. Each replica writes its own count into a Redis hash per lot
//! (field: replica, value: `count:expires_at_ms`) and sums the unexpired fields, so a replica
//! that dies stops counting within three intervals without anyone cleaning up after it.

use std::sync::Arc;
use std::time::Duration;

use gavel_common::BoxError;
use gavel_common::cache::Cache;
use gavel_types::LotId;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::hub::Hub;

#[derive(Debug)]
pub struct Presence {
    pub cache: Cache,
    pub hub: Arc<Hub>,
    pub replica: String,
    pub interval: Duration,
}

impl Presence {
    fn key(&self, lot_id: LotId) -> String {
        self.cache.key(&format!("presence:{lot_id}"))
    }

    pub async fn run(self, cancel: CancellationToken) -> Result<(), BoxError> {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if let Err(error) = self.tick().await {
                warn!(%error, "presence update failed");
            }
        }
        // Leaving: this replica's watchers are gone.
        let counts = self.hub.local_counts();
        let mut pipe = redis::pipe();
        for (lot_id, _) in &counts {
            pipe.hdel(self.key(*lot_id), &self.replica).ignore();
        }
        let _: Result<(), _> = pipe.query_async(&mut self.cache.connection()).await;
        Ok(())
    }

    /// Writes this replica's counts, reads the totals, and tells local watchers of changes.
    pub async fn tick(&self) -> redis::RedisResult<()> {
        let counts = self.hub.local_counts();
        if counts.is_empty() {
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_millis();
        let ttl_ms = i64::try_from((self.interval * 3).as_millis()).unwrap_or(i64::MAX);
        let expires = now.saturating_add(ttl_ms);
        let mut write = redis::pipe();
        let mut watched = Vec::new();
        for (lot_id, count) in &counts {
            let key = self.key(*lot_id);
            if *count == 0 {
                write.hdel(&key, &self.replica).ignore();
            } else {
                write
                    .hset(&key, &self.replica, format!("{count}:{expires}"))
                    .ignore()
                    .pexpire(&key, ttl_ms)
                    .ignore();
                watched.push(*lot_id);
            }
        }
        for lot_id in &watched {
            write.hgetall(self.key(*lot_id));
        }
        let totals: Vec<Vec<(String, String)>> =
            write.query_async(&mut self.cache.connection()).await?;
        for (lot_id, fields) in watched.into_iter().zip(totals) {
            let total = fields
                .iter()
                .filter_map(|(_, value)| {
                    let (count, expires_at) = value.split_once(':')?;
                    let expires_at: i64 = expires_at.parse().ok()?;
                    (expires_at > now).then(|| count.parse::<u64>().ok())?
                })
                .sum();
            self.hub.set_watchers(lot_id, total);
        }
        Ok(())
    }
}
