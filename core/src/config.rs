//! Configuration: built-in defaults, then an optional `goblin.toml`, then the environment.
//!
//! Every setting has one dotted key (`database.max_connections`) used in `goblin.toml` and in error
//! messages, and one or more environment names (`GOBLIN_DB_MAX_CONNECTIONS`). Any problem stops
//! start-up with a [`ConfigError`] that names the key, where the value came from, and what is wrong.

use std::{
    collections::BTreeMap,
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Serialize;
use url::Url;

use crate::secret::{Secret, mask_url};

/// Which database the URL selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// `development` (the default) or `production`, which makes some missing settings fatal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunEnv {
    Development,
    Production,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Connection pool settings. On PostgreSQL the defaults are the production ones: 20 connections kept
/// open, up to 60 in all, 30 s to acquire, connections renewed after an hour, pinged before use, and
/// statements cut off after 30 s. SQLite gets a small pool (one file, one writer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolConfig {
    pub min_connections: u32,
    pub max_connections: u32,
    #[serde(serialize_with = "secs")]
    pub acquire_timeout: Duration,
    #[serde(serialize_with = "secs")]
    pub max_lifetime: Duration,
    #[serde(serialize_with = "secs")]
    pub idle_timeout: Duration,
    pub test_before_acquire: bool,
    /// PostgreSQL only.
    #[serde(serialize_with = "secs")]
    pub statement_timeout: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl PoolConfig {
    pub fn defaults_for(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self {
                min_connections: 20,
                max_connections: 60,
                acquire_timeout: Duration::from_secs(30),
                max_lifetime: Duration::from_secs(3600),
                idle_timeout: Duration::from_secs(600),
                test_before_acquire: true,
                statement_timeout: Duration::from_secs(30),
            },
            Backend::Sqlite => Self {
                min_connections: 1,
                max_connections: 8,
                acquire_timeout: Duration::from_secs(30),
                max_lifetime: Duration::from_secs(3600),
                idle_timeout: Duration::from_secs(600),
                test_before_acquire: false,
                statement_timeout: Duration::from_secs(30),
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: Secret<String>,
    pub backend: Backend,
    pub pool: PoolConfig,
}

/// Limits on the sign-in and registration endpoints, per minute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthConfig {
    /// Attempts per client IP address (default 30).
    pub rate_limit_per_ip: u32,
    /// Attempts per username (default 10).
    pub rate_limit_per_user: u32,
    /// A browser session ends after this many minutes without a request (default 720).
    pub session_idle_minutes: u32,
    /// ... and this many hours after sign-in however active it is (default 168).
    pub session_absolute_hours: u32,
    /// How long a checked API token's stored row is trusted before it is read again (default 5 s;
    /// zero reads it on every request). Revocations apply at once on the instance that makes them,
    /// and on the others through Redis when configured, else within this time.
    pub token_cache: Duration,
}

#[derive(Clone, Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter such as `info` or `goblin=debug,sqlx=warn`.
    pub filter: String,
}

/// The effective configuration of one `goblin` process.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where people reach the dashboard; also the WebAuthn origin.
    pub public_url: Url,
    pub data_dir: PathBuf,
    pub env: RunEnv,
    pub database: DatabaseConfig,
    pub redis_url: Option<Secret<String>>,
    /// The 32-byte keys that seal stored secrets, current first (base64, comma-separated in
    /// `GOBLIN_ENCRYPTION_KEYS`, or one key in `GOBLIN_ENCRYPTION_KEY`). Empty in development means a
    /// generated key in the data directory is used.
    pub encryption_keys: Vec<Secret<[u8; 32]>>,
    /// Provider keys and base URLs found in the environment under the conventional names
    /// (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `LOCAL_LLM_BASE_URL`, ...): the first start turns each
    /// into a provider. Empty values are left out.
    pub provider_env: BTreeMap<String, Secret<String>>,
    /// How often each instance re-reads the runtime settings, so a change made on one instance
    /// applies on all of them.
    pub settings_refresh: std::time::Duration,
    pub auth: AuthConfig,
    pub log: LogConfig,
    /// Environment variables that look like ours but are not known; reported as warnings.
    pub unknown_env: Vec<String>,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// The goblin registry and how this process runs tasks.
    pub tasks: TasksConfig,
    /// Raptor: process sampling, its log file, and exception tracing (`[raptor]`).
    pub raptor: RaptorConfig,
    /// Who may read `/metrics` (`[metrics]`).
    pub metrics: MetricsConfig,
}

/// The least severe level a log line must have to be written to the Raptor log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RaptorLevel {
    Error,
    Warn,
    Info,
    Debug,
}

impl RaptorLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            RaptorLevel::Error => "error",
            RaptorLevel::Warn => "warn",
            RaptorLevel::Info => "info",
            RaptorLevel::Debug => "debug",
        }
    }

    /// `error`, `warn` (or `warning`), `info`, `debug`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "error" => Some(RaptorLevel::Error),
            "warn" | "warning" => Some(RaptorLevel::Warn),
            "info" => Some(RaptorLevel::Info),
            "debug" => Some(RaptorLevel::Debug),
            _ => None,
        }
    }
}

/// Raptor, the process monitor (`[raptor]` in `goblin.toml`; the keys of the old `raptor.ini`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaptorConfig {
    /// The least severe app log level also written to the Raptor log (default `warn`). Samples
    /// are always written while Raptor runs.
    pub level: RaptorLevel,
    /// The Raptor log (default `<data_dir>/logs/raptor.log`). Rotated files get `.1`, `.2`, …
    pub file: PathBuf,
    /// The log is rotated at this size (default 50 MiB) and at the start of each day.
    pub max_file_bytes: u64,
    /// Rotated files kept besides the current one (default 5).
    pub max_files: u32,
    pub enable_cpu: bool,
    pub enable_memory: bool,
    /// How often a running Raptor samples (default 1000 ms).
    pub sample_rate: Duration,
    /// Whether error events and panics are stored as exceptions (default true).
    pub trace_exceptions: bool,
    /// Exceptions not seen for this many days are deleted (default 30).
    pub exception_retention_days: u32,
    /// At most this many exception groups are kept; the least recently seen go first (default 1000).
    pub max_exceptions: u32,
}

