//! Goblin tasks: runs of registered command goblins, agent goblins and (for admins, when allowed)
//! custom scripts, queued in the `tasks` table and run by workers in the background, with their
//! output in `task_logs`.
//!
//! ```text
//! start ──► check goblin, role, confirmation, task text ──► tasks row `queued` ──► wake local worker
//!   └─ dry run: render what would run ──► row `dry_run` with that text as its output (nothing runs)
//!
//! worker (any `goblin serve` or `goblin worker` on the same database)
//!   claim (queue.rs) ──► `running`, worker id, lease ──► command: process.rs (own process group,
//!   timeout, SIGTERM ─ grace ─ SIGKILL) | agent: agent.rs (gateway stream) ──► lines ──► output.rs
//!   (live readers here + task_logs) ──► `succeeded` | `failed` | `timed_out` | `cancelled`
//!   heartbeat: lease renewed; cancelled rows noticed within half a second
//!   lease ran out (worker died) ──► any instance: `failed`, "worker lost" — never run again
//!
//! events(id) ──► running here: from memory ──► else: task_logs, polled until the task ends
//! ```
//!
//! Commands never see the task text as part of the command line: it is the environment variable
//! `GOBLIN_TASK`, so no quoting in it can change what runs. Nor do they see this process's
//! environment: they get a short allowlist ([`ENV_ALLOWLIST`]), their goblin's `required_env`, and
//! `GOBLIN_TASK` / `GOBLIN_TASK_ID`. Values of `required_env` are replaced by `[redacted]` in the
//! output.

mod agent;
mod output;
mod process;
mod queue;
pub mod registry;
mod worker;

use std::{collections::HashMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

use output::{Hub, Stream};
pub use output::{LogLine, TaskEvent};
use registry::{CUSTOM_SCRIPT, Goblin};
pub use registry::{Registry, RegistryStatus, RegistryStore};
pub use worker::WorkerHandle;

use crate::{
    audit,
    clock::SharedClock,
    config::TasksConfig,
    entities::{providers, streams, task_logs, tasks, users},
    gateway::Gateway,
    secret::Secret,
    settings::{Settings, keys},
    users::Role,
};

/// Waiting to be claimed by a worker.
pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const TIMED_OUT: &str = "timed_out";
/// Cancelled before or while it ran. While `finished_at` is empty, its worker is still stopping it.
pub const CANCELLED: &str = "cancelled";
/// Checked and rendered, never run.
pub const DRY_RUN: &str = "dry_run";
/// Every status, in the order a page lists them.
pub const STATUSES: &[&str] = &[QUEUED, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, CANCELLED, DRY_RUN];

/// The longest task text, in characters.
pub const MAX_TASK_CHARS: usize = 16_000;
/// The longest custom script, in bytes.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;
/// The names a command gets from this process's environment, whatever its goblin asks for.
pub const ENV_ALLOWLIST: &[&str] =
    &["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "TMPDIR"];
/// `PATH` for commands when this process has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Tasks per page of the history.
pub const DEFAULT_HISTORY_PAGE: u64 = 50;
pub const MAX_HISTORY_PAGE: u64 = 200;
/// Output lines given with one task; the rest is read with [`TaskService::output`].
pub const MAX_DETAIL_LINES: u64 = 5_000;
/// Queued and running tasks listed at most.
const MAX_ACTIVE: u64 = 500;
/// How long cancelling waits for a running task's worker to stop it.
const CANCEL_WAIT: Duration = Duration::from_secs(15);
/// How often a reader of a task running elsewhere polls the table.
const EVENTS_POLL: Duration = Duration::from_millis(250);
/// Lines per read of stored output.
const LINES_PAGE: u64 = 1_000;

/// Whether a task with this status and finish time has ended for good.
pub fn is_final(status: &str, finished_at: Option<DateTime<Utc>>) -> bool {
    match status {
        QUEUED | RUNNING => false,
        CANCELLED => finished_at.is_some(),
        _ => true,
    }
}

/// Why a task call failed. Callers map these to 400, 403, 404 and 503.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The request was refused; the message names the field and the rule.
    #[error("{0}")]
    Invalid(String),
    /// The caller's role does not allow it.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn invalid(msg: impl Into<String>) -> TaskError {
    TaskError::Invalid(msg.into())
}

/// At most 40 characters of something a person typed, for a message.
fn shown(raw: &str) -> String {
    if raw.chars().count() <= 40 {
        raw.to_string()
    } else {
        format!("{}…", raw.chars().take(40).collect::<String>())
    }
}

/// Who is asking: a signed-in person, or the owner of an API token (with its id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    pub role: Role,
    pub token_id: Option<Uuid>,
}

