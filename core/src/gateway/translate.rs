//! The pure translation layer between the OpenAI Chat Completions wire format (what our clients
//! speak) and the two providers that speak something else: Anthropic Messages and Google Gemini
//! `generateContent`. Plus an incremental server-sent-events parser and per-provider stream
//! translators that turn an upstream event stream into OpenAI `chat.completion.chunk` values.
//!
//! Nothing here does I/O or keeps global state; every function takes JSON in and gives JSON out, and
//! no JSON input, however odd, makes it panic. Request problems become [`TranslateError::Invalid`]
//! (the client's fault, a 400), answers that do not match the provider's documented shape become
//! [`TranslateError::Malformed`] (a 502).
//!
//! Conventions worth knowing:
//! * System (and `developer`) messages, wherever they appear, are joined with a blank line into the
//!   provider's top-level system prompt.
//! * Consecutive messages of the same provider role are merged (tool results are user turns on both
//!   providers); in a merged Anthropic user turn, `tool_result` blocks come first, as Anthropic asks.
//! * Gemini function calls carry no ids, so ours are `call_<n>_<response id>`. When Gemini attaches a
//!   `thoughtSignature` to a call, it rides along in the id after `__thought__`, and comes back out into
//!   the `functionCall` part when the client sends the call back; a model turn whose calls have no
//!   signature gets Google's documented placeholder, so Gemini 3 accepts histories from elsewhere.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

/// `max_tokens` for Anthropic when the client set none (Anthropic requires one).
const DEFAULT_MAX_TOKENS: u64 = 4096;
/// The largest server-sent event the parser holds.
const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// OpenAI allows up to four stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;
/// Separates our tool call id from a Gemini thought signature carried inside it.
const THOUGHT_SEPARATOR: &str = "__thought__";
/// Google's documented stand-in for a thought signature on a function call that has none.
const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TranslateError {
    /// The client's request cannot be expressed for this provider; the message names the field (e.g.
    /// "messages[2].content[0]: image parts are not supported for gemini yet"). Becomes a 400
    /// invalid_request_error.
    #[error("{0}")]
    Invalid(String),
    /// The upstream answer is not what its API documents; becomes a 502.
    #[error("the provider's answer could not be read: {0}")]
    Malformed(String),
    /// The upstream stream reported an error (Anthropic `event: error`); the message is the provider's.
    #[error("{0}")]
    Upstream(String),
}

/// Token counts of one completion, as OpenAI reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

fn invalid(message: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(message.into())
}

fn malformed(message: impl Into<String>) -> TranslateError {
    TranslateError::Malformed(message.into())
}

/// At most 64 characters of a client-supplied string, for error messages.
fn short(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", s.get(..cut).unwrap_or(s)),
        None => s.to_string(),
    }
}

/// `usage` of an OpenAI response or final chunk, if present.
pub fn openai_usage(body: &Value) -> Option<Usage> {
    usage_of(body.get("usage")?)
}

/// The token counts of an OpenAI `usage` object, when it has any.
pub fn usage_of(usage: &Value) -> Option<Usage> {
    let usage = usage.as_object()?;
    let prompt = usage.get("prompt_tokens").and_then(Value::as_u64);
    let completion = usage.get("completion_tokens").and_then(Value::as_u64);
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some(Usage { prompt_tokens: prompt.unwrap_or(0), completion_tokens: completion.unwrap_or(0) })
}

/// What the gateway reads of an OpenAI-compatible chat answer it passes on: that `choices` is an
/// array (its items are skipped, not built), and the usage.
#[derive(serde::Deserialize)]
pub struct OpenAiAnswer {
    pub choices: Option<Vec<serde::de::IgnoredAny>>,
    pub usage: Option<Value>,
}

fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens.saturating_add(usage.completion_tokens),
    })
}

// ---------------------------------------------------------------------------------------------
// Requests: OpenAI -> a provider-neutral form -> Anthropic / Gemini
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Provider {
    Anthropic,
    Gemini,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }

    fn max_temperature(self) -> f64 {
        match self {
            Provider::Anthropic => 1.0,
            Provider::Gemini => 2.0,
        }
    }
}

struct ToolCall {
    id: String,
    name: String,
    args: Map<String, Value>,
}

enum Turn {
    User(Vec<String>),
    Assistant { texts: Vec<String>, calls: Vec<ToolCall> },
    ToolResult { index: usize, call_id: String, name: Option<String>, content: String },
}

struct ToolDef {
    name: String,
    description: Option<String>,
    parameters: Option<Map<String, Value>>,
}

enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

enum OutputFormat {
    Text,
    JsonObject,
    JsonSchema(Option<Value>),
}

/// An OpenAI chat request, validated, in the shape both providers are built from.
struct ChatRequest {
    system: Vec<String>,
    turns: Vec<Turn>,
    temperature: Option<Value>,
    top_p: Option<Value>,
    max_tokens: Option<u64>,
    stop: Vec<String>,
    stream: Option<bool>,
    tools: Vec<ToolDef>,
    tool_choice: Option<ToolChoice>,
    parallel_tool_calls: Option<bool>,
    format: OutputFormat,
}

/// A field of the request, treating `null` as absent.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn parse_request(req: &Value, p: Provider) -> Result<ChatRequest, TranslateError> {
    let obj = req.as_object().ok_or_else(|| invalid("the request body must be a JSON object"))?;

    if let Some(n) = field(obj, "n") {
        match n.as_u64() {
            Some(1) => {}
            Some(n) if n > 1 => {
                return Err(invalid(format!("n: n > 1 is not supported for {}", p.name())));
            }
            _ => return Err(invalid("n: must be a positive integer")),
        }
    }

    let temperature = match field(obj, "temperature") {
        None => None,
        Some(v) => {
            let t = v
                .as_f64()
                .filter(|_| v.is_number())
                .ok_or_else(|| invalid("temperature: must be a number"))?;
            let max = p.max_temperature();
            if !(0.0..=max).contains(&t) {
                return Err(invalid(format!("temperature: must be between 0 and {max} for {}", p.name())));
            }
            Some(v.clone())
        }
    };

    let top_p = match field(obj, "top_p") {
        None => None,
        Some(v) => {
            let t = v.as_f64().filter(|_| v.is_number()).ok_or_else(|| invalid("top_p: must be a number"))?;
            if !(0.0..=1.0).contains(&t) {
                return Err(invalid("top_p: must be between 0 and 1"));
            }
            Some(v.clone())
        }
    };

    let max_tokens = match field(obj, "max_completion_tokens")
        .map(|v| ("max_completion_tokens", v))
        .or_else(|| field(obj, "max_tokens").map(|v| ("max_tokens", v)))
    {
        None => None,
        Some((name, v)) => match v.as_u64() {
            Some(n) if n > 0 => Some(n),
            _ => return Err(invalid(format!("{name}: must be a positive integer"))),
        },
    };

    let stop = parse_stop(field(obj, "stop"))?;

    let stream = match field(obj, "stream") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid("stream: must be a boolean")),
    };

    let tools = parse_tools(field(obj, "tools"))?;
    let tool_choice = parse_tool_choice(field(obj, "tool_choice"), &tools)?;
    let parallel_tool_calls = match field(obj, "parallel_tool_calls") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid("parallel_tool_calls: must be a boolean")),
    };
    let format = parse_response_format(field(obj, "response_format"))?;

    let messages = match obj.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(invalid("messages: must not be empty")),
        None | Some(Value::Null) => return Err(invalid("messages: missing")),
        Some(_) => return Err(invalid("messages: must be an array")),
    };

    let mut system = Vec::new();
    let mut turns = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let message = message.as_object().ok_or_else(|| invalid(format!("{at}: must be an object")))?;
        let role = match message.get("role") {
            Some(Value::String(role)) => role.as_str(),
            _ => return Err(invalid(format!("{at}.role: missing or not a string"))),
        };
        match role {
            "system" | "developer" => {
                let text = parse_text_content(message.get("content"), &at, p, false)?.join("\n");
                if !text.is_empty() {
                    system.push(text);
                }
            }
            "user" => turns.push(Turn::User(parse_text_content(message.get("content"), &at, p, false)?)),
            "assistant" => {
                let texts = parse_text_content(message.get("content"), &at, p, true)?;
                let calls = parse_tool_calls(message.get("tool_calls"), &at)?;
                turns.push(Turn::Assistant { texts, calls });
            }
            "tool" => {
                let call_id = match message.get("tool_call_id") {
                    Some(Value::String(id)) => id.clone(),
                    _ => return Err(invalid(format!("{at}.tool_call_id: missing or not a string"))),
                };
                let content = parse_text_content(message.get("content"), &at, p, true)?.concat();
                let name = message.get("name").and_then(Value::as_str).map(str::to_string);
                turns.push(Turn::ToolResult { index: i, call_id, name, content });
            }
            "function" => {
                return Err(invalid(format!(
                    "{at}.role: \"function\" messages are deprecated and not supported; use tool messages"
                )));
            }
            other => return Err(invalid(format!("{at}.role: unknown role \"{}\"", short(other)))),
        }
    }

    Ok(ChatRequest {
        system,
        turns,
        temperature,
        top_p,
        max_tokens,
        stop,
        stream,
        tools,
        tool_choice,
        parallel_tool_calls,
        format,
    })
}

/// The text pieces of a message's `content`: a string, or an array of `{type: "text"}` parts.
fn parse_text_content(
    content: Option<&Value>,
    at: &str,
    p: Provider,
    may_be_absent: bool,
) -> Result<Vec<String>, TranslateError> {
    match content {
        None | Some(Value::Null) if may_be_absent => Ok(Vec::new()),
        None | Some(Value::Null) => Err(invalid(format!("{at}.content: missing"))),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let kind = match part.get("type") {
                    Some(Value::String(kind)) => kind.as_str(),
                    _ if !part.is_object() => {
                        return Err(invalid(format!("{at}.content[{j}]: must be an object")));
                    }
                    _ => return Err(invalid(format!("{at}.content[{j}].type: missing or not a string"))),
                };
                match kind {
                    "text" => match part.get("text") {
                        Some(Value::String(text)) => texts.push(text.clone()),
                        _ => return Err(invalid(format!("{at}.content[{j}].text: must be a string"))),
                    },
                    "image_url" | "image" | "input_image" => {
                        return Err(invalid(format!(
                            "{at}.content[{j}]: image parts are not supported for {} yet",
                            p.name()
                        )));
                    }
                    other => {
                        return Err(invalid(format!(
                            "{at}.content[{j}].type: \"{}\" parts are not supported for {}; only text parts are",
                            short(other),
                            p.name()
                        )));
                    }
                }
            }
            Ok(texts)
        }
        Some(_) => Err(invalid(format!("{at}.content: must be a string or an array of text parts"))),
    }
}

