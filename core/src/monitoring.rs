//! Read-only numbers for the dashboard home and for `/metrics`, computed from the tables at the time
//! they are asked for: nothing here is on a request's path.
//!
//! - [`dashboard`]: the home page's cards (providers healthy, tasks running and queued, spend today
//!   and this month) and charts (requests and p95 latency per hour over 24 hours from the
//!   `provider_metrics` rollups, spend per provider per day over 30 days, task outcomes per day).
//! - [`task_counts`], [`tasks_finished_after`], [`providers`]: what a scrape reads.
//!
//! Times are bucketed in UTC by the database (`strftime` on SQLite, `to_char` on PostgreSQL).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Timelike, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::Expr,
};
use serde::Serialize;
use uuid::Uuid;

use crate::entities::{provider_checks, provider_metrics, providers, routing_requests, tasks};

/// Days in the spend chart, and in the task outcome chart.
pub const SPEND_DAYS: i64 = 30;
pub const TASK_DAYS: i64 = 14;
/// A provider whose newest rollup within this many minutes says `down` is not healthy.
const HEALTH_MINUTES: i64 = 15;

/// One hour of gateway traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HourPoint {
    pub hour: DateTime<Utc>,
    pub requests: i64,
    pub errors: i64,
    /// The highest per-minute p95 latency in the hour (an upper bound of the hour's p95).
    pub p95_ms: Option<i32>,
}

/// One provider's spend per day, oldest day first, in micro-USD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProviderSpend {
    pub provider: String,
    pub days: Vec<i64>,
}

/// Task outcomes of one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskDay {
    pub day: NaiveDate,
    pub succeeded: i64,
    /// Failed or timed out.
    pub failed: i64,
}

/// Everything the dashboard home shows besides component health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dashboard {
    pub providers_total: u64,
    /// Enabled providers whose newest check did not fail and whose recent rollups are not `down`.
    pub providers_healthy: u64,
    pub tasks_running: i64,
    pub tasks_queued: i64,
    pub spend_today_micros: i64,
    pub spend_month_micros: i64,
    /// The last 24 hours, oldest first, the current hour last; hours without traffic are zero.
    pub hours: Vec<HourPoint>,
    /// The days of `spend`, oldest first, today last.
    pub spend_days: Vec<NaiveDate>,
    pub spend: Vec<ProviderSpend>,
    pub task_days: Vec<TaskDay>,
}

fn day_expr(backend: DbBackend, col: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"),
        _ => format!("strftime('%Y-%m-%d', {col})"),
    }
}

fn hour_expr(backend: DbBackend, col: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24')"),
        _ => format!("strftime('%Y-%m-%dT%H', {col})"),
    }
}

/// `SUM(col)` as a BIGINT on both backends (PostgreSQL sums BIGINT into NUMERIC).
fn sum(col: &str) -> Expr {
    Expr::cust(format!("CAST(COALESCE(SUM({col}), 0) AS BIGINT)"))
}

fn start_of_day(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.from_utc_datetime(&now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default())
}

fn start_of_hour(now: DateTime<Utc>) -> DateTime<Utc> {
    start_of_day(now) + TimeDelta::hours(i64::from(now.hour()))
}

