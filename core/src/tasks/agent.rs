//! Agent goblins: the task text goes through the gateway with the member's system prompt, style and
//! examples; the answer is stored like a chat answer (`streams` with `task_id` set, its text in
//! `stream_chunks`) and is also the task's output, line by line, so live output works as for
//! commands.
//!
//! The model is the member's `brain` when the gateway serves a chat model of that name, otherwise
//! the first chat model. The call is made as the person who started the task (and their API token,
//! if they used one), so it counts against the same budgets as their own calls.

use std::{sync::Arc, time::Duration};

use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    CANCELLED, SUCCEEDED, TIMED_OUT, TaskService,
    output::{FLUSH_EVERY, Lines, Output, Stop, Stream, stopped},
    process,
    registry::{AgentGoblin, Example},
    worker::Outcome,
};
use crate::{
    clock::SharedClock,
    entities::{stream_chunks, streams, tasks},
    gateway::{
        Caller, StreamOutcome,
        stream_text::{Piece, read_events},
    },
};

/// Rows per INSERT of answer pieces.
const MAX_BATCH: usize = 500;
/// Pieces written at once when this many wait.
const FLUSH_PIECES: usize = 32;

/// The model to ask: `brain` when the gateway serves it for chat, else the first chat model.
///
/// # Errors
/// When the gateway serves no chat model at all.
pub(crate) fn choose_model(brain: Option<&str>, chat_models: &[(String, String)]) -> Result<String, String> {
    if let Some(b) = brain
        && chat_models.iter().any(|(name, _)| name == b)
    {
        return Ok(b.to_string());
    }
    chat_models.first().map(|(name, _)| name.clone()).ok_or_else(|| {
        "no chat model is available; add a provider with a chat model on the Providers page".into()
    })
}

/// The messages sent: the system prompt (with the style and the text examples), the exchange
/// examples as earlier turns, then the task.
pub(crate) fn messages(goblin: &AgentGoblin, task: &str) -> Vec<Value> {
    let mut system = if goblin.prompt.system.is_empty() {
        format!("You are {}.", goblin.title)
    } else {
        goblin.prompt.system.clone()
    };
    if !goblin.responsibilities.is_empty() {
        system.push_str(&format!("\n\nYour responsibilities: {}.", goblin.responsibilities.join("; ")));
    }
    if !goblin.prompt.style.is_empty() {
        system.push_str("\n\nStyle:");
        for s in &goblin.prompt.style {
            system.push_str(&format!("\n- {s}"));
        }
    }
    let texts: Vec<&str> = goblin
        .prompt
        .examples
        .iter()
        .filter_map(|e| match e {
            Example::Text(t) => Some(t.as_str()),
            Example::Exchange { .. } => None,
        })
        .collect();
    if !texts.is_empty() {
        system.push_str("\n\nExamples:");
        for t in texts {
            system.push_str(&format!("\n- {t}"));
        }
    }
    let mut out = vec![json!({ "role": "system", "content": system })];
    for e in &goblin.prompt.examples {
        if let Example::Exchange { user, assistant } = e {
            out.push(json!({ "role": "user", "content": user }));
            out.push(json!({ "role": "assistant", "content": assistant }));
        }
    }
    out.push(json!({ "role": "user", "content": task }));
    out
}