/// What to run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    /// A goblin id from the registry; empty (or `custom-script`) with `code`.
    pub goblin: String,
    /// What the goblin should do; given to commands as `$GOBLIN_TASK`, to agents as the question.
    pub task: String,
    /// Check and render, run nothing.
    pub dry_run: bool,
    /// Needed (from an admin) for goblins marked `safe: false`.
    pub confirm: bool,
    /// A custom script (admins only, when the `tasks.allow_custom_scripts` setting allows it), run
    /// by bash with `set -euo pipefail`.
    pub code: Option<String>,
}

/// A task as lists and pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskView {
    pub id: Uuid,
    pub goblin_id: String,
    /// The goblin's name in the registry in force (`None` once it is gone from it).
    pub goblin_name: Option<String>,
    /// `command`, `agent` or `script`; `None` for a goblin no longer in the registry.
    pub kind: Option<String>,
    pub task: String,
    /// One of [`STATUSES`].
    pub status: String,
    pub dry_run: bool,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
    /// Why it failed, timed out or was cancelled.
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_by_name: Option<String>,
    pub worker_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Ended for good (a cancelled task whose worker is still stopping it has not).
    pub finished: bool,
}

/// What an agent goblin's run cost, from its `streams` row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRun {
    pub stream_id: Uuid,
    pub provider_id: Option<Uuid>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// `streaming`, `done`, `error` or `cancelled`.
    pub status: String,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
}

/// One task with its output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDetail {
    pub task: TaskView,
    /// A custom script's text.
    pub code: Option<String>,
    /// The first [`MAX_DETAIL_LINES`] lines.
    pub output: Vec<LogLine>,
    /// False when there is more output than given here (read on with [`TaskService::output`]).
    pub output_complete: bool,
    /// Output was dropped at the `tasks.max_output_bytes` limit.
    pub truncated: bool,
    pub agent: Option<AgentRun>,
}

/// Filters of the history; every one is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub goblin: Option<String>,
    /// One of [`STATUSES`].
    pub status: Option<String>,
    /// A user id or username.
    pub user: Option<String>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
}

impl HistoryFilter {
    /// Reads the filters from query text (empty means no filter).
    ///
    /// # Errors
    /// [`TaskError::Invalid`] naming the first bad field.
    pub fn parse(
        goblin: Option<&str>,
        status: Option<&str>,
        user: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Self, TaskError> {
        let some = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let status = some(status);
        if let Some(s) = &status
            && !STATUSES.contains(&s.as_str())
        {
            return Err(invalid(format!("status: '{}' is not one of {}", shown(s), STATUSES.join(", "))));
        }
        let time = |field: &str, v: Option<&str>| -> Result<Option<DateTime<Utc>>, TaskError> {
            match some(v) {
                None => Ok(None),
                Some(v) => {
                    DateTime::parse_from_rfc3339(&v).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| {
                        invalid(format!(
                            "{field}: '{}' is not a time such as 2026-12-01T09:30:00Z",
                            shown(&v)
                        ))
                    })
                }
            }
        };
        Ok(Self {
            goblin: some(goblin),
            status,
            user: some(user),
            from: time("from", from)?,
            to: time("to", to)?,
        })
    }
}

/// Where a page of the history ends: the last task's `(created_at, id)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    /// An opaque, URL-safe string ([`crate::keyset::encode`]).
    pub fn encode(&self) -> String {
        crate::keyset::encode(self.created_at, self.id)
    }

    /// Reads a string made by [`Cursor::encode`].
    ///
    /// # Errors
    /// [`TaskError::Invalid`] naming the cursor, for anything else.
    pub fn decode(raw: &str) -> Result<Self, TaskError> {
        crate::keyset::decode(raw).map(|(created_at, id)| Self { created_at, id }).ok_or_else(|| {
            invalid("cursor: not a page link of the task history; start again from the newest page")
        })
    }
}

/// One page of the history, newest first; `next` is the cursor of the following page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub tasks: Vec<TaskView>,
    pub next: Option<String>,
}

/// How this process runs tasks (from [`TasksConfig`]).
#[derive(Clone, Debug)]
pub struct RunConfig {
    pub workdir: std::path::PathBuf,
    pub lease: Duration,
    pub poll: Duration,
    pub kill_grace: Duration,
    pub environment: Secret<std::collections::BTreeMap<String, String>>,
}

impl From<&TasksConfig> for RunConfig {
    fn from(c: &TasksConfig) -> Self {
        Self {
            workdir: c.workdir.clone(),
            lease: c.lease,
            poll: c.poll,
            kill_grace: c.kill_grace,
            environment: c.environment.clone(),
        }
    }
}

/// This host's name, for default worker ids.
pub fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Tasks: start, list, read, follow, cancel, and the registry they come from. Share one as `Arc`.
pub struct TaskService {
    db: DatabaseConnection,
    clock: SharedClock,
    settings: Arc<Settings>,
    /// Agent goblins answer through it; without one they fail with a clear message.
    gateway: Option<Arc<Gateway>>,
    registry: Arc<RegistryStore>,
    config: RunConfig,
    hub: Hub,
    /// Wakes this process's worker when a task is queued here.
    wake: Notify,
}

