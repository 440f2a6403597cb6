//! OpenAI wire format, shared by the OpenAI-compatible kinds: models, chat completions (plain and SSE),
//! embeddings and speech.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::handler::Ctx;
use crate::provider::{self, Flavor, Kind, ok_json, openai_param_error};
use crate::stream::{self, Piece, StreamPlan, sse_data};
use crate::text::{self, Reply, word_count};

/// Default embedding width when the request sets no `dimensions`.
pub(crate) const DEFAULT_DIMENSIONS: usize = 64;
/// Widest embedding the mock produces.
pub(crate) const MAX_DIMENSIONS: usize = 8192;

const CREATED: u64 = 1_715_367_049;

fn flavor(ctx: &Ctx<'_>) -> Flavor {
    match ctx.kind {
        Kind::OpenAi(flavor) => flavor,
        _ => Flavor::Compatible,
    }
}

/// Model ids and owners a flavour lists; every flavour also lists the embedding and speech models.
fn models(flavor: Flavor) -> Vec<(&'static str, &'static str)> {
    let mut models = match flavor {
        Flavor::OpenAi => vec![("gpt-4o-mini", "system"), ("gpt-4o", "system")],
        Flavor::DeepSeek => vec![("deepseek-chat", "deepseek"), ("deepseek-reasoner", "deepseek")],
        Flavor::Grok => vec![("grok-3", "xai"), ("grok-3-mini", "xai")],
        Flavor::SiliconFlow => {
            vec![("Qwen/Qwen2.5-7B-Instruct", "siliconflow"), ("deepseek-ai/DeepSeek-V3", "siliconflow")]
        }
        Flavor::Moonshot => vec![("moonshot-v1-8k", "moonshot"), ("kimi-k2-0711-preview", "moonshot")],
        Flavor::Compatible => vec![("mock-chat", "mock")],
    };
    models.push(("text-embedding-3-small", "system"));
    models.push(("tts-1", "system"));
    models
}

fn model_object(id: &str, owned_by: &str) -> Value {
    json!({ "id": id, "object": "model", "created": CREATED, "owned_by": owned_by })
}

/// `GET /models`.
pub(crate) fn list_models(ctx: &Ctx<'_>) -> Response {
    let data: Vec<Value> =
        models(flavor(ctx)).into_iter().map(|(id, owner)| model_object(id, owner)).collect();
    ok_json(&json!({ "object": "list", "data": data }))
}

/// `GET /models/{id}`.
pub(crate) fn get_model(ctx: &Ctx<'_>) -> Response {
    match models(flavor(ctx)).into_iter().find(|(id, _)| *id == ctx.model) {
        Some((id, owner)) => ok_json(&model_object(id, owner)),
        None => provider::error(
            ctx.kind,
            404,
            &format!("The model '{}' does not exist", ctx.model),
            Some("model_not_found"),
        ),
    }
}

/// Text of a message `content`: a string, or the `text` of its parts joined by spaces.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `POST /chat/completions`, plain or SSE.
pub(crate) fn chat(ctx: &Ctx<'_>) -> Response {
    let body = &ctx.body;
    if !body.is_object() {
        return openai_param_error(400, "The request body must be a JSON object.", "body", None);
    }
    if body.get("model").and_then(Value::as_str).is_none() {
        return openai_param_error(400, "you must provide a model parameter", "model", None);
    }
    let messages = match body.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(Value::Array(_)) => {
            return openai_param_error(400, "[] is too short - 'messages'", "messages", None);
        }
        Some(_) => {
            return openai_param_error(
                400,
                "Invalid type for 'messages': expected an array of objects.",
                "messages",
                Some("invalid_type"),
            );
        }
        None => {
            return openai_param_error(
                400,
                "Missing required parameter: 'messages'.",
                "messages",
                Some("missing_required_parameter"),
            );
        }
    };
    let prompt_tokens: usize = messages.iter().map(|m| word_count(&content_text(m.get("content")))).sum();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| content_text(m.get("content")))
        .unwrap_or_default();
    let full = text::reply_to(&last_user);
    let max_tokens = body
        .get("max_completion_tokens")
        .and_then(Value::as_u64)
        .or_else(|| body.get("max_tokens").and_then(Value::as_u64));
    let reply = Reply::new(&full, max_tokens);
    let finish_reason = if reply.truncated { "length" } else { "stop" };
    let completion_tokens = reply.tokens();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": { "cached_tokens": 0, "audio_tokens": 0 },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    });
    let id = format!("chatcmpl-mock{:010}", ctx.state.next_id());
    let created = now();

    if !ctx.streaming {
        return ok_json(&json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": ctx.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": reply.text, "refusal": null, "annotations": [] },
                "logprobs": null,
                "finish_reason": finish_reason
            }],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_mock"
        }));
    }

    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // Every chunk shares these fields; serialise them once and splice in `choices` and `usage`.
    let head = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": ctx.model,
        "service_tier": "default",
        "system_fingerprint": "fp_mock",
    })
    .to_string();
    let head = head.strip_suffix('}').unwrap_or(&head);
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut buf = Vec::with_capacity(head.len() + 160);
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(head.as_bytes());
        buf.extend_from_slice(b",\"choices\":");
        let _ = serde_json::to_writer(&mut buf, &choices);
        if include_usage {
            buf.extend_from_slice(b",\"usage\":");
            let _ = serde_json::to_writer(&mut buf, &usage.unwrap_or(Value::Null));
        }
        buf.extend_from_slice(b"}\n\n");
        Bytes::from(buf)
    };
    let choice = |delta: Value, finish: Option<&str>| json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish }]);

    let mut pieces = Vec::with_capacity(reply.chunks.len() + 4);
    pieces.push(Piece::Frame(chunk(
        choice(json!({ "role": "assistant", "content": "", "refusal": null }), None),
        None,
    )));
    for word in &reply.chunks {
        pieces.push(Piece::Content(chunk(choice(json!({ "content": word }), None), None)));
    }
    pieces.push(Piece::Frame(chunk(choice(json!({}), Some(finish_reason)), None)));
    if include_usage {
        pieces.push(Piece::Frame(chunk(json!([]), Some(usage))));
    }
    pieces.push(Piece::Frame(Bytes::from_static(b"data: [DONE]\n\n")));
    let plan = StreamPlan {
        pieces,
        malformed: Bytes::from_static(
            b"data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"delta\":\n\n",
        ),
        error_event: Some(sse_data(&json!({
            "error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error",
                "param": null,
                "code": null
            }
        }))),
    };
    stream::respond(ctx.state, plan, ctx.behavior, stream::SSE)
}

