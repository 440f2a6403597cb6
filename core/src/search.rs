//! Search collections: named sets of documents, cut into chunks and indexed for full-text search.
//!
//! ```text
//! add document ─▶ extract text (txt, md, html, pdf) ─▶ chunk by tokens with overlap
//!              ─▶ one transaction: search_documents row + search_chunks rows
//!                 (the chunks' full-text entries follow: a generated tsvector on PostgreSQL,
//!                  FTS5 triggers on SQLite)
//! search ─▶ words of the query ─▶ websearch_to_tsquery + ts_rank_cd + ts_headline (PostgreSQL)
//!                               │  FTS5 MATCH + bm25() + snippet() (SQLite)
//!        ─▶ top k chunks of the collection (after metadata filters), snippets escaped with <mark>
//! ```
//!
//! A collection's chunk size and overlap apply to documents added or re-indexed after they are
//! set; its embedding model is kept for semantic search, which does not use it yet. Deleting a
//! collection deletes its documents and chunks (and so their index entries); deleting or
//! re-indexing a document replaces its chunks in one transaction.

pub mod chunk;
pub mod extract;
pub mod fts;
#[doc(hidden)]
pub mod testing;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, Statement, TransactionTrait, Value,
};
use serde::Serialize;
use uuid::Uuid;

pub use extract::{Format, MAX_DOCUMENT_BYTES};

use crate::entities::{search_chunks, search_collections, search_documents};

/// Limits on what a collection's settings may be.
pub const CHUNK_SIZE_RANGE: std::ops::RangeInclusive<i64> = 32..=8192;
/// Results a search may ask for, and how many it gets when it does not say.
pub const MAX_K: u64 = 50;
pub const DEFAULT_K: u64 = 5;
/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
const MAX_TAGS: usize = 32;
const MAX_TAG_CHARS: usize = 64;

/// Why a search request was refused. Every message but `Db`'s is safe to show the caller and
/// names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unsupported(String),
    /// A file that does not hold what its name says, or no text.
    #[error("{0}")]
    Unreadable(String),
    #[error("database error: {0}")]
    Db(#[from] DbErr),
}

/// A collection with how much it holds.
#[derive(Clone, Debug, Serialize)]
pub struct CollectionView {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub chunk_size: i32,
    pub chunk_overlap: i32,
    pub embedding_model: Option<String>,
    pub document_count: i64,
    pub chunk_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new collection; unset settings take their defaults (512 tokens, 64 overlap).
#[derive(Clone, Debug, Default)]
pub struct NewCollection {
    pub name: String,
    pub description: Option<String>,
    pub chunk_size: Option<i64>,
    pub chunk_overlap: Option<i64>,
    pub embedding_model: Option<String>,
}

/// Changes to a collection: each `Some` is applied (`embedding_model: Some(None)` clears it).
#[derive(Clone, Debug, Default)]
pub struct CollectionChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub chunk_size: Option<i64>,
    pub chunk_overlap: Option<i64>,
    pub embedding_model: Option<Option<String>>,
}

/// A document to add: its bytes in `format`, and its metadata.
#[derive(Clone, Debug)]
pub struct NewDocument {
    /// Defaults to the file name, else the text's first line.
    pub title: Option<String>,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub format: Format,
    pub file_name: Option<String>,
    pub bytes: Vec<u8>,
}

/// A document without its text.
#[derive(Clone, Debug, Serialize)]
pub struct DocumentSummary {
    pub id: Uuid,
    pub collection_id: Uuid,
    pub title: String,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub metadata: serde_json::Value,
    pub content_type: String,
    pub chunk_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A document with its text and chunks.
#[derive(Clone, Debug, Serialize)]
pub struct DocumentView {
    #[serde(flatten)]
    pub document: DocumentSummary,
    pub content: String,
    pub chunks: Vec<ChunkView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChunkView {
    pub seq: i32,
    pub token_count: i32,
    pub text: String,
}

/// Metadata a search is limited to: documents with every tag (ignoring case), whose source starts
/// with `source`, and whose title contains `title` (ignoring case).
#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub tags: Vec<String>,
    pub source: Option<String>,
    pub title: Option<String>,
}

impl Filters {
    fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.source.is_none() && self.title.is_none()
    }