/// Access to `/metrics` (`[metrics]` in `goblin.toml`).
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// When set, scrapers must send `Authorization: Bearer <token>` (`GOBLIN_METRICS_TOKEN`).
    pub token: Option<Secret<String>>,
    /// Without a token, whether clients on the loopback address may scrape (default true). Behind a
    /// reverse proxy on the same machine every client looks like loopback: set a token there.
    pub loopback_without_token: bool,
}

/// Where goblins are defined and how this process runs them (`[tasks]` in `goblin.toml`).
#[derive(Clone, Debug)]
pub struct TasksConfig {
    /// The goblin registry, a YAML file (`tasks.registry`, `GOBLIN_REGISTRY`; default
    /// `config/goblins.yaml`).
    pub registry: PathBuf,
    /// Whether `registry` was configured. The default path may be missing, and then the sample
    /// registry built into the program is used; a configured path must exist.
    pub registry_configured: bool,
    /// How often the registry file is checked for changes (default 2 s).
    pub registry_poll: Duration,
    /// The working directory of every command (default `<data_dir>/tasks`, created when missing).
    pub workdir: PathBuf,
    /// Whether `goblin serve` runs workers in its own process (default true). `goblin worker`
    /// always does.
    pub workers: bool,
    /// This process's worker id, recorded on the tasks it runs. Default: host name, role and port
    /// (`serve`) or process id (`worker`).
    pub worker_id: Option<String>,
    /// How long a claimed task stays with its worker without a heartbeat (default 30 s); then any
    /// instance marks it failed with "worker lost".
    pub lease: Duration,
    /// How often an idle worker looks for queued tasks (default 1 s; a task submitted on the same
    /// instance wakes it at once).
    pub poll: Duration,
    /// How long a stopped command gets between SIGTERM and SIGKILL (default 5 s).
    pub kill_grace: Duration,
    /// The environment this process started with. Commands never inherit it: they get only the
    /// allowlisted names and their goblin's `required_env` from it.
    pub environment: Secret<BTreeMap<String, String>>,
}

/// One line that names the setting, where its value came from, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub origin: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.origin.is_empty() {
            write!(f, "invalid configuration: {}: {}", self.key, self.problem)
        } else {
            write!(f, "invalid configuration: {} (from {}): {}", self.key, self.origin, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every key, with the environment names that set it (first wins) and whether it is a secret.
struct KeySpec {
    key: &'static str,
    env: &'static [&'static str],
}

const KEYS: &[KeySpec] = &[
    KeySpec { key: "listen", env: &["GOBLIN_LISTEN"] },
    KeySpec { key: "public_url", env: &["GOBLIN_PUBLIC_URL", "FRONTEND_URL"] },
    KeySpec { key: "data_dir", env: &["GOBLIN_DATA_DIR"] },
    KeySpec { key: "env", env: &["GOBLIN_ENV"] },
    KeySpec { key: "redis_url", env: &["REDIS_URL", "GOBLIN_REDIS_URL"] },
    KeySpec { key: "database.url", env: &["DATABASE_URL", "GOBLIN_DATABASE_URL"] },
    KeySpec { key: "database.min_connections", env: &["GOBLIN_DB_MIN_CONNECTIONS"] },
    KeySpec { key: "database.max_connections", env: &["GOBLIN_DB_MAX_CONNECTIONS"] },
    KeySpec { key: "database.acquire_timeout_s", env: &["GOBLIN_DB_ACQUIRE_TIMEOUT_S"] },
    KeySpec { key: "database.max_lifetime_s", env: &["GOBLIN_DB_MAX_LIFETIME_S"] },
    KeySpec { key: "database.idle_timeout_s", env: &["GOBLIN_DB_IDLE_TIMEOUT_S"] },
    KeySpec { key: "database.test_before_acquire", env: &["GOBLIN_DB_TEST_BEFORE_ACQUIRE"] },
    KeySpec { key: "database.statement_timeout_s", env: &["GOBLIN_DB_STATEMENT_TIMEOUT_S"] },
    KeySpec { key: "encryption_key", env: &["GOBLIN_ENCRYPTION_KEY"] },
    KeySpec { key: "encryption_keys", env: &["GOBLIN_ENCRYPTION_KEYS"] },
    KeySpec { key: "auth.rate_limit_per_ip", env: &["GOBLIN_AUTH_RATE_LIMIT_PER_IP"] },
    KeySpec { key: "auth.rate_limit_per_user", env: &["GOBLIN_AUTH_RATE_LIMIT_PER_USER"] },
    KeySpec { key: "auth.session_idle_minutes", env: &["GOBLIN_SESSION_IDLE_MINUTES"] },
    KeySpec { key: "auth.session_absolute_hours", env: &["GOBLIN_SESSION_ABSOLUTE_HOURS"] },
    KeySpec { key: "auth.token_cache_ms", env: &["GOBLIN_TOKEN_CACHE_MS"] },
    KeySpec { key: "settings_refresh_ms", env: &["GOBLIN_SETTINGS_REFRESH_MS"] },
    KeySpec { key: "log.format", env: &["GOBLIN_LOG_FORMAT"] },
    KeySpec { key: "log.filter", env: &["GOBLIN_LOG", "RUST_LOG"] },
    KeySpec { key: "tasks.registry", env: &["GOBLIN_REGISTRY"] },
    KeySpec { key: "tasks.registry_poll_ms", env: &["GOBLIN_REGISTRY_POLL_MS"] },
    KeySpec { key: "tasks.workdir", env: &["GOBLIN_TASK_WORKDIR"] },
    KeySpec { key: "tasks.workers", env: &["GOBLIN_WORKERS"] },
    KeySpec { key: "tasks.worker_id", env: &["GOBLIN_WORKER_ID"] },
    KeySpec { key: "tasks.lease_ms", env: &["GOBLIN_TASK_LEASE_MS"] },
    KeySpec { key: "tasks.poll_ms", env: &["GOBLIN_TASK_POLL_MS"] },
    KeySpec { key: "tasks.kill_grace_ms", env: &["GOBLIN_TASK_KILL_GRACE_MS"] },
    KeySpec { key: "raptor.level", env: &["GOBLIN_RAPTOR_LEVEL"] },
    KeySpec { key: "raptor.file", env: &["GOBLIN_RAPTOR_FILE"] },
    KeySpec { key: "raptor.max_file_mb", env: &["GOBLIN_RAPTOR_MAX_FILE_MB"] },
    KeySpec { key: "raptor.max_files", env: &["GOBLIN_RAPTOR_MAX_FILES"] },
    KeySpec { key: "raptor.enable_cpu", env: &["GOBLIN_RAPTOR_ENABLE_CPU"] },
    KeySpec { key: "raptor.enable_memory", env: &["GOBLIN_RAPTOR_ENABLE_MEMORY"] },
    KeySpec { key: "raptor.sample_rate_ms", env: &["GOBLIN_RAPTOR_SAMPLE_RATE_MS"] },
    KeySpec { key: "raptor.trace_exceptions", env: &["GOBLIN_RAPTOR_TRACE_EXCEPTIONS"] },
    KeySpec { key: "raptor.exception_retention_days", env: &["GOBLIN_RAPTOR_EXCEPTION_RETENTION_DAYS"] },
    KeySpec { key: "raptor.max_exceptions", env: &["GOBLIN_RAPTOR_MAX_EXCEPTIONS"] },
    KeySpec { key: "metrics.token", env: &["GOBLIN_METRICS_TOKEN"] },
    KeySpec { key: "metrics.loopback_without_token", env: &["GOBLIN_METRICS_LOOPBACK_WITHOUT_TOKEN"] },
];

/// The conventional environment names that seed providers on first start (see `providers::seed`).
/// `SILLICONFLOW_API_KEY` is an old misspelling still honoured.
pub const PROVIDER_ENV: &[&str] = &[
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GEMINI_BASE_URL",
    "DEEPSEEK_API_KEY",
    "DEEPSEEK_BASE_URL",
    "GROK_API_KEY",
    "GROK_BASE_URL",
    "SILICONFLOW_API_KEY",
    "SILLICONFLOW_API_KEY",
    "SILICONFLOW_BASE_URL",
    "MOONSHOT_API_KEY",
    "MOONSHOT_BASE_URL",
    "ELEVENLABS_API_KEY",
    "ELEVENLABS_BASE_URL",
    "LOCAL_LLM_BASE_URL",
    "LOCAL_LLM_API_KEY",
];

/// Environment names with the `GOBLIN_` prefix that belong to other parts of the program (the CLI,
/// tests, later features) and so are not "unknown".
const OTHER_GOBLIN_ENV: &[&str] = &["GOBLIN_CONFIG", "GOBLIN_TEST_PG_URL", "GOBLIN_TEST_REDIS_URL"];

/// A raw value and where it came from.
#[derive(Clone, Debug)]
enum Raw {
    File(toml::Value),
    Env { name: String, value: String },
}

impl Raw {
    fn origin(&self, file: &Path) -> String {
        match self {
            Raw::File(_) => file.display().to_string(),
            Raw::Env { name, .. } => name.clone(),
        }
    }
}

/// Where configuration is read from. Tests build one by hand; the binary uses [`Sources::from_process`].
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Path of `goblin.toml`; `required` makes a missing file an error.
    pub file: Option<(PathBuf, bool)>,
    pub env: BTreeMap<String, String>,
}

