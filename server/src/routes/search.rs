//! The search API under `/api/search`: collections, their documents, and full-text search.
//!
//! Callers authenticate with an API token that has the `search` scope (its owner's role applies),
//! or a signed-in browser session (state-changing requests must come from the dashboard's origin).
//! Every signed-in role may list, read and search; creating, changing, deleting and adding or
//! re-indexing documents is for operators and admins. Errors are JSON, `{"error": {"message",
//! "type"}}`: 400 for a request that names a bad field (the message says which and why), 401, 403,
//! 404 for an unknown collection or document, 409 for a collection name in use, 413 for a document
//! over 20 MiB ([`MAX_DOCUMENT_BYTES`]) or an upload body over [`MAX_UPLOAD_BODY_BYTES`] (the upload
//! routes' own limit; every other route takes at most [`crate::startup::MAX_BODY_BYTES`], 2 MiB, so
//! a paste is bound by that), 415 for a file type that cannot be added, 422 for a file that cannot
//! be read (not UTF-8, not a PDF, no text), and 503 when the database cannot be reached. A refused
//! document leaves nothing stored.
//!
//! The Search page's upload form posts to `POST /search/collections/{id}/upload` (multipart, the same
//! fields), which answers a browser: a redirect back to the collection's page, with
//! `?uploaded=<document id>` or `?upload_error=<message>` for the page to show. With JavaScript on,
//! the page sends the same form to the JSON route instead, to show the upload's progress.
//!
//! | method | path | does |
//! |---|---|---|
//! | POST | `/api/search` | `{collection (id or name), query, k (1-50, default 5), filters: {tags, source, title}, mode (fulltext, semantic, hybrid)}` → ranked chunks with `mode`, `degraded` (why it fell back to full text, or null) and per-hit `score`, `fulltext_score`, `semantic_score` |
//! | GET | `/api/search/collections` | every collection with its counts |
//! | POST | `/api/search/collections` | `{name, description, chunk_size, chunk_overlap, embedding_model}` → 201 |
//! | GET | `/api/search/collections/{id}` | one collection |
//! | PATCH | `/api/search/collections/{id}` | rename or change settings (any of the create fields) |
//! | DELETE | `/api/search/collections/{id}` | deletes it with its documents → 204 |
//! | POST | `/api/search/collections/{id}/reindex` | cuts every document again with the current settings |
//! | GET | `/api/search/collections/{id}/documents` | its documents, newest first |
//! | POST | `/api/search/collections/{id}/documents` | paste: `{content, format (text, markdown, html), title, source, tags}` → 201 |
//! | POST | `/api/search/collections/{id}/documents/upload` | multipart: `file` (.txt, .md, .html, .pdf), `title`, `source`, `tags` (comma-separated or repeated) → 201 |
//! | GET | `/api/search/collections/{id}/documents/{doc}` | one document with its text and chunks |
//! | DELETE | `/api/search/collections/{id}/documents/{doc}` | deletes it → 204 |
//! | POST | `/api/search/collections/{id}/documents/{doc}/reindex` | cuts it again with the collection's settings |
//!
//! With an `embedding_model`, a collection's chunks are embedded when added, re-indexed (re-index
//! also embeds chunks still without a vector) or given a new model, and searches default to hybrid
//! mode. Embeddings go through the gateway in process as the caller, so routing, failover, budgets
//! and the request log apply. A failing embedding model never fails a request: documents are stored
//! without vectors (their answer's `embedding` says why), and searches fall back to full text.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Multipart, Path, State, multipart::MultipartRejection},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use goblin_app::state::AppState;
use goblin_core::{
    search::{
        CollectionChanges, DEFAULT_K, Filters, Format, MAX_DOCUMENT_BYTES, NewCollection, NewDocument,
        SearchError, SearchMode, SearchRequest, SearchService,
    },
    tokens::TokenError,
    users::Role,
};
use serde_json::{Map, Value, json};
use tower_sessions::Session;
use uuid::Uuid;

use crate::routes::{api::error, fields};

/// The token scope for this API.
pub const SCOPE: &str = "search";

/// The largest request body the upload routes take: a document of [`MAX_DOCUMENT_BYTES`] plus room
/// for the multipart envelope and the title, source and tags fields. Larger bodies are refused with
/// 413 before they are read (see [`upload_body_limit`]).
pub const MAX_UPLOAD_BODY_BYTES: usize = MAX_DOCUMENT_BYTES + 256 * 1024;

