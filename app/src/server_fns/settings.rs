//! Admin functions for the runtime settings: list, change (validated, audited, applied on every
//! instance without a restart) and reset to the default.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::require_admin;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingRow {
    pub key: String,
    pub group: String,
    pub label: String,
    pub description: String,
    /// `int`, `bool` or `choice`.
    pub kind: String,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub unit: String,
    pub choices: Vec<String>,
    pub value: String,
    pub default: String,
    pub is_default: bool,
    pub updated_at: Option<String>,
}

#[cfg(feature = "ssr")]
fn map_err(e: goblin_core::settings::SettingError) -> AppError {
    use goblin_core::settings::SettingError;
    match e {
        SettingError::Unknown(_) => AppError::NotFound(e.to_string()).respond(),
        SettingError::Db(e) => AppError::internal(e),
        other => AppError::Refused(other.to_string()).respond(),
    }
}

/// Every setting, grouped in registry order.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/settings")]
pub async fn list_settings() -> Result<Vec<SettingRow>, AppError> {
    let (state, _) = require_admin().await?;
    let rows = state.settings.list().await.map_err(AppError::internal)?;
    Ok(rows
        .into_iter()
        .map(|s| SettingRow {
            key: s.key,
            group: s.group,
            label: s.label,
            description: s.description,
            kind: s.kind,
            min: s.min,
            max: s.max,
            unit: s.unit.unwrap_or_default(),
            choices: s.choices,
            value: s.value,
            default: s.default,
            is_default: s.is_default,
            updated_at: s.updated_at.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        })
        .collect())
}

/// Changes one setting. The message of a refusal names the setting and the rule.
///
/// # Errors
/// Not an admin, an unknown setting, or a value that breaks its rule.
#[server(prefix = "/fn", endpoint = "admin/setting-set")]
pub async fn set_setting(key: String, value: String) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    state.settings.set(Some(admin.id), &key, &value).await.map_err(map_err).map(|_| ())
}

/// Returns one setting to its default.
///
/// # Errors
/// Not an admin, or an unknown setting.
#[server(prefix = "/fn", endpoint = "admin/setting-reset")]
pub async fn reset_setting(key: String) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    state.settings.reset(Some(admin.id), &key).await.map_err(map_err)
}
