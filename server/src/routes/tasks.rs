//! The tasks API under `/api/tasks`: the goblin registry, starting runs (and dry runs), the queue,
//! the history, one task with its output, live output, re-run and cancel.
//!
//! Callers authenticate with an API token that has the `tasks:run` scope (its owner's role applies),
//! or a signed-in browser session (state-changing requests must come from the dashboard's origin).
//! Viewers may read; operators and admins may start runs; unsafe goblins and custom scripts are for
//! admins. Errors are JSON, `{"error": {"message", "type"}}`, with the status saying whose fault it
//! is: 400 for a request that names a bad field (the message says which and why), 401, 403, 404,
//! and 503 when the database cannot be reached.
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/api/tasks/goblins?q=` | guilds and goblins (filtered), and the registry's status |
//! | POST | `/api/tasks/goblins/reload` | reads the registry file again (admins); 422 with its problems |
//! | POST | `/api/tasks` | `{goblin, task, dry_run, confirm, code}` → 202 queued / 201 dry run |
//! | GET | `/api/tasks?goblin=&status=&user=&from=&to=&cursor=&limit=` | history, newest first |
//! | GET | `/api/tasks/active` | queued and running tasks, oldest first |
//! | GET | `/api/tasks/{id}` | one task with its output |
//! | GET | `/api/tasks/{id}/output?after=&limit=` | more output lines |
//! | GET | `/api/tasks/{id}/events` | server-sent events: `status`, `line` (id = seq), `end` |
//! | POST | `/api/tasks/{id}/cancel` | cancels a queued or running task |
//! | POST | `/api/tasks/{id}/rerun` | `{confirm}` → starts it again as a new task |

use std::{collections::HashMap, convert::Infallible};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event as SseEvent, KeepAlive, Sse},
    },
    routing::{get, post},
};
use goblin_app::state::AppState;
use goblin_core::{
    tasks::{
        Actor, Cursor, DEFAULT_HISTORY_PAGE, HistoryFilter, MAX_HISTORY_PAGE, StartRequest, TaskError,
        TaskEvent, TaskView,
    },
    tokens::TokenError,
    users::Role,
};
use serde_json::json;
use tower_sessions::Session;
use uuid::Uuid;

use crate::routes::{api::error, fields};

/// The shape of a start request, shown when a body is not a JSON object.
const START_EXAMPLE: &str = r#"{"goblin": "hello", "task": "…"}"#;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tasks", get(history).post(start))
        .route("/api/tasks/active", get(active))
        .route("/api/tasks/goblins", get(goblins))
        .route("/api/tasks/goblins/reload", post(reload))
        .route("/api/tasks/{id}", get(detail))
        .route("/api/tasks/{id}/output", get(output))
        .route("/api/tasks/{id}/events", get(events))
        .route("/api/tasks/{id}/cancel", post(cancel))
        .route("/api/tasks/{id}/rerun", post(rerun))
}

/// A refusal, turned into the JSON error answer at the end of a handler.
#[derive(Debug)]
struct Refused {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl Refused {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.status, self.kind, &self.message)
    }
}

impl From<fields::Invalid> for Refused {
    fn from(e: fields::Invalid) -> Self {
        Self::bad(e.0)
    }
}

impl From<TaskError> for Refused {
    fn from(e: TaskError) -> Self {
        match e {
            TaskError::Invalid(m) => Self::bad(m),
            TaskError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "permission_error", m),
            TaskError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found_error", m),
            TaskError::Db(e) => {
                tracing::error!(error = %e, "a tasks request failed on the database");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable right now; try again",
                )
            }
        }
    }
}

/// A handler's answer: the response, or the refusal as JSON.
fn answer(r: Result<Response, Refused>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The caller: a bearer token with scope `tasks:run`, or else a signed-in session.
async fn actor(state: &AppState, headers: &HeaderMap, session: &Session) -> Result<Actor, Refused> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    let no_role = |whose: &str| {
        Refused::new(StatusCode::FORBIDDEN, "permission_error", format!("{whose} has no known role"))
    };
    if let Some(token) = bearer {
        return match state.tokens.verify(token, Some("tasks:run")).await {
            Ok(Ok(v)) => match v.role.parse::<Role>() {
                Ok(role) => Ok(Actor { user_id: v.user_id, role, token_id: Some(v.token_id) }),
                Err(_) => Err(no_role("the token's owner")),
            },
            Ok(Err(e @ TokenError::MissingScope(_))) => {
                Err(Refused::new(StatusCode::FORBIDDEN, "permission_error", e.to_string()))
            }
            Ok(Err(e)) => Err(Refused::new(StatusCode::UNAUTHORIZED, "authentication_error", e.to_string())),
            Err(e) => {
                tracing::error!(error = %e, "token verification failed");
                Err(Refused::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the token could not be checked right now",
                ))
            }
        };
    }
    let unauthorised = || {
        Refused::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "sign in, or send 'Authorization: Bearer <token>' with a token that has the tasks:run scope",
        )
    };
    let Some(user_id) = crate::auth::session_user(state, session).await else { return Err(unauthorised()) };
    use sea_orm::EntityTrait;
    match goblin_core::entities::users::Entity::find_by_id(user_id).one(&state.db).await {
        Ok(Some(u)) => match u.role.parse::<Role>() {
            Ok(role) => Ok(Actor { user_id, role, token_id: None }),
            Err(_) => Err(no_role("your account")),
        },
        Ok(None) => Err(unauthorised()),
        Err(e) => Err(TaskError::Db(e).into()),
    }
}

/// A task id from the path; anything that is not one is simply not found.
fn task_id(raw: &str) -> Result<Uuid, Refused> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        Refused::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("there is no task with id '{}'", raw.chars().take(40).collect::<String>()),
        )
    })
}

/// The answer to a started run: 202 while it waits in the queue, 201 for a finished dry run.
fn started(view: TaskView) -> Response {
    let status = if view.dry_run { StatusCode::CREATED } else { StatusCode::ACCEPTED };
    let location = format!("/api/tasks/{}", view.id);
    let mut resp = (status, Json(view)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

async fn start(State(state): State<AppState>, headers: HeaderMap, session: Session, body: Bytes) -> Response {
    answer(
        async {
            let actor = actor(&state, &headers, &session).await?;
            let map = fields::object(
                &body,
                &["goblin", "task", "dry_run", "confirm", "code"],
                Some(START_EXAMPLE),
            )?;
            let req = StartRequest {
                goblin: fields::text(&map, "goblin")?.unwrap_or_default(),
                task: fields::text(&map, "task")?.unwrap_or_default(),
                dry_run: fields::flag(&map, "dry_run")?,
                confirm: fields::flag(&map, "confirm")?,
                code: fields::text(&map, "code")?,
            };
            Ok(started(state.tasks.start(&actor, req).await?))
        }
        .await,
    )
}

async fn rerun(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
    body: Bytes,
) -> Response {
    answer(
        async {
            let actor = actor(&state, &headers, &session).await?;
            let id = task_id(&id)?;
            let confirm = fields::flag(&fields::object(&body, &["confirm"], None)?, "confirm")?;
            Ok(started(state.tasks.rerun(&actor, id, confirm).await?))
        }
        .await,
    )
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            let actor = actor(&state, &headers, &session).await?;
            let id = task_id(&id)?;
            Ok(Json(state.tasks.cancel(&actor, id).await?).into_response())
        }
        .await,
    )
}

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

fn query(q: QueryMap) -> Result<HashMap<String, String>, Refused> {
    q.map(|Query(m)| m).map_err(|_| Refused::bad("the query string could not be read"))
}

fn number(
    q: &HashMap<String, String>,
    field: &str,
    min: i64,
    max: i64,
    default: i64,
) -> Result<i64, Refused> {
    match q.get(field).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse::<i64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| {
            Refused::bad(format!(
                "{field}: must be a whole number from {min} to {max}, not '{}'",
                v.chars().take(40).collect::<String>()
            ))
        }),
    }
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    q: QueryMap,
) -> Response {
    answer(
        async {
            actor(&state, &headers, &session).await?;
            let q = query(q)?;
            let get = |k: &str| q.get(k).map(String::as_str);
            let filter =
                HistoryFilter::parse(get("goblin"), get("status"), get("user"), get("from"), get("to"))?;
            let cursor = match get("cursor").map(str::trim).filter(|c| !c.is_empty()) {
                Some(c) => Some(Cursor::decode(c)?),
                None => None,
            };
            let limit = number(&q, "limit", 1, MAX_HISTORY_PAGE as i64, DEFAULT_HISTORY_PAGE as i64)?;
            Ok(Json(state.tasks.history(&filter, cursor, limit as u64).await?).into_response())
        }
        .await,
    )
}

async fn active(State(state): State<AppState>, headers: HeaderMap, session: Session) -> Response {
    answer(
        async {
            actor(&state, &headers, &session).await?;
            Ok(Json(json!({ "tasks": state.tasks.active().await? })).into_response())
        }
        .await,
    )
}

async fn goblins(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    q: QueryMap,
) -> Response {
    answer(
        async {
            actor(&state, &headers, &session).await?;
            let q = query(q)?;
            let search = q.get("q").map_or("", String::as_str);
            let body =
                json!({ "guilds": state.tasks.catalog(search), "registry": state.tasks.registry_status() });
            Ok(Json(body).into_response())
        }
        .await,
    )
}

async fn reload(State(state): State<AppState>, headers: HeaderMap, session: Session) -> Response {
    answer(
        async {
            let actor = actor(&state, &headers, &session).await?;
            match state.tasks.reload_registry(&actor).await {
                Ok(status) => Ok(Json(json!({ "registry": status })).into_response()),
                Err(TaskError::Invalid(message)) => {
                    // The file's problems, each with its line, column and field, for the page to list.
                    let problems = state.tasks.registry_status().error.map(|e| e.problems).unwrap_or_default();
                    let body = json!({ "error": { "message": message, "type": "invalid_registry", "problems": problems } });
                    Ok((StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response())
                }
                Err(e) => Err(e.into()),
            }
        }
        .await,
    )
}

async fn detail(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            actor(&state, &headers, &session).await?;
            let id = task_id(&id)?;
            Ok(Json(state.tasks.detail(id).await?).into_response())
        }
        .await,
    )
}

async fn output(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
    q: QueryMap,
) -> Response {
    answer(
        async {
            actor(&state, &headers, &session).await?;
            let id = task_id(&id)?;
            let q = query(q)?;
            let after = number(&q, "after", 0, i64::from(i32::MAX), 0)?;
            let limit = number(&q, "limit", 1, 10_000, 1_000)?;
            let lines = state.tasks.output(id, after as i32, limit as u64).await?;
            let last = lines.last().map_or(after, |l| i64::from(l.seq));
            Ok(Json(json!({ "lines": lines, "after": last })).into_response())
        }
        .await,
    )
}

/// Where to resume: `Last-Event-ID` (a reconnecting EventSource sends it) wins over `?after`.
fn resume_point(headers: &HeaderMap, after: Option<&str>) -> Result<i32, Refused> {
    let (raw, name) = match headers.get("last-event-id") {
        Some(v) => (v.to_str().unwrap_or("?").trim().to_string(), "Last-Event-ID"),
        None => (after.unwrap_or_default().trim().to_string(), "after"),
    };
    if raw.is_empty() {
        return Ok(0);
    }
    raw.parse::<i32>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        Refused::bad(format!(
            "{name} must be the number of the last output line seen (0 or more), not '{}'",
            raw.chars().take(40).collect::<String>()
        ))
    })
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
    q: QueryMap,
) -> Response {
    answer(
        async {
            actor(&state, &headers, &session).await?;
            let id = task_id(&id)?;
            let q = query(q)?;
            let after = resume_point(&headers, q.get("after").map(String::as_str))?;
            let rx = state.tasks.events(id, after).await?;
            // Dropping the stream (the client went away) closes the channel, which ends the follower.
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|e| (Ok::<_, Infallible>(sse_event(e)), rx))
            });
            let mut resp = Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
            resp.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
            Ok(resp)
        }
        .await,
    )
}

fn sse_event(e: TaskEvent) -> SseEvent {
    match e {
        TaskEvent::Status(status) => {
            SseEvent::default().event("status").data(json!({ "status": status }).to_string())
        }
        TaskEvent::Line(l) => SseEvent::default()
            .id(l.seq.to_string())
            .event("line")
            .data(serde_json::to_string(&l).unwrap_or_else(|_| "{}".into())),
        TaskEvent::End(view) => SseEvent::default()
            .event("end")
            .data(serde_json::to_string(&view).unwrap_or_else(|_| "{}".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_point_prefers_last_event_id() {
        let mut h = HeaderMap::new();
        assert_eq!(resume_point(&h, Some("4")).unwrap(), 4);
        h.insert("last-event-id", HeaderValue::from_static("9"));
        assert_eq!(resume_point(&h, Some("4")).unwrap(), 9);
        h.insert("last-event-id", HeaderValue::from_static("-2"));
        assert!(resume_point(&h, None).is_err());
    }
}
