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
    // Rate-limit counters live in the shared Redis too; keep them out of the way of parallel tests.
    let env = [
        ("REDIS_URL", redis.as_str()),
        ("GOBLIN_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ("GOBLIN_AUTH_RATE_LIMIT_PER_IP", "100000"),
    ];
    let a = spawn_app_on(db, &env).await;
    let mut env_b = env.to_vec();
    env_b.push(("DATABASE_URL", url.as_str()));
    let b = spawn_app_on(second_db, &env_b).await;

    // A session made on A (stored in Redis) is honoured by B.
    a.sign_in_as("shared", "viewer").await;
    let cookie = a.cookie_header();
    let resp = b.client.get(b.url("/")).header("cookie", cookie.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200, "B serves the page to A's session");
    assert_eq!(b.me_with_cookie(cookie).await["username"], "shared");

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

/// The full ceremonies across instances, as behind a load balancer: both serve one public URL, a
/// registration started on A finishes on B, a sign-in started on B finishes on A, and the sessions
/// each makes are honoured by the other.
#[tokio::test]
async fn passkey_ceremonies_cross_instances_end_to_end() {
    use webauthn_authenticator_rs::{WebauthnAuthenticator, softpasskey::SoftPasskey};
    let Some(redis) = redis_url() else { return };
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let url = db.url.clone();
    let public = "http://localhost:9317";
    let env = [
        ("REDIS_URL", redis.as_str()),
        ("GOBLIN_PUBLIC_URL", public),
        ("GOBLIN_AUTH_RATE_LIMIT_PER_IP", "100000"),
        // Instances on one database share its encryption keys.
        ("GOBLIN_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ];
    let a = spawn_app_on(db, &env).await;
    let setup_link = a.setup_url.clone().expect("a fresh database offers a setup link");
    let token = setup_link.query_pairs().find(|(k, _)| k == "token").unwrap().1.to_string();
    let mut env_b = env.to_vec();
    env_b.push(("DATABASE_URL", url.as_str()));
    let b = spawn_app_on(TestDb::new(Backend::Sqlite).await.unwrap(), &env_b).await;
    let origin = url::Url::parse(public).unwrap();
    let mut key = SoftPasskey::new(true);

    // Registration: start on A, finish on B.
    let started: (String, webauthn_rs_proto::CreationChallengeResponse) = a
        .post("/fn/auth/setup-start")
        .json(&json!({"token": token, "username": "ada", "display_name": "Ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut options = started.1;
    if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
        // The software authenticator keeps no discoverable credentials.
        sel.require_resident_key = false;
        sel.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Discouraged);
    }
    let credential = key.do_registration(origin.clone(), options).unwrap();
    let resp = b
        .post("/fn/auth/setup-finish")
        .json(&json!({"ceremony": started.0, "credential": credential, "passkey_name": "soft"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}: {}", resp.status(), resp.text().await.unwrap());
    let me: Value = b.post("/fn/auth/me").send().await.unwrap().json().await.unwrap();
    assert_eq!(me["username"], "ada");
    assert_eq!(me["role"], "admin");

    // Sign-in: start on B, finish on A; A's session then works on B too.
    let started: (String, webauthn_rs_proto::RequestChallengeResponse) = b
        .post("/fn/auth/signin-start")
        .json(&json!({"username": "ada"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let assertion = key.do_authentication(origin, started.1).unwrap();
    let resp = a
        .post("/fn/auth/signin-finish")
        .json(&json!({"ceremony": started.0, "credential": assertion}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(b.me_with_cookie(a.cookie_header()).await["username"], "ada", "A's session is valid on B");
    // The audit log records where the sign-in came from.
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let ok = goblin_core::entities::audit_log::Entity::find()
        .filter(goblin_core::entities::audit_log::Column::Action.eq("signin.succeeded"))
        .one(&a.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ok.ip.as_deref(), Some("127.0.0.1"));

    b.stop().await;
    a.stop().await;
}
