//! What the gateway did, written down off the request's path: one `routing_requests` row per request,
//! per-minute `provider_metrics` rollups per provider and model, and the recent health that routing
//! reads from memory.
//!
//! ```text
//!  request path (never waits)              writer task (one per process)
//!  record(r) ──try_send──► channel ───────► backlog (FIFO, ≤ max_backlog) ──≤ batch_size──► INSERT … VALUES (…),(…)
//!     │          full: drop, count, warn        │ a failed write keeps its rows: retry in 100 ms, 200 ms … 5 s
//!     └─► metrics (mutex, per minute) ◄─harvest─┤ closed minutes (and everything on flush)
//!            ▲                                  └──► rollups ──► INSERT … ON CONFLICT (provider_id, minute, model)
//!  recent() ─┘ last five minutes                                  DO UPDATE: add counts, max of percentiles
//! ```
//!
//! **Rows.** [`Records::record`] hands the request to a bounded channel with `try_send`; a full
//! channel drops the row. The writer moves rows from the channel into a bounded in-memory backlog
//! every `flush_every` and as soon as a batch's worth is waiting (it is not woken once per row),
//! also while a write is in flight or waiting to be retried. It writes the backlog's front, up to
//! `batch_size` rows in one transaction of fixed-shape statements (see `rows`): at once when a full
//! batch is waiting (or someone flushes), otherwise at most every `flush_every`. A write that fails
//! keeps its rows at the front and is retried with a backoff from 100 ms doubling to 5 s, so rows
//! queued during an outage are written after it; a full backlog drops the newest row.
//! Dropped rows are counted and reported by a warning at most once every 10 s. Inserts are
//! `ON CONFLICT (id) DO NOTHING`, so a batch retried after a failure whose outcome was unknown
//! neither duplicates nor fails.
//!
//! A row the database refuses for its own content must not hold the others back forever: when an
//! insert fails with a constraint or data error, the batch is retried one row at a time. A row
//! naming a user or provider deleted in the meantime is written with those references cleared (as
//! `ON DELETE SET NULL` would have done); a row still refused is dropped and counted. Any other error
//! (connection, missing table, timeout) is an outage: every row stays.
//!
//! **Metrics.** `record()` also updates the in-memory metrics under a mutex held for a few field
//! updates; `recent()` therefore sees a record at once. Each attempt counts for its own provider and
//! model, in the minute the request finished (the clock at `record()`):
//! - an attempt whose `error` starts with `skipped` (a target passed over, e.g. its circuit was open)
//!   was never sent and is not counted;
//! - an attempt is an error for its target when its status is 401, 403, 404, 408, 429 or 5xx, or it
//!   has no status but an `error` (timeout, connection failure). Another 4xx is the request's own
//!   fault: the target answered. This mirrors the gateway's retry rule;
//! - the last attempt answered the request: it gets the request's TTFT, tokens and cost, and is also
//!   an error when the request ended in an error it did not record itself (a stream that broke off
//!   after its first chunk). A cancelled request is not the target's error;
//! - latency percentiles are over attempts that were not errors (a timeout shows in the error rate,
//!   not as a latency); a record without attempts but with a provider and model counts as one attempt.
//!
//! Latency and TTFT samples are kept per (provider, model, minute) by reservoir sampling (Algorithm
//! R): at most 1,000 each, a uniform sample of the whole minute. Percentiles are nearest-rank;
//! [`Records::recent`] merges up to five minutes, weighting each sample by how many requests it
//! stands for.
//!
//! A minute's rollup is upserted when the minute closes, and the open minute's too on
//! [`Records::flush`]; later records for a minute already written are upserted as a further delta.
//! An upsert adds the counts, tokens and cost to the row, and keeps the larger of each percentile;
//! `health` is recomputed from the combined counts (`down` when every one of at least 3 requests
//! failed, `degraded` above a 20% error rate, else `up`). Percentiles in a row written by several
//! instances (or by one instance in several deltas) are therefore approximate: the largest of the
//! parts' percentiles, an upper bound rather than the percentile of all the requests together.
//!
//! Call [`Records::flush`] before shutting down: when the last handle is dropped the writer makes one
//! more attempt to write what it holds and then stops.

use std::{
    collections::{HashSet, VecDeque},
    future::Future,
    hash::{BuildHasher, RandomState},
    pin::Pin,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError, RwLock,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    DatabaseConnection, DbErr, EntityTrait, IdenStatic, RuntimeErr,
    sea_query::{Expr, OnConflict},
    sqlx,
};
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{
        Notify,
        mpsc::{self, error::TryRecvError},
        oneshot,
    },
    time::{Instant, MissedTickBehavior},
};
use uuid::Uuid;

use self::rows::LogRow;
use crate::{FastMap, clock::SharedClock, entities::provider_metrics};

mod rows;

/// Latency (and TTFT) samples kept per provider, model and minute.
const SAMPLES_PER_MINUTE: usize = 1_000;
/// The window of [`Records::recent`]: the current minute and the four before it.
const RECENT_MINUTES: i64 = 5;
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
const DROP_WARN_EVERY_MS: u64 = 10_000;
/// The most rows in one statement: 18 columns × 1,500 rows stays under SQLite's 32,766 parameters.
const MAX_BATCH: usize = 1_500;
/// Messages the writer takes from the channel per wake-up before it looks at its other work.
const DRAIN_PER_WAKE: usize = 1_024;
const MAX_ERROR_CHARS: usize = 2_000;
/// Column widths of `routing_requests` and `provider_metrics`.
const REQUESTED_MODEL_CHARS: usize = 192;
const ROUTE_ALIAS_CHARS: usize = 64;
const MODEL_CHARS: usize = 128;

/// One try of one target, as the gateway saw it; stored in `routing_requests.attempts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider_id: Uuid,
    pub model: String,
    /// The provider's HTTP status; `None` when none arrived (timeout, connection error, skipped).
    pub status: Option<u16>,
    pub latency_ms: u32,
    /// Why the attempt failed. Starts with `skipped` when the target was passed over without a call.
    pub error: Option<String>,
}

/// How a request ended; stored as `ok` | `error` | `cancelled`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error,
    /// The client went away before the answer was complete.
    Cancelled,
}

impl Outcome {
    /// The stored form: `ok`, `error` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Everything known about one gateway request when it ends.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub user_id: Option<Uuid>,
    pub token_id: Option<Uuid>,
    pub requested_model: String,
    pub route_alias: Option<String>,
    /// In the order they were made; the last one answered (or failed) the request.
    pub attempts: Vec<Attempt>,
    /// The target that answered.
    pub provider_id: Option<Uuid>,
    pub model: Option<String>,
    pub stream: bool,
    pub outcome: Outcome,
    pub http_status: u16,
    pub ttft_ms: Option<u32>,
    pub latency_ms: u32,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub cost_micros: i64,
    pub error: Option<String>,
}

/// Sizes and pace of the writer.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Rows the channel between the request path and the writer holds.
    pub channel: usize,
    /// Rows (and rollups) per `INSERT`; at most 1,500.
    pub batch_size: usize,
    /// How long rows may wait for a batch to fill; also how often closed minutes are rolled up.
    pub flush_every: Duration,
    /// Rows the writer holds while the database is slow or down, including the batch being written.
    pub max_backlog: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            channel: 10_000,
            batch_size: 500,
            flush_every: Duration::from_millis(250),
            max_backlog: 100_000,
        }
    }
}

impl WriterConfig {
    fn normalized(self) -> Self {
        Self {
            channel: self.channel.max(1),
            batch_size: self.batch_size.clamp(1, MAX_BATCH),
            flush_every: self.flush_every.max(Duration::from_millis(1)),
            max_backlog: self.max_backlog.max(1),
        }
    }
}

/// A provider and model's last five minutes, from this process's memory.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RecentHealth {
    pub requests: u64,
    /// Errors / requests; 0 without requests.
    pub error_rate: f64,
    pub latency_p50_ms: Option<u32>,
    pub ttft_p50_ms: Option<u32>,
}

/// Counters for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    /// Rows written to `routing_requests`.
    pub written: u64,
    /// Rows given up: channel or backlog full, or refused by the database.
    pub dropped: u64,
    /// Rows accepted and not yet written (in the channel, the backlog, or the write in flight).
    pub pending: u64,
    /// Statements that failed (each retry counts).
    pub write_errors: u64,
}

/// The request log and metrics; shared as `Arc<Records>`.
pub struct Records {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    /// Unread rows at which the writer is woken: a batch's worth.
    wake_at: usize,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

enum Msg {
    Row(Box<RequestRecord>),
    Flush(oneshot::Sender<()>),
}

impl Records {
    /// Starts the writer task; returns the handle used on the request path.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(db: DatabaseConnection, clock: SharedClock, config: WriterConfig) -> Arc<Records> {
        let config = config.normalized();
        let (tx, rx) = mpsc::channel(config.channel);
        let shared = Arc::new(Shared::new(clock));
        let wake_at = config.batch_size.min(config.channel);
        tokio::spawn(Writer::new(db, shared.clone(), config).run(rx));
        Arc::new(Records { tx, shared, wake_at })
    }

