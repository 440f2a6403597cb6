//! Routing through the admin functions: aliases, targets and policies with every validation rule
//! refused by name and nothing stored; aliases that route through the gateway against the mock
//! upstream, with policy edits applied on the next requests; the request log's filters and keyset
//! pages; the page rendered on the server; and viewers kept out.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use goblin_core::entities::{audit_log, provider_policies, routing_providers, routing_requests};
use goblin_mock_upstream::{MockConfig, MockUpstream};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, spawn_app};

const KEY: &str = "sk-routing-test-0123456789abcdefghijkl";

async fn call(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let resp = app.post(path).form(form).send().await.expect("request sent");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

async fn ok(app: &TestApp, path: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = call(app, path, form).await;
    assert_eq!(status, 200, "{path} {form:?}: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

/// A refusal: the status, and a body that says `says`.
async fn refused(app: &TestApp, path: &str, form: &[(&str, &str)], status: u16, says: &str) {
    let (got, body) = call(app, path, form).await;
    assert_eq!(got, status, "{path} {form:?}: {body}");
    let message = match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(o)) => o.values().next().and_then(Value::as_str).unwrap_or_default().to_string(),
        _ => body.clone(),
    };
    assert!(message.contains(says), "{path} {form:?}: {message:?} should say {says:?}");
}

async fn add_provider(app: &TestApp, name: &str, kind: &str, base_url: &str) -> String {
    ok(
        app,
        "/fn/admin/provider-create",
        &[("name", name), ("kind", kind), ("base_url", base_url), ("priority", ""), ("key", KEY)],
    )
    .await
    .as_str()
    .expect("the new id")
    .to_string()
}

async fn overview(app: &TestApp) -> Value {
    ok(app, "/fn/admin/routing-overview", &[]).await
}

fn alias<'a>(overview: &'a Value, name: &str) -> Option<&'a Value> {
    overview["aliases"].as_array().unwrap().iter().find(|a| a["alias"] == name)
}

/// A complete, valid policy form for `alias`, with `over` replacing or adding fields.
fn policy<'a>(alias: &'a str, over: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("alias", alias),
        ("strategy", "priority"),
        ("weight_latency", "0.4"),
        ("weight_cost", "0.3"),
        ("weight_reliability", "0.2"),
        ("weight_bandwidth", "0.1"),
        ("max_retries", "1"),
        ("retry_backoff_ms", "100"),
        ("attempt_timeout_ms", "30000"),
        ("deadline_ms", "120000"),
        ("fallback_enabled", "on"),
        ("breaker_failure_threshold", "5"),
        ("breaker_error_rate", "0.5"),
        ("breaker_window_s", "60"),
        ("breaker_cooldown_s", "30"),
        ("budget", ""),
        ("budget_period", "month"),
        ("budget_action", "refuse"),
    ];
    for (k, v) in over {
        match form.iter_mut().find(|(f, _)| f == k) {
            Some(field) => field.1 = v,
            None => form.push((k, v)),
        }
    }
    form
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.starts_with("routing."))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect()
}

