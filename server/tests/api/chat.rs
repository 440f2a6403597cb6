//! Dashboard chat against the mock upstream: a turn stored as a stream whose chunks make the answer,
//! the event stream with resume (after, Last-Event-ID) from memory and from the table, stop, other
//! people's ids, bad input refused by name, the conversation list, and the page with and without
//! JavaScript.

use std::time::{Duration, Instant};

use goblin_core::{
    chat::ChatService,
    entities::{stream_chunks, streams},
    providers::{ModelInput, ProviderInput},
};
use goblin_mock_upstream::{MockConfig, MockUpstream};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, TestDb, spawn_app, spawn_app_on};

const KEY: &str = "sk-chat-test-0123456789abcdefghijklmn";

struct Setup {
    app: TestApp,
    mock: MockUpstream,
    user: Uuid,
}

/// Adds an OpenAI-kind provider on the mock with one priced chat model (`name/gpt-4o-mini`).
async fn add_provider(app: &TestApp, admin: Uuid, name: &str, base_url: String) {
    let input = ProviderInput {
        name: name.into(),
        kind: "openai".into(),
        base_url,
        enabled: true,
        ..Default::default()
    };
    let p = app.state.providers.create(Some(admin), &input).await.unwrap();
    app.state.providers.add_key(Some(admin), p.id, "k", KEY, "").await.unwrap();
    let model = ModelInput {
        model_id: "gpt-4o-mini".into(),
        display_name: "GPT-4o mini".into(),
        capabilities: vec!["chat".into()],
        price_in: "1.5".into(),
        price_out: "2".into(),
        ..Default::default()
    };
    app.state.providers.add_model(Some(admin), p.id, &model).await.unwrap();
}

/// A signed-in person, a provider `oa` that answers at once and `st` whose streams stall after their
/// first word (until the mock shuts down).
async fn setup_on(app: TestApp) -> Setup {
    let mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    let user = app.sign_in_as("ada", "operator").await;
    add_provider(&app, user, "oa", mock.base_url("openai")).await;
    add_provider(&app, user, "st", mock.base_url_with("openai", "stall")).await;
    app.state.gateway.reload().await.unwrap();
    Setup { app, mock, user }
}

async fn setup() -> Setup {
    setup_on(spawn_app(Backend::Sqlite, &[]).await.unwrap()).await
}

impl Setup {
    async fn send(&self, conversation: &str, model: &str, message: &str) -> (u16, Value) {
        let resp = self
            .app
            .post("/fn/chat/send")
            .form(&[("conversation_id", conversation), ("model", model), ("message", message)])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }

    /// Sends and waits for the answer to end; returns (stream id, conversation id).
    async fn turn(&self, conversation: &str, message: &str) -> (Uuid, Uuid) {
        let (status, body) = self.send(conversation, "oa/gpt-4o-mini", message).await;
        assert_eq!(status, 200, "{body}");
        let stream: Uuid = body["stream_id"].as_str().unwrap().parse().unwrap();
        let ending = self.app.state.chat.wait(stream, Duration::from_secs(10)).await.unwrap();
        assert_eq!(ending.map(|e| e.status).as_deref(), Some("done"));
        (stream, body["conversation_id"].as_str().unwrap().parse().unwrap())
    }

    async fn fn_call(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self.app.post(path).form(form).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        (status, serde_json::from_str(&body).unwrap_or(Value::String(body)))
    }
}

fn chat(app: &TestApp) -> &std::sync::Arc<ChatService> {
    &app.state.chat
}

async fn chunks(app: &TestApp, stream: Uuid) -> Vec<stream_chunks::Model> {
    stream_chunks::Entity::find()
        .filter(stream_chunks::Column::StreamId.eq(stream))
        .order_by_asc(stream_chunks::Column::Seq)
        .all(&app.state.db)
        .await
        .unwrap()
}

/// One server-sent event: its id, name and JSON data.
#[derive(Debug)]
struct Sse {
    id: Option<i32>,
    event: String,
    data: Value,
}

fn parse_sse(text: &str) -> Vec<Sse> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut event = String::from("message");
            let mut data = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = serde_json::from_str(v.trim()).ok();
                }
            }
            data.map(|data| Sse { id, event, data })
        })
        .collect()
}

