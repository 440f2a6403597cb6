//! Provider kinds, path routing, key checks and provider-shaped error bodies.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::text::{percent_decode, shorten_key};

/// Which OpenAI-compatible provider a path prefix stands for (they share one wire format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavor {
    OpenAi,
    DeepSeek,
    Grok,
    SiliconFlow,
    Moonshot,
    Compatible,
}

/// A provider wire format, chosen by the kind segment of the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    OpenAi(Flavor),
    Anthropic,
    Gemini,
    ElevenLabs,
}

impl Kind {
    fn from_segment(segment: &str) -> Option<Kind> {
        Some(match segment {
            "openai" => Kind::OpenAi(Flavor::OpenAi),
            "deepseek" => Kind::OpenAi(Flavor::DeepSeek),
            "grok" => Kind::OpenAi(Flavor::Grok),
            "siliconflow" => Kind::OpenAi(Flavor::SiliconFlow),
            "moonshot" => Kind::OpenAi(Flavor::Moonshot),
            "openai-compatible" => Kind::OpenAi(Flavor::Compatible),
            "anthropic" => Kind::Anthropic,
            "gemini" => Kind::Gemini,
            "elevenlabs" => Kind::ElevenLabs,
            _ => return None,
        })
    }

    fn accepts_version(self, version: &str) -> bool {
        match self {
            Kind::Gemini => version == "v1beta" || version == "v1",
            _ => version == "v1",
        }
    }
}

/// The API version segment of a kind's base URL.
pub(crate) fn version_segment(kind: &str) -> &'static str {
    if kind == "gemini" { "v1beta" } else { "v1" }
}

/// A request path split into its optional behaviour spec, kind and endpoint path.
pub(crate) struct Route<'a> {
    /// Decoded spec of a `/_b/<spec>/` prefix.
    pub spec: Option<String>,
    pub kind: Kind,
    /// The path after the version segment, without leading or trailing slashes.
    pub rest: &'a str,
}

/// Why a path did not resolve to a kind.
pub(crate) enum RouteError {
    /// No known kind segment.
    UnknownKind,
    /// A known kind with a wrong version segment.
    BadVersion(Kind),
}

/// Splits `/_b/<spec>/<kind>/<version>/<rest>`.
pub(crate) fn parse_path(path: &str) -> Result<Route<'_>, RouteError> {
    let mut p = path.strip_prefix('/').unwrap_or(path);
    let mut spec = None;
    if let Some(after) = p.strip_prefix("_b/") {
        let (s, r) = after.split_once('/').ok_or(RouteError::UnknownKind)?;
        spec = Some(percent_decode(s));
        p = r;
    }
    let (kind_segment, r) = p.split_once('/').unwrap_or((p, ""));
    let kind = Kind::from_segment(kind_segment).ok_or(RouteError::UnknownKind)?;
    let (version, rest) = r.split_once('/').unwrap_or((r, ""));
    if !kind.accepts_version(version) {
        return Err(RouteError::BadVersion(kind));
    }
    Ok(Route { spec, kind, rest: rest.trim_matches('/') })
}

/// A Gemini model action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GeminiAction {
    Generate,
    Stream,
    Embed,
    BatchEmbed,
    CountTokens,
}

/// An endpoint the mock serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    OaModels,
    OaModel(String),
    OaChat,
    OaEmbeddings,
    OaSpeech,
    AnModels,
    AnModel(String),
    AnMessages,
    AnCountTokens,
    GeModels,
    GeModel(String),
    GeAction { model: String, action: GeminiAction },
    ElModels,
    ElUser,
    ElVoices,
    ElVoice(String),
    ElTts { stream: bool },
}

