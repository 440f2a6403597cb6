//! The provider registry: providers, their encrypted API keys, their models, and live checks.
//!
//! Keys are sealed by the [`Keyring`] and bound to their row (`provider_credential:<id>`), opened only
//! to make a call, and shown only as a mask. Nothing here returns, logs or puts a plaintext key into an
//! error; provider messages are passed through [`kinds::redact`] before anyone sees them. Keys are read
//! from the database on every call, so a changed key takes effect at once on every instance.

pub mod kinds;
pub mod seed;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

pub use kinds::{CAPABILITIES, ProviderKind};

use crate::{
    audit,
    clock::SharedClock,
    crypto::{CryptoError, Keyring, Sealed},
    entities::{model_configs, provider_checks, provider_credentials, providers},
    secret::Secret,
    settings::{Settings, keys as setting_keys},
};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no {0} with that id")]
    NotFound(&'static str),
    /// A field failed validation; the message names the field and the rule (never a key's value).
    #[error("{0}")]
    Invalid(String),
    #[error("a provider named '{0}' already exists")]
    NameTaken(String),
    #[error("the model '{0}' is already configured for this provider")]
    ModelTaken(String),
    /// The provider answered with an error; the message is the provider's own, keys redacted.
    #[error("{0}")]
    Upstream(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn invalid(msg: impl Into<String>) -> ProviderError {
    ProviderError::Invalid(msg.into())
}

/// A provider as an admin fills it in: raw form text, validated by the service.
#[derive(Clone, Debug, Default)]
pub struct ProviderInput {
    pub name: String,
    pub kind: String,
    /// Empty for the kind's default.
    pub base_url: String,
    /// Empty for the default (100).
    pub priority: String,
    /// Empty for the kind's defaults.
    pub capabilities: Vec<String>,
    pub enabled: bool,
    /// US dollars per `budget_period`, or empty for no budget.
    pub budget: String,
    /// `day`, `week` or `month`; empty for `month`.
    pub budget_period: String,
}

/// A model as an admin fills it in.
#[derive(Clone, Debug, Default)]
pub struct ModelInput {
    pub model_id: String,
    pub display_name: String,
    pub capabilities: Vec<String>,
    pub context_window: String,
    /// US dollars per million input tokens, e.g. `0.15`.
    pub price_in: String,
    pub price_out: String,
    /// A JSON object such as `{"temperature": 0.2, "max_tokens": 1024}`.
    pub default_params: String,
    pub is_default: bool,
}

/// A stored key as it may be shown: never the key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyView {
    pub id: Uuid,
    pub label: String,
    pub masked: String,
    pub enabled: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<provider_credentials::Model> for KeyView {
    fn from(c: provider_credentials::Model) -> Self {
        Self {
            id: c.id,
            label: c.label,
            masked: c.masked,
            enabled: c.enabled,
            expires_at: c.expires_at,
            last_used_at: c.last_used_at,
            created_by: c.created_by,
            created_at: c.created_at,
        }
    }
}

/// A provider with what the list page shows beside it.
#[derive(Clone, Debug)]
pub struct ProviderSummary {
    pub provider: providers::Model,
    pub keys: u64,
    pub enabled_keys: u64,
    pub models: u64,
    pub last_check: Option<provider_checks::Model>,
}

/// Everything the provider's own page shows.
#[derive(Clone, Debug)]
pub struct ProviderDetail {
    pub provider: providers::Model,
    pub keys: Vec<KeyView>,
    pub models: Vec<model_configs::Model>,
    /// Newest first, at most 10.
    pub checks: Vec<provider_checks::Model>,
}

/// What "sync models" did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncReport {
    pub added: Vec<String>,
    /// Listed by the provider and already configured (edited or not), left as they are.
    pub kept: usize,
}

/// A [`ProviderInput`] that passed validation.
struct ValidProvider {
    name: String,
    kind: ProviderKind,
    base_url: Option<String>,
    priority: i32,
    caps: Vec<String>,
    budget_micros: Option<i64>,
    budget_period: String,
}

pub struct ProviderService {
    db: DatabaseConnection,
    keyring: Arc<Keyring>,
    clock: SharedClock,
    settings: Arc<Settings>,
    http: reqwest::Client,
    /// Bumped after every change, so the gateway reloads its routing table at once.
    changes: tokio::sync::watch::Sender<u64>,
}

/// What a key is sealed as (see [`crate::crypto`]).
pub fn key_label(credential_id: Uuid) -> String {
    format!("provider_credential:{credential_id}")
}

/// The URL calls go to: the override, or the kind's default.
pub fn effective_base_url(provider: &providers::Model) -> Option<String> {
    let kind: Option<ProviderKind> = provider.kind.parse().ok();
    provider
        .base_url
        .clone()
        .or_else(|| kind.and_then(ProviderKind::default_base_url).map(str::to_string))
        .map(|u| u.trim_end_matches('/').to_string())
}

fn validate_name(name: &str) -> Result<String, ProviderError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(invalid("name: must be 1 to 64 characters"));
    }
    if !name.chars().all(|c| c.is_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-')) {
        return Err(invalid("name: use letters, digits, spaces, '.', '_' or '-'"));
    }
    Ok(name.to_string())
}