fn parse_tool_calls(value: Option<&Value>, at: &str) -> Result<Vec<ToolCall>, TranslateError> {
    let calls = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(invalid(format!("{at}.tool_calls: must be an array"))),
    };
    let mut out = Vec::with_capacity(calls.len());
    for (j, call) in calls.iter().enumerate() {
        let at = format!("{at}.tool_calls[{j}]");
        let call = call.as_object().ok_or_else(|| invalid(format!("{at}: must be an object")))?;
        if let Some(kind) = field(call, "type")
            && kind.as_str() != Some("function")
        {
            return Err(invalid(format!("{at}.type: only function tool calls are supported")));
        }
        let id = match call.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(invalid(format!("{at}.id: missing or not a string"))),
        };
        let function = call
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(format!("{at}.function: missing or not an object")))?;
        let name = match function.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(invalid(format!("{at}.function.name: missing or not a string"))),
        };
        let not_object =
            || invalid(format!("{at}.function.arguments: must be a JSON object encoded as a string"));
        let args = match function.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::String(s)) if s.trim().is_empty() => Map::new(),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Object(args)) => args,
                _ => return Err(not_object()),
            },
            Some(Value::Object(args)) => args.clone(),
            Some(_) => return Err(not_object()),
        };
        out.push(ToolCall { id, name, args });
    }
    Ok(out)
}

fn parse_stop(value: Option<&Value>) -> Result<Vec<String>, TranslateError> {
    let shape =
        || invalid(format!("stop: must be a string or an array of up to {MAX_STOP_SEQUENCES} strings"));
    match value {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(if s.is_empty() { Vec::new() } else { vec![s.clone()] }),
        Some(Value::Array(items)) => {
            if items.len() > MAX_STOP_SEQUENCES {
                return Err(shape());
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) if s.is_empty() => {}
                    Value::String(s) => out.push(s.clone()),
                    _ => return Err(shape()),
                }
            }
            Ok(out)
        }
        Some(_) => Err(shape()),
    }
}

fn parse_tools(value: Option<&Value>) -> Result<Vec<ToolDef>, TranslateError> {
    let tools = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(invalid("tools: must be an array")),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        let tool = tool.as_object().ok_or_else(|| invalid(format!("{at}: must be an object")))?;
        if let Some(kind) = field(tool, "type")
            && kind.as_str() != Some("function")
        {
            return Err(invalid(format!("{at}.type: only function tools are supported")));
        }
        let function = tool
            .get("function")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(format!("{at}.function: missing or not an object")))?;
        let name = match function.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => return Err(invalid(format!("{at}.function.name: missing or not a string"))),
        };
        let description = match field(function, "description") {
            None => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => return Err(invalid(format!("{at}.function.description: must be a string"))),
        };
        let parameters = match field(function, "parameters") {
            None => None,
            Some(Value::Object(schema)) => Some(schema.clone()),
            Some(_) => {
                return Err(invalid(format!("{at}.function.parameters: must be a JSON Schema object")));
            }
        };
        out.push(ToolDef { name, description, parameters });
    }
    Ok(out)
}

fn parse_tool_choice(value: Option<&Value>, tools: &[ToolDef]) -> Result<Option<ToolChoice>, TranslateError> {
    let shape = || {
        invalid(
            "tool_choice: must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
        )
    };
    let choice = match value {
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            _ => return Err(shape()),
        },
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            let name = o
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("tool_choice.function.name: missing or not a string"))?;
            if !tools.iter().any(|t| t.name == name) {
                return Err(invalid(format!(
                    "tool_choice.function.name: there is no tool named \"{}\" in tools",
                    short(name)
                )));
            }
            ToolChoice::Named(name.to_string())
        }
        Some(_) => return Err(shape()),
    };
    Ok(Some(choice))
}

fn parse_response_format(value: Option<&Value>) -> Result<OutputFormat, TranslateError> {
    let Some(value) = value else { return Ok(OutputFormat::Text) };
    match value.get("type").and_then(Value::as_str) {
        Some("text") => Ok(OutputFormat::Text),
        Some("json_object") => Ok(OutputFormat::JsonObject),
        Some("json_schema") => Ok(OutputFormat::JsonSchema(
            value.get("json_schema").and_then(|s| s.get("schema")).filter(|s| s.is_object()).cloned(),
        )),
        _ => Err(invalid("response_format.type: must be \"text\", \"json_object\" or \"json_schema\"")),
    }
}

/// Appends `items` to the last entry when it has the same role, else starts a new entry.
fn push_merged(list: &mut Vec<(&'static str, Vec<Value>)>, role: &'static str, items: Vec<Value>) {
    if items.is_empty() {
        return;
    }
    match list.last_mut() {
        Some((last, existing)) if *last == role => existing.extend(items),
        _ => list.push((role, items)),
    }
}

/// Splits a tool call id we made from a Gemini call into our id and the thought signature.
fn split_signature(id: &str) -> (&str, Option<&str>) {
    match id.split_once(THOUGHT_SEPARATOR) {
        Some((base, signature)) if !signature.is_empty() => (base, Some(signature)),
        _ => (id, None),
    }
}

/// A tool call id Anthropic accepts (`^[a-zA-Z0-9_-]+$`), without any Gemini thought signature.
fn anthropic_tool_id(id: &str) -> String {
    let id: String = split_signature(id)
        .0
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    if id.is_empty() { "toolu_unnamed".to_string() } else { id }
}

/// OpenAI chat request body -> Anthropic Messages body for `model` (stream flag copied).
pub fn to_anthropic(req: &Value, model: &str) -> Result<Value, TranslateError> {
    let p = Provider::Anthropic;
    let r = parse_request(req, p)?;
    if !matches!(r.format, OutputFormat::Text) {
        return Err(invalid("response_format: JSON output modes are not supported for anthropic"));
    }

    let text_blocks = |texts: &[String]| -> Vec<Value> {
        texts.iter().filter(|t| !t.is_empty()).map(|t| json!({"type": "text", "text": t})).collect()
    };
    let mut messages: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for turn in &r.turns {
        match turn {
            Turn::User(texts) => push_merged(&mut messages, "user", text_blocks(texts)),
            Turn::Assistant { texts, calls } => {
                let mut blocks = text_blocks(texts);
                for call in calls {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": anthropic_tool_id(&call.id),
                        "name": call.name,
                        "input": call.args,
                    }));
                }
                push_merged(&mut messages, "assistant", blocks);
            }
            Turn::ToolResult { call_id, content, .. } => {
                let mut block = Map::new();
                block.insert("type".into(), "tool_result".into());
                block.insert("tool_use_id".into(), anthropic_tool_id(call_id).into());
                if !content.is_empty() {
                    block.insert("content".into(), content.clone().into());
                }
                push_merged(&mut messages, "user", vec![Value::Object(block)]);
            }
        }
    }
    // Anthropic wants a user turn's tool results before anything else in it (the sort is stable).
    for (role, blocks) in &mut messages {
        if *role == "user" {
            blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
        }
    }
    // A final assistant turn is a prefill, which Anthropic rejects with trailing whitespace.
    if let Some((role, blocks)) = messages.last_mut()
        && *role == "assistant"
    {
        if let Some(Value::Object(last)) = blocks.last_mut()
            && let Some(Value::String(text)) = last.get_mut("text")
        {
            let trimmed_len = text.trim_end().len();
            text.truncate(trimmed_len);
            if text.is_empty() {
                blocks.pop();
            }
        }
        if blocks.is_empty() {
            messages.pop();
        }
    }
    if messages.is_empty() {
        return Err(invalid("messages: no user or assistant message has any content"));
    }

    let mut body = Map::new();
    body.insert("model".into(), model.into());
    body.insert("max_tokens".into(), r.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).into());
    if !r.system.is_empty() {
        body.insert("system".into(), r.system.join("\n\n").into());
    }
    body.insert(
        "messages".into(),
        messages.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect(),
    );
    if let Some(t) = r.temperature {
        body.insert("temperature".into(), t);
    }
    if let Some(t) = r.top_p {
        body.insert("top_p".into(), t);
    }
    if !r.stop.is_empty() {
        body.insert("stop_sequences".into(), r.stop.into());
    }
    if let Some(stream) = r.stream {
        body.insert("stream".into(), stream.into());
    }
    if !r.tools.is_empty() {
        let tools: Vec<Value> = r
            .tools
            .iter()
            .map(|t| {
                let mut schema = t.parameters.clone().unwrap_or_default();
                if !schema.contains_key("type") {
                    schema.insert("type".into(), "object".into());
                }
                let mut tool = Map::new();
                tool.insert("name".into(), t.name.clone().into());
                if let Some(d) = &t.description {
                    tool.insert("description".into(), d.clone().into());
                }
                tool.insert("input_schema".into(), Value::Object(schema));
                Value::Object(tool)
            })
            .collect();
        body.insert("tools".into(), tools.into());

        let no_parallel = r.parallel_tool_calls == Some(false);
        let mut choice = match (&r.tool_choice, no_parallel) {
            (None, false) => None,
            (None | Some(ToolChoice::Auto), _) => Some(json!({"type": "auto"})),
            (Some(ToolChoice::None), _) => Some(json!({"type": "none"})),
            (Some(ToolChoice::Required), _) => Some(json!({"type": "any"})),
            (Some(ToolChoice::Named(name)), _) => Some(json!({"type": "tool", "name": name})),
        };
        if no_parallel
            && let Some(Value::Object(c)) = &mut choice
            && c.get("type").and_then(Value::as_str) != Some("none")
        {
            c.insert("disable_parallel_tool_use".into(), true.into());
        }
        if let Some(choice) = choice {
            body.insert("tool_choice".into(), choice);
        }
    }
    Ok(Value::Object(body))
}

