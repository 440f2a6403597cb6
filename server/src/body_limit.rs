//! The limit on request bodies: [`MAX_BODY_BYTES`] (2 MiB) everywhere, except the routes that take a
//! search document upload, which take up to [`MAX_UPLOAD_BODY_BYTES`] (20 MiB and the form's other
//! fields).
//!
//! A body whose `Content-Length` is over the limit is refused before any of it is read: a JSON 413
//! naming the limit, or for the Search page's plain upload form a redirect back to the page with that
//! message. A body without a length (chunked) is cut off at the limit while it is read, and the
//! handler reading it answers 413. Axum's extractors apply their own default limit (2 MiB) unless a
//! route raises it; the upload routes do (`DefaultBodyLimit` in [`crate::routes::search::router`]).

use axum::{
    body::Body,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::Response,
};
use goblin_app::state::AppState;
use http_body_util::Limited;

use crate::{
    routes::{
        api::error,
        search::{MAX_UPLOAD_BODY_BYTES, upload_body_limit, upload_too_large},
    },
    startup::MAX_BODY_BYTES,
};

/// Refuses a declared-oversize body with 413 and caps the rest at the path's limit; a sign-in or
/// registration request refused as unreadable, here or by its server function, is audited (see
/// [`crate::fn_errors::CeremonyRequest`]).
pub async fn limit_request_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let ceremony = crate::fn_errors::CeremonyRequest::of(&req);
    let resp = limit(req, next).await;
    match ceremony {
        Some(c) => c.audit_if_unreadable(&state, resp).await,
        None => resp,
    }
}

async fn limit(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let upload = upload_body_limit(path);
    let limit = upload.map_or(MAX_BODY_BYTES, |(n, _)| n);
    debug_assert!(limit <= MAX_UPLOAD_BODY_BYTES);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return match upload {
            Some((_, form)) => upload_too_large(path, form),
            None => error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the request body is over the limit of {MAX_BODY_BYTES} bytes (2 MiB)"),
            ),
        };
    }
    next.run(req.map(|body| Body::new(Limited::new(body, limit)))).await
}
