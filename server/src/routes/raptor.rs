//! Raptor's HTTP API, for admins: a signed-in admin's session (state-changing requests from the
//! dashboard's origin), or an API token with the `admin` scope whose owner is an admin. Errors are
//! JSON, `{"error": {"message", "type"}}`: 400 naming the field that is wrong, 401, 403, 404.
//!
//! | method | path | does |
//! |---|---|---|
//! | POST | `/raptor/start` | `{sample_rate_ms?}` starts sampling (100 to 3 600 000 ms; default from config) |
//! | POST | `/raptor/stop` | stops sampling |
//! | GET | `/raptor/status?samples=` | running or not, the newest sample, and up to 600 recent samples |
//! | POST | `/raptor/logs` | `{lines?, max_chars?, level?}`: the end of the Raptor log, read from its end |
//! | GET | `/raptor/exceptions?limit=` | traced exception groups, most recently seen first |
//! | GET | `/raptor/exceptions/{id}` | one group with its backtrace and context |
//! | GET | `/raptor/demo/{value}` | `boom` fails inside a traced span, `panic` panics; else echoes `value` |

use std::{collections::HashMap, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State, rejection::QueryRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use goblin_app::state::AppState;
use goblin_core::{
    config::RaptorLevel,
    raptor::{
        MAX_SAMPLE_MS, MIN_SAMPLE_MS, RING,
        log::{DEFAULT_TAIL_CHARS, DEFAULT_TAIL_LINES, MAX_TAIL_CHARS, MAX_TAIL_LINES, TailRequest},
    },
    tokens::TokenError,
};
use serde_json::{Value, json};
use tower_sessions::Session;
use uuid::Uuid;

use crate::routes::{api::error, fields};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/raptor/start", post(start))
        .route("/raptor/stop", post(stop))
        .route("/raptor/status", get(status))
        .route("/raptor/logs", post(logs))
        .route("/raptor/exceptions", get(exceptions))
        .route("/raptor/exceptions/{id}", get(exception))
        .route("/raptor/demo/{value}", get(demo))
}

/// A refusal, as the JSON error answer.
struct Refused(StatusCode, &'static str, String);

impl Refused {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, "invalid_request_error", message.into())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, self.1, &self.2)
    }
}

impl From<fields::Invalid> for Refused {
    fn from(e: fields::Invalid) -> Self {
        Self::bad(e.0)
    }
}

fn answer(r: Result<Response, Refused>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The admin making the request (recorded on the request span as `user_id`).
async fn admin(state: &AppState, headers: &HeaderMap, session: &Session) -> Result<Uuid, Refused> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    let forbidden = || Refused(StatusCode::FORBIDDEN, "permission_error", "Raptor is for admins".into());
    let user = if let Some(token) = bearer {
        match state.tokens.verify(token, Some("admin")).await {
            Ok(Ok(v)) if v.role == "admin" => v.user_id,
            Ok(Ok(_)) => return Err(forbidden()),
            Ok(Err(e @ TokenError::MissingScope(_))) => {
                return Err(Refused(StatusCode::FORBIDDEN, "permission_error", e.to_string()));
            }
            Ok(Err(e)) => {
                return Err(Refused(StatusCode::UNAUTHORIZED, "authentication_error", e.to_string()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "token verification failed");
                return Err(Refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the token could not be checked right now".into(),
                ));
            }
        }
    } else {
        let Some(user) = crate::auth::session_user(state, session).await else {
            return Err(Refused(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "sign in as an admin, or send 'Authorization: Bearer <token>' with an admin token".into(),
            ));
        };
        use sea_orm::EntityTrait;
        match goblin_core::entities::users::Entity::find_by_id(user).one(&state.db).await {
            Ok(Some(u)) if u.role == "admin" => user,
            Ok(_) => return Err(forbidden()),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the signed-in account");
                return Err(Refused(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable right now".into(),
                ));
            }
        }
    };
    tracing::Span::current().record("user_id", tracing::field::display(user));
    Ok(user)
}

async fn start(State(state): State<AppState>, headers: HeaderMap, session: Session, body: Bytes) -> Response {
    answer(
        async {
            admin(&state, &headers, &session).await?;
            let map = fields::object(&body, &["sample_rate_ms"], None)?;
            let rate = fields::whole_in(&map, "sample_rate_ms", MIN_SAMPLE_MS, MAX_SAMPLE_MS)?
                .map(Duration::from_millis);
            Ok(Json(state.raptor.start(rate)).into_response())
        }
        .await,
    )
}

async fn stop(State(state): State<AppState>, headers: HeaderMap, session: Session) -> Response {
    answer(
        async {
            admin(&state, &headers, &session).await?;
            Ok(Json(state.raptor.stop()).into_response())
        }
        .await,
    )
}

type QueryMap = Result<Query<HashMap<String, String>>, QueryRejection>;

