//! The REST API under `/api`. Errors are JSON: `{"error": {"message", "type"}}`.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use goblin_app::state::AppState;
use goblin_core::tokens::{TokenError, Verified};
use serde_json::json;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/me", get(me))
}

/// Who a bearer token belongs to, its scopes and expiry: lets automation check its token.
async fn me(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match authenticate(&state, &headers, None).await {
        Ok(v) => Json(json!({
            "user_id": v.user_id,
            "username": v.username,
            "role": v.role,
            "token_id": v.token_id,
            "scopes": v.scopes,
            "expires_at": v.expires_at,
        }))
        .into_response(),
        Err(resp) => resp,
    }
}

/// Verifies the request's bearer token, and `scope` when given.
///
/// # Errors
/// The response to send instead: 401 for a missing or bad token, 403 for a missing scope, 500 when
/// the check itself failed (logged).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    scope: Option<&str>,
) -> Result<Verified, Response> {
    let Some(token) = bearer(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "missing API token: send 'Authorization: Bearer <token>'",
        ));
    };
    match state.tokens.verify(token, scope).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e @ TokenError::MissingScope(_))) => {
            Err(error(StatusCode::FORBIDDEN, "permission_error", &e.to_string()))
        }
        Ok(Err(e)) => Err(error(StatusCode::UNAUTHORIZED, "authentication_error", &e.to_string())),
        Err(e) => {
            tracing::error!(error = %e, "token verification failed");
            Err(error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the token could not be checked"))
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

pub fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut resp = (status, Json(json!({ "error": { "message": message, "type": kind } }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    }
    resp
}
