//! What the server hands to pages and server functions through Leptos context.

use std::sync::Arc;

use axum::extract::FromRef;
use goblin_core::{
    Config, clock::SharedClock, health::HealthService, passkeys::PasskeyService, tokens::TokenService,
};
use leptos::config::LeptosOptions;
use sea_orm::DatabaseConnection;

/// Shared by every request: one pointer, so the router's per-request clones of it (one for each
/// layer that holds it) cost one reference count each. Its fields are read through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

/// What [`AppState`] holds.
pub struct Services {
    pub leptos_options: LeptosOptions,
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    pub health: HealthService,
    pub tokens: Arc<TokenService>,
    /// Limits on sign-in and registration attempts.
    pub rate_limiter: Arc<goblin_core::rate_limit::RateLimiter>,
    pub passkeys: Arc<PasskeyService>,
    /// Where browser sessions live (the database, or Redis when configured).
    pub sessions: goblin_core::sessions::Store,
    pub clock: SharedClock,
    /// Runtime settings, refreshed from the database on every instance.
    pub settings: Arc<goblin_core::settings::Settings>,
    /// Providers, their encrypted keys, models and live checks.
    pub providers: Arc<goblin_core::providers::ProviderService>,
    /// Route aliases, their policies, target health and the request log.
    pub routing: Arc<goblin_core::routing::RoutingService>,
    /// The OpenAI-compatible gateway: routing, failover, streaming, request records.
    pub gateway: Arc<goblin_core::gateway::Gateway>,
    /// Dashboard chat: turns stored as streams, followed live on this instance.
    pub chat: Arc<goblin_core::chat::ChatService>,
    /// Goblin tasks: the registry, the queue, runs and their live output.
    pub tasks: Arc<goblin_core::tasks::TaskService>,
    /// Raptor: process sampling, its log, and traced exceptions.
    pub raptor: Arc<goblin_core::raptor::Raptor>,
}
