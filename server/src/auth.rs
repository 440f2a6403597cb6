//! Pages need a signed-in person. A browser that is not signed in is sent to `/signin` (a plain
//! redirect, so it works without JavaScript); the sign-in and setup pages, static files, health
//! checks, metrics, Raptor's API, server functions and the token-authenticated API are reachable
//! without a session (each checks authorisation itself).

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Redirect, Response},
};
use goblin_app::state::AppState;
use goblin_core::sessions::{SIGNED_IN_AT_KEY, USER_ID_KEY, within_absolute_lifetime};
use tower_sessions::Session;

const PUBLIC_PREFIXES: &[&str] = &[
    "/signin",
    "/setup",
    "/invite",
    "/fn",
    "/api",
    "/v1",
    "/health",
    "/metrics",
    "/raptor",
    "/pkg",
    "/favicon.ico",
];

fn is_public(path: &str) -> bool {
    PUBLIC_PREFIXES
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
        // Files from public/ (the favicon and the like).
        || crate::assets::exists(path)
}

/// Pages only admins may open.
fn is_admin_page(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// The checks every request passes before its route, in this order: cross-site refusal
/// ([`crate::csrf`]), the sign-in attempt limit, and the page guard; after the route, a server
/// function's error caused by an unreadable request becomes 400 ([`crate::fn_errors`]). One layer
/// rather than one each: every layer costs each request a clone of the route's service stack and a
/// boxed future.
pub async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Err(refused) = crate::csrf::check(&state, &req) {
        return refused;
    }
    // The checks read what they need of the request first: a request body cannot be shared across
    // an await.
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let ip = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let session = req.extensions().get::<Session>().cloned();
    if let Err(refused) = limit_sign_in_attempts(&state, &method, &path, ip).await {
        return refused;
    }
    if let Err(refused) = require_sign_in(&state, &method, &path, session).await {
        return refused;
    }
    let is_fn = req.uri().path().starts_with("/fn/");
    let resp = next.run(req).await;
    crate::fn_errors::client_errors_are_400(is_fn, resp).await
}

/// Pages need a signed-in person (admin pages an admin): otherwise a redirect to `/signin`, or 403.
async fn require_sign_in(
    state: &AppState,
    method: &Method,
    path: &str,
    session: Option<Session>,
) -> Result<(), Response> {
    if !matches!(*method, Method::GET | Method::HEAD) || is_public(path) {
        return Ok(());
    }
    let user_id = match session {
        Some(session) => {
            let signed_in_at = session.get::<i64>(SIGNED_IN_AT_KEY).await.ok().flatten().unwrap_or(0);
            let limit = state.settings.u32(goblin_core::settings::keys::SESSION_ABSOLUTE_HOURS);
            if within_absolute_lifetime(signed_in_at, state.clock.now(), limit) {
                let user = session.get::<String>(USER_ID_KEY).await.ok().flatten();
                if user.is_some() {
                    goblin_core::sessions::touch(
                        &session,
                        state.settings.u32(goblin_core::settings::keys::SESSION_IDLE_MINUTES),
                    );
                }
                user
            } else {
                None
            }
        }
        None => None,
    };
    let Some(user_id) = user_id.and_then(|id| uuid::Uuid::parse_str(&id).ok()) else {
        return Err(Redirect::to("/signin").into_response());
    };
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    if is_admin_page(path) {
        use sea_orm::EntityTrait;
        let user = goblin_core::entities::users::Entity::find_by_id(user_id).one(&state.db).await;
        match user {
            Ok(Some(u)) if u.role == "admin" && u.status == "active" => {}
            Ok(_) => return Err(forbidden()),
            Err(e) => {
                tracing::error!(error = %e, "could not check the role for an admin page");
                return Err(
                    (StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable").into_response()
                );
            }
        }
    }
    Ok(())
}

/// The signed-in, active person of a request's session, for handlers outside the pages (they answer
/// 401 themselves rather than redirecting).
pub async fn session_user(state: &AppState, session: &Session) -> Option<uuid::Uuid> {
    let signed_in_at = session.get::<i64>(SIGNED_IN_AT_KEY).await.ok().flatten()?;
    let hours = state.settings.u32(goblin_core::settings::keys::SESSION_ABSOLUTE_HOURS);
    if !within_absolute_lifetime(signed_in_at, state.clock.now(), hours) {
        return None;
    }
    let id = session.get::<String>(USER_ID_KEY).await.ok().flatten()?;
    let id = uuid::Uuid::parse_str(&id).ok()?;
    use sea_orm::EntityTrait;
    let user = match goblin_core::entities::users::Entity::find_by_id(id).one(&state.db).await {
        Ok(u) => u?,
        Err(e) => {
            tracing::error!(error = %e, "could not read the signed-in account");
            return None;
        }
    };
    (user.status == "active").then_some(id)
}

fn forbidden() -> Response {
    let html = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not allowed · Goblin \
                Assistant</title></head><body><main><h1>Not allowed</h1><p>Your role does not allow this \
                page.</p><p><a href=\"/\">Back to home</a></p></main></body></html>";
    (StatusCode::FORBIDDEN, axum::response::Html(html)).into_response()
}

/// The ceremony endpoints a stranger can call: limited per client address.
fn is_sign_in_attempt(path: &str) -> bool {
    ["/fn/auth/signin-", "/fn/auth/setup-"].iter().any(|p| path.starts_with(p))
}

/// Answers 429 with Retry-After once a client address exceeds its sign-in attempts for the minute.
async fn limit_sign_in_attempts(
    state: &AppState,
    method: &Method,
    path: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<(), Response> {
    if *method != Method::POST || !is_sign_in_attempt(path) {
        return Ok(());
    }
    let ip = ip.map_or_else(|| "unknown".into(), |ip| ip.to_string());
    match state
        .rate_limiter
        .hit(&format!("auth-ip:{ip}"), state.settings.u32(goblin_core::settings::keys::RATE_LIMIT_PER_IP))
        .await
    {
        Ok(goblin_core::rate_limit::Decision::Allowed) => Ok(()),
        Ok(goblin_core::rate_limit::Decision::Limited { retry_after_s }) => {
            tracing::warn!(%ip, %path, "sign-in attempts rate limited");
            let mut resp = crate::routes::api::error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                &format!("too many sign-in attempts from this address; try again in {retry_after_s} s"),
            );
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            Err(resp)
        }
        Err(e) => Err(crate::routes::api::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &format!("the sign-in service is unavailable right now ({e})"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn public_and_protected_paths() {
        for p in [
            "/signin",
            "/setup",
            "/invite",
            "/fn/auth/me",
            "/api/me",
            "/health",
            "/health/db",
            "/metrics",
            "/raptor/status",
            "/pkg/goblin.js",
        ] {
            assert!(is_public(p), "{p}");
        }
        for p in
            ["/", "/tasks", "/admin/users", "/signinx", "/setupx/y", "/admin/x.json", "/metricsx", "/raptors"]
        {
            assert!(!is_public(p), "{p}");
        }
    }
}
