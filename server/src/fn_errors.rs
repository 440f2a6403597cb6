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
use goblin_app::error::AppError;

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
    }
    Response::from_parts(parts, Body::from(bytes))
}
