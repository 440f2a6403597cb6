//! Live chat answers for the dashboard: `GET /api/chat/streams/{id}/events` is a server-sent event
//! stream of one of the signed-in person's answers. It first sends every stored chunk after the
//! `Last-Event-ID` header (a reconnecting EventSource sends it) or else `?after=<seq>`, then each new
//! chunk as it comes, then one `end` event with the status, tokens and cost.
//!
//! ```text
//! id: 3
//! event: chunk
//! data: {"seq":3,"text":" world"}
//!
//! event: end
//! data: {"status":"done","tokens_in":12,"tokens_out":5,"cost_micros":7,"cost":"0.000007",...}
//! ```
//!
//! Event ids are chunk numbers, so a reconnect resumes without repeats or gaps. Errors are JSON
//! (`{"error": {"message", "type"}}`): 401 when not signed in, 404 for an id that is not one of the
//! person's answers, 400 for a resume point that is not a chunk number.

use std::convert::Infallible;

use axum::{
    Router,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
    routing::get,
};
use goblin_app::state::AppState;
use goblin_core::chat::{ChatError, Event};
use serde::Deserialize;
use serde_json::json;
use tower_sessions::Session;

use crate::routes::api::error;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/chat/streams/{id}/events", get(events))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    after: Option<String>,
}

/// Where to resume: `Last-Event-ID` wins over `?after` (the URL keeps its first value when an
/// EventSource reconnects); neither means from the start.
fn resume_point(headers: &HeaderMap, after: Option<&str>) -> Result<i32, String> {
    let (raw, name) = match headers.get("last-event-id") {
        Some(v) => (v.to_str().unwrap_or("?").trim().to_string(), "Last-Event-ID"),
        None => (after.unwrap_or_default().trim().to_string(), "after"),
    };
    if raw.is_empty() {
        return Ok(0);
    }
    raw.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        format!(
            "{name} must be the number of the last chunk seen (0 or more), not '{}'",
            raw.chars().take(40).collect::<String>()
        )
    })
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<EventsQuery>, QueryRejection>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    let Some(user) = crate::auth::session_user(&state, &session).await else {
        return error(StatusCode::UNAUTHORIZED, "authentication_error", "sign in first");
    };
    let Ok(stream_id) = uuid::Uuid::parse_str(id.trim()) else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found_error",
            &format!("there is no chat answer with id '{}'", id.chars().take(40).collect::<String>()),
        );
    };
    let Ok(Query(query)) = query else {
        return error(StatusCode::BAD_REQUEST, "invalid_request_error", "the query string could not be read");
    };
    let after = match resume_point(&headers, query.after.as_deref()) {
        Ok(n) => n,
        Err(m) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", &m),
    };
    let rx = match state.chat.events(user, stream_id, after).await {
        Ok(rx) => rx,
        Err(ChatError::NotFound(m)) => return error(StatusCode::NOT_FOUND, "not_found_error", &m),
        Err(ChatError::Invalid(m)) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", &m),
        Err(ChatError::Db(e)) => {
            tracing::error!(error = %e, "could not open a chat answer's events");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable right now",
            );
        }
    };
    // Dropping the stream (the browser went away) closes the channel, which ends the reader.
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(sse_event(e)), rx))
    });
    let mut resp = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    resp.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

fn sse_event(e: Event) -> SseEvent {
    match e {
        Event::Chunk(c) => SseEvent::default()
            .id(c.seq.to_string())
            .event("chunk")
            .data(json!({ "seq": c.seq, "text": c.text }).to_string()),
        Event::End(end) => SseEvent::default().event("end").data(
            json!({
                "status": end.status,
                "tokens_in": end.tokens_in,
                "tokens_out": end.tokens_out,
                "cost_micros": end.cost_micros,
                "cost": goblin_core::providers::format_usd_micros(end.cost_micros),
                "provider": end.provider,
                "model": end.model,
                "error": end.error,
            })
            .to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_point_prefers_last_event_id() {
        let mut h = HeaderMap::new();
        assert_eq!(resume_point(&h, None), Ok(0));
        assert_eq!(resume_point(&h, Some("7")), Ok(7));
        h.insert("last-event-id", HeaderValue::from_static("12"));
        assert_eq!(resume_point(&h, Some("7")), Ok(12));
        h.insert("last-event-id", HeaderValue::from_static("-1"));
        assert!(resume_point(&h, None).unwrap_err().contains("Last-Event-ID must be"));
        assert!(resume_point(&HeaderMap::new(), Some("x<y")).unwrap_err().contains("not 'x<y'"));
    }
}