    /// Queues a row and feeds the in-memory metrics (each attempt counts for its provider and model;
    /// see the module documentation for what is an error). Never blocks and never waits for the
    /// database: when the queue is full the row is dropped and counted.
    pub fn record(&self, r: RequestRecord) {
        self.shared.observe(&r);
        export(&self.shared.series, &r);
        // Counted before sending so the writer can never take it off first.
        self.shared.pending.fetch_add(1, Relaxed);
        let unread = self.shared.unread.fetch_add(1, Relaxed) + 1;
        if self.tx.try_send(Msg::Row(Box::new(r))).is_err() {
            self.shared.unread.fetch_sub(1, Relaxed);
            self.shared.pending.fetch_sub(1, Relaxed);
            self.shared.note_dropped(1);
        } else if unread == self.wake_at {
            // The writer looks at the channel on its own every `flush_every`; it is woken early only
            // for a full batch, not once per request.
            self.shared.wake.notify_one();
        }
    }

    /// Requests, error rate, and p50 latency and TTFT of `provider_id`/`model` over the current
    /// minute and the four before it; from memory only, so it reflects this process alone.
    pub fn recent(&self, provider_id: Uuid, model: &str) -> RecentHealth {
        let from = minute_of(self.shared.clock.now()) - TimeDelta::minutes(RECENT_MINUTES - 1);
        let (mut requests, mut errors) = (0u64, 0u64);
        let (mut latency, mut ttft) = (Vec::new(), Vec::new());
        {
            let metrics = lock(&self.shared.metrics);
            let Some(buckets) = metrics.by_provider.get(&provider_id).and_then(|m| m.get(model)) else {
                return RecentHealth::default();
            };
            for b in buckets.iter().filter(|b| b.minute >= from) {
                requests += b.totals.requests;
                errors += b.totals.errors;
                b.latency.weighted(&mut latency);
                b.ttft.weighted(&mut ttft);
            }
        }
        RecentHealth {
            requests,
            error_rate: if requests == 0 { 0.0 } else { errors as f64 / requests as f64 },
            latency_p50_ms: weighted_median(&mut latency),
            ttft_p50_ms: weighted_median(&mut ttft),
        }
    }

    /// Rows written, dropped, waiting (channel + backlog), and failed statements.
    pub fn stats(&self) -> RecordStats {
        let s = &self.shared;
        RecordStats {
            written: s.written.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            pending: s.pending.load(Relaxed),
            write_errors: s.write_errors.load(Relaxed),
        }
    }

    /// Waits until everything recorded before the call is written (rows, and the metric rollups
    /// including the open minute's), or `timeout` passes; returns whether it finished. For tests
    /// and shutdown.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, finished) = oneshot::channel();
        tokio::time::timeout(timeout, async {
            self.shared.wake.notify_one(); // the channel may be full
            let sent = self.tx.send(Msg::Flush(done)).await.is_ok();
            self.shared.wake.notify_one();
            sent && finished.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

/// Counts a finished request in the Prometheus metrics (`/metrics`), labelled by provider id and
/// model: requests by outcome, attempts and their errors (by the rule of [`Shared::observe`]),
/// latency and TTFT histograms, tokens and cost.
fn export(series: &SeriesCache, r: &RequestRecord) {
    let answered = series.of(r.provider_id, r.model.as_deref().unwrap_or("none"));
    answered.requests(r.outcome).increment(1);
    for a in r.attempts.iter().filter(|a| !a.error.as_deref().is_some_and(|e| e.starts_with("skipped"))) {
        let tried = series.of(Some(a.provider_id), &a.model);
        tried.attempts().increment(1);
        if attempt_failed(a) {
            tried.errors().increment(1);
        }
    }
    if r.outcome == Outcome::Error && r.attempts.is_empty() {
        answered.errors().increment(1);
    }
    answered.duration().record(f64::from(r.latency_ms) / 1000.0);
    if let Some(t) = r.ttft_ms {
        answered.ttft().record(f64::from(t) / 1000.0);
    }
    if r.tokens_in > 0 || r.tokens_out > 0 {
        answered.tokens_in().increment(r.tokens_in);
        answered.tokens_out().increment(r.tokens_out);
    }
    if r.cost_micros > 0 {
        answered.cost().increment(r.cost_micros as u64);
    }
}

/// The gateway's Prometheus series, per provider and model, each made on first use and kept:
/// building a label set and looking it up in the registry cost several allocations per series and
/// request. A series belongs to the recorder installed when it was made (one per process).
#[derive(Default)]
struct SeriesCache {
    by_provider: RwLock<FastMap<Option<Uuid>, SeriesByModel>>,
}

type SeriesByModel = FastMap<Box<str>, Arc<Series>>;

impl SeriesCache {
    fn of(&self, provider_id: Option<Uuid>, model: &str) -> Arc<Series> {
        let read = |map: &FastMap<Option<Uuid>, SeriesByModel>| {
            map.get(&provider_id).and_then(|models| models.get(model)).cloned()
        };
        if let Some(found) = read(&self.by_provider.read().unwrap_or_else(PoisonError::into_inner)) {
            return found;
        }
        let mut all = self.by_provider.write().unwrap_or_else(PoisonError::into_inner);
        all.entry(provider_id)
            .or_default()
            .entry(model.into())
            .or_insert_with(|| {
                Arc::new(Series {
                    provider: provider_id.map_or_else(|| "none".to_owned(), |p| p.to_string()),
                    model: model.to_owned(),
                    ..Series::default()
                })
            })
            .clone()
    }
}

/// One provider and model's series; see [`export`] for what each counts.
#[derive(Default)]
struct Series {
    provider: String,
    model: String,
    requests: [OnceLock<metrics::Counter>; 3],
    attempts: OnceLock<metrics::Counter>,
    errors: OnceLock<metrics::Counter>,
    duration: OnceLock<metrics::Histogram>,
    ttft: OnceLock<metrics::Histogram>,
    tokens_in: OnceLock<metrics::Counter>,
    tokens_out: OnceLock<metrics::Counter>,
    cost: OnceLock<metrics::Counter>,
}

impl Series {
    fn labels(&self) -> [(&'static str, String); 2] {
        [("provider", self.provider.clone()), ("model", self.model.clone())]
    }

    fn requests(&self, outcome: Outcome) -> &metrics::Counter {
        let slot = match outcome {
            Outcome::Ok => 0,
            Outcome::Error => 1,
            Outcome::Cancelled => 2,
        };
        self.requests[slot].get_or_init(|| {
            let [provider, model] = self.labels();
            metrics::counter!(
                "goblin_gateway_requests_total",
                &[provider, model, ("outcome", outcome.as_str().to_owned())]
            )
        })
    }

    fn attempts(&self) -> &metrics::Counter {
        self.attempts.get_or_init(|| metrics::counter!("goblin_gateway_attempts_total", &self.labels()))
    }

    fn errors(&self) -> &metrics::Counter {
        self.errors.get_or_init(|| metrics::counter!("goblin_gateway_errors_total", &self.labels()))
    }

    fn duration(&self) -> &metrics::Histogram {
        self.duration
            .get_or_init(|| metrics::histogram!("goblin_gateway_request_duration_seconds", &self.labels()))
    }

    fn ttft(&self) -> &metrics::Histogram {
        self.ttft.get_or_init(|| metrics::histogram!("goblin_gateway_ttft_seconds", &self.labels()))
    }

    fn tokens(&self, direction: &'static str) -> metrics::Counter {
        let [provider, model] = self.labels();
        metrics::counter!(
            "goblin_gateway_tokens_total",
            &[provider, model, ("direction", direction.to_owned())]
        )
    }

    fn tokens_in(&self) -> &metrics::Counter {
        self.tokens_in.get_or_init(|| self.tokens("in"))
    }

    fn tokens_out(&self) -> &metrics::Counter {
        self.tokens_out.get_or_init(|| self.tokens("out"))
    }

    fn cost(&self) -> &metrics::Counter {
        self.cost.get_or_init(|| metrics::counter!("goblin_gateway_cost_micro_usd_total", &self.labels()))
    }
}

/// State shared by the handle and the writer task.
struct Shared {
    clock: SharedClock,
    metrics: Mutex<Metrics>,
    series: SeriesCache,
    /// Messages sent and not yet taken off the channel by the writer (at least as many as there are).
    unread: AtomicUsize,
    /// Wakes the writer to read the channel before its next tick.
    wake: Notify,
    written: AtomicU64,
    dropped: AtomicU64,
    pending: AtomicU64,
    write_errors: AtomicU64,
    /// Dropped rows not yet reported in a warning.
    unreported: AtomicU64,
    /// Milliseconds after `started` of the last drop warning; `u64::MAX` before the first.
    last_warned_ms: AtomicU64,
    started: std::time::Instant,
    /// Row batches written, and the largest; tests check the batching with them.
    batches: AtomicU64,
    largest_batch: AtomicU64,
    /// Times the writer read the channel; a test checks it is not once per row.
    reads: AtomicU64,
}

impl Shared {
    fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            metrics: Mutex::new(Metrics::default()),
            series: SeriesCache::default(),
            unread: AtomicUsize::new(0),
            wake: Notify::new(),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
            last_warned_ms: AtomicU64::new(u64::MAX),
            started: std::time::Instant::now(),
            batches: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }
    }

    fn note_dropped(&self, n: u64) {
        if n > 0 {
            self.dropped.fetch_add(n, Relaxed);
            self.unreported.fetch_add(n, Relaxed);
            self.report_drops(false);
        }
    }

    /// Logs the drops since the last warning, at most once every 10 s unless `now`.
    fn report_drops(&self, now: bool) {
        if self.unreported.load(Relaxed) == 0 {
            return;
        }
        let at = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_warned_ms.load(Relaxed);
        if !now && last != u64::MAX && at.saturating_sub(last) < DROP_WARN_EVERY_MS {
            return;
        }
        if self.last_warned_ms.compare_exchange(last, at, Relaxed, Relaxed).is_err() {
            return; // another thread is reporting
        }
        let n = self.unreported.swap(0, Relaxed);
        if n > 0 {
            tracing::warn!(
                dropped = n,
                dropped_total = self.dropped.load(Relaxed),
                "request log rows dropped: the writer's queue or backlog is full (the database is slow or \
                 down) or the database refused them"
            );
        }
    }

    /// Adds a request's attempts to the metrics of the current minute.
    fn observe(&self, r: &RequestRecord) {
        let single;
        let attempts: &[Attempt] = match (r.attempts.is_empty(), r.provider_id, &r.model) {
            (false, _, _) => &r.attempts,
            (true, Some(provider_id), Some(model)) => {
                single = [Attempt {
                    provider_id,
                    model: model.clone(),
                    status: Some(r.http_status),
                    latency_ms: r.latency_ms,
                    error: r.error.clone(),
                }];
                &single
            }
            (true, _, _) => return,
        };
        let minute = minute_of(self.clock.now());
        let last = attempts.len() - 1;
        let mut metrics = lock(&self.metrics);
        for (i, a) in attempts.iter().enumerate() {
            if a.error.as_deref().is_some_and(|e| e.starts_with("skipped")) {
                continue;
            }
            let answering = i == last;
            let failed = attempt_failed(a)
                || (answering
                    && r.outcome == Outcome::Error
                    && a.error.is_none()
                    && !request_fault(r.http_status));
            let b = metrics.bucket(a.provider_id, &a.model, minute);
            b.totals.requests += 1;
            if failed {
                b.totals.errors += 1;
            } else {
                b.latency.push(a.latency_ms);
            }
            if answering {
                b.totals.tokens_in = b.totals.tokens_in.saturating_add(r.tokens_in);
                b.totals.tokens_out = b.totals.tokens_out.saturating_add(r.tokens_out);
                b.totals.cost_micros = b.totals.cost_micros.saturating_add(r.cost_micros);
                if let Some(t) = r.ttft_ms {
                    b.ttft.push(t);
                }
            }
        }
    }

    /// Takes what is new in closed minutes (every minute when `all`) as rollups, and forgets
    /// minutes that are written and older than the recent window.
    fn harvest(&self, all: bool) -> Vec<Rollup> {
        let now = minute_of(self.clock.now());
        let keep_from = now - TimeDelta::minutes(RECENT_MINUTES - 1);
        let mut taken = Vec::new();
        {
            let mut metrics = lock(&self.metrics);
            metrics.by_provider.retain(|provider_id, models| {
                models.retain(|model, buckets| {
                    for b in buckets.iter_mut().filter(|b| (all || b.minute < now) && b.totals != b.taken) {
                        taken.push((
                            *provider_id,
                            clean(model, MODEL_CHARS),
                            b.minute,
                            b.totals.minus(b.taken),
                            b.latency.samples.clone(),
                            b.ttft.samples.clone(),
                        ));
                        b.taken = b.totals;
                    }
                    while buckets.front().is_some_and(|b| b.minute < keep_from && b.totals == b.taken) {
                        buckets.pop_front();
                    }
                    !buckets.is_empty()
                });
                !models.is_empty()
            });
        }
        // Percentiles outside the lock: the request path must not wait for the sorting.
        taken
            .into_iter()
            .map(|(provider_id, model, minute, delta, mut latency, mut ttft)| Rollup {
                provider_id,
                model,
                minute,
                delta,
                latency_p50_ms: percentile(&mut latency, 50),
                latency_p95_ms: percentile(&mut latency, 95),
                ttft_p50_ms: percentile(&mut ttft, 50),
            })
            .collect()
    }
}

/// Whether an attempt failed through its target (see the module documentation).
fn attempt_failed(a: &Attempt) -> bool {
    match a.status {
        Some(s) if request_fault(s) => false,
        Some(s) if s >= 400 => true,
        _ => a.error.is_some(),
    }
}

/// A 4xx that is the request's own fault rather than the target's.
fn request_fault(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 403 | 404 | 408 | 429)
}

/// `down` when every one of at least 3 requests failed, `degraded` above a 20% error rate, else `up`.
fn health(requests: u64, errors: u64) -> &'static str {
    if requests >= 3 && errors == requests {
        "down"
    } else if errors.saturating_mul(5) > requests {
        "degraded"
    } else {
        "up"
    }
}

