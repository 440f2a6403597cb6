//! The LLM gateway: OpenAI-compatible chat completions (plain and streamed), model listing, routing
//! across providers with retries, failover and circuit breakers, and a record of every request.
//!
//! ```text
//! client ──► Gateway::chat / chat_stream
//!              │ plan: alias | provider/model | bare model ──► ordered targets (policy strategy)
//!              │ for each target (breaker permitting), up to 1 + retries attempts:
//!              │     adapter: openai-like pass-through | Anthropic | Gemini (translate.rs)
//!              │     429 / 5xx / timeout / connection error ──► next attempt or target
//!              │     other 4xx (the request's own fault) ──► returned to the client as is
//!              └─► records.rs (bounded channel, batched writer) — never on the request's path
//! ```
//!
//! Streams commit to a target when its first chunk arrives: before that a failure moves on to the next
//! target unseen by the client; after it, a failure ends the stream with an explicit error event, never
//! a clean end after a truncated answer. A client that goes away drops the stream, which cancels the
//! upstream request.

pub mod breaker;
pub mod budget;
pub mod plan;
pub mod records;
pub mod stream_text;
pub mod tokenize;
pub mod translate;

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    clock::SharedClock,
    crypto::Keyring,
    entities::provider_credentials,
    providers::{ProviderKind, kinds},
    redis_store::RedisHandle,
    settings::{Settings, keys as setting_keys},
};
use breaker::{Admit, Breakers, Change, Rules};
use budget::{Limit, Period, Spend, Subject};
use plan::{Table, Target};
use records::{Attempt, Outcome, Records, RequestRecord};
use translate::{ChunkTranslator, SseParser, TranslateError, Usage};

/// An OpenAI-compatible request body as sent on: the client's own, with `model` set to the target's
/// and, for a stream, `stream_options.include_usage` on.
struct PassThroughBody<'a> {
    body: &'a Value,
    model: &'a str,
    stream: bool,
}

impl serde::Serialize for PassThroughBody<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(fields) = self.body.as_object() else { return self.body.serialize(serializer) };
        let mut map = serializer.serialize_map(None)?;
        let mut has_model = false;
        for (name, value) in fields {
            match name.as_str() {
                "model" => {
                    has_model = true;
                    map.serialize_entry(name, self.model)?;
                }
                "stream_options" if self.stream => {}
                _ => map.serialize_entry(name, value)?,
            }
        }
        if !has_model {
            map.serialize_entry("model", self.model)?;
        }
        if self.stream {
            map.serialize_entry("stream_options", &json!({ "include_usage": true }))?;
        }
        map.end()
    }
}

/// A non-streamed chat answer: built by translating a provider's own format, or an
/// OpenAI-compatible provider's JSON text passed on as it came.
enum Answer {
    Translated(Value),
    Passed(Bytes),
}

/// Who is calling: an API token's owner, or a signed-in person.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller {
    pub user_id: Option<Uuid>,
    pub token_id: Option<Uuid>,
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with `status`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GatewayError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl GatewayError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self { status: 400, kind: "invalid_request_error", message: message.into(), param, code: None }
    }

    fn model_not_found(model: &str) -> Self {
        Self {
            status: 404,
            kind: "invalid_request_error",
            message: format!(
                "The model '{}' does not exist or no enabled provider serves it; GET /v1/models lists the names you can use.",
                model.chars().take(200).collect::<String>()
            ),
            param: Some("model"),
            code: Some("model_not_found"),
        }
    }

    fn budget(message: String) -> Self {
        Self { status: 429, kind: "insufficient_quota", message, param: None, code: Some("budget_exceeded") }
    }

    fn upstream(status: u16, message: String) -> Self {
        let (kind, code) = match status {
            429 => ("rate_limit_error", Some("rate_limit_exceeded")),
            504 => ("timeout_error", Some("upstream_timeout")),
            _ => ("api_error", Some("upstream_error")),
        };
        Self { status, kind, message, param: None, code }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({ "error": { "message": self.message, "type": self.kind, "param": self.param, "code": self.code } })
    }
}

/// How one request is routed: from the alias's policy, or the defaults from settings.
#[derive(Clone, Debug)]
pub struct Policy {
    pub strategy: String,
    pub weights: Value,
    pub max_retries: u32,
    pub backoff: Duration,
    pub attempt_timeout: Duration,
    pub deadline: Duration,
    pub fallback: bool,
    pub breaker: Rules,
    pub budget: Option<RouteBudget>,
}

/// A route's budget, from its policy.
#[derive(Clone, Debug)]
pub struct RouteBudget {
    pub subject: Subject,
    pub limit: Limit,
    /// When spent: route to the cheapest targets (true) or refuse (false).
    pub cheaper: bool,
}

/// What went wrong with one attempt.
#[derive(Debug)]
enum Failure {
    /// Worth another attempt or target: 429, 5xx, 401/403/404 from the provider's side, timeouts,
    /// connection errors, unreadable answers.
    Retry { status: Option<u16>, message: String },
    /// The request itself is at fault (another 4xx): the client gets it back.
    Client { status: u16, message: String },
}

impl Failure {
    fn status(&self) -> Option<u16> {
        match self {
            Failure::Retry { status, .. } => *status,
            Failure::Client { status, .. } => Some(*status),
        }
    }
    fn message(&self) -> &str {
        match self {
            Failure::Retry { message, .. } | Failure::Client { message, .. } => message,
        }
    }
}

/// A streamed answer: SSE bytes (`data: {...}\n\n` ... `data: [DONE]\n\n`).
pub type ChatStream = mpsc::Receiver<Bytes>;

/// How a streamed answer ended, for callers that keep their own record of it (the chat page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOutcome {
    pub provider_id: Uuid,
    pub provider_name: String,
    pub model: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_micros: i64,
    /// `ok`, `error` or `cancelled`.
    pub status: &'static str,
    /// Why it failed, when it did (already redacted).
    pub error: Option<String>,
}

pub struct Gateway {
    db: DatabaseConnection,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    settings: Arc<Settings>,
    records: Arc<Records>,
    http: reqwest::Client,
    table: RwLock<Arc<Table>>,
    breakers: Breakers,
    shared_breakers: Option<Arc<breaker::Shared>>,
    spend: Arc<Spend>,
    /// When each provider key was last picked, written to `provider_credentials` now and then.
    key_use: std::sync::Mutex<std::collections::HashMap<Uuid, chrono::DateTime<Utc>>>,
    round_robin: AtomicUsize,
}

