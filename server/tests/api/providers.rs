//! Providers, keys and models through the admin functions, against the mock upstream: live checks for
//! every kind, keys that never come back out (not in any answer, page or log line), model sync, and
//! providers created once from the environment.

use goblin_mock_upstream::{MockConfig, MockUpstream};
use serde_json::Value;

use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_on};

const GOOD: &str = "sk-good-0123456789abcdefghijklmnopqrstuv";
const BAD: &str = "sk-bad-k9876543210zyxwvutsrqponmlkji7890";
const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn mock() -> MockUpstream {
    MockUpstream::start(MockConfig { keys: vec![GOOD.to_string()] }).await.expect("mock upstream starts")
}

async fn call(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let resp = app.post(path).form(form).send().await.expect("request sent");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn ok(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = call(app, path, form).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// Adds a provider through the admin function; returns its id.
async fn add_provider(app: &TestApp, name: &str, kind: &str, base_url: &str, key: &str) -> String {
    ok(
        app,
        "/fn/admin/provider-create",
        &[("name", name), ("kind", kind), ("base_url", base_url), ("priority", ""), ("key", key)],
    )
    .await
    .as_str()
    .expect("the new id")
    .to_string()
}

#[tokio::test]
async fn live_check_for_every_kind_success_provider_error_and_timeout() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let admin = app.sign_in_as("root", "admin").await;
    app.state.settings.set(Some(admin), "providers.check_timeout_seconds", "1").await.unwrap();
    let mock = mock().await;
    let kinds = [
        "openai",
        "anthropic",
        "gemini",
        "deepseek",
        "grok",
        "siliconflow",
        "moonshot",
        "elevenlabs",
        "openai-compatible",
    ];
    let mut checks = Vec::new();
    for kind in kinds {
        let good = add_provider(&app, &format!("{kind}-good"), kind, &mock.base_url(kind), GOOD).await;
        let bad = add_provider(&app, &format!("{kind}-bad"), kind, &mock.base_url(kind), BAD).await;
        let slow =
            add_provider(&app, &format!("{kind}-slow"), kind, &mock.base_url_with(kind, "stall"), GOOD).await;
        checks.push((kind, good, bad, slow));
    }
    let results = futures_util::future::join_all(checks.iter().map(|(kind, good, bad, slow)| {
        let app = &app;
        async move {
            let good = ok(app, "/fn/admin/provider-test", &[("provider_id", good)]).await;
            let bad = ok(app, "/fn/admin/provider-test", &[("provider_id", bad)]).await;
            let slow = ok(app, "/fn/admin/provider-test", &[("provider_id", slow)]).await;
            (*kind, good, bad, slow)
        }
    }))
    .await;
    for (kind, good, bad, slow) in results {
        assert_eq!(good["ok"], true, "{kind}: {good}");
        assert!(good["message"].as_str().unwrap().contains("models listed"), "{kind}: {good}");
        assert_eq!(bad["ok"], false, "{kind}: {bad}");
        assert_eq!(bad["status_code"], 401, "{kind}: {bad}");
        let msg = bad["message"].as_str().unwrap();
        let provider_text = match kind {
            "anthropic" => "invalid x-api-key",
            "gemini" => "API key not valid",
            "elevenlabs" => "API key",
            _ => "Incorrect API key provided",
        };
        assert!(msg.contains(provider_text), "{kind}: the provider's own words: {msg}");
        assert!(
            !msg.contains(&BAD[..8]) && !msg.contains(&BAD[BAD.len() - 8..]),
            "{kind}: key redacted: {msg}"
        );
        assert_eq!(slow["ok"], false, "{kind}: {slow}");
        assert_eq!(slow["message"], "no answer within 1 s", "{kind}: {slow}");
    }
    // Results are recorded: the list shows each provider's last check.
    let list = ok(&app, "/fn/admin/providers", &[]).await;
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 27);
    for row in rows {
        let name = row["name"].as_str().unwrap();
        assert_eq!(row["last_check"]["ok"], name.ends_with("-good"), "{row}");
    }
    mock.shutdown().await;
    app.stop().await;
}

