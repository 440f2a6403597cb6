//! Goblin tasks for any signed-in person: the registry (searched), the queue, the history (filtered,
//! newest first, keyset-paginated) and one task with its output; and for operators and admins,
//! starting runs and dry runs, re-running and cancelling. Live output streams from
//! `/api/tasks/{id}/events`.
//!
//! Form fields are plain strings (and `Option<String>` for checkboxes and the Dry run button, which
//! send nothing when not used) so that every form works without JavaScript. A plain form post that
//! starts a task waits a few seconds for it and is redirected to the task's page; a refused one goes
//! back to its page with the reason. The service checks the role, the goblin, the confirmation an
//! unsafe goblin needs and the task text.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// One goblin of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoblinRow {
    pub id: String,
    pub name: String,
    /// `command` or `agent`.
    pub kind: String,
    pub summary: Option<String>,
    pub owner: Option<String>,
    /// `false`: only admins may run it, after confirming.
    pub safe: bool,
    /// A command goblin's shell command.
    pub command: Option<String>,
    /// An agent goblin's model.
    pub brain: Option<String>,
    /// Seconds; `None` for the `tasks.default_timeout_seconds` setting.
    pub timeout_s: Option<u32>,
    pub required_env: Vec<String>,
    pub responsibilities: Vec<String>,
}

/// A guild and its goblins (those matching the search).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuildRow {
    pub id: String,
    pub name: String,
    pub summary: Option<String>,
    pub goblins: Vec<GoblinRow>,
}

/// Where the registry in force came from, and why a newer file was refused, if it was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryRow {
    /// The file watched.
    pub path: String,
    /// The file, or "built-in sample".
    pub source: String,
    /// `YYYY-MM-DD HH:MM:SS UTC`.
    pub loaded_at: String,
    pub guilds: usize,
    pub goblins: usize,
    /// Each problem of the refused file, with its line, column and field.
    pub problems: Vec<String>,
}

/// An option of a `<select>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoblinChoice {
    pub value: String,
    pub label: String,
}

/// What the registry part of the Tasks page shows, and what the person may do there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogView {
    pub guilds: Vec<GuildRow>,
    pub registry: RegistryRow,
    /// Every goblin (whatever the search), for the history's filter.
    pub choices: Vec<GoblinChoice>,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    /// Operators and admins start runs; viewers only look.
    pub can_run: bool,
    /// An admin, while the `tasks.allow_custom_scripts` setting allows custom scripts.
    pub custom_scripts: bool,
}

/// A task as lists and its page show it. The field names are those of the tasks API, so the `end`
/// event of `/api/tasks/{id}/events` reads into this type too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRow {
    pub id: String,
    pub goblin_id: String,
    /// `None` once the goblin is gone from the registry.
    pub goblin_name: Option<String>,
    /// `command`, `agent` or `script`.
    pub kind: Option<String>,
    pub task: String,
    /// `queued`, `running`, `succeeded`, `failed`, `timed_out`, `cancelled` or `dry_run`.
    pub status: String,
    pub dry_run: bool,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
    /// Why it failed, timed out or was cancelled.
    pub error: Option<String>,
    pub created_by_name: Option<String>,
    pub worker_id: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Ended for good (a cancelled task whose worker is still stopping it has not).
    pub finished: bool,
    /// The last lines of a running task's output, in the list of queued and running tasks.
    #[serde(default)]
    pub tail: Vec<LineRow>,
}

/// One line of a task's output. The `line` events of `/api/tasks/{id}/events` read into it too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRow {
    /// 1, 2, 3 … within the task.
    pub seq: i32,
    /// `stdout`, `stderr` or `system`.
    pub stream: String,
    pub line: String,
}

/// What an agent goblin's answer cost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRow {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// US dollars, e.g. `0.000123`.
    pub cost: String,
}

/// One task with its output, and what the person may do with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskDetailView {
    pub task: TaskRow,
    /// A custom script's text.
    pub code: Option<String>,
    /// The first lines (up to 5 000).
    pub output: Vec<LineRow>,
    /// False when the task has more output than `output` holds.
    pub output_complete: bool,
    /// Output was dropped at the `tasks.max_output_bytes` limit.
    pub truncated: bool,
    pub agent: Option<AgentRow>,
    /// The person may cancel it while it runs: they started it, or are an admin.
    pub can_cancel: bool,
    /// The person's role may start it again.
    pub can_rerun: bool,
    /// Re-running it needs the unsafe goblin's confirmation (not for a dry run, nor a script).
    pub rerun_needs_confirm: bool,
}

