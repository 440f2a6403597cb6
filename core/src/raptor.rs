//! Raptor, the process monitor: while an admin has it running it samples the process's and the
//! machine's CPU and memory every `raptor.sample_rate_ms`, keeps the recent samples for the
//! Monitoring page's charts, and writes them to the Raptor log; the same log holds every warning and
//! error of the app. Raptor also owns the store of traced exceptions ([`exceptions`]).
//!
//! ```text
//!  admin ──start/stop──► Raptor ──every sample_rate──► sysinfo ──► ring (last 600) ──► charts
//!                                                                 └──► Raptor log ◄── warn/error events
//!  tracing layer, panic hook ──► hub ──┬──► Raptor log (JSON lines, rotated)      (via the hub)
//!                                      └──► ExceptionStore ──► exceptions table
//! ```
//!
//! Each instance samples itself: with several `goblin serve` instances, each one's Raptor is started
//! and stopped on its own.

pub mod exceptions;
pub mod hub;
pub mod log;

use std::{
    collections::VecDeque,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::DatabaseConnection;
use serde::Serialize;
use tokio::sync::watch;

use crate::{
    clock::SharedClock,
    config::{RaptorConfig, RaptorLevel},
};
use exceptions::ExceptionStore;
use log::{RaptorLog, Tail, TailRequest};

/// Samples kept in memory for the charts (ten minutes at the default rate).
pub const RING: usize = 600;
/// The fastest and slowest sampling a start may ask for.
pub const MIN_SAMPLE_MS: u64 = 100;
pub const MAX_SAMPLE_MS: u64 = 3_600_000;

/// One measurement. A part that is turned off (`raptor.enable_cpu`, `raptor.enable_memory`) is
/// `None`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    /// This process's CPU use, in percent of one core (can exceed 100 on several cores).
    pub process_cpu_percent: Option<f32>,
    /// This process's resident memory.
    pub process_memory_bytes: Option<u64>,
    /// The machine's CPU use over all cores, 0 to 100.
    pub system_cpu_percent: Option<f32>,
    pub system_memory_used_bytes: Option<u64>,
    pub system_memory_total_bytes: Option<u64>,
}

/// What `GET /raptor/status` answers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub running: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub sample_rate_ms: u64,
    pub enable_cpu: bool,
    pub enable_memory: bool,
    pub trace_exceptions: bool,
    /// The least severe app log level written to the Raptor log.
    pub level: RaptorLevel,
    /// Samples taken since this process started.
    pub samples_taken: u64,
    /// The newest sample, if any.
    pub latest: Option<Sample>,
    pub log_file: String,
    /// Lines written to the Raptor log, and dropped because its queue was full.
    pub log_lines_written: u64,
    pub log_lines_dropped: u64,
}

#[derive(Debug, Default)]
struct Run {
    started_at: Option<DateTime<Utc>>,
    rate: Duration,
    stop: Option<watch::Sender<bool>>,
    samples: VecDeque<Sample>,
    taken: u64,
}

/// The monitor of this process. Shared as `Arc`.
pub struct Raptor {
    config: RaptorConfig,
    clock: SharedClock,
    log: Arc<RaptorLog>,
    exceptions: Arc<ExceptionStore>,
    run: Arc<Mutex<Run>>,
}

impl std::fmt::Debug for Raptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Raptor").field("log", &self.log.path()).finish_non_exhaustive()
    }
}

