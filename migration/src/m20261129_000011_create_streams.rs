use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;
use super::m20261129_000002_create_providers::Providers;
use super::m20261129_000010_create_tasks::Tasks;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One streamed AI answer: a chat turn or an agent goblin run.
#[derive(DeriveIden)]
pub enum Streams {
    Table,
    Id,
    GoblinId,
    TaskId,
    UserId,
    ConversationId,
    ProviderId,
    Model,
    // streaming | done | error | cancelled
    Status,
    TokensIn,
    TokensOut,
    CostMicros,
    CreatedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Streams::Table)
                    .col(pk_uuid(Streams::Id))
                    .col(string_len_null(Streams::GoblinId, 128))
                    .col(uuid_null(Streams::TaskId))
                    .col(uuid_null(Streams::UserId))
                    .col(uuid_null(Streams::ConversationId))
                    .col(uuid_null(Streams::ProviderId))
                    .col(string_len_null(Streams::Model, 128))
                    .col(string_len(Streams::Status, 16).default("streaming"))
                    .col(big_integer(Streams::TokensIn).default(0))
                    .col(big_integer(Streams::TokensOut).default(0))
                    .col(big_integer(Streams::CostMicros).default(0))
                    .col(timestamp_with_time_zone(Streams::CreatedAt))
                    .col(timestamp_with_time_zone_null(Streams::FinishedAt))
                    // An agent goblin's answer belongs to its task.
                    .foreign_key(&mut crate::fk(
                        "fk_streams_task",
                        Streams::Table,
                        Streams::TaskId,
                        Tasks::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    // A user's chat history goes when the user is deleted.
                    .foreign_key(&mut crate::fk(
                        "fk_streams_user",
                        Streams::Table,
                        Streams::UserId,
                        Users::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut crate::fk(
                        "fk_streams_provider",
                        Streams::Table,
                        Streams::ProviderId,
                        Providers::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_streams_user_created")
                    .table(Streams::Table)
                    .col(Streams::UserId)
                    .col(Streams::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_streams_task")
                    .table(Streams::Table)
                    .col(Streams::TaskId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Streams::Table).to_owned()).await
    }
}