fn now_unix() -> i64 {
    Utc::now().timestamp()
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Gateway {
    /// Loads the routing table once; call [`Gateway::spawn_reloader`] to keep it fresh and
    /// [`Gateway::spawn_housekeeping`] to share state and write key use. With `redis`, circuit
    /// breakers and budget spend are shared with the other instances.
    ///
    /// # Errors
    /// A database error.
    pub async fn new(
        db: DatabaseConnection,
        keyring: Arc<Keyring>,
        clock: SharedClock,
        settings: Arc<Settings>,
        records: Arc<Records>,
        redis: Option<Arc<RedisHandle>>,
    ) -> Result<Arc<Self>, DbErr> {
        let table = Table::load(&db, &keyring).await?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            // The gateway retries and fails over itself (`run`); the client's own retry of refused
            // HTTP/2 streams would also copy every request's headers in case it needs them.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .user_agent(concat!("goblin-assistant/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Ok(Arc::new(Self {
            spend: Spend::new(db.clone(), redis.clone()),
            shared_breakers: redis.map(|r| Arc::new(breaker::Shared::new(r))),
            db,
            keyring,
            clock,
            settings,
            records,
            http,
            table: RwLock::new(Arc::new(table)),
            breakers: Breakers::default(),
            key_use: std::sync::Mutex::new(std::collections::HashMap::new()),
            round_robin: AtomicUsize::new(0),
        }))
    }

    /// Background upkeep: reads the shared breaker states every half second and the shared spend
    /// every second (with Redis), and writes keys' last use every five seconds.
    pub fn spawn_housekeeping(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(breaker::SYNC_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                let Some(gw) = weak.upgrade() else { return };
                if let Some(shared) = &gw.shared_breakers {
                    shared.sync(&gw.breakers, gw.clock.now()).await;
                }
                if n.is_multiple_of(2) {
                    gw.spend.sync().await;
                }
                if n.is_multiple_of(10) {
                    gw.flush_key_use().await;
                }
            }
        })
    }

    /// Writes when each provider key was last used. Entries the database refuses stay for the next
    /// call.
    pub async fn flush_key_use(&self) {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        let pending: Vec<(Uuid, chrono::DateTime<Utc>)> =
            std::mem::take(&mut *self.key_use.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
                .into_iter()
                .collect();
        for (id, at) in pending {
            let done = provider_credentials::Entity::update_many()
                .col_expr(provider_credentials::Column::LastUsedAt, Expr::value(at))
                .filter(provider_credentials::Column::Id.eq(id))
                .exec(&self.db)
                .await;
            if let Err(e) = done {
                tracing::warn!(error = %e, "could not record when a provider key was last used");
                let mut map = self.key_use.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let entry = map.entry(id).or_insert(at);
                *entry = (*entry).max(at);
            }
        }
    }

    fn breaker_success(&self, target: &Target, rules: &Rules) {
        let change = self.breakers.success(target.provider.id, &target.model, self.clock.now(), rules);
        circuit_metric(target, change);
        if change == Change::Closed
            && let Some(shared) = self.shared_breakers.clone()
        {
            let (p, m) = (target.provider.id, target.model.clone());
            tokio::spawn(async move { shared.closed(p, &m).await });
        }
    }

    fn breaker_failure(&self, target: &Target, rules: &Rules) {
        let change = self.breakers.failure(target.provider.id, &target.model, self.clock.now(), rules);
        circuit_metric(target, change);
        if let Change::Opened(until) = change
            && let Some(shared) = self.shared_breakers.clone()
        {
            let (p, m) = (target.provider.id, target.model.clone());
            tokio::spawn(async move { shared.opened(p, &m, until).await });
        }
    }

    /// Re-reads providers, keys, models, aliases and policies.
    ///
    /// # Errors
    /// A database error (the previous table stays in use).
    pub async fn reload(&self) -> Result<(), DbErr> {
        let table = Table::load(&self.db, &self.keyring).await?;
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
        Ok(())
    }

    /// Reloads the table every `every`, so admin changes on any instance reach this one, and at once
    /// when `changes` (this instance's admin changes) says so.
    pub fn spawn_reloader(
        self: &Arc<Self>,
        every: Duration,
        mut changes: tokio::sync::watch::Receiver<u64>,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            let mut watching = true;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = changes.changed(), if watching => watching = changed.is_ok(),
                }
                let Some(gw) = weak.upgrade() else { return };
                if let Err(e) = gw.reload().await {
                    tracing::warn!(error = %e, "could not reload the routing table");
                }
            }
        })
    }

    fn table(&self) -> Arc<Table> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn records(&self) -> &Arc<Records> {
        &self.records
    }

    /// The circuit breaker's state for a provider and model on this instance, as of now.
    pub fn breaker_state(&self, provider_id: Uuid, model: &str) -> breaker::State {
        self.breakers.state(provider_id, model, self.clock.now())
    }

    /// The names a caller may use for `capability` (`chat`, `embeddings`, `speech`, or `*` for any),
    /// each with its owner (a provider's name, or `goblin` for a route alias), sorted.
    pub fn model_names(&self, capability: &str) -> Vec<(String, String)> {
        self.table().model_names(capability)
    }

    /// The names a caller may use, as OpenAI's model list.
    pub fn models(&self) -> Value {
        let data: Vec<Value> = self
            .table()
            .model_names("*")
            .into_iter()
            .map(|(id, owner)| json!({ "id": id, "object": "model", "created": 0, "owned_by": owner }))
            .collect();
        json!({ "object": "list", "data": data })
    }

    fn policy(&self, table: &Table, alias: Option<&str>) -> Policy {
        let upstream = Duration::from_secs(
            self.settings.int(setting_keys::GATEWAY_UPSTREAM_TIMEOUT_SECONDS).max(1) as u64,
        );
        match alias.and_then(|a| table.policies.get(a)) {
            Some(p) => Policy {
                strategy: p.strategy.clone(),
                weights: p.score_weights.clone(),
                max_retries: p.max_retries.clamp(0, 10) as u32,
                backoff: Duration::from_millis(p.retry_backoff_ms.clamp(0, 60_000) as u64),
                attempt_timeout: Duration::from_millis(p.attempt_timeout_ms.clamp(100, 600_000) as u64),
                deadline: Duration::from_millis(p.deadline_ms.clamp(100, 3_600_000) as u64),
                fallback: p.fallback_enabled,
                breaker: Rules {
                    threshold: p.breaker_failure_threshold.max(1) as u32,
                    error_rate: p.breaker_error_rate,
                    window: chrono::Duration::seconds(i64::from(p.breaker_window_s.max(1))),
                    cooldown: chrono::Duration::seconds(i64::from(p.breaker_cooldown_s.max(1))),
                },
                budget: p.budget_micros.map(|micros| RouteBudget {
                    subject: Subject::Route { policy_id: p.id, alias: p.route_alias.clone() },
                    limit: Limit { micros, period: Period::parse(&p.budget_period) },
                    cheaper: p.budget_action == "cheaper",
                }),
            },
            None => Policy {
                strategy: self.settings.text(setting_keys::GATEWAY_DEFAULT_STRATEGY),
                weights: json!({ "latency": 0.4, "cost": 0.3, "reliability": 0.2, "bandwidth": 0.1 }),
                max_retries: 1,
                backoff: Duration::from_millis(100),
                attempt_timeout: upstream,
                deadline: upstream * 2,
                fallback: true,
                breaker: Rules {
                    threshold: 5,
                    error_rate: 0.5,
                    window: chrono::Duration::seconds(60),
                    cooldown: chrono::Duration::seconds(30),
                },
                budget: None,
            },
        }
    }

    /// Orders targets by the policy's strategy.
    fn order(&self, mut targets: Vec<Target>, policy: &Policy) -> Vec<Target> {
        match policy.strategy.as_str() {
            "cost" => targets.sort_by_key(|t| t.price_in + t.price_out),
            "latency" => targets.sort_by_key(|t| {
                let h = self.records.recent(t.provider.id, &t.model);
                h.ttft_p50_ms.or(h.latency_p50_ms).unwrap_or(u32::MAX)
            }),
            "weighted" => {
                // Weighted shuffle: each pick proportional to weight, spread by a rotating counter.
                let mut seed = self.round_robin.fetch_add(1, Ordering::Relaxed) as u64 * 2_654_435_761 + 1;
                let mut out = Vec::with_capacity(targets.len());
                while !targets.is_empty() {
                    let total: i64 = targets.iter().map(|t| i64::from(t.weight.max(1))).sum();
                    seed =
                        seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    let mut pick = ((seed >> 33) % total as u64) as i64;
                    let idx = targets
                        .iter()
                        .position(|t| {
                            pick -= i64::from(t.weight.max(1));
                            pick < 0
                        })
                        .unwrap_or(0);
                    out.push(targets.remove(idx));
                }
                return out;
            }
            "score" | "health" => {
                let w = |k: &str| policy.weights.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                let max_cost =
                    targets.iter().map(|t| t.price_in + t.price_out).max().unwrap_or(0).max(1) as f64;
                let scored: Vec<(f64, Target)> = targets
                    .into_iter()
                    .map(|t| {
                        let h = self.records.recent(t.provider.id, &t.model);
                        let latency = h.latency_p50_ms.map_or(0.5, |ms| 1.0 / (1.0 + f64::from(ms) / 1000.0));
                        let cost = 1.0 - (t.price_in + t.price_out) as f64 / max_cost;
                        let reliability = 1.0 - h.error_rate;
                        let bandwidth = h.ttft_p50_ms.map_or(0.5, |ms| 1.0 / (1.0 + f64::from(ms) / 1000.0));
                        let score = w("latency") * latency
                            + w("cost") * cost
                            + w("reliability") * reliability
                            + w("bandwidth") * bandwidth;
                        (score, t)
                    })
                    .collect();
                let mut scored = scored;
                scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
                return scored.into_iter().map(|(_, t)| t).collect();
            }
            _ => {}
        }
        targets
    }

    fn plan(
        &self,
        model: &str,
        capability: &str,
    ) -> Result<(Option<String>, Vec<Target>, Policy), GatewayError> {
        let table = self.table();
        let (alias, targets) =
            table.resolve(model, capability).ok_or_else(|| GatewayError::model_not_found(model))?;
        if targets.is_empty() {
            return Err(GatewayError::model_not_found(model));
        }
        let policy = self.policy(&table, alias.as_deref());
        let targets = self.order(targets, &policy);
        Ok((alias, targets, policy))
    }

    /// Plans a request, opens its record, and applies the budgets. A refusal is recorded.
    async fn prepare(
        &self,
        caller: &Caller,
        model: &str,
        capability: &str,
        stream: bool,
        started: Instant,
    ) -> Result<(RequestRecord, Vec<Target>, Policy), GatewayError> {
        let (alias, targets, policy) = self.plan(model, capability)?;
        let mut record = self.base_record(caller, model, alias, stream);
        match self.within_budgets(caller, &policy, targets, &mut record).await {
            Ok(targets) => Ok((record, targets, policy)),
            Err(e) => {
                self.finish(record, started, Err(&e));
                Err(e)
            }
        }
    }

    /// The targets the budgets allow: an API token or route whose budget is spent is refused (or, a
    /// route whose policy says so, sent to its cheapest targets); a provider whose budget is spent is
    /// passed over.
    async fn within_budgets(
        &self,
        caller: &Caller,
        policy: &Policy,
        mut targets: Vec<Target>,
        record: &mut RequestRecord,
    ) -> Result<Vec<Target>, GatewayError> {
        let table = self.table();
        let now = self.clock.now();
        if let Some(token) = caller.token_id
            && let Some(limit) = table.token_budgets.get(&token)
            && let Some(spent) = self.spend.check(&Subject::Token(token), *limit, now).await
        {
            return Err(GatewayError::budget(format!("This API token has spent {}.", spent.describe())));
        }
        if let Some(b) = &policy.budget
            && let Some(spent) = self.spend.check(&b.subject, b.limit, now).await
        {
            let alias = record.route_alias.clone().unwrap_or_default();
            if !b.cheaper {
                return Err(GatewayError::budget(format!(
                    "The route '{alias}' has spent {}.",
                    spent.describe()
                )));
            }
            let price = |t: &Target| t.price_in.saturating_add(t.price_out);
            let cheapest = targets.iter().map(price).min().unwrap_or(0);
            targets.retain(|t| price(t) == cheapest);
        }
        let mut kept = Vec::with_capacity(targets.len());
        let mut refused = None;
        for t in targets {
            if let Some(limit) = t.provider.budget
                && let Some(spent) = self.spend.check(&Subject::Provider(t.provider.id), limit, now).await
            {
                record.attempts.push(Attempt {
                    provider_id: t.provider.id,
                    model: t.model.clone(),
                    status: None,
                    latency_ms: 0,
                    error: Some(format!("skipped: {} has spent {}", t.provider.name, spent.describe())),
                });
                refused = Some(format!("{} has spent {}", t.provider.name, spent.describe()));
                continue;
            }
            kept.push(t);
        }
        match refused {
            Some(why) if kept.is_empty() => {
                Err(GatewayError::budget(format!("Every provider for this model is over its budget: {why}.")))
            }
            _ => Ok(kept),
        }
    }

    /// Counts a finished request's cost against the budgets it falls under.
    fn charge(&self, record: &RequestRecord) {
        let cost = record.cost_micros;
        if cost <= 0 {
            return;
        }
        let table = self.table();
        let now = self.clock.now();
        if let Some(alias) = &record.route_alias
            && let Some(p) = table.policies.get(alias)
            && p.budget_micros.is_some()
        {
            let subject = Subject::Route { policy_id: p.id, alias: alias.clone() };
            self.spend.charge(&subject, Period::parse(&p.budget_period), cost, now);
        }
        if let Some(id) = record.provider_id
            && let Some(limit) = table.providers.get(&id).and_then(|p| p.budget)
        {
            self.spend.charge(&Subject::Provider(id), limit.period, cost, now);
        }
        if let Some(id) = record.token_id
            && let Some(limit) = table.token_budgets.get(&id)
        {
            self.spend.charge(&Subject::Token(id), limit.period, cost, now);
        }
    }

    /// The key for the next call to a provider: round-robin over its enabled, unexpired keys.
    fn key_for<'a>(&self, target: &'a Target) -> Option<&'a str> {
        let now = self.clock.now();
        let usable: Vec<&plan::KeyEntry> =
            target.provider.keys.iter().filter(|(_, _, exp)| exp.is_none_or(|e| e > now)).collect();
        if usable.is_empty() {
            return None;
        }
        let i = self.round_robin.fetch_add(1, Ordering::Relaxed) % usable.len();
        let (id, key, _) = usable[i];
        self.key_use.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(*id, now);
        Some(key.expose().as_str())
    }

    /// The upstream request for a chat completion to `target`.
    fn chat_request(
        &self,
        target: &Target,
        body: &Value,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, TranslateError> {
        let base = &target.provider.base_url;
        let (url, upstream_body) = match target.provider.kind {
            ProviderKind::Anthropic => {
                let mut b = translate::to_anthropic(body, &target.model)?;
                b["stream"] = Value::Bool(stream);
                (format!("{base}/messages"), b)
            }
            ProviderKind::Gemini => {
                let b = translate::to_gemini(body)?;
                let url = if stream {
                    format!("{base}/models/{}:streamGenerateContent?alt=sse", target.model)
                } else {
                    format!("{base}/models/{}:generateContent", target.model)
                };
                (url, b)
            }
            _ => {
                // The client's body with the target's model (and, for a stream, usage asked for:
                // the record and the cost need it whether the client asked or not), written out
                // without copying it first.
                let req = match &target.provider.chat_completions_url {
                    Some(url) => self.http.post(url.clone()),
                    None => self.http.post(format!("{base}/chat/completions")),
                };
                let mut req = req.json(&PassThroughBody { body, model: &target.model, stream });
                let key = self.key_for(target);
                for (name, value) in target.provider.kind.auth_headers(key) {
                    req = req.header(name, value);
                }
                return Ok(req);
            }
        };
        let mut req = self.http.post(url).json(&upstream_body);
        let key = self.key_for(target);
        for (name, value) in target.provider.kind.auth_headers(key) {
            req = req.header(name, value);
        }
        Ok(req)
    }

    fn redact(&self, target: &Target, text: &str) -> String {
        let mut out = text.to_string();
        for (_, k, _) in &target.provider.keys {
            out = kinds::redact(&out, k.expose());
        }
        out
    }

    fn classify(&self, target: &Target, status: u16, body: &str) -> Failure {
        let message = self.redact(
            target,
            &format!("{} answered {status}: {}", target.provider.name, kinds::error_message(body)),
        );
        match status {
            408 | 429 | 500..=599 | 401 | 403 | 404 => Failure::Retry { status: Some(status), message },
            _ => Failure::Client { status, message },
        }
    }

    fn transport(&self, target: &Target, e: &reqwest::Error, timeout: Duration) -> Failure {
        let message = if e.is_timeout() {
            format!("{} did not answer within {} ms", target.provider.name, timeout.as_millis())
        } else if e.is_connect() {
            format!("could not connect to {}", target.provider.name)
        } else {
            format!("the call to {} failed", target.provider.name)
        };
        Failure::Retry { status: None, message }
    }

    /// Validates the parts of a chat request the gateway itself needs.
    fn check_chat(body: &Value) -> Result<(String, bool, bool), GatewayError> {
        let Some(obj) = body.as_object() else {
            return Err(GatewayError::invalid("the request body must be a JSON object", None));
        };
        let model = match obj.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() && m.len() <= 192 => m.trim().to_string(),
            Some(Value::String(_)) => {
                return Err(GatewayError::invalid("'model' must be 1 to 192 characters", Some("model")));
            }
            Some(_) => return Err(GatewayError::invalid("'model' must be a string", Some("model"))),
            None => return Err(GatewayError::invalid("you must provide a model parameter", Some("model"))),
        };
        match obj.get("messages") {
            Some(Value::Array(m)) if !m.is_empty() => {}
            Some(Value::Array(_)) => {
                return Err(GatewayError::invalid("'messages' must not be empty", Some("messages")));
            }
            Some(_) => return Err(GatewayError::invalid("'messages' must be an array", Some("messages"))),
            None => return Err(GatewayError::invalid("'messages' is a required property", Some("messages"))),
        }
        let stream = match obj.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(GatewayError::invalid("'stream' must be true or false", Some("stream"))),
        };
        let include_usage = obj
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok((model, stream, include_usage))
    }

    fn base_record(
        &self,
        caller: &Caller,
        requested: &str,
        alias: Option<String>,
        stream: bool,
    ) -> RequestRecord {
        RequestRecord {
            id: Uuid::now_v7(),
            created_at: self.clock.now(),
            user_id: caller.user_id,
            token_id: caller.token_id,
            requested_model: records::clean(requested, 192),
            route_alias: alias,
            attempts: Vec::new(),
            provider_id: None,
            model: None,
            stream,
            outcome: Outcome::Error,
            http_status: 500,
            ttft_ms: None,
            latency_ms: 0,
            tokens_in: 0,
            tokens_out: 0,
            cost_micros: 0,
            error: None,
        }
    }

    fn cost(target: &Target, usage: Usage) -> i64 {
        let micros = u128::from(usage.prompt_tokens) * target.price_in as u128
            + u128::from(usage.completion_tokens) * target.price_out as u128;
        i64::try_from(micros / 1_000_000).unwrap_or(i64::MAX)
    }

    /// Runs the attempts: each target (breaker permitting) up to `1 + max_retries` times, until one
    /// succeeds, the request is at fault, or the deadline passes. `call` makes one attempt.
    async fn run<T, F, Fut>(
        &self,
        targets: &[Target],
        policy: &Policy,
        record: &mut RequestRecord,
        mut call: F,
    ) -> Result<(Target, T), GatewayError>
    where
        F: FnMut(Target, Duration) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let started = Instant::now();
        let mut last: Option<Failure> = None;
        let mut tried_any = false;
        for (i, target) in targets.iter().enumerate() {
            if i > 0 && !policy.fallback {
                break;
            }
            let mut admit = self.breakers.admit(target.provider.id, &target.model, self.clock.now());
            if admit == Admit::Probe
                && let Some(shared) = &self.shared_breakers
                && !shared.take_probe(target.provider.id, &target.model, policy.attempt_timeout).await
            {
                // Another instance is sending the probe.
                self.breakers.release_probe(target.provider.id, &target.model);
                admit = Admit::No;
            }
            if admit == Admit::No {
                record.attempts.push(Attempt {
                    provider_id: target.provider.id,
                    model: target.model.clone(),
                    status: None,
                    latency_ms: 0,
                    error: Some("skipped: circuit open".into()),
                });
                continue;
            }
            let tries = if admit == Admit::Probe { 1 } else { 1 + policy.max_retries };
            for n in 0..tries {
                let left = policy.deadline.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                if n > 0 {
                    tokio::time::sleep(policy.backoff.min(left) * n).await;
                }
                tried_any = true;
                let timeout = policy.attempt_timeout.min(policy.deadline.saturating_sub(started.elapsed()));
                let t0 = Instant::now();
                let outcome = call(target.clone(), timeout).await;
                let latency_ms = millis(t0.elapsed());
                match outcome {
                    Ok(v) => {
                        self.breaker_success(target, &policy.breaker);
                        record.attempts.push(Attempt {
                            provider_id: target.provider.id,
                            model: target.model.clone(),
                            status: Some(200),
                            latency_ms,
                            error: None,
                        });
                        return Ok((target.clone(), v));
                    }
                    Err(f) => {
                        record.attempts.push(Attempt {
                            provider_id: target.provider.id,
                            model: target.model.clone(),
                            status: f.status(),
                            latency_ms,
                            error: Some(records::clean(f.message(), 500)),
                        });
                        if let Failure::Client { status, message } = f {
                            // The provider is fine; the request is not.
                            self.breaker_success(target, &policy.breaker);
                            return Err(GatewayError {
                                status,
                                kind: "invalid_request_error",
                                message,
                                param: None,
                                code: Some("upstream_rejected_request"),
                            });
                        }
                        self.breaker_failure(target, &policy.breaker);
                        let stop = matches!(f, Failure::Retry { status: Some(401 | 403 | 404), .. });
                        last = Some(f);
                        if stop {
                            break; // retrying the same key and model will not help; try the next target
                        }
                    }
                }
            }
            if started.elapsed() >= policy.deadline {
                break;
            }
        }
        Err(match last {
            Some(f) if tried_any => {
                let status = match f.status() {
                    Some(429) => 429,
                    None if f.message().contains("did not answer") => 504,
                    _ => 502,
                };
                let n = record.attempts.len();
                GatewayError::upstream(
                    status,
                    format!(
                        "every provider for this model failed ({n} attempt{}); the last: {}",
                        if n == 1 { "" } else { "s" },
                        f.message()
                    ),
                )
            }
            _ => GatewayError {
                status: 503,
                kind: "api_error",
                message:
                    "every provider for this model is unavailable right now (circuit open); try again shortly"
                        .into(),
                param: None,
                code: Some("no_provider_available"),
            },
        })
    }

    fn finish(&self, mut record: RequestRecord, started: Instant, result: Result<(), &GatewayError>) {
        record.latency_ms = millis(started.elapsed());
        match result {
            Ok(()) => {
                record.outcome = Outcome::Ok;
                record.http_status = 200;
            }
            Err(e) => {
                record.outcome = Outcome::Error;
                record.http_status = e.status;
                record.error = Some(records::clean(&e.message, 1000));
            }
        }
        self.charge(&record);
        self.records.record(record);
    }

    /// A chat completion, not streamed.
    ///
    /// # Errors
    /// A [`GatewayError`] to send to the client as is.
    pub async fn chat(&self, caller: &Caller, body: Value) -> Result<Value, GatewayError> {
        match self.chat_answer(caller, body).await? {
            Answer::Translated(v) => Ok(v),
            Answer::Passed(bytes) => serde_json::from_slice(&bytes).map_err(|e| GatewayError {
                status: 502,
                kind: "api_error",
                message: format!("the provider's answer could not be read: {e}"),
                param: None,
                code: None,
            }),
        }
    }

    /// Like [`Gateway::chat`], as the JSON text of the answer: an OpenAI-compatible provider's answer
    /// is passed on as it came (after checking it has `choices` and reading its usage), without being
    /// built into a `Value` and written out again.
    ///
    /// # Errors
    /// As [`Gateway::chat`].
    pub async fn chat_json(&self, caller: &Caller, body: Value) -> Result<Bytes, GatewayError> {
        match self.chat_answer(caller, body).await? {
            Answer::Translated(v) => Ok(Bytes::from(v.to_string())),
            Answer::Passed(bytes) => Ok(bytes),
        }
    }

    async fn chat_answer(&self, caller: &Caller, body: Value) -> Result<Answer, GatewayError> {
        let started = Instant::now();
        let (model, stream, _) = Self::check_chat(&body)?;
        if stream {
            return Err(GatewayError::invalid("use chat_stream for stream: true", Some("stream")));
        }
        let (mut record, targets, policy) = self.prepare(caller, &model, "chat", false, started).await?;
        let id = format!("chatcmpl-{}", Uuid::new_v4().simple());
        let created = now_unix();
        let result = self
            .run(&targets, &policy, &mut record, |target, timeout| {
                let body = &body;
                let id = &id;
                async move {
                    let req = self
                        .chat_request(&target, body, false)
                        .map_err(|e| Failure::Client { status: 400, message: e.to_string() })?;
                    let resp = req
                        .timeout(timeout)
                        .send()
                        .await
                        .map_err(|e| self.transport(&target, &e, timeout))?;
                    let status = resp.status().as_u16();
                    let bytes = resp.bytes().await.map_err(|e| self.transport(&target, &e, timeout))?;
                    if !(200..300).contains(&status) {
                        return Err(self.classify(&target, status, &String::from_utf8_lossy(&bytes)));
                    }
                    let unreadable = |e: String| Failure::Retry {
                        status: Some(status),
                        message: format!("{}'s answer could not be read: {e}", target.provider.name),
                    };
                    let translated = |value: Result<(Value, Usage), TranslateError>| {
                        value.map(|(v, u)| (Answer::Translated(v), u)).map_err(|e| unreadable(e.to_string()))
                    };
                    match target.provider.kind {
                        ProviderKind::Anthropic => {
                            let value: Value =
                                serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
                            translated(translate::from_anthropic(&value, id, &target.model, created))
                        }
                        ProviderKind::Gemini => {
                            let value: Value =
                                serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
                            translated(translate::from_gemini(&value, id, &target.model, created))
                        }
                        _ => {
                            let checked: translate::OpenAiAnswer =
                                serde_json::from_slice(&bytes).map_err(|e| unreadable(e.to_string()))?;
                            if checked.choices.is_none() {
                                return Err(unreadable("no choices".into()));
                            }
                            let usage =
                                checked.usage.as_ref().and_then(translate::usage_of).unwrap_or_default();
                            Ok((Answer::Passed(bytes), usage))
                        }
                    }
                }
            })
            .await;
        match result {
            Ok((target, (out, usage))) => {
                record.provider_id = Some(target.provider.id);
                record.model = Some(target.model.clone());
                record.tokens_in = usage.prompt_tokens;
                record.tokens_out = usage.completion_tokens;
                record.cost_micros = Self::cost(&target, usage);
                record.ttft_ms = Some(millis(started.elapsed()));
                self.finish(record, started, Ok(()));
                Ok(out)
            }
            Err(e) => {
                self.finish(record, started, Err(&e));
                Err(e)
            }
        }
    }

    fn check_model(body: &Value) -> Result<String, GatewayError> {
        let Some(obj) = body.as_object() else {
            return Err(GatewayError::invalid("the request body must be a JSON object", None));
        };
        match obj.get("model") {
            Some(Value::String(m)) if !m.trim().is_empty() && m.len() <= 192 => Ok(m.trim().to_string()),
            Some(Value::String(_)) => {
                Err(GatewayError::invalid("'model' must be 1 to 192 characters", Some("model")))
            }
            Some(_) => Err(GatewayError::invalid("'model' must be a string", Some("model"))),
            None => Err(GatewayError::invalid("you must provide a model parameter", Some("model"))),
        }
    }

    /// Embeddings (`POST /v1/embeddings`): OpenAI-compatible providers pass through; Gemini is
    /// translated (`batchEmbedContents`).
    ///
    /// # Errors
    /// A [`GatewayError`] to send to the client as is.
    pub async fn embeddings(&self, caller: &Caller, body: Value) -> Result<Value, GatewayError> {
        let started = Instant::now();
        let model = Self::check_model(&body)?;
        let inputs: Vec<String> = match body.get("input") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if !a.is_empty() && a.iter().all(Value::is_string) => {
                a.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            Some(Value::Array(a)) if !a.is_empty() => Vec::new(), // token arrays: pass-through only
            _ => {
                return Err(GatewayError::invalid(
                    "'input' must be a string or a non-empty array of strings",
                    Some("input"),
                ));
            }
        };
        let (mut record, targets, policy) =
            self.prepare(caller, &model, "embeddings", false, started).await?;
        let result = self
            .run(&targets, &policy, &mut record, |target, timeout| {
                let body = &body;
                let inputs = &inputs;
                async move {
                    let base = &target.provider.base_url;
                    let (url, upstream) = match target.provider.kind {
                        ProviderKind::Gemini => {
                            if inputs.is_empty() {
                                return Err(Failure::Client { status: 400, message: "token-array input is not supported for gemini".into() });
                            }
                            let name = format!("models/{}", target.model);
                            let requests: Vec<Value> = inputs
                                .iter()
                                .map(|t| json!({ "model": name, "content": { "parts": [{ "text": t }] } }))
                                .collect();
                            (format!("{base}/models/{}:batchEmbedContents", target.model), json!({ "requests": requests }))
                        }
                        _ => {
                            let mut b = body.clone();
                            b["model"] = Value::String(target.model.clone());
                            (format!("{base}/embeddings"), b)
                        }
                    };
                    let v = self.call_json(&target, &url, &upstream, timeout).await?;
                    let out = match target.provider.kind {
                        ProviderKind::Gemini => {
                            let data: Vec<Value> = v
                                .get("embeddings")
                                .and_then(Value::as_array)
                                .ok_or_else(|| Failure::Retry { status: Some(200), message: format!("{}'s answer has no embeddings", target.provider.name) })?
                                .iter()
                                .enumerate()
                                .map(|(i, e)| json!({ "object": "embedding", "index": i, "embedding": e.get("values").cloned().unwrap_or(json!([])) }))
                                .collect();
                            let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
                            json!({ "object": "list", "data": data, "model": target.model, "usage": { "prompt_tokens": tokens, "total_tokens": tokens } })
                        }
                        _ => {
                            if !v.get("data").is_some_and(Value::is_array) {
                                return Err(Failure::Retry { status: Some(200), message: format!("{}'s answer has no data", target.provider.name) });
                            }
                            v
                        }
                    };
                    Ok(out)
                }
            })
            .await;
        match result {
            Ok((target, out)) => {
                record.provider_id = Some(target.provider.id);
                record.model = Some(target.model.clone());
                let usage = Usage {
                    prompt_tokens: out.pointer("/usage/prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
                    completion_tokens: 0,
                };
                record.tokens_in = usage.prompt_tokens;
                record.cost_micros = Self::cost(&target, usage);
                self.finish(record, started, Ok(()));
                Ok(out)
            }
            Err(e) => {
                self.finish(record, started, Err(&e));
                Err(e)
            }
        }
    }

    /// Speech (`POST /v1/audio/speech`): OpenAI-compatible speech models pass through; ElevenLabs is
    /// translated (`voice` is the ElevenLabs voice id). Returns the audio and its content type.
    ///
    /// # Errors
    /// A [`GatewayError`] to send to the client as is.
    pub async fn speech(&self, caller: &Caller, body: Value) -> Result<(Bytes, String), GatewayError> {
        let started = Instant::now();
        let model = Self::check_model(&body)?;
        let input = match body.get("input") {
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 4096 => s.clone(),
            Some(Value::String(_)) => {
                return Err(GatewayError::invalid("'input' must be 1 to 4096 characters", Some("input")));
            }
            _ => return Err(GatewayError::invalid("'input' is a required string", Some("input"))),
        };
        let voice = match body.get("voice") {
            Some(Value::String(v))
                if !v.is_empty()
                    && v.len() <= 128
                    && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')) =>
            {
                v.clone()
            }
            _ => {
                return Err(GatewayError::invalid(
                    "'voice' must be a voice name or id (letters, digits, '-' or '_')",
                    Some("voice"),
                ));
            }
        };
        let (mut record, targets, policy) = self.prepare(caller, &model, "speech", false, started).await?;
        let result = self
            .run(&targets, &policy, &mut record, |target, timeout| {
                let body = &body;
                let input = &input;
                let voice = &voice;
                async move {
                    let base = &target.provider.base_url;
                    let (url, upstream) = match target.provider.kind {
                        ProviderKind::ElevenLabs => (
                            format!("{base}/text-to-speech/{voice}"),
                            json!({ "text": input, "model_id": target.model }),
                        ),
                        _ => {
                            let mut b = body.clone();
                            b["model"] = Value::String(target.model.clone());
                            (format!("{base}/audio/speech"), b)
                        }
                    };
                    let resp = self.send(&target, &url, &upstream, timeout).await?;
                    let kind = resp
                        .headers()
                        .get(reqwest::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("audio/mpeg")
                        .to_string();
                    let bytes = resp.bytes().await.map_err(|e| self.transport(&target, &e, timeout))?;
                    if bytes.is_empty() {
                        return Err(Failure::Retry {
                            status: Some(200),
                            message: format!("{} sent no audio", target.provider.name),
                        });
                    }
                    Ok((bytes, kind))
                }
            })
            .await;
        match result {
            Ok((target, out)) => {
                record.provider_id = Some(target.provider.id);
                record.model = Some(target.model.clone());
                record.tokens_in = input.chars().count() as u64;
                self.finish(record, started, Ok(()));
                Ok(out)
            }
            Err(e) => {
                self.finish(record, started, Err(&e));
                Err(e)
            }
        }
    }

    /// POSTs JSON with the target's key; a non-2xx answer is classified.
    async fn send(
        &self,
        target: &Target,
        url: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<reqwest::Response, Failure> {
        let mut req = self.http.post(url).json(body).timeout(timeout);
        for (name, value) in target.provider.kind.auth_headers(self.key_for(target)) {
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(|e| self.transport(target, &e, timeout))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.text().await.unwrap_or_default();
            return Err(self.classify(target, status, &text));
        }
        Ok(resp)
    }

    async fn call_json(
        &self,
        target: &Target,
        url: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let resp = self.send(target, url, body, timeout).await?;
        let text = resp.text().await.map_err(|e| self.transport(target, &e, timeout))?;
        serde_json::from_str(&text).map_err(|e| Failure::Retry {
            status: Some(200),
            message: format!("{}'s answer could not be read: {e}", target.provider.name),
        })
    }

    /// A streamed chat completion. Returns once a target has produced its first chunk, so a target
    /// that fails before that is replaced without the client seeing it.
    ///
    /// # Errors
    /// A [`GatewayError`] when no target produced a first chunk.
    pub async fn chat_stream(
        self: &Arc<Self>,
        caller: &Caller,
        body: Value,
    ) -> Result<ChatStream, GatewayError> {
        self.open_chat_stream(caller, body, None).await
    }

    /// Like [`Gateway::chat_stream`], and also says how the stream ended (which provider and model
    /// answered, tokens, cost, status) once it has.
    ///
    /// # Errors
    /// A [`GatewayError`] when no target produced a first chunk.
    pub async fn chat_stream_tracked(
        self: &Arc<Self>,
        caller: &Caller,
        body: Value,
    ) -> Result<(ChatStream, tokio::sync::oneshot::Receiver<StreamOutcome>), GatewayError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        Ok((self.open_chat_stream(caller, body, Some(tx)).await?, rx))
    }

    async fn open_chat_stream(
        self: &Arc<Self>,
        caller: &Caller,
        body: Value,
        outcome: Option<tokio::sync::oneshot::Sender<StreamOutcome>>,
    ) -> Result<ChatStream, GatewayError> {
        let started = Instant::now();
        let (model, _, include_usage) = Self::check_chat(&body)?;
        let (mut record, targets, policy) = self.prepare(caller, &model, "chat", true, started).await?;
        let id = format!("chatcmpl-{}", Uuid::new_v4().simple());
        let created = now_unix();
        let opened = self
            .run(&targets, &policy, &mut record, |target, timeout| {
                let body = &body;
                let id = &id;
                async move { self.open_stream(&target, body, id, created, timeout).await }
            })
            .await;
        let (target, open) = match opened {
            Ok(v) => v,
            Err(e) => {
                self.finish(record, started, Err(&e));
                return Err(e);
            }
        };
        record.provider_id = Some(target.provider.id);
        record.model = Some(target.model.clone());
        record.ttft_ms = Some(millis(started.elapsed()));
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let gw = self.clone();
        let idle = policy.attempt_timeout;
        tokio::spawn(async move {
            let done = gw.pump(open, target, tx, record, started, include_usage, idle, body).await;
            if let Some(o) = outcome {
                let _ = o.send(done);
            }
        });
        Ok(rx)
    }

    /// Opens an upstream stream and reads until its first chunk.
    async fn open_stream(
        &self,
        target: &Target,
        body: &Value,
        id: &str,
        created: i64,
        timeout: Duration,
    ) -> Result<OpenStream, Failure> {
        let req = self
            .chat_request(target, body, true)
            .map_err(|e| Failure::Client { status: 400, message: e.to_string() })?;
        let deadline = Instant::now() + timeout;
        let resp = tokio::time::timeout(timeout, req.send())
            .await
            .map_err(|_| Failure::Retry {
                status: None,
                message: format!("{} did not answer within {} ms", target.provider.name, timeout.as_millis()),
            })?
            .map_err(|e| self.transport(target, &e, timeout))?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let left = deadline.saturating_duration_since(Instant::now());
            let text =
                tokio::time::timeout(left, resp.text()).await.ok().and_then(Result::ok).unwrap_or_default();
            return Err(self.classify(target, status, &text));
        }
        let translator: Box<dyn ChunkTranslator> = match target.provider.kind {
            ProviderKind::Anthropic => translate::anthropic_stream(id, &target.model, created, true),
            ProviderKind::Gemini => translate::gemini_stream(id, &target.model, created, true),
            _ => translate::openai_stream(id, &target.model, created),
        };
        let mut open = OpenStream {
            upstream: Box::pin(resp.bytes_stream()),
            parser: SseParser::default(),
            translator,
            first: Vec::new(),
        };
        // Until the first chunk: a failure here is still invisible to the client.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match open.next_chunks(left).await {
                Ok(Some(chunks)) => {
                    // Commit on the first chunk that says something (text, a tool call, an end):
                    // a role-only opening chunk is held back, so a failure right after it is still
                    // invisible to the client.
                    let says = chunks.iter().any(says_something);
                    open.first.extend(chunks);
                    if says || open.translator.finished() {
                        return Ok(open);
                    }
                }
                Ok(None) => {
                    return Err(Failure::Retry {
                        status: Some(status),
                        message: format!("{} ended the stream before any answer", target.provider.name),
                    });
                }
                Err(m) => {
                    return Err(Failure::Retry {
                        status: Some(status),
                        message: self.redact(target, &format!("{}: {m}", target.provider.name)),
                    });
                }
            }
        }
    }

    /// Moves chunks from the upstream to the client until the end, an error, or the client leaving.
    #[allow(clippy::too_many_arguments)]
    async fn pump(
        self: Arc<Self>,
        mut open: OpenStream,
        target: Target,
        tx: mpsc::Sender<Bytes>,
        mut record: RequestRecord,
        started: Instant,
        include_usage: bool,
        idle: Duration,
        body: Value,
    ) -> StreamOutcome {
        let send = |chunk: &Value| {
            let keep =
                include_usage || chunk.get("choices").and_then(Value::as_array).is_none_or(|c| !c.is_empty());
            keep.then(|| Bytes::from(format!("data: {chunk}\n\n")))
        };
        let mut gone = false;
        for chunk in std::mem::take(&mut open.first) {
            if let Some(b) = send(&chunk)
                && tx.send(b).await.is_err()
            {
                gone = true;
                break;
            }
        }
        let mut error: Option<String> = None;
        while !gone {
            tokio::select! {
                () = tx.closed() => { gone = true; }
                next = open.next_chunks(idle) => match next {
                    Ok(Some(chunks)) => {
                        for chunk in chunks {
                            if let Some(b) = send(&chunk)
                                && tx.send(b).await.is_err()
                            {
                                gone = true;
                                break;
                            }
                        }
                    }
                    Ok(None) => {
                        if !open.translator.finished() {
                            error = Some(format!("{}'s stream ended before the answer was complete", target.provider.name));
                        }
                        break;
                    }
                    Err(m) => {
                        error = Some(self.redact(
                            &target,
                            &format!("{}'s stream broke off before the answer was complete: {m}", target.provider.name),
                        ));
                        break;
                    }
                }
            }
        }
        // No usage from the provider (it sent none, or the client left first): count the tokens, off
        // the async threads (the first count loads the tokenizer).
        let usage = match open.translator.usage() {
            Some(usage) => usage,
            None => {
                let text = open.translator.text_so_far().to_owned();
                tokio::task::spawn_blocking(move || Usage {
                    prompt_tokens: tokenize::count_messages(&body),
                    completion_tokens: tokenize::count(&text),
                })
                .await
                .unwrap_or_default()
            }
        };
        record.tokens_in = usage.prompt_tokens;
        record.tokens_out = usage.completion_tokens;
        record.cost_micros = Self::cost(&target, usage);
        let mut outcome = StreamOutcome {
            provider_id: target.provider.id,
            provider_name: target.provider.name.clone(),
            model: target.model.clone(),
            tokens_in: usage.prompt_tokens,
            tokens_out: usage.completion_tokens,
            cost_micros: record.cost_micros,
            status: "ok",
            error: None,
        };
        if gone {
            record.latency_ms = millis(started.elapsed());
            record.outcome = Outcome::Cancelled;
            record.http_status = 499;
            record.error = Some("the client went away".into());
            self.charge(&record);
            self.records.record(record);
            outcome.status = "cancelled";
            return outcome;
        }
        match error {
            None => {
                let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
                self.breaker_success(
                    &target,
                    &self.policy(&self.table(), record.route_alias.as_deref()).breaker,
                );
                self.finish(record, started, Ok(()));
            }
            Some(message) => {
                let e = GatewayError {
                    status: 502,
                    kind: "api_error",
                    message,
                    param: None,
                    code: Some("stream_interrupted"),
                };
                let _ = tx.send(Bytes::from(format!("data: {}\n\n", e.body()))).await;
                let rules = self.policy(&self.table(), record.route_alias.as_deref()).breaker;
                self.breaker_failure(&target, &rules);
                self.finish(record, started, Err(&e));
                outcome.status = "error";
                outcome.error = Some(e.message);
            }
        }
        outcome
    }
}

