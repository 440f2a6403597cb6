use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000002_create_providers::Providers;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ModelConfigs {
    Table,
    Id,
    ProviderId,
    ModelId,
    DisplayName,
    Capabilities,
    ContextWindow,
    // Prices in micro-USD per million tokens: exact integers on every backend.
    PriceInMicrosPerMtok,
    PriceOutMicrosPerMtok,
    DefaultParams,
    IsDefault,
    // Set once an admin edits the row, so "sync models" leaves it alone.
    Edited,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ModelConfigs::Table)
                    .col(pk_uuid(ModelConfigs::Id))
                    .col(uuid(ModelConfigs::ProviderId))
                    .col(string_len(ModelConfigs::ModelId, 128))
                    .col(string_len(ModelConfigs::DisplayName, 128))
                    .col(json(ModelConfigs::Capabilities))
                    .col(integer_null(ModelConfigs::ContextWindow))
                    .col(big_integer(ModelConfigs::PriceInMicrosPerMtok).default(0))
                    .col(big_integer(ModelConfigs::PriceOutMicrosPerMtok).default(0))
                    .col(json(ModelConfigs::DefaultParams))
                    .col(boolean(ModelConfigs::IsDefault).default(false))
                    .col(boolean(ModelConfigs::Edited).default(false))
                    .col(timestamp_with_time_zone(ModelConfigs::CreatedAt))
                    .col(timestamp_with_time_zone(ModelConfigs::UpdatedAt))
                    .foreign_key(&mut crate::fk(
                        "fk_model_configs_provider",
                        ModelConfigs::Table,
                        ModelConfigs::ProviderId,
                        Providers::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_model_configs_provider_model")
                    .table(ModelConfigs::Table)
                    .col(ModelConfigs::ProviderId)
                    .col(ModelConfigs::ModelId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_model_configs_model")
                    .table(ModelConfigs::Table)
                    .col(ModelConfigs::ModelId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ModelConfigs::Table).to_owned()).await
    }
}