#[tokio::test]
async fn a_changed_key_takes_effect_at_once_and_keys_spread_over_calls() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let mock = mock().await;
    let id = add_provider(&app, "main", "openai", &mock.base_url("openai"), BAD).await;
    let page = ok(&app, "/fn/admin/provider", &[("id", &id)]).await;
    let key_id = page["keys"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(ok(&app, "/fn/admin/provider-test", &[("provider_id", &id)]).await["ok"], false);

    let replaced = ok(&app, "/fn/admin/key-replace", &[("id", &key_id), ("key", GOOD)]).await;
    assert_eq!(replaced["masked"], goblin_core::providers::kinds::mask(GOOD));
    assert_eq!(replaced["masked"], "sk-...stuv");
    assert_eq!(ok(&app, "/fn/admin/provider-test", &[("provider_id", &id)]).await["ok"], true);
    let sent: Vec<String> =
        mock.requests().iter().filter_map(|r| r.header("authorization").map(str::to_string)).collect();
    assert_eq!(sent, [format!("Bearer {BAD}"), format!("Bearer {GOOD}")], "the next call used the new key");

    // A second key: calls take the least recently used enabled key.
    mock.set_keys(vec![GOOD.into(), "sk-second-key-00000000000000000000".into()]);
    ok(
        &app,
        "/fn/admin/key-add",
        &[
            ("provider_id", &id),
            ("label", "second"),
            ("key", "sk-second-key-00000000000000000000"),
            ("expires", ""),
        ],
    )
    .await;
    mock.clear_requests();
    for _ in 0..4 {
        assert_eq!(ok(&app, "/fn/admin/provider-test", &[("provider_id", &id)]).await["ok"], true);
    }
    let mut used: Vec<String> =
        mock.requests().iter().filter_map(|r| r.header("authorization").map(str::to_string)).collect();
    used.dedup();
    assert_eq!(used.len(), 4, "the keys alternate: {used:?}");

    // A disabled or expired key is not used.
    ok(&app, "/fn/admin/key-update", &[("id", &key_id), ("label", "default"), ("expires", "")]).await;
    ok(
        &app,
        "/fn/admin/key-update",
        &[("id", &key_id), ("label", "default"), ("expires", "2020-01-01"), ("enabled", "on")],
    )
    .await;
    mock.clear_requests();
    ok(&app, "/fn/admin/provider-test", &[("provider_id", &id)]).await;
    ok(&app, "/fn/admin/provider-test", &[("provider_id", &id)]).await;
    assert!(mock.requests().iter().all(|r| r.header("authorization") != Some(&format!("Bearer {GOOD}"))));
    let page = ok(&app, "/fn/admin/provider", &[("id", &id)]).await;
    assert_eq!(page["keys"][0]["expired"], true);
    mock.shutdown().await;
    app.stop().await;
}

/// Every 8-character piece of `key` (a mask shows at most a quarter of a key, so less than that).
fn pieces(key: &str) -> Vec<&str> {
    (0..=key.len() - 8).map(|i| &key[i..i + 8]).collect()
}

/// `goblin serve` as a separate process logging at trace level into a file, so that every line it
/// logs can be searched.
struct LoggingServer {
    child: std::process::Child,
    base: String,
    origin: String,
    cookie: String,
    client: reqwest::Client,
    log: std::path::PathBuf,
}

