use crate::helpers::{Backend, spawn_app};

#[tokio::test]
async fn home_page_renders_health_on_the_server() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
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
    app.stop().await;
}

#[tokio::test]
async fn unknown_path_gets_the_404_page() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
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
    assert_eq!(app.client.get(app.url("/health")).header("origin", "https://evil.example").send().await.unwrap().status(), 200);
    app.stop().await;
}
