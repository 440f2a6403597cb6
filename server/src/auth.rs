//! Pages need a signed-in person. A browser that is not signed in is sent to `/signin` (a plain
//! redirect, so it works without JavaScript); the sign-in and setup pages, static files, health
//! checks, server functions and the token-authenticated API are reachable without a session (server
//! functions and API handlers check authorisation themselves).

use axum::{
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use goblin_app::state::AppState;
use goblin_core::sessions::USER_ID_KEY;
use tower_sessions::Session;

const PUBLIC_PREFIXES: &[&str] = &["/signin", "/setup", "/fn", "/api", "/health", "/pkg", "/metrics"];

fn is_public(path: &str) -> bool {
    PUBLIC_PREFIXES
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
        // Files from public/ (favicon and the like) have an extension; pages do not.
        || path.rsplit('/').next().is_some_and(|last| last.contains('.'))
}

pub async fn require_sign_in(State(_state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) || is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let signed_in = match req.extensions().get::<Session>() {
        Some(session) => session.get::<String>(USER_ID_KEY).await.ok().flatten().is_some(),
        None => false,
    };
    if signed_in {
        next.run(req).await
    } else {
        Redirect::to("/signin").into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn public_and_protected_paths() {
        for p in ["/signin", "/setup", "/fn/auth/me", "/api/me", "/health", "/health/db", "/pkg/goblin.js", "/favicon.svg"] {
            assert!(is_public(p), "{p}");
        }
        for p in ["/", "/tasks", "/admin/users", "/signinx", "/setupx/y"] {
            assert!(!is_public(p), "{p}");
        }
    }
}
