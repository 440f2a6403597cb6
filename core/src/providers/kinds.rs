//! What each provider kind is on the wire: default base URL, how a key is sent, what it can do, how
//! its model list is read, and where its error message sits in an error body.
//!
//! The live check and "sync models" both use the model list: it needs a valid key on every hosted
//! provider, costs nothing, and proves the key and base URL at once.

use serde_json::Value;

/// What a provider or model can be used for.
pub const CAPABILITIES: [&str; 3] = ["chat", "embeddings", "speech"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Gemini,
    DeepSeek,
    Grok,
    SiliconFlow,
    Moonshot,
    ElevenLabs,
    OpenAiCompatible,
}

/// A model as a provider's list reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    pub display_name: String,
    pub context_window: Option<i32>,
    pub capabilities: Vec<String>,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 9] = [
        ProviderKind::OpenAi,
        ProviderKind::Anthropic,
        ProviderKind::Gemini,
        ProviderKind::DeepSeek,
        ProviderKind::Grok,
        ProviderKind::SiliconFlow,
        ProviderKind::Moonshot,
        ProviderKind::ElevenLabs,
        ProviderKind::OpenAiCompatible,
    ];

    /// The name stored in `providers.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::DeepSeek => "deepseek",
            ProviderKind::Grok => "grok",
            ProviderKind::SiliconFlow => "siliconflow",
            ProviderKind::Moonshot => "moonshot",
            ProviderKind::ElevenLabs => "elevenlabs",
            ProviderKind::OpenAiCompatible => "openai-compatible",
        }
    }

    /// How people name it.
    pub fn label(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "OpenAI",
            ProviderKind::Anthropic => "Anthropic",
            ProviderKind::Gemini => "Google Gemini",
            ProviderKind::DeepSeek => "DeepSeek",
            ProviderKind::Grok => "xAI Grok",
            ProviderKind::SiliconFlow => "SiliconFlow",
            ProviderKind::Moonshot => "Moonshot",
            ProviderKind::ElevenLabs => "ElevenLabs (speech)",
            ProviderKind::OpenAiCompatible => "OpenAI-compatible (Ollama, llama.cpp, vLLM, LM Studio, ...)",
        }
    }

    /// `None` for OpenAI-compatible servers, which need a base URL.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com/v1"),
            ProviderKind::Gemini => Some("https://generativelanguage.googleapis.com/v1beta"),
            ProviderKind::DeepSeek => Some("https://api.deepseek.com/v1"),
            ProviderKind::Grok => Some("https://api.x.ai/v1"),
            ProviderKind::SiliconFlow => Some("https://api.siliconflow.cn/v1"),
            ProviderKind::Moonshot => Some("https://api.moonshot.ai/v1"),
            ProviderKind::ElevenLabs => Some("https://api.elevenlabs.io/v1"),
            ProviderKind::OpenAiCompatible => None,
        }
    }

    /// What a new provider of this kind offers unless the admin narrows it.
    pub fn default_capabilities(self) -> &'static [&'static str] {
        match self {
            ProviderKind::OpenAi => &["chat", "embeddings", "speech"],
            ProviderKind::Gemini | ProviderKind::SiliconFlow | ProviderKind::OpenAiCompatible => {
                &["chat", "embeddings"]
            }
            ProviderKind::ElevenLabs => &["speech"],
            ProviderKind::Anthropic
            | ProviderKind::DeepSeek
            | ProviderKind::Grok
            | ProviderKind::Moonshot => &["chat"],
        }
    }

    /// Whether calls need a key. Local OpenAI-compatible servers often take none.
    pub fn key_required(self) -> bool {
        self != ProviderKind::OpenAiCompatible
    }

    /// The headers that carry `key` (and any version header the API insists on).
    pub fn auth_headers(self, key: Option<&str>) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(key) = key {
            match self {
                ProviderKind::Anthropic => headers.push(("x-api-key", key.to_string())),
                ProviderKind::Gemini => headers.push(("x-goog-api-key", key.to_string())),
                ProviderKind::ElevenLabs => headers.push(("xi-api-key", key.to_string())),
                _ => headers.push(("authorization", format!("Bearer {key}"))),
            }
        }
        if self == ProviderKind::Anthropic {
            headers.push(("anthropic-version", "2023-06-01".to_string()));
        }
        headers
    }

    /// The environment names that seed a provider of this kind: (seed name, key variables in order
    /// of preference, base URL variable).
    pub fn seed_env(self) -> (&'static str, &'static [&'static str], &'static str) {
        match self {
            ProviderKind::OpenAi => ("openai", &["OPENAI_API_KEY"], "OPENAI_BASE_URL"),
            ProviderKind::Anthropic => ("anthropic", &["ANTHROPIC_API_KEY"], "ANTHROPIC_BASE_URL"),
            ProviderKind::Gemini => ("gemini", &["GEMINI_API_KEY"], "GEMINI_BASE_URL"),
            ProviderKind::DeepSeek => ("deepseek", &["DEEPSEEK_API_KEY"], "DEEPSEEK_BASE_URL"),
            ProviderKind::Grok => ("grok", &["GROK_API_KEY"], "GROK_BASE_URL"),
            ProviderKind::SiliconFlow => {
                ("siliconflow", &["SILICONFLOW_API_KEY", "SILLICONFLOW_API_KEY"], "SILICONFLOW_BASE_URL")
            }
            ProviderKind::Moonshot => ("moonshot", &["MOONSHOT_API_KEY"], "MOONSHOT_BASE_URL"),
            ProviderKind::ElevenLabs => ("elevenlabs", &["ELEVENLABS_API_KEY"], "ELEVENLABS_BASE_URL"),
            ProviderKind::OpenAiCompatible => ("local", &["LOCAL_LLM_API_KEY"], "LOCAL_LLM_BASE_URL"),
        }
    }

    /// Reads the body of a successful `GET {base}/models`.
    ///
    /// # Errors
    /// A short description when the body is not this kind's model list.
    pub fn parse_models(self, body: &Value) -> Result<Vec<ListedModel>, String> {
        let items = match self {
            ProviderKind::Gemini => body.get("models").and_then(Value::as_array),
            ProviderKind::ElevenLabs => body.as_array(),
            _ => body.get("data").and_then(Value::as_array),
        }
        .ok_or_else(|| "the answer is not a model list".to_string())?;
        let mut models = Vec::with_capacity(items.len());
        for item in items {
            let s = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
            let listed = match self {
                ProviderKind::Gemini => {
                    let Some(name) = s("name") else { continue };
                    let id = name.strip_prefix("models/").unwrap_or(&name).to_string();
                    let methods: Vec<&str> = item
                        .get("supportedGenerationMethods")
                        .and_then(Value::as_array)
                        .map(|m| m.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let mut caps = Vec::new();
                    if methods.iter().any(|m| m.contains("generateContent")) {
                        caps.push("chat".to_string());
                    }
                    if methods.iter().any(|m| m.contains("embed")) {
                        caps.push("embeddings".to_string());
                    }
                    if caps.is_empty() {
                        caps = guess_capabilities(&id);
                    }
                    ListedModel {
                        display_name: s("displayName").unwrap_or_else(|| id.clone()),
                        context_window: item
                            .get("inputTokenLimit")
                            .and_then(Value::as_i64)
                            .and_then(|n| i32::try_from(n).ok()),
                        capabilities: caps,
                        id,
                    }
                }
                ProviderKind::ElevenLabs => {
                    let Some(id) = s("model_id") else { continue };
                    ListedModel {
                        display_name: s("name").unwrap_or_else(|| id.clone()),
                        context_window: None,
                        capabilities: vec!["speech".to_string()],
                        id,
                    }
                }
                _ => {
                    let Some(id) = s("id") else { continue };
                    ListedModel {
                        display_name: s("display_name").unwrap_or_else(|| id.clone()),
                        context_window: item
                            .get("context_window")
                            .or_else(|| item.get("context_length"))
                            .and_then(Value::as_i64)
                            .and_then(|n| i32::try_from(n).ok()),
                        capabilities: if self == ProviderKind::Anthropic {
                            vec!["chat".to_string()]
                        } else {
                            guess_capabilities(&id)
                        },
                        id,
                    }
                }
            };
            if !listed.id.is_empty() && listed.id.len() <= 128 {
                models.push(listed);
            }
        }
        Ok(models)
    }
}

impl std::str::FromStr for ProviderKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProviderKind::ALL.into_iter().find(|k| k.as_str() == s.trim()).ok_or_else(|| {
            format!(
                "unknown provider kind '{}'; use one of {}",
                s.trim(),
                ProviderKind::ALL.map(ProviderKind::as_str).join(", ")
            )
        })
    }
}