/// `MAX_UPLOAD_BODY_BYTES` as people read it.
const UPLOAD_LIMIT_TEXT: &str = "20 MiB";

/// The body limit of a path that takes a document upload (the JSON route or the page's form route),
/// and whether it is the form route (whose refusals go back to the page). `None` for every other
/// path, which keeps the server-wide limit.
pub fn upload_body_limit(path: &str) -> Option<(usize, bool)> {
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["", "api", "search", "collections", _, "documents", "upload"] => {
            Some((MAX_UPLOAD_BODY_BYTES, false))
        }
        ["", "search", "collections", _, "upload"] => Some((MAX_UPLOAD_BODY_BYTES, true)),
        _ => None,
    }
}

/// The answer to an upload whose body is over [`MAX_UPLOAD_BODY_BYTES`]: JSON 413 naming the limit,
/// or for the page's form route a redirect back to the collection's page with that message.
pub fn upload_too_large(path: &str, form: bool) -> Response {
    let message = format!(
        "the upload is over the limit of {UPLOAD_LIMIT_TEXT} ({MAX_UPLOAD_BODY_BYTES} bytes with the form's \
         other fields); a document may be at most {MAX_DOCUMENT_BYTES} bytes"
    );
    if form {
        let id = path.trim_end_matches('/').split('/').nth(3).unwrap_or_default();
        return back_to_page(id, Err(&message));
    }
    error(StatusCode::PAYLOAD_TOO_LARGE, "too_large", &message)
}

/// A redirect (303) to a collection's page with the outcome of a form upload in the query.
fn back_to_page(collection: &str, outcome: Result<Uuid, &str>) -> Response {
    // Percent-encoded throughout (a space is %20, not `+`, which a router's query parsing may keep).
    let encode = |raw: &str| {
        raw.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let query = match outcome {
        Ok(doc) => format!("uploaded={doc}"),
        Err(m) => format!("upload_error={}", encode(m)),
    };
    axum::response::Redirect::to(&format!("/search/collections/{}?{query}", encode(collection)))
        .into_response()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/search", post(search))
        .route("/api/search/collections", get(list_collections).post(create_collection))
        .route(
            "/api/search/collections/{id}",
            get(show_collection).patch(update_collection).delete(delete_collection),
        )
        .route("/api/search/collections/{id}/reindex", post(reindex_collection))
        .route("/api/search/collections/{id}/documents", get(list_documents).post(paste_document))
        .route(
            "/api/search/collections/{id}/documents/upload",
            post(upload_document).layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY_BYTES)),
        )
        .route(
            "/search/collections/{id}/upload",
            post(upload_form).layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY_BYTES)),
        )
        .route("/api/search/collections/{id}/documents/{doc}", get(show_document).delete(delete_document))
        .route("/api/search/collections/{id}/documents/{doc}/reindex", post(reindex_document))
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

impl From<SearchError> for Refused {
    fn from(e: SearchError) -> Self {
        match e {
            SearchError::Invalid(m) => Self::bad(m),
            SearchError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, "not_found_error", m),
            SearchError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict_error", m),
            SearchError::TooLarge(m) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", m),
            SearchError::Unsupported(m) => {
                Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_type", m)
            }
            SearchError::Unreadable(m) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unreadable_document", m)
            }
            SearchError::Db(e) => {
                tracing::error!(error = %e, "a search request failed on the database");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable right now; try again",
                )
            }
        }
    }
}

fn answer(r: Result<Response, Refused>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

/// Who is asking and with what role.
struct Caller {
    user_id: Uuid,
    token_id: Option<Uuid>,
    role: Role,
}

impl Caller {
    fn require_writer(&self) -> Result<(), Refused> {
        match self.role {
            Role::Admin | Role::Operator => Ok(()),
            Role::Viewer => Err(Refused::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "viewers may search and read collections; changing them needs an operator or admin",
            )),
        }
    }
}

