//! Routing administration: route aliases (an alias names an ordered list of provider + model targets)
//! and their policies, the live health of every target, and the request log.
//!
//! Everything here is validated from raw form text: a bad value is an [`RoutingError::Invalid`] whose
//! message names the field and the rule, never a panic. Every change is audited (`routing.*`) and bumps
//! [`RoutingService::subscribe`]'s channel, so the gateway reloads its routing table at once.
//!
//! The request log is read newest first with keyset pagination on `(created_at, id)`: a page ends with
//! an opaque [`Cursor`], and the next page is `(created_at, id) < cursor`, which every filter's index
//! (`idx_routing_requests_*_created_id`) serves as one range read, however deep the page.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, TransactionTrait, sea_query::Expr,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    audit,
    clock::SharedClock,
    entities::{provider_metrics, provider_policies, providers, routing_providers, routing_requests, users},
    gateway::{Gateway, breaker},
    providers::is_unique_violation,
    settings::{Settings, keys as setting_keys},
};

/// How a policy orders an alias's targets.
pub const STRATEGIES: [&str; 5] = ["priority", "weighted", "latency", "cost", "score"];
/// What a budget is counted over.
pub const BUDGET_PERIODS: [&str; 3] = crate::gateway::budget::PERIODS;
/// What happens when a route's budget is spent: refuse with 429, or use only its cheapest targets.
pub const BUDGET_ACTIONS: [&str; 2] = ["refuse", "cheaper"];
/// The `score` strategy's default weights: latency, cost, reliability, bandwidth.
pub const DEFAULT_SCORE_WEIGHTS: [f64; 4] = [0.4, 0.3, 0.2, 0.1];
/// The names of the four score weights, in the order of [`DEFAULT_SCORE_WEIGHTS`].
pub const SCORE_KEYS: [&str; 4] = ["latency", "cost", "reliability", "bandwidth"];
/// How a logged request ended.
pub const STATUSES: [&str; 3] = ["ok", "error", "cancelled"];
/// The most rows one page of the request log holds.
pub const MAX_LOG_PAGE: u64 = 500;
/// Rows on a page of the request log when the caller does not say.
pub const DEFAULT_LOG_PAGE: u64 = 50;
/// Characters of a logged error shown in the log.
const ERROR_CHARS: usize = 200;
/// The window over which the health view looks for a stored p95 latency.
const HEALTH_MINUTES: i64 = 5;

/// Why a routing call failed: an unknown id or alias, invalid input (the message names the field and
/// its rule), or the database.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("no {0} with that id")]
    NotFound(&'static str),
    #[error("there is no route alias named '{0}'")]
    UnknownAlias(String),
    /// A field failed validation; the message names the field and the rule.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn invalid(msg: impl Into<String>) -> RoutingError {
    RoutingError::Invalid(msg.into())
}

/// Text of a value put back into a message: at most 40 characters.
fn shown(raw: &str) -> String {
    if raw.chars().count() <= 40 {
        raw.to_string()
    } else {
        format!("{}…", raw.chars().take(40).collect::<String>())
    }
}

/// One target of an alias, with its provider's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetView {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub provider_name: String,
    /// A disabled provider's targets are skipped by the gateway.
    pub provider_enabled: bool,
    pub model: String,
    pub weight: i32,
    pub position: i32,
    pub enabled: bool,
}

/// A route alias: its targets in order (position, then provider name) and its policy.
#[derive(Clone, Debug, PartialEq)]
pub struct AliasView {
    pub alias: String,
    pub targets: Vec<TargetView>,
    /// `None`: the gateway's defaults apply.
    pub policy: Option<provider_policies::Model>,
}

/// A provider as a filter or target form offers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderChoice {
    pub id: Uuid,
    pub name: String,
    pub enabled: bool,
}

/// A person as the request log's caller filter offers them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserChoice {
    pub id: Uuid,
    pub username: String,
}

/// What the routing page's forms offer: providers in routing order, and accounts by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choices {
    pub providers: Vec<ProviderChoice>,
    pub users: Vec<UserChoice>,
}

/// The routing page's aliases and form choices, read together.
#[derive(Clone, Debug, PartialEq)]
pub struct Overview {
    pub aliases: Vec<AliasView>,
    pub choices: Choices,
}

/// A policy as an admin fills it in: raw form text, validated by [`RoutingService::save_policy`].
/// An empty field takes the default named beside it; the four score weights are all empty (the
/// defaults 0.4 / 0.3 / 0.2 / 0.1) or all given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyInput {
    /// One of [`STRATEGIES`]; default `priority`.
    pub strategy: String,
    pub weight_latency: String,
    pub weight_cost: String,
    pub weight_reliability: String,
    pub weight_bandwidth: String,
    /// 0–10; default 1.
    pub max_retries: String,
    /// 0–60000 ms; default 100.
    pub retry_backoff_ms: String,
    /// 100–600000 ms; default 30000.
    pub attempt_timeout_ms: String,
    /// At least the attempt timeout, at most 3600000 ms; default 120000.
    pub deadline_ms: String,
    pub fallback_enabled: bool,
    /// 1–1000 consecutive failures; default 5.
    pub breaker_failure_threshold: String,
    /// 0.01–1; default 0.5.
    pub breaker_error_rate: String,
    /// 1–3600 s; default 60.
    pub breaker_window_s: String,
    /// 1–3600 s; default 30.
    pub breaker_cooldown_s: String,
    /// US dollars, or empty for no budget.
    pub budget: String,
    /// One of [`BUDGET_PERIODS`]; default `month`.
    pub budget_period: String,
    /// One of [`BUDGET_ACTIONS`]; default `refuse`.
    pub budget_action: String,
}