/// OpenAI chat request body -> Gemini generateContent body (model goes in the URL, not the body).
pub fn to_gemini(req: &Value) -> Result<Value, TranslateError> {
    let r = parse_request(req, Provider::Gemini)?;

    let text_parts = |texts: &[String]| -> Vec<Value> {
        texts.iter().filter(|t| !t.is_empty()).map(|t| json!({"text": t})).collect()
    };
    // Gemini matches a function response to its call by name; OpenAI by id.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for turn in &r.turns {
        match turn {
            Turn::User(texts) => push_merged(&mut contents, "user", text_parts(texts)),
            Turn::Assistant { texts, calls } => {
                let mut parts = text_parts(texts);
                for call in calls {
                    call_names.insert(&call.id, &call.name);
                    let mut part = Map::new();
                    part.insert("functionCall".into(), json!({"name": call.name, "args": call.args}));
                    if let (_, Some(signature)) = split_signature(&call.id) {
                        part.insert("thoughtSignature".into(), signature.into());
                    }
                    parts.push(Value::Object(part));
                }
                push_merged(&mut contents, "model", parts);
            }
            Turn::ToolResult { index, call_id, name, content } => {
                let function = call_names.get(call_id.as_str()).copied().or(name.as_deref()).ok_or_else(|| {
                    invalid(format!(
                        "messages[{index}].tool_call_id: no earlier assistant message has a tool call with this id"
                    ))
                })?;
                let response = match serde_json::from_str::<Value>(content) {
                    Ok(Value::Object(object)) => Value::Object(object),
                    _ => json!({"output": content}),
                };
                push_merged(
                    &mut contents,
                    "user",
                    vec![json!({"functionResponse": {"name": function, "response": response}})],
                );
            }
        }
    }
    if contents.is_empty() {
        return Err(invalid("messages: no user or assistant message has any content"));
    }
    // Gemini 3 rejects a model turn whose function calls carry no thought signature.
    for (role, parts) in &mut contents {
        let has_call = parts.iter().any(|p| p.get("functionCall").is_some());
        let has_signature =
            parts.iter().any(|p| p.get("functionCall").is_some() && p.get("thoughtSignature").is_some());
        if *role == "model"
            && has_call
            && !has_signature
            && let Some(Value::Object(first)) = parts.iter_mut().find(|p| p.get("functionCall").is_some())
        {
            first.insert("thoughtSignature".into(), PLACEHOLDER_SIGNATURE.into());
        }
    }

    let mut body = Map::new();
    body.insert(
        "contents".into(),
        contents.into_iter().map(|(role, parts)| json!({"role": role, "parts": parts})).collect(),
    );
    if !r.system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": [{"text": r.system.join("\n\n")}]}));
    }
    let mut config = Map::new();
    if let Some(t) = r.temperature {
        config.insert("temperature".into(), t);
    }
    if let Some(t) = r.top_p {
        config.insert("topP".into(), t);
    }
    if let Some(n) = r.max_tokens {
        config.insert("maxOutputTokens".into(), n.into());
    }
    if !r.stop.is_empty() {
        config.insert("stopSequences".into(), r.stop.into());
    }
    match r.format {
        OutputFormat::Text => {}
        OutputFormat::JsonObject => {
            config.insert("responseMimeType".into(), "application/json".into());
        }
        OutputFormat::JsonSchema(schema) => {
            config.insert("responseMimeType".into(), "application/json".into());
            if let Some(schema) = schema {
                config.insert("responseJsonSchema".into(), schema);
            }
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if !r.tools.is_empty() {
        let declarations: Vec<Value> = r
            .tools
            .iter()
            .map(|t| {
                let mut declaration = Map::new();
                declaration.insert("name".into(), t.name.clone().into());
                if let Some(d) = &t.description {
                    declaration.insert("description".into(), d.clone().into());
                }
                if let Some(schema) = &t.parameters {
                    // Full JSON Schema (additionalProperties and all), unlike `parameters`.
                    declaration.insert("parametersJsonSchema".into(), Value::Object(schema.clone()));
                }
                Value::Object(declaration)
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
        let calling = match &r.tool_choice {
            None => None,
            Some(ToolChoice::None) => Some(json!({"mode": "NONE"})),
            Some(ToolChoice::Auto) => Some(json!({"mode": "AUTO"})),
            Some(ToolChoice::Required) => Some(json!({"mode": "ANY"})),
            Some(ToolChoice::Named(name)) => Some(json!({"mode": "ANY", "allowedFunctionNames": [name]})),
        };
        if let Some(calling) = calling {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": calling}));
        }
    }
    Ok(Value::Object(body))
}

// ---------------------------------------------------------------------------------------------
// Responses: Anthropic / Gemini -> OpenAI chat.completion
// ---------------------------------------------------------------------------------------------

fn tool_call_json(id: &str, name: &str, args: &Value) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}})
}

fn completion_json(
    id: &str,
    model: &str,
    created: i64,
    text: String,
    calls: Vec<Value>,
    finish: &str,
    usage: Usage,
) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), "assistant".into());
    let content = if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    message.insert("content".into(), content);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), calls.into());
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage_json(usage),
    })
}

/// The message of an error body (`{"error": {"message": ...}}`, `{"error": "..."}`, ...).
fn error_message(body: &Value) -> String {
    let error = body.get("error").unwrap_or(body);
    match error {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(m)) => m.clone(),
            _ => error.to_string(),
        },
        other => other.to_string(),
    }
}

fn anthropic_finish(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and whatever comes next.
        _ => "stop",
    }
}

/// Prompt and completion counts of an Anthropic `usage` object (cached input counts as prompt).
fn anthropic_usage(usage: &Value) -> (Option<u64>, Option<u64>) {
    let count = |name: &str| usage.get(name).and_then(Value::as_u64);
    let prompt = count("input_tokens").map(|input| {
        input
            .saturating_add(count("cache_creation_input_tokens").unwrap_or(0))
            .saturating_add(count("cache_read_input_tokens").unwrap_or(0))
    });
    (prompt, count("output_tokens"))
}

/// Anthropic response -> OpenAI `chat.completion` with the given id, `model` (the name the client
/// asked for), created (unix s).
pub fn from_anthropic(
    resp: &Value,
    id: &str,
    model: &str,
    created: i64,
) -> Result<(Value, Usage), TranslateError> {
    let obj = resp.as_object().ok_or_else(|| malformed("the body is not a JSON object"))?;
    if obj.get("type").and_then(Value::as_str) == Some("error") || field(obj, "error").is_some() {
        return Err(TranslateError::Upstream(error_message(resp)));
    }
    let content = obj
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("`content` is missing or not an array"))?;
    let mut text = String::new();
    let mut calls = Vec::new();
    for (i, block) in content.iter().enumerate() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => match block.get("text") {
                Some(Value::String(t)) => text.push_str(t),
                _ => return Err(malformed(format!("content[{i}].text is not a string"))),
            },
            Some("tool_use") => {
                let (Some(call_id), Some(name)) =
                    (block.get("id").and_then(Value::as_str), block.get("name").and_then(Value::as_str))
                else {
                    return Err(malformed(format!("content[{i}] is a tool_use without id or name")));
                };
                let input = block.get("input").filter(|i| !i.is_null()).cloned().unwrap_or_else(|| json!({}));
                calls.push(tool_call_json(call_id, name, &input));
            }
            // thinking, redacted_thinking, server tool blocks: nothing an OpenAI client can use.
            Some(_) => {}
            None => return Err(malformed(format!("content[{i}] has no type"))),
        }
    }
    let finish = match obj.get("stop_reason").and_then(Value::as_str) {
        Some(reason) => anthropic_finish(reason),
        None if !calls.is_empty() => "tool_calls",
        None => "stop",
    };
    let (prompt, completion) = obj.get("usage").map(anthropic_usage).unwrap_or_default();
    let usage = Usage { prompt_tokens: prompt.unwrap_or(0), completion_tokens: completion.unwrap_or(0) };
    Ok((completion_json(id, model, created, text, calls, finish, usage), usage))
}

fn gemini_finish(reason: &str) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        // STOP, OTHER, LANGUAGE, MALFORMED_FUNCTION_CALL and whatever comes next.
        _ => "stop",
    }
}

/// Usage of a Gemini `usageMetadata` object; thinking tokens count as completion, as OpenAI's do.
fn gemini_usage(meta: Option<&Value>) -> Option<Usage> {
    let meta = meta?.as_object()?;
    let count = |name: &str| meta.get(name).and_then(Value::as_u64);
    let (prompt, candidates, thoughts) =
        (count("promptTokenCount"), count("candidatesTokenCount"), count("thoughtsTokenCount"));
    if prompt.is_none() && candidates.is_none() && thoughts.is_none() {
        return None;
    }
    Some(Usage {
        prompt_tokens: prompt.unwrap_or(0),
        completion_tokens: candidates.unwrap_or(0).saturating_add(thoughts.unwrap_or(0)),
    })
}

/// Whether a Gemini answer says the prompt itself was blocked.
fn gemini_prompt_blocked(resp: &Value) -> bool {
    resp.get("promptFeedback").and_then(|f| f.get("blockReason")).is_some_and(|r| !r.is_null())
}

enum GeminiPiece {
    Text(String),
    Call { name: String, args: Value, signature: Option<String> },
}

/// The text and function calls of a Gemini candidate, without thought summaries.
fn gemini_pieces(candidate: &Value) -> Result<Vec<GeminiPiece>, TranslateError> {
    let parts = match candidate.get("content").and_then(|c| c.get("parts")) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(malformed("candidates[0].content.parts is not an array")),
    };
    let mut pieces = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(text) = field_of(part, "text") {
            let text = text.as_str().ok_or_else(|| malformed(format!("parts[{i}].text is not a string")))?;
            pieces.push(GeminiPiece::Text(text.to_string()));
        } else if let Some(call) = field_of(part, "functionCall") {
            let name = call
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(format!("parts[{i}].functionCall has no name")))?;
            let args = match call.get("args") {
                None | Some(Value::Null) => json!({}),
                Some(args @ Value::Object(_)) => args.clone(),
                Some(_) => return Err(malformed(format!("parts[{i}].functionCall.args is not an object"))),
            };
            let signature = part.get("thoughtSignature").and_then(Value::as_str).map(str::to_string);
            pieces.push(GeminiPiece::Call { name: name.to_string(), args, signature });
        }
        // inlineData, executableCode and the like: nothing an OpenAI chat client can show.
    }
    Ok(pieces)
}

/// A non-null field of any JSON value.
fn field_of<'a>(value: &'a Value, name: &str) -> Option<&'a Value> {
    value.get(name).filter(|v| !v.is_null())
}