/// One page of the history; `next` is the cursor of the following (older) page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryView {
    pub tasks: Vec<TaskRow>,
    pub next: Option<String>,
}

/// A task that was started (or dry-run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStarted {
    pub id: String,
    pub status: String,
}

#[cfg(feature = "ssr")]
mod ssr {
    use std::time::Duration;

    use chrono::{DateTime, SecondsFormat, Utc};
    use goblin_core::{
        entities::users,
        tasks::{Actor, LogLine, TaskError, TaskView, registry},
        users::Role,
    };

    use super::*;

    /// How long a plain form post waits for the task it started before showing its page, so a quick
    /// goblin's page shows how it ended. A longer task's page shows its output so far.
    pub const PLAIN_POST_WAIT: Duration = Duration::from_secs(5);

    /// A plain form post from a browser without JavaScript (it asks for HTML back).
    pub fn plain_form_post() -> bool {
        use_context::<axum::http::request::Parts>().is_some_and(|p| {
            p.method == axum::http::Method::POST
                && p.headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
        })
    }

    pub fn map_err(e: TaskError) -> AppError {
        match e {
            TaskError::Invalid(m) => AppError::Refused(m).respond(),
            TaskError::Forbidden(m) => {
                // The service's message says who may; keep it, with the status of a refusal by role.
                let e = AppError::Refused(m).respond();
                if !plain_form_post()
                    && let Some(resp) = use_context::<leptos_axum::ResponseOptions>()
                {
                    resp.set_status(axum::http::StatusCode::FORBIDDEN);
                }
                e
            }
            TaskError::NotFound(m) => AppError::NotFound(m).respond(),
            TaskError::Db(e) => AppError::internal(e),
        }
    }

    /// The person as the tasks service knows them.
    pub fn actor(user: &users::Model) -> Result<Actor, AppError> {
        let role = user.role.parse::<Role>().map_err(AppError::internal)?;
        Ok(Actor { user_id: user.id, role, token_id: None })
    }

    /// A task id from a form or URL; anything else is "not found", as an unknown id is.
    pub fn parse_id(raw: &str) -> Result<uuid::Uuid, AppError> {
        uuid::Uuid::parse_str(raw.trim()).map_err(|_| {
            AppError::NotFound(format!(
                "there is no task with id '{}'",
                raw.chars().take(40).collect::<String>()
            ))
            .respond()
        })
    }

