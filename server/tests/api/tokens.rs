//! API tokens: valid, expired, revoked, bad signature, wrong scope, unknown key, and tokens signed by
//! the previous key after a rotation (valid until they expire). Service level with a hand-moved
//! clock, then over HTTP with the `goblin` command line issuing, revoking and rotating.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use goblin_core::{
    clock::ManualClock,
    crypto::Keyring,
    entities::{audit_log, signing_keys, users},
    tokens::{TokenError, TokenService},
    users::{Role, create_service_account},
};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, Database, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::{
    cli::goblin,
    helpers::{Backend, TestDb, spawn_app},
};

fn scopes(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

/// Replaces one character in the middle of the signature part.
fn tamper_signature(token: &str) -> String {
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut chars: Vec<char> = sig.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    format!("{head}.{}", chars.into_iter().collect::<String>())
}

async fn token_rules(backend: Backend) {
    let Some(test_db) = TestDb::new(backend).await else { return };
    let db = Database::connect(&test_db.url).await.unwrap();
    goblin_core::db::migrate_up(&db).await.unwrap();
    let clock = ManualClock::new(Utc::now());
    let svc = TokenService::new(db.clone(), Arc::new(Keyring::single([9; 32])), Arc::new(clock.clone()));
    svc.ensure_keys().await.unwrap();
    let bot = create_service_account(&db, &clock, "ci-bot", Role::Operator).await.unwrap();

    let issued = svc.issue(&bot, "ci", &scopes(&["chat"]), Duration::hours(1), None).await.unwrap();
    let token = issued.token.expose().clone();

    // Valid, with the scope it has; refused a scope it lacks.
    let ok = svc.verify(&token, Some("chat")).await.unwrap().unwrap();
    assert_eq!((ok.user_id, ok.username.as_str(), ok.token_id), (bot.id, "ci-bot", issued.id));
    assert_eq!(
        svc.verify(&token, Some("tasks:run")).await.unwrap(),
        Err(TokenError::MissingScope("tasks:run".into()))
    );

    // Bad signature; a token forged with another secret under the real kid; an unknown kid; garbage.
    assert_eq!(svc.verify(&tamper_signature(&token), None).await.unwrap(), Err(TokenError::BadSignature));
    let forged = jsonwebtoken::encode(
        &{
            let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
            h.kid = Some(issued.kid.clone());
            h
        },
        &serde_json::json!({"iss": "goblin", "sub": bot.id, "jti": issued.id, "scopes": ["admin"],
                            "iat": 0, "exp": 4_000_000_000i64}),
        &jsonwebtoken::EncodingKey::from_secret(b"not the server's key").unwrap(),
    )
    .unwrap();
    assert_eq!(svc.verify(&forged, None).await.unwrap(), Err(TokenError::BadSignature));
    let (_, rest) = token.split_once('.').unwrap();
    let other_kid = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT","kid":"jwt-nope"}"#);
    assert_eq!(svc.verify(&format!("{other_kid}.{rest}"), None).await.unwrap(), Err(TokenError::UnknownKey));
    assert_eq!(svc.verify("not.a.jwt", None).await.unwrap(), Err(TokenError::Malformed));
    let none_alg = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"x"}"#);
    assert_eq!(svc.verify(&format!("{none_alg}.{rest}"), None).await.unwrap(), Err(TokenError::Malformed));

    // Revoked: refused at once.
    let second = svc.issue(&bot, "to revoke", &scopes(&["chat"]), Duration::hours(1), None).await.unwrap();
    svc.revoke(second.id, None).await.unwrap();
    assert_eq!(svc.verify(second.token.expose(), None).await.unwrap(), Err(TokenError::Revoked));

    // Rotation: the old token keeps working until it expires; new tokens use the promoted standby.
    let long = svc.issue(&bot, "long", &scopes(&["tasks:run"]), Duration::days(10), None).await.unwrap();
    let standby = signing_keys::Entity::find()
        .filter(signing_keys::Column::State.eq("standby"))
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let rotation = svc.rotate(None).await.unwrap();
    assert_eq!(rotation.retired, issued.kid);
    assert_eq!(rotation.current, standby.id);
    assert!(svc.verify(long.token.expose(), Some("tasks:run")).await.unwrap().is_ok());
    let fresh = svc.issue(&bot, "fresh", &scopes(&["chat"]), Duration::days(30), None).await.unwrap();
    assert_eq!(fresh.kid, rotation.current);
    let states: Vec<String> =
        signing_keys::Entity::find().all(&db).await.unwrap().into_iter().map(|k| k.state).collect();
    assert_eq!(states.iter().filter(|s| *s == "current").count(), 1);
    assert_eq!(states.iter().filter(|s| *s == "standby").count(), 1);

    // Expired: an hour later the first token is refused; ten days later the pre-rotation one too.
    clock.advance(Duration::hours(1));
    assert!(matches!(svc.verify(&token, None).await.unwrap(), Err(TokenError::Expired(_))));
    clock.advance(Duration::days(10));
    assert!(matches!(svc.verify(long.token.expose(), None).await.unwrap(), Err(TokenError::Expired(_))));
    assert!(svc.verify(fresh.token.expose(), Some("chat")).await.unwrap().is_ok());

    // The admin scope lasts only while its owner is an admin.
    let boss = create_service_account(&db, &clock, "boss", Role::Admin).await.unwrap();
    let strong = svc.issue(&boss, "admin", &scopes(&["admin"]), Duration::days(1), None).await.unwrap();
    assert!(svc.verify(strong.token.expose(), Some("admin")).await.unwrap().is_ok());
    assert!(
        svc.verify(strong.token.expose(), Some("chat")).await.unwrap().is_ok(),
        "admin implies every scope"
    );
    let mut b: users::ActiveModel =
        users::Entity::find_by_id(boss.id).one(&db).await.unwrap().unwrap().into();
    b.role = Set("viewer".into());
    b.update(&db).await.unwrap();
    // Changed behind the service's back: clear its cache, as the admin functions do after a change
    // (over HTTP in admin.rs).
    svc.forget_cached().await;
    assert_eq!(
        svc.verify(strong.token.expose(), Some("admin")).await.unwrap(),
        Err(TokenError::MissingScope("admin".into()))
    );
    assert_eq!(
        svc.verify(strong.token.expose(), Some("chat")).await.unwrap(),
        Err(TokenError::MissingScope("chat".into()))
    );

    // A disabled user's tokens stop working at once.
    let mut u: users::ActiveModel = users::Entity::find_by_id(bot.id).one(&db).await.unwrap().unwrap().into();
    u.status = Set("disabled".into());
    u.update(&db).await.unwrap();
    svc.forget_cached().await;
    assert_eq!(svc.verify(fresh.token.expose(), None).await.unwrap(), Err(TokenError::UserDisabled));

    // Issuing checks its input.
    assert!(svc.issue(&bot, "x", &scopes(&["root"]), Duration::hours(1), None).await.is_err());
    assert!(svc.issue(&bot, "x", &[], Duration::hours(1), None).await.is_err());

    // The audit log has each event.
    let actions: Vec<String> =
        audit_log::Entity::find().all(&db).await.unwrap().into_iter().map(|a| a.action).collect();
    for a in ["user.created", "token.created", "token.revoked", "keys.rotate_jwt"] {
        assert!(actions.iter().any(|x| x == a), "audit has {a}: {actions:?}");
    }
    // Signing keys are stored sealed: the raw 32-byte secret never sits in the row in the clear.
    let key = signing_keys::Entity::find_by_id(fresh.kid.clone()).one(&db).await.unwrap().unwrap();
    assert_eq!(key.enc_key_id, goblin_core::crypto::key_id(&[9; 32]));
    assert_eq!(key.ciphertext.len(), 12 + 32 + 16);

    // A checked token's row is cached; while the database cannot be read, a token checked in the
    // last minutes keeps working, and one never checked is a server-side failure, not a refusal.
    let cached = TokenService::new(db.clone(), Arc::new(Keyring::single([9; 32])), Arc::new(clock.clone()))
        .with_row_cache(std::time::Duration::from_millis(1), None);
    let seen = cached.issue(&boss, "seen", &scopes(&["chat"]), Duration::days(1), None).await.unwrap();
    let unseen = cached.issue(&boss, "unseen", &scopes(&["chat"]), Duration::days(1), None).await.unwrap();
    assert!(cached.verify(seen.token.expose(), Some("chat")).await.unwrap().is_ok());
    // Past its freshness, so the next check reads the database again.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    db.close().await.unwrap();
    let during = cached.verify(seen.token.expose(), Some("chat")).await.unwrap().unwrap();
    assert_eq!((during.user_id, during.username.as_str()), (boss.id, "boss"));
    assert!(cached.verify(unseen.token.expose(), Some("chat")).await.is_err());
    test_db.drop_db().await;
}