impl Endpoint {
    /// Resolves `rest` (the path after the version) for a kind and method.
    pub fn resolve(kind: Kind, method: &Method, rest: &str) -> Option<Endpoint> {
        let get = method == Method::GET;
        let post = method == Method::POST;
        Some(match kind {
            Kind::OpenAi(_) => match rest {
                "models" if get => Endpoint::OaModels,
                "chat/completions" if post => Endpoint::OaChat,
                "embeddings" if post => Endpoint::OaEmbeddings,
                "audio/speech" if post => Endpoint::OaSpeech,
                _ => match rest.strip_prefix("models/") {
                    Some(id) if get && !id.is_empty() => Endpoint::OaModel(percent_decode(id)),
                    _ => return None,
                },
            },
            Kind::Anthropic => match rest {
                "models" if get => Endpoint::AnModels,
                "messages" if post => Endpoint::AnMessages,
                "messages/count_tokens" if post => Endpoint::AnCountTokens,
                _ => match rest.strip_prefix("models/") {
                    Some(id) if get && !id.is_empty() && !id.contains('/') => {
                        Endpoint::AnModel(percent_decode(id))
                    }
                    _ => return None,
                },
            },
            Kind::Gemini => {
                if rest == "models" && get {
                    return Some(Endpoint::GeModels);
                }
                let name = rest.strip_prefix("models/").filter(|n| !n.is_empty() && !n.contains('/'))?;
                if get {
                    Endpoint::GeModel(percent_decode(name))
                } else if post {
                    let (model, action) = name.rsplit_once(':')?;
                    let action = match action {
                        "generateContent" => GeminiAction::Generate,
                        "streamGenerateContent" => GeminiAction::Stream,
                        "embedContent" => GeminiAction::Embed,
                        "batchEmbedContents" => GeminiAction::BatchEmbed,
                        "countTokens" => GeminiAction::CountTokens,
                        _ => return None,
                    };
                    Endpoint::GeAction { model: percent_decode(model), action }
                } else {
                    return None;
                }
            }
            Kind::ElevenLabs => match rest {
                "models" if get => Endpoint::ElModels,
                "user" if get => Endpoint::ElUser,
                "voices" if get => Endpoint::ElVoices,
                _ => {
                    if let Some(tts) = rest.strip_prefix("text-to-speech/") {
                        let (voice, stream) = match tts.strip_suffix("/stream") {
                            Some(voice) => (voice, true),
                            None => (tts, false),
                        };
                        if !post || voice.is_empty() || voice.contains('/') {
                            return None;
                        }
                        Endpoint::ElTts { stream }
                    } else {
                        match rest.strip_prefix("voices/") {
                            Some(id) if get && !id.is_empty() && !id.contains('/') => {
                                Endpoint::ElVoice(percent_decode(id))
                            }
                            _ => return None,
                        }
                    }
                }
            },
        })
    }

    /// Whether the endpoint reads a JSON request body.
    pub fn takes_json(&self) -> bool {
        matches!(
            self,
            Endpoint::OaChat
                | Endpoint::OaEmbeddings
                | Endpoint::OaSpeech
                | Endpoint::AnMessages
                | Endpoint::AnCountTokens
                | Endpoint::GeAction { .. }
                | Endpoint::ElTts { .. }
        )
    }

    /// The model named in the path, if any.
    pub fn path_model(&self) -> Option<&str> {
        match self {
            Endpoint::OaModel(m) | Endpoint::AnModel(m) | Endpoint::GeModel(m) => Some(m),
            Endpoint::GeAction { model, .. } => Some(model),
            _ => None,
        }
    }

    /// The JSON body field that names the model.
    pub fn model_field(&self) -> &'static str {
        match self {
            Endpoint::ElTts { .. } => "model_id",
            _ => "model",
        }
    }

    /// Whether the endpoint answers with audio.
    pub fn is_audio(&self) -> bool {
        matches!(self, Endpoint::OaSpeech | Endpoint::ElTts { .. })
    }

    /// Whether this request gets a streamed answer.
    pub fn is_streaming(&self, body: Option<&Value>) -> bool {
        match self {
            Endpoint::OaChat | Endpoint::AnMessages => {
                body.and_then(|b| b.get("stream")).and_then(Value::as_bool).unwrap_or(false)
            }
            Endpoint::GeAction { action: GeminiAction::Stream, .. } => true,
            Endpoint::ElTts { stream } => *stream,
            _ => false,
        }
    }
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response()
}

