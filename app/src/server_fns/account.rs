//! A person's own account: passkeys, sessions and API tokens.

use leptos::{prelude::*, server_fn::codec::Json};
use serde::{Deserialize, Serialize};
use webauthn_rs_proto::{CreationChallengeResponse, RegisterPublicKeyCredential};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::{map_auth, require_user};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyView {
    pub id: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub handle: String,
    pub signed_in_at: Option<String>,
    pub expires_at: String,
    pub current: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub expires_at: String,
    pub revoked: bool,
}

/// A token just created: the only time it is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub id: String,
    pub token: String,
    pub expires_at: String,
}

#[cfg(feature = "ssr")]
fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

#[cfg(feature = "ssr")]
fn parse_id(id: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(id.trim())
        .map_err(|_| AppError::Refused(format!("'{id}' is not a valid id")).respond())
}

/// # Errors
/// [`AppError::Unauthorized`] when not signed in.
#[server(prefix = "/fn", endpoint = "account/passkeys")]
pub async fn my_passkeys() -> Result<Vec<PasskeyView>, AppError> {
    let (state, _, user) = require_user().await?;
    Ok(state
        .passkeys
        .list(user.id)
        .await
        .map_err(AppError::internal)?
        .into_iter()
        .map(|p| PasskeyView {
            id: p.id.to_string(),
            name: p.name,
            created_at: when(p.created_at),
            last_used_at: p.last_used_at.map(when),
        })
        .collect())
}

/// # Errors
/// Not signed in, a bad name, or not one of the caller's passkeys.
#[server(prefix = "/fn", endpoint = "account/passkey-rename")]
pub async fn rename_passkey(id: String, name: String) -> Result<(), AppError> {
    let (state, _, user) = require_user().await?;
    state.passkeys.rename(user.id, parse_id(&id)?, &name).await.map_err(map_auth)
}

/// # Errors
/// Not signed in, the last passkey, or not one of the caller's passkeys.
#[server(prefix = "/fn", endpoint = "account/passkey-delete")]
pub async fn delete_passkey(id: String) -> Result<(), AppError> {
    let (state, _, user) = require_user().await?;
    state.passkeys.delete(user.id, parse_id(&id)?).await.map_err(map_auth)
}

/// # Errors
/// Not signed in, or an unavailable ceremony store.
#[server(prefix = "/fn", endpoint = "account/passkey-add-start", input = Json)]
pub async fn add_passkey_start() -> Result<(String, CreationChallengeResponse), AppError> {
    let (state, _, user) = require_user().await?;
    state.passkeys.add_start(&user).await.map_err(map_auth)
}

/// # Errors
/// Not signed in, a used ceremony, or a credential that does not verify.
#[server(prefix = "/fn", endpoint = "account/passkey-add-finish", input = Json)]
pub async fn add_passkey_finish(
    ceremony: String,
    credential: RegisterPublicKeyCredential,
    name: String,
) -> Result<(), AppError> {
    let (state, _, user) = require_user().await?;
    state.passkeys.add_finish(user.id, &ceremony, &credential, &name).await.map_err(map_auth)
}

/// # Errors
/// Not signed in, or the session store cannot be read.
#[server(prefix = "/fn", endpoint = "account/sessions")]
pub async fn my_sessions() -> Result<Vec<SessionView>, AppError> {
    let (state, session, user) = require_user().await?;
    let current = session.id().map(|id| goblin_core::sessions::handle(&id.to_string()));
    let mut list = state.sessions.list_for_user(user.id).await.map_err(AppError::internal)?;
    list.sort_by(|a, b| b.signed_in_at.cmp(&a.signed_in_at));
    Ok(list
        .into_iter()
        .map(|s| SessionView {
            current: current.as_deref() == Some(s.handle.as_str()),
            handle: s.handle,
            signed_in_at: s.signed_in_at.map(when),
            expires_at: when(s.expires_at),
        })
        .collect())
}