impl Default for PolicyInput {
    fn default() -> Self {
        Self {
            strategy: "priority".into(),
            weight_latency: DEFAULT_SCORE_WEIGHTS[0].to_string(),
            weight_cost: DEFAULT_SCORE_WEIGHTS[1].to_string(),
            weight_reliability: DEFAULT_SCORE_WEIGHTS[2].to_string(),
            weight_bandwidth: DEFAULT_SCORE_WEIGHTS[3].to_string(),
            max_retries: "1".into(),
            retry_backoff_ms: "100".into(),
            attempt_timeout_ms: "30000".into(),
            deadline_ms: "120000".into(),
            fallback_enabled: true,
            breaker_failure_threshold: "5".into(),
            breaker_error_rate: "0.5".into(),
            breaker_window_s: "60".into(),
            breaker_cooldown_s: "30".into(),
            budget: String::new(),
            budget_period: "month".into(),
            budget_action: "refuse".into(),
        }
    }
}

impl PolicyInput {
    /// What the gateway does for an alias without a policy, as form text: the default strategy and
    /// upstream timeout from the runtime settings (the deadline is twice the timeout).
    pub fn gateway_defaults(settings: &Settings) -> Self {
        let strategy = settings.text(setting_keys::GATEWAY_DEFAULT_STRATEGY);
        // The gateway treats `health` as `score`.
        let strategy = if strategy == "health" { "score".to_string() } else { strategy };
        let timeout_ms = settings.int(setting_keys::GATEWAY_UPSTREAM_TIMEOUT_SECONDS).max(1) * 1000;
        Self {
            strategy: if STRATEGIES.contains(&strategy.as_str()) { strategy } else { "priority".into() },
            attempt_timeout_ms: timeout_ms.clamp(100, 600_000).to_string(),
            deadline_ms: (timeout_ms * 2).clamp(100, 3_600_000).to_string(),
            ..Self::default()
        }
    }

    /// A stored policy as form text.
    pub fn from_model(p: &provider_policies::Model) -> Self {
        let weights = score_weights(&p.score_weights);
        Self {
            strategy: p.strategy.clone(),
            weight_latency: weights[0].to_string(),
            weight_cost: weights[1].to_string(),
            weight_reliability: weights[2].to_string(),
            weight_bandwidth: weights[3].to_string(),
            max_retries: p.max_retries.to_string(),
            retry_backoff_ms: p.retry_backoff_ms.to_string(),
            attempt_timeout_ms: p.attempt_timeout_ms.to_string(),
            deadline_ms: p.deadline_ms.to_string(),
            fallback_enabled: p.fallback_enabled,
            breaker_failure_threshold: p.breaker_failure_threshold.to_string(),
            breaker_error_rate: p.breaker_error_rate.to_string(),
            breaker_window_s: p.breaker_window_s.to_string(),
            breaker_cooldown_s: p.breaker_cooldown_s.to_string(),
            budget: p.budget_micros.map(crate::providers::format_usd_micros).unwrap_or_default(),
            budget_period: p.budget_period.clone(),
            budget_action: p.budget_action.clone(),
        }
    }
}

/// The four score weights of a stored policy (latency, cost, reliability, bandwidth); a weight that
/// is missing reads as 0, and a policy without any as the defaults.
pub fn score_weights(v: &Value) -> [f64; 4] {
    if !SCORE_KEYS.iter().any(|k| v.get(k).is_some()) {
        return DEFAULT_SCORE_WEIGHTS;
    }
    SCORE_KEYS.map(|k| v.get(k).and_then(Value::as_f64).unwrap_or(0.0))
}

/// A [`PolicyInput`] that passed validation.
struct ValidPolicy {
    strategy: String,
    weights: [f64; 4],
    max_retries: i32,
    retry_backoff_ms: i32,
    attempt_timeout_ms: i32,
    deadline_ms: i32,
    fallback_enabled: bool,
    breaker_failure_threshold: i32,
    breaker_error_rate: f64,
    breaker_window_s: i32,
    breaker_cooldown_s: i32,
    budget_micros: Option<i64>,
    budget_period: String,
    budget_action: String,
}

/// A whole number in `min..=max`; `default` when empty.
fn int_field(field: &str, raw: &str, min: i64, max: i64, default: i64) -> Result<i32, RoutingError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(default as i32);
    }
    match raw.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n as i32),
        _ => {
            Err(invalid(format!("{field}: must be a whole number from {min} to {max}; got '{}'", shown(raw))))
        }
    }
}

/// A finite number in `min..=max`; `default` when empty.
fn number_field(field: &str, raw: &str, min: f64, max: f64, default: f64) -> Result<f64, RoutingError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(default);
    }
    match raw.parse::<f64>() {
        Ok(n) if n.is_finite() && (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(format!("{field}: must be a number from {min} to {max}; got '{}'", shown(raw)))),
    }
}

/// One of `allowed`; `default` when empty.
fn choice_field(field: &str, raw: &str, allowed: &[&str], default: &str) -> Result<String, RoutingError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(default.to_string());
    }
    if allowed.contains(&raw) {
        Ok(raw.to_string())
    } else {
        Err(invalid(format!("{field}: must be one of {}; got '{}'", allowed.join(", "), shown(raw))))
    }
}