/// The dashboard's numbers as of `now`.
///
/// # Errors
/// When the database cannot be read.
#[tracing::instrument(skip_all)]
pub async fn dashboard(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<Dashboard, DbErr> {
    let backend = db.get_database_backend();
    let today = start_of_day(now);
    let month = Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0).single().unwrap_or(today);

    // Cards.
    let (providers_total, providers_healthy) = provider_health(db, now).await?;
    let counts: HashMap<String, i64> = task_counts(db).await?.into_iter().collect();
    let spend_since = |from: DateTime<Utc>| async move {
        routing_requests::Entity::find()
            .select_only()
            .column_as(sum("cost_micros"), "cost")
            .filter(routing_requests::Column::CreatedAt.gte(from))
            .into_tuple::<i64>()
            .one(db)
            .await
            .map(Option::unwrap_or_default)
    };
    let spend_today_micros = spend_since(today).await?;
    let spend_month_micros = spend_since(month).await?;

    // Requests and p95 per hour.
    let first_hour = start_of_hour(now) - TimeDelta::hours(23);
    let hour = hour_expr(backend, "minute");
    let per_hour: HashMap<String, (i64, i64, Option<i32>)> = provider_metrics::Entity::find()
        .select_only()
        .column_as(Expr::cust(hour.clone()), "hour")
        .column_as(sum("requests"), "requests")
        .column_as(sum("errors"), "errors")
        .column_as(Expr::cust("MAX(latency_p95_ms)"), "p95")
        .filter(provider_metrics::Column::Minute.gte(first_hour))
        .group_by(Expr::cust(hour))
        .into_tuple::<(String, i64, i64, Option<i32>)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(h, r, e, p)| (h, (r, e, p)))
        .collect();
    let hours = (0..24)
        .map(|i| {
            let hour = first_hour + TimeDelta::hours(i);
            let (requests, errors, p95_ms) =
                per_hour.get(&hour.format("%Y-%m-%dT%H").to_string()).copied().unwrap_or((0, 0, None));
            HourPoint { hour, requests, errors, p95_ms }
        })
        .collect();

    // Spend per provider per day.
    let first_day = today - TimeDelta::days(SPEND_DAYS - 1);
    let spend_days: Vec<NaiveDate> =
        (0..SPEND_DAYS).map(|i| (first_day + TimeDelta::days(i)).date_naive()).collect();
    let day = day_expr(backend, "minute");
    let rows = provider_metrics::Entity::find()
        .select_only()
        .column_as(Expr::cust(day.clone()), "day")
        .column(provider_metrics::Column::ProviderId)
        .column_as(sum("cost_micros"), "cost")
        .filter(provider_metrics::Column::Minute.gte(first_day))
        .group_by(Expr::cust(day))
        .group_by(provider_metrics::Column::ProviderId)
        .into_tuple::<(String, Uuid, i64)>()
        .all(db)
        .await?;
    let names: HashMap<Uuid, String> = providers(db).await?.into_iter().map(|p| (p.id, p.name)).collect();
    let mut by_provider: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (d, provider, cost) in rows {
        let Some(i) = spend_days.iter().position(|x| x.format("%Y-%m-%d").to_string() == d) else { continue };
        let name = names.get(&provider).cloned().unwrap_or_else(|| provider.to_string());
        by_provider.entry(name).or_insert_with(|| vec![0; spend_days.len()])[i] += cost;
    }
    let spend = by_provider
        .into_iter()
        .filter(|(_, days)| days.iter().any(|c| *c != 0))
        .map(|(provider, days)| ProviderSpend { provider, days })
        .collect();

    // Task outcomes per day.
    let first_task_day = today - TimeDelta::days(TASK_DAYS - 1);
    let day = day_expr(backend, "finished_at");
    let rows = tasks::Entity::find()
        .select_only()
        .column_as(Expr::cust(day.clone()), "day")
        .column(tasks::Column::Status)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .filter(tasks::Column::FinishedAt.gte(first_task_day))
        .filter(tasks::Column::Status.is_in(["succeeded", "failed", "timed_out"]))
        .group_by(Expr::cust(day))
        .group_by(tasks::Column::Status)
        .into_tuple::<(String, String, i64)>()
        .all(db)
        .await?;
    let mut task_days: Vec<TaskDay> = (0..TASK_DAYS)
        .map(|i| TaskDay { day: (first_task_day + TimeDelta::days(i)).date_naive(), succeeded: 0, failed: 0 })
        .collect();
    for (d, status, n) in rows {
        if let Some(t) = task_days.iter_mut().find(|t| t.day.format("%Y-%m-%d").to_string() == d) {
            if status == "succeeded" {
                t.succeeded += n;
            } else {
                t.failed += n;
            }
        }
    }

    Ok(Dashboard {
        providers_total,
        providers_healthy,
        tasks_running: counts.get("running").copied().unwrap_or(0),
        tasks_queued: counts.get("queued").copied().unwrap_or(0),
        spend_today_micros,
        spend_month_micros,
        hours,
        spend_days,
        spend,
        task_days,
    })
}