/// The texts of an embeddings `input`: a string, an array of strings, or token arrays.
fn embedding_inputs(input: &Value) -> Option<Vec<String>> {
    fn tokens(arr: &[Value]) -> Option<String> {
        let ids: Option<Vec<String>> = arr.iter().map(|t| t.as_u64().map(|t| format!("t{t}"))).collect();
        ids.map(|ids| ids.join(" "))
    }
    match input {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) if items.iter().all(Value::is_string) => {
            Some(items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        }
        Value::Array(items) if items.iter().all(Value::is_u64) => tokens(items).map(|t| vec![t]),
        Value::Array(items) => items.iter().map(|i| i.as_array().and_then(|a| tokens(a))).collect(),
        _ => None,
    }
}

/// `POST /embeddings`.
pub(crate) fn embeddings(ctx: &Ctx<'_>) -> Response {
    let body = &ctx.body;
    if body.get("model").and_then(Value::as_str).is_none() {
        return openai_param_error(400, "you must provide a model parameter", "model", None);
    }
    let Some(input) = body.get("input") else {
        return openai_param_error(
            400,
            "Missing required parameter: 'input'.",
            "input",
            Some("missing_required_parameter"),
        );
    };
    let Some(inputs) = embedding_inputs(input) else {
        return openai_param_error(
            400,
            "'input' must be a non-empty string, array of strings, array of tokens or array of token arrays.",
            "input",
            Some("invalid_type"),
        );
    };
    let dims = match body.get("dimensions") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(d) => match d.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=MAX_DIMENSIONS).contains(&d) => d,
            _ => {
                return openai_param_error(
                    400,
                    &format!("'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}."),
                    "dimensions",
                    None,
                );
            }
        },
    };
    let base64 = match body.get("encoding_format").and_then(Value::as_str) {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return openai_param_error(
                400,
                &format!("'{other}' is not one of ['float', 'base64'] - 'encoding_format'"),
                "encoding_format",
                None,
            );
        }
    };
    let mut prompt_tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            prompt_tokens += word_count(input);
            let vector = text::embed(input, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(text::base64(&bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    ok_json(&json!({
        "object": "list",
        "data": data,
        "model": ctx.model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens }
    }))
}

/// `POST /audio/speech`: deterministic MP3-shaped bytes whatever `response_format` asks for.
pub(crate) fn speech(ctx: &Ctx<'_>) -> Response {
    if ctx.body.get("model").and_then(Value::as_str).is_none() {
        return openai_param_error(400, "you must provide a model parameter", "model", None);
    }
    let Some(input) = ctx.body.get("input").and_then(Value::as_str) else {
        return openai_param_error(
            400,
            "Missing required parameter: 'input'.",
            "input",
            Some("missing_required_parameter"),
        );
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, HeaderValue::from_static("audio/mpeg"))], text::mp3_bytes(input))
        .into_response()
}
