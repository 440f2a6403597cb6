//! Logging: tracing to stderr, as text or JSON lines, filtered by `log.filter`; and the Raptor layer,
//! which copies warnings and errors (as structured JSON lines, secrets removed) to the Raptor log and
//! captures every error event and panic as a traced exception with its context.
//!
//! Context comes from the spans around an event: the request span (`request_id`, `route`,
//! `method`, `user_id`) and the span of a task run (`task_id`, `goblin_id`; see
//! `goblin_core::tasks`). The panic hook turns a panic into an error event on the panicking thread,
//! so a panic inside a request or a task run carries its context too.
//!
//! Backtraces, whatever `RUST_BACKTRACE` says: a panic always gets one (taken by the panic hook).
//! An error event gets one the first time its group (fingerprint) is seen in this process, and again
//! at most once an hour per group: taking one is cheap (the stack's addresses only; the exception
//! writer resolves the symbols off the caller's path), but an error logged in a loop should not pay
//! for it every time. With `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` set, every error event gets one.

use std::{
    backtrace::Backtrace,
    collections::HashMap,
    fmt::Write as _,
    sync::{Arc, Mutex, Once},
    time::{Duration, Instant},
};

use chrono::SecondsFormat;
use goblin_core::{
    config::{LogConfig, LogFormat, RaptorLevel},
    raptor::{
        exceptions::{Captured, Context, Kind, Trace, is_secret_field, scrub},
        hub,
    },
};
use serde_json::{Map, Value};
use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
    span,
};
use tracing_subscriber::{
    EnvFilter, Layer, fmt, layer::Context as LayerContext, prelude::*, registry::LookupSpan,
};

use crate::observe::PoolAcquireLayer;

/// The target of the events the panic hook emits.
pub const PANIC_TARGET: &str = "goblin::panic";

/// Span fields copied into an exception's context.
const CONTEXT_FIELDS: &[&str] = &["request_id", "route", "method", "user_id", "task_id", "goblin_id"];

/// How often an error event's group gets a fresh backtrace, and how many groups are remembered.
const BACKTRACE_EVERY: Duration = Duration::from_secs(3600);
const BACKTRACE_GROUPS: usize = 4096;

/// Installs the global subscriber (the stderr log, the Raptor layer, and the pool acquire metrics of
/// [`crate::observe::PoolAcquireLayer`]) and the panic hook. Safe to call more than once (later
/// calls do nothing).
pub fn init(cfg: &LogConfig) {
    let filter = EnvFilter::try_new(&cfg.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry()
        .with(PoolAcquireLayer.with_filter(PoolAcquireLayer::filter()))
        .with(RaptorLayer::default().with_filter(raptor_filter()))
        .with(
            match cfg.format {
                LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
                LogFormat::Text => fmt::layer().with_writer(std::io::stderr).boxed(),
            }
            .with_filter(filter),
        );
    let _ = registry.try_init();
    install_panic_hook();
}

/// Installs only the Raptor layer, the pool acquire metrics and the panic hook, printing nothing: for
/// tests that do not ask for the log (`TEST_LOG`), which still need exceptions captured.
pub fn init_quiet() {
    let _ = tracing_subscriber::registry()
        .with(PoolAcquireLayer.with_filter(PoolAcquireLayer::filter()))
        .with(RaptorLayer::default().with_filter(raptor_filter()))
        .try_init();
    install_panic_hook();
}

/// The Raptor layer sees the app's own events at `info` and above (samples are written directly),
/// and nothing from the libraries' chatter below `warn`.
fn raptor_filter() -> EnvFilter {
    EnvFilter::new("warn,goblin_core=info,goblin_server=info,goblin_app=info,goblin=info")
}

/// Turns a panic into an error event (target [`PANIC_TARGET`]) carrying its message, location and
/// backtrace, then runs the hook that was there before (which prints it).
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            let backtrace = Backtrace::force_capture().to_string();
            tracing::error!(
                target: PANIC_TARGET,
                panic_message = %message,
                panic_location = %location,
                panic_backtrace = %backtrace,
                "panic: {message}"
            );
            previous(info);
        }));
    });
}

fn level_of(level: &Level) -> RaptorLevel {
    match *level {
        Level::ERROR => RaptorLevel::Error,
        Level::WARN => RaptorLevel::Warn,
        Level::INFO => RaptorLevel::Info,
        _ => RaptorLevel::Debug,
    }
}

