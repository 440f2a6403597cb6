//! What every request passes through to be observable: a well-formed request id, the HTTP metrics,
//! and the panic catcher that turns a panicking handler into a 500 carrying the request id.
//!
//! The Prometheus recorder is process-wide (the `metrics` macros record into one global recorder),
//! so it is installed once, by the first [`crate::Application`] built in the process; `/metrics`
//! renders it (no listener of its own). Recording is a lookup in the recorder's sharded maps and an
//! atomic add: no lock shared by every request, and never the database. Histogram samples wait in the
//! recorder until they are folded into their buckets: a scrape does that, and so does a thread that
//! keeps the recorder tidy every few seconds, so memory stays bounded when nobody scrapes.
//!
//! Waiting for a database connection: the pool ([`goblin_core::db::connect`]) has sqlx report how
//! long every acquire took, as a tracing event (target [`ACQUIRE_TARGET`]); [`PoolAcquireLayer`]
//! turns those into `goblin_db_pool_acquire_wait_seconds` (every acquire) and
//! `goblin_db_pool_acquire_waits_total` (acquires that took [`ACQUIRE_WAIT`] or more: handing over an
//! idle connection takes microseconds, so those callers waited for one to be returned or opened).

use std::{
    panic::AssertUnwindSafe,
    sync::OnceLock,
    time::{Duration, Instant},
};

use axum::{
    Json,
    extract::{MatchedPath, Request},
    http::{HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures_util::FutureExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    filter::{LevelFilter, Targets},
    layer::{Context, Layer},
};

/// The request id header, taken from the request (when well formed) or generated.
pub const REQUEST_ID: &str = "x-request-id";

/// Latency buckets (seconds) of request, gateway and task histograms.
const LATENCY_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
const TASK_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 86_400.0];
/// Connection acquire buckets (seconds): most acquires take microseconds.
const ACQUIRE_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The tracing target of sqlx's event after each pool acquire, with `acquired_after_secs`.
pub const ACQUIRE_TARGET: &str = "sqlx::pool::acquire";
/// An acquire that took this long or longer counts as a wait.
pub const ACQUIRE_WAIT: Duration = Duration::from_millis(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full("goblin_task_duration_seconds".into()), TASK_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("goblin_db_pool_acquire_wait_seconds".into()),
                    ACQUIRE_BUCKETS,
                )
            })
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS));
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(e) => {
                tracing::warn!(error = %e, "could not set the histogram buckets; using summaries");
                PrometheusBuilder::new().build_recorder()
            }
        };
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "another metrics recorder is installed; /metrics shows only what reaches this one"
            );
        }
        describe();
        let tidy = handle.clone();
        let upkeep = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                tidy.run_upkeep();
            }
        });
        if let Err(e) = upkeep {
            tracing::warn!(error = %e, "could not start the metrics upkeep thread; scrapes still do it");
        }
        handle
    })
}

/// Records sqlx's pool acquire events (see the module documentation). Install it with
/// [`PoolAcquireLayer::filter`], which lets only those events through.
pub struct PoolAcquireLayer;

impl PoolAcquireLayer {
    /// Only sqlx's acquire events, at any level.
    pub fn filter() -> Targets {
        Targets::new().with_target(ACQUIRE_TARGET, LevelFilter::TRACE)
    }
}

impl<S: Subscriber> Layer<S> for PoolAcquireLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        struct Took(Option<f64>);
        impl Visit for Took {
            fn record_f64(&mut self, field: &Field, value: f64) {
                if field.name() == "acquired_after_secs" {
                    self.0 = Some(value);
                }
            }

            fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
        }
        if event.metadata().target() != ACQUIRE_TARGET {
            return;
        }
        let mut took = Took(None);
        event.record(&mut took);
        if let Some(secs) = took.0.filter(|s| s.is_finite() && *s >= 0.0) {
            record_acquire(secs);
        }
    }
}

/// Counts one pool acquire that took `secs`.
pub fn record_acquire(secs: f64) {
    metrics::histogram!("goblin_db_pool_acquire_wait_seconds").record(secs);
    if secs >= ACQUIRE_WAIT.as_secs_f64() {
        metrics::counter!("goblin_db_pool_acquire_waits_total").increment(1);
    }
}

