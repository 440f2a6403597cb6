//! Admin functions for routing: route aliases with their targets and policies, the live health of
//! every target, and the request log (filtered, newest first, keyset-paginated).
//!
//! Form fields are plain strings (and `Option<String>` for checkboxes, which send nothing when
//! unchecked) so that every form works without JavaScript; the service validates them.

// Each form field is one argument (that is how a plain form post reaches a server function), and the
// `#[server]` macro repeats the signature in code an item-level `allow` does not reach.
#![allow(clippy::too_many_arguments)]

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One target of an alias.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetRow {
    pub id: String,
    pub provider_id: String,
    pub provider: String,
    pub provider_enabled: bool,
    pub model: String,
    pub weight: i32,
    pub position: i32,
    pub enabled: bool,
}

/// A policy as its form shows it (every value as text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyForm {
    pub strategy: String,
    pub weight_latency: String,
    pub weight_cost: String,
    pub weight_reliability: String,
    pub weight_bandwidth: String,
    pub max_retries: String,
    pub retry_backoff_ms: String,
    pub attempt_timeout_ms: String,
    pub deadline_ms: String,
    pub fallback_enabled: bool,
    pub breaker_failure_threshold: String,
    pub breaker_error_rate: String,
    pub breaker_window_s: String,
    pub breaker_cooldown_s: String,
    /// US dollars, or empty for no budget.
    pub budget: String,
    pub budget_period: String,
    pub budget_action: String,
}

/// A route alias with its targets in order and its policy (the gateway's defaults when it has none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasRow {
    pub alias: String,
    pub targets: Vec<TargetRow>,
    pub policy: PolicyForm,
    /// `false`: no policy is stored and `policy` shows the gateway's defaults.
    pub has_policy: bool,
}

/// An option of a `<select>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub value: String,
    pub label: String,
}

/// Everything the aliases part of the routing page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasesPage {
    pub aliases: Vec<AliasRow>,
    /// Providers in routing order.
    pub providers: Vec<Choice>,
    /// Accounts by username, for the log's caller filter.
    pub users: Vec<Choice>,
    /// What a new alias's policy form starts from: the gateway's defaults.
    pub defaults: PolicyForm,
}

/// One (provider, model) that an alias targets, and how it is doing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthRow {
    pub provider: String,
    pub model: String,
    pub aliases: Vec<String>,
    /// `closed`, `open` or `half_open`.
    pub breaker: String,
    /// Attempts in the last five minutes on this instance.
    pub requests: u64,
    pub error_rate: f64,
    pub latency_p50_ms: Option<u32>,
    pub ttft_p50_ms: Option<u32>,
    /// From the newest stored minute of the last five, when there is one.
    pub latency_p95_ms: Option<i32>,
}

/// One logged request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRowView {
    pub id: String,
    /// `YYYY-MM-DD HH:MM:SS.mmm UTC`.
    pub time: String,
    /// The person's username, `API token` for a token whose owner is gone, or empty.
    pub caller: String,
    pub user_id: Option<String>,
    pub requested_model: String,
    pub alias: Option<String>,
    pub provider: Option<String>,
    pub provider_id: Option<String>,
    pub model: Option<String>,
    pub stream: bool,
    pub status: String,
    pub http_status: i32,
    pub attempts: usize,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// US dollars, e.g. `0.000123`.
    pub cost: String,
    pub error: Option<String>,
}