impl Sources {
    /// The process environment, and the file named by `GOBLIN_CONFIG` (required) or `./goblin.toml`
    /// (optional).
    pub fn from_process() -> Self {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let file = match env.get("GOBLIN_CONFIG") {
            Some(path) if !path.is_empty() => Some((PathBuf::from(path), true)),
            _ => Some((PathBuf::from("goblin.toml"), false)),
        };
        Self { file, env }
    }
}

impl Config {
    /// Reads the configuration of this process. See [`Config::load`].
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first bad setting.
    pub fn from_process() -> Result<Self, ConfigError> {
        Self::load(&Sources::from_process())
    }

    /// Defaults < file < environment.
    ///
    /// # Errors
    /// A [`ConfigError`] for an unreadable or unparsable file, an unknown key in the file, or a value
    /// that does not parse or is out of range.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut raw: BTreeMap<&'static str, Raw> = BTreeMap::new();
        let mut file_used = None;
        let file_path = sources.file.as_ref().map(|(p, _)| p.clone()).unwrap_or_default();

        if let Some((path, required)) = &sources.file {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    read_file(path, &text, &mut raw)?;
                    file_used = Some(path.clone());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
                Err(e) => {
                    return Err(ConfigError {
                        key: "GOBLIN_CONFIG".into(),
                        origin: String::new(),
                        problem: format!("cannot read {}: {e}", path.display()),
                    });
                }
            }
        }

        for spec in KEYS {
            if let Some((name, value)) =
                spec.env.iter().find_map(|name| sources.env.get(*name).map(|v| (*name, v)))
            {
                raw.insert(spec.key, Raw::Env { name: name.to_string(), value: value.clone() });
            }
        }

        let known_env: Vec<&str> = KEYS.iter().flat_map(|k| k.env.iter().copied()).collect();
        let unknown_env = sources
            .env
            .keys()
            .filter(|k| k.starts_with("GOBLIN_"))
            .filter(|k| !known_env.contains(&k.as_str()) && !OTHER_GOBLIN_ENV.contains(&k.as_str()))
            .cloned()
            .collect();

        let r = Reader { raw: &raw, file: &file_path };

        let listen = r
            .string("listen")?
            .map(|(v, origin)| {
                v.parse::<SocketAddr>().map_err(|_| ConfigError {
                    key: "listen".into(),
                    origin,
                    problem: format!("'{v}' is not an address:port such as 127.0.0.1:3000"),
                })
            })
            .transpose()?
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 3000)));

        let public_url = match r.string("public_url")? {
            Some((v, origin)) => {
                let url = Url::parse(&v).map_err(|e| ConfigError {
                    key: "public_url".into(),
                    origin: origin.clone(),
                    problem: format!("not a valid URL ({e})"),
                })?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(ConfigError {
                        key: "public_url".into(),
                        origin,
                        problem: "must be an http:// or https:// URL with a host".into(),
                    });
                }
                url
            }
            None => default_public_url(listen),
        };

        let data_dir =
            r.string("data_dir")?.map(|(v, _)| PathBuf::from(v)).unwrap_or_else(|| PathBuf::from("data"));

        let env = match r.string("env")? {
            None => RunEnv::Development,
            Some((v, origin)) => match v.to_ascii_lowercase().as_str() {
                "development" | "dev" => RunEnv::Development,
                "production" | "prod" => RunEnv::Production,
                _ => {
                    return Err(ConfigError {
                        key: "env".into(),
                        origin,
                        problem: format!("'{v}' is not one of development, production"),
                    });
                }
            },
        };

        let (db_url, backend) = match r.string("database.url")? {
            Some((v, origin)) => {
                let backend = parse_database_url(&v).map_err(|problem| ConfigError {
                    key: "database.url".into(),
                    origin,
                    problem,
                })?;
                (v, backend)
            }
            None => (default_sqlite_url(&data_dir), Backend::Sqlite),
        };

        let defaults = PoolConfig::defaults_for(backend);
        let pool = PoolConfig {
            min_connections: 0,
            max_connections: r
                .u32("database.max_connections", 1, 10_000)?
                .unwrap_or(defaults.max_connections),
            acquire_timeout: r.secs("database.acquire_timeout_s", 1)?.unwrap_or(defaults.acquire_timeout),
            max_lifetime: r.secs("database.max_lifetime_s", 1)?.unwrap_or(defaults.max_lifetime),
            idle_timeout: r.secs("database.idle_timeout_s", 1)?.unwrap_or(defaults.idle_timeout),
            test_before_acquire: r
                .bool("database.test_before_acquire")?
                .unwrap_or(defaults.test_before_acquire),
            statement_timeout: r
                .secs("database.statement_timeout_s", 1)?
                .unwrap_or(defaults.statement_timeout),
        };
        let mut pool = pool;
        // An explicit minimum above the maximum is a mistake; the default minimum simply yields.
        pool.min_connections = match r.u32("database.min_connections", 0, 10_000)? {
            Some(min) => min,
            None => defaults.min_connections.min(pool.max_connections),
        };
        if pool.min_connections > pool.max_connections {
            let origin = r.origin("database.min_connections");
            return Err(ConfigError {
                key: "database.min_connections".into(),
                origin,
                problem: format!(
                    "{} is more than database.max_connections ({})",
                    pool.min_connections, pool.max_connections
                ),
            });
        }

        let redis_url = match r.string("redis_url")? {
            Some((v, _)) if v.is_empty() => None,
            Some((v, origin)) => {
                let url = Url::parse(&v).map_err(|e| ConfigError {
                    key: "redis_url".into(),
                    origin: origin.clone(),
                    problem: format!("not a valid URL ({e})"),
                })?;
                if !matches!(url.scheme(), "redis" | "rediss" | "unix" | "redis+unix") {
                    return Err(ConfigError {
                        key: "redis_url".into(),
                        origin,
                        problem: format!("scheme '{}' is not redis:// or rediss://", url.scheme()),
                    });
                }
                Some(Secret::new(v))
            }
            None => None,
        };

        let one = r.string("encryption_key")?;
        let many = r.string("encryption_keys")?;
        let encryption_keys = match (one, many) {
            (Some(_), Some((_, origin))) => {
                return Err(ConfigError {
                    key: "encryption_keys".into(),
                    origin,
                    problem: "set either encryption_key (one key) or encryption_keys (current key first, \
                              then older ones), not both"
                        .into(),
                });
            }
            (Some((v, origin)), None) => {
                vec![Secret::new(crate::crypto::decode_key(&v).map_err(|problem| ConfigError {
                    key: "encryption_key".into(),
                    origin,
                    problem,
                })?)]
            }
            (None, Some((v, origin))) => {
                let mut keys = Vec::new();
                for (i, part) in v.split(',').map(str::trim).enumerate() {
                    if part.is_empty() {
                        continue;
                    }
                    let key = crate::crypto::decode_key(part).map_err(|problem| ConfigError {
                        key: "encryption_keys".into(),
                        origin: origin.clone(),
                        problem: format!("key {} {problem}", i + 1),
                    })?;
                    keys.push(Secret::new(key));
                }
                if keys.is_empty() {
                    return Err(ConfigError {
                        key: "encryption_keys".into(),
                        origin,
                        problem: "holds no key; list base64 keys separated by commas, current first".into(),
                    });
                }
                keys
            }
            (None, None) if env == RunEnv::Production => {
                return Err(ConfigError {
                    key: "encryption_key".into(),
                    origin: "GOBLIN_ENCRYPTION_KEY".into(),
                    problem: "is required when env = production (32 random bytes, base64: \
                              `openssl rand -base64 32`; GOBLIN_ENCRYPTION_KEYS holds several)"
                        .into(),
                });
            }
            (None, None) => Vec::new(),
        };

        let provider_env = sources
            .env
            .iter()
            .filter(|(k, v)| PROVIDER_ENV.contains(&k.as_str()) && !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), Secret::new(v.trim().to_string())))
            .collect();

        let auth = AuthConfig {
            rate_limit_per_ip: r.u32("auth.rate_limit_per_ip", 1, 1_000_000)?.unwrap_or(30),
            rate_limit_per_user: r.u32("auth.rate_limit_per_user", 1, 1_000_000)?.unwrap_or(10),
            session_idle_minutes: r.u32("auth.session_idle_minutes", 5, 525_600)?.unwrap_or(720),
            session_absolute_hours: r.u32("auth.session_absolute_hours", 1, 8_760)?.unwrap_or(168),
            token_cache: r
                .u32("auth.token_cache_ms", 0, 3_600_000)?
                .map_or(crate::tokens::DEFAULT_ROW_CACHE, |ms| Duration::from_millis(u64::from(ms))),
        };

        let log = LogConfig {
            format: match r.string("log.format")? {
                None => LogFormat::Text,
                Some((v, origin)) => match v.to_ascii_lowercase().as_str() {
                    "text" | "pretty" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => {
                        return Err(ConfigError {
                            key: "log.format".into(),
                            origin,
                            problem: format!("'{v}' is not one of text, json"),
                        });
                    }
                },
            },
            filter: r.string("log.filter")?.map(|(v, _)| v).unwrap_or_else(|| "info".into()),
        };

        let settings_refresh = std::time::Duration::from_millis(u64::from(
            r.u32("settings_refresh_ms", 50, 3_600_000)?.unwrap_or(2_000),
        ));

        let millis = |key: &str, min: u32, max: u32, default: u64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(r.u32(key, min, max)?.map_or(default, u64::from)))
        };
        let worker_id = match r.string("tasks.worker_id")? {
            Some((v, _)) if v.trim().is_empty() => None,
            Some((v, origin)) => {
                let v = v.trim().to_string();
                if v.chars().count() > 100 || v.chars().any(char::is_control) {
                    return Err(ConfigError {
                        key: "tasks.worker_id".into(),
                        origin,
                        problem: "must be at most 100 printable characters".into(),
                    });
                }
                Some(v)
            }
            None => None,
        };
        let registry = r.string("tasks.registry")?.filter(|(v, _)| !v.trim().is_empty());
        let tasks = TasksConfig {
            registry_configured: registry.is_some(),
            registry: registry
                .map(|(v, _)| PathBuf::from(v.trim()))
                .unwrap_or_else(|| PathBuf::from("config/goblins.yaml")),
            registry_poll: millis("tasks.registry_poll_ms", 100, 3_600_000, 2_000)?,
            workdir: r
                .string("tasks.workdir")?
                .filter(|(v, _)| !v.trim().is_empty())
                .map(|(v, _)| PathBuf::from(v.trim()))
                .unwrap_or_else(|| data_dir.join("tasks")),
            workers: r.bool("tasks.workers")?.unwrap_or(true),
            worker_id,
            lease: millis("tasks.lease_ms", 500, 3_600_000, 30_000)?,
            poll: millis("tasks.poll_ms", 20, 60_000, 1_000)?,
            kill_grace: millis("tasks.kill_grace_ms", 0, 600_000, 5_000)?,
            environment: Secret::new(sources.env.clone()),
        };

        let raptor = RaptorConfig {
            level: match r.string("raptor.level")? {
                None => RaptorLevel::Warn,
                Some((v, origin)) => RaptorLevel::parse(&v).ok_or_else(|| ConfigError {
                    key: "raptor.level".into(),
                    origin,
                    problem: format!("'{v}' is not one of error, warn, info, debug"),
                })?,
            },
            file: r
                .string("raptor.file")?
                .filter(|(v, _)| !v.trim().is_empty())
                .map(|(v, _)| PathBuf::from(v.trim()))
                .unwrap_or_else(|| data_dir.join("logs").join("raptor.log")),
            max_file_bytes: u64::from(r.u32("raptor.max_file_mb", 1, 10_240)?.unwrap_or(50)) * 1024 * 1024,
            max_files: r.u32("raptor.max_files", 1, 100)?.unwrap_or(5),
            enable_cpu: r.bool("raptor.enable_cpu")?.unwrap_or(true),
            enable_memory: r.bool("raptor.enable_memory")?.unwrap_or(true),
            sample_rate: millis("raptor.sample_rate_ms", 100, 3_600_000, 1_000)?,
            trace_exceptions: r.bool("raptor.trace_exceptions")?.unwrap_or(true),
            exception_retention_days: r.u32("raptor.exception_retention_days", 1, 3_650)?.unwrap_or(30),
            max_exceptions: r.u32("raptor.max_exceptions", 10, 1_000_000)?.unwrap_or(1_000),
        };
        let metrics = MetricsConfig {
            token: match r.string("metrics.token")? {
                Some((v, _)) if v.trim().is_empty() => None,
                Some((v, origin)) if v.trim().len() < 16 => {
                    return Err(ConfigError {
                        key: "metrics.token".into(),
                        origin,
                        problem: "must be at least 16 characters".into(),
                    });
                }
                Some((v, _)) => Some(Secret::new(v.trim().to_string())),
                None => None,
            },
            loopback_without_token: r.bool("metrics.loopback_without_token")?.unwrap_or(true),
        };

        Ok(Config {
            raptor,
            metrics,
            tasks,
            settings_refresh,
            listen,
            public_url,
            data_dir,
            env,
            database: DatabaseConfig { url: Secret::new(db_url), backend, pool },
            redis_url,
            encryption_keys,
            provider_env,
            auth,
            log,
            unknown_env,
            file: file_used,
        })
    }

    /// The effective configuration as JSON, secrets masked: what `goblin check-config` prints.
    pub fn to_masked_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file.as_ref().map(|p| p.display().to_string()),
            "listen": self.listen.to_string(),
            "public_url": self.public_url.to_string(),
            "data_dir": self.data_dir.display().to_string(),
            "env": self.env,
            "database": {
                "url": mask_url(self.database.url.expose()),
                "backend": self.database.backend,
                "pool": self.database.pool,
            },
            "redis_url": self.redis_url.as_ref().map(|u| mask_url(u.expose())),
            "encryption_keys": if self.encryption_keys.is_empty() {
                "development key in data_dir".to_string()
            } else {
                format!("{} set", self.encryption_keys.len())
            },
            "provider_env": self.provider_env.keys().collect::<Vec<_>>(),
            "auth": self.auth,
            "log": { "format": self.log.format, "filter": self.log.filter },
            "raptor": {
                "level": self.raptor.level,
                "file": self.raptor.file.display().to_string(),
                "max_file_mb": self.raptor.max_file_bytes / (1024 * 1024),
                "max_files": self.raptor.max_files,
                "enable_cpu": self.raptor.enable_cpu,
                "enable_memory": self.raptor.enable_memory,
                "sample_rate_ms": self.raptor.sample_rate.as_millis() as u64,
                "trace_exceptions": self.raptor.trace_exceptions,
                "exception_retention_days": self.raptor.exception_retention_days,
                "max_exceptions": self.raptor.max_exceptions,
            },
            "metrics": {
                "token": if self.metrics.token.is_some() { "set" } else { "not set" },
                "loopback_without_token": self.metrics.loopback_without_token,
            },
            "tasks": {
                "registry": self.tasks.registry.display().to_string(),
                "registry_poll_ms": self.tasks.registry_poll.as_millis() as u64,
                "workdir": self.tasks.workdir.display().to_string(),
                "workers": self.tasks.workers,
                "worker_id": self.tasks.worker_id,
                "lease_ms": self.tasks.lease.as_millis() as u64,
                "poll_ms": self.tasks.poll.as_millis() as u64,
                "kill_grace_ms": self.tasks.kill_grace.as_millis() as u64,
            },
        })
    }
}

