use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Traced exceptions (error events and panics), one row per fingerprint: how often it happened,
/// when first and last, and the newest occurrence's message, context and backtrace.
#[derive(DeriveIden)]
enum Exceptions {
    Table,
    Id,
    // Hex SHA-256 of kind, place and message shape; unique.
    Fingerprint,
    // error | panic
    Kind,
    // Where it was raised: the tracing target, or the panic's file:line.
    Location,
    Message,
    Backtrace,
    // request_id, route, method, user_id, task_id, spans: as the newest occurrence had them.
    Context,
    Count,
    FirstSeen,
    LastSeen,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Exceptions::Table)
                    .col(uuid(Exceptions::Id).primary_key())
                    .col(string_len(Exceptions::Fingerprint, 64))
                    .col(string_len(Exceptions::Kind, 16))
                    .col(string_len(Exceptions::Location, 256))
                    .col(text(Exceptions::Message))
                    .col(text_null(Exceptions::Backtrace))
                    .col(json(Exceptions::Context))
                    .col(big_integer(Exceptions::Count))
                    .col(timestamp_with_time_zone(Exceptions::FirstSeen))
                    .col(timestamp_with_time_zone(Exceptions::LastSeen))
                    .to_owned(),
            )
            .await?;
        // Occurrences are upserted on the fingerprint.
        manager
            .create_index(
                Index::create()
                    .name("uq_exceptions_fingerprint")
                    .table(Exceptions::Table)
                    .col(Exceptions::Fingerprint)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The Monitoring page lists newest first; retention deletes the oldest.
        manager
            .create_index(
                Index::create()
                    .name("ix_exceptions_last_seen")
                    .table(Exceptions::Table)
                    .col(Exceptions::LastSeen)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Exceptions::Table).to_owned()).await
    }
}