/// A model's use from its id, for lists that do not say.
fn guess_capabilities(id: &str) -> Vec<String> {
    let id = id.to_ascii_lowercase();
    let cap = if id.contains("embed") {
        "embeddings"
    } else if id.contains("tts") || id.contains("speech") {
        "speech"
    } else {
        "chat"
    };
    vec![cap.to_string()]
}

/// The provider's own error message from an error body: `error.message` (OpenAI, Anthropic, Gemini
/// and most compatible servers), `detail.message` or `detail` (ElevenLabs), `error` or `message` as a
/// plain string; otherwise the start of the body.
pub fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        text(v.pointer("/error/message"))
            .or_else(|| text(v.pointer("/detail/message")))
            .or_else(|| text(v.get("detail")))
            .or_else(|| text(v.get("error")))
            .or_else(|| text(v.get("message")))
    });
    let msg = from_json.unwrap_or_else(|| body.trim().to_string());
    let msg: String = msg.chars().filter(|c| !c.is_control()).take(300).collect();
    if msg.is_empty() { "(no message in the answer)".to_string() } else { msg }
}

/// Replaces the key, and any run of 8 or more of its characters, in `text`: providers echo keys
/// partly (`sk-abc***wxyz`), and a message shown to people must carry none of it.
pub fn redact(text: &str, key: &str) -> String {
    const MIN: usize = 8;
    let key: Vec<char> = key.chars().collect();
    if key.len() < 4 {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut hide = vec![false; chars.len()];
    let min = MIN.min(key.len());
    for start in 0..chars.len() {
        // Longest run of key characters starting here.
        let mut best = 0;
        for k in 0..key.len() {
            let mut n = 0;
            while start + n < chars.len() && k + n < key.len() && chars[start + n] == key[k + n] {
                n += 1;
            }
            best = best.max(n);
        }
        if best >= min {
            hide[start..start + best].iter_mut().for_each(|h| *h = true);
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut in_hidden = false;
    for (c, h) in chars.into_iter().zip(hide) {
        if h {
            if !in_hidden {
                out.push_str("[redacted]");
            }
        } else {
            out.push(c);
        }
        in_hidden = h;
    }
    out
}

/// The display form of a key: a short prefix and the last four characters, e.g. `sk-...abcd`. Short
/// keys show less, so no more than a quarter of any key is ever shown.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    let n = chars.len();
    let budget = n / 4;
    if budget < 2 {
        return "...".to_string();
    }
    let tail = budget.min(4);
    let wanted_prefix =
        chars.iter().position(|c| *c == '-' || *c == '_').filter(|p| *p < 7).map_or(2, |p| p + 1);
    let prefix: String = chars[..wanted_prefix.min(budget - tail)].iter().collect();
    let suffix: String = chars[n - tail..].iter().collect();
    format!("{prefix}...{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_and_knows_its_wire() {
        for kind in ProviderKind::ALL {
            assert_eq!(kind.as_str().parse::<ProviderKind>().unwrap(), kind);
            assert!(!kind.default_capabilities().is_empty());
            assert_eq!(kind.default_base_url().is_none(), kind == ProviderKind::OpenAiCompatible);
            let (seed, keys, base) = kind.seed_env();
            assert!(!seed.is_empty() && !keys.is_empty() && base.ends_with("_BASE_URL"));
            for name in keys.iter().chain([&base]) {
                assert!(
                    crate::config::PROVIDER_ENV.contains(name),
                    "{name} is collected from the environment"
                );
            }
        }
        assert!("claude".parse::<ProviderKind>().unwrap_err().contains("openai-compatible"));
        let h = ProviderKind::Anthropic.auth_headers(Some("k"));
        assert!(h.contains(&("x-api-key", "k".into())) && h.iter().any(|(n, _)| *n == "anthropic-version"));
        assert_eq!(
            ProviderKind::Grok.auth_headers(Some("k")),
            vec![("authorization", "Bearer k".to_string())]
        );
        assert!(ProviderKind::OpenAiCompatible.auth_headers(None).is_empty());
    }

    #[test]
    fn model_lists_of_each_shape_are_read() {
        let openai = serde_json::json!({"object":"list","data":[{"id":"gpt-4o-mini"},{"id":"text-embedding-3-small"},{"id":"tts-1"}]});
        let m = ProviderKind::OpenAi.parse_models(&openai).unwrap();
        assert_eq!(
            m.iter().map(|m| m.capabilities[0].as_str()).collect::<Vec<_>>(),
            ["chat", "embeddings", "speech"]
        );
        let anthropic = serde_json::json!({"data":[{"type":"model","id":"claude-3-5-haiku","display_name":"Claude Haiku"}]});
        assert_eq!(ProviderKind::Anthropic.parse_models(&anthropic).unwrap()[0].display_name, "Claude Haiku");
        let gemini = serde_json::json!({"models":[{"name":"models/gemini-2.0-flash","displayName":"Gemini Flash","inputTokenLimit":1048576,"supportedGenerationMethods":["generateContent","countTokens"]},{"name":"models/text-embedding-004","supportedGenerationMethods":["embedContent"]}]});
        let g = ProviderKind::Gemini.parse_models(&gemini).unwrap();
        assert_eq!(
            (g[0].id.as_str(), g[0].context_window, g[1].capabilities[0].as_str()),
            ("gemini-2.0-flash", Some(1_048_576), "embeddings")
        );
        let eleven = serde_json::json!([{"model_id":"eleven_multilingual_v2","name":"Multilingual v2"}]);
        assert_eq!(ProviderKind::ElevenLabs.parse_models(&eleven).unwrap()[0].capabilities, ["speech"]);
        assert!(ProviderKind::OpenAi.parse_models(&serde_json::json!({"oops":1})).is_err());
    }

    #[test]
    fn error_messages_are_found_in_each_shape() {
        assert_eq!(
            error_message(r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#),
            "bad key"
        );
        assert_eq!(
            error_message(
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#
            ),
            "invalid x-api-key"
        );
        assert_eq!(
            error_message(r#"{"detail":{"status":"invalid_api_key","message":"Invalid API key"}}"#),
            "Invalid API key"
        );
        assert_eq!(error_message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(error_message("<html>Bad Gateway</html>\n"), "<html>Bad Gateway</html>");
        assert_eq!(error_message(""), "(no message in the answer)");
    }

    #[test]
    fn redaction_hides_the_key_and_partial_echoes() {
        let key = "sk-live-0123456789abcdefWXYZ";
        let msg = format!("Incorrect API key provided: sk-live-0********WXYZ. Also {key} and 0123456789ab.");
        let out = redact(&msg, key);
        assert!(!out.contains(key) && !out.contains("sk-live-0") && !out.contains("0123456789ab"), "{out}");
        assert!(out.starts_with("Incorrect API key provided: [redacted]"), "{out}");
        assert_eq!(redact("nothing here", key), "nothing here");
    }

    #[test]
    fn masks_show_little_of_any_key() {
        assert_eq!(mask("sk-proj-abcdefghijklmnopqrstuvwxyz1234"), "sk-...1234");
        assert_eq!(mask("AIzaSyA1234567890abcdef"), "A...cdef");
        assert_eq!(mask("shortkey12"), "...12");
        assert_eq!(mask("abc"), "...");
        for key in [
            "sk-proj-abcdefghijklmnopqrstuvwxyz1234",
            "AIzaSyA1234567890abcdef",
            "0123456789abcdef",
            "01234567",
            "0123456",
        ] {
            let shown = mask(key).replace("...", "").len();
            assert!(shown * 4 <= key.len(), "{key} shows {shown}");
        }
    }
}