fn default_public_url(listen: SocketAddr) -> Url {
    // Browsers treat `localhost` as a secure context, which passkeys need; an unspecified or loopback
    // address is reached as localhost.
    let host = if listen.ip().is_loopback() || listen.ip().is_unspecified() {
        "localhost".to_string()
    } else {
        match listen {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    // The string is built from parts that always form a valid URL.
    Url::parse(&format!("http://{host}:{}", listen.port()))
        .unwrap_or_else(|_| Url::parse("http://localhost:3000").expect("static URL parses"))
}

/// The default database: a SQLite file inside the data directory, created when missing.
pub fn default_sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", data_dir.join("goblin.db").display())
}

/// Checks a database URL and tells which backend it selects.
fn parse_database_url(v: &str) -> Result<Backend, String> {
    if v.trim().is_empty() {
        return Err("is empty; use sqlite://PATH or postgres://USER@HOST/DB".into());
    }
    if let Some(rest) = v.strip_prefix("sqlite:") {
        if rest.is_empty() || rest == "//" {
            return Err("sqlite URL has no file path; use sqlite://PATH or sqlite::memory:".into());
        }
        return Ok(Backend::Sqlite);
    }
    let url = Url::parse(v).map_err(|e| format!("not a valid URL ({e})"))?;
    match url.scheme() {
        "postgres" | "postgresql" => {
            if url.host().is_none() {
                return Err("postgres URL has no host".into());
            }
            Ok(Backend::Postgres)
        }
        other => Err(format!("unknown database backend '{other}'; use sqlite:// or postgres://")),
    }
}

/// Reads typed values out of the merged raw settings.
struct Reader<'a> {
    raw: &'a BTreeMap<&'static str, Raw>,
    file: &'a Path,
}

