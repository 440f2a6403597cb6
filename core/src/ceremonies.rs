//! Passkey ceremony state between the start and finish steps: kept for 5 minutes and taken exactly
//! once. The finish step removes the state before it checks anything, so a failed finish also uses it
//! up and a replay finds nothing. In Redis when configured (a ceremony started on one server instance
//! can finish on another), in memory otherwise.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::{clock::SharedClock, redis_store::RedisHandle};

/// How long a started ceremony may take to finish.
pub fn ttl() -> Duration {
    Duration::minutes(5)
}

#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    #[error("the sign-in service is unavailable right now (Redis: {0})")]
    Unavailable(String),
}

enum Backend {
    Memory(Mutex<HashMap<String, (DateTime<Utc>, String)>>),
    Redis(Arc<RedisHandle>),
}

pub struct CeremonyStore {
    backend: Backend,
    clock: SharedClock,
}

fn key(id: &str) -> String {
    format!("goblin:ceremony:{id}")
}

impl CeremonyStore {
    pub fn memory(clock: SharedClock) -> Self {
        Self { backend: Backend::Memory(Mutex::new(HashMap::new())), clock }
    }

    pub fn redis(redis: Arc<RedisHandle>, clock: SharedClock) -> Self {
        Self { backend: Backend::Redis(redis), clock }
    }

    /// Keeps `state` and returns the id the finish step must present.
    ///
    /// # Errors
    /// When Redis is configured but unreachable.
    pub async fn put(&self, state: String) -> Result<String, CeremonyError> {
        let id = Uuid::new_v4().simple().to_string();
        match &self.backend {
            Backend::Memory(map) => {
                let now = self.clock.now();
                let mut map = map.lock().await;
                // Forget abandoned ceremonies as we go.
                map.retain(|_, (expires, _)| *expires > now);
                map.insert(id.clone(), (now + ttl(), state));
            }
            Backend::Redis(redis) => {
                let mut conn =
                    redis.connection().await.map_err(|e| CeremonyError::Unavailable(e.to_string()))?;
                let _: () = redis::cmd("SET")
                    .arg(key(&id))
                    .arg(state)
                    .arg("PX")
                    .arg(ttl().num_milliseconds())
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| CeremonyError::Unavailable(format!("{:?}", e.kind())))?;
            }
        }
        Ok(id)
    }

    /// Removes and returns the state, if it exists and has not expired. Atomic: of two concurrent
    /// calls with the same id, at most one gets the state.
    ///
    /// # Errors
    /// When Redis is configured but unreachable.
    pub async fn take(&self, id: &str) -> Result<Option<String>, CeremonyError> {
        match &self.backend {
            Backend::Memory(map) => {
                let now = self.clock.now();
                Ok(map.lock().await.remove(id).filter(|(expires, _)| *expires > now).map(|(_, s)| s))
            }
            Backend::Redis(redis) => {
                let mut conn =
                    redis.connection().await.map_err(|e| CeremonyError::Unavailable(e.to_string()))?;
                redis::cmd("GETDEL")
                    .arg(key(id))
                    .query_async::<Option<String>>(&mut conn)
                    .await
                    .map_err(|e| CeremonyError::Unavailable(format!("{:?}", e.kind())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn memory_state_is_single_use_and_expires() {
        let clock = ManualClock::new(Utc::now());
        let store = CeremonyStore::memory(Arc::new(clock.clone()));
        let id = store.put("state".into()).await.unwrap();
        assert_eq!(store.take(&id).await.unwrap().as_deref(), Some("state"));
        assert_eq!(store.take(&id).await.unwrap(), None, "used once");

        let id = store.put("state".into()).await.unwrap();
        clock.advance(Duration::minutes(5) + Duration::seconds(1));
        assert_eq!(store.take(&id).await.unwrap(), None, "expired after 5 minutes");
        assert_eq!(store.take("nope").await.unwrap(), None);
    }
}