    fn accepts(&self, doc: &DocMeta) -> bool {
        let tags_ok = self.tags.iter().all(|want| doc.tags.iter().any(|t| t.eq_ignore_ascii_case(want)));
        let source_ok =
            self.source.as_deref().is_none_or(|s| doc.source.as_deref().is_some_and(|d| d.starts_with(s)));
        let title_ok =
            self.title.as_deref().is_none_or(|t| doc.title.to_lowercase().contains(&t.to_lowercase()));
        tags_ok && source_ok && title_ok
    }
}

/// A search: the collection (id or name), the query, how many results (1 to [`MAX_K`]) and filters.
#[derive(Clone, Debug)]
pub struct SearchRequest {
    pub collection: String,
    pub query: String,
    pub k: u64,
    pub filters: Filters,
}

/// One ranked chunk.
#[derive(Clone, Debug, Serialize)]
pub struct SearchHit {
    pub chunk_id: i64,
    pub document_id: Uuid,
    pub seq: i32,
    /// Higher is better; comparable only within one search.
    pub score: f64,
    /// The matching passage as HTML: the text escaped, the matched words in `<mark>`.
    pub snippet: String,
    pub title: String,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub token_count: i32,
}

#[derive(Clone, Debug, Serialize)]
pub struct SearchResults {
    pub collection_id: Uuid,
    /// The words searched for.
    pub terms: Vec<String>,
    pub hits: Vec<SearchHit>,
}

struct DocMeta {
    title: String,
    source: Option<String>,
    tags: Vec<String>,
}

/// Collections, documents and full-text search over one database. Cheap to create: it holds only
/// the connection pool.
#[derive(Clone, Debug)]
pub struct SearchService {
    db: DatabaseConnection,
}

fn not_found_collection(id: impl std::fmt::Display) -> SearchError {
    SearchError::NotFound(format!("there is no search collection '{}'", cut(&id.to_string(), 80)))
}

fn not_found_document(id: Uuid) -> SearchError {
    SearchError::NotFound(format!("there is no document {id} in this collection"))
}

fn cut(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Text for a name-like field: trimmed, 1..=`max` characters, no control characters.
fn field(name: &str, value: &str, max: usize) -> Result<String, SearchError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(SearchError::Invalid(format!("{name}: must not be empty")));
    }
    if v.chars().count() > max {
        return Err(SearchError::Invalid(format!("{name}: must be at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(SearchError::Invalid(format!("{name}: must not contain control characters")));
    }
    Ok(v.to_owned())
}

fn optional(name: &str, value: Option<&str>, max: usize) -> Result<Option<String>, SearchError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        Some(v) => field(name, v, max).map(Some),
        None => Ok(None),
    }
}

fn chunk_settings(size: i64, overlap: i64) -> Result<(i32, i32), SearchError> {
    if !CHUNK_SIZE_RANGE.contains(&size) {
        return Err(SearchError::Invalid(format!(
            "chunk_size: must be from {} to {} tokens, not {size}",
            CHUNK_SIZE_RANGE.start(),
            CHUNK_SIZE_RANGE.end()
        )));
    }
    if overlap < 0 || overlap > size / 2 {
        return Err(SearchError::Invalid(format!(
            "chunk_overlap: must be from 0 to half the chunk size ({}), not {overlap}",
            size / 2
        )));
    }
    Ok((size as i32, overlap as i32))
}

fn tags(raw: &[String]) -> Result<Vec<String>, SearchError> {
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let t = field("tags", t, MAX_TAG_CHARS)?;
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&t)) {
            out.push(t);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(SearchError::Invalid(format!("tags: at most {MAX_TAGS} tags")));
    }
    Ok(out)
}

fn tags_of(json: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(json.clone()).unwrap_or_default()
}

fn summary(d: search_documents::Model) -> DocumentSummary {
    DocumentSummary {
        id: d.id,
        collection_id: d.collection_id,
        title: d.title,
        source: d.source,
        tags: tags_of(&d.tags),
        metadata: d.metadata,
        content_type: d.content_type,
        chunk_count: d.chunk_count,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}

fn unique_name(e: DbErr, name: &str) -> SearchError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            SearchError::Conflict(format!("name: a collection named '{}' already exists", cut(name, 80)))
        }
        _ => SearchError::Db(e),
    }
}

