//! Search collections over HTTP, on SQLite and PostgreSQL: adding documents in every format
//! (pasted text, Markdown, HTML, PDF uploads), chunk sizes and overlap, re-indexing, relevance on a
//! small corpus with known answers (recall@5), metadata filters, deleting a collection with its
//! chunks and index entries, and bad input (each a clear 4xx that leaves stored data as it was).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};

async fn spawn(backend: Backend) -> Option<TestApp> {
    let app = spawn_app(backend, &[]).await?;
    app.sign_in_as("ops", "operator").await;
    Some(app)
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.client.request(method, app.url(path)).header("origin", &app.origin);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(json!({ "raw": text }))
        },
    )
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    send(app, reqwest::Method::POST, path, Some(body)).await
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    send(app, reqwest::Method::GET, path, None).await
}

/// Sends raw bytes with a content type (for malformed bodies).
async fn post_raw(app: &TestApp, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .header("origin", &app.origin)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(json!({ "raw": text })))
}

/// Uploads `bytes` as the multipart `file` field named `file_name`, with text fields.
async fn upload(
    app: &TestApp,
    collection: &str,
    file_name: &str,
    bytes: &[u8],
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let boundary = "goblin-test-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    post_raw(
        app,
        &format!("/api/search/collections/{collection}/documents/upload"),
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    )
    .await
}

