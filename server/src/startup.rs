//! Builds the application from a [`Config`]: database, migrations, state, router, listener.
//! Tests build it on port 0 and read [`Application::port`].

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderName, Request as HttpRequest},
    response::{IntoResponse, Response},
    serve::ListenerExt,
};
use goblin_app::{App, shell, state::AppState};
use goblin_core::{
    Config,
    ceremonies::CeremonyStore,
    clock,
    crypto::Keyring,
    db,
    health::HealthService,
    passkeys::PasskeyService,
    providers::ProviderService,
    redis_store::RedisHandle,
    routing::RoutingService,
    sessions::{DbSessionStore, RedisSessionStore, Store},
    settings::Settings,
    tokens::TokenService,
};
use leptos::{config::LeptosOptions, prelude::provide_context};
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnFailure, TraceLayer},
};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

use crate::{assets, routes};

/// Largest request body accepted anywhere unless a route says otherwise (the document uploads do:
/// see [`crate::body_limit`]).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Cookie name of the browser session.
pub const SESSION_COOKIE: &str = "goblin_session";

pub struct Application {
    listener: TcpListener,
    router: Router,
    public_url: url::Url,
    state: AppState,
    setup_url: Option<url::Url>,
    /// This instance's task worker, unless `tasks.workers` is off.
    worker: Option<goblin_core::tasks::WorkerHandle>,
}

impl Application {
    /// Connects to the database, applies pending migrations, and binds the listener.
    ///
    /// # Errors
    /// When the database cannot be reached or migrated, Redis is configured with an invalid URL, or
    /// the address cannot be bound.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        // The metrics recorder must be in place before anything records.
        crate::observe::prometheus();
        let conn = db::connect(&config.database).await?;
        db::migrate_up(&conn).await?;

        let redis = match &config.redis_url {
            Some(url) => Some(Arc::new(RedisHandle::new(url).context("Failed to set up Redis")?)),
            None => None,
        };

        let (keyring, dev_key) =
            Keyring::from_config(&config).context("Failed to load the encryption key")?;
        if dev_key {
            tracing::warn!(
                path = %config.data_dir.join("encryption.key").display(),
                "GOBLIN_ENCRYPTION_KEYS is not set: stored secrets are sealed with a development key kept \
                 in the data directory. Anyone who can read that file can open them. Set \
                 GOBLIN_ENCRYPTION_KEYS (32 random bytes, base64) before going to production."
            );
        }
        let keyring = Arc::new(keyring);
        // A secret this server cannot open would fail later, one request at a time: say so now.
        goblin_core::rotation::check_keys(&conn, &keyring)
            .await
            .context("Failed to check the encryption keys")?;
        let clock = clock::system();
        let tokens = Arc::new(
            TokenService::new(conn.clone(), keyring.clone(), clock.clone())
                .with_row_cache(config.auth.token_cache, redis.clone()),
        );
        tokens.spawn_change_listener();
        tokens.ensure_keys().await.context("Failed to prepare the token signing keys")?;