impl SearchService {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Every collection, by name, with its document and chunk counts.
    ///
    /// # Errors
    /// Database errors.
    #[tracing::instrument(skip_all, err)]
    pub async fn collections(&self) -> Result<Vec<CollectionView>, SearchError> {
        let rows = search_collections::Entity::find()
            .order_by_asc(search_collections::Column::Name)
            .all(&self.db)
            .await?;
        let counts = self.counts(None).await?;
        Ok(rows.into_iter().map(|c| view(c, &counts)).collect())
    }

    /// One collection, by id or by name.
    ///
    /// # Errors
    /// [`SearchError::NotFound`]; database errors.
    pub async fn collection(&self, id_or_name: &str) -> Result<CollectionView, SearchError> {
        let c = self.find_collection(id_or_name).await?;
        let counts = self.counts(Some(c.id)).await?;
        Ok(view(c, &counts))
    }

    async fn find_collection(&self, id_or_name: &str) -> Result<search_collections::Model, SearchError> {
        let key = id_or_name.trim();
        let found = match Uuid::parse_str(key) {
            Ok(id) => search_collections::Entity::find_by_id(id).one(&self.db).await?,
            Err(_) => {
                search_collections::Entity::find()
                    .filter(search_collections::Column::Name.eq(key))
                    .one(&self.db)
                    .await?
            }
        };
        found.ok_or_else(|| not_found_collection(key))
    }

    async fn counts(&self, only: Option<Uuid>) -> Result<HashMap<Uuid, (i64, i64)>, SearchError> {
        let backend = self.db.get_database_backend();
        let mut sql = "SELECT collection_id, COUNT(*) AS documents, COALESCE(SUM(chunk_count), 0) AS chunks \
                       FROM search_documents"
            .to_string();
        let mut values: Vec<Value> = Vec::new();
        if let Some(id) = only {
            sql.push_str(if backend == DatabaseBackend::Postgres {
                " WHERE collection_id = $1"
            } else {
                " WHERE collection_id = ?"
            });
            values.push(id.into());
        }
        sql.push_str(" GROUP BY collection_id");
        let rows = self.db.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
        let mut out = HashMap::new();
        for r in rows {
            let id: Uuid = r.try_get("", "collection_id")?;
            out.insert(id, (r.try_get::<i64>("", "documents")?, r.try_get::<i64>("", "chunks")?));
        }
        Ok(out)
    }

    /// Creates a collection.
    ///
    /// # Errors
    /// [`SearchError::Invalid`] naming the field; [`SearchError::Conflict`] when the name is taken;
    /// database errors.
    #[tracing::instrument(skip_all, fields(name = %new.name), err)]
    pub async fn create_collection(
        &self,
        actor: Option<Uuid>,
        new: NewCollection,
    ) -> Result<CollectionView, SearchError> {
        let name = field("name", &new.name, 128)?;
        let description = new.description.as_deref().map(str::trim).unwrap_or_default().to_owned();
        if description.chars().count() > 2000 {
            return Err(SearchError::Invalid("description: must be at most 2000 characters".into()));
        }
        let (size, overlap) = chunk_settings(new.chunk_size.unwrap_or(512), new.chunk_overlap.unwrap_or(64))?;
        let embedding_model = optional("embedding_model", new.embedding_model.as_deref(), 192)?;
        let now = Utc::now();
        let row = search_collections::ActiveModel {
            id: Set(Uuid::now_v7()),
            name: Set(name.clone()),
            description: Set(description),
            chunk_size: Set(size),
            chunk_overlap: Set(overlap),
            embedding_model: Set(embedding_model),
            created_by: Set(actor),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&self.db)
        .await
        .map_err(|e| unique_name(e, &name))?;
        Ok(view(row, &HashMap::new()))
    }