impl LoggingServer {
    async fn call(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("origin", &self.origin)
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .expect("request sent");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    async fn page(&self, path: &str) -> String {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        resp.text().await.unwrap()
    }
}

impl Drop for LoggingServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn no_answer_page_or_log_line_ever_holds_a_key() {
    // An admin and a session, made in-process on the database the server process will use.
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let url = db.url.clone();
    let app = spawn_app_on(db, &[("GOBLIN_ENCRYPTION_KEY", KEY_A)]).await;
    let admin = app.sign_in_as("root", "admin").await;
    let cookie = app.new_session(admin).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let log = app.db.data_dir.path().join("server.log");
    let child = std::process::Command::new(crate::helpers::goblin_bin())
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &url)
        .env("GOBLIN_ENCRYPTION_KEY", KEY_A)
        .env("GOBLIN_DATA_DIR", app.db.data_dir.path())
        .env("GOBLIN_LISTEN", format!("127.0.0.1:{port}"))
        .env("GOBLIN_PUBLIC_URL", format!("http://localhost:{port}"))
        .env("GOBLIN_LOG", "trace")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .expect("goblin serve starts");
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let origin = format!("http://localhost:{port}");
    let server = LoggingServer { child, base, origin, cookie, client, log };
    let mut up = false;
    for _ in 0..200 {
        if server.client.get(format!("{}/health", server.base)).send().await.is_ok_and(|r| r.status() == 200)
        {
            up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(up, "the server process answers: {}", std::fs::read_to_string(&server.log).unwrap_or_default());

    let mock = mock().await;
    let mut bodies: Vec<(String, String)> = Vec::new();
    let (s, id) = server
        .call(
            "/fn/admin/provider-create",
            &[
                ("name", "main"),
                ("kind", "openai"),
                ("base_url", &mock.base_url("openai")),
                ("priority", "5"),
                ("key", BAD),
            ],
        )
        .await;
    assert_eq!(s, 200, "{id}");
    let id: String = serde_json::from_str(&id).unwrap();
    let both = format!("{GOOD} {BAD}");
    let in_url = format!("https://user:{GOOD}@example.com/v1");
    let id = id.as_str();
    let steps: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/fn/admin/providers", vec![]),
        ("/fn/admin/provider", vec![("id", id)]),
        ("/fn/admin/provider-test", vec![("provider_id", id)]),
        ("/fn/admin/models-sync", vec![("provider_id", id)]),
        ("/fn/admin/key-add", vec![("provider_id", id), ("label", "good"), ("key", GOOD), ("expires", "")]),
        (
            "/fn/admin/key-add",
            vec![("provider_id", id), ("label", "bad label \u{7}"), ("key", GOOD), ("expires", "")],
        ),
        ("/fn/admin/key-add", vec![("provider_id", id), ("label", "x"), ("key", &both), ("expires", "")]),
        ("/fn/admin/key-add", vec![("provider_id", id), ("label", "x"), ("key", GOOD), ("expires", BAD)]),
        ("/fn/admin/provider-test", vec![("provider_id", id)]),
        ("/fn/admin/models-sync", vec![("provider_id", id)]),
        ("/fn/admin/provider", vec![("id", id)]),
        ("/fn/admin/audit", vec![]),
        (
            "/fn/admin/provider-create",
            vec![("name", "second"), ("kind", "nope"), ("base_url", ""), ("priority", ""), ("key", GOOD)],
        ),
        (
            "/fn/admin/provider-create",
            vec![("name", "third"), ("kind", "openai"), ("base_url", &in_url), ("priority", ""), ("key", "")],
        ),
    ];
    for (path, form) in &steps {
        let (_, body) = server.call(path, form).await;
        bodies.push((path.to_string(), body));
    }
    let (_, page) = server.call("/fn/admin/provider", &[("id", id)]).await;
    let page: Value = serde_json::from_str(&page).unwrap();
    for key in page["keys"].as_array().unwrap() {
        let kid = key["id"].as_str().unwrap();
        let (_, body) = server.call("/fn/admin/provider-test", &[("provider_id", id), ("key_id", kid)]).await;
        bodies.push(("key test".into(), body));
    }
    for path in ["/admin/providers", &format!("/admin/providers/{id}"), "/admin"] {
        bodies.push((path.to_string(), server.page(path).await));
    }
    // The bad key was echoed by the provider (shortened): the check still shows none of it.
    assert!(
        bodies.iter().any(|(_, b)| b.contains("Incorrect API key provided")),
        "the provider's message is shown"
    );
    let log = server.log.clone();
    drop(server);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.lines().count() > 100 && logs.contains("/fn/admin/key-add"), "logging was captured");
    for key in [GOOD, BAD] {
        for piece in pieces(key) {
            for (what, body) in &bodies {
                assert!(!body.contains(piece), "{what} holds '{piece}' of a key: {body}");
            }
            assert!(!logs.contains(piece), "a log line holds '{piece}' of a key");
        }
    }
    // And the database holds only ciphertext.
    use sea_orm::EntityTrait;
    for c in goblin_core::entities::provider_credentials::Entity::find().all(&app.state.db).await.unwrap() {
        assert!(
            !c.ciphertext
                .windows(8)
                .any(|w| pieces(GOOD).iter().chain(pieces(BAD).iter()).any(|p| p.as_bytes() == w))
        );
    }
    mock.shutdown().await;
    app.stop().await;
}

