//! Passkey sign-in (WebAuthn, no passwords anywhere), in four steps.
//!
//! ```text
//!  browser                         server
//!  1. setup/start {token, name} -> check the one-time link, new user id, challenge   (state kept 5 min)
//!     navigator.credentials.create(options)
//!  2. setup/finish {ceremony, credential} -> take state (single use), verify, create admin + passkey
//!  3. signin/start {username?}  -> challenge; no username: discoverable (the person picks a passkey)
//!     navigator.credentials.get(options)
//!  4. signin/finish {ceremony, credential} -> take state, verify signature, origin, RP id and counter
//! ```
//!
//! The relying-party id and origin come from the public URL; ceremonies from any other origin fail.
//! Every failure is written to the audit log with its reason.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Duration;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, TransactionTrait, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use webauthn_rs::prelude::*;
use webauthn_rs_proto::{AuthenticatorSelectionCriteria, ResidentKeyRequirement, UserVerificationPolicy};

use crate::{
    audit,
    ceremonies::{CeremonyError, CeremonyStore},
    clock::SharedClock,
    entities::{invites, passkeys, users},
    users::Role,
};

/// How long a first-run setup link stays valid.
pub fn setup_link_ttl() -> Duration {
    Duration::hours(1)
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this link is invalid, expired or already used; ask an admin for a new one (first run: `goblin admin setup-link`)"
    )]
    BadSetupLink,
    #[error("the username '{0}' is taken")]
    UsernameTaken(String),
    #[error("setup is already done: sign in instead")]
    AlreadySetUp,
    #[error("the username must be 1 to 64 letters, digits, '.', '_' or '-'")]
    BadUsername,
    #[error("the display name must be 1 to 128 characters")]
    BadDisplayName,
    #[error("this sign-in attempt expired or was already used; start again")]
    UnknownCeremony,
    #[error("the passkey could not be verified: {0}")]
    Verification(String),
    #[error("this passkey is not registered here")]
    UnknownCredential,
    #[error("this passkey's signature counter went backwards; it may have been cloned, so it is refused")]
    CounterRegression,
    #[error("this account is disabled")]
    Disabled,
    #[error("no passkey is registered for that username")]
    NoPasskeys,
    #[error("no such passkey on your account")]
    PasskeyNotFound,
    #[error("this is your last passkey: add another before deleting it, or you could not sign in again")]
    LastPasskey,
    #[error("the passkey name must be 1 to 128 characters")]
    BadPasskeyName,
    #[error(transparent)]
    Unavailable(#[from] CeremonyError),
    #[error("the server's WebAuthn settings are invalid: {0}")]
    Config(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

impl AuthError {
    /// A short reason for the audit log.
    fn reason(&self) -> String {
        match self {
            AuthError::Db(_) => "database error".into(),
            other => other.to_string(),
        }
    }
}

#[derive(Serialize, Deserialize)]
enum Ceremony {
    Setup {
        reg: PasskeyRegistration,
        user_id: Uuid,
        username: String,
        display_name: String,
        invite: Uuid,
        #[serde(default = "admin_role")]
        role: String,
        #[serde(default = "setup_kind")]
        kind: String,
    },
    Add {
        reg: PasskeyRegistration,
        user_id: Uuid,
    },
    Discoverable {
        auth: DiscoverableAuthentication,
    },
    Named {
        auth: PasskeyAuthentication,
        user_id: Uuid,
    },
}

fn admin_role() -> String {
    "admin".into()
}

fn setup_kind() -> String {
    "setup".into()
}

/// Hash of a one-time link token, as stored.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn cred_id_string(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

pub struct PasskeyService {
    webauthn: Webauthn,
    db: DatabaseConnection,
    ceremonies: Arc<CeremonyStore>,
    clock: SharedClock,
}

impl PasskeyService {
    /// # Errors
    /// [`AuthError::Config`] when the public URL cannot serve as a WebAuthn origin.
    pub fn new(
        public_url: &url::Url,
        db: DatabaseConnection,
        ceremonies: Arc<CeremonyStore>,
        clock: SharedClock,
    ) -> Result<Self, AuthError> {
        let rp_id =
            public_url.host_str().ok_or_else(|| AuthError::Config("the public URL has no host".into()))?;
        let webauthn = WebauthnBuilder::new(rp_id, public_url)
            .and_then(|b| b.rp_name("Goblin Assistant").build())
            .map_err(|e| AuthError::Config(e.to_string()))?;
        Ok(Self { webauthn, db, ceremonies, clock })
    }

    /// Whether anyone has an account yet.
    ///
    /// # Errors
    /// A database error.
    pub async fn has_users(&self) -> Result<bool, DbErr> {
        Ok(users::Entity::find().count(&self.db).await? > 0)
    }

    /// A fresh one-time setup link token (valid for an hour). Only its hash is stored.
    ///
    /// # Errors
    /// A database error.
    pub async fn create_setup_token(&self) -> Result<String, DbErr> {
        let mut bytes = [0u8; 32];
        aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = self.clock.now();
        invites::ActiveModel {
            id: Set(Uuid::new_v4()),
            kind: Set("setup".into()),
            token_hash: Set(token_hash(&token)),
            role: Set(Role::Admin.as_str().into()),
            created_by: Set(None),
            created_at: Set(now),
            expires_at: Set(now + setup_link_ttl()),
            used_at: Set(None),
            used_by: Set(None),
        }
        .insert(&self.db)
        .await?;
        Ok(token)
    }

    async fn audit_failure(&self, action: &str, target: Option<String>, e: &AuthError, ip: Option<&str>) {
        let event = audit::Event {
            action,
            target,
            success: false,
            reason: Some(e.reason()),
            ip: ip.map(str::to_string),
            ..Default::default()
        };
        if let Err(err) = audit::record(&self.db, self.clock.as_ref(), event).await {
            tracing::error!(error = %err, "could not write the audit log");
        }
    }

    /// Step 1: checks the one-time link (first-run setup or an invite) and returns the ceremony id
    /// and the browser's options.
    ///
    /// # Errors
    /// A bad link, bad or taken names, setup already done, or an unavailable ceremony store.
    pub async fn setup_start(
        &self,
        token: &str,
        username: &str,
        display_name: &str,
    ) -> Result<(String, CreationChallengeResponse), AuthError> {
        let username = username.trim();
        let display_name = display_name.trim();
        if !valid_username(username) {
            return Err(AuthError::BadUsername);
        }
        if display_name.is_empty() || display_name.chars().count() > 128 {
            return Err(AuthError::BadDisplayName);
        }
        let invite = self.live_link(token).await?.ok_or(AuthError::BadSetupLink)?;
        if invite.kind == "setup" && self.has_users().await? {
            return Err(AuthError::AlreadySetUp);
        }
        if users::Entity::find().filter(users::Column::Username.eq(username)).one(&self.db).await?.is_some() {
            return Err(AuthError::UsernameTaken(username.to_string()));
        }
        let user_id = Uuid::new_v4();
        let (mut ccr, reg) = self
            .webauthn
            .start_passkey_registration(user_id, username, display_name, None)
            .map_err(|e| AuthError::Verification(e.to_string()))?;
        // Ask for a discoverable credential, so the person can later sign in without typing a name.
        ccr.public_key.authenticator_selection = Some(AuthenticatorSelectionCriteria {
            authenticator_attachment: None,
            resident_key: Some(ResidentKeyRequirement::Required),
            require_resident_key: true,
            user_verification: UserVerificationPolicy::Required,
        });
        let state = Ceremony::Setup {
            reg,
            user_id,
            username: username.to_string(),
            display_name: display_name.to_string(),
            invite: invite.id,
            role: invite.role,
            kind: invite.kind,
        };
        let id = self
            .ceremonies
            .put(serde_json::to_string(&state).map_err(|e| AuthError::Config(e.to_string()))?)
            .await?;
        Ok((id, ccr))
    }

    async fn live_link(&self, token: &str) -> Result<Option<invites::Model>, DbErr> {
        Ok(invites::Entity::find()
            .filter(invites::Column::TokenHash.eq(token_hash(token)))
            .one(&self.db)
            .await?
            .filter(|i| i.used_at.is_none() && i.expires_at > self.clock.now()))
    }

    /// Step 2: verifies the new passkey and creates the account with the link's role.
    ///
    /// # Errors
    /// An unknown or used ceremony, a credential that does not verify, or the link used meanwhile.
    pub async fn setup_finish(
        &self,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        passkey_name: &str,
        ip: Option<&str>,
    ) -> Result<users::Model, AuthError> {
        let result = self.setup_finish_inner(ceremony, credential, passkey_name).await;
        match &result {
            Ok((u, kind)) => {
                let event = audit::Event {
                    actor: Some(u.id),
                    action: if kind == "setup" { "setup.completed" } else { "invite.accepted" },
                    target: Some(u.id.to_string()),
                    success: true,
                    ip: ip.map(str::to_string),
                    detail: serde_json::json!({ "username": u.username, "role": u.role }),
                    ..Default::default()
                };
                audit::record(&self.db, self.clock.as_ref(), event).await?;
            }
            Err(e) => self.audit_failure("registration.failed", None, e, ip).await,
        }
        result.map(|(u, _)| u)
    }

    async fn setup_finish_inner(
        &self,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        passkey_name: &str,
    ) -> Result<(users::Model, String), AuthError> {
        let state = self.ceremonies.take(ceremony).await?.ok_or(AuthError::UnknownCeremony)?;
        let Ok(Ceremony::Setup { reg, user_id, username, display_name, invite, role, kind }) =
            serde_json::from_str(&state)
        else {
            return Err(AuthError::UnknownCeremony);
        };
        let passkey = self
            .webauthn
            .finish_passkey_registration(credential, &reg)
            .map_err(|e| AuthError::Verification(e.to_string()))?;

        let txn = self.db.begin().await?;
        let now = self.clock.now();
        // Use up the link; losing a race to another tab (or instance) means it is gone.
        let used = invites::Entity::update_many()
            .col_expr(invites::Column::UsedAt, Expr::value(now))
            .filter(invites::Column::Id.eq(invite))
            .filter(invites::Column::UsedAt.is_null())
            .filter(invites::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if used.rows_affected != 1 {
            return Err(AuthError::BadSetupLink);
        }
        if kind == "setup" && users::Entity::find().count(&txn).await? > 0 {
            return Err(AuthError::AlreadySetUp);
        }
        if users::Entity::find().filter(users::Column::Username.eq(&username)).one(&txn).await?.is_some() {
            return Err(AuthError::UsernameTaken(username));
        }
        let user = users::ActiveModel {
            id: Set(user_id),
            username: Set(username),
            display_name: Set(display_name),
            role: Set(role),
            status: Set("active".into()),
            is_service: Set(false),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        invites::Entity::update_many()
            .col_expr(invites::Column::UsedBy, Expr::value(user.id))
            .filter(invites::Column::Id.eq(invite))
            .exec(&txn)
            .await?;
        self.insert_passkey(&txn, user.id, &passkey, passkey_name).await?;
        txn.commit().await?;
        Ok((user, kind))
    }

    /// An admin's invite: a one-time link for one person to register with `role`.
    ///
    /// # Errors
    /// A lifetime out of range (1 hour to 30 days) or a database error.
    pub async fn create_invite(&self, admin: Uuid, role: Role, ttl: Duration) -> Result<String, AuthError> {
        if ttl < Duration::hours(1) || ttl > Duration::days(30) {
            return Err(AuthError::Verification("an invite lasts from 1 hour to 30 days".into()));
        }
        let mut bytes = [0u8; 32];
        aes_gcm::aead::rand_core::RngCore::fill_bytes(&mut aes_gcm::aead::OsRng, &mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = self.clock.now();
        let id = Uuid::new_v4();
        let txn = self.db.begin().await?;
        invites::ActiveModel {
            id: Set(id),
            kind: Set("invite".into()),
            token_hash: Set(token_hash(&token)),
            role: Set(role.as_str().into()),
            created_by: Set(Some(admin)),
            created_at: Set(now),
            expires_at: Set(now + ttl),
            used_at: Set(None),
            used_by: Set(None),
        }
        .insert(&txn)
        .await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            audit::Event {
                actor: Some(admin),
                action: "invite.created",
                target: Some(id.to_string()),
                success: true,
                detail: serde_json::json!({ "role": role.as_str(), "expires_at": now + ttl }),
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        Ok(token)
    }

    async fn insert_passkey(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        user_id: Uuid,
        passkey: &Passkey,
        name: &str,
    ) -> Result<(), AuthError> {
        let name = name.trim();
        let name = if name.is_empty() { "Passkey" } else { name };
        let now = self.clock.now();
        passkeys::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(user_id),
            credential_id: Set(cred_id_string(passkey.cred_id().as_ref())),
            passkey: Set(serde_json::to_value(passkey).map_err(|e| AuthError::Config(e.to_string()))?),
            sign_count: Set(0),
            backup_eligible: Set(false),
            backup_state: Set(false),
            transports: Set(serde_json::json!([])),
            name: Set(name.chars().take(128).collect()),
            created_at: Set(now),
            last_used_at: Set(None),
        }
        .insert(db)
        .await?;
        Ok(())
    }

    /// Step 3: a sign-in challenge. Without a username the browser lets the person pick any passkey
    /// for this site; with one, only that account's passkeys are allowed.
    ///
    /// # Errors
    /// No passkeys for that username, or an unavailable ceremony store.
    pub async fn signin_start(
        &self,
        username: Option<&str>,
    ) -> Result<(String, RequestChallengeResponse), AuthError> {
        let (state, rcr) = match username.map(str::trim).filter(|u| !u.is_empty()) {
            None => {
                let (rcr, auth) = self
                    .webauthn
                    .start_discoverable_authentication()
                    .map_err(|e| AuthError::Verification(e.to_string()))?;
                (Ceremony::Discoverable { auth }, rcr)
            }
            Some(name) => {
                let user = users::Entity::find()
                    .filter(users::Column::Username.eq(name))
                    .one(&self.db)
                    .await?
                    .ok_or(AuthError::NoPasskeys)?;
                let keys: Vec<Passkey> = passkeys::Entity::find()
                    .filter(passkeys::Column::UserId.eq(user.id))
                    .all(&self.db)
                    .await?
                    .into_iter()
                    .filter_map(|p| serde_json::from_value(p.passkey).ok())
                    .collect();
                if keys.is_empty() {
                    return Err(AuthError::NoPasskeys);
                }
                let (rcr, auth) = self
                    .webauthn
                    .start_passkey_authentication(&keys)
                    .map_err(|e| AuthError::Verification(e.to_string()))?;
                (Ceremony::Named { auth, user_id: user.id }, rcr)
            }
        };
        let id = self
            .ceremonies
            .put(serde_json::to_string(&state).map_err(|e| AuthError::Config(e.to_string()))?)
            .await?;
        Ok((id, rcr))
    }

    /// Step 4: verifies the assertion and returns the signed-in user.
    ///
    /// # Errors
    /// An unknown or used ceremony, an unknown credential, a bad signature, origin or RP id, a counter
    /// that went backwards, or a disabled account. Each is audited.
    pub async fn signin_finish(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        ip: Option<&str>,
    ) -> Result<users::Model, AuthError> {
        let cred = cred_id_string(credential.get_credential_id());
        let result = self.signin_finish_inner(ceremony, credential).await;
        match &result {
            Ok(u) => {
                let event = audit::Event {
                    actor: Some(u.id),
                    action: "signin.succeeded",
                    target: Some(u.id.to_string()),
                    success: true,
                    ip: ip.map(str::to_string),
                    ..Default::default()
                };
                audit::record(&self.db, self.clock.as_ref(), event).await?;
            }
            Err(e) => self.audit_failure("signin.failed", Some(format!("credential {cred}")), e, ip).await,
        }
        result
    }

    async fn signin_finish_inner(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
    ) -> Result<users::Model, AuthError> {
        let state = self.ceremonies.take(ceremony).await?.ok_or(AuthError::UnknownCeremony)?;
        let state: Ceremony = serde_json::from_str(&state).map_err(|_| AuthError::UnknownCeremony)?;
        let cred_id = cred_id_string(credential.get_credential_id());
        let row = passkeys::Entity::find()
            .filter(passkeys::Column::CredentialId.eq(cred_id))
            .one(&self.db)
            .await?
            .ok_or(AuthError::UnknownCredential)?;
        let mut passkey: Passkey =
            serde_json::from_value(row.passkey.clone()).map_err(|e| AuthError::Config(e.to_string()))?;
        let result = match state {
            Ceremony::Discoverable { auth } => {
                let (user_handle, _) = self
                    .webauthn
                    .identify_discoverable_authentication(credential)
                    .map_err(|e| AuthError::Verification(e.to_string()))?;
                if user_handle != row.user_id {
                    return Err(AuthError::UnknownCredential);
                }
                self.webauthn
                    .finish_discoverable_authentication_v2(credential, auth, &passkey)
                    .map_err(|e| AuthError::Verification(e.to_string()))?
            }
            Ceremony::Named { auth, user_id } => {
                if user_id != row.user_id {
                    return Err(AuthError::UnknownCredential);
                }
                self.webauthn
                    .finish_passkey_authentication(credential, &auth)
                    .map_err(|e| AuthError::Verification(e.to_string()))?
            }
            Ceremony::Setup { .. } | Ceremony::Add { .. } => return Err(AuthError::UnknownCeremony),
        };
        let counter = i64::from(result.counter());
        if counter != 0 && counter <= row.sign_count {
            return Err(AuthError::CounterRegression);
        }
        let user = users::Entity::find_by_id(row.user_id)
            .one(&self.db)
            .await?
            .ok_or(AuthError::UnknownCredential)?;
        if user.status != "active" {
            return Err(AuthError::Disabled);
        }
        passkey.update_credential(&result);
        let mut active: passkeys::ActiveModel = row.into();
        active.passkey = Set(serde_json::to_value(&passkey).map_err(|e| AuthError::Config(e.to_string()))?);
        active.sign_count = Set(counter);
        active.backup_eligible = Set(result.backup_eligible());
        active.backup_state = Set(result.backup_state());
        active.last_used_at = Set(Some(self.clock.now()));
        active.update(&self.db).await?;
        Ok(user)
    }
}

/// A passkey as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub backed_up: bool,
}

impl PasskeyService {
    /// The user's passkeys, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn list(&self, user_id: Uuid) -> Result<Vec<PasskeyInfo>, DbErr> {
        use sea_orm::QueryOrder;
        Ok(passkeys::Entity::find()
            .filter(passkeys::Column::UserId.eq(user_id))
            .order_by_asc(passkeys::Column::CreatedAt)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|p| PasskeyInfo {
                id: p.id,
                name: p.name,
                created_at: p.created_at,
                last_used_at: p.last_used_at,
                backed_up: p.backup_state,
            })
            .collect())
    }

    /// Renames one of the user's passkeys.
    ///
    /// # Errors
    /// A bad name, a passkey that is not the user's, or a database error.
    pub async fn rename(&self, user_id: Uuid, id: Uuid, name: &str) -> Result<(), AuthError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(AuthError::BadPasskeyName);
        }
        let row = passkeys::Entity::find_by_id(id)
            .filter(passkeys::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .ok_or(AuthError::PasskeyNotFound)?;
        let mut a: passkeys::ActiveModel = row.into();
        a.name = Set(name.to_string());
        a.update(&self.db).await?;
        Ok(())
    }

    /// Deletes one of the user's passkeys, never the last one.
    ///
    /// # Errors
    /// The last passkey, one that is not the user's, or a database error.
    pub async fn delete(&self, user_id: Uuid, id: Uuid) -> Result<(), AuthError> {
        let txn = self.db.begin().await?;
        let count = passkeys::Entity::find().filter(passkeys::Column::UserId.eq(user_id)).count(&txn).await?;
        let row = passkeys::Entity::find_by_id(id)
            .filter(passkeys::Column::UserId.eq(user_id))
            .one(&txn)
            .await?
            .ok_or(AuthError::PasskeyNotFound)?;
        if count <= 1 {
            return Err(AuthError::LastPasskey);
        }
        passkeys::Entity::delete_by_id(row.id).exec(&txn).await?;
        audit::record(
            &txn,
            self.clock.as_ref(),
            audit::Event {
                actor: Some(user_id),
                action: "passkey.removed",
                target: Some(row.id.to_string()),
                success: true,
                detail: serde_json::json!({ "name": row.name }),
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Starts registering another passkey for a signed-in user; their existing ones are excluded.
    ///
    /// # Errors
    /// An unavailable ceremony store or a database error.
    pub async fn add_start(
        &self,
        user: &users::Model,
    ) -> Result<(String, CreationChallengeResponse), AuthError> {
        let existing: Vec<CredentialID> = passkeys::Entity::find()
            .filter(passkeys::Column::UserId.eq(user.id))
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|p| serde_json::from_value::<Passkey>(p.passkey).ok())
            .map(|p| p.cred_id().clone())
            .collect();
        let (mut ccr, reg) = self
            .webauthn
            .start_passkey_registration(user.id, &user.username, &user.display_name, Some(existing))
            .map_err(|e| AuthError::Verification(e.to_string()))?;
        ccr.public_key.authenticator_selection = Some(AuthenticatorSelectionCriteria {
            authenticator_attachment: None,
            resident_key: Some(ResidentKeyRequirement::Required),
            require_resident_key: true,
            user_verification: UserVerificationPolicy::Required,
        });
        let state = Ceremony::Add { reg, user_id: user.id };
        let id = self
            .ceremonies
            .put(serde_json::to_string(&state).map_err(|e| AuthError::Config(e.to_string()))?)
            .await?;
        Ok((id, ccr))
    }

    /// Finishes adding a passkey; the ceremony must have been started by the same user.
    ///
    /// # Errors
    /// An unknown or used ceremony, another user's ceremony, or a credential that does not verify.
    pub async fn add_finish(
        &self,
        user_id: Uuid,
        ceremony: &str,
        credential: &RegisterPublicKeyCredential,
        name: &str,
    ) -> Result<(), AuthError> {
        let result = async {
            let state = self.ceremonies.take(ceremony).await?.ok_or(AuthError::UnknownCeremony)?;
            let Ok(Ceremony::Add { reg, user_id: owner }) = serde_json::from_str(&state) else {
                return Err(AuthError::UnknownCeremony);
            };
            if owner != user_id {
                return Err(AuthError::UnknownCeremony);
            }
            let passkey = self
                .webauthn
                .finish_passkey_registration(credential, &reg)
                .map_err(|e| AuthError::Verification(e.to_string()))?;
            self.insert_passkey(&self.db, user_id, &passkey, name).await
        }
        .await;
        let event = audit::Event {
            actor: Some(user_id),
            action: "passkey.added",
            success: result.is_ok(),
            reason: result.as_ref().err().map(AuthError::reason),
            detail: serde_json::json!({ "name": name }),
            ..Default::default()
        };
        audit::record(&self.db, self.clock.as_ref(), event).await?;
        result
    }
}
