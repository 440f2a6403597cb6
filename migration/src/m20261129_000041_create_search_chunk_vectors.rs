use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One embedding per search chunk, for semantic search: the vector as little-endian `f32` bytes
/// (4 × `dims` bytes), scored in process by cosine similarity on both databases. `model` is the
/// collection's embedding model when the vector was made: vectors of another model are not compared
/// with a query's. A side table rather than a column on `search_chunks`, so that writing vectors
/// never touches the chunks' full-text index (its SQLite triggers fire on any update), and scoring
/// reads only vectors.
///
/// pgvector is not used: the vector type needs the extension, which a stock PostgreSQL lacks; the
/// binary column works everywhere.
#[derive(DeriveIden)]
enum SearchChunkVectors {
    Table,
    ChunkId,
    CollectionId,
    DocumentId,
    Model,
    Dims,
    Vector,
}

#[derive(DeriveIden)]
enum SearchChunks {
    Table,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SearchChunkVectors::Table)
                    .col(big_integer(SearchChunkVectors::ChunkId).primary_key())
                    .col(uuid(SearchChunkVectors::CollectionId))
                    .col(uuid(SearchChunkVectors::DocumentId))
                    .col(string_len(SearchChunkVectors::Model, 192))
                    .col(integer(SearchChunkVectors::Dims))
                    .col(blob(SearchChunkVectors::Vector))
                    // A chunk's vector goes with the chunk (and so with its document and collection).
                    .foreign_key(&mut crate::fk(
                        "fk_search_chunk_vectors_chunk",
                        SearchChunkVectors::Table,
                        SearchChunkVectors::ChunkId,
                        SearchChunks::Table,
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // A search reads one collection's vectors of one model, page by page in chunk order.
        manager
            .create_index(
                Index::create()
                    .name("idx_search_chunk_vectors_collection_model")
                    .table(SearchChunkVectors::Table)
                    .col(SearchChunkVectors::CollectionId)
                    .col(SearchChunkVectors::Model)
                    .col(SearchChunkVectors::ChunkId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_search_chunk_vectors_document")
                    .table(SearchChunkVectors::Table)
                    .col(SearchChunkVectors::DocumentId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SearchChunkVectors::Table).to_owned()).await
    }
}
