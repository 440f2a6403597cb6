//! `/health`, `/health/db`, `/health/db-pool`: public, JSON, nothing secret in them.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use goblin_app::state::AppState;
use goblin_core::health::Status;
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/db", get(health_db))
        .route("/health/db-pool", get(health_db_pool))
}

/// Every component; 200 when all required ones are up, 503 otherwise.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let report = state.health.report().await;
    let code = if report.is_healthy() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, no_store(), Json(report))
}

/// A trivial query's round trip; 503 with the reason when the database is down.
async fn health_db(State(state): State<AppState>) -> impl IntoResponse {
    let c = state.health.database().await;
    let up = c.status == Status::Up;
    let body = if up {
        json!({
            "status": "up",
            "backend": c.detail,
            "latency_ms": c.latency_ms,
            "migration": c.migration,
        })
    } else {
        json!({ "status": "down", "reason": c.detail })
    };
    let code = if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, no_store(), Json(body))
}

/// Pool counters; no database round trip, so it answers even when the database is down.
async fn health_db_pool(State(state): State<AppState>) -> impl IntoResponse {
    (no_store(), Json(state.health.pool()))
}

fn no_store() -> [(axum::http::HeaderName, &'static str); 1] {
    [(axum::http::header::CACHE_CONTROL, "no-store")]
}
