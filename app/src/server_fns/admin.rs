//! Admin-only functions: accounts, roles, invites and the audit log. Each checks the caller's role
//! itself; hiding the Admin link is only a convenience.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::{map_auth, require_admin};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub is_service: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub at: String,
    pub action: String,
    pub outcome: String,
    pub target: Option<String>,
    pub reason: Option<String>,
}

#[cfg(feature = "ssr")]
fn map_admin(e: goblin_core::users::AdminError) -> AppError {
    use goblin_core::users::AdminError;
    match e {
        AdminError::Db(e) => AppError::internal(e),
        AdminError::Sessions(e) => AppError::internal(e),
        other => AppError::Refused(other.to_string()).respond(),
    }
}

#[cfg(feature = "ssr")]
fn parse_id(id: &str) -> Result<uuid::Uuid, AppError> {
    uuid::Uuid::parse_str(id.trim())
        .map_err(|_| AppError::Refused(format!("'{id}' is not a valid id")).respond())
}

#[cfg(feature = "ssr")]
fn parse_role(role: &str) -> Result<goblin_core::users::Role, AppError> {
    role.parse().map_err(|e: String| AppError::Refused(e).respond())
}

/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/users")]
pub async fn list_users() -> Result<Vec<UserRow>, AppError> {
    let (state, _) = require_admin().await?;
    Ok(goblin_core::users::list(&state.db)
        .await
        .map_err(AppError::internal)?
        .into_iter()
        .map(|u| UserRow {
            id: u.id.to_string(),
            username: u.username,
            display_name: u.display_name,
            role: u.role,
            status: u.status,
            is_service: u.is_service,
        })
        .collect())
}

/// # Errors
/// Not an admin, an unknown user or role, or demoting the last admin.
#[server(prefix = "/fn", endpoint = "admin/user-role")]
pub async fn set_user_role(id: String, role: String) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    let changed = goblin_core::users::set_role(
        &state.db,
        state.clock.as_ref(),
        admin.id,
        parse_id(&id)?,
        parse_role(&role)?,
    )
    .await;
    // An admin-scoped token holds only while its owner is an admin. Cleared whatever the outcome:
    // a failure after the row was written must not leave the old role cached.
    state.tokens.forget_cached().await;
    changed.map_err(map_admin)
}

/// Disabling ends the account's sessions at once and its API tokens stop working.
///
/// # Errors
/// Not an admin, an unknown user, a bad status, or disabling the last admin.
#[server(prefix = "/fn", endpoint = "admin/user-status")]
pub async fn set_user_status(id: String, status: String) -> Result<(), AppError> {
    let (state, admin) = require_admin().await?;
    let changed = goblin_core::users::set_status(
        &state.db,
        &state.sessions,
        state.clock.as_ref(),
        admin.id,
        parse_id(&id)?,
        &status,
    )
    .await;
    // Cleared whatever the outcome: ending the sessions can fail after the row was written.
    state.tokens.forget_cached().await;
    changed.map_err(map_admin)
}

/// Creates a one-time invite link for one person, with a role.
///
/// # Errors
/// Not an admin, an unknown role, or a lifetime out of range.
#[server(prefix = "/fn", endpoint = "admin/invite")]
pub async fn create_invite(role: String, days: String) -> Result<String, AppError> {
    let (state, admin) = require_admin().await?;
    let days: i64 = days
        .trim()
        .parse()
        .map_err(|_| AppError::Refused(format!("'{days}' is not a number of days")).respond())?;
    let ttl = chrono::Duration::try_days(days)
        .ok_or_else(|| AppError::Refused("an invite lasts from 1 hour to 30 days".into()).respond())?;
    let token = state.passkeys.create_invite(admin.id, parse_role(&role)?, ttl).await.map_err(map_auth)?;
    let mut url = state.config.public_url.join("invite").map_err(AppError::internal)?;
    url.query_pairs_mut().append_pair("token", &token);
    Ok(url.to_string())
}

/// The newest 200 audit events.
///
/// # Errors
/// Not an admin.
#[server(prefix = "/fn", endpoint = "admin/audit")]
pub async fn audit_log() -> Result<Vec<AuditRow>, AppError> {
    let (state, _) = require_admin().await?;
    Ok(goblin_core::users::audit_tail(&state.db, 200)
        .await
        .map_err(AppError::internal)?
        .into_iter()
        .map(|a| AuditRow {
            at: a.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            action: a.action,
            outcome: a.outcome,
            target: a.target,
            reason: a.reason,
        })
        .collect())
}