    /// A `datetime-local` value (UTC) as RFC 3339; anything else is passed on for the service to
    /// refuse, naming the field.
    pub fn as_rfc3339(raw: Option<String>) -> Option<String> {
        let raw = raw?;
        let v = raw.trim();
        for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, format) {
                return Some(t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true));
            }
        }
        Some(raw)
    }

    fn time(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn task_row(t: TaskView) -> TaskRow {
        TaskRow {
            id: t.id.to_string(),
            goblin_id: t.goblin_id,
            goblin_name: t.goblin_name,
            kind: t.kind,
            task: t.task,
            status: t.status,
            dry_run: t.dry_run,
            exit_code: t.exit_code,
            duration_ms: t.duration_ms,
            error: t.error,
            created_by_name: t.created_by_name,
            worker_id: t.worker_id,
            created_at: time(t.created_at),
            started_at: t.started_at.map(time),
            finished_at: t.finished_at.map(time),
            finished: t.finished,
            tail: Vec::new(),
        }
    }

    pub fn line_row(l: LogLine) -> LineRow {
        LineRow { seq: l.seq, stream: l.stream, line: l.line }
    }

    pub fn registry_row(s: registry::RegistryStatus) -> RegistryRow {
        RegistryRow {
            path: s.path,
            source: s.source,
            loaded_at: s.loaded_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            guilds: s.guilds,
            goblins: s.goblins,
            problems: s
                .error
                .map(|e| e.problems.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        }
    }

    pub fn guild_row(g: registry::Guild) -> GuildRow {
        let commands = g.toolbelt.into_iter().map(|c| GoblinRow {
            id: c.id,
            name: c.name,
            kind: "command".into(),
            summary: c.summary,
            owner: c.owner,
            safe: c.safe,
            command: Some(c.command),
            brain: None,
            timeout_s: c.timeout_s,
            required_env: c.required_env,
            responsibilities: Vec::new(),
        });
        let agents = g.members.into_iter().map(|a| GoblinRow {
            id: a.id,
            name: a.title,
            kind: "agent".into(),
            summary: None,
            owner: None,
            safe: true,
            command: None,
            brain: a.brain,
            timeout_s: None,
            required_env: Vec::new(),
            responsibilities: a.responsibilities,
        });
        GuildRow { id: g.id, name: g.name, summary: g.summary, goblins: commands.chain(agents).collect() }
    }

    /// Every goblin of the registry, for the history's filter.
    pub fn choices(r: &registry::Registry) -> Vec<GoblinChoice> {
        let mut out: Vec<GoblinChoice> = r
            .guilds
            .iter()
            .flat_map(|g| {
                let commands = g.toolbelt.iter().map(|c| (c.id.clone(), c.name.clone()));
                let agents = g.members.iter().map(|a| (a.id.clone(), a.title.clone()));
                commands.chain(agents)
            })
            .map(|(id, name)| GoblinChoice { label: format!("{name} ({id})"), value: id })
            .collect();
        out.push(GoblinChoice { value: registry::CUSTOM_SCRIPT.into(), label: "Custom scripts".into() });
        out
    }

    /// After a start: a plain form post waits a little for the task and is sent to its page.
    pub async fn started(state: &crate::state::AppState, view: TaskView) -> TaskStarted {
        let mut view = view;
        if plain_form_post() {
            if !view.finished {
                match state.tasks.wait(view.id, PLAIN_POST_WAIT).await {
                    Ok(v) => view = v,
                    Err(e) => tracing::warn!(error = %e, "could not wait for a started task"),
                }
            }
            leptos_axum::redirect(&format!("/tasks/{}", view.id));
        }
        TaskStarted { id: view.id.to_string(), status: view.status }
    }
}

#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::{require_admin, require_user};
#[cfg(feature = "ssr")]
use ssr::*;

/// The registry's guilds and goblins matching `q` (everything when empty), where it came from, and
/// what the person may run.
///
/// # Errors
/// Not signed in.
#[server(prefix = "/fn", endpoint = "tasks/catalog")]
pub async fn task_catalog(q: String) -> Result<CatalogView, AppError> {
    let (state, _, user) = require_user().await?;
    let role = user.role.clone();
    let admin = role == "admin";
    Ok(CatalogView {
        guilds: state.tasks.catalog(&q).into_iter().map(guild_row).collect(),
        registry: registry_row(state.tasks.registry_status()),
        choices: choices(&state.tasks.registry().registry),
        can_run: admin || role == "operator",
        custom_scripts: admin && state.settings.bool(goblin_core::settings::keys::TASK_ALLOW_CUSTOM_SCRIPTS),
        role,
    })
}

/// Tasks waiting or running (and cancellations being carried out), oldest first.
///
/// # Errors
/// Not signed in.
#[server(prefix = "/fn", endpoint = "tasks/queue")]
pub async fn task_queue() -> Result<Vec<TaskRow>, AppError> {
    let (state, _, _) = require_user().await?;
    let mut rows: Vec<TaskRow> =
        state.tasks.active().await.map_err(map_err)?.into_iter().map(task_row).collect();
    for row in rows.iter_mut().filter(|r| r.status == "running") {
        if let Ok(id) = uuid::Uuid::parse_str(&row.id) {
            row.tail = state
                .tasks
                .tail(id, QUEUE_TAIL_LINES)
                .await
                .map_err(map_err)?
                .into_iter()
                .map(line_row)
                .collect();
        }
    }
    Ok(rows)
}

/// Lines of output shown under each running task in the queue.
#[cfg(feature = "ssr")]
const QUEUE_TAIL_LINES: u64 = 5;

/// One page of the history, newest first. Every filter may be left out: `goblin` an id, `status`
/// one of the statuses, `user` a username, `from` and `to` `datetime-local` values in UTC (`to`
/// exclusive), `cursor` the `next` of the previous page.
///
/// # Errors
/// Not signed in, or a filter or cursor that is not valid (400, naming it).
#[server(prefix = "/fn", endpoint = "tasks/history")]
pub async fn task_history(
    goblin: Option<String>,
    status: Option<String>,
    user: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
) -> Result<HistoryView, AppError> {
    use goblin_core::tasks::{Cursor, DEFAULT_HISTORY_PAGE, HistoryFilter};
    let (state, _, _) = require_user().await?;
    let (from, to) = (as_rfc3339(from), as_rfc3339(to));
    let filter = HistoryFilter::parse(
        goblin.as_deref(),
        status.as_deref(),
        user.as_deref(),
        from.as_deref(),
        to.as_deref(),
    )
    .map_err(map_err)?;
    let after = match cursor.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => Some(Cursor::decode(c).map_err(map_err)?),
        None => None,
    };
    let page = state.tasks.history(&filter, after, DEFAULT_HISTORY_PAGE).await.map_err(map_err)?;
    Ok(HistoryView { tasks: page.tasks.into_iter().map(task_row).collect(), next: page.next })
}