        let settings = Arc::new(Settings::new(conn.clone(), clock.clone(), &config));
        settings.load().await.context("Failed to read the runtime settings")?;
        settings.spawn_refresher(config.settings_refresh);
        let providers =
            Arc::new(ProviderService::new(conn.clone(), keyring.clone(), clock.clone(), settings.clone()));
        let seeded = providers
            .seed_from_env(&config.provider_env)
            .await
            .context("Failed to create providers from the environment")?;
        let records = goblin_core::gateway::records::Records::start(
            conn.clone(),
            clock.clone(),
            goblin_core::gateway::records::WriterConfig::default(),
        );
        let gateway = goblin_core::gateway::Gateway::new(
            conn.clone(),
            keyring.clone(),
            clock.clone(),
            settings.clone(),
            records,
            redis.clone(),
        )
        .await
        .context("Failed to load the routing table")?;
        gateway.spawn_housekeeping();
        let routing = Arc::new(RoutingService::new(conn.clone(), clock.clone()));
        let chat = goblin_core::chat::ChatService::new(conn.clone(), gateway.clone(), clock.clone());
        chat.spawn_sweeper();
        gateway.spawn_reloader(
            config.settings_refresh,
            merge_changes(vec![providers.subscribe(), routing.subscribe()]),
        );
        spawn_model_sync_for_seeded(providers.clone(), seeded);
        let tasks = task_service(&config, &conn, &clock, &settings, Some(gateway.clone())).await;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("Failed to listen on {}", config.listen))?;
        let local = listener.local_addr().context("Failed to read the bound address")?;
        let worker = if config.tasks.workers {
            let id = config
                .tasks
                .worker_id
                .clone()
                .unwrap_or_else(|| format!("{}-serve-{}", goblin_core::tasks::host_name(), local.port()));
            Some(tasks.start_worker(id).await.context("Failed to start the task worker")?)
        } else {
            None
        };

        let mut config = config;
        // Port 0 (tests) binds a free port; the default public URL follows it.
        if config.listen.port() == 0 && config.public_url.port() == Some(0) {
            let _ = config.public_url.set_port(Some(local.port()));
        }
        let public_url = config.public_url.clone();

        let leptos_options = LeptosOptions::builder()
            .output_name("goblin")
            .site_pkg_dir("pkg")
            .site_root("target/site")
            .site_addr(local)
            .build();

        let ceremonies = Arc::new(match &redis {
            Some(r) => CeremonyStore::redis(r.clone(), clock.clone()),
            None => CeremonyStore::memory(clock.clone()),
        });
        let passkeys = Arc::new(
            PasskeyService::new(&config.public_url, conn.clone(), ceremonies, clock.clone())
                .context("Failed to set up passkey sign-in from the public URL")?,
        );
        // With no accounts, a one-time link lets the first person become admin.
        let setup_url = if passkeys.has_users().await? {
            None
        } else {
            let token = passkeys.create_setup_token().await?;
            let mut url = config.public_url.join("setup").context("Failed to build the setup link")?;
            url.query_pairs_mut().append_pair("token", &token);
            Some(url)
        };
        let sessions = match &redis {
            Some(r) => Store::Redis(RedisSessionStore::new(r.clone())),
            None => {
                let store = DbSessionStore::new(conn.clone());
                spawn_expired_session_sweeper(store.clone());
                Store::Db(store)
            }
        };

        let rate_limiter = Arc::new(match &redis {
            Some(r) => goblin_core::rate_limit::RateLimiter::redis(r.clone(), clock.clone()),
            None => goblin_core::rate_limit::RateLimiter::memory(clock.clone()),
        });
        let raptor = goblin_core::raptor::Raptor::new(&config.raptor, conn.clone(), clock.clone())
            .with_context(|| format!("Failed to open the Raptor log {}", config.raptor.file.display()))?;
        let state = AppState::new(goblin_app::state::Services {
            raptor,
            leptos_options,
            rate_limiter,
            passkeys,
            sessions: sessions.clone(),
            health: HealthService::new(conn.clone(), redis),
            db: conn,
            config: Arc::new(config),
            tokens,
            clock,
            settings,
            providers,
            routing,
            gateway,
            chat,
            tasks,
        });
        if !assets::has_frontend() {
            tracing::warn!("the compiled front end is missing; pages are served without hydration");
        }
        let secure = state.config.public_url.scheme() == "https";
        let session_layer = SessionManagerLayer::new(sessions)
            .with_name(SESSION_COOKIE)
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_secure(secure)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(time::Duration::minutes(i64::from(
                state.config.auth.session_idle_minutes,
            ))));
        let router = router(state.clone(), session_layer);
        Ok(Self { listener, router, public_url, state, setup_url, worker })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn public_url(&self) -> &url::Url {
        &self.public_url
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The one-time first-run link, when the server has no accounts yet.
    pub fn setup_url(&self) -> Option<&url::Url> {
        self.setup_url.as_ref()
    }

    /// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests.
    ///
    /// # Errors
    /// When the server fails while running.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(url = %self.public_url, addr = ?self.local_addr(), "serving");
        // Pages stream in several writes; without TCP_NODELAY, Nagle's algorithm and delayed ACKs add
        // about 40 ms to every keep-alive response.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
        });
        // On a stop signal the worker stops first: its running commands are stopped and recorded, so
        // the live-output streams of those tasks end and the HTTP server can finish.
        let worker = self.worker;
        let stopped = async move {
            shutdown_signal().await;
            if let Some(worker) = worker {
                worker.shutdown().await;
            }
        };
        axum::serve(listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stopped)
            .await
            .context("The HTTP server failed")
    }
}

/// The app's routes, generated once per process. Generating them sets a process-wide flag in
/// leptos that keeps resources from loading until it is done; a second generation while another
/// server of the same process renders a page (the tests run many servers at once) left that page
/// waiting forever for its data.
static ROUTES: std::sync::LazyLock<Vec<leptos_axum::AxumRouteListing>> =
    std::sync::LazyLock::new(|| generate_route_list(App));

