//! Admin functions for providers, their keys and models, and "test connection". Keys go in and never
//! come out: every type here carries only a key's mask.
//!
//! Form fields are plain strings (and `Option<String>` for checkboxes, which send nothing when
//! unchecked) so that every form works without JavaScript; the service validates them.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindOption {
    pub value: String,
    pub label: String,
    pub default_base_url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRow {
    pub ok: bool,
    pub status_code: Option<i32>,
    pub latency_ms: i32,
    pub message: String,
    pub at: String,
    pub key_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub kind_label: String,
    /// Where calls go (the override, or the kind's default).
    pub base_url: String,
    /// The override as stored; empty for the default.
    pub base_url_override: String,
    pub enabled: bool,
    pub priority: i32,
    pub capabilities: Vec<String>,
    /// US dollars per `budget_period`, as the form shows it; empty for no budget.
    pub budget: String,
    pub budget_period: String,
    pub keys: u64,
    pub enabled_keys: u64,
    pub models: u64,
    pub last_check: Option<CheckRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRow {
    pub id: String,
    pub label: String,
    pub masked: String,
    pub enabled: bool,
    /// `YYYY-MM-DD`, or empty.
    pub expires: String,
    pub expired: bool,
    pub last_used: Option<String>,
    pub created: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRow {
    pub id: String,
    pub model_id: String,
    pub display_name: String,
    pub capabilities: Vec<String>,
    pub context_window: Option<i32>,
    /// US dollars per million tokens, as typed.
    pub price_in: String,
    pub price_out: String,
    pub default_params: String,
    pub is_default: bool,
    pub edited: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderPage {
    pub provider: ProviderRow,
    pub keys: Vec<KeyRow>,
    pub models: Vec<ModelRow>,
    pub checks: Vec<CheckRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    pub added: Vec<String>,
    pub kept: usize,
}

#[cfg(feature = "ssr")]
mod ssr {
    use goblin_core::{
        entities::{model_configs, provider_checks, providers},
        providers::{
            ProviderError, ProviderKind, ProviderSummary, caps_of, effective_base_url, format_usd_micros,
        },
    };

    use super::*;

    pub fn map_err(e: ProviderError) -> AppError {
        match e {
            ProviderError::NotFound(what) => AppError::NotFound(format!("no {what} with that id")).respond(),
            ProviderError::Db(e) => AppError::internal(e),
            ProviderError::Crypto(e) => AppError::internal(e),
            ProviderError::Upstream(m) => AppError::Refused(format!("the provider answered: {m}")).respond(),
            other => AppError::Refused(other.to_string()).respond(),
        }
    }

    pub fn parse_id(id: &str) -> Result<uuid::Uuid, AppError> {
        uuid::Uuid::parse_str(id.trim()).map_err(|_| {
            AppError::NotFound(format!("'{}' is not a valid id", id.chars().take(40).collect::<String>()))
                .respond()
        })
    }

    fn time(t: chrono::DateTime<chrono::Utc>) -> String {
        t.format("%Y-%m-%d %H:%M UTC").to_string()
    }

    pub fn check_row(c: provider_checks::Model) -> CheckRow {
        CheckRow {
            ok: c.ok,
            status_code: c.status_code,
            latency_ms: c.latency_ms,
            message: c.message,
            at: time(c.checked_at),
            key_id: c.credential_id.map(|id| id.to_string()),
        }
    }

    pub fn provider_row(p: &providers::Model, counts: Option<&ProviderSummary>) -> ProviderRow {
        let kind = p.kind.parse::<ProviderKind>().ok();
        ProviderRow {
            id: p.id.to_string(),
            name: p.name.clone(),
            kind: p.kind.clone(),
            kind_label: kind.map_or(p.kind.clone(), |k| k.label().to_string()),
            base_url: effective_base_url(p).unwrap_or_default(),
            base_url_override: p.base_url.clone().unwrap_or_default(),
            enabled: p.enabled,
            priority: p.priority,
            capabilities: caps_of(&p.capabilities),
            budget: p.budget_micros.map(goblin_core::providers::format_usd_micros).unwrap_or_default(),
            budget_period: p.budget_period.clone(),
            keys: counts.map_or(0, |c| c.keys),
            enabled_keys: counts.map_or(0, |c| c.enabled_keys),
            models: counts.map_or(0, |c| c.models),
            last_check: counts.and_then(|c| c.last_check.clone()).map(check_row),
        }
    }

    pub fn key_row(k: goblin_core::providers::KeyView, now: chrono::DateTime<chrono::Utc>) -> KeyRow {
        KeyRow {
            id: k.id.to_string(),
            label: k.label,
            masked: k.masked,
            enabled: k.enabled,
            expires: k.expires_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default(),
            expired: k.expires_at.is_some_and(|t| t <= now),
            last_used: k.last_used_at.map(time),
            created: time(k.created_at),
        }
    }

    pub fn model_row(m: model_configs::Model) -> ModelRow {
        ModelRow {
            id: m.id.to_string(),
            model_id: m.model_id,
            display_name: m.display_name,
            capabilities: caps_of(&m.capabilities),
            context_window: m.context_window,
            price_in: format_usd_micros(m.price_in_micros_per_mtok),
            price_out: format_usd_micros(m.price_out_micros_per_mtok),
            default_params: if m.default_params.as_object().is_some_and(|o| o.is_empty()) {
                String::new()
            } else {
                m.default_params.to_string()
            },
            is_default: m.is_default,
            edited: m.edited,
        }
    }

    /// Checkbox fields to the list of capabilities they name.
    pub fn caps(chat: &Option<String>, embeddings: &Option<String>, speech: &Option<String>) -> Vec<String> {
        [("chat", chat), ("embeddings", embeddings), ("speech", speech)]
            .into_iter()
            .filter(|(_, v)| v.is_some())
            .map(|(c, _)| c.to_string())
            .collect()
    }

    /// `true` for `yes`, `false` for `no`, otherwise a refusal naming the field.
    pub fn one_of(value: &str, yes: &str, no: &str, field: &str) -> Result<bool, AppError> {
        match value {
            v if v == yes => Ok(true),
            v if v == no => Ok(false),
            _ => Err(AppError::Refused(format!("{field} must be {yes} or {no}")).respond()),
        }
    }

    pub fn confirmed(confirm: &Option<String>, what: &str) -> Result<(), AppError> {
        if confirm.is_none() {
            return Err(
                AppError::Refused(format!("tick the box to confirm that {what} should be deleted")).respond()
            );
        }
        Ok(())
    }
}

#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::require_admin;
#[cfg(feature = "ssr")]
use ssr::*;

/// The kinds a provider can be, for the "add provider" form.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/provider-kinds")]
pub async fn provider_kinds() -> Result<Vec<KindOption>, AppError> {
    require_admin().await?;
    Ok(goblin_core::providers::ProviderKind::ALL
        .into_iter()
        .map(|k| KindOption {
            value: k.as_str().to_string(),
            label: k.label().to_string(),
            default_base_url: k.default_base_url().map(str::to_string),
        })
        .collect())
}

/// Providers in routing order, with key and model counts and the last check.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/providers")]
pub async fn list_providers() -> Result<Vec<ProviderRow>, AppError> {
    let (state, _) = require_admin().await?;
    let list = state.providers.list().await.map_err(map_err)?;
    Ok(list.iter().map(|s| provider_row(&s.provider, Some(s))).collect())
}

/// One provider with its keys (masked), models and recent checks.
///
/// # Errors
/// Not an admin, or an unknown id.
#[server(prefix = "/fn", endpoint = "admin/provider")]
pub async fn get_provider(id: String) -> Result<ProviderPage, AppError> {
    let (state, _) = require_admin().await?;
    let d = state.providers.detail(parse_id(&id)?).await.map_err(map_err)?;
    let now = state.clock.now();
    let summary = goblin_core::providers::ProviderSummary {
        provider: d.provider.clone(),
        keys: d.keys.len() as u64,
        enabled_keys: d.keys.iter().filter(|k| k.enabled).count() as u64,
        models: d.models.len() as u64,
        last_check: d.checks.first().cloned(),
    };
    Ok(ProviderPage {
        provider: provider_row(&d.provider, Some(&summary)),
        keys: d.keys.into_iter().map(|k| key_row(k, now)).collect(),
        models: d.models.into_iter().map(model_row).collect(),
        checks: d.checks.into_iter().map(check_row).collect(),
    })
}

/// Adds a provider, optionally with its first key. Returns the new provider's id.
///
/// # Errors
/// Not an admin, invalid fields, or a taken name.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/fn", endpoint = "admin/provider-create")]
pub async fn create_provider(
    name: String,
    kind: String,
    base_url: String,
    priority: String,
    cap_chat: Option<String>,
    cap_embeddings: Option<String>,
    cap_speech: Option<String>,
    key: Option<String>,
    budget: Option<String>,
    budget_period: Option<String>,
) -> Result<String, AppError> {
    let (state, admin) = require_admin().await?;
    let input = goblin_core::providers::ProviderInput {
        name,
        kind,
        base_url,
        priority,
        capabilities: caps(&cap_chat, &cap_embeddings, &cap_speech),
        enabled: true,
        budget: budget.unwrap_or_default(),
        budget_period: budget_period.unwrap_or_default(),
    };
    let key = key.filter(|k| !k.trim().is_empty());
    if let Some(key) = &key {
        // Checked first, so a bad key leaves nothing half-made.
        goblin_core::providers::validate_key(key).map_err(map_err)?;
    }
    let p = state.providers.create(Some(admin.id), &input).await.map_err(map_err)?;
    if let Some(key) = key {
        state.providers.add_key(Some(admin.id), p.id, "default", &key, "").await.map_err(map_err)?;
    }
    Ok(p.id.to_string())
}

/// # Errors
/// Not an admin, an unknown id, invalid fields, or a taken name.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/fn", endpoint = "admin/provider-update")]
pub async fn update_provider(
    id: String,
    name: String,
    kind: String,
    base_url: String,
    priority: String,
    cap_chat: Option<String>,
    cap_embeddings: Option<String>,
    cap_speech: Option<String>,
    enabled: Option<String>,
    budget: Option<String>,
    budget_period: Option<String>,
) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    let input = goblin_core::providers::ProviderInput {
        name,
        kind,
        base_url,
        priority,
        capabilities: caps(&cap_chat, &cap_embeddings, &cap_speech),
        enabled: enabled.is_some(),
        budget: budget.unwrap_or_default(),
        budget_period: budget_period.unwrap_or_default(),
    };
    state.providers.update(Some(admin.id), parse_id(&id)?, &input).await.map_err(map_err).map(|_| ())
}

/// `enabled` is `true` or `false`.
///
/// # Errors
/// Not an admin, or an unknown id.
#[server(prefix = "/fn", endpoint = "admin/provider-enabled")]
pub async fn set_provider_enabled(id: String, enabled: String) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    let enabled = one_of(&enabled, "true", "false", "enabled")?;
    state.providers.set_enabled(Some(admin.id), parse_id(&id)?, enabled).await.map_err(map_err)
}

/// `direction` is `up` or `down`.
///
/// # Errors
/// Not an admin, or an unknown id.
#[server(prefix = "/fn", endpoint = "admin/provider-move")]
pub async fn move_provider(id: String, direction: String) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    let up = one_of(&direction, "up", "down", "direction")?;
    state.providers.move_provider(Some(admin.id), parse_id(&id)?, up).await.map_err(map_err)
}

