//! Health of the components the server depends on. `/health`, `/health/db`, `/health/db-pool` and
//! the dashboard home all read from here, so they always agree.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;

use crate::{
    db::{self, PoolStats},
    redis_store::RedisHandle,
};

/// How long a database check may take before the database counts as down.
pub const DB_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Up,
    Down,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Component {
    pub name: &'static str,
    pub status: Status,
    /// A down required component makes the whole service unhealthy.
    pub required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// What is wrong, or extra facts such as the backend; never a URL or a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migration: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    /// `ok` when every required component is up, `unavailable` otherwise.
    pub status: &'static str,
    pub version: &'static str,
    pub checked_at: DateTime<Utc>,
    pub components: Vec<Component>,
}

impl Report {
    pub fn is_healthy(&self) -> bool {
        self.status == "ok"
    }
}

/// Runs the checks. Cheap to clone.
#[derive(Clone)]
pub struct HealthService {
    db: DatabaseConnection,
    redis: Option<Arc<RedisHandle>>,
}

impl HealthService {
    pub fn new(db: DatabaseConnection, redis: Option<Arc<RedisHandle>>) -> Self {
        Self { db, redis }
    }

    /// The database component: a `SELECT 1` round trip and the newest applied migration.
    #[tracing::instrument(skip_all)]
    pub async fn database(&self) -> Component {
        let backend = db::pool_stats(&self.db).backend;
        let checked = tokio::time::timeout(DB_CHECK_TIMEOUT, async {
            let latency = db::round_trip(&self.db).await?;
            let migration = db::latest_migration(&self.db).await?;
            Ok::<_, sea_orm::DbErr>((latency, migration))
        })
        .await;
        let mut c = Component {
            name: "database",
            status: Status::Down,
            required: true,
            latency_ms: None,
            detail: None,
            migration: None,
        };
        match checked {
            Ok(Ok((latency, migration))) => {
                c.status = Status::Up;
                c.latency_ms = Some(ms(latency));
                c.detail = Some(backend.to_string());
                c.migration = Some(migration.unwrap_or_else(|| "none applied".into()));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "database health check failed");
                c.detail = Some(format!("{backend}: {}", describe_db_error(&e)));
            }
            Err(_) => {
                c.detail = Some(format!("{backend}: no answer within {} s", DB_CHECK_TIMEOUT.as_secs()));
            }
        }
        c
    }

    /// The Redis component, when Redis is configured.
    #[tracing::instrument(skip_all)]
    pub async fn redis(&self) -> Option<Component> {
        let handle = self.redis.as_ref()?;
        let mut c = Component {
            name: "redis",
            status: Status::Down,
            required: true,
            latency_ms: None,
            detail: None,
            migration: None,
        };
        match handle.ping().await {
            Ok(latency) => {
                c.status = Status::Up;
                c.latency_ms = Some(ms(latency));
            }
            Err(e) => {
                tracing::warn!(error = %e, "redis health check failed");
                c.detail = Some(e.to_string());
            }
        }
        Some(c)
    }

    /// Every component, checked concurrently.
    pub async fn report(&self) -> Report {
        let (database, redis) = tokio::join!(self.database(), self.redis());
        let components: Vec<Component> = std::iter::once(database).chain(redis).collect();
        let healthy = components.iter().all(|c| !c.required || c.status == Status::Up);
        Report {
            status: if healthy { "ok" } else { "unavailable" },
            version: env!("CARGO_PKG_VERSION"),
            checked_at: Utc::now(),
            components,
        }
    }

    pub fn pool(&self) -> PoolStats {
        db::pool_stats(&self.db)
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A short reason for a failed database check, without connection strings.
fn describe_db_error(e: &sea_orm::DbErr) -> String {
    use sea_orm::DbErr;
    match e {
        DbErr::ConnectionAcquire(inner) => format!("no connection available ({inner})"),
        DbErr::Conn(_) => "cannot connect".into(),
        DbErr::Exec(_) | DbErr::Query(_) => "query failed".into(),
        _ => "check failed".into(),
    }
}
pub use chrono::SecondsFormat;
