use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Which providers the environment (OPENAI_API_KEY, ...) has already created, so each is created once
/// and later edits, or a deletion, are never undone by a restart.
#[derive(DeriveIden)]
enum ProviderSeeds {
    Table,
    // The seed's name, e.g. `openai` or `local`.
    Name,
    SeededAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ProviderSeeds::Table)
                    .col(string_len(ProviderSeeds::Name, 64).primary_key())
                    .col(timestamp_with_time_zone(ProviderSeeds::SeededAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ProviderSeeds::Table).to_owned()).await
    }
}