/// Reads an event stream until its `end` event (the server closes it then).
async fn events(app: &TestApp, path: &str, last_event_id: Option<&str>) -> (u16, Vec<Sse>) {
    let mut req = app.client.get(app.url(path));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let resp = tokio::time::timeout(Duration::from_secs(20), req.send()).await.unwrap().unwrap();
    let status = resp.status().as_u16();
    let text = tokio::time::timeout(Duration::from_secs(20), resp.text()).await.unwrap().unwrap();
    if status != 200 {
        return (
            status,
            vec![Sse { id: None, event: "error".into(), data: serde_json::from_str(&text).unwrap() }],
        );
    }
    (status, parse_sse(&text))
}

fn text_of(events: &[Sse]) -> String {
    events.iter().filter(|e| e.event == "chunk").map(|e| e.data["text"].as_str().unwrap()).collect()
}

fn seqs(events: &[Sse]) -> Vec<i32> {
    events.iter().filter(|e| e.event == "chunk").map(|e| e.id.unwrap()).collect()
}

async fn until<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_turn_is_a_stream_whose_chunks_make_the_answer(backend: Backend) {
    let Some(app) = spawn_app(backend, &[]).await else { return };
    let s = setup_on(app).await;
    let question = "hello goblins in the <b>cave</b>";
    let (stream, conversation) = s.turn("", question).await;
    assert_eq!(conversation, stream, "a new conversation takes its first turn's id");

    let row = streams::Entity::find_by_id(stream).one(&s.app.state.db).await.unwrap().unwrap();
    assert_eq!(row.status, "done");
    assert_eq!(row.user_id, Some(s.user));
    assert_eq!(row.conversation_id, Some(conversation));
    assert_eq!(row.prompt, question);
    assert_eq!(row.requested_model.as_deref(), Some("oa/gpt-4o-mini"));
    assert_eq!(row.model.as_deref(), Some("gpt-4o-mini"), "the model that answered");
    assert!(row.provider_id.is_some() && row.finished_at.is_some() && row.error.is_none(), "{row:?}");
    assert!(row.tokens_in > 0 && row.tokens_out > 0, "{row:?}");
    assert!(row.cost_micros > 0, "priced model: {row:?}");

    let stored = chunks(&s.app, stream).await;
    let answer = format!("Mock reply to: {question}");
    assert!(stored.len() > 3, "the answer came in several chunks: {stored:?}");
    assert_eq!(
        stored.iter().map(|c| c.seq).collect::<Vec<_>>(),
        (1..=stored.len() as i32).collect::<Vec<_>>()
    );
    assert_eq!(stored.iter().map(|c| c.content.as_str()).collect::<String>(), answer);

    // The event stream: every chunk with its seq as the event id, then how it ended.
    let path = format!("/api/chat/streams/{stream}/events");
    let (status, all) = events(&s.app, &path, None).await;
    assert_eq!(status, 200);
    assert_eq!(text_of(&all), answer);
    assert_eq!(seqs(&all), stored.iter().map(|c| c.seq).collect::<Vec<_>>());
    let end = all.last().unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.data["status"], "done");
    assert_eq!(end.data["tokens_out"], row.tokens_out);
    assert_eq!(end.data["cost_micros"], row.cost_micros);
    assert_eq!(end.data["provider"], "oa");
    assert_eq!(end.data["model"], "gpt-4o-mini");

    // Resuming after chunk N gives exactly the rest; Last-Event-ID (a reconnect) wins over ?after.
    let n = 2;
    let (_, rest) = events(&s.app, &format!("{path}?after={n}"), None).await;
    assert_eq!(seqs(&rest), (n + 1..=stored.len() as i32).collect::<Vec<_>>());
    assert_eq!(
        format!(
            "{}{}",
            stored[..n as usize].iter().map(|c| c.content.as_str()).collect::<String>(),
            text_of(&rest)
        ),
        answer
    );
    let (_, resumed) = events(&s.app, &format!("{path}?after=1"), Some("3")).await;
    assert_eq!(seqs(&resumed), (4..=stored.len() as i32).collect::<Vec<_>>());
    let (_, none) = events(&s.app, &format!("{path}?after={}", stored.len()), None).await;
    assert_eq!(seqs(&none), Vec::<i32>::new());
    assert_eq!(none.last().unwrap().event, "end");

    // A second turn carries the first as history.
    s.mock.clear_requests();
    let (second, same) = s.turn(&conversation.to_string(), "and again").await;
    assert_eq!(same, conversation);
    let sent: Value = serde_json::from_str(&s.mock.requests().last().unwrap().body).unwrap();
    assert_eq!(
        sent["messages"],
        json!([
            { "role": "user", "content": question },
            { "role": "assistant", "content": answer },
            { "role": "user", "content": "and again" },
        ])
    );

    // The conversation list and the turns, as the page reads them.
    let (status, list) = s.fn_call("/fn/chat/conversations", &[]).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], conversation.to_string());
    assert_eq!(list[0]["title"], question);
    assert_eq!(list[0]["turns"], 2);
    let (status, turns) =
        s.fn_call("/fn/chat/turns", &[("conversation_id", &conversation.to_string())]).await;
    assert_eq!(status, 200, "{turns}");
    assert_eq!(turns[0]["text"], answer);
    assert_eq!(turns[0]["status"], "done");
    assert_eq!(turns[0]["answered_by"], "oa / gpt-4o-mini");
    assert_eq!(turns[1]["stream_id"], second.to_string());
    assert_eq!(turns[1]["text"], "Mock reply to: and again");
    assert!(turns[1]["last_seq"].as_i64().unwrap() > 1);

    // The form offers the chat models and preselects the conversation's latest choice.
    let (status, models) =
        s.fn_call("/fn/chat/models", &[("conversation_id", &conversation.to_string())]).await;
    assert_eq!(status, 200, "{models}");
    assert!(models["chat"].as_array().unwrap().contains(&json!("st/gpt-4o-mini")), "{models}");
    assert_eq!(models["chosen"], "oa/gpt-4o-mini");
    let (_, models) = s.fn_call("/fn/chat/models", &[("conversation_id", "")]).await;
    assert_eq!(models["chosen"], Value::Null);

    // A newer conversation comes first.
    let (_, newer) = s.turn("", "second conversation").await;
    let list = chat(&s.app).conversations(s.user).await.unwrap();
    assert_eq!(list.iter().map(|c| c.id).collect::<Vec<_>>(), vec![newer, conversation]);
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_turn_is_a_stream_whose_chunks_make_the_answer_on_sqlite() {
    a_turn_is_a_stream_whose_chunks_make_the_answer(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_turn_is_a_stream_whose_chunks_make_the_answer_on_postgres() {
    a_turn_is_a_stream_whose_chunks_make_the_answer(Backend::Postgres).await;
}

#[tokio::test]
async fn a_live_answer_streams_is_stored_while_running_and_stops() {
    let s = setup().await;
    let (status, body) = s.send("", "st/gpt-4o-mini", "tell me a long story").await;
    assert_eq!(status, 200, "{body}");
    let stream: Uuid = body["stream_id"].as_str().unwrap().parse().unwrap();

    // The first word arrives live, and is in the table shortly after (batches are written while the
    // answer runs, not only at its end).
    let mut resp =
        s.app.client.get(s.app.url(&format!("/api/chat/streams/{stream}/events"))).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        let part =
            tokio::time::timeout(Duration::from_secs(10), resp.chunk()).await.unwrap().unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&part));
    }
    let first = parse_sse(&seen);
    assert_eq!(first[0].id, Some(1));
    assert_eq!(first[0].data["text"], "Mock");
    until("the first chunk is stored", || async { chunks(&s.app, stream).await.len() == 1 }).await;
    let row = streams::Entity::find_by_id(stream).one(&s.app.state.db).await.unwrap().unwrap();
    assert_eq!(row.status, "streaming");

    // The page shows the text so far, and where to resume.
    let turns = chat(&s.app).turns(s.user, stream).await.unwrap();
    assert_eq!(
        (turns[0].text.as_str(), turns[0].last_seq, turns[0].status.as_str()),
        ("Mock", 1, "streaming")
    );

    // Stop: the answer ends as cancelled with its text kept, and the live subscriber hears so.
    let (status, body) = s.fn_call("/fn/chat/stop", &[("stream_id", &stream.to_string())]).await;
    assert_eq!((status, body), (200, json!("cancelled")));
    let rest = tokio::time::timeout(Duration::from_secs(10), resp.text()).await.unwrap().unwrap();
    let end = parse_sse(&rest);
    assert_eq!(end.last().unwrap().event, "end", "{rest}");
    assert_eq!(end.last().unwrap().data["status"], "cancelled");
    let row = streams::Entity::find_by_id(stream).one(&s.app.state.db).await.unwrap().unwrap();
    assert_eq!(row.status, "cancelled");
    assert!(row.finished_at.is_some());
    assert_eq!(chunks(&s.app, stream).await.iter().map(|c| c.content.clone()).collect::<String>(), "Mock");
    // The gateway's record says the same.
    assert!(s.app.state.gateway.records().flush(Duration::from_secs(10)).await);
    let logged = goblin_core::entities::routing_requests::Entity::find().all(&s.app.state.db).await.unwrap();
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0].status, "cancelled");
    assert_eq!(logged[0].user_id, Some(s.user));

    // Stopping again changes nothing; the stream still reads to its end.
    let (status, body) = s.fn_call("/fn/chat/stop", &[("stream_id", &stream.to_string())]).await;
    assert_eq!((status, body), (200, json!("cancelled")));
    let (_, again) = events(&s.app, &format!("/api/chat/streams/{stream}/events"), None).await;
    assert_eq!(text_of(&again), "Mock");
    assert_eq!(again.last().unwrap().data["status"], "cancelled");
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn an_answer_running_elsewhere_is_read_from_the_table() {
    // A row that says `streaming` with no turn running on this instance (as when another instance
    // runs it): the event stream polls the table until the row ends.
    let s = setup().await;
    let id = Uuid::now_v7();
    let now = chrono::Utc::now();
    streams::ActiveModel {
        id: Set(id),
        user_id: Set(Some(s.user)),
        conversation_id: Set(Some(id)),
        prompt: Set("elsewhere".into()),
        status: Set("streaming".into()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&s.app.state.db)
    .await
    .unwrap();
    let chunk = |seq: i32, content: &str| stream_chunks::ActiveModel {
        stream_id: Set(id),
        seq: Set(seq),
        content: Set(content.into()),
        created_at: Set(now),
        ..Default::default()
    };
    chunk(1, "one").insert(&s.app.state.db).await.unwrap();
    let app = &s.app;
    let reader = async { events(app, &format!("/api/chat/streams/{id}/events"), Some("0")).await };
    let writer = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        chunk(2, " two").insert(&app.state.db).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        chunk(3, " three").insert(&app.state.db).await.unwrap();
        streams::Entity::update_many()
            .col_expr(streams::Column::Status, sea_orm::sea_query::Expr::value("done"))
            .col_expr(streams::Column::TokensOut, sea_orm::sea_query::Expr::value(3i64))
            .filter(streams::Column::Id.eq(id))
            .exec(&app.state.db)
            .await
            .unwrap();
    };
    let ((status, got), ()) = tokio::join!(reader, writer);
    assert_eq!(status, 200);
    assert_eq!(seqs(&got), vec![1, 2, 3]);
    assert_eq!(text_of(&got), "one two three");
    assert_eq!(got.last().unwrap().data["status"], "done");
    assert_eq!(got.last().unwrap().data["tokens_out"], 3);
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn other_peoples_answers_and_conversations_are_not_found() {
    let s = setup().await;
    let (stream, conversation) = s.turn("", "mine").await;
    let other = s.app.sign_in_as_other("mallory").await;
    let cookie = s.app.new_session(other).await;
    let as_other = |req: reqwest::RequestBuilder| req.header("cookie", cookie.clone());
    let plain = reqwest::Client::new();

    let resp =
        as_other(plain.get(s.app.url(&format!("/api/chat/streams/{stream}/events")))).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("there is no chat answer with id"));
    for (path, form) in [
        ("/fn/chat/turns", vec![("conversation_id", conversation.to_string())]),
        ("/fn/chat/stop", vec![("stream_id", stream.to_string())]),
        (
            "/fn/chat/send",
            vec![
                ("conversation_id", conversation.to_string()),
                ("model", "oa/gpt-4o-mini".into()),
                ("message", "let me in".into()),
            ],
        ),
    ] {
        let resp = as_other(plain.post(s.app.url(path)).header("origin", &s.app.origin))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        assert!(resp.text().await.unwrap().contains("there is no"), "{path}");
    }
    let resp = as_other(plain.post(s.app.url("/fn/chat/conversations")).header("origin", &s.app.origin))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([]));
    // Nothing of the owner's changed, and the other person's turn was never stored.
    let row = streams::Entity::find_by_id(stream).one(&s.app.state.db).await.unwrap().unwrap();
    assert_eq!(row.status, "done");
    assert_eq!(streams::Entity::find().all(&s.app.state.db).await.unwrap().len(), 1);
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_by_name_and_nothing_is_stored() {
    let s = setup().await;
    let long = "a".repeat(32_001);
    let cases: Vec<(&str, &str, &str, u16, &str)> = vec![
        ("", "oa/gpt-4o-mini", "", 400, "message: write something first"),
        ("", "oa/gpt-4o-mini", " \n\t ", 400, "message: write something first"),
        ("", "oa/gpt-4o-mini", &long, 400, "at most 32000 characters (this one has 32001)"),
        ("", "oa/gpt-4o-mini", "nul \0 byte", 400, "must not contain NUL"),
        ("", "", "hi", 400, "model: choose a model"),
        ("", "no-such-model", "hi", 400, "model: 'no-such-model' is not a chat model"),
        ("", "<script>alert(1)</script>", "hi", 400, "is not a chat model"),
        ("", "oa/gpt-4o-mini'; DROP TABLE streams; --", "hi", 400, "is not a chat model"),
        ("not-an-id", "oa/gpt-4o-mini", "hi", 404, "there is no conversation with id 'not-an-id'"),
        ("00000000-0000-0000-0000-000000000000", "oa/gpt-4o-mini", "hi", 404, "there is no conversation"),
    ];
    for (conversation, model, message, status, says) in cases {
        let (got, body) = s.send(conversation, model, message).await;
        assert_eq!(got, status, "{model:?} {conversation:?}: {body}");
        assert!(body.to_string().contains(says), "{model:?} {conversation:?}: {body} should say {says:?}");
    }
    assert!(streams::Entity::find().all(&s.app.state.db).await.unwrap().is_empty());

    let stream_path = |id: &str| format!("/api/chat/streams/{id}/events");
    let random = Uuid::new_v4().to_string();
    for (path, header, status, says) in [
        (stream_path("nope"), None, 404, "there is no chat answer with id 'nope'"),
        (stream_path(&random), None, 404, "there is no chat answer"),
        (format!("{}?after=-1", stream_path(&random)), None, 400, "after must be the number"),
        (format!("{}?after=abc", stream_path(&random)), None, 400, "not 'abc'"),
        (stream_path(&random), Some("x"), 400, "Last-Event-ID must be the number"),
    ] {
        let (got, body) = events(&s.app, &path, header).await;
        assert_eq!(got, status, "{path}");
        assert!(
            body[0].data["error"]["message"].as_str().unwrap().contains(says),
            "{path}: {:?}",
            body[0].data
        );
    }
    let (got, _) = s.fn_call("/fn/chat/stop", &[("stream_id", "nope")]).await;
    assert_eq!(got, 404);
    let (got, _) = s.fn_call("/fn/chat/turns", &[("conversation_id", &random)]).await;
    assert_eq!(got, 404);
    // A missing field is the caller's mistake too.
    let (got, _) = s.fn_call("/fn/chat/send", &[("model", "oa/gpt-4o-mini")]).await;
    assert_eq!(got, 400);

    // Not signed in: 401, and no answer is revealed.
    let plain = reqwest::Client::new();
    let resp = plain.get(s.app.url(&stream_path(&random))).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let resp = plain
        .post(s.app.url("/fn/chat/send"))
        .header("origin", &s.app.origin)
        .form(&[("conversation_id", ""), ("model", "oa/gpt-4o-mini"), ("message", "hi")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_failing_provider_is_a_failed_turn_with_its_reason() {
    let s = setup().await;
    let admin = s.user;
    add_provider(&s.app, admin, "down", s.mock.base_url_with("openai", "fail=500")).await;
    s.app.state.gateway.reload().await.unwrap();
    let (status, body) = s.send("", "down/gpt-4o-mini", "anyone there?").await;
    assert_eq!(status, 200, "{body}");
    let stream: Uuid = body["stream_id"].as_str().unwrap().parse().unwrap();
    let ending = chat(&s.app).wait(stream, Duration::from_secs(20)).await.unwrap().unwrap();
    assert_eq!(ending.status, "error");
    let error = ending.error.unwrap();
    assert!(error.contains("every provider for this model failed"), "{error}");
    assert!(!error.contains(KEY) && !error.contains(&KEY[8..20]), "no key in errors: {error}");
    let turns = chat(&s.app).turns(s.user, stream).await.unwrap();
    assert_eq!((turns[0].status.as_str(), turns[0].text.as_str()), ("error", ""));
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn the_chat_page_works_as_plain_forms() {
    let s = setup().await;
    let html = s.app.get("/chat").await.text().await.unwrap();
    for needle in [
        "<title>Chat · Goblin Assistant</title>",
        r#"action="/fn/chat/send""#,
        r#"name="message""#,
        r#"<option value="oa/gpt-4o-mini""#,
        r#"data-testid="no-conversations""#,
        r#"href="/chat""#,
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }

    // A browser without JavaScript posts the form and asks for HTML: the answer is ready when it is
    // sent to the conversation's page.
    let message = "**bold** and <img src=x onerror=\"window.__xss=1\">";
    let resp = s
        .app
        .post("/fn/chat/send")
        .header("accept", "text/html")
        .header("referer", s.app.url("/chat"))
        .form(&[("conversation_id", ""), ("model", "oa/gpt-4o-mini"), ("message", message)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let conversation = location.strip_prefix("/chat/").expect("sent to the conversation");
    let row = streams::Entity::find_by_id(conversation.parse::<Uuid>().unwrap())
        .one(&s.app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, "done", "the answer was finished before the redirect");

    let resp = s.app.get(&location).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<strong>bold</strong>"), "markdown rendered");
    assert!(!html.contains("<img src=x"), "the model's HTML is never markup");
    assert!(html.contains("&lt;img src=x onerror="), "it is shown as text");
    for needle in [
        r#"data-testid="turn-tokens""#,
        "tokens in · ",
        r#"data-testid="turn-cost""#,
        r#"data-testid="conversation-link""#,
        r#"aria-current="page""#,
        &format!(r#"name="conversation_id" value="{conversation}""#),
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }

    // A refused plain post goes back to its page, which says why.
    let resp = s
        .app
        .post("/fn/chat/send")
        .header("accept", "text/html")
        .header("referer", s.app.url(&location))
        .form(&[("conversation_id", conversation), ("model", "oa/gpt-4o-mini"), ("message", " ")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let back = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(back.starts_with(&s.app.url(&location)), "{back}");
    let html = s.app.client.get(&back).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("message: write something first"), "the page shows the refusal");

    // An unknown conversation is a 404 page that says so.
    let resp = s.app.get(&format!("/chat/{}", Uuid::new_v4())).await;
    assert_eq!(resp.status(), 404);
    assert!(resp.text().await.unwrap().contains("there is no conversation with id"));
    let resp = s.app.get("/chat/not-an-id").await;
    assert_eq!(resp.status(), 404);
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_stop_on_another_instance_reaches_the_running_answer() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let url = db.url.clone();
    let key = [("GOBLIN_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")];
    let a = spawn_app_on(db, &key).await;
    let s = setup_on(a).await;
    let mut env_b = key.to_vec();
    env_b.push(("DATABASE_URL", url.as_str()));
    let b = spawn_app_on(TestDb::new(Backend::Sqlite).await.unwrap(), &env_b).await;
    let cookie = b.new_session(s.user).await;

    let (status, body) = s.send("", "st/gpt-4o-mini", "a long story please").await;
    assert_eq!(status, 200, "{body}");
    let stream: Uuid = body["stream_id"].as_str().unwrap().parse().unwrap();
    until("the first chunk is stored", || async { chunks(&s.app, stream).await.len() == 1 }).await;

    // B reads the answer from the table, and its stop reaches A within about a second.
    let plain = reqwest::Client::new();
    let reader = plain
        .get(b.url(&format!("/api/chat/streams/{stream}/events")))
        .header("cookie", cookie.clone())
        .send();
    let resp = reader.await.unwrap();
    assert_eq!(resp.status(), 200);
    let stop = plain
        .post(b.url("/fn/chat/stop"))
        .header("origin", &b.origin)
        .header("cookie", cookie.clone())
        .form(&[("stream_id", stream.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(20), resp.text()).await.unwrap().unwrap();
    let got = parse_sse(&text);
    assert_eq!(text_of(&got), "Mock");
    assert_eq!(got.last().unwrap().data["status"], "cancelled");
    let ending = chat(&s.app).wait(stream, Duration::from_secs(10)).await.unwrap().unwrap();
    assert_eq!(ending.status, "cancelled");
    assert!(ending.tokens_out > 0, "A recorded what it had: {ending:?}");
    s.mock.shutdown().await;
    b.stop().await;
    s.app.stop().await;
}

#[tokio::test]
async fn turns_left_streaming_by_a_stopped_server_are_ended() {
    let s = setup().await;
    let now = chrono::Utc::now();
    let row = |id: Uuid, started: chrono::DateTime<chrono::Utc>| streams::ActiveModel {
        id: Set(id),
        user_id: Set(Some(s.user)),
        conversation_id: Set(Some(id)),
        prompt: Set("left behind".into()),
        status: Set("streaming".into()),
        created_at: Set(started),
        ..Default::default()
    };
    let chunk = |id: Uuid, at: chrono::DateTime<chrono::Utc>| stream_chunks::ActiveModel {
        stream_id: Set(id),
        seq: Set(1),
        content: Set("part".into()),
        created_at: Set(at),
        ..Default::default()
    };
    let db = &s.app.state.db;
    // Dead: started an hour ago, its last words 50 minutes ago.
    let dead = Uuid::now_v7();
    row(dead, now - chrono::Duration::hours(1)).insert(db).await.unwrap();
    chunk(dead, now - chrono::Duration::minutes(50)).insert(db).await.unwrap();
    // Long but alive: started an hour ago, words a minute ago. Young: started a minute ago.
    let alive = Uuid::now_v7();
    row(alive, now - chrono::Duration::hours(1)).insert(db).await.unwrap();
    chunk(alive, now - chrono::Duration::minutes(1)).insert(db).await.unwrap();
    let young = Uuid::now_v7();
    row(young, now - chrono::Duration::minutes(1)).insert(db).await.unwrap();

    let ended = chat(&s.app).sweep_interrupted(Duration::from_secs(15 * 60)).await.unwrap();
    assert_eq!(ended, 1);
    let status = |id: Uuid| async move { streams::Entity::find_by_id(id).one(db).await.unwrap().unwrap() };
    let d = status(dead).await;
    assert_eq!(d.status, "error");
    assert!(d.error.unwrap().contains("interrupted"));
    assert!(d.finished_at.is_some());
    assert_eq!(status(alive).await.status, "streaming");
    assert_eq!(status(young).await.status, "streaming");
    s.mock.shutdown().await;
    s.app.stop().await;
}

/// A turn with a search collection attached: the prompt sent upstream holds the chunks that match the
/// message as numbered sources with their titles (and not the ones that do not), the model is told to
/// cite them, the sources are stored with the turn, and the answer's citations link to pages that
/// show each chunk (hostile document text as text).
#[tokio::test]
async fn a_chat_with_a_collection_cites_the_right_chunks() {
    use goblin_core::search::{Format, NewCollection, NewDocument, SearchService};
    let s = setup().await;
    let search = SearchService::new(s.app.state.db.clone());
    let collection = search
        .create_collection(Some(s.user), NewCollection { name: "handbook".into(), ..Default::default() })
        .await
        .unwrap();
    let add = |title: &str, text: &str| NewDocument {
        title: Some(title.into()),
        source: None,
        tags: Vec::new(),
        format: Format::Text,
        file_name: None,
        bytes: text.as_bytes().to_vec(),
    };
    let lanterns = search
        .add_document(
            collection.id,
            add(
                "Goblin lanterns",
                "Goblin lanterns burn with a blue flame fed by marsh gas. <script>alert('x')</script>",
            ),
        )
        .await
        .unwrap();
    search
        .add_document(collection.id, add("Bridge tolls", "Trolls collect tolls on every stone bridge."))
        .await
        .unwrap();

    s.mock.clear_requests();
    let (status, body) = s
        .fn_call(
            "/fn/chat/send",
            &[
                ("conversation_id", ""),
                ("model", "oa/gpt-4o-mini"),
                ("message", "What colour do lanterns burn?"),
                ("collection_id", &collection.id.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stream: Uuid = body["stream_id"].as_str().unwrap().parse().unwrap();
    let conversation: Uuid = body["conversation_id"].as_str().unwrap().parse().unwrap();
    let ending = chat(&s.app).wait(stream, Duration::from_secs(10)).await.unwrap();
    assert_eq!(ending.map(|e| e.status).as_deref(), Some("done"));

    // What went upstream.
    let sent: Value = serde_json::from_str(&s.mock.requests().last().unwrap().body).unwrap();
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.contains("Cite every source you use by its number in square brackets"), "{system}");
    let user = messages.last().unwrap();
    assert_eq!(user["role"], "user");
    let prompt = user["content"].as_str().unwrap();
    assert!(
        prompt.contains("[1] Goblin lanterns (part 1)\nGoblin lanterns burn with a blue flame"),
        "{prompt}"
    );
    assert!(!prompt.contains("Trolls collect tolls"), "a chunk that does not match stays out: {prompt}");
    assert!(prompt.ends_with("Message: What colour do lanterns burn?"), "{prompt}");

    // Stored with the turn, and shown on the conversation's page as links to the chunk.
    let turns = chat(&s.app).turns(s.user, conversation).await.unwrap();
    assert_eq!(turns[0].prompt, "What colour do lanterns burn?", "the turn keeps the person's own message");
    assert_eq!(turns[0].collection_id, Some(collection.id));
    let sources = &turns[0].sources;
    assert_eq!(sources.len(), 1, "{sources:?}");
    assert_eq!((sources[0].n, sources[0].title.as_str(), sources[0].seq), (1, "Goblin lanterns", 0));
    let href = format!("/search/collections/{}/documents/{}#chunk-0", collection.id, lanterns.document.id);
    assert_eq!(sources[0].href(), href);
    let page = s.app.get(&format!("/chat/{conversation}")).await.text().await.unwrap();
    assert!(page.contains(&format!(r#"href="{href}""#)), "the answer's sources link to the chunk");
    assert!(page.contains(">[1]</a>"), "the mock's answer repeats [1], which becomes a citation link");

    // The citation resolves: the chunk's page, with the chunk's text as text.
    let resp = s.app.get(href.split('#').next().unwrap()).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"id="chunk-0""#), "the fragment's target");
    assert!(html.contains("Goblin lanterns burn with a blue flame fed by marsh gas."));
    assert!(html.contains("&lt;script&gt;") && !html.contains("<script>alert"));

    // The conversation's next message is offered the same collection.
    let (status, choices) =
        s.fn_call("/fn/chat/models", &[("conversation_id", &conversation.to_string())]).await;
    assert_eq!(status, 200, "{choices}");
    assert_eq!(choices["chosen_collection"], collection.id.to_string());

    // A message with no matching words still goes, saying there are no sources; an unknown
    // collection is refused by name.
    s.mock.clear_requests();
    let (status, body) = s
        .fn_call(
            "/fn/chat/send",
            &[
                ("conversation_id", ""),
                ("model", "oa/gpt-4o-mini"),
                ("message", "zebras?"),
                ("collection_id", &collection.id.to_string()),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let stream: Uuid = body["stream_id"].as_str().unwrap().parse().unwrap();
    chat(&s.app).wait(stream, Duration::from_secs(10)).await.unwrap();
    let sent: Value = serde_json::from_str(&s.mock.requests().last().unwrap().body).unwrap();
    let prompt = sent["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_owned();
    assert!(prompt.starts_with("Sources: none"), "{prompt}");
    let (status, body) = s
        .fn_call(
            "/fn/chat/send",
            &[
                ("conversation_id", ""),
                ("model", "oa/gpt-4o-mini"),
                ("message", "lanterns"),
                ("collection_id", "00000000-0000-0000-0000-000000000000"),
            ],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("collection: there is no search collection"), "{body}");
    s.mock.shutdown().await;
    s.app.stop().await;
}
