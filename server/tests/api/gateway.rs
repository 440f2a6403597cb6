//! The OpenAI-compatible gateway against the mock upstream: plain and streamed chat through every
//! adapter, model names (alias, provider/model, bare), failover on each kind of fault, explicit
//! errors when a stream breaks, authentication, bad input, and the request log.

use goblin_mock_upstream::{MockConfig, MockUpstream};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};

const KEY: &str = "sk-gateway-test-0123456789abcdefghijkl";

struct Setup {
    app: TestApp,
    mock: MockUpstream,
    token: String,
}

async fn setup() -> Setup {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let admin = app.sign_in_as("root", "admin").await;
    let mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    for (name, kind) in
        [("oa", "openai"), ("an", "anthropic"), ("ge", "gemini"), ("ds", "deepseek"), ("el", "elevenlabs")]
    {
        let input = goblin_core::providers::ProviderInput {
            name: name.into(),
            kind: kind.into(),
            base_url: mock.base_url(kind),
            enabled: true,
            ..Default::default()
        };
        let p = app.state.providers.create(Some(admin), &input).await.unwrap();
        app.state.providers.add_key(Some(admin), p.id, "k", KEY, "").await.unwrap();
        app.state.providers.sync_models(Some(admin), p.id).await.unwrap();
    }
    let user =
        goblin_core::entities::users::Entity::find_by_id(admin).one(&app.state.db).await.unwrap().unwrap();
    let token =
        app.state.tokens.issue(&user, "gw", &["chat".into()], chrono::Duration::days(1), None).await.unwrap();
    app.state.gateway.reload().await.unwrap();
    Setup { app, mock, token: token.token.expose().clone() }
}

impl Setup {
    async fn provider_id(&self, name: &str) -> uuid::Uuid {
        let list = self.app.state.providers.list().await.unwrap();
        list.into_iter().find(|p| p.provider.name == name).unwrap().provider.id
    }

    /// An alias with targets (provider name, model) in order, and an optional policy.
    async fn alias(&self, alias: &str, targets: &[(&str, &str)], policy: Option<Value>) {
        let now = chrono::Utc::now();
        for (i, (provider, model)) in targets.iter().enumerate() {
            goblin_core::entities::routing_providers::ActiveModel {
                id: Set(uuid::Uuid::new_v4()),
                alias: Set(alias.into()),
                provider_id: Set(self.provider_id(provider).await),
                model: Set((*model).into()),
                weight: Set(1),
                position: Set(i as i32),
                enabled: Set(true),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&self.app.state.db)
            .await
            .unwrap();
        }
        if let Some(p) = policy {
            let get = |k: &str, d: i64| p.get(k).and_then(Value::as_i64).unwrap_or(d) as i32;
            goblin_core::entities::provider_policies::ActiveModel {
                id: Set(uuid::Uuid::new_v4()),
                route_alias: Set(alias.into()),
                strategy: Set(p.get("strategy").and_then(Value::as_str).unwrap_or("priority").into()),
                score_weights: Set(json!({})),
                max_retries: Set(get("max_retries", 0)),
                retry_backoff_ms: Set(get("retry_backoff_ms", 10)),
                attempt_timeout_ms: Set(get("attempt_timeout_ms", 30_000)),
                deadline_ms: Set(get("deadline_ms", 60_000)),
                fallback_enabled: Set(true),
                breaker_failure_threshold: Set(get("breaker_failure_threshold", 5)),
                breaker_error_rate: Set(p.get("breaker_error_rate").and_then(Value::as_f64).unwrap_or(0.5)),
                breaker_window_s: Set(60),
                breaker_cooldown_s: Set(get("breaker_cooldown_s", 30)),
                budget_micros: Set(None),
                budget_period: Set("month".into()),
                budget_action: Set("refuse".into()),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&self.app.state.db)
            .await
            .unwrap();
        }
        self.app.state.gateway.reload().await.unwrap();
    }

