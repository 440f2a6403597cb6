use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tasks {
    Table,
    Id,
    CreatedAt,
    CreatedBy,
    TokenId,
}

/// Tasks remember the API token they were started with, so an agent goblin's model calls count
/// against that token's budget as the token's own calls would; and the task history gets an index
/// for its "started by" filter that ends in (created_at, id), like the request log's, so a filtered
/// page is one index range read newest first.
///
/// `token_id` has no foreign key: SQLite cannot add one to an existing table, and a task outlives
/// the token it was started with (the gateway then simply finds no budget for it).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Tasks::Table).add_column(uuid_null(Tasks::TokenId)).to_owned())
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_created_by_created_id")
                    .table(Tasks::Table)
                    .col(Tasks::CreatedBy)
                    .col(Tasks::CreatedAt)
                    .col(Tasks::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("idx_tasks_created_by_created_id").table(Tasks::Table).to_owned())
            .await?;
        manager.alter_table(Table::alter().table(Tasks::Table).drop_column(Tasks::TokenId).to_owned()).await
    }
}
