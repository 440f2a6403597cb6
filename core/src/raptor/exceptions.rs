//! Traced exceptions: every error event and panic, with its context, grouped by fingerprint.
//!
//! ```text
//!  tracing layer / panic hook ──capture (try_send)──► channel ──► writer task ──► INSERT … ON CONFLICT
//!                                                                 (fingerprint) DO UPDATE count + 1
//!  every hour: delete groups not seen for `retention_days`, then all but the newest `max_groups`
//! ```
//!
//! Capturing never waits and never touches the database on the caller's path: a full channel drops
//! the occurrence (counted). The writer logs its own failures at `warn`, which is not captured, so a
//! database outage cannot feed itself.
//!
//! Backtraces: a captured [`Trace::Frames`] holds only the stack's addresses (cheap to take); the
//! writer resolves them to function names and lines on the blocking pool, off the caller's path. An
//! occurrence without a backtrace keeps the one its group already has.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, OnConflict},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::{clock::SharedClock, entities::exceptions};

/// Occurrences the channel to the writer holds.
const QUEUE: usize = 1_024;
const MAX_MESSAGE_CHARS: usize = 4_000;
const MAX_BACKTRACE_CHARS: usize = 32_000;
const MAX_LOCATION_CHARS: usize = 256;
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// An error event or a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Error,
    Panic,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Error => "error",
            Kind::Panic => "panic",
        }
    }
}

/// Where an exception happened: the request or job around it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The matched route template, such as `/api/tasks/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// The goblin a task run was running, with `task_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goblin_id: Option<String>,
    /// The names of the spans it happened in, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<String>,
    /// The event's other fields, secrets removed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// One occurrence, as the tracing layer or the panic hook saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    pub kind: Kind,
    /// The tracing target, or the panic's `file:line`.
    pub location: String,
    pub message: String,
    pub backtrace: Option<Trace>,
    pub context: Context,
    pub at: DateTime<Utc>,
}

/// A backtrace of an occurrence: text already (a panic's, formatted by the panic hook), or the frames
/// of a stack, whose symbols are resolved when the occurrence is stored.
#[derive(Clone, Debug)]
pub enum Trace {
    Text(String),
    Frames(Arc<std::backtrace::Backtrace>),
}

impl Trace {
    /// The backtrace as text; resolving frames reads the program's debug information, which can take
    /// a while the first time: call it off the async threads.
    pub fn resolve(&self) -> String {
        match self {
            Trace::Text(t) => t.clone(),
            Trace::Frames(f) => f.to_string(),
        }
    }
}

