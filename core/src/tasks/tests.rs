//! The task service on SQLite: the queue, leases, history pages and live output. The HTTP surface and
//! PostgreSQL with several workers are tested in `server/tests/api/tasks.rs`.

use std::collections::BTreeMap;

use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter};

use super::*;
use crate::config::{Config, Sources};

const REGISTRY: &str = "\
guilds:
  - id: test
    toolbelt:
      - id: echo
        command: 'printf \"%s\\n\" \"$GOBLIN_TASK\"; echo to-stderr >&2'
      - id: slow
        command: 'echo started; exec sleep 30'
      - id: boom
        command: 'echo going; exit 7'
      - id: danger
        command: 'echo careful'
        safe: false
";

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    db: DatabaseConnection,
    svc: Arc<TaskService>,
    settings: Arc<Settings>,
}

async fn fixture(extra: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("goblins.yaml"), REGISTRY).unwrap();
    let mut env: BTreeMap<String, String> = [
        ("DATABASE_URL".to_string(), format!("sqlite://{}?mode=rwc", dir.path().join("goblin.db").display())),
        ("GOBLIN_DATA_DIR".to_string(), dir.path().display().to_string()),
        ("GOBLIN_REGISTRY".to_string(), dir.path().join("goblins.yaml").display().to_string()),
        ("GOBLIN_TASK_LEASE_MS".to_string(), "600".to_string()),
        ("GOBLIN_TASK_POLL_MS".to_string(), "50".to_string()),
        ("GOBLIN_TASK_KILL_GRACE_MS".to_string(), "200".to_string()),
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
    ]
    .into_iter()
    .collect();
    for (k, v) in extra {
        env.insert((*k).to_string(), (*v).to_string());
    }
    let config = Config::load(&Sources { file: None, env }).unwrap();
    let db = crate::db::connect(&config.database).await.unwrap();
    crate::db::migrate_up(&db).await.unwrap();
    let clock = crate::clock::system();
    let settings = Arc::new(Settings::new(db.clone(), clock.clone(), &config));
    let registry = RegistryStore::open(config.tasks.registry.clone(), true, clock.clone()).await;
    let svc =
        TaskService::new(db.clone(), clock, settings.clone(), None, registry, RunConfig::from(&config.tasks));
    Fixture { _dir: dir, config, db, svc, settings }
}

async fn user(db: &DatabaseConnection, name: &str, role: Role) -> Actor {
    let u = crate::users::create_service_account(db, &crate::clock::SystemClock, name, role).await.unwrap();
    Actor { user_id: u.id, role, token_id: None }
}

fn start(goblin: &str, task: &str) -> StartRequest {
    StartRequest { goblin: goblin.into(), task: task.into(), ..Default::default() }
}

async fn lines(svc: &TaskService, id: Uuid) -> Vec<(String, String)> {
    svc.output(id, 0, 1000).await.unwrap().into_iter().map(|l| (l.stream, l.line)).collect()
}

