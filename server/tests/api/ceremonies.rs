//! The passkey ceremonies against a software authenticator: the happy path, then every way an
//! attacker or a broken client can get it wrong. Each is refused with a clear reason and an audit
//! row, and a valid sign-in still works afterwards.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{Duration, Utc};
use goblin_core::{
    ceremonies::CeremonyStore,
    clock::ManualClock,
    entities::{audit_log, passkeys},
    passkeys::{AuthError, PasskeyService},
};
use sea_orm::{ColumnTrait, Database, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::Value;
use url::Url;
use webauthn_authenticator_rs::{WebauthnAuthenticator, softpasskey::SoftPasskey};
use webauthn_rs_proto::PublicKeyCredential;

use crate::helpers::{Backend, TestDb};

const ORIGIN: &str = "http://localhost:8123";

struct Rig {
    svc: PasskeyService,
    clock: ManualClock,
    db: DatabaseConnection,
    _test_db: TestDb,
}

async fn rig(origin: &str) -> Rig {
    let test_db = TestDb::new(Backend::Sqlite).await.unwrap();
    let db = Database::connect(&test_db.url).await.unwrap();
    goblin_core::db::migrate_up(&db).await.unwrap();
    let clock = ManualClock::new(Utc::now());
    let shared: goblin_core::clock::SharedClock = Arc::new(clock.clone());
    let ceremonies = Arc::new(CeremonyStore::memory(shared.clone()));
    let svc = PasskeyService::new(&Url::parse(origin).unwrap(), db.clone(), ceremonies, shared).unwrap();
    Rig { svc, clock, db, _test_db: test_db }
}

/// The software authenticator cannot keep discoverable credentials; let it make an ordinary one (the
/// server's checks of the result are the same).
fn non_resident(
    mut options: webauthn_rs_proto::CreationChallengeResponse,
) -> webauthn_rs_proto::CreationChallengeResponse {
    if let Some(sel) = options.public_key.authenticator_selection.as_mut() {
        sel.require_resident_key = false;
        sel.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Discouraged);
    }
    options
}

/// Registers `ada` as the first admin with `key`.
async fn register(r: &Rig, key: &mut SoftPasskey, origin: &str) {
    let token = r.svc.create_setup_token().await.unwrap();
    let (ceremony, options) = r.svc.setup_start(&token, "ada", "Ada").await.unwrap();
    let credential = key.do_registration(Url::parse(origin).unwrap(), non_resident(options)).unwrap();
    r.svc.setup_finish(&ceremony, &credential, "soft", None).await.unwrap();
}

/// Starts a username-first sign-in and has `key` answer it.
async fn assertion(r: &Rig, key: &mut SoftPasskey, origin: &str) -> (String, PublicKeyCredential) {
    let (ceremony, options) = r.svc.signin_start(Some("ada")).await.unwrap();
    (ceremony, key.do_authentication(Url::parse(origin).unwrap(), options).unwrap())
}

/// Changes one byte of a base64url field of the credential's response.
fn tamper(cred: &PublicKeyCredential, field: &str, index: impl Fn(usize) -> usize) -> PublicKeyCredential {
    let mut v: Value = serde_json::to_value(cred).unwrap();
    let raw = v["response"][field].as_str().unwrap().to_string();
    let mut bytes = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).unwrap();
    let i = index(bytes.len());
    bytes[i] ^= 0x01;
    v["response"][field] = Value::String(URL_SAFE_NO_PAD.encode(bytes));
    serde_json::from_value(v).unwrap()
}

async fn failures(db: &DatabaseConnection) -> Vec<String> {
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("signin.failed"))
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|a| a.reason)
        .collect()
}

