//! Per-bidder rate limits shared by every replica: a one-second window counted in Redis.

use gavel_common::cache::{Cache, WindowLimiter};
use gavel_types::AccountId;

#[derive(Clone, Debug)]
pub struct RateLimiter(WindowLimiter);

impl RateLimiter {
    pub fn new(cache: Cache, per_second: u32) -> Self {
        Self(WindowLimiter::new(
            cache,
            "bids",
            per_second,
            std::time::Duration::from_secs(1),
        ))
    }

    /// Counts one bid for `bidder`; false once they have used this second's allowance.
    pub async fn allow(&self, bidder: AccountId) -> redis::RedisResult<bool> {
        self.0.allow(&bidder.to_string()).await
    }
}
