//! `GET /metrics`: Prometheus text format.
//!
//! Counters and histograms recorded on the request path (HTTP, gateway, sign-ins, exceptions) are
//! rendered as they are; the rest is read when scraped: the connection pool, database and Redis
//! health (Redis also holds the sign-in challenges when configured), tasks by status and the
//! durations of tasks finished since the last scrape (from the `tasks` table, so workers on other
//! machines count too), the request log writer's queue, circuit states, Raptor's newest sample, and
//! `goblin_provider_info` to turn provider ids into names in queries.
//!
//! Access: with `metrics.token` set, `Authorization: Bearer <token>`; without one, clients on the
//! loopback address only (unless `metrics.loopback_without_token` is off, which closes it).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Extension, Router,
    extract::{ConnectInfo, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use chrono::{DateTime, Utc};
use goblin_app::state::AppState;
use goblin_core::{gateway::breaker, health::Status};

use crate::routes::api::error;

/// Most finished tasks read per scrape; the rest wait for the next one.
const FINISHED_PER_SCRAPE: u64 = 10_000;

/// What a scrape remembers: the newest finished task it has counted.
pub struct Scrape {
    finished_after: Mutex<DateTime<Utc>>,
}

impl Scrape {
    /// Counts tasks that finish from `since` on.
    pub fn new(since: DateTime<Utc>) -> Arc<Self> {
        Arc::new(Self { finished_after: Mutex::new(since) })
    }
}

pub fn router(scrape: Arc<Scrape>) -> Router<AppState> {
    Router::new().route("/metrics", get(metrics)).layer(Extension(scrape))
}

/// Constant-time comparison, so the token cannot be guessed a byte at a time.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The refusal to send, when the scraper may not read the metrics.
fn refusal(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<Response> {
    let cfg = &state.config.metrics;
    if let Some(token) = &cfg.token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        return match sent {
            Some(t) if same(t.as_bytes(), token.expose().as_bytes()) => None,
            Some(_) => Some(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "the metrics token is not right",
            )),
            None => Some(error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "send 'Authorization: Bearer <token>' with the metrics token (GOBLIN_METRICS_TOKEN)",
            )),
        };
    }
    if cfg.loopback_without_token && peer.is_some_and(|p| p.ip().is_loopback()) {
        return None;
    }
    Some(error(
        StatusCode::FORBIDDEN,
        "permission_error",
        "metrics are served to loopback clients only; set GOBLIN_METRICS_TOKEN to scrape from elsewhere",
    ))
}

async fn metrics(
    State(state): State<AppState>,
    Extension(scrape): Extension<Arc<Scrape>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    if let Some(resp) = refusal(&state, &headers, peer.map(|Extension(c)| c.0)) {
        return resp;
    }
    gather(&state, &scrape).await;
    let handle = crate::observe::prometheus();
    handle.run_upkeep();
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        handle.render(),
    )
        .into_response()
}

/// Sets the gauges read at scrape time. A part that cannot be read is left out and logged.
async fn gather(state: &AppState, scrape: &Scrape) {
    use metrics::{counter, gauge, histogram};

    let pool = state.health.pool();
    gauge!("goblin_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    gauge!("goblin_db_pool_connections", "state" => "in_use").set(f64::from(pool.in_use));
    gauge!("goblin_db_pool_size").set(f64::from(pool.size));
    gauge!("goblin_db_pool_max_connections").set(f64::from(pool.max));
    // The pool does not count waiting acquirers; a pool with every connection in use makes them wait.
    gauge!("goblin_db_pool_saturated").set(if pool.in_use >= pool.max { 1.0 } else { 0.0 });

    let report = state.health.report().await;
    for c in &report.components {
        let up = if c.status == Status::Up { 1.0 } else { 0.0 };
        gauge!("goblin_component_up", "component" => c.name).set(up);
        if let Some(ms) = c.latency_ms {
            gauge!("goblin_component_latency_seconds", "component" => c.name).set(ms / 1000.0);
        }
    }
    let redis_up = report.components.iter().find(|c| c.name == "redis").map(|c| c.status == Status::Up);
    let (backend, up) = match redis_up {
        Some(up) => ("redis", up),
        None => ("memory", true),
    };
    gauge!("goblin_challenge_store_up", "backend" => backend).set(if up { 1.0 } else { 0.0 });

    match goblin_core::monitoring::task_counts(&state.db).await {
        Ok(counts) => {
            for status in ["queued", "running", "succeeded", "failed", "timed_out", "cancelled", "dry_run"] {
                let n = counts.iter().find(|(s, _)| s == status).map_or(0, |(_, n)| *n);
                gauge!("goblin_tasks", "status" => status).set(n as f64);
            }
            let queued = counts.iter().find(|(s, _)| s == "queued").map_or(0, |(_, n)| *n);
            gauge!("goblin_tasks_queue_depth").set(queued as f64);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not count tasks"),
    }
    let after = *scrape.finished_after.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match goblin_core::monitoring::tasks_finished_after(&state.db, after, FINISHED_PER_SCRAPE).await {
        Ok(done) => {
            for t in &done {
                if let Some(ms) = t.duration_ms {
                    histogram!("goblin_task_duration_seconds", "status" => t.status.clone())
                        .record(ms as f64 / 1000.0);
                }
            }
            if let Some(last) = done.last() {
                let mut w = scrape.finished_after.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                *w = (*w).max(last.finished_at);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read finished tasks"),
    }

    let s = state.gateway.records().stats();
    gauge!("goblin_request_log_queue_depth").set(s.pending as f64);
    counter!("goblin_request_log_written_total").absolute(s.written);
    counter!("goblin_request_log_dropped_total").absolute(s.dropped);
    counter!("goblin_request_log_write_errors_total").absolute(s.write_errors);

    match goblin_core::monitoring::providers(&state.db).await {
        Ok(list) => {
            for p in list {
                gauge!("goblin_provider_info", "provider" => p.id.to_string(), "name" => p.name, "kind" => p.kind)
                    .set(if p.enabled { 1.0 } else { 0.0 });
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not list providers"),
    }
    match state.routing.health(&state.gateway).await {
        Ok(rows) => {
            for h in rows {
                let v = match h.breaker {
                    breaker::State::Closed => 0.0,
                    breaker::State::Open => 1.0,
                    breaker::State::HalfOpen => 2.0,
                };
                gauge!("goblin_gateway_circuit_state", "provider" => h.provider_id.to_string(), "model" => h.model)
                    .set(v);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: could not read circuit states"),
    }

    let raptor = state.raptor.status();
    gauge!("goblin_raptor_running").set(if raptor.running { 1.0 } else { 0.0 });
    if let Some(s) = raptor.latest {
        if let Some(v) = s.process_cpu_percent {
            gauge!("goblin_process_cpu_percent").set(f64::from(v));
        }
        if let Some(v) = s.process_memory_bytes {
            gauge!("goblin_process_memory_bytes").set(v as f64);
        }
        if let Some(v) = s.system_cpu_percent {
            gauge!("goblin_system_cpu_percent").set(f64::from(v));
        }
    }
    let (written, dropped) = state.raptor.log().counts();
    counter!("goblin_raptor_log_lines_total").absolute(written);
    counter!("goblin_raptor_log_dropped_total").absolute(dropped);
}