/// Checks a base URL: http(s), a host, no credentials, query or fragment (keys belong in the key
/// store, where they are encrypted and masked, not in a URL that is shown and logged).
pub fn validate_base_url(raw: &str) -> Result<Option<String>, ProviderError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    // The value is not repeated: a URL may carry a key someone pasted into it.
    let url = url::Url::parse(raw).map_err(|e| invalid(format!("base URL: not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("base URL: must be an http:// or https:// URL with a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("base URL: must not contain a user name or password; add the key under Keys"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("base URL: must not have a query (?...) or fragment (#...)"));
    }
    if raw.len() > 512 {
        return Err(invalid("base URL: must be at most 512 characters"));
    }
    Ok(Some(url.as_str().trim_end_matches('/').to_string()))
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn validate_capabilities(caps: &[String], default: &[&str]) -> Result<Vec<String>, ProviderError> {
    let mut out: Vec<String> = Vec::new();
    for c in caps.iter().map(|c| c.trim()).filter(|c| !c.is_empty()) {
        if !CAPABILITIES.contains(&c) {
            return Err(invalid(format!(
                "capabilities: '{}' is not one of {}",
                shorten(c, 40),
                CAPABILITIES.join(", ")
            )));
        }
        if !out.iter().any(|o| o == c) {
            out.push(c.to_string());
        }
    }
    if out.is_empty() {
        out = default.iter().map(|s| (*s).to_string()).collect();
    }
    Ok(out)
}

fn parse_int(field: &str, raw: &str, min: i64, max: i64) -> Result<Option<i64>, ProviderError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(format!(
            "{field}: must be a whole number from {min} to {max}; got '{}'",
            shorten(raw, 40)
        ))),
    }
}

/// Parses US dollars such as `0.15` or `15` into micro-dollars, exactly (no floating point).
pub fn parse_usd_micros(field: &str, raw: &str) -> Result<i64, ProviderError> {
    let raw = raw.trim().trim_start_matches('$');
    if raw.is_empty() {
        return Ok(0);
    }
    let bad = || {
        invalid(format!(
            "{field}: must be US dollars per million tokens with at most 6 decimals, such as 0.15; got '{}'",
            shorten(raw, 40)
        ))
    };
    let (whole, frac) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 6
        || whole.len() > 7
    {
        return Err(bad());
    }
    let whole: i64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let frac: i64 = format!("{frac:0<6}").parse().map_err(|_| bad())?;
    Ok(whole * 1_000_000 + frac)
}

/// Micro-dollars as the form shows them: `0.15`, `15`.
pub fn format_usd_micros(micros: i64) -> String {
    let whole = micros / 1_000_000;
    let frac = micros % 1_000_000;
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:06}").trim_end_matches('0'))
    }
}

fn validate_params(raw: &str) -> Result<Value, ProviderError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(serde_json::json!({}));
    }
    if raw.len() > 4096 {
        return Err(invalid("default parameters: at most 4096 characters"));
    }
    let v: Value = serde_json::from_str(raw)
        .map_err(|e| invalid(format!("default parameters: not valid JSON ({e})")))?;
    let Some(obj) = v.as_object() else {
        return Err(invalid("default parameters: must be a JSON object such as {\"temperature\": 0.2}"));
    };
    let range = |k: &str, lo: f64, hi: f64| -> Result<(), ProviderError> {
        match obj.get(k) {
            None => Ok(()),
            Some(x) if x.as_f64().is_some_and(|f| (lo..=hi).contains(&f)) => Ok(()),
            Some(_) => Err(invalid(format!("default parameters: {k} must be a number from {lo} to {hi}"))),
        }
    };
    range("temperature", 0.0, 2.0)?;
    range("top_p", 0.0, 1.0)?;
    range("presence_penalty", -2.0, 2.0)?;
    range("frequency_penalty", -2.0, 2.0)?;
    if let Some(x) = obj.get("max_tokens")
        && !x.as_u64().is_some_and(|n| (1..=10_000_000).contains(&n))
    {
        return Err(invalid("default parameters: max_tokens must be a whole number from 1 to 10000000"));
    }
    Ok(v)
}

/// Checks a key's text without ever repeating it.
pub fn validate_key(raw: &str) -> Result<String, ProviderError> {
    let key = raw.trim();
    if key.is_empty() {
        return Err(invalid("key: paste the API key"));
    }
    if key.len() > 4096 {
        return Err(invalid("key: longer than 4096 characters; is this really an API key?"));
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("key: contains spaces, line breaks or control characters; paste only the key"));
    }
    Ok(key.to_string())
}

