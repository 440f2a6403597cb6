use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000010_create_tasks::Tasks;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// A task's output, one row per line, in the order it was produced.
#[derive(DeriveIden)]
enum TaskLogs {
    Table,
    Id,
    TaskId,
    Seq,
    // stdout | stderr | system (the runner's own notes: dry runs, truncation, timeouts)
    Stream,
    Line,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TaskLogs::Table)
                    .col(big_pk_auto(TaskLogs::Id))
                    .col(uuid(TaskLogs::TaskId))
                    .col(integer(TaskLogs::Seq))
                    .col(string_len(TaskLogs::Stream, 8))
                    .col(text(TaskLogs::Line))
                    .col(timestamp_with_time_zone(TaskLogs::CreatedAt))
                    // A task's output goes with the task.
                    .foreign_key(&mut crate::fk(
                        "fk_task_logs_task",
                        TaskLogs::Table,
                        TaskLogs::TaskId,
                        Tasks::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // Live output and late readers read "lines of task T after seq N"; a seq is never written
        // twice.
        manager
            .create_index(
                Index::create()
                    .name("uq_task_logs_task_seq")
                    .table(TaskLogs::Table)
                    .col(TaskLogs::TaskId)
                    .col(TaskLogs::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(TaskLogs::Table).to_owned()).await
    }
}
