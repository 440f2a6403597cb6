use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Providers {
    Table,
    Id,
    Name,
    Kind,
    BaseUrl,
    Enabled,
    Priority,
    Capabilities,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Providers::Table)
                    .col(pk_uuid(Providers::Id))
                    .col(string_len_uniq(Providers::Name, 64))
                    // openai | anthropic | gemini | deepseek | grok | siliconflow | moonshot |
                    // elevenlabs | openai-compatible
                    .col(string_len(Providers::Kind, 32))
                    .col(string_null(Providers::BaseUrl))
                    .col(boolean(Providers::Enabled).default(true))
                    .col(integer(Providers::Priority).default(100))
                    // ["chat", "embeddings", "speech"]
                    .col(json(Providers::Capabilities))
                    .col(timestamp_with_time_zone(Providers::CreatedAt))
                    .col(timestamp_with_time_zone(Providers::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_providers_enabled_priority")
                    .table(Providers::Table)
                    .col(Providers::Enabled)
                    .col(Providers::Priority)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Providers::Table).to_owned()).await
    }
}