/// The caller: a bearer token with scope `search`, or else a signed-in session.
async fn caller(state: &AppState, headers: &HeaderMap, session: &Session) -> Result<Caller, Refused> {
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
        return match state.tokens.verify(token, Some(SCOPE)).await {
            Ok(Ok(v)) => match v.role.parse::<Role>() {
                Ok(role) => Ok(Caller { user_id: v.user_id, token_id: Some(v.token_id), role }),
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
            "sign in, or send 'Authorization: Bearer <token>' with a token that has the search scope",
        )
    };
    let Some(user_id) = crate::auth::session_user(state, session).await else { return Err(unauthorised()) };
    use sea_orm::EntityTrait;
    match goblin_core::entities::users::Entity::find_by_id(user_id).one(&state.db).await {
        Ok(Some(u)) => match u.role.parse::<Role>() {
            Ok(role) => Ok(Caller { user_id, token_id: None, role }),
            Err(_) => Err(no_role("your account")),
        },
        Ok(None) => Err(unauthorised()),
        Err(e) => Err(SearchError::Db(e).into()),
    }
}

/// The service. Embeddings (chunks of collections with an embedding model, semantic and hybrid
/// queries) go through the gateway in process, so routing, failover, budgets and the request log
/// apply; [`service_as`] makes them on behalf of the caller.
fn service(state: &AppState) -> SearchService {
    SearchService::new(state.db.clone())
        .with_gateway(state.gateway.clone(), goblin_core::gateway::Caller::default())
}

/// The service, embedding through the gateway as `who`.
fn service_as(state: &AppState, who: &Caller) -> SearchService {
    let caller = goblin_core::gateway::Caller { user_id: Some(who.user_id), token_id: who.token_id };
    SearchService::new(state.db.clone()).with_gateway(state.gateway.clone(), caller)
}

/// The body's JSON object with only `allowed` fields; unlike the other routes' bodies, none of
/// these may be empty.
fn body_object(body: &Bytes, allowed: &[&str]) -> Result<Map<String, Value>, Refused> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Refused::bad(format!(
            "the body must be a JSON object with the fields {}",
            allowed.join(", ")
        )));
    }
    Ok(fields::object(body, allowed, None)?)
}

/// An id from the path; anything that is not one is simply not found.
fn path_id(raw: &str, what: &str) -> Result<Uuid, Refused> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        Refused::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("there is no {what} with id '{}'", raw.chars().take(40).collect::<String>()),
        )
    })
}

async fn search(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    body: Bytes,
) -> Response {
    answer(
        async {
            let who = caller(&state, &headers, &session).await?;
            let map = body_object(&body, &["collection", "query", "k", "filters", "mode"])?;
            let collection = fields::text(&map, "collection")?
                .filter(|c| !c.trim().is_empty())
                .ok_or_else(|| Refused::bad("collection: required (its id or name)"))?;
            let query = fields::text(&map, "query")?.ok_or_else(|| Refused::bad("query: required"))?;
            let k = match fields::whole(&map, "k")? {
                None => DEFAULT_K,
                Some(k) => {
                    u64::try_from(k).map_err(|_| Refused::bad(format!("k: must be from 1 to 50, not {k}")))?
                }
            };
            let filters = match map.get("filters") {
                None | Some(Value::Null) => Filters::default(),
                Some(Value::Object(f)) => {
                    if let Some(unknown) =
                        f.keys().find(|k| !["tags", "source", "title"].contains(&k.as_str()))
                    {
                        return Err(Refused::bad(format!(
                            "filters: unknown field '{}'; the filters are tags, source, title",
                            unknown.chars().take(40).collect::<String>()
                        )));
                    }
                    let blank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
                    Filters {
                        tags: fields::text_list(f, "tags")
                            .map_err(|e| Refused::bad(format!("filters.{}", e.0)))?,
                        source: blank(
                            fields::text(f, "source")
                                .map_err(|e| Refused::bad(format!("filters.{}", e.0)))?,
                        ),
                        title: blank(
                            fields::text(f, "title").map_err(|e| Refused::bad(format!("filters.{}", e.0)))?,
                        ),
                    }
                }
                Some(other) => {
                    return Err(Refused::bad(format!(
                        "filters: must be an object, not {}",
                        fields::kind_of(other)
                    )));
                }
            };
            let mode = match fields::text(&map, "mode")? {
                None => None,
                Some(m) => Some(SearchMode::from_name(&m)?),
            };
            let results = service_as(&state, &who)
                .search_with(SearchRequest { collection, query, k, filters }, mode)
                .await?;
            Ok(Json(results).into_response())
        }
        .await,
    )
}

