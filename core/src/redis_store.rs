//! The optional Redis connection. Redis may be down when the server starts or go away later; this
//! handle connects on first use, reconnects after a failure, and never blocks longer than its timeout.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::secret::Secret;

/// How long one Redis operation may take before it counts as down.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RedisHandle {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis is unreachable: {0}")]
    Unreachable(String),
}

impl RedisHandle {
    /// Checks the URL; does not connect.
    ///
    /// # Errors
    /// When the URL is not a Redis URL.
    pub fn new(url: &Secret<String>) -> Result<Self, RedisError> {
        let client = redis::Client::open(url.expose().as_str())
            // The redis error text can quote the URL, so it is not passed on.
            .map_err(|_| RedisError::Unreachable("invalid Redis URL".into()))?;
        Ok(Self { client, conn: Mutex::new(None) })
    }

    /// A live connection, made now if there is none.
    ///
    /// # Errors
    /// When Redis cannot be reached within [`REDIS_TIMEOUT`].
    pub async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let conn = tokio::time::timeout(REDIS_TIMEOUT, self.client.get_multiplexed_async_connection())
            .await
            .map_err(|_| RedisError::Timeout(REDIS_TIMEOUT))?
            .map_err(|e| RedisError::Unreachable(describe(&e)))?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// A new connection in subscriber mode (one per listener; it cannot run other commands).
    ///
    /// # Errors
    /// When Redis cannot be reached within [`REDIS_TIMEOUT`].
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        tokio::time::timeout(REDIS_TIMEOUT, self.client.get_async_pubsub())
            .await
            .map_err(|_| RedisError::Timeout(REDIS_TIMEOUT))?
            .map_err(|e| RedisError::Unreachable(describe(&e)))
    }

    /// Forgets the current connection so the next call reconnects.
    pub async fn reset(&self) {
        *self.conn.lock().await = None;
    }

    /// PING, timed.
    ///
    /// # Errors
    /// When Redis does not answer PONG within [`REDIS_TIMEOUT`].
    pub async fn ping(&self) -> Result<Duration, RedisError> {
        let started = Instant::now();
        let mut conn = self.connection().await?;
        let result = tokio::time::timeout(REDIS_TIMEOUT, async {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await;
        match result {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(e)) => {
                self.reset().await;
                Err(RedisError::Unreachable(describe(&e)))
            }
            Err(_) => {
                self.reset().await;
                Err(RedisError::Timeout(REDIS_TIMEOUT))
            }
        }
    }
}

/// The kind of failure, without anything from the URL.
fn describe(e: &redis::RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timed out".into()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection lost".into()
    } else {
        format!("{:?}", e.kind())
    }
}