/// Enabled providers, and how many of them are healthy: the newest check (if any) passed and the
/// newest rollup of the last 15 minutes (if any) is not `down`.
async fn provider_health(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<(u64, u64), DbErr> {
    let enabled: Vec<Uuid> = providers(db).await?.into_iter().filter(|p| p.enabled).map(|p| p.id).collect();
    if enabled.is_empty() {
        return Ok((0, 0));
    }
    let mut last_check: HashMap<Uuid, bool> = HashMap::new();
    for (provider, ok) in provider_checks::Entity::find()
        .select_only()
        .column(provider_checks::Column::ProviderId)
        .column(provider_checks::Column::Ok)
        .filter(provider_checks::Column::ProviderId.is_in(enabled.iter().copied()))
        .filter(provider_checks::Column::CheckedAt.gte(now - TimeDelta::days(1)))
        .order_by_desc(provider_checks::Column::CheckedAt)
        .limit(1_000)
        .into_tuple::<(Uuid, bool)>()
        .all(db)
        .await?
    {
        last_check.entry(provider).or_insert(ok);
    }
    let mut last_health: HashMap<Uuid, String> = HashMap::new();
    for (provider, health) in provider_metrics::Entity::find()
        .select_only()
        .column(provider_metrics::Column::ProviderId)
        .column(provider_metrics::Column::Health)
        .filter(provider_metrics::Column::ProviderId.is_in(enabled.iter().copied()))
        .filter(provider_metrics::Column::Minute.gte(now - TimeDelta::minutes(HEALTH_MINUTES)))
        .order_by_desc(provider_metrics::Column::Minute)
        .limit(1_000)
        .into_tuple::<(Uuid, String)>()
        .all(db)
        .await?
    {
        last_health.entry(provider).or_insert(health);
    }
    let healthy = enabled
        .iter()
        .filter(|p| last_check.get(p).copied().unwrap_or(true))
        .filter(|p| last_health.get(p).is_none_or(|h| h != "down"))
        .count();
    Ok((enabled.len() as u64, healthy as u64))
}

/// Tasks per status (`queued`, `running`, `succeeded`, …), only statuses that have tasks.
///
/// # Errors
/// When the database cannot be read.
pub async fn task_counts(db: &DatabaseConnection) -> Result<Vec<(String, i64)>, DbErr> {
    tasks::Entity::find()
        .select_only()
        .column(tasks::Column::Status)
        .column_as(Expr::cust("COUNT(*)"), "n")
        .group_by(tasks::Column::Status)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await
}

/// A task that finished, for the duration histogram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    pub id: Uuid,
    pub finished_at: DateTime<Utc>,
    pub status: String,
    pub duration_ms: Option<i64>,
}

/// Tasks that finished after (`finished_at`, `id`) = `after`, oldest first, at most `limit`: each
/// scrape reads those it has not counted yet.
///
/// # Errors
/// When the database cannot be read.
pub async fn tasks_finished_after(
    db: &DatabaseConnection,
    after: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Finished>, DbErr> {
    Ok(tasks::Entity::find()
        .select_only()
        .column(tasks::Column::Id)
        .column(tasks::Column::FinishedAt)
        .column(tasks::Column::Status)
        .column(tasks::Column::DurationMs)
        .filter(tasks::Column::FinishedAt.gt(after))
        .order_by_asc(tasks::Column::FinishedAt)
        .order_by_asc(tasks::Column::Id)
        .limit(limit)
        .into_tuple::<(Uuid, Option<DateTime<Utc>>, String, Option<i64>)>()
        .all(db)
        .await?
        .into_iter()
        .filter_map(|(id, finished_at, status, duration_ms)| {
            Some(Finished { id, finished_at: finished_at?, status, duration_ms })
        })
        .collect())
}

/// A provider's id, name, kind and whether it is enabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderInfo {
    pub id: Uuid,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
}

