//! Runtime settings: the knobs an admin changes from the console, applied without a restart.
//!
//! Every setting is declared once in [`REGISTRY`] with its key, type, rule, default and description.
//! A stored value lives in the `global_settings` table and overrides the default; no row (or a row
//! that no longer passes the rule) means the default. The four `auth.*` defaults come from the
//! process configuration, so `goblin.toml` and `GOBLIN_*` environment settings keep working until
//! someone changes the value in the console.
//!
//! Reads are cheap and synchronous: every process keeps a snapshot in memory. A change made through
//! this process updates its snapshot at once; a change made through another instance reaches this
//! one through [`Settings::spawn_refresher`], which re-reads the table every few seconds. Code that
//! uses a setting must therefore read it at the point of use, not copy it at start-up.
//!
//! ```text
//!  admin form ──set/reset──▶ Settings (instance A) ──upsert + audit──▶ global_settings
//!                                                                          │ poll (REFRESH_EVERY)
//!  request handlers ◀──int/bool/text── snapshot (instance B) ◀──load()─────┘
//! ```

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, DatabaseConnection, DbErr, EntityTrait, TransactionTrait, sea_query::OnConflict,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    audit,
    clock::SharedClock,
    config::{AuthConfig, Config},
    entities::global_settings,
};

/// How often a server instance should re-read the table (see [`Settings::spawn_refresher`]).
pub const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// The key of every setting, for callers of [`Settings::int`], [`Settings::bool`] and [`Settings::text`].
pub mod keys {
    pub const SESSION_IDLE_MINUTES: &str = "auth.session_idle_minutes";
    pub const SESSION_ABSOLUTE_HOURS: &str = "auth.session_absolute_hours";
    pub const RATE_LIMIT_PER_IP: &str = "auth.rate_limit_per_ip";
    pub const RATE_LIMIT_PER_USER: &str = "auth.rate_limit_per_user";
    pub const TASK_DEFAULT_TIMEOUT_SECONDS: &str = "tasks.default_timeout_seconds";
    pub const TASK_MAX_OUTPUT_BYTES: &str = "tasks.max_output_bytes";
    pub const TASK_ALLOW_CUSTOM_SCRIPTS: &str = "tasks.allow_custom_scripts";
    pub const TASK_MAX_CONCURRENT_PER_WORKER: &str = "tasks.max_concurrent_per_worker";
    pub const GATEWAY_REQUEST_LOG_RETENTION_DAYS: &str = "gateway.request_log_retention_days";
    pub const GATEWAY_UPSTREAM_TIMEOUT_SECONDS: &str = "gateway.upstream_timeout_seconds";
    pub const GATEWAY_DEFAULT_STRATEGY: &str = "gateway.default_strategy";
    pub const PROVIDER_CHECK_TIMEOUT_SECONDS: &str = "providers.check_timeout_seconds";
}

/// What a setting holds, and the rule its value must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingType {
    /// A whole number from `min` to `max` inclusive, measured in `unit` (shown next to the field).
    Int {
        min: i64,
        max: i64,
        unit: &'static str,
    },
    Bool,
    /// One of these words, stored in lowercase.
    Choice(&'static [&'static str]),
}

impl SettingType {
    /// `int`, `bool` or `choice`: which form field the admin page shows.
    pub fn kind(&self) -> &'static str {
        match self {
            SettingType::Int { .. } => "int",
            SettingType::Bool => "bool",
            SettingType::Choice(_) => "choice",
        }
    }

    /// The rule in words, as it appears in error messages: "must be a whole number from 5 to 525600".
    pub fn rule(&self) -> String {
        match self {
            SettingType::Int { min, max, .. } => format!("must be a whole number from {min} to {max}"),
            SettingType::Bool => "must be true or false".into(),
            SettingType::Choice(choices) => format!("must be one of {}", choices.join(", ")),
        }
    }

    /// Parses form text. Numbers are plain digits with an optional leading '-'; booleans accept
    /// true/false, on/off and 1/0 in any case; choices are matched without regard to case.
    fn parse(&self, raw: &str) -> Option<SettingValue> {
        let s = raw.trim();
        match self {
            SettingType::Int { .. } => {
                let digits = s.strip_prefix('-').unwrap_or(s);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                // Too many digits for an i64 is simply out of range.
                s.parse().ok().map(SettingValue::Int).filter(|v| self.accepts(v))
            }
            SettingType::Bool => match s.to_ascii_lowercase().as_str() {
                "true" | "on" | "1" => Some(SettingValue::Bool(true)),
                "false" | "off" | "0" => Some(SettingValue::Bool(false)),
                _ => None,
            },
            SettingType::Choice(choices) => choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(s))
                .map(|c| SettingValue::Text((*c).to_string())),
        }
    }

    /// Whether a typed value passes the rule (exact match for choices).
    fn accepts(&self, v: &SettingValue) -> bool {
        match (self, v) {
            (SettingType::Int { min, max, .. }, SettingValue::Int(n)) => (*min..=*max).contains(n),
            (SettingType::Bool, SettingValue::Bool(_)) => true,
            (SettingType::Choice(choices), SettingValue::Text(t)) => choices.contains(&t.as_str()),
            _ => false,
        }
    }
}

/// A setting's value; stored in `global_settings.value` as a JSON number, boolean or string.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    Int(i64),
    Bool(bool),
    Text(String),
}

impl SettingValue {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            SettingValue::Int(n) => serde_json::Value::from(*n),
            SettingValue::Bool(b) => serde_json::Value::Bool(*b),
            SettingValue::Text(t) => serde_json::Value::String(t.clone()),
        }
    }
}

/// The display and form form: `720`, `true`, `priority`. Each parses back to the same value.
impl fmt::Display for SettingValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingValue::Int(n) => write!(f, "{n}"),
            SettingValue::Bool(b) => write!(f, "{b}"),
            SettingValue::Text(t) => f.write_str(t),
        }
    }
}

/// A default that can sit in a `static` (a [`SettingValue::Text`] owns a `String`, which cannot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultValue {
    Int(i64),
    Bool(bool),
    Text(&'static str),
}