/// Deletes a provider with its keys and models. `confirm` must be ticked.
///
/// # Errors
/// Not an admin, not confirmed, or an unknown id.
#[server(prefix = "/fn", endpoint = "admin/provider-delete")]
pub async fn delete_provider(id: String, confirm: Option<String>) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    confirmed(&confirm, "the provider, its keys and its models")?;
    state.providers.delete(Some(admin.id), parse_id(&id)?).await.map_err(map_err)
}

/// Stores a key (encrypted). Only its mask is returned.
///
/// # Errors
/// Not an admin, an unknown provider, or an invalid label, key or expiry.
#[server(prefix = "/fn", endpoint = "admin/key-add")]
pub async fn add_key(
    provider_id: String,
    label: String,
    key: String,
    expires: String,
) -> Result<KeyRow, AppError> {
    let (state, admin) = require_admin().await?;
    let k = state
        .providers
        .add_key(Some(admin.id), parse_id(&provider_id)?, &label, &key, &expires)
        .await
        .map_err(map_err)?;
    Ok(key_row(k, state.clock.now()))
}

/// Replaces a key's value; the next call uses the new key.
///
/// # Errors
/// Not an admin, an unknown key, or an invalid key.
#[server(prefix = "/fn", endpoint = "admin/key-replace")]
pub async fn replace_key(id: String, key: String) -> Result<KeyRow, AppError> {
    let (state, admin) = require_admin().await?;
    let k = state.providers.replace_key(Some(admin.id), parse_id(&id)?, &key).await.map_err(map_err)?;
    Ok(key_row(k, state.clock.now()))
}