#[tokio::test]
async fn sync_models_adds_new_ones_and_leaves_edited_ones_alone() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let mock = mock().await;
    let id = add_provider(&app, "main", "openai", &mock.base_url("openai"), GOOD).await;
    let first = ok(&app, "/fn/admin/models-sync", &[("provider_id", &id)]).await;
    let added = first["added"].as_array().unwrap().len();
    assert!(added >= 3, "{first}");
    let page = ok(&app, "/fn/admin/provider", &[("id", &id)]).await;
    let models = page["models"].as_array().unwrap();
    let embed =
        models.iter().find(|m| m["model_id"] == "text-embedding-3-small").expect("embedding model listed");
    assert_eq!(embed["capabilities"], serde_json::json!(["embeddings"]));
    assert_eq!(embed["edited"], false);

    // An admin edits one model: price, context, params, default.
    let mid = embed["id"].as_str().unwrap();
    ok(
        &app,
        "/fn/admin/model-save",
        &[
            ("provider_id", &id),
            ("id", mid),
            ("model_id", "text-embedding-3-small"),
            ("display_name", "Small embeddings"),
            ("cap_embeddings", "on"),
            ("context_window", "8191"),
            ("price_in", "0.02"),
            ("price_out", ""),
            ("default_params", ""),
            ("is_default", "on"),
        ],
    )
    .await;
    // Bad values are refused, naming the field.
    for (field, value, says) in [
        ("price_in", "0.0000001", "input price"),
        ("price_in", "free", "input price"),
        ("context_window", "-4", "context window"),
        ("default_params", "{\"temperature\": 9}", "temperature"),
        ("default_params", "[1]", "JSON object"),
        ("model_id", "has space", "model id"),
    ] {
        let mut form = vec![
            ("provider_id", id.as_str()),
            ("id", mid),
            ("model_id", "text-embedding-3-small"),
            ("display_name", "x"),
            ("context_window", ""),
            ("price_in", ""),
            ("price_out", ""),
            ("default_params", ""),
        ];
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        let (status, body) = call(&app, "/fn/admin/model-save", &form).await;
        assert_eq!(status, 400, "{field}={value}: {body}");
        assert!(body.contains(says), "{field}: {body}");
    }
    let second = ok(&app, "/fn/admin/models-sync", &[("provider_id", &id)]).await;
    assert_eq!(second["added"], serde_json::json!([]));
    assert_eq!(second["kept"].as_u64().unwrap() as usize, added);
    let page = ok(&app, "/fn/admin/provider", &[("id", &id)]).await;
    let embed = page["models"].as_array().unwrap().iter().find(|m| m["id"] == mid).unwrap().clone();
    assert_eq!(
        (embed["display_name"].as_str(), embed["price_in"].as_str(), embed["context_window"].as_i64()),
        (Some("Small embeddings"), Some("0.02"), Some(8191))
    );
    assert_eq!((embed["edited"].as_bool(), embed["is_default"].as_bool()), (Some(true), Some(true)));
    assert_eq!(page["models"].as_array().unwrap().iter().filter(|m| m["is_default"] == true).count(), 1);

    // A sync with a key the provider refuses says so, in the provider's words, and changes nothing.
    let (status, body) = call(
        &app,
        "/fn/admin/provider-create",
        &[
            ("name", "other"),
            ("kind", "anthropic"),
            ("base_url", &mock.base_url("anthropic")),
            ("priority", ""),
            ("key", BAD),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let other: String = serde_json::from_str(&body).unwrap();
    let (status, body) = call(&app, "/fn/admin/models-sync", &[("provider_id", &other)]).await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid x-api-key") && !body.contains(&BAD[..8]), "{body}");
    mock.shutdown().await;
    app.stop().await;
}

#[tokio::test]
async fn provider_forms_refuse_bad_input_with_clear_messages() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let id = add_provider(&app, "main", "openai", "", "").await;
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: &[Case] = &[
        (&[("name", ""), ("kind", "openai"), ("base_url", ""), ("priority", "")], 400, "name"),
        (&[("name", "main"), ("kind", "openai"), ("base_url", ""), ("priority", "")], 400, "already exists"),
        (
            &[("name", "x"), ("kind", "claude"), ("base_url", ""), ("priority", "")],
            400,
            "unknown provider kind 'claude'",
        ),
        (
            &[("name", "x"), ("kind", "openai-compatible"), ("base_url", ""), ("priority", "")],
            400,
            "needs one",
        ),
        (
            &[("name", "x"), ("kind", "openai"), ("base_url", "ftp://h/v1"), ("priority", "")],
            400,
            "http:// or https://",
        ),
        (
            &[("name", "x"), ("kind", "openai"), ("base_url", "https://h/v1?key=1"), ("priority", "")],
            400,
            "query",
        ),
        (&[("name", "x"), ("kind", "openai"), ("base_url", ""), ("priority", "high")], 400, "priority"),
        (
            &[("name", "x"), ("kind", "openai"), ("base_url", ""), ("priority", ""), ("key", "two words")],
            400,
            "spaces",
        ),
        (
            &[("name", "<script>alert(1)</script>"), ("kind", "openai"), ("base_url", ""), ("priority", "")],
            400,
            "name",
        ),
        (&[("kind", "openai")], 400, ""),
    ];
    for (form, status, says) in cases {
        let (s, body) = call(&app, "/fn/admin/provider-create", form).await;
        assert_eq!(s, *status, "{form:?}: {body}");
        assert!(body.contains(says), "{form:?}: {body}");
    }
    for (path, form) in [
        ("/fn/admin/provider", vec![("id", "00000000-0000-0000-0000-000000000000")]),
        ("/fn/admin/provider", vec![("id", "not-an-id")]),
        ("/fn/admin/provider-test", vec![("provider_id", "00000000-0000-0000-0000-000000000000")]),
        (
            "/fn/admin/key-replace",
            vec![("id", "00000000-0000-0000-0000-000000000000"), ("key", "k-123456789")],
        ),
        ("/fn/admin/model-delete", vec![("id", "00000000-0000-0000-0000-000000000000"), ("confirm", "yes")]),
    ] {
        let (s, body) = call(&app, path, &form).await;
        assert_eq!(s, 404, "{path}: {body}");
    }
    // A provider without keys cannot be tested, and says why.
    let (s, body) = call(&app, "/fn/admin/provider-test", &[("provider_id", &id)]).await;
    assert_eq!(s, 400);
    assert!(body.contains("no enabled, unexpired key"), "{body}");
    // Deleting needs the confirmation box.
    let (s, body) = call(&app, "/fn/admin/provider-delete", &[("id", &id)]).await;
    assert_eq!(s, 400);
    assert!(body.contains("tick the box"), "{body}");
    assert_eq!(
        ok(&app, "/fn/admin/providers", &[]).await.as_array().unwrap().len(),
        1,
        "nothing was changed"
    );
    ok(&app, "/fn/admin/provider-delete", &[("id", &id), ("confirm", "yes")]).await;
    assert_eq!(ok(&app, "/fn/admin/providers", &[]).await.as_array().unwrap().len(), 0);
    // Viewers and operators are refused.
    app.sign_in_as("op", "operator").await;
    let (s, _) = call(&app, "/fn/admin/providers", &[]).await;
    assert_eq!(s, 403);
    app.stop().await;
}