/// One task with its output (the first 5 000 lines), and what the person may do with it.
///
/// # Errors
/// Not signed in, or no task with that id (404).
#[server(prefix = "/fn", endpoint = "tasks/detail")]
pub async fn task_detail(id: String) -> Result<TaskDetailView, AppError> {
    let (state, _, user) = require_user().await?;
    let d = state.tasks.detail(parse_id(&id)?).await.map_err(map_err)?;
    let (admin, operator) = (user.role == "admin", user.role == "operator");
    let unsafe_goblin = d.task.goblin_id == goblin_core::tasks::registry::CUSTOM_SCRIPT
        || state.tasks.registry().registry.find(&d.task.goblin_id).is_some_and(|g| !g.safe());
    let mine = d.task.created_by == Some(user.id);
    Ok(TaskDetailView {
        can_cancel: admin || (operator && mine),
        can_rerun: admin || (operator && !unsafe_goblin),
        rerun_needs_confirm: unsafe_goblin && d.code.is_none() && !d.task.dry_run,
        task: task_row(d.task),
        code: d.code,
        output: d.output.into_iter().map(line_row).collect(),
        output_complete: d.output_complete,
        truncated: d.truncated,
        agent: d.agent.map(|a| AgentRow {
            provider: a.provider,
            model: a.model,
            tokens_in: a.tokens_in,
            tokens_out: a.tokens_out,
            cost: goblin_core::providers::format_usd_micros(a.cost_micros),
        }),
    })
}

/// Starts a goblin (or, for an admin while the setting allows it, a custom script: `code` with an
/// empty `goblin`). `dry_run` present: render what would run and run nothing. `confirm` present:
/// the admin confirms running an unsafe goblin. A plain form post is redirected to the task's page.
///
/// # Errors
/// Not signed in; a viewer, or an unsafe goblin or custom script for a non-admin (403); an unknown
/// goblin, oversize or unprintable text, or a missing confirmation (400, naming the field).
#[server(prefix = "/fn", endpoint = "tasks/start")]
pub async fn start_task(
    goblin: String,
    task: String,
    dry_run: Option<String>,
    confirm: Option<String>,
    code: Option<String>,
) -> Result<TaskStarted, AppError> {
    let (state, _, user) = require_user().await?;
    let req = goblin_core::tasks::StartRequest {
        goblin,
        task,
        dry_run: dry_run.is_some(),
        confirm: confirm.is_some(),
        code,
    };
    let view = state.tasks.start(&actor(&user)?, req).await.map_err(map_err)?;
    Ok(started(&state, view).await)
}

/// Starts a task again as a new task: the same goblin (or script), text and dry-run choice.
/// `confirm` present: the admin confirms running an unsafe goblin. A plain form post is redirected
/// to the new task's page.
///
/// # Errors
/// As [`start_task`], and no task with that id (404).
#[server(prefix = "/fn", endpoint = "tasks/rerun")]
pub async fn rerun_task(id: String, confirm: Option<String>) -> Result<TaskStarted, AppError> {
    let (state, _, user) = require_user().await?;
    let view = state.tasks.rerun(&actor(&user)?, parse_id(&id)?, confirm.is_some()).await.map_err(map_err)?;
    Ok(started(&state, view).await)
}

/// Cancels a queued or running task and returns it as it is then (a running one is stopped first,
/// waiting up to about 15 seconds). A plain form post goes back to its page.
///
/// # Errors
/// Not signed in; neither the person who started it nor an admin (403); no task with that id (404).
#[server(prefix = "/fn", endpoint = "tasks/cancel")]
pub async fn cancel_task(id: String) -> Result<TaskRow, AppError> {
    let (state, _, user) = require_user().await?;
    let view = state.tasks.cancel(&actor(&user)?, parse_id(&id)?).await.map_err(map_err)?;
    Ok(task_row(view))
}

/// Reads the registry file again now (it is also watched). A file with mistakes is refused with
/// each problem's line and field, and the registry in force stays.
///
/// # Errors
/// Not an admin, or the file's problems (400).
#[server(prefix = "/fn", endpoint = "tasks/registry-reload")]
pub async fn reload_goblin_registry() -> Result<RegistryRow, AppError> {
    let (state, admin) = require_admin().await?;
    let status = state.tasks.reload_registry(&actor(&admin)?).await.map_err(map_err)?;
    Ok(registry_row(status))
}