/// One page of the log; `next` is the cursor of the following (older) page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPageView {
    pub rows: Vec<LogRowView>,
    pub next: Option<String>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use goblin_core::routing::{AliasView, HealthView, LogRow, PolicyInput, RoutingError};

    use super::*;

    /// Sets the response status of a refusal, except for a plain form post (JavaScript off): the
    /// server answers those with a redirect back to the form's page carrying the error, for the page
    /// to show, and a status set here would replace the redirect.
    pub fn refuse(e: AppError) -> AppError {
        let form_post = use_context::<axum::http::request::Parts>().is_some_and(|p| {
            p.method == axum::http::Method::POST
                && p.headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
        });
        if form_post { e } else { e.respond() }
    }

    pub fn map_err(e: RoutingError) -> AppError {
        match e {
            RoutingError::NotFound(_) | RoutingError::UnknownAlias(_) => {
                refuse(AppError::NotFound(e.to_string()))
            }
            RoutingError::Db(e) => AppError::internal(e),
            RoutingError::Invalid(m) => refuse(AppError::Refused(m)),
        }
    }

    pub fn parse_id(id: &str) -> Result<uuid::Uuid, AppError> {
        uuid::Uuid::parse_str(id.trim()).map_err(|_| {
            refuse(AppError::NotFound(format!(
                "'{}' is not a valid id",
                id.chars().take(40).collect::<String>()
            )))
        })
    }

    pub fn confirmed(confirm: &Option<String>, what: &str) -> Result<(), AppError> {
        if confirm.is_none() {
            return Err(refuse(AppError::Refused(format!(
                "tick the box to confirm that {what} should be deleted"
            ))));
        }
        Ok(())
    }

    pub fn policy_form(p: PolicyInput) -> PolicyForm {
        PolicyForm {
            strategy: p.strategy,
            weight_latency: p.weight_latency,
            weight_cost: p.weight_cost,
            weight_reliability: p.weight_reliability,
            weight_bandwidth: p.weight_bandwidth,
            max_retries: p.max_retries,
            retry_backoff_ms: p.retry_backoff_ms,
            attempt_timeout_ms: p.attempt_timeout_ms,
            deadline_ms: p.deadline_ms,
            fallback_enabled: p.fallback_enabled,
            breaker_failure_threshold: p.breaker_failure_threshold,
            breaker_error_rate: p.breaker_error_rate,
            breaker_window_s: p.breaker_window_s,
            breaker_cooldown_s: p.breaker_cooldown_s,
            budget: p.budget,
            budget_period: p.budget_period,
            budget_action: p.budget_action,
        }
    }

    pub fn alias_row(a: AliasView, defaults: &PolicyForm) -> AliasRow {
        AliasRow {
            has_policy: a.policy.is_some(),
            policy: a
                .policy
                .as_ref()
                .map_or_else(|| defaults.clone(), |p| policy_form(PolicyInput::from_model(p))),
            targets: a
                .targets
                .into_iter()
                .map(|t| TargetRow {
                    id: t.id.to_string(),
                    provider_id: t.provider_id.to_string(),
                    provider: t.provider_name,
                    provider_enabled: t.provider_enabled,
                    model: t.model,
                    weight: t.weight,
                    position: t.position,
                    enabled: t.enabled,
                })
                .collect(),
            alias: a.alias,
        }
    }

    pub fn health_row(h: HealthView) -> HealthRow {
        use goblin_core::gateway::breaker::State;
        HealthRow {
            provider: h.provider_name,
            model: h.model,
            aliases: h.aliases,
            breaker: match h.breaker {
                State::Closed => "closed",
                State::Open => "open",
                State::HalfOpen => "half_open",
            }
            .to_string(),
            requests: h.requests,
            error_rate: h.error_rate,
            latency_p50_ms: h.latency_p50_ms,
            ttft_p50_ms: h.ttft_p50_ms,
            latency_p95_ms: h.latency_p95_ms,
        }
    }

    pub fn log_row(r: LogRow) -> LogRowView {
        let caller = match (&r.username, r.user_id, r.token_id) {
            (Some(name), _, _) => name.clone(),
            (None, _, Some(_)) => "API token".to_string(),
            _ => String::new(),
        };
        LogRowView {
            id: r.id.to_string(),
            time: r.created_at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
            caller,
            user_id: r.user_id.map(|u| u.to_string()),
            requested_model: r.requested_model,
            alias: r.route_alias,
            provider: r.provider_name,
            provider_id: r.provider_id.map(|p| p.to_string()),
            model: r.model,
            stream: r.stream,
            status: r.status,
            http_status: r.http_status,
            attempts: r.attempts,
            latency_ms: r.latency_ms,
            ttft_ms: r.ttft_ms,
            tokens_in: r.tokens_in,
            tokens_out: r.tokens_out,
            cost: goblin_core::providers::format_usd_micros(r.cost_micros),
            error: r.error,
        }
    }
}

#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::require_admin;
#[cfg(feature = "ssr")]
use ssr::*;

/// Every route alias with its targets and policy, and the choices the page's forms offer.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/routing-overview")]
pub async fn routing_overview() -> Result<AliasesPage, AppError> {
    let (state, _) = require_admin().await?;
    let o = state.routing.overview().await.map_err(map_err)?;
    let defaults = policy_form(goblin_core::routing::PolicyInput::gateway_defaults(&state.settings));
    Ok(AliasesPage {
        aliases: o.aliases.into_iter().map(|a| alias_row(a, &defaults)).collect(),
        providers: o
            .choices
            .providers
            .into_iter()
            .map(|p| Choice {
                value: p.id.to_string(),
                label: if p.enabled { p.name } else { format!("{} (disabled)", p.name) },
            })
            .collect(),
        users: o
            .choices
            .users
            .into_iter()
            .map(|u| Choice { value: u.id.to_string(), label: u.username })
            .collect(),
        defaults,
    })
}

/// Breaker state and recent numbers of every (provider, model) an alias targets.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/routing-health")]
pub async fn routing_health() -> Result<Vec<HealthRow>, AppError> {
    let (state, _) = require_admin().await?;
    let rows = state.routing.health(&state.gateway).await.map_err(map_err)?;
    Ok(rows.into_iter().map(health_row).collect())
}