impl DefaultValue {
    pub fn to_value(self) -> SettingValue {
        match self {
            DefaultValue::Int(n) => SettingValue::Int(n),
            DefaultValue::Bool(b) => SettingValue::Bool(b),
            DefaultValue::Text(t) => SettingValue::Text(t.to_string()),
        }
    }
}

/// One entry of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingDef {
    pub key: &'static str,
    /// The heading it is listed under on the admin page.
    pub group: &'static str,
    pub label: &'static str,
    /// What it controls and when a change takes effect.
    pub description: &'static str,
    pub ty: SettingType,
    /// The built-in default; for the `auth.*` settings the process configuration replaces it.
    pub default: DefaultValue,
}

impl SettingDef {
    /// Parses and checks form text against this setting's rule.
    ///
    /// # Errors
    /// [`SettingError::Invalid`] naming the setting, the rule and what was given.
    pub fn parse(&self, raw: &str) -> Result<SettingValue, SettingError> {
        self.ty.parse(raw).ok_or_else(|| self.invalid(raw.trim()))
    }

    fn invalid(&self, got: &str) -> SettingError {
        SettingError::Invalid {
            key: self.key.to_string(),
            label: self.label.to_string(),
            rule: format!("{}; got '{}'", self.ty.rule(), shorten(got)),
        }
    }

    /// Reads a stored JSON value, or says why it no longer passes.
    fn read_stored(&self, v: &serde_json::Value) -> Result<SettingValue, String> {
        let value = match v {
            serde_json::Value::Number(n) => n.as_i64().map(SettingValue::Int),
            serde_json::Value::Bool(b) => Some(SettingValue::Bool(*b)),
            serde_json::Value::String(s) => Some(SettingValue::Text(s.clone())),
            _ => None,
        };
        match value {
            Some(value) if self.ty.accepts(&value) => Ok(value),
            _ => Err(format!("{}; stored {v}", self.ty.rule())),
        }
    }
}

/// At most 40 characters of something a person typed, for an error message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

const SIGN_IN: &str = "Sign-in";
const TASKS: &str = "Tasks";
const GATEWAY: &str = "Gateway";
const PROVIDERS: &str = "Providers";

/// Every runtime setting, in the order the admin page lists them.
pub static REGISTRY: &[SettingDef] = &[
    SettingDef {
        key: keys::SESSION_IDLE_MINUTES,
        group: SIGN_IN,
        label: "Idle sign-out",
        description: "How long a browser session may go without a request before it ends and the person \
            has to sign in again with their passkey. Every signed-in request moves the session's expiry \
            this far ahead, so a change applies to each open session from its next request. The default \
            comes from auth.session_idle_minutes in goblin.toml (or GOBLIN_SESSION_IDLE_MINUTES).",
        ty: SettingType::Int { min: 5, max: 525_600, unit: "minutes" },
        default: DefaultValue::Int(720),
    },
    SettingDef {
        key: keys::SESSION_ABSOLUTE_HOURS,
        group: SIGN_IN,
        label: "Maximum session length",
        description: "How long a browser session lasts after sign-in however active it is; then the \
            person signs in again. It is checked against the sign-in time on every request, so lowering \
            it ends sessions older than the new limit at their next request. The default comes from \
            auth.session_absolute_hours in goblin.toml (or GOBLIN_SESSION_ABSOLUTE_HOURS).",
        ty: SettingType::Int { min: 1, max: 8_760, unit: "hours" },
        default: DefaultValue::Int(168),
    },
    SettingDef {
        key: keys::RATE_LIMIT_PER_IP,
        group: SIGN_IN,
        label: "Sign-in attempts per address",
        description: "How many sign-in and registration attempts one client IP address may make in a \
            minute; further attempts are refused until the minute is over. Protects against guessing \
            and floods from one place. Applies from the next attempt; attempts already counted in the \
            current minute still count. The default comes from auth.rate_limit_per_ip in goblin.toml \
            (or GOBLIN_AUTH_RATE_LIMIT_PER_IP).",
        ty: SettingType::Int { min: 1, max: 1_000_000, unit: "attempts per minute" },
        default: DefaultValue::Int(30),
    },
    SettingDef {
        key: keys::RATE_LIMIT_PER_USER,
        group: SIGN_IN,
        label: "Sign-in attempts per username",
        description: "How many sign-in attempts may be made for one username in a minute, from any \
            address; further attempts are refused until the minute is over. Protects one account \
            against attempts spread over many addresses. Applies from the next attempt. The default \
            comes from auth.rate_limit_per_user in goblin.toml (or GOBLIN_AUTH_RATE_LIMIT_PER_USER).",
        ty: SettingType::Int { min: 1, max: 1_000_000, unit: "attempts per minute" },
        default: DefaultValue::Int(10),
    },
    SettingDef {
        key: keys::TASK_DEFAULT_TIMEOUT_SECONDS,
        group: TASKS,
        label: "Default task timeout",
        description: "How long a task may run when its definition sets no timeout of its own; after \
            that the worker stops it and the run is marked as timed out. Applies to runs started after \
            the change; runs already going keep the timeout they started with.",
        ty: SettingType::Int { min: 1, max: 86_400, unit: "seconds" },
        default: DefaultValue::Int(300),
    },
    SettingDef {
        key: keys::TASK_MAX_OUTPUT_BYTES,
        group: TASKS,
        label: "Task output limit",
        description: "The most output (standard output and error together) kept for one task run; \
            anything beyond it is dropped and the run is marked as truncated, so a runaway task cannot \
            fill the database. Applies to runs started after the change.",
        ty: SettingType::Int { min: 1024, max: 104_857_600, unit: "bytes" },
        default: DefaultValue::Int(1_048_576),
    },
    SettingDef {
        key: keys::TASK_ALLOW_CUSTOM_SCRIPTS,
        group: TASKS,
        label: "Allow custom scripts",
        description: "Whether admins may run scripts typed into the console (run by bash with \
            `set -euo pipefail`), beyond the goblins in the registry. Off by default because such a \
            script runs with the worker's permissions on the worker's machine. Applies to the next task \
            submitted; runs already queued or going are not stopped when it is turned off.",
        ty: SettingType::Bool,
        default: DefaultValue::Bool(false),
    },
    SettingDef {
        key: keys::TASK_MAX_CONCURRENT_PER_WORKER,
        group: TASKS,
        label: "Tasks at once per worker",
        description: "How many tasks one worker runs at the same time; further tasks wait in the \
            queue. Each worker reads it before taking its next task, so raising it takes effect at \
            once and lowering it lets the running tasks finish rather than stopping them.",
        ty: SettingType::Int { min: 1, max: 256, unit: "tasks" },
        default: DefaultValue::Int(4),
    },
    SettingDef {
        key: keys::GATEWAY_REQUEST_LOG_RETENTION_DAYS,
        group: GATEWAY,
        label: "Request log retention",
        description: "How many days the gateway keeps its log of model requests (model, provider, \
            tokens, latency, cost) before the periodic cleanup deletes older entries. Lowering it \
            deletes the entries past the new limit at the next cleanup; raising it cannot bring back \
            entries already deleted.",
        ty: SettingType::Int { min: 1, max: 3_650, unit: "days" },
        default: DefaultValue::Int(30),
    },
    SettingDef {
        key: keys::GATEWAY_UPSTREAM_TIMEOUT_SECONDS,
        group: GATEWAY,
        label: "Provider answer timeout",
        description: "How long the gateway waits for a provider to answer one request (for a streamed \
            answer, until the stream ends) before giving up on that provider and trying the next one, \
            or returning an error when none is left. Applies to requests started after the change.",
        ty: SettingType::Int { min: 1, max: 600, unit: "seconds" },
        default: DefaultValue::Int(120),
    },
    SettingDef {
        key: keys::GATEWAY_DEFAULT_STRATEGY,
        group: GATEWAY,
        label: "Default routing strategy",
        description: "How the gateway picks a provider when neither the request nor its route names a \
            strategy: priority (the order set on the Providers page), cost (cheapest first), latency \
            (fastest recent answers first) or health (fewest recent failures first). Applies to the \
            next request.",
        ty: SettingType::Choice(&["priority", "cost", "latency", "health"]),
        default: DefaultValue::Text("priority"),
    },
    SettingDef {
        key: keys::PROVIDER_CHECK_TIMEOUT_SECONDS,
        group: PROVIDERS,
        label: "Health check timeout",
        description: "How long a provider health check waits for an answer before it counts the \
            provider as unreachable. Raise it for slow self-hosted models; lower it to notice outages \
            sooner. Applies from the next check.",
        ty: SettingType::Int { min: 1, max: 120, unit: "seconds" },
        default: DefaultValue::Int(10),
    },
];

