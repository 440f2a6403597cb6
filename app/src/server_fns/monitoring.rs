//! The dashboard home's numbers (any signed-in person) and the Monitoring page (admins): Raptor's
//! status, samples and log tail, starting and stopping it, and the traced exceptions.
//!
//! Form fields are plain strings so the forms work without JavaScript; the values are checked here
//! and refused with a message naming the field.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{error::AppError, server_fns::health::HealthView};

/// One hour of gateway traffic on the home page's chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourBar {
    /// `HH:00` UTC.
    pub label: String,
    pub requests: i64,
    pub errors: i64,
    pub p95_ms: Option<i32>,
}

/// One provider's spend per day (micro-USD), in the order of `DashboardView::spend_days`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpendSeries {
    pub provider: String,
    pub days: Vec<i64>,
}

/// Task outcomes of one day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDayView {
    /// `MM-DD`.
    pub day: String,
    pub succeeded: i64,
    pub failed: i64,
}

/// Everything the home page shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DashboardView {
    pub health: HealthView,
    pub providers_total: u64,
    pub providers_healthy: u64,
    pub tasks_running: i64,
    pub tasks_queued: i64,
    /// US dollars, formatted (`$1.25`).
    pub spend_today: String,
    pub spend_month: String,
    pub hours: Vec<HourBar>,
    /// `MM-DD`, oldest first.
    pub spend_days: Vec<String>,
    pub spend: Vec<SpendSeries>,
    pub task_days: Vec<TaskDayView>,
}

/// Dollars from micro-USD: cents from a cent up, otherwise as many decimals as it takes.
pub fn usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    if m == 0 {
        "$0.00".into()
    } else if m >= 10_000 {
        format!("{sign}${}.{:02}", m / 1_000_000, (m % 1_000_000) / 10_000)
    } else {
        format!("{sign}$0.{}", format!("{m:06}").trim_end_matches('0'))
    }
}

/// One Raptor sample, for the charts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleView {
    /// `HH:MM:SS` UTC.
    pub at: String,
    pub process_cpu_percent: Option<f32>,
    pub process_memory_mb: Option<f64>,
    pub system_cpu_percent: Option<f32>,
    pub system_memory_used_mb: Option<f64>,
}

/// Raptor's state as the Monitoring page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RaptorView {
    pub running: bool,
    pub started_at: Option<String>,
    pub sample_rate_ms: u64,
    pub samples_taken: u64,
    pub log_file: String,
    pub level: String,
    pub trace_exceptions: bool,
    /// Oldest first.
    pub samples: Vec<SampleView>,
}

/// A traced exception group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionRow {
    pub id: String,
    pub kind: String,
    pub location: String,
    pub message: String,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub request_id: Option<String>,
    pub route: Option<String>,
    pub method: Option<String>,
    pub user_id: Option<String>,
    pub task_id: Option<String>,
    /// The goblin the task was running.
    pub goblin_id: Option<String>,
    pub spans: Vec<String>,
    /// `name = value`, secrets already removed.
    pub fields: Vec<String>,
    pub backtrace: Option<String>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;

    pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }

    pub fn raptor_view(state: &crate::state::AppState) -> RaptorView {
        let s = state.raptor.status();
        let mb = |b: Option<u64>| b.map(|b| (b as f64 / 1_048_576.0 * 10.0).round() / 10.0);
        RaptorView {
            running: s.running,
            started_at: s.started_at.map(time),
            sample_rate_ms: s.sample_rate_ms,
            samples_taken: s.samples_taken,
            log_file: s.log_file,
            level: s.level.as_str().into(),
            trace_exceptions: s.trace_exceptions,
            samples: state
                .raptor
                .samples(120)
                .into_iter()
                .map(|x| SampleView {
                    at: x.at.format("%H:%M:%S").to_string(),
                    process_cpu_percent: x.process_cpu_percent,
                    process_memory_mb: mb(x.process_memory_bytes),
                    system_cpu_percent: x.system_cpu_percent,
                    system_memory_used_mb: mb(x.system_memory_used_bytes),
                })
                .collect(),
        }
    }

    /// A refusal with status 400, except for a plain form post (JavaScript off): the server answers
    /// those with a redirect back to the form's page carrying the error, which a status would replace.
    pub fn refuse(message: String) -> AppError {
        let e = AppError::Refused(message);
        let form_post = use_context::<axum::http::request::Parts>().is_some_and(|p| {
            p.method == axum::http::Method::POST
                && p.headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
        });
        if form_post { e } else { e.respond() }
    }
}

#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::{require_admin, require_user};

/// The home page's cards and charts, and component health. Any signed-in person.
///
/// # Errors
/// Not signed in, or the database cannot be read.
#[server(prefix = "/fn", endpoint = "dashboard")]
pub async fn dashboard() -> Result<DashboardView, AppError> {
    let (state, _, _) = require_user().await?;
    let now = state.clock.now();
    let health = state.health.report().await;
    let d = goblin_core::monitoring::dashboard(&state.db, now).await.map_err(AppError::internal)?;
    Ok(DashboardView {
        health: health.into(),
        providers_total: d.providers_total,
        providers_healthy: d.providers_healthy,
        tasks_running: d.tasks_running,
        tasks_queued: d.tasks_queued,
        spend_today: usd(d.spend_today_micros),
        spend_month: usd(d.spend_month_micros),
        hours: d
            .hours
            .into_iter()
            .map(|h| HourBar {
                label: h.hour.format("%H:00").to_string(),
                requests: h.requests,
                errors: h.errors,
                p95_ms: h.p95_ms,
            })
            .collect(),
        spend_days: d.spend_days.iter().map(|d| d.format("%m-%d").to_string()).collect(),
        spend: d.spend.into_iter().map(|s| SpendSeries { provider: s.provider, days: s.days }).collect(),
        task_days: d
            .task_days
            .into_iter()
            .map(|t| TaskDayView {
                day: t.day.format("%m-%d").to_string(),
                succeeded: t.succeeded,
                failed: t.failed,
            })
            .collect(),
    })
}