fn minute_of(t: DateTime<Utc>) -> DateTime<Utc> {
    let s = t.timestamp();
    DateTime::from_timestamp(s - s.rem_euclid(60), 0).unwrap_or(t)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// At most `max` characters, without NUL (which PostgreSQL text refuses).
pub(super) fn clean(s: &str, max: usize) -> String {
    if s.len() <= max && !s.contains('\0') {
        return s.to_owned();
    }
    s.chars().filter(|c| *c != '\0').take(max).collect()
}

/// Nearest-rank percentile (`pct` of 100) of equally weighted samples.
fn percentile(samples: &mut [u32], pct: usize) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = (samples.len() * pct).div_ceil(100).max(1);
    Some(samples[rank - 1])
}

/// The nearest-rank median of samples that each stand for `weight` requests.
fn weighted_median(samples: &mut [(u32, f64)]) -> Option<u32> {
    samples.sort_unstable_by_key(|s| s.0);
    let half = samples.iter().map(|s| s.1).sum::<f64>() / 2.0;
    let mut seen = 0.0;
    for &(v, w) in samples.iter() {
        seen += w;
        if seen >= half {
            return Some(v);
        }
    }
    samples.last().map(|s| s.0)
}

#[derive(Default)]
struct Metrics {
    /// Minutes in ascending order per provider and model.
    by_provider: FastMap<Uuid, FastMap<String, VecDeque<Bucket>>>,
}