/// A 200 JSON response.
pub(crate) fn ok_json(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A provider-shaped error. `code` overrides the provider's own classification: OpenAI `code`,
/// Anthropic `error.type`, Gemini `status`, ElevenLabs `detail.status`.
pub(crate) fn error(kind: Kind, status: u16, message: &str, code: Option<&str>) -> Response {
    let body = match kind {
        Kind::OpenAi(_) => json!({
            "error": {
                "message": message,
                "type": openai_type(status),
                "param": Value::Null,
                "code": code,
            }
        }),
        Kind::Anthropic => json!({
            "type": "error",
            "error": { "type": code.unwrap_or_else(|| anthropic_type(status)), "message": message },
        }),
        Kind::Gemini => json!({
            "error": { "code": status, "message": message, "status": code.unwrap_or_else(|| gemini_status(status)) }
        }),
        Kind::ElevenLabs => json!({
            "detail": { "status": code.unwrap_or_else(|| elevenlabs_status(status)), "message": message }
        }),
    };
    let mut response = json_response(status_code(status), &body);
    if status == 429 {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// An OpenAI-shaped error naming the offending parameter.
pub(crate) fn openai_param_error(status: u16, message: &str, param: &str, code: Option<&str>) -> Response {
    json_response(
        status_code(status),
        &json!({
            "error": { "message": message, "type": openai_type(status), "param": param, "code": code }
        }),
    )
}

fn openai_type(status: u16) -> &'static str {
    match status {
        429 => "requests",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        504 => "timeout_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn gemini_status(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    }
}

fn elevenlabs_status(status: u16) -> &'static str {
    match status {
        401 => "invalid_api_key",
        402 => "payment_required",
        403 => "forbidden",
        404 => "not_found",
        422 => "validation_error",
        429 => "too_many_concurrent_requests",
        503 => "system_busy",
        500..=599 => "internal_server_error",
        _ => "invalid_request",
    }
}

/// The error a provider gives for `fail=<status>`.
pub(crate) fn failure(kind: Kind, status: u16, model: &str) -> Response {
    let message = match kind {
        Kind::OpenAi(_) => match status {
            400 => "Invalid request.".to_owned(),
            401 => "Incorrect API key provided.".to_owned(),
            403 => "You are not allowed to access this resource.".to_owned(),
            404 => format!("The model `{model}` does not exist or you do not have access to it."),
            429 => format!(
                "Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, Requested 1. \
                 Please try again in 1s."
            ),
            500 => "The server had an error while processing your request. Sorry about that!".to_owned(),
            502 | 503 => "The engine is currently overloaded, please try again later.".to_owned(),
            _ => format!("Mock upstream failure (HTTP {status})."),
        },
        Kind::Anthropic => match status {
            429 => "Number of request tokens has exceeded your per-minute rate limit.".to_owned(),
            503 | 529 => "Overloaded".to_owned(),
            500 => "Internal server error".to_owned(),
            404 => format!("model: {model}"),
            _ => format!("Mock upstream failure (HTTP {status})."),
        },
        Kind::Gemini => match status {
            429 => "Resource has been exhausted (e.g. check quota).".to_owned(),
            500 => "An internal error has occurred. Please retry or report in \
                    https://developers.generativeai.google/guide/troubleshooting"
                .to_owned(),
            503 => "The model is overloaded. Please try again later.".to_owned(),
            404 => format!("models/{model} is not found for API version v1beta."),
            _ => format!("Mock upstream failure (HTTP {status})."),
        },
        Kind::ElevenLabs => match status {
            429 => "Too many concurrent requests. Please try again later.".to_owned(),
            503 => "We're experiencing heavy traffic, please try again later.".to_owned(),
            _ => format!("Mock upstream failure (HTTP {status})."),
        },
    };
    let code = match (kind, status) {
        (Kind::OpenAi(_), 401) => Some("invalid_api_key"),
        (Kind::OpenAi(_), 404) => Some("model_not_found"),
        (Kind::OpenAi(_), 429) => Some("rate_limit_exceeded"),
        _ => None,
    };
    error(kind, status, &message, code)
}

/// 404 for a path no kind serves.
pub(crate) fn unknown_url(method: &Method, path: &str) -> Response {
    error(Kind::OpenAi(Flavor::OpenAi), 404, &format!("Invalid URL ({method} {path})"), None)
}

/// 404 for a path a kind does not serve.
pub(crate) fn not_found(kind: Kind, method: &Method, path: &str) -> Response {
    match kind {
        Kind::OpenAi(_) => error(kind, 404, &format!("Invalid URL ({method} {path})"), None),
        Kind::Anthropic => error(kind, 404, "Not found", None),
        Kind::Gemini => {
            error(kind, 404, &format!("The requested URL {path} was not found on this server."), None)
        }
        Kind::ElevenLabs => error(kind, 404, "Not Found", None),
    }
}

/// 400 for a request body that is not JSON.
pub(crate) fn invalid_json(kind: Kind, err: &serde_json::Error) -> Response {
    let message = match kind {
        Kind::OpenAi(_) => format!(
            "We could not parse the JSON body of your request ({err}). (HINT: This likely means you aren't \
             using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent \
             was not valid JSON.)"
        ),
        Kind::Anthropic => format!("There was an error parsing the body of your request: {err}"),
        Kind::Gemini => format!("Invalid JSON payload received. {err}"),
        Kind::ElevenLabs => format!("JSON decode error: {err}"),
    };
    let code = match kind {
        Kind::ElevenLabs => Some("invalid_json"),
        _ => None,
    };
    error(kind, 400, &message, code)
}

/// The key a request presents, in the place its provider expects it.
pub(crate) fn presented_key(kind: Kind, headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header_str = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match kind {
        Kind::OpenAi(_) => header_str("authorization").map(|v| {
            let v = v.trim();
            match v.get(..7) {
                Some(prefix) if prefix.eq_ignore_ascii_case("bearer ") => v[7..].trim().to_owned(),
                _ => v.to_owned(),
            }
        }),
        Kind::Anthropic => header_str("x-api-key").map(str::to_owned),
        Kind::Gemini => header_str("x-goog-api-key")
            .map(str::to_owned)
            .or_else(|| query?.split('&').find_map(|pair| pair.strip_prefix("key=")).map(percent_decode)),
        Kind::ElevenLabs => header_str("xi-api-key").map(str::to_owned),
    }
    .filter(|k| !k.is_empty())
}

/// The 401 a provider gives for a missing key.
pub(crate) fn missing_key(kind: Kind) -> Response {
    match kind {
        Kind::OpenAi(_) => error(
            kind,
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header \
             using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). You can obtain an API key from \
             https://platform.openai.com/account/api-keys.",
            None,
        ),
        Kind::Anthropic => error(kind, 401, "x-api-key header is required", None),
        Kind::Gemini => error(
            kind,
            401,
            "Method doesn't allow unregistered callers (callers without established identity). Please use \
             API Key or other form of API consumer identity to call this API.",
            None,
        ),
        Kind::ElevenLabs => error(
            kind,
            401,
            "Neither authorization header nor xi-api-key received, please provide one.",
            Some("needs_authorization"),
        ),
    }
}

/// The 401 a provider gives for an unknown key, echoing its shortened form.
pub(crate) fn invalid_key(kind: Kind, key: &str) -> Response {
    let short = shorten_key(key);
    match kind {
        Kind::OpenAi(_) => error(
            kind,
            401,
            &format!(
                "Incorrect API key provided: {short}. You can find your API key at \
                 https://platform.openai.com/account/api-keys."
            ),
            Some("invalid_api_key"),
        ),
        Kind::Anthropic => error(kind, 401, &format!("invalid x-api-key: {short}"), None),
        Kind::Gemini => json_response(
            StatusCode::UNAUTHORIZED,
            &json!({
                "error": {
                    "code": 401,
                    "message": format!("API key not valid. Please pass a valid API key. (key: {short})"),
                    "status": "UNAUTHENTICATED",
                    "details": [{
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": { "service": "generativelanguage.googleapis.com" }
                    }]
                }
            }),
        ),
        Kind::ElevenLabs => error(kind, 401, &format!("Invalid API key: {short}"), Some("invalid_api_key")),
    }
}