/// # Errors
/// Not an admin, an unknown key, or an invalid label or expiry.
#[server(prefix = "/fn", endpoint = "admin/key-update")]
pub async fn update_key(
    id: String,
    label: String,
    expires: String,
    enabled: Option<String>,
) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    state
        .providers
        .update_key(Some(admin.id), parse_id(&id)?, &label, &expires, enabled.is_some())
        .await
        .map_err(map_err)
        .map(|_| ())
}

/// # Errors
/// Not an admin, not confirmed, or an unknown key.
#[server(prefix = "/fn", endpoint = "admin/key-delete")]
pub async fn delete_key(id: String, confirm: Option<String>) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    confirmed(&confirm, "the key")?;
    state.providers.delete_key(Some(admin.id), parse_id(&id)?).await.map_err(map_err)
}

/// "Test connection": the cheapest real call, with the given key or the next usable one. A failing
/// provider is a result (`ok: false` with its message), not an error.
///
/// # Errors
/// Not an admin, an unknown provider or key, or no usable key.
#[server(prefix = "/fn", endpoint = "admin/provider-test")]
pub async fn test_connection(provider_id: String, key_id: Option<String>) -> Result<CheckRow, AppError> {
    let (state, admin) = require_admin().await?;
    let key = match key_id.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        Some(k) => Some(parse_id(k)?),
        None => None,
    };
    let c = state.providers.check(Some(admin.id), parse_id(&provider_id)?, key).await.map_err(map_err)?;
    Ok(check_row(c))
}