#[tokio::test]
async fn aliases_targets_and_policies_with_every_rule_refused_and_nothing_stored() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let oa = add_provider(&app, "oa", "openai", "http://127.0.0.1:9/v1").await;
    let an = add_provider(&app, "an", "anthropic", "http://127.0.0.1:9/v1").await;

    // An alias is created with its first target; an empty weight is 1, an empty position goes last.
    let add = "/fn/admin/routing-target-add";
    ok(
        &app,
        add,
        &[
            ("alias", "chat-fast"),
            ("provider_id", &oa),
            ("model", "gpt-4o-mini"),
            ("weight", ""),
            ("position", ""),
        ],
    )
    .await;
    ok(
        &app,
        add,
        &[
            ("alias", "chat-fast"),
            ("provider_id", &an),
            ("model", "claude-3-5-haiku-20241022"),
            ("weight", "3"),
            ("position", ""),
        ],
    )
    .await;
    let o = overview(&app).await;
    let a = alias(&o, "chat-fast").expect("the alias is listed");
    assert_eq!(a["has_policy"], false);
    assert_eq!(a["policy"]["strategy"], "priority", "the gateway's default strategy");
    let targets = a["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(
        (targets[0]["provider"].as_str(), targets[0]["weight"].as_i64(), targets[0]["position"].as_i64()),
        (Some("oa"), Some(1), Some(0))
    );
    assert_eq!(
        (targets[1]["provider"].as_str(), targets[1]["weight"].as_i64(), targets[1]["position"].as_i64()),
        (Some("an"), Some(3), Some(10))
    );
    assert_eq!(o["providers"].as_array().unwrap().len(), 2);

    // Every rule for a target, refused with its message; nothing is stored.
    let long_alias = "a".repeat(65);
    let long_model = "m".repeat(129);
    let missing = Uuid::new_v4().to_string();
    let cases: Vec<(&str, &str, &str, &str, &str, u16, &str)> = vec![
        ("Chat", &oa, "m", "", "", 400, "alias: use only lowercase letters, digits"),
        ("chat fast", &oa, "m", "", "", 400, "alias: use only lowercase letters, digits"),
        ("oa/gpt-4o-mini", &oa, "m", "", "", 400, "alias: must not contain '/'"),
        ("", &oa, "m", "", "", 400, "alias: must be 1 to 64 characters"),
        (&long_alias, &oa, "m", "", "", 400, "alias: must be 1 to 64 characters"),
        ("oa", &oa, "m", "", "", 400, "alias: 'oa' is the name of a provider"),
        ("ok-alias", &oa, "", "", "", 400, "model: must be 1 to 128 characters without spaces"),
        ("ok-alias", &oa, "gpt 4o", "", "", 400, "model: must be 1 to 128 characters without spaces"),
        ("ok-alias", &oa, &long_model, "", "", 400, "model: must be 1 to 128 characters"),
        ("ok-alias", &oa, "m", "0", "", 400, "weight: must be a whole number from 1 to 1000"),
        ("ok-alias", &oa, "m", "1001", "", 400, "weight: must be a whole number from 1 to 1000"),
        ("ok-alias", &oa, "m", "heavy", "", 400, "weight: must be a whole number from 1 to 1000"),
        ("ok-alias", &oa, "m", "1", "-1", 400, "position: must be a whole number from 0 to 10000"),
        ("ok-alias", &oa, "m", "1", "10001", 400, "position: must be a whole number from 0 to 10000"),
        ("ok-alias", &missing, "m", "1", "0", 404, "no provider with that id"),
        ("ok-alias", "not-an-id", "m", "1", "0", 404, "is not a valid id"),
        (
            "chat-fast",
            &oa,
            "gpt-4o-mini",
            "1",
            "0",
            400,
            "oa / gpt-4o-mini is already a target of 'chat-fast'",
        ),
    ];
    for (alias, provider, model, weight, position, status, says) in cases {
        let form = [
            ("alias", alias),
            ("provider_id", provider),
            ("model", model),
            ("weight", weight),
            ("position", position),
        ];
        refused(&app, add, &form, status, says).await;
    }
    assert_eq!(routing_providers::Entity::find().count(&app.state.db).await.unwrap(), 2, "nothing stored");

    // Editing a target.
    let first = targets[0]["id"].as_str().unwrap().to_string();
    let update = "/fn/admin/routing-target-update";
    ok(&app, update, &[("id", &first), ("weight", "7"), ("position", "20")]).await;
    let o = overview(&app).await;
    let t = &alias(&o, "chat-fast").unwrap()["targets"];
    assert_eq!(t[1]["id"], first.as_str(), "now second by position");
    assert_eq!((t[1]["weight"].as_i64(), t[1]["enabled"].as_bool()), (Some(7), Some(false)));
    refused(&app, update, &[("id", &first), ("weight", "0"), ("position", "1")], 400, "weight: must be")
        .await;
    refused(&app, update, &[("id", &first), ("weight", "1"), ("position", "x")], 400, "position: must be")
        .await;
    refused(&app, update, &[("id", &missing), ("weight", "1"), ("position", "1")], 404, "no route target")
        .await;
    assert_eq!(overview(&app).await, o, "refused edits change nothing");

    // Policies: saved, then every rule refused with its message and the saved policy unchanged.
    let save = "/fn/admin/routing-policy-save";
    ok(
        &app,
        save,
        &policy(
            "chat-fast",
            &[
                ("strategy", "score"),
                ("weight_latency", "0.25"),
                ("weight_cost", "0.25"),
                ("weight_reliability", "0.25"),
                ("weight_bandwidth", "0.25"),
                ("max_retries", "3"),
                ("budget", "12.50"),
                ("budget_period", "week"),
                ("budget_action", "cheaper"),
            ],
        ),
    )
    .await;
    let o = overview(&app).await;
    let p = &alias(&o, "chat-fast").unwrap()["policy"];
    assert_eq!(alias(&o, "chat-fast").unwrap()["has_policy"], true);
    assert_eq!(
        (p["strategy"].as_str(), p["weight_cost"].as_str(), p["max_retries"].as_str(), p["budget"].as_str()),
        (Some("score"), Some("0.25"), Some("3"), Some("12.5"))
    );
    assert_eq!((p["budget_period"].as_str(), p["budget_action"].as_str()), (Some("week"), Some("cheaper")));
    assert_eq!(p["fallback_enabled"], true);
    let stored = provider_policies::Entity::find().one(&app.state.db).await.unwrap().unwrap();
    assert_eq!(stored.budget_micros, Some(12_500_000));
    assert_eq!(
        stored.score_weights,
        json!({ "latency": 0.25, "cost": 0.25, "reliability": 0.25, "bandwidth": 0.25 })
    );

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("strategy", "random")], "strategy: must be one of priority, weighted, latency, cost, score"),
        (vec![("weight_cost", "1.5")], "score weights: the cost weight must be a number from 0 to 1"),
        (vec![("weight_latency", "-0.1")], "score weights: the latency weight must be a number from 0 to 1"),
        (vec![("weight_bandwidth", "")], "score weights: the bandwidth weight must be a number from 0 to 1"),
        (vec![("weight_latency", "0.5")], "must add up to 1 (±0.01); they add up to 1.1"),
        (vec![("max_retries", "11")], "max retries: must be a whole number from 0 to 10"),
        (vec![("retry_backoff_ms", "60001")], "retry backoff (ms): must be a whole number from 0 to 60000"),
        (
            vec![("attempt_timeout_ms", "99")],
            "attempt timeout (ms): must be a whole number from 100 to 600000",
        ),
        (
            vec![("attempt_timeout_ms", "600001")],
            "attempt timeout (ms): must be a whole number from 100 to 600000",
        ),
        (vec![("deadline_ms", "3600001")], "deadline (ms): must be a whole number from 100 to 3600000"),
        (
            vec![("attempt_timeout_ms", "60000"), ("deadline_ms", "59999")],
            "deadline (ms): must be at least the attempt timeout (60000 ms)",
        ),
        (
            vec![("breaker_failure_threshold", "0")],
            "breaker failure threshold: must be a whole number from 1 to 1000",
        ),
        (
            vec![("breaker_failure_threshold", "1001")],
            "breaker failure threshold: must be a whole number from 1 to 1000",
        ),
        (vec![("breaker_error_rate", "0")], "breaker error rate: must be a number from 0.01 to 1"),
        (vec![("breaker_error_rate", "1.5")], "breaker error rate: must be a number from 0.01 to 1"),
        (vec![("breaker_window_s", "0")], "breaker window (s): must be a whole number from 1 to 3600"),
        (vec![("breaker_window_s", "3601")], "breaker window (s): must be a whole number from 1 to 3600"),
        (vec![("breaker_cooldown_s", "0")], "breaker cooldown (s): must be a whole number from 1 to 3600"),
        (vec![("breaker_cooldown_s", "3601")], "breaker cooldown (s): must be a whole number from 1 to 3600"),
        (vec![("budget", "lots")], "budget: must be an amount of US dollars"),
        (vec![("budget", "1.1234567")], "budget: must be an amount of US dollars"),
        (vec![("budget", "0")], "budget: must be more than 0"),
        (vec![("budget_period", "year")], "budget period: must be one of day, week, month"),
        (vec![("budget_action", "warn")], "budget action: must be one of refuse, cheaper"),
        (vec![("alias", "Chat-Fast")], "alias: use only lowercase letters"),
        (vec![("alias", "an")], "alias: 'an' is the name of a provider"),
    ];
    for (over, says) in cases {
        refused(&app, save, &policy("chat-fast", &over), 400, says).await;
    }
    assert_eq!(overview(&app).await, o, "refused policies change nothing");
    assert_eq!(provider_policies::Entity::find().count(&app.state.db).await.unwrap(), 1);

    // Deletes need the box ticked.
    let second = alias(&o, "chat-fast").unwrap()["targets"][0]["id"].as_str().unwrap().to_string();
    refused(&app, "/fn/admin/routing-target-delete", &[("id", &second)], 400, "tick the box").await;
    ok(&app, "/fn/admin/routing-target-delete", &[("id", &second), ("confirm", "yes")]).await;
    refused(
        &app,
        "/fn/admin/routing-target-delete",
        &[("id", &second), ("confirm", "yes")],
        404,
        "no route target",
    )
    .await;
    assert_eq!(alias(&overview(&app).await, "chat-fast").unwrap()["targets"].as_array().unwrap().len(), 1);
    refused(&app, "/fn/admin/routing-alias-delete", &[("alias", "chat-fast")], 400, "tick the box").await;
    ok(&app, "/fn/admin/routing-alias-delete", &[("alias", "chat-fast"), ("confirm", "yes")]).await;
    refused(
        &app,
        "/fn/admin/routing-alias-delete",
        &[("alias", "chat-fast"), ("confirm", "yes")],
        404,
        "there is no route alias named 'chat-fast'",
    )
    .await;
    assert!(alias(&overview(&app).await, "chat-fast").is_none());
    assert_eq!(routing_providers::Entity::find().count(&app.state.db).await.unwrap(), 0);
    assert_eq!(provider_policies::Entity::find().count(&app.state.db).await.unwrap(), 0);

    // Every change was audited, and nothing else was.
    assert_eq!(
        audit_actions(&app).await,
        [
            "routing.target_added",
            "routing.target_added",
            "routing.target_updated",
            "routing.policy_saved",
            "routing.target_deleted",
            "routing.alias_deleted",
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_viewer_gets_403_everywhere() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("vic", "viewer").await;
    let id = Uuid::new_v4().to_string();
    let calls: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/fn/admin/routing-overview", vec![]),
        ("/fn/admin/routing-health", vec![]),
        ("/fn/admin/routing-log", vec![]),
        (
            "/fn/admin/routing-target-add",
            vec![("alias", "a"), ("provider_id", &id), ("model", "m"), ("weight", ""), ("position", "")],
        ),
        ("/fn/admin/routing-target-update", vec![("id", &id), ("weight", "1"), ("position", "1")]),
        ("/fn/admin/routing-target-delete", vec![("id", &id), ("confirm", "yes")]),
        ("/fn/admin/routing-policy-save", policy("a", &[])),
        ("/fn/admin/routing-alias-delete", vec![("alias", "a"), ("confirm", "yes")]),
    ];
    for (path, form) in calls {
        refused(&app, path, &form, 403, "Forbidden").await;
    }
    assert_eq!(app.get("/admin/routing").await.status(), 403);
    assert!(audit_actions(&app).await.is_empty());
    app.stop().await;
}

