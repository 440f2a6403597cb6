//! One embedding per search chunk, for semantic search: little-endian `f32` bytes, scored in
//! process (see `search::vector`). Deleting the chunk deletes its vector.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "search_chunk_vectors")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub chunk_id: i64,
    pub collection_id: Uuid,
    pub document_id: Uuid,
    /// The collection's embedding model when the vector was made.
    #[sea_orm(column_type = "String(StringLen::N(192))")]
    pub model: String,
    pub dims: i32,
    /// `dims` little-endian `f32`s, normalised to unit length.
    #[sea_orm(column_type = "Blob")]
    pub vector: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::search_chunks::Entity",
        from = "Column::ChunkId",
        to = "super::search_chunks::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    SearchChunks,
}

impl Related<super::search_chunks::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SearchChunks.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
