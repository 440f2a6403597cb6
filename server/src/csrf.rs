//! Cross-site request refusal: a state-changing request that a browser sends (server functions, form
//! posts) must come from the dashboard's own origin, as the `Origin` header (or, failing that,
//! `Referer`) shows. Requests that authenticate with a bearer token are not sent by browsers on a
//! person's behalf, carry no ambient credentials, and are let through to their own authentication.

use axum::{
    extract::Request,
    http::{Method, StatusCode, header},
    response::Response,
};
use goblin_app::state::AppState;

use crate::routes::api::error;

/// The origin (`scheme://host[:port]`) people reach the dashboard at.
pub fn public_origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// Refuses cross-site state-changing requests with 403 (called by [`crate::auth::guard`]).
///
/// # Errors
/// The 403 answer.
pub fn check(state: &AppState, req: &Request) -> Result<(), Response> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let headers = req.headers();
    let has_bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    if has_bearer {
        return Ok(());
    }
    let expected = public_origin(&state.config.public_url);
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let allowed = match origin {
        Some(o) => o == expected,
        None => headers
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|r| public_origin(&r) == expected),
    };
    if allowed {
        return Ok(());
    }
    let seen = origin.map(|o| format!("from origin '{}'", o.chars().take(100).collect::<String>()));
    tracing::warn!(origin = ?origin, path = %req.uri().path(), "refused a cross-site request");
    Err(error(
        StatusCode::FORBIDDEN,
        "csrf_error",
        &format!(
            "cross-site request refused: {} does not match {expected}",
            seen.unwrap_or_else(|| "a request with neither Origin nor Referer".into())
        ),
    ))
}