/// Our id for the `n`th function call of response `response_id`, carrying Gemini's thought signature.
fn gemini_call_id(response_id: &str, n: usize, signature: Option<&str>) -> String {
    match signature {
        Some(signature) if !signature.is_empty() => {
            format!("call_{n}_{response_id}{THOUGHT_SEPARATOR}{signature}")
        }
        _ => format!("call_{n}_{response_id}"),
    }
}

/// Gemini generateContent response -> OpenAI `chat.completion` (same conventions as
/// [`from_anthropic`]).
pub fn from_gemini(
    resp: &Value,
    id: &str,
    model: &str,
    created: i64,
) -> Result<(Value, Usage), TranslateError> {
    let obj = resp.as_object().ok_or_else(|| malformed("the body is not a JSON object"))?;
    if field(obj, "error").is_some() {
        return Err(TranslateError::Upstream(error_message(resp)));
    }
    let usage = gemini_usage(obj.get("usageMetadata")).unwrap_or_default();
    let Some(candidate) = obj.get("candidates").and_then(Value::as_array).and_then(|c| c.first()) else {
        if gemini_prompt_blocked(resp) {
            return Ok((
                completion_json(id, model, created, String::new(), Vec::new(), "content_filter", usage),
                usage,
            ));
        }
        return Err(malformed("`candidates` is missing or empty"));
    };
    let mut text = String::new();
    let mut calls = Vec::new();
    for piece in gemini_pieces(candidate)? {
        match piece {
            GeminiPiece::Text(t) => text.push_str(&t),
            GeminiPiece::Call { name, args, signature } => {
                let call_id = gemini_call_id(id, calls.len(), signature.as_deref());
                calls.push(tool_call_json(&call_id, &name, &args));
            }
        }
    }
    let mut finish =
        candidate.get("finishReason").and_then(Value::as_str).map(gemini_finish).unwrap_or("stop");
    if finish == "stop" && !calls.is_empty() {
        finish = "tool_calls";
    }
    Ok((completion_json(id, model, created, text, calls, finish, usage), usage))
}

// ---------------------------------------------------------------------------------------------
// Server-sent events
// ---------------------------------------------------------------------------------------------

/// One server-sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if the event had a non-empty one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Incremental SSE parser: feed bytes as they arrive (any split, including inside a UTF-8 char or a
/// CRLF), get complete events. Handles `\n\n`, `\r\n\r\n` and `\r\r` separators, multi-line `data:`,
/// comments (`:` lines), the optional space after the colon, and ignores `id:`/`retry:`. Bounded: an
/// event larger than 1 MiB yields Err(Malformed).
#[derive(Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended (decoded only once whole, so split UTF-8 is fine).
    line: Vec<u8>,
    /// The last byte seen was a CR, so a LF right after it belongs to the same line end.
    after_cr: bool,
    /// At least one line has been read (a byte-order mark is stripped from the first).
    seen_line: bool,
    /// The pending event's data lines, each followed by `\n`.
    data: String,
    /// The pending event's type.
    event: String,
}

fn too_large() -> TranslateError {
    malformed(format!("a server-sent event is larger than {MAX_EVENT_BYTES} bytes"))
}

