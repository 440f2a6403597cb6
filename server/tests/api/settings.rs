//! Runtime settings through the admin functions: refused values name the setting and the rule and
//! change nothing; a change made on one instance applies on another without a restart.

use serde_json::Value;

use crate::helpers::{Backend, TestDb, spawn_app, spawn_app_on};

#[tokio::test]
async fn invalid_values_are_refused_per_type_and_nothing_changes() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let cases = [
        (
            "auth.session_idle_minutes",
            "abc",
            "Idle sign-out (auth.session_idle_minutes): must be a whole number from 5 to 525600",
        ),
        ("auth.session_idle_minutes", "4", "from 5 to 525600; got '4'"),
        ("tasks.max_output_bytes", "999999999999", "tasks.max_output_bytes"),
        ("tasks.allow_custom_scripts", "maybe", "must be true or false"),
        ("gateway.default_strategy", "random", "must be one of priority, cost, latency, health"),
    ];
    for (key, value, says) in cases {
        let resp =
            app.post("/fn/admin/setting-set").form(&[("key", key), ("value", value)]).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{key}={value}");
        let body = resp.text().await.unwrap();
        assert!(body.contains(says), "{key}={value}: {body}");
    }
    let resp =
        app.post("/fn/admin/setting-set").form(&[("key", "no.such"), ("value", "1")]).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let resp =
        app.post("/fn/admin/setting-set").form(&[("key", "auth.session_idle_minutes")]).send().await.unwrap();
    assert_eq!(resp.status(), 400, "a missing field is the caller's mistake");
    let list: Value = app.post("/fn/admin/settings").send().await.unwrap().json().await.unwrap();
    assert!(list.as_array().unwrap().iter().all(|s| s["is_default"] == true), "nothing was stored");

    // A valid change is applied, audited and shown; a viewer may not change settings.
    let resp = app
        .post("/fn/admin/setting-set")
        .form(&[("key", "tasks.allow_custom_scripts"), ("value", "true")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(app.state.settings.bool("tasks.allow_custom_scripts"));
    let audit: Value = app.post("/fn/admin/audit").send().await.unwrap().json().await.unwrap();
    assert_eq!(audit[0]["action"], "setting.changed");
    let page = app.get("/admin/settings").await.text().await.unwrap();
    assert!(
        page.contains("Allow custom scripts") && page.contains("Reset to default"),
        "the settings page lists them"
    );
    app.sign_in_as("vic", "viewer").await;
    let resp = app
        .post("/fn/admin/setting-set")
        .form(&[("key", "tasks.allow_custom_scripts"), ("value", "false")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    app.stop().await;
}

async fn a_change_reaches_another_instance(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let url = db.url.clone();
    let env = [
        ("GOBLIN_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ("GOBLIN_SETTINGS_REFRESH_MS", "100"),
    ];
    let a = spawn_app_on(db, &env).await;
    let mut env_b = env.to_vec();
    env_b.push(("DATABASE_URL", url.as_str()));
    let b = spawn_app_on(TestDb::new(Backend::Sqlite).await.unwrap(), &env_b).await;
    a.sign_in_as("root", "admin").await;
    assert_eq!(b.state.settings.int("auth.rate_limit_per_ip"), 30);

    let resp = a
        .post("/fn/admin/setting-set")
        .form(&[("key", "auth.rate_limit_per_ip"), ("value", "2")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut seen = false;
    for _ in 0..100 {
        if b.state.settings.int("auth.rate_limit_per_ip") == 2 {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "instance B applies A's change without a restart");
    // And B enforces it: the third sign-in attempt from one address is refused.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let resp = b.post("/fn/auth/signin-start").json(&serde_json::json!({})).send().await.unwrap();
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses[2], 429, "{statuses:?}");
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn a_change_reaches_another_instance_sqlite() {
    a_change_reaches_another_instance(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_change_reaches_another_instance_postgres() {
    a_change_reaches_another_instance(Backend::Postgres).await;
}