/// One page of the request log, newest first. Every argument may be left out: `from` and `to` are
/// `datetime-local` values in UTC (`to` exclusive), `provider` and `user` ids, `model` the answering
/// model exactly, `status` `ok`, `error` or `cancelled`, `after` the `next` of the previous page,
/// `limit` 1 to 500 (50).
///
/// # Errors
/// Not an admin, or a filter, cursor or limit that is not valid (400, naming it).
#[server(prefix = "/fn", endpoint = "admin/routing-log")]
pub async fn routing_log(
    from: Option<String>,
    to: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    status: Option<String>,
    user: Option<String>,
    after: Option<String>,
    limit: Option<String>,
) -> Result<LogPageView, AppError> {
    use goblin_core::routing::{Cursor, LogFilter, parse_limit};
    let (state, _) = require_admin().await?;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let filter = LogFilter::parse(&s(&from), &s(&to), &s(&provider), &s(&model), &s(&status), &s(&user))
        .map_err(map_err)?;
    let after = match after.as_deref().map(str::trim).filter(|a| !a.is_empty()) {
        Some(a) => Some(Cursor::decode(a).map_err(map_err)?),
        None => None,
    };
    let limit = parse_limit(&s(&limit)).map_err(map_err)?;
    let page = state.routing.request_log(&filter, after, limit).await.map_err(map_err)?;
    Ok(LogPageView { rows: page.rows.into_iter().map(log_row).collect(), next: page.next })
}

/// Adds a target to an alias (creating the alias with its first target). An empty weight is 1; an
/// empty position puts it last.
///
/// # Errors
/// Not an admin, an unknown provider, or an invalid field.
#[server(prefix = "/fn", endpoint = "admin/routing-target-add")]
pub async fn add_route_target(
    alias: String,
    provider_id: String,
    model: String,
    weight: String,
    position: String,
) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    state
        .routing
        .add_target(Some(admin.id), &alias, parse_id(&provider_id)?, &model, &weight, &position)
        .await
        .map_err(map_err)
}

/// Changes a target's weight, position and enabled flag.
///
/// # Errors
/// Not an admin, an unknown target, or an invalid weight or position.
#[server(prefix = "/fn", endpoint = "admin/routing-target-update")]
pub async fn update_route_target(
    id: String,
    weight: String,
    position: String,
    enabled: Option<String>,
) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    state
        .routing
        .update_target(Some(admin.id), parse_id(&id)?, &weight, &position, enabled.is_some())
        .await
        .map_err(map_err)
}

/// Removes one target. `confirm` must be ticked.
///
/// # Errors
/// Not an admin, not confirmed, or an unknown target.
#[server(prefix = "/fn", endpoint = "admin/routing-target-delete")]
pub async fn delete_route_target(id: String, confirm: Option<String>) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    confirmed(&confirm, "the target")?;
    state.routing.delete_target(Some(admin.id), parse_id(&id)?).await.map_err(map_err)
}

/// Creates or replaces an alias's policy. An empty field takes its default.
///
/// # Errors
/// Not an admin, or an invalid field (400, naming the field and its rule).
#[server(prefix = "/fn", endpoint = "admin/routing-policy-save")]
pub async fn save_route_policy(
    alias: String,
    strategy: String,
    weight_latency: String,
    weight_cost: String,
    weight_reliability: String,
    weight_bandwidth: String,
    max_retries: String,
    retry_backoff_ms: String,
    attempt_timeout_ms: String,
    deadline_ms: String,
    fallback_enabled: Option<String>,
    breaker_failure_threshold: String,
    breaker_error_rate: String,
    breaker_window_s: String,
    breaker_cooldown_s: String,
    budget: String,
    budget_period: String,
    budget_action: String,
) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    let input = goblin_core::routing::PolicyInput {
        strategy,
        weight_latency,
        weight_cost,
        weight_reliability,
        weight_bandwidth,
        max_retries,
        retry_backoff_ms,
        attempt_timeout_ms,
        deadline_ms,
        fallback_enabled: fallback_enabled.is_some(),
        breaker_failure_threshold,
        breaker_error_rate,
        breaker_window_s,
        breaker_cooldown_s,
        budget,
        budget_period,
        budget_action,
    };
    state.routing.save_policy(Some(admin.id), &alias, &input).await.map_err(map_err)
}

/// Deletes an alias with its targets and policy. `confirm` must be ticked.
///
/// # Errors
/// Not an admin, not confirmed, or no alias of that name.
#[server(prefix = "/fn", endpoint = "admin/routing-alias-delete")]
pub async fn delete_route_alias(alias: String, confirm: Option<String>) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    confirmed(&confirm, "the alias, its targets and its policy")?;
    state.routing.delete_alias(Some(admin.id), &alias).await.map_err(map_err)
}