fn validate_label(raw: &str) -> Result<String, ProviderError> {
    let label = raw.trim();
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err(invalid("label: must be 1 to 64 characters"));
    }
    Ok(label.to_string())
}

/// `YYYY-MM-DD` (end of that day, UTC), or empty for no expiry.
fn parse_expiry(raw: &str) -> Result<Option<DateTime<Utc>>, ProviderError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    // The value is not repeated: a key pasted into the wrong field must not come back in a message.
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .map_err(|_| invalid("expires: not a date such as 2027-01-31"))?;
    Ok(date.and_hms_opt(23, 59, 59).map(|d| d.and_utc()))
}

fn caps_json(caps: &[String]) -> Value {
    Value::Array(caps.iter().cloned().map(Value::String).collect())
}

/// A model row's capabilities as strings.
pub fn caps_of(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default()
}

impl ProviderService {
    pub fn new(
        db: DatabaseConnection,
        keyring: Arc<Keyring>,
        clock: SharedClock,
        settings: Arc<Settings>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("goblin-assistant/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { db, keyring, clock, settings, http, changes: tokio::sync::watch::Sender::new(0) }
    }

    /// Notified after every change to providers, keys or models.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Every change is audited, so this is also where the gateway hears of it.
    async fn audit(
        &self,
        actor: Option<Uuid>,
        action: &str,
        target: Uuid,
        detail: Value,
    ) -> Result<(), DbErr> {
        self.changes.send_modify(|v| *v += 1);
        audit::record(
            &self.db,
            self.clock.as_ref(),
            audit::Event {
                actor,
                action,
                target: Some(target.to_string()),
                success: true,
                detail,
                ..Default::default()
            },
        )
        .await
    }

    async fn provider(&self, id: Uuid) -> Result<providers::Model, ProviderError> {
        providers::Entity::find_by_id(id).one(&self.db).await?.ok_or(ProviderError::NotFound("provider"))
    }

    async fn credential(&self, id: Uuid) -> Result<provider_credentials::Model, ProviderError> {
        provider_credentials::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or(ProviderError::NotFound("key"))
    }

    async fn model(&self, id: Uuid) -> Result<model_configs::Model, ProviderError> {
        model_configs::Entity::find_by_id(id).one(&self.db).await?.ok_or(ProviderError::NotFound("model"))
    }

    /// Every provider in routing order (priority, then name), with counts and its last check.
    ///
    /// # Errors
    /// A database error.
    pub async fn list(&self) -> Result<Vec<ProviderSummary>, ProviderError> {
        let rows = providers::Entity::find()
            .order_by_asc(providers::Column::Priority)
            .order_by_asc(providers::Column::Name)
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for provider in rows {
            let keys = provider_credentials::Entity::find()
                .filter(provider_credentials::Column::ProviderId.eq(provider.id));
            let enabled_keys =
                keys.clone().filter(provider_credentials::Column::Enabled.eq(true)).count(&self.db).await?;
            let keys = keys.count(&self.db).await?;
            let models = model_configs::Entity::find()
                .filter(model_configs::Column::ProviderId.eq(provider.id))
                .count(&self.db)
                .await?;
            let last_check = provider_checks::Entity::find()
                .filter(provider_checks::Column::ProviderId.eq(provider.id))
                .order_by_desc(provider_checks::Column::CheckedAt)
                .one(&self.db)
                .await?;
            out.push(ProviderSummary { provider, keys, enabled_keys, models, last_check });
        }
        Ok(out)
    }

    /// # Errors
    /// An unknown id, or a database error.
    pub async fn detail(&self, id: Uuid) -> Result<ProviderDetail, ProviderError> {
        let provider = self.provider(id).await?;
        let keys = provider_credentials::Entity::find()
            .filter(provider_credentials::Column::ProviderId.eq(id))
            .order_by_asc(provider_credentials::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(KeyView::from)
            .collect();
        let models = model_configs::Entity::find()
            .filter(model_configs::Column::ProviderId.eq(id))
            .order_by_asc(model_configs::Column::ModelId)
            .all(&self.db)
            .await?;
        let checks = provider_checks::Entity::find()
            .filter(provider_checks::Column::ProviderId.eq(id))
            .order_by_desc(provider_checks::Column::CheckedAt)
            .limit(10)
            .all(&self.db)
            .await?;
        Ok(ProviderDetail { provider, keys, models, checks })
    }

    fn validated(&self, input: &ProviderInput) -> Result<ValidProvider, ProviderError> {
        let name = validate_name(&input.name)?;
        let kind: ProviderKind = input.kind.parse().map_err(|e: String| invalid(format!("kind: {e}")))?;
        let base_url = validate_base_url(&input.base_url)?;
        if base_url.is_none() && kind.default_base_url().is_none() {
            return Err(invalid(
                "base URL: an OpenAI-compatible server needs one, such as http://localhost:11434/v1",
            ));
        }
        let priority = parse_int("priority", &input.priority, 0, 10_000)?.unwrap_or(100) as i32;
        let caps = validate_capabilities(&input.capabilities, kind.default_capabilities())?;
        let (budget_micros, budget_period) =
            crate::gateway::budget::parse(&input.budget, &input.budget_period).map_err(invalid)?;
        Ok(ValidProvider { name, kind, base_url, priority, caps, budget_micros, budget_period })
    }

    async fn name_taken(&self, name: &str, except: Option<Uuid>) -> Result<bool, DbErr> {
        let mut q = providers::Entity::find().filter(providers::Column::Name.eq(name));
        if let Some(id) = except {
            q = q.filter(providers::Column::Id.ne(id));
        }
        Ok(q.one(&self.db).await?.is_some())
    }

    /// # Errors
    /// Invalid input, a taken name, or a database error.
    pub async fn create(
        &self,
        actor: Option<Uuid>,
        input: &ProviderInput,
    ) -> Result<providers::Model, ProviderError> {
        let ValidProvider { name, kind, base_url, priority, caps, budget_micros, budget_period } =
            self.validated(input)?;
        if self.name_taken(&name, None).await? {
            return Err(ProviderError::NameTaken(name));
        }
        let now = self.clock.now();
        let row = providers::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(name.clone()),
            kind: Set(kind.as_str().to_string()),
            base_url: Set(base_url),
            enabled: Set(input.enabled),
            priority: Set(priority),
            capabilities: Set(caps_json(&caps)),
            created_at: Set(now),
            updated_at: Set(now),
            budget_micros: Set(budget_micros),
            budget_period: Set(budget_period),
        }
        .insert(&self.db)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) { ProviderError::NameTaken(name.clone()) } else { e.into() }
        })?;
        self.audit(
            actor,
            "provider.created",
            row.id,
            serde_json::json!({ "name": name, "kind": kind.as_str() }),
        )
        .await?;
        Ok(row)
    }

    /// # Errors
    /// An unknown id, invalid input, a taken name, or a database error.
    pub async fn update(
        &self,
        actor: Option<Uuid>,
        id: Uuid,
        input: &ProviderInput,
    ) -> Result<providers::Model, ProviderError> {
        let current = self.provider(id).await?;
        let ValidProvider { name, kind, base_url, priority, caps, budget_micros, budget_period } =
            self.validated(input)?;
        if self.name_taken(&name, Some(id)).await? {
            return Err(ProviderError::NameTaken(name));
        }
        let mut row = current.into_active_model();
        row.name = Set(name.clone());
        row.kind = Set(kind.as_str().to_string());
        row.base_url = Set(base_url);
        row.enabled = Set(input.enabled);
        row.priority = Set(priority);
        row.capabilities = Set(caps_json(&caps));
        row.budget_micros = Set(budget_micros);
        row.budget_period = Set(budget_period);
        row.updated_at = Set(self.clock.now());
        let row = row.update(&self.db).await?;
        self.audit(actor, "provider.updated", id, serde_json::json!({ "name": name })).await?;
        Ok(row)
    }

    /// # Errors
    /// An unknown id, or a database error.
    pub async fn set_enabled(
        &self,
        actor: Option<Uuid>,
        id: Uuid,
        enabled: bool,
    ) -> Result<(), ProviderError> {
        let mut row = self.provider(id).await?.into_active_model();
        row.enabled = Set(enabled);
        row.updated_at = Set(self.clock.now());
        row.update(&self.db).await?;
        let action = if enabled { "provider.enabled" } else { "provider.disabled" };
        self.audit(actor, action, id, Value::Null).await?;
        Ok(())
    }

    /// Moves a provider one place up (earlier) or down in routing order, and renumbers priorities
    /// 10, 20, 30, ... so the order is unambiguous.
    ///
    /// # Errors
    /// An unknown id, or a database error.
    pub async fn move_provider(&self, actor: Option<Uuid>, id: Uuid, up: bool) -> Result<(), ProviderError> {
        let txn = self.db.begin().await?;
        let mut rows = providers::Entity::find()
            .order_by_asc(providers::Column::Priority)
            .order_by_asc(providers::Column::Name)
            .all(&txn)
            .await?;
        let pos = rows.iter().position(|p| p.id == id).ok_or(ProviderError::NotFound("provider"))?;
        let other = if up { pos.checked_sub(1) } else { Some(pos + 1).filter(|p| *p < rows.len()) };
        if let Some(other) = other {
            rows.swap(pos, other);
        }
        let now = self.clock.now();
        for (i, p) in rows.into_iter().enumerate() {
            let priority = (i as i32 + 1) * 10;
            if p.priority != priority {
                let mut row = p.into_active_model();
                row.priority = Set(priority);
                row.updated_at = Set(now);
                row.update(&txn).await?;
            }
        }
        txn.commit().await?;
        self.audit(
            actor,
            "provider.reordered",
            id,
            serde_json::json!({ "direction": if up { "up" } else { "down" } }),
        )
        .await?;
        Ok(())
    }

    /// Deletes a provider with its keys, models and checks.
    ///
    /// # Errors
    /// An unknown id, or a database error.
    pub async fn delete(&self, actor: Option<Uuid>, id: Uuid) -> Result<(), ProviderError> {
        let p = self.provider(id).await?;
        providers::Entity::delete_by_id(id).exec(&self.db).await?;
        self.audit(actor, "provider.deleted", id, serde_json::json!({ "name": p.name })).await?;
        Ok(())
    }

    // ---- keys ----

    /// Stores a new key for a provider, sealed under the current encryption key.
    ///
    /// # Errors
    /// An unknown provider, an invalid label, key or expiry, or a database error.
    pub async fn add_key(
        &self,
        actor: Option<Uuid>,
        provider_id: Uuid,
        label: &str,
        key: &str,
        expires: &str,
    ) -> Result<KeyView, ProviderError> {
        self.provider(provider_id).await?;
        let row = self.key_row(
            actor,
            provider_id,
            &validate_label(label)?,
            &validate_key(key)?,
            parse_expiry(expires)?,
        );
        let row = row.insert(&self.db).await?;
        self.audit(
            actor,
            "provider_key.added",
            provider_id,
            serde_json::json!({ "key": row.id, "label": row.label, "masked": row.masked }),
        )
        .await?;
        Ok(row.into())
    }

    pub(crate) fn key_row(
        &self,
        actor: Option<Uuid>,
        provider_id: Uuid,
        label: &str,
        key: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> provider_credentials::ActiveModel {
        let id = Uuid::new_v4();
        let sealed = self.keyring.seal(&key_label(id), key.as_bytes());
        let now = self.clock.now();
        provider_credentials::ActiveModel {
            id: Set(id),
            provider_id: Set(provider_id),
            label: Set(label.to_string()),
            ciphertext: Set(sealed.bytes),
            key_id: Set(sealed.key_id),
            masked: Set(kinds::mask(key)),
            enabled: Set(true),
            expires_at: Set(expires_at),
            last_used_at: Set(None),
            created_by: Set(actor),
            created_at: Set(now),
            updated_at: Set(now),
        }
    }

    /// Replaces a stored key's value (rotating it at the provider); the next call uses the new one.
    ///
    /// # Errors
    /// An unknown key, an invalid key, or a database error.
    pub async fn replace_key(
        &self,
        actor: Option<Uuid>,
        credential_id: Uuid,
        key: &str,
    ) -> Result<KeyView, ProviderError> {
        let current = self.credential(credential_id).await?;
        let key = validate_key(key)?;
        let sealed = self.keyring.seal(&key_label(credential_id), key.as_bytes());
        let provider_id = current.provider_id;
        let mut row = current.into_active_model();
        row.ciphertext = Set(sealed.bytes);
        row.key_id = Set(sealed.key_id);
        row.masked = Set(kinds::mask(&key));
        row.updated_at = Set(self.clock.now());
        let row = row.update(&self.db).await?;
        self.audit(
            actor,
            "provider_key.replaced",
            provider_id,
            serde_json::json!({ "key": credential_id, "masked": row.masked }),
        )
        .await?;
        Ok(row.into())
    }

    /// Changes a key's label, expiry or enabled flag.
    ///
    /// # Errors
    /// An unknown key, invalid input, or a database error.
    pub async fn update_key(
        &self,
        actor: Option<Uuid>,
        credential_id: Uuid,
        label: &str,
        expires: &str,
        enabled: bool,
    ) -> Result<KeyView, ProviderError> {
        let current = self.credential(credential_id).await?;
        let provider_id = current.provider_id;
        let mut row = current.into_active_model();
        row.label = Set(validate_label(label)?);
        row.expires_at = Set(parse_expiry(expires)?);
        row.enabled = Set(enabled);
        row.updated_at = Set(self.clock.now());
        let row = row.update(&self.db).await?;
        self.audit(
            actor,
            "provider_key.updated",
            provider_id,
            serde_json::json!({ "key": credential_id, "enabled": enabled }),
        )
        .await?;
        Ok(row.into())
    }

    /// # Errors
    /// An unknown key, or a database error.
    pub async fn delete_key(&self, actor: Option<Uuid>, credential_id: Uuid) -> Result<(), ProviderError> {
        let c = self.credential(credential_id).await?;
        provider_credentials::Entity::delete_by_id(credential_id).exec(&self.db).await?;
        self.audit(
            actor,
            "provider_key.deleted",
            c.provider_id,
            serde_json::json!({ "key": credential_id, "masked": c.masked }),
        )
        .await?;
        Ok(())
    }

    /// Opens a stored key. The plaintext lives only as long as the call that needs it.
    ///
    /// # Errors
    /// The key was sealed with an encryption key this server lacks, or the row was altered.
    pub fn open_key(&self, c: &provider_credentials::Model) -> Result<Secret<String>, CryptoError> {
        let sealed = Sealed { key_id: c.key_id.clone(), bytes: c.ciphertext.clone() };
        let bytes = self.keyring.open(&key_label(c.id), &sealed)?;
        String::from_utf8(bytes.expose().clone()).map(Secret::new).map_err(|_| CryptoError::Tampered)
    }

    /// The key to use next for a provider: enabled, not expired, least recently used first (which
    /// spreads calls over several keys).
    ///
    /// # Errors
    /// A database error.
    pub async fn next_key(&self, provider_id: Uuid) -> Result<Option<provider_credentials::Model>, DbErr> {
        let now = self.clock.now();
        let keys = provider_credentials::Entity::find()
            .filter(provider_credentials::Column::ProviderId.eq(provider_id))
            .filter(provider_credentials::Column::Enabled.eq(true))
            .order_by_asc(provider_credentials::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(keys
            .into_iter()
            .filter(|k| k.expires_at.is_none_or(|e| e > now))
            .min_by_key(|k| k.last_used_at.map_or(i64::MIN, |t| t.timestamp_micros())))
    }

    async fn mark_used(&self, credential_id: Uuid) -> Result<(), DbErr> {
        provider_credentials::Entity::update_many()
            .col_expr(
                provider_credentials::Column::LastUsedAt,
                sea_orm::sea_query::Expr::value(self.clock.now()),
            )
            .filter(provider_credentials::Column::Id.eq(credential_id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    // ---- calls to the provider ----

    /// `GET {base}/models` with the key; the cheapest call that proves a key and base URL work.
    /// Returns (status, body) or a message for a call that got no answer. Keys are redacted from
    /// every message.
    async fn list_call(
        &self,
        provider: &providers::Model,
        key: Option<&Secret<String>>,
        timeout: Duration,
    ) -> Result<(u16, String), String> {
        let kind: ProviderKind = provider.kind.parse()?;
        let base = effective_base_url(provider).ok_or("this provider has no base URL")?;
        let mut req = self.http.get(format!("{base}/models")).timeout(timeout);
        for (name, value) in kind.auth_headers(key.map(|k| k.expose().as_str())) {
            req = req.header(name, value);
        }
        let redact = |s: String| match key {
            Some(k) => kinds::redact(&s, k.expose()),
            None => s,
        };
        let resp = req.send().await.map_err(|e| {
            redact(if e.is_timeout() {
                format!("no answer within {} s", timeout.as_secs())
            } else if e.is_connect() {
                format!("could not connect to {base}")
            } else {
                format!("the request to {base} failed: {}", without_url(&e))
            })
        })?;
        let status = resp.status().as_u16();
        let body = match tokio::time::timeout(timeout, resp.text()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(redact(format!("the answer could not be read: {}", without_url(&e)))),
            Err(_) => return Err(format!("no complete answer within {} s", timeout.as_secs())),
        };
        Ok((status, redact(body)))
    }

    fn check_timeout(&self) -> Duration {
        Duration::from_secs(
            self.settings.int(setting_keys::PROVIDER_CHECK_TIMEOUT_SECONDS).clamp(1, 600) as u64
        )
    }

    /// The key for a call: the named one, or the next usable one. `None` for keyless local servers.
    async fn key_for_call(
        &self,
        provider: &providers::Model,
        credential_id: Option<Uuid>,
    ) -> Result<Option<(Uuid, Secret<String>)>, ProviderError> {
        let cred = match credential_id {
            Some(id) => {
                let c = self.credential(id).await?;
                if c.provider_id != provider.id {
                    return Err(ProviderError::NotFound("key"));
                }
                Some(c)
            }
            None => self.next_key(provider.id).await?,
        };
        match cred {
            Some(c) => Ok(Some((c.id, self.open_key(&c)?))),
            None if provider.kind.parse::<ProviderKind>().is_ok_and(ProviderKind::key_required) => {
                Err(invalid("this provider has no enabled, unexpired key; add one under Keys first"))
            }
            None => Ok(None),
        }
    }

    /// "Test connection": the cheapest real call with one key (or the next usable key), recorded in
    /// `provider_checks`. Failures of the provider are a recorded result, not an error.
    ///
    /// # Errors
    /// An unknown provider or key, no usable key, a key this server cannot open, or a database error.
    pub async fn check(
        &self,
        actor: Option<Uuid>,
        provider_id: Uuid,
        credential_id: Option<Uuid>,
    ) -> Result<provider_checks::Model, ProviderError> {
        let provider = self.provider(provider_id).await?;
        let key = self.key_for_call(&provider, credential_id).await?;
        let kind: ProviderKind = provider.kind.parse().map_err(invalid)?;
        let timeout = self.check_timeout();
        let started = std::time::Instant::now();
        let outcome = self.list_call(&provider, key.as_ref().map(|(_, k)| k), timeout).await;
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        let (ok, status_code, message) = match outcome {
            Ok((status, body)) if (200..300).contains(&status) => {
                match serde_json::from_str::<Value>(&body)
                    .map_err(|e| e.to_string())
                    .and_then(|v| kind.parse_models(&v))
                {
                    Ok(models) => (true, Some(status), format!("connected; {} models listed", models.len())),
                    Err(e) => (
                        false,
                        Some(status),
                        format!("answered {status}, but the model list could not be read: {e}"),
                    ),
                }
            }
            Ok((status, body)) => {
                (false, Some(status), format!("HTTP {status}: {}", kinds::error_message(&body)))
            }
            Err(message) => (false, None, message),
        };
        if let Some((id, _)) = &key {
            self.mark_used(*id).await?;
        }
        let row = provider_checks::ActiveModel {
            id: Set(Uuid::new_v4()),
            provider_id: Set(provider_id),
            credential_id: Set(key.as_ref().map(|(id, _)| *id)),
            ok: Set(ok),
            status_code: Set(status_code.map(i32::from)),
            latency_ms: Set(latency_ms),
            message: Set(message.chars().take(500).collect()),
            checked_by: Set(actor),
            checked_at: Set(self.clock.now()),
        }
        .insert(&self.db)
        .await?;
        Ok(row)
    }

    // ---- models ----

    fn validated_model(
        &self,
        provider: &providers::Model,
        input: &ModelInput,
    ) -> Result<model_configs::ActiveModel, ProviderError> {
        let model_id = input.model_id.trim();
        if model_id.is_empty()
            || model_id.len() > 128
            || model_id.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "model id: must be 1 to 128 characters without spaces, as the provider names it",
            ));
        }
        let display = input.display_name.trim();
        if display.chars().count() > 128 {
            return Err(invalid("display name: at most 128 characters"));
        }
        let provider_caps = caps_of(&provider.capabilities);
        let provider_caps: Vec<&str> = provider_caps.iter().map(String::as_str).collect();
        let caps = validate_capabilities(&input.capabilities, &provider_caps)?;
        let context = parse_int("context window", &input.context_window, 1, 100_000_000)?.map(|n| n as i32);
        Ok(model_configs::ActiveModel {
            model_id: Set(model_id.to_string()),
            display_name: Set(if display.is_empty() { model_id.to_string() } else { display.to_string() }),
            capabilities: Set(caps_json(&caps)),
            context_window: Set(context),
            price_in_micros_per_mtok: Set(parse_usd_micros("input price", &input.price_in)?),
            price_out_micros_per_mtok: Set(parse_usd_micros("output price", &input.price_out)?),
            default_params: Set(validate_params(&input.default_params)?),
            is_default: Set(input.is_default),
            ..Default::default()
        })
    }

    async fn clear_other_defaults(
        &self,
        txn: &impl ConnectionTrait,
        provider_id: Uuid,
        keep: Uuid,
    ) -> Result<(), DbErr> {
        model_configs::Entity::update_many()
            .col_expr(model_configs::Column::IsDefault, sea_orm::sea_query::Expr::value(false))
            .filter(model_configs::Column::ProviderId.eq(provider_id))
            .filter(model_configs::Column::Id.ne(keep))
            .exec(txn)
            .await
            .map(|_| ())
    }

    /// # Errors
    /// An unknown provider, invalid input, a model already configured, or a database error.
    pub async fn add_model(
        &self,
        actor: Option<Uuid>,
        provider_id: Uuid,
        input: &ModelInput,
    ) -> Result<model_configs::Model, ProviderError> {
        let provider = self.provider(provider_id).await?;
        let mut row = self.validated_model(&provider, input)?;
        let model_id = input.model_id.trim().to_string();
        let exists = model_configs::Entity::find()
            .filter(model_configs::Column::ProviderId.eq(provider_id))
            .filter(model_configs::Column::ModelId.eq(&model_id))
            .one(&self.db)
            .await?
            .is_some();
        if exists {
            return Err(ProviderError::ModelTaken(model_id));
        }
        let now = self.clock.now();
        let id = Uuid::new_v4();
        row.id = Set(id);
        row.provider_id = Set(provider_id);
        row.edited = Set(true);
        row.created_at = Set(now);
        row.updated_at = Set(now);
        let txn = self.db.begin().await?;
        let row = row.insert(&txn).await.map_err(|e| {
            if is_unique_violation(&e) { ProviderError::ModelTaken(model_id.clone()) } else { e.into() }
        })?;
        if row.is_default {
            self.clear_other_defaults(&txn, provider_id, id).await?;
        }
        txn.commit().await?;
        self.audit(actor, "model.added", provider_id, serde_json::json!({ "model": model_id })).await?;
        Ok(row)
    }

    /// Edits a model; it is then marked edited, so "sync models" leaves it alone.
    ///
    /// # Errors
    /// An unknown model, invalid input, or a database error.
    pub async fn update_model(
        &self,
        actor: Option<Uuid>,
        id: Uuid,
        input: &ModelInput,
    ) -> Result<model_configs::Model, ProviderError> {
        let current = self.model(id).await?;
        let provider = self.provider(current.provider_id).await?;
        let mut row = self.validated_model(&provider, input)?;
        let model_id = input.model_id.trim().to_string();
        if model_id != current.model_id {
            let taken = model_configs::Entity::find()
                .filter(model_configs::Column::ProviderId.eq(provider.id))
                .filter(model_configs::Column::ModelId.eq(&model_id))
                .one(&self.db)
                .await?
                .is_some();
            if taken {
                return Err(ProviderError::ModelTaken(model_id));
            }
        }
        row.id = sea_orm::ActiveValue::Unchanged(id);
        row.edited = Set(true);
        row.updated_at = Set(self.clock.now());
        let txn = self.db.begin().await?;
        let row = row.update(&txn).await?;
        if row.is_default {
            self.clear_other_defaults(&txn, provider.id, id).await?;
        }
        txn.commit().await?;
        self.audit(actor, "model.updated", provider.id, serde_json::json!({ "model": model_id })).await?;
        Ok(row)
    }

    /// # Errors
    /// An unknown model, or a database error.
    pub async fn delete_model(&self, actor: Option<Uuid>, id: Uuid) -> Result<(), ProviderError> {
        let m = self.model(id).await?;
        model_configs::Entity::delete_by_id(id).exec(&self.db).await?;
        self.audit(actor, "model.deleted", m.provider_id, serde_json::json!({ "model": m.model_id })).await?;
        Ok(())
    }

    /// Reads the provider's model list and adds the models not yet configured. Configured models,
    /// edited or not, are left exactly as they are.
    ///
    /// # Errors
    /// An unknown provider, no usable key, the provider's error (redacted), or a database error.
    pub async fn sync_models(
        &self,
        actor: Option<Uuid>,
        provider_id: Uuid,
    ) -> Result<SyncReport, ProviderError> {
        let provider = self.provider(provider_id).await?;
        let kind: ProviderKind = provider.kind.parse().map_err(invalid)?;
        let key = self.key_for_call(&provider, None).await?;
        let (status, body) = self
            .list_call(&provider, key.as_ref().map(|(_, k)| k), self.check_timeout())
            .await
            .map_err(ProviderError::Upstream)?;
        if let Some((id, _)) = &key {
            self.mark_used(*id).await?;
        }
        if !(200..300).contains(&status) {
            return Err(ProviderError::Upstream(format!("HTTP {status}: {}", kinds::error_message(&body))));
        }
        let listed = serde_json::from_str::<Value>(&body)
            .map_err(|e| e.to_string())
            .and_then(|v| kind.parse_models(&v))
            .map_err(|e| ProviderError::Upstream(format!("the model list could not be read: {e}")))?;
        let existing: Vec<String> = model_configs::Entity::find()
            .filter(model_configs::Column::ProviderId.eq(provider_id))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.model_id)
            .collect();
        let now = self.clock.now();
        let mut report = SyncReport { added: Vec::new(), kept: 0 };
        let txn = self.db.begin().await?;
        for m in listed {
            if existing.contains(&m.id) || report.added.contains(&m.id) {
                report.kept += usize::from(existing.contains(&m.id));
                continue;
            }
            model_configs::ActiveModel {
                id: Set(Uuid::new_v4()),
                provider_id: Set(provider_id),
                model_id: Set(m.id.clone()),
                display_name: Set(m.display_name.chars().take(128).collect()),
                capabilities: Set(caps_json(&m.capabilities)),
                context_window: Set(m.context_window),
                price_in_micros_per_mtok: Set(0),
                price_out_micros_per_mtok: Set(0),
                default_params: Set(serde_json::json!({})),
                is_default: Set(false),
                edited: Set(false),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
            report.added.push(m.id);
        }
        txn.commit().await?;
        self.audit(
            actor,
            "model.synced",
            provider_id,
            serde_json::json!({ "added": report.added.len(), "kept": report.kept }),
        )
        .await?;
        Ok(report)
    }
}

/// A reqwest error's text without the URL it carries (ours, but kept out of messages anyway).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "the provider");
    }
    text
}

pub(crate) fn is_unique_violation(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}