/// The registry entry for `key`.
pub fn find(key: &str) -> Option<&'static SettingDef> {
    REGISTRY.iter().find(|d| d.key == key)
}

#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("there is no setting named '{0}'")]
    Unknown(String),
    /// `rule` reads like "must be a whole number from 5 to 525600; got 'abc'".
    #[error("{label} ({key}): {rule}")]
    Invalid { key: String, label: String, rule: String },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// One setting as the admin page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingView {
    pub key: String,
    pub group: String,
    pub label: String,
    pub description: String,
    /// `int`, `bool` or `choice`.
    pub kind: String,
    /// For `int` only.
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub unit: Option<String>,
    /// For `choice` only; empty otherwise.
    pub choices: Vec<String>,
    /// The current value in display form (`720`, `true`, `priority`).
    pub value: String,
    /// The default in display form; for `auth.*`, the one from the process configuration.
    pub default: String,
    /// No valid stored value: the default applies, and resetting would change nothing.
    pub is_default: bool,
    /// When and by whom the stored value was last set; `None` while the default applies.
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Current {
    value: SettingValue,
    /// When and by whom the value was stored; `None` for the default.
    stored: Option<(DateTime<Utc>, Option<Uuid>)>,
}

/// The runtime settings of this process; share one as `Arc<Settings>`.
pub struct Settings {
    db: DatabaseConnection,
    clock: SharedClock,
    defaults: HashMap<&'static str, SettingValue>,
    current: RwLock<crate::FastMap<&'static str, Current>>,
    /// Serialises `load`, `set` and `reset` within this process, so a refresh that read the table
    /// just before a local change cannot put the old value back into the snapshot.
    writer: tokio::sync::Mutex<()>,
    /// Problems with stored rows already logged, so a poll every few seconds does not repeat them.
    warned: Mutex<HashSet<String>>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        let values: Vec<(&str, String)> = REGISTRY
            .iter()
            .filter_map(|d| current.get(d.key).map(|c| (d.key, c.value.to_string())))
            .collect();
        f.debug_struct("Settings").field("values", &values).finish_non_exhaustive()
    }
}

/// The registry defaults, with the `auth.*` ones taken from the process configuration.
fn defaults_from(auth: &AuthConfig) -> HashMap<&'static str, SettingValue> {
    let from_config: [(&str, u32); 4] = [
        (keys::SESSION_IDLE_MINUTES, auth.session_idle_minutes),
        (keys::SESSION_ABSOLUTE_HOURS, auth.session_absolute_hours),
        (keys::RATE_LIMIT_PER_IP, auth.rate_limit_per_ip),
        (keys::RATE_LIMIT_PER_USER, auth.rate_limit_per_user),
    ];
    REGISTRY
        .iter()
        .map(|def| {
            let mut value = def.default.to_value();
            if let Some((_, n)) = from_config.iter().find(|(k, _)| *k == def.key) {
                let configured = SettingValue::Int(i64::from(*n));
                // Config::load checks the same ranges, so this only guards against a hand-built Config.
                if def.ty.accepts(&configured) {
                    value = configured;
                } else {
                    tracing::warn!(key = def.key, value = n, rule = %def.ty.rule(), "configured default is out of range; using the built-in one");
                }
            }
            (def.key, value)
        })
        .collect()
}

