//! Per-bidder rate limits shared by every replica: a fixed one-second window counted in Redis.

use gavel_common::cache::Cache;
use gavel_types::AccountId;

#[derive(Clone, Debug)]
pub struct RateLimiter {
    cache: Cache,
    per_second: u32,
}

impl RateLimiter {
    pub fn new(cache: Cache, per_second: u32) -> Self {
        Self { cache, per_second }
    }

    /// Counts one bid for `bidder`; false once they have used this second's allowance.
    pub async fn allow(&self, bidder: AccountId) -> redis::RedisResult<bool> {
        let second = chrono::Utc::now().timestamp();
        let key = self.cache.key(&format!("rate:bids:{bidder}:{second}"));
        let mut connection = self.cache.connection();
        let (count,): (u32,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .ignore()
            .expire(&key, 2)
            .ignore()
            .get(&key)
            .query_async(&mut connection)
            .await?;
        Ok(count <= self.per_second)
    }
}