impl PartialEq for Trace {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Trace::Text(a), Trace::Text(b)) => a == b,
            (Trace::Frames(a), Trace::Frames(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for Trace {}

impl Captured {
    /// The group this occurrence belongs to: kind, location, and the message with its numbers and
    /// ids blanked, so "task 41 failed" and "task 42 failed" count together.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.kind.as_str());
        h.update([0]);
        h.update(&self.location);
        h.update([0]);
        h.update(message_shape(&self.message));
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The message with runs of digits and hex ids replaced by `#`, first 200 characters.
fn message_shape(message: &str) -> String {
    let mut out = String::new();
    for word in message.split_inclusive(|c: char| !c.is_ascii_alphanumeric()) {
        let (token, sep) = match word.char_indices().last() {
            Some((i, c)) if !c.is_ascii_alphanumeric() => (&word[..i], &word[i..]),
            _ => (word, ""),
        };
        let hexish = token.len() >= 8 && token.chars().all(|c| c.is_ascii_hexdigit());
        if hexish || (!token.is_empty() && token.chars().any(|c| c.is_ascii_digit())) {
            out.push('#');
        } else {
            out.push_str(token);
        }
        out.push_str(sep);
        if out.len() >= 200 {
            break;
        }
    }
    out
}

/// A stored exception group, as the Monitoring page lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExceptionView {
    pub id: Uuid,
    pub fingerprint: String,
    pub kind: String,
    pub location: String,
    pub message: String,
    pub backtrace: Option<String>,
    pub context: Context,
    pub count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl From<exceptions::Model> for ExceptionView {
    fn from(m: exceptions::Model) -> Self {
        Self {
            id: m.id,
            fingerprint: m.fingerprint,
            kind: m.kind,
            location: m.location,
            message: m.message,
            backtrace: m.backtrace,
            context: serde_json::from_value(m.context).unwrap_or_default(),
            count: m.count,
            first_seen: m.first_seen,
            last_seen: m.last_seen,
        }
    }
}

enum Msg {
    One(Box<Captured>),
    Flush(oneshot::Sender<()>),
}

/// Captures and stores exceptions. Shared as `Arc`.
pub struct ExceptionStore {
    db: DatabaseConnection,
    tx: mpsc::Sender<Msg>,
    captured: AtomicU64,
    dropped: AtomicU64,
}

impl std::fmt::Debug for ExceptionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExceptionStore").finish_non_exhaustive()
    }
}

impl ExceptionStore {
    /// Starts the writer and the hourly retention sweep.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn start(
        db: DatabaseConnection,
        clock: SharedClock,
        retention_days: u32,
        max_groups: u32,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let store =
            Arc::new(Self { db: db.clone(), tx, captured: AtomicU64::new(0), dropped: AtomicU64::new(0) });
        tokio::spawn(write_loop(db, clock, rx, retention_days, max_groups));
        store
    }

    /// Queues one occurrence. Never waits; a full queue drops it.
    pub fn capture(&self, c: Captured) {
        match self.tx.try_send(Msg::One(Box::new(c))) {
            Ok(()) => {
                self.captured.fetch_add(1, Relaxed);
                metrics::counter!("goblin_exceptions_captured_total").increment(1);
            }
            Err(_) => {
                self.dropped.fetch_add(1, Relaxed);
                metrics::counter!("goblin_exceptions_dropped_total").increment(1);
            }
        }
    }

    /// Occurrences queued and dropped since start.
    pub fn counts(&self) -> (u64, u64) {
        (self.captured.load(Relaxed), self.dropped.load(Relaxed))
    }

    /// Waits until every occurrence captured before the call is stored, or `timeout` passes.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let (done, finished) = oneshot::channel();
        tokio::time::timeout(timeout, async {
            self.tx.send(Msg::Flush(done)).await.is_ok() && finished.await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// The most recently seen groups, newest first.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn list(&self, limit: u64) -> Result<Vec<ExceptionView>, DbErr> {
        Ok(exceptions::Entity::find()
            .order_by_desc(exceptions::Column::LastSeen)
            .order_by_desc(exceptions::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(ExceptionView::from)
            .collect())
    }

    /// One group.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn get(&self, id: Uuid) -> Result<Option<ExceptionView>, DbErr> {
        Ok(exceptions::Entity::find_by_id(id).one(&self.db).await?.map(ExceptionView::from))
    }
}

async fn write_loop(
    db: DatabaseConnection,
    clock: SharedClock,
    mut rx: mpsc::Receiver<Msg>,
    retention_days: u32,
    max_groups: u32,
) {
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => return,
                Some(Msg::One(c)) => {
                    let backtrace = match c.backtrace.clone() {
                        None => None,
                        Some(Trace::Text(t)) => Some(t),
                        Some(frames) => tokio::task::spawn_blocking(move || frames.resolve()).await.ok(),
                    };
                    if let Err(e) = upsert(&db, &c, backtrace.as_deref()).await {
                        tracing::warn!(error = %e, "could not store a traced exception");
                    }
                }
                Some(Msg::Flush(done)) => {
                    let _ = done.send(());
                }
            },
            _ = prune.tick() => {
                if let Err(e) = prune_old(&db, clock.now(), retention_days, max_groups).await {
                    tracing::warn!(error = %e, "could not delete old traced exceptions");
                }
            }
        }
    }
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Adds one occurrence to its group (creating it): count + 1, and the newest message, context and
/// backtrace (an occurrence without one keeps the group's).
async fn upsert(db: &DatabaseConnection, c: &Captured, backtrace: Option<&str>) -> Result<(), DbErr> {
    use exceptions::Column as C;
    let row = exceptions::ActiveModel {
        id: Set(Uuid::now_v7()),
        fingerprint: Set(c.fingerprint()),
        kind: Set(c.kind.as_str().to_string()),
        location: Set(cut(&c.location, MAX_LOCATION_CHARS - 1)),
        message: Set(cut(&c.message, MAX_MESSAGE_CHARS)),
        backtrace: Set(backtrace.map(|b| cut(b, MAX_BACKTRACE_CHARS))),
        context: Set(serde_json::to_value(&c.context).unwrap_or_default()),
        count: Set(1),
        first_seen: Set(c.at),
        last_seen: Set(c.at),
    };
    let mut on = OnConflict::column(C::Fingerprint);
    on.value(C::Count, Expr::cust(r#""exceptions"."count" + 1"#));
    on.value(C::Backtrace, Expr::cust(r#"COALESCE("excluded"."backtrace", "exceptions"."backtrace")"#));
    on.update_columns([C::Message, C::Context, C::LastSeen]);
    exceptions::Entity::insert(row).on_conflict(on).exec_without_returning(db).await.map(drop)
}

/// Deletes groups not seen within the retention, then the least recently seen beyond `max_groups`.
async fn prune_old(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    retention_days: u32,
    max_groups: u32,
) -> Result<(), DbErr> {
    use exceptions::Column as C;
    exceptions::Entity::delete_many()
        .filter(C::LastSeen.lt(now - TimeDelta::days(i64::from(retention_days))))
        .exec(db)
        .await?;
    let oldest_kept = exceptions::Entity::find()
        .order_by_desc(C::LastSeen)
        .offset(u64::from(max_groups.max(1)) - 1)
        .limit(1)
        .one(db)
        .await?;
    if let Some(row) = oldest_kept {
        exceptions::Entity::delete_many().filter(C::LastSeen.lt(row.last_seen)).exec(db).await?;
    }
    Ok(())
}

/// Removes what looks like a secret from text bound for a log line, an exception or a page: the
/// credentials of `Bearer` / `Basic` authorisations, passwords in URLs, the values of `key=value`
/// and `"key": "value"` pairs whose key names a secret, and long `sk-…` style keys.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        // Authorisation schemes: keep the scheme, hide what follows.
        if let Some(n) = ["Bearer ", "bearer ", "Basic ", "basic "].iter().find(|p| rest.starts_with(**p)) {
            out.push_str(n);
            out.push_str("[redacted]");
            rest = skip_value(&rest[n.len()..]);
            continue;
        }
        // Passwords in URLs: scheme://user:password@host
        if rest.starts_with("://")
            && let Some(at) = rest[3..].find('@')
            && let Some(colon) = rest[3..3 + at].find(':')
            && !rest[3..3 + at].contains(['/', ' '])
        {
            out.push_str(&rest[..3 + colon + 1]);
            out.push_str("[redacted]");
            rest = &rest[3 + at..];
            continue;
        }
        // Key-shaped tokens such as sk-live-… or sk-ant-…
        if (rest.starts_with("sk-") || rest.starts_with("sk_"))
            && out.chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric())
            && rest.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).count() >= 12
        {
            out.push_str("[redacted]");
            rest = rest.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
            continue;
        }
        let c = rest.chars().next().unwrap_or_default();
        // key=value and "key": "value" where the key names a secret.
        if matches!(c, '=' | ':') && secret_name(&out) {
            out.push(c);
            let after = &rest[1..];
            let ws = after.len() - after.trim_start().len();
            out.push_str(&after[..ws]);
            let mut value = &after[ws..];
            if let Some(n) =
                ["Bearer ", "bearer ", "Basic ", "basic "].iter().find(|p| value.starts_with(**p))
            {
                value = &value[n.len()..];
            }
            if let Some(quoted) = value.strip_prefix('"') {
                out.push_str("\"[redacted]\"");
                rest = quoted.find('"').map_or("", |end| &quoted[end + 1..]);
            } else {
                out.push_str("[redacted]");
                rest = skip_value(value);
            }
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn skip_value(s: &str) -> &str {
    s.trim_start_matches(|c: char| !c.is_whitespace() && !matches!(c, '"' | '\'' | ',' | ';' | '&' | '}'))
}

/// Whether the text ends with a key (optionally quoted) whose name says it holds a secret.
fn secret_name(before: &str) -> bool {
    let near = before.char_indices().rev().nth(63).map_or(0, |(i, _)| i);
    let key = before[near..].trim_end_matches('"');
    let start = key
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        .map_or(0, |i| i + 1);
    is_secret_field(&key[start..])
}

/// Whether a field or parameter of this name holds a secret (its value is never logged).
pub fn is_secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "api_key",
        "apikey",
        "api-key",
        "authorization",
        "cookie",
        "credential",
    ]
    .iter()
    .any(|s| n.contains(s))
        || n == "key"
        || n.ends_with("_key")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed() {
        let cases = [
            ("Authorization: Bearer abc.def.ghi failed", "Authorization: [redacted] failed"),
            ("sent Bearer abc.def.ghi", "sent Bearer [redacted]"),
            (
                "connect postgres://goblin:pg-s3cret@db/goblin",
                "connect postgres://goblin:[redacted]@db/goblin",
            ),
            ("api_key=sk-abcdefghijklmnop&x=1", "api_key=[redacted]&x=1"),
            (r#"{"token": "t0ps3cret", "name": "n"}"#, r#"{"token": "[redacted]", "name": "n"}"#),
            ("the key sk-live-abcdefghijklmnop leaked", "the key [redacted] leaked"),
            ("task 42 failed: exit 1", "task 42 failed: exit 1"),
            ("https://example.com/path", "https://example.com/path"),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(input), expected, "{input}");
        }
    }

    #[test]
    fn fingerprints_group_by_shape() {
        let c = |m: &str| Captured {
            kind: Kind::Error,
            location: "goblin::tasks".into(),
            message: m.into(),
            backtrace: None,
            context: Context::default(),
            at: Utc::now(),
        };
        assert_eq!(c("task 41 failed").fingerprint(), c("task 42 failed").fingerprint());
        assert_eq!(
            c("request 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b timed out").fingerprint(),
            c("request 0190a1b2-c3d5-7e5f-8a9b-0c1d2e3f4a5c timed out").fingerprint()
        );
        assert_ne!(c("task failed").fingerprint(), c("task stopped").fingerprint());
        let mut p = c("task 41 failed");
        p.kind = Kind::Panic;
        assert_ne!(p.fingerprint(), c("task 41 failed").fingerprint());
        assert_eq!(c("x").fingerprint().len(), 64);
    }
}
