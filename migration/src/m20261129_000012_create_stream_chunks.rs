use sea_orm_migration::{prelude::*, schema::*};

use super::m20261129_000011_create_streams::Streams;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Ordered pieces of a stream, so a client can resume after the last one it saw.
#[derive(DeriveIden)]
enum StreamChunks {
    Table,
    Id,
    StreamId,
    Seq,
    Content,
    TokenCount,
    CostDeltaMicros,
    Done,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(StreamChunks::Table)
                    .col(big_pk_auto(StreamChunks::Id))
                    .col(uuid(StreamChunks::StreamId))
                    .col(integer(StreamChunks::Seq))
                    .col(text(StreamChunks::Content))
                    .col(integer(StreamChunks::TokenCount).default(0))
                    .col(big_integer(StreamChunks::CostDeltaMicros).default(0))
                    .col(boolean(StreamChunks::Done).default(false))
                    .col(timestamp_with_time_zone(StreamChunks::CreatedAt))
                    .foreign_key(&mut crate::fk(
                        "fk_stream_chunks_stream",
                        StreamChunks::Table,
                        StreamChunks::StreamId,
                        Streams::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // Resume reads "chunks of stream S after seq N" and a seq is never written twice.
        manager
            .create_index(
                Index::create()
                    .name("uq_stream_chunks_stream_seq")
                    .table(StreamChunks::Table)
                    .col(StreamChunks::StreamId)
                    .col(StreamChunks::Seq)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(StreamChunks::Table).to_owned()).await
    }
}
