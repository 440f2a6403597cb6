//! One run of a goblin or of a custom script, doubling as the worker queue (lease columns).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(128))")]
    pub goblin_id: String,
    #[sea_orm(column_type = "Text")]
    pub task: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub code: Option<String>,
    /// `queued` | `running` | `succeeded` | `failed` | `timed_out` | `cancelled` | `dry_run`.
    #[sea_orm(column_type = "String(StringLen::N(16))", default_value = "queued")]
    pub status: String,
    #[sea_orm(default_value = false)]
    pub dry_run: bool,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub created_by: Option<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(128))", nullable)]
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// The API token the task was started with, if any (no foreign key: a task outlives its token).
    pub token_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::CreatedBy",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "SetNull"
    )]
    Users,
    #[sea_orm(has_many = "super::streams::Entity")]
    Streams,
    #[sea_orm(has_many = "super::task_logs::Entity")]
    TaskLogs,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl Related<super::streams::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Streams.def()
    }
}

impl Related<super::task_logs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TaskLogs.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