#[tokio::test]
async fn reordering_and_disabling_providers() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let a = add_provider(&app, "a", "openai", "", "").await;
    let _b = add_provider(&app, "b", "anthropic", "", "").await;
    let c = add_provider(&app, "c", "gemini", "", "").await;
    let names = |v: Value| {
        v.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(names(ok(&app, "/fn/admin/providers", &[]).await), ["a", "b", "c"]);
    ok(&app, "/fn/admin/provider-move", &[("id", &c), ("direction", "up")]).await;
    assert_eq!(names(ok(&app, "/fn/admin/providers", &[]).await), ["a", "c", "b"]);
    ok(&app, "/fn/admin/provider-move", &[("id", &a), ("direction", "down")]).await;
    ok(&app, "/fn/admin/provider-move", &[("id", &a), ("direction", "down")]).await;
    assert_eq!(names(ok(&app, "/fn/admin/providers", &[]).await), ["c", "b", "a"]);
    let (s, _) = call(&app, "/fn/admin/provider-move", &[("id", &a), ("direction", "sideways")]).await;
    assert_eq!(s, 400);
    ok(&app, "/fn/admin/provider-enabled", &[("id", &a), ("enabled", "false")]).await;
    let list = ok(&app, "/fn/admin/providers", &[]).await;
    assert_eq!(list[2]["enabled"], false);
    assert_eq!(list[0]["priority"], 10);
    app.stop().await;
}

