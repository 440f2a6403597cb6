use sea_orm_migration::{prelude::*, schema::*, sea_orm::DatabaseBackend};

use super::m20261129_000013_create_search_collections::SearchCollections;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The pieces a search document is cut into, each indexed for full-text search.
#[derive(DeriveIden)]
enum SearchChunks {
    Table,
    Id,
    DocumentId,
    CollectionId,
    Seq,
    Text,
    TokenCount,
}

#[derive(DeriveIden)]
enum SearchDocuments {
    Table,
}

/// PostgreSQL: a generated `tsvector` over the chunk text (English stemming) with a GIN index.
const PG_UP: &[&str] = &[
    "ALTER TABLE search_chunks ADD COLUMN tsv tsvector \
     GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX idx_search_chunks_tsv ON search_chunks USING GIN (tsv)",
];

/// SQLite: an FTS5 table over `search_chunks.text` (external content, rowid = chunk id, Porter
/// stemming), kept in step by triggers. Rows removed by the foreign keys' cascades fire the delete
/// trigger too, so a deleted collection or document leaves no index entries behind.
const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE search_chunks_fts USING fts5(\
     text, content='search_chunks', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER search_chunks_fts_insert AFTER INSERT ON search_chunks BEGIN \
     INSERT INTO search_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER search_chunks_fts_delete AFTER DELETE ON search_chunks BEGIN \
     INSERT INTO search_chunks_fts(search_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER search_chunks_fts_update AFTER UPDATE ON search_chunks BEGIN \
     INSERT INTO search_chunks_fts(search_chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); \
     INSERT INTO search_chunks_fts(rowid, text) VALUES (new.id, new.text); END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS search_chunks_fts_update",
    "DROP TRIGGER IF EXISTS search_chunks_fts_delete",
    "DROP TRIGGER IF EXISTS search_chunks_fts_insert",
    "DROP TABLE IF EXISTS search_chunks_fts",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SearchChunks::Table)
                    .col(big_pk_auto(SearchChunks::Id))
                    .col(uuid(SearchChunks::DocumentId))
                    .col(uuid(SearchChunks::CollectionId))
                    .col(integer(SearchChunks::Seq))
                    .col(text(SearchChunks::Text))
                    .col(integer(SearchChunks::TokenCount))
                    // A document's chunks go with the document, and a collection's with the collection.
                    .foreign_key(&mut crate::fk(
                        "fk_search_chunks_document",
                        SearchChunks::Table,
                        SearchChunks::DocumentId,
                        SearchDocuments::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut crate::fk(
                        "fk_search_chunks_collection",
                        SearchChunks::Table,
                        SearchChunks::CollectionId,
                        SearchCollections::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_search_chunks_document_seq")
                    .table(SearchChunks::Table)
                    .col(SearchChunks::DocumentId)
                    .col(SearchChunks::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_search_chunks_collection")
                    .table(SearchChunks::Table)
                    .col(SearchChunks::CollectionId)
                    .to_owned(),
            )
            .await?;
        // SeaQuery has no words for full-text indexes: each backend gets its own SQL.
        let statements = match manager.get_database_backend() {
            DatabaseBackend::Postgres => PG_UP,
            DatabaseBackend::Sqlite => SQLITE_UP,
            _ => &[],
        };
        let db = manager.get_connection();
        for sql in statements {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            let db = manager.get_connection();
            for sql in SQLITE_DOWN {
                db.execute_unprepared(sql).await?;
            }
        }
        // PostgreSQL's generated column and GIN index go with the table.
        manager.drop_table(Table::drop().table(SearchChunks::Table).to_owned()).await
    }
}
