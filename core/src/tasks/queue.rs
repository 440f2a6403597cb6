//! The task queue in the `tasks` table: claiming the oldest queued task, leases kept alive by
//! heartbeats, and tasks whose worker went away.
//!
//! A claim is one statement. On PostgreSQL the candidate row is locked with `FOR UPDATE SKIP LOCKED`,
//! so workers claiming at once each get a different task without waiting on each other; on SQLite the
//! statement runs under the database's single writer lock. Either way the `status = 'queued'`
//! condition makes a second claim of the same row a no-op, so a task is run at most once.
//!
//! A claimed task carries its worker's id and a lease (`lease_expires_at`), renewed by the worker's
//! heartbeat. A task whose lease ran out is marked `failed` ("worker lost") by whichever instance
//! notices first; it is never queued again.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    Statement, sea_query::Expr,
};
use uuid::Uuid;

use super::{CANCELLED, FAILED, QUEUED, RUNNING};
use crate::entities::tasks;

/// Takes the oldest queued task for `worker`, with a lease until `lease_until`.
///
/// # Errors
/// A database error.
pub(crate) async fn claim(
    db: &DatabaseConnection,
    worker: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<Option<tasks::Model>, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            "UPDATE tasks SET status = 'running', worker_id = $1, lease_expires_at = $2, started_at = $3 \
             WHERE id = (SELECT id FROM tasks WHERE status = 'queued' ORDER BY created_at, id LIMIT 1 \
                         FOR UPDATE SKIP LOCKED) \
               AND status = 'queued' \
             RETURNING *"
        }
        _ => {
            "UPDATE tasks SET status = 'running', worker_id = ?, lease_expires_at = ?, started_at = ? \
             WHERE id = (SELECT id FROM tasks WHERE status = 'queued' ORDER BY created_at, id LIMIT 1) \
               AND status = 'queued' \
             RETURNING *"
        }
    };
    let stmt = Statement::from_sql_and_values(backend, sql, [worker.into(), lease_until.into(), now.into()]);
    tasks::Entity::find().from_raw_sql(stmt).one(db).await
}

/// Extends the leases of `ids` that are still this worker's and running. Returns how many were.
///
/// # Errors
/// A database error.
pub(crate) async fn renew(
    db: &DatabaseConnection,
    worker: &str,
    ids: &[Uuid],
    lease_until: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let r = tasks::Entity::update_many()
        .col_expr(tasks::Column::LeaseExpiresAt, Expr::value(lease_until))
        .filter(tasks::Column::Id.is_in(ids.iter().copied()))
        .filter(tasks::Column::WorkerId.eq(worker))
        .filter(tasks::Column::Status.is_in([RUNNING, CANCELLED]))
        .filter(tasks::Column::FinishedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected)
}

/// Of `ids`, those no longer running for `worker`: cancelled (with the reason), or taken away
/// (declared lost by another instance, or deleted).
///
/// # Errors
/// A database error.
pub(crate) async fn no_longer_running(
    db: &DatabaseConnection,
    worker: &str,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String, Option<String>)>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, String, Option<String>, Option<String>)> = tasks::Entity::find()
        .select_only()
        .column(tasks::Column::Id)
        .column(tasks::Column::Status)
        .column(tasks::Column::WorkerId)
        .column(tasks::Column::Error)
        .filter(tasks::Column::Id.is_in(ids.iter().copied()))
        .into_tuple()
        .all(db)
        .await?;
    let mut out = Vec::new();
    for id in ids {
        match rows.iter().find(|(r, ..)| r == id) {
            None => out.push((*id, "deleted".to_string(), None)),
            Some((_, status, w, error)) if status != RUNNING || w.as_deref() != Some(worker) => {
                out.push((*id, status.clone(), error.clone()));
            }
            Some(_) => {}
        }
    }
    Ok(out)
}

/// How a run ended, as the worker records it.
#[derive(Clone, Debug)]
pub(crate) struct Final {
    pub status: &'static str,
    pub exit_code: Option<i32>,
    pub error: Option<String>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
}

