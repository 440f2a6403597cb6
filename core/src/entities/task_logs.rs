//! A task's output, one row per line in the order it was produced.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "task_logs")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique together with `seq` (`uq_task_logs_task_seq`).
    pub task_id: Uuid,
    pub seq: i32,
    /// `stdout` | `stderr` | `system` (the runner's own notes).
    #[sea_orm(column_type = "String(StringLen::N(8))")]
    pub stream: String,
    #[sea_orm(column_type = "Text")]
    pub line: String,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tasks::Entity",
        from = "Column::TaskId",
        to = "super::tasks::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Tasks,
}

impl Related<super::tasks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tasks.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