fn validate_policy(input: &PolicyInput) -> Result<ValidPolicy, RoutingError> {
    let strategy = choice_field("strategy", &input.strategy, &STRATEGIES, "priority")?;
    let raw_weights =
        [&input.weight_latency, &input.weight_cost, &input.weight_reliability, &input.weight_bandwidth];
    let weights = if raw_weights.iter().all(|w| w.trim().is_empty()) {
        DEFAULT_SCORE_WEIGHTS
    } else {
        let mut out = [0.0; 4];
        for (i, raw) in raw_weights.iter().enumerate() {
            let raw = raw.trim();
            out[i] = match raw.parse::<f64>() {
                Ok(n) if n.is_finite() && (0.0..=1.0).contains(&n) => n,
                _ => {
                    return Err(invalid(format!(
                        "score weights: the {} weight must be a number from 0 to 1; got '{}'",
                        SCORE_KEYS[i],
                        shown(raw)
                    )));
                }
            };
        }
        let sum: f64 = out.iter().sum();
        if (sum - 1.0).abs() > 0.01 + f64::EPSILON {
            return Err(invalid(format!(
                "score weights: latency, cost, reliability and bandwidth must add up to 1 (±0.01); they add up to {}",
                (sum * 1000.0).round() / 1000.0
            )));
        }
        out
    };
    let max_retries = int_field("max retries", &input.max_retries, 0, 10, 1)?;
    let retry_backoff_ms = int_field("retry backoff (ms)", &input.retry_backoff_ms, 0, 60_000, 100)?;
    let attempt_timeout_ms =
        int_field("attempt timeout (ms)", &input.attempt_timeout_ms, 100, 600_000, 30_000)?;
    let deadline_ms = int_field("deadline (ms)", &input.deadline_ms, 100, 3_600_000, 120_000)?;
    if deadline_ms < attempt_timeout_ms {
        return Err(invalid(format!(
            "deadline (ms): must be at least the attempt timeout ({attempt_timeout_ms} ms); got {deadline_ms}"
        )));
    }
    let breaker_failure_threshold =
        int_field("breaker failure threshold", &input.breaker_failure_threshold, 1, 1000, 5)?;
    let breaker_error_rate = number_field("breaker error rate", &input.breaker_error_rate, 0.01, 1.0, 0.5)?;
    let breaker_window_s = int_field("breaker window (s)", &input.breaker_window_s, 1, 3600, 60)?;
    let breaker_cooldown_s = int_field("breaker cooldown (s)", &input.breaker_cooldown_s, 1, 3600, 30)?;
    let (budget_micros, budget_period) =
        crate::gateway::budget::parse(&input.budget, &input.budget_period).map_err(invalid)?;
    let budget_action = choice_field("budget action", &input.budget_action, &BUDGET_ACTIONS, "refuse")?;
    Ok(ValidPolicy {
        strategy,
        weights,
        max_retries,
        retry_backoff_ms,
        attempt_timeout_ms,
        deadline_ms,
        fallback_enabled: input.fallback_enabled,
        breaker_failure_threshold,
        breaker_error_rate,
        breaker_window_s,
        breaker_cooldown_s,
        budget_micros,
        budget_period,
        budget_action,
    })
}

/// Checks an alias's spelling (not yet whether a provider has the name).
pub fn validate_alias(raw: &str) -> Result<String, RoutingError> {
    let alias = raw.trim();
    if alias.contains('/') {
        return Err(invalid(
            "alias: must not contain '/'; provider/model already names one provider's model directly",
        ));
    }
    if alias.is_empty() || alias.chars().count() > 64 {
        return Err(invalid("alias: must be 1 to 64 characters"));
    }
    if !alias.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')) {
        return Err(invalid(format!(
            "alias: use only lowercase letters, digits, '.', '_' and '-'; got '{}'",
            shown(alias)
        )));
    }
    Ok(alias.to_string())
}

fn validate_model(raw: &str) -> Result<String, RoutingError> {
    let model = raw.trim();
    if model.is_empty()
        || model.chars().count() > 128
        || model.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid("model: must be 1 to 128 characters without spaces, as the provider names it"));
    }
    Ok(model.to_string())
}

fn validate_weight(raw: &str, default: i32) -> Result<i32, RoutingError> {
    int_field("weight", raw, 1, 1000, i64::from(default))
}

fn validate_position(raw: &str, default: i32) -> Result<i32, RoutingError> {
    int_field("position", raw, 0, 10_000, i64::from(default))
}

// ---- the request log ----

/// Which requests the log shows. Times are UTC; `from` is inclusive, `to` exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub provider_id: Option<Uuid>,
    /// The model that answered, exactly as logged.
    pub model: Option<String>,
    /// One of [`STATUSES`].
    pub status: Option<String>,
    pub user_id: Option<Uuid>,
}

/// A `datetime-local` form value (`2026-11-29T13:45`, seconds optional), read as UTC.
fn parse_local_time(field: &str, raw: &str) -> Result<Option<DateTime<Utc>>, RoutingError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            invalid(format!(
                "{field}: must be a date and time such as 2026-11-29T13:45 (UTC); got '{}'",
                shown(raw)
            ))
        })
}

fn parse_optional_id(field: &str, raw: &str) -> Result<Option<Uuid>, RoutingError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    Uuid::parse_str(raw)
        .map(Some)
        .map_err(|_| invalid(format!("{field}: not a valid id; got '{}'", shown(raw))))
}

