use serde_json::Value;

use crate::helpers::{Backend, redis_url, spawn_app};

async fn health_reports_database_up(backend: Backend) {
    let Some(app) = spawn_app(backend, &[]).await else { return };

    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    let db = &body["components"][0];
    assert_eq!(db["name"], "database");
    assert_eq!(db["status"], "up");
    assert!(db["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(db["migration"], crate::helpers::migrations().0);
    assert_eq!(db["detail"], if backend == Backend::Sqlite { "sqlite" } else { "postgres" });
    // No Redis configured: no Redis component.
    assert_eq!(body["components"].as_array().unwrap().len(), 1);

    let resp = app.get("/health/db").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "up");
    assert!(body["latency_ms"].is_number());

    let resp = app.get("/health/db-pool").await;
    assert_eq!(resp.status(), 200);
    let pool: Value = resp.json().await.unwrap();
    assert_eq!(pool["max"], 5);
    assert_eq!(pool["min"], 1);
    assert_eq!(pool["acquire_timeout_ms"], 5000);
    let (size, idle, in_use) =
        (pool["size"].as_u64().unwrap(), pool["idle"].as_u64().unwrap(), pool["in_use"].as_u64().unwrap());
    assert_eq!(size, idle + in_use);
    assert!((1..=5).contains(&size));

    app.stop().await;
}

#[tokio::test]
async fn health_on_sqlite() {
    health_reports_database_up(Backend::Sqlite).await;
}

#[tokio::test]
async fn health_on_postgres() {
    health_reports_database_up(Backend::Postgres).await;
}

#[tokio::test]
async fn health_never_shows_database_credentials() {
    let Some(admin) = crate::helpers::pg_admin_url() else { return };
    let Some(db) = crate::helpers::TestDb::new(Backend::Postgres).await else { return };
    // A password the server does not need (trust auth) but must never repeat.
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_password(Some("pw-must-not-leak")).unwrap();
    let url = url.to_string();
    let app = crate::helpers::spawn_app_on(db, &[("DATABASE_URL", url.as_str())]).await;
    for path in ["/health", "/health/db", "/health/db-pool", "/"] {
        let text = app.get(path).await.text().await.unwrap();
        assert!(!text.contains("pw-must-not-leak"), "{path} leaked the password");
        assert!(!text.contains(&admin), "{path} leaked the database URL");
    }
    app.stop().await;
}

#[tokio::test]
async fn redis_up_is_reported() {
    let Some(redis) = redis_url() else { return };
    let app = spawn_app(Backend::Sqlite, &[("REDIS_URL", redis.as_str())]).await.unwrap();
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let redis = &body["components"][1];
    assert_eq!(redis["name"], "redis");
    assert_eq!(redis["status"], "up");
    app.stop().await;
}

#[tokio::test]
async fn redis_down_makes_health_503_with_reason() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://:hidden-pw@127.0.0.1:{port}/0");
    let app = spawn_app(Backend::Sqlite, &[("REDIS_URL", url.as_str())]).await.unwrap();
    let resp = app.get("/health").await;
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("hidden-pw"));
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["components"][0]["status"], "up");
    assert_eq!(body["components"][1]["status"], "down");
    assert!(body["components"][1]["detail"].as_str().unwrap().contains("refused"), "{body}");
    // The database alone is still fine.
    assert_eq!(app.get("/health/db").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn responses_carry_a_request_id() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let resp = app.get("/health").await;
    assert!(!resp.headers()["x-request-id"].is_empty());
    let resp =
        app.client.get(app.url("/health")).header("x-request-id", "trace-me-123").send().await.unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-123");
    app.stop().await;
}
