//! Two server instances on one PostgreSQL and one Redis: a session made on one is valid on the other,
//! and a passkey ceremony started on one can finish on the other, once.

use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDb, redis_url, spawn_app_on};

/// Two instances on one PostgreSQL database and one Redis, with `extra` settings on both (the second
/// gets its own, unused, data directory); `None` when the tests have no PostgreSQL or Redis.
async fn two_instances(extra: &[(&str, &str)]) -> Option<(TestApp, TestApp)> {
    let redis = redis_url()?;
    let db = TestDb::new(Backend::Postgres).await?;
    let url = db.url.clone();
    let mut env = vec![
        ("REDIS_URL", redis.as_str()),
        ("GOBLIN_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ];
    env.extend_from_slice(extra);
    let a = spawn_app_on(db, &env).await;
    env.push(("DATABASE_URL", url.as_str()));
    let b = spawn_app_on(TestDb::new(Backend::Sqlite).await.unwrap(), &env).await;
    Some((a, b))
}

#[tokio::test]
async fn sessions_and_ceremonies_are_shared_between_instances() {
    // Rate-limit counters live in the shared Redis too; keep them out of the way of parallel tests.
    let Some((a, b)) = two_instances(&[("GOBLIN_AUTH_RATE_LIMIT_PER_IP", "100000")]).await else { return };

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

/// Circuit breakers and budgets are shared through Redis: a circuit that opens on A is open on B,
/// and a route budget spent through A is spent for B.
#[tokio::test]
async fn circuit_and_budget_state_is_shared_between_instances() {
    use goblin_mock_upstream::{MockConfig, MockUpstream};
    const KEY: &str = "sk-shared-state-0123456789abcdefghij";
    let Some((a, b)) = two_instances(&[]).await else { return };

    let mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    let flaky_mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    let mut ids = Vec::new();
    for (name, base) in [("steady", mock.base_url("openai")), ("flaky", flaky_mock.base_url("openai"))] {
        let input = goblin_core::providers::ProviderInput {
            name: name.into(),
            kind: "openai".into(),
            base_url: base,
            enabled: true,
            ..Default::default()
        };
        let p = a.state.providers.create(None, &input).await.unwrap();
        a.state.providers.add_key(None, p.id, "k", KEY, "").await.unwrap();
        a.state.providers.sync_models(None, p.id).await.unwrap();
        ids.push(p.id);
    }
    let (steady, flaky) = (ids[0], ids[1]);
    let routing = &a.state.routing;
    routing.add_target(None, "guarded", flaky, "gpt-4o-mini", "", "").await.unwrap();
    routing.add_target(None, "guarded", steady, "gpt-4o-mini", "", "").await.unwrap();
    let breaker = goblin_core::routing::PolicyInput {
        max_retries: "0".into(),
        breaker_failure_threshold: "2".into(),
        breaker_cooldown_s: "600".into(),
        ..Default::default()
    };
    routing.save_policy(None, "guarded", &breaker).await.unwrap();
    routing.add_target(None, "capped", steady, "gpt-4o-mini", "", "").await.unwrap();
    let capped = goblin_core::routing::PolicyInput {
        budget: "0.000001".into(),
        budget_period: "day".into(),
        ..Default::default()
    };
    routing.save_policy(None, "capped", &capped).await.unwrap();
    {
        use goblin_core::entities::model_configs;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        model_configs::Entity::update_many()
            .col_expr(model_configs::Column::PriceInMicrosPerMtok, Expr::value(1_000_000_000i64))
            .col_expr(model_configs::Column::PriceOutMicrosPerMtok, Expr::value(1_000_000_000i64))
            .filter(model_configs::Column::ProviderId.eq(steady))
            .exec(&a.state.db)
            .await
            .unwrap();
    }
    a.state.gateway.reload().await.unwrap();
    b.state.gateway.reload().await.unwrap();
    let caller = goblin_core::gateway::Caller::default();
    let ask = |model: &str| json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });

    // The flaky provider's key stops working: two failures on A open its circuit there.
    flaky_mock.set_keys(vec!["someone-else".into()]);
    for _ in 0..2 {
        let out = a.state.gateway.chat(&caller, ask("guarded")).await.unwrap();
        assert_eq!(out["model"], "gpt-4o-mini");
    }
    assert_eq!(
        a.state.gateway.breaker_state(flaky, "gpt-4o-mini"),
        goblin_core::gateway::breaker::State::Open
    );
    // B learns of it within its sync interval, and skips the flaky target without calling it.
    let mut open_on_b = false;
    for _ in 0..50 {
        if b.state.gateway.breaker_state(flaky, "gpt-4o-mini") == goblin_core::gateway::breaker::State::Open {
            open_on_b = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(open_on_b, "the circuit opened on A is open on B");
    flaky_mock.clear_requests();
    b.state.gateway.chat(&caller, ask("guarded")).await.unwrap();
    assert!(flaky_mock.requests().is_empty(), "B did not call the target whose circuit A opened");

    // A spends the route's budget; B refuses the next request on that route.
    assert!(a.state.gateway.chat(&caller, ask("capped")).await.is_ok());
    let mut refused = None;
    for _ in 0..50 {
        match b.state.gateway.chat(&caller, ask("capped")).await {
            Err(e) if e.status == 429 => {
                refused = Some(e);
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let refused = refused.expect("B saw the budget A spent");
    assert!(refused.message.starts_with("The route 'capped' has spent its daily budget"), "{refused:?}");

    flaky_mock.shutdown().await;
    mock.shutdown().await;
    b.stop().await;
    a.stop().await;
}

/// Each instance caches token rows it has checked (here for an hour); a revocation on one instance
/// reaches the other's cache through Redis, so the token is refused there at once, not in an hour.
#[tokio::test]
async fn a_token_revoked_on_one_instance_is_refused_by_another_at_once() {
    let Some((a, b)) = two_instances(&[("GOBLIN_TOKEN_CACHE_MS", "3600000")]).await else { return };
    let (token_id, token) = a.service_token("shared-bot", &["chat"]).await;
    let me = |app: &TestApp| {
        app.client.get(app.url("/api/me")).bearer_auth(&token).send()
    };
    assert_eq!(me(&a).await.unwrap().status(), 200);
    assert_eq!(me(&b).await.unwrap().status(), 200, "B has now cached the token's row");

    a.state.tokens.revoke(token_id, None).await.unwrap();
    assert_eq!(me(&a).await.unwrap().status(), 401);
    // The message travels through Redis: B refuses within moments.
    let mut refused = false;
    for _ in 0..50 {
        if me(&b).await.unwrap().status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(refused, "the revocation reached B's cache");
    a.stop().await;
    b.stop().await;
}