async fn create(app: &TestApp, name: &str, size: i64, overlap: i64) -> String {
    let (status, body) = post(
        app,
        "/api/search/collections",
        json!({ "name": name, "chunk_size": size, "chunk_overlap": overlap, "embedding_model": "text-embedding-3-small" }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn paste(app: &TestApp, collection: &str, doc: Value) -> Value {
    let (status, body) = post(app, &format!("/api/search/collections/{collection}/documents"), doc).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn search(app: &TestApp, body: Value) -> (StatusCode, Value) {
    post(app, "/api/search", body).await
}

fn titles(results: &Value) -> Vec<String> {
    results["hits"].as_array().unwrap().iter().map(|h| h["title"].as_str().unwrap().to_owned()).collect()
}

fn long_text() -> String {
    (0..8)
        .map(|p| {
            (0..5)
                .map(|s| {
                    format!("Section {p} line {s} explains how the lantern goblins keep watch at night.")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

async fn ingests_every_format(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let c = create(&app, "handbook", 64, 16).await;

    let text = paste(
        &app,
        &c,
        json!({ "title": "Night watch", "source": "https://docs.example.com/watch", "tags": ["ops", "Night"], "content": long_text() }),
    )
    .await;
    assert_eq!(text["content_type"], "text/plain");
    assert_eq!(text["tags"], json!(["ops", "Night"]));
    let chunks = text["chunks"].as_array().unwrap();
    assert!(chunks.len() > 4, "{}", chunks.len());
    for ch in chunks {
        assert!(ch["token_count"].as_i64().unwrap() <= 64, "{ch}");
    }
    for pair in chunks.windows(2) {
        let next = pair[1]["text"].as_str().unwrap();
        let first_sentence = &next[..=next.find('.').unwrap()];
        assert!(pair[0]["text"].as_str().unwrap().contains(first_sentence), "overlap between {pair:?}");
    }

    let md = paste(
        &app,
        &c,
        json!({ "format": "markdown", "content": "# Potion recipes\n\n- **Mandrake** tonic brewing steps\n- Dry the petals" }),
    )
    .await;
    assert_eq!(md["title"], "# Potion recipes", "a paste without a title is named by its first line");
    assert_eq!(md["content_type"], "text/markdown");

    let (status, html) = upload(
        &app,
        &c,
        "castle.html",
        b"<html><body><h1>Castle map</h1><p>The <em>drawbridge</em> lowers at dawn &amp; dusk.</p>\
          <script>var secret = 'quokka';</script></body></html>",
        &[("source", "intranet"), ("tags", "maps, castle")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{html}");
    assert_eq!(html["title"], "castle.html");
    assert_eq!(html["content_type"], "text/html");
    assert_eq!(html["tags"], json!(["maps", "castle"]));
    assert!(html["content"].as_str().unwrap().contains("drawbridge lowers at dawn & dusk"), "{html}");

    let pdf = goblin_core::search::testing::pdf("Treasury ledger\nThe vault holds seventeen emeralds.");
    let (status, pdf_doc) = upload(&app, &c, "ledger.pdf", &pdf, &[("title", "Ledger")]).await;
    assert_eq!(status, StatusCode::CREATED, "{pdf_doc}");
    assert_eq!(pdf_doc["content_type"], "application/pdf");
    assert!(pdf_doc["content"].as_str().unwrap().contains("seventeen emeralds"), "{pdf_doc}");

    let (status, md_file) = upload(&app, &c, "notes.md", b"## Stable\nThe griffin eats oats.", &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{md_file}");
    let (status, txt_file) = upload(&app, &c, "plain.txt", b"Weather: hailstorms expected.", &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{txt_file}");

    // Each is found by its own words, with the matches marked and the rest escaped.
    for (query, title) in [
        ("lantern goblins", "Night watch"),
        ("mandrake tonic", "# Potion recipes"),
        ("drawbridge", "castle.html"),
        ("emeralds", "Ledger"),
        ("griffin oats", "notes.md"),
        ("hailstorms", "plain.txt"),
    ] {
        let (status, res) = search(&app, json!({ "collection": "handbook", "query": query })).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        assert_eq!(titles(&res).first().map(String::as_str), Some(title), "{query}: {res}");
        let snippet = res["hits"][0]["snippet"].as_str().unwrap();
        assert!(snippet.contains("<mark>"), "{snippet}");
        assert!(res["hits"][0]["score"].as_f64().unwrap() > 0.0);
    }
    // Script contents are not indexed.
    let (_, res) = search(&app, json!({ "collection": c, "query": "quokka" })).await;
    assert!(titles(&res).is_empty(), "{res}");

    // The collection and its documents.
    let (_, list) = get(&app, "/api/search/collections").await;
    let col = &list["collections"][0];
    assert_eq!(col["name"], "handbook");
    assert_eq!(col["document_count"], 6);
    assert_eq!(col["embedding_model"], "text-embedding-3-small");
    let (_, docs) = get(&app, &format!("/api/search/collections/{c}/documents")).await;
    assert_eq!(docs["documents"].as_array().unwrap().len(), 6);
    assert!(docs["documents"][0].get("content").is_none(), "lists leave the text out");

    // Re-index with larger chunks: fewer of them.
    let id = text["id"].as_str().unwrap();
    let (status, renamed) = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/search/collections/{c}"),
        Some(json!({ "name": "guide", "chunk_size": 256, "chunk_overlap": 0, "embedding_model": null })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "guide");
    assert!(renamed["embedding_model"].is_null());
    let (status, re) =
        post(&app, &format!("/api/search/collections/{c}/documents/{id}/reindex"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{re}");
    assert!(re["chunk_count"].as_i64().unwrap() < chunks.len() as i64, "{re}");
    let (_, view) = get(&app, &format!("/api/search/collections/{c}/documents/{id}")).await;
    assert_eq!(view["chunks"].as_array().unwrap().len() as i64, re["chunk_count"].as_i64().unwrap());
    for ch in view["chunks"].as_array().unwrap() {
        assert!(ch["token_count"].as_i64().unwrap() <= 256);
    }

    // The whole collection too.
    let (status, col) = post(&app, &format!("/api/search/collections/{c}/reindex"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{col}");
    assert_eq!(col["document_count"], 6);
    let (_, res) = search(&app, json!({ "collection": "guide", "query": "emeralds" })).await;
    assert_eq!(titles(&res), ["Ledger"], "{res}");

    // Deleting a document removes it from search.
    let (status, _) =
        send(&app, reqwest::Method::DELETE, &format!("/api/search/collections/{c}/documents/{id}"), None)
            .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, res) = search(&app, json!({ "collection": "guide", "query": "lantern goblins" })).await;
    assert!(titles(&res).is_empty(), "{res}");
    let (status, _) = get(&app, &format!("/api/search/collections/{c}/documents/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn ingests_every_format_on_sqlite() {
    ingests_every_format(Backend::Sqlite).await;
}

#[tokio::test]
async fn ingests_every_format_on_postgres() {
    ingests_every_format(Backend::Postgres).await;
}

/// Twenty short documents and ten questions whose answer is in a known one.
const CORPUS: &[(&str, &str, &[&str])] = &[
    (
        "Rotating encryption keys",
        "To rotate the encryption key, add the new key first in the keyring, restart, then run goblin keys rotate so every sealed secret is re-encrypted under the current key.",
        &["security"],
    ),
    (
        "Passkey sign-in",
        "People sign in with passkeys. A passkey is created on the setup page or from an invite link and is stored by the browser or a security key.",
        &["security"],
    ),
    (
        "Backups",
        "Back up the SQLite file in the data directory while the server is stopped, or use pg_dump for PostgreSQL. Restore by copying the file back.",
        &["ops"],
    ),
    (
        "Provider failover",
        "When a provider fails, the gateway retries with backoff and then fails over to the next target of the route. Circuit breakers skip providers that keep failing.",
        &["gateway"],
    ),
    (
        "Budgets",
        "Spending budgets per route, provider or API token are counted per day, week or month. A request over budget is refused with a budget exceeded error.",
        &["gateway"],
    ),
    (
        "Streaming answers",
        "Chat answers stream as server-sent events. A client that disconnects cancels the upstream request, and a reconnect resumes from the last event id.",
        &["chat"],
    ),
    (
        "Task timeouts",
        "Every goblin command has a timeout. When it runs out the whole process group gets SIGTERM, then SIGKILL after the grace period.",
        &["tasks"],
    ),
    (
        "Dry runs",
        "A dry run shows the command, environment names and working directory that would run, without executing anything.",
        &["tasks"],
    ),
    (
        "Redis",
        "Redis is optional. With Redis, sessions, sign-in challenges, breaker state and spend counters are shared between instances.",
        &["ops"],
    ),
    (
        "Metrics",
        "Prometheus scrapes the metrics endpoint for request counts, latency histograms and database pool usage.",
        &["ops"],
    ),
    (
        "Invites",
        "Admins invite teammates with one-time links that carry a role. The link expires after a day and can be used once.",
        &["security"],
    ),
    (
        "Model pricing",
        "Each model has input and output prices per million tokens, stored as integer micro-dollars, used to compute the cost of requests.",
        &["gateway"],
    ),
    (
        "Local models",
        "Ollama, llama.cpp and vLLM servers are added as OpenAI-compatible providers with their base URL; no API key is needed.",
        &["gateway"],
    ),
    (
        "Registry file",
        "The goblin registry is a YAML file of guilds, toolbelt commands and agent members. It is reloaded when the file changes.",
        &["tasks"],
    ),
    (
        "Speech",
        "Text to speech goes through ElevenLabs voices; the Play button reads an answer aloud in the chat page.",
        &["chat"],
    ),
    (
        "Audit log",
        "Security events such as sign-ins, token issues and revocations are recorded in the audit log with the client address.",
        &["security"],
    ),
    (
        "Rate limits",
        "Sign-in attempts are rate limited per address; too many attempts get HTTP 429 with a Retry-After header.",
        &["security"],
    ),
    (
        "Workers",
        "Run goblin worker processes on other machines to execute queued tasks; they claim tasks with FOR UPDATE SKIP LOCKED.",
        &["tasks"],
    ),
    (
        "Health checks",
        "The health endpoints report the database round trip, the newest migration and the Redis ping for load balancers.",
        &["ops"],
    ),
    (
        "Conversation history",
        "A chat conversation keeps up to fifty earlier turns as history; each turn records tokens, cost and the provider that answered.",
        &["chat"],
    ),
];

const QUESTIONS: &[(&str, &str)] = &[
    ("How do I rotate the encryption key?", "Rotating encryption keys"),
    ("what happens when a provider fails", "Provider failover"),
    ("how can I back up the sqlite database", "Backups"),
    ("kill a command that runs too long: timeout", "Task timeouts"),
    ("do I need redis for several instances?", "Redis"),
    ("where are sign-in events and token revocations recorded", "Audit log"),
    ("run ollama or vllm locally", "Local models"),
    ("how is the cost of a request computed from model prices", "Model pricing"),
    ("invite a teammate with a role", "Invites"),
    ("resume a streamed answer after reconnect", "Streaming answers"),
];

async fn finds_the_right_documents(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let c = create(&app, "docs", 128, 16).await;
    for (title, content, tags) in CORPUS {
        paste(
            &app,
            &c,
            json!({ "title": title, "content": content, "tags": tags, "source": format!("https://docs.example.com/{}", tags[0]) }),
        )
        .await;
    }
    let mut found = 0;
    for (question, answer) in QUESTIONS {
        let (status, res) = search(&app, json!({ "collection": c, "query": question, "k": 5 })).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        let top = titles(&res);
        assert!(top.len() <= 5);
        if top.iter().any(|t| t == answer) {
            found += 1;
        } else {
            eprintln!("{question:?}: expected {answer:?} in {top:?}");
        }
    }
    let recall = f64::from(found) / QUESTIONS.len() as f64;
    assert!(recall >= 0.9, "recall@5 is {recall}");

    // Filters: tags (all of them, ignoring case), source prefix, title substring.
    let (_, res) = search(
        &app,
        json!({ "collection": "docs", "query": "sign in passkeys tokens", "k": 50, "filters": { "tags": ["SECURITY"] } }),
    )
    .await;
    let hits = res["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h["tags"] == json!(["security"])), "{res}");
    let (_, res) = search(
        &app,
        json!({ "collection": "docs", "query": "tokens", "k": 50, "filters": { "source": "https://docs.example.com/gateway" } }),
    )
    .await;
    assert!(
        titles(&res)
            .iter()
            .all(|t| ["Budgets", "Model pricing", "Local models", "Provider failover"].contains(&t.as_str())),
        "{res}"
    );
    assert!(titles(&res).contains(&"Budgets".to_string()), "{res}");
    let (_, res) =
        search(&app, json!({ "collection": "docs", "query": "tokens", "filters": { "title": "PRICING" } }))
            .await;
    assert_eq!(titles(&res), ["Model pricing"], "{res}");
    let (_, res) =
        search(&app, json!({ "collection": "docs", "query": "tokens", "filters": { "tags": ["nope"] } }))
            .await;
    assert!(titles(&res).is_empty());
    let (_, res) = search(&app, json!({ "collection": "docs", "query": "the", "k": 3 })).await;
    assert!(res["hits"].as_array().unwrap().len() <= 3);
    app.stop().await;
}

#[tokio::test]
async fn finds_the_right_documents_on_sqlite() {
    finds_the_right_documents(Backend::Sqlite).await;
}

#[tokio::test]
async fn finds_the_right_documents_on_postgres() {
    finds_the_right_documents(Backend::Postgres).await;
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let db = &app.state.db;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn deleting_a_collection_removes_its_chunks(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let gone = create(&app, "gone", 32, 8).await;
    let kept = create(&app, "kept", 32, 8).await;
    paste(&app, &gone, json!({ "title": "a", "content": format!("zanzibarite crystals. {}", long_text()) }))
        .await;
    paste(&app, &gone, json!({ "title": "b", "content": "More zanzibarite here." })).await;
    paste(&app, &kept, json!({ "title": "c", "content": "Kept quartzite notes." })).await;
    let chunks_of = |id: &str| {
        format!(
            "SELECT COUNT(*) FROM search_chunks WHERE collection_id IN (SELECT id FROM search_collections WHERE name = '{id}')"
        )
    };
    assert!(count(&app, &chunks_of("gone")).await > 2);
    let indexed = |word: &str| match backend {
        Backend::Sqlite => {
            format!("SELECT COUNT(*) FROM search_chunks_fts WHERE search_chunks_fts MATCH '\"{word}\"'")
        }
        Backend::Postgres => {
            format!("SELECT COUNT(*) FROM search_chunks WHERE tsv @@ to_tsquery('english', '{word}')")
        }
    };
    assert_eq!(count(&app, &indexed("zanzibarite")).await, 2);

    let (status, _) =
        send(&app, reqwest::Method::DELETE, &format!("/api/search/collections/{gone}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_documents").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_chunks").await, 1);
    assert_eq!(count(&app, &indexed("zanzibarite")).await, 0, "no index entries are left");
    assert_eq!(count(&app, &indexed("quartzite")).await, 1);
    if backend == Backend::Sqlite {
        // The index agrees with its content table.
        use sea_orm::ConnectionTrait;
        app.state
            .db
            .execute_unprepared("INSERT INTO search_chunks_fts(search_chunks_fts) VALUES ('integrity-check')")
            .await
            .unwrap();
    }
    let (status, _) = get(&app, &format!("/api/search/collections/{gone}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = search(&app, json!({ "collection": "gone", "query": "zanzibarite" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, res) = search(&app, json!({ "collection": "kept", "query": "quartzite" })).await;
    assert_eq!(titles(&res), ["c"]);
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_collection_removes_its_chunks_on_sqlite() {
    deleting_a_collection_removes_its_chunks(Backend::Sqlite).await;
}

#[tokio::test]
async fn deleting_a_collection_removes_its_chunks_on_postgres() {
    deleting_a_collection_removes_its_chunks(Backend::Postgres).await;
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, says: &str) {
    assert_eq!(status, want, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("a JSON error: {body}"));
    assert!(message.contains(says), "{message:?} should mention {says:?}");
}

async fn bad_input_is_refused(backend: Backend) {
    let Some(app) = spawn(backend).await else { return };
    let c = create(&app, "main", 64, 8).await;
    paste(
        &app,
        &c,
        json!({ "title": "Doc", "content": "Goblins sort \"quoted\" scrolls (carefully) at noon." }),
    )
    .await;
    let docs = format!("/api/search/collections/{c}/documents");

    // Collections.
    let (s, b) = post(&app, "/api/search/collections", json!({ "name": "main" })).await;
    assert_error(s, &b, StatusCode::CONFLICT, "already exists");
    let (s, b) = post(&app, "/api/search/collections", json!({ "name": "" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "name");
    let (s, b) = post(&app, "/api/search/collections", json!({ "name": 5 })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "name: must be text");
    let (s, b) = post(&app, "/api/search/collections", json!({ "name": "x", "chunk_size": 4 })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "chunk_size");
    let (s, b) =
        post(&app, "/api/search/collections", json!({ "name": "x", "chunk_size": 100, "chunk_overlap": 60 }))
            .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "chunk_overlap");
    let (s, b) = post(&app, "/api/search/collections", json!({ "name": "x", "chunk_size": "big" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "chunk_size: must be a whole number");
    let (s, b) = post(&app, "/api/search/collections", json!({ "name": "x", "colour": "red" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "unknown field 'colour'");
    let (s, b) = post_raw(&app, "/api/search/collections", "application/json", b"{\"name\": ".to_vec()).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "not valid JSON");
    let (s, b) = post(&app, "/api/search/collections", json!(["main"])).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "JSON object");
    let (s, b) =
        send(&app, reqwest::Method::PATCH, "/api/search/collections/not-an-id", Some(json!({"name": "y"})))
            .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not-an-id");
    let (s, b) = send(
        &app,
        reqwest::Method::DELETE,
        "/api/search/collections/00000000-0000-0000-0000-000000000000",
        None,
    )
    .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "no search collection");

    // Documents.
    let (s, b) = post(&app, &docs, json!({ "title": "t" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "content: required");
    let (s, b) = post(&app, &docs, json!({ "content": "x", "tags": "a,b" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "tags: must be a list");
    let (s, b) = post(&app, &docs, json!({ "content": "x", "format": "pdf" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "format");
    let (s, b) = post(&app, &docs, json!({ "content": "   " })).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "no text");
    let (s, b) = post(
        &app,
        "/api/search/collections/00000000-0000-0000-0000-000000000000/documents",
        json!({ "content": "x" }),
    )
    .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "no search collection");
    let (s, b) = upload(&app, &c, "fake.pdf", b"<html>not a pdf</html>", &[]).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "not a PDF");
    let (s, b) = upload(&app, &c, "broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage", &[]).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "PDF");
    let (s, b) = upload(&app, &c, "photo.png", b"\x89PNG", &[]).await;
    assert_error(s, &b, StatusCode::UNSUPPORTED_MEDIA_TYPE, "photo.png");
    let (s, b) = upload(&app, &c, "latin1.txt", b"caf\xe9", &[]).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "UTF-8");
    let big = vec![b'a'; goblin_core::search::MAX_DOCUMENT_BYTES + 10];
    let (s, b) = upload(&app, &c, "big.txt", &big, &[]).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "limit");
    // Past the server's 2 MiB limit on any request body the answer is 413 too (from that limit,
    // before this API reads anything).
    let huge = vec![b'a'; 3 * 1024 * 1024];
    let (s, b) = upload(&app, &c, "huge.txt", &huge, &[]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    let (s, b) = upload(&app, &c, "a.txt", b"fine", &[("colour", "red")]).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "unknown field 'colour'");
    let (s, b) = post_raw(&app, &format!("{docs}/upload"), "application/json", b"{}".to_vec()).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "multipart/form-data");
    let (s, b) = get(&app, &format!("{docs}/00000000-0000-0000-0000-000000000000")).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "no document");
    let (s, b) = post(&app, &format!("{docs}/nope/reindex"), json!({})).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "nope");

    // Searches.
    let (s, b) = search(&app, json!({ "collection": c, "query": "  " })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "query: must not be empty");
    let (s, b) = search(&app, json!({ "collection": c })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "query: required");
    let (s, b) = search(&app, json!({ "query": "goblins" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "collection: required");
    for k in [json!(0), json!(51), json!(-1)] {
        let (s, b) = search(&app, json!({ "collection": c, "query": "goblins", "k": k })).await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "k: must be from 1 to 50");
    }
    let (s, b) = search(&app, json!({ "collection": c, "query": "goblins", "k": "5" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "k: must be a whole number");
    let (s, b) = search(&app, json!({ "collection": c, "query": "goblins", "k": 2.5 })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "k: must be a whole number");
    let (s, b) =
        search(&app, json!({ "collection": c, "query": "goblins", "filters": { "tags": [1] } })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "filters.tags");
    let (s, b) =
        search(&app, json!({ "collection": c, "query": "goblins", "filters": { "author": "x" } })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "filters: unknown field 'author'");
    let (s, b) = search(&app, json!({ "collection": "no-such", "query": "goblins" })).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "no-such");
    let (s, b) = search(&app, json!({ "collection": c, "query": "x".repeat(1001) })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "at most 1000");
    let (s, b) = search(&app, json!({ "collection": c, "query": "\"* ()" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "no words");
    // Query syntax of either database is only words here.
    for hostile in [
        "\"quoted",
        "scrolls\" OR \"",
        "goblins AND (noon OR",
        "NEAR(goblins scrolls, 2)",
        "text:goblins",
        "gob*",
        "^goblins -scrolls",
        "'); DROP TABLE search_chunks; --",
        "goblins & | ! <-> :*",
        "\\\" \u{1}mark\u{2}",
    ] {
        let (s, b) = search(&app, json!({ "collection": c, "query": hostile })).await;
        assert_eq!(s, StatusCode::OK, "{hostile}: {b}");
    }
    let (_, b) = search(&app, json!({ "collection": c, "query": "\"quoted\" (scrolls" })).await;
    let snippet = b["hits"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("&quot;<mark>quoted</mark>&quot;"), "{snippet}");

    // Roles and tokens: viewers read and search; only operators and admins change things.
    let viewer = reqwest::Client::new();
    let (s, _) = {
        let r = viewer.get(app.url("/api/search/collections")).send().await.unwrap();
        (r.status(), ())
    };
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    use sea_orm::EntityTrait;
    let bot = app.sign_in_as_other("reader").await;
    let user =
        goblin_core::entities::users::Entity::find_by_id(bot).one(&app.state.db).await.unwrap().unwrap();
    let days = chrono::Duration::days(1);
    let search_token = app.state.tokens.issue(&user, "s", &["search".into()], days, None).await.unwrap();
    let chat_token = app.state.tokens.issue(&user, "c", &["chat".into()], days, None).await.unwrap();
    let r = viewer
        .post(app.url("/api/search"))
        .bearer_auth(search_token.token.expose())
        .json(&json!({ "collection": "main", "query": "goblins" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = viewer
        .post(app.url("/api/search/collections"))
        .bearer_auth(search_token.token.expose())
        .json(&json!({ "name": "by-viewer" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = viewer
        .get(app.url("/api/search/collections"))
        .bearer_auth(chat_token.token.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("search"));
    // A cross-site browser post is refused.
    let r = app
        .client
        .post(app.url("/api/search/collections"))
        .json(&json!({ "name": "csrf" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Nothing above changed what is stored.
    let (_, list) = get(&app, "/api/search/collections").await;
    assert_eq!(list["collections"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["collections"][0]["document_count"], 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_documents").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_chunks").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_on_sqlite() {
    bad_input_is_refused(Backend::Sqlite).await;
}

#[tokio::test]
async fn bad_input_is_refused_on_postgres() {
    bad_input_is_refused(Backend::Postgres).await;
}

#[tokio::test]
async fn tokens_with_the_search_scope_come_from_the_account_page() {
    let app = spawn(Backend::Sqlite).await.unwrap();
    let resp = app
        .post("/fn/account/token-create")
        .header("accept", "application/json")
        .form(&[("name", "indexer"), ("ttl_days", "7"), ("search", "on")])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let created: Value = resp.json().await.unwrap();
    let token = created["token"].as_str().unwrap();
    let plain = reqwest::Client::new();
    let me: Value =
        plain.get(app.url("/api/me")).bearer_auth(token).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["scopes"], json!(["search"]));
    // The token's owner is an operator: it may create collections.
    let resp = plain
        .post(app.url("/api/search/collections"))
        .bearer_auth(token)
        .json(&json!({ "name": "from-a-token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let html = app.get("/account").await.text().await.unwrap();
    assert!(html.contains(r#"name="search""#), "the Account page offers the scope");
    app.stop().await;
}
