//! PostgreSQL going away and coming back while the server runs.
//!
//! The server reaches PostgreSQL through a TCP proxy owned by the test. "Stopping" the proxy closes
//! every open connection and the listening port (new connections are refused), exactly what clients
//! see when PostgreSQL stops; "starting" it listens on the same port again. This leaves the shared
//! PostgreSQL that other tests use untouched.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::JoinSet,
};

use crate::helpers::{Backend, TestDb, spawn_app_on};

struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Option<JoinSet<()>>>>,
}

impl Proxy {
    async fn start_on(addr: SocketAddr, upstream: SocketAddr) -> Self {
        let p = Self { addr, upstream, tasks: Arc::new(Mutex::new(None)) };
        p.start().await;
        p
    }

    async fn start(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("proxy binds its port again");
        let upstream = self.upstream;
        let mut set = JoinSet::new();
        let conns = Arc::new(Mutex::new(JoinSet::new()));
        let conns_for_accept = conns.clone();
        set.spawn(async move {
            let _keep = conns;
            loop {
                let Ok((mut client, _)) = listener.accept().await else { return };
                conns_for_accept.lock().await.spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        *self.tasks.lock().await = Some(set);
    }

    /// Closes the port and every proxied connection. Dropping the JoinSets aborts the accept loop
    /// (freeing the listener) and, with it, the connection set it keeps alive.
    async fn stop(&self) {
        if let Some(mut set) = self.tasks.lock().await.take() {
            set.shutdown().await;
        }
    }
}

async fn wait_for_status(app: &crate::helpers::TestApp, want: u16, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if let Ok(resp) = app.client.get(app.url("/health")).timeout(Duration::from_secs(10)).send().await
            && resp.status().as_u16() == want
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test]
async fn server_recovers_after_postgres_restart() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let pg_url = url::Url::parse(&db.url).unwrap();
    let upstream_host = pg_url.host_str().unwrap().to_string();
    let upstream: SocketAddr =
        tokio::net::lookup_host((upstream_host.as_str(), pg_url.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = Proxy::start_on(free, upstream).await;

    let mut via_proxy = pg_url.clone();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(free.port())).unwrap();
    let via_proxy = via_proxy.to_string();
    let app =
        spawn_app_on(db, &[("DATABASE_URL", via_proxy.as_str()), ("GOBLIN_DB_MAX_LIFETIME_S", "3600")]).await;

    assert_eq!(app.get("/health").await.status(), 200);
    app.sign_in_as("ops", "viewer").await;
    assert_eq!(app.get("/").await.status(), 200);

    proxy.stop().await;
    assert!(
        wait_for_status(&app, 503, Duration::from_secs(15)).await,
        "health turns 503 while PostgreSQL is down"
    );
    let body: serde_json::Value = app.get("/health/db").await.json().await.unwrap();
    assert_eq!(body["status"], "down");
    assert!(body["reason"].as_str().unwrap().starts_with("postgres"), "{body}");
    // The pool endpoint answers without the database.
    assert_eq!(app.get("/health/db-pool").await.status(), 200);

    proxy.start().await;
    assert!(wait_for_status(&app, 200, Duration::from_secs(30)).await, "health recovers without a restart");
    let resp = app.get("/").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("All required components are up."));

    proxy.stop().await;
    app.stop().await;
}

/// With PostgreSQL down during a load of gateway requests, none of them fails because of the request
/// log: each is answered, its row waits in the writer's backlog, and every row is in the table once
/// PostgreSQL is back.
#[tokio::test]
async fn gateway_requests_during_a_postgres_outage_are_logged_once_it_is_back() {
    use goblin_mock_upstream::{MockConfig, MockUpstream};
    use sea_orm::{EntityTrait, PaginatorTrait};
    const KEY: &str = "sk-outage-0123456789abcdefghijklmn";
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let pg_url = url::Url::parse(&db.url).unwrap();
    let upstream: SocketAddr =
        tokio::net::lookup_host((pg_url.host_str().unwrap(), pg_url.port().unwrap_or(5432)))
            .await
            .unwrap()
            .next()
            .unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let proxy = Proxy::start_on(free, upstream).await;
    let mut via_proxy = pg_url.clone();
    via_proxy.set_host(Some("127.0.0.1")).unwrap();
    via_proxy.set_port(Some(free.port())).unwrap();
    let via_proxy = via_proxy.to_string();
    let app = spawn_app_on(
        db,
        &[
            ("DATABASE_URL", via_proxy.as_str()),
            ("GOBLIN_DB_MAX_LIFETIME_S", "3600"),
            // Database calls give up after 3 s while it is down, rather than 30.
            ("GOBLIN_DB_ACQUIRE_TIMEOUT_S", "3"),
            // Token rows are read again after 0.1 s, so the outage is met by a real read.
            ("GOBLIN_TOKEN_CACHE_MS", "100"),
        ],
    )
    .await;

    let mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    let input = goblin_core::providers::ProviderInput {
        name: "oa".into(),
        kind: "openai".into(),
        base_url: mock.base_url("openai"),
        enabled: true,
        ..Default::default()
    };
    let p = app.state.providers.create(None, &input).await.unwrap();
    app.state.providers.add_key(None, p.id, "k", KEY, "").await.unwrap();
    app.state.providers.sync_models(None, p.id).await.unwrap();
    app.state.gateway.reload().await.unwrap();
    let gateway = app.state.gateway.clone();
    let table = || goblin_core::entities::routing_requests::Entity::find().count(&app.state.db);

    // An API client over HTTP, whose token is checked once before the outage.
    let (_, token) = app.service_token("outage-bot", &["chat"]).await;
    let over_http = || {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "model": "oa/gpt-4o-mini",
                "messages": [{ "role": "user", "content": "over HTTP" }]
            }))
            .send()
    };
    assert_eq!(over_http().await.unwrap().status(), 200);
    let mut answered = 1u64;

    proxy.stop().await;
    // Sixteen callers at once for two seconds (at most 100 requests each).
    let until = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut callers = JoinSet::new();
    for c in 0..16 {
        let gateway = gateway.clone();
        callers.spawn(async move {
            let caller = goblin_core::gateway::Caller::default();
            let mut answered = 0u32;
            for i in 0..100 {
                if tokio::time::Instant::now() >= until {
                    break;
                }
                let body = serde_json::json!({
                    "model": "oa/gpt-4o-mini",
                    "messages": [{ "role": "user", "content": format!("caller {c} request {i}") }]
                });
                let out = gateway.chat(&caller, body).await.expect("answered with the database down");
                assert_eq!(out["model"], "gpt-4o-mini");
                answered += 1;
            }
            answered
        });
    }
    while let Some(n) = callers.join_next().await {
        answered += u64::from(n.expect("no caller failed"));
    }
    assert!(answered >= 17, "the load ran: {answered} requests");
    // The API client's token is still honoured from the cache while its row cannot be read.
    for _ in 0..3 {
        let resp = over_http().await.unwrap();
        assert_eq!(resp.status(), 200, "answered with the database down: {}", resp.text().await.unwrap());
        answered += 1;
    }
    assert!(table().await.is_err(), "the database really was unreachable during the load");
    let stats = gateway.records().stats();
    assert_eq!(stats.dropped, 0, "no row was dropped: {stats:?}");

    proxy.start().await;
    assert!(gateway.records().flush(Duration::from_secs(60)).await, "the backlog drains once it is back");
    assert_eq!(table().await.unwrap(), answered, "every request's row arrived after the outage");

    mock.shutdown().await;
    proxy.stop().await;
    app.stop().await;
}