/// A revocation clears the cache at once, even for a token checked a moment ago.
#[tokio::test]
async fn a_cached_token_is_refused_as_soon_as_it_is_revoked() {
    let Some(test_db) = TestDb::new(Backend::Sqlite).await else { return };
    let db = Database::connect(&test_db.url).await.unwrap();
    goblin_core::db::migrate_up(&db).await.unwrap();
    let clock = ManualClock::new(Utc::now());
    let svc = TokenService::new(db.clone(), Arc::new(Keyring::single([9; 32])), Arc::new(clock.clone()))
        .with_row_cache(std::time::Duration::from_secs(3600), None);
    svc.ensure_keys().await.unwrap();
    let bot = create_service_account(&db, &clock, "bot", Role::Operator).await.unwrap();
    let issued = svc.issue(&bot, "t", &scopes(&["chat"]), Duration::hours(1), None).await.unwrap();
    let other = svc.issue(&bot, "u", &scopes(&["chat"]), Duration::hours(1), None).await.unwrap();
    for t in [&issued, &other] {
        assert!(svc.verify(t.token.expose(), Some("chat")).await.unwrap().is_ok());
    }
    svc.revoke(issued.id, None).await.unwrap();
    assert_eq!(svc.verify(issued.token.expose(), None).await.unwrap(), Err(TokenError::Revoked));
    assert!(svc.verify(other.token.expose(), Some("chat")).await.unwrap().is_ok());
    db.close().await.unwrap();
    test_db.drop_db().await;
}