/// The whole HTTP surface, with `sessions` as the outermost layer.
pub fn router<S: tower_sessions::SessionStore + Clone>(
    state: AppState,
    sessions: SessionManagerLayer<S>,
) -> Router {
    let routes = ROUTES.clone();
    let request_id = HeaderName::from_static("x-request-id");
    let ctx_state = state.clone();
    Router::new()
        .merge(routes::health::router())
        // Browsers ask for /favicon.ico whatever the page links to.
        .route(
            "/favicon.ico",
            axum::routing::get(|| async { axum::response::Redirect::permanent("/favicon.svg") }),
        )
        .merge(routes::api::router())
        .merge(routes::chat::router())
        .merge(routes::tasks::router())
        .merge(routes::search::router())
        .merge(routes::v1::router())
        .merge(routes::raptor::router())
        .merge(routes::metrics::router(routes::metrics::Scrape::new(state.clock.now())))
        .leptos_routes_with_context(&state, routes, move || provide_context(ctx_state.clone()), {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(fallback)
        .with_state(state.clone())
        // Every request's middleware, as one layer: `Router::layer` wraps each route in a box per
        // layer, and each middleware clones what it wraps on every request, so eight separate layers
        // cost every request some fifty boxed clones. Outermost first.
        .layer(
            tower::ServiceBuilder::new()
                .layer(sessions)
                .layer(axum::middleware::from_fn(crate::observe::sanitize_request_id))
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                // The request span: its fields are the context of every log line and traced
                // exception of the request (`user_id` is recorded once known). The path is logged
                // without its query string. A 5xx answer is a warning here: its cause is logged (and
                // captured) where it happened.
                .layer(
                    TraceLayer::new_for_http()
                        .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN))
                        .make_span_with(request_span),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                // Request metrics, and 500 with the request id for a panicking handler (counted too).
                .layer(axum::middleware::from_fn(crate::observe::http_metrics))
                // The body limit; sign-in requests refused as unreadable are audited.
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    crate::body_limit::limit_request_body,
                ))
                // Cross-site refusal, the sign-in attempt limit, the page guard, and 400 for
                // unreadable server function calls.
                .layer(axum::middleware::from_fn_with_state(state, crate::auth::guard)),
        )
}

/// The span every request runs in: method, path (without the query string, which may hold a secret),
/// matched route, request id, and `user_id` once known.
fn request_span(req: &HttpRequest<Body>) -> tracing::Span {
    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str);
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        route = %route,
        request_id = %id,
        user_id = tracing::field::Empty,
    )
}

/// Static files first; anything else is rendered by the app, whose fallback route answers 404.
async fn fallback(State(state): State<AppState>, req: Request) -> Response {
    if let Some(resp) = assets::serve(req.uri().path(), req.headers()) {
        return resp;
    }
    let options = state.leptos_options.clone();
    let handler = leptos_axum::render_app_to_stream_with_context(
        move || provide_context(state.clone()),
        move || shell(options.clone()),
    );
    handler(req).await.into_response()
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// Providers just created from the environment get their model lists in the background, so their
/// models can be used by name at once; a provider that cannot be reached is only logged.
fn spawn_model_sync_for_seeded(
    providers: Arc<ProviderService>,
    seeded: Vec<goblin_core::providers::seed::SeedOutcome>,
) {
    use goblin_core::providers::seed::SeedOutcome;
    let names: Vec<String> = seeded
        .into_iter()
        .filter_map(|o| match o {
            SeedOutcome::Created { name } => Some(name),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return;
    }
    tokio::spawn(async move {
        let Ok(list) = providers.list().await else { return };
        for p in list.into_iter().filter(|p| names.contains(&p.provider.name)) {
            match providers.sync_models(None, p.provider.id).await {
                Ok(r) => tracing::info!(provider = %p.provider.name, added = r.added.len(), "synced models"),
                Err(e) => tracing::warn!(provider = %p.provider.name, error = %e, "could not sync models"),
            }
        }
    });
}

/// One channel that changes whenever any of `sources` changes, for the gateway's reloader.
fn merge_changes(sources: Vec<tokio::sync::watch::Receiver<u64>>) -> tokio::sync::watch::Receiver<u64> {
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    for mut source in sources {
        let tx = tx.clone();
        tokio::spawn(async move {
            while source.changed().await.is_ok() {
                tx.send_modify(|v| *v += 1);
            }
        });
    }
    rx
}

/// Deletes expired database sessions every 10 minutes.
fn spawn_expired_session_sweeper(store: DbSessionStore) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            tick.tick().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
        }
    });
}

/// The goblin registry (watched for changes), the task service and its lease reaper. Every
/// instance has them, whether it runs a worker or not.
pub async fn task_service(
    config: &Config,
    conn: &sea_orm::DatabaseConnection,
    clock: &goblin_core::clock::SharedClock,
    settings: &Arc<Settings>,
    gateway: Option<Arc<goblin_core::gateway::Gateway>>,
) -> Arc<goblin_core::tasks::TaskService> {
    let registry = goblin_core::tasks::RegistryStore::open(
        config.tasks.registry.clone(),
        config.tasks.registry_configured,
        clock.clone(),
    )
    .await;
    registry.spawn_watcher(config.tasks.registry_poll);
    let tasks = goblin_core::tasks::TaskService::new(
        conn.clone(),
        clock.clone(),
        settings.clone(),
        gateway,
        registry,
        goblin_core::tasks::RunConfig::from(&config.tasks),
    );
    tasks.spawn_reaper();
    tasks
}