/// Records the end of a run that is still this worker's. A task cancelled meanwhile keeps its
/// status and gets the times and exit code; a task declared lost is left as it is.
///
/// Returns whether the row now carries this run's ending.
///
/// # Errors
/// A database error.
pub(crate) async fn finish(
    db: &DatabaseConnection,
    worker: &str,
    id: Uuid,
    f: &Final,
) -> Result<bool, DbErr> {
    let r = tasks::Entity::update_many()
        .col_expr(tasks::Column::Status, Expr::value(f.status))
        .col_expr(tasks::Column::ExitCode, Expr::value(f.exit_code))
        .col_expr(tasks::Column::Error, Expr::value(f.error.clone()))
        .col_expr(tasks::Column::FinishedAt, Expr::value(f.finished_at))
        .col_expr(tasks::Column::DurationMs, Expr::value(f.duration_ms))
        .col_expr(tasks::Column::LeaseExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(tasks::Column::Id.eq(id))
        .filter(tasks::Column::WorkerId.eq(worker))
        .filter(tasks::Column::Status.eq(RUNNING))
        .exec(db)
        .await?;
    if r.rows_affected == 1 {
        return Ok(true);
    }
    // Cancelled while it ran: the status (and who cancelled, in `error`) stays.
    let r = tasks::Entity::update_many()
        .col_expr(tasks::Column::ExitCode, Expr::value(f.exit_code))
        .col_expr(tasks::Column::FinishedAt, Expr::value(f.finished_at))
        .col_expr(tasks::Column::DurationMs, Expr::value(f.duration_ms))
        .col_expr(tasks::Column::LeaseExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(tasks::Column::Id.eq(id))
        .filter(tasks::Column::WorkerId.eq(worker))
        .filter(tasks::Column::Status.eq(CANCELLED))
        .filter(tasks::Column::FinishedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Marks running tasks whose lease ran out as failed ("worker lost"), and finishes cancellations
/// whose worker went away before confirming them. Returns the ids marked failed.
///
/// # Errors
/// A database error.
pub(crate) async fn reap(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Vec<Uuid>, DbErr> {
    let expired: Vec<(Uuid, Option<String>, Option<DateTime<Utc>>)> = tasks::Entity::find()
        .select_only()
        .column(tasks::Column::Id)
        .column(tasks::Column::WorkerId)
        .column(tasks::Column::StartedAt)
        .filter(tasks::Column::Status.eq(RUNNING))
        .filter(tasks::Column::LeaseExpiresAt.lt(now))
        .limit(1000)
        .into_tuple()
        .all(db)
        .await?;
    let mut lost = Vec::new();
    for (id, worker, started) in expired {
        let error = format!(
            "worker lost: worker '{}' stopped renewing its lease while the task ran; the task was not run again",
            worker.as_deref().unwrap_or("?")
        );
        let r = tasks::Entity::update_many()
            .col_expr(tasks::Column::Status, Expr::value(FAILED))
            .col_expr(tasks::Column::Error, Expr::value(error))
            .col_expr(tasks::Column::FinishedAt, Expr::value(now))
            .col_expr(
                tasks::Column::DurationMs,
                Expr::value(started.map(|s| (now - s).num_milliseconds().max(0))),
            )
            .col_expr(tasks::Column::LeaseExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(tasks::Column::Id.eq(id))
            .filter(tasks::Column::Status.eq(RUNNING))
            .filter(tasks::Column::LeaseExpiresAt.lt(now))
            .exec(db)
            .await?;
        if r.rows_affected == 1 {
            lost.push(id);
        }
    }
    tasks::Entity::update_many()
        .col_expr(tasks::Column::FinishedAt, Expr::value(now))
        .col_expr(tasks::Column::LeaseExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(tasks::Column::Status.eq(CANCELLED))
        .filter(tasks::Column::FinishedAt.is_null())
        .filter(tasks::Column::LeaseExpiresAt.lt(now))
        .exec(db)
        .await?;
    Ok(lost)
}

/// At a worker's start: tasks still marked as running (or being cancelled) by this worker id were
/// left by an earlier run of it, which ended without finishing them. They are failed, not run again.
///
/// # Errors
/// A database error.
pub(crate) async fn reconcile(
    db: &DatabaseConnection,
    worker: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let r = tasks::Entity::update_many()
        .col_expr(tasks::Column::Status, Expr::value(FAILED))
        .col_expr(
            tasks::Column::Error,
            Expr::value("worker lost: the worker restarted while the task ran; the task was not run again"),
        )
        .col_expr(tasks::Column::FinishedAt, Expr::value(now))
        .col_expr(tasks::Column::LeaseExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(tasks::Column::WorkerId.eq(worker))
        .filter(tasks::Column::Status.eq(RUNNING))
        .exec(db)
        .await?;
    tasks::Entity::update_many()
        .col_expr(tasks::Column::FinishedAt, Expr::value(now))
        .col_expr(tasks::Column::LeaseExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(tasks::Column::WorkerId.eq(worker))
        .filter(tasks::Column::Status.eq(CANCELLED))
        .filter(tasks::Column::FinishedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected)
}

/// Cancels a task that has not started. Returns whether it was still queued.
///
/// # Errors
/// A database error.
pub(crate) async fn cancel_queued(
    db: &DatabaseConnection,
    id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let r = tasks::Entity::update_many()
        .col_expr(tasks::Column::Status, Expr::value(CANCELLED))
        .col_expr(tasks::Column::Error, Expr::value(reason))
        .col_expr(tasks::Column::FinishedAt, Expr::value(now))
        .filter(tasks::Column::Id.eq(id))
        .filter(tasks::Column::Status.eq(QUEUED))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Marks a running task cancelled; its worker notices and stops the command, then records the
/// times and exit code. Returns whether it was running.
///
/// # Errors
/// A database error.
pub(crate) async fn cancel_running(db: &DatabaseConnection, id: Uuid, reason: &str) -> Result<bool, DbErr> {
    let r = tasks::Entity::update_many()
        .col_expr(tasks::Column::Status, Expr::value(CANCELLED))
        .col_expr(tasks::Column::Error, Expr::value(reason))
        .filter(tasks::Column::Id.eq(id))
        .filter(tasks::Column::Status.eq(RUNNING))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// The lease a claim or heartbeat gives.
pub(crate) fn lease_until(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30))
}