#[tokio::test]
async fn a_queued_task_runs_once_and_its_output_is_kept() {
    let f = fixture(&[]).await;
    let op = user(&f.db, "op", Role::Operator).await;
    let queued = f.svc.start(&op, start("echo", "it's $HOME; `id` && rm -rf / | x")).await.unwrap();
    assert_eq!((queued.status.as_str(), queued.kind.as_deref()), (QUEUED, Some("command")));
    assert_eq!(queued.created_by_name.as_deref(), Some("op"));

    let worker = f.svc.start_worker("w1".into()).await.unwrap();
    let done = f.svc.wait(queued.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!((done.status.as_str(), done.exit_code), (SUCCEEDED, Some(0)), "{done:?}");
    assert_eq!(done.worker_id.as_deref(), Some("w1"));
    assert!(done.started_at.is_some() && done.finished_at.is_some() && done.duration_ms.is_some());
    assert_eq!(
        lines(&f.svc, done.id).await,
        [
            ("stdout".to_string(), "it's $HOME; `id` && rm -rf / | x".to_string()),
            ("stderr".to_string(), "to-stderr".to_string())
        ],
        "the text reached the command verbatim, as data"
    );

    let failed = f.svc.start(&op, start("boom", "")).await.unwrap();
    let failed = f.svc.wait(failed.id, Duration::from_secs(10)).await.unwrap();
    assert_eq!((failed.status.as_str(), failed.exit_code), (FAILED, Some(7)));
    assert_eq!(failed.error.as_deref(), Some("exited with code 7"));
    worker.shutdown().await;
}

#[tokio::test]
async fn claims_never_hand_out_a_task_twice() {
    let f = fixture(&[]).await;
    let op = user(&f.db, "op", Role::Operator).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(f.svc.start(&op, start("echo", &i.to_string())).await.unwrap().id);
    }
    // Four claimers on four connections at once, until the queue is empty.
    let mut claimers = Vec::new();
    for w in 0..4 {
        let db = crate::db::connect(&f.config.database.clone()).await.unwrap();
        claimers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let now = Utc::now();
            while let Some(t) =
                queue::claim(&db, &format!("w{w}"), now, now + chrono::Duration::seconds(30)).await.unwrap()
            {
                got.push(t.id);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    claimed.sort();
    ids.sort();
    assert_eq!(claimed, ids, "every task claimed exactly once");
}

#[tokio::test]
async fn a_lost_worker_fails_its_task_and_a_restarted_one_reconciles() {
    let f = fixture(&[]).await;
    let op = user(&f.db, "op", Role::Operator).await;
    let a = f.svc.start(&op, start("echo", "a")).await.unwrap();
    let b = f.svc.start(&op, start("echo", "b")).await.unwrap();
    let now = Utc::now();
    // A worker that claimed `a` and died: its lease runs out.
    let claimed =
        queue::claim(&f.db, "gone", now, now + chrono::Duration::milliseconds(100)).await.unwrap().unwrap();
    assert_eq!(claimed.id, a.id);
    // A worker that claimed `b` and restarted under the same id.
    queue::claim(&f.db, "again", now, now + chrono::Duration::seconds(60)).await.unwrap().unwrap();

    let reaper = f.svc.spawn_reaper();
    let lost = f.svc.wait(a.id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(lost.status, FAILED);
    assert!(lost.error.as_deref().unwrap().starts_with("worker lost: worker 'gone'"), "{lost:?}");
    reaper.abort();

    let worker = f.svc.start_worker("again".into()).await.unwrap();
    let b = f.svc.view(b.id).await.unwrap();
    assert_eq!(b.status, FAILED);
    assert!(b.error.as_deref().unwrap().contains("the worker restarted"), "{b:?}");
    // Neither was run again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lines(&f.svc, a.id).await.is_empty() && lines(&f.svc, b.id).await.is_empty());
    worker.shutdown().await;
}

#[tokio::test]
async fn cancelling_queued_and_running_tasks() {
    let f = fixture(&[]).await;
    let op = user(&f.db, "op", Role::Operator).await;
    let other = user(&f.db, "other", Role::Operator).await;
    let queued = f.svc.start(&op, start("slow", "")).await.unwrap();
    assert!(matches!(f.svc.cancel(&other, queued.id).await, Err(TaskError::Forbidden(_))));
    let cancelled = f.svc.cancel(&op, queued.id).await.unwrap();
    assert_eq!(cancelled.status, CANCELLED);
    assert!(cancelled.finished);
    assert_eq!(cancelled.error.as_deref(), Some("cancelled by op before it started"));

    let worker = f.svc.start_worker("w".into()).await.unwrap();
    let running = f.svc.start(&op, start("slow", "")).await.unwrap();
    let mut events = f.svc.events(running.id, 0).await.unwrap();
    loop {
        match events.recv().await.unwrap() {
            TaskEvent::Line(l) if l.line == "started" => break,
            _ => {}
        }
    }
    let admin = user(&f.db, "root", Role::Admin).await;
    let t0 = std::time::Instant::now();
    let view = f.svc.cancel(&admin, running.id).await.unwrap();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!((view.status.as_str(), view.finished), (CANCELLED, true), "{view:?}");
    assert_eq!(view.error.as_deref(), Some("cancelled by root"));
    // The follower sees the note and the ending.
    let mut saw_note = false;
    loop {
        match events.recv().await.unwrap() {
            TaskEvent::Line(l) => saw_note |= l.line == "[cancelled by root: stopping the command]",
            TaskEvent::End(end) => {
                assert_eq!(end.status, CANCELLED);
                break;
            }
            TaskEvent::Status(_) => {}
        }
    }
    assert!(saw_note);
    worker.shutdown().await;
}

#[tokio::test]
async fn roles_unsafe_goblins_scripts_and_dry_runs() {
    let f = fixture(&[]).await;
    let viewer = user(&f.db, "v", Role::Viewer).await;
    let op = user(&f.db, "op", Role::Operator).await;
    let admin = user(&f.db, "root", Role::Admin).await;
    assert!(matches!(f.svc.start(&viewer, start("echo", "x")).await, Err(TaskError::Forbidden(_))));
    let e = f.svc.start(&op, start("danger", "x")).await.unwrap_err();
    assert!(matches!(&e, TaskError::Forbidden(m) if m.contains("unsafe")), "{e:?}");
    let e = f.svc.start(&admin, start("danger", "x")).await.unwrap_err();
    assert!(matches!(&e, TaskError::Invalid(m) if m.starts_with("confirm:")), "{e:?}");
    let ok = f.svc.start(&admin, StartRequest { confirm: true, ..start("danger", "x") }).await.unwrap();
    assert_eq!(ok.status, QUEUED);

    let e = f.svc.start(&op, start("nope", "x")).await.unwrap_err();
    assert!(matches!(&e, TaskError::Invalid(m) if m.contains("no goblin 'nope'")), "{e:?}");
    let e = f.svc.start(&op, start("echo", &"x".repeat(MAX_TASK_CHARS + 1))).await.unwrap_err();
    assert!(matches!(&e, TaskError::Invalid(m) if m.starts_with("task: at most")), "{e:?}");

    let script = StartRequest { code: Some("echo from a script".into()), ..start("", "") };
    assert!(matches!(f.svc.start(&op, script.clone()).await, Err(TaskError::Forbidden(_))));
    let e = f.svc.start(&admin, script.clone()).await.unwrap_err();
    assert!(matches!(&e, TaskError::Forbidden(m) if m.contains("tasks.allow_custom_scripts")), "{e:?}");
    f.settings.set(None, keys::TASK_ALLOW_CUSTOM_SCRIPTS, "true").await.unwrap();
    let s = f.svc.start(&admin, script).await.unwrap();
    assert_eq!((s.goblin_id.as_str(), s.kind.as_deref()), (CUSTOM_SCRIPT, Some("script")));

    // A dry run records what would run and runs nothing.
    let marker = f.config.data_dir.join("ran");
    let dry = f.svc.start(&op, StartRequest { dry_run: true, ..start("echo", "hi there") }).await.unwrap();
    assert_eq!((dry.status.as_str(), dry.finished), (DRY_RUN, true));
    let text: Vec<String> = lines(&f.svc, dry.id).await.into_iter().map(|(_, l)| l).collect();
    assert_eq!(text[0], "Dry run: nothing was executed.");
    assert!(text.iter().any(|l| l.starts_with("command: /bin/sh -c 'printf")), "{text:?}");
    assert!(text.iter().any(|l| l == "GOBLIN_TASK: 'hi there'"), "{text:?}");
    assert!(!marker.exists());

    // The audit log has the unsafe run and the refusals.
    let audit = crate::entities::audit_log::Entity::find()
        .filter(crate::entities::audit_log::Column::Action.is_in(["task.started", "task.refused"]))
        .all(&f.db)
        .await
        .unwrap();
    assert_eq!(audit.iter().filter(|a| a.action == "task.started").count(), 2);
    assert_eq!(audit.iter().filter(|a| a.action == "task.refused").count(), 3);
}

#[tokio::test]
async fn history_pages_and_filters() {
    let f = fixture(&[]).await;
    let op = user(&f.db, "op", Role::Operator).await;
    let admin = user(&f.db, "root", Role::Admin).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let who = if i % 2 == 0 { &op } else { &admin };
        let t =
            f.svc.start(who, StartRequest { dry_run: true, ..start("echo", &i.to_string()) }).await.unwrap();
        ids.push(t.id);
    }
    f.svc.start(&op, start("boom", "")).await.unwrap();
    // Same creation time for two rows: the id breaks the tie.
    let same = Utc::now();
    for id in &ids[5..7] {
        tasks::ActiveModel { id: Set(*id), created_at: Set(same), ..Default::default() }
            .update(&f.db)
            .await
            .unwrap();
    }

    let filter = HistoryFilter::parse(Some("echo"), Some("dry_run"), None, None, None).unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = f.svc.history(&filter, cursor, 3).await.unwrap();
        seen.extend(page.tasks.iter().map(|t| t.id));
        match page.next {
            Some(next) => cursor = Some(Cursor::decode(&next).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 7, "no task twice across pages");

    let mine = f
        .svc
        .history(&HistoryFilter { user: Some("op".into()), ..Default::default() }, None, 50)
        .await
        .unwrap();
    assert_eq!(mine.tasks.len(), 5, "four dry runs and one queued");
    let queued = f
        .svc
        .history(&HistoryFilter { status: Some(QUEUED.into()), ..Default::default() }, None, 50)
        .await
        .unwrap();
    assert_eq!(queued.tasks.len(), 1);
    let future = HistoryFilter::parse(None, None, None, Some("2999-01-01T00:00:00Z"), None).unwrap();
    assert!(f.svc.history(&future, None, 50).await.unwrap().tasks.is_empty());
    assert_eq!(f.svc.active().await.unwrap().len(), 1);

    for (args, field) in [
        ((None, Some("done"), None, None, None), "status:"),
        ((None, None, None, Some("yesterday"), None), "from:"),
        ((None, None, None, None, Some("2026-13-01")), "to:"),
    ] {
        let e = HistoryFilter::parse(args.0, args.1, args.2, args.3, args.4).unwrap_err();
        assert!(e.to_string().starts_with(field), "{e}");
    }
    let e = f
        .svc
        .history(&HistoryFilter { user: Some("nobody".into()), ..Default::default() }, None, 5)
        .await
        .unwrap_err();
    assert!(e.to_string().starts_with("user:"), "{e}");
    assert!(Cursor::decode("not-a-cursor").unwrap_err().to_string().starts_with("cursor:"));
}

#[tokio::test]
async fn a_late_reader_gets_all_output_then_the_end() {
    let f = fixture(&[]).await;
    let op = user(&f.db, "op", Role::Operator).await;
    let worker = f.svc.start_worker("w".into()).await.unwrap();
    let t = f.svc.start(&op, start("echo", "one")).await.unwrap();
    f.svc.wait(t.id, Duration::from_secs(10)).await.unwrap();
    let mut rx = f.svc.events(t.id, 0).await.unwrap();
    let mut got = Vec::new();
    while let Some(e) = rx.recv().await {
        got.push(e);
    }
    assert!(matches!(&got[0], TaskEvent::Line(l) if l.line == "one"), "{got:?}");
    assert!(matches!(got.last(), Some(TaskEvent::End(v)) if v.status == SUCCEEDED), "{got:?}");
    // Resuming after the first line gives only the rest.
    let mut rx = f.svc.events(t.id, 1).await.unwrap();
    assert!(matches!(rx.recv().await, Some(TaskEvent::Line(l)) if l.seq == 2));
    assert!(matches!(f.svc.events(Uuid::new_v4(), 0).await, Err(TaskError::NotFound(_))));
    worker.shutdown().await;
}

#[test]
fn cursors_round_trip() {
    let c = Cursor { created_at: Utc::now(), id: Uuid::now_v7() };
    assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
}
