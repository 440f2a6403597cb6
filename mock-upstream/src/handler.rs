//! The single entry point: records the request, resolves kind and endpoint, applies behaviours, checks
//! the key and dispatches to the provider module.

use axum::body::{Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::behavior::{Behavior, split_model};
use crate::provider::{self, Endpoint, Kind, RouteError};
use crate::{BEHAVIOR_HEADER, MockState, RecordedRequest, anthropic, elevenlabs, gemini, openai};

/// Largest request body the mock reads.
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// What a provider handler gets to build its answer.
pub(crate) struct Ctx<'a> {
    pub state: &'a MockState,
    pub kind: Kind,
    pub behavior: Behavior,
    /// Model name with any `@spec` removed (empty when the request names none).
    pub model: String,
    /// Parsed JSON body (`Null` for endpoints without one).
    pub body: Value,
    pub query: Option<&'a str>,
    pub key: Option<String>,
    pub streaming: bool,
}

/// Answers every request the mock receives.
pub(crate) async fn handle(State(state): State<MockState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let route = provider::parse_path(parts.uri.path());
    let body = match to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            let kind = match &route {
                Ok(route) => route.kind,
                Err(RouteError::BadVersion(kind)) => *kind,
                Err(RouteError::UnknownKind) => Kind::OpenAi(provider::Flavor::OpenAi),
            };
            return provider::error(kind, 413, "Request body too large or unreadable.", None);
        }
    };
    if state.recording() {
        state.record(record(&parts, &body));
    }
    let route = match route {
        Ok(route) => route,
        Err(RouteError::UnknownKind) => return provider::unknown_url(&parts.method, parts.uri.path()),
        Err(RouteError::BadVersion(kind)) => {
            return provider::not_found(kind, &parts.method, parts.uri.path());
        }
    };
    let kind = route.kind;
    let Some(endpoint) = Endpoint::resolve(kind, &parts.method, route.rest) else {
        return provider::not_found(kind, &parts.method, parts.uri.path());
    };

    let mut behavior = Behavior::default();
    if let Some(spec) = &route.spec {
        match Behavior::parse(spec) {
            Ok(b) => behavior = behavior.merge(b),
            Err(message) => return provider::error(kind, 400, &message, None),
        }
    }
    if let Some(value) = parts.headers.get(BEHAVIOR_HEADER) {
        let parsed = value
            .to_str()
            .map_err(|_| format!("invalid {BEHAVIOR_HEADER} header: not visible ASCII"))
            .and_then(Behavior::parse);
        match parsed {
            Ok(b) => behavior = behavior.merge(b),
            Err(message) => return provider::error(kind, 400, &message, None),
        }
    }

    let json = endpoint.takes_json().then(|| serde_json::from_slice::<Value>(&body));
    let parsed = json.as_ref().and_then(|r| r.as_ref().ok());
    let raw_model = endpoint
        .path_model()
        .or_else(|| parsed.and_then(|v| v.get(endpoint.model_field())).and_then(Value::as_str))
        .unwrap_or("");
    let (model, model_spec) = split_model(raw_model);
    if let Some(spec) = model_spec {
        match Behavior::parse(spec) {
            Ok(b) => behavior = behavior.merge(b),
            Err(message) => return provider::error(kind, 400, &message, None),
        }
    }
    let model = model.to_owned();
    let streaming = endpoint.is_streaming(parsed);
    let body_ok = !matches!(json, Some(Err(_)));

    if let Some(ms) = behavior.latency_ms {
        state.sleep(ms).await;
    }
    if behavior.stall && !(streaming && body_ok) {
        state.shutdown_requested().await;
        return provider::failure(kind, 503, &model);
    }

    let query = parts.uri.query();
    let key = provider::presented_key(kind, &parts.headers, query);
    if !behavior.stall {
        if state.key_accepted(key.as_deref()) == Some(false) {
            return match &key {
                Some(key) => provider::invalid_key(kind, key),
                None => provider::missing_key(kind),
            };
        }
        if kind == Kind::Anthropic && !parts.headers.contains_key("anthropic-version") {
            return provider::error(kind, 400, "anthropic-version: header is required", None);
        }
        if let Some(status) = behavior.fail {
            return provider::failure(kind, status, &model);
        }
    }

    let body = match json {
        Some(Ok(value)) => value,
        Some(Err(err)) => return provider::invalid_json(kind, &err),
        None => Value::Null,
    };
    if behavior.malformed && !streaming {
        return malformed(endpoint.is_audio());
    }

    let ctx = Ctx { state: &state, kind, behavior, model, body, query, key, streaming };
    match endpoint {
        Endpoint::OaModels => openai::list_models(&ctx),
        Endpoint::OaModel(_) => openai::get_model(&ctx),
        Endpoint::OaChat => openai::chat(&ctx),
        Endpoint::OaEmbeddings => openai::embeddings(&ctx),
        Endpoint::OaSpeech => openai::speech(&ctx),
        Endpoint::AnModels => anthropic::list_models(&ctx),
        Endpoint::AnModel(_) => anthropic::get_model(&ctx),
        Endpoint::AnMessages => anthropic::messages(&ctx),
        Endpoint::AnCountTokens => anthropic::count_tokens(&ctx),
        Endpoint::GeModels => gemini::list_models(&ctx),
        Endpoint::GeModel(_) => gemini::get_model(&ctx),
        Endpoint::GeAction { action, .. } => gemini::action(&ctx, action),
        Endpoint::ElModels => elevenlabs::list_models(),
        Endpoint::ElUser => elevenlabs::user(&ctx),
        Endpoint::ElVoices => elevenlabs::list_voices(),
        Endpoint::ElVoice(id) => elevenlabs::get_voice(&id),
        Endpoint::ElTts { .. } => elevenlabs::text_to_speech(&ctx),
    }
}

fn record(parts: &Parts, body: &Bytes) -> RecordedRequest {
    RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
    }
}

/// A 200 whose body is truncated JSON (with an audio content type for audio endpoints).
fn malformed(audio: bool) -> Response {
    let content_type = if audio { "audio/mpeg" } else { "application/json" };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        r#"{"id":"mock-malformed","object":"list","data":[{"truncated":"#,
    )
        .into_response()
}
