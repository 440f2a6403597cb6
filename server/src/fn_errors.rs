//! Server functions answer every error with 500 unless the function sets a status itself. Errors
//! raised before the function runs (a body that is not valid JSON, missing or mistyped arguments)
//! are the caller's fault: [`client_errors_are_400`] turns those into 400, leaving the body as it is.

use axum::{
    body::{Body, to_bytes},
    extract::Request,
    http::StatusCode,
    response::Response,
};
use goblin_app::{error::AppError, state::AppState};

/// Marks a response that refused a request the server could not even read.
#[derive(Clone, Copy, Debug)]
pub struct Malformed;

/// Error bodies are small; anything larger is passed through untouched.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A server function's 500 whose body says the request could not be read becomes 400 (called by
/// [`crate::auth::guard`] with the answer to a request under `/fn/`).
pub async fn client_errors_are_400(is_fn: bool, resp: Response) -> Response {
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
/// [`crate::body_limit::limit_request_body`] takes this note of such a request before applying the
/// limit, and hands its answer to [`CeremonyRequest::audit_if_unreadable`], so 413s are seen.
pub struct CeremonyRequest {
    action: &'static str,
    path: String,
    ip: Option<String>,
}

impl CeremonyRequest {
    /// The note for a sign-in or registration request; `None` for any other.
    pub fn of(req: &Request) -> Option<Self> {
        let path = req.uri().path();
        let action = if path.starts_with("/fn/auth/signin-") {
            "signin.failed"
        } else if path.starts_with("/fn/auth/setup-") {
            "registration.failed"
        } else {
            return None;
        };
        let ip = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Some(Self { action, path: path.to_string(), ip })
    }

    /// Records a failed ceremony when `resp` refused the request as unreadable; returns `resp`.
    pub async fn audit_if_unreadable(self, state: &AppState, resp: Response) -> Response {
        let reason = if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "request body over the size limit"
        } else if resp.extensions().get::<Malformed>().is_some() {
            "malformed request"
        } else {
            return resp;
        };
        let event = goblin_core::audit::Event {
            action: self.action,
            target: Some(self.path),
            success: false,
            reason: Some(reason.into()),
            ip: self.ip,
            ..Default::default()
        };
        if let Err(e) = goblin_core::audit::record(&state.db, state.clock.as_ref(), event).await {
            tracing::error!(error = %e, "could not write the audit log");
        }
        resp
    }
}
