//! A [`super::ChatStream`] read back inside the program (the chat page, agent goblins): its SSE
//! bytes become the answer's text deltas and, when it broke off, the error that ended it.

use serde_json::Value;

/// What one event of the gateway's stream says.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// The answer broke off; the message says why.
    Error(String),
}

/// Takes the complete SSE events out of `buf` (after appending `bytes`), leaving a partial one for
/// the next read. The gateway's chunks become text; NUL characters, which no database column can
/// hold, are dropped.
pub fn read_events(buf: &mut Vec<u8>, bytes: &[u8]) -> Vec<Piece> {
    buf.extend_from_slice(bytes);
    let mut out = Vec::new();
    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
        let event: Vec<u8> = buf.drain(..end + 2).collect();
        let event = String::from_utf8_lossy(&event[..end]);
        for line in event.lines() {
            let Some(data) = line.strip_prefix("data:").map(str::trim_start) else { continue };
            if data == "[DONE]" {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
            if let Some(e) = v.get("error") {
                let message = e.get("message").and_then(Value::as_str).unwrap_or("the answer broke off");
                out.push(Piece::Error(message.to_string()));
                continue;
            }
            if let Some(text) = v.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                let text = text.replace('\0', "");
                if !text.is_empty() {
                    out.push(Piece::Text(text));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_become_text_and_errors() {
        let mut buf = Vec::new();
        let chunk = |t: &str| {
            format!("data: {}\n\n", json!({ "choices": [{ "index": 0, "delta": { "content": t } }] }))
        };
        let first = format!("{}{}", chunk("Hello"), chunk(" wor"));
        assert_eq!(
            read_events(&mut buf, first.as_bytes()),
            vec![Piece::Text("Hello".into()), Piece::Text(" wor".into())]
        );
        // An event split across reads waits for its end.
        let split = chunk("ld\0!");
        let (a, b) = split.as_bytes().split_at(10);
        assert_eq!(read_events(&mut buf, a), vec![]);
        assert_eq!(read_events(&mut buf, b), vec![Piece::Text("ld!".into())]);
        // Role-only and usage chunks say nothing; [DONE] ends quietly; an error event is kept.
        let rest = format!(
            "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            json!({ "choices": [{ "delta": { "role": "assistant" } }] }),
            json!({ "choices": [], "usage": { "prompt_tokens": 3 } }),
            json!({ "error": { "message": "the stream broke off" } }),
        );
        assert_eq!(read_events(&mut buf, rest.as_bytes()), vec![Piece::Error("the stream broke off".into())]);
        assert!(buf.is_empty());
    }
}