    /// Renames a collection or changes its settings.
    ///
    /// # Errors
    /// [`SearchError::NotFound`], [`SearchError::Invalid`], [`SearchError::Conflict`]; database errors.
    #[tracing::instrument(skip_all, fields(%id), err)]
    pub async fn update_collection(
        &self,
        id: Uuid,
        changes: CollectionChanges,
    ) -> Result<CollectionView, SearchError> {
        let current = search_collections::Entity::find_by_id(id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found_collection(id))?;
        let (size, overlap) = chunk_settings(
            changes.chunk_size.unwrap_or(i64::from(current.chunk_size)),
            changes.chunk_overlap.unwrap_or(i64::from(current.chunk_overlap)),
        )?;
        let mut row: search_collections::ActiveModel = current.clone().into();
        let mut name = current.name.clone();
        if let Some(n) = &changes.name {
            name = field("name", n, 128)?;
            row.name = Set(name.clone());
        }
        if let Some(d) = &changes.description {
            if d.trim().chars().count() > 2000 {
                return Err(SearchError::Invalid("description: must be at most 2000 characters".into()));
            }
            row.description = Set(d.trim().to_owned());
        }
        row.chunk_size = Set(size);
        row.chunk_overlap = Set(overlap);
        if let Some(m) = &changes.embedding_model {
            row.embedding_model = Set(optional("embedding_model", m.as_deref(), 192)?);
        }
        row.updated_at = Set(Utc::now());
        let row = row.update(&self.db).await.map_err(|e| unique_name(e, &name))?;
        let counts = self.counts(Some(id)).await?;
        Ok(view(row, &counts))
    }

    /// Deletes a collection with its documents and their chunks, in one transaction.
    ///
    /// # Errors
    /// [`SearchError::NotFound`]; database errors.
    #[tracing::instrument(skip_all, fields(%id), err)]
    pub async fn delete_collection(&self, id: Uuid) -> Result<(), SearchError> {
        let txn = self.db.begin().await?;
        if search_collections::Entity::find_by_id(id).one(&txn).await?.is_none() {
            return Err(not_found_collection(id));
        }
        // The foreign keys cascade too; deleting in order keeps the index triggers' work explicit.
        search_chunks::Entity::delete_many()
            .filter(search_chunks::Column::CollectionId.eq(id))
            .exec(&txn)
            .await?;
        search_documents::Entity::delete_many()
            .filter(search_documents::Column::CollectionId.eq(id))
            .exec(&txn)
            .await?;
        search_collections::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Adds a document: extracts its text, cuts it into chunks with the collection's settings and
    /// stores both in one transaction, so a refused or failed document leaves nothing behind.
    ///
    /// # Errors
    /// [`SearchError::NotFound`] for the collection; [`SearchError::Invalid`] for metadata;
    /// [`SearchError::TooLarge`] and [`SearchError::Unreadable`] for the content; database errors.
    #[tracing::instrument(skip_all, fields(%collection_id, format = ?doc.format, bytes = doc.bytes.len()), err)]
    pub async fn add_document(
        &self,
        collection_id: Uuid,
        doc: NewDocument,
    ) -> Result<DocumentView, SearchError> {
        let collection = search_collections::Entity::find_by_id(collection_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found_collection(collection_id))?;
        let source = optional("source", doc.source.as_deref(), 1024)?;
        let tags = tags(&doc.tags)?;
        let file_name = optional("file_name", doc.file_name.as_deref(), 256)?;
        let format = doc.format;
        let size_bytes = doc.bytes.len();
        let bytes = doc.bytes;
        let text = tokio::task::spawn_blocking(move || extract::extract(format, &bytes))
            .await
            .map_err(|_| SearchError::Unreadable("the document could not be read".into()))??;
        let title = match doc.title.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => field("title", t, 256)?,
            None => {
                let fallback =
                    file_name.clone().unwrap_or_else(|| text.lines().next().unwrap_or("").to_owned());
                cut(fallback.trim(), 256)
            }
        };
        let mut metadata =
            serde_json::json!({ "size_bytes": size_bytes, "characters": text.chars().count() });
        if let Some(f) = &file_name {
            metadata["file_name"] = serde_json::json!(f);
        }
        let pieces = chunks_of(&text, &collection).await?;
        let now = Utc::now();
        let id = Uuid::now_v7();
        let txn = self.db.begin().await?;
        let row = search_documents::ActiveModel {
            id: Set(id),
            collection_id: Set(collection_id),
            title: Set(title),
            source: Set(source),
            tags: Set(serde_json::json!(tags)),
            metadata: Set(metadata),
            content_type: Set(format.content_type().to_owned()),
            content: Set(text),
            chunk_count: Set(pieces.len() as i32),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        let chunks = insert_chunks(&txn, &row, &pieces).await?;
        txn.commit().await?;
        let content = row.content.clone();
        Ok(DocumentView { document: summary(row), content, chunks })
    }

    /// A collection's documents, newest first, without their text.
    ///
    /// # Errors
    /// [`SearchError::NotFound`]; database errors.
    pub async fn documents(&self, collection_id: Uuid) -> Result<Vec<DocumentSummary>, SearchError> {
        self.require_collection(collection_id).await?;
        let rows = search_documents::Entity::find()
            .filter(search_documents::Column::CollectionId.eq(collection_id))
            .order_by_desc(search_documents::Column::CreatedAt)
            .order_by_desc(search_documents::Column::Id)
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(summary).collect())
    }

