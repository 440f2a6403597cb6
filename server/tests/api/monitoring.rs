//! Monitoring: `/metrics` (Prometheus text, who may read it, the series it has), request ids,
//! Raptor (start, samples, stop, the log tail of a huge file, bad input, who may use it), traced
//! exceptions from an error event and from a panic, and the dashboard home with and without data.

use std::{collections::BTreeSet, io::Write, time::Duration};

use goblin_mock_upstream::{MockConfig, MockUpstream};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};

const KEY: &str = "sk-monitoring-test-0123456789abcdefghij";

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

async fn post_json(app: &TestApp, path: &str, body: &str) -> (u16, Value) {
    json_of(
        app.post(path)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text parses")
}

fn names(s: &prometheus_parse::Scrape) -> BTreeSet<String> {
    s.samples
        .iter()
        .map(|m| {
            let n = m.metric.as_str();
            ["_bucket", "_sum", "_count"]
                .iter()
                .fold(n, |n, suffix| n.strip_suffix(suffix).unwrap_or(n))
                .to_string()
        })
        .collect()
}

/// One chat request through a mock OpenAI provider, so the gateway series exist.
async fn one_gateway_request(app: &TestApp, admin: uuid::Uuid) -> MockUpstream {
    let mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    let input = goblin_core::providers::ProviderInput {
        name: "oa".into(),
        kind: "openai".into(),
        base_url: mock.base_url("openai"),
        enabled: true,
        ..Default::default()
    };
    let p = app.state.providers.create(Some(admin), &input).await.unwrap();
    app.state.providers.add_key(Some(admin), p.id, "k", KEY, "").await.unwrap();
    app.state.providers.sync_models(Some(admin), p.id).await.unwrap();
    app.state.gateway.reload().await.unwrap();
    let user =
        goblin_core::entities::users::Entity::find_by_id(admin).one(&app.state.db).await.unwrap().unwrap();
    let token =
        app.state.tokens.issue(&user, "gw", &["chat".into()], chrono::Duration::days(1), None).await.unwrap();
    let resp = reqwest::Client::new()
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(token.token.expose())
        .json(&json!({"model": "oa/gpt-4o-mini", "messages": [{"role": "user", "content": "hello goblins"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    mock
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_every_series() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let admin = app.sign_in_as("root", "admin").await;
    let _mock = one_gateway_request(&app, admin).await;
    assert_eq!(app.get("/health").await.status(), 200);
    let id = uuid::Uuid::new_v4();
    assert_eq!(app.get(&format!("/raptor/exceptions/{id}")).await.status(), 404);
    // A task that finished after the server started counts in the duration histogram.
    goblin_core::entities::tasks::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        goblin_id: Set("echo".into()),
        task: Set("t".into()),
        status: Set("succeeded".into()),
        dry_run: Set(false),
        duration_ms: Set(Some(1500)),
        created_at: Set(chrono::Utc::now()),
        finished_at: Set(Some(chrono::Utc::now() + chrono::Duration::seconds(1))),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    app.state.gateway.records().flush(Duration::from_secs(5)).await;

    let s = scrape(&app).await;
    let have = names(&s);
    for series in [
        "goblin_http_requests_total",
        "goblin_http_request_duration_seconds",
        "goblin_db_pool_connections",
        "goblin_db_pool_size",
        "goblin_db_pool_max_connections",
        "goblin_db_pool_saturated",
        "goblin_component_up",
        "goblin_gateway_requests_total",
        "goblin_gateway_attempts_total",
        "goblin_gateway_request_duration_seconds",
        "goblin_gateway_tokens_total",
        "goblin_provider_info",
        "goblin_tasks",
        "goblin_tasks_queue_depth",
        "goblin_task_duration_seconds",
        "goblin_passkey_signins_total",
        "goblin_challenge_store_up",
        "goblin_request_log_queue_depth",
        "goblin_request_log_dropped_total",
        "goblin_request_log_written_total",
        "goblin_raptor_running",
    ] {
        assert!(have.contains(series), "{series} missing from {have:?}");
    }
    // Routes are labelled by their template, never the raw path. (The parser skips label values with
    // braces, so templates with parameters are checked in the text.)
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains(r#"route="/raptor/exceptions/{id}""#), "{text}");
    assert!(!text.contains(&id.to_string()));
    let routes: BTreeSet<String> = s
        .samples
        .iter()
        .filter(|m| m.metric == "goblin_http_requests_total")
        .filter_map(|m| m.labels.get("route").map(str::to_string))
        .collect();
    assert!(routes.contains("/health"), "{routes:?}");
    let health = s
        .samples
        .iter()
        .find(|m| {
            m.metric == "goblin_http_requests_total"
                && m.labels.get("route") == Some("/health")
                && m.labels.get("status") == Some("200")
        })
        .expect("GET /health counted with its status");
    assert!(matches!(health.value, prometheus_parse::Value::Counter(n) if n >= 1.0));
    let provider = s.samples.iter().find(|m| m.metric == "goblin_provider_info").unwrap();
    assert_eq!(provider.labels.get("name"), Some("oa"));
    // No secret in the whole text.
    assert!(!text.contains(KEY) && !text.contains(&KEY[..12]));
    app.stop().await;
}

#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let token = "metrics-token-0123456789";
    let app = spawn_app(Backend::Sqlite, &[("GOBLIN_METRICS_TOKEN", token)]).await.unwrap();
    let (status, body) = json_of(app.get("/metrics").await).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Bearer"), "{body}");
    let wrong =
        app.client.get(app.url("/metrics")).bearer_auth("metrics-token-0123456780").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.client.get(app.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(right.status(), 200);
    app.stop().await;

    let app =
        spawn_app(Backend::Sqlite, &[("GOBLIN_METRICS_LOOPBACK_WITHOUT_TOKEN", "false")]).await.unwrap();
    let (status, body) = json_of(app.get("/metrics").await).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("GOBLIN_METRICS_TOKEN"));
    app.stop().await;
}

#[tokio::test]
async fn request_ids_are_passed_through_or_made() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let resp = app.client.get(app.url("/health")).header("x-request-id", "abc-123.x:y").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123.x:y");
    for bad in ["has spaces in it", &"x".repeat(200), "semi;colon"] {
        let resp = app.client.get(app.url("/health")).header("x-request-id", bad).send().await.unwrap();
        let id = resp.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "a new id replaces {bad:?}: {id}");
    }
    let resp = app.get("/health").await;
    assert!(uuid::Uuid::parse_str(resp.headers()["x-request-id"].to_str().unwrap()).is_ok());
    app.stop().await;
}

#[tokio::test]
async fn raptor_is_for_admins_and_checks_its_input() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let (status, body) = post_json(&app, "/raptor/start", "{}").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(app.get("/raptor/status").await.status(), 401, "not redirected to the sign-in page");
    app.sign_in_as("viewer", "viewer").await;
    for (method, path) in [
        ("POST", "/raptor/start"),
        ("POST", "/raptor/stop"),
        ("GET", "/raptor/status"),
        ("POST", "/raptor/logs"),
        ("GET", "/raptor/exceptions"),
        ("GET", "/raptor/demo/boom"),
    ] {
        let resp = if method == "POST" { app.post(path).send().await.unwrap() } else { app.get(path).await };
        assert_eq!(resp.status(), 403, "{method} {path}");
    }
    assert_eq!(app.get("/admin/monitoring").await.status(), 403);

    let app2 = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app2.sign_in_as("root", "admin").await;
    let cases: &[(&str, &str, &str)] = &[
        ("/raptor/start", "{", "not valid JSON"),
        ("/raptor/start", "[1]", "must be a JSON object"),
        (
            "/raptor/start",
            r#"{"sample_rate_ms": "fast"}"#,
            "sample_rate_ms: must be a whole number from 100 to 3600000, not text",
        ),
        (
            "/raptor/start",
            r#"{"sample_rate_ms": 5}"#,
            "sample_rate_ms: must be a whole number from 100 to 3600000, not 5",
        ),
        ("/raptor/start", r#"{"sample_rate_ms": 1.5}"#, "sample_rate_ms"),
        ("/raptor/start", r#"{"rate": 100}"#, "unknown field 'rate'"),
        ("/raptor/logs", r#"{"lines": 0}"#, "lines: must be a whole number from 1 to 10000"),
        ("/raptor/logs", r#"{"lines": -4}"#, "lines"),
        ("/raptor/logs", r#"{"max_chars": 99999999999}"#, "max_chars"),
        (
            "/raptor/logs",
            r#"{"level": "loud"}"#,
            "level: must be one of error, warn, info, debug or all, not 'loud'",
        ),
        ("/raptor/logs", r#"{"level": 3}"#, "level: must be one of"),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = post_json(&app2, path, body).await;
        assert_eq!(status, 400, "{path} {body}: {answer}");
        let msg = answer["error"]["message"].as_str().unwrap();
        assert!(msg.contains(expected), "{path} {body}: {msg}");
    }
    let (status, body) = json_of(app2.get("/raptor/status?samples=lots").await).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(app2.get("/raptor/exceptions/not-an-id").await.status(), 404);
    assert!(!app2.state.raptor.status().running, "no refused request started it");
    app.stop().await;
    app2.stop().await;
}

#[tokio::test]
async fn raptor_starts_samples_and_stops() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let (status, body) = json_of(app.get("/raptor/status").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["running"], false);
    assert_eq!(body["sample_rate_ms"], 1000, "the configured default");

    let (status, body) = post_json(&app, "/raptor/start", r#"{"sample_rate_ms": 100}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["running"].as_bool(), body["sample_rate_ms"].as_u64()), (Some(true), Some(100)));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status_body = loop {
        let (_, body) = json_of(app.get("/raptor/status?samples=10").await).await;
        if body["samples"].as_array().unwrap().len() >= 3 {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "no samples: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sample = &status_body["samples"][0];
    assert!(sample["process_memory_bytes"].as_u64().unwrap() > 0, "{sample}");
    assert!(sample["system_memory_total_bytes"].as_u64().unwrap() > 0, "{sample}");
    assert!(sample["system_cpu_percent"].is_number(), "{sample}");

    let (status, tail) = post_json(&app, "/raptor/logs", r#"{"lines": 5, "level": "info"}"#).await;
    assert_eq!(status, 200, "{tail}");
    let lines = tail["lines"].as_array().unwrap();
    assert!(!lines.is_empty() && lines.len() <= 5, "{tail}");
    assert!(lines.iter().any(|l| l.as_str().unwrap().contains(r#""kind":"sample""#)), "{tail}");
    for l in lines {
        serde_json::from_str::<Value>(l.as_str().unwrap()).expect("each line is a JSON object");
    }

    let (status, body) = post_json(&app, "/raptor/stop", "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["running"], false);
    let taken = body["samples_taken"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, body) = json_of(app.get("/raptor/status").await).await;
    assert!(body["samples_taken"].as_u64().unwrap() <= taken + 1, "sampling stopped: {body}");
    app.stop().await;
}

#[tokio::test]
async fn the_tail_of_a_100_mb_log_reads_only_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big-raptor.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let block: String = (0..10_000)
            .map(|i| format!("{{\"ts\":\"2026-01-01T00:00:00Z\",\"level\":\"INFO\",\"kind\":\"log\",\"message\":\"old line {i}\"}}\n"))
            .collect();
        let mut written = 0;
        while written < 100 * 1024 * 1024 {
            f.write_all(block.as_bytes()).unwrap();
            written += block.len();
        }
        f.write_all(b"{\"ts\":\"2026-01-01T00:00:01Z\",\"level\":\"ERROR\",\"kind\":\"log\",\"message\":\"the only error\"}\n")
            .unwrap();
    }
    let file = path.display().to_string();
    let app =
        spawn_app(Backend::Sqlite, &[("GOBLIN_RAPTOR_FILE", &file), ("GOBLIN_RAPTOR_MAX_FILE_MB", "1024")])
            .await
            .unwrap();
    app.sign_in_as("root", "admin").await;

    let (status, tail) = post_json(&app, "/raptor/logs", r#"{"lines": 20}"#).await;
    assert_eq!(status, 200, "{tail}");
    assert_eq!(tail["lines"].as_array().unwrap().len(), 20);
    assert!(tail["file_bytes"].as_u64().unwrap() >= 100 * 1024 * 1024, "{}", tail["file_bytes"]);
    assert!(tail["bytes_read"].as_u64().unwrap() <= 128 * 1024, "read only its end: {}", tail["bytes_read"]);
    assert_eq!(tail["more_before"], true);

    // One error in 100 MB: found near the end, and the search gives up after a bounded read.
    let (status, tail) = post_json(&app, "/raptor/logs", r#"{"lines": 50, "level": "error"}"#).await;
    assert_eq!(status, 200, "{tail}");
    let lines: Vec<&str> = tail["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(lines.iter().any(|l| l.contains("the only error")), "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("\"level\":\"ERROR\"")), "{lines:?}");
    let read = tail["bytes_read"].as_u64().unwrap();
    assert!(read <= goblin_core::raptor::log::MAX_SCAN_BYTES + 64 * 1024, "{read}");

    let (status, tail) = post_json(&app, "/raptor/logs", r#"{"max_chars": 300}"#).await;
    assert_eq!(status, 200, "{tail}");
    let chars: usize =
        tail["lines"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().chars().count()).sum();
    let n = tail["lines"].as_array().unwrap().len();
    assert!(chars > 0 && (chars <= 300 || n == 1), "{chars} characters in {n} lines");
    app.stop().await;
}

/// Polls the exception list until one matches.
async fn find_exception(app: &TestApp, matches: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        app.state.raptor.exceptions().flush(Duration::from_secs(5)).await;
        let (status, body) = json_of(app.get("/raptor/exceptions?limit=500").await).await;
        assert_eq!(status, 200, "{body}");
        if let Some(e) = body["exceptions"].as_array().unwrap().iter().find(|e| matches(e)) {
            return e.clone();
        }
        assert!(std::time::Instant::now() < deadline, "not captured: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_panic_in_a_handler_is_a_500_with_the_request_id_and_a_captured_exception() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let admin = app.sign_in_as("root", "admin").await;
    let request_id = format!("panic-{}", uuid::Uuid::new_v4().simple());
    let resp = app
        .client
        .get(app.url("/raptor/demo/panic"))
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["x-request-id"], request_id.as_str());
    let (_, body) = json_of(resp).await;
    assert_eq!(body["error"]["request_id"], request_id.as_str(), "{body}");
    assert!(!body.to_string().contains("on purpose"), "the panic's message stays on the server: {body}");

    let e =
        find_exception(&app, |e| e["context"]["request_id"] == request_id.as_str() && e["kind"] == "panic")
            .await;
    assert!(e["message"].as_str().unwrap().contains("a panic on purpose"), "{e}");
    assert!(e["location"].as_str().unwrap().contains("raptor.rs"), "{e}");
    assert_eq!(e["context"]["route"], "/raptor/demo/{value}", "{e}");
    assert_eq!(e["context"]["method"], "GET", "{e}");
    assert_eq!(e["context"]["user_id"], admin.to_string(), "{e}");
    assert!(e["backtrace"].as_str().is_some_and(|b| !b.is_empty()), "{e}");
    assert!(e["count"].as_i64().unwrap() >= 1);

    // The server goes on serving, and the same panic again counts in the same group.
    assert_eq!(app.get("/health").await.status(), 200);
    let again = format!("panic-{}", uuid::Uuid::new_v4().simple());
    let resp =
        app.client.get(app.url("/raptor/demo/panic")).header("x-request-id", &again).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let e2 =
        find_exception(&app, |e| e["context"]["request_id"] == again.as_str() && e["kind"] == "panic").await;
    assert_eq!(e2["id"], e["id"], "grouped by fingerprint");
    assert!(e2["count"].as_i64().unwrap() >= 2, "{e2}");
    let (status, one) =
        json_of(app.get(&format!("/raptor/exceptions/{}", e["id"].as_str().unwrap())).await).await;
    assert_eq!(status, 200);
    assert_eq!(one["fingerprint"], e["fingerprint"]);
    app.stop().await;
}

#[tokio::test]
async fn the_demo_error_is_traced_end_to_end_into_the_log_and_the_exceptions_on_sqlite() {
    demo_error_end_to_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_demo_error_is_traced_end_to_end_into_the_log_and_the_exceptions_on_postgres() {
    demo_error_end_to_end(Backend::Postgres).await;
}

async fn demo_error_end_to_end(backend: Backend) {
    let Some(app) = spawn_app(backend, &[]).await else { return };
    let admin = app.sign_in_as("root", "admin").await;
    let (status, body) = json_of(app.get("/raptor/demo/hello").await).await;
    assert_eq!((status, &body["echo"]), (200, &json!("hello")));

    let request_id = format!("boom-{}", uuid::Uuid::new_v4().simple());
    let resp = app
        .client
        .get(app.url("/raptor/demo/boom"))
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["x-request-id"], request_id.as_str());
    let e =
        find_exception(&app, |e| e["context"]["request_id"] == request_id.as_str() && e["kind"] == "error")
            .await;
    assert!(e["message"].as_str().unwrap().contains("boom"), "{e}");
    assert_eq!(e["context"]["route"], "/raptor/demo/{value}");
    assert_eq!(e["context"]["user_id"], admin.to_string());
    assert!(e["context"]["spans"].as_array().unwrap().contains(&json!("raptor_demo")), "{e}");

    let (status, tail) = post_json(&app, "/raptor/logs", r#"{"level": "error", "lines": 100}"#).await;
    assert_eq!(status, 200);
    let line = tail["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l.as_str().unwrap()).unwrap())
        .find(|l| l["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("the error is in the Raptor log: {tail}"));
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["route"], "/raptor/demo/{value}");
    app.stop().await;
}

#[tokio::test]
async fn secrets_never_reach_the_raptor_log_or_the_exceptions() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let secret = "sk-live-s3cretvalue0123456789";
    {
        let span = tracing::error_span!("request", request_id = %marker);
        let _in = span.enter();
        tracing::error!(api_key = %secret, url = "postgres://goblin:pg-s3cret@db/goblin", "upstream refused Bearer {secret}");
    }
    let e = find_exception(&app, |e| e["context"]["request_id"] == marker.as_str()).await;
    let text = e.to_string();
    assert!(!text.contains("s3cret"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
    let (_, tail) = post_json(&app, "/raptor/logs", r#"{"level": "error", "lines": 200}"#).await;
    let tail = tail.to_string();
    assert!(tail.contains(&marker) && !tail.contains("s3cret"), "{tail}");
    app.stop().await;
}

#[tokio::test]
async fn the_home_page_renders_with_no_data_and_with_data_on_sqlite() {
    home_page(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_home_page_renders_with_no_data_and_with_data_on_postgres() {
    home_page(Backend::Postgres).await;
}

async fn home_page(backend: Backend) {
    // No worker: the queued tasks below stay queued.
    let Some(app) = spawn_app(backend, &[("GOBLIN_WORKERS", "false")]).await else { return };
    app.sign_in_as("viewer", "viewer").await;
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    for id in [
        "card-api",
        "component-database",
        "card-redis",
        "card-providers",
        "card-tasks",
        "card-spend",
        "chart-requests",
        "chart-spend",
        "chart-tasks",
    ] {
        assert!(html.contains(&format!("data-testid=\"{id}\"")), "{id} missing");
    }
    for empty in [
        "No requests in the last 24 hours.",
        "No spend in the last 30 days.",
        "No finished tasks in the last 14 days.",
    ] {
        assert!(html.contains(empty), "empty charts say so: {empty}");
    }
    assert!(html.contains(">0 of 0</p>"), "{html}");
    assert!(
        !html.contains("<template"),
        "in order, not streamed out of order: the cards read without JavaScript"
    );
    assert!(html.contains("$0.00"));

    // Some traffic, spend and tasks.
    let now = chrono::Utc::now();
    let provider = uuid::Uuid::new_v4();
    goblin_core::entities::providers::ActiveModel {
        id: Set(provider),
        name: Set("spendy".into()),
        kind: Set("openai".into()),
        base_url: Set(None),
        enabled: Set(true),
        priority: Set(0),
        capabilities: Set(json!([])),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    goblin_core::entities::provider_metrics::ActiveModel {
        provider_id: Set(provider),
        model: Set("m".into()),
        minute: Set(now - chrono::Duration::minutes(1)),
        requests: Set(42),
        errors: Set(2),
        latency_p95_ms: Set(Some(321)),
        cost_micros: Set(1_250_000),
        health: Set("up".into()),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    goblin_core::entities::routing_requests::ActiveModel {
        id: Set(uuid::Uuid::new_v4()),
        created_at: Set(now),
        requested_model: Set("m".into()),
        attempts: Set(json!([])),
        stream: Set(false),
        status: Set("ok".into()),
        http_status: Set(200),
        latency_ms: Set(10),
        tokens_in: Set(1),
        tokens_out: Set(1),
        cost_micros: Set(1_250_000),
        ..Default::default()
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    for status in ["queued", "queued", "running"] {
        goblin_core::entities::tasks::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            goblin_id: Set("no-such-goblin".into()),
            task: Set("t".into()),
            status: Set(status.into()),
            dry_run: Set(false),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(&app.state.db)
        .await
        .unwrap();
    }
    let html = app.get("/").await.text().await.unwrap();
    assert!(html.contains("$1.25"), "spend today");
    assert!(html.contains(">1 of 1</p>"), "providers");
    assert!(html.contains("spendy"), "the spend chart names the provider");
    assert!(html.contains("42 requests"), "the requests chart labels its bars");
    assert!(!html.contains("No requests in the last 24 hours"));
    assert!(html.contains("<svg"), "charts are server-rendered SVG");
    assert!(
        html.contains("data-testid=\"tasks-queued\">2<") && html.contains("data-testid=\"tasks-running\">1<")
    );
    app.stop().await;
}

#[tokio::test]
async fn with_redis_the_challenge_store_and_redis_show_in_metrics_and_home() {
    let Some(redis) = crate::helpers::redis_url() else { return };
    let app = spawn_app(Backend::Sqlite, &[("REDIS_URL", &redis)]).await.unwrap();
    app.sign_in_as("viewer", "viewer").await;
    let s = scrape(&app).await;
    let store = s
        .samples
        .iter()
        .find(|m| m.metric == "goblin_challenge_store_up" && m.labels.get("backend") == Some("redis"))
        .expect("the challenge store is Redis");
    assert!(matches!(store.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
    let up = s
        .samples
        .iter()
        .find(|m| m.metric == "goblin_component_up" && m.labels.get("component") == Some("redis"))
        .expect("Redis health");
    assert!(matches!(up.value, prometheus_parse::Value::Gauge(v) if v == 1.0));
    let html = app.get("/").await.text().await.unwrap();
    assert!(
        html.contains(r#"data-testid="component-redis""#) && !html.contains(r#"data-testid="card-redis""#)
    );
    app.stop().await;
}

// ---- database pool acquire waits ----

/// The value of a counter sample without labels.
fn counter_value(s: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    s.samples.iter().find(|m| m.metric == name).and_then(|m| match m.value {
        prometheus_parse::Value::Counter(v) => Some(v),
        _ => None,
    })
}

/// The observation count of a histogram without labels (`None` when it is missing or not a
/// histogram).
fn histogram_count(s: &prometheus_parse::Scrape, name: &str) -> Option<f64> {
    let m = s.samples.iter().find(|m| m.metric == name)?;
    match &m.value {
        prometheus_parse::Value::Histogram(buckets) => buckets.iter().map(|b| b.count).reduce(f64::max),
        _ => None,
    }
}

#[tokio::test]
async fn metrics_count_callers_that_waited_for_a_pool_connection() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    // One connection: while a transaction holds it, any other query waits for it.
    let app = spawn_app(
        Backend::Sqlite,
        &[
            ("GOBLIN_DB_MIN_CONNECTIONS", "1"),
            ("GOBLIN_DB_MAX_CONNECTIONS", "1"),
            ("GOBLIN_DB_ACQUIRE_TIMEOUT_S", "30"),
        ],
    )
    .await
    .unwrap();
    let before = scrape(&app).await;
    assert!(
        before.docs.contains_key("goblin_db_pool_acquire_waits_total"),
        "the counter is described: {:?}",
        before.docs.keys().collect::<Vec<_>>()
    );
    let waits_before = counter_value(&before, "goblin_db_pool_acquire_waits_total")
        .expect("goblin_db_pool_acquire_waits_total is a counter, shown from the start");
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("# TYPE goblin_db_pool_acquire_waits_total counter"), "{text}");
    assert!(text.contains("# TYPE goblin_db_pool_acquire_wait_seconds histogram"), "{text}");

    // Saturate the pool: hold its only connection, start a query, let it wait, then let it go.
    let mut rose = false;
    for _ in 0..5 {
        let held = app.state.db.begin().await.unwrap();
        held.execute_unprepared("SELECT 1").await.unwrap();
        let db = app.state.db.clone();
        let waiting = tokio::spawn(async move { db.execute_unprepared("SELECT 1").await.map(drop) });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "a second query cannot run while the only connection is held");
        held.commit().await.unwrap();
        waiting.await.unwrap().unwrap();
        let after = scrape(&app).await;
        let waits = counter_value(&after, "goblin_db_pool_acquire_waits_total").unwrap();
        if waits > waits_before {
            let n = histogram_count(&after, "goblin_db_pool_acquire_wait_seconds")
                .expect("goblin_db_pool_acquire_wait_seconds is a histogram once a caller waited");
            assert!(n >= 1.0, "{n}");
            rose = true;
            break;
        }
    }
    assert!(rose, "a query that waited for the pool's only connection is counted");
    app.stop().await;
}

// ---- task runs ----

/// A registry whose `gated` goblin waits for the file `go` in `dir` before printing a line.
fn gated_registry(dir: &std::path::Path) -> String {
    format!(
        r#"
guilds:
  - id: monitoring
    name: Monitoring
    toolbelt:
      - id: gated
        command: 'while [ ! -e "{go}" ]; do sleep 0.05; done; echo released'
"#,
        go = dir.join("go").display()
    )
}

const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Runs a `gated` task and makes its run fail to store its output: once it runs (on `worker`, when
/// given), the `task_logs` table is dropped and the gate opened. The run then logs an error ("could
/// not store the end of a task's output") from inside the run. Returns the task id.
async fn a_task_run_that_logs_an_error(app: &TestApp, worker: Option<&str>) -> uuid::Uuid {
    use goblin_core::tasks::{Actor, StartRequest};
    use sea_orm::ConnectionTrait;
    let me = app.sign_in_as("root", "admin").await;
    let actor = Actor { user_id: me, role: goblin_core::users::Role::Admin, token_id: None };
    let tasks = &app.state.tasks;
    let id =
        tasks.start(&actor, StartRequest { goblin: "gated".into(), ..Default::default() }).await.unwrap().id;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = tasks.view(id).await.unwrap();
        if v.status == "running" {
            if let Some(w) = worker {
                assert_eq!(v.worker_id.as_deref(), Some(w), "{v:?}");
            }
            break;
        }
        assert_eq!(v.status, "queued", "{v:?}");
        assert!(std::time::Instant::now() < deadline, "the task was not started: {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.state.db.execute_unprepared("DROP TABLE task_logs").await.unwrap();
    std::fs::write(app.db.data_dir.path().join("go"), b"").unwrap();
    let v = tasks.wait(id, Duration::from_secs(30)).await.unwrap();
    assert!(v.finished, "{v:?}");
    id
}

#[tokio::test]
async fn an_error_in_a_task_run_is_captured_with_its_task_and_goblin() {
    let db = crate::helpers::TestDb::new(Backend::Sqlite).await.unwrap();
    let dir = db.data_dir.path().to_path_buf();
    std::fs::write(dir.join("goblins.yaml"), gated_registry(&dir)).unwrap();
    let registry = dir.join("goblins.yaml").display().to_string();
    let workdir = dir.join("work").display().to_string();
    let app = crate::helpers::spawn_app_on(
        db,
        &[("GOBLIN_REGISTRY", &registry), ("GOBLIN_TASK_WORKDIR", &workdir), ("GOBLIN_TASK_POLL_MS", "100")],
    )
    .await;
    let id = a_task_run_that_logs_an_error(&app, None).await;
    let e = find_exception(&app, |e| e["context"]["task_id"] == id.to_string().as_str()).await;
    assert_eq!(e["kind"], "error", "{e}");
    assert!(e["message"].as_str().unwrap().contains("could not store the end of a task's output"), "{e}");
    assert_eq!(e["context"]["goblin_id"], "gated", "{e}");
    assert!(e["context"]["spans"].as_array().unwrap().contains(&json!("task_run")), "{e}");
    assert!(e["context"]["request_id"].is_null(), "a task run is not a request: {e}");
    app.stop().await;
}

/// `goblin worker` as a child process on `db_url`, with the `gated` registry in `dir`, and without
/// RUST_BACKTRACE (the environment is cleared).
fn worker_process(dir: &std::path::Path, db_url: &str, id: &str) -> std::process::Child {
    std::process::Command::new(crate::helpers::goblin_bin())
        .arg("worker")
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", db_url)
        .env("GOBLIN_WORKER_ID", id)
        .env("GOBLIN_DATA_DIR", dir.join(format!("data-{id}")))
        .env("GOBLIN_REGISTRY", dir.join("goblins.yaml"))
        .env("GOBLIN_TASK_WORKDIR", dir.join("work"))
        .env("GOBLIN_TASK_POLL_MS", "100")
        .env("GOBLIN_ENCRYPTION_KEY", ENCRYPTION_KEY)
        .env("GOBLIN_LOG", "warn")
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("goblin worker starts")
}

#[tokio::test]
async fn a_worker_process_traces_errors_of_its_task_runs_into_the_shared_database() {
    let db = crate::helpers::TestDb::new(Backend::Sqlite).await.unwrap();
    let dir = db.data_dir.path().to_path_buf();
    let url = db.url.clone();
    std::fs::write(dir.join("goblins.yaml"), gated_registry(&dir)).unwrap();
    let registry = dir.join("goblins.yaml").display().to_string();
    // This server runs no worker: the task runs in the worker process.
    let app = crate::helpers::spawn_app_on(
        db,
        &[
            ("GOBLIN_WORKERS", "false"),
            ("GOBLIN_REGISTRY", &registry),
            ("GOBLIN_ENCRYPTION_KEY", ENCRYPTION_KEY),
        ],
    )
    .await;
    let mut worker = worker_process(&dir, &url, "worker-m");
    let id = a_task_run_that_logs_an_error(&app, Some("worker-m")).await;
    let e = find_exception(&app, |e| e["context"]["task_id"] == id.to_string().as_str()).await;
    assert_eq!(e["kind"], "error", "{e}");
    assert!(e["message"].as_str().unwrap().contains("could not store the end of a task's output"), "{e}");
    assert_eq!(e["context"]["goblin_id"], "gated", "{e}");
    // The first error of its kind in the worker gets a backtrace, though RUST_BACKTRACE is unset there.
    assert!(e["backtrace"].as_str().is_some_and(|b| !b.trim().is_empty()), "{e}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(worker.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = worker.wait();
    app.stop().await;
}

// ---- backtraces ----

/// Runs the test `name` in a child process of its own, without `RUST_BACKTRACE` and
/// `RUST_LIB_BACKTRACE` (the standard library reads them once per process), and checks that it
/// passed. A child process also means no other test has raised the same error before. Returns
/// `false` in the child, which then runs the test's body.
fn in_a_child_without_rust_backtrace(name: &str) -> bool {
    const CHILD: &str = "GOBLIN_TEST_BACKTRACE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return false;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1"])
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[tokio::test]
async fn panics_and_errors_get_a_backtrace_with_rust_backtrace_unset() {
    let name = "monitoring::panics_and_errors_get_a_backtrace_with_rust_backtrace_unset";
    if in_a_child_without_rust_backtrace(name) {
        return;
    }
    assert!(std::env::var_os("RUST_BACKTRACE").is_none() && std::env::var_os("RUST_LIB_BACKTRACE").is_none());
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let request_id = format!("bt-panic-{}", uuid::Uuid::new_v4().simple());
    let resp = app
        .client
        .get(app.url("/raptor/demo/panic"))
        .header("x-request-id", &request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let e = find_exception(&app, |e| e["context"]["request_id"] == request_id.as_str()).await;
    assert_eq!(e["kind"], "panic", "{e}");
    let bt = e["backtrace"].as_str().unwrap_or_default();
    assert!(bt.contains("raptor"), "the panic's backtrace names where it happened: {e}");

    // An error event: its first occurrence gets a backtrace; later ones keep the group's.
    for n in 0..2 {
        let request_id = format!("bt-boom-{n}-{}", uuid::Uuid::new_v4().simple());
        let resp = app
            .client
            .get(app.url("/raptor/demo/boom"))
            .header("x-request-id", &request_id)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 500);
        let e = find_exception(&app, |e| e["context"]["request_id"] == request_id.as_str()).await;
        assert_eq!(e["kind"], "error", "{e}");
        let bt = e["backtrace"].as_str().unwrap_or_default();
        assert!(bt.contains("demo"), "occurrence {n}: {e}");
    }
    app.stop().await;
}
