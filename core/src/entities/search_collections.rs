//! Named search collections: chunking parameters and the embedding model for their documents.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "search_collections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "String(StringLen::N(128))", unique)]
    pub name: String,
    #[sea_orm(column_type = "Text", default_value = "")]
    pub description: String,
    #[sea_orm(default_value = 512)]
    pub chunk_size: i32,
    #[sea_orm(default_value = 64)]
    pub chunk_overlap: i32,
    #[sea_orm(column_type = "String(StringLen::N(192))", nullable)]
    pub embedding_model: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
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
    #[sea_orm(has_many = "super::search_documents::Entity")]
    SearchDocuments,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Users.def()
    }
}

impl Related<super::search_documents::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SearchDocuments.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