impl Reader<'_> {
    fn origin(&self, key: &str) -> String {
        self.raw.get(key).map(|r| r.origin(self.file)).unwrap_or_default()
    }

    fn err(&self, key: &str, problem: String) -> ConfigError {
        ConfigError { key: key.into(), origin: self.origin(key), problem }
    }

    fn string(&self, key: &str) -> Result<Option<(String, String)>, ConfigError> {
        match self.raw.get(key) {
            None => Ok(None),
            Some(Raw::Env { name, value }) => Ok(Some((value.clone(), name.clone()))),
            Some(Raw::File(toml::Value::String(s))) => Ok(Some((s.clone(), self.origin(key)))),
            Some(Raw::File(other)) => {
                Err(self.err(key, format!("expected a string, found {}", other.type_str())))
            }
        }
    }

    fn u32(&self, key: &str, min: u32, max: u32) -> Result<Option<u32>, ConfigError> {
        let n: i64 = match self.raw.get(key) {
            None => return Ok(None),
            Some(Raw::Env { value, .. }) => {
                value.trim().parse().map_err(|_| self.err(key, format!("'{value}' is not a whole number")))?
            }
            Some(Raw::File(toml::Value::Integer(i))) => *i,
            Some(Raw::File(other)) => {
                return Err(self.err(key, format!("expected a whole number, found {}", other.type_str())));
            }
        };
        if n < i64::from(min) || n > i64::from(max) {
            return Err(self.err(key, format!("{n} is out of range {min}..={max}")));
        }
        Ok(Some(n as u32))
    }

    fn secs(&self, key: &str, min: u32) -> Result<Option<Duration>, ConfigError> {
        Ok(self.u32(key, min, 7 * 24 * 3600)?.map(|s| Duration::from_secs(u64::from(s))))
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.raw.get(key) {
            None => Ok(None),
            Some(Raw::Env { value, .. }) => match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(Some(true)),
                "0" | "false" | "no" | "off" => Ok(Some(false)),
                _ => Err(self.err(key, format!("'{value}' is not true or false"))),
            },
            Some(Raw::File(toml::Value::Boolean(b))) => Ok(Some(*b)),
            Some(Raw::File(other)) => {
                Err(self.err(key, format!("expected true or false, found {}", other.type_str())))
            }
        }
    }
}

