//! Roles are enforced inside every admin function and on admin pages; disabling an account ends its
//! sessions and tokens at once; invites register people with the invite's role.

use serde_json::{Value, json};

use crate::helpers::{Backend, spawn_app};

#[tokio::test]
async fn only_admins_reach_admin_pages_and_functions() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("vic", "viewer").await;
    let resp = app.get("/admin").await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("Your role does not allow this page."));
    for (path, body) in [
        ("/fn/admin/users", vec![]),
        ("/fn/admin/audit", vec![]),
        ("/fn/admin/invite", vec![("role", "admin"), ("days", "7")]),
        ("/fn/admin/user-role", vec![("id", "00000000-0000-0000-0000-000000000000"), ("role", "admin")]),
    ] {
        let resp = app.post(path).form(&body).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn admins_manage_roles_and_disabling_ends_sessions_and_tokens() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let admin = app.sign_in_as("root", "admin").await;
    assert_eq!(app.get("/admin").await.status(), 200);

    // Another person, signed in elsewhere and holding a token.
    let bob = app.sign_in_as_other("bob").await;
    let bob_cookie = app.new_session(bob).await;
    let bob_user = {
        use sea_orm::EntityTrait;
        goblin_core::entities::users::Entity::find_by_id(bob).one(&app.state.db).await.unwrap().unwrap()
    };
    let token = app
        .state
        .tokens
        .issue(&bob_user, "t", &["chat".into()], chrono::Duration::days(1), None)
        .await
        .unwrap();
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(plain.get(app.url("/")).header("cookie", &bob_cookie).send().await.unwrap().status(), 200);
    // The token is checked once, so its row is in the server's token cache.
    let resp = app.client.get(app.url("/api/me")).bearer_auth(token.token.expose()).send().await.unwrap();
    assert_eq!(resp.status(), 200);

    let users: Value = app.post("/fn/admin/users").send().await.unwrap().json().await.unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);

    let resp = app
        .post("/fn/admin/user-role")
        .form(&[("id", bob.to_string().as_str()), ("role", "operator")])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let resp = app
        .post("/fn/admin/user-role")
        .form(&[("id", bob.to_string().as_str()), ("role", "root")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = app
        .post("/fn/admin/user-status")
        .form(&[("id", bob.to_string().as_str()), ("status", "disabled")])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        plain.get(app.url("/")).header("cookie", &bob_cookie).send().await.unwrap().status(),
        303,
        "session ended"
    );
    let resp = app.client.get(app.url("/api/me")).bearer_auth(token.token.expose()).send().await.unwrap();
    assert_eq!(resp.status(), 401, "token refused");

    // The last admin cannot be demoted or disabled.
    let resp = app
        .post("/fn/admin/user-role")
        .form(&[("id", admin.to_string().as_str()), ("role", "viewer")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("no active admin"));
    let resp = app
        .post("/fn/admin/user-status")
        .form(&[("id", admin.to_string().as_str()), ("status", "disabled")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let audit: Value = app.post("/fn/admin/audit").send().await.unwrap().json().await.unwrap();
    let actions: Vec<&str> = audit.as_array().unwrap().iter().filter_map(|a| a["action"].as_str()).collect();
    assert!(actions.contains(&"user.role_changed") && actions.contains(&"user.disabled"), "{actions:?}");
    app.stop().await;
}

#[tokio::test]
async fn invites_carry_a_role_and_work_once() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let resp = app.post("/fn/admin/invite").form(&[("role", "viewer"), ("days", "7")]).send().await.unwrap();
    assert!(resp.status().is_success());
    let link: String = resp.json().await.unwrap();
    let link = url::Url::parse(&link).unwrap();
    assert_eq!(link.path(), "/invite");
    let token = link.query_pairs().find(|(k, _)| k == "token").unwrap().1.to_string();
    assert_eq!(app.get(&format!("/invite?token={token}")).await.status(), 200, "no sign-in needed");

    let start = |username: &str| {
        app.post("/fn/auth/setup-start")
            .json(&json!({"token": token, "username": username, "display_name": "Someone"}))
            .send()
    };
    let resp = start("vera").await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body[1]["publicKey"]["user"]["name"], "vera");
    let resp = start("root").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("is taken"));

    for days in ["90", "0", "99999999999999", "-1"] {
        let resp =
            app.post("/fn/admin/invite").form(&[("role", "viewer"), ("days", days)]).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{days} days");
    }
    app.stop().await;
}