impl Metrics {
    fn bucket(&mut self, provider_id: Uuid, model: &str, minute: DateTime<Utc>) -> &mut Bucket {
        let models = self.by_provider.entry(provider_id).or_default();
        if !models.contains_key(model) {
            models.insert(model.to_owned(), VecDeque::new());
        }
        let Some(buckets) = models.get_mut(model) else { unreachable!("inserted above") };
        // Nearly always the newest minute; an older one only when the clock stepped back.
        let at = buckets.iter().rposition(|b| b.minute <= minute);
        let i = match at {
            Some(i) if buckets[i].minute == minute => i,
            _ => {
                let i = at.map_or(0, |i| i + 1);
                buckets.insert(i, Bucket::new(minute));
                i
            }
        };
        &mut buckets[i]
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Totals {
    requests: u64,
    errors: u64,
    tokens_in: u64,
    tokens_out: u64,
    cost_micros: i64,
}

impl Totals {
    fn minus(self, o: Totals) -> Totals {
        Totals {
            requests: self.requests - o.requests,
            errors: self.errors - o.errors,
            tokens_in: self.tokens_in.saturating_sub(o.tokens_in),
            tokens_out: self.tokens_out.saturating_sub(o.tokens_out),
            cost_micros: self.cost_micros.saturating_sub(o.cost_micros),
        }
    }
}

/// One provider, model and minute.
struct Bucket {
    minute: DateTime<Utc>,
    totals: Totals,
    /// What has been handed to the writer as rollups already.
    taken: Totals,
    latency: Reservoir,
    ttft: Reservoir,
}

impl Bucket {
    fn new(minute: DateTime<Utc>) -> Self {
        let seed = RandomState::new().hash_one(minute.timestamp());
        Self {
            minute,
            totals: Totals::default(),
            taken: Totals::default(),
            latency: Reservoir::new(seed),
            ttft: Reservoir::new(seed ^ 0x9e37_79b9_7f4a_7c15),
        }
    }
}

/// A uniform sample of at most [`SAMPLES_PER_MINUTE`] values (Algorithm R).
struct Reservoir {
    seen: u64,
    samples: Vec<u32>,
    rng: u64,
}

impl Reservoir {
    fn new(seed: u64) -> Self {
        Self { seen: 0, samples: Vec::new(), rng: seed }
    }

    fn push(&mut self, v: u32) {
        self.seen += 1;
        if self.samples.len() < SAMPLES_PER_MINUTE {
            self.samples.push(v);
            return;
        }
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let j = z % self.seen;
        if let Ok(j) = usize::try_from(j)
            && j < SAMPLES_PER_MINUTE
        {
            self.samples[j] = v;
        }
    }

    /// Appends the samples, each weighted by how many values it stands for.
    fn weighted(&self, out: &mut Vec<(u32, f64)>) {
        if !self.samples.is_empty() {
            let w = self.seen as f64 / self.samples.len() as f64;
            out.extend(self.samples.iter().map(|&v| (v, w)));
        }
    }
}

/// What one provider, model and minute added since the last rollup of it.
#[derive(Clone, Debug)]
struct Rollup {
    provider_id: Uuid,
    model: String,
    minute: DateTime<Utc>,
    delta: Totals,
    latency_p50_ms: Option<u32>,
    latency_p95_ms: Option<u32>,
    ttft_p50_ms: Option<u32>,
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The stored row: strings cut to their columns, numbers clamped to theirs.
fn to_row(r: RequestRecord) -> LogRow {
    let attempts: Vec<Attempt> = r
        .attempts
        .into_iter()
        .map(|a| Attempt {
            model: clean(&a.model, MODEL_CHARS),
            error: a.error.as_deref().map(|e| clean(e, MAX_ERROR_CHARS)),
            ..a
        })
        .collect();
    LogRow {
        id: r.id,
        created_at: r.created_at,
        user_id: r.user_id,
        token_id: r.token_id,
        requested_model: clean(&r.requested_model, REQUESTED_MODEL_CHARS),
        route_alias: r.route_alias.as_deref().map(|s| clean(s, ROUTE_ALIAS_CHARS)),
        attempts: serde_json::to_string(&attempts).unwrap_or_else(|_| "[]".to_owned()),
        provider_id: r.provider_id,
        model: r.model.as_deref().map(|s| clean(s, MODEL_CHARS)),
        stream: r.stream,
        status: r.outcome.as_str(),
        http_status: i32::from(r.http_status),
        ttft_ms: r.ttft_ms.map(to_i32),
        latency_ms: to_i32(r.latency_ms),
        tokens_in: to_i64(r.tokens_in),
        tokens_out: to_i64(r.tokens_out),
        cost_micros: r.cost_micros,
        error: r.error.as_deref().map(|e| clean(e, MAX_ERROR_CHARS)),
    }
}

/// Something the writer inserts in batches.
trait Batch: Clone + Send + Sync + 'static {
    /// For log messages.
    const KIND: &'static str;
    fn insert(db: &DatabaseConnection, items: &[Self]) -> impl Future<Output = Result<(), DbErr>> + Send;
    /// Clears references to rows that may have been deleted; false when there is nothing to clear.
    fn clear_references(&mut self) -> bool;
}

impl Batch for LogRow {
    const KIND: &'static str = "request log row";

    fn insert(db: &DatabaseConnection, items: &[Self]) -> impl Future<Output = Result<(), DbErr>> + Send {
        rows::insert(db, items)
    }

    fn clear_references(&mut self) -> bool {
        let had = self.user_id.is_some() || self.provider_id.is_some();
        self.user_id = None;
        self.provider_id = None;
        had
    }
}

impl Batch for Rollup {
    const KIND: &'static str = "metrics rollup";

    fn insert(db: &DatabaseConnection, items: &[Self]) -> impl Future<Output = Result<(), DbErr>> + Send {
        let rows = items.iter().map(|r| provider_metrics::ActiveModel {
            id: NotSet,
            provider_id: Set(r.provider_id),
            model: Set(r.model.clone()),
            minute: Set(r.minute),
            requests: Set(to_i64(r.delta.requests)),
            errors: Set(to_i64(r.delta.errors)),
            latency_p50_ms: Set(r.latency_p50_ms.map(to_i32)),
            latency_p95_ms: Set(r.latency_p95_ms.map(to_i32)),
            ttft_p50_ms: Set(r.ttft_p50_ms.map(to_i32)),
            tokens_in: Set(to_i64(r.delta.tokens_in)),
            tokens_out: Set(to_i64(r.delta.tokens_out)),
            cost_micros: Set(r.delta.cost_micros),
            health: Set(health(r.delta.requests, r.delta.errors).to_owned()),
        });
        let query = provider_metrics::Entity::insert_many(rows).on_conflict(merge_rollup());
        async move { query.exec_without_returning(db).await.map(drop) }
    }

    fn clear_references(&mut self) -> bool {
        false // the provider is gone, and with it its metrics
    }
}

/// `ON CONFLICT (provider_id, minute, model) DO UPDATE`: counts add up, percentiles keep the larger
/// value, health follows the combined counts. The same SQL for SQLite and PostgreSQL.
fn merge_rollup() -> OnConflict {
    use provider_metrics::Column as C;
    let old = |c: C| format!(r#""provider_metrics"."{}""#, c.as_str());
    let new = |c: C| format!(r#""excluded"."{}""#, c.as_str());
    let mut on = OnConflict::columns([C::ProviderId, C::Minute, C::Model]);
    for c in [C::Requests, C::Errors, C::TokensIn, C::TokensOut, C::CostMicros] {
        on.value(c, Expr::cust(format!("{} + {}", old(c), new(c))));
    }
    for c in [C::LatencyP50Ms, C::LatencyP95Ms, C::TtftP50Ms] {
        let (o, n) = (old(c), new(c));
        on.value(
            c,
            Expr::cust(format!(
                "CASE WHEN {n} IS NULL THEN {o} WHEN {o} IS NULL OR {n} > {o} THEN {n} ELSE {o} END"
            )),
        );
    }
    let requests = format!("({} + {})", old(C::Requests), new(C::Requests));
    let errors = format!("({} + {})", old(C::Errors), new(C::Errors));
    on.value(
        C::Health,
        Expr::cust(format!(
            "CASE WHEN {errors} = {requests} AND {requests} >= 3 THEN 'down' \
             WHEN {errors} * 5 > {requests} THEN 'degraded' ELSE 'up' END"
        )),
    );
    on
}

fn database_error(e: &DbErr) -> Option<&sqlx::Error> {
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e.as_ref()),
        _ => None,
    }
}

/// Whether the database refused the statement for what a row holds (a constraint, a value it cannot
/// store) rather than for its own state (down, timed out, table missing).
fn is_row_fault(e: &DbErr) -> bool {
    let d = match database_error(e) {
        Some(sqlx::Error::Database(d)) => d,
        Some(sqlx::Error::Encode(_)) => return true,
        _ => return false,
    };
    if !matches!(d.kind(), sqlx::error::ErrorKind::Other) {
        return true; // unique, foreign key, not null, check
    }
    if let Some(pg) = d.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        // 21: cardinality (one upsert touching a row twice), 22: data exception, 23: integrity.
        return ["21", "22", "23"].iter().any(|class| pg.code().starts_with(class));
    }
    if d.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let primary = d.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
        // SQLITE_TOOBIG, SQLITE_CONSTRAINT, SQLITE_MISMATCH, SQLITE_RANGE
        return matches!(primary, Some(18 | 19 | 20 | 25));
    }
    false
}

