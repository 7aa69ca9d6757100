//! Single-use sign-in nonces in Redis, so that every replica agrees: issued with a TTL, and
//! consumed with one atomic `DEL` — of two concurrent sign-ins with the same nonce, one wins.

use std::time::Duration;

use gavel_common::cache::Cache;
use redis::AsyncCommands;

#[derive(Debug, Clone)]
pub struct Nonces {
    cache: Cache,
    ttl: Duration,
}

impl Nonces {
    pub fn new(cache: Cache, ttl: Duration) -> Self {
        Self { cache, ttl }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A fresh nonce: 32 alphanumeric characters (EIP-4361 asks for at least 8).
    pub async fn issue(&self) -> redis::RedisResult<String> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut connection = self.cache.connection();
        let ttl = self.ttl.as_secs().max(1);
        connection
            .set_ex::<_, _, ()>(self.cache.key(&format!("nonce:{nonce}")), 1, ttl)
            .await?;
        Ok(nonce)
    }

    /// True exactly once per issued, unexpired nonce.
    pub async fn consume(&self, nonce: &str) -> redis::RedisResult<bool> {
        let mut connection = self.cache.connection();
        let deleted: u64 = connection
            .del(self.cache.key(&format!("nonce:{nonce}")))
            .await?;
        Ok(deleted == 1)
    }
}
