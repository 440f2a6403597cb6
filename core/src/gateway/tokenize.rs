//! Token counts for answers whose provider sent no usage (a stream without a usage chunk, or one the
//! client cancelled), so their cost is still counted. Uses OpenAI's `o200k_base` encoding (the GPT-4o
//! family's), bundled with the crate: exact for those models and a close estimate for others. Message
//! overhead follows OpenAI's published rule of thumb: 3 tokens per message and 3 to prime the reply.

use std::sync::OnceLock;

use serde_json::Value;
use tiktoken_rs::CoreBPE;

fn encoder() -> Option<&'static CoreBPE> {
    static ENCODER: OnceLock<Option<CoreBPE>> = OnceLock::new();
    ENCODER
        .get_or_init(|| match tiktoken_rs::o200k_base() {
            Ok(bpe) => Some(bpe),
            Err(e) => {
                tracing::error!(error = %e, "the tokenizer could not be loaded; counting about four characters a token");
                None
            }
        })
        .as_ref()
}

/// Loads the encoding ahead of the first count (it takes a moment), off the async threads.
pub fn warm_up() {
    std::thread::spawn(|| {
        let _ = encoder();
    });
}

/// The tokens in `text`.
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match encoder() {
        Some(bpe) => bpe.encode_ordinary(text).len() as u64,
        None => (text.chars().count() as u64).div_ceil(4),
    }
}

/// The prompt tokens of a chat request's `messages`: each message's text (string content, or the
/// text parts of array content) plus the per-message overhead.
pub fn count_messages(body: &Value) -> u64 {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else { return 0 };
    let mut total = 3;
    for m in messages {
        total += 3;
        if let Some(role) = m.get("role").and_then(Value::as_str) {
            total += count(role);
        }
        match m.get("content") {
            Some(Value::String(s)) => total += count(s),
            Some(Value::Array(parts)) => {
                for p in parts {
                    if let Some(t) = p.get("text").and_then(Value::as_str) {
                        total += count(t);
                    }
                }
            }
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn counts_with_the_o200k_encoding() {
        assert_eq!(count(""), 0);
        // Known o200k_base counts: "Hello world" is ["Hello", " world"].
        assert_eq!(count("Hello world"), 2);
        // Each repeated " hello" is one token: far fewer tokens than the four-characters estimate.
        let n = count(&"hello ".repeat(1000));
        assert!((1000..=1001).contains(&n), "{n}");
        let body = json!({ "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": [{ "type": "text", "text": "Hello world" }] }
        ]});
        assert_eq!(
            count_messages(&body),
            3 + (3 + count("system") + count("Be brief.")) + (3 + count("user") + 2)
        );
    }
}