    async fn post(&self, body: Value) -> reqwest::Response {
        self.app
            .client
            .post(self.app.url("/v1/chat/completions"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn chat(&self, model: &str) -> (u16, Value) {
        let resp = self
            .post(json!({ "model": model, "messages": [{ "role": "user", "content": "hello goblins" }] }))
            .await;
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// The SSE events of a streamed answer (the `data:` payloads, `[DONE]` included).
    async fn stream(&self, model: &str, include_usage: bool) -> (u16, Vec<String>) {
        let mut body = json!({ "model": model, "stream": true, "messages": [{ "role": "user", "content": "hello goblins in the cave" }] });
        if include_usage {
            body["stream_options"] = json!({ "include_usage": true });
        }
        let resp = self.post(body).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let events =
            text.split("\n\n").filter_map(|e| e.strip_prefix("data: ").map(str::to_string)).collect();
        (status, events)
    }

    async fn records(&self) -> Vec<goblin_core::entities::routing_requests::Model> {
        assert!(self.app.state.gateway.records().flush(std::time::Duration::from_secs(10)).await);
        use sea_orm::QueryOrder;
        goblin_core::entities::routing_requests::Entity::find()
            .order_by_asc(goblin_core::entities::routing_requests::Column::CreatedAt)
            .all(&self.app.state.db)
            .await
            .unwrap()
    }
}

fn content(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| v.pointer("/choices/0/delta/content").and_then(Value::as_str).map(str::to_string))
        .collect()
}

#[tokio::test]
async fn chat_through_every_adapter_plain_and_streamed() {
    let s = setup().await;
    for model in ["oa/gpt-4o-mini", "gpt-4o-mini", "an/claude-3-5-haiku-20241022", "ds/deepseek-chat"] {
        let (status, body) = s.chat(model).await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["object"], "chat.completion", "{model}");
        assert_eq!(
            body["choices"][0]["message"]["content"], "Mock reply to: hello goblins",
            "{model}: {body}"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop", "{model}");
        assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{model}: {body}");
    }
    let gemini_model = "gemini-2.0-flash";
    let (status, body) = s.chat(&format!("ge/{gemini_model}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Mock reply to: hello goblins");

    for model in ["oa/gpt-4o-mini", "an/claude-3-5-haiku-20241022", &format!("ge/{gemini_model}")] {
        let (status, events) = s.stream(model, true).await;
        assert_eq!(status, 200, "{model}");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{model}: {events:?}");
        assert_eq!(content(&events), "Mock reply to: hello goblins in the cave", "{model}: {events:?}");
        let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(usage["choices"], json!([]), "{model}: the usage chunk comes last");
        assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0, "{model}");
        let (_, events) = s.stream(model, false).await;
        assert!(
            events.iter().filter(|e| *e != "[DONE]").all(|e| {
                !serde_json::from_str::<Value>(e).unwrap()["choices"].as_array().unwrap().is_empty()
            }),
            "{model}: no usage chunk unless asked"
        );
    }
    let rows = s.records().await;
    assert_eq!(rows.len(), 11);
    assert!(rows.iter().all(|r| r.status == "ok" && r.http_status == 200 && r.tokens_out > 0), "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.stream).count(), 6);
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn failover_on_each_fault_before_the_first_byte() {
    let s = setup().await;
    let policy = json!({ "attempt_timeout_ms": 1500, "max_retries": 0 });
    // latency=3000 is a timeout before the first byte (the attempt timeout is 1.5 s).
    let faults = ["fail=500", "fail=429", "fail=503", "latency=3000", "fail=401"];
    for (i, fault) in faults.iter().enumerate() {
        let alias = format!("route-{i}");
        s.alias(
            &alias,
            &[("oa", &format!("gpt-4o-mini@{fault}")), ("an", "claude-3-5-haiku-20241022")],
            Some(policy.clone()),
        )
        .await;
        let (status, body) = s.chat(&alias).await;
        assert_eq!(status, 200, "{fault}: {body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Mock reply to: hello goblins", "{fault}");
        let (status, events) = s.stream(&alias, false).await;
        assert_eq!(status, 200, "{fault}");
        assert_eq!(content(&events), "Mock reply to: hello goblins in the cave", "{fault}: {events:?}");
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{fault}");
    }
    let rows = s.records().await;
    assert_eq!(rows.len(), faults.len() * 2);
    for r in &rows {
        let attempts = r.attempts.as_array().unwrap();
        assert_eq!(attempts.len(), 2, "{r:?}");
        assert_ne!(attempts[0]["status"], 200);
        assert!(attempts[0]["error"].as_str().is_some_and(|e| !e.is_empty()));
        assert_eq!(attempts[1]["status"], 200);
        assert_eq!(r.status, "ok");
        assert_eq!(r.model.as_deref(), Some("claude-3-5-haiku-20241022"));
    }
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_stream_cut_after_it_started_ends_with_an_explicit_error() {
    let s = setup().await;
    s.alias("cutting", &[("oa", "gpt-4o-mini@cut=2"), ("an", "claude-3-5-haiku-20241022")], Some(json!({})))
        .await;
    s.alias("breaking", &[("an", "claude-3-5-haiku-20241022@error_event")], Some(json!({}))).await;
    s.alias(
        "stalling",
        &[("oa", "gpt-4o-mini@stall"), ("an", "claude-3-5-haiku-20241022")],
        Some(json!({ "attempt_timeout_ms": 1000 })),
    )
    .await;
    s.alias(
        "garbling",
        &[("oa", "gpt-4o-mini@malformed"), ("an", "claude-3-5-haiku-20241022")],
        Some(json!({})),
    )
    .await;
    // Without streaming, a stall or an unreadable answer fails over.
    for alias in ["stalling", "garbling"] {
        let (status, body) = s.chat(alias).await;
        assert_eq!(
            (status, body["choices"][0]["message"]["content"].as_str()),
            (200, Some("Mock reply to: hello goblins")),
            "{alias}"
        );
    }
    // Streamed, they strike after the first words reached the client: an explicit error ends it.
    for alias in ["cutting", "breaking", "stalling", "garbling"] {
        let (status, events) = s.stream(alias, true).await;
        assert_eq!(status, 200, "{alias}");
        assert_ne!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{alias}: never a clean end: {events:?}"
        );
        let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], "stream_interrupted", "{alias}: {last}");
    }
    let rows = s.records().await;
    let streamed: Vec<_> = rows.iter().filter(|r| r.stream).collect();
    assert_eq!(streamed.len(), 4);
    assert!(
        streamed.iter().all(|r| r.status == "error" && r.error.is_some() && r.http_status == 502),
        "{rows:?}"
    );
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn all_targets_failing_and_client_faults_give_clear_errors() {
    let s = setup().await;
    s.alias(
        "doomed",
        &[("oa", "gpt-4o-mini@fail=500"), ("an", "claude-3-5-haiku-20241022@fail=503")],
        Some(json!({ "max_retries": 1 })),
    )
    .await;
    let (status, body) = s.chat("doomed").await;
    assert_eq!(status, 502, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("every provider for this model failed (4 attempts)"), "{msg}");
    assert_eq!(body["error"]["type"], "api_error");
    // A 4xx the request caused is not retried elsewhere.
    s.alias("picky", &[("oa", "gpt-4o-mini@fail=400"), ("an", "claude-3-5-haiku-20241022")], Some(json!({})))
        .await;
    let (status, body) = s.chat("picky").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let rows = s.records().await;
    assert_eq!(rows[1].attempts.as_array().unwrap().len(), 1, "no fallback for the request's own fault");

    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "could not parse the JSON body"),
        (json!({ "messages": [] }).to_string().into_bytes(), 400, "model"),
        (json!({ "model": "gpt-4o-mini" }).to_string().into_bytes(), 400, "'messages' is a required property"),
        (json!({ "model": "gpt-4o-mini", "messages": "hi" }).to_string().into_bytes(), 400, "'messages' must be an array"),
        (json!({ "model": 7, "messages": [] }).to_string().into_bytes(), 400, "'model' must be a string"),
        (json!({ "model": "no-such-model", "messages": [{ "role": "user", "content": "x" }] }).to_string().into_bytes(), 404, "does not exist"),
        (json!({ "model": "gpt-4o-mini", "stream": "yes", "messages": [{ "role": "user", "content": "x" }] }).to_string().into_bytes(), 400, "'stream'"),
    ];
    for (body, status, says) in cases {
        let resp = s
            .app
            .client
            .post(s.app.url("/v1/chat/completions"))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{}", String::from_utf8_lossy(&body));
        let v: Value = resp.json().await.unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains(says), "{v}");
    }
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn authentication_and_model_listing() {
    let s = setup().await;
    let plain = reqwest::Client::new();
    let resp = plain.get(s.app.url("/v1/models")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");
    let resp = plain
        .post(s.app.url("/v1/chat/completions"))
        .bearer_auth("nope")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // A token without the chat scope is refused.
    let user = goblin_core::entities::users::Entity::find().all(&s.app.state.db).await.unwrap().remove(0);
    let tasks = s
        .app
        .state
        .tokens
        .issue(&user, "t", &["tasks:run".into()], chrono::Duration::days(1), None)
        .await
        .unwrap();
    let resp = plain.get(s.app.url("/v1/models")).bearer_auth(tasks.token.expose()).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // The signed-in browser session works too.
    let resp = s.app.client.get(s.app.url("/v1/models")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    s.alias("chat-fast", &[("oa", "gpt-4o-mini")], None).await;
    let models: Value =
        plain.get(s.app.url("/v1/models")).bearer_auth(&s.token).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> =
        models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for id in ["chat-fast", "oa/gpt-4o-mini", "gpt-4o-mini", "an/claude-3-5-haiku-20241022"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let resp = plain.get(s.app.url("/v1/nothing")).bearer_auth(&s.token).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn two_hundred_random_mid_stream_cuts_never_end_cleanly_truncated() {
    let s = setup().await;
    let full = "Mock reply to: hello goblins in the cave";
    // A small deterministic generator: the cut points are reproducible from run to run.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut targets: Vec<(String, String)> = Vec::new();
    for i in 0..20 {
        let provider = if i % 2 == 0 { "oa" } else { "an" };
        let model = if provider == "oa" { "gpt-4o-mini" } else { "claude-3-5-haiku-20241022" };
        // cut=0..8: before any words, or in the middle; one alias in four is not cut at all.
        let cut = next(12);
        let model = if cut > 8 { model.to_string() } else { format!("{model}@cut={cut}") };
        targets.push((provider.into(), model));
    }
    for (i, (provider, model)) in targets.iter().enumerate() {
        // A breaker that never opens here: this test is about the streams, not the circuit.
        s.alias(
            &format!("cut-{i}"),
            &[(provider.as_str(), model.as_str())],
            Some(json!({ "breaker_failure_threshold": 100_000, "breaker_error_rate": 1.1 })),
        )
        .await;
    }
    let (mut clean, mut errors) = (0, 0);
    for n in 0..200 {
        let alias = format!("cut-{}", next(20));
        let (status, events) = s.stream(&alias, n % 2 == 0).await;
        if status != 200 {
            // Cut before the first words: refused before anything was streamed.
            assert!(status == 502, "{alias}: {status}");
            continue;
        }
        match events.last().map(String::as_str) {
            Some("[DONE]") => {
                assert_eq!(content(&events), full, "{alias}: a clean end carries the whole answer");
                clean += 1;
            }
            Some(last) => {
                let v: Value = serde_json::from_str(last).unwrap();
                assert_eq!(v["error"]["code"], "stream_interrupted", "{alias}: {events:?}");
                errors += 1;
            }
            None => panic!("{alias}: an empty 200 stream"),
        }
    }
    assert!(clean > 0 && errors > 0, "both kinds happened: {clean} clean, {errors} interrupted");
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn the_circuit_opens_after_failures_and_half_opens_on_schedule() {
    let s = setup().await;
    // A provider of its own on a second mock, whose key the test can revoke and restore.
    let flaky_mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    let input = goblin_core::providers::ProviderInput {
        name: "flaky".into(),
        kind: "openai".into(),
        base_url: flaky_mock.base_url("openai"),
        enabled: true,
        ..Default::default()
    };
    let flaky = s.app.state.providers.create(None, &input).await.unwrap();
    s.app.state.providers.add_key(None, flaky.id, "k", KEY, "").await.unwrap();
    s.alias(
        "guarded",
        &[("flaky", "gpt-4o-mini"), ("an", "claude-3-5-haiku-20241022")],
        Some(json!({ "breaker_failure_threshold": 2, "breaker_cooldown_s": 30, "max_retries": 0 })),
    )
    .await;
    // The same gateway with a clock the test moves.
    let clock = goblin_core::clock::ManualClock::new(chrono::Utc::now());
    let st = &s.app.state;
    let records = goblin_core::gateway::records::Records::start(
        st.db.clone(),
        std::sync::Arc::new(clock.clone()),
        Default::default(),
    );
    let keyring = std::sync::Arc::new(goblin_core::crypto::Keyring::from_config(&st.config).unwrap().0);
    let gw = goblin_core::gateway::Gateway::new(
        st.db.clone(),
        keyring,
        std::sync::Arc::new(clock.clone()),
        st.settings.clone(),
        records.clone(),
        None,
    )
    .await
    .unwrap();
    let caller = goblin_core::gateway::Caller::default();
    let ask = || json!({ "model": "guarded", "messages": [{ "role": "user", "content": "hi" }] });
    let first_attempt = |records: &[goblin_core::entities::routing_requests::Model]| {
        records.last().unwrap().attempts[0].clone()
    };
    async fn rows(
        db: &sea_orm::DatabaseConnection,
        r: &goblin_core::gateway::records::Records,
    ) -> Vec<goblin_core::entities::routing_requests::Model> {
        use sea_orm::QueryOrder;
        assert!(r.flush(std::time::Duration::from_secs(10)).await);
        goblin_core::entities::routing_requests::Entity::find()
            .order_by_asc(goblin_core::entities::routing_requests::Column::Id)
            .all(db)
            .await
            .unwrap()
    }

    // The first provider's key stops working: two failures (each answered by the fallback) open it.
    flaky_mock.set_keys(vec!["someone-else".into()]);
    for _ in 0..2 {
        let out = gw.chat(&caller, ask()).await.unwrap();
        assert_eq!(out["model"], "claude-3-5-haiku-20241022");
    }
    flaky_mock.set_keys(vec![KEY.into()]);
    gw.chat(&caller, ask()).await.unwrap();
    let r = rows(&st.db, &records).await;
    assert_eq!(first_attempt(&r)["error"], "skipped: circuit open", "open: the first target is skipped");

    clock.advance(chrono::Duration::seconds(29));
    gw.chat(&caller, ask()).await.unwrap();
    assert_eq!(
        first_attempt(&rows(&st.db, &records).await)["error"],
        "skipped: circuit open",
        "still open at 29 s"
    );

    clock.advance(chrono::Duration::seconds(1));
    let out = gw.chat(&caller, ask()).await.unwrap();
    assert_eq!(out["model"], "gpt-4o-mini", "half-open at 30 s: the probe goes through and succeeds");
    let out = gw.chat(&caller, ask()).await.unwrap();
    assert_eq!(out["model"], "gpt-4o-mini", "closed again");
    flaky_mock.shutdown().await;
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn embeddings_and_speech() {
    let s = setup().await;
    let post = |path: &'static str, body: Value| {
        let req = s.app.client.post(s.app.url(path)).bearer_auth(&s.token).json(&body);
        async move { req.send().await.unwrap() }
    };
    for model in ["oa/text-embedding-3-small", "text-embedding-3-small", "ge/text-embedding-004"] {
        let resp = post(
            "/v1/embeddings",
            json!({ "model": model, "input": ["goblins dig tunnels", "goblins dig"] }),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        let v: Value = resp.json().await.unwrap();
        let data = v["data"].as_array().unwrap();
        assert_eq!(data.len(), 2, "{model}: {v}");
        assert!(data[0]["embedding"].as_array().unwrap().len() >= 8, "{model}");
        assert_eq!(data[1]["index"], 1);
    }
    let resp = post("/v1/embeddings", json!({ "model": "text-embedding-3-small", "input": 5 })).await;
    assert_eq!(resp.status(), 400);
    let resp = post("/v1/embeddings", json!({ "model": "an/claude-3-5-haiku-20241022", "input": "x" })).await;
    assert_eq!(resp.status(), 404, "anthropic serves no embeddings");

    for model in ["oa/tts-1", "el/eleven_multilingual_v2"] {
        let resp = post(
            "/v1/audio/speech",
            json!({ "model": model, "input": "Hello from the cave", "voice": "alloy" }),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        assert_eq!(resp.headers()["content-type"], "audio/mpeg", "{model}");
        let audio = resp.bytes().await.unwrap();
        assert!(audio.starts_with(b"ID3"), "{model}: an MP3 with an ID3 header");
    }
    let resp =
        post("/v1/audio/speech", json!({ "model": "oa/tts-1", "input": "x", "voice": "../../etc" })).await;
    assert_eq!(resp.status(), 400);
    let rows = s.records().await;
    assert_eq!(rows.iter().filter(|r| r.status == "ok").count(), 5);
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_stream() {
    let s = setup().await;
    // The upstream sends its first words, then nothing: only the client leaving can end this.
    s.alias(
        "slow",
        &[("oa", "gpt-4o-mini@stall")],
        Some(json!({ "attempt_timeout_ms": 600_000, "deadline_ms": 600_000 })),
    )
    .await;
    let mut resp = s
        .post(
            json!({ "model": "slow", "stream": true, "messages": [{ "role": "user", "content": "hello" }] }),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().expect("the first words arrive");
    assert!(String::from_utf8_lossy(&first).contains("data: "));
    drop(resp);
    let mut row = None;
    for _ in 0..100 {
        let rows = s.records().await;
        if let Some(r) = rows.into_iter().find(|r| r.route_alias.as_deref() == Some("slow")) {
            row = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let row = row.expect("the request was recorded once the client left");
    assert_eq!((row.status.as_str(), row.http_status), ("cancelled", 499), "{row:?}");
    // The stream carried no usage: the tokens are counted (prompt and the words that did arrive).
    assert!(row.tokens_in > 0 && row.tokens_out > 0, "{row:?}");
    s.mock.shutdown().await;
    s.app.stop().await;
}

/// Sets a model's prices (micro-USD per million tokens, in and out).
async fn price(s: &Setup, provider: &str, model: &str, micros: i64) {
    use goblin_core::entities::model_configs;
    use sea_orm::{ColumnTrait, QueryFilter, sea_query::Expr};
    let provider = s.provider_id(provider).await;
    let updated = model_configs::Entity::update_many()
        .col_expr(model_configs::Column::PriceInMicrosPerMtok, Expr::value(micros))
        .col_expr(model_configs::Column::PriceOutMicrosPerMtok, Expr::value(micros))
        .filter(model_configs::Column::ProviderId.eq(provider))
        .filter(model_configs::Column::ModelId.eq(model))
        .exec(&s.app.state.db)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected, 1, "{provider} {model}");
}

#[tokio::test]
async fn budgets_refuse_or_pick_the_cheaper_target_and_pass_over_spent_providers() {
    let s = setup().await;
    // A thousand dollars per million tokens: any answer costs more than the one-micro-dollar budgets.
    price(&s, "oa", "gpt-4o-mini", 1_000_000_000).await;
    price(&s, "ds", "deepseek-chat", 0).await;
    let routing = &s.app.state.routing;
    let oa = s.provider_id("oa").await;
    let ds = s.provider_id("ds").await;
    let policy = |action: &str| goblin_core::routing::PolicyInput {
        budget: "0.000001".into(),
        budget_period: "day".into(),
        budget_action: action.into(),
        ..Default::default()
    };
    for (alias, action) in [("capped", "refuse"), ("thrifty", "cheaper")] {
        routing.add_target(None, alias, oa, "gpt-4o-mini", "", "").await.unwrap();
        routing.add_target(None, alias, ds, "deepseek-chat", "", "").await.unwrap();
        routing.save_policy(None, alias, &policy(action)).await.unwrap();
    }
    routing.add_target(None, "either", oa, "gpt-4o-mini", "", "").await.unwrap();
    routing.add_target(None, "either", ds, "deepseek-chat", "", "").await.unwrap();
    s.app.state.gateway.reload().await.unwrap();

    // A route that refuses: the first request spends the budget, the next is refused with a 429
    // that says which budget, how much was spent, and when it resets.
    let (status, body) = s.chat("capped").await;
    assert_eq!((status, body["model"].as_str()), (200, Some("gpt-4o-mini")), "{body}");
    let (status, body) = s.chat("capped").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("The route 'capped' has spent its daily budget of $0.000001 ($"),
        "{message}"
    );
    assert!(message.contains("it resets at") && message.ends_with("00:00 UTC."), "{message}");

    // A route that goes cheaper: once spent, only its cheapest target is used.
    let (status, body) = s.chat("thrifty").await;
    assert_eq!((status, body["model"].as_str()), (200, Some("gpt-4o-mini")), "{body}");
    let (status, body) = s.chat("thrifty").await;
    assert_eq!((status, body["model"].as_str()), (200, Some("deepseek-chat")), "{body}");

    // An API token's budget.
    let admin = goblin_core::entities::users::Entity::find().one(&s.app.state.db).await.unwrap().unwrap();
    let capped_token = s
        .app
        .state
        .tokens
        .issue_with_budget(
            &admin,
            "capped",
            &["chat".into()],
            chrono::Duration::days(1),
            Some((1, "week".into())),
            None,
        )
        .await
        .unwrap();
    s.app.state.gateway.reload().await.unwrap();
    let ask = |token: String| {
        let app = &s.app;
        async move {
            let resp = app
                .client
                .post(app.url("/v1/chat/completions"))
                .bearer_auth(token)
                .json(
                    &json!({ "model": "oa/gpt-4o-mini", "messages": [{ "role": "user", "content": "hi" }] }),
                )
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
        }
    };
    let token = capped_token.token.expose().clone();
    assert_eq!(ask(token.clone()).await.0, 200);
    let (status, body) = ask(token.clone()).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with("This API token has spent its weekly budget"),
        "{body}"
    );
    assert_eq!(ask(s.token.clone()).await.0, 200, "other tokens are not affected");

    // A provider's budget (counted from the database's record of today's spend): its targets are
    // passed over, and a model only it serves is refused.
    s.records().await;
    let mut p: goblin_core::entities::providers::ActiveModel =
        goblin_core::entities::providers::Entity::find_by_id(oa)
            .one(&s.app.state.db)
            .await
            .unwrap()
            .unwrap()
            .into();
    p.budget_micros = Set(Some(1));
    p.budget_period = Set("day".into());
    p.update(&s.app.state.db).await.unwrap();
    s.app.state.gateway.reload().await.unwrap();
    let (status, body) = s.chat("either").await;
    assert_eq!((status, body["model"].as_str()), (200, Some("deepseek-chat")), "{body}");
    let (status, body) = s.chat("oa/gpt-4o-mini").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Every provider for this model is over its budget: oa has spent its daily budget"),
        "{body}"
    );

    // Every refusal and every pass-over is in the request log.
    let rows = s.records().await;
    let refused: Vec<_> = rows.iter().filter(|r| r.http_status == 429).collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|r| r.status == "error" && r.error.as_deref().is_some_and(|e| e.contains("budget")))
    );
    let either = rows.iter().rev().find(|r| r.route_alias.as_deref() == Some("either")).unwrap();
    assert_eq!(either.model.as_deref(), Some("deepseek-chat"));
    let skipped = either.attempts[0]["error"].as_str().unwrap();
    assert!(skipped.starts_with("skipped: oa has spent its daily budget"), "{skipped}");
    s.mock.shutdown().await;
    s.app.stop().await;
}

#[tokio::test]
async fn provider_keys_record_when_they_were_last_used() {
    let s = setup().await;
    let oa = s.provider_id("oa").await;
    // Set up syncing the models used the key already.
    let before = s.app.state.providers.detail(oa).await.unwrap().keys[0].last_used_at.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let asked = chrono::Utc::now();
    assert_eq!(s.chat("oa/gpt-4o-mini").await.0, 200);
    s.app.state.gateway.flush_key_use().await;
    let used = s.app.state.providers.detail(oa).await.unwrap().keys[0].last_used_at.unwrap();
    assert!(used >= asked && used > before, "the gateway's use is recorded: {before} -> {used}");
    s.mock.shutdown().await;
    s.app.stop().await;
}
