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
    // Past the upload routes' own body limit the answer is a JSON 413 naming it, before anything is
    // read (see `uploads_have_their_own_body_limit`).
    let (s, _, b) = declared_post(
        &app,
        &format!("{docs}/upload"),
        "multipart/form-data; boundary=x",
        goblin_server::routes::search::MAX_UPLOAD_BODY_BYTES + 1,
    )
    .await;
    assert_error(s, &serde_json::from_str(&b).unwrap(), StatusCode::PAYLOAD_TOO_LARGE, "20 MiB");
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

/// Sends only the head of a request whose `Content-Length` says `length`, with the first bytes of a
/// body, over a raw connection; returns the status, the headers (names lower-case) and the body of
/// the answer. A server that refuses the declared length answers before reading the body, so no
/// client has to send megabytes to see it (and none races the server closing the connection).
async fn declared_post(
    app: &TestApp,
    path: &str,
    content_type: &str,
    length: usize,
) -> (StatusCode, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let cookie = app.cookie_header();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\norigin: {}\r\ncookie: {}\r\ncontent-type: {content_type}\r\n\
         content-length: {length}\r\nconnection: close\r\n\r\n",
        app.origin,
        cookie.to_str().unwrap()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[b'a'; 512]).await.unwrap();
    // The head, then as many body bytes as it announces (the server may keep the connection open
    // for the body it did not read, so reading to the end would wait for ever).
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let (head, body) = loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed the connection without an answer");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else { continue };
        let length: usize = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        if body.len() >= length {
            break (head.to_owned(), body.to_owned());
        }
    };
    let mut lines = head.lines();
    let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (StatusCode::from_u16(status).unwrap(), headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

/// Uploads as the Search page's plain form does (to its form route); returns the status and the
/// redirect's target.
async fn form_upload(app: &TestApp, collection: &str, file_name: &str, bytes: &[u8]) -> (StatusCode, String) {
    let boundary = "goblin-form-boundary-3a9c";
    let mut body = Vec::new();
    for (name, value) in [("title", ""), ("source", ""), ("tags", "form, upload")] {
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
    let resp = app
        .post(&format!("/search/collections/{collection}/upload"))
        .header("accept", "text/html")
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .unwrap();
    let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (resp.status(), location)
}

/// The upload routes take bodies up to `MAX_UPLOAD_BODY_BYTES` (a 20 MiB document and the form's
/// other fields), past the server-wide 2 MiB that every other route keeps; a larger declared body
/// gets a JSON 413 naming the limit (the page's form route: a redirect back with that message) and
/// leaves nothing stored.
#[tokio::test]
async fn uploads_have_their_own_body_limit() {
    use goblin_server::routes::search::MAX_UPLOAD_BODY_BYTES;
    let app = spawn(Backend::Sqlite).await.unwrap();
    let c = create(&app, "big", 512, 64).await;
    let docs = format!("/api/search/collections/{c}/documents");

    // Over the route's limit: refused from the declared length, as JSON naming the limit.
    let (s, h, b) = declared_post(
        &app,
        &format!("{docs}/upload"),
        "multipart/form-data; boundary=x",
        MAX_UPLOAD_BODY_BYTES + 1,
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert!(header(&h, "content-type").starts_with("application/json"), "{h:?}");
    let body: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(body["error"]["type"], "too_large");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("20 MiB") && message.contains(&MAX_UPLOAD_BODY_BYTES.to_string()), "{message}");

    // The page's form route: back to the collection's page with the message, which the page shows.
    let (s, h, _) = declared_post(
        &app,
        &format!("/search/collections/{c}/upload"),
        "multipart/form-data; boundary=x",
        MAX_UPLOAD_BODY_BYTES + 1,
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let location = header(&h, "location").to_owned();
    assert!(location.starts_with(&format!("/search/collections/{c}?upload_error=")), "{location}");
    let page = app.get(&location).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("the upload is over the limit of 20 MiB"), "the page shows the refusal");

    // Every other route keeps the server-wide limit, with a JSON 413 too.
    let (s, _, b) =
        declared_post(&app, "/api/search", "application/json", goblin_server::startup::MAX_BODY_BYTES + 1)
            .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    assert!(
        serde_json::from_str::<Value>(&b).unwrap()["error"]["message"].as_str().unwrap().contains("2 MiB")
    );
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_documents").await, 0, "nothing stored");

    // A file over 2 MiB, which the server-wide limit would refuse, is taken (its script is dropped).
    let mut html = b"<html><body><p>Quartermaster ledgers of the goblin archive.</p><script>".to_vec();
    html.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024 + 4096));
    html.extend_from_slice(b"</script></body></html>");
    let (s, b) = upload(&app, &c, "ledger.html", &html, &[("title", "Ledger")]).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert!(b["content"].as_str().unwrap().contains("Quartermaster ledgers"));

    // The form route adds a document and says which; a refused file comes back as a message.
    let (s, location) = form_upload(&app, &c, "notes.md", b"# Notes\n\nBridge trolls collect tolls.").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let doc = location.strip_prefix(&format!("/search/collections/{c}?uploaded=")).expect("an uploaded id");
    let (s, b) = get(&app, &format!("{docs}/{doc}")).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["title"], "notes.md");
    assert_eq!(b["tags"], json!(["form", "upload"]));
    let (s, location) = form_upload(&app, &c, "photo.png", b"\x89PNG").await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(location.contains("upload_error=") && location.contains("photo.png"), "{location}");
    let html = app.get(&location).await.text().await.unwrap();
    assert!(html.contains("only .txt, .md, .html and .pdf files can be added"), "the page shows why");
    let (_, location) = form_upload(&app, &c, "latin1.txt", b"caf\xe9").await;
    assert!(location.contains("UTF-8"), "{location}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_documents").await, 2, "only the two good files");
    app.stop().await;
}

