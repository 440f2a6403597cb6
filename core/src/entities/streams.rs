//! One streamed AI answer (a chat turn or an agent goblin run) with its token and cost totals.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "streams")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(128))", nullable)]
    pub goblin_id: Option<String>,
    pub task_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    #[sea_orm(column_type = "String(StringLen::N(128))", nullable)]
    pub model: Option<String>,
    /// `streaming` | `done` | `error` | `cancelled`.
    #[sea_orm(column_type = "String(StringLen::N(16))", default_value = "streaming")]
    pub status: String,
    #[sea_orm(default_value = 0)]
    pub tokens_in: i64,
    #[sea_orm(default_value = 0)]
    pub tokens_out: i64,
    #[sea_orm(default_value = 0)]
    pub cost_micros: i64,
    pub created_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
    /// A chat turn's message from the person (empty for agent runs).
    #[sea_orm(column_type = "Text", default_value = "")]
    pub prompt: String,
    /// The model name the person chose (an alias, `provider/model` or a bare model); `model` is the
    /// one that answered.
    #[sea_orm(column_type = "String(StringLen::N(192))", nullable)]
    pub requested_model: Option<String>,
    /// Why the answer failed or stopped early, fit to show (provider keys already redacted).
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// The search collection a chat turn searched for sources, if any.
    pub collection_id: Option<Uuid>,
    /// The numbered sources put into a chat turn's prompt (see `crate::chat::Source`).
    pub sources: Option<Json>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// An agent goblin's answer belongs to its task.
    #[sea_orm(
        belongs_to = "super::tasks::Entity",
        from = "Column::TaskId",
        to = "super::tasks::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Tasks,
    /// A user's chat history goes when the user is deleted.
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::UserId",
        to = "super::users::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Users,
    #[sea_orm(
        belongs_to = "super::providers::Entity",
        from = "Column::ProviderId",
        to = "super::providers::Column::Id",
        on_update = "Cascade",
        on_delete = "SetNull"
    )]
    Providers,
    #[sea_orm(has_many = "super::stream_chunks::Entity")]
    StreamChunks,
}

impl Related<super::tasks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tasks.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl Related<super::providers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Providers.def()
    }
}

impl Related<super::stream_chunks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::StreamChunks.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