#[tokio::test]
async fn token_rules_on_sqlite() {
    token_rules(Backend::Sqlite).await;
}

#[tokio::test]
async fn token_rules_on_postgres() {
    token_rules(Backend::Postgres).await;
}

#[tokio::test]
async fn cli_issued_tokens_work_over_http_until_revoked_and_survive_rotation() {
    let app = spawn_app(Backend::Sqlite, &[]).await.unwrap();
    let dir = app.db.data_dir.path();
    let env = [("DATABASE_URL", app.db.url.as_str()), ("GOBLIN_DATA_DIR", dir.to_str().unwrap())];

    let out = goblin(dir, &["users", "create", "--service", "deploy-bot", "--role", "operator"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = goblin(
        dir,
        &["tokens", "create", "--user", "deploy-bot", "--scopes", "chat,tasks:run", "--ttl", "30d"],
        &env,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.split('.').count(), 3, "stdout is exactly the token");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&token), "the token is printed once, on stdout");

    let me = |t: Option<String>| {
        let req = app.client.get(app.url("/api/me"));
        let req = match t {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        req.send()
    };
    let resp = me(Some(token.clone())).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["username"], "deploy-bot");
    assert_eq!(body["role"], "operator");
    assert_eq!(body["scopes"], serde_json::json!(["chat", "tasks:run"]));
    let token_id = body["token_id"].as_str().unwrap().to_string();

    // No token, garbage: 401 with a clear message in the API's error shape.
    let resp = me(None).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Authorization: Bearer"));
    let body: Value = me(Some("garbage".into())).await.unwrap().json().await.unwrap();
    assert_eq!(body["error"]["message"], "the token is malformed");

    // Rotation keeps the token valid.
    let out = goblin(dir, &["keys", "rotate-jwt"], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(me(Some(token.clone())).await.unwrap().status(), 200);

    // Revocation from another process reaches the server within its token cache's freshness (5 s
    // by default; at once with Redis, see instances.rs).
    let out = goblin(dir, &["tokens", "revoke", &token_id], &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let resp = loop {
        let resp = me(Some(token.clone())).await.unwrap();
        if resp.status() != 200 || std::time::Instant::now() > deadline {
            break resp;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "the token was revoked");

    // Bad input to the commands: a clear line, exit 2, nothing created.
    let out = goblin(dir, &["tokens", "create", "--user", "nobody", "--scopes", "chat"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user named 'nobody'"));
    let out = goblin(dir, &["tokens", "create", "--user", "deploy-bot", "--scopes", "root"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope 'root'"));
    let out = goblin(
        dir,
        &["tokens", "create", "--user", "deploy-bot", "--scopes", "chat", "--ttl", "forever"],
        &env,
    );
    assert_eq!(out.status.code(), Some(2));
    let out = goblin(dir, &["users", "create", "--service", "deploy-bot"], &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = goblin(dir, &["users", "create", "--service", "x", "--role", "root"], &env);
    assert_eq!(out.status.code(), Some(2));

    app.stop().await;
}
