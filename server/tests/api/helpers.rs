//! Shared test support: fresh databases, a spawned server on port 0, a cookie-keeping client.

use std::{collections::BTreeMap, path::PathBuf, sync::Once};

use goblin_core::config::{Config, Sources};
use goblin_server::Application;
use sea_orm::{ConnectionTrait, Database};

static TRACING: Once = Once::new();

/// Set TEST_LOG=1 to see the server's logs while tests run. Without it nothing is printed, but the
/// Raptor layer is installed all the same, so exceptions are captured as in production.
pub fn init_test_log() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            goblin_server::telemetry::init(&goblin_core::config::LogConfig {
                format: goblin_core::config::LogFormat::Text,
                filter: "debug,sqlx=warn,hyper=info".into(),
            });
        } else {
            goblin_server::telemetry::init_quiet();
        }
    });
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The PostgreSQL admin URL for tests, or `None` to skip the PostgreSQL variant.
///
/// # Panics
/// Under CI=true when GOBLIN_TEST_PG_URL is not set: CI must not skip PostgreSQL.
pub fn pg_admin_url() -> Option<String> {
    match std::env::var("GOBLIN_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if in_ci() => {
            panic!("CI=true but GOBLIN_TEST_PG_URL is not set: PostgreSQL tests cannot be skipped in CI")
        }
        _ => {
            eprintln!("GOBLIN_TEST_PG_URL not set: skipping the PostgreSQL variant");
            None
        }
    }
}