/// Raptor's status and recent samples.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/raptor-status")]
pub async fn raptor_status() -> Result<RaptorView, AppError> {
    let (state, _) = require_admin().await?;
    Ok(ssr::raptor_view(&state))
}

/// Starts Raptor; an empty `sample_rate_ms` uses the configured rate.
///
/// # Errors
/// Not an admin, or a rate that is not a whole number from 100 to 3600000.
#[server(prefix = "/fn", endpoint = "admin/raptor-start")]
pub async fn raptor_start(sample_rate_ms: Option<String>) -> Result<RaptorView, AppError> {
    use goblin_core::raptor::{MAX_SAMPLE_MS, MIN_SAMPLE_MS};
    let (state, _) = require_admin().await?;
    let rate = match sample_rate_ms.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<u64>().ok().filter(|n| (MIN_SAMPLE_MS..=MAX_SAMPLE_MS).contains(n)).ok_or_else(
            || {
                ssr::refuse(format!(
                    "sample rate: must be a whole number of milliseconds from {MIN_SAMPLE_MS} to {MAX_SAMPLE_MS}, not '{}'",
                    v.chars().take(40).collect::<String>()
                ))
            },
        )?),
    };
    state.raptor.start(rate.map(std::time::Duration::from_millis));
    Ok(ssr::raptor_view(&state))
}

/// Stops Raptor.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/raptor-stop")]
pub async fn raptor_stop() -> Result<RaptorView, AppError> {
    let (state, _) = require_admin().await?;
    state.raptor.stop();
    Ok(ssr::raptor_view(&state))
}

/// The last lines of the Raptor log, at least as severe as `level` (`all` or empty for every line).
///
/// # Errors
/// Not an admin, an unknown level, or a log that cannot be read.
#[server(prefix = "/fn", endpoint = "admin/raptor-log")]
pub async fn raptor_log(level: Option<String>) -> Result<Vec<String>, AppError> {
    use goblin_core::{config::RaptorLevel, raptor::log::TailRequest};
    let (state, _) = require_admin().await?;
    let level = match level.as_deref().map(str::trim).filter(|l| !l.is_empty() && *l != "all") {
        None => None,
        Some(l) => Some(RaptorLevel::parse(l).ok_or_else(|| {
            ssr::refuse(format!(
                "level: must be one of all, error, warn, info, debug, not '{}'",
                l.chars().take(40).collect::<String>()
            ))
        })?),
    };
    state.raptor.flush_log(std::time::Duration::from_millis(500)).await;
    let tail = state
        .raptor
        .tail(TailRequest { lines: 100, max_chars: 64 * 1024, level })
        .await
        .map_err(AppError::internal)?;
    Ok(tail.lines)
}

/// Fails on purpose inside a traced span (see `goblin_core::raptor::demo`), so the error shows in
/// the Raptor log and the exceptions.
///
/// Answers what happened: the error is the point of the demo, not a failure of the request.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/raptor-demo")]
pub async fn raptor_demo() -> Result<String, AppError> {
    let (_state, admin) = require_admin().await?;
    tracing::Span::current().record("user_id", tracing::field::display(admin.id));
    Ok(match goblin_core::raptor::demo("boom") {
        Ok(_) => "the demo ran without an error".into(),
        Err(e) => format!("the demo error was raised ({e}); it is now in the Raptor log and the exceptions"),
    })
}

/// Traced exception groups, most recently seen first (at most 100).
///
/// # Errors
/// Not an admin, or the database cannot be read.
#[server(prefix = "/fn", endpoint = "admin/exceptions")]
pub async fn exception_list() -> Result<Vec<ExceptionRow>, AppError> {
    let (state, _) = require_admin().await?;
    let list = state.raptor.exceptions().list(100).await.map_err(AppError::internal)?;
    Ok(list
        .into_iter()
        .map(|e| ExceptionRow {
            id: e.id.to_string(),
            kind: e.kind,
            location: e.location,
            message: e.message,
            count: e.count,
            first_seen: ssr::time(e.first_seen),
            last_seen: ssr::time(e.last_seen),
            request_id: e.context.request_id,
            route: e.context.route,
            method: e.context.method,
            user_id: e.context.user_id,
            task_id: e.context.task_id,
            goblin_id: e.context.goblin_id,
            spans: e.context.spans,
            fields: e.context.fields.into_iter().map(|(k, v)| format!("{k} = {v}")).collect(),
            backtrace: e.backtrace,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::usd;

    #[test]
    fn dollars_are_readable() {
        assert_eq!(usd(0), "$0.00");
        assert_eq!(usd(1_250_000), "$1.25");
        assert_eq!(usd(12_345_678), "$12.34");
        assert_eq!(usd(10_000), "$0.01");
        assert_eq!(usd(120), "$0.00012");
    }
}