fn seed_env<'a>(db_url: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("DATABASE_URL", db_url), ("GOBLIN_ENCRYPTION_KEY", KEY_A)];
    env.extend_from_slice(extra);
    env
}

async fn environment_creates_providers_once(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let url = db.url.clone();
    let first = seed_env(
        &url,
        &[
            ("OPENAI_API_KEY", GOOD),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ("SILLICONFLOW_API_KEY", "sf-misspelt-0000000000000000"),
            ("GEMINI_API_KEY", "gm-0000000000000000000000"),
            ("LOCAL_LLM_BASE_URL", "http://127.0.0.1:11434/v1"),
            ("MOONSHOT_BASE_URL", "not a url"),
            ("MOONSHOT_API_KEY", "ms-0000000000000000000000"),
        ],
    );
    let app = spawn_app_on(db, &first).await;
    app.sign_in_as("root", "admin").await;
    let list = ok(&app, "/fn/admin/providers", &[]).await;
    let by_name =
        |list: &Value, name: &str| list.as_array().unwrap().iter().find(|p| p["name"] == name).cloned();
    let mut names: Vec<String> =
        list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, ["gemini", "local", "openai", "siliconflow"], "moonshot's bad base URL skips it");
    let openai = by_name(&list, "openai").unwrap();
    assert_eq!(openai["base_url"], "http://127.0.0.1:9/v1");
    assert_eq!(
        (openai["keys"].as_u64(), by_name(&list, "local").unwrap()["keys"].as_u64()),
        (Some(1), Some(0))
    );
    let page = ok(&app, "/fn/admin/provider", &[("id", openai["id"].as_str().unwrap())]).await;
    assert_eq!(page["keys"][0]["masked"], goblin_core::providers::kinds::mask(GOOD));
    assert_eq!(page["keys"][0]["label"], "from environment");

    // Admin edits: openai renamed and re-prioritised, gemini deleted.
    let oid = openai["id"].as_str().unwrap().to_string();
    ok(
        &app,
        "/fn/admin/provider-update",
        &[
            ("id", &oid),
            ("name", "openai-prod"),
            ("kind", "openai"),
            ("base_url", ""),
            ("priority", "3"),
            ("cap_chat", "on"),
            ("enabled", "on"),
        ],
    )
    .await;
    let gid = by_name(&list, "gemini").unwrap()["id"].as_str().unwrap().to_string();
    ok(&app, "/fn/admin/provider-delete", &[("id", &gid), ("confirm", "yes")]).await;

    // A restart with other values, and a new provider's key.
    let second = seed_env(
        &url,
        &[
            ("OPENAI_API_KEY", BAD),
            ("GEMINI_API_KEY", "gm-1111111111111111111111"),
            ("ANTHROPIC_API_KEY", "an-0000000000000000000000"),
            ("MOONSHOT_API_KEY", "ms-0000000000000000000000"),
        ],
    );
    let other_dir = TestDb::new(Backend::Sqlite).await.unwrap();
    let again = spawn_app_on(other_dir, &second).await;
    again.sign_in_as("root2", "admin").await;
    let list = ok(&again, "/fn/admin/providers", &[]).await;
    let mut names: Vec<String> =
        list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    names.sort();
    assert_eq!(names, ["anthropic", "local", "moonshot", "openai-prod", "siliconflow"]);
    let openai = by_name(&list, "openai-prod").unwrap();
    assert_eq!((openai["priority"].as_i64(), openai["keys"].as_u64()), (Some(3), Some(1)));
    let page = ok(&again, "/fn/admin/provider", &[("id", &oid)]).await;
    assert_eq!(
        page["keys"][0]["masked"],
        goblin_core::providers::kinds::mask(GOOD),
        "the stored key is kept"
    );
    again.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn environment_creates_providers_once_sqlite() {
    environment_creates_providers_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn environment_creates_providers_once_postgres() {
    environment_creates_providers_once(Backend::Postgres).await;
}