/// Adds the provider's listed models that are not configured yet.
///
/// # Errors
/// Not an admin, an unknown provider, no usable key, or the provider's error.
#[server(prefix = "/fn", endpoint = "admin/models-sync")]
pub async fn sync_models(provider_id: String) -> Result<SyncResult, AppError> {
    let (state, admin) = require_admin().await?;
    let r = state.providers.sync_models(Some(admin.id), parse_id(&provider_id)?).await.map_err(map_err)?;
    Ok(SyncResult { added: r.added, kept: r.kept })
}

/// Adds (no `id`) or edits (with `id`) a model.
///
/// # Errors
/// Not an admin, an unknown provider or model, or invalid fields.
#[allow(clippy::too_many_arguments)]
#[server(prefix = "/fn", endpoint = "admin/model-save")]
pub async fn save_model(
    provider_id: String,
    id: Option<String>,
    model_id: String,
    display_name: String,
    cap_chat: Option<String>,
    cap_embeddings: Option<String>,
    cap_speech: Option<String>,
    context_window: String,
    price_in: String,
    price_out: String,
    default_params: String,
    is_default: Option<String>,
) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    let input = goblin_core::providers::ModelInput {
        model_id,
        display_name,
        capabilities: caps(&cap_chat, &cap_embeddings, &cap_speech),
        context_window,
        price_in,
        price_out,
        default_params,
        is_default: is_default.is_some(),
    };
    match id.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
        Some(id) => state.providers.update_model(Some(admin.id), parse_id(id)?, &input).await,
        None => state.providers.add_model(Some(admin.id), parse_id(&provider_id)?, &input).await,
    }
    .map_err(map_err)
    .map(|_| ())
}

/// # Errors
/// Not an admin, not confirmed, or an unknown model.
#[server(prefix = "/fn", endpoint = "admin/model-delete")]
pub async fn delete_model(id: String, confirm: Option<String>) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    confirmed(&confirm, "the model")?;
    state.providers.delete_model(Some(admin.id), parse_id(&id)?).await.map_err(map_err)
}
