//! Server functions answer every error with 500 unless the function sets a status itself. Errors
//! raised before the function runs (a body that is not valid JSON, missing or mistyped arguments)
//! are the caller's fault: this layer turns those into 400, leaving the body as it is.

use axum::{
    body::{Body, to_bytes},
    extract::Request,
    http::StatusCode,
    middleware::Next,
    response::Response,
};
use goblin_app::{error::AppError, state::AppState};

/// Marks a response that refused a request the server could not even read.
#[derive(Clone, Copy, Debug)]
pub struct Malformed;

/// Error bodies are small; anything larger is passed through untouched.
const MAX_ERROR_BODY: usize = 64 * 1024;

pub async fn client_errors_are_400(req: Request, next: Next) -> Response {
    let is_fn = req.uri().path().starts_with("/fn/");
    let resp = next.run(req).await;
    if !is_fn || resp.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_ERROR_BODY).await else {
        parts.status = StatusCode::INTERNAL_SERVER_ERROR;
        return Response::from_parts(parts, Body::empty());
    };
    if matches!(serde_json::from_slice::<AppError>(&bytes), Ok(AppError::Request(_))) {
        parts.status = StatusCode::BAD_REQUEST;
        parts.extensions.insert(Malformed);
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Sign-in and registration requests that never reach the ceremony code (unreadable JSON, missing
/// fields, bodies over the size limit) are still security events: they go to the audit log too.
/// Sits outside the body-size limit so that 413s are seen.
pub async fn audit_unreadable_ceremony_requests(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path().to_string();
    let action = if path.starts_with("/fn/auth/signin-") {
        "signin.failed"
    } else if path.starts_with("/fn/auth/setup-") {
        "registration.failed"
    } else {
        return next.run(req).await;
    };
    let ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let resp = next.run(req).await;
    let reason = if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        "request body over the size limit"
    } else if resp.extensions().get::<Malformed>().is_some() {
        "malformed request"
    } else {
        return resp;
    };
    let event = goblin_core::audit::Event {
        action,
        target: Some(path),
        success: false,
        reason: Some(reason.into()),
        ip,
        ..Default::default()
    };
    if let Err(e) = goblin_core::audit::record(&state.db, state.clock.as_ref(), event).await {
        tracing::error!(error = %e, "could not write the audit log");
    }
    resp
}
