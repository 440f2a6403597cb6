use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum SearchCollections {
    Table,
    Id,
    Name,
    Description,
    ChunkSize,
    ChunkOverlap,
    EmbeddingModel,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SearchCollections::Table)
                    .col(pk_uuid(SearchCollections::Id))
                    .col(string_len_uniq(SearchCollections::Name, 128))
                    .col(text(SearchCollections::Description).default(""))
                    .col(integer(SearchCollections::ChunkSize).default(512))
                    .col(integer(SearchCollections::ChunkOverlap).default(64))
                    .col(string_len_null(SearchCollections::EmbeddingModel, 192))
                    .col(uuid_null(SearchCollections::CreatedBy))
                    .col(timestamp_with_time_zone(SearchCollections::CreatedAt))
                    .col(timestamp_with_time_zone(SearchCollections::UpdatedAt))
                    .foreign_key(&mut crate::fk(
                        "fk_search_collections_created_by",
                        SearchCollections::Table,
                        SearchCollections::CreatedBy,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SearchCollections::Table).to_owned()).await
    }
}
