//! A mock upstream that speaks the wire formats of the LLM providers Goblin Assistant's gateway talks to.
//!
//! It is test support only: the product's tests and benchmarks point provider base URLs at it, and it is
//! never offered as a provider. One server answers every provider kind, each under its own path prefix:
//!
//! | kind | base URL |
//! | --- | --- |
//! | `openai`, `deepseek`, `grok`, `siliconflow`, `moonshot`, `openai-compatible` | `http://ADDR/<kind>/v1` |
//! | `anthropic` | `http://ADDR/anthropic/v1` |
//! | `gemini` | `http://ADDR/gemini/v1beta` |
//! | `elevenlabs` | `http://ADDR/elevenlabs/v1` |
//!
//! Replies are deterministic: the assistant text is `Mock reply to: <last user message text>`, streamed one
//! word per chunk, and token counts are whitespace word counts. Embeddings are bag-of-words feature hashes
//! (common English words left out, suffixes crudely stemmed), so texts sharing content words are closer. Audio endpoints answer with deterministic MP3-shaped bytes.
//!
//! A few wire details worth knowing when testing against it:
//!
//! * Gemini SSE events end with `\r\n\r\n`, as the real API sends them; other SSE streams use `\n\n`.
//! * With a non-empty key list, a missing or unknown key gets 401 in the provider's error shape, and an
//!   unknown key is echoed shortened ([`shorten_key`]), as real providers do: the gateway must redact it.
//! * Anthropic requests need an `anthropic-version` header and Messages requests need `max_tokens`.
//! * Audio is always MP3-shaped (`audio/mpeg`, ID3 header), whatever output format is asked for.
//!
//! # Behaviours
//!
//! A request can ask the mock to misbehave with a comma-separated spec such as `latency=200,fail=503`:
//!
//! * `latency=<ms>`: wait before answering (applies before the key check);
//! * `fail=<status>`: answer that status (400..=599) with the provider's error body, plus `retry-after: 1`
//!   for 429 (applies after the key check, so a bad key still gets 401);
//! * `cut=<n>`: streaming only; send `n` content chunks, then drop the connection without the terminating
//!   event (`[DONE]`, `message_stop`, Gemini's closing `]`);
//! * `stall`: plain requests never get an answer; streams send the headers, the preamble and the first
//!   content chunk, then nothing while keeping the connection open (applies before the key check);
//! * `malformed`: plain requests get a 200 whose body is not valid JSON (or not audio); streams get a
//!   `data:` line that is not JSON after the first content chunk;
//! * `error_event`: streams send the provider's in-stream error after the first content chunk and end
//!   (Anthropic: `event: error` with `overloaded_error`).
//!
//! Specs are merged from three sources: the `x-mock-behavior` request header, a `<model>@<spec>` model
//! name (in the JSON body, or in the path for Gemini), and a `/_b/<spec>/` path prefix before the kind
//! (see [`MockUpstream::base_url_with`]). An invalid spec gets a provider-shaped 400.

mod anthropic;
mod behavior;
mod elevenlabs;
mod gemini;
mod handler;
mod openai;
mod provider;
mod stream;
mod text;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use text::shorten_key;

/// The request header that carries a behaviour spec.
pub const BEHAVIOR_HEADER: &str = "x-mock-behavior";

/// How many recorded requests are kept; older ones are dropped first.
pub const MAX_RECORDED_REQUESTS: usize = 10_000;

/// Configuration of a mock upstream.
#[derive(Clone, Debug, Default)]
pub struct MockConfig {
    /// API keys the mock accepts. Empty = accept any request, with or without a key.
    pub keys: Vec<String>,
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Full request path, including any `/_b/<spec>` prefix and the kind segment.
    pub path: String,
    /// Raw query string, without the `?`.
    pub query: Option<String>,
    /// Request headers in arrival order, names lower-case, values decoded lossily.
    pub headers: Vec<(String, String)>,
    /// Request body decoded lossily as UTF-8.
    pub body: String,
}

