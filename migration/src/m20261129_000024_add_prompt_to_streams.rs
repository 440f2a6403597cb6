use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Streams {
    Table,
    UserId,
    ConversationId,
    CreatedAt,
    Prompt,
    RequestedModel,
    Error,
}

const INDEX: &str = "idx_streams_user_conversation_created";

/// A chat turn keeps what the person asked (`prompt`), the model name they chose (`requested_model`:
/// an alias, `provider/model` or a bare model; `model` is what answered), and why it failed (`error`).
/// The index serves a person's conversation list and one conversation's turns in order.
///
/// One column per ALTER TABLE: SQLite adds a single column per statement.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Streams::Table).add_column(text(Streams::Prompt).default("")).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Streams::Table)
                    .add_column(string_len_null(Streams::RequestedModel, 192))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Streams::Table).add_column(text_null(Streams::Error)).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Streams::Table)
                    .col(Streams::UserId)
                    .col(Streams::ConversationId)
                    .col(Streams::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table(Streams::Table).to_owned()).await?;
        for col in [Streams::Error, Streams::RequestedModel, Streams::Prompt] {
            manager.alter_table(Table::alter().table(Streams::Table).drop_column(col).to_owned()).await?;
        }
        Ok(())
    }
}