/// Every provider, by name.
///
/// # Errors
/// When the database cannot be read.
pub async fn providers(db: &DatabaseConnection) -> Result<Vec<ProviderInfo>, DbErr> {
    Ok(providers::Entity::find()
        .select_only()
        .column(providers::Column::Id)
        .column(providers::Column::Name)
        .column(providers::Column::Kind)
        .column(providers::Column::Enabled)
        .order_by_asc(providers::Column::Name)
        .into_tuple::<(Uuid, String, String, bool)>()
        .all(db)
        .await?
        .into_iter()
        .map(|(id, name, kind, enabled)| ProviderInfo { id, name, kind, enabled })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};

    async fn db(dir: &std::path::Path) -> DatabaseConnection {
        let db = sea_orm::Database::connect(crate::config::default_sqlite_url(dir)).await.unwrap();
        crate::db::migrate_up(&db).await.unwrap();
        db
    }

    #[tokio::test]
    async fn an_empty_database_gives_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let d = dashboard(&db(dir.path()).await, Utc::now()).await.unwrap();
        assert_eq!((d.providers_total, d.providers_healthy, d.tasks_running, d.tasks_queued), (0, 0, 0, 0));
        assert_eq!((d.spend_today_micros, d.spend_month_micros), (0, 0));
        assert_eq!(d.hours.len(), 24);
        assert!(d.hours.iter().all(|h| h.requests == 0 && h.p95_ms.is_none()));
        assert_eq!(d.spend_days.len(), SPEND_DAYS as usize);
        assert!(d.spend.is_empty());
        assert_eq!(d.task_days.len(), TASK_DAYS as usize);
    }

    #[tokio::test]
    async fn rollups_requests_and_tasks_are_bucketed_in_utc() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(dir.path()).await;
        let now = Utc.with_ymd_and_hms(2026, 3, 15, 10, 30, 0).unwrap();
        let provider = Uuid::new_v4();
        providers::ActiveModel {
            id: Set(provider),
            name: Set("openai".into()),
            kind: Set("openai".into()),
            base_url: Set(None),
            enabled: Set(true),
            priority: Set(0),
            capabilities: Set(serde_json::json!([])),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        for (minute, requests, p95, cost) in [
            (now - TimeDelta::minutes(5), 10, 300, 1_000),
            (now - TimeDelta::minutes(65), 4, 900, 2_000),
            (now - TimeDelta::days(3), 1, 50, 500),
        ] {
            provider_metrics::ActiveModel {
                provider_id: Set(provider),
                model: Set("gpt".into()),
                minute: Set(minute),
                requests: Set(requests),
                errors: Set(1),
                latency_p95_ms: Set(Some(p95)),
                cost_micros: Set(cost),
                health: Set("up".into()),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }
        for (at, cost) in [
            (now - TimeDelta::hours(1), 1_500),
            (now - TimeDelta::days(5), 700),
            (now - TimeDelta::days(20), 9),
        ] {
            routing_requests::ActiveModel {
                id: Set(Uuid::new_v4()),
                created_at: Set(at),
                requested_model: Set("gpt".into()),
                attempts: Set(serde_json::json!([])),
                stream: Set(false),
                status: Set("ok".into()),
                http_status: Set(200),
                latency_ms: Set(10),
                tokens_in: Set(1),
                tokens_out: Set(1),
                cost_micros: Set(cost),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }
        for (status, finished) in [
            ("succeeded", Some(now)),
            ("failed", Some(now)),
            ("succeeded", Some(now - TimeDelta::days(1))),
            ("queued", None),
            ("running", None),
        ] {
            tasks::ActiveModel {
                id: Set(Uuid::new_v4()),
                goblin_id: Set("echo".into()),
                task: Set("t".into()),
                status: Set(status.into()),
                dry_run: Set(false),
                duration_ms: Set(finished.map(|_| 1200)),
                created_at: Set(now - TimeDelta::days(2)),
                finished_at: Set(finished),
                ..Default::default()
            }
            .insert(&db)
            .await
            .unwrap();
        }

        let d = dashboard(&db, now).await.unwrap();
        assert_eq!((d.providers_total, d.providers_healthy), (1, 1));
        assert_eq!((d.tasks_running, d.tasks_queued), (1, 1));
        assert_eq!(d.spend_today_micros, 1_500);
        assert_eq!(d.spend_month_micros, 2_200, "this month: not the 20-days-old request from February");
        let last = d.hours.last().unwrap();
        assert_eq!((last.hour.hour(), last.requests, last.p95_ms), (10, 10, Some(300)));
        assert_eq!(d.hours[22].requests, 4);
        assert_eq!(d.spend.len(), 1);
        assert_eq!(d.spend[0].provider, "openai");
        assert_eq!(d.spend[0].days[SPEND_DAYS as usize - 1], 3_000, "today: both of today's minutes");
        assert_eq!(d.spend[0].days[SPEND_DAYS as usize - 4], 500);
        let today = d.task_days.last().unwrap();
        assert_eq!((today.succeeded, today.failed), (1, 1));
        assert_eq!(d.task_days[TASK_DAYS as usize - 2].succeeded, 1);

        let finished = tasks_finished_after(&db, now - TimeDelta::days(30), 10).await.unwrap();
        assert_eq!(finished.len(), 3);
        assert!(tasks_finished_after(&db, now, 10).await.unwrap().is_empty());
    }
}
