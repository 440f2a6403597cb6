//! Fixed-window rate limits (N per minute per key), shared by every instance through Redis when it is
//! configured, per process otherwise.

use std::{collections::HashMap, sync::Arc};

use tokio::sync::Mutex;

use crate::{clock::SharedClock, redis_store::RedisHandle};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the window ends in this many seconds.
    Limited {
        retry_after_s: u64,
    },
}

enum Backend {
    Memory(Mutex<HashMap<String, (i64, u32)>>),
    Redis(Arc<RedisHandle>),
}

pub struct RateLimiter {
    backend: Backend,
    clock: SharedClock,
    window_s: i64,
}

impl RateLimiter {
    pub fn memory(clock: SharedClock) -> Self {
        Self { backend: Backend::Memory(Mutex::new(HashMap::new())), clock, window_s: 60 }
    }

    pub fn redis(redis: Arc<RedisHandle>, clock: SharedClock) -> Self {
        Self { backend: Backend::Redis(redis), clock, window_s: 60 }
    }

    /// Counts one attempt for `key` and says whether it is within `max` per minute.
    ///
    /// # Errors
    /// When Redis is configured but unreachable (the caller answers 503).
    pub async fn hit(&self, key: &str, max: u32) -> Result<Decision, crate::redis_store::RedisError> {
        let now = self.clock.now().timestamp();
        let window = now.div_euclid(self.window_s);
        let retry_after_s = u64::try_from((window + 1) * self.window_s - now).unwrap_or(1).max(1);
        let count = match &self.backend {
            Backend::Memory(map) => {
                let mut map = map.lock().await;
                if map.len() > 100_000 {
                    map.retain(|_, (w, _)| *w == window);
                }
                let entry = map.entry(key.to_string()).or_insert((window, 0));
                if entry.0 != window {
                    *entry = (window, 0);
                }
                entry.1 = entry.1.saturating_add(1);
                entry.1
            }
            Backend::Redis(redis) => {
                let mut conn = redis.connection().await?;
                let k = format!("goblin:ratelimit:{key}:{window}");
                let (count, _): (u32, i64) = redis::pipe()
                    .atomic()
                    .incr(&k, 1u32)
                    .expire(&k, self.window_s)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| crate::redis_store::RedisError::Unreachable(format!("{:?}", e.kind())))?;
                count
            }
        };
        Ok(if count > max { Decision::Limited { retry_after_s } } else { Decision::Allowed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::{TimeZone, Utc};

    #[tokio::test]
    async fn memory_window_counts_and_resets() {
        let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap());
        let rl = RateLimiter::memory(Arc::new(clock.clone()));
        for _ in 0..3 {
            assert_eq!(rl.hit("ip:1", 3).await.unwrap(), Decision::Allowed);
        }
        assert_eq!(rl.hit("ip:1", 3).await.unwrap(), Decision::Limited { retry_after_s: 50 });
        assert_eq!(rl.hit("ip:2", 3).await.unwrap(), Decision::Allowed, "keys are separate");
        clock.advance(chrono::Duration::seconds(50));
        assert_eq!(rl.hit("ip:1", 3).await.unwrap(), Decision::Allowed, "a new window");
    }
}