impl LogFilter {
    /// Reads the log's filter form (every field may be empty).
    ///
    /// # Errors
    /// A time that is not a `datetime-local` value, `to` not after `from`, an id that is not a UUID, a
    /// model longer than 128 characters, or an unknown status.
    pub fn parse(
        from: &str,
        to: &str,
        provider: &str,
        model: &str,
        status: &str,
        user: &str,
    ) -> Result<Self, RoutingError> {
        let from = parse_local_time("from", from)?;
        let to = parse_local_time("to", to)?;
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            return Err(invalid("to: must be later than from"));
        }
        let model = model.trim();
        if model.chars().count() > 128 {
            return Err(invalid("model: at most 128 characters"));
        }
        let status = status.trim();
        if !status.is_empty() && !STATUSES.contains(&status) {
            return Err(invalid(format!(
                "status: must be one of {}; got '{}'",
                STATUSES.join(", "),
                shown(status)
            )));
        }
        Ok(Self {
            from,
            to,
            provider_id: parse_optional_id("provider", provider)?,
            model: (!model.is_empty()).then(|| model.to_string()),
            status: (!status.is_empty()).then(|| status.to_string()),
            user_id: parse_optional_id("user", user)?,
        })
    }
}

/// Rows on a page: 1 to [`MAX_LOG_PAGE`], [`DEFAULT_LOG_PAGE`] when empty.
///
/// # Errors
/// Anything else.
pub fn parse_limit(raw: &str) -> Result<u64, RoutingError> {
    int_field("limit", raw, 1, MAX_LOG_PAGE as i64, DEFAULT_LOG_PAGE as i64).map(|n| n as u64)
}

/// Where a page of the log ends: the last row's `(created_at, id)`. The next page holds the rows
/// strictly before it in the order `(created_at, id)` descending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// An opaque, URL-safe string ([`crate::keyset::encode`]).
    pub fn encode(&self) -> String {
        crate::keyset::encode(self.created_at, self.id)
    }

    /// Reads a string made by [`Cursor::encode`].
    ///
    /// # Errors
    /// [`RoutingError::Invalid`] naming the cursor, for anything else.
    pub fn decode(raw: &str) -> Result<Self, RoutingError> {
        crate::keyset::decode(raw).map(|(created_at, id)| Self { created_at, id }).ok_or_else(|| {
            invalid("cursor: not a page link of the request log; start again from the newest page")
        })
    }
}

/// One logged request, as the log shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRow {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub user_id: Option<Uuid>,
    /// The caller's username, when the caller was a person (or their token) still on file.
    pub username: Option<String>,
    pub token_id: Option<Uuid>,
    pub requested_model: String,
    pub route_alias: Option<String>,
    pub provider_id: Option<Uuid>,
    /// The answering provider's name, when it still exists.
    pub provider_name: Option<String>,
    pub model: Option<String>,
    pub stream: bool,
    pub status: String,
    pub http_status: i32,
    /// Targets tried (skipped ones included).
    pub attempts: usize,
    pub latency_ms: i32,
    pub ttft_ms: Option<i32>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
    /// At most 200 characters.
    pub error: Option<String>,
}

/// One page of the log, newest first; `next` is the cursor of the following page, if there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPage {
    pub rows: Vec<LogRow>,
    pub next: Option<String>,
}

// ---- live health ----

/// One (provider, model) that an alias targets, and how it is doing on this instance.
#[derive(Clone, Debug, PartialEq)]
pub struct HealthView {
    pub provider_id: Uuid,
    pub provider_name: String,
    pub model: String,
    /// The aliases that target it.
    pub aliases: Vec<String>,
    pub breaker: breaker::State,
    /// Requests (attempts) of the last five minutes, from this instance's memory.
    pub requests: u64,
    pub error_rate: f64,
    pub latency_p50_ms: Option<u32>,
    pub ttft_p50_ms: Option<u32>,
    /// From the newest stored per-minute rollup of the last five minutes (every instance's).
    pub latency_p95_ms: Option<i32>,
}

/// Route aliases, their policies, health and the request log. Shared as `Arc`.
pub struct RoutingService {
    db: DatabaseConnection,
    clock: SharedClock,
    /// Bumped after every change, so the gateway reloads its routing table at once.
    changes: tokio::sync::watch::Sender<u64>,
}

impl RoutingService {
    /// A service over `db`; `clock` dates changes and the health window.
    pub fn new(db: DatabaseConnection, clock: SharedClock) -> Self {
        Self { db, clock, changes: tokio::sync::watch::Sender::new(0) }
    }

    /// Notified after every change to aliases, targets or policies.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every change is audited, so this is also where the gateway hears of it.
    async fn audit(
        &self,
        actor: Option<Uuid>,
        action: &str,
        alias: &str,
        detail: Value,
    ) -> Result<(), DbErr> {
        self.changes.send_modify(|v| *v += 1);
        audit::record(
            &self.db,
            self.clock.as_ref(),
            audit::Event {
                actor,
                action,
                target: Some(alias.to_string()),
                success: true,
                detail,
                ..Default::default()
            },
        )
        .await
    }

    /// An alias that is well formed and not a provider's name (compared without case).
    async fn checked_alias(&self, raw: &str) -> Result<String, RoutingError> {
        let alias = validate_alias(raw)?;
        let clash = providers::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .any(|p| p.name.to_lowercase() == alias);
        if clash {
            return Err(invalid(format!(
                "alias: '{alias}' is the name of a provider; pick a name no provider has"
            )));
        }
        Ok(alias)
    }

    async fn target(&self, id: Uuid) -> Result<routing_providers::Model, RoutingError> {
        routing_providers::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(RoutingError::NotFound("route target"))
    }

