//! The browser half of a task's page: following its output over an EventSource on
//! `/api/tasks/{id}/events` (the signed-in session is the caller).

use wasm_bindgen::{JsCast, closure::Closure};

use crate::server_fns::tasks::{LineRow, TaskRow};

/// A task being followed; dropping it closes the connection.
pub struct Follow {
    source: web_sys::EventSource,
    _status: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _line: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _end: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _error: Closure<dyn FnMut(web_sys::Event)>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.source.close();
    }
}

#[derive(serde::Deserialize)]
struct StatusEvent {
    status: String,
}

fn data<T: serde::de::DeserializeOwned>(e: &web_sys::MessageEvent) -> Option<T> {
    e.data().as_string().and_then(|d| serde_json::from_str(&d).ok())
}

/// Follows a task from after output line `after`: its status as it changes, each new line, then
/// how it ended. The browser reconnects by itself after a dropped connection, sending the last line
/// number it saw, so the server resumes from there; `on_lost` is called only when it gives up (the
/// server refused).
///
/// # Errors
/// The browser could not open the connection.
pub fn follow(
    task_id: &str,
    after: i32,
    mut on_status: impl FnMut(String) + 'static,
    mut on_line: impl FnMut(LineRow) + 'static,
    mut on_end: impl FnMut(TaskRow) + 'static,
    mut on_lost: impl FnMut(String) + 'static,
) -> Result<Follow, String> {
    let js_error =
        |e: wasm_bindgen::JsValue| e.as_string().unwrap_or_else(|| "the browser refused".to_string());
    let url = format!("/api/tasks/{task_id}/events?after={after}");
    let source = web_sys::EventSource::new(&url).map_err(js_error)?;
    let status = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        if let Some(s) = data::<StatusEvent>(&e) {
            on_status(s.status);
        }
    });
    let line = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        if let Some(l) = data::<LineRow>(&e) {
            on_line(l);
        }
    });
    let closer = source.clone();
    let end = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |e: web_sys::MessageEvent| {
        closer.close();
        if let Some(t) = data::<TaskRow>(&e) {
            on_end(t);
        }
    });
    let watcher = source.clone();
    let error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| {
        if watcher.ready_state() == web_sys::EventSource::CLOSED {
            on_lost("the live output could not be followed; reload the page to see it".into());
        }
    });
    for (name, f) in [("status", &status), ("line", &line), ("end", &end)] {
        source.add_event_listener_with_callback(name, f.as_ref().unchecked_ref()).map_err(js_error)?;
    }
    source.set_onerror(Some(error.as_ref().unchecked_ref()));
    Ok(Follow { source, _status: status, _line: line, _end: end, _error: error })
}
