//! Streamed answers, shaped by the `cut`, `stall`, `malformed` and `error_event` behaviours.

use std::io;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream;

use crate::MockState;
use crate::behavior::Behavior;

/// One piece of a streamed answer.
pub(crate) enum Piece {
    /// Carries part of the reply (a word, an audio frame); counted by `cut`.
    Content(Bytes),
    /// Framing: preamble, terminating events, usage.
    Frame(Bytes),
}

/// A complete streamed answer plus the pieces the behaviours may splice in.
pub(crate) struct StreamPlan {
    pub pieces: Vec<Piece>,
    /// Sent after the first content piece for `malformed`.
    pub malformed: Bytes,
    /// Sent after the first content piece for `error_event`, ending the stream.
    pub error_event: Option<Bytes>,
}

enum Ending {
    /// The stream ends normally.
    Complete,
    /// The connection is dropped without the terminating chunk.
    Abort,
    /// Nothing more is sent until the server shuts down.
    Stall,
}

/// The `text/event-stream` content type.
pub(crate) const SSE: &str = "text/event-stream; charset=utf-8";

/// Streams `plan` with `content_type`, applying the behaviours.
pub(crate) fn respond(
    state: &MockState,
    plan: StreamPlan,
    behavior: Behavior,
    content_type: &'static str,
) -> Response {
    let total_content = plan.pieces.iter().filter(|p| matches!(p, Piece::Content(_))).count();
    let cut_at = behavior.cut.map(|n| n.min(total_content));
    let mut out = Vec::with_capacity(plan.pieces.len() + 1);
    let mut ending = Ending::Complete;
    let mut sent = 0usize;
    for piece in plan.pieces {
        match piece {
            Piece::Frame(bytes) => out.push(bytes),
            Piece::Content(bytes) => {
                if cut_at == Some(sent) {
                    ending = Ending::Abort;
                    break;
                }
                out.push(bytes);
                sent += 1;
                if sent == 1 {
                    if behavior.stall {
                        ending = Ending::Stall;
                        break;
                    }
                    if behavior.error_event
                        && let Some(event) = &plan.error_event
                    {
                        out.push(event.clone());
                        break;
                    }
                    if behavior.malformed {
                        out.push(plan.malformed.clone());
                    }
                }
                if cut_at == Some(sent) {
                    ending = Ending::Abort;
                    break;
                }
            }
        }
    }
    if behavior.stall && sent == 0 {
        ending = Ending::Stall;
    }

    let head = stream::iter(out.into_iter().map(Ok::<Bytes, io::Error>));
    let body = match ending {
        Ending::Complete => Body::from_stream(head),
        Ending::Abort => Body::from_stream(head.chain(stream::once(async {
            // Let the server flush what was sent before the connection is dropped.
            tokio::task::yield_now().await;
            Err(io::Error::other("mock upstream cut the stream"))
        }))),
        Ending::Stall => {
            let state = state.clone();
            Body::from_stream(head.chain(stream::once(async move {
                state.shutdown_requested().await;
                Err(io::Error::other("mock upstream shut down while stalling"))
            })))
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// An SSE `data:` event with a JSON payload.
pub(crate) fn sse_data(value: &serde_json::Value) -> Bytes {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut buf, value);
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// An SSE event with a name and a JSON payload.
pub(crate) fn sse_event(name: &str, value: &serde_json::Value) -> Bytes {
    let mut buf = Vec::with_capacity(160);
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut buf, value);
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}
