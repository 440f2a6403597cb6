//! Documents of a search collection: title, source, tags, metadata and full text content.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "search_documents")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub collection_id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(256))")]
    pub title: String,
    #[sea_orm(column_type = "String(StringLen::N(1024))", nullable)]
    pub source: Option<String>,
    #[sea_orm(column_type = "Json")]
    pub tags: Json,
    #[sea_orm(column_type = "Json")]
    pub metadata: Json,
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub content_type: String,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    #[sea_orm(default_value = 0)]
    pub chunk_count: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Deleting a collection deletes its documents.
    #[sea_orm(
        belongs_to = "super::search_collections::Entity",
        from = "Column::CollectionId",
        to = "super::search_collections::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    SearchCollections,
}

impl Related<super::search_collections::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SearchCollections.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