fn query_number(q: QueryMap, field: &str, max: usize, default: usize) -> Result<usize, Refused> {
    let q = q.map(|Query(m)| m).map_err(|_| Refused::bad("the query string could not be read"))?;
    match q.get(field).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n <= max).ok_or_else(|| {
            Refused::bad(format!(
                "{field}: must be a whole number from 0 to {max}, not '{}'",
                v.chars().take(40).collect::<String>()
            ))
        }),
    }
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    q: QueryMap,
) -> Response {
    answer(
        async {
            admin(&state, &headers, &session).await?;
            let n = query_number(q, "samples", RING, 60)?;
            let mut body = serde_json::to_value(state.raptor.status()).unwrap_or_default();
            body["samples"] = serde_json::to_value(state.raptor.samples(n)).unwrap_or_default();
            Ok(Json(body).into_response())
        }
        .await,
    )
}

async fn logs(State(state): State<AppState>, headers: HeaderMap, session: Session, body: Bytes) -> Response {
    answer(
        async {
            admin(&state, &headers, &session).await?;
            let map = fields::object(&body, &["lines", "max_chars", "level"], None)?;
            let level = match map.get("level") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.eq_ignore_ascii_case("all") || s.is_empty() => None,
                Some(Value::String(s)) => Some(RaptorLevel::parse(s).ok_or_else(|| {
                    Refused::bad(format!(
                        "level: must be one of error, warn, info, debug or all, not '{}'",
                        s.chars().take(40).collect::<String>()
                    ))
                })?),
                Some(other) => {
                    return Err(Refused::bad(format!(
                        "level: must be one of error, warn, info, debug or all, not {}",
                        fields::kind_of(other)
                    )));
                }
            };
            let req = TailRequest {
                lines: fields::whole_in(&map, "lines", 1, MAX_TAIL_LINES as u64)?
                    .map_or(DEFAULT_TAIL_LINES, |n| n as usize),
                max_chars: fields::whole_in(&map, "max_chars", 1, MAX_TAIL_CHARS as u64)?
                    .map_or(DEFAULT_TAIL_CHARS, |n| n as usize),
                level,
            };
            state.raptor.flush_log(Duration::from_millis(500)).await;
            match state.raptor.tail(req).await {
                Ok(tail) => Ok(Json(json!({
                    "file": state.raptor.log().path().display().to_string(),
                    "lines": tail.lines,
                    "bytes_read": tail.bytes_read,
                    "file_bytes": tail.file_bytes,
                    "more_before": tail.more_before,
                }))
                .into_response()),
                Err(e) => {
                    tracing::error!(error = %e, "could not read the Raptor log");
                    Err(Refused(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "the Raptor log could not be read; the details are in the server's log".into(),
                    ))
                }
            }
        }
        .await,
    )
}

async fn exceptions(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    q: QueryMap,
) -> Response {
    answer(
        async {
            admin(&state, &headers, &session).await?;
            let limit = query_number(q, "limit", 500, 50)?;
            match state.raptor.exceptions().list(limit as u64).await {
                Ok(list) => Ok(Json(json!({ "exceptions": list })).into_response()),
                Err(e) => Err(db_unavailable(&e)),
            }
        }
        .await,
    )
}

async fn exception(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    Path(id): Path<String>,
) -> Response {
    answer(
        async {
            admin(&state, &headers, &session).await?;
            let not_found = || {
                Refused(
                    StatusCode::NOT_FOUND,
                    "not_found_error",
                    format!("there is no exception with id '{}'", id.chars().take(40).collect::<String>()),
                )
            };
            let uuid = Uuid::parse_str(id.trim()).map_err(|_| not_found())?;
            match state.raptor.exceptions().get(uuid).await {
                Ok(Some(e)) => Ok(Json(e).into_response()),
                Ok(None) => Err(not_found()),
                Err(e) => Err(db_unavailable(&e)),
            }
        }
        .await,
    )
}

fn db_unavailable(e: &sea_orm::DbErr) -> Refused {
    tracing::warn!(error = %e, "a Raptor request failed on the database");
    Refused(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the database is unavailable right now; try again".into(),
    )
}

/// Shows tracing end to end: `boom` fails inside a span (an error event, captured with the
/// request's context, and a 500 carrying the request id), `panic` panics in the handler; any other
/// value is echoed.
async fn demo(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    Path(value): Path<String>,
) -> Response {
    if let Err(r) = admin(&state, &headers, &session).await {
        return r.into_response();
    }
    let request_id =
        headers.get(crate::observe::REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if value == "panic" {
        panic!("raptor demo: a panic on purpose");
    }
    match goblin_core::raptor::demo(&value) {
        Ok(echo) => Json(json!({ "echo": echo })).into_response(),
        Err(_) => crate::observe::internal_error(request_id),
    }
}