/// The Redis URL for tests, or `None` to skip Redis variants.
///
/// # Panics
/// Under CI=true when GOBLIN_TEST_REDIS_URL is not set.
pub fn redis_url() -> Option<String> {
    match std::env::var("GOBLIN_TEST_REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if in_ci() => {
            panic!("CI=true but GOBLIN_TEST_REDIS_URL is not set: Redis tests cannot be skipped in CI")
        }
        _ => {
            eprintln!("GOBLIN_TEST_REDIS_URL not set: skipping the Redis variant");
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database that exists for one test. SQLite lives in a temp dir; a PostgreSQL database is created
/// under a random name and dropped by [`TestDb::drop_db`] (the test script also sweeps leftovers).
pub struct TestDb {
    pub url: String,
    pub data_dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    /// `None` when the backend is PostgreSQL and no test URL is configured (outside CI).
    pub async fn new(backend: Backend) -> Option<Self> {
        let data_dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => {
                let url = goblin_core::config::default_sqlite_url(data_dir.path());
                Some(Self { url, data_dir, pg: None })
            }
            Backend::Postgres => {
                let admin = pg_admin_url()?;
                let name = format!("goblin_test_{}", uuid::Uuid::new_v4().simple());
                let conn = Database::connect(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("PostgreSQL at GOBLIN_TEST_PG_URL is unreachable: {e}"));
                conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create database");
                conn.close().await.ok();
                let mut url = url::Url::parse(&admin).expect("GOBLIN_TEST_PG_URL is a URL");
                url.set_path(&format!("/{name}"));
                Some(Self { url: url.to_string(), data_dir, pg: Some((admin, name)) })
            }
        }
    }

    /// Drops a PostgreSQL test database (forcing out leftover connections).
    pub async fn drop_db(self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(conn) = Database::connect(admin).await
        {
            let _ = conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
            let _ = conn.close().await;
        }
    }
}

/// Environment for a test server: loopback, port 0, the given database, small pools.
pub fn test_env(db_url: &str, data_dir: &std::path::Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("GOBLIN_LISTEN".into(), "127.0.0.1:0".into());
    env.insert("DATABASE_URL".into(), db_url.into());
    env.insert("GOBLIN_DATA_DIR".into(), data_dir.display().to_string());
    env.insert("GOBLIN_DB_MIN_CONNECTIONS".into(), "1".into());
    env.insert("GOBLIN_DB_MAX_CONNECTIONS".into(), "5".into());
    env.insert("GOBLIN_DB_ACQUIRE_TIMEOUT_S".into(), "5".into());
    env
}

pub struct TestApp {
    pub address: String,
    pub state: goblin_app::state::AppState,
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
    pub setup_url: Option<url::Url>,
    /// The origin the server accepts state-changing browser requests from.
    pub origin: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A new service account (operator) and an API token for it with `scopes`, valid for a day: the
    /// token's id and the token.
    pub async fn service_token(&self, username: &str, scopes: &[&str]) -> (uuid::Uuid, String) {
        let account = goblin_core::users::create_service_account(
            &self.state.db,
            self.state.clock.as_ref(),
            username,
            goblin_core::users::Role::Operator,
        )
        .await
        .unwrap();
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_string()).collect();
        let issued =
            self.state.tokens.issue(&account, "test", &scopes, chrono::Duration::days(1), None).await.unwrap();
        (issued.id, issued.token.expose().clone())
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    /// Creates an account with `role` and gives this client a signed-in session for it, as a passkey
    /// sign-in would (the ceremonies themselves are exercised by the browser tests).
    pub async fn sign_in_as(&self, username: &str, role: &str) -> uuid::Uuid {
        let user = self.create_user(username, &format!("{username} (test)"), role).await;
        let cookie = self.new_session(user).await;
        let url: url::Url = self.address.parse().expect("address is a URL");
        self.jar.add_cookie_str(&cookie, &url);
        user
    }

    /// Creates another account (a viewer) without signing this client in as it.
    pub async fn sign_in_as_other(&self, username: &str) -> uuid::Uuid {
        self.create_user(username, username, "viewer").await
    }

    async fn create_user(&self, username: &str, display_name: &str, role: &str) -> uuid::Uuid {
        use goblin_core::entities::users;
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        let now = chrono::Utc::now();
        users::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            username: Set(username.into()),
            display_name: Set(display_name.into()),
            role: Set(role.into()),
            status: Set("active".into()),
            is_service: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.state.db)
        .await
        .expect("user inserted")
        .id
    }

    /// A new signed-in session for `user`, as a `name=value` cookie (not added to this client).
    pub async fn new_session(&self, user: uuid::Uuid) -> String {
        self.new_session_signed_in_at(user, chrono::Utc::now()).await
    }

    /// A session for `user` that signed in at `at`.
    pub async fn new_session_signed_in_at(
        &self,
        user: uuid::Uuid,
        at: chrono::DateTime<chrono::Utc>,
    ) -> String {
        use goblin_core::sessions;
        use tower_sessions::{
            SessionStore,
            session::{Id, Record},
        };
        let mut record = Record {
            id: Id::default(),
            data: [
                (sessions::USER_ID_KEY.to_string(), serde_json::json!(user.to_string())),
                (sessions::SIGNED_IN_AT_KEY.to_string(), serde_json::json!(at.timestamp())),
            ]
            .into_iter()
            .collect(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        self.state.sessions.create(&mut record).await.expect("session stored");
        format!("{}={}", goblin_server::startup::SESSION_COOKIE, record.id)
    }

    /// This client's cookies for the server, as a `Cookie` header value.
    pub fn cookie_header(&self) -> reqwest::header::HeaderValue {
        let url: url::Url = self.address.parse().expect("address is a URL");
        reqwest::cookie::CookieStore::cookies(self.jar.as_ref(), &url).expect("this client holds a cookie")
    }

    /// Who `/fn/auth/me` says is signed in when called with exactly `cookie` (JSON `null` for nobody).
    pub async fn me_with_cookie(&self, cookie: impl AsRef<[u8]>) -> serde_json::Value {
        let plain = reqwest::Client::new();
        plain
            .post(self.url("/fn/auth/me"))
            .header("origin", &self.origin)
            .header("cookie", cookie.as_ref())
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON answer")
    }

    /// A POST as the dashboard's own pages send it (with a matching Origin).
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(self.url(path)).header("origin", &self.origin)
    }

    pub async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
        self.db.drop_db().await;
    }
}

/// Spawns the server on a fresh database. `extra` adds or overrides environment settings.
pub async fn spawn_app(backend: Backend, extra: &[(&str, &str)]) -> Option<TestApp> {
    init_test_log();
    let db = TestDb::new(backend).await?;
    Some(spawn_app_on(db, extra).await)
}

pub async fn spawn_app_on(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    init_test_log();
    let mut env = test_env(&db.url, db.data_dir.path());
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let config = Config::load(&Sources { file: None, env }).expect("test configuration is valid");
    let app = Application::build(config).await.expect("application builds");
    let port = app.port();
    let state = app.state().clone();
    let setup_url = app.setup_url().cloned();
    let origin = app.public_url().origin().ascii_serialization();
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    // A request that never gets its answer fails the test with its URL instead of hanging the run.
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .expect("client");
    TestApp { address: format!("http://127.0.0.1:{port}"), state, jar, setup_url, origin, client, db, server }
}

/// Path of the built `goblin` binary.
pub fn goblin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_goblin"))
}

/// Name of the newest migration, and how many there are.
pub fn migrations() -> (String, usize) {
    use migration::MigratorTrait;
    let all = migration::Migrator::migrations();
    (all.last().map(|m| m.name().to_string()).unwrap_or_default(), all.len())
}