/// Help texts of the series recorded on the request path.
fn describe() {
    metrics::describe_counter!(
        "goblin_http_requests_total",
        "HTTP requests by method, matched route and status"
    );
    metrics::describe_histogram!(
        "goblin_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to the response head (streams keep going after it), by method, matched route and status"
    );
    metrics::describe_counter!(
        "goblin_gateway_requests_total",
        "Gateway requests by answering provider id, model and outcome"
    );
    metrics::describe_counter!("goblin_gateway_attempts_total", "Gateway attempts sent to a provider");
    metrics::describe_counter!(
        "goblin_gateway_errors_total",
        "Gateway attempts that failed for their provider"
    );
    metrics::describe_histogram!(
        "goblin_gateway_request_duration_seconds",
        metrics::Unit::Seconds,
        "Gateway request latency"
    );
    metrics::describe_histogram!(
        "goblin_gateway_ttft_seconds",
        metrics::Unit::Seconds,
        "Time to the first token of streamed answers"
    );
    metrics::describe_counter!("goblin_gateway_tokens_total", "Tokens in and out");
    metrics::describe_counter!(
        "goblin_gateway_cost_micro_usd_total",
        "Cost of answered requests, in micro-USD"
    );
    metrics::describe_counter!(
        "goblin_gateway_circuit_transitions_total",
        "Circuit breakers opening and closing"
    );
    metrics::describe_counter!("goblin_passkey_signins_total", "Passkey sign-ins by outcome");
    metrics::describe_counter!(
        "goblin_exceptions_captured_total",
        "Error events and panics captured by Raptor"
    );
    metrics::describe_histogram!(
        "goblin_db_pool_acquire_wait_seconds",
        metrics::Unit::Seconds,
        "Time each database query or transaction took to get a pool connection (as sqlx measures it)"
    );
    metrics::describe_counter!(
        "goblin_db_pool_acquire_waits_total",
        "Pool connection acquires that had to wait (took 5 ms or more): every connection was in use, or one had to be opened"
    );
    // Shown from the start, at zero, rather than after the first sign-in.
    for outcome in ["success", "failure"] {
        metrics::counter!("goblin_passkey_signins_total", "outcome" => outcome).increment(0);
    }
    metrics::counter!("goblin_exceptions_captured_total").increment(0);
    metrics::counter!("goblin_db_pool_acquire_waits_total").increment(0);
}

/// Removes an incoming request id that is not 1 to 128 characters of letters, digits and `-_.:`,
/// so that one is generated instead: the id goes into every log line of the request.
pub async fn sanitize_request_id(mut req: Request, next: Next) -> Response {
    let bad = req.headers().get(REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        b.is_empty() || b.len() > 128 || !b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    });
    if bad {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts the request and times it to its response head.
pub async fn http_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    let id = req.headers().get(REQUEST_ID).cloned();
    // A handler that panics answers 500 with the request id; the panic hook has already logged it
    // and captured it as an exception with the request's context, and the server goes on serving.
    // (One layer with the metrics, which count that answer too.)
    let resp = match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(_) => internal_error(id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default()),
    };
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let (count, duration) = http_series(method, route, resp.status().as_u16());
    count.increment(1);
    duration.record(started.elapsed().as_secs_f64());
    resp
}

/// The request counter and duration histogram of a method, route and status. They are made once
/// and kept: building a label set and looking it up in the registry on every request cost several
/// allocations each time.
fn http_series(method: &'static str, route: &str, status: u16) -> (metrics::Counter, metrics::Histogram) {
    type Series = Vec<(&'static str, u16, metrics::Counter, metrics::Histogram)>;
    static SERIES: OnceLock<std::sync::RwLock<std::collections::HashMap<Box<str>, Series>>> = OnceLock::new();
    let series = SERIES.get_or_init(Default::default);
    let find = |known: &Series| {
        known.iter().find(|(m, s, _, _)| *m == method && *s == status).map(|(_, _, c, h)| (c.clone(), h.clone()))
    };
    if let Some(found) =
        series.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(route).and_then(find)
    {
        return found;
    }
    let mut all = series.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    let known = all.entry(route.into()).or_default();
    if let Some(found) = find(known) {
        return found;
    }
    let labels = [("method", method.to_string()), ("route", route.to_string()), ("status", status.to_string())];
    let count = metrics::counter!("goblin_http_requests_total", &labels);
    let duration = metrics::histogram!("goblin_http_request_duration_seconds", &labels);
    known.push((method, status, count.clone(), duration.clone()));
    (count, duration)
}

/// The 500 answer: nothing about the failure, only the id to quote.
pub fn internal_error(request_id: &str) -> Response {
    let mut resp = (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(serde_json::json!({
            "error": {
                "message": format!(
                    "something went wrong on the server; quote request id {request_id} when reporting it"
                ),
                "type": "server_error",
                "request_id": request_id,
            }
        })),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}