impl std::fmt::Debug for TaskService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskService").field("workdir", &self.config.workdir).finish_non_exhaustive()
    }
}

impl TaskService {
    pub fn new(
        db: DatabaseConnection,
        clock: SharedClock,
        settings: Arc<Settings>,
        gateway: Option<Arc<Gateway>>,
        registry: Arc<RegistryStore>,
        config: RunConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            clock,
            settings,
            gateway,
            registry,
            config,
            hub: Hub::default(),
            wake: Notify::new(),
        })
    }

    // ---- the registry ----

    /// The registry in force.
    pub fn registry(&self) -> Arc<registry::Loaded> {
        self.registry.current()
    }

    /// Where the registry comes from, and why a newer file was refused, if it was.
    pub fn registry_status(&self) -> RegistryStatus {
        self.registry.status()
    }

    /// The guilds and goblins that match `query` (everything for an empty one).
    pub fn catalog(&self, query: &str) -> Vec<registry::Guild> {
        self.registry.current().registry.search(query)
    }

    /// Reads the registry file again now (an admin action; the file is also watched).
    ///
    /// # Errors
    /// [`TaskError::Forbidden`] for non-admins; [`TaskError::Invalid`] with the file's problems,
    /// each with its line and field (the registry in force stays).
    #[tracing::instrument(skip(self), err(level = tracing::Level::INFO))]
    pub async fn reload_registry(&self, actor: &Actor) -> Result<RegistryStatus, TaskError> {
        if actor.role != Role::Admin {
            return Err(TaskError::Forbidden("only admins can reload the goblin registry".into()));
        }
        match self.registry.reload().await {
            Ok(_) => Ok(self.registry.status()),
            Err(e) => Err(invalid(format!(
                "the registry file was refused; the previous registry stays in force: {e}"
            ))),
        }
    }

    // ---- starting ----

    /// Starts a run: checks the goblin, the caller's role, the confirmation an unsafe goblin needs
    /// and the task text, then queues it (a worker takes it up) or, for a dry run, records what would
    /// run and runs nothing.
    ///
    /// # Errors
    /// [`TaskError::Invalid`] for an unknown goblin, oversize or unprintable text, a missing
    /// confirmation or a dry run whose `required_env` is missing; [`TaskError::Forbidden`] for
    /// viewers, unsafe goblins and custom scripts asked for by non-admins, and custom scripts while
    /// the setting forbids them; a database error.
    #[tracing::instrument(
        skip(self, req),
        fields(goblin = %shown(&req.goblin), dry_run = req.dry_run),
        err(level = tracing::Level::INFO)
    )]
    pub async fn start(&self, actor: &Actor, req: StartRequest) -> Result<TaskView, TaskError> {
        if actor.role == Role::Viewer {
            return Err(TaskError::Forbidden(
                "viewers can read tasks but not start them; ask an operator".into(),
            ));
        }
        let task = check_task_text(&req.task)?;
        let loaded = self.registry.current();
        let (goblin_id, code, rendering) = match &req.code {
            Some(code) => {
                let goblin = req.goblin.trim();
                if !goblin.is_empty() && goblin != CUSTOM_SCRIPT {
                    return Err(invalid(format!(
                        "goblin: leave it empty (or '{CUSTOM_SCRIPT}') to run a custom script; a script and a goblin cannot be given together"
                    )));
                }
                if actor.role != Role::Admin {
                    self.refused(actor, CUSTOM_SCRIPT, "custom scripts are for admins").await;
                    return Err(TaskError::Forbidden("only admins can run custom scripts".into()));
                }
                if !self.settings.bool(keys::TASK_ALLOW_CUSTOM_SCRIPTS) {
                    self.refused(actor, CUSTOM_SCRIPT, "the tasks.allow_custom_scripts setting is off").await;
                    return Err(TaskError::Forbidden(
                        "custom scripts are turned off; an admin can allow them with the tasks.allow_custom_scripts setting"
                            .into(),
                    ));
                }
                let code = check_script(code)?;
                let rendering = req.dry_run.then(|| self.render_script(&code, &task));
                (CUSTOM_SCRIPT.to_string(), Some(code), rendering)
            }
            None => {
                let id = req.goblin.trim();
                if id.is_empty() {
                    return Err(invalid("goblin: choose a goblin (GET /api/tasks/goblins lists them)"));
                }
                let Some(goblin) = loaded.registry.find(id) else {
                    return Err(invalid(format!(
                        "goblin: there is no goblin '{}' in the registry (GET /api/tasks/goblins lists them)",
                        shown(id)
                    )));
                };
                if !goblin.safe() {
                    if actor.role != Role::Admin {
                        self.refused(actor, id, "unsafe goblins are for admins").await;
                        return Err(TaskError::Forbidden(format!(
                            "'{id}' is marked unsafe: only admins can run it, after confirming"
                        )));
                    }
                    if !req.confirm && !req.dry_run {
                        return Err(invalid(format!(
                            "confirm: '{id}' is marked unsafe; send \"confirm\": true to run it (or try a dry run first)"
                        )));
                    }
                }
                let rendering = if req.dry_run { Some(self.render_goblin(&goblin, &task)?) } else { None };
                (goblin_id_of(&goblin), None, rendering)
            }
        };

        let now = self.clock.now();
        let id = Uuid::now_v7();
        let model = tasks::Model {
            id,
            goblin_id: goblin_id.clone(),
            task,
            code,
            status: if req.dry_run { DRY_RUN } else { QUEUED }.into(),
            dry_run: req.dry_run,
            exit_code: None,
            duration_ms: if req.dry_run { Some(0) } else { None },
            error: None,
            created_by: Some(actor.user_id),
            worker_id: None,
            lease_expires_at: None,
            created_at: now,
            started_at: None,
            finished_at: if req.dry_run { Some(now) } else { None },
            token_id: actor.token_id,
        };
        let row: tasks::ActiveModel = model.clone().into();
        let txn = self.db.begin().await?;
        tasks::Entity::insert(row).exec_without_returning(&txn).await?;
        if let Some(text) = &rendering {
            let lines: Vec<task_logs::ActiveModel> = text
                .lines()
                .enumerate()
                .map(|(i, line)| task_logs::ActiveModel {
                    task_id: Set(id),
                    seq: Set(i32::try_from(i + 1).unwrap_or(i32::MAX)),
                    stream: Set(Stream::System.as_str().into()),
                    line: Set(line.to_string()),
                    created_at: Set(now),
                    ..Default::default()
                })
                .collect();
            for chunk in lines.chunks(500) {
                task_logs::Entity::insert_many(chunk.to_vec()).exec_without_returning(&txn).await?;
            }
        }
        let unsafe_run =
            goblin_id == CUSTOM_SCRIPT || loaded.registry.find(&goblin_id).is_some_and(|g| !g.safe());
        if unsafe_run && !req.dry_run {
            audit::record(
                &txn,
                self.clock.as_ref(),
                audit::Event {
                    actor: Some(actor.user_id),
                    action: "task.started",
                    target: Some(id.to_string()),
                    success: true,
                    detail: serde_json::json!({ "goblin": goblin_id, "confirmed": req.confirm, "token_id": actor.token_id }),
                    ..Default::default()
                },
            )
            .await?;
        }
        txn.commit().await?;
        if !req.dry_run {
            self.wake.notify_one();
        }
        // As recorded: a worker may already have taken it up.
        Ok(self.views(vec![model]).await?.remove(0))
    }

    /// Runs a task again as a new task: the same goblin (or script), text and dry-run choice, with
    /// the checks of [`TaskService::start`] for the caller.
    ///
    /// # Errors
    /// As [`TaskService::start`], and [`TaskError::NotFound`].
    pub async fn rerun(&self, actor: &Actor, id: Uuid, confirm: bool) -> Result<TaskView, TaskError> {
        let row = self.row(id).await?;
        let code = row.code.clone();
        self.start(
            actor,
            StartRequest {
                goblin: if code.is_some() { String::new() } else { row.goblin_id },
                task: row.task,
                dry_run: row.dry_run,
                confirm,
                code,
            },
        )
        .await
    }

    async fn refused(&self, actor: &Actor, goblin: &str, reason: &str) {
        let event = audit::Event {
            actor: Some(actor.user_id),
            action: "task.refused",
            target: Some(goblin.to_string()),
            success: false,
            reason: Some(reason.to_string()),
            detail: serde_json::json!({ "token_id": actor.token_id }),
            ..Default::default()
        };
        if let Err(e) = audit::record(&self.db, self.clock.as_ref(), event).await {
            tracing::warn!(error = %e, "could not record a refused task in the audit log");
        }
    }

    /// What a dry run of a goblin shows: exactly what would run, and with what.
    fn render_goblin(&self, goblin: &Goblin<'_>, task: &str) -> Result<String, TaskError> {
        let mut out = vec!["Dry run: nothing was executed.".to_string()];
        out.push(format!(
            "goblin: {} ({}, guild {})",
            goblin_id_of(goblin),
            goblin.name(),
            goblin.guild().name
        ));
        match goblin {
            Goblin::Command { goblin: g, .. } => {
                let env = self.config.environment.expose();
                let missing: Vec<&str> = g
                    .required_env
                    .iter()
                    .filter(|n| !env.contains_key(n.as_str()))
                    .map(String::as_str)
                    .collect();
                if !missing.is_empty() {
                    return Err(invalid(format!(
                        "dry run: '{}' needs environment variables this server does not have: {}",
                        g.id,
                        missing.join(", ")
                    )));
                }
                out.push(format!("command: /bin/sh -c {}", quote(&g.command)));
                out.extend(self.render_env(&g.required_env, task));
                out.push(self.render_timeout(g.timeout_s));
                if !g.safe {
                    out.push("safe: false (runs only for an admin who confirms)".into());
                }
            }
            Goblin::Agent { goblin: g, .. } => {
                let model = match &self.gateway {
                    Some(gw) => agent::choose_model(g.brain.as_deref(), &gw.model_names("chat"))
                        .unwrap_or_else(|e| format!("none ({e})")),
                    None => "none (this server has no model gateway)".into(),
                };
                out.push(format!("model: {model}"));
                out.push(self.render_timeout(None));
                out.push("messages:".into());
                for m in agent::messages(g, task) {
                    let role = m["role"].as_str().unwrap_or("?");
                    let content = m["content"].as_str().unwrap_or("");
                    out.push(format!("  {role}: {}", quote(content)));
                }
            }
        }
        Ok(out.join("\n"))
    }

    fn render_script(&self, code: &str, task: &str) -> String {
        let mut out = vec!["Dry run: nothing was executed.".to_string()];
        out.push(format!("script: bash -euo pipefail -c {}", quote(code)));
        out.extend(self.render_env(&[], task));
        out.push(self.render_timeout(None));
        out.join("\n")
    }

    fn render_env(&self, required: &[String], task: &str) -> Vec<String> {
        let env = self.config.environment.expose();
        let mut names: Vec<String> =
            ENV_ALLOWLIST.iter().filter(|n| env.contains_key(**n)).map(|n| (*n).to_string()).collect();
        if !env.contains_key("PATH") {
            names.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        names
            .extend(required.iter().map(|n| format!("{n} (from the worker's environment, value not shown)")));
        vec![
            format!("working directory: {}", self.config.workdir.display()),
            format!("environment: {}, GOBLIN_TASK, GOBLIN_TASK_ID", names.join(", ")),
            format!("GOBLIN_TASK: {}", quote(task)),
        ]
    }

    fn render_timeout(&self, own: Option<u32>) -> String {
        let (secs, from) = match own {
            Some(s) => (u64::from(s), "the goblin's timeout_s"),
            None => (self.default_timeout().as_secs(), "the tasks.default_timeout_seconds setting"),
        };
        format!(
            "timeout: {secs} s ({from}), then SIGTERM to its process group and SIGKILL {} later",
            process::human(self.config.kill_grace)
        )
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_secs(
            u64::try_from(self.settings.int(keys::TASK_DEFAULT_TIMEOUT_SECONDS)).unwrap_or(300).max(1),
        )
    }

    // ---- reading ----

    async fn row(&self, id: Uuid) -> Result<tasks::Model, TaskError> {
        tasks::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| TaskError::NotFound(format!("there is no task with id {id}")))
    }

    /// One task as lists show it.
    ///
    /// # Errors
    /// [`TaskError::NotFound`]; a database error.
    pub async fn view(&self, id: Uuid) -> Result<TaskView, TaskError> {
        let row = self.row(id).await?;
        Ok(self.views(vec![row]).await?.remove(0))
    }

    async fn views(&self, rows: Vec<tasks::Model>) -> Result<Vec<TaskView>, DbErr> {
        let mut ids: Vec<Uuid> = rows.iter().filter_map(|r| r.created_by).collect();
        ids.sort();
        ids.dedup();
        let names: HashMap<Uuid, String> = if ids.is_empty() {
            HashMap::new()
        } else {
            users::Entity::find()
                .select_only()
                .column(users::Column::Id)
                .column(users::Column::Username)
                .filter(users::Column::Id.is_in(ids))
                .into_tuple::<(Uuid, String)>()
                .all(&self.db)
                .await?
                .into_iter()
                .collect()
        };
        let loaded = self.registry.current();
        Ok(rows
            .into_iter()
            .map(|r| {
                let (goblin_name, kind) = if r.code.is_some() || r.goblin_id == CUSTOM_SCRIPT {
                    (Some("Custom script".to_string()), Some("script".to_string()))
                } else {
                    match loaded.registry.find(&r.goblin_id) {
                        Some(g) => (Some(g.name().to_string()), Some(g.kind().to_string())),
                        None => (None, None),
                    }
                };
                TaskView {
                    finished: is_final(&r.status, r.finished_at),
                    created_by_name: r.created_by.and_then(|u| names.get(&u).cloned()),
                    id: r.id,
                    goblin_id: r.goblin_id,
                    goblin_name,
                    kind,
                    task: r.task,
                    status: r.status,
                    dry_run: r.dry_run,
                    exit_code: r.exit_code,
                    duration_ms: r.duration_ms,
                    error: r.error,
                    created_by: r.created_by,
                    worker_id: r.worker_id,
                    created_at: r.created_at,
                    started_at: r.started_at,
                    finished_at: r.finished_at,
                }
            })
            .collect())
    }

    /// One task with its output (the first [`MAX_DETAIL_LINES`] lines) and, for an agent goblin,
    /// the model's answer's provider, tokens and cost.
    ///
    /// # Errors
    /// [`TaskError::NotFound`]; a database error.
    pub async fn detail(&self, id: Uuid) -> Result<TaskDetail, TaskError> {
        let row = self.row(id).await?;
        let code = row.code.clone();
        let task = self.views(vec![row]).await?.remove(0);
        let mut output = self.output(id, 0, MAX_DETAIL_LINES + 1).await?;
        let output_complete = output.len() as u64 <= MAX_DETAIL_LINES;
        output.truncate(MAX_DETAIL_LINES as usize);
        let truncated =
            output.iter().any(|l| l.stream == "system" && l.line.starts_with("[output truncated"));
        let agent = self.agent_run(id).await?;
        Ok(TaskDetail { task, code, output, output_complete, truncated, agent })
    }

    async fn agent_run(&self, id: Uuid) -> Result<Option<AgentRun>, DbErr> {
        // Only the columns of the table's first migration are read.
        type Row = (Uuid, Option<Uuid>, Option<String>, String, i64, i64, i64);
        let row: Option<Row> = streams::Entity::find()
            .select_only()
            .column(streams::Column::Id)
            .column(streams::Column::ProviderId)
            .column(streams::Column::Model)
            .column(streams::Column::Status)
            .column(streams::Column::TokensIn)
            .column(streams::Column::TokensOut)
            .column(streams::Column::CostMicros)
            .filter(streams::Column::TaskId.eq(id))
            .order_by_desc(streams::Column::CreatedAt)
            .into_tuple()
            .one(&self.db)
            .await?;
        let Some((stream_id, provider_id, model, status, tokens_in, tokens_out, cost_micros)) = row else {
            return Ok(None);
        };
        let provider = match provider_id {
            Some(p) => providers::Entity::find_by_id(p).one(&self.db).await?.map(|p| p.name),
            None => None,
        };
        Ok(Some(AgentRun {
            stream_id,
            provider_id,
            provider,
            model,
            status,
            tokens_in,
            tokens_out,
            cost_micros,
        }))
    }

    /// A task's output lines after `after` (0 for the start), at most `limit`. A task running on this
    /// instance is read from memory, which is ahead of the table by up to a tenth of a second.
    ///
    /// # Errors
    /// [`TaskError::NotFound`]; a database error.
    pub async fn output(&self, id: Uuid, after: i32, limit: u64) -> Result<Vec<LogLine>, TaskError> {
        let limit = limit.clamp(1, 100_000);
        if let Some(live) = self.hub.get(id) {
            return Ok(live.after(after, limit as usize).0);
        }
        let lines = self.stored_lines(id, after, limit).await?;
        if lines.is_empty() {
            self.row(id).await?;
        }
        Ok(lines)
    }

    /// The last `n` lines of a task's output, oldest first: from memory when it runs on this
    /// instance, else from `task_logs`.
    ///
    /// # Errors
    /// A database error.
    pub async fn tail(&self, id: Uuid, n: u64) -> Result<Vec<LogLine>, TaskError> {
        if let Some(live) = self.hub.get(id) {
            let (lines, _) = live.after(0, usize::MAX);
            let skip = lines.len().saturating_sub(n as usize);
            return Ok(lines.into_iter().skip(skip).collect());
        }
        let mut lines: Vec<LogLine> = task_logs::Entity::find()
            .filter(task_logs::Column::TaskId.eq(id))
            .order_by_desc(task_logs::Column::Seq)
            .limit(n)
            .all(&self.db)
            .await?
            .into_iter()
            .map(LogLine::from)
            .collect();
        lines.reverse();
        Ok(lines)
    }

    async fn stored_lines(&self, id: Uuid, after: i32, limit: u64) -> Result<Vec<LogLine>, DbErr> {
        Ok(task_logs::Entity::find()
            .filter(task_logs::Column::TaskId.eq(id))
            .filter(task_logs::Column::Seq.gt(after))
            .order_by_asc(task_logs::Column::Seq)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(LogLine::from)
            .collect())
    }

    /// Tasks waiting or running (and cancellations still being carried out), oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn active(&self) -> Result<Vec<TaskView>, TaskError> {
        use sea_orm::sea_query::ExprTrait as _;
        let rows = tasks::Entity::find()
            .filter(
                tasks::Column::Status
                    .is_in([QUEUED, RUNNING])
                    .or(tasks::Column::Status.eq(CANCELLED).and(tasks::Column::FinishedAt.is_null())),
            )
            .order_by_asc(tasks::Column::CreatedAt)
            .order_by_asc(tasks::Column::Id)
            .limit(MAX_ACTIVE)
            .all(&self.db)
            .await?;
        Ok(self.views(rows).await?)
    }

    /// One page of the history, newest first: tasks matching `filter` strictly before `after`, at
    /// most `limit` (1 to [`MAX_HISTORY_PAGE`]).
    ///
    /// # Errors
    /// [`TaskError::Invalid`] for a user filter that names nobody; a database error.
    pub async fn history(
        &self,
        filter: &HistoryFilter,
        after: Option<Cursor>,
        limit: u64,
    ) -> Result<HistoryPage, TaskError> {
        use sea_orm::sea_query::ExprTrait as _;
        use tasks::Column as C;
        let limit = limit.clamp(1, MAX_HISTORY_PAGE);
        let mut q = tasks::Entity::find();
        if let Some(g) = &filter.goblin {
            q = q.filter(C::GoblinId.eq(g.as_str()));
        }
        if let Some(s) = &filter.status {
            q = q.filter(C::Status.eq(s.as_str()));
        }
        if let Some(u) = &filter.user {
            let id = match Uuid::parse_str(u) {
                Ok(id) => id,
                Err(_) => crate::users::find_by_username(&self.db, u)
                    .await?
                    .map(|u| u.id)
                    .ok_or_else(|| invalid(format!("user: there is no user '{}'", shown(u))))?,
            };
            q = q.filter(C::CreatedBy.eq(id));
        }
        if let Some(from) = filter.from {
            q = q.filter(C::CreatedAt.gte(from));
        }
        if let Some(to) = filter.to {
            q = q.filter(C::CreatedAt.lt(to));
        }
        if let Some(c) = after {
            // A row comparison: one index range on (…, created_at, id), however deep the page.
            q = q.filter(
                Expr::tuple([Expr::col((tasks::Entity, C::CreatedAt)), Expr::col((tasks::Entity, C::Id))])
                    .lt(Expr::tuple([Expr::value(c.created_at), Expr::value(c.id)])),
            );
        }
        let mut rows =
            q.order_by_desc(C::CreatedAt).order_by_desc(C::Id).limit(limit + 1).all(&self.db).await?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next = more
            .then(|| rows.last().map(|r| Cursor { created_at: r.created_at, id: r.id }.encode()))
            .flatten();
        Ok(HistoryPage { tasks: self.views(rows).await?, next })
    }

    /// Waits up to `limit` for a task to end, and returns it as it is then.
    ///
    /// # Errors
    /// [`TaskError::NotFound`]; a database error.
    pub async fn wait(&self, id: Uuid, limit: Duration) -> Result<TaskView, TaskError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(live) = self.hub.get(id) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Some(view) = live.ending(left).await {
                    return Ok(view);
                }
            }
            let view = self.view(id).await?;
            if view.finished || tokio::time::Instant::now() >= deadline {
                return Ok(view);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // ---- following ----

    /// Follows a task: its status, every output line after `after`, new lines as they come, then
    /// its ending. From memory when it runs on this instance, otherwise from the table (polled).
    /// Dropping the receiver stops the follower.
    ///
    /// # Errors
    /// [`TaskError::NotFound`]; a database error.
    pub async fn events(
        self: &Arc<Self>,
        id: Uuid,
        after: i32,
    ) -> Result<mpsc::Receiver<TaskEvent>, TaskError> {
        self.row(id).await?;
        let (tx, rx) = mpsc::channel(256);
        let svc = self.clone();
        tokio::spawn(async move { svc.follow(id, after.max(0), tx).await });
        Ok(rx)
    }

    async fn follow(&self, id: Uuid, mut last: i32, tx: mpsc::Sender<TaskEvent>) {
        let mut status: Option<String> = None;
        loop {
            if let Some(live) = self.hub.get(id) {
                if status.as_deref() != Some(RUNNING) {
                    status = Some(RUNNING.into());
                    if tx.send(TaskEvent::Status(RUNNING.into())).await.is_err() {
                        return;
                    }
                }
                let mut changes = live.subscribe();
                loop {
                    let (lines, ending) = live.after(last, LINES_PAGE as usize);
                    let full = lines.len() == LINES_PAGE as usize;
                    for line in lines {
                        last = line.seq;
                        if tx.send(TaskEvent::Line(line)).await.is_err() {
                            return;
                        }
                    }
                    if full {
                        continue;
                    }
                    if let Some(view) = ending {
                        let _ = tx.send(TaskEvent::End(Box::new(view))).await;
                        return;
                    }
                    tokio::select! {
                        changed = changes.changed() => if changed.is_err() { break },
                        () = tx.closed() => return,
                    }
                }
                continue;
            }
            // Not running here: the table.
            let Ok(lines) = self.stored_lines(id, last, LINES_PAGE).await else {
                tokio::time::sleep(EVENTS_POLL).await;
                continue;
            };
            let full = lines.len() as u64 == LINES_PAGE;
            for line in lines {
                last = line.seq;
                if tx.send(TaskEvent::Line(line)).await.is_err() {
                    return;
                }
            }
            if full {
                continue;
            }
            let row = match tasks::Entity::find_by_id(id).one(&self.db).await {
                Ok(Some(row)) => row,
                Ok(None) => return,
                Err(_) => {
                    tokio::time::sleep(EVENTS_POLL).await;
                    continue;
                }
            };
            if is_final(&row.status, row.finished_at) {
                // Every line is stored before the ending is: read what came after the last read.
                loop {
                    let Ok(rest) = self.stored_lines(id, last, LINES_PAGE).await else { return };
                    if rest.is_empty() {
                        break;
                    }
                    for line in rest {
                        last = line.seq;
                        if tx.send(TaskEvent::Line(line)).await.is_err() {
                            return;
                        }
                    }
                }
                if let Ok(mut views) = self.views(vec![row]).await {
                    let _ = tx.send(TaskEvent::End(Box::new(views.remove(0)))).await;
                }
                return;
            }
            if status.as_deref() != Some(row.status.as_str()) {
                status = Some(row.status.clone());
                if tx.send(TaskEvent::Status(row.status)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(EVENTS_POLL) => {}
                () = tx.closed() => return,
            }
        }
    }

    // ---- cancelling ----

    /// Cancels a task: a queued one is cancelled at once; a running one has its whole process group
    /// stopped by its worker (wherever it runs), then is cancelled. Waits up to 15 s for that and
    /// returns the task as it is then. A task that has ended is returned as it is.
    ///
    /// # Errors
    /// [`TaskError::Forbidden`] unless the caller started it or is an admin; [`TaskError::NotFound`];
    /// a database error.
    #[tracing::instrument(skip(self), err(level = tracing::Level::INFO))]
    pub async fn cancel(&self, actor: &Actor, id: Uuid) -> Result<TaskView, TaskError> {
        let row = self.row(id).await?;
        if actor.role == Role::Viewer || (actor.role != Role::Admin && row.created_by != Some(actor.user_id))
        {
            return Err(TaskError::Forbidden(
                "only the person who started a task, or an admin, can cancel it".into(),
            ));
        }
        let who = users::Entity::find_by_id(actor.user_id)
            .one(&self.db)
            .await?
            .map_or_else(|| actor.user_id.to_string(), |u| u.username);
        let now = self.clock.now();
        if row.status == QUEUED
            && queue::cancel_queued(&self.db, id, &format!("cancelled by {who} before it started"), now)
                .await?
        {
            return self.view(id).await;
        }
        let reason = format!("cancelled by {who}");
        if queue::cancel_running(&self.db, id, &reason).await? {
            // Running here: stop it now; elsewhere its worker sees the row within half a second.
            if let Some(live) = self.hub.get(id) {
                live.stop.send_replace(Some(output::Stop::Cancelled(reason)));
            }
            return self.wait(id, CANCEL_WAIT + self.config.kill_grace).await;
        }
        self.view(id).await
    }
}

fn goblin_id_of(g: &Goblin<'_>) -> String {
    match g {
        Goblin::Command { goblin, .. } => goblin.id.clone(),
        Goblin::Agent { goblin, .. } => goblin.id.clone(),
    }
}

/// The task text as stored: at most [`MAX_TASK_CHARS`] characters, no NUL (no environment variable
/// can hold one). It may be empty: some goblins need no text.
fn check_task_text(raw: &str) -> Result<String, TaskError> {
    let n = raw.chars().count();
    if n > MAX_TASK_CHARS {
        return Err(invalid(format!("task: at most {MAX_TASK_CHARS} characters; this one has {n}")));
    }
    if raw.contains('\0') {
        return Err(invalid("task: contains a NUL character, which cannot be passed to a command"));
    }
    Ok(raw.to_string())
}

fn check_script(raw: &str) -> Result<String, TaskError> {
    if raw.trim().is_empty() {
        return Err(invalid("code: the script is empty"));
    }
    if raw.len() > MAX_SCRIPT_BYTES {
        return Err(invalid(format!(
            "code: at most {MAX_SCRIPT_BYTES} bytes; this script has {}",
            raw.len()
        )));
    }
    if raw.contains('\0') {
        return Err(invalid("code: contains a NUL character"));
    }
    Ok(raw.to_string())
}

/// Text in single quotes as a POSIX shell reads it, for showing what would run.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests;
