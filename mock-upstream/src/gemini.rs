//! Gemini API (`v1beta`): models, generateContent, streamGenerateContent (SSE or JSON array),
//! embedContent, batchEmbedContents and countTokens.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use crate::handler::Ctx;
use crate::openai::{DEFAULT_DIMENSIONS, MAX_DIMENSIONS};
use crate::provider::{self, GeminiAction, ok_json};
use crate::stream::{self, Piece, StreamPlan};
use crate::text::{self, Reply, word_count};

struct Model {
    id: &'static str,
    display_name: &'static str,
    input_limit: u64,
    output_limit: u64,
    methods: &'static [&'static str],
}

const GENERATE: &[&str] = &["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"];
const EMBED: &[&str] = &["embedContent", "countTextTokens", "countTokens"];

const MODELS: &[Model] = &[
    Model {
        id: "gemini-2.0-flash",
        display_name: "Gemini 2.0 Flash",
        input_limit: 1_048_576,
        output_limit: 8_192,
        methods: GENERATE,
    },
    Model {
        id: "gemini-2.5-flash",
        display_name: "Gemini 2.5 Flash",
        input_limit: 1_048_576,
        output_limit: 65_536,
        methods: GENERATE,
    },
    Model {
        id: "gemini-2.5-pro",
        display_name: "Gemini 2.5 Pro",
        input_limit: 1_048_576,
        output_limit: 65_536,
        methods: GENERATE,
    },
    Model {
        id: "text-embedding-004",
        display_name: "Text Embedding 004",
        input_limit: 2_048,
        output_limit: 1,
        methods: EMBED,
    },
];

fn model_object(m: &Model) -> Value {
    json!({
        "name": format!("models/{}", m.id),
        "version": "001",
        "displayName": m.display_name,
        "description": format!("Mock of {}.", m.display_name),
        "inputTokenLimit": m.input_limit,
        "outputTokenLimit": m.output_limit,
        "supportedGenerationMethods": m.methods,
        "temperature": 1,
        "topP": 0.95,
        "topK": 40,
        "maxTemperature": 2
    })
}

/// `GET /models`.
pub(crate) fn list_models(_ctx: &Ctx<'_>) -> Response {
    let models: Vec<Value> = MODELS.iter().map(model_object).collect();
    ok_json(&json!({ "models": models }))
}

/// `GET /models/{model}`.
pub(crate) fn get_model(ctx: &Ctx<'_>) -> Response {
    match MODELS.iter().find(|m| m.id == ctx.model) {
        Some(m) => ok_json(&model_object(m)),
        None => provider::error(
            ctx.kind,
            404,
            &format!("models/{} is not found for API version v1beta, or is not supported.", ctx.model),
            None,
        ),
    }
}

/// `POST /models/{model}:<action>`.
pub(crate) fn action(ctx: &Ctx<'_>, action: GeminiAction) -> Response {
    if !ctx.body.is_object() {
        return invalid(ctx, "Invalid JSON payload received. Expected an object.");
    }
    match action {
        GeminiAction::Generate | GeminiAction::Stream => generate(ctx),
        GeminiAction::Embed => match embed_one(&ctx.body) {
            Ok(values) => ok_json(&json!({ "embedding": { "values": values } })),
            Err(message) => invalid(ctx, message),
        },
        GeminiAction::BatchEmbed => {
            let Some(requests) = ctx.body.get("requests").and_then(Value::as_array) else {
                return invalid(ctx, "* BatchEmbedContentsRequest.requests: requests is not specified");
            };
            let mut embeddings = Vec::with_capacity(requests.len());
            for request in requests {
                match embed_one(request) {
                    Ok(values) => embeddings.push(json!({ "values": values })),
                    Err(message) => return invalid(ctx, message),
                }
            }
            ok_json(&json!({ "embeddings": embeddings }))
        }
        GeminiAction::CountTokens => {
            let request = ctx.body.get("generateContentRequest").unwrap_or(&ctx.body);
            let tokens = prompt_tokens(request);
            ok_json(&json!({
                "totalTokens": tokens,
                "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": tokens }]
            }))
        }
    }
}

fn invalid(ctx: &Ctx<'_>, message: &str) -> Response {
    provider::error(ctx.kind, 400, message, None)
}