fn is_foreign_key_fault(e: &DbErr) -> bool {
    matches!(database_error(e), Some(sqlx::Error::Database(d)) if d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}

/// The outcome of writing one batch.
struct Written<T> {
    /// Items written, or already present.
    written: usize,
    /// Items the database refused for their content; given up.
    refused: usize,
    /// Items to try again, in their order, ahead of the rest.
    retry: Vec<T>,
    /// Statements that failed.
    failures: u64,
    /// Why the retried items were not written.
    error: Option<DbErr>,
}

impl<T> Written<T> {
    fn untried(items: Vec<T>) -> Self {
        Self { written: 0, refused: 0, retry: items, failures: 0, error: None }
    }
}

/// Inserts `items` with one statement; when a row's content is refused, one row at a time so the
/// others still go in. Stops at the first failure that is not a row's fault.
async fn write_batch<T: Batch>(db: &DatabaseConnection, items: Vec<T>) -> Written<T> {
    let mut out = Written::untried(Vec::new());
    if items.is_empty() {
        return out;
    }
    match T::insert(db, &items).await {
        Ok(()) => {
            out.written = items.len();
            return out;
        }
        Err(e) if !is_row_fault(&e) => {
            out.failures = 1;
            out.retry = items;
            out.error = Some(e);
            return out;
        }
        Err(_) => out.failures = 1,
    }
    let mut rest = items.into_iter();
    while let Some(mut item) = rest.next() {
        let mut result = T::insert(db, std::slice::from_ref(&item)).await;
        if let Err(e) = &result
            && is_foreign_key_fault(e)
            && item.clear_references()
        {
            out.failures += 1;
            result = T::insert(db, std::slice::from_ref(&item)).await;
        }
        match result {
            Ok(()) => out.written += 1,
            Err(e) if is_row_fault(&e) => {
                out.failures += 1;
                out.refused += 1;
                tracing::warn!(error = %e, "the database refused a {}; it is dropped", T::KIND);
            }
            Err(e) => {
                out.failures += 1;
                out.retry.push(item);
                out.retry.extend(rest);
                out.error = Some(e);
                break;
            }
        }
    }
    out
}

struct JobResult {
    rows: Written<LogRow>,
    rollups: Written<Rollup>,
}

type Job = Pin<Box<dyn Future<Output = JobResult> + Send>>;

/// A flush waiting for the rows and rollups queued before it.
struct Waiter {
    rows: u64,
    rollups: u64,
    done: oneshot::Sender<()>,
}

struct Writer {
    db: DatabaseConnection,
    shared: Arc<Shared>,
    config: WriterConfig,
    backlog: VecDeque<LogRow>,
    rollups: VecDeque<Rollup>,
    in_flight_rows: usize,
    in_flight_rollups: usize,
    /// Rows and rollups ever queued, and those finished (written or given up), in queue order.
    rows_in: u64,
    rows_done: u64,
    rollups_in: u64,
    rollups_done: u64,
    waiters: Vec<Waiter>,
    last_start: Option<Instant>,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// Failed writes in a row.
    failing: u64,
    /// Every handle is gone: write what is held, once, and stop.
    closed: bool,
    gave_up: bool,
}

impl Writer {
    fn new(db: DatabaseConnection, shared: Arc<Shared>, config: WriterConfig) -> Self {
        Self {
            db,
            shared,
            config,
            backlog: VecDeque::new(),
            rollups: VecDeque::new(),
            in_flight_rows: 0,
            in_flight_rollups: 0,
            rows_in: 0,
            rows_done: 0,
            rollups_in: 0,
            rollups_done: 0,
            waiters: Vec::new(),
            last_start: None,
            retry_at: None,
            backoff: RETRY_FIRST,
            failing: 0,
            closed: false,
            gave_up: false,
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        let mut tick = tokio::time::interval(self.config.flush_every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut job: Option<Job> = None;
        loop {
            if job.is_none()
                && self.closed
                && (self.gave_up || (self.backlog.is_empty() && self.rollups.is_empty()))
            {
                break;
            }
            let due = if job.is_none() { self.due() } else { None };
            tokio::select! {
                () = self.shared.wake.notified(), if !self.closed => self.read(&mut rx),
                result = async { job.as_mut().expect("guarded by is_some").await }, if job.is_some() => {
                    job = None;
                    self.finish(result);
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    job = Some(self.start_job());
                }
                _ = tick.tick() => {
                    if !self.closed {
                        self.read(&mut rx);
                    }
                    let rollups = self.shared.harvest(false);
                    self.queue_rollups(rollups);
                    self.shared.report_drops(false);
                    self.settle_waiters();
                }
            }
        }
        let lost = self.backlog.len();
        if lost > 0 {
            tracing::warn!(
                rows = lost,
                rollups = self.rollups.len(),
                "request log writer stopped with rows unwritten"
            );
        }
        self.shared.report_drops(true);
    }

    /// Takes what the channel holds (up to [`DRAIN_PER_WAKE`] messages; the writer wakes again at
    /// once for the rest) and notices when every handle is gone.
    fn read(&mut self, rx: &mut mpsc::Receiver<Msg>) {
        self.shared.reads.fetch_add(1, Relaxed);
        for _ in 0..DRAIN_PER_WAKE {
            match rx.try_recv() {
                Ok(msg) => {
                    if matches!(msg, Msg::Row(_)) {
                        self.shared.unread.fetch_sub(1, Relaxed);
                    }
                    self.accept(msg);
                }
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => return self.close(),
            }
        }
        self.shared.wake.notify_one();
    }

    fn accept(&mut self, msg: Msg) {
        match msg {
            Msg::Row(r) => {
                if self.backlog.len() + self.in_flight_rows >= self.config.max_backlog {
                    self.shared.pending.fetch_sub(1, Relaxed);
                    self.shared.note_dropped(1);
                    return;
                }
                self.backlog.push_back(to_row(*r));
                self.rows_in += 1;
            }
            Msg::Flush(done) => {
                let rollups = self.shared.harvest(true);
                self.queue_rollups(rollups);
                self.waiters.push(Waiter { rows: self.rows_in, rollups: self.rollups_in, done });
                self.settle_waiters();
            }
        }
    }

    fn close(&mut self) {
        self.closed = true;
        let rollups = self.shared.harvest(true);
        self.queue_rollups(rollups);
    }

    fn queue_rollups(&mut self, rollups: Vec<Rollup>) {
        let mut lost = 0usize;
        for r in rollups {
            if self.rollups.len() + self.in_flight_rollups >= self.config.max_backlog {
                lost += 1;
            } else {
                self.rollups.push_back(r);
                self.rollups_in += 1;
            }
        }
        if lost > 0 {
            tracing::warn!(
                rollups = lost,
                "provider metrics rollups dropped: the database has been down too long"
            );
        }
    }

    /// When the next write should start; `None` when there is nothing to write.
    fn due(&self) -> Option<Instant> {
        if self.backlog.is_empty() && self.rollups.is_empty() {
            return None;
        }
        let now = Instant::now();
        let batch = self.config.batch_size;
        let urgent = self.closed
            || !self.waiters.is_empty()
            || self.backlog.len() >= batch
            || self.rollups.len() >= batch;
        let mut at = if urgent { now } else { self.last_start.map_or(now, |t| t + self.config.flush_every) };
        if !self.closed
            && let Some(retry_at) = self.retry_at
        {
            at = at.max(retry_at);
        }
        Some(at)
    }

    fn start_job(&mut self) -> Job {
        self.last_start = Some(Instant::now());
        let batch = self.config.batch_size;
        let n = self.backlog.len().min(batch);
        let rows: Vec<_> = self.backlog.drain(..n).collect();
        // One statement may not update the same row twice (PostgreSQL refuses): stop at a repeat.
        let mut keys = HashSet::new();
        let m = self
            .rollups
            .iter()
            .take(batch)
            .take_while(|r| keys.insert((r.provider_id, r.model.clone(), r.minute)))
            .count();
        let rollups: Vec<_> = self.rollups.drain(..m).collect();
        self.in_flight_rows = n;
        self.in_flight_rollups = m;
        if n > 0 {
            self.shared.batches.fetch_add(1, Relaxed);
            self.shared.largest_batch.fetch_max(n as u64, Relaxed);
        }
        let db = self.db.clone();
        Box::pin(async move {
            let rows = write_batch(&db, rows).await;
            let rollups = if rows.error.is_some() {
                Written::untried(rollups)
            } else {
                write_batch(&db, rollups).await
            };
            JobResult { rows, rollups }
        })
    }

    fn finish(&mut self, JobResult { rows, rollups }: JobResult) {
        self.in_flight_rows = 0;
        self.in_flight_rollups = 0;
        let s = &self.shared;
        s.written.fetch_add(rows.written as u64, Relaxed);
        s.pending.fetch_sub((rows.written + rows.refused) as u64, Relaxed);
        s.note_dropped(rows.refused as u64);
        s.write_errors.fetch_add(rows.failures + rollups.failures, Relaxed);
        self.rows_done += (rows.written + rows.refused) as u64;
        self.rollups_done += (rollups.written + rollups.refused) as u64;
        for r in rows.retry.into_iter().rev() {
            self.backlog.push_front(r);
        }
        for r in rollups.retry.into_iter().rev() {
            self.rollups.push_front(r);
        }
        match rows.error.or(rollups.error) {
            Some(e) => {
                self.failing += 1;
                if self.failing == 1 {
                    tracing::warn!(
                        error = %e,
                        rows = self.backlog.len(),
                        "writing the request log failed; the rows are kept and retried"
                    );
                } else {
                    tracing::debug!(error = %e, failures = self.failing, "request log write failed again");
                }
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(RETRY_MAX);
                self.gave_up = self.closed;
            }
            None => {
                if self.failing > 0 {
                    tracing::info!(failures = self.failing, "the request log is written again");
                }
                self.failing = 0;
                self.retry_at = None;
                self.backoff = RETRY_FIRST;
            }
        }
        self.settle_waiters();
    }

    /// Answers the flushes whose rows and rollups are all finished; forgets those that gave up.
    fn settle_waiters(&mut self) {
        let (rows_done, rollups_done) = (self.rows_done, self.rollups_done);
        for w in self.waiters.extract_if(.., |w| rows_done >= w.rows && rollups_done >= w.rollups) {
            let _ = w.done.send(());
        }
        self.waiters.retain(|w| !w.done.is_closed());
    }
}

#[cfg(test)]
mod tests {
    use std::{
        collections::BTreeMap,
        path::Path,
        sync::atomic::{AtomicUsize, Ordering::SeqCst},
    };

    use chrono::TimeZone;
    use sea_orm::{ColumnTrait, ConnectOptions, ConnectionTrait, Database, PaginatorTrait, QueryFilter};

    use super::*;
    use crate::{
        clock::{Clock, ManualClock},
        config::{Config, Sources},
        entities::{providers, routing_requests},
    };

    fn config(dir: &Path) -> Config {
        config_for(format!("sqlite://{}?mode=rwc", dir.join("goblin.db").display()))
    }

    fn config_for(url: String) -> Config {
        let vars = BTreeMap::from([("DATABASE_URL".to_string(), url)]);
        Config::load(&Sources { file: None, env: vars }).unwrap()
    }

    /// Runs `body` on a PostgreSQL database of its own under `GOBLIN_TEST_PG_URL`, dropped afterwards;
    /// skipped when the variable is not set (outside CI).
    async fn on_postgres<F, Fut>(body: F)
    where
        F: FnOnce(Config) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let admin_url = match std::env::var("GOBLIN_TEST_PG_URL") {
            Ok(u) if !u.is_empty() => u,
            _ if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
                panic!("CI=true but GOBLIN_TEST_PG_URL is not set: PostgreSQL tests cannot be skipped in CI")
            }
            _ => {
                eprintln!("GOBLIN_TEST_PG_URL not set: skipping the PostgreSQL variant");
                return;
            }
        };
        let name = format!("goblin_test_{}", Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url).await.unwrap();
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        // In a task of its own, so the database is dropped even when an assertion fails.
        let outcome = tokio::spawn(body(config_for(url.to_string()))).await;
        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await.unwrap();
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    /// A migrated SQLite database; a second call opens a second pool on the same file, as another
    /// server instance would.
    async fn open(config: &Config) -> DatabaseConnection {
        let db = crate::db::connect(&config.database).await.unwrap();
        crate::db::migrate_up(&db).await.unwrap();
        db
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 9, 30, 5).unwrap()
    }

    fn manual() -> (ManualClock, SharedClock) {
        let manual = ManualClock::new(start());
        let shared: SharedClock = Arc::new(manual.clone());
        (manual, shared)
    }

    fn fast() -> WriterConfig {
        WriterConfig { flush_every: Duration::from_millis(20), ..WriterConfig::default() }
    }

    async fn provider(db: &DatabaseConnection, name: &str) -> Uuid {
        let id = Uuid::new_v4();
        providers::Entity::insert(providers::ActiveModel {
            id: Set(id),
            name: Set(name.into()),
            kind: Set("openai".into()),
            base_url: Set(None),
            enabled: Set(true),
            priority: Set(100),
            capabilities: Set(serde_json::json!(["chat"])),
            created_at: Set(start()),
            updated_at: Set(start()),
            budget_micros: Set(None),
            budget_period: Set("month".into()),
        })
        .exec_without_returning(db)
        .await
        .unwrap();
        id
    }

    fn ok(provider_id: Uuid, model: &str, latency_ms: u32) -> Attempt {
        Attempt { provider_id, model: model.into(), status: Some(200), latency_ms, error: None }
    }

    fn failed(provider_id: Uuid, model: &str, status: Option<u16>) -> Attempt {
        Attempt {
            provider_id,
            model: model.into(),
            status,
            latency_ms: 9_000,
            error: Some("upstream failed".into()),
        }
    }

    /// A request answered (or failed) by its last attempt.
    fn request(attempts: Vec<Attempt>, outcome: Outcome) -> RequestRecord {
        let last = attempts.last().cloned();
        RequestRecord {
            id: Uuid::now_v7(),
            created_at: start(),
            user_id: None,
            token_id: None,
            requested_model: last.as_ref().map_or("gpt".into(), |a| a.model.clone()),
            route_alias: None,
            provider_id: last.as_ref().map(|a| a.provider_id),
            model: last.as_ref().map(|a| a.model.clone()),
            stream: false,
            outcome,
            http_status: if outcome == Outcome::Ok { 200 } else { 502 },
            ttft_ms: None,
            latency_ms: last.as_ref().map_or(0, |a| a.latency_ms),
            tokens_in: 0,
            tokens_out: 0,
            cost_micros: 0,
            error: (outcome == Outcome::Error).then(|| "every provider failed".into()),
            attempts,
        }
    }

    async fn rows(db: &DatabaseConnection) -> u64 {
        routing_requests::Entity::find().count(db).await.unwrap()
    }

    async fn metric(
        db: &DatabaseConnection,
        provider_id: Uuid,
        model: &str,
    ) -> Option<provider_metrics::Model> {
        provider_metrics::Entity::find()
            .filter(provider_metrics::Column::ProviderId.eq(provider_id))
            .filter(provider_metrics::Column::Model.eq(model))
            .one(db)
            .await
            .unwrap()
    }

    /// Polls `done` for up to 10 s.
    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..400 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gave up after 10 s waiting until {what}");
    }

    /// A TCP port that accepts connections and never answers: a PostgreSQL server that hangs.
    struct BlackHole {
        port: u16,
        accepted: Arc<AtomicUsize>,
    }

    async fn black_hole() -> BlackHole {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                count.fetch_add(1, SeqCst);
                held.push(socket);
            }
        });
        BlackHole { port, accepted }
    }

    /// A pool on the black hole: connects lazily, and waits for ten minutes for a connection.
    async fn hanging_database(hole: &BlackHole) -> DatabaseConnection {
        let mut opts =
            ConnectOptions::new(format!("postgres://goblin:goblin@127.0.0.1:{}/goblin", hole.port));
        opts.connect_lazy(true)
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(600))
            .connect_timeout(Duration::from_secs(600))
            .sqlx_logging(false);
        Database::connect(opts).await.unwrap()
    }

    #[test]
    fn clean_cuts_at_characters_and_drops_nul() {
        assert_eq!(super::clean("openai/gpt-4o-mini", 192), "openai/gpt-4o-mini");
        assert_eq!(super::clean("a\0b\0c", 192), "abc");
        assert_eq!(super::clean("abcdef", 4), "abcd");
        assert_eq!(super::clean("ééé", 4), "ééé");
        assert_eq!(super::clean("éé\0ééé", 4), "éééé");
        assert_eq!(super::clean("gpt-4o-mini", 3), "gpt");
        assert_eq!(super::clean("", 3), "");
        // Four characters of two bytes each: eight bytes, over a limit of five by bytes only.
        assert_eq!(super::clean("éééé", 5), "éééé");
        assert_eq!(super::clean("éééé", 2), "éé");
        assert_eq!(super::clean("日本語のモデル", 3), "日本語");
    }

    #[test]
    fn percentiles_health_and_fault_rules() {
        let mut v: Vec<u32> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 50), Some(50));
        assert_eq!(percentile(&mut v, 95), Some(95));
        assert_eq!(percentile(&mut [7], 95), Some(7));
        assert_eq!(percentile(&mut [], 50), None);
        let mut w = vec![(300, 1.0), (100, 1.0), (200, 1.0), (1000, 1.0), (1000, 1.0)];
        assert_eq!(weighted_median(&mut w), Some(300));
        // A sample that stands for many requests pulls the median towards it.
        let mut w = vec![(10, 1.0), (20, 1.0), (500, 5.0)];
        assert_eq!(weighted_median(&mut w), Some(500));
        assert_eq!(weighted_median(&mut []), None);

        assert_eq!(health(0, 0), "up");
        assert_eq!(health(2, 2), "degraded", "too few requests to call it down");
        assert_eq!(health(3, 3), "down");
        assert_eq!(health(10, 2), "up");
        assert_eq!(health(10, 3), "degraded");

        let p = Uuid::new_v4();
        assert!(attempt_failed(&failed(p, "m", Some(503))));
        assert!(attempt_failed(&failed(p, "m", Some(429))));
        assert!(attempt_failed(&failed(p, "m", Some(401))));
        assert!(attempt_failed(&failed(p, "m", None)));
        assert!(!attempt_failed(&failed(p, "m", Some(400))), "the request's own fault");
        assert!(!attempt_failed(&ok(p, "m", 5)));

        let mut r = Reservoir::new(1);
        for i in 0..10_000 {
            r.push(i);
        }
        assert_eq!((r.seen, r.samples.len()), (10_000, SAMPLES_PER_MINUTE));
        assert!(r.samples.iter().any(|&s| s >= 5_000), "later values replace earlier ones");
    }

    #[tokio::test]
    async fn rows_are_written_in_batches_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        rows_are_written_in_batches_and_complete_on(config(dir.path())).await;
    }

    #[tokio::test]
    async fn postgres_rows_are_written_in_batches_and_complete() {
        on_postgres(rows_are_written_in_batches_and_complete_on).await;
    }

    async fn rows_are_written_in_batches_and_complete_on(cfg: Config) {
        let db = open(&cfg).await;
        let (_, clock) = manual();
        let (p, q) = (provider(&db, "alpha").await, provider(&db, "beta").await);
        let records = Records::start(db.clone(), clock, WriterConfig { batch_size: 500, ..fast() });

        // One of each outcome, every field set.
        let token = Uuid::new_v4();
        let attempts = vec![failed(p, "gpt-x", Some(503)), ok(q, "gpt-y", 321)];
        let full = RequestRecord {
            token_id: Some(token),
            route_alias: Some("smart".into()),
            stream: true,
            ttft_ms: Some(120),
            latency_ms: 900,
            tokens_in: 11,
            tokens_out: 22,
            cost_micros: 333,
            ..request(attempts.clone(), Outcome::Ok)
        };
        let errored = request(vec![failed(p, "gpt-x", None)], Outcome::Error);
        let cancelled =
            RequestRecord { http_status: 499, ..request(vec![ok(q, "gpt-y", 50)], Outcome::Cancelled) };
        for r in [&full, &errored, &cancelled] {
            records.record(r.clone());
        }
        for i in 0..1_997u32 {
            records.record(request(vec![ok(p, "gpt-x", i)], Outcome::Ok));
        }
        assert!(records.flush(Duration::from_secs(60)).await, "flush finished");
        assert_eq!(rows(&db).await, 2_000);
        assert_eq!(records.stats(), RecordStats { written: 2_000, dropped: 0, pending: 0, write_errors: 0 });
        let batches = records.shared.batches.load(SeqCst);
        assert_eq!(records.shared.largest_batch.load(SeqCst), 500, "full batches of batch_size rows");
        assert!((4..=8).contains(&batches), "2,000 rows went in {batches} statements");

        let row = routing_requests::Entity::find_by_id(full.id).one(&db).await.unwrap().unwrap();
        assert_eq!(
            row,
            routing_requests::Model {
                id: full.id,
                created_at: start(),
                user_id: None,
                token_id: Some(token),
                requested_model: "gpt-y".into(),
                route_alias: Some("smart".into()),
                attempts: serde_json::to_value(&attempts).unwrap(),
                provider_id: Some(q),
                model: Some("gpt-y".into()),
                stream: true,
                status: "ok".into(),
                http_status: 200,
                ttft_ms: Some(120),
                latency_ms: 900,
                tokens_in: 11,
                tokens_out: 22,
                cost_micros: 333,
                error: None,
            }
        );
        assert_eq!(row.attempts[0]["status"], 503);
        assert_eq!(row.attempts[0]["error"], "upstream failed");
        assert_eq!(row.attempts[1]["latency_ms"], 321);
        let row = routing_requests::Entity::find_by_id(errored.id).one(&db).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.http_status), ("error", 502));
        assert_eq!(row.error.as_deref(), Some("every provider failed"));
        assert_eq!(row.ttft_ms, None);
        let row = routing_requests::Entity::find_by_id(cancelled.id).one(&db).await.unwrap().unwrap();
        assert_eq!((row.status.as_str(), row.http_status), ("cancelled", 499));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_writer_is_woken_once_a_batch_not_once_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&config(dir.path())).await;
        let (_, clock) = manual();
        let p = provider(&db, "alpha").await;
        let config = WriterConfig { batch_size: 100, flush_every: Duration::from_secs(3600), ..fast() };
        let records = Records::start(db.clone(), clock, config);
        for i in 0..300 {
            records.record(request(vec![ok(p, "m", i)], Outcome::Ok));
            // A pause between rows, as between requests, in which a woken writer would run.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(records.flush(Duration::from_secs(60)).await, "flush finished");
        let reads = records.shared.reads.load(SeqCst);
        // One read a full batch, one at the interval's first tick, and those of the flush.
        assert!(reads <= 8, "the writer read the channel {reads} times for 300 rows");
        assert_eq!(rows(&db).await, 300);
    }

    #[tokio::test]
    async fn rows_naming_deleted_users_or_providers_are_kept_and_oversized_values_cut() {
        let dir = tempfile::tempdir().unwrap();
        rows_naming_deleted_users_or_providers_are_kept_on(config(dir.path())).await;
    }

    #[tokio::test]
    async fn postgres_rows_naming_deleted_users_or_providers_are_kept_and_oversized_values_cut() {
        on_postgres(rows_naming_deleted_users_or_providers_are_kept_on).await;
    }

    async fn rows_naming_deleted_users_or_providers_are_kept_on(cfg: Config) {
        let db = open(&cfg).await;
        let (_, clock) = manual();
        let p = provider(&db, "alpha").await;
        let gone = Uuid::new_v4();
        let records = Records::start(db.clone(), clock, fast());

        let orphan =
            RequestRecord { user_id: Some(Uuid::new_v4()), ..request(vec![ok(gone, "m", 5)], Outcome::Ok) };
        let long = RequestRecord {
            requested_model: "r".repeat(500),
            route_alias: Some("a".repeat(100)),
            model: Some("m\0".repeat(200)),
            error: Some("e".repeat(10_000)),
            latency_ms: u32::MAX,
            tokens_in: u64::MAX,
            ..request(vec![ok(p, "m", 5)], Outcome::Ok)
        };
        let fine: Vec<_> = (0..5).map(|i| request(vec![ok(p, "m", i)], Outcome::Ok)).collect();
        records.record(fine[0].clone());
        records.record(orphan.clone());
        records.record(long.clone());
        for r in &fine[1..] {
            records.record(r.clone());
        }
        assert!(records.flush(Duration::from_secs(60)).await, "flush finished");
        assert_eq!(rows(&db).await, 7, "the orphan did not hold the batch back");
        let stats = records.stats();
        assert_eq!((stats.written, stats.dropped, stats.pending), (7, 0, 0));
        assert!(stats.write_errors > 0, "the first batch was refused");

        let row = routing_requests::Entity::find_by_id(orphan.id).one(&db).await.unwrap().unwrap();
        assert_eq!((row.user_id, row.provider_id), (None, None), "references cleared");
        assert_eq!(
            row.attempts[0]["provider_id"],
            serde_json::json!(gone),
            "the attempts still say who it was"
        );
        let row = routing_requests::Entity::find_by_id(long.id).one(&db).await.unwrap().unwrap();
        assert_eq!(row.requested_model.chars().count(), REQUESTED_MODEL_CHARS);
        assert_eq!(row.route_alias.unwrap().len(), ROUTE_ALIAS_CHARS);
        assert_eq!(row.model.unwrap(), "m".repeat(MODEL_CHARS));
        assert_eq!(row.error.unwrap().len(), MAX_ERROR_CHARS);
        assert_eq!((row.latency_ms, row.tokens_in), (i32::MAX, i64::MAX));

        // The deleted provider's metrics are given up without blocking the flush.
        assert!(metric(&db, gone, "m").await.is_none());
        assert_eq!(metric(&db, p, "m").await.unwrap().requests, 6);
    }

    #[tokio::test]
    async fn record_never_waits_for_a_stalled_database() {
        let hole = black_hole().await;
        let db = hanging_database(&hole).await;
        let (_, clock) = manual();
        let records = Records::start(db, clock, fast());
        let p = Uuid::new_v4();

        records.record(request(vec![ok(p, "m", 1)], Outcome::Ok));
        wait_until("the writer is stuck connecting", || hole.accepted.load(SeqCst) > 0).await;
        for i in 0..99 {
            records.record(request(vec![ok(p, "m", i)], Outcome::Ok));
        }
        assert_eq!(records.stats(), RecordStats { written: 0, dropped: 0, pending: 100, write_errors: 0 });
        assert!(!records.flush(Duration::from_millis(300)).await, "nothing can be written");
        assert_eq!(records.stats().pending, 100);
        assert_eq!(records.recent(p, "m").requests, 100, "metrics do not wait for the database");
    }

    #[tokio::test]
    async fn rows_queued_during_an_outage_are_written_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&config(dir.path())).await;
        let (_, clock) = manual();
        let p = provider(&db, "alpha").await;
        let records = Records::start(db.clone(), clock, WriterConfig { batch_size: 100, ..fast() });
        for i in 0..10 {
            records.record(request(vec![ok(p, "m", i)], Outcome::Ok));
        }
        assert!(records.flush(Duration::from_secs(60)).await);
        assert_eq!(rows(&db).await, 10);

        db.execute_unprepared("ALTER TABLE routing_requests RENAME TO routing_requests_away").await.unwrap();
        for i in 0..300 {
            records.record(request(vec![ok(p, "m", i)], Outcome::Ok));
        }
        wait_until("a write fails", || records.stats().write_errors > 0).await;
        assert!(!records.flush(Duration::from_millis(200)).await, "the table is gone");
        let stats = records.stats();
        assert_eq!((stats.written, stats.pending, stats.dropped), (10, 300, 0), "the rows are held");

        db.execute_unprepared("ALTER TABLE routing_requests_away RENAME TO routing_requests").await.unwrap();
        assert!(records.flush(Duration::from_secs(60)).await, "written after the outage");
        assert_eq!(rows(&db).await, 310);
        let stats = records.stats();
        assert_eq!((stats.written, stats.pending, stats.dropped), (310, 0, 0));
        assert!(stats.write_errors > 0);
    }

    #[tokio::test]
    async fn overflow_drops_and_counts() {
        let hole = black_hole().await;
        let db = hanging_database(&hole).await;
        let (_, clock) = manual();
        let config = WriterConfig {
            channel: 4,
            batch_size: 2,
            flush_every: Duration::from_millis(10),
            max_backlog: 4,
        };
        let records = Records::start(db, clock, config);
        let p = Uuid::new_v4();

        records.record(request(vec![ok(p, "m", 1)], Outcome::Ok));
        wait_until("the writer is stuck connecting", || hole.accepted.load(SeqCst) > 0).await;
        for i in 0..100 {
            records.record(request(vec![ok(p, "m", i)], Outcome::Ok));
        }
        assert!(records.stats().dropped > 0);
        wait_until("every row is dropped or held", || {
            let s = records.stats();
            s.dropped + s.pending == 101 && s.pending <= 8
        })
        .await;
        assert_eq!(records.stats().written, 0);
        assert_eq!(records.recent(p, "m").requests, 101, "dropped rows still count in the metrics");
    }

    #[tokio::test]
    async fn minutes_roll_up_into_provider_metrics_and_instances_add_up() {
        let dir = tempfile::tempdir().unwrap();
        minutes_roll_up_and_instances_add_up_on(config(dir.path())).await;
    }

    #[tokio::test]
    async fn postgres_minutes_roll_up_into_provider_metrics_and_instances_add_up() {
        on_postgres(minutes_roll_up_and_instances_add_up_on).await;
    }

    async fn minutes_roll_up_and_instances_add_up_on(cfg: Config) {
        let db = open(&cfg).await;
        let (clock_a, clock) = manual();
        let (p, backup) = (provider(&db, "alpha").await, provider(&db, "backup").await);
        let a = Records::start(db.clone(), clock, fast());
        let minute = minute_of(start());

        let answered = |latency: u32| RequestRecord {
            ttft_ms: Some(latency * 10),
            tokens_in: 10,
            tokens_out: 20,
            cost_micros: 3,
            ..request(vec![ok(p, "m-up", latency)], Outcome::Ok)
        };
        // Half of m-up, then a flush writes the open minute.
        for latency in 1..=50 {
            a.record(answered(latency));
        }
        assert!(a.flush(Duration::from_secs(60)).await);
        let row = metric(&db, p, "m-up").await.unwrap();
        assert_eq!((row.requests, row.latency_p50_ms, row.latency_p95_ms), (50, Some(25), Some(48)));
        assert_eq!(row.minute, minute);

        for latency in 51..=100 {
            a.record(answered(latency));
        }
        // m-degraded: 7 answers and 3 failures that m-backup answered; m-down: 3 failures, and one
        // skip (circuit open) that is not counted.
        for _ in 0..7 {
            a.record(request(vec![ok(p, "m-degraded", 100)], Outcome::Ok));
        }
        for _ in 0..3 {
            a.record(request(
                vec![failed(p, "m-degraded", Some(502)), ok(backup, "m-backup", 40)],
                Outcome::Ok,
            ));
        }
        for status in [None, Some(500), Some(429)] {
            a.record(request(vec![failed(p, "m-down", status)], Outcome::Error));
        }
        let skipped = Attempt {
            error: Some("skipped: circuit open".into()),
            latency_ms: 0,
            ..failed(p, "m-down", None)
        };
        a.record(request(vec![skipped, ok(backup, "m-backup", 60)], Outcome::Ok));
        // The request's own fault (400) is an answer, not a target error.
        a.record(RequestRecord {
            http_status: 400,
            ..request(vec![failed(backup, "m-backup", Some(400))], Outcome::Error)
        });

        // The minute closes: rolled up by the writer's tick, without a flush.
        clock_a.advance(TimeDelta::seconds(60));
        let mut up = None;
        for _ in 0..400 {
            up = metric(&db, p, "m-up").await.filter(|m| m.requests == 100);
            if up.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let up = up.expect("the closed minute was rolled up within 10 s");
        assert!(a.flush(Duration::from_secs(60)).await);
        assert_eq!(
            (up.requests, up.errors, up.tokens_in, up.tokens_out, up.cost_micros),
            (100, 0, 1_000, 2_000, 300)
        );
        assert_eq!((up.latency_p50_ms, up.latency_p95_ms, up.ttft_p50_ms), (Some(50), Some(95), Some(500)));
        assert_eq!((up.health.as_str(), up.minute), ("up", minute));

        let degraded = metric(&db, p, "m-degraded").await.unwrap();
        assert_eq!((degraded.requests, degraded.errors, degraded.health.as_str()), (10, 3, "degraded"));
        assert_eq!((degraded.latency_p50_ms, degraded.tokens_in), (Some(100), 0));
        let down = metric(&db, p, "m-down").await.unwrap();
        assert_eq!((down.requests, down.errors, down.health.as_str()), (3, 3, "down"));
        assert_eq!((down.latency_p50_ms, down.latency_p95_ms), (None, None), "failures are not latencies");
        let b = metric(&db, backup, "m-backup").await.unwrap();
        assert_eq!((b.requests, b.errors, b.health.as_str()), (5, 0, "up"));
        assert_eq!(provider_metrics::Entity::find().count(&db).await.unwrap(), 4);

        // Another instance, same minute: counts add up, percentiles keep the larger, health follows.
        let db_b = open(&cfg).await;
        let clock_b: SharedClock = Arc::new(ManualClock::new(start() + TimeDelta::seconds(30)));
        let b = Records::start(db_b, clock_b, fast());
        for _ in 0..10 {
            b.record(request(vec![ok(p, "m-up", 1_000)], Outcome::Ok));
        }
        b.record(request(vec![failed(p, "m-up", Some(503))], Outcome::Error));
        for _ in 0..3 {
            b.record(request(vec![ok(p, "m-down", 10)], Outcome::Ok));
        }
        assert!(b.flush(Duration::from_secs(60)).await);
        let up = metric(&db, p, "m-up").await.unwrap();
        assert_eq!((up.requests, up.errors, up.tokens_in, up.health.as_str()), (111, 1, 1_000, "up"));
        assert_eq!(
            (up.latency_p50_ms, up.latency_p95_ms, up.ttft_p50_ms),
            (Some(1_000), Some(1_000), Some(500))
        );
        let down = metric(&db, p, "m-down").await.unwrap();
        assert_eq!((down.requests, down.errors, down.health.as_str()), (6, 3, "degraded"));
        assert_eq!(down.latency_p50_ms, Some(10));
        assert_eq!(provider_metrics::Entity::find().count(&db).await.unwrap(), 4, "the same rows");
    }

    #[tokio::test]
    async fn recent_covers_the_last_five_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&config(dir.path())).await;
        let (clock, shared) = manual();
        let p = Uuid::new_v4();
        let records = Records::start(db, shared, fast());
        assert_eq!(records.recent(p, "m"), RecentHealth::default());

        for (latency, ttft) in [(100, 50), (200, 60), (300, 70)] {
            records.record(RequestRecord {
                ttft_ms: Some(ttft),
                ..request(vec![ok(p, "m", latency)], Outcome::Ok)
            });
        }
        records.record(request(vec![failed(p, "m", Some(503))], Outcome::Error));
        assert_eq!(
            records.recent(p, "m"),
            RecentHealth { requests: 4, error_rate: 0.25, latency_p50_ms: Some(200), ttft_p50_ms: Some(60) }
        );
        assert_eq!(records.recent(p, "other").requests, 0);

        clock.advance(TimeDelta::minutes(3)); // 09:33:05
        for _ in 0..2 {
            records.record(RequestRecord {
                ttft_ms: Some(500),
                ..request(vec![ok(p, "m", 1_000)], Outcome::Ok)
            });
        }
        let h = records.recent(p, "m");
        assert_eq!((h.requests, h.latency_p50_ms, h.ttft_p50_ms), (6, Some(300), Some(70)));
        assert!((h.error_rate - 1.0 / 6.0).abs() < 1e-9);

        clock.advance(TimeDelta::minutes(2)); // 09:35:05: the window starts at 09:31
        assert_eq!(
            records.recent(p, "m"),
            RecentHealth {
                requests: 2,
                error_rate: 0.0,
                latency_p50_ms: Some(1_000),
                ttft_p50_ms: Some(500)
            }
        );

        clock.advance(TimeDelta::minutes(5));
        assert_eq!(records.recent(p, "m"), RecentHealth::default());
        assert!(clock.now() > start());
    }
}
