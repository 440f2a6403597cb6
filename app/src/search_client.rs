//! The Search page's upload with progress. `fetch` reports no upload progress, so the form's fields go
//! with `XMLHttpRequest` to the JSON route (`POST /api/search/collections/{id}/documents/upload`,
//! same origin, with the session cookie); its upload events give the percentage sent.

use wasm_bindgen::{JsCast, closure::Closure};
use web_sys::{Event, FormData, HtmlFormElement, ProgressEvent, XmlHttpRequest};

/// An upload in flight: dropping it aborts the request (the page went away).
pub struct Upload {
    xhr: XmlHttpRequest,
    _progress: Closure<dyn FnMut(ProgressEvent)>,
    _sent: Closure<dyn FnMut(Event)>,
    _load: Closure<dyn FnMut(Event)>,
    _error: Closure<dyn FnMut(Event)>,
    done: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done.get() {
            let _ = self.xhr.abort();
        }
    }
}

/// The error message of a JSON error answer, or a description of the status.
fn message_of(status: u16, body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("the upload was refused (HTTP {status})"))
}

/// Sends `form`'s fields to `url`. `progress` gets the percentage sent (0 to 100); `done` gets the
/// new document's title, or the reason it was refused. A file over `max_bytes` is refused here,
/// before anything is sent.
///
/// # Errors
/// The request could not be made, or the file is too large; nothing was sent.
pub fn upload(
    form: &HtmlFormElement,
    url: &str,
    max_bytes: f64,
    progress: impl Fn(u32) + 'static,
    done: impl Fn(Result<String, String>) + 'static,
) -> Result<Upload, String> {
    let data = FormData::new_with_form(form).map_err(|_| "the form could not be read".to_string())?;
    if let Ok(file) = data.get("file").dyn_into::<web_sys::File>() {
        if file.name().is_empty() {
            return Err("file: choose a file to upload".into());
        }
        if file.size() > max_bytes {
            return Err(format!(
                "'{}' is {:.1} MiB; a document may be at most {:.0} MiB",
                file.name(),
                file.size() / 1_048_576.0,
                max_bytes / 1_048_576.0
            ));
        }
    }
    let xhr = XmlHttpRequest::new().map_err(|_| "the upload could not start".to_string())?;
    xhr.open("POST", url).map_err(|_| "the upload could not start".to_string())?;
    xhr.set_request_header("accept", "application/json")
        .map_err(|_| "the upload could not start".to_string())?;
    let upload = xhr.upload().map_err(|_| "the upload could not start".to_string())?;
    let progress = std::rc::Rc::new(progress);
    let on_progress = {
        let progress = progress.clone();
        Closure::<dyn FnMut(ProgressEvent)>::new(move |e: ProgressEvent| {
            if e.length_computable() && e.total() > 0.0 {
                progress(((e.loaded() / e.total()) * 100.0).floor().clamp(0.0, 100.0) as u32);
            }
        })
    };
    // The whole body has been sent.
    let on_sent = {
        let progress = progress.clone();
        Closure::<dyn FnMut(Event)>::new(move |_| progress(100))
    };
    upload.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    upload.set_onload(Some(on_sent.as_ref().unchecked_ref()));
    let finished = std::rc::Rc::new(std::cell::Cell::new(false));
    let done = std::rc::Rc::new(done);
    let on_load = {
        let (xhr, done, finished) = (xhr.clone(), done.clone(), finished.clone());
        Closure::<dyn FnMut(Event)>::new(move |_| {
            finished.set(true);
            let status = xhr.status().unwrap_or(0);
            let body = xhr.response_text().ok().flatten().unwrap_or_default();
            if status == 201 {
                let title = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["title"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                done(Ok(title));
            } else {
                done(Err(message_of(status, &body)));
            }
        })
    };
    let on_error = {
        let (done, finished) = (done.clone(), finished.clone());
        Closure::<dyn FnMut(Event)>::new(move |_| {
            finished.set(true);
            done(Err("the upload failed: the connection to the server was lost".into()));
        })
    };
    xhr.set_onload(Some(on_load.as_ref().unchecked_ref()));
    xhr.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    progress(0);
    xhr.send_with_opt_form_data(Some(&data)).map_err(|_| "the upload could not start".to_string())?;
    Ok(Upload {
        xhr,
        _progress: on_progress,
        _sent: on_sent,
        _load: on_load,
        _error: on_error,
        done: finished,
    })
}
