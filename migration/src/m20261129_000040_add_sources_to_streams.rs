use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Streams {
    Table,
    CollectionId,
    Sources,
}

/// A chat turn may search a collection: `collection_id` is the collection attached to it, and
/// `sources` the numbered chunks put into its prompt (`[{n, collection_id, document_id, seq,
/// chunk_id, title}]`), so the answer's citations resolve later. No foreign key: a turn keeps its
/// history when the collection is deleted (its citation links then answer 404).
///
/// One column per ALTER TABLE: SQLite adds a single column per statement.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Streams::Table).add_column(uuid_null(Streams::CollectionId)).to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter().table(Streams::Table).add_column(json_null(Streams::Sources)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in [Streams::Sources, Streams::CollectionId] {
            manager.alter_table(Table::alter().table(Streams::Table).drop_column(col).to_owned()).await?;
        }
        Ok(())
    }
}