/// The Search pages render for a signed-in person without JavaScript: the collection list, a
/// collection with its documents and a query's results (snippets as text, with marks), an empty
/// query's message, and a document's chunks with their anchors. Hostile text stays text.
#[tokio::test]
async fn search_pages_render_on_the_server() {
    let app = spawn(Backend::Sqlite).await.unwrap();
    let c = create(&app, "handbook", 64, 8).await;
    let doc = paste(
        &app,
        &c,
        json!({ "title": "Lanterns <b>bold</b>", "content": "Goblin lanterns burn blue. <script>alert('x')</script> Keep them lit." }),
    )
    .await;
    let doc_id = doc["id"].as_str().unwrap();

    let html = app.get("/search").await.text().await.unwrap();
    assert!(html.contains(r#"href="/search/collections/"#) && html.contains("handbook"), "the list");
    assert!(html.contains(r#"href="/search""#), "the nav links the page");

    let resp = app.get(&format!("/search/collections/{c}?q=lanterns")).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"data-testid="hit""#), "a result");
    assert!(html.contains("<mark>lanterns</mark>"), "the match is marked");
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>alert"), "document text is text");
    assert!(html.contains("Lanterns &lt;b&gt;bold&lt;/b&gt;"), "titles are text");
    assert!(html.contains(&format!("/search/collections/{c}/documents/{doc_id}#chunk-0")));
    assert!(html.contains("score "));

    let html = app.get(&format!("/search/collections/{c}?q=")).await.text().await.unwrap();
    assert!(html.contains("query: must not be empty"), "an empty query says so");

    let resp = app.get(&format!("/search/collections/{c}/documents/{doc_id}")).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"id="chunk-0""#) && html.contains("Goblin lanterns burn blue."));
    assert!(!html.contains("<script>alert"));

    let resp =
        app.get(&format!("/search/collections/{c}/documents/00000000-0000-0000-0000-000000000000")).await;
    assert_eq!(resp.status(), 404);
    let resp = app.get("/search/collections/00000000-0000-0000-0000-000000000000").await;
    assert_eq!(resp.status(), 404);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Semantic and hybrid search, with the mock upstream's embeddings (bag-of-words feature hashes:
// lower-cased words hashed into 64 signed buckets and normalised, so texts sharing words are close).

const EMBED_KEY: &str = "sk-vqx-7f3k9m2p4w8z6t1r5y0u";
const EMBED_MODEL: &str = "text-embedding-3-small";

/// An app whose gateway serves `text-embedding-3-small` (OpenAI kind) and `text-embedding-004`
/// (Gemini kind) from a mock upstream that takes [`EMBED_KEY`].
async fn spawn_with_embeddings(backend: Backend) -> Option<(TestApp, goblin_mock_upstream::MockUpstream)> {
    use goblin_mock_upstream::{MockConfig, MockUpstream};
    let app = spawn(backend).await?;
    let mock = MockUpstream::start(MockConfig { keys: vec![EMBED_KEY.into()] }).await.unwrap();
    for (name, kind) in [("oa", "openai"), ("ge", "gemini")] {
        let input = goblin_core::providers::ProviderInput {
            name: name.into(),
            kind: kind.into(),
            base_url: mock.base_url(kind),
            enabled: true,
            ..Default::default()
        };
        let p = app.state.providers.create(None, &input).await.unwrap();
        app.state.providers.add_key(None, p.id, "k", EMBED_KEY, "").await.unwrap();
        app.state.providers.sync_models(None, p.id).await.unwrap();
    }
    app.state.gateway.reload().await.unwrap();
    Some((app, mock))
}

/// The mock's embedding of each text, straight from the mock (not through the server).
async fn mock_embeddings(mock: &goblin_mock_upstream::MockUpstream, texts: &[&str]) -> Vec<Vec<f64>> {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/embeddings", mock.base_url("openai")))
        .bearer_auth(EMBED_KEY)
        .json(&json!({ "model": EMBED_MODEL, "input": texts }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect())
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Every stored vector: (chunk id, model, dims, bytes).
async fn stored_vectors(app: &TestApp) -> Vec<(i64, String, i32, Vec<u8>)> {
    use goblin_core::entities::search_chunk_vectors;
    use sea_orm::EntityTrait;
    search_chunk_vectors::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.chunk_id, v.model, v.dims, v.vector))
        .collect()
}

async fn recall_at_5(app: &TestApp, collection: &str, mode: &str) -> usize {
    let mut found = 0;
    for (question, answer) in QUESTIONS {
        let (status, res) =
            search(app, json!({ "collection": collection, "query": question, "k": 5, "mode": mode })).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        assert_eq!(res["mode"], mode, "{res}");
        assert!(res["degraded"].is_null(), "{res}");
        if titles(&res).iter().any(|t| t == answer) {
            found += 1;
        } else {
            eprintln!("{mode}: {question:?}: expected {answer:?} in {:?}", titles(&res));
        }
    }
    found
}

async fn semantic_and_hybrid_search(backend: Backend) {
    let Some((app, mock)) = spawn_with_embeddings(backend).await else { return };
    let c = create(&app, "docs", 128, 16).await;
    for (title, content, tags) in CORPUS {
        let doc = paste(
            &app,
            &c,
            json!({ "title": title, "content": content, "tags": tags, "source": format!("https://docs.example.com/{}", tags[0]) }),
        )
        .await;
        assert_eq!(
            doc["embedding"],
            json!({ "model": EMBED_MODEL, "embedded": 1, "pending": 0, "error": null }),
            "{doc}"
        );
    }

    // A vector for every chunk: 64 little-endian f32s of unit length.
    let chunks = count(&app, "SELECT COUNT(*) FROM search_chunks").await;
    assert_eq!(chunks, CORPUS.len() as i64);
    let vectors = stored_vectors(&app).await;
    assert_eq!(vectors.len() as i64, chunks);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM search_chunks c JOIN search_chunk_vectors v ON v.chunk_id = c.id")
            .await,
        chunks
    );
    for (_, model, dims, bytes) in &vectors {
        assert_eq!((model.as_str(), *dims, bytes.len()), (EMBED_MODEL, 64, 256));
        let norm: f64 = bytes
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).powi(2))
            .sum();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    let (_, col) = get(&app, &format!("/api/search/collections/{c}")).await;
    assert_eq!(col["embedded_chunk_count"], chunks, "{col}");

    // Hybrid ranking is at least as good as full text alone on the corpus.
    let fulltext = recall_at_5(&app, &c, "fulltext").await;
    let hybrid = recall_at_5(&app, &c, "hybrid").await;
    eprintln!("recall@5: fulltext {fulltext}/10, hybrid {hybrid}/10");
    assert!(hybrid >= fulltext, "hybrid {hybrid} < fulltext {fulltext}");
    assert!(hybrid >= 9, "hybrid recall@5 is {hybrid}/10");

    // Hybrid is the default for a collection with a model; its scores are reciprocal rank fusion.
    let (_, res) =
        search(&app, json!({ "collection": "docs", "query": "what happens when a provider fails" })).await;
    assert_eq!(res["mode"], "hybrid", "{res}");
    assert!(res["degraded"].is_null());
    assert_eq!(res["pending_vectors"], 0);
    let hits = res["hits"].as_array().unwrap();
    assert_eq!(hits[0]["title"], "Provider failover", "{res}");
    for pair in hits.windows(2) {
        assert!(pair[0]["score"].as_f64() >= pair[1]["score"].as_f64(), "{res}");
    }
    for h in hits {
        let score = h["score"].as_f64().unwrap();
        assert!(score > 0.0 && score <= 2.0 / 61.0 + 1e-12, "{h}");
        assert!(!h["fulltext_score"].is_null() || !h["semantic_score"].is_null(), "{h}");
    }
    // Matched by words and by meaning, first in both lists: 1/61 + 1/61.
    assert!(!hits[0]["fulltext_score"].is_null() && !hits[0]["semantic_score"].is_null(), "{res}");

    // Semantic mode ranks by the cosine of the stored vectors with the query's, as computed here
    // from the mock's own embeddings.
    let query = "sealed secrets get encrypted again after restarting with a new keyring";
    let (status, res) =
        search(&app, json!({ "collection": "docs", "query": query, "k": 5, "mode": "semantic" })).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["mode"], "semantic");
    let mut texts: Vec<&str> = CORPUS.iter().map(|(_, content, _)| *content).collect();
    texts.push(query);
    let embedded = mock_embeddings(&mock, &texts).await;
    let q = embedded.last().unwrap();
    let expected: std::collections::HashMap<&str, f64> =
        CORPUS.iter().zip(&embedded).map(|((title, _, _), v)| (*title, cosine(v, q))).collect();
    let hits = res["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5, "{res}");
    // A document that shares words with the question but not its phrasing comes first.
    assert_eq!(hits[0]["title"], "Rotating encryption keys", "{res}");
    let shown: Vec<String> = titles(&res);
    for h in hits {
        let want = expected[h["title"].as_str().unwrap()];
        let got = h["semantic_score"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "{}: {got} vs {want}", h["title"]);
        assert_eq!(h["score"], h["semantic_score"]);
        assert!(h["fulltext_score"].is_null(), "{h}");
        assert!(!h["snippet"].as_str().unwrap().is_empty());
    }
    let weakest = hits[4]["semantic_score"].as_f64().unwrap();
    for (title, score) in &expected {
        if !shown.iter().any(|t| t == title) {
            assert!(*score <= weakest + 1e-4, "{title} ({score}) should outrank {weakest}");
        }
    }

    // Filters apply to semantic and hybrid results too.
    for mode in ["semantic", "hybrid"] {
        let (_, res) = search(
            &app,
            json!({ "collection": "docs", "query": query, "k": 50, "mode": mode, "filters": { "tags": ["ops"] } }),
        )
        .await;
        let hits = res["hits"].as_array().unwrap();
        assert!(!hits.is_empty(), "{res}");
        assert!(hits.iter().all(|h| h["tags"] == json!(["ops"])), "{res}");
        assert!(!titles(&res).contains(&"Rotating encryption keys".to_string()));
    }

    // The embeddings went through the gateway: its request log has them.
    assert!(app.state.gateway.records().flush(std::time::Duration::from_secs(10)).await);
    let logged = count(
        &app,
        "SELECT COUNT(*) FROM routing_requests WHERE requested_model = 'text-embedding-3-small' AND status = 'ok'",
    )
    .await;
    assert!(logged >= CORPUS.len() as i64, "{logged} embedding requests logged");
    app.stop().await;
}

#[tokio::test]
async fn semantic_and_hybrid_search_on_sqlite() {
    semantic_and_hybrid_search(Backend::Sqlite).await;
}

#[tokio::test]
async fn semantic_and_hybrid_search_on_postgres() {
    semantic_and_hybrid_search(Backend::Postgres).await;
}

async fn an_embedding_failure_degrades_to_full_text(backend: Backend) {
    let Some((app, mock)) = spawn_with_embeddings(backend).await else { return };
    let c = create(&app, "vault", 64, 8).await;
    paste(&app, &c, json!({ "title": "Emeralds", "content": "The vault holds seventeen emeralds." })).await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_chunk_vectors").await, 1);

    // The provider now refuses the key: every embedding call fails. (Four failures in all below:
    // a fifth in a row would open the gateway's circuit breaker for 30 seconds.)
    mock.set_keys(vec!["someone-else".into()]);
    for mode in [json!(null), json!("semantic")] {
        let (status, res) =
            search(&app, json!({ "collection": "vault", "query": "emeralds", "mode": mode })).await;
        assert_eq!(status, StatusCode::OK, "{res}");
        assert_eq!(res["mode"], "fulltext", "{res}");
        let why = res["degraded"].as_str().unwrap_or_else(|| panic!("degraded says why: {res}"));
        assert!(why.contains("fell back to full text") && why.contains(EMBED_MODEL), "{why}");
        assert_eq!(titles(&res), ["Emeralds"], "{res}");
        assert!(res["hits"][0]["snippet"].as_str().unwrap().contains("<mark>emeralds</mark>"), "{res}");
    }
    // A document added meanwhile is stored and searchable by words; its chunk waits for a vector.
    let doc =
        paste(&app, &c, json!({ "title": "Rubies", "content": "Nine rubies sit beside the emeralds." }))
            .await;
    assert_eq!(doc["embedding"]["embedded"], 0, "{doc}");
    assert_eq!(doc["embedding"]["pending"], 1, "{doc}");
    assert!(doc["embedding"]["error"].as_str().unwrap().contains(EMBED_MODEL), "{doc}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_chunks").await, 2);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_chunk_vectors").await, 1);
    let (status, col) = post(&app, &format!("/api/search/collections/{c}/reindex"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{col}");
    assert_eq!(col["embedding"]["pending"], 1, "{col}");
    assert!(!col["embedding"]["error"].is_null(), "{col}");

    // Back up: searches are hybrid again and say what is still unembedded; a re-index embeds it.
    mock.set_keys(vec![EMBED_KEY.into()]);
    let (_, res) = search(&app, json!({ "collection": "vault", "query": "rubies" })).await;
    assert_eq!(res["mode"], "hybrid", "{res}");
    assert!(res["degraded"].is_null(), "{res}");
    assert_eq!(res["pending_vectors"], 1, "{res}");
    assert_eq!(titles(&res).first().map(String::as_str), Some("Rubies"), "{res}");
    let (status, col) = post(&app, &format!("/api/search/collections/{c}/reindex"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{col}");
    assert_eq!(col["embedding"], json!({ "model": EMBED_MODEL, "embedded": 2, "pending": 0, "error": null }));
    assert_eq!(col["embedded_chunk_count"], 2);
    let (_, res) = search(&app, json!({ "collection": "vault", "query": "rubies" })).await;
    assert_eq!(res["pending_vectors"], 0, "{res}");

    // A collection whose model no provider serves degrades the same way.
    let (_, other) = post(
        &app,
        "/api/search/collections",
        json!({ "name": "unserved", "embedding_model": "no-such-embedder" }),
    )
    .await;
    let o = other["id"].as_str().unwrap();
    let doc = paste(&app, o, json!({ "title": "Opals", "content": "Opals shimmer." })).await;
    assert!(doc["embedding"]["error"].as_str().unwrap().contains("no-such-embedder"), "{doc}");
    let (status, res) = search(&app, json!({ "collection": "unserved", "query": "opals" })).await;
    assert_eq!(status, StatusCode::OK, "{res}");
    assert_eq!(res["mode"], "fulltext");
    assert!(res["degraded"].as_str().unwrap().contains("no-such-embedder"), "{res}");
    assert_eq!(titles(&res), ["Opals"]);

    // Bad modes are refused; a collection without a model only searches by words.
    let (s, b) = search(&app, json!({ "collection": "vault", "query": "rubies", "mode": "vector" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "mode: must be fulltext, semantic or hybrid");
    let (s, b) = search(&app, json!({ "collection": "vault", "query": "rubies", "mode": 3 })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "mode: must be text");
    let (_, plain) = post(&app, "/api/search/collections", json!({ "name": "plain" })).await;
    paste(&app, plain["id"].as_str().unwrap(), json!({ "title": "Jade", "content": "Jade carvings." })).await;
    let (s, b) = search(&app, json!({ "collection": "plain", "query": "jade", "mode": "semantic" })).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "needs an embedding model");
    let (_, res) = search(&app, json!({ "collection": "plain", "query": "jade" })).await;
    assert_eq!(res["mode"], "fulltext");
    assert!(res["degraded"].is_null());
    assert_eq!(titles(&res), ["Jade"]);
    app.stop().await;
    mock.shutdown().await;
}

#[tokio::test]
async fn an_embedding_failure_degrades_to_full_text_on_sqlite() {
    an_embedding_failure_degrades_to_full_text(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_embedding_failure_degrades_to_full_text_on_postgres() {
    an_embedding_failure_degrades_to_full_text(Backend::Postgres).await;
}

async fn vectors_follow_the_model_and_go_with_their_chunks(backend: Backend) {
    let Some((app, mock)) = spawn_with_embeddings(backend).await else { return };
    let gone = create(&app, "gone", 32, 8).await;
    let kept = create(&app, "kept", 32, 8).await;
    let long = paste(&app, &gone, json!({ "title": "long", "content": long_text() })).await;
    let pieces = long["chunks"].as_array().unwrap().len() as i64;
    assert!(pieces > 4);
    assert_eq!(long["embedding"]["embedded"], pieces, "{long}");
    paste(&app, &gone, json!({ "title": "short", "content": "Zanzibarite crystals glow." })).await;
    paste(&app, &kept, json!({ "title": "kept", "content": "Kept quartzite notes." })).await;
    let vectors_of = |name: &str, model: &str| {
        format!(
            "SELECT COUNT(*) FROM search_chunk_vectors WHERE model = '{model}' AND collection_id IN \
             (SELECT id FROM search_collections WHERE name = '{name}')"
        )
    };
    assert_eq!(count(&app, &vectors_of("gone", EMBED_MODEL)).await, pieces + 1);

    // Another model: the old vectors go, and every chunk is embedded again with the new one.
    let (status, col) = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/search/collections/{gone}"),
        Some(json!({ "embedding_model": "text-embedding-004" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{col}");
    assert_eq!(
        col["embedding"],
        json!({ "model": "text-embedding-004", "embedded": pieces + 1, "pending": 0, "error": null })
    );
    assert_eq!(col["embedded_chunk_count"], pieces + 1);
    assert_eq!(count(&app, &vectors_of("gone", EMBED_MODEL)).await, 0);
    assert_eq!(count(&app, &vectors_of("gone", "text-embedding-004")).await, pieces + 1);
    let gemini_calls = mock.requests().iter().filter(|r| r.path.contains("batchEmbedContents")).count();
    assert!(gemini_calls >= 1, "the new model was called");
    let (_, res) =
        search(&app, json!({ "collection": "gone", "query": "zanzibarite crystals", "mode": "semantic" }))
            .await;
    assert_eq!(titles(&res).first().map(String::as_str), Some("short"), "{res}");

    // Re-indexing with other chunk sizes embeds the new chunks; unchanged texts keep their vectors.
    let embedding_calls = || mock.requests().iter().filter(|r| r.path.contains("mbed")).count();
    mock.clear_requests();
    let (status, _) = post(&app, &format!("/api/search/collections/{gone}/reindex"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(embedding_calls(), 0, "nothing changed, nothing embedded");
    send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/search/collections/{gone}"),
        Some(json!({ "chunk_size": 256 })),
    )
    .await;
    let long_id = long["id"].as_str().unwrap();
    let (status, re) =
        post(&app, &format!("/api/search/collections/{gone}/documents/{long_id}/reindex"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{re}");
    let fewer = re["chunk_count"].as_i64().unwrap();
    assert!(fewer < pieces, "{re}");
    assert_eq!(re["embedding"]["embedded"], fewer, "{re}");
    assert_eq!(count(&app, &vectors_of("gone", "text-embedding-004")).await, fewer + 1);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM search_chunk_vectors v LEFT JOIN search_chunks c ON c.id = v.chunk_id WHERE c.id IS NULL").await,
        0,
        "no vector outlives its chunk"
    );

    // Deleting a document removes its vectors.
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/search/collections/{gone}/documents/{long_id}"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(count(&app, &vectors_of("gone", "text-embedding-004")).await, 1);

    // No model: no vectors, and searches are by words.
    let (_, col) = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/search/collections/{kept}"),
        Some(json!({ "embedding_model": null })),
    )
    .await;
    assert_eq!(col["embedded_chunk_count"], 0, "{col}");
    assert_eq!(count(&app, &vectors_of("kept", EMBED_MODEL)).await, 0);
    let (_, res) = search(&app, json!({ "collection": "kept", "query": "quartzite" })).await;
    assert_eq!(res["mode"], "fulltext");
    send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/search/collections/{kept}"),
        Some(json!({ "embedding_model": EMBED_MODEL })),
    )
    .await;
    assert_eq!(count(&app, &vectors_of("kept", EMBED_MODEL)).await, 1);

    // Deleting a collection removes its chunks and vectors, and only its own.
    let (status, _) =
        send(&app, reqwest::Method::DELETE, &format!("/api/search/collections/{gone}"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_chunks").await, 1);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM search_chunk_vectors").await, 1);
    assert_eq!(count(&app, &vectors_of("kept", EMBED_MODEL)).await, 1);
    app.stop().await;
    mock.shutdown().await;
}

#[tokio::test]
async fn vectors_follow_the_model_and_go_with_their_chunks_on_sqlite() {
    vectors_follow_the_model_and_go_with_their_chunks(Backend::Sqlite).await;
}

#[tokio::test]
async fn vectors_follow_the_model_and_go_with_their_chunks_on_postgres() {
    vectors_follow_the_model_and_go_with_their_chunks(Backend::Postgres).await;
}