async fn list_collections(State(state): State<AppState>, headers: HeaderMap, session: Session) -> Response {
    answer(
        async {
            caller(&state, &headers, &session).await?;
            Ok(Json(json!({ "collections": service(&state).collections().await? })).into_response())
        }
        .await,
    )
}

const COLLECTION_FIELDS: &[&str] = &["name", "description", "chunk_size", "chunk_overlap", "embedding_model"];

async fn create_collection(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
    body: Bytes,
) -> Response {
    answer(
        async {
            let who = caller(&state, &headers, &session).await?;
            who.require_writer()?;
            let map = body_object(&body, COLLECTION_FIELDS)?;
            let new = NewCollection {
                name: fields::text(&map, "name")?.ok_or_else(|| Refused::bad("name: required"))?,
                description: fields::text(&map, "description")?,
                chunk_size: fields::whole(&map, "chunk_size")?,
                chunk_overlap: fields::whole(&map, "chunk_overlap")?,
                embedding_model: fields::text(&map, "embedding_model")?,
            };
            let view = service(&state).create_collection(Some(who.user_id), new).await?;
            Ok((StatusCode::CREATED, Json(view)).into_response())
        }
        .await,
    )
}

async fn show_collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            caller(&state, &headers, &session).await?;
            let id = path_id(&id, "search collection")?;
            Ok(Json(service(&state).collection(&id.to_string()).await?).into_response())
        }
        .await,
    )
}

async fn update_collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
    body: Bytes,
) -> Response {
    answer(
        async {
            let who = caller(&state, &headers, &session).await?;
            who.require_writer()?;
            let id = path_id(&id, "search collection")?;
            let map = body_object(&body, COLLECTION_FIELDS)?;
            let changes = CollectionChanges {
                name: fields::text(&map, "name")?,
                description: fields::text(&map, "description")?,
                chunk_size: fields::whole(&map, "chunk_size")?,
                chunk_overlap: fields::whole(&map, "chunk_overlap")?,
                embedding_model: match map.get("embedding_model") {
                    None => None,
                    Some(_) => Some(fields::text(&map, "embedding_model")?),
                },
            };
            Ok(Json(service_as(&state, &who).update_collection(id, changes).await?).into_response())
        }
        .await,
    )
}

async fn delete_collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            caller(&state, &headers, &session).await?.require_writer()?;
            let id = path_id(&id, "search collection")?;
            service(&state).delete_collection(id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

async fn reindex_collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            let who = caller(&state, &headers, &session).await?;
            who.require_writer()?;
            let id = path_id(&id, "search collection")?;
            Ok(Json(service_as(&state, &who).reindex_collection(id).await?).into_response())
        }
        .await,
    )
}

async fn list_documents(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            caller(&state, &headers, &session).await?;
            let id = path_id(&id, "search collection")?;
            Ok(Json(json!({ "documents": service(&state).documents(id).await? })).into_response())
        }
        .await,
    )
}

async fn paste_document(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
    body: Bytes,
) -> Response {
    answer(
        async {
            let who = caller(&state, &headers, &session).await?;
            who.require_writer()?;
            let id = path_id(&id, "search collection")?;
            let map = body_object(&body, &["content", "format", "title", "source", "tags"])?;
            let content = fields::text(&map, "content")?.ok_or_else(|| Refused::bad("content: required"))?;
            let format = Format::from_name(fields::text(&map, "format")?.as_deref().unwrap_or("text"))?;
            let doc = NewDocument {
                title: fields::text(&map, "title")?,
                source: fields::text(&map, "source")?,
                tags: fields::text_list(&map, "tags")?,
                format,
                file_name: None,
                bytes: content.into_bytes(),
            };
            let view = service_as(&state, &who).add_document(id, doc).await?;
            Ok((StatusCode::CREATED, Json(view)).into_response())
        }
        .await,
    )
}

async fn upload_document(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    session: Session,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    answer(
        async {
            let who = caller(&state, &headers, &session).await?;
            who.require_writer()?;
            let id = path_id(&id, "search collection")?;
            let doc = read_upload(multipart).await?;
            let view = service_as(&state, &who).add_document(id, doc).await?;
            Ok((StatusCode::CREATED, Json(view)).into_response())
        }
        .await,
    )
}

