use crate::helpers::{Backend, spawn_app};

#[tokio::test]
async fn home_page_renders_health_on_the_server() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("ada", "admin").await;
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("<title>Home · Goblin Assistant</title>"), "{html}");
    assert!(html.contains("System health"));
    assert!(html.contains(r#"data-testid="component-database""#));
    assert!(html.contains("All required components are up."));
    // Landmarks for assistive technology.
    for landmark in ["<header", "<nav aria-label=\"Main\"", "<main id=\"main\"", "<footer"] {
        assert!(html.contains(landmark), "missing {landmark}");
    }
    // Hydration scripts point at the compiled bundle.
    assert!(html.contains("/pkg/goblin.js"));
    // The header shows who is signed in, with a sign-out form that works without JavaScript.
    assert!(html.contains("ada (test)"));
    assert!(html.contains(r#"action="/fn/auth/signout""#), "{html}");
    app.stop().await;
}

#[tokio::test]
async fn unknown_path_gets_the_404_page() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("ada", "viewer").await;
    let resp = app.get("/no/such/page").await;
    assert_eq!(resp.status(), 404);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Page not found"));
    assert!(html.contains("Goblin Assistant"), "the 404 page keeps the layout");
    app.stop().await;
}

#[tokio::test]
async fn health_server_function_answers_json() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let resp = app.post("/fn/health").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["healthy"], true);
    assert_eq!(body["components"][0]["name"], "database");
    app.stop().await;
}