impl RecordedRequest {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Shared state of a mock server: accepted keys, recorded requests and the shutdown signal.
///
/// Cheap to clone; every clone refers to the same server state.
#[derive(Clone)]
pub struct MockState {
    inner: Arc<Inner>,
}

struct Inner {
    keys: RwLock<Vec<String>>,
    recording: AtomicBool,
    requests: Mutex<VecDeque<RecordedRequest>>,
    shutdown: watch::Sender<bool>,
    next_id: AtomicU64,
    tts_characters: AtomicU64,
}

impl MockState {
    /// New state accepting the configured keys, with recording on.
    pub fn new(config: MockConfig) -> Self {
        let (shutdown, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                keys: RwLock::new(config.keys),
                recording: AtomicBool::new(true),
                requests: Mutex::new(VecDeque::new()),
                shutdown,
                next_id: AtomicU64::new(1),
                tts_characters: AtomicU64::new(0),
            }),
        }
    }

    /// Every request received so far (at most the latest [`MAX_RECORDED_REQUESTS`]), oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock_requests().iter().cloned().collect()
    }

    /// Forget the requests recorded so far.
    pub fn clear_requests(&self) {
        self.lock_requests().clear();
    }

    /// Turn request recording on or off (it is on by default).
    pub fn set_recording(&self, on: bool) {
        self.inner.recording.store(on, Ordering::Relaxed);
    }

    /// Replace the accepted keys. Empty = accept any request, with or without a key.
    pub fn set_keys(&self, keys: Vec<String>) {
        *self.inner.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    /// Ask stalled and delayed requests to end and the server (if any) to shut down gracefully.
    pub fn trigger_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once [`MockState::trigger_shutdown`] has been called.
    pub async fn shutdown_requested(&self) {
        let mut rx = self.inner.shutdown.subscribe();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    fn lock_requests(&self) -> std::sync::MutexGuard<'_, VecDeque<RecordedRequest>> {
        self.inner.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn recording(&self) -> bool {
        self.inner.recording.load(Ordering::Relaxed)
    }

    pub(crate) fn record(&self, request: RecordedRequest) {
        let mut requests = self.lock_requests();
        if requests.len() >= MAX_RECORDED_REQUESTS {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    /// `None` when every request is accepted, else whether `key` is one of the accepted keys.
    pub(crate) fn key_accepted(&self, key: Option<&str>) -> Option<bool> {
        let keys = self.inner.keys.read().unwrap_or_else(|e| e.into_inner());
        if keys.is_empty() {
            return None;
        }
        Some(key.is_some_and(|key| keys.iter().any(|k| k == key)))
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn add_tts_characters(&self, n: u64) {
        self.inner.tts_characters.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn tts_characters(&self) -> u64 {
        self.inner.tts_characters.load(Ordering::Relaxed)
    }

    /// Sleeps for `ms` milliseconds, or less if shutdown is requested meanwhile.
    pub(crate) async fn sleep(&self, ms: u64) {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = self.shutdown_requested() => {}
        }
    }
}

/// The mock's routes, for embedding it in another axum app or serving it on a custom listener.
pub fn router(state: MockState) -> Router {
    Router::new().fallback(handler::handle).with_state(state)
}

/// A running mock upstream server.
///
/// It serves in a background tokio task until [`MockUpstream::shutdown`] is awaited or the value is
/// dropped (dropping asks the server to stop without waiting for it).
pub struct MockUpstream {
    addr: SocketAddr,
    state: MockState,
    task: Option<JoinHandle<()>>,
}

impl MockUpstream {
    /// Binds 127.0.0.1:0 (or the given addr) and serves in a background tokio task until dropped or `shutdown()`.
    pub async fn start(config: MockConfig) -> std::io::Result<MockUpstream> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Binds `addr` and serves in a background tokio task until dropped or `shutdown()`.
    pub async fn start_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockUpstream> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = MockState::new(config);
        let app = router(state.clone());
        let signal_state = state.clone();
        let task = tokio::spawn(async move {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { signal_state.shutdown_requested().await })
                .await;
        });
        Ok(MockUpstream { addr, state, task: Some(task) })
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL for a provider kind, as a gateway would configure it:
    /// "openai" | "deepseek" | "grok" | "siliconflow" | "moonshot" | "openai-compatible" -> http://ADDR/<kind>/v1
    /// "anthropic" -> http://ADDR/anthropic/v1 ; "gemini" -> http://ADDR/gemini/v1beta ; "elevenlabs" -> http://ADDR/elevenlabs/v1
    ///
    /// Any other kind gets `http://ADDR/<kind>/v1`, which the mock answers with 404.
    pub fn base_url(&self, kind: &str) -> String {
        format!("http://{}/{}/{}", self.addr, kind, provider::version_segment(kind))
    }

    /// Same, with a behaviour spec baked into the path: http://ADDR/_b/<spec>/<kind>/v1...
    ///
    /// Characters of `spec` that cannot appear in a path segment are percent-encoded.
    pub fn base_url_with(&self, kind: &str, spec: &str) -> String {
        format!(
            "http://{}/_b/{}/{}/{}",
            self.addr,
            text::percent_encode_segment(spec),
            kind,
            provider::version_segment(kind)
        )
    }

    /// Every request received so far (for assertions: which key was sent, what body).
    ///
    /// Holds at most the latest [`MAX_RECORDED_REQUESTS`], oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Forget the requests recorded so far.
    pub fn clear_requests(&self) {
        self.state.clear_requests();
    }

    /// Replace the accepted keys at runtime.
    pub fn set_keys(&self, keys: Vec<String>) {
        self.state.set_keys(keys);
    }

    /// The shared state (recording switch, keys) of this server.
    pub fn state(&self) -> &MockState {
        &self.state
    }

    /// Stops accepting connections, ends stalled and delayed requests, and waits (up to two seconds)
    /// for open connections to finish.
    pub async fn shutdown(mut self) {
        self.state.trigger_shutdown();
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.state.trigger_shutdown();
    }
}

impl std::fmt::Debug for MockUpstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockUpstream").field("addr", &self.addr).finish_non_exhaustive()
    }
}
