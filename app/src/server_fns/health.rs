//! Health of the server's components, for the home page.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One component as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentView {
    pub name: String,
    pub up: bool,
    pub required: bool,
    pub latency_ms: Option<f64>,
    pub detail: Option<String>,
    pub migration: Option<String>,
}

/// The health report as the dashboard shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthView {
    pub healthy: bool,
    pub version: String,
    /// RFC 3339, UTC.
    pub checked_at: String,
    pub components: Vec<ComponentView>,
}

#[cfg(feature = "ssr")]
impl From<goblin_core::health::Report> for HealthView {
    fn from(r: goblin_core::health::Report) -> Self {
        use goblin_core::health::Status;
        HealthView {
            healthy: r.is_healthy(),
            version: r.version.to_string(),
            checked_at: r.checked_at.to_rfc3339_opts(chrono_secs(), true),
            components: r
                .components
                .into_iter()
                .map(|c| ComponentView {
                    name: c.name.to_string(),
                    up: c.status == Status::Up,
                    required: c.required,
                    latency_ms: c.latency_ms,
                    detail: c.detail,
                    migration: c.migration,
                })
                .collect(),
        }
    }
}

#[cfg(feature = "ssr")]
fn chrono_secs() -> goblin_core::health::SecondsFormat {
    goblin_core::health::SecondsFormat::Millis
}

/// Checks every component now. Public, like `/health`: it holds nothing secret.
///
/// # Errors
/// [`AppError::Internal`] when the server state is missing (a wiring bug, logged).
#[server(prefix = "/fn", endpoint = "health")]
pub async fn get_health() -> Result<HealthView, AppError> {
    let state = use_context::<crate::state::AppState>()
        .ok_or_else(|| AppError::internal("AppState missing from context"))?;
    Ok(state.health.report().await.into())
}
