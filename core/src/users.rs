//! Accounts. People sign in with passkeys; service accounts have none and only own API tokens.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{audit, clock::Clock, entities::users};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Viewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "viewer" => Ok(Role::Viewer),
            other => Err(format!("unknown role '{other}'; use admin, operator or viewer")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("the username must be 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidUsername,
    #[error("a user named '{0}' already exists")]
    Taken(String),
    #[error("no user named '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

fn valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Creates a service account: no passkey, it can only own API tokens.
///
/// # Errors
/// An invalid or taken username, or a database error.
pub async fn create_service_account(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    username: &str,
    role: Role,
) -> Result<users::Model, UserError> {
    if !valid_username(username) {
        return Err(UserError::InvalidUsername);
    }
    if find_by_username(db, username).await?.is_some() {
        return Err(UserError::Taken(username.to_string()));
    }
    let now = clock.now();
    let user = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        username: Set(username.to_string()),
        display_name: Set(username.to_string()),
        role: Set(role.as_str().to_string()),
        status: Set("active".to_string()),
        is_service: Set(true),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    audit::record(
        db,
        clock,
        audit::Event {
            action: "user.created",
            target: Some(user.id.to_string()),
            success: true,
            detail: serde_json::json!({ "username": username, "role": role.as_str(), "service": true }),
            ..Default::default()
        },
    )
    .await?;
    Ok(user)
}

/// # Errors
/// A database error.
pub async fn find_by_username(
    db: &DatabaseConnection,
    username: &str,
) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find().filter(users::Column::Username.eq(username)).one(db).await
}

/// An account as the admin pages list it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub status: String,
    pub is_service: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no such user")]
    NotFound,
    #[error("this would leave no active admin; make someone else admin first")]
    LastAdmin,
    #[error("the status must be active or disabled")]
    BadStatus,
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("could not end the user's sessions: {0}")]
    Sessions(String),
}

/// Every account, oldest first.
///
/// # Errors
/// A database error.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<UserInfo>, DbErr> {
    use sea_orm::QueryOrder;
    Ok(users::Entity::find()
        .order_by_asc(users::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|u| UserInfo {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role,
            status: u.status,
            is_service: u.is_service,
            created_at: u.created_at,
        })
        .collect())
}

async fn other_active_admins(db: &DatabaseConnection, except: Uuid) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    users::Entity::find()
        .filter(users::Column::Role.eq("admin"))
        .filter(users::Column::Status.eq("active"))
        .filter(users::Column::Id.ne(except))
        .count(db)
        .await
}

/// Changes a user's role; never leaves the server without an active admin.
///
/// # Errors
/// An unknown user, the last admin, or a database error.
pub async fn set_role(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    actor: Uuid,
    user: Uuid,
    role: Role,
) -> Result<(), AdminError> {
    let row = users::Entity::find_by_id(user).one(db).await?.ok_or(AdminError::NotFound)?;
    if row.role == "admin" && role != Role::Admin && other_active_admins(db, user).await? == 0 {
        return Err(AdminError::LastAdmin);
    }
    let before = row.role.clone();
    let mut a: users::ActiveModel = row.into();
    a.role = Set(role.as_str().into());
    a.updated_at = Set(clock.now());
    a.update(db).await?;
    audit::record(
        db,
        clock,
        audit::Event {
            actor: Some(actor),
            action: "user.role_changed",
            target: Some(user.to_string()),
            success: true,
            detail: serde_json::json!({ "from": before, "to": role.as_str() }),
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// Enables or disables an account. Disabling ends its sessions at once; its API tokens are refused
/// from then on because token checks require an active user (the caller clears the token cache:
/// [`crate::tokens::TokenService::forget_cached`]).
///
/// # Errors
/// An unknown user, a bad status, the last admin, or a storage error.
pub async fn set_status(
    db: &DatabaseConnection,
    sessions: &crate::sessions::Store,
    clock: &dyn Clock,
    actor: Uuid,
    user: Uuid,
    status: &str,
) -> Result<(), AdminError> {
    if !matches!(status, "active" | "disabled") {
        return Err(AdminError::BadStatus);
    }
    let row = users::Entity::find_by_id(user).one(db).await?.ok_or(AdminError::NotFound)?;
    if status == "disabled" && row.role == "admin" && other_active_admins(db, user).await? == 0 {
        return Err(AdminError::LastAdmin);
    }
    let mut a: users::ActiveModel = row.into();
    a.status = Set(status.into());
    a.updated_at = Set(clock.now());
    a.update(db).await?;
    if status == "disabled" {
        sessions.end_all_for_user(user).await.map_err(|e| AdminError::Sessions(e.to_string()))?;
    }
    audit::record(
        db,
        clock,
        audit::Event {
            actor: Some(actor),
            action: if status == "disabled" { "user.disabled" } else { "user.enabled" },
            target: Some(user.to_string()),
            success: true,
            ..Default::default()
        },
    )
    .await?;
    Ok(())
}

/// The newest audit events, newest first.
///
/// # Errors
/// A database error.
pub async fn audit_tail(
    db: &DatabaseConnection,
    limit: u64,
) -> Result<Vec<crate::entities::audit_log::Model>, DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    crate::entities::audit_log::Entity::find()
        .order_by_desc(crate::entities::audit_log::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