/// Asks the model and copies its answer into the task's output and the `streams` tables.
pub(crate) async fn run(
    svc: &Arc<TaskService>,
    task: &tasks::Model,
    goblin: &AgentGoblin,
    out: &Arc<Output>,
    mut stop: watch::Receiver<Option<Stop>>,
    timeout: Duration,
) -> Outcome {
    let Some(gateway) = svc.gateway.clone() else {
        let m = "this worker has no model gateway, so it cannot run agent goblins".to_string();
        out.line(Stream::System, &format!("[{m}]"));
        return Outcome::failed(m);
    };
    let model = match choose_model(goblin.brain.as_deref(), &gateway.model_names("chat")) {
        Ok(m) => m,
        Err(m) => {
            out.line(Stream::System, &format!("[{m}]"));
            return Outcome::failed(m);
        }
    };
    if goblin.brain.as_deref().is_some_and(|b| b != model) {
        out.line(
            Stream::System,
            &format!(
                "[the model '{}' is not available; asking {model} instead]",
                goblin.brain.as_deref().unwrap_or("")
            ),
        );
    }
    out.line(Stream::System, &format!("[asking {model} as {}]", goblin.title));

    // Only the columns of the table's first migration are written.
    let stream_id = Uuid::now_v7();
    let row = streams::ActiveModel {
        id: Set(stream_id),
        goblin_id: Set(Some(goblin.id.clone())),
        task_id: Set(Some(task.id)),
        user_id: Set(task.created_by),
        conversation_id: Set(None),
        provider_id: Set(None),
        model: Set(Some(model.chars().take(128).collect())),
        status: Set("streaming".into()),
        tokens_in: Set(0),
        tokens_out: Set(0),
        cost_micros: Set(0),
        created_at: Set(svc.clock.now()),
        finished_at: Set(None),
        ..Default::default()
    };
    if let Err(e) = streams::Entity::insert(row).exec_without_returning(&svc.db).await {
        tracing::warn!(task = %task.id, error = %e, "could not record an agent goblin's answer");
        return Outcome::failed("the database is unavailable; the model was not asked");
    }

    let body = json!({ "model": model, "stream": true, "messages": messages(goblin, &task.task) });
    let caller = Caller { user_id: task.created_by, token_id: task.token_id };
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);

    let opened = tokio::select! {
        r = gateway.chat_stream_tracked(&caller, body) => Ok(r),
        () = &mut deadline => Err(End::TimedOut),
        s = stopped(&mut stop) => Err(End::Stopped(s)),
    };
    let (mut rx, outcome) = match opened {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            out.line(Stream::System, &format!("[the model could not be asked: {}]", e.message));
            record(&svc.db, &svc.clock, stream_id, "error", None).await;
            return Outcome::failed(format!("the model could not be asked: {}", e.message));
        }
        Err(end) => {
            record(&svc.db, &svc.clock, stream_id, "cancelled", None).await;
            return ended(out, end_outcome(end, timeout));
        }
    };

    let mut chunks = Chunks { db: &svc.db, clock: &svc.clock, stream_id, pending: Vec::new(), seq: 0 };
    let mut lines = Lines::default();
    let mut sse = Vec::new();
    let mut broke: Option<String> = None;
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = loop {
        tokio::select! {
            biased;
            s = stopped(&mut stop) => break End::Stopped(s),
            () = &mut deadline => break End::TimedOut,
            item = rx.recv() => {
                let Some(bytes) = item else { break End::Done };
                for piece in read_events(&mut sse, &bytes) {
                    match piece {
                        Piece::Text(text) => {
                            for line in lines.push(text.as_bytes()) {
                                out.line(Stream::Stdout, &line);
                            }
                            chunks.add(text);
                        }
                        Piece::Error(m) => broke = Some(m),
                    }
                }
                if chunks.pending.len() >= FLUSH_PIECES {
                    chunks.flush().await;
                }
            }
            _ = tick.tick() => chunks.flush().await,
        }
    };
    // Dropping the receiver cancels the upstream request when the answer is not complete.
    drop(rx);
    if let Some(rest) = lines.rest() {
        out.line(Stream::Stdout, &rest);
    }
    chunks.flush().await;
    let outcome: Option<StreamOutcome> =
        tokio::time::timeout(Duration::from_secs(10), outcome).await.ok().and_then(Result::ok);
    let (stream_status, result) = match end {
        End::Done => match (&outcome, &broke) {
            (Some(o), None) if o.status == "ok" => {
                ("done", Outcome { status: Some(SUCCEEDED), exit_code: None, error: None })
            }
            (o, _) => {
                let why = broke
                    .clone()
                    .or_else(|| o.as_ref().and_then(|o| o.error.clone()))
                    .unwrap_or_else(|| "the answer ended unexpectedly".into());
                out.line(Stream::System, &format!("[the answer broke off: {why}]"));
                ("error", Outcome::failed(format!("the answer broke off: {why}")))
            }
        },
        other => ("cancelled", ended(out, end_outcome(other, timeout))),
    };
    if let Some(o) = &outcome {
        out.line(
            Stream::System,
            &format!(
                "[answered by {} ({}): {} tokens in, {} tokens out, cost {} USD]",
                o.model,
                o.provider_name,
                o.tokens_in,
                o.tokens_out,
                crate::providers::format_usd_micros(o.cost_micros)
            ),
        );
    }
    record(&svc.db, &svc.clock, stream_id, stream_status, outcome.as_ref()).await;
    result
}

/// The outcome of a run stopped or timed out, with its note in the output.
fn ended(out: &Output, (note, outcome): (String, Outcome)) -> Outcome {
    out.line(Stream::System, &note);
    outcome
}

/// How an answer's reading ended.
enum End {
    /// The stream ended (completely or not: the outcome says).
    Done,
    TimedOut,
    Stopped(Stop),
}

