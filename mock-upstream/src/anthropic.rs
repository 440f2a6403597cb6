//! Anthropic Messages API: models, messages (plain and SSE) and token counting.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::handler::Ctx;
use crate::provider::{self, ok_json};
use crate::stream::{self, Piece, StreamPlan, sse_event};
use crate::text::{self, Reply, word_count};

const MODELS: &[(&str, &str, &str)] = &[
    ("claude-sonnet-4-20250514", "Claude Sonnet 4", "2025-05-22T00:00:00Z"),
    ("claude-3-7-sonnet-20250219", "Claude Sonnet 3.7", "2025-02-24T00:00:00Z"),
    ("claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22T00:00:00Z"),
];

fn model_object(&(id, name, created): &(&str, &str, &str)) -> Value {
    json!({ "type": "model", "id": id, "display_name": name, "created_at": created })
}

/// `GET /models`.
pub(crate) fn list_models(_ctx: &Ctx<'_>) -> Response {
    let data: Vec<Value> = MODELS.iter().map(model_object).collect();
    ok_json(&json!({
        "data": data,
        "has_more": false,
        "first_id": MODELS.first().map(|m| m.0),
        "last_id": MODELS.last().map(|m| m.0),
    }))
}

/// `GET /models/{id}`.
pub(crate) fn get_model(ctx: &Ctx<'_>) -> Response {
    match MODELS.iter().find(|m| m.0 == ctx.model) {
        Some(m) => ok_json(&model_object(m)),
        None => provider::error(ctx.kind, 404, &format!("model: {}", ctx.model), None),
    }
}

/// Text of a `content` or `system` value: a string, or the `text` blocks joined by spaces.
fn blocks_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Checks the fields every Messages request needs; returns the messages or the API's 400 message.
fn messages_of<'a>(ctx: &'a Ctx<'_>) -> Result<&'a Vec<Value>, &'static str> {
    if !ctx.body.is_object() {
        return Err("Input should be a valid dictionary");
    }
    match ctx.body.get("model") {
        Some(Value::String(_)) => {}
        Some(_) => return Err("model: Input should be a valid string"),
        None => return Err("model: Field required"),
    }
    match ctx.body.get("messages") {
        Some(Value::Array(messages)) if messages.is_empty() => {
            Err("messages: at least one message is required")
        }
        Some(Value::Array(messages)) => Ok(messages),
        Some(_) => Err("messages: Input should be a valid list"),
        None => Err("messages: Field required"),
    }
}

fn prompt_tokens(body: &Value, messages: &[Value]) -> usize {
    word_count(&blocks_text(body.get("system")))
        + messages.iter().map(|m| word_count(&blocks_text(m.get("content")))).sum::<usize>()
}

/// `POST /messages`, plain or SSE.
pub(crate) fn messages(ctx: &Ctx<'_>) -> Response {
    let messages = match messages_of(ctx) {
        Ok(messages) => messages,
        Err(message) => return provider::error(ctx.kind, 400, message, None),
    };
    let max_tokens = match ctx.body.get("max_tokens") {
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => n,
            _ => {
                return provider::error(
                    ctx.kind,
                    400,
                    "max_tokens: Input should be greater than or equal to 1",
                    None,
                );
            }
        },
        None => return provider::error(ctx.kind, 400, "max_tokens: Field required", None),
    };
    let input_tokens = prompt_tokens(&ctx.body, messages);
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| blocks_text(m.get("content")))
        .unwrap_or_default();
    let full = text::reply_to(&last_user);
    let reply = Reply::new(&full, Some(max_tokens));
    let stop_reason = if reply.truncated { "max_tokens" } else { "end_turn" };
    let output_tokens = reply.tokens();
    let id = format!("msg_mock{:016}", ctx.state.next_id());

    if !ctx.streaming {
        return ok_json(&json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": ctx.model,
            "content": [{ "type": "text", "text": reply.text }],
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0
            }
        }));
    }

    let mut pieces = Vec::with_capacity(reply.chunks.len() + 6);
    pieces.push(Piece::Frame(sse_event(
        "message_start",
        &json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": ctx.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": input_tokens,
                    "output_tokens": 1,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0
                }
            }
        }),
    )));
    pieces.push(Piece::Frame(sse_event(
        "content_block_start",
        &json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
    )));
    pieces.push(Piece::Frame(Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")));
    for word in &reply.chunks {
        pieces.push(Piece::Content(sse_event(
            "content_block_delta",
            &json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": word } }),
        )));
    }
    pieces.push(Piece::Frame(sse_event(
        "content_block_stop",
        &json!({ "type": "content_block_stop", "index": 0 }),
    )));
    pieces.push(Piece::Frame(sse_event(
        "message_delta",
        &json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": { "output_tokens": output_tokens }
        }),
    )));
    pieces.push(Piece::Frame(Bytes::from_static(
        b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    )));
    let plan = StreamPlan {
        pieces,
        malformed: Bytes::from_static(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\n\n",
        ),
        error_event: Some(sse_event(
            "error",
            &json!({ "type": "error", "error": { "type": "overloaded_error", "message": "Overloaded" } }),
        )),
    };
    stream::respond(ctx.state, plan, ctx.behavior, stream::SSE)
}

/// `POST /messages/count_tokens`.
pub(crate) fn count_tokens(ctx: &Ctx<'_>) -> Response {
    match messages_of(ctx) {
        Ok(messages) => ok_json(&json!({ "input_tokens": prompt_tokens(&ctx.body, messages) })),
        Err(message) => provider::error(ctx.kind, 400, message, None),
    }
}