#[tokio::test]
async fn oversize_body_is_refused_with_413() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let big = vec![b'a'; goblin_server::startup::MAX_BODY_BYTES + 1];
    let resp = app.post("/fn/health").body(big).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    // And the server still answers.
    assert_eq!(app.get("/health").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn cross_site_state_changing_requests_are_refused() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    assert_eq!(app.origin, format!("http://localhost:{}", app.address.rsplit(':').next().unwrap()));

    // No Origin, no Referer.
    let resp = app.client.post(app.url("/fn/health")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "csrf_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("neither Origin nor Referer"));

    // Another site, or the right host on another port or scheme.
    for origin in ["https://evil.example", "http://localhost:1", "https://localhost", "null"] {
        let resp = app.client.post(app.url("/fn/health")).header("origin", origin).send().await.unwrap();
        assert_eq!(resp.status(), 403, "{origin}");
    }
    // A Referer from elsewhere does not help either.
    let resp = app
        .client
        .post(app.url("/fn/health"))
        .header("referer", "https://evil.example/page")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // The dashboard's own origin, or its Referer when a browser sends no Origin.
    assert_eq!(app.post("/fn/health").send().await.unwrap().status(), 200);
    let resp = app
        .client
        .post(app.url("/fn/health"))
        .header("referer", format!("{}/some/page", app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Reads are never refused.
    assert_eq!(
        app.client
            .get(app.url("/health"))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_redirect_to_sign_in_until_signed_in() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    for path in ["/", "/no/such/page"] {
        let resp = app.get(path).await;
        assert_eq!(resp.status(), 303, "{path}");
        assert_eq!(resp.headers()["location"], "/signin");
    }
    // The sign-in and setup pages, health and static files need no session.
    let resp = app.get("/signin").await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("Sign in with a passkey"));
    assert!(html.contains("needs JavaScript"), "a no-JS visitor is told why the button cannot work");
    assert_eq!(app.get("/setup?token=x").await.status(), 200);
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/favicon.svg").await.status(), 200);
    let resp = app.get("/favicon.ico").await;
    assert_eq!(resp.status(), 308, "browsers' automatic favicon request is sent to the SVG");
    assert_eq!(resp.headers()["location"], "/favicon.svg");

    // Nobody is signed in.
    let me: serde_json::Value = app.post("/fn/auth/me").send().await.unwrap().json().await.unwrap();
    assert!(me.is_null());

    // After signing in the page is served; signing out ends the session on the server.
    app.sign_in_as("grace", "operator").await;
    assert_eq!(app.get("/").await.status(), 200);
    let me: serde_json::Value = app.post("/fn/auth/me").send().await.unwrap().json().await.unwrap();
    assert_eq!(me["username"], "grace");
    assert_eq!(me["role"], "operator");
    let cookie = app.cookie_header();
    let resp = app.post("/fn/auth/signout").send().await.unwrap();
    assert!(resp.status().is_success() || resp.status().is_redirection(), "{}", resp.status());
    assert_eq!(app.get("/").await.status(), 303);
    // The old cookie is worthless now: the session is gone from the store.
    let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = replay.get(app.url("/")).header("cookie", cookie).send().await.unwrap();
    assert_eq!(resp.status(), 303);
    app.stop().await;
}

#[tokio::test]
async fn first_run_offers_a_one_time_setup_link() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let link = app.setup_url.clone().expect("no accounts: a setup link is made");
    assert_eq!(link.path(), "/setup");
    let token = link.query_pairs().find(|(k, _)| k == "token").unwrap().1.to_string();
    assert!(token.len() >= 40, "a long random token");
    // Only its hash is stored.
    use sea_orm::EntityTrait;
    let invites = goblin_core::entities::invites::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(invites.len(), 1);
    assert_ne!(invites[0].token_hash, token);
    assert_eq!(invites[0].token_hash, goblin_core::passkeys::token_hash(&token));
    assert_eq!(invites[0].role, "admin");

    // Starting setup with the link returns WebAuthn options for a discoverable passkey.
    let resp = app
        .post("/fn/auth/setup-start")
        .json(&serde_json::json!({"token": token, "username": "ada", "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    let options = &body[1]["publicKey"];
    assert_eq!(options["rp"]["id"], "localhost");
    assert_eq!(options["user"]["name"], "ada");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");

    // A wrong token, bad names: refused with the reason and 400.
    for (tok, user, why) in [
        ("wrong", "ada", "invalid, expired or already used"),
        (token.as_str(), "a b", "username must be"),
        (token.as_str(), "", "username must be"),
    ] {
        let resp = app
            .post("/fn/auth/setup-start")
            .json(&serde_json::json!({"token": tok, "username": user, "display_name": "Ada"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{tok} {user}");
        assert!(resp.text().await.unwrap().contains(why));
    }
    // Malformed JSON: a 400, not a 500.
    let resp = app
        .post("/fn/auth/setup-start")
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // An unknown or replayed ceremony cannot finish.
    let resp = app
        .post("/fn/auth/signin-finish")
        .json(&serde_json::json!({"ceremony": "nope", "credential": {
            "id": "AAAA", "rawId": "AAAA", "type": "public-key", "extensions": {},
            "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA", "signature": "AAAA", "userHandle": null}
        }}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("expired or was already used"));
    app.stop().await;
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_address_and_per_user() {
    let app = spawn_app(
        Backend::Sqlite,
        &[("GOBLIN_AUTH_RATE_LIMIT_PER_IP", "5"), ("GOBLIN_AUTH_RATE_LIMIT_PER_USER", "2")],
    )
    .await
    .unwrap();
    app.sign_in_as("ada", "admin").await;
    let start = |username: Option<&str>| {
        app.post("/fn/auth/signin-start").json(&serde_json::json!({ "username": username })).send()
    };
    // Per user: the third attempt for "ada" within the minute is refused, another name is not.
    for _ in 0..2 {
        let resp = start(Some("ada")).await.unwrap();
        assert_ne!(resp.status(), 429);
    }
    let resp = start(Some("ADA")).await.unwrap();
    assert_eq!(resp.status(), 429, "usernames are limited case-insensitively");
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    let err: goblin_app::error::AppError = resp.json().await.unwrap();
    assert_eq!(err, goblin_app::error::AppError::RateLimited(retry));
    assert!(err.to_string().contains("too many attempts"));
    // Per address: three so far; the fourth and fifth pass, the sixth is refused.
    assert_ne!(start(None).await.unwrap().status(), 429);
    assert_ne!(start(None).await.unwrap().status(), 429);
    let resp = start(None).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // Other pages and functions are unaffected.
    assert_eq!(app.get("/").await.status(), 200);
    assert_eq!(app.post("/fn/health").send().await.unwrap().status(), 200);
    app.stop().await;
}