    /// One document with its text and chunks.
    ///
    /// # Errors
    /// [`SearchError::NotFound`] for the collection or the document; database errors.
    pub async fn document(&self, collection_id: Uuid, id: Uuid) -> Result<DocumentView, SearchError> {
        let row = self.find_document(collection_id, id).await?;
        let chunks = search_chunks::Entity::find()
            .filter(search_chunks::Column::DocumentId.eq(id))
            .order_by_asc(search_chunks::Column::Seq)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| ChunkView { seq: c.seq, token_count: c.token_count, text: c.text })
            .collect();
        let content = row.content.clone();
        Ok(DocumentView { document: summary(row), content, chunks })
    }

    /// Deletes a document and its chunks.
    ///
    /// # Errors
    /// [`SearchError::NotFound`]; database errors.
    #[tracing::instrument(skip_all, fields(%collection_id, %id), err)]
    pub async fn delete_document(&self, collection_id: Uuid, id: Uuid) -> Result<(), SearchError> {
        self.find_document(collection_id, id).await?;
        let txn = self.db.begin().await?;
        search_chunks::Entity::delete_many()
            .filter(search_chunks::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        search_documents::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Cuts a document's stored text again with the collection's current settings, replacing its
    /// chunks in one transaction.
    ///
    /// # Errors
    /// [`SearchError::NotFound`]; database errors.
    #[tracing::instrument(skip_all, fields(%collection_id, %id), err)]
    pub async fn reindex_document(
        &self,
        collection_id: Uuid,
        id: Uuid,
    ) -> Result<DocumentSummary, SearchError> {
        let collection = search_collections::Entity::find_by_id(collection_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found_collection(collection_id))?;
        let doc = self.find_document(collection_id, id).await?;
        let pieces = chunks_of(&doc.content, &collection).await?;
        let txn = self.db.begin().await?;
        search_chunks::Entity::delete_many()
            .filter(search_chunks::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        insert_chunks(&txn, &doc, &pieces).await?;
        let mut row: search_documents::ActiveModel = doc.into();
        row.chunk_count = Set(pieces.len() as i32);
        row.updated_at = Set(Utc::now());
        let row = row.update(&txn).await?;
        txn.commit().await?;
        Ok(summary(row))
    }

    /// Re-indexes every document of a collection with its current settings (after a change of
    /// chunk size or overlap), each document in its own transaction.
    ///
    /// # Errors
    /// [`SearchError::NotFound`]; database errors (documents done before one stay done).
    #[tracing::instrument(skip_all, fields(%collection_id), err)]
    pub async fn reindex_collection(&self, collection_id: Uuid) -> Result<CollectionView, SearchError> {
        self.require_collection(collection_id).await?;
        let ids: Vec<Uuid> = search_documents::Entity::find()
            .select_only()
            .column(search_documents::Column::Id)
            .filter(search_documents::Column::CollectionId.eq(collection_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        for id in ids {
            match self.reindex_document(collection_id, id).await {
                // Deleted meanwhile.
                Ok(_) | Err(SearchError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.collection(&collection_id.to_string()).await
    }

    async fn require_collection(&self, id: Uuid) -> Result<(), SearchError> {
        let found = search_collections::Entity::find_by_id(id)
            .select_only()
            .column(search_collections::Column::Id)
            .into_tuple::<Uuid>()
            .one(&self.db)
            .await?;
        found.map(|_| ()).ok_or_else(|| not_found_collection(id))
    }

    async fn find_document(
        &self,
        collection_id: Uuid,
        id: Uuid,
    ) -> Result<search_documents::Model, SearchError> {
        self.require_collection(collection_id).await?;
        search_documents::Entity::find_by_id(id)
            .filter(search_documents::Column::CollectionId.eq(collection_id))
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found_document(id))
    }

    /// The `k` chunks of a collection that best match the query's words, with snippets.
    ///
    /// # Errors
    /// [`SearchError::Invalid`] for an empty or overlong query, a query without words, or `k` out
    /// of range; [`SearchError::NotFound`] for the collection; database errors.
    #[tracing::instrument(skip_all, fields(collection = %req.collection, k = req.k), err)]
    pub async fn search(&self, req: SearchRequest) -> Result<SearchResults, SearchError> {
        let query = req.query.trim();
        if query.is_empty() {
            return Err(SearchError::Invalid("query: must not be empty".into()));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(SearchError::Invalid(format!("query: must be at most {MAX_QUERY_CHARS} characters")));
        }
        if !(1..=MAX_K).contains(&req.k) {
            return Err(SearchError::Invalid(format!("k: must be from 1 to {MAX_K}, not {}", req.k)));
        }
        let terms = fts::terms(query);
        if terms.is_empty() {
            return Err(SearchError::Invalid("query: has no words to search for (letters or digits)".into()));
        }
        let collection = self.find_collection(&req.collection).await?;
        // Documents' metadata (not their text): for the filters and for the results.
        let docs: HashMap<Uuid, DocMeta> = search_documents::Entity::find()
            .select_only()
            .columns([
                search_documents::Column::Id,
                search_documents::Column::Title,
                search_documents::Column::Source,
            ])
            .column(search_documents::Column::Tags)
            .filter(search_documents::Column::CollectionId.eq(collection.id))
            .into_tuple::<(Uuid, String, Option<String>, serde_json::Value)>()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|(id, title, source, tags)| (id, DocMeta { title, source, tags: tags_of(&tags) }))
            .collect();
        let only: Option<Vec<Uuid>> = if req.filters.is_empty() {
            None
        } else {
            let ids: Vec<Uuid> =
                docs.iter().filter(|(_, d)| req.filters.accepts(d)).map(|(id, _)| *id).collect();
            if ids.is_empty() {
                return Ok(SearchResults { collection_id: collection.id, terms, hits: Vec::new() });
            }
            Some(ids)
        };
        let stmt =
            ranked_statement(self.db.get_database_backend(), collection.id, &terms, req.k, only.as_deref());
        let rows = self.db.query_all_raw(stmt).await?;
        let mut hits = Vec::with_capacity(rows.len());
        for r in rows {
            let document_id: Uuid = r.try_get("", "document_id")?;
            let Some(meta) = docs.get(&document_id) else { continue };
            let snippet: String = r.try_get("", "snippet")?;
            hits.push(SearchHit {
                chunk_id: r.try_get("", "id")?,
                document_id,
                seq: r.try_get("", "seq")?,
                score: r.try_get("", "score")?,
                snippet: fts::highlight(&snippet),
                title: meta.title.clone(),
                source: meta.source.clone(),
                tags: meta.tags.clone(),
                token_count: r.try_get("", "token_count")?,
            });
        }
        Ok(SearchResults { collection_id: collection.id, terms, hits })
    }
}

fn view(c: search_collections::Model, counts: &HashMap<Uuid, (i64, i64)>) -> CollectionView {
    let (document_count, chunk_count) = counts.get(&c.id).copied().unwrap_or((0, 0));
    CollectionView {
        id: c.id,
        name: c.name,
        description: c.description,
        chunk_size: c.chunk_size,
        chunk_overlap: c.chunk_overlap,
        embedding_model: c.embedding_model,
        document_count,
        chunk_count,
        created_at: c.created_at,
        updated_at: c.updated_at,
    }
}

/// Chunks `text` with the collection's settings, off the async threads (token counting is CPU work).
async fn chunks_of(
    text: &str,
    collection: &search_collections::Model,
) -> Result<Vec<chunk::Piece>, SearchError> {
    let text = text.to_owned();
    let (size, overlap) = (collection.chunk_size.max(1) as usize, collection.chunk_overlap.max(0) as usize);
    tokio::task::spawn_blocking(move || chunk::chunk(&text, size, overlap))
        .await
        .map_err(|_| SearchError::Unreadable("the document could not be cut into chunks".into()))
}

async fn insert_chunks(
    txn: &impl ConnectionTrait,
    doc: &search_documents::Model,
    pieces: &[chunk::Piece],
) -> Result<Vec<ChunkView>, SearchError> {
    for (batch_no, batch) in pieces.chunks(200).enumerate() {
        let rows = batch.iter().enumerate().map(|(i, p)| search_chunks::ActiveModel {
            document_id: Set(doc.id),
            collection_id: Set(doc.collection_id),
            seq: Set((batch_no * 200 + i) as i32),
            text: Set(p.text.clone()),
            token_count: Set(p.tokens as i32),
            ..Default::default()
        });
        search_chunks::Entity::insert_many(rows).exec(txn).await?;
    }
    Ok(pieces
        .iter()
        .enumerate()
        .map(|(i, p)| ChunkView { seq: i as i32, token_count: p.tokens as i32, text: p.text.clone() })
        .collect())
}

/// The ranked query for one backend. Every value from the caller is a bound parameter; the MATCH /
/// tsquery text is built from [`fts::terms`], which holds only letters and digits.
fn ranked_statement(
    backend: DatabaseBackend,
    collection: Uuid,
    terms: &[String],
    k: u64,
    only: Option<&[Uuid]>,
) -> Statement {
    let mut values: Vec<Value> = Vec::new();
    match backend {
        DatabaseBackend::Postgres => {
            values.push(fts::websearch(terms).into());
            values.push(collection.into());
            values.push((k as i64).into());
            let mut filter = String::new();
            if let Some(ids) = only {
                let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 4)).collect();
                filter = format!(" AND c.document_id IN ({})", marks.join(", "));
                values.extend(ids.iter().map(|id| Value::from(*id)));
            }
            let options = format!(
                "StartSel={}, StopSel={}, MaxWords=40, MinWords=15, MaxFragments=2, FragmentDelimiter=\" … \"",
                fts::MARK_START,
                fts::MARK_END
            );
            let sql = format!(
                "WITH q AS (SELECT websearch_to_tsquery('english', $1) AS q), \
                 top AS (SELECT c.id, ts_rank_cd(c.tsv, q.q)::float8 AS score FROM search_chunks c, q \
                         WHERE c.collection_id = $2 AND c.tsv @@ q.q{filter} \
                         ORDER BY score DESC, c.id LIMIT $3) \
                 SELECT c.id, c.document_id, c.seq, c.token_count, top.score, \
                        ts_headline('english', c.text, q.q, '{options}') AS snippet \
                 FROM top JOIN search_chunks c ON c.id = top.id, q ORDER BY top.score DESC, c.id"
            );
            Statement::from_sql_and_values(backend, sql, values)
        }
        _ => {
            values.push(fts::fts5_match(terms).into());
            values.push(collection.into());
            let mut filter = String::new();
            if let Some(ids) = only {
                filter = format!(" AND c.document_id IN ({})", vec!["?"; ids.len()].join(", "));
                values.extend(ids.iter().map(|id| Value::from(*id)));
            }
            values.push((k as i64).into());
            let sql = format!(
                "SELECT c.id, c.document_id, c.seq, c.token_count, -bm25(search_chunks_fts) AS score, \
                        snippet(search_chunks_fts, 0, char(1), char(2), ' … ', 32) AS snippet \
                 FROM search_chunks_fts JOIN search_chunks c ON c.id = search_chunks_fts.rowid \
                 WHERE search_chunks_fts MATCH ? AND c.collection_id = ?{filter} \
                 ORDER BY bm25(search_chunks_fts), c.id LIMIT ?"
            );
            Statement::from_sql_and_values(backend, sql, values)
        }
    }
}
