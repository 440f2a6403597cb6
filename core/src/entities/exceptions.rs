//! Traced exceptions (error events and panics), grouped by fingerprint.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "exceptions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Hex SHA-256 of kind, location and message shape; unique (`uq_exceptions_fingerprint`).
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub fingerprint: String,
    /// `error` | `panic`.
    #[sea_orm(column_type = "String(StringLen::N(16))")]
    pub kind: String,
    /// The tracing target, or the panic's `file:line`.
    #[sea_orm(column_type = "String(StringLen::N(256))")]
    pub location: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub backtrace: Option<String>,
    /// `request_id`, `route`, `method`, `user_id`, `task_id`, `spans` of the newest occurrence.
    pub context: Json,
    pub count: i64,
    pub first_seen: DateTimeUtc,
    pub last_seen: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
