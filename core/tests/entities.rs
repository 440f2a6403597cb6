//! Every entity against the real migrated schema, on SQLite and (when configured) PostgreSQL:
//! insert one row per table through its ActiveModel, read it back, and check the ON DELETE rules.

use chrono::{DateTime, Duration, TimeZone, Utc};
use goblin_core::entities::{
    global_settings, model_configs, provider_credentials, provider_metrics, provider_policies, providers,
    routing_providers, routing_requests, search_collections, search_documents, stream_chunks, streams, tasks,
    users,
};
use migration::MigratorTrait;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, Set,
};
use serde_json::json;
use uuid::Uuid;

/// A fixed instant with microsecond precision: PostgreSQL `timestamptz` keeps microseconds, so
/// `Utc::now()` (nanoseconds) would not compare equal after a round trip.
fn ts(offset_s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, 34, 56).unwrap()
        + Duration::microseconds(123_456)
        + Duration::seconds(offset_s)
}

/// Inserts one row into each of the 14 tables, reads each back, then checks ON DELETE rules.
async fn exercise(db: &DatabaseConnection) {
    migration::Migrator::up(db, None).await.expect("migrations apply");

    // --- users -------------------------------------------------------------------------------
    let user_id = Uuid::new_v4();
    users::ActiveModel {
        id: Set(user_id),
        username: Set("grimble".into()),
        display_name: Set("Grimble the Admin".into()),
        role: Set("admin".into()),
        // status and is_service left to their database defaults.
        created_at: Set(ts(0)),
        updated_at: Set(ts(1)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert user");
    let user = users::Entity::find_by_id(user_id).one(db).await.unwrap().expect("user row");
    assert_eq!(user.username, "grimble");
    assert_eq!(user.role, "admin");
    assert_eq!(user.status, "active", "default status");
    assert!(!user.is_service, "default is_service");
    assert_eq!(user.created_at, ts(0));

    // --- providers ---------------------------------------------------------------------------
    let provider_id = Uuid::new_v4();
    providers::ActiveModel {
        id: Set(provider_id),
        name: Set("openai-main".into()),
        kind: Set("openai".into()),
        base_url: Set(None),
        capabilities: Set(json!(["chat", "embeddings"])),
        created_at: Set(ts(2)),
        updated_at: Set(ts(2)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert provider");
    let provider = providers::Entity::find_by_id(provider_id).one(db).await.unwrap().expect("provider row");
    assert_eq!(provider.base_url, None);
    assert_eq!(provider.capabilities, json!(["chat", "embeddings"]));
    assert!(provider.enabled, "default enabled");
    assert_eq!(provider.priority, 100, "default priority");
    assert_eq!(provider.updated_at, ts(2));

    // --- provider_credentials ----------------------------------------------------------------
    let credential_id = Uuid::new_v4();
    let ciphertext: Vec<u8> = (0u8..=255).chain([0, 0, 255]).collect();
    provider_credentials::ActiveModel {
        id: Set(credential_id),
        provider_id: Set(provider_id),
        label: Set("primary".into()),
        ciphertext: Set(ciphertext.clone()),
        key_id: Set("k2026-11".into()),
        masked: Set("sk-...abcd".into()),
        expires_at: Set(Some(ts(86_400))),
        last_used_at: Set(None),
        created_by: Set(Some(user_id)),
        created_at: Set(ts(3)),
        updated_at: Set(ts(3)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert provider credential");
    let credential = provider_credentials::Entity::find_by_id(credential_id)
        .one(db)
        .await
        .unwrap()
        .expect("credential row");
    assert_eq!(credential.ciphertext, ciphertext);
    assert_eq!(credential.expires_at, Some(ts(86_400)));
    assert_eq!(credential.last_used_at, None);
    assert_eq!(credential.created_by, Some(user_id));
    assert!(credential.enabled, "default enabled");

    // --- model_configs -----------------------------------------------------------------------
    let model_config_id = Uuid::new_v4();
    model_configs::ActiveModel {
        id: Set(model_config_id),
        provider_id: Set(provider_id),
        model_id: Set("gpt-4o-mini".into()),
        display_name: Set("GPT-4o mini".into()),
        capabilities: Set(json!({"chat": true, "vision": true})),
        context_window: Set(None),
        price_in_micros_per_mtok: Set(150_000_000_000),
        default_params: Set(json!({"temperature": 0.7})),
        created_at: Set(ts(4)),
        updated_at: Set(ts(4)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert model config");
    let model_config =
        model_configs::Entity::find_by_id(model_config_id).one(db).await.unwrap().expect("model config row");
    assert_eq!(model_config.context_window, None);
    assert_eq!(model_config.price_in_micros_per_mtok, 150_000_000_000, "i64 beyond i32 range");
    assert_eq!(model_config.price_out_micros_per_mtok, 0, "default price");
    assert_eq!(model_config.default_params, json!({"temperature": 0.7}));
    assert!(!model_config.is_default && !model_config.edited);

    // --- global_settings ---------------------------------------------------------------------
    global_settings::ActiveModel {
        key: Set("ui.theme".into()),
        value: Set(json!({"mode": "dark", "accent": "green"})),
        updated_by: Set(Some(user_id)),
        updated_at: Set(ts(5)),
    }
    .insert(db)
    .await
    .expect("insert global setting");
    let setting = global_settings::Entity::find_by_id("ui.theme".to_owned())
        .one(db)
        .await
        .unwrap()
        .expect("setting row");
    assert_eq!(setting.value, json!({"mode": "dark", "accent": "green"}));
    assert_eq!(setting.updated_by, Some(user_id));
    assert_eq!(setting.updated_at, ts(5));

    // --- routing_providers -------------------------------------------------------------------
    let routing_provider_id = Uuid::new_v4();
    routing_providers::ActiveModel {
        id: Set(routing_provider_id),
        alias: Set("chat-fast".into()),
        provider_id: Set(provider_id),
        model: Set("gpt-4o-mini".into()),
        weight: Set(3),
        created_at: Set(ts(6)),
        updated_at: Set(ts(6)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert routing provider");
    let routing_provider = routing_providers::Entity::find_by_id(routing_provider_id)
        .one(db)
        .await
        .unwrap()
        .expect("routing provider row");
    assert_eq!(routing_provider.alias, "chat-fast");
    assert_eq!(routing_provider.weight, 3);
    assert_eq!(routing_provider.position, 0, "default position");

    // --- provider_policies -------------------------------------------------------------------
    let policy_id = Uuid::new_v4();
    let weights = json!({"latency": 0.4, "cost": 0.3, "reliability": 0.2, "bandwidth": 0.1});
    provider_policies::ActiveModel {
        id: Set(policy_id),
        route_alias: Set("*".into()),
        score_weights: Set(weights.clone()),
        breaker_error_rate: Set(0.25),
        budget_micros: Set(None),
        created_at: Set(ts(7)),
        updated_at: Set(ts(7)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert provider policy");
    let policy = provider_policies::Entity::find_by_id(policy_id).one(db).await.unwrap().expect("policy row");
    assert_eq!(policy.score_weights, weights);
    assert_eq!(policy.breaker_error_rate, 0.25);
    assert_eq!(policy.budget_micros, None);
    assert_eq!(policy.strategy, "priority", "default strategy");
    assert_eq!(policy.deadline_ms, 120_000, "default deadline");
    assert_eq!(policy.budget_period, "month", "default budget period");

    // --- provider_metrics (big auto-increment key) -------------------------------------------
    let metric = provider_metrics::ActiveModel {
        provider_id: Set(provider_id),
        model: Set("gpt-4o-mini".into()),
        minute: Set(ts(60)),
        requests: Set(42),
        latency_p50_ms: Set(Some(180)),
        latency_p95_ms: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert provider metric");
    let metric = provider_metrics::Entity::find_by_id(metric.id).one(db).await.unwrap().expect("metric row");
    assert_eq!(metric.minute, ts(60));
    assert_eq!(metric.requests, 42);
    assert_eq!(metric.latency_p50_ms, Some(180));
    assert_eq!(metric.latency_p95_ms, None);
    assert_eq!(metric.health, "up", "default health");

    // --- routing_requests --------------------------------------------------------------------
    let request_id = Uuid::new_v4();
    let attempts = json!([{
        "provider_id": provider_id.to_string(),
        "model": "gpt-4o-mini",
        "status": "ok",
        "latency_ms": 812,
        "error": null
    }]);
    routing_requests::ActiveModel {
        id: Set(request_id),
        created_at: Set(ts(8)),
        user_id: Set(Some(user_id)),
        token_id: Set(None),
        requested_model: Set("chat-fast".into()),
        route_alias: Set(Some("chat-fast".into())),
        attempts: Set(attempts.clone()),
        provider_id: Set(Some(provider_id)),
        model: Set(Some("gpt-4o-mini".into())),
        stream: Set(true),
        status: Set("ok".into()),
        http_status: Set(200),
        ttft_ms: Set(None),
        latency_ms: Set(812),
        tokens_in: Set(12),
        tokens_out: Set(34),
        cost_micros: Set(56),
        error: Set(None),
    }
    .insert(db)
    .await
    .expect("insert routing request");
    let request =
        routing_requests::Entity::find_by_id(request_id).one(db).await.unwrap().expect("routing request row");
    assert_eq!(request.created_at, ts(8));
    assert_eq!(request.attempts, attempts);
    assert_eq!(request.user_id, Some(user_id));
    assert_eq!(request.ttft_ms, None);
    assert_eq!(request.error, None);
    assert!(request.stream);

    // --- tasks -------------------------------------------------------------------------------
    let task_id = Uuid::new_v4();
    tasks::ActiveModel {
        id: Set(task_id),
        goblin_id: Set("disk-janitor".into()),
        task: Set("free space on /var".into()),
        code: Set(None),
        created_by: Set(Some(user_id)),
        created_at: Set(ts(9)),
        started_at: Set(Some(ts(10))),
        duration_ms: Set(Some(5_000_000_000)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert task");
    let task = tasks::Entity::find_by_id(task_id).one(db).await.unwrap().expect("task row");
    assert_eq!(task.status, "queued", "default status");
    assert_eq!(task.code, None);
    assert_eq!(task.started_at, Some(ts(10)));
    assert_eq!(task.finished_at, None);
    assert_eq!(task.duration_ms, Some(5_000_000_000));

    // --- streams -----------------------------------------------------------------------------
    let stream_id = Uuid::new_v4();
    streams::ActiveModel {
        id: Set(stream_id),
        goblin_id: Set(Some("disk-janitor".into())),
        task_id: Set(Some(task_id)),
        user_id: Set(Some(user_id)),
        conversation_id: Set(None),
        provider_id: Set(Some(provider_id)),
        model: Set(Some("gpt-4o-mini".into())),
        tokens_out: Set(7),
        created_at: Set(ts(11)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert stream");
    let stream = streams::Entity::find_by_id(stream_id).one(db).await.unwrap().expect("stream row");
    assert_eq!(stream.status, "streaming", "default status");
    assert_eq!(stream.conversation_id, None);
    assert_eq!(stream.task_id, Some(task_id));
    assert_eq!(stream.created_at, ts(11));

    // --- stream_chunks (big auto-increment key) ----------------------------------------------
    let chunk = stream_chunks::ActiveModel {
        stream_id: Set(stream_id),
        seq: Set(0),
        content: Set("Freed 2.1 GiB ✓".into()),
        token_count: Set(7),
        done: Set(true),
        created_at: Set(ts(12)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert stream chunk");
    let chunk = stream_chunks::Entity::find_by_id(chunk.id).one(db).await.unwrap().expect("chunk row");
    assert_eq!(chunk.content, "Freed 2.1 GiB ✓");
    assert!(chunk.done);
    assert_eq!(chunk.cost_delta_micros, 0, "default cost delta");
    assert_eq!(chunk.created_at, ts(12));

    // --- search_collections ------------------------------------------------------------------
    let collection_id = Uuid::new_v4();
    search_collections::ActiveModel {
        id: Set(collection_id),
        name: Set("runbooks".into()),
        embedding_model: Set(None),
        created_by: Set(Some(user_id)),
        created_at: Set(ts(13)),
        updated_at: Set(ts(13)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert search collection");
    let collection =
        search_collections::Entity::find_by_id(collection_id).one(db).await.unwrap().expect("collection row");
    assert_eq!(collection.description, "", "default description");
    assert_eq!(collection.chunk_size, 512, "default chunk size");
    assert_eq!(collection.chunk_overlap, 64, "default chunk overlap");
    assert_eq!(collection.embedding_model, None);

    // --- search_documents --------------------------------------------------------------------
    let document_id = Uuid::new_v4();
    search_documents::ActiveModel {
        id: Set(document_id),
        collection_id: Set(collection_id),
        title: Set("Restarting the gateway".into()),
        source: Set(None),
        tags: Set(json!(["ops", "gateway"])),
        metadata: Set(json!({"author": "grimble", "rev": 3})),
        content_type: Set("text/markdown".into()),
        content: Set("# Restart\n\n`systemctl restart goblin`".into()),
        created_at: Set(ts(14)),
        updated_at: Set(ts(15)),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("insert search document");
    let document =
        search_documents::Entity::find_by_id(document_id).one(db).await.unwrap().expect("document row");
    assert_eq!(document.source, None);
    assert_eq!(document.metadata, json!({"author": "grimble", "rev": 3}));
    assert_eq!(document.chunk_count, 0, "default chunk count");
    assert_eq!(document.updated_at, ts(15));

    // --- ON DELETE CASCADE: a provider takes its keys and model configs with it ---------------
    providers::Entity::delete_by_id(provider_id).exec(db).await.expect("delete provider");
    assert!(
        provider_credentials::Entity::find_by_id(credential_id).one(db).await.unwrap().is_none(),
        "provider_credentials row must cascade with its provider"
    );
    assert!(
        model_configs::Entity::find_by_id(model_config_id).one(db).await.unwrap().is_none(),
        "model_configs row must cascade with its provider"
    );
    assert!(routing_providers::Entity::find_by_id(routing_provider_id).one(db).await.unwrap().is_none());
    assert_eq!(
        provider_metrics::Entity::find()
            .filter(provider_metrics::Column::ProviderId.eq(provider_id))
            .count(db)
            .await
            .unwrap(),
        0
    );
    // ... while the request log keeps its row with the provider cleared (SET NULL).
    let request = routing_requests::Entity::find_by_id(request_id).one(db).await.unwrap().unwrap();
    assert_eq!(request.provider_id, None);

    // --- ON DELETE SET NULL: the request log outlives the user --------------------------------
    users::Entity::delete_by_id(user_id).exec(db).await.expect("delete user");
    let request = routing_requests::Entity::find_by_id(request_id)
        .one(db)
        .await
        .unwrap()
        .expect("routing request survives its user");
    assert_eq!(request.user_id, None, "routing_requests.user_id must be set to NULL");
    let task = tasks::Entity::find_by_id(task_id).one(db).await.unwrap().unwrap();
    assert_eq!(task.created_by, None);
    let setting = global_settings::Entity::find_by_id("ui.theme".to_owned()).one(db).await.unwrap().unwrap();
    assert_eq!(setting.updated_by, None);
    // A user's chat history (streams, and their chunks) goes with the user.
    assert!(streams::Entity::find_by_id(stream_id).one(db).await.unwrap().is_none());
    assert!(stream_chunks::Entity::find_by_id(chunk.id).one(db).await.unwrap().is_none());

    // --- ON DELETE CASCADE: a collection takes its documents with it --------------------------
    search_collections::Entity::delete_by_id(collection_id).exec(db).await.unwrap();
    assert!(search_documents::Entity::find_by_id(document_id).one(db).await.unwrap().is_none());
}

#[tokio::test]
async fn sqlite_entities_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("goblin.db");
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .expect("open SQLite database");
    exercise(&db).await;
    db.close().await.expect("close SQLite database");
}

#[tokio::test]
async fn postgres_entities_round_trip() {
    let admin_url = match std::env::var("GOBLIN_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but GOBLIN_TEST_PG_URL is not set: the PostgreSQL entity test must \
                     run in CI (e.g. GOBLIN_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres)"
                );
            }
            eprintln!("skipping postgres_entities_round_trip: GOBLIN_TEST_PG_URL is not set");
            return;
        }
    };

    let db_name = format!("goblin_test_{}", Uuid::new_v4().simple());
    let admin = Database::connect(&admin_url).await.expect("connect to GOBLIN_TEST_PG_URL");
    admin.execute_unprepared(&format!("CREATE DATABASE \"{db_name}\"")).await.expect("create test database");

    let mut test_url = url::Url::parse(&admin_url).expect("GOBLIN_TEST_PG_URL is a URL");
    test_url.set_path(&format!("/{db_name}"));

    // Run the body in its own task so the database is dropped even when an assertion fails.
    let outcome = tokio::spawn(async move {
        let db = Database::connect(test_url.as_str()).await.expect("connect to test database");
        exercise(&db).await;
        db.close().await.expect("close test database");
    })
    .await;

    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"))
        .await
        .expect("drop test database");
    admin.close().await.expect("close admin connection");

    match outcome {
        Ok(()) => {}
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => panic!("PostgreSQL test task failed: {err}"),
    }
}