/// Whether a chunk carries part of the answer: text, a tool call, a finish reason or usage.
fn says_something(chunk: &Value) -> bool {
    let Some(choices) = chunk.get("choices").and_then(Value::as_array) else { return false };
    choices.is_empty()
        || choices.iter().any(|c| {
            !c.get("finish_reason").is_none_or(Value::is_null)
                || c.pointer("/delta/content").and_then(Value::as_str).is_some_and(|t| !t.is_empty())
                || c.pointer("/delta/tool_calls").is_some_and(|t| !t.is_null())
        })
}

/// An upstream stream being read: bytes -> SSE events -> OpenAI chunks.
struct OpenStream {
    upstream: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    parser: SseParser,
    translator: Box<dyn ChunkTranslator>,
    /// Chunks read before the stream was handed to the client.
    first: Vec<Value>,
}

impl OpenStream {
    /// The chunks of the next upstream read; `None` at the end of the upstream body. Errors are
    /// messages: a stall longer than `idle`, a broken connection, unreadable data, a provider error.
    async fn next_chunks(&mut self, idle: Duration) -> Result<Option<Vec<Value>>, String> {
        let read = tokio::time::timeout(idle, self.upstream.next())
            .await
            .map_err(|_| format!("no data for {} ms", idle.as_millis()))?;
        let events = match read {
            Some(Ok(bytes)) => self.parser.push(&bytes).map_err(|e| e.to_string())?,
            Some(Err(_)) => return Err("the connection broke off".into()),
            None => {
                let rest = self.parser.finish().map_err(|e| e.to_string())?;
                if rest.is_empty() {
                    return Ok(None);
                }
                rest
            }
        };
        let mut out = Vec::new();
        for ev in &events {
            out.extend(self.translator.on_event(ev).map_err(|e| e.to_string())?);
        }
        Ok(Some(out))
    }
}

/// Counts a breaker's change in the Prometheus metrics: `goblin_gateway_circuit_transitions_total`
/// and `goblin_gateway_circuit_state` (0 closed, 1 open; `/metrics` also shows 2, half-open, which
/// comes with time rather than with a result).
fn circuit_metric(target: &Target, change: Change) {
    let to = match change {
        Change::None => return,
        Change::Opened(_) => "open",
        Change::Closed => "closed",
    };
    let (provider, model) = (target.provider.id.to_string(), target.model.clone());
    metrics::counter!("goblin_gateway_circuit_transitions_total", "provider" => provider.clone(), "model" => model.clone(), "to" => to)
        .increment(1);
    metrics::gauge!("goblin_gateway_circuit_state", "provider" => provider, "model" => model)
        .set(if to == "open" { 1.0 } else { 0.0 });
}
