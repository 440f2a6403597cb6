//! A running task's output: numbered lines, kept in memory for live readers on this instance and
//! written to `task_logs` in batches, within the output limit.
//!
//! ```text
//! stdout / stderr reader ──line──► Output: redact, count bytes, number ──► Live (this instance's readers)
//!                                         └──► pending ──every 100 ms / 200 lines──► task_logs
//! ```

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::TaskView;
use crate::{clock::SharedClock, entities::task_logs, providers::is_unique_violation};

/// Rows per INSERT, well under every backend's limit on bound parameters.
const MAX_BATCH: usize = 500;
/// Pending lines are written at least this often...
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// ...and as soon as this many are waiting.
const FLUSH_LINES: usize = 200;
/// The longest line kept; a longer one is cut into pieces of this size.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// The runner's own notes: dry-run renderings, truncation, timeouts, cancellation.
    System,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::System => "system",
        }
    }
}

/// One line of a task's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// 1, 2, 3 … within the task; live readers resume after the last one they saw.
    pub seq: i32,
    /// `stdout`, `stderr` or `system`.
    pub stream: String,
    pub line: String,
    pub at: DateTime<Utc>,
}

impl From<task_logs::Model> for LogLine {
    fn from(m: task_logs::Model) -> Self {
        Self { seq: m.seq, stream: m.stream, line: m.line, at: m.created_at }
    }
}

/// Why a running task is being stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Someone cancelled it; the reason reads "cancelled by ada".
    Cancelled(String),
    /// Its row is no longer this worker's (another instance declared the worker lost).
    Lost,
    /// The worker is shutting down.
    Shutdown,
}

/// Waits until a stop is asked for, and says why. Never ends when nobody can ask any more.
pub(crate) async fn stopped(rx: &mut watch::Receiver<Option<Stop>>) -> Stop {
    let asked = match rx.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone(),
        Err(_) => None,
    };
    match asked {
        Some(reason) => reason,
        None => std::future::pending().await,
    }
}

/// What a live reader receives: the status, lines in order, then the ending.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskEvent {
    /// The task's status as the reader starts, and whenever it changes before the end.
    Status(String),
    Line(LogLine),
    /// The task as it ended.
    End(Box<TaskView>),
}

#[derive(Default)]
struct LiveState {
    lines: Vec<LogLine>,
    ending: Option<TaskView>,
}

/// A task running on this instance, as its live readers see it.
pub(crate) struct Live {
    state: Mutex<LiveState>,
    /// Bumped on every line and at the end.
    changed: watch::Sender<u64>,
    /// Asks the run to stop.
    pub(crate) stop: watch::Sender<Option<Stop>>,
}