/// The Search page's upload form without JavaScript: the same fields as the JSON route, answered
/// with a redirect back to the collection's page carrying the new document's id or the refusal.
async fn upload_form(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    session: Session,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    let outcome: Result<Uuid, Refused> = async {
        let who = caller(&state, &headers, &session).await?;
        who.require_writer()?;
        let id = path_id(&raw_id, "search collection")?;
        let doc = read_upload(multipart).await?;
        Ok(service_as(&state, &who).add_document(id, doc).await?.document.id)
    }
    .await;
    match outcome {
        Ok(doc) => back_to_page(&raw_id, Ok(doc)),
        Err(r) if r.status == StatusCode::UNAUTHORIZED => {
            axum::response::Redirect::to("/signin").into_response()
        }
        Err(r) => back_to_page(&raw_id, Err(&r.message)),
    }
}

/// An upload's fields: `file` (its type checked from the name before its bytes are read, and its
/// size while they are), `title`, `source`, `tags` (comma-separated or repeated).
async fn read_upload(multipart: Result<Multipart, MultipartRejection>) -> Result<NewDocument, Refused> {
    let mut multipart = multipart.map_err(|_| {
        Refused::bad("the body must be multipart/form-data with a 'file' field (and title, source, tags)")
    })?;
    let mut file: Option<(String, Vec<u8>)> = None;
    let (mut title, mut source, mut tags) = (None, None, Vec::new());
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Refused::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                format!(
                    "the upload is over the limit of {UPLOAD_LIMIT_TEXT} ({MAX_UPLOAD_BODY_BYTES} bytes with \
                     the form's other fields); a document may be at most {MAX_DOCUMENT_BYTES} bytes"
                ),
            )
        } else {
            Refused::bad(format!("the multipart body could not be read: {}", e.body_text()))
        }
    };
    while let Some(mut field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" => {
                let file_name = field
                    .file_name()
                    .map(str::to_owned)
                    .filter(|n| !n.trim().is_empty())
                    .ok_or_else(|| Refused::bad("file: choose a file to upload"))?;
                // Refuse the type before reading the bytes.
                Format::from_file_name(&file_name)?;
                let mut bytes = Vec::new();
                while let Some(piece) = field.chunk().await.map_err(unreadable)? {
                    bytes.extend_from_slice(&piece);
                    if bytes.len() > MAX_DOCUMENT_BYTES {
                        return Err(SearchError::TooLarge(format!(
                            "'{}' is over the limit of {MAX_DOCUMENT_BYTES} bytes (20 MiB)",
                            file_name.chars().take(80).collect::<String>()
                        ))
                        .into());
                    }
                }
                file = Some((file_name, bytes));
            }
            "title" | "source" | "tags" => {
                let value = field.text().await.map_err(unreadable)?;
                match name.as_str() {
                    "title" => title = Some(value),
                    "source" => source = Some(value),
                    _ => tags
                        .extend(value.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned)),
                }
            }
            other => {
                return Err(Refused::bad(format!(
                    "unknown field '{}'; the fields are file, title, source, tags",
                    other.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    let (file_name, bytes) = file.ok_or_else(|| Refused::bad("file: required"))?;
    Ok(NewDocument {
        title,
        source,
        tags,
        format: Format::from_file_name(&file_name)?,
        file_name: Some(file_name),
        bytes,
    })
}

async fn show_document(
    State(state): State<AppState>,
    Path((id, doc)): Path<(String, String)>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            caller(&state, &headers, &session).await?;
            let id = path_id(&id, "search collection")?;
            let doc = path_id(&doc, "document")?;
            Ok(Json(service(&state).document(id, doc).await?).into_response())
        }
        .await,
    )
}

async fn delete_document(
    State(state): State<AppState>,
    Path((id, doc)): Path<(String, String)>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            caller(&state, &headers, &session).await?.require_writer()?;
            let id = path_id(&id, "search collection")?;
            let doc = path_id(&doc, "document")?;
            service(&state).delete_document(id, doc).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

async fn reindex_document(
    State(state): State<AppState>,
    Path((id, doc)): Path<(String, String)>,
    headers: HeaderMap,
    session: Session,
) -> Response {
    answer(
        async {
            let who = caller(&state, &headers, &session).await?;
            who.require_writer()?;
            let id = path_id(&id, "search collection")?;
            let doc = path_id(&doc, "document")?;
            Ok(Json(service_as(&state, &who).reindex_document(id, doc).await?).into_response())
        }
        .await,
    )
}