/// The note and outcome of an answer cut short.
fn end_outcome(end: End, timeout: Duration) -> (String, Outcome) {
    match end {
        End::TimedOut => (
            format!("[timed out after {}: the model's answer was cut off]", process::human(timeout)),
            Outcome {
                status: Some(TIMED_OUT),
                exit_code: None,
                error: Some(format!("timed out after {}", process::human(timeout))),
            },
        ),
        End::Stopped(Stop::Cancelled(reason)) => (
            format!("[{reason}: the model's answer was cut off]"),
            Outcome { status: Some(CANCELLED), exit_code: None, error: Some(reason) },
        ),
        End::Stopped(Stop::Lost) => (
            "[this worker lost the task to another instance]".into(),
            Outcome { status: None, exit_code: None, error: None },
        ),
        End::Stopped(Stop::Shutdown) | End::Done => (
            "[the worker is shutting down: the model's answer was cut off]".into(),
            Outcome::failed("the worker stopped while the task ran; start it again with re-run"),
        ),
    }
}

/// Writes how an answer ended on its `streams` row (only the first migration's columns).
async fn record(
    db: &DatabaseConnection,
    clock: &SharedClock,
    id: Uuid,
    status: &str,
    o: Option<&StreamOutcome>,
) {
    let mut q = streams::Entity::update_many()
        .col_expr(streams::Column::Status, Expr::value(status))
        .col_expr(streams::Column::FinishedAt, Expr::value(clock.now()));
    if let Some(o) = o {
        q = q
            .col_expr(streams::Column::ProviderId, Expr::value(o.provider_id))
            .col_expr(streams::Column::Model, Expr::value(o.model.chars().take(128).collect::<String>()))
            .col_expr(streams::Column::TokensIn, Expr::value(i64::try_from(o.tokens_in).unwrap_or(i64::MAX)))
            .col_expr(
                streams::Column::TokensOut,
                Expr::value(i64::try_from(o.tokens_out).unwrap_or(i64::MAX)),
            )
            .col_expr(streams::Column::CostMicros, Expr::value(o.cost_micros));
    }
    if let Err(e) = q.filter(streams::Column::Id.eq(id)).exec(db).await {
        tracing::warn!(stream = %id, error = %e, "could not record how an agent goblin's answer ended");
    }
}

/// Answer pieces waiting to be written to `stream_chunks`, numbered 1, 2, 3 …
struct Chunks<'a> {
    db: &'a DatabaseConnection,
    clock: &'a SharedClock,
    stream_id: Uuid,
    pending: Vec<stream_chunks::ActiveModel>,
    seq: i32,
}

impl Chunks<'_> {
    fn add(&mut self, content: String) {
        self.seq += 1;
        self.pending.push(stream_chunks::ActiveModel {
            stream_id: Set(self.stream_id),
            seq: Set(self.seq),
            content: Set(content),
            token_count: Set(0),
            cost_delta_micros: Set(0),
            done: Set(false),
            created_at: Set(self.clock.now()),
            ..Default::default()
        });
    }

    async fn flush(&mut self) {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(MAX_BATCH);
            let batch: Vec<stream_chunks::ActiveModel> = self.pending[..n].to_vec();
            match stream_chunks::Entity::insert_many(batch).exec_without_returning(self.db).await {
                Ok(_) => {
                    self.pending.drain(..n);
                }
                Err(e) => {
                    tracing::warn!(stream = %self.stream_id, error = %e, "could not store an agent goblin's answer; will retry");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::registry::Prompt;

    fn goblin() -> AgentGoblin {
        AgentGoblin {
            id: "scribe".into(),
            title: "Scribe".into(),
            brain: Some("gpt-x".into()),
            prompt: Prompt {
                system: "You write notes.".into(),
                style: vec!["Short.".into()],
                examples: vec![
                    Example::Text("A note.".into()),
                    Example::Exchange { user: "q".into(), assistant: "a".into() },
                ],
            },
            responsibilities: vec!["notes".into()],
        }
    }

    #[test]
    fn the_brain_is_used_when_served_else_the_first_chat_model() {
        let models =
            vec![("alias".to_string(), "goblin".to_string()), ("gpt-x".to_string(), "openai".to_string())];
        assert_eq!(choose_model(Some("gpt-x"), &models).unwrap(), "gpt-x");
        assert_eq!(choose_model(Some("nope"), &models).unwrap(), "alias");
        assert_eq!(choose_model(None, &models).unwrap(), "alias");
        assert!(choose_model(Some("gpt-x"), &[]).unwrap_err().contains("no chat model"));
    }

    #[test]
    fn messages_carry_prompt_style_examples_and_task() {
        let m = messages(&goblin(), "write it");
        assert_eq!(m.len(), 4);
        let system = m[0]["content"].as_str().unwrap();
        assert!(system.starts_with("You write notes."), "{system}");
        assert!(
            system.contains("Your responsibilities: notes.")
                && system.contains("- Short.")
                && system.contains("- A note.")
        );
        assert_eq!((m[1]["role"].as_str(), m[1]["content"].as_str()), (Some("user"), Some("q")));
        assert_eq!((m[2]["role"].as_str(), m[2]["content"].as_str()), (Some("assistant"), Some("a")));
        assert_eq!(m[3]["content"], "write it");
    }
}
