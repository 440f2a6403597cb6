//! Goblin tasks over HTTP: running command goblins (success, failure, separate streams, the
//! environment, shell metacharacters, dry runs, unsafe goblins, custom scripts), timeouts that kill
//! a whole process group, cancelling, the output limit, live output, agent goblins through the mock
//! upstream, the registry (bad files, reloads), bad input; the Tasks pages as the server renders them
//! and their plain form posts (JavaScript off); and on PostgreSQL, two workers sharing one queue and
//! a `goblin worker` process killed mid-task.

use std::{path::Path, time::Duration};

use goblin_core::{
    tasks::{Actor, StartRequest},
    users::Role,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestDb, goblin_bin, spawn_app_on};

const SECRET: &str = "sk-live-server-secret-4a7f9c";
const DEPLOY_KEY: &str = "deploy-key-value-8c2e11";
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The test registry. `{dir}` is replaced by the data directory.
const REGISTRY: &str = r#"
guilds:
  - id: test
    name: Test guild
    toolbelt:
      - id: echo
        name: Echo
        summary: Prints the task text
        command: 'printf "%s\n" "$GOBLIN_TASK"; echo to-stderr >&2'
      - id: env
        command: env
      - id: fail
        command: 'echo failing; exit 3'
      - id: slow
        command: 'echo "started $$"; exec sleep 60'
      - id: stubborn
        command: "trap '' TERM; sh -c 'trap \"\" TERM; echo grandchild $$; exec sleep 60' & echo child $$; wait"
        timeout_s: 1
      - id: flood
        command: 'i=0; while [ $i -lt 2000 ]; do echo "line $i of the flood"; i=$((i+1)); done'
      - id: touch
        command: 'touch {dir}/side-effect'
      - id: ticker
        command: 'for i in 1 2 3; do echo "tick $i"; sleep 0.3; done'
      - id: needs-key
        command: 'echo "the key is $DEPLOY_KEY"'
        required_env: [DEPLOY_KEY]
      - id: count
        command: 'echo "$GOBLIN_TASK" >> {dir}/runs.log'
      - id: long
        command: 'echo "$$" >> {dir}/long.pids; echo started; exec sleep 60'
      - id: danger
        command: 'echo dangerous'
        safe: false
    members:
      - id: scribe
        title: Scribe
        brain: gpt-4o-mini
        prompt:
          system: You write notes.
      - id: dreamer
        title: Dreamer
        brain: no-such-model
"#;

fn registry_for(dir: &Path) -> String {
    REGISTRY.replace("{dir}", &dir.display().to_string())
}

