//! Two server instances on one PostgreSQL and one Redis: a session made on one is valid on the other,
//! and a passkey ceremony started on one can finish on the other, once.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestDb, redis_url, spawn_app_on};

#[tokio::test]
async fn sessions_and_ceremonies_are_shared_between_instances() {
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let url = db.url.clone();
    // Both instances share one database and one Redis; the second gets its own (unused) data dir.
    let second_db = TestDb::new(Backend::Sqlite).await.unwrap();
    let env = [("REDIS_URL", redis.as_str()), ("GOBLIN_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")];
    let a = spawn_app_on(db, &env).await;
    let mut env_b = env.to_vec();
    env_b.push(("DATABASE_URL", url.as_str()));
    let b = spawn_app_on(second_db, &env_b).await;

    // A session made on A (stored in Redis) is honoured by B.
    a.sign_in_as("shared", "viewer").await;
    let cookie = reqwest::cookie::CookieStore::cookies(a.jar.as_ref(), &a.address.parse().unwrap()).unwrap();
    let resp = b.client.get(b.url("/")).header("cookie", cookie.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200, "B serves the page to A's session");
    let me: Value = b
        .client
        .post(b.url("/fn/auth/me"))
        .header("origin", &b.origin)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["username"], "shared");

    // A sign-in ceremony started on A is found by B (it gets as far as checking the credential) ...
    let started: Value = a
        .post("/fn/auth/signin-start")
        .json(&json!({"username": null}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ceremony = started[0].as_str().unwrap().to_string();
    assert!(started[1]["publicKey"]["challenge"].is_string());
    let bogus = json!({"ceremony": ceremony, "credential": {
        "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
        "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA", "userHandle": null}
    }});
    let resp = b.post("/fn/auth/signin-finish").json(&bogus).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("not registered here"), "B found the ceremony and checked the credential: {text}");
    // ... and it was used up there, even though that finish failed: A cannot finish it again.
    let resp = a.post("/fn/auth/signin-finish").json(&bogus).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("expired or was already used"));

    // The failures are in the audit log.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let failures = goblin_core::entities::audit_log::Entity::find()
        .filter(goblin_core::entities::audit_log::Column::Action.eq("signin.failed"))
        .all(&a.state.db)
        .await
        .unwrap();
    assert_eq!(failures.len(), 2);
    assert!(failures.iter().any(|f| f.reason.as_deref() == Some("this passkey is not registered here")));

    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_configured_redis_that_is_down_gives_503_for_sign_in() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{port}");
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app_on(db, &[("REDIS_URL", url.as_str())]).await;
    let resp = app.post("/fn/auth/signin-start").json(&json!({"username": null})).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("unavailable"));
    assert_eq!(app.get("/health").await.status(), 503);
    app.stop().await;
}