/// A field under its camelCase or snake_case name (the REST API accepts both).
fn field<'a>(v: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn parts_text(content: Option<&Value>) -> String {
    content
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .map(|parts| {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_default()
}

fn prompt_tokens(request: &Value) -> usize {
    let system = word_count(&parts_text(field(request, "systemInstruction", "system_instruction")));
    let contents = request.get("contents").and_then(Value::as_array);
    system + contents.map_or(0, |c| c.iter().map(|c| word_count(&parts_text(Some(c)))).sum())
}

/// The embedding an `EmbedContentRequest` asks for, or the API's 400 message.
fn embed_one(request: &Value) -> Result<Vec<f32>, &'static str> {
    let Some(content) = request.get("content").filter(|c| c.is_object()) else {
        return Err("* EmbedContentRequest.content: content is not specified");
    };
    let dims = match field(request, "outputDimensionality", "output_dimensionality") {
        None | Some(Value::Null) => DEFAULT_DIMENSIONS,
        Some(d) => match d.as_u64().and_then(|d| usize::try_from(d).ok()) {
            Some(d) if (1..=MAX_DIMENSIONS).contains(&d) => d,
            _ => return Err("* EmbedContentRequest.output_dimensionality: invalid value"),
        },
    };
    Ok(text::embed(&parts_text(Some(content)), dims))
}

fn generate(ctx: &Ctx<'_>) -> Response {
    let contents = match ctx.body.get("contents") {
        Some(Value::Array(contents)) if !contents.is_empty() => contents,
        Some(Value::Array(_)) | None => {
            return invalid(ctx, "* GenerateContentRequest.contents: contents is not specified");
        }
        Some(_) => return invalid(ctx, "Invalid value at 'contents', expected a list."),
    };
    let input_tokens = prompt_tokens(&ctx.body);
    let last_user = contents
        .iter()
        .rev()
        .find(|c| c.get("role").and_then(Value::as_str).is_none_or(|r| r == "user"))
        .map(|c| parts_text(Some(c)))
        .unwrap_or_default();
    let full = text::reply_to(&last_user);
    let max_tokens = field(&ctx.body, "generationConfig", "generation_config")
        .and_then(|g| field(g, "maxOutputTokens", "max_output_tokens"))
        .and_then(Value::as_u64);
    let reply = Reply::new(&full, max_tokens);
    let finish_reason = if reply.truncated { "MAX_TOKENS" } else { "STOP" };
    let response_id = format!("mock-{:016}", ctx.state.next_id());
    let response = |text: &str, output_tokens: usize, finish: Option<&str>| {
        let mut candidate =
            json!({ "content": { "parts": [{ "text": text }], "role": "model" }, "index": 0 });
        if let Some(finish) = finish {
            candidate["finishReason"] = json!(finish);
        }
        json!({
            "candidates": [candidate],
            "usageMetadata": {
                "promptTokenCount": input_tokens,
                "candidatesTokenCount": output_tokens,
                "totalTokenCount": input_tokens + output_tokens,
                "promptTokensDetails": [{ "modality": "TEXT", "tokenCount": input_tokens }]
            },
            "modelVersion": ctx.model,
            "responseId": response_id
        })
    };

    if !ctx.streaming {
        return ok_json(&response(&reply.text, reply.tokens(), Some(finish_reason)));
    }

    let sse = ctx.query.is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse"));
    let chunks: Vec<&str> = if reply.chunks.is_empty() { vec![""] } else { reply.chunks.clone() };
    let last = chunks.len() - 1;
    let mut pieces = Vec::with_capacity(chunks.len() + 1);
    let mut tokens = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        tokens += word_count(chunk);
        let json = response(chunk, tokens, (i == last).then_some(finish_reason));
        pieces.push(Piece::Content(frame(sse, i == 0, &json)));
    }
    let error = json!({
        "error": { "code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE" }
    });
    let (content_type, malformed, error_event) = if sse {
        (
            "text/event-stream",
            Bytes::from_static(b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \r\n\r\n"),
            frame(true, false, &error),
        )
    } else {
        pieces.push(Piece::Frame(Bytes::from_static(b"]")));
        let mut error_element = frame(false, false, &error).to_vec();
        error_element.extend_from_slice(b"]");
        (
            "application/json; charset=UTF-8",
            Bytes::from_static(b",\r\n{\"candidates\": [{\"content\": {\"parts\": [{"),
            Bytes::from(error_element),
        )
    };
    let plan = StreamPlan { pieces, malformed, error_event: Some(error_event) };
    stream::respond(ctx.state, plan, ctx.behavior, content_type)
}

/// One streamed response: an SSE `data:` event (CRLF-separated, as the API sends them) or an element of
/// the streamed JSON array.
fn frame(sse: bool, first: bool, json: &Value) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    if sse {
        buf.extend_from_slice(b"data: ");
    } else {
        buf.extend_from_slice(if first { b"[".as_slice() } else { b",\r\n".as_slice() });
    }
    let _ = serde_json::to_writer(&mut buf, json);
    if sse {
        buf.extend_from_slice(b"\r\n\r\n");
    }
    Bytes::from(buf)
}