impl Live {
    pub(crate) fn new() -> Self {
        Self { state: Mutex::default(), changed: watch::channel(0).0, stop: watch::channel(None).0 }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LiveState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, line: LogLine) {
        self.lock().lines.push(line);
        self.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn end(&self, view: TaskView) {
        self.lock().ending = Some(view);
        self.changed.send_modify(|n| *n += 1);
    }

    /// The lines after `seq` (at most `limit`), and the ending once there is one.
    pub(crate) fn after(&self, seq: i32, limit: usize) -> (Vec<LogLine>, Option<TaskView>) {
        let s = self.lock();
        let from = s.lines.partition_point(|l| l.seq <= seq);
        let to = (from + limit).min(s.lines.len());
        (s.lines[from..to].to_vec(), s.ending.clone())
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Waits (up to `limit`) for the ending.
    pub(crate) async fn ending(&self, limit: Duration) -> Option<TaskView> {
        let mut changes = self.changed.subscribe();
        let wait = async {
            loop {
                if let Some(e) = self.lock().ending.clone() {
                    return Some(e);
                }
                if changes.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }
}

/// The tasks running on this instance.
#[derive(Default)]
pub(crate) struct Hub(Mutex<HashMap<Uuid, Arc<Live>>>);

impl Hub {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Live>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, id: Uuid) -> Option<Arc<Live>> {
        self.map().get(&id).cloned()
    }

    pub(crate) fn insert(&self, id: Uuid, live: Arc<Live>) {
        self.map().insert(id, live);
    }

    pub(crate) fn remove(&self, id: Uuid) {
        self.map().remove(&id);
    }
}

struct OutState {
    next_seq: i32,
    bytes: u64,
    truncated: bool,
    pending: Vec<task_logs::ActiveModel>,
}

/// Where a running task's lines go. Shared by the stdout and stderr readers.
pub(crate) struct Output {
    task_id: Uuid,
    clock: SharedClock,
    live: Arc<Live>,
    cap: u64,
    /// Values that must not appear in the output (the goblin's required_env values).
    secrets: Vec<String>,
    state: Mutex<OutState>,
    /// Wakes the writer when many lines are waiting.
    full: Notify,
}

impl Output {
    pub(crate) fn new(
        task_id: Uuid,
        clock: SharedClock,
        live: Arc<Live>,
        cap: u64,
        secrets: Vec<String>,
    ) -> Self {
        Self {
            task_id,
            clock,
            live,
            cap,
            secrets: secrets.into_iter().filter(|s| s.len() >= 4).collect(),
            state: Mutex::new(OutState { next_seq: 1, bytes: 0, truncated: false, pending: Vec::new() }),
            full: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a line (without its newline). Beyond the output limit lines are dropped, after one
    /// `system` line saying so; the runner's own notes are always kept.
    pub(crate) fn line(&self, stream: Stream, text: &str) {
        let mut text = text.replace('\0', "");
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "[redacted]");
            }
        }
        let mut s = self.lock();
        if stream != Stream::System {
            if s.truncated {
                return;
            }
            let size = text.len() as u64 + 1;
            if s.bytes + size > self.cap {
                s.truncated = true;
                let note = format!(
                    "[output truncated: the task wrote more than {} bytes (the tasks.max_output_bytes setting); the rest was not kept]",
                    self.cap
                );
                self.record(&mut s, Stream::System, note);
                return;
            }
            s.bytes += size;
        }
        self.record(&mut s, stream, text);
    }

    fn record(&self, s: &mut OutState, stream: Stream, text: String) {
        let line =
            LogLine { seq: s.next_seq, stream: stream.as_str().into(), line: text, at: self.clock.now() };
        s.next_seq += 1;
        s.pending.push(task_logs::ActiveModel {
            task_id: sea_orm::ActiveValue::Set(self.task_id),
            seq: sea_orm::ActiveValue::Set(line.seq),
            stream: sea_orm::ActiveValue::Set(line.stream.clone()),
            line: sea_orm::ActiveValue::Set(line.line.clone()),
            created_at: sea_orm::ActiveValue::Set(line.at),
            ..Default::default()
        });
        if s.pending.len() >= FLUSH_LINES {
            self.full.notify_one();
        }
        self.live.push(line);
    }

    /// Whether lines were dropped at the output limit.
    #[cfg(test)]
    pub(crate) fn truncated(&self) -> bool {
        self.lock().truncated
    }

    /// Writes the pending lines. `false` (the rest kept for the next try) when the database refused.
    pub(crate) async fn flush(&self, db: &DatabaseConnection) -> bool {
        let batch: Vec<task_logs::ActiveModel> = std::mem::take(&mut self.lock().pending);
        if batch.is_empty() {
            return true;
        }
        let mut rest = batch;
        let mut deduplicated = false;
        while !rest.is_empty() {
            let n = rest.len().min(MAX_BATCH);
            let chunk: Vec<task_logs::ActiveModel> = rest[..n].to_vec();
            match task_logs::Entity::insert_many(chunk).exec_without_returning(db).await {
                Ok(_) => {
                    rest.drain(..n);
                }
                Err(e) if is_unique_violation(&e) && !deduplicated => {
                    // An earlier write went through although its answer was lost: keep only what
                    // is not stored yet.
                    deduplicated = true;
                    if let Ok(Some(Some(max))) = stored_max(db, self.task_id).await {
                        rest.retain(|l| matches!(&l.seq, sea_orm::ActiveValue::Set(s) if *s > max));
                    }
                }
                Err(e) => {
                    tracing::warn!(task = %self.task_id, error = %e, "could not store task output; will retry");
                    let mut s = self.lock();
                    let newer = std::mem::take(&mut s.pending);
                    rest.extend(newer);
                    s.pending = rest;
                    return false;
                }
            }
        }
        true
    }

    /// Writes pending lines every [`FLUSH_EVERY`] (sooner when many wait) until `done` is set.
    pub(crate) async fn keep_flushing(&self, db: &DatabaseConnection, mut done: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = done.wait_for(|d| *d) => return,
                _ = tick.tick() => {}
                () = self.full.notified() => {}
            }
            self.flush(db).await;
        }
    }