impl SseParser {
    /// Parses `bytes`, returning the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, TranslateError> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while let Some((&first, tail)) = rest.split_first() {
            if self.after_cr {
                self.after_cr = false;
                if first == b'\n' {
                    rest = tail;
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    let (line, tail) = rest.split_at(end);
                    self.extend_line(line)?;
                    if let Some((&separator, after)) = tail.split_first() {
                        self.after_cr = separator == b'\r';
                        rest = after;
                    }
                    self.end_line(&mut events)?;
                }
                None => {
                    self.extend_line(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(events)
    }

    /// Ends the stream: leftover incomplete data at end of stream is an error only if non-blank.
    pub fn finish(&mut self) -> Result<Vec<SseEvent>, TranslateError> {
        let line = std::mem::take(&mut self.line);
        let decoded = String::from_utf8_lossy(&line);
        let rest = decoded.trim_start_matches('\u{feff}').trim();
        let blank = self.data.is_empty() && (rest.is_empty() || rest.starts_with(':'));
        *self = SseParser::default();
        if blank { Ok(Vec::new()) } else { Err(malformed("the stream ended in the middle of an event")) }
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), TranslateError> {
        if self.line.len() + bytes.len() + self.data.len() > MAX_EVENT_BYTES {
            *self = SseParser::default();
            return Err(too_large());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, events: &mut Vec<SseEvent>) -> Result<(), TranslateError> {
        let raw = std::mem::take(&mut self.line);
        let decoded = String::from_utf8_lossy(&raw);
        let mut line: &str = &decoded;
        if !self.seen_line {
            self.seen_line = true;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            if self.data.is_empty() {
                self.event.clear();
            } else {
                let mut data = std::mem::take(&mut self.data);
                data.pop();
                let event = std::mem::take(&mut self.event);
                events.push(SseEvent { event: (!event.is_empty()).then_some(event), data });
            }
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match name {
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_BYTES {
                    *self = SseParser::default();
                    return Err(too_large());
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            // id, retry and unknown fields.
            _ => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Streams: upstream events -> OpenAI chat.completion.chunk values
// ---------------------------------------------------------------------------------------------

/// Turns an upstream stream into OpenAI `chat.completion.chunk` JSON values (the caller writes
/// `data: <json>\n\n` and the final `data: [DONE]`).
pub trait ChunkTranslator: Send {
    /// Chunks to send for one upstream event (possibly none, e.g. for `ping`).
    fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<Value>, TranslateError>;
    /// True once the upstream has signalled a complete end (Anthropic message_stop; Gemini a
    /// candidate with finishReason; OpenAI `[DONE]`).
    fn finished(&self) -> bool;
    /// Usage seen so far.
    fn usage(&self) -> Option<Usage>;
    /// The assistant text produced so far (for continuing a cut answer elsewhere).
    fn text_so_far(&self) -> &str;
}

/// The event's data as JSON, or None for an event without data.
fn event_json(ev: &SseEvent) -> Result<Option<Value>, TranslateError> {
    if ev.data.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&ev.data)
        .map(Some)
        .map_err(|e| malformed(format!("an event's data is not JSON ({e})")))
}

/// What every translating stream keeps: our identity, the text so far, usage, and where it is.
struct StreamState {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    finished: bool,
    role_sent: bool,
    finish_sent: bool,
    usage: Option<Usage>,
    text: String,
}

impl StreamState {
    fn new(id: &str, model: &str, created: i64, include_usage: bool) -> StreamState {
        StreamState {
            id: id.to_string(),
            model: model.to_string(),
            created,
            include_usage,
            finished: false,
            role_sent: false,
            finish_sent: false,
            usage: None,
            text: String::new(),
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    }

    fn role(&mut self, out: &mut Vec<Value>) {
        if !self.role_sent {
            self.role_sent = true;
            out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn text(&mut self, text: &str, out: &mut Vec<Value>) {
        if text.is_empty() {
            return;
        }
        self.role(out);
        self.text.push_str(text);
        out.push(self.chunk(json!({"content": text}), None));
    }

    fn tool_delta(&mut self, call: Value, out: &mut Vec<Value>) {
        self.role(out);
        out.push(self.chunk(json!({"tool_calls": [call]}), None));
    }

    fn finish(&mut self, reason: &str, out: &mut Vec<Value>) {
        if !self.finish_sent {
            self.role(out);
            self.finish_sent = true;
            out.push(self.chunk(json!({}), Some(reason)));
        }
    }

    /// Marks the end, adding the usage chunk when the client asked for one.
    fn end(&mut self, out: &mut Vec<Value>) {
        self.finished = true;
        if self.include_usage {
            out.push(json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_json(self.usage.unwrap_or_default()),
            }));
        }
    }
}

struct OpenAiStream {
    id: String,
    model: String,
    created: i64,
    finished: bool,
    usage: Option<Usage>,
    text: String,
}

impl ChunkTranslator for OpenAiStream {
    fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<Value>, TranslateError> {
        if ev.data.trim() == "[DONE]" {
            self.finished = true;
            return Ok(Vec::new());
        }
        if self.finished {
            return Ok(Vec::new());
        }
        let Some(mut chunk) = event_json(ev)? else { return Ok(Vec::new()) };
        let Value::Object(obj) = &mut chunk else {
            return Err(malformed("a stream chunk is not a JSON object"));
        };
        if field(obj, "error").is_some() {
            return Err(TranslateError::Upstream(error_message(&chunk)));
        }
        obj.insert("id".into(), self.id.clone().into());
        obj.insert("model".into(), self.model.clone().into());
        obj.insert("created".into(), self.created.into());
        if let Some(choices) = obj.get("choices").and_then(Value::as_array) {
            for choice in choices.iter().filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
            {
                if let Some(text) = choice.get("delta").and_then(|d| d.get("content")).and_then(Value::as_str)
                {
                    self.text.push_str(text);
                }
            }
        }
        if let Some(usage) = openai_usage(&chunk) {
            self.usage = Some(usage);
        }
        Ok(vec![chunk])
    }

    fn finished(&self) -> bool {
        self.finished
    }

    fn usage(&self) -> Option<Usage> {
        self.usage
    }

    fn text_so_far(&self) -> &str {
        &self.text
    }
}

/// OpenAI-compatible upstreams: chunks pass through unchanged except `id`, `model` and `created` are
/// rewritten to ours; `[DONE]` sets finished and yields nothing; a `data:` that is not JSON is
/// Err(Malformed); an `error` object in a chunk is Err(Upstream(message)).
pub fn openai_stream(id: &str, model: &str, created: i64) -> Box<dyn ChunkTranslator> {
    Box::new(OpenAiStream {
        id: id.to_string(),
        model: model.to_string(),
        created,
        finished: false,
        usage: None,
        text: String::new(),
    })
}

struct AnthropicStream {
    state: StreamState,
    /// Anthropic content block index -> OpenAI tool call index.
    tool_blocks: HashMap<u64, usize>,
}

impl AnthropicStream {
    fn apply_usage(&mut self, usage: &Value) {
        let (prompt, completion) = anthropic_usage(usage);
        if prompt.is_none() && completion.is_none() {
            return;
        }
        let mut current = self.state.usage.unwrap_or_default();
        if let Some(prompt) = prompt {
            current.prompt_tokens = prompt;
        }
        if let Some(completion) = completion {
            current.completion_tokens = completion;
        }
        self.state.usage = Some(current);
    }
}

impl ChunkTranslator for AnthropicStream {
    fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<Value>, TranslateError> {
        let mut out = Vec::new();
        if self.state.finished {
            return Ok(out);
        }
        let Some(data) = event_json(ev)? else { return Ok(out) };
        let kind = match ev.event.as_deref() {
            Some(kind) => kind.to_string(),
            None => data.get("type").and_then(Value::as_str).unwrap_or_default().to_string(),
        };
        match kind.as_str() {
            "error" => return Err(TranslateError::Upstream(error_message(&data))),
            "message_start" => {
                if let Some(usage) = data.get("message").and_then(|m| m.get("usage")) {
                    self.apply_usage(usage);
                }
                self.state.role(&mut out);
            }
            "content_block_start" => {
                let block = data.get("content_block").unwrap_or(&Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block.get("text").and_then(Value::as_str).unwrap_or_default();
                        self.state.text(text, &mut out);
                    }
                    Some("tool_use") => {
                        let (Some(index), Some(call_id), Some(name)) = (
                            data.get("index").and_then(Value::as_u64),
                            block.get("id").and_then(Value::as_str),
                            block.get("name").and_then(Value::as_str),
                        ) else {
                            return Err(malformed("a tool_use block start has no index, id or name"));
                        };
                        let tool_index = self.tool_blocks.len();
                        self.tool_blocks.insert(index, tool_index);
                        self.state.tool_delta(
                            json!({
                                "index": tool_index,
                                "id": call_id,
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }),
                            &mut out,
                        );
                        // Anthropic starts with `input: {}`; anything else is the whole input already.
                        if let Some(input) = block.get("input").and_then(Value::as_object)
                            && !input.is_empty()
                        {
                            let arguments = Value::Object(input.clone()).to_string();
                            self.state.tool_delta(
                                json!({"index": tool_index, "function": {"arguments": arguments}}),
                                &mut out,
                            );
                        }
                    }
                    // thinking and server tool blocks.
                    _ => {}
                }
            }
            "content_block_delta" => {
                let delta = data.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta
                            .get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| malformed("a text_delta has no text"))?;
                        self.state.text(text, &mut out);
                    }
                    Some("input_json_delta") => {
                        let partial = delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .ok_or_else(|| malformed("an input_json_delta has no partial_json"))?;
                        let tool_index = data
                            .get("index")
                            .and_then(Value::as_u64)
                            .and_then(|i| self.tool_blocks.get(&i).copied())
                            .ok_or_else(|| malformed("an input_json_delta is not for a tool_use block"))?;
                        if !partial.is_empty() {
                            self.state.tool_delta(
                                json!({"index": tool_index, "function": {"arguments": partial}}),
                                &mut out,
                            );
                        }
                    }
                    // thinking_delta, signature_delta, citations_delta.
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = data.get("usage") {
                    self.apply_usage(usage);
                }
                if let Some(reason) =
                    data.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str)
                {
                    self.state.finish(anthropic_finish(reason), &mut out);
                }
            }
            "message_stop" => {
                self.state.finish("stop", &mut out);
                self.state.end(&mut out);
            }
            // ping, content_block_stop, and event types added later.
            _ => {}
        }
        Ok(out)
    }

    fn finished(&self) -> bool {
        self.state.finished
    }

    fn usage(&self) -> Option<Usage> {
        self.state.usage
    }

    fn text_so_far(&self) -> &str {
        &self.state.text
    }
}

/// Anthropic SSE -> OpenAI chunks: first chunk carries `delta: {role: "assistant", content: ""}`;
/// text_delta -> content deltas; tool_use start -> tool_calls delta with id/name and `arguments: ""`,
/// input_json_delta -> arguments deltas with the right `index`; message_delta -> a chunk with
/// `finish_reason`; when `include_usage`, after message_stop one chunk with `choices: []` and `usage`;
/// `error` event -> Err(Upstream(message)).
pub fn anthropic_stream(
    id: &str,
    model: &str,
    created: i64,
    include_usage: bool,
) -> Box<dyn ChunkTranslator> {
    Box::new(AnthropicStream {
        state: StreamState::new(id, model, created, include_usage),
        tool_blocks: HashMap::new(),
    })
}

struct GeminiStream {
    state: StreamState,
    calls: usize,
}

impl ChunkTranslator for GeminiStream {
    fn on_event(&mut self, ev: &SseEvent) -> Result<Vec<Value>, TranslateError> {
        let mut out = Vec::new();
        if self.state.finished {
            // Nothing more to say, but a late usageMetadata still counts.
            if let Ok(Some(data)) = event_json(ev)
                && let Some(usage) = gemini_usage(data.get("usageMetadata"))
            {
                self.state.usage = Some(usage);
            }
            return Ok(out);
        }
        let Some(data) = event_json(ev)? else { return Ok(out) };
        if !data.is_object() {
            return Err(malformed("a stream event is not a JSON object"));
        }
        if field_of(&data, "error").is_some() {
            return Err(TranslateError::Upstream(error_message(&data)));
        }
        if let Some(usage) = gemini_usage(data.get("usageMetadata")) {
            self.state.usage = Some(usage);
        }
        let Some(candidate) = data.get("candidates").and_then(Value::as_array).and_then(|c| c.first()) else {
            if gemini_prompt_blocked(&data) {
                self.state.finish("content_filter", &mut out);
                self.state.end(&mut out);
            }
            return Ok(out);
        };
        self.state.role(&mut out);
        for piece in gemini_pieces(candidate)? {
            match piece {
                GeminiPiece::Text(text) => self.state.text(&text, &mut out),
                GeminiPiece::Call { name, args, signature } => {
                    let call_id = gemini_call_id(&self.state.id, self.calls, signature.as_deref());
                    let call = json!({
                        "index": self.calls,
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": args.to_string()},
                    });
                    self.calls += 1;
                    self.state.tool_delta(call, &mut out);
                }
            }
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str)
            && reason != "FINISH_REASON_UNSPECIFIED"
        {
            let mut finish = gemini_finish(reason);
            if finish == "stop" && self.calls > 0 {
                finish = "tool_calls";
            }
            self.state.finish(finish, &mut out);
            self.state.end(&mut out);
        }
        Ok(out)
    }

    fn finished(&self) -> bool {
        self.state.finished
    }

    fn usage(&self) -> Option<Usage> {
        self.state.usage
    }

    fn text_so_far(&self) -> &str {
        &self.state.text
    }
}

/// Gemini SSE (alt=sse) -> OpenAI chunks, same conventions (role chunk first, text deltas,
/// functionCall -> a complete tool_calls delta, finishReason -> finish chunk, usage chunk at the end
/// when include_usage; the usage comes from the last usageMetadata).
pub fn gemini_stream(id: &str, model: &str, created: i64, include_usage: bool) -> Box<dyn ChunkTranslator> {
    Box::new(GeminiStream { state: StreamState::new(id, model, created, include_usage), calls: 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "chatcmpl-test";
    const MODEL: &str = "my-model";
    const CREATED: i64 = 1_700_000_000;

    fn err_text(result: Result<Value, TranslateError>) -> String {
        match result {
            Err(TranslateError::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn chunk(delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    }

    fn usage_chunk(prompt: u64, completion: u64) -> Value {
        json!({
            "id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        })
    }

    fn parse_all(bytes: &[u8]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut events = parser.push(bytes).expect("push");
        events.extend(parser.finish().expect("finish"));
        events
    }

    fn run(translator: &mut dyn ChunkTranslator, stream: &str) -> Vec<Value> {
        let mut chunks = Vec::new();
        for event in parse_all(stream.as_bytes()) {
            chunks.extend(translator.on_event(&event).expect("event"));
        }
        chunks
    }

    /// A conversation with everything: two system prompts, consecutive user messages, a tool round.
    fn tool_conversation() -> Value {
        json!({
            "model": "claude-sonnet",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "user", "content": [{"type": "text", "text": "In Celsius."}]},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_a", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp\":18}"},
                {"role": "tool", "tool_call_id": "call_b", "content": "sunny, 24"},
                {"role": "developer", "content": "Answer in one line."},
                {"role": "user", "content": "Thanks!"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"], "additionalProperties": false}
            }}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "temperature": 0.2,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "stream_options": {"include_usage": true},
            "n": 1
        })
    }

    // ----- Anthropic requests and responses -----

    #[test]
    fn anthropic_request_places_system_merges_turns_and_maps_tools() {
        let body = to_anthropic(&tool_conversation(), "claude-sonnet-4-5").unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "system": "You are terse.\n\nAnswer in one line.",
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Weather in Paris and Rome?"},
                        {"type": "text", "text": "In Celsius."}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Checking."},
                        {"type": "tool_use", "id": "call_a", "name": "weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "call_b", "name": "weather", "input": {"city": "Rome"}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_a", "content": "{\"temp\":18}"},
                        {"type": "tool_result", "tool_use_id": "call_b", "content": "sunny, 24"},
                        {"type": "text", "text": "Thanks!"}
                    ]}
                ],
                "temperature": 0.2,
                "top_p": 0.9,
                "stop_sequences": ["END"],
                "stream": true,
                "tools": [{
                    "name": "weather", "description": "Current weather",
                    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                     "required": ["city"], "additionalProperties": false}
                }],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
            })
        );
    }

    #[test]
    fn anthropic_request_small_cases() {
        // max_completion_tokens wins, stream absent stays absent, tool_choice maps, schema gets a type.
        let body = to_anthropic(
            &json!({
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 10, "max_completion_tokens": 20, "stop": ["a", "b"],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": {"type": "function", "function": {"name": "f"}}
            }),
            "m",
        )
        .unwrap();
        assert_eq!(body["max_tokens"], 20);
        assert_eq!(body.get("stream"), None);
        assert_eq!(body["stop_sequences"], json!(["a", "b"]));
        assert_eq!(body["tools"], json!([{"name": "f", "input_schema": {"type": "object"}}]));
        assert_eq!(body["tool_choice"], json!({"type": "tool", "name": "f"}));

        for (choice, expected) in [("none", json!({"type": "none"})), ("auto", json!({"type": "auto"}))] {
            let body = to_anthropic(
                &json!({"messages": [{"role": "user", "content": "hi"}], "tool_choice": choice,
                        "tools": [{"type": "function", "function": {"name": "f"}}]}),
                "m",
            )
            .unwrap();
            assert_eq!(body["tool_choice"], expected);
        }
        // No tools: no tool_choice at all.
        let body = to_anthropic(
            &json!({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"}),
            "m",
        )
        .unwrap();
        assert_eq!(body.get("tool_choice"), None);

        // A trailing assistant message is a prefill: trailing whitespace goes, as Anthropic demands.
        let body = to_anthropic(
            &json!({"messages": [{"role": "user", "content": "Count"}, {"role": "assistant", "content": "1, 2, "}]}),
            "m",
        )
        .unwrap();
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": [{"type": "text", "text": "1, 2,"}]})
        );

        // Ids from a Gemini answer lose the signature and characters Anthropic refuses.
        let body = to_anthropic(
            &json!({"messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0_chatcmpl.1__thought__AbC+/=",
                  "type": "function", "function": {"name": "f", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "call_0_chatcmpl.1__thought__AbC+/=", "content": ""}
            ]}),
            "m",
        )
        .unwrap();
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"type": "tool_use", "id": "call_0_chatcmpl_1", "name": "f", "input": {}}])
        );
        assert_eq!(
            body["messages"][2]["content"],
            json!([{"type": "tool_result", "tool_use_id": "call_0_chatcmpl_1"}])
        );
    }

    #[test]
    fn anthropic_response_becomes_chat_completion() {
        let resp = json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "x"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 100, "cache_read_input_tokens": 20, "output_tokens": 30}
        });
        let (out, usage) = from_anthropic(&resp, ID, MODEL, CREATED).unwrap();
        assert_eq!(usage, Usage { prompt_tokens: 120, completion_tokens: 30 });
        assert_eq!(
            out,
            json!({
                "id": ID, "object": "chat.completion", "created": CREATED, "model": MODEL,
                "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": "Let me check.",
                    "tool_calls": [{"id": "toolu_01", "type": "function",
                                    "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]
                }, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150}
            })
        );

        // Tool calls only: content is null.
        let resp = json!({"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                          "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 2}});
        let (out, _) = from_anthropic(&resp, ID, MODEL, CREATED).unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], Value::Null);

        for (reason, expected) in [
            ("end_turn", "stop"),
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
            ("pause_turn", "stop"),
        ] {
            let resp = json!({"content": [{"type": "text", "text": "x"}], "stop_reason": reason,
                              "usage": {"input_tokens": 1, "output_tokens": 1}});
            let (out, _) = from_anthropic(&resp, ID, MODEL, CREATED).unwrap();
            assert_eq!(out["choices"][0]["finish_reason"], expected, "{reason}");
        }

        assert!(matches!(
            from_anthropic(&json!({"id": "x"}), ID, MODEL, CREATED),
            Err(TranslateError::Malformed(_))
        ));
        assert_eq!(
            from_anthropic(
                &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ID,
                MODEL,
                CREATED
            ),
            Err(TranslateError::Upstream("Overloaded".into()))
        );
    }

    // ----- Gemini requests and responses -----

    #[test]
    fn gemini_request_places_system_merges_turns_and_maps_tools() {
        let body = to_gemini(&tool_conversation()).unwrap();
        assert_eq!(
            body,
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}, {"text": "In Celsius."}]},
                    {"role": "model", "parts": [
                        {"text": "Checking."},
                        {"functionCall": {"name": "weather", "args": {"city": "Paris"}},
                         "thoughtSignature": PLACEHOLDER_SIGNATURE},
                        {"functionCall": {"name": "weather", "args": {"city": "Rome"}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "weather", "response": {"temp": 18}}},
                        {"functionResponse": {"name": "weather", "response": {"output": "sunny, 24"}}},
                        {"text": "Thanks!"}
                    ]}
                ],
                "systemInstruction": {"parts": [{"text": "You are terse.\n\nAnswer in one line."}]},
                "generationConfig": {"temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
                "tools": [{"functionDeclarations": [{
                    "name": "weather", "description": "Current weather",
                    "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}},
                                             "required": ["city"], "additionalProperties": false}
                }]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}
            })
        );
    }

    #[test]
    fn gemini_request_small_cases() {
        let body = to_gemini(&json!({
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 50,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}
        }))
        .unwrap();
        assert_eq!(
            body["generationConfig"],
            json!({"maxOutputTokens": 50, "responseMimeType": "application/json",
                   "responseJsonSchema": {"type": "object"}})
        );
        assert_eq!(body["tools"], json!([{"functionDeclarations": [{"name": "f"}]}]));
        assert_eq!(
            body["toolConfig"],
            json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}})
        );
        assert_eq!(body.get("systemInstruction"), None);

        // A tool message for an unknown id can still name its function.
        let body = to_gemini(&json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "tool_call_id": "elsewhere", "name": "f", "content": "[1,2]"}
        ]}))
        .unwrap();
        assert_eq!(
            body["contents"],
            json!([{"role": "user", "parts": [
                {"text": "x"}, {"functionResponse": {"name": "f", "response": {"output": "[1,2]"}}}
            ]}])
        );
        assert_eq!(
            err_text(to_gemini(&json!({"messages": [
                {"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "nope", "content": "1"}
            ]}))),
            "messages[1].tool_call_id: no earlier assistant message has a tool call with this id"
        );
        // JSON output is Gemini-only.
        assert_eq!(
            err_text(to_anthropic(
                &json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
                "m"
            )),
            "response_format: JSON output modes are not supported for anthropic"
        );
    }

    #[test]
    fn gemini_response_becomes_chat_completion_and_signatures_round_trip() {
        let resp = json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "thinking about it", "thought": true},
                    {"text": "Let me "},
                    {"text": "check."},
                    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                    {"functionCall": {"name": "time", "args": {}}}
                ]},
                "finishReason": "STOP", "index": 0
            }],
            "usageMetadata": {"promptTokenCount": 40, "candidatesTokenCount": 12, "thoughtsTokenCount": 8,
                              "totalTokenCount": 60},
            "modelVersion": "gemini-2.5-flash"
        });
        let (out, usage) = from_gemini(&resp, ID, MODEL, CREATED).unwrap();
        assert_eq!(usage, Usage { prompt_tokens: 40, completion_tokens: 20 });
        let first_id = format!("call_0_{ID}__thought__c2ln");
        let second_id = format!("call_1_{ID}");
        assert_eq!(
            out,
            json!({
                "id": ID, "object": "chat.completion", "created": CREATED, "model": MODEL,
                "choices": [{"index": 0, "message": {
                    "role": "assistant", "content": "Let me check.",
                    "tool_calls": [
                        {"id": first_id, "type": "function",
                         "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                        {"id": second_id, "type": "function", "function": {"name": "time", "arguments": "{}"}}
                    ]
                }, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60}
            })
        );

        // The client sends the calls back with results: the signature returns to its part, and the
        // function names are found by id.
        let message = out["choices"][0]["message"].clone();
        let body = to_gemini(&json!({"messages": [
            {"role": "user", "content": "Weather?"},
            message,
            {"role": "tool", "tool_call_id": first_id, "content": "18C"},
            {"role": "tool", "tool_call_id": second_id, "content": "{\"now\":\"noon\"}"}
        ]}))
        .unwrap();
        assert_eq!(
            body["contents"],
            json!([
                {"role": "user", "parts": [{"text": "Weather?"}]},
                {"role": "model", "parts": [
                    {"text": "Let me check."},
                    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2ln"},
                    {"functionCall": {"name": "time", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "weather", "response": {"output": "18C"}}},
                    {"functionResponse": {"name": "time", "response": {"now": "noon"}}}
                ]}
            ])
        );

        for (reason, expected) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("OTHER", "stop"),
        ] {
            let resp =
                json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]});
            let (out, usage) = from_gemini(&resp, ID, MODEL, CREATED).unwrap();
            assert_eq!(out["choices"][0]["finish_reason"], expected, "{reason}");
            assert_eq!(usage, Usage::default());
        }

        // A blocked prompt has no candidates: an empty, filtered answer.
        let (out, _) = from_gemini(
            &json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 5}}),
            ID,
            MODEL,
            CREATED,
        )
        .unwrap();
        assert_eq!(out["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(out["choices"][0]["message"]["content"], "");
        assert!(matches!(from_gemini(&json!({}), ID, MODEL, CREATED), Err(TranslateError::Malformed(_))));
    }

    // ----- Streams -----

    const ANTHROPIC_STREAM: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",",
        "\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,",
        "\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me \"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"check.\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",",
        "\"id\":\"toolu_01\",\"name\":\"weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",",
        "\"partial_json\":\"{\\\"city\\\": \\\"Pa\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",",
        "\"partial_json\":\"ris\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},",
        "\"usage\":{\"output_tokens\":42}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    #[test]
    fn anthropic_stream_yields_openai_chunks() {
        let mut translator = anthropic_stream(ID, MODEL, CREATED, true);
        let chunks = run(translator.as_mut(), ANTHROPIC_STREAM);
        assert_eq!(
            chunks,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), None),
                chunk(json!({"content": "Let me "}), None),
                chunk(json!({"content": "check."}), None),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": "toolu_01", "type": "function",
                                           "function": {"name": "weather", "arguments": ""}}]}),
                    None
                ),
                chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": \"Pa"}}]}),
                    None
                ),
                chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "ris\"}"}}]}), None),
                chunk(json!({}), Some("tool_calls")),
                usage_chunk(25, 42),
            ]
        );
        assert!(translator.finished());
        assert_eq!(translator.usage(), Some(Usage { prompt_tokens: 25, completion_tokens: 42 }));
        assert_eq!(translator.text_so_far(), "Let me check.");

        // Without include_usage: no usage chunk, same usage kept.
        let mut translator = anthropic_stream(ID, MODEL, CREATED, false);
        let chunks = run(translator.as_mut(), ANTHROPIC_STREAM);
        assert_eq!(chunks.len(), 7);
        assert_eq!(chunks.last(), Some(&chunk(json!({}), Some("tool_calls"))));
        assert_eq!(translator.usage(), Some(Usage { prompt_tokens: 25, completion_tokens: 42 }));
    }

    #[test]
    fn anthropic_stream_errors_and_cut_streams() {
        let mut translator = anthropic_stream(ID, MODEL, CREATED, true);
        let cut = ANTHROPIC_STREAM.split("event: content_block_stop").next().unwrap();
        run(translator.as_mut(), cut);
        assert!(!translator.finished());
        assert_eq!(translator.text_so_far(), "Let me check.");

        let error = SseEvent {
            event: Some("error".into()),
            data: r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#
                .into(),
        };
        assert_eq!(translator.on_event(&error), Err(TranslateError::Upstream("Overloaded".into())));
        let garbage = SseEvent { event: Some("content_block_delta".into()), data: "{not json".into() };
        assert!(matches!(translator.on_event(&garbage), Err(TranslateError::Malformed(_))));
        // The type in the data is enough when the event line is missing.
        let mut translator = anthropic_stream(ID, MODEL, CREATED, false);
        let chunks = translator
            .on_event(&SseEvent {
                event: None,
                data: r#"{"type":"message_start","message":{"usage":{}}}"#.into(),
            })
            .unwrap();
        assert_eq!(chunks, vec![chunk(json!({"role": "assistant", "content": ""}), None)]);
    }

    const GEMINI_STREAM: &str = concat!(
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The weather\"}],\"role\": \"model\"},",
        "\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 2},",
        "\"modelVersion\": \"gemini-2.5-flash\"}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" is nice. \"},",
        "{\"functionCall\": {\"name\": \"weather\",\"args\": {\"city\": \"Paris\"}}}],\"role\": \"model\"},",
        "\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 10}}\r\n\r\n",
        "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},",
        "\"finishReason\": \"STOP\",\"index\": 0}],",
        "\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 14,\"totalTokenCount\": 23}}\r\n\r\n",
    );

    #[test]
    fn gemini_stream_yields_openai_chunks() {
        let mut translator = gemini_stream(ID, MODEL, CREATED, true);
        let chunks = run(translator.as_mut(), GEMINI_STREAM);
        assert_eq!(
            chunks,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), None),
                chunk(json!({"content": "The weather"}), None),
                chunk(json!({"content": " is nice. "}), None),
                chunk(
                    json!({"tool_calls": [{"index": 0, "id": format!("call_0_{ID}"), "type": "function",
                                           "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
                    None
                ),
                chunk(json!({}), Some("tool_calls")),
                usage_chunk(9, 14),
            ]
        );
        assert!(translator.finished());
        assert_eq!(translator.usage(), Some(Usage { prompt_tokens: 9, completion_tokens: 14 }));
        assert_eq!(translator.text_so_far(), "The weather is nice. ");
        // After the end nothing is sent, but the last usageMetadata wins.
        let late = SseEvent {
            event: None,
            data: r#"{"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 15}}"#.into(),
        };
        assert_eq!(translator.on_event(&late), Ok(Vec::new()));
        assert_eq!(translator.usage(), Some(Usage { prompt_tokens: 9, completion_tokens: 15 }));

        // Plain text ending in MAX_TOKENS, without a usage chunk.
        let mut translator = gemini_stream(ID, MODEL, CREATED, false);
        let chunks = run(
            translator.as_mut(),
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}]},\"finishReason\":\"MAX_TOKENS\"}]}\n\n",
        );
        assert_eq!(
            chunks,
            vec![
                chunk(json!({"role": "assistant", "content": ""}), None),
                chunk(json!({"content": "Hi"}), None),
                chunk(json!({}), Some("length")),
            ]
        );

        // Errors in the stream and blocked prompts.
        let mut translator = gemini_stream(ID, MODEL, CREATED, false);
        let error = SseEvent {
            event: None,
            data:
                r#"{"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}"#
                    .into(),
        };
        assert_eq!(
            translator.on_event(&error),
            Err(TranslateError::Upstream("The model is overloaded.".into()))
        );
        let blocked =
            SseEvent { event: None, data: r#"{"promptFeedback": {"blockReason": "SAFETY"}}"#.into() };
        let chunks = translator.on_event(&blocked).unwrap();
        assert_eq!(chunks.last(), Some(&chunk(json!({}), Some("content_filter"))));
        assert!(translator.finished());
    }

    #[test]
    fn openai_stream_rewrites_identity_and_finishes_on_done() {
        let upstream = concat!(
            "data: {\"id\":\"up-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024\",",
            "\"system_fingerprint\":\"fp\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},",
            "\"finish_reason\":null}]}\n\n",
            ": keep-alive\n\n",
            "data: {\"id\":\"up-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024\",",
            "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"id\":\"up-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-2024\",",
            "\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\n",
            "data: [DONE]\n\n",
        );
        let mut translator = openai_stream(ID, MODEL, CREATED);
        let chunks = run(translator.as_mut(), upstream);
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[0],
            json!({"id": ID, "object": "chat.completion.chunk", "created": CREATED, "model": MODEL,
                   "system_fingerprint": "fp",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
        );
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[2]["usage"]["total_tokens"], 4);
        assert!(chunks.iter().all(|c| c["id"] == ID && c["model"] == MODEL && c["created"] == CREATED));
        assert!(translator.finished());
        assert_eq!(translator.usage(), Some(Usage { prompt_tokens: 3, completion_tokens: 1 }));
        assert_eq!(translator.text_so_far(), "Hello");

        let mut translator = openai_stream(ID, MODEL, CREATED);
        assert!(!translator.finished());
        let not_json = SseEvent { event: None, data: "Hello".into() };
        assert!(matches!(translator.on_event(&not_json), Err(TranslateError::Malformed(_))));
        let error = SseEvent {
            event: None,
            data: r#"{"error": {"message": "Rate limit reached", "type": "x"}}"#.into(),
        };
        assert_eq!(translator.on_event(&error), Err(TranslateError::Upstream("Rate limit reached".into())));
    }

    // ----- SSE parser -----

    fn sample_stream(newline: &str) -> String {
        [
            "\u{feff}: a comment first",
            "event: first",
            "data: héllo wörld 🦀",
            "",
            "data:no space",
            "data:  two spaces",
            "id: 7",
            "retry: 1000",
            "",
            "",
            "event: multi",
            "data: line one",
            "data",
            "data: line three",
            "",
            ": comment between",
            "event: ignored because no data",
            "",
            "data:",
            "",
            "data: {\"k\": \"v\"}",
            "",
            "",
        ]
        .join(newline)
    }

    fn sample_events() -> Vec<SseEvent> {
        let event =
            |name: Option<&str>, data: &str| SseEvent { event: name.map(str::to_string), data: data.into() };
        vec![
            event(Some("first"), "héllo wörld 🦀"),
            event(None, "no space\n two spaces"),
            event(Some("multi"), "line one\n\nline three"),
            event(None, ""),
            event(None, "{\"k\": \"v\"}"),
        ]
    }

    #[test]
    fn sse_parser_gives_the_same_events_for_every_split() {
        for newline in ["\n", "\r\n", "\r"] {
            let stream = sample_stream(newline);
            let bytes = stream.as_bytes();
            assert_eq!(parse_all(bytes), sample_events(), "newline {newline:?}");
            for split in 0..=bytes.len() {
                let mut parser = SseParser::default();
                let mut events = parser.push(&bytes[..split]).unwrap();
                events.extend(parser.push(&bytes[split..]).unwrap());
                events.extend(parser.finish().unwrap());
                assert_eq!(events, sample_events(), "newline {newline:?}, split at {split}");
            }
            let mut parser = SseParser::default();
            let mut events = Vec::new();
            for byte in bytes {
                events.extend(parser.push(std::slice::from_ref(byte)).unwrap());
            }
            events.extend(parser.finish().unwrap());
            assert_eq!(events, sample_events(), "byte by byte, newline {newline:?}");
        }
        // The recorded provider streams survive every split too.
        for stream in [ANTHROPIC_STREAM, GEMINI_STREAM] {
            let whole = parse_all(stream.as_bytes());
            assert!(whole.len() >= 3);
            for split in 0..=stream.len() {
                let mut parser = SseParser::default();
                let mut events = parser.push(&stream.as_bytes()[..split]).unwrap();
                events.extend(parser.push(&stream.as_bytes()[split..]).unwrap());
                events.extend(parser.finish().unwrap());
                assert_eq!(events, whole);
            }
        }
    }

    #[test]
    fn sse_parser_end_of_stream_and_limits() {
        // Blank or comment leftovers are fine; a cut event is not.
        for leftover in ["", "\n", "  ", ": bye", "event: x\n"] {
            let mut parser = SseParser::default();
            assert_eq!(parser.push(format!("data: a\n\n{leftover}").as_bytes()).unwrap().len(), 1);
            assert_eq!(parser.finish(), Ok(Vec::new()), "{leftover:?}");
        }
        for leftover in ["data: {\"cut", "data: whole line\n", "data: x\r"] {
            let mut parser = SseParser::default();
            parser.push(leftover.as_bytes()).unwrap();
            assert!(matches!(parser.finish(), Err(TranslateError::Malformed(_))), "{leftover:?}");
        }

        // One huge line, fed in pieces.
        let mut parser = SseParser::default();
        let piece = vec![b'a'; 64 * 1024];
        parser.push(b"data: ").unwrap();
        let mut result = Ok(Vec::new());
        for _ in 0..17 {
            result = parser.push(&piece);
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(TranslateError::Malformed(_))));
        // Many data lines adding up to too much.
        let mut parser = SseParser::default();
        let line = format!("data: {}\n", "b".repeat(1000));
        let mut result = Ok(Vec::new());
        for _ in 0..1100 {
            result = parser.push(line.as_bytes());
            if result.is_err() {
                break;
            }
        }
        assert!(matches!(result, Err(TranslateError::Malformed(_))));
        // Just under the limit is fine, and the parser is usable afterwards.
        let mut parser = SseParser::default();
        let big = format!("data: {}\n\n", "c".repeat(MAX_EVENT_BYTES - 16));
        assert_eq!(parser.push(big.as_bytes()).unwrap().len(), 1);
        assert_eq!(
            parser.push(b"data: next\n\n").unwrap(),
            vec![SseEvent { event: None, data: "next".into() }]
        );
        // Invalid UTF-8 is replaced, not fatal.
        let mut parser = SseParser::default();
        assert_eq!(parser.push(b"data: \xff\n\n").unwrap()[0].data, "\u{fffd}");
    }

    // ----- Request validation -----

    #[test]
    fn invalid_requests_name_the_field() {
        let user = json!({"role": "user", "content": "hi"});
        let cases: Vec<(Value, &str)> = vec![
            (json!([]), "the request body must be a JSON object"),
            (json!({}), "messages: missing"),
            (json!({"messages": null}), "messages: missing"),
            (json!({"messages": "hi"}), "messages: must be an array"),
            (json!({"messages": []}), "messages: must not be empty"),
            (json!({"messages": [1]}), "messages[0]: must be an object"),
            (json!({"messages": [{"content": "x"}]}), "messages[0].role: missing or not a string"),
            (json!({"messages": [{"role": 3, "content": "x"}]}), "messages[0].role: missing or not a string"),
            (
                json!({"messages": [user, {"role": "robot", "content": "x"}]}),
                "messages[1].role: unknown role \"robot\"",
            ),
            (
                json!({"messages": [{"role": "function", "name": "f", "content": "x"}]}),
                "messages[0].role: \"function\" messages are deprecated and not supported; use tool messages",
            ),
            (json!({"messages": [{"role": "user"}]}), "messages[0].content: missing"),
            (
                json!({"messages": [{"role": "user", "content": 5}]}),
                "messages[0].content: must be a string or an array of text parts",
            ),
            (
                json!({"messages": [user, user, {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
                ]}]}),
                "messages[2].content[1]: image parts are not supported for PROVIDER yet",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
                "messages[0].content[0].type: \"input_audio\" parts are not supported for PROVIDER; only text parts are",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]}),
                "messages[0].content[0].text: must be a string",
            ),
            (
                json!({"messages": [{"role": "user", "content": [7]}]}),
                "messages[0].content[0]: must be an object",
            ),
            (
                json!({"messages": [{"role": "tool", "content": "x"}]}),
                "messages[0].tool_call_id: missing or not a string",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "type": "function",
                    "function": {"name": "f", "arguments": "[1]"}}]}]}),
                "messages[0].tool_calls[0].function.arguments: must be a JSON object encoded as a string",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"type": "function",
                    "function": {"name": "f", "arguments": "{}"}}]}]}),
                "messages[0].tool_calls[0].id: missing or not a string",
            ),
            (json!({"messages": [user], "temperature": "hot"}), "temperature: must be a number"),
            (
                json!({"messages": [user], "temperature": -1}),
                "temperature: must be between 0 and MAXTEMP for PROVIDER",
            ),
            (json!({"messages": [user], "top_p": 2}), "top_p: must be between 0 and 1"),
            (json!({"messages": [user], "n": 2}), "n: n > 1 is not supported for PROVIDER"),
            (json!({"messages": [user], "n": 0}), "n: must be a positive integer"),
            (json!({"messages": [user], "max_tokens": 0}), "max_tokens: must be a positive integer"),
            (
                json!({"messages": [user], "max_completion_tokens": 1.5}),
                "max_completion_tokens: must be a positive integer",
            ),
            (json!({"messages": [user], "stop": 1}), "stop: must be a string or an array of up to 4 strings"),
            (
                json!({"messages": [user], "stop": ["a", "b", "c", "d", "e"]}),
                "stop: must be a string or an array of up to 4 strings",
            ),
            (
                json!({"messages": [user], "stop": ["a", 1]}),
                "stop: must be a string or an array of up to 4 strings",
            ),
            (json!({"messages": [user], "stream": "yes"}), "stream: must be a boolean"),
            (
                json!({"messages": [user], "tools": [{"type": "web_search"}]}),
                "tools[0].type: only function tools are supported",
            ),
            (
                json!({"messages": [user], "tools": [{"type": "function", "function": {"description": "x"}}]}),
                "tools[0].function.name: missing or not a string",
            ),
            (
                json!({"messages": [user], "tool_choice": {"type": "function", "function": {"name": "g"}},
                       "tools": [{"type": "function", "function": {"name": "f"}}]}),
                "tool_choice.function.name: there is no tool named \"g\" in tools",
            ),
            (
                json!({"messages": [user], "tool_choice": "sometimes"}),
                "tool_choice: must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}",
            ),
            (
                json!({"messages": [{"role": "system", "content": "only a system prompt"}]}),
                "messages: no user or assistant message has any content",
            ),
        ];
        for (request, expected) in cases {
            for (p, result) in
                [(Provider::Anthropic, to_anthropic(&request, "m")), (Provider::Gemini, to_gemini(&request))]
            {
                let expected = expected
                    .replace("PROVIDER", p.name())
                    .replace("MAXTEMP", &p.max_temperature().to_string());
                assert_eq!(err_text(result), expected, "{request}");
            }
        }
        // Ranges differ: 1.5 is a fine Gemini temperature but not an Anthropic one.
        let warm = json!({"messages": [user], "temperature": 1.5});
        assert_eq!(err_text(to_anthropic(&warm, "m")), "temperature: must be between 0 and 1 for anthropic");
        assert_eq!(to_gemini(&warm).unwrap()["generationConfig"]["temperature"], 1.5);
    }

    #[test]
    fn openai_usage_reads_usage() {
        assert_eq!(
            openai_usage(&json!({"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}})),
            Some(Usage { prompt_tokens: 5, completion_tokens: 7 })
        );
        assert_eq!(openai_usage(&json!({"usage": null})), None);
        assert_eq!(openai_usage(&json!({"usage": {}})), None);
        assert_eq!(openai_usage(&json!([1, 2])), None);
        assert_eq!(
            serde_json::to_value(Usage::default()).unwrap(),
            json!({"prompt_tokens": 0, "completion_tokens": 0})
        );
    }

    // ----- Garbage never panics -----

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const WORDS: [&str; 40] = [
        "messages",
        "role",
        "content",
        "user",
        "assistant",
        "system",
        "tool",
        "tool_calls",
        "tool_call_id",
        "id",
        "type",
        "function",
        "name",
        "arguments",
        "text",
        "image_url",
        "tools",
        "tool_choice",
        "parameters",
        "candidates",
        "parts",
        "functionCall",
        "args",
        "finishReason",
        "usage",
        "usageMetadata",
        "index",
        "content_block",
        "delta",
        "partial_json",
        "input_json_delta",
        "text_delta",
        "tool_use",
        "stop_reason",
        "error",
        "message",
        "choices",
        "[DONE]",
        "input",
        "thoughtSignature",
    ];

    fn random_value(rng: &mut Rng, depth: usize) -> Value {
        match rng.below(if depth == 0 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => json!(rng.next()),
            3 => json!(-(rng.below(1000) as i64)),
            4 => json!(rng.below(1000) as f64 / 7.0),
            5 => Value::String(WORDS[rng.below(WORDS.len())].to_string()),
            6 | 7 => {
                let mut map = Map::new();
                for _ in 0..rng.below(5) {
                    map.insert(WORDS[rng.below(WORDS.len())].to_string(), random_value(rng, depth - 1));
                }
                Value::Object(map)
            }
            _ => (0..rng.below(4)).map(|_| random_value(rng, depth - 1)).collect(),
        }
    }

    fn mutate(value: &mut Value, rng: &mut Rng) {
        match value {
            Value::Object(map) => {
                for child in map.values_mut() {
                    if rng.below(6) == 0 { *child = random_value(rng, 3) } else { mutate(child, rng) }
                }
            }
            Value::Array(items) => {
                for child in items.iter_mut() {
                    if rng.below(6) == 0 { *child = random_value(rng, 3) } else { mutate(child, rng) }
                }
            }
            _ => {}
        }
    }

    fn feed_everything(value: &Value) {
        let _ = to_anthropic(value, "m");
        let _ = to_gemini(value);
        let _ = from_anthropic(value, ID, MODEL, CREATED);
        let _ = from_gemini(value, ID, MODEL, CREATED);
        let _ = openai_usage(value);
        let data = value.to_string();
        let mut translators = [
            openai_stream(ID, MODEL, CREATED),
            anthropic_stream(ID, MODEL, CREATED, true),
            gemini_stream(ID, MODEL, CREATED, true),
        ];
        for event in [
            None,
            Some("message_start"),
            Some("content_block_start"),
            Some("content_block_delta"),
            Some("message_delta"),
            Some("error"),
        ] {
            let ev = SseEvent { event: event.map(str::to_string), data: data.clone() };
            for translator in &mut translators {
                let _ = translator.on_event(&ev);
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..3000 {
            feed_everything(&random_value(&mut rng, 5));
        }

        // Mutations of realistic bodies reach deeper.
        let anthropic_response = json!({"content": [{"type": "text", "text": "x"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}], "stop_reason": "tool_use",
            "usage": {"input_tokens": 1, "output_tokens": 2}});
        let gemini_response = json!({"candidates": [{"content": {"parts": [{"text": "x"},
            {"functionCall": {"name": "f", "args": {}}, "thoughtSignature": "s"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 1}});
        let stream_events: Vec<Value> = parse_all(ANTHROPIC_STREAM.as_bytes())
            .iter()
            .chain(parse_all(GEMINI_STREAM.as_bytes()).iter())
            .filter_map(|e| serde_json::from_str(&e.data).ok())
            .collect();
        let mut seeds = vec![tool_conversation(), anthropic_response, gemini_response];
        seeds.extend(stream_events);
        for _ in 0..300 {
            for seed in &seeds {
                let mut value = seed.clone();
                mutate(&mut value, &mut rng);
                feed_everything(&value);
            }
        }

        // Huge arrays and deep nesting.
        let user = json!({"role": "user", "content": "hi"});
        feed_everything(&json!({"messages": vec![Value::Null; 50_000]}));
        feed_everything(&json!({"messages": vec![user.clone(); 5_000], "stop": vec![Value::Null; 50_000]}));
        let merged = to_anthropic(&json!({"messages": vec![user.clone(); 5_000]}), "m").unwrap();
        assert_eq!(merged["messages"][0]["content"].as_array().map(Vec::len), Some(5_000));
        feed_everything(&json!({"content": vec![json!({"type": "text", "text": "x"}); 20_000]}));
        feed_everything(&json!({"candidates": vec![Value::Null; 50_000]}));
        let deep_arguments = "[".repeat(100_000);
        feed_everything(&json!({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": deep_arguments}}
        ]}]}));
        let mut doubled = Value::Null;
        while doubled.to_string().len() < 200_000 {
            let copy = doubled.clone();
            doubled = json!({"messages": [doubled], "content": [copy], "role": null});
        }
        feed_everything(&doubled);
        let mut deep = json!({"role": "user", "content": "x"});
        for _ in 0..1000 {
            deep = json!([deep]);
        }
        feed_everything(&json!({"messages": [deep.clone()], "content": deep.clone(), "candidates": [deep]}));
    }
}
