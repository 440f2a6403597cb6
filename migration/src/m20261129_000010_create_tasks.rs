use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000001_create_users::Users;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One run of a goblin or of a custom script.
#[derive(DeriveIden)]
pub enum Tasks {
    Table,
    Id,
    GoblinId,
    Task,
    Code,
    // queued | running | succeeded | failed | timed_out | cancelled | dry_run
    Status,
    DryRun,
    ExitCode,
    DurationMs,
    Error,
    CreatedBy,
    WorkerId,
    LeaseExpiresAt,
    CreatedAt,
    StartedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tasks::Table)
                    .col(pk_uuid(Tasks::Id))
                    .col(string_len(Tasks::GoblinId, 128))
                    .col(text(Tasks::Task))
                    .col(text_null(Tasks::Code))
                    .col(string_len(Tasks::Status, 16).default("queued"))
                    .col(boolean(Tasks::DryRun).default(false))
                    .col(integer_null(Tasks::ExitCode))
                    .col(big_integer_null(Tasks::DurationMs))
                    .col(text_null(Tasks::Error))
                    .col(uuid_null(Tasks::CreatedBy))
                    .col(string_len_null(Tasks::WorkerId, 128))
                    .col(timestamp_with_time_zone_null(Tasks::LeaseExpiresAt))
                    .col(timestamp_with_time_zone(Tasks::CreatedAt))
                    .col(timestamp_with_time_zone_null(Tasks::StartedAt))
                    .col(timestamp_with_time_zone_null(Tasks::FinishedAt))
                    .foreign_key(&mut crate::fk(
                        "fk_tasks_created_by",
                        Tasks::Table,
                        Tasks::CreatedBy,
                        Users::Table,
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        // The queue claim and the status filters: oldest queued first.
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_status_created")
                    .table(Tasks::Table)
                    .col(Tasks::Status)
                    .col(Tasks::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // History pages: newest first, ties broken by id.
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_created")
                    .table(Tasks::Table)
                    .col(Tasks::CreatedAt)
                    .col(Tasks::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_tasks_goblin_created")
                    .table(Tasks::Table)
                    .col(Tasks::GoblinId)
                    .col(Tasks::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Tasks::Table).to_owned()).await
    }
}