#[tokio::test]
async fn ceremonies_refuse_every_forgery_and_stay_usable() {
    let r = rig(ORIGIN).await;
    let mut key = SoftPasskey::new(true);
    register(&r, &mut key, ORIGIN).await;

    // The happy path, username first.
    let (ceremony, good) = assertion(&r, &mut key, ORIGIN).await;
    let user = r.svc.signin_finish(&ceremony, &good, None).await.unwrap();
    assert_eq!(user.username, "ada");
    let stored = passkeys::Entity::find().one(&r.db).await.unwrap().unwrap();
    assert!(stored.sign_count > 0 && stored.last_used_at.is_some(), "the counter and last use are updated");

    // The same ceremony twice: gone after its first use.
    let err = r.svc.signin_finish(&ceremony, &good, None).await.unwrap_err();
    assert!(matches!(err, AuthError::UnknownCeremony), "{err}");

    // A replayed assertion on a fresh ceremony: the challenge does not match.
    let (fresh, _) = r.svc.signin_start(Some("ada")).await.unwrap();
    let err = r.svc.signin_finish(&fresh, &good, None).await.unwrap_err();
    assert!(matches!(err, AuthError::Verification(_)), "{err}");

    // A finish that fails still uses the ceremony up.
    let err = r.svc.signin_finish(&fresh, &good, None).await.unwrap_err();
    assert!(matches!(err, AuthError::UnknownCeremony), "{err}");

    // An expired challenge: five minutes and a second later.
    let (ceremony, cred) = assertion(&r, &mut key, ORIGIN).await;
    r.clock.advance(Duration::minutes(5) + Duration::seconds(1));
    let err = r.svc.signin_finish(&ceremony, &cred, None).await.unwrap_err();
    assert!(matches!(err, AuthError::UnknownCeremony), "{err}");

    // Wrong origin: the browser was on another port.
    let (ceremony, options) = r.svc.signin_start(Some("ada")).await.unwrap();
    let cred = key.do_authentication(Url::parse("http://localhost:9999").unwrap(), options).unwrap();
    let err = r.svc.signin_finish(&ceremony, &cred, None).await.unwrap_err();
    assert!(matches!(err, AuthError::Verification(_)), "{err}");

    // Wrong RP id: the authenticator data names another relying party.
    let (ceremony, cred) = assertion(&r, &mut key, ORIGIN).await;
    let err =
        r.svc.signin_finish(&ceremony, &tamper(&cred, "authenticatorData", |_| 0), None).await.unwrap_err();
    assert!(matches!(err, AuthError::Verification(_)), "{err}");

    // Tampered clientDataJSON and tampered signature.
    let (ceremony, cred) = assertion(&r, &mut key, ORIGIN).await;
    let err =
        r.svc.signin_finish(&ceremony, &tamper(&cred, "clientDataJSON", |n| n / 2), None).await.unwrap_err();
    assert!(matches!(err, AuthError::Verification(_)), "{err}");
    let (ceremony, cred) = assertion(&r, &mut key, ORIGIN).await;
    let err = r.svc.signin_finish(&ceremony, &tamper(&cred, "signature", |n| n - 1), None).await.unwrap_err();
    assert!(matches!(err, AuthError::Verification(_)), "{err}");

    // An unknown credential: a passkey registered with another server.
    let other = rig(ORIGIN).await;
    let mut stranger = SoftPasskey::new(true);
    register(&other, &mut stranger, ORIGIN).await;
    let (_, options) = r.svc.signin_start(Some("ada")).await.unwrap();
    let (ceremony, _) = r.svc.signin_start(None).await.unwrap();
    drop(options);
    let (_, foreign_options) = other.svc.signin_start(Some("ada")).await.unwrap();
    let mut foreign = stranger.do_authentication(Url::parse(ORIGIN).unwrap(), foreign_options).unwrap();
    // Aim it at this server's discoverable ceremony.
    foreign.response.user_handle = None;
    let err = r.svc.signin_finish(&ceremony, &foreign, None).await.unwrap_err();
    assert!(matches!(err, AuthError::UnknownCredential), "{err}");

    // Counter regression: two assertions, the later one used first.
    let (c1, a1) = assertion(&r, &mut key, ORIGIN).await;
    let (c2, a2) = assertion(&r, &mut key, ORIGIN).await;
    r.svc.signin_finish(&c2, &a2, None).await.unwrap();
    let err = r.svc.signin_finish(&c1, &a1, None).await.unwrap_err();
    assert!(matches!(err, AuthError::CounterRegression), "{err}");

    // Every refusal is in the audit log with its reason.
    let reasons = failures(&r.db).await;
    assert_eq!(reasons.len(), 10, "{reasons:#?}");
    assert!(reasons.iter().any(|x| x.contains("counter went backwards")));
    assert!(reasons.iter().any(|x| x.contains("not registered here")));
    assert!(reasons.iter().any(|x| x.contains("expired or was already used")));

    // And the server is unharmed: a proper sign-in still works.
    let (ceremony, good) = assertion(&r, &mut key, ORIGIN).await;
    assert_eq!(r.svc.signin_finish(&ceremony, &good, None).await.unwrap().username, "ada");
}