impl Settings {
    /// Settings at their defaults; call [`Settings::load`] (or start the refresher) to read stored values.
    pub fn new(db: DatabaseConnection, clock: SharedClock, config: &Config) -> Self {
        let defaults = defaults_from(&config.auth);
        let current =
            defaults.iter().map(|(k, v)| (*k, Current { value: v.clone(), stored: None })).collect();
        Self {
            db,
            clock,
            defaults,
            current: RwLock::new(current),
            writer: tokio::sync::Mutex::new(()),
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// Reads every stored row into the snapshot. Rows with unknown keys (another version's settings)
    /// and stored values that no longer pass their rule are ignored with a warning, once per process,
    /// and the default applies.
    ///
    /// # Errors
    /// A database error; the snapshot is then left as it was.
    pub async fn load(&self) -> Result<(), DbErr> {
        let _writer = self.writer.lock().await;
        let rows = global_settings::Entity::find().all(&self.db).await?;
        let mut next: crate::FastMap<&'static str, Current> =
            self.defaults.iter().map(|(k, v)| (*k, Current { value: v.clone(), stored: None })).collect();
        for row in rows {
            let Some(def) = find(&row.key) else {
                self.warn_once(format!("unknown:{}", row.key), || {
                    tracing::warn!(key = %row.key, "ignoring a stored setting this version does not know");
                });
                continue;
            };
            match def.read_stored(&row.value) {
                Ok(value) => {
                    next.insert(def.key, Current { value, stored: Some((row.updated_at, row.updated_by)) });
                }
                Err(problem) => self.warn_once(format!("invalid:{}={}", row.key, row.value), || {
                    tracing::warn!(key = def.key, %problem, "ignoring a stored setting that no longer passes its rule; using the default");
                }),
            }
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(())
    }

    fn warn_once(&self, what: String, warn: impl FnOnce()) {
        if self.warned.lock().unwrap_or_else(|e| e.into_inner()).insert(what) {
            warn();
        }
    }

    /// The current value of `key`, or `None` for a key that is not in the registry.
    pub fn get(&self, key: &str) -> Option<SettingValue> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).get(key).map(|c| c.value.clone())
    }

    /// The current value of an `Int` setting.
    ///
    /// An unknown key or a setting of another type is a programming error: it fails a debug
    /// assertion, and in release builds returns 0 rather than panicking.
    pub fn int(&self, key: &str) -> i64 {
        let v = self.get(key);
        debug_assert!(matches!(v, Some(SettingValue::Int(_))), "'{key}' is not an Int setting");
        match v {
            Some(SettingValue::Int(n)) => n,
            _ => 0,
        }
    }

    /// [`Settings::int`] as a `u32`, for the settings whose range fits (all of them today): values
    /// outside `u32` saturate.
    pub fn u32(&self, key: &str) -> u32 {
        u32::try_from(self.int(key).max(0)).unwrap_or(u32::MAX)
    }

    /// The current value of a `Bool` setting; like [`Settings::int`], `false` for a wrong key.
    pub fn bool(&self, key: &str) -> bool {
        let v = self.get(key);
        debug_assert!(matches!(v, Some(SettingValue::Bool(_))), "'{key}' is not a Bool setting");
        matches!(v, Some(SettingValue::Bool(true)))
    }

    /// The current value of a `Choice` setting; like [`Settings::int`], a wrong key fails a debug
    /// assertion (release builds return the display form, or "" for an unknown key).
    pub fn text(&self, key: &str) -> String {
        let v = self.get(key);
        debug_assert!(matches!(v, Some(SettingValue::Text(_))), "'{key}' is not a Choice setting");
        v.map(|v| v.to_string()).unwrap_or_default()
    }

    /// Every setting with its current value for the admin page, in registry order. Re-reads the table
    /// first, so the page shows changes made through other instances too.
    ///
    /// # Errors
    /// A database error.
    pub async fn list(&self) -> Result<Vec<SettingView>, DbErr> {
        self.load().await?;
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        Ok(REGISTRY
            .iter()
            .map(|def| {
                let default = self.defaults.get(def.key).map(ToString::to_string).unwrap_or_default();
                let cur = current.get(def.key);
                let (min, max, unit) = match def.ty {
                    SettingType::Int { min, max, unit } => (Some(min), Some(max), Some(unit.to_string())),
                    _ => (None, None, None),
                };
                let choices = match def.ty {
                    SettingType::Choice(c) => c.iter().map(ToString::to_string).collect(),
                    _ => Vec::new(),
                };
                SettingView {
                    key: def.key.into(),
                    group: def.group.into(),
                    label: def.label.into(),
                    description: def.description.into(),
                    kind: def.ty.kind().into(),
                    min,
                    max,
                    unit,
                    choices,
                    value: cur.map(|c| c.value.to_string()).unwrap_or_else(|| default.clone()),
                    default,
                    is_default: cur.is_none_or(|c| c.stored.is_none()),
                    updated_at: cur.and_then(|c| c.stored).map(|(at, _)| at),
                    updated_by: cur.and_then(|c| c.stored).and_then(|(_, by)| by),
                }
            })
            .collect())
    }

    /// Validates form text without storing it (for inline form messages). See [`Settings::set`] for
    /// the accepted forms.
    ///
    /// # Errors
    /// [`SettingError::Unknown`] or [`SettingError::Invalid`].
    pub fn validate(key: &str, raw: &str) -> Result<SettingValue, SettingError> {
        find(key).ok_or_else(|| SettingError::Unknown(shorten(key)))?.parse(raw)
    }

    /// The value stored for `def` that passes its rule, else the default: the "old" of an audit entry.
    async fn stored_or_default(&self, def: &SettingDef) -> Result<SettingValue, DbErr> {
        let row = global_settings::Entity::find_by_id(def.key.to_string()).one(&self.db).await?;
        Ok(row
            .and_then(|r| def.read_stored(&r.value).ok())
            .unwrap_or_else(|| self.defaults.get(def.key).cloned().unwrap_or(def.default.to_value())))
    }

    /// Parses `raw` (form text, trimmed: plain digits with an optional leading '-' for numbers;
    /// true/false, on/off or 1/0 in any case for booleans, so callers pass "false" for an unchecked
    /// checkbox; a listed word in any case for choices), checks it, stores it, records
    /// `setting.changed` with `{key, old, new}` in the audit log, and updates this process's values at
    /// once. Other instances pick it up at their next refresh. Returns the value stored.
    ///
    /// # Errors
    /// [`SettingError::Unknown`], [`SettingError::Invalid`] (nothing is stored), or a database error
    /// (the value and its audit entry are stored together or not at all).
    #[tracing::instrument(skip(self))]
    pub async fn set(&self, actor: Option<Uuid>, key: &str, raw: &str) -> Result<SettingValue, SettingError> {
        let def = find(key).ok_or_else(|| SettingError::Unknown(shorten(key)))?;
        let value = def.parse(raw)?;
        let _writer = self.writer.lock().await;
        // Read before the transaction, which then starts with a write: on SQLite a transaction that
        // reads first and writes later can fail at once when another connection wrote in between.
        let old = self.stored_or_default(def).await?;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        global_settings::Entity::insert(global_settings::ActiveModel {
            key: Set(def.key.to_string()),
            value: Set(value.to_json()),
            updated_by: Set(actor),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(global_settings::Column::Key)
                .update_columns([
                    global_settings::Column::Value,
                    global_settings::Column::UpdatedBy,
                    global_settings::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            audit::Event {
                actor,
                action: "setting.changed",
                target: Some(def.key.to_string()),
                success: true,
                detail: serde_json::json!({ "key": def.key, "old": old.to_json(), "new": value.to_json() }),
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        self.current
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def.key, Current { value: value.clone(), stored: Some((now, actor)) });
        Ok(value)
    }

    /// Deletes the stored value so the default applies again, recorded as `setting.reset` with
    /// `{key, old, new}` (new being the default). Resetting a setting already at its default is
    /// recorded too: the audit log shows what the admin asked for.
    ///
    /// # Errors
    /// [`SettingError::Unknown`] or a database error.
    #[tracing::instrument(skip(self))]
    pub async fn reset(&self, actor: Option<Uuid>, key: &str) -> Result<(), SettingError> {
        let def = find(key).ok_or_else(|| SettingError::Unknown(shorten(key)))?;
        let default = self.defaults.get(def.key).cloned().unwrap_or(def.default.to_value());
        let _writer = self.writer.lock().await;
        let old = self.stored_or_default(def).await?;
        let txn = self.db.begin().await?;
        global_settings::Entity::delete_by_id(def.key.to_string()).exec(&txn).await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            audit::Event {
                actor,
                action: "setting.reset",
                target: Some(def.key.to_string()),
                success: true,
                detail: serde_json::json!({ "key": def.key, "old": old.to_json(), "new": default.to_json() }),
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        self.current
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(def.key, Current { value: default, stored: None });
        Ok(())
    }

    /// Spawns a task that calls [`Settings::load`] at once and then every `every` (at least 10 ms),
    /// so changes made through another instance apply here without a restart. Errors are logged and
    /// the previous values kept. The task ends by itself once every other `Arc` to these settings is
    /// dropped; abort the handle to stop it sooner.
    pub fn spawn_refresher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(settings) = weak.upgrade() else { break };
                if let Err(e) = settings.load().await {
                    tracing::warn!(error = %e, "could not refresh runtime settings; keeping the previous values");
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeMap, path::Path};

    use chrono::TimeZone;
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};

    use super::*;
    use crate::{
        clock::ManualClock,
        config::Sources,
        entities::audit_log,
        users::{self, Role},
    };

    const ALL_KEYS: &[&str] = &[
        keys::SESSION_IDLE_MINUTES,
        keys::SESSION_ABSOLUTE_HOURS,
        keys::RATE_LIMIT_PER_IP,
        keys::RATE_LIMIT_PER_USER,
        keys::TASK_DEFAULT_TIMEOUT_SECONDS,
        keys::TASK_MAX_OUTPUT_BYTES,
        keys::TASK_ALLOW_CUSTOM_SCRIPTS,
        keys::TASK_MAX_CONCURRENT_PER_WORKER,
        keys::GATEWAY_REQUEST_LOG_RETENTION_DAYS,
        keys::GATEWAY_UPSTREAM_TIMEOUT_SECONDS,
        keys::GATEWAY_DEFAULT_STRATEGY,
        keys::PROVIDER_CHECK_TIMEOUT_SECONDS,
    ];

    fn config(dir: &Path, env: &[(&str, &str)]) -> Config {
        let mut vars: BTreeMap<String, String> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vars.insert("DATABASE_URL".into(), format!("sqlite://{}?mode=rwc", dir.join("goblin.db").display()));
        Config::load(&Sources { file: None, env: vars }).unwrap()
    }

    fn clock() -> SharedClock {
        Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 0).unwrap()))
    }

    /// A migrated SQLite database in `dir`; a second call opens a second pool on the same file, as a
    /// second server instance would.
    async fn open(config: &Config) -> DatabaseConnection {
        let db = crate::db::connect(&config.database).await.unwrap();
        crate::db::migrate_up(&db).await.unwrap();
        db
    }

    async fn admin(db: &DatabaseConnection, clock: &SharedClock) -> Uuid {
        users::create_service_account(db, clock.as_ref(), "settings-admin", Role::Admin).await.unwrap().id
    }

    async fn row(db: &DatabaseConnection, key: &str) -> Option<global_settings::Model> {
        global_settings::Entity::find_by_id(key.to_string()).one(db).await.unwrap()
    }

    async fn audit_rows(db: &DatabaseConnection, action: &str) -> Vec<audit_log::Model> {
        audit_log::Entity::find()
            .filter(audit_log::Column::Action.eq(action))
            .order_by_asc(audit_log::Column::Id)
            .all(db)
            .await
            .unwrap()
    }

    #[test]
    fn every_key_is_registered_once_and_every_default_passes_its_rule() {
        for key in ALL_KEYS {
            assert!(find(key).is_some(), "{key} is not in the registry");
        }
        assert_eq!(REGISTRY.len(), ALL_KEYS.len(), "a registry entry without a keys:: constant");
        let unique: HashSet<&str> = REGISTRY.iter().map(|d| d.key).collect();
        assert_eq!(unique.len(), REGISTRY.len(), "duplicate keys");
        for def in REGISTRY {
            let default = def.default.to_value();
            assert!(def.ty.accepts(&default), "{}: default {default} fails {}", def.key, def.ty.rule());
            // The display form is what the form sends back; it must parse to the same value.
            assert_eq!(def.parse(&default.to_string()).unwrap(), default, "{}", def.key);
            assert_eq!(def.read_stored(&default.to_json()).unwrap(), default, "{}", def.key);
            assert!(def.key.len() <= 128, "fits global_settings.key");
            assert!(!def.label.is_empty() && def.description.len() > 80, "{} needs a description", def.key);
            assert!(["Sign-in", "Tasks", "Gateway", "Providers"].contains(&def.group));
        }
        // The built-in auth defaults are the configuration's own defaults.
        let dir = tempfile::tempdir().unwrap();
        let defaults = defaults_from(&config(dir.path(), &[]).auth);
        for def in REGISTRY {
            assert_eq!(defaults[def.key], def.default.to_value(), "{}", def.key);
        }
    }

    #[test]
    fn accepted_forms_are_trimmed_and_normalised() {
        let v = |k, raw| Settings::validate(k, raw).unwrap();
        assert_eq!(v(keys::SESSION_IDLE_MINUTES, " 60 "), SettingValue::Int(60));
        assert_eq!(v(keys::SESSION_IDLE_MINUTES, "525600"), SettingValue::Int(525_600));
        assert_eq!(v(keys::SESSION_IDLE_MINUTES, "5"), SettingValue::Int(5));
        for t in ["true", "TRUE", "on", "On", "1"] {
            assert_eq!(v(keys::TASK_ALLOW_CUSTOM_SCRIPTS, t), SettingValue::Bool(true), "{t}");
        }
        for f in ["false", "False", "off", "OFF", "0", " 0 "] {
            assert_eq!(v(keys::TASK_ALLOW_CUSTOM_SCRIPTS, f), SettingValue::Bool(false), "{f}");
        }
        assert_eq!(v(keys::GATEWAY_DEFAULT_STRATEGY, " Latency"), SettingValue::Text("latency".into()));
    }

    #[test]
    fn bad_values_name_the_setting_and_the_rule() {
        let idle = "Idle sign-out (auth.session_idle_minutes): must be a whole number from 5 to 525600; got";
        let cases: &[(&str, &str, String)] = &[
            (keys::SESSION_IDLE_MINUTES, "abc", format!("{idle} 'abc'")),
            (keys::SESSION_IDLE_MINUTES, "4", format!("{idle} '4'")),
            (keys::SESSION_IDLE_MINUTES, "525601", format!("{idle} '525601'")),
            (keys::SESSION_IDLE_MINUTES, "-5", format!("{idle} '-5'")),
            (keys::SESSION_IDLE_MINUTES, "", format!("{idle} ''")),
            (keys::SESSION_IDLE_MINUTES, "1_000", format!("{idle} '1_000'")),
            (keys::SESSION_IDLE_MINUTES, "+60", format!("{idle} '+60'")),
            (keys::SESSION_IDLE_MINUTES, "60.5", format!("{idle} '60.5'")),
            (keys::SESSION_IDLE_MINUTES, "99999999999999999999", format!("{idle} '99999999999999999999'")),
            (
                keys::TASK_MAX_OUTPUT_BYTES,
                "1023",
                "Task output limit (tasks.max_output_bytes): must be a whole number from 1024 to 104857600; \
                 got '1023'"
                    .into(),
            ),
            (
                keys::TASK_ALLOW_CUSTOM_SCRIPTS,
                "maybe",
                "Allow custom scripts (tasks.allow_custom_scripts): must be true or false; got 'maybe'"
                    .into(),
            ),
            (
                keys::GATEWAY_DEFAULT_STRATEGY,
                "x",
                "Default routing strategy (gateway.default_strategy): must be one of priority, cost, \
                 latency, health; got 'x'"
                    .into(),
            ),
        ];
        for (key, raw, expected) in cases {
            let e = Settings::validate(key, raw).unwrap_err();
            assert!(matches!(e, SettingError::Invalid { .. }), "{key} {raw:?}: {e:?}");
            assert_eq!(&e.to_string(), expected);
        }
        let e = Settings::validate("auth.nope", "1").unwrap_err();
        assert!(matches!(e, SettingError::Unknown(_)));
        assert_eq!(e.to_string(), "there is no setting named 'auth.nope'");
        // What a person typed is cut short in the message.
        let long = "9".repeat(500);
        let e = Settings::validate(keys::SESSION_IDLE_MINUTES, &long).unwrap_err().to_string();
        assert!(e.len() < 200 && e.ends_with("…'"), "{e}");
    }

    #[tokio::test]
    async fn refused_values_leave_the_stored_value_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &[]);
        let db = open(&cfg).await;
        let clock = clock();
        let actor = admin(&db, &clock).await;
        let settings = Settings::new(db.clone(), clock, &cfg);
        settings.set(Some(actor), keys::SESSION_IDLE_MINUTES, "90").await.unwrap();
        settings.set(Some(actor), keys::GATEWAY_DEFAULT_STRATEGY, "cost").await.unwrap();
        let before =
            (row(&db, keys::SESSION_IDLE_MINUTES).await, row(&db, keys::GATEWAY_DEFAULT_STRATEGY).await);
        let audited = audit_rows(&db, "setting.changed").await.len();

        for (key, raw) in [
            (keys::SESSION_IDLE_MINUTES, "abc"),
            (keys::SESSION_IDLE_MINUTES, "4"),
            (keys::SESSION_IDLE_MINUTES, "525601"),
            (keys::GATEWAY_DEFAULT_STRATEGY, "random"),
        ] {
            let e = settings.set(Some(actor), key, raw).await.unwrap_err();
            assert!(matches!(e, SettingError::Invalid { .. }), "{key} {raw}: {e:?}");
            assert!(e.to_string().contains(key), "{e}");
        }
        let e = settings.set(Some(actor), "gateway.nope", "1").await.unwrap_err();
        assert!(matches!(e, SettingError::Unknown(_)), "{e:?}");
        let e = settings.set(Some(actor), keys::TASK_ALLOW_CUSTOM_SCRIPTS, "maybe").await.unwrap_err();
        assert!(e.to_string().contains("must be true or false; got 'maybe'"), "{e}");
        assert!(matches!(settings.reset(Some(actor), "gateway.nope").await, Err(SettingError::Unknown(_))));

        let after =
            (row(&db, keys::SESSION_IDLE_MINUTES).await, row(&db, keys::GATEWAY_DEFAULT_STRATEGY).await);
        assert_eq!(before, after);
        assert!(row(&db, keys::TASK_ALLOW_CUSTOM_SCRIPTS).await.is_none());
        assert!(row(&db, "gateway.nope").await.is_none());
        assert_eq!(audit_rows(&db, "setting.changed").await.len(), audited);
        assert_eq!(settings.int(keys::SESSION_IDLE_MINUTES), 90);
        assert_eq!(settings.text(keys::GATEWAY_DEFAULT_STRATEGY), "cost");
        assert!(!settings.bool(keys::TASK_ALLOW_CUSTOM_SCRIPTS));
    }