impl Raptor {
    /// Opens the Raptor log, starts the exception store, and registers both with the process's
    /// tracing layer and panic hook. Sampling starts only when asked.
    ///
    /// # Errors
    /// When the log file or its directory cannot be created.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn new(
        config: &RaptorConfig,
        db: DatabaseConnection,
        clock: SharedClock,
    ) -> std::io::Result<Arc<Self>> {
        let log = RaptorLog::open(&config.file, config.max_file_bytes, config.max_files)?;
        let exceptions =
            ExceptionStore::start(db, clock.clone(), config.exception_retention_days, config.max_exceptions);
        hub::register(&log, &exceptions, config.level, config.trace_exceptions);
        Ok(Arc::new(Self {
            config: config.clone(),
            clock,
            log,
            exceptions,
            run: Arc::new(Mutex::new(Run { rate: config.sample_rate, ..Default::default() })),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Run> {
        self.run.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts sampling every `rate` (the configured rate when `None`). Starting a running Raptor
    /// changes nothing but its rate.
    pub fn start(&self, rate: Option<Duration>) -> Status {
        let rate = rate.unwrap_or(self.config.sample_rate);
        {
            let mut run = self.lock();
            if let Some(stop) = run.stop.take() {
                let _ = stop.send(true);
            }
            let (tx, rx) = watch::channel(false);
            run.stop = Some(tx);
            run.rate = rate;
            run.started_at.get_or_insert(self.clock.now());
            tokio::spawn(sample_loop(
                self.run.clone(),
                self.log.clone(),
                self.clock.clone(),
                rate,
                self.config.enable_cpu,
                self.config.enable_memory,
                rx,
            ));
        }
        tracing::info!(rate_ms = rate.as_millis() as u64, "raptor started");
        self.status()
    }

    /// Stops sampling; the samples taken so far stay for the charts.
    pub fn stop(&self) -> Status {
        {
            let mut run = self.lock();
            if let Some(stop) = run.stop.take() {
                let _ = stop.send(true);
                tracing::info!("raptor stopped");
            }
            run.started_at = None;
        }
        self.status()
    }

    pub fn status(&self) -> Status {
        let run = self.lock();
        let (written, dropped) = self.log.counts();
        Status {
            running: run.stop.is_some(),
            started_at: run.started_at,
            sample_rate_ms: run.rate.as_millis() as u64,
            enable_cpu: self.config.enable_cpu,
            enable_memory: self.config.enable_memory,
            trace_exceptions: self.config.trace_exceptions,
            level: self.config.level,
            samples_taken: run.taken,
            latest: run.samples.back().cloned(),
            log_file: self.log.path().display().to_string(),
            log_lines_written: written,
            log_lines_dropped: dropped,
        }
    }

    /// The newest `limit` samples, oldest first.
    pub fn samples(&self, limit: usize) -> Vec<Sample> {
        let run = self.lock();
        let skip = run.samples.len().saturating_sub(limit);
        run.samples.iter().skip(skip).cloned().collect()
    }

    /// The end of the Raptor log, read backwards from its end (never the whole file).
    ///
    /// # Errors
    /// When the file cannot be read.
    pub async fn tail(&self, req: TailRequest) -> std::io::Result<Tail> {
        let path: PathBuf = self.log.path().to_path_buf();
        tokio::task::spawn_blocking(move || log::tail(&path, req)).await.map_err(std::io::Error::other)?
    }

    /// Waits (up to `timeout`) until every line queued so far is in the file.
    pub async fn flush_log(&self, timeout: Duration) -> bool {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.flush_blocking(timeout)).await.unwrap_or(false)
    }

    pub fn exceptions(&self) -> &Arc<ExceptionStore> {
        &self.exceptions
    }

    pub fn log(&self) -> &Arc<RaptorLog> {
        &self.log
    }
}

/// The demo of exception tracing: `boom` fails inside a span (`raptor_demo`), logging an error event
/// that the tracing layer captures with the caller's context; any other value comes back.
///
/// # Errors
/// For `boom`, always.
pub fn demo(value: &str) -> Result<String, std::io::Error> {
    if value != "boom" {
        return Ok(value.chars().take(200).collect());
    }
    let span = tracing::info_span!("raptor_demo", value = %value);
    let _entered = span.enter();
    let err = std::io::Error::other("boom: the Raptor demo failed on purpose");
    tracing::error!(error = %err, "raptor demo: boom");
    Err(err)
}

/// Samples until told to stop. sysinfo reads `/proc`, which blocks briefly: each sample is taken on
/// the blocking pool.
async fn sample_loop(
    run: Arc<Mutex<Run>>,
    log: Arc<RaptorLog>,
    clock: SharedClock,
    rate: Duration,
    cpu: bool,
    memory: bool,
    mut stop: watch::Receiver<bool>,
) {
    let mut sys = Some(sysinfo::System::new());
    let pid = sysinfo::get_current_pid().ok();
    let mut tick = tokio::time::interval(rate);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let Some(mut s) = sys.take() else { return };
        let Ok((s, measured)) = tokio::task::spawn_blocking(move || {
            let m = measure(&mut s, pid, cpu, memory);
            (s, m)
        })
        .await
        else {
            return;
        };
        sys = Some(s);
        let sample = Sample { at: clock.now(), ..measured };
        log.write_line(sample_line(&sample));
        let mut r = run.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *stop.borrow() {
            return;
        }
        r.taken += 1;
        if r.samples.len() == RING {
            r.samples.pop_front();
        }
        r.samples.push_back(sample);
    }
}

fn measure(sys: &mut sysinfo::System, pid: Option<sysinfo::Pid>, cpu: bool, memory: bool) -> Sample {
    use sysinfo::{ProcessRefreshKind, ProcessesToUpdate};
    if cpu {
        sys.refresh_cpu_usage();
    }
    if memory {
        sys.refresh_memory();
    }
    let mut kind = ProcessRefreshKind::nothing();
    if cpu {
        kind = kind.with_cpu();
    }
    if memory {
        kind = kind.with_memory();
    }
    if let Some(pid) = pid {
        sys.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, kind);
    }
    let process = pid.and_then(|p| sys.process(p));
    Sample {
        at: Utc::now(),
        process_cpu_percent: cpu.then(|| process.map(|p| p.cpu_usage())).flatten(),
        process_memory_bytes: memory.then(|| process.map(|p| p.memory())).flatten(),
        system_cpu_percent: cpu.then(|| sys.global_cpu_usage()),
        system_memory_used_bytes: memory.then(|| sys.used_memory()),
        system_memory_total_bytes: memory.then(|| sys.total_memory()),
    }
}

/// A sample as a Raptor log line.
fn sample_line(s: &Sample) -> String {
    serde_json::json!({
        "ts": s.at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "level": "INFO",
        "kind": "sample",
        "process_cpu_percent": s.process_cpu_percent,
        "process_memory_bytes": s.process_memory_bytes,
        "system_cpu_percent": s.system_cpu_percent,
        "system_memory_used_bytes": s.system_memory_used_bytes,
        "system_memory_total_bytes": s.system_memory_total_bytes,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn raptor(dir: &std::path::Path) -> Arc<Raptor> {
        let db = sea_orm::Database::connect(crate::config::default_sqlite_url(dir)).await.unwrap();
        crate::db::migrate_up(&db).await.unwrap();
        let config = RaptorConfig {
            level: RaptorLevel::Warn,
            file: dir.join("logs/raptor.log"),
            max_file_bytes: 1024 * 1024,
            max_files: 2,
            enable_cpu: true,
            enable_memory: true,
            sample_rate: Duration::from_millis(100),
            trace_exceptions: true,
            exception_retention_days: 30,
            max_exceptions: 100,
        };
        Raptor::new(&config, db, crate::clock::system()).unwrap()
    }

    #[tokio::test]
    async fn samples_while_running_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let r = raptor(dir.path()).await;
        assert!(!r.status().running);
        let s = r.start(None);
        assert!(s.running && s.started_at.is_some());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while r.status().samples_taken < 3 {
            assert!(std::time::Instant::now() < deadline, "no samples");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let latest = r.status().latest.unwrap();
        assert!(latest.process_memory_bytes.is_some_and(|m| m > 0));
        assert!(latest.system_memory_total_bytes.is_some_and(|m| m > 0));
        let stopped = r.stop();
        assert!(!stopped.running);
        let taken = stopped.samples_taken;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(r.status().samples_taken <= taken + 1, "sampling stopped");
        assert!(r.samples(2).len() == 2);
        assert!(r.flush_log(Duration::from_secs(5)).await);
        let tail = r.tail(TailRequest::default()).await.unwrap();
        assert!(tail.lines.iter().any(|l| l.contains(r#""kind":"sample""#)), "{tail:?}");
    }

    #[tokio::test]
    async fn exceptions_are_grouped_with_a_count() {
        use exceptions::{Captured, Context, Kind};
        let dir = tempfile::tempdir().unwrap();
        let r = raptor(dir.path()).await;
        for n in [1, 2, 3] {
            r.exceptions().capture(Captured {
                kind: Kind::Error,
                location: "goblin::test".into(),
                message: format!("job {n} broke"),
                backtrace: None,
                context: Context { request_id: Some(format!("req-{n}")), ..Default::default() },
                at: Utc::now(),
            });
        }
        assert!(r.exceptions().flush(Duration::from_secs(5)).await);
        let list = r.exceptions().list(10).await.unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].count, 3);
        assert_eq!(list[0].message, "job 3 broke", "the newest occurrence's message");
        assert_eq!(list[0].context.request_id.as_deref(), Some("req-3"));
        assert_eq!(r.exceptions().get(list[0].id).await.unwrap().unwrap().count, 3);
    }
}
