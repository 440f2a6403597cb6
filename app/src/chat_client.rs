//! The browser half of chat: following an answer over an EventSource, and reading an answer aloud
//! through `/v1/audio/speech` (the signed-in session is the caller).

use serde::Deserialize;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;

/// Voice for OpenAI-style speech models.
const VOICE: &str = "alloy";
/// The longest text the speech endpoint takes, in characters.
const MAX_SPEECH_CHARS: usize = 4096;

/// One piece of an answer, as `/api/chat/streams/{id}/events` sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct ChunkEvent {
    pub seq: i32,
    pub text: String,
}

/// How the answer ended.
#[derive(Clone, Debug, Deserialize)]
pub struct EndEvent {
    pub status: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost: String,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub error: Option<String>,
}

fn js_error(e: JsValue) -> String {
    let get = |k: &str| js_sys::Reflect::get(&e, &JsValue::from_str(k)).ok().and_then(|v| v.as_string());
    match (get("name"), get("message")) {
        (Some(n), Some(m)) => format!("{n}: {m}"),
        _ => e.as_string().unwrap_or_else(|| "the browser refused".to_string()),
    }
}

/// An answer being followed; dropping it closes the connection.
pub struct Follow {
    source: web_sys::EventSource,
    _chunk: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _end: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _error: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.source.close();
    }
}

/// Follows an answer from after chunk `after`. The browser reconnects by itself after a dropped
/// connection, sending the last chunk number it saw, so the server resumes from there; `on_lost` is
/// called only when it gives up (the server refused).
///
/// # Errors
/// The browser could not open the connection.
pub fn follow(
    stream_id: &str,
    after: i32,
    mut on_chunk: impl FnMut(ChunkEvent) + 'static,
    mut on_end: impl FnMut(EndEvent) + 'static,
    mut on_lost: impl FnMut(String) + 'static,
) -> Result<Follow, String> {
    let url = format!("/api/chat/streams/{stream_id}/events?after={after}");
    let source = web_sys::EventSource::new(&url).map_err(js_error)?;
    let chunk = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        if let Some(c) = e.data().as_string().and_then(|d| serde_json::from_str::<ChunkEvent>(&d).ok()) {
            on_chunk(c);
        }
    });
    let closer = source.clone();
    let end = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        closer.close();
        if let Some(end) = e.data().as_string().and_then(|d| serde_json::from_str::<EndEvent>(&d).ok()) {
            on_end(end);
        }
    });
    let watcher = source.clone();
    let error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        if watcher.ready_state() == web_sys::EventSource::CLOSED {
            on_lost("the live answer could not be followed; reload the page to see it".into());
        }
    });
    source.add_event_listener_with_callback("chunk", chunk.as_ref().unchecked_ref()).map_err(js_error)?;
    source.add_event_listener_with_callback("end", end.as_ref().unchecked_ref()).map_err(js_error)?;
    source.set_onerror(Some(error.as_ref().unchecked_ref()));
    Ok(Follow { source, _chunk: chunk, _end: end, _error: error })
}

/// Reads `text` aloud with `model`: the server makes the audio, the browser plays it.
///
/// # Errors
/// What went wrong, fit to show: the server's message, or the browser's.
pub async fn speak(model: &str, text: &str) -> Result<(), String> {
    let window = web_sys::window().ok_or("no browser window")?;
    let input: String = text.chars().take(MAX_SPEECH_CHARS).collect();
    let body = serde_json::json!({ "model": model, "input": input, "voice": VOICE }).to_string();
    let headers = web_sys::Headers::new().map_err(js_error)?;
    headers.set("content-type", "application/json").map_err(js_error)?;
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body));
    let request = web_sys::Request::new_with_str_and_init("/v1/audio/speech", &init).map_err(js_error)?;
    let response: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(js_error)?
        .dyn_into()
        .map_err(js_error)?;
    if !response.ok() {
        let text = match response.text() {
            Ok(p) => JsFuture::from(p).await.ok().and_then(|v| v.as_string()).unwrap_or_default(),
            Err(_) => String::new(),
        };
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| format!("the speech request failed ({})", response.status()));
        return Err(message);
    }
    let blob: web_sys::Blob = JsFuture::from(response.blob().map_err(js_error)?)
        .await
        .map_err(js_error)?
        .dyn_into()
        .map_err(js_error)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(js_error)?;
    let audio = web_sys::HtmlAudioElement::new_with_src(&url).map_err(js_error)?;
    let done_with = url.clone();
    let on_ended = Closure::once_into_js(move || {
        let _ = web_sys::Url::revoke_object_url(&done_with);
    });
    audio.set_onended(Some(on_ended.unchecked_ref()));
    let played = match audio.play() {
        Ok(p) => JsFuture::from(p).await.map(|_| ()).map_err(js_error),
        Err(e) => Err(js_error(e)),
    };
    if played.is_err() {
        let _ = web_sys::Url::revoke_object_url(&url);
    }
    played.map_err(|e| format!("the browser could not play the audio ({e})"))
}
