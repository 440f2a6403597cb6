//! Encryption keys: `goblin keys rotate-encryption` re-seals every stored secret under the current
//! key, after which the old key is no longer needed; a server or command missing a key that some
//! secret needs says which key id.

use goblin_core::crypto::{Keyring, decode_key, key_id};
use sea_orm::EntityTrait;

use crate::{
    cli::goblin,
    helpers::{Backend, TestDb, spawn_app_on},
};

const OLD: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const NEW: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const OTHER: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";

async fn rotation_reseals_everything(backend: Backend) {
    let Some(db) = TestDb::new(backend).await else { return };
    let url = db.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_on(db, &[("GOBLIN_ENCRYPTION_KEY", OLD)]).await;
    let admin = app.sign_in_as("root", "admin").await;

    // Many secrets under the old key: 40 provider keys over 4 providers, and the token signing keys.
    let mut plain = Vec::new();
    for p in 0..4 {
        let input = goblin_core::providers::ProviderInput {
            name: format!("p{p}"),
            kind: "openai".into(),
            enabled: true,
            ..Default::default()
        };
        let provider = app.state.providers.create(Some(admin), &input).await.unwrap();
        for k in 0..10 {
            let key = format!("sk-{p}-{k}-{}", uuid::Uuid::new_v4().simple());
            let view = app
                .state
                .providers
                .add_key(Some(admin), provider.id, &format!("k{k}"), &key, "")
                .await
                .unwrap();
            plain.push((view.id, key));
        }
    }
    let user =
        goblin_core::entities::users::Entity::find_by_id(admin).one(&app.state.db).await.unwrap().unwrap();
    let token = app
        .state
        .tokens
        .issue(&user, "before rotation", &["chat".into()], chrono::Duration::days(1), None)
        .await
        .unwrap();
    let old_id = key_id(&decode_key(OLD).unwrap());
    let new_id = key_id(&decode_key(NEW).unwrap());

    // Without the old key, the command refuses, names the missing key, and changes nothing.
    let out = goblin(
        dir.path(),
        &["keys", "rotate-encryption"],
        &[("DATABASE_URL", &url), ("GOBLIN_ENCRYPTION_KEYS", NEW)],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&old_id)
            && stderr.contains("42 secrets")
            && stderr.contains("GOBLIN_ENCRYPTION_KEYS"),
        "{stderr}"
    );
    let creds = goblin_core::entities::provider_credentials::Entity::find().all(&app.state.db).await.unwrap();
    assert!(creds.iter().all(|c| c.key_id == old_id));

    // With new (current) and old: every secret is re-sealed.
    let keys = format!("{NEW},{OLD}");
    let out = goblin(
        dir.path(),
        &["keys", "rotate-encryption"],
        &[("DATABASE_URL", &url), ("GOBLIN_ENCRYPTION_KEYS", &keys)],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("re-sealed 42 secrets") && stdout.contains(&new_id), "{stdout}");
    let out = goblin(
        dir.path(),
        &["keys", "rotate-encryption"],
        &[("DATABASE_URL", &url), ("GOBLIN_ENCRYPTION_KEYS", &keys)],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-sealed 0 secrets"),
        "a second run has nothing to do"
    );

    // The old key is no longer needed: a ring with only the new key opens everything.
    let ring = Keyring::single(decode_key(NEW).unwrap());
    assert!(goblin_core::rotation::missing_keys(&app.state.db, &ring).await.unwrap().is_empty());
    let service = goblin_core::providers::ProviderService::new(
        app.state.db.clone(),
        std::sync::Arc::new(ring),
        app.state.clock.clone(),
        app.state.settings.clone(),
    );
    let creds = goblin_core::entities::provider_credentials::Entity::find().all(&app.state.db).await.unwrap();
    assert_eq!(creds.len(), 40);
    for c in &creds {
        assert_eq!(c.key_id, new_id);
        let expected = &plain.iter().find(|(id, _)| *id == c.id).unwrap().1;
        assert_eq!(service.open_key(c).unwrap().expose(), expected);
    }
    // A server with only the new key starts, and the token issued before still works.
    let only_new = TestDb::new(Backend::Sqlite).await.unwrap();
    let second = spawn_app_on(only_new, &[("DATABASE_URL", &url), ("GOBLIN_ENCRYPTION_KEY", NEW)]).await;
    let me = second.client.get(second.url("/api/me")).bearer_auth(token.token.expose()).send().await.unwrap();
    assert_eq!(me.status(), 200);
    second.stop().await;

    // A server missing a needed key refuses to start and says which.
    let out = goblin(
        dir.path(),
        &["serve"],
        &[("DATABASE_URL", &url), ("GOBLIN_ENCRYPTION_KEY", OTHER), ("GOBLIN_LISTEN", "127.0.0.1:0")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains(&format!("'{new_id}' (42 secrets)")), "{stderr}");
    app.stop().await;
}

#[tokio::test]
async fn rotation_reseals_everything_sqlite() {
    rotation_reseals_everything(Backend::Sqlite).await;
}

#[tokio::test]
async fn rotation_reseals_everything_postgres() {
    rotation_reseals_everything(Backend::Postgres).await;
}