/// The context fields a span carries (kept in its extensions).
#[derive(Default)]
struct SpanFields(Vec<(&'static str, String)>);

impl Visit for SpanFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(name) = context_field(field) {
            self.put(name, value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Only the context fields are written out; a span's other fields (the path) are not.
        if let Some(name) = context_field(field) {
            self.put(name, format!("{value:?}"));
        }
    }
}

fn context_field(field: &Field) -> Option<&'static str> {
    CONTEXT_FIELDS.iter().find(|n| **n == field.name()).copied()
}

impl SpanFields {
    fn put(&mut self, name: &'static str, value: String) {
        if value.is_empty() {
            return;
        }
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

/// An event's message and other fields; secret-named fields are redacted, the rest scrubbed.
#[derive(Default)]
struct EventFields {
    message: String,
    fields: Map<String, Value>,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.insert(field.name().to_string(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.insert(field.name().to_string(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.insert(field.name().to_string(), value.into());
    }
}

impl EventFields {
    fn put(&mut self, field: &Field, value: String) {
        let name = field.name();
        if name == "message" {
            self.message = scrub(&value);
        } else if name == "panic_backtrace" {
            // Function names and source lines, no values: scrubbing would cut up names such as
            // `goblin_core::tokens::…` (a secret-looking key followed by `:`).
            self.fields.insert(name.to_string(), Value::from(value));
        } else if is_secret_field(name) {
            self.fields.insert(name.to_string(), Value::from("[redacted]"));
        } else {
            self.fields.insert(name.to_string(), Value::from(scrub(&value)));
        }
    }

    fn take(&mut self, name: &str) -> Option<String> {
        match self.fields.remove(name)? {
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        }
    }
}

/// Writes warnings and errors to the Raptor log and captures error events and panics (see the
/// module documentation).
#[derive(Default)]
pub struct RaptorLayer {
    /// When each group of error events last got a backtrace.
    backtraced: Mutex<HashMap<String, Instant>>,
}

impl RaptorLayer {
    /// Whether an error event of group `fingerprint` should get a backtrace now: the first time the
    /// group is seen, then at most once every [`BACKTRACE_EVERY`].
    fn backtrace_due(&self, fingerprint: &str, now: Instant) -> bool {
        let mut seen = self.backtraced.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.get(fingerprint).is_some_and(|at| now.duration_since(*at) < BACKTRACE_EVERY) {
            return false;
        }
        if seen.len() >= BACKTRACE_GROUPS && !seen.contains_key(fingerprint) {
            seen.retain(|_, at| now.duration_since(*at) < BACKTRACE_EVERY);
            if seen.len() >= BACKTRACE_GROUPS {
                seen.clear();
            }
        }
        seen.insert(fingerprint.to_string(), now);
        true
    }
}

impl<S> Layer<S> for RaptorLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        let mut fields = SpanFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: LayerContext<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                values.record(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        let meta = event.metadata();
        let level = level_of(meta.level());
        if !hub::wants(level) {
            return;
        }
        let mut fields = EventFields::default();
        event.record(&mut fields);

        let mut context = Context::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                context.spans.push(span.name().to_string());
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    for (name, value) in &f.0 {
                        let slot = match *name {
                            "request_id" => &mut context.request_id,
                            "route" => &mut context.route,
                            "method" => &mut context.method,
                            "user_id" => &mut context.user_id,
                            "goblin_id" => &mut context.goblin_id,
                            _ => &mut context.task_id,
                        };
                        *slot = Some(value.clone());
                    }
                }
            }
        }

        let panic = meta.target() == PANIC_TARGET;
        let now = chrono::Utc::now();
        let (location, backtrace) = if panic {
            (fields.take("panic_location").unwrap_or_default(), fields.take("panic_backtrace"))
        } else {
            (meta.target().to_string(), None)
        };
        let message = if panic {
            fields.take("panic_message").map_or_else(|| fields.message.clone(), |m| scrub(&m))
        } else if fields.message.is_empty() {
            fields.fields.get("error").and_then(Value::as_str).unwrap_or_default().to_string()
        } else {
            fields.message.clone()
        };

        let mut line = Map::new();
        line.insert("ts".into(), now.to_rfc3339_opts(SecondsFormat::Millis, true).into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("kind".into(), if panic { "panic" } else { "log" }.into());
        line.insert("target".into(), meta.target().into());
        line.insert("message".into(), message.clone().into());
        if panic {
            line.insert("location".into(), location.clone().into());
        }
        for (k, v) in [
            ("request_id", &context.request_id),
            ("route", &context.route),
            ("user_id", &context.user_id),
            ("task_id", &context.task_id),
            ("goblin_id", &context.goblin_id),
        ] {
            if let Some(v) = v {
                line.insert(k.into(), v.clone().into());
            }
        }
        if !fields.fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields.fields.clone()));
        }

        // Errors of the exception store itself are logged at `warn` and so never come back here.
        let exception = (level == RaptorLevel::Error).then(|| {
            context.fields = fields
                .fields
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect();
            let mut c = Captured {
                kind: if panic { Kind::Panic } else { Kind::Error },
                location,
                message: if message.is_empty() { meta.name().to_string() } else { message },
                backtrace: backtrace.map(Trace::Text),
                context,
                at: now,
            };
            if c.backtrace.is_none() {
                let bt = if self.backtrace_due(&c.fingerprint(), Instant::now()) {
                    Backtrace::force_capture()
                } else {
                    Backtrace::capture()
                };
                if bt.status() == std::backtrace::BacktraceStatus::Captured {
                    c.backtrace = Some(Trace::Frames(Arc::new(bt)));
                }
            }
            c
        });
        let mut text = String::new();
        let _ = write!(text, "{}", Value::Object(line));
        hub::dispatch(level, &text, exception.as_ref());
    }
}
