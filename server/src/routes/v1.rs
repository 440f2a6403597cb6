//! The OpenAI-compatible API under `/v1`: any OpenAI client works unchanged. Callers authenticate
//! with an API token (`Authorization: Bearer`, scope `chat`) or a signed-in browser session. Errors
//! use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.

use std::convert::Infallible;

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use futures_util::StreamExt;
use goblin_app::state::AppState;
use goblin_core::{
    gateway::{Caller, GatewayError},
    tokens::TokenError,
};
use serde_json::Value;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/audio/speech", post(speech))
        .route("/v1/{*rest}", axum::routing::any(not_found))
}

fn error(e: &GatewayError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, Json(e.body())).into_response();
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

fn auth_error(status: u16, kind: &'static str, message: impl Into<String>) -> Response {
    error(&GatewayError { status, kind, message: message.into(), param: None, code: None })
}

async fn not_found() -> Response {
    auth_error(
        404,
        "invalid_request_error",
        "unknown API path; see GET /v1/models and POST /v1/chat/completions",
    )
}

/// The caller: a bearer token with scope `chat`, or else a signed-in session.
async fn caller(state: &AppState, headers: &HeaderMap, session: Session) -> Result<Caller, Response> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    if let Some(token) = bearer {
        return match state.tokens.verify(token, Some("chat")).await {
            Ok(Ok(v)) => Ok(Caller { user_id: Some(v.user_id), token_id: Some(v.token_id) }),
            Ok(Err(e @ TokenError::MissingScope(_))) => {
                Err(auth_error(403, "permission_error", e.to_string()))
            }
            Ok(Err(e)) => Err(auth_error(401, "authentication_error", format!("Incorrect API token: {e}"))),
            Err(e) => {
                tracing::error!(error = %e, "token verification failed");
                Err(auth_error(500, "api_error", "the token could not be checked"))
            }
        };
    }
    if let Some(user) = crate::auth::session_user(state, &session).await {
        return Ok(Caller { user_id: Some(user), token_id: None });
    }
    Err(auth_error(
        401,
        "authentication_error",
        "You didn't provide an API token. Send 'Authorization: Bearer <token>' (a token with scope chat), or sign in.",
    ))
}

fn parse_json(body: &Bytes) -> Result<Value, GatewayError> {
    serde_json::from_slice(body).map_err(|e| {
        GatewayError::invalid(format!("We could not parse the JSON body of your request: {e}"), None)
    })
}

async fn models(State(state): State<AppState>, headers: HeaderMap, session: Session) -> Response {
    if let Err(resp) = caller(&state, &headers, session).await {
        return resp;
    }
    Json(state.gateway.models()).into_response()
}

async fn chat_completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    body: Bytes,
) -> Response {
    let caller = match caller(&state, &headers, session).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let body = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return error(&e),
    };
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        return match state.gateway.chat_json(&caller, body).await {
            Ok(json) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json).into_response(),
            Err(e) => error(&e),
        };
    }
    match state.gateway.chat_stream(&caller, body).await {
        Ok(rx) => {
            let stream = tokio_stream_from(rx).map(Ok::<_, Infallible>);
            let mut resp = Response::new(Body::from_stream(stream));
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            resp
        }
        Err(e) => error(&e),
    }
}

async fn embeddings(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    body: Bytes,
) -> Response {
    let caller = match caller(&state, &headers, session).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let body = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return error(&e),
    };
    match state.gateway.embeddings(&caller, body).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(&e),
    }
}

async fn speech(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    body: Bytes,
) -> Response {
    let caller = match caller(&state, &headers, session).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let body = match parse_json(&body) {
        Ok(v) => v,
        Err(e) => return error(&e),
    };
    match state.gateway.speech(&caller, body).await {
        Ok((audio, kind)) => {
            let kind = HeaderValue::from_str(&kind).unwrap_or(HeaderValue::from_static("audio/mpeg"));
            ([(header::CONTENT_TYPE, kind)], audio).into_response()
        }
        Err(e) => error(&e),
    }
}

/// A receiver as a stream; dropping the stream (the client went away) closes the channel, which the
/// gateway notices and cancels the upstream request.
fn tokio_stream_from(rx: tokio::sync::mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}