/// Environment for a server (or worker) running the test registry in `dir`.
fn task_env(dir: &Path) -> Vec<(String, String)> {
    [
        ("GOBLIN_REGISTRY", dir.join("goblins.yaml").display().to_string()),
        ("GOBLIN_TASK_WORKDIR", dir.join("work").display().to_string()),
        ("GOBLIN_TASK_LEASE_MS", "1500".into()),
        ("GOBLIN_TASK_POLL_MS", "100".into()),
        ("GOBLIN_TASK_KILL_GRACE_MS", "300".into()),
        ("GOBLIN_REGISTRY_POLL_MS", "200".into()),
        ("GOBLIN_ENCRYPTION_KEY", ENCRYPTION_KEY.into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".into()),
        ("HOME", dir.display().to_string()),
        ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ("DEPLOY_KEY", DEPLOY_KEY.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A server on `db` with the test registry in its data directory.
async fn spawn_on(db: TestDb, extra: &[(&str, &str)]) -> TestApp {
    let dir = db.data_dir.path().to_path_buf();
    std::fs::write(dir.join("goblins.yaml"), registry_for(&dir)).unwrap();
    let mut env = task_env(&dir);
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_app_on(db, &env).await
}

async fn spawn(extra: &[(&str, &str)]) -> TestApp {
    spawn_on(TestDb::new(Backend::Sqlite).await.unwrap(), extra).await
}

fn dir(app: &TestApp) -> &Path {
    app.db.data_dir.path()
}

async fn post(app: &TestApp, path: &str, body: Value) -> (StatusCode, Value) {
    let resp = app.post(path).json(&body).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let resp = app.get(path).await;
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn run(app: &TestApp, goblin: &str, task: &str) -> String {
    let (status, body) = post(app, "/api/tasks", json!({ "goblin": goblin, "task": task })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    body["id"].as_str().unwrap().to_string()
}

/// GET /api/tasks/{id} once the task has ended.
async fn finished(app: &TestApp, id: &str) -> Value {
    for _ in 0..300 {
        let (status, body) = get(app, &format!("/api/tasks/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["task"]["finished"] == true {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} did not finish within 15 s");
}

/// The output lines of a detail answer on `stream`.
fn lines(detail: &Value, stream: &str) -> Vec<String> {
    detail["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["stream"] == stream)
        .map(|l| l["line"].as_str().unwrap().to_string())
        .collect()
}

/// Running (a zombie left to an init that does not reap orphans counts as gone).
fn alive(pid: i32) -> bool {
    if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().and_then(|s| s.split_whitespace().next()).unwrap_or("X");
    state != "Z" && state != "X"
}

#[tokio::test]
async fn command_goblins_run_with_their_text_as_data_and_a_clean_environment() {
    let app = spawn(&[]).await;
    app.sign_in_as("ops", "operator").await;

    // Success: the text, full of shell metacharacters, reaches the command verbatim and runs nothing.
    let nasty = r#"x"; touch pwned; echo $(id) `uname` && rm -rf / || true > /tmp/x; $HOME ' \n"#;
    let id = run(&app, "echo", nasty).await;
    let d = finished(&app, &id).await;
    let t = &d["task"];
    assert_eq!((t["status"].as_str(), t["exit_code"].as_i64()), (Some("succeeded"), Some(0)), "{d}");
    assert_eq!(lines(&d, "stdout"), [nasty], "stdout holds the text as data");
    assert_eq!(lines(&d, "stderr"), ["to-stderr"], "stderr is kept apart");
    assert!(!dir(&app).join("work/pwned").exists());
    assert!(t["worker_id"].as_str().unwrap().contains("-serve-"), "{t}");
    assert!(t["duration_ms"].is_i64() && t["started_at"].is_string() && t["finished_at"].is_string());
    assert_eq!((t["goblin_name"].as_str(), t["kind"].as_str()), (Some("Echo"), Some("command")));
    assert_eq!(t["created_by_name"], "ops");

    // A failing exit code.
    let d = finished(&app, &run(&app, "fail", "").await).await;
    assert_eq!((d["task"]["status"].as_str(), d["task"]["exit_code"].as_i64()), (Some("failed"), Some(3)));
    assert_eq!(d["task"]["error"], "exited with code 3");
    assert_eq!(lines(&d, "stdout"), ["failing"]);

    // The server's environment is not the command's: a secret in it stays invisible.
    let d = finished(&app, &run(&app, "env", "the task").await).await;
    let env = lines(&d, "stdout");
    assert!(
        !env.iter().any(|l| l.contains(SECRET) || l.starts_with("AWS_") || l.starts_with("DEPLOY_KEY")),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|l| l.starts_with("DATABASE_URL") || l.starts_with("GOBLIN_REGISTRY")),
        "{env:?}"
    );
    let mut names: Vec<&str> = env.iter().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
    names.sort();
    names.retain(|n| !["PWD", "SHLVL", "_"].contains(n));
    assert_eq!(names, ["GOBLIN_TASK", "GOBLIN_TASK_ID", "HOME", "PATH"], "{env:?}");

    // A goblin's required_env is given to it, and its value is kept out of the output.
    let d = finished(&app, &run(&app, "needs-key", "").await).await;
    assert_eq!(lines(&d, "stdout"), ["the key is [redacted]"]);

    // A dry run renders what would run and executes nothing; the real run does.
    let side_effect = dir(&app).join("side-effect");
    let (status, body) =
        post(&app, "/api/tasks", json!({ "goblin": "touch", "task": "t", "dry_run": true })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!((body["status"].as_str(), body["dry_run"].as_bool()), (Some("dry_run"), Some(true)));
    let d = finished(&app, body["id"].as_str().unwrap()).await;
    let text = lines(&d, "system");
    assert_eq!(text[0], "Dry run: nothing was executed.");
    assert!(text.iter().any(|l| l.contains("command: /bin/sh -c 'touch ")), "{text:?}");
    assert!(text.iter().any(|l| l.starts_with("timeout: 300 s")), "{text:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!side_effect.exists(), "a dry run executed the command");
    finished(&app, &run(&app, "touch", "").await).await;
    assert!(side_effect.exists(), "the real run did");

    // Lists: nothing active, everything in the history, newest first, filterable.
    let (_, active) = get(&app, "/api/tasks/active").await;
    assert_eq!(active["tasks"].as_array().unwrap().len(), 0);
    let (_, page) = get(&app, "/api/tasks?limit=2").await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(page["tasks"][0]["goblin_id"], "touch");
    let next = page["next"].as_str().unwrap();
    let (_, page2) = get(&app, &format!("/api/tasks?limit=2&cursor={next}")).await;
    assert_eq!(page2["tasks"][0]["goblin_id"], "needs-key");
    let (_, failed) = get(&app, "/api/tasks?status=failed").await;
    assert_eq!(failed["tasks"].as_array().unwrap().len(), 1);
    let (_, by_ops) = get(&app, "/api/tasks?user=ops&goblin=echo").await;
    assert_eq!(by_ops["tasks"].as_array().unwrap().len(), 1);

    // Re-run makes a new task with the same goblin and text.
    let (status, again) = post(&app, &format!("/api/tasks/{id}/rerun"), json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{again}");
    assert_ne!(again["id"].as_str(), Some(id.as_str()));
    let d = finished(&app, again["id"].as_str().unwrap()).await;
    assert_eq!(lines(&d, "stdout"), [nasty]);
    app.stop().await;
}

#[tokio::test]
async fn unsafe_goblins_and_custom_scripts_are_for_admins() {
    let app = spawn(&[]).await;
    app.sign_in_as("ops", "operator").await;
    let (status, body) = post(&app, "/api/tasks", json!({ "goblin": "danger", "task": "" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("marked unsafe"), "{body}");
    let (status, _) = post(&app, "/api/tasks", json!({ "code": "echo hi" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let admin = app.sign_in_as("root", "admin").await;
    let (status, body) = post(&app, "/api/tasks", json!({ "goblin": "danger" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().starts_with("confirm:"), "{body}");
    let (status, body) = post(&app, "/api/tasks", json!({ "goblin": "danger", "confirm": true })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let d = finished(&app, body["id"].as_str().unwrap()).await;
    assert_eq!(lines(&d, "stdout"), ["dangerous"]);

    // Custom scripts: off until the setting allows them; then bash with `set -euo pipefail`.
    let (status, body) = post(&app, "/api/tasks", json!({ "code": "echo hi" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"]["message"].as_str().unwrap().contains("tasks.allow_custom_scripts"), "{body}");
    app.state
        .settings
        .set(Some(admin), goblin_core::settings::keys::TASK_ALLOW_CUSTOM_SCRIPTS, "true")
        .await
        .unwrap();
    let script = "echo \"for $GOBLIN_TASK\"; false | true; echo unreachable";
    let (status, body) = post(&app, "/api/tasks", json!({ "code": script, "task": "ada" })).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!((body["goblin_id"].as_str(), body["kind"].as_str()), (Some("custom-script"), Some("script")));
    let d = finished(&app, body["id"].as_str().unwrap()).await;
    assert_eq!(
        (d["task"]["status"].as_str(), d["task"]["exit_code"].as_i64()),
        (Some("failed"), Some(1)),
        "{d}"
    );
    assert_eq!(lines(&d, "stdout"), ["for ada"], "pipefail stopped the script");
    assert_eq!(d["code"], script);
    app.stop().await;
}

#[tokio::test]
async fn a_timeout_kills_the_command_and_everything_it_started() {
    let app = spawn(&[]).await;
    app.sign_in_as("ops", "operator").await;
    let started = std::time::Instant::now();
    let d = finished(&app, &run(&app, "stubborn", "").await).await;
    assert_eq!(d["task"]["status"], "timed_out", "{d}");
    assert_eq!(d["task"]["error"], "timed out after 1 s");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    let pids: Vec<i32> = lines(&d, "stdout")
        .iter()
        .filter_map(|l| l.split_whitespace().nth(1).and_then(|p| p.parse().ok()))
        .collect();
    assert_eq!(pids.len(), 2, "the child and the grandchild printed their pids: {d}");
    for pid in pids {
        assert!(!alive(pid), "process {pid} ignored SIGTERM and survived the timeout");
    }
    assert!(lines(&d, "system")[0].starts_with("[timed out after 1 s"), "{d}");
    app.stop().await;
}

#[tokio::test]
async fn cancelling_a_queued_and_a_running_task() {
    let app = spawn(&[]).await;
    let me = app.sign_in_as("ops", "operator").await;
    app.state
        .settings
        .set(Some(me), goblin_core::settings::keys::TASK_MAX_CONCURRENT_PER_WORKER, "1")
        .await
        .unwrap();
    let running = run(&app, "slow", "").await;
    let queued = run(&app, "slow", "").await;
    // The first runs; the second waits behind it (one task at a time per worker).
    let mut pid = 0;
    for _ in 0..100 {
        let (_, d) = get(&app, &format!("/api/tasks/{running}")).await;
        if let Some(line) = lines(&d, "stdout").first() {
            pid = line.trim_start_matches("started ").parse().unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pid > 0 && alive(pid));
    let (_, q) = get(&app, &format!("/api/tasks/{queued}")).await;
    assert_eq!(q["task"]["status"], "queued");

    let (status, view) = post(&app, &format!("/api/tasks/{queued}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!((view["status"].as_str(), view["finished"].as_bool()), (Some("cancelled"), Some(true)));
    assert_eq!(view["error"], "cancelled by ops before it started");

    let (status, view) = post(&app, &format!("/api/tasks/{running}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["status"].as_str(), view["finished"].as_bool()),
        (Some("cancelled"), Some(true)),
        "{view}"
    );
    assert_eq!(view["error"], "cancelled by ops");
    assert!(!alive(pid), "the command's process is gone");

    // Cancelling an ended task changes nothing; someone else's task cannot be cancelled.
    let (status, view) = post(&app, &format!("/api/tasks/{running}/cancel"), json!({})).await;
    assert_eq!((status, view["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    let other = run(&app, "echo", "mine").await;
    app.sign_in_as("other", "operator").await;
    let (status, _) = post(&app, &format!("/api/tasks/{other}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn output_beyond_the_limit_is_dropped_with_a_marker() {
    let app = spawn(&[]).await;
    let me = app.sign_in_as("ops", "operator").await;
    app.state
        .settings
        .set(Some(me), goblin_core::settings::keys::TASK_MAX_OUTPUT_BYTES, "1024")
        .await
        .unwrap();
    let d = finished(&app, &run(&app, "flood", "").await).await;
    assert_eq!(d["task"]["status"], "succeeded", "the command is not stopped, only its output");
    assert_eq!(d["truncated"], true);
    let kept: usize = lines(&d, "stdout").iter().map(|l| l.len() + 1).sum();
    assert!(kept <= 1024, "{kept} bytes kept");
    let system = lines(&d, "system");
    assert!(
        system.iter().any(|l| l.starts_with("[output truncated") && l.contains("1024 bytes")),
        "{system:?}"
    );
    app.stop().await;
}

/// Reads a server-sent event stream until its `end` event (or 15 s), as (event, data) pairs.
async fn sse(app: &TestApp, path: &str) -> Vec<(String, Value)> {
    use futures_util::StreamExt;
    let resp = app.get(path).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if text.contains("event: end") && text.ends_with("\n\n") {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read).await.expect("the stream ended");
    text.split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_string(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

#[tokio::test]
async fn live_output_streams_as_it_is_produced_and_late_readers_get_it_all() {
    let app = spawn(&[]).await;
    app.sign_in_as("ops", "operator").await;
    let id = run(&app, "ticker", "").await;
    let events = sse(&app, &format!("/api/tasks/{id}/events")).await;
    let ticks: Vec<&str> =
        events.iter().filter(|(e, _)| e == "line").map(|(_, d)| d["line"].as_str().unwrap()).collect();
    assert_eq!(ticks, ["tick 1", "tick 2", "tick 3"], "{events:?}");
    let (end, data) = events.last().unwrap();
    assert_eq!((end.as_str(), data["status"].as_str()), ("end", Some("succeeded")));

    // Late: everything so far, then the end. Resuming after line 2 gives line 3 only.
    let late = sse(&app, &format!("/api/tasks/{id}/events")).await;
    assert_eq!(late.iter().filter(|(e, _)| e == "line").count(), 3);
    let resumed = sse(&app, &format!("/api/tasks/{id}/events?after=2")).await;
    let seqs: Vec<i64> =
        resumed.iter().filter(|(e, _)| e == "line").map(|(_, d)| d["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [3]);
    app.stop().await;
}

#[tokio::test]
async fn agent_goblins_answer_through_the_gateway() {
    use goblin_mock_upstream::{MockConfig, MockUpstream};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    const KEY: &str = "sk-tasks-test-0123456789abcdefghijkl";
    let app = spawn(&[]).await;
    let admin = app.sign_in_as("root", "admin").await;
    let mock = MockUpstream::start(MockConfig { keys: vec![KEY.into()] }).await.unwrap();
    let input = goblin_core::providers::ProviderInput {
        name: "oa".into(),
        kind: "openai".into(),
        base_url: mock.base_url("openai"),
        enabled: true,
        ..Default::default()
    };
    let p = app.state.providers.create(Some(admin), &input).await.unwrap();
    app.state.providers.add_key(Some(admin), p.id, "k", KEY, "").await.unwrap();
    app.state.providers.sync_models(Some(admin), p.id).await.unwrap();
    app.state.gateway.reload().await.unwrap();

    let id = run(&app, "scribe", "notes for\nthe week").await;
    let d = finished(&app, &id).await;
    assert_eq!(d["task"]["status"], "succeeded", "{d}");
    assert_eq!(d["task"]["kind"], "agent");
    assert_eq!(lines(&d, "stdout"), ["Mock reply to: notes for", "the week"]);
    let agent = &d["agent"];
    assert_eq!(
        (agent["provider"].as_str(), agent["model"].as_str()),
        (Some("oa"), Some("gpt-4o-mini")),
        "{d}"
    );
    assert_eq!(agent["status"], "done");
    assert!(agent["tokens_out"].as_i64().unwrap() > 0 && agent["tokens_in"].as_i64().unwrap() > 0, "{agent}");
    // The answer is a stream of the task, its text in chunks; the system prompt went upstream.
    let stream_id: uuid::Uuid = agent["stream_id"].as_str().unwrap().parse().unwrap();
    let chunks = goblin_core::entities::stream_chunks::Entity::find()
        .filter(goblin_core::entities::stream_chunks::Column::StreamId.eq(stream_id))
        .all(&app.state.db)
        .await
        .unwrap();
    let text: String = chunks.iter().map(|c| c.content.as_str()).collect();
    assert_eq!(text, "Mock reply to: notes for\nthe week");
    let sent = mock.requests().into_iter().rev().find(|r| r.path.ends_with("/chat/completions")).unwrap();
    let body: Value = serde_json::from_str(&sent.body).unwrap();
    assert_eq!(body["messages"][0]["role"], "system");
    assert!(body["messages"][0]["content"].as_str().unwrap().starts_with("You write notes."));

    // A brain the gateway does not serve falls back to a chat model, and says so.
    let d = finished(&app, &run(&app, "dreamer", "hi").await).await;
    assert_eq!(d["task"]["status"], "succeeded", "{d}");
    assert!(lines(&d, "system")[0].contains("'no-such-model' is not available"), "{d}");
    mock.shutdown().await;
    app.stop().await;
}

#[tokio::test]
async fn the_registry_refuses_bad_files_with_line_and_field_and_reloads_good_ones() {
    let app = spawn(&[]).await;
    app.sign_in_as("ops", "operator").await;
    let (status, body) = get(&app, "/api/tasks/goblins?q=echo").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["guilds"][0]["toolbelt"][0]["id"], "echo");
    assert_eq!(body["guilds"][0]["toolbelt"].as_array().unwrap().len(), 1, "search filters");
    assert!(body["registry"]["error"].is_null());

    // An invalid file: the previous registry stays, and the problem names the line and field.
    let path = dir(&app).join("goblins.yaml");
    std::fs::write(&path, "guilds:\n  - id: test\n    toolbelt:\n      - id: new\n        command: echo\n        timeout_s: soon\n").unwrap();
    let (status, body) = post(&app, "/api/tasks/goblins/reload", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "operators cannot reload: {body}");
    app.sign_in_as("root", "admin").await;
    let (status, body) = post(&app, "/api/tasks/goblins/reload", json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let problem = &body["error"]["problems"][0];
    assert_eq!(
        (problem["line"].as_i64(), problem["field"].as_str()),
        (Some(6), Some("guilds[0].toolbelt[0].timeout_s"))
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("line 6"), "{body}");
    let (_, body) = get(&app, "/api/tasks/goblins").await;
    assert!(body["registry"]["error"]["problems"][0]["message"].as_str().unwrap().contains("whole number"));
    assert_eq!(body["guilds"][0]["toolbelt"][0]["id"], "echo", "the previous registry is still in force");
    let d = finished(&app, &run(&app, "echo", "still works").await).await;
    assert_eq!(lines(&d, "stdout"), ["still works"]);

    // A good file is picked up by the watcher, without a reload or a restart.
    std::fs::write(
        &path,
        "guilds:\n  - id: fresh\n    toolbelt:\n      - id: new\n        command: echo new\n",
    )
    .unwrap();
    let mut seen = false;
    for _ in 0..100 {
        let (_, body) = get(&app, "/api/tasks/goblins").await;
        if body["guilds"][0]["id"] == "fresh" {
            assert!(body["registry"]["error"].is_null(), "{body}");
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "the changed registry was not picked up");
    let (status, body) = post(&app, "/api/tasks", json!({ "goblin": "echo" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx() {
    let app = spawn(&[]).await;
    // Not signed in.
    let (status, body) = post(&app, "/api/tasks", json!({ "goblin": "echo" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = get(&app, "/api/tasks").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A viewer reads but does not run.
    app.sign_in_as("watcher", "viewer").await;
    let (status, _) = get(&app, "/api/tasks/goblins").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = post(&app, "/api/tasks", json!({ "goblin": "echo" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    app.sign_in_as("ops", "operator").await;
    let on = &app;
    let raw = |body: &'static str| async move {
        let resp =
            on.post("/api/tasks").header("content-type", "application/json").body(body).send().await.unwrap();
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap())
    };
    let cases: Vec<(&str, &str)> = vec![
        (r#"{"goblin": "echo", "#, "not valid JSON"),
        (r#"["echo"]"#, "must be a JSON object"),
        (r#"{"goblin": "echo", "priority": 1}"#, "unknown field 'priority'"),
        (r#"{"goblin": 5}"#, "goblin: must be text, not a number"),
        (r#"{"goblin": "echo", "dry_run": "yes"}"#, "dry_run: must be true or false, not text"),
        (r#"{"goblin": "echo", "task": ["a"]}"#, "task: must be text, not a list"),
        (r#"{"goblin": "no-such-goblin"}"#, "goblin: there is no goblin 'no-such-goblin'"),
        (r#"{"task": "x"}"#, "goblin: choose a goblin"),
        (r#"{"goblin": "echo", "code": "ls"}"#, "a script and a goblin cannot be given together"),
    ];
    for (body, expected) in cases {
        let (status, answer) = raw(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    let long = "x".repeat(goblin_core::tasks::MAX_TASK_CHARS + 1);
    let (status, body) = post(&app, "/api/tasks", json!({ "goblin": "echo", "task": long })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"].as_str().unwrap().starts_with("task: at most 16000 characters"),
        "{body}"
    );

    for (path, status) in [
        ("/api/tasks/not-a-uuid", StatusCode::NOT_FOUND),
        ("/api/tasks/00000000-0000-0000-0000-000000000000", StatusCode::NOT_FOUND),
        ("/api/tasks/00000000-0000-0000-0000-000000000000/events", StatusCode::NOT_FOUND),
        ("/api/tasks?status=done", StatusCode::BAD_REQUEST),
        ("/api/tasks?limit=0", StatusCode::BAD_REQUEST),
        ("/api/tasks?limit=abc", StatusCode::BAD_REQUEST),
        ("/api/tasks?cursor=abc", StatusCode::BAD_REQUEST),
        ("/api/tasks?from=yesterday", StatusCode::BAD_REQUEST),
        ("/api/tasks?user=nobody", StatusCode::BAD_REQUEST),
    ] {
        let (got, body) = get(&app, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
    let resp = app
        .client
        .get(app.url("/api/tasks/00000000-0000-0000-0000-000000000000/events"))
        .header("last-event-id", "minus one")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("Last-Event-ID must be the number"));
    let (status, _) = post(&app, "/api/tasks/not-a-uuid/cancel", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A cross-site form post is refused before anything runs.
    let resp =
        app.client.post(app.url("/api/tasks")).json(&json!({ "goblin": "echo" })).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (_, page) = get(&app, "/api/tasks").await;
    assert!(page["tasks"].as_array().unwrap().is_empty(), "nothing was started: {page}");
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_need_the_tasks_run_scope() {
    use sea_orm::EntityTrait;
    let app = spawn(&[]).await;
    use sea_orm::{ActiveModelTrait, IntoActiveModel};
    let bot = app.sign_in_as_other("bot").await;
    let user =
        goblin_core::entities::users::Entity::find_by_id(bot).one(&app.state.db).await.unwrap().unwrap();
    let mut active = user.into_active_model();
    active.role = sea_orm::ActiveValue::Set("operator".into());
    let user = active.update(&app.state.db).await.unwrap();
    let days = chrono::Duration::days(1);
    let run_token = app.state.tokens.issue(&user, "run", &["tasks:run".into()], days, None).await.unwrap();
    let chat_token = app.state.tokens.issue(&user, "chat", &["chat".into()], days, None).await.unwrap();

    let plain = reqwest::Client::new();
    let resp = plain
        .post(app.url("/api/tasks"))
        .bearer_auth(chat_token.token.expose())
        .json(&json!({ "goblin": "echo", "task": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("tasks:run"));
    let resp = plain
        .post(app.url("/api/tasks"))
        .bearer_auth(run_token.token.expose())
        .json(&json!({ "goblin": "echo", "task": "from a token" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let view: Value = resp.json().await.unwrap();
    let id = view["id"].as_str().unwrap();
    let row = goblin_core::entities::tasks::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap())
        .one(&app.state.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.token_id, Some(run_token.id), "the task remembers its token");
    let detail: Value = plain
        .get(app.url(&format!("/api/tasks/{id}")))
        .bearer_auth(run_token.token.expose())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["task"]["id"], id);
    app.stop().await;
}

// ---- PostgreSQL: several workers ----

#[tokio::test]
async fn two_workers_on_one_postgres_run_each_of_200_tasks_exactly_once() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let url = db.url.clone();
    let shared = db.data_dir.path().to_path_buf();
    let a = spawn_on(db, &[]).await;
    // The second instance uses the same database and the same registry file.
    let second = TestDb::new(Backend::Sqlite).await.unwrap();
    let registry = shared.join("goblins.yaml").display().to_string();
    let b = spawn_on(second, &[("DATABASE_URL", url.as_str()), ("GOBLIN_REGISTRY", registry.as_str())]).await;
    let me = a.sign_in_as("ops", "operator").await;
    a.state
        .settings
        .set(Some(me), goblin_core::settings::keys::TASK_MAX_CONCURRENT_PER_WORKER, "8")
        .await
        .unwrap();
    b.state.settings.load().await.unwrap();

    let actor = Actor { user_id: me, role: Role::Operator, token_id: None };
    let mut ids = Vec::new();
    for i in 0..200 {
        let svc = if i % 2 == 0 { &a.state.tasks } else { &b.state.tasks };
        let req = StartRequest { goblin: "count".into(), task: format!("task-{i:03}"), ..Default::default() };
        ids.push(svc.start(&actor, req).await.unwrap().id);
    }
    for id in &ids {
        let view = a.state.tasks.wait(*id, Duration::from_secs(60)).await.unwrap();
        assert_eq!(view.status, "succeeded", "{view:?}");
    }
    let log = std::fs::read_to_string(shared.join("runs.log")).unwrap();
    let mut runs: Vec<&str> = log.lines().collect();
    runs.sort_unstable();
    let expected: Vec<String> = (0..200).map(|i| format!("task-{i:03}")).collect();
    assert_eq!(runs, expected, "every task ran exactly once");
    use sea_orm::{EntityTrait, QuerySelect};
    let workers: Vec<Option<String>> = goblin_core::entities::tasks::Entity::find()
        .select_only()
        .column(goblin_core::entities::tasks::Column::WorkerId)
        .distinct()
        .into_tuple()
        .all(&a.state.db)
        .await
        .unwrap();
    assert_eq!(workers.len(), 2, "both workers took tasks: {workers:?}");
    b.stop().await;
    a.stop().await;
}

/// `goblin worker` as a child process on the test database.
fn worker_process(dir: &Path, db_url: &str, id: &str) -> std::process::Child {
    let mut cmd = std::process::Command::new(goblin_bin());
    cmd.arg("worker").current_dir(dir).env_clear();
    for (k, v) in task_env(dir) {
        cmd.env(k, v);
    }
    cmd.env("DATABASE_URL", db_url)
        .env("GOBLIN_WORKER_ID", id)
        .env("GOBLIN_DATA_DIR", dir.join(format!("data-{id}")))
        .env("GOBLIN_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.spawn().expect("goblin worker starts")
}

#[tokio::test]
async fn a_killed_worker_process_loses_its_task_after_the_lease_and_the_rest_complete() {
    let Some(db) = TestDb::new(Backend::Postgres).await else { return };
    let url = db.url.clone();
    let app = spawn_on(db, &[("GOBLIN_WORKERS", "false")]).await;
    let d = dir(&app).to_path_buf();
    let me = app.sign_in_as("ops", "operator").await;
    let actor = Actor { user_id: me, role: Role::Operator, token_id: None };
    let tasks = &app.state.tasks;

    let mut doomed = worker_process(&d, &url, "worker-b");
    let long =
        tasks.start(&actor, StartRequest { goblin: "long".into(), ..Default::default() }).await.unwrap().id;
    let mut claimed = false;
    for _ in 0..400 {
        let v = tasks.view(long).await.unwrap();
        if v.status == "running" && std::fs::read_to_string(d.join("long.pids")).is_ok_and(|s| !s.is_empty())
        {
            assert_eq!(v.worker_id.as_deref(), Some("worker-b"));
            claimed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(claimed, "worker-b did not start the long task within 20 s");
    doomed.kill().unwrap(); // SIGKILL: no chance to record anything
    doomed.wait().unwrap();

    let mut rest = Vec::new();
    for i in 0..3 {
        let req = StartRequest { goblin: "echo".into(), task: format!("after {i}"), ..Default::default() };
        rest.push(tasks.start(&actor, req).await.unwrap().id);
    }
    let mut survivor = worker_process(&d, &url, "worker-c");
    let lost = tasks.wait(long, Duration::from_secs(30)).await.unwrap();
    assert_eq!(lost.status, "failed", "{lost:?}");
    assert!(lost.error.as_deref().unwrap().starts_with("worker lost: worker 'worker-b'"), "{lost:?}");
    for id in rest {
        let v = tasks.wait(id, Duration::from_secs(30)).await.unwrap();
        assert_eq!((v.status.as_str(), v.worker_id.as_deref()), ("succeeded", Some("worker-c")), "{v:?}");
    }
    // Cancelling here a task that runs in the worker process: the worker stops its command.
    let slow =
        tasks.start(&actor, StartRequest { goblin: "slow".into(), ..Default::default() }).await.unwrap().id;
    let mut pid = 0;
    for _ in 0..200 {
        if let Some(line) = tasks.output(slow, 0, 10).await.unwrap().first() {
            pid = line.line.trim_start_matches("started ").parse().unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(pid > 0 && alive(pid), "worker-c did not start the slow task");
    let cancelled = tasks.cancel(&actor, slow).await.unwrap();
    assert_eq!((cancelled.status.as_str(), cancelled.finished), ("cancelled", true), "{cancelled:?}");
    assert!(!alive(pid), "the worker process stopped the command");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = std::fs::read_to_string(d.join("long.pids")).unwrap();
    assert_eq!(pids.lines().count(), 1, "the lost task was never run again");

    // The orphaned command of the killed worker, and the survivor.
    if let Ok(pid) = pids.trim().parse::<i32>() {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(survivor.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = survivor.wait();
    app.stop().await;
}

// ---- the pages ----

/// A page's status and HTML; `path` may be a whole URL (a redirect back to a page).
async fn page(app: &TestApp, path: &str) -> (StatusCode, String) {
    let url = if path.starts_with("http") { path.to_string() } else { app.url(path) };
    let resp = app.client.get(url).send().await.unwrap();
    let status = resp.status();
    (status, resp.text().await.unwrap())
}

/// A plain form post as a browser without JavaScript sends it from `from`: the status and where it
/// is redirected to.
async fn form_post(app: &TestApp, path: &str, from: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
    let resp = app
        .post(path)
        .header("accept", "text/html")
        .header("referer", app.url(from))
        .form(form)
        .send()
        .await
        .unwrap();
    let location =
        resp.headers().get("location").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (resp.status(), location)
}

/// The task id of a `/tasks/{id}` redirect.
fn task_of(location: &str) -> String {
    location.strip_prefix("/tasks/").unwrap_or_else(|| panic!("not a task page: {location}")).to_string()
}

/// Page text with the quotes and ampersands HTML escapes, as a person reads it.
fn unescape(html: &str) -> String {
    html.replace("&#39;", "'").replace("&#x27;", "'").replace("&quot;", "\"").replace("&amp;", "&")
}

fn rows(html: &str) -> usize {
    html.matches(r#"data-testid="task-row""#).count()
}

/// The stream of the output line holding `text`.
fn stream_of<'a>(html: &'a str, text: &str) -> Option<&'a str> {
    let at = html.find(text)?;
    let start = html[..at].rfind(r#"data-stream=""#)? + r#"data-stream=""#.len();
    html[start..].split('"').next()
}

/// The `href` of the link with this test id, unescaped.
fn link(html: &str, testid: &str) -> String {
    let at = html.find(&format!(r#"data-testid="{testid}""#)).unwrap_or_else(|| panic!("no {testid}"));
    let start = html[..at].rfind(r#"href=""#).unwrap() + r#"href=""#.len();
    html[start..].split('"').next().unwrap().replace("&amp;", "&")
}

#[tokio::test]
async fn the_tasks_page_shows_the_registry_the_queue_and_the_history() {
    let app = spawn(&[]).await;
    let me = app.sign_in_as("ops", "operator").await;

    // Nothing has run yet.
    let (status, html) = page(&app, "/tasks").await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        "<title>Tasks · Goblin Assistant</title>",
        r#"href="/tasks""#,
        "Test guild",
        r#"data-testid="goblin-echo""#,
        r#"data-testid="goblin-scribe""#,
        r#"action="/fn/tasks/start""#,
        r#"name="goblin" value="echo""#,
        r#"name="dry_run" value="yes""#,
        r#"data-testid="queue-empty""#,
        "No tasks yet.",
        r#"data-testid="history-filter""#,
        r#"name="status""#,
        r#"name="user""#,
        r#"name="from" type="datetime-local""#,
        r#"<option value="echo""#,
        "14 goblins in 1 guild",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    // The unsafe goblin is shown, but its Run button is for admins.
    assert!(html.contains(r#"data-testid="admins-only""#));
    assert!(!html.contains(r#"name="goblin" value="danger""#));
    assert!(!html.contains(r#"data-testid="custom-script""#), "custom scripts are for admins");
    assert!(!html.contains(r#"data-testid="viewer-note""#));

    // Search.
    let (_, html) = page(&app, "/tasks?q=ECHO").await;
    assert!(html.contains(r#"data-testid="goblin-echo""#) && !html.contains(r#"data-testid="goblin-env""#));
    let (_, html) = page(&app, "/tasks?q=zzz").await;
    assert!(html.contains(r#"data-testid="no-match""#), "{html}");

    // A run, a failure, and enough dry runs for a second page of history.
    finished(&app, &run(&app, "echo", "first").await).await;
    finished(&app, &run(&app, "fail", "").await).await;
    let actor = Actor { user_id: me, role: Role::Operator, token_id: None };
    for i in 0..goblin_core::tasks::DEFAULT_HISTORY_PAGE {
        let req = StartRequest {
            goblin: "env".into(),
            task: format!("dry {i}"),
            dry_run: true,
            ..Default::default()
        };
        app.state.tasks.start(&actor, req).await.unwrap();
    }
    let (_, html) = page(&app, "/tasks").await;
    assert_eq!(rows(&html), 50, "one page of history, nothing queued");
    assert!(!html.contains(r#"data-testid="history-newest""#));
    let (_, older) = page(&app, &link(&html, "history-older")).await;
    assert_eq!(rows(&older), 2);
    assert!(older.contains(r#"data-status="failed""#) && older.contains(r#"data-status="succeeded""#));
    assert!(
        older.contains(r#"data-testid="history-newest""#)
            && !older.contains(r#"data-testid="history-older""#)
    );

    // Filters: status, goblin and user, and times as a datetime-local input sends them.
    let (_, html) = page(&app, "/tasks?status=succeeded").await;
    assert_eq!(rows(&html), 1);
    assert!(html.contains(r#"<option value="succeeded" selected"#), "the filter stays chosen");
    let (_, html) =
        page(&app, "/tasks?goblin=fail&user=ops&from=2020-01-01T00%3A00&to=2999-01-01T00%3A00%3A00").await;
    assert_eq!(rows(&html), 1, "{html}");
    assert!(html.contains("Clear filters"));
    let (_, html) = page(&app, "/tasks?from=2999-01-01T00%3A00").await;
    assert!(html.contains("No tasks match."));

    // A bad filter is named.
    for (query, message) in [
        ("status=done", "status: 'done' is not one of"),
        ("from=yesterday", "from: 'yesterday' is not a time"),
        ("user=nobody", "user: there is no user 'nobody'"),
        ("cursor=nope", "cursor: not a page link"),
    ] {
        let (_, html) = page(&app, &format!("/tasks?{query}")).await;
        assert!(html.contains(r#"data-testid="history-error""#), "{query}");
        assert!(unescape(&html).contains(message), "{query}: {message}");
    }
    app.stop().await;
}

#[tokio::test]
async fn viewers_look_but_get_no_run_buttons() {
    let app = spawn(&[]).await;
    app.sign_in_as("ops", "operator").await;
    let id = run(&app, "echo", "hello").await;
    finished(&app, &id).await;
    app.sign_in_as("watcher", "viewer").await;
    let (_, html) = page(&app, "/tasks").await;
    assert!(html.contains(r#"data-testid="viewer-note""#));
    assert!(html.contains(r#"data-testid="goblin-echo""#), "the registry is shown");
    assert!(!html.contains(r#"action="/fn/tasks/start""#), "no run forms");
    assert!(!html.contains(r#"data-testid="admins-only""#));
    assert_eq!(rows(&html), 1, "the history is shown");
    let (status, html) = page(&app, &format!("/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"data-testid="output-line""#));
    assert!(!html.contains(r#"action="/fn/tasks/rerun""#) && !html.contains(r#"action="/fn/tasks/cancel""#));
    // And the functions refuse a viewer, whatever the page shows.
    let (status, _) = form_post(&app, "/fn/tasks/start", "/tasks", &[("goblin", "echo"), ("task", "")]).await;
    assert_eq!(status, StatusCode::FOUND);
    let resp = app
        .post("/fn/tasks/start")
        .header("accept", "application/json")
        .form(&[("goblin", "echo"), ("task", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(resp.text().await.unwrap().contains("viewers can read tasks but not start them"));
    let (_, history) = get(&app, "/api/tasks").await;
    assert_eq!(history["tasks"].as_array().unwrap().len(), 1, "nothing was started");
    app.stop().await;
}

#[tokio::test]
async fn admins_confirm_unsafe_goblins_and_see_custom_scripts_only_when_allowed() {
    let app = spawn(&[]).await;
    let admin = app.sign_in_as("root", "admin").await;
    let (_, html) = page(&app, "/tasks").await;
    assert!(html.contains(r#"name="goblin" value="danger""#));
    assert!(html.contains(r#"name="confirm" value="yes" required"#), "an explicit confirmation box");
    assert!(html.contains("formnovalidate"), "a dry run needs no confirmation");
    assert!(!html.contains(r#"data-testid="custom-script""#), "the setting is off");
    assert!(html.contains(r#"data-testid="reload-form""#));

    app.state
        .settings
        .set(Some(admin), goblin_core::settings::keys::TASK_ALLOW_CUSTOM_SCRIPTS, "true")
        .await
        .unwrap();
    let (_, html) = page(&app, "/tasks").await;
    assert!(html.contains(r#"data-testid="custom-script""#) && html.contains(r#"name="code""#));

    // A script through the form, and the unsafe goblin with and without its confirmation.
    let (status, location) = form_post(
        &app,
        "/fn/tasks/start",
        "/tasks",
        &[("goblin", ""), ("task", "ada"), ("code", "echo \"hi $GOBLIN_TASK\"")],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    let (_, html) = page(&app, &location).await;
    assert!(html.contains(r#"data-testid="task-code""#) && html.contains("hi ada"), "{html}");
    let (status, back) =
        form_post(&app, "/fn/tasks/start", "/tasks", &[("goblin", "danger"), ("task", "")]).await;
    assert_eq!(status, StatusCode::FOUND);
    let (_, html) = page(&app, &back).await;
    assert!(unescape(&html).contains("confirm: 'danger' is marked unsafe"), "{html}");
    let (_, location) = form_post(
        &app,
        "/fn/tasks/start",
        "/tasks",
        &[("goblin", "danger"), ("task", ""), ("confirm", "yes")],
    )
    .await;
    let d = finished(&app, &task_of(&location)).await;
    assert_eq!(lines(&d, "stdout"), ["dangerous"]);
    // Its page asks again before a re-run.
    let (_, html) = page(&app, &location).await;
    assert!(html.contains(r#"data-testid="rerun-confirm""#));
    app.stop().await;
}

#[tokio::test]
async fn an_empty_registry_and_no_history_still_render() {
    let app = spawn(&[]).await;
    app.sign_in_as("root", "admin").await;
    std::fs::write(dir(&app).join("goblins.yaml"), "").unwrap();
    let resp =
        app.post("/fn/tasks/registry-reload").header("accept", "application/json").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{}", resp.text().await.unwrap());
    let (status, html) = page(&app, "/tasks").await;
    assert_eq!(status, StatusCode::OK);
    for needle in [
        r#"data-testid="no-goblins""#,
        r#"data-testid="queue-empty""#,
        "No tasks yet.",
        "0 goblins in 0 guilds",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    // A file with mistakes is refused, naming the line and field; the page lists the problems.
    std::fs::write(
        dir(&app).join("goblins.yaml"),
        "guilds:\n  - id: g\n    toolbelt:\n      - id: x\n        command: echo\n        timeout_s: soon\n",
    )
    .unwrap();
    let resp =
        app.post("/fn/tasks/registry-reload").header("accept", "application/json").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("line 6"));
    let (_, html) = page(&app, "/tasks").await;
    assert!(
        html.contains(r#"data-testid="registry-problems""#)
            && html.contains("guilds[0].toolbelt[0].timeout_s")
    );

    // An unknown task is a 404 page that says so.
    for path in [format!("/tasks/{}", uuid::Uuid::new_v4()), "/tasks/not-an-id".to_string()] {
        let (status, html) = page(&app, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(html.contains(r#"data-testid="task-missing""#) && html.contains("there is no task with id"));
    }
    app.stop().await;
}

#[tokio::test]
async fn the_task_page_shows_output_status_and_who_ran_it() {
    let app = spawn(&[]).await;
    app.sign_in_as("ops", "operator").await;
    let id = run(&app, "echo", "hello <b>world</b>").await;
    finished(&app, &id).await;
    let (status, html) = page(&app, &format!("/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"data-testid="task-status" data-status="succeeded""#), "{html}");
    assert!(html.contains("hello &lt;b&gt;world&lt;/b&gt;"), "the output is text, never markup");
    assert_eq!(stream_of(&html, "to-stderr"), Some("stderr"));
    assert_eq!(stream_of(&html, "hello &lt;b&gt;world&lt;/b&gt;</span>"), Some("stdout"));
    for needle in [
        r#"<dd data-testid="exit-code">0"#,
        r#"<dd data-testid="run-by">ops"#,
        r#"data-testid="duration""#,
        r#"action="/fn/tasks/rerun""#,
        r#"<h1"#,
        "Echo",
    ] {
        assert!(html.contains(needle), "missing {needle}");
    }
    assert!(!html.contains(r#"action="/fn/tasks/cancel""#), "it has ended");
    assert!(!html.contains(r#"data-testid="refresh""#));
    assert!(!html.contains("http-equiv=\"refresh\""));

    // A running task: its output so far, a Refresh link and a self-refresh for browsers without
    // JavaScript, and Cancel.
    let slow = run(&app, "slow", "").await;
    for _ in 0..100 {
        if !lines(&get(&app, &format!("/api/tasks/{slow}")).await.1, "stdout").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, html) = page(&app, &format!("/tasks/{slow}")).await;
    assert!(html.contains(r#"data-testid="task-status" data-status="running""#), "{html}");
    assert!(html.contains("started "), "the output so far");
    assert!(html.contains(r#"data-testid="refresh""#) && html.contains("http-equiv=\"refresh\""));
    assert!(html.contains(r#"action="/fn/tasks/cancel""#));
    let (_, home) = page(&app, "/tasks").await;
    assert!(
        home.contains(r#"data-testid="queue-table""#) && home.contains(&format!(r#"href="/tasks/{slow}""#))
    );
    // The queue shows a running task's latest output too.
    assert!(home.contains(&format!(r#"data-testid="task-tail" data-id="{slow}""#)), "{home}");
    assert!(home.contains("started "), "its latest lines");
    let (status, _) = post(&app, &format!("/api/tasks/{slow}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn plain_forms_start_dry_run_cancel_and_rerun_and_refusals_name_the_field() {
    let app = spawn(&[]).await;
    app.sign_in_as("ops", "operator").await;

    // Start: the post waits for a quick task, then shows its page with how it ended.
    let (status, location) =
        form_post(&app, "/fn/tasks/start", "/tasks", &[("goblin", "echo"), ("task", "from a form")]).await;
    assert_eq!(status, StatusCode::FOUND);
    let first = task_of(&location);
    let (_, html) = page(&app, &location).await;
    assert!(html.contains(r#"data-status="succeeded""#) && html.contains("from a form"), "{html}");

    // Dry run: the rendered command, and nothing runs.
    let (status, location) = form_post(
        &app,
        "/fn/tasks/start",
        "/tasks",
        &[("goblin", "touch"), ("task", "t"), ("dry_run", "yes")],
    )
    .await;
    assert_eq!(status, StatusCode::FOUND);
    let (_, html) = page(&app, &location).await;
    assert!(html.contains(r#"data-testid="task-status" data-status="dry_run""#), "{html}");
    assert!(unescape(&html).contains("command: /bin/sh -c 'touch "), "{html}");
    assert_eq!(stream_of(&html, "Dry run: nothing was executed."), Some("system"));
    assert!(html.contains("Dry run again"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!dir(&app).join("side-effect").exists(), "a dry run executed the command");

    // Cancel goes back to the task's page, which shows it cancelled.
    let slow = run(&app, "slow", "").await;
    let page_of_slow = format!("/tasks/{slow}");
    let (status, back) = form_post(&app, "/fn/tasks/cancel", &page_of_slow, &[("id", slow.as_str())]).await;
    assert_eq!((status, back.trim_end_matches('?')), (StatusCode::FOUND, app.url(&page_of_slow).as_str()));
    let (_, html) = page(&app, &back).await;
    assert!(html.contains(r#"data-testid="task-status" data-status="cancelled""#), "{html}");
    assert!(html.contains("cancelled by ops") && !html.contains(r#"action="/fn/tasks/cancel""#));

    // Re-run makes a new task and shows it.
    let (status, location) =
        form_post(&app, "/fn/tasks/rerun", &format!("/tasks/{first}"), &[("id", first.as_str())]).await;
    assert_eq!(status, StatusCode::FOUND);
    let again = task_of(&location);
    assert_ne!(again, first);
    assert_eq!(lines(&finished(&app, &again).await, "stdout"), ["from a form"]);

    // Refusals come back to the page they were sent from, naming the field.
    let long = "x".repeat(goblin_core::tasks::MAX_TASK_CHARS + 1);
    for (form, message) in [
        (vec![("goblin", "no-such-goblin"), ("task", "")], "goblin: there is no goblin"),
        (vec![("goblin", "echo"), ("task", long.as_str())], "task: at most 16000 characters"),
        (vec![("goblin", ""), ("task", "")], "goblin: choose a goblin"),
        (
            vec![("goblin", "danger"), ("task", ""), ("confirm", "yes")],
            "is marked unsafe: only admins can run it",
        ),
        (vec![("goblin", ""), ("task", ""), ("code", "ls")], "only admins can run custom scripts"),
    ] {
        let (status, back) = form_post(&app, "/fn/tasks/start", "/tasks", &form).await;
        assert_eq!(status, StatusCode::FOUND, "{message}");
        assert!(back.starts_with(&app.url("/tasks?")), "{back}");
        let (_, html) = page(&app, &back).await;
        let text = unescape(&html);
        let shown = text.split(r#"data-testid="start-error""#).nth(1).unwrap_or_default();
        assert!(shown.split("</p>").next().unwrap().contains(message), "{message}: {shown:.300}");
    }
    let (_, back) = form_post(&app, "/fn/tasks/rerun", "/tasks", &[("id", "not-an-id")]).await;
    assert!(back.contains("__err"));
    app.sign_in_as("other", "operator").await;
    let another = run(&app, "slow", "").await;
    app.sign_in_as("ops2", "operator").await;
    let from = format!("/tasks/{another}");
    let (_, back) = form_post(&app, "/fn/tasks/cancel", &from, &[("id", another.as_str())]).await;
    let (_, html) = page(&app, &back).await;
    assert!(
        unescape(&html).contains("only the person who started a task, or an admin, can cancel it"),
        "{html}"
    );

    // Called in place (hydrated), the functions answer JSON with the status of a refusal.
    let call = |form: Vec<(&'static str, String)>| {
        app.post("/fn/tasks/start").header("accept", "application/json").form(&form).send()
    };
    let resp = call(vec![("goblin", "echo".into()), ("task", "json".into())]).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    let resp = call(vec![("goblin", "nope".into()), ("task", String::new())]).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = call(vec![("goblin", "danger".into()), ("task", String::new())]).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    app.sign_in_as("root", "admin").await;
    let (status, _) = post(&app, &format!("/api/tasks/{another}/cancel"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    app.stop().await;
}