/// The model that answered a chat request to `model`, or the status when it failed.
async fn answered_by(app: &TestApp, token: &str, model: &str) -> Result<String, u16> {
    let resp = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(token)
        .json(&json!({ "model": model, "messages": [{ "role": "user", "content": "hello goblins" }] }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    if status == 200 { Ok(body["model"].as_str().unwrap().to_string()) } else { Err(status) }
}

/// Asks until `want` answers (the gateway reloads on a change notification, a moment after the
/// admin function returned); fails after 5 s.
async fn until_answered(app: &TestApp, token: &str, model: &str, want: Result<&str, u16>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = answered_by(app, token, model).await;
        if got.as_deref().map_err(|s| *s) == want {
            return;
        }
        assert!(Instant::now() < deadline, "{model}: still {got:?}, wanted {want:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn an_alias_routes_through_the_gateway_and_policy_edits_apply_at_once() {
    // The periodic reload is an hour away: only the change notifications can make edits visible.
    let app = spawn_app(Backend::Sqlite, &[("GOBLIN_SETTINGS_REFRESH_MS", "3600000")]).await.unwrap();
    let admin = app.sign_in_as("root", "admin").await;
    let mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    let oa = add_provider(&app, "oa", "openai", &mock.base_url("openai")).await;
    let an = add_provider(&app, "an", "anthropic", &mock.base_url("anthropic")).await;
    for id in [&oa, &an] {
        ok(&app, "/fn/admin/models-sync", &[("provider_id", id)]).await;
    }
    let user =
        goblin_core::entities::users::Entity::find_by_id(admin).one(&app.state.db).await.unwrap().unwrap();
    let token = app.state.tokens.issue(&user, "t", &["chat".into()], TimeDelta::days(1), None).await.unwrap();
    let token = token.token.expose().clone();

    assert_eq!(answered_by(&app, &token, "smart").await, Err(404), "no such alias yet");
    let add = "/fn/admin/routing-target-add";
    ok(
        &app,
        add,
        &[
            ("alias", "smart"),
            ("provider_id", &oa),
            ("model", "gpt-4o-mini"),
            ("weight", ""),
            ("position", ""),
        ],
    )
    .await;
    ok(
        &app,
        add,
        &[
            ("alias", "smart"),
            ("provider_id", &an),
            ("model", "claude-3-5-haiku-20241022"),
            ("weight", ""),
            ("position", ""),
        ],
    )
    .await;
    until_answered(&app, &token, "smart", Ok("gpt-4o-mini")).await;
    assert_eq!(
        answered_by(&app, &token, "smart").await.as_deref(),
        Ok("gpt-4o-mini"),
        "priority: position 0"
    );

    // Prices through the providers' model form: the first target becomes the dearer one.
    for (pid, model, price_in, price_out) in
        [(&oa, "gpt-4o-mini", "10", "30"), (&an, "claude-3-5-haiku-20241022", "0.1", "0.5")]
    {
        let page = ok(&app, "/fn/admin/provider", &[("id", pid)]).await;
        let row = page["models"].as_array().unwrap().iter().find(|m| m["model_id"] == model).unwrap().clone();
        ok(
            &app,
            "/fn/admin/model-save",
            &[
                ("provider_id", pid),
                ("id", row["id"].as_str().unwrap()),
                ("model_id", model),
                ("display_name", ""),
                ("cap_chat", "on"),
                ("context_window", ""),
                ("price_in", price_in),
                ("price_out", price_out),
                ("default_params", ""),
            ],
        )
        .await;
    }
    let save = "/fn/admin/routing-policy-save";
    ok(&app, save, &policy("smart", &[("strategy", "cost")])).await;
    until_answered(&app, &token, "smart", Ok("claude-3-5-haiku-20241022")).await;
    for _ in 0..3 {
        assert_eq!(
            answered_by(&app, &token, "smart").await.as_deref(),
            Ok("claude-3-5-haiku-20241022"),
            "cost: the cheaper model first, every time"
        );
    }
    // Back to priority; then the first target disabled.
    ok(&app, save, &policy("smart", &[("strategy", "priority")])).await;
    until_answered(&app, &token, "smart", Ok("gpt-4o-mini")).await;
    let o = overview(&app).await;
    let first = alias(&o, "smart").unwrap()["targets"][0]["id"].as_str().unwrap().to_string();
    ok(&app, "/fn/admin/routing-target-update", &[("id", &first), ("weight", "1"), ("position", "0")]).await;
    until_answered(&app, &token, "smart", Ok("claude-3-5-haiku-20241022")).await;

    // Live health: both targets, circuits closed, requests counted on this instance.
    let health = ok(&app, "/fn/admin/routing-health", &[]).await;
    let rows = health.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{health}");
    for row in rows {
        assert_eq!(row["breaker"], "closed", "{row}");
        assert_eq!(row["aliases"], json!(["smart"]));
        assert!(row["requests"].as_u64().unwrap() >= 1, "{row}");
        assert_eq!(row["error_rate"], 0.0);
        assert!(row["latency_p50_ms"].is_u64(), "{row}");
    }
    // A target that fails opens its circuit (threshold 1), and the health table says so.
    ok(
        &app,
        add,
        &[
            ("alias", "smart"),
            ("provider_id", &oa),
            ("model", "gpt-4o-mini@fail=500"),
            ("weight", ""),
            ("position", "0"),
        ],
    )
    .await;
    ok(&app, save, &policy("smart", &[("breaker_failure_threshold", "1"), ("max_retries", "0")])).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert_eq!(answered_by(&app, &token, "smart").await.as_deref(), Ok("claude-3-5-haiku-20241022"));
        let health = ok(&app, "/fn/admin/routing-health", &[]).await;
        let failing =
            health.as_array().unwrap().iter().find(|h| h["model"] == "gpt-4o-mini@fail=500").cloned();
        if failing.as_ref().is_some_and(|h| h["breaker"] == "open") {
            let h = failing.unwrap();
            assert_eq!(h["error_rate"], 1.0, "{h}");
            break;
        }
        assert!(Instant::now() < deadline, "the circuit opens: {health}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // The request log: this alias's requests, newest first, with names rather than ids.
    assert!(app.state.gateway.records().flush(Duration::from_secs(10)).await);
    let page =
        ok(&app, "/fn/admin/routing-log", &[("model", "claude-3-5-haiku-20241022"), ("limit", "500")]).await;
    let rows = page["rows"].as_array().unwrap();
    assert!(rows.len() >= 5, "{page}");
    for r in rows {
        assert_eq!(
            (r["alias"].as_str(), r["provider"].as_str(), r["caller"].as_str(), r["status"].as_str()),
            (Some("smart"), Some("an"), Some("root"), Some("ok")),
            "{r}"
        );
    }
    let times: Vec<&str> = rows.iter().map(|r| r["time"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    // Deleting the alias: the name stops working.
    ok(&app, "/fn/admin/routing-alias-delete", &[("alias", "smart"), ("confirm", "yes")]).await;
    until_answered(&app, &token, "smart", Err(404)).await;
    assert_eq!(ok(&app, "/fn/admin/routing-health", &[]).await, json!([]), "no targets, no rows");
    mock.shutdown().await;
    app.stop().await;
}

struct LogFixture {
    provider_a: Uuid,
    provider_b: Uuid,
    admin: Uuid,
    ann: Uuid,
    /// Every inserted row, newest first ((created_at, id) descending).
    rows: Vec<routing_requests::Model>,
}

/// 250 rows over 50 seconds, five to a second (the same created_at: ties broken by id), across two
/// providers, three statuses, two models and two callers.
async fn fill_log(app: &TestApp, admin: Uuid) -> LogFixture {
    let provider = |name: &str| goblin_core::providers::ProviderInput {
        name: name.into(),
        kind: "openai".into(),
        base_url: "http://127.0.0.1:9/v1".into(),
        enabled: true,
        ..Default::default()
    };
    let provider_a = app.state.providers.create(None, &provider("pa")).await.unwrap().id;
    let provider_b = app.state.providers.create(None, &provider("pb")).await.unwrap().id;
    let ann = app.sign_in_as_other("ann").await;
    let base = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z").unwrap().with_timezone(&Utc);
    let mut rows: Vec<routing_requests::Model> = (0..250)
        .map(|i: i64| routing_requests::Model {
            id: Uuid::new_v4(),
            created_at: base + TimeDelta::seconds(i / 5),
            user_id: Some(if i % 4 == 0 { ann } else { admin }),
            token_id: None,
            requested_model: "chat-fast".into(),
            route_alias: Some("chat-fast".into()),
            attempts: json!([{ "provider_id": provider_a, "model": "m-a", "status": 200, "latency_ms": 10, "error": null }]),
            provider_id: if i % 50 == 7 { None } else if i % 2 == 0 { Some(provider_a) } else { Some(provider_b) },
            model: Some(if i % 3 == 0 { "m-a" } else { "m-b" }.into()),
            stream: i % 2 == 1,
            status: if i % 10 == 0 {
                "error"
            } else if i % 25 == 1 {
                "cancelled"
            } else {
                "ok"
            }
            .into(),
            http_status: if i % 10 == 0 { 502 } else { 200 },
            ttft_ms: Some(40),
            latency_ms: 100 + i as i32,
            tokens_in: 10,
            tokens_out: 20,
            cost_micros: 1_500 + i,
            error: (i % 10 == 0).then(|| "x".repeat(500)),
        })
        .collect();
    let models: Vec<routing_requests::ActiveModel> = rows
        .iter()
        .cloned()
        .map(|m| routing_requests::ActiveModel {
            id: Set(m.id),
            created_at: Set(m.created_at),
            user_id: Set(m.user_id),
            token_id: Set(m.token_id),
            requested_model: Set(m.requested_model),
            route_alias: Set(m.route_alias),
            attempts: Set(m.attempts),
            provider_id: Set(m.provider_id),
            model: Set(m.model),
            stream: Set(m.stream),
            status: Set(m.status),
            http_status: Set(m.http_status),
            ttft_ms: Set(m.ttft_ms),
            latency_ms: Set(m.latency_ms),
            tokens_in: Set(m.tokens_in),
            tokens_out: Set(m.tokens_out),
            cost_micros: Set(m.cost_micros),
            error: Set(m.error),
        })
        .collect();
    routing_requests::Entity::insert_many(models).exec(&app.state.db).await.unwrap();
    rows.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    LogFixture { provider_a, provider_b, admin, ann, rows }
}

/// Every page of the log for `filter` with `limit` rows a page: the ids in order, and the page sizes.
async fn all_pages(app: &TestApp, filter: &[(&str, &str)], limit: &str) -> (Vec<String>, Vec<usize>) {
    let (mut ids, mut sizes) = (Vec::new(), Vec::new());
    let mut after: Option<String> = None;
    loop {
        let mut form: Vec<(&str, &str)> = filter.to_vec();
        form.push(("limit", limit));
        if let Some(a) = &after {
            form.push(("after", a));
        }
        let page = ok(app, "/fn/admin/routing-log", &form).await;
        let rows = page["rows"].as_array().unwrap();
        sizes.push(rows.len());
        ids.extend(rows.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return (ids, sizes),
        }
        assert!(sizes.len() < 100, "paging ends");
    }
}

fn ids_where(
    rows: &[routing_requests::Model],
    keep: impl Fn(&routing_requests::Model) -> bool,
) -> Vec<String> {
    rows.iter().filter(|r| keep(r)).map(|r| r.id.to_string()).collect()
}

async fn request_log_filters_and_keyset_pages(backend: Backend) {
    let Some(app) = spawn_app(backend, &[]).await else { return };
    let admin = app.sign_in_as("root", "admin").await;
    let f = fill_log(&app, admin).await;

    // All 250, 100 a page: newest first, no duplicates, no gaps.
    let (ids, sizes) = all_pages(&app, &[], "100").await;
    assert_eq!(sizes, [100, 100, 50]);
    assert_eq!(ids, ids_where(&f.rows, |_| true), "{backend:?}: every row once, in (created_at, id) order");

    // Filters narrow, and page through ties and filters alike.
    let (pa, pb, ann, adm) =
        (f.provider_a.to_string(), f.provider_b.to_string(), f.ann.to_string(), f.admin.to_string());
    let from = "2026-11-29T10:00:10";
    let to = "2026-11-29T10:00:20";
    let t = |s: &str| DateTime::parse_from_rfc3339(&format!("{s}Z")).unwrap().with_timezone(&Utc);
    type Keep = Box<dyn Fn(&routing_requests::Model) -> bool>;
    let cases: Vec<(Vec<(&str, &str)>, Keep)> = vec![
        (vec![("provider", &pa)], Box::new(move |r| r.provider_id == Some(f.provider_a))),
        (vec![("provider", &pb)], Box::new(move |r| r.provider_id == Some(f.provider_b))),
        (vec![("status", "error")], Box::new(|r| r.status == "error")),
        (vec![("status", "cancelled")], Box::new(|r| r.status == "cancelled")),
        (vec![("model", "m-a")], Box::new(|r| r.model.as_deref() == Some("m-a"))),
        (vec![("user", &ann)], Box::new(move |r| r.user_id == Some(f.ann))),
        (
            vec![("from", from), ("to", to)],
            Box::new(move |r| r.created_at >= t(from) && r.created_at < t(to)),
        ),
        (vec![("from", "2026-11-29T10:00:45")], Box::new(move |r| r.created_at >= t("2026-11-29T10:00:45"))),
        (vec![("to", "2026-11-29T10:00:03")], Box::new(move |r| r.created_at < t("2026-11-29T10:00:03"))),
        (
            vec![("provider", &pa), ("status", "ok"), ("user", &adm), ("model", "m-b")],
            Box::new(move |r| {
                r.provider_id == Some(f.provider_a)
                    && r.status == "ok"
                    && r.user_id == Some(f.admin)
                    && r.model.as_deref() == Some("m-b")
            }),
        ),
        (vec![("model", "nobody-uses-this")], Box::new(|_| false)),
    ];
    for (filter, keep) in cases {
        let want = ids_where(&f.rows, keep);
        let (got, sizes) = all_pages(&app, &filter, "7").await;
        assert_eq!(got, want, "{backend:?} {filter:?}");
        assert!(
            sizes.iter().rev().skip(1).all(|s| *s == 7),
            "{filter:?}: full pages until the last: {sizes:?}"
        );
        assert!(want.len() < 250, "{filter:?} narrows");
    }

    // What a row shows.
    let page = ok(&app, "/fn/admin/routing-log", &[("status", "error"), ("limit", "1")]).await;
    let r = &page["rows"][0];
    let newest_error = f.rows.iter().find(|r| r.status == "error").unwrap();
    assert_eq!(r["id"], newest_error.id.to_string());
    assert_eq!(r["caller"], if newest_error.user_id == Some(f.ann) { "ann" } else { "root" });
    assert_eq!(r["provider"], if newest_error.provider_id == Some(f.provider_a) { "pa" } else { "pb" });
    assert_eq!((r["attempts"].as_u64(), r["http_status"].as_i64()), (Some(1), Some(502)));
    assert_eq!(r["cost"], goblin_core::providers::format_usd_micros(newest_error.cost_micros));
    assert_eq!(
        r["error"].as_str().unwrap().chars().count(),
        201,
        "truncated to 200 characters and an ellipsis"
    );
    assert!(r["time"].as_str().unwrap().starts_with("2026-11-29 10:00:"), "{r}");

    // Bad input is a 400 that says what is wrong.
    let log = "/fn/admin/routing-log";
    refused(&app, log, &[("after", "not-a-cursor")], 400, "cursor: not a page link of the request log").await;
    refused(&app, log, &[("after", "AAAA")], 400, "cursor:").await;
    refused(&app, log, &[("status", "fine")], 400, "status: must be one of ok, error, cancelled").await;
    refused(&app, log, &[("from", "yesterday")], 400, "from: must be a date and time").await;
    refused(&app, log, &[("from", "2026-11-29T10:00"), ("to", "2026-11-29T09:00")], 400, "to: must be later")
        .await;
    refused(&app, log, &[("provider", "pa")], 400, "provider: not a valid id").await;
    refused(&app, log, &[("limit", "0")], 400, "limit: must be a whole number from 1 to 500").await;
    refused(&app, log, &[("limit", "501")], 400, "limit: must be a whole number from 1 to 500").await;

    // The page renders the log on the server, with its filter and an "older" link (no JavaScript).
    let html = app.get(&format!("/admin/routing?status=ok&provider={pa}")).await.text().await.unwrap();
    let shown = html.matches(r#"data-testid="log-row""#).count();
    assert_eq!(shown, 50, "the first page of 50");
    let older = html.split(r#"data-testid="log-older""#).next().unwrap();
    let href = older.rsplit("href=\"").next().unwrap().split('"').next().unwrap().replace("&amp;", "&");
    assert!(
        href.starts_with("/admin/routing?") && href.contains("status=ok") && href.contains("after="),
        "{href}"
    );
    let next = app.get(&href).await;
    assert_eq!(next.status(), 200);
    let html = next.text().await.unwrap();
    let want = ids_where(&f.rows, |r| r.status == "ok" && r.provider_id == Some(f.provider_a));
    assert!(
        html.contains(&format!(r#"data-id="{}""#, want[50])),
        "the second page starts where the first ended"
    );
    assert!(!html.contains(&format!(r#"data-id="{}""#, want[49])));
    assert!(html.contains(r#"data-testid="log-newest""#));
    let html = app.get("/admin/routing?after=garbage").await.text().await.unwrap();
    assert!(html.contains("cursor: not a page link of the request log"), "a bad link says so");
    app.stop().await;
}

#[tokio::test]
async fn request_log_filters_and_keyset_pages_on_sqlite() {
    request_log_filters_and_keyset_pages(Backend::Sqlite).await;
}

#[tokio::test]
async fn request_log_filters_and_keyset_pages_on_postgres() {
    request_log_filters_and_keyset_pages(Backend::Postgres).await;
}

#[tokio::test]
async fn the_routing_page_renders_on_the_server() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    app.sign_in_as("root", "admin").await;
    let resp = app.get("/admin/routing").await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    assert!(html.contains("<title>Routing · Goblin Assistant</title>"), "{html}");
    assert!(html.contains(r#"data-testid="no-aliases""#));
    assert!(html.contains(r#"href="/admin/routing" aria-current="page""#), "the admin nav marks the page");

    let oa = add_provider(&app, "oa", "openai", "http://127.0.0.1:9/v1").await;
    ok(
        &app,
        "/fn/admin/routing-target-add",
        &[
            ("alias", "chat-fast"),
            ("provider_id", &oa),
            ("model", "gpt-4o-mini"),
            ("weight", ""),
            ("position", ""),
        ],
    )
    .await;
    ok(&app, "/fn/admin/routing-policy-save", &policy("chat-fast", &[("budget", "25")])).await;
    let html = app.get("/admin/routing").await.text().await.unwrap();
    for needle in [
        r#"data-testid="alias-chat-fast""#,
        r#"data-testid="target-oa-gpt-4o-mini""#,
        r#"action="/fn/admin/routing-policy-save""#,
        r#"action="/fn/admin/routing-alias-delete""#,
        r#"name="confirm""#,
        "Budget: $25 per month, then refuse.",
        "the next one is refused (429) or sent to the cheapest targets",
        r#"data-testid="health-oa-gpt-4o-mini""#,
        r#"data-state="closed""#,
        r#"data-testid="log-filter""#,
        r#"data-testid="log-empty""#,
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    app.stop().await;
}