#[tokio::test]
async fn registration_checks_its_ceremony_and_the_origin() {
    let r = rig(ORIGIN).await;
    let mut key = SoftPasskey::new(true);
    let token = r.svc.create_setup_token().await.unwrap();

    // From another origin: refused, and the link is still unused.
    let (ceremony, options) = r.svc.setup_start(&token, "ada", "Ada").await.unwrap();
    let cred =
        key.do_registration(Url::parse("http://localhost:9999").unwrap(), non_resident(options)).unwrap();
    assert!(matches!(r.svc.setup_finish(&ceremony, &cred, "x", None).await, Err(AuthError::Verification(_))));
    assert!(!r.svc.has_users().await.unwrap());

    // Expired registration ceremony.
    let (ceremony, options) = r.svc.setup_start(&token, "ada", "Ada").await.unwrap();
    let cred = key.do_registration(Url::parse(ORIGIN).unwrap(), non_resident(options)).unwrap();
    r.clock.advance(Duration::minutes(6));
    assert!(matches!(r.svc.setup_finish(&ceremony, &cred, "x", None).await, Err(AuthError::UnknownCeremony)));

    // The link itself expires after an hour.
    r.clock.advance(Duration::hours(1));
    assert!(matches!(r.svc.setup_start(&token, "ada", "Ada").await, Err(AuthError::BadSetupLink)));

    // A fresh link works, once.
    let token = r.svc.create_setup_token().await.unwrap();
    let (ceremony, options) = r.svc.setup_start(&token, "ada", "Ada").await.unwrap();
    let cred = key.do_registration(Url::parse(ORIGIN).unwrap(), non_resident(options)).unwrap();
    let admin = r.svc.setup_finish(&ceremony, &cred, "soft", None).await.unwrap();
    assert_eq!(admin.role, "admin");
    assert!(matches!(r.svc.setup_start(&token, "eve", "Eve").await, Err(AuthError::BadSetupLink)));
}

#[tokio::test]
async fn malformed_and_oversize_ceremony_requests_are_client_errors() {
    let app = crate::helpers::spawn_app(Backend::Sqlite, &[]).await.unwrap();
    for body in ["{not json", r#"{"ceremony": 5}"#, r#"{"ceremony": "x", "credential": {"id": 1}}"#, "[]"] {
        let resp = app
            .post("/fn/auth/signin-finish")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{body}");
    }
    let big = format!(r#"{{"ceremony": "{}"}}"#, "x".repeat(goblin_server::startup::MAX_BODY_BYTES));
    let resp = app
        .post("/fn/auth/signin-finish")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(app.get("/health").await.status(), 200, "still serving");
    // Each was audited with its reason.
    let reasons = failures(&app.state.db).await;
    assert_eq!(reasons.iter().filter(|r| *r == "malformed request").count(), 4, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|r| *r == "request body over the size limit").count(), 1);
    app.stop().await;
}
