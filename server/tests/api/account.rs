//! A person's own passkeys, sessions and API tokens, through the server functions the account page
//! uses (form-encoded, as a browser without JavaScript sends them).

use goblin_core::entities::passkeys;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, spawn_app};

async fn add_passkey_row(app: &TestApp, user: Uuid, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    passkeys::ActiveModel {
        id: Set(id),
        user_id: Set(user),
        credential_id: Set(format!("cred-{id}")),
        passkey: Set(serde_json::json!({})),
        sign_count: Set(0),
        backup_eligible: Set(false),
        backup_state: Set(false),
        transports: Set(serde_json::json!([])),
        name: Set(name.into()),
        created_at: Set(chrono::Utc::now()),
        last_used_at: Set(None),
    }
    .insert(&app.state.db)
    .await
    .unwrap();
    id
}

async fn form(app: &TestApp, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    app.post(path).header("accept", "application/json").form(fields).send().await.unwrap()
}

async fn list(app: &TestApp, path: &str) -> Vec<Value> {
    let v: Value = app.post(path).send().await.unwrap().json().await.unwrap();
    v.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn passkeys_can_be_renamed_and_deleted_but_never_the_last() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let me = app.sign_in_as("ada", "operator").await;
    let first = add_passkey_row(&app, me, "Laptop").await;
    let second = add_passkey_row(&app, me, "Phone").await;
    let someone_else = app.sign_in_as_other("bob").await;
    let theirs = add_passkey_row(&app, someone_else, "Bob's").await;

    let keys = list(&app, "/fn/account/passkeys").await;
    assert_eq!(keys.len(), 2, "only the caller's passkeys");

    let resp =
        form(&app, "/fn/account/passkey-rename", &[("id", &first.to_string()), ("name", "Work laptop")])
            .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(list(&app, "/fn/account/passkeys").await[0]["name"], "Work laptop");
    let resp = form(&app, "/fn/account/passkey-rename", &[("id", &first.to_string()), ("name", "  ")]).await;
    assert_eq!(resp.status(), 400);
    let resp =
        form(&app, "/fn/account/passkey-rename", &[("id", &theirs.to_string()), ("name", "mine now")]).await;
    assert_eq!(resp.status(), 400, "another person's passkey is not found");
    let resp = form(&app, "/fn/account/passkey-delete", &[("id", "not-a-uuid")]).await;
    assert_eq!(resp.status(), 400);

    let resp = form(&app, "/fn/account/passkey-delete", &[("id", &second.to_string())]).await;
    assert!(resp.status().is_success());
    let resp = form(&app, "/fn/account/passkey-delete", &[("id", &first.to_string())]).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("last passkey"));
    assert_eq!(list(&app, "/fn/account/passkeys").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn people_see_their_sessions_and_can_end_any() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let me = app.sign_in_as("ada", "viewer").await;
    let other_browser = app.new_session(me).await;

    let sessions = list(&app, "/fn/account/sessions").await;
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other =
        sessions.iter().find(|s| s["current"] == false).unwrap()["handle"].as_str().unwrap().to_string();
    assert!(!other_browser.contains(&other), "the handle is not the cookie value");

    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(plain.get(app.url("/")).header("cookie", &other_browser).send().await.unwrap().status(), 200);
    let resp = form(&app, "/fn/account/session-end", &[("handle", &other)]).await;
    assert!(resp.status().is_success());
    assert_eq!(plain.get(app.url("/")).header("cookie", &other_browser).send().await.unwrap().status(), 303);
    assert_eq!(list(&app, "/fn/account/sessions").await.len(), 1);
    let resp = form(&app, "/fn/account/session-end", &[("handle", "0000")]).await;
    assert_eq!(resp.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn people_create_and_revoke_their_own_api_tokens() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("grace", "operator").await;

    let resp =
        form(&app, "/fn/account/token-create", &[("name", "laptop cli"), ("ttl_days", "7"), ("chat", "on")])
            .await;
    assert!(resp.status().is_success(), "{}", resp.status());
    let created: Value = resp.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_string();
    let me: Value =
        app.client.get(app.url("/api/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["username"], "grace");
    assert_eq!(me["scopes"], serde_json::json!(["chat"]));

    // The list never holds the token itself.
    let tokens = list(&app, "/fn/account/tokens").await;
    assert_eq!(tokens.len(), 1);
    assert!(!serde_json::to_string(&tokens).unwrap().contains(&token));

    // An operator cannot mint admin tokens; nonsense input is a 400.
    let resp =
        form(&app, "/fn/account/token-create", &[("name", "x"), ("ttl_days", "7"), ("admin", "on")]).await;
    assert_eq!(resp.status(), 403);
    let resp =
        form(&app, "/fn/account/token-create", &[("name", "x"), ("ttl_days", "soon"), ("chat", "on")]).await;
    assert_eq!(resp.status(), 400);
    let resp = form(&app, "/fn/account/token-create", &[("name", "x"), ("ttl_days", "7")]).await;
    assert_eq!(resp.status(), 400, "no scope");
    for days in ["200000000000", "-5", "0", "99999"] {
        let resp =
            form(&app, "/fn/account/token-create", &[("name", "x"), ("ttl_days", days), ("chat", "on")])
                .await;
        assert_eq!(resp.status(), 400, "{days} days");
    }

    let resp = form(&app, "/fn/account/token-revoke", &[("id", created["id"].as_str().unwrap())]).await;
    assert!(resp.status().is_success());
    assert_eq!(app.client.get(app.url("/api/me")).bearer_auth(&token).send().await.unwrap().status(), 401);
    assert_eq!(list(&app, "/fn/account/tokens").await[0]["revoked"], true);
    app.stop().await;
}

#[tokio::test]
async fn account_functions_need_a_signed_in_person() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    for path in ["/fn/account/passkeys", "/fn/account/sessions", "/fn/account/tokens"] {
        assert_eq!(app.post(path).send().await.unwrap().status(), 401, "{path}");
    }
    let resp =
        form(&app, "/fn/account/token-create", &[("name", "x"), ("ttl_days", "7"), ("chat", "on")]).await;
    assert_eq!(resp.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_active() {
    let app = spawn_app(Backend::Sqlite, &[("GOBLIN_SESSION_ABSOLUTE_HOURS", "2")]).await.unwrap();
    let user = app.sign_in_as_other("old-timer").await;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let fresh = app.new_session_signed_in_at(user, chrono::Utc::now() - chrono::Duration::minutes(90)).await;
    assert_eq!(plain.get(app.url("/")).header("cookie", &fresh).send().await.unwrap().status(), 200);
    let stale = app.new_session_signed_in_at(user, chrono::Utc::now() - chrono::Duration::minutes(121)).await;
    assert_eq!(plain.get(app.url("/")).header("cookie", &stale).send().await.unwrap().status(), 303);
    assert!(app.me_with_cookie(&stale).await.is_null());
    app.stop().await;
}

#[tokio::test]
async fn an_ended_session_is_not_brought_back_by_a_late_save() {
    use tower_sessions::{
        SessionStore,
        session::{Id, Record},
    };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let redis = crate::helpers::redis_url();
        let mut extra = vec![];
        if backend == Backend::Postgres {
            let Some(r) = redis.as_deref() else { continue };
            extra.push(("REDIS_URL", r));
        }
        let Some(app) = spawn_app(backend, &extra).await else { continue };
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        app.state.sessions.create(&mut record).await.unwrap();
        assert!(app.state.sessions.load(&record.id).await.unwrap().is_some());
        app.state.sessions.delete(&record.id).await.unwrap();
        // A request that loaded the session before it was ended now saves it.
        app.state.sessions.save(&record).await.unwrap();
        assert!(app.state.sessions.load(&record.id).await.unwrap().is_none(), "{backend:?}");
        app.stop().await;
    }
}

#[tokio::test]
async fn activity_slides_the_idle_expiry_but_health_checks_do_not_write() {
    use tower_sessions::{SessionStore, session::Id};
    let app = spawn_app(Backend::Sqlite, &[("GOBLIN_SESSION_IDLE_MINUTES", "600")]).await.unwrap();
    let user = app.sign_in_as_other("busy").await;
    let cookie = app.new_session(user).await; // stored with one hour to live
    let id: Id = cookie.split_once('=').unwrap().1.parse().unwrap();
    let expiry = |app: &TestApp| {
        let id = id;
        let store = app.state.sessions.clone();
        async move { store.load(&id).await.unwrap().unwrap().expiry_date }
    };
    let before = expiry(&app).await;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(plain.get(app.url("/health")).header("cookie", &cookie).send().await.unwrap().status(), 200);
    assert_eq!(expiry(&app).await, before, "a health check does not touch the session");
    assert_eq!(plain.get(app.url("/")).header("cookie", &cookie).send().await.unwrap().status(), 200);
    let after = expiry(&app).await;
    assert!(
        after - before > time::Duration::hours(8),
        "a page view slides the expiry to ~10 h: {before} -> {after}"
    );
    app.stop().await;
}