/// Flattens `goblin.toml` into dotted keys, refusing unknown ones.
fn read_file(path: &Path, text: &str, raw: &mut BTreeMap<&'static str, Raw>) -> Result<(), ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1))
            .map(|l| format!(" at line {l}"))
            .unwrap_or_default();
        ConfigError {
            key: "goblin.toml".into(),
            origin: path.display().to_string(),
            problem: format!("not valid TOML{line}: {}", e.message().trim()),
        }
    })?;
    flatten(path, "", &table, raw)
}

fn flatten(
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    raw: &mut BTreeMap<&'static str, Raw>,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(inner) if KEYS.iter().any(|s| s.key.starts_with(&format!("{key}."))) => {
                flatten(path, &key, inner, raw)?;
            }
            _ => match KEYS.iter().find(|s| s.key == key) {
                Some(spec) => {
                    raw.insert(spec.key, Raw::File(v.clone()));
                }
                None => {
                    return Err(ConfigError {
                        key,
                        origin: path.display().to_string(),
                        problem: "unknown key".into(),
                    });
                }
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Sources {
        Sources { file: None, env: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    fn with_file(text: &str, pairs: &[(&str, &str)]) -> (tempfile::TempDir, Sources) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("goblin.toml");
        std::fs::write(&path, text).unwrap();
        let mut s = env(pairs);
        s.file = Some((path, true));
        (dir, s)
    }

    #[test]
    fn defaults_are_sqlite_in_data_dir_on_localhost_3000() {
        let c = Config::load(&env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_url.as_str(), "http://localhost:3000/");
        assert_eq!(c.database.backend, Backend::Sqlite);
        assert_eq!(c.database.url.expose(), "sqlite://data/goblin.db?mode=rwc");
        assert!(c.redis_url.is_none());
        assert_eq!(c.env, RunEnv::Development);
    }

    #[test]
    fn postgres_gets_production_pool_defaults() {
        let c = Config::load(&env(&[("DATABASE_URL", "postgres://u:p@127.0.0.1/goblin")])).unwrap();
        let p = &c.database.pool;
        assert_eq!(c.database.backend, Backend::Postgres);
        assert_eq!((p.min_connections, p.max_connections), (20, 60));
        assert_eq!(p.acquire_timeout, Duration::from_secs(30));
        assert_eq!(p.max_lifetime, Duration::from_secs(3600));
        assert!(p.test_before_acquire);
        assert_eq!(p.statement_timeout, Duration::from_secs(30));
    }

    #[test]
    fn a_small_maximum_lowers_the_default_minimum() {
        let c = Config::load(&env(&[
            ("DATABASE_URL", "postgres://u@127.0.0.1/goblin"),
            ("GOBLIN_DB_MAX_CONNECTIONS", "7"),
        ]))
        .unwrap();
        assert_eq!((c.database.pool.min_connections, c.database.pool.max_connections), (7, 7));
    }

    #[test]
    fn environment_overrides_file_overrides_defaults() {
        let (_d, s) = with_file(
            "listen = \"0.0.0.0:4000\"\n[database]\nmax_connections = 12\nmin_connections = 2\n",
            &[("GOBLIN_DB_MAX_CONNECTIONS", "30")],
        );
        let c = Config::load(&s).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:4000");
        assert_eq!(c.database.pool.max_connections, 30);
        assert_eq!(c.database.pool.min_connections, 2);
    }

    #[test]
    fn frontend_url_is_an_alias_of_public_url() {
        let c = Config::load(&env(&[("FRONTEND_URL", "https://goblin.example.com")])).unwrap();
        assert_eq!(c.public_url.as_str(), "https://goblin.example.com/");
        let c = Config::load(&env(&[
            ("FRONTEND_URL", "https://a.example.com"),
            ("GOBLIN_PUBLIC_URL", "https://b.example.com"),
        ]))
        .unwrap();
        assert_eq!(c.public_url.host_str(), Some("b.example.com"));
    }

    #[test]
    fn bad_values_name_the_key_and_origin() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("DATABASE_URL", "not a url")], "database.url (from DATABASE_URL): not a valid URL"),
            (&[("DATABASE_URL", "mysql://root@localhost/x")], "unknown database backend 'mysql'"),
            (
                &[("GOBLIN_DB_MAX_CONNECTIONS", "lots")],
                "database.max_connections (from GOBLIN_DB_MAX_CONNECTIONS): 'lots' is not a whole number",
            ),
            (&[("GOBLIN_DB_MAX_CONNECTIONS", "0")], "0 is out of range"),
            (&[("GOBLIN_LISTEN", "localhost")], "listen (from GOBLIN_LISTEN)"),
            (&[("GOBLIN_ENV", "staging")], "'staging' is not one of development, production"),
            (&[("REDIS_URL", "http://x")], "redis_url (from REDIS_URL): scheme 'http'"),
            (&[("GOBLIN_DB_TEST_BEFORE_ACQUIRE", "maybe")], "'maybe' is not true or false"),
            (
                &[("GOBLIN_DB_MIN_CONNECTIONS", "9"), ("GOBLIN_DB_MAX_CONNECTIONS", "3")],
                "is more than database.max_connections",
            ),
        ];
        for (pairs, expected) in cases {
            let e = Config::load(&env(pairs)).unwrap_err().to_string();
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
    }

    #[test]
    fn unknown_file_key_and_wrong_type_are_refused() {
        let (_d, s) = with_file("lisen = \"127.0.0.1:1\"\n", &[]);
        let e = Config::load(&s).unwrap_err();
        assert_eq!(e.key, "lisen");
        assert!(e.to_string().contains("unknown key"));

        let (_d, s) = with_file("[database]\nmax_conections = 3\n", &[]);
        assert_eq!(Config::load(&s).unwrap_err().key, "database.max_conections");

        let (_d, s) = with_file("[database]\nmax_connections = \"ten\"\n", &[]);
        let e = Config::load(&s).unwrap_err().to_string();
        assert!(
            e.contains("database.max_connections") && e.contains("expected a whole number, found string"),
            "{e}"
        );

        let (_d, s) = with_file("listen = [\n", &[]);
        let e = Config::load(&s).unwrap_err().to_string();
        assert!(e.contains("not valid TOML at line 1"), "{e}");
    }

    #[test]
    fn secrets_never_appear_in_debug_or_masked_output() {
        let c = Config::load(&env(&[
            ("DATABASE_URL", "postgres://goblin:pg-s3cret@127.0.0.1/goblin"),
            ("REDIS_URL", "redis://:redis-s3cret@127.0.0.1:6379"),
        ]))
        .unwrap();
        let dbg = format!("{c:?}");
        let json = c.to_masked_json().to_string();
        for out in [dbg, json] {
            assert!(!out.contains("pg-s3cret") && !out.contains("redis-s3cret"), "{out}");
        }
    }

    #[test]
    fn several_encryption_keys_current_first_and_not_both_forms() {
        let a = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
        let b = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="; // bytes 32..64
        let c = Config::load(&env(&[("GOBLIN_ENCRYPTION_KEYS", &format!("{b}, {a}"))])).unwrap();
        assert_eq!(c.encryption_keys.len(), 2);
        assert_eq!(c.encryption_keys[0].expose()[0], 32, "the first listed key is current");
        let e = Config::load(&env(&[("GOBLIN_ENCRYPTION_KEYS", &format!("{a},c2hvcnQ="))])).unwrap_err();
        assert_eq!(e.key, "encryption_keys");
        assert!(e.to_string().contains("key 2 decodes to 5 bytes"), "{e}");
        let e = Config::load(&env(&[("GOBLIN_ENCRYPTION_KEYS", " , ")])).unwrap_err();
        assert!(e.to_string().contains("holds no key"), "{e}");
        let e =
            Config::load(&env(&[("GOBLIN_ENCRYPTION_KEY", a), ("GOBLIN_ENCRYPTION_KEYS", b)])).unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        assert!(!e.to_string().contains(a) && !e.to_string().contains(b));
    }

    #[test]
    fn provider_environment_is_collected_and_never_printed() {
        let c = Config::load(&env(&[
            ("OPENAI_API_KEY", "sk-live-abcdef123456"),
            ("SILLICONFLOW_API_KEY", "sf-1"),
            ("ANTHROPIC_API_KEY", "  "),
            ("UNRELATED_API_KEY", "x"),
        ]))
        .unwrap();
        let names: Vec<&str> = c.provider_env.keys().map(String::as_str).collect();
        assert_eq!(names, ["OPENAI_API_KEY", "SILLICONFLOW_API_KEY"]);
        assert!(!format!("{c:?}").contains("sk-live"));
        assert!(!c.to_masked_json().to_string().contains("sk-live"));
    }

    #[test]
    fn encryption_key_is_checked_and_required_in_production() {
        let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
        let c = Config::load(&env(&[("GOBLIN_ENCRYPTION_KEY", key)])).unwrap();
        assert_eq!(c.encryption_keys[0].expose()[31], 31);
        let e = Config::load(&env(&[("GOBLIN_ENCRYPTION_KEY", "c2hvcnQ=")])).unwrap_err();
        assert_eq!(e.key, "encryption_key");
        assert!(e.to_string().contains("32 bytes"), "{e}");
        assert!(!e.to_string().contains("c2hvcnQ"), "the value itself is not repeated: {e}");
        let e = Config::load(&env(&[("GOBLIN_ENV", "production")])).unwrap_err();
        assert!(e.to_string().contains("required when env = production"), "{e}");
        assert!(
            format!("{:?}", Config::load(&env(&[("GOBLIN_ENCRYPTION_KEY", key)])).unwrap())
                .contains("[redacted]")
        );
    }

    #[test]
    fn task_settings_have_defaults_and_are_checked() {
        let c = Config::load(&env(&[("GOBLIN_DATA_DIR", "/srv/goblin")])).unwrap();
        let t = &c.tasks;
        assert_eq!((t.registry.to_str(), t.registry_configured), (Some("config/goblins.yaml"), false));
        assert_eq!(t.workdir, PathBuf::from("/srv/goblin/tasks"));
        assert!(t.workers && t.worker_id.is_none());
        assert_eq!(
            (t.lease, t.poll, t.kill_grace),
            (Duration::from_secs(30), Duration::from_secs(1), Duration::from_secs(5))
        );
        assert_eq!(t.registry_poll, Duration::from_secs(2));

        let (_d, s) = with_file(
            "[tasks]\nregistry = \"/etc/goblins.yaml\"\nworkers = false\nlease_ms = 2000\n",
            &[("GOBLIN_WORKER_ID", " w-1 "), ("GOBLIN_TASK_KILL_GRACE_MS", "0"), ("SOME_SECRET", "s3cret")],
        );
        let c = Config::load(&s).unwrap();
        assert_eq!(
            (c.tasks.registry.to_str(), c.tasks.registry_configured),
            (Some("/etc/goblins.yaml"), true)
        );
        assert!(!c.tasks.workers);
        assert_eq!(c.tasks.worker_id.as_deref(), Some("w-1"));
        assert_eq!((c.tasks.lease, c.tasks.kill_grace), (Duration::from_secs(2), Duration::ZERO));
        // The environment is kept for commands' required_env, and never printed.
        assert_eq!(c.tasks.environment.expose().get("SOME_SECRET").map(String::as_str), Some("s3cret"));
        assert!(!format!("{c:?}").contains("s3cret") && !c.to_masked_json().to_string().contains("s3cret"));
        assert_eq!(c.to_masked_json()["tasks"]["lease_ms"], 2000);

        for (pairs, expected) in [
            (
                &[("GOBLIN_TASK_LEASE_MS", "10")][..],
                "tasks.lease_ms (from GOBLIN_TASK_LEASE_MS): 10 is out of range",
            ),
            (
                &[("GOBLIN_WORKERS", "sometimes")][..],
                "tasks.workers (from GOBLIN_WORKERS): 'sometimes' is not true",
            ),
            (&[("GOBLIN_TASK_POLL_MS", "fast")][..], "tasks.poll_ms (from GOBLIN_TASK_POLL_MS)"),
        ] {
            let e = Config::load(&env(pairs)).unwrap_err().to_string();
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
        }
    }

    #[test]
    fn raptor_and_metrics_settings_have_defaults_and_are_checked() {
        let c = Config::load(&env(&[("GOBLIN_DATA_DIR", "/srv/goblin")])).unwrap();
        let r = &c.raptor;
        assert_eq!(r.level, RaptorLevel::Warn);
        assert_eq!(r.file, PathBuf::from("/srv/goblin/logs/raptor.log"));
        assert_eq!(r.sample_rate, Duration::from_secs(1));
        assert!(r.enable_cpu && r.enable_memory && r.trace_exceptions);
        assert!(c.metrics.token.is_none() && c.metrics.loopback_without_token);

        let (_d, s) = with_file(
            "[raptor]\nlevel = \"INFO\"\nsample_rate_ms = 250\nenable_cpu = false\n",
            &[("GOBLIN_METRICS_TOKEN", "metrics-s3cret-token-value")],
        );
        let c = Config::load(&s).unwrap();
        assert_eq!((c.raptor.level, c.raptor.sample_rate), (RaptorLevel::Info, Duration::from_millis(250)));
        assert!(!c.raptor.enable_cpu);
        assert_eq!(c.metrics.token.as_ref().map(|t| t.expose().as_str()), Some("metrics-s3cret-token-value"));
        assert!(
            !format!("{c:?}").contains("metrics-s3cret")
                && !c.to_masked_json().to_string().contains("s3cret")
        );

        for (pairs, expected) in [
            (
                &[("GOBLIN_RAPTOR_LEVEL", "loud")][..],
                "raptor.level (from GOBLIN_RAPTOR_LEVEL): 'loud' is not one of",
            ),
            (
                &[("GOBLIN_RAPTOR_SAMPLE_RATE_MS", "5")][..],
                "raptor.sample_rate_ms (from GOBLIN_RAPTOR_SAMPLE_RATE_MS): 5 is out of range",
            ),
            (&[("GOBLIN_RAPTOR_ENABLE_MEMORY", "perhaps")][..], "raptor.enable_memory"),
            (
                &[("GOBLIN_METRICS_TOKEN", "short")][..],
                "metrics.token (from GOBLIN_METRICS_TOKEN): must be at least 16",
            ),
        ] {
            let e = Config::load(&env(pairs)).unwrap_err().to_string();
            assert!(e.contains(expected), "{e:?} should contain {expected:?}");
            assert!(!e.contains("short"), "the token is not repeated: {e}");
        }
    }

    #[test]
    fn unknown_goblin_env_names_are_reported() {
        let c = Config::load(&env(&[("GOBLIN_LISTN", "x"), ("GOBLIN_LISTEN", "127.0.0.1:9")])).unwrap();
        assert_eq!(c.unknown_env, vec!["GOBLIN_LISTN".to_string()]);
    }
}