    /// Every alias (from its targets or its policy), by name, with its targets in order.
    ///
    /// # Errors
    /// A database error.
    pub async fn aliases(&self) -> Result<Vec<AliasView>, RoutingError> {
        let names: HashMap<Uuid, (String, bool)> = providers::Entity::find()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|p| (p.id, (p.name, p.enabled)))
            .collect();
        let mut out: BTreeMap<String, AliasView> = BTreeMap::new();
        for t in routing_providers::Entity::find()
            .order_by_asc(routing_providers::Column::Alias)
            .order_by_asc(routing_providers::Column::Position)
            .all(&self.db)
            .await?
        {
            let (provider_name, provider_enabled) = names.get(&t.provider_id).cloned().unwrap_or_default();
            out.entry(t.alias.clone())
                .or_insert_with(|| AliasView { alias: t.alias.clone(), targets: Vec::new(), policy: None })
                .targets
                .push(TargetView {
                    id: t.id,
                    provider_id: t.provider_id,
                    provider_name,
                    provider_enabled,
                    model: t.model,
                    weight: t.weight,
                    position: t.position,
                    enabled: t.enabled,
                });
        }
        for p in provider_policies::Entity::find().all(&self.db).await? {
            let alias = p.route_alias.clone();
            out.entry(alias.clone())
                .or_insert_with(|| AliasView { alias, targets: Vec::new(), policy: None })
                .policy = Some(p);
        }
        let mut list: Vec<AliasView> = out.into_values().collect();
        for a in &mut list {
            a.targets.sort_by(|x, y| {
                (x.position, &x.provider_name, &x.model).cmp(&(y.position, &y.provider_name, &y.model))
            });
        }
        Ok(list)
    }

    /// Providers (routing order) and accounts (by username) for the page's forms.
    ///
    /// # Errors
    /// A database error.
    pub async fn choices(&self) -> Result<Choices, RoutingError> {
        let providers = providers::Entity::find()
            .order_by_asc(providers::Column::Priority)
            .order_by_asc(providers::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|p| ProviderChoice { id: p.id, name: p.name, enabled: p.enabled })
            .collect();
        let users = users::Entity::find()
            .order_by_asc(users::Column::Username)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|u| UserChoice { id: u.id, username: u.username })
            .collect();
        Ok(Choices { providers, users })
    }

    /// [`RoutingService::aliases`] and [`RoutingService::choices`] together, for the routing page.
    ///
    /// # Errors
    /// A database error.
    pub async fn overview(&self) -> Result<Overview, RoutingError> {
        Ok(Overview { aliases: self.aliases().await?, choices: self.choices().await? })
    }

    /// Adds a target to an alias, creating the alias with its first target. An empty weight is 1; an
    /// empty position puts the target after the alias's last one.
    ///
    /// # Errors
    /// An invalid alias, model, weight or position; an unknown provider; the same provider and model
    /// already a target of the alias; or a database error.
    pub async fn add_target(
        &self,
        actor: Option<Uuid>,
        alias: &str,
        provider_id: Uuid,
        model: &str,
        weight: &str,
        position: &str,
    ) -> Result<(), RoutingError> {
        let alias = self.checked_alias(alias).await?;
        let provider = providers::Entity::find_by_id(provider_id)
            .one(&self.db)
            .await?
            .ok_or(RoutingError::NotFound("provider"))?;
        let model = validate_model(model)?;
        let weight = validate_weight(weight, 1)?;
        let existing = routing_providers::Entity::find()
            .filter(routing_providers::Column::Alias.eq(&alias))
            .all(&self.db)
            .await?;
        let next = existing.iter().map(|t| t.position + 10).max().unwrap_or(0).min(10_000);
        let position = validate_position(position, next)?;
        let taken =
            || invalid(format!("target: {} / {model} is already a target of '{alias}'", provider.name));
        if existing.iter().any(|t| t.provider_id == provider_id && t.model == model) {
            return Err(taken());
        }
        let now = self.clock.now();
        let id = Uuid::new_v4();
        routing_providers::ActiveModel {
            id: Set(id),
            alias: Set(alias.clone()),
            provider_id: Set(provider_id),
            model: Set(model.clone()),
            weight: Set(weight),
            position: Set(position),
            enabled: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .map_err(|e| if is_unique_violation(&e) { taken() } else { e.into() })?;
        self.audit(
            actor,
            "routing.target_added",
            &alias,
            json!({ "target": id, "provider": provider.name, "model": model, "weight": weight, "position": position }),
        )
        .await?;
        Ok(())
    }

    /// Changes a target's weight, position and enabled flag. An empty weight or position keeps the
    /// current value.
    ///
    /// # Errors
    /// An unknown target, an invalid weight or position, or a database error.
    pub async fn update_target(
        &self,
        actor: Option<Uuid>,
        id: Uuid,
        weight: &str,
        position: &str,
        enabled: bool,
    ) -> Result<(), RoutingError> {
        let current = self.target(id).await?;
        let weight = validate_weight(weight, current.weight)?;
        let position = validate_position(position, current.position)?;
        let alias = current.alias.clone();
        let model = current.model.clone();
        let mut row = current.into_active_model();
        row.weight = Set(weight);
        row.position = Set(position);
        row.enabled = Set(enabled);
        row.updated_at = Set(self.clock.now());
        row.update(&self.db).await?;
        self.audit(
            actor,
            "routing.target_updated",
            &alias,
            json!({ "target": id, "model": model, "weight": weight, "position": position, "enabled": enabled }),
        )
        .await?;
        Ok(())
    }

    /// Removes one target. The alias's policy stays until the alias is deleted.
    ///
    /// # Errors
    /// An unknown target, or a database error.
    pub async fn delete_target(&self, actor: Option<Uuid>, id: Uuid) -> Result<(), RoutingError> {
        let t = self.target(id).await?;
        routing_providers::Entity::delete_by_id(id).exec(&self.db).await?;
        self.audit(actor, "routing.target_deleted", &t.alias, json!({ "target": id, "model": t.model }))
            .await?;
        Ok(())
    }

    /// Creates or replaces an alias's policy.
    ///
    /// # Errors
    /// An invalid alias or field (the message names it and its rule), or a database error.
    pub async fn save_policy(
        &self,
        actor: Option<Uuid>,
        alias: &str,
        input: &PolicyInput,
    ) -> Result<(), RoutingError> {
        let alias = self.checked_alias(alias).await?;
        let v = validate_policy(input)?;
        let weights: serde_json::Map<String, Value> =
            SCORE_KEYS.iter().zip(v.weights).map(|(k, w)| ((*k).to_string(), json!(w))).collect();
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        let current = provider_policies::Entity::find()
            .filter(provider_policies::Column::RouteAlias.eq(&alias))
            .one(&txn)
            .await?;
        let created = current.is_none();
        let mut row = match current {
            Some(p) => p.into_active_model(),
            None => provider_policies::ActiveModel {
                id: Set(Uuid::new_v4()),
                route_alias: Set(alias.clone()),
                created_at: Set(now),
                ..Default::default()
            },
        };
        row.strategy = Set(v.strategy.clone());
        row.score_weights = Set(Value::Object(weights));
        row.max_retries = Set(v.max_retries);
        row.retry_backoff_ms = Set(v.retry_backoff_ms);
        row.attempt_timeout_ms = Set(v.attempt_timeout_ms);
        row.deadline_ms = Set(v.deadline_ms);
        row.fallback_enabled = Set(v.fallback_enabled);
        row.breaker_failure_threshold = Set(v.breaker_failure_threshold);
        row.breaker_error_rate = Set(v.breaker_error_rate);
        row.breaker_window_s = Set(v.breaker_window_s);
        row.breaker_cooldown_s = Set(v.breaker_cooldown_s);
        row.budget_micros = Set(v.budget_micros);
        row.budget_period = Set(v.budget_period.clone());
        row.budget_action = Set(v.budget_action.clone());
        row.updated_at = Set(now);
        if created {
            row.insert(&txn).await?;
        } else {
            row.update(&txn).await?;
        }
        txn.commit().await?;
        self.audit(
            actor,
            "routing.policy_saved",
            &alias,
            json!({
                "strategy": v.strategy,
                "created": created,
                "max_retries": v.max_retries,
                "attempt_timeout_ms": v.attempt_timeout_ms,
                "deadline_ms": v.deadline_ms,
                "fallback_enabled": v.fallback_enabled,
                "budget_micros": v.budget_micros,
            }),
        )
        .await?;
        Ok(())
    }

    /// Deletes an alias: its targets and its policy.
    ///
    /// # Errors
    /// No alias of that name, or a database error.
    pub async fn delete_alias(&self, actor: Option<Uuid>, alias: &str) -> Result<(), RoutingError> {
        let alias = alias.trim();
        let txn = self.db.begin().await?;
        let targets = routing_providers::Entity::delete_many()
            .filter(routing_providers::Column::Alias.eq(alias))
            .exec(&txn)
            .await?
            .rows_affected;
        let policies = provider_policies::Entity::delete_many()
            .filter(provider_policies::Column::RouteAlias.eq(alias))
            .exec(&txn)
            .await?
            .rows_affected;
        if targets == 0 && policies == 0 {
            return Err(RoutingError::UnknownAlias(shown(alias)));
        }
        txn.commit().await?;
        self.audit(
            actor,
            "routing.alias_deleted",
            alias,
            json!({ "targets": targets, "policy": policies > 0 }),
        )
        .await?;
        Ok(())
    }

    /// Every (provider, model) that an alias targets, with its breaker state and recent numbers.
    ///
    /// # Errors
    /// A database error.
    pub async fn health(&self, gateway: &Gateway) -> Result<Vec<HealthView>, RoutingError> {
        let mut pairs: BTreeMap<(Uuid, String), BTreeSet<String>> = BTreeMap::new();
        for t in routing_providers::Entity::find().all(&self.db).await? {
            pairs.entry((t.provider_id, t.model)).or_default().insert(t.alias);
        }
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let ids: BTreeSet<Uuid> = pairs.keys().map(|(p, _)| *p).collect();
        let names: HashMap<Uuid, String> = providers::Entity::find()
            .filter(providers::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|p| (p.id, p.name))
            .collect();
        let since = self.clock.now() - Duration::minutes(HEALTH_MINUTES);
        let mut p95: HashMap<(Uuid, String), Option<i32>> = HashMap::new();
        for m in provider_metrics::Entity::find()
            .filter(provider_metrics::Column::ProviderId.is_in(ids.iter().copied()))
            .filter(provider_metrics::Column::Minute.gte(since))
            .order_by_desc(provider_metrics::Column::Minute)
            .all(&self.db)
            .await?
        {
            p95.entry((m.provider_id, m.model)).or_insert(m.latency_p95_ms);
        }
        let mut out: Vec<HealthView> = pairs
            .into_iter()
            .map(|((provider_id, model), aliases)| {
                let recent = gateway.records().recent(provider_id, &model);
                HealthView {
                    provider_id,
                    provider_name: names.get(&provider_id).cloned().unwrap_or_default(),
                    breaker: gateway.breaker_state(provider_id, &model),
                    latency_p95_ms: p95.get(&(provider_id, model.clone())).copied().flatten(),
                    model,
                    aliases: aliases.into_iter().collect(),
                    requests: recent.requests,
                    error_rate: recent.error_rate,
                    latency_p50_ms: recent.latency_p50_ms,
                    ttft_p50_ms: recent.ttft_p50_ms,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.provider_name, &a.model).cmp(&(&b.provider_name, &b.model)));
        Ok(out)
    }

    /// One page of the request log, newest first: rows matching `filter` strictly before `after`
    /// (when given), at most `limit` (1 to [`MAX_LOG_PAGE`]).
    ///
    /// # Errors
    /// A database error.
    pub async fn request_log(
        &self,
        filter: &LogFilter,
        after: Option<Cursor>,
        limit: u64,
    ) -> Result<LogPage, RoutingError> {
        use routing_requests::Column as C;
        use sea_orm::sea_query::ExprTrait as _;
        let limit = limit.clamp(1, MAX_LOG_PAGE);
        let mut q = routing_requests::Entity::find();
        if let Some(from) = filter.from {
            q = q.filter(C::CreatedAt.gte(from));
        }
        if let Some(to) = filter.to {
            q = q.filter(C::CreatedAt.lt(to));
        }
        if let Some(p) = filter.provider_id {
            q = q.filter(C::ProviderId.eq(p));
        }
        if let Some(m) = &filter.model {
            q = q.filter(C::Model.eq(m.as_str()));
        }
        if let Some(s) = &filter.status {
            q = q.filter(C::Status.eq(s.as_str()));
        }
        if let Some(u) = filter.user_id {
            q = q.filter(C::UserId.eq(u));
        }
        if let Some(c) = after {
            // A row comparison: one index range on (…, created_at, id), however deep the page.
            q = q.filter(
                Expr::tuple([
                    Expr::col((routing_requests::Entity, C::CreatedAt)),
                    Expr::col((routing_requests::Entity, C::Id)),
                ])
                .lt(Expr::tuple([Expr::value(c.created_at), Expr::value(c.id)])),
            );
        }
        let mut rows =
            q.order_by_desc(C::CreatedAt).order_by_desc(C::Id).limit(limit + 1).all(&self.db).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next = more
            .then(|| rows.last().map(|r| Cursor { created_at: r.created_at, id: r.id }.encode()))
            .flatten();

        let user_ids: BTreeSet<Uuid> = rows.iter().filter_map(|r| r.user_id).collect();
        let usernames: HashMap<Uuid, String> = if user_ids.is_empty() {
            HashMap::new()
        } else {
            users::Entity::find()
                .filter(users::Column::Id.is_in(user_ids))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|u| (u.id, u.username))
                .collect()
        };
        let provider_ids: BTreeSet<Uuid> = rows.iter().filter_map(|r| r.provider_id).collect();
        let provider_names: HashMap<Uuid, String> = if provider_ids.is_empty() {
            HashMap::new()
        } else {
            providers::Entity::find()
                .filter(providers::Column::Id.is_in(provider_ids))
                .all(&self.db)
                .await?
                .into_iter()
                .map(|p| (p.id, p.name))
                .collect()
        };
        let rows = rows
            .into_iter()
            .map(|r| LogRow {
                id: r.id,
                created_at: r.created_at,
                user_id: r.user_id,
                username: r.user_id.and_then(|u| usernames.get(&u).cloned()),
                token_id: r.token_id,
                requested_model: r.requested_model,
                route_alias: r.route_alias,
                provider_id: r.provider_id,
                provider_name: r.provider_id.and_then(|p| provider_names.get(&p).cloned()),
                model: r.model,
                stream: r.stream,
                status: r.status,
                http_status: r.http_status,
                attempts: r.attempts.as_array().map_or(0, Vec::len),
                latency_ms: r.latency_ms,
                ttft_ms: r.ttft_ms,
                tokens_in: r.tokens_in,
                tokens_out: r.tokens_out,
                cost_micros: r.cost_micros,
                error: r.error.map(|e| {
                    if e.chars().count() <= ERROR_CHARS {
                        e
                    } else {
                        format!("{}…", e.chars().take(ERROR_CHARS).collect::<String>())
                    }
                }),
            })
            .collect();
        Ok(LogPage { rows, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PolicyInput {
        PolicyInput::default()
    }

    fn refused(input: PolicyInput) -> String {
        match validate_policy(&input) {
            Err(RoutingError::Invalid(m)) => m,
            Err(e) => panic!("not a validation error: {e}"),
            Ok(_) => panic!("accepted: {input:?}"),
        }
    }

    #[test]
    fn aliases_are_lowercase_names_without_a_slash() {
        for ok in ["chat-fast", "a", "gpt-4o.mini_v2", &"x".repeat(64)] {
            assert_eq!(validate_alias(ok).unwrap(), ok);
        }
        assert!(validate_alias("openai/gpt-4o").unwrap_err().to_string().contains("must not contain '/'"));
        assert!(validate_alias("").unwrap_err().to_string().contains("1 to 64"));
        assert!(validate_alias(&"x".repeat(65)).unwrap_err().to_string().contains("1 to 64"));
        for bad in ["Chat", "chat fast", "chät", "chat:fast"] {
            assert!(validate_alias(bad).unwrap_err().to_string().starts_with("alias: use only"), "{bad}");
        }
    }

    #[test]
    fn defaults_are_valid_and_every_rule_names_its_field() {
        let v = validate_policy(&policy()).unwrap();
        assert_eq!(v.weights, DEFAULT_SCORE_WEIGHTS);
        let empty = PolicyInput {
            strategy: String::new(),
            weight_latency: String::new(),
            weight_cost: String::new(),
            weight_reliability: String::new(),
            weight_bandwidth: String::new(),
            max_retries: String::new(),
            retry_backoff_ms: String::new(),
            attempt_timeout_ms: String::new(),
            deadline_ms: String::new(),
            fallback_enabled: false,
            breaker_failure_threshold: String::new(),
            breaker_error_rate: String::new(),
            breaker_window_s: String::new(),
            breaker_cooldown_s: String::new(),
            budget: String::new(),
            budget_period: String::new(),
            budget_action: String::new(),
        };
        let v = validate_policy(&empty).unwrap();
        assert_eq!((v.strategy.as_str(), v.max_retries, v.deadline_ms), ("priority", 1, 120_000));
        assert_eq!(v.budget_micros, None);

        let cases: Vec<(PolicyInput, &str)> = vec![
            (PolicyInput { strategy: "random".into(), ..policy() }, "strategy: must be one of"),
            (
                PolicyInput { weight_cost: "1.5".into(), ..policy() },
                "the cost weight must be a number from 0 to 1",
            ),
            (PolicyInput { weight_latency: "0.5".into(), ..policy() }, "must add up to 1"),
            (PolicyInput { weight_bandwidth: String::new(), ..policy() }, "the bandwidth weight"),
            (
                PolicyInput { max_retries: "11".into(), ..policy() },
                "max retries: must be a whole number from 0 to 10",
            ),
            (PolicyInput { retry_backoff_ms: "-1".into(), ..policy() }, "retry backoff (ms)"),
            (PolicyInput { attempt_timeout_ms: "99".into(), ..policy() }, "attempt timeout (ms)"),
            (
                PolicyInput { deadline_ms: "3600001".into(), ..policy() },
                "deadline (ms): must be a whole number",
            ),
            (
                PolicyInput { attempt_timeout_ms: "60000".into(), deadline_ms: "59999".into(), ..policy() },
                "deadline (ms): must be at least the attempt timeout",
            ),
            (PolicyInput { breaker_failure_threshold: "0".into(), ..policy() }, "breaker failure threshold"),
            (PolicyInput { breaker_error_rate: "0.001".into(), ..policy() }, "breaker error rate"),
            (PolicyInput { breaker_error_rate: "NaN".into(), ..policy() }, "breaker error rate"),
            (PolicyInput { breaker_window_s: "3601".into(), ..policy() }, "breaker window (s)"),
            (PolicyInput { breaker_cooldown_s: "0".into(), ..policy() }, "breaker cooldown (s)"),
            (PolicyInput { budget: "ten".into(), ..policy() }, "budget: must be an amount of US dollars"),
            (PolicyInput { budget: "0".into(), ..policy() }, "budget: must be more than 0"),
            (
                PolicyInput { budget_period: "year".into(), ..policy() },
                "budget period: must be one of day, week, month",
            ),
            (
                PolicyInput { budget_action: "warn".into(), ..policy() },
                "budget action: must be one of refuse, cheaper",
            ),
        ];
        for (input, says) in cases {
            let m = refused(input);
            assert!(m.contains(says), "{m:?} should say {says:?}");
        }
        let v = validate_policy(&PolicyInput {
            weight_latency: "0.25".into(),
            weight_cost: "0.25".into(),
            weight_reliability: "0.25".into(),
            weight_bandwidth: "0.255".into(),
            budget: "12.50".into(),
            ..policy()
        })
        .unwrap();
        assert_eq!(v.budget_micros, Some(12_500_000));
    }

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        let c = Cursor {
            created_at: DateTime::from_timestamp(1_800_000_000, 123_456_789).unwrap(),
            id: Uuid::new_v4(),
        };
        let s = c.encode();
        assert!(s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'), "{s}");
        assert_eq!(Cursor::decode(&s).unwrap(), c);
        for bad in ["", "abc", "!!!!", &s[..s.len() - 2], &format!("{s}AA")] {
            assert!(Cursor::decode(bad).unwrap_err().to_string().starts_with("cursor:"), "{bad}");
        }
    }

    #[test]
    fn log_filters_parse_form_values() {
        let f =
            LogFilter::parse("2026-11-29T13:45", "2026-11-29T14:00:30", "", " gpt-4o ", "error", "").unwrap();
        assert_eq!(f.from.unwrap().to_rfc3339(), "2026-11-29T13:45:00+00:00");
        assert_eq!(f.to.unwrap().to_rfc3339(), "2026-11-29T14:00:30+00:00");
        assert_eq!((f.model.as_deref(), f.status.as_deref()), (Some("gpt-4o"), Some("error")));
        assert_eq!(LogFilter::parse("", "", "", "", "", "").unwrap(), LogFilter::default());
        let e = |r: Result<LogFilter, RoutingError>| r.unwrap_err().to_string();
        assert!(e(LogFilter::parse("yesterday", "", "", "", "", "")).starts_with("from:"));
        assert!(
            e(LogFilter::parse("2026-11-29T13:45", "2026-11-29T13:00", "", "", "", "")).starts_with("to:")
        );
        assert!(e(LogFilter::parse("", "", "x", "", "", "")).starts_with("provider:"));
        assert!(e(LogFilter::parse("", "", "", "", "fine", "")).starts_with("status:"));
        assert!(e(LogFilter::parse("", "", "", "", "", "nobody")).starts_with("user:"));
        assert_eq!(parse_limit("").unwrap(), DEFAULT_LOG_PAGE);
        assert!(parse_limit("501").unwrap_err().to_string().starts_with("limit:"));
    }
}
