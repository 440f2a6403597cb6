//! Ordered pieces of a stream, so a client can resume after the last `seq` it saw.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "stream_chunks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Unique together with `seq` (`uq_stream_chunks_stream_seq`).
    pub stream_id: Uuid,
    pub seq: i32,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    #[sea_orm(default_value = 0)]
    pub token_count: i32,
    #[sea_orm(default_value = 0)]
    pub cost_delta_micros: i64,
    #[sea_orm(default_value = false)]
    pub done: bool,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::streams::Entity",
        from = "Column::StreamId",
        to = "super::streams::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Streams,
}

impl Related<super::streams::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Streams.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
