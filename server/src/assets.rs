//! The compiled site (wasm, JavaScript, CSS) and `public/` files. A release build carries them inside
//! the binary, so copying the one file deploys the whole app; a debug build reads them from
//! `target/site` on each request, so rebuilding the front end needs no server rebuild.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "../target/site/"]
#[allow_missing = true]
struct Site;

/// The file at `path` (relative to the site root), honouring `If-None-Match`; `None` when there is no
/// such file.
pub fn serve(path: &str, request_headers: &HeaderMap) -> Option<Response> {
    let path = path.trim_start_matches('/');
    if path.is_empty() || path.contains("..") {
        return None;
    }
    let file = Site::get(path)?;
    let mime = file.metadata.mimetype().to_string();
    let hash = file.metadata.sha256_hash();

    // A release build also holds .br/.gz copies of the site; send one when the client takes it.
    let accepts = |enc: &str| {
        request_headers
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.split(';').next().is_some_and(|name| name.trim() == enc))
    };
    let (encoding, body) = [("br", "br"), ("gzip", "gz")]
        .into_iter()
        .filter(|(enc, _)| accepts(enc))
        .find_map(|(enc, ext)| Site::get(&format!("{path}.{ext}")).map(|f| (Some(enc), f.data)))
        .unwrap_or((None, file.data));

    // Each encoding is its own representation, so it gets its own validator.
    let etag = format!(
        "\"{}{}\"",
        hash.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>(),
        encoding.map(|e| format!("-{e}")).unwrap_or_default()
    );
    let cache = HeaderValue::from_static("public, max-age=0, must-revalidate");
    let vary = HeaderValue::from_static("accept-encoding");
    if request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Some(
            (StatusCode::NOT_MODIFIED, [(header::CACHE_CONTROL, cache), (header::VARY, vary)])
                .into_response(),
        );
    }

    let mut resp = Response::new(Body::from(body.into_owned()));
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, cache);
    h.insert(header::VARY, vary);
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    Some(resp)
}

/// Whether a static file exists at `path`.
pub fn exists(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    !path.is_empty() && !path.contains("..") && Site::get(path).is_some()
}

/// Whether the compiled front end is present (a build without it still serves pages, unhydrated).
pub fn has_frontend() -> bool {
    Site::get("pkg/goblin.wasm").is_some()
}