    #[tokio::test]
    async fn set_reads_back_and_reset_returns_to_the_configured_default() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            &[("GOBLIN_SESSION_IDLE_MINUTES", "60"), ("GOBLIN_AUTH_RATE_LIMIT_PER_IP", "7")],
        );
        let db = open(&cfg).await;
        let clock = clock();
        let actor = admin(&db, &clock).await;
        let settings = Settings::new(db.clone(), clock.clone(), &cfg);
        settings.load().await.unwrap();

        // Defaults: from the configuration for auth.*, built in for the rest.
        assert_eq!(settings.int(keys::SESSION_IDLE_MINUTES), 60);
        assert_eq!(settings.u32(keys::RATE_LIMIT_PER_IP), 7);
        assert_eq!(settings.int(keys::SESSION_ABSOLUTE_HOURS), 168);
        assert_eq!(settings.int(keys::TASK_MAX_OUTPUT_BYTES), 1_048_576);
        assert!(!settings.bool(keys::TASK_ALLOW_CUSTOM_SCRIPTS));
        assert_eq!(settings.text(keys::GATEWAY_DEFAULT_STRATEGY), "priority");
        let views = settings.list().await.unwrap();
        assert_eq!(views.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(), ALL_KEYS);
        let idle = &views[0];
        assert_eq!((idle.value.as_str(), idle.default.as_str(), idle.is_default), ("60", "60", true));
        assert_eq!((idle.kind.as_str(), idle.min, idle.max), ("int", Some(5), Some(525_600)));
        assert_eq!(idle.unit.as_deref(), Some("minutes"));
        assert_eq!((idle.updated_at, idle.updated_by), (None, None));
        let strategy = views.iter().find(|v| v.key == keys::GATEWAY_DEFAULT_STRATEGY).unwrap();
        assert_eq!(strategy.kind, "choice");
        assert_eq!(strategy.choices, ["priority", "cost", "latency", "health"]);
        assert_eq!((strategy.min, strategy.unit.as_deref()), (None, None));

        // Set: the value is stored as typed JSON and read back at once.
        assert_eq!(
            settings.set(Some(actor), keys::SESSION_IDLE_MINUTES, " 90 ").await.unwrap(),
            SettingValue::Int(90)
        );
        settings.set(Some(actor), keys::TASK_ALLOW_CUSTOM_SCRIPTS, "on").await.unwrap();
        settings.set(None, keys::GATEWAY_DEFAULT_STRATEGY, "Health").await.unwrap();
        assert_eq!(settings.int(keys::SESSION_IDLE_MINUTES), 90);
        assert!(settings.bool(keys::TASK_ALLOW_CUSTOM_SCRIPTS));
        assert_eq!(settings.text(keys::GATEWAY_DEFAULT_STRATEGY), "health");
        let stored = row(&db, keys::SESSION_IDLE_MINUTES).await.unwrap();
        assert_eq!(stored.value, serde_json::json!(90));
        assert_eq!((stored.updated_by, stored.updated_at), (Some(actor), clock.now()));
        assert_eq!(row(&db, keys::TASK_ALLOW_CUSTOM_SCRIPTS).await.unwrap().value, serde_json::json!(true));
        assert_eq!(
            row(&db, keys::GATEWAY_DEFAULT_STRATEGY).await.unwrap().value,
            serde_json::json!("health")
        );

        // Setting again updates the same row.
        settings.set(Some(actor), keys::SESSION_IDLE_MINUTES, "120").await.unwrap();
        assert_eq!(row(&db, keys::SESSION_IDLE_MINUTES).await.unwrap().value, serde_json::json!(120));
        assert_eq!(global_settings::Entity::find().all(&db).await.unwrap().len(), 3);

        let views = settings.list().await.unwrap();
        let idle = &views[0];
        assert_eq!((idle.value.as_str(), idle.default.as_str(), idle.is_default), ("120", "60", false));
        assert_eq!((idle.updated_at, idle.updated_by), (Some(clock.now()), Some(actor)));

        // A fresh process over the same database starts at the defaults, then loads the stored values.
        let restarted = Settings::new(db.clone(), clock.clone(), &cfg);
        assert_eq!(restarted.int(keys::SESSION_IDLE_MINUTES), 60);
        restarted.load().await.unwrap();
        assert_eq!(restarted.int(keys::SESSION_IDLE_MINUTES), 120);
        assert_eq!(restarted.text(keys::GATEWAY_DEFAULT_STRATEGY), "health");

        // Reset: the row goes, the configured default is back.
        settings.reset(Some(actor), keys::SESSION_IDLE_MINUTES).await.unwrap();
        assert_eq!(settings.int(keys::SESSION_IDLE_MINUTES), 60);
        assert!(row(&db, keys::SESSION_IDLE_MINUTES).await.is_none());
        settings.reset(Some(actor), keys::GATEWAY_DEFAULT_STRATEGY).await.unwrap();
        assert_eq!(settings.text(keys::GATEWAY_DEFAULT_STRATEGY), "priority");
        let idle = &settings.list().await.unwrap()[0];
        assert_eq!((idle.value.as_str(), idle.is_default, idle.updated_at), ("60", true, None));
    }

    #[tokio::test]
    async fn stored_rows_that_no_longer_pass_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &[]);
        let db = open(&cfg).await;
        let clock = clock();
        for (key, value) in [
            ("ui.theme", serde_json::json!("dark")),
            (keys::TASK_MAX_CONCURRENT_PER_WORKER, serde_json::json!(100_000)),
            (keys::TASK_ALLOW_CUSTOM_SCRIPTS, serde_json::json!("yes")),
            (keys::GATEWAY_DEFAULT_STRATEGY, serde_json::json!("Cost")),
            (keys::PROVIDER_CHECK_TIMEOUT_SECONDS, serde_json::json!(2.5)),
            (keys::GATEWAY_UPSTREAM_TIMEOUT_SECONDS, serde_json::json!(45)),
        ] {
            global_settings::Entity::insert(global_settings::ActiveModel {
                key: Set(key.into()),
                value: Set(value),
                updated_by: Set(None),
                updated_at: Set(clock.now()),
            })
            .exec_without_returning(&db)
            .await
            .unwrap();
        }
        let settings = Settings::new(db.clone(), clock.clone(), &cfg);
        settings.load().await.unwrap();
        settings.load().await.unwrap(); // warnings are logged once; loading again is fine
        assert_eq!(settings.int(keys::TASK_MAX_CONCURRENT_PER_WORKER), 4);
        assert!(!settings.bool(keys::TASK_ALLOW_CUSTOM_SCRIPTS));
        assert_eq!(settings.text(keys::GATEWAY_DEFAULT_STRATEGY), "priority");
        assert_eq!(settings.int(keys::PROVIDER_CHECK_TIMEOUT_SECONDS), 10);
        assert_eq!(settings.int(keys::GATEWAY_UPSTREAM_TIMEOUT_SECONDS), 45, "valid rows still apply");
        let views = settings.list().await.unwrap();
        let worker = views.iter().find(|v| v.key == keys::TASK_MAX_CONCURRENT_PER_WORKER).unwrap();
        assert!(worker.is_default && worker.value == "4");
        assert_eq!(views.len(), REGISTRY.len(), "unknown stored keys are not listed");

        // Setting a valid value over an invalid one audits the default as the old value.
        settings.set(None, keys::TASK_MAX_CONCURRENT_PER_WORKER, "8").await.unwrap();
        let changed = audit_rows(&db, "setting.changed").await;
        assert_eq!(changed[0].detail["old"], serde_json::json!(4));
        assert_eq!(settings.int(keys::TASK_MAX_CONCURRENT_PER_WORKER), 8);
    }

    #[tokio::test]
    async fn other_instances_see_a_change_after_load_and_through_the_refresher() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &[]);
        let db_a = open(&cfg).await;
        let db_b = open(&cfg).await;
        let clock = clock();
        let actor = admin(&db_a, &clock).await;
        let a = Settings::new(db_a, clock.clone(), &cfg);
        let b = Arc::new(Settings::new(db_b.clone(), clock.clone(), &cfg));
        b.load().await.unwrap();

        // By hand: B still has the old value until it loads.
        a.set(Some(actor), keys::TASK_DEFAULT_TIMEOUT_SECONDS, "600").await.unwrap();
        assert_eq!(b.int(keys::TASK_DEFAULT_TIMEOUT_SECONDS), 300);
        b.load().await.unwrap();
        assert_eq!(b.int(keys::TASK_DEFAULT_TIMEOUT_SECONDS), 600);

        // By polling.
        let refresher = b.spawn_refresher(Duration::from_millis(50));
        a.set(Some(actor), keys::TASK_ALLOW_CUSTOM_SCRIPTS, "true").await.unwrap();
        a.reset(Some(actor), keys::TASK_DEFAULT_TIMEOUT_SECONDS).await.unwrap();
        let mut seen = false;
        for _ in 0..100 {
            if b.bool(keys::TASK_ALLOW_CUSTOM_SCRIPTS) && b.int(keys::TASK_DEFAULT_TIMEOUT_SECONDS) == 300 {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(seen, "the refresher did not pick up the change within 5 s");
        refresher.abort();

        // The refresher holds no strong reference: it ends once the settings are dropped.
        let c = Arc::new(Settings::new(db_b, clock, &cfg));
        let handle = c.spawn_refresher(Duration::from_millis(10));
        drop(c);
        tokio::time::timeout(Duration::from_secs(5), handle).await.expect("refresher ends").unwrap();
    }

    #[tokio::test]
    async fn set_and_reset_are_audited_with_actor_and_old_and_new() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &[("GOBLIN_AUTH_RATE_LIMIT_PER_USER", "12")]);
        let db = open(&cfg).await;
        let clock = clock();
        let actor = admin(&db, &clock).await;
        let settings = Settings::new(db.clone(), clock.clone(), &cfg);
        settings.load().await.unwrap();

        settings.set(Some(actor), keys::RATE_LIMIT_PER_USER, "20").await.unwrap();
        settings.set(Some(actor), keys::RATE_LIMIT_PER_USER, "25").await.unwrap();
        settings.reset(Some(actor), keys::RATE_LIMIT_PER_USER).await.unwrap();

        let changed = audit_rows(&db, "setting.changed").await;
        assert_eq!(changed.len(), 2);
        for (entry, old, new) in [(&changed[0], 12, 20), (&changed[1], 20, 25)] {
            assert_eq!(entry.actor_user_id, Some(actor));
            assert_eq!(entry.target.as_deref(), Some(keys::RATE_LIMIT_PER_USER));
            assert_eq!(entry.outcome, "success");
            assert_eq!(entry.at, clock.now());
            assert_eq!(
                entry.detail,
                serde_json::json!({ "key": keys::RATE_LIMIT_PER_USER, "old": old, "new": new })
            );
        }
        let reset = audit_rows(&db, "setting.reset").await;
        assert_eq!(reset.len(), 1);
        assert_eq!(reset[0].actor_user_id, Some(actor));
        assert_eq!(reset[0].target.as_deref(), Some(keys::RATE_LIMIT_PER_USER));
        assert_eq!(
            reset[0].detail,
            serde_json::json!({ "key": keys::RATE_LIMIT_PER_USER, "old": 25, "new": 12 })
        );

        // Choices and booleans are logged as their JSON values; a system change has no actor.
        settings.set(None, keys::GATEWAY_DEFAULT_STRATEGY, "cost").await.unwrap();
        let last = audit_rows(&db, "setting.changed").await.pop().unwrap();
        assert_eq!(last.actor_user_id, None);
        assert_eq!(last.detail["old"], serde_json::json!("priority"));
        assert_eq!(last.detail["new"], serde_json::json!("cost"));
    }
}