    /// Writes what is left, retrying a failing database a few times.
    pub(crate) async fn finish(&self, db: &DatabaseConnection) {
        for attempt in 1..=3u32 {
            if self.flush(db).await {
                return;
            }
            if attempt == 3 {
                let lost = self.lock().pending.len();
                tracing::error!(task = %self.task_id, lost, "could not store the end of a task's output");
            } else {
                tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
            }
        }
    }
}

async fn stored_max(db: &DatabaseConnection, task: Uuid) -> Result<Option<Option<i32>>, DbErr> {
    task_logs::Entity::find()
        .select_only()
        .column_as(task_logs::Column::Seq.max(), "seq")
        .filter(task_logs::Column::TaskId.eq(task))
        .into_tuple()
        .one(db)
        .await
}

/// Cuts a byte stream into lines: complete lines as they end, and pieces of [`MAX_LINE_BYTES`] when
/// a line runs longer. Invalid UTF-8 is replaced.
#[derive(Default)]
pub(crate) struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The lines completed by `bytes`.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                out.push(self.take());
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE_BYTES {
                    out.push(self.take());
                }
            }
        }
        out
    }

    /// What is left after the stream ended, if anything.
    pub(crate) fn rest(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let bytes = std::mem::take(&mut self.partial);
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if s.ends_with('\r') {
            s.pop();
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(cap: u64, secrets: &[&str]) -> (Arc<Live>, Output) {
        let live = Arc::new(Live::new());
        let out = Output::new(
            Uuid::nil(),
            crate::clock::system(),
            live.clone(),
            cap,
            secrets.iter().map(|s| (*s).to_string()).collect(),
        );
        (live, out)
    }

    #[test]
    fn lines_are_numbered_capped_and_redacted() {
        let (live, out) = output(20, &["hunter2-secret"]);
        out.line(Stream::Stdout, "0123456789"); // 11 bytes with its newline
        out.line(Stream::Stderr, "the key is hunter2-secret");
        out.line(Stream::Stdout, "dropped");
        out.line(Stream::System, "a note is always kept");
        let (lines, ending) = live.after(0, 100);
        assert!(ending.is_none());
        let got: Vec<(i32, &str, &str)> =
            lines.iter().map(|l| (l.seq, l.stream.as_str(), l.line.as_str())).collect();
        assert_eq!(got[0], (1, "stdout", "0123456789"));
        assert_eq!((got[1].0, got[1].1), (2, "system"));
        assert!(got[1].2.starts_with("[output truncated"), "{}", got[1].2);
        assert_eq!(got[2], (3, "system", "a note is always kept"));
        assert_eq!(got.len(), 3);
        assert!(out.truncated());
        assert_eq!(live.after(2, 100).0.len(), 1);

        let (live, out) = output(1000, &["hunter2-secret"]);
        out.line(Stream::Stderr, "the key is hunter2-secret\0");
        assert_eq!(live.after(0, 10).0[0].line, "the key is [redacted]");
    }

    #[test]
    fn bytes_become_lines() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"one\ntw"), vec!["one"]);
        assert_eq!(l.push(b"o\r\n\nthr\xffee"), vec!["two", ""]);
        assert_eq!(l.rest().as_deref(), Some("thr\u{fffd}ee"));
        assert_eq!(l.rest(), None);
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let lines = l.push(&long);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), MAX_LINE_BYTES);
        assert_eq!(l.rest().map(|s| s.len()), Some(10));
    }
}
