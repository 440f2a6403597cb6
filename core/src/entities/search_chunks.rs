//! The pieces a search document is cut into (by tokens, with overlap), in order. Each is indexed
//! for full-text search: a generated `tsv` column on PostgreSQL (not mapped here), the
//! `search_chunks_fts` FTS5 table on SQLite.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "search_chunks")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub document_id: Uuid,
    pub collection_id: Uuid,
    /// Position in the document, from 0.
    pub seq: i32,
    #[sea_orm(column_type = "Text")]
    pub text: String,
    pub token_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Deleting a document deletes its chunks.
    #[sea_orm(
        belongs_to = "super::search_documents::Entity",
        from = "Column::DocumentId",
        to = "super::search_documents::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    SearchDocuments,
    /// Deleting a collection deletes its chunks.
    #[sea_orm(
        belongs_to = "super::search_collections::Entity",
        from = "Column::CollectionId",
        to = "super::search_collections::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    SearchCollections,
}

impl Related<super::search_documents::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SearchDocuments.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
