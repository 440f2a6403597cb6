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
pub async fn find_by_username(db: &DatabaseConnection, username: &str) -> Result<Option<users::Model>, DbErr> {
    users::Entity::find().filter(users::Column::Username.eq(username)).one(db).await
}