/// Ends one of the caller's sessions (possibly this one).
///
/// # Errors
/// Not signed in, or no such session of theirs.
#[server(prefix = "/fn", endpoint = "account/session-end")]
pub async fn end_session(handle: String) -> Result<(), AppError> {
    let (state, _, user) = require_user().await?;
    match state.sessions.end_for_user(user.id, handle.trim()).await.map_err(AppError::internal)? {
        true => Ok(()),
        false => Err(AppError::Refused("no such session on your account".into()).respond()),
    }
}

/// # Errors
/// Not signed in.
#[server(prefix = "/fn", endpoint = "account/tokens")]
pub async fn my_tokens() -> Result<Vec<TokenView>, AppError> {
    let (state, _, user) = require_user().await?;
    Ok(state
        .tokens
        .list_for_user(user.id)
        .await
        .map_err(AppError::internal)?
        .into_iter()
        .map(|t| TokenView {
            id: t.id.to_string(),
            name: t.name,
            scopes: t.scopes,
            created_at: when(t.created_at),
            expires_at: when(t.expires_at),
            revoked: t.revoked,
        })
        .collect())
}

/// Creates an API token for the caller. Checked scopes arrive as `on`; `admin` needs the admin role.
///
/// # Errors
/// Not signed in, no scope, a scope the role does not allow, or a bad lifetime or name.
#[server(prefix = "/fn", endpoint = "account/token-create")]
pub async fn create_token(
    name: String,
    ttl_days: String,
    chat: Option<String>,
    tasks_run: Option<String>,
    search: Option<String>,
    admin: Option<String>,
    budget: Option<String>,
    budget_period: Option<String>,
) -> Result<CreatedToken, AppError> {
    use goblin_core::tokens::TokenServiceError;
    let (state, _, user) = require_user().await?;
    let mut scopes = Vec::new();
    for (on, scope) in [(chat, "chat"), (tasks_run, "tasks:run"), (search, "search"), (admin, "admin")] {
        if on.is_some() {
            scopes.push(scope.to_string());
        }
    }
    if scopes.iter().any(|s| s == "admin") && user.role != "admin" {
        return Err(AppError::Forbidden.respond());
    }
    let days: i64 = ttl_days
        .trim()
        .parse()
        .map_err(|_| AppError::Refused(format!("'{ttl_days}' is not a number of days")).respond())?;
    let ttl = chrono::Duration::try_days(days)
        .filter(|d| *d > chrono::Duration::zero())
        .ok_or_else(|| AppError::Refused("the lifetime must be between 1 and 3650 days".into()).respond())?;
    let budget = goblin_core::gateway::budget::parse(
        budget.as_deref().unwrap_or(""),
        budget_period.as_deref().unwrap_or(""),
    )
    .map_err(|e| AppError::Refused(e).respond())?;
    let budget = budget.0.map(|m| (m, budget.1));
    let issued = state
        .tokens
        .issue_with_budget(&user, name.trim(), &scopes, ttl, budget, Some(user.id))
        .await
        .map_err(|e| match e {
            TokenServiceError::Db(e) => AppError::internal(e),
            TokenServiceError::Crypto(e) => AppError::internal(e),
            TokenServiceError::Signing => AppError::internal("signing failed"),
            other => AppError::Refused(other.to_string()).respond(),
        })?;
    Ok(CreatedToken {
        id: issued.id.to_string(),
        token: issued.token.expose().clone(),
        expires_at: when(issued.expires_at),
    })
}

/// # Errors
/// Not signed in, or not one of the caller's tokens.
#[server(prefix = "/fn", endpoint = "account/token-revoke")]
pub async fn revoke_token(id: String) -> Result<(), AppError> {
    let (state, _, user) = require_user().await?;
    state.tokens.revoke_own(user.id, parse_id(&id)?).await.map_err(|e| match e {
        goblin_core::tokens::TokenServiceError::NotFound(_) => {
            AppError::Refused("no such token on your account".into()).respond()
        }
        other => AppError::internal(other),
    })
}
