//! Where the process-wide tracing layer and panic hook send what they see: the Raptor log and the
//! exception store of every running server in this process.
//!
//! A tracing subscriber and a panic hook are global to a process, so this registry is too (a
//! `static`, the one piece of global state here). `goblin serve` runs one server, so there is one
//! sink; a process that runs several (the test suite) gives every event to each of them.
//! [`Raptor::new`](super::Raptor::new) registers its sink; it is removed when the Raptor is dropped.
//!
//! The hot path stays cheap: [`wants`] is one atomic load, so events below every sink's level are
//! skipped before anything is formatted or locked.

use std::sync::{
    Arc, RwLock, Weak,
    atomic::{AtomicU8, Ordering::Relaxed},
};

use super::{exceptions::Captured, exceptions::ExceptionStore, log::RaptorLog};
use crate::config::RaptorLevel;

/// One server's destinations.
struct Sink {
    log: Weak<RaptorLog>,
    exceptions: Weak<ExceptionStore>,
    level: RaptorLevel,
    trace_exceptions: bool,
}

static SINKS: RwLock<Vec<Sink>> = RwLock::new(Vec::new());
/// The least severe level any sink wants, as [`rank`]; 0 when there is no sink.
static WANTED: AtomicU8 = AtomicU8::new(0);

fn rank(level: RaptorLevel) -> u8 {
    match level {
        RaptorLevel::Error => 1,
        RaptorLevel::Warn => 2,
        RaptorLevel::Info => 3,
        RaptorLevel::Debug => 4,
    }
}

/// Registers a server's log and exception store. Dead registrations are removed at the same time.
pub(crate) fn register(
    log: &Arc<RaptorLog>,
    exceptions: &Arc<ExceptionStore>,
    level: RaptorLevel,
    trace_exceptions: bool,
) {
    let mut sinks = SINKS.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    sinks.retain(|s| s.log.strong_count() > 0);
    sinks.push(Sink {
        log: Arc::downgrade(log),
        exceptions: Arc::downgrade(exceptions),
        level,
        trace_exceptions,
    });
    recompute(&sinks);
}

fn recompute(sinks: &[Sink]) {
    let wanted = sinks
        .iter()
        .map(|s| rank(s.level).max(if s.trace_exceptions { rank(RaptorLevel::Error) } else { 0 }))
        .max()
        .unwrap_or(0);
    WANTED.store(wanted, Relaxed);
}

/// Whether any sink wants events of `level`: one atomic load.
pub fn wants(level: RaptorLevel) -> bool {
    rank(level) <= WANTED.load(Relaxed)
}

/// Gives one event to every sink that wants it: `line` (a JSON object, no newline) to the logs whose
/// level admits it, and `exception` to the stores that trace exceptions.
pub fn dispatch(level: RaptorLevel, line: &str, exception: Option<&Captured>) {
    let sinks = SINKS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    for s in sinks.iter() {
        if rank(level) <= rank(s.level)
            && let Some(log) = s.log.upgrade()
        {
            log.write_line(line.to_string());
        }
        if s.trace_exceptions
            && let Some(c) = exception
            && let Some(store) = s.exceptions.upgrade()
        {
            store.capture(c.clone());
        }
    }
}
