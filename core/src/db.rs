//! Database connection: one pool per process, on SQLite or PostgreSQL, and the migrations.

use std::time::{Duration, Instant};

use anyhow::Context;
use log::LevelFilter;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};
use serde::Serialize;

use crate::config::{Backend, DatabaseConfig};

/// How much of a SQLite database file each connection maps into memory (1 GiB).
const SQLITE_MMAP_BYTES: u64 = 1 << 30;

/// Opens the pool described by `cfg`. For SQLite, the file's directory is created when missing, and the
/// database runs in WAL mode so readers do not wait for the writer.
///
/// Every acquire of a pool connection reports how long it took, as sqlx's `TRACE` event of target
/// `sqlx::pool::acquire` (field `acquired_after_secs`): the server's metrics layer turns those into
/// the pool's acquire wait series. Acquires slower than two seconds are still logged at `warn`.
///
/// # Errors
/// When the directory cannot be created or the first connection fails.
#[tracing::instrument(skip_all, fields(backend = cfg.backend.as_str()))]
pub async fn connect(cfg: &DatabaseConfig) -> anyhow::Result<DatabaseConnection> {
    let url = cfg.url.expose();
    if cfg.backend == Backend::Sqlite
        && let Some(dir) = sqlite_parent_dir(url)
    {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("Failed to create the database directory {}", dir.display()))?;
    }
    let p = &cfg.pool;
    let mut opts = ConnectOptions::new(url.clone());
    opts.min_connections(p.min_connections)
        .max_connections(p.max_connections)
        .acquire_timeout(p.acquire_timeout)
        .connect_timeout(p.acquire_timeout.min(Duration::from_secs(10)))
        .max_lifetime(p.max_lifetime)
        .idle_timeout(p.idle_timeout)
        .test_before_acquire(p.test_before_acquire)
        .sqlx_logging(false);
    match cfg.backend {
        Backend::Postgres => {
            opts.statement_timeout(p.statement_timeout)
                .set_application_name("goblin")
                .map_sqlx_postgres_pool_opts(|o| o.acquire_time_level(LevelFilter::Trace));
        }
        Backend::Sqlite => {
            opts.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(5))
                    .foreign_keys(true)
                    // Reads straight from the OS page cache instead of a pread (and a copy) per page
                    // beyond SQLite's small per-connection cache: a search of a large index reads
                    // thousands of pages. Address space only; the memory is the page cache's.
                    .pragma("mmap_size", SQLITE_MMAP_BYTES.to_string())
            })
            .map_sqlx_sqlite_pool_opts(|o| o.acquire_time_level(LevelFilter::Trace));
        }
    }
    Database::connect(opts)
        .await
        .with_context(|| format!("Failed to connect to the {} database", cfg.backend.as_str()))
}

/// The directory holding a `sqlite://PATH` database file, if the URL names a file.
fn sqlite_parent_dir(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path.starts_with(':') {
        return None;
    }
    std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()).map(Into::into)
}

/// Applies every pending migration.
///
/// # Errors
/// When a migration fails; the database is left at the last migration that succeeded.
pub async fn migrate_up(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await.context("Failed to apply migrations")
}

/// Name of the newest applied migration, if any.
///
/// # Errors
/// When the database cannot be queried.
pub async fn latest_migration(db: &DatabaseConnection) -> Result<Option<String>, sea_orm::DbErr> {
    let applied = Migrator::get_applied_migrations_read_only(db).await?;
    Ok(applied.last().map(|m| m.name().to_string()))
}

/// One trivial round trip, timed.
///
/// # Errors
/// When the query fails (the database is unreachable, the pool timed out, ...).
pub async fn round_trip(db: &DatabaseConnection) -> Result<Duration, sea_orm::DbErr> {
    let started = Instant::now();
    let backend = db.get_database_backend();
    db.query_one_raw(Statement::from_string(backend, "SELECT 1")).await?;
    Ok(started.elapsed())
}

/// A snapshot of the connection pool.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PoolStats {
    pub backend: &'static str,
    /// Connections currently open.
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    pub max: u32,
    pub min: u32,
    pub acquire_timeout_ms: u64,
}

/// Reads the pool's counters; no database round trip.
pub fn pool_stats(db: &DatabaseConnection) -> PoolStats {
    macro_rules! stats {
        ($pool:expr, $name:literal) => {{
            let pool = $pool;
            let size = pool.size();
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
            let o = pool.options();
            PoolStats {
                backend: $name,
                size,
                idle,
                in_use: size - idle,
                max: o.get_max_connections(),
                min: o.get_min_connections(),
                acquire_timeout_ms: u64::try_from(o.get_acquire_timeout().as_millis()).unwrap_or(u64::MAX),
            }
        }};
    }
    match db.get_database_backend() {
        DbBackend::Postgres => stats!(db.get_postgres_connection_pool(), "postgres"),
        _ => stats!(db.get_sqlite_connection_pool(), "sqlite"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_parent_dir_handles_the_url_forms() {
        assert_eq!(sqlite_parent_dir("sqlite://data/goblin.db?mode=rwc"), Some("data".into()));
        assert_eq!(sqlite_parent_dir("sqlite:///var/lib/goblin/g.db"), Some("/var/lib/goblin".into()));
        assert_eq!(sqlite_parent_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_parent_dir("sqlite://goblin.db"), None);
    }
}
