use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000013_create_search_collections::SearchCollections;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SearchDocuments {
    Table,
    Id,
    CollectionId,
    Title,
    Source,
    Tags,
    Metadata,
    ContentType,
    Content,
    ChunkCount,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SearchDocuments::Table)
                    .col(pk_uuid(SearchDocuments::Id))
                    .col(uuid(SearchDocuments::CollectionId))
                    .col(string_len(SearchDocuments::Title, 256))
                    .col(string_len_null(SearchDocuments::Source, 1024))
                    .col(json(SearchDocuments::Tags))
                    .col(json(SearchDocuments::Metadata))
                    .col(string_len(SearchDocuments::ContentType, 64))
                    .col(text(SearchDocuments::Content))
                    .col(integer(SearchDocuments::ChunkCount).default(0))
                    .col(timestamp_with_time_zone(SearchDocuments::CreatedAt))
                    .col(timestamp_with_time_zone(SearchDocuments::UpdatedAt))
                    // Deleting a collection deletes its documents.
                    .foreign_key(&mut crate::fk(
                        "fk_search_documents_collection",
                        SearchDocuments::Table,
                        SearchDocuments::CollectionId,
                        SearchCollections::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_search_documents_collection_created")
                    .table(SearchDocuments::Table)
                    .col(SearchDocuments::CollectionId)
                    .col(SearchDocuments::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SearchDocuments::Table).to_owned()).await
    }
}
