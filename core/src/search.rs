//! Search collections: named sets of documents, cut into chunks and indexed for full-text search,
//! and, when a collection has an embedding model, for semantic search.
//!
//! ```text
//! add document ─▶ extract text (txt, md, html, pdf) ─▶ chunk by tokens with overlap
//!              ─▶ embed the chunks through the gateway (when the collection has a model)
//!              ─▶ one transaction: search_documents row + search_chunks rows (+ their vectors)
//!                 (the chunks' full-text entries follow: a generated tsvector on PostgreSQL,
//!                  FTS5 triggers on SQLite)
//! search ─▶ words of the query ─▶ websearch_to_tsquery + ts_rank_cd + ts_headline (PostgreSQL)
//!                               │  FTS5 MATCH + bm25() + snippet() (SQLite)
//!        ─▶ (semantic, hybrid) one embedding of the query, cosine with the stored vectors
//!        ─▶ (hybrid) reciprocal rank fusion of the two rankings
//!        ─▶ top k chunks of the collection (after metadata filters), snippets escaped with <mark>
//! ```
//!
//! A collection's chunk size and overlap apply to documents added or re-indexed after they are
//! set. Its embedding model is called through the gateway (see [`vector`]); when that fails, a
//! document is still stored (its chunks wait for vectors until a re-index), and a search falls
//! back to full text and says why in [`SearchResults::degraded`]. Changing the model drops the old
//! vectors and embeds the chunks again. Deleting a collection deletes its documents, chunks and
//! vectors (and so their index entries); deleting or re-indexing a document replaces its chunks
//! and vectors in one transaction.

pub mod chunk;
pub mod extract;
pub mod fts;
#[doc(hidden)]
pub mod testing;
pub mod vector;

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection,
    DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr, Statement,
    TransactionTrait, Value,
};
use serde::Serialize;
use uuid::Uuid;

pub use extract::{Format, MAX_DOCUMENT_BYTES};

use crate::entities::{search_chunk_vectors, search_chunks, search_collections, search_documents};
pub use vector::{EmbedError, Embedder, GatewayEmbedder};

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

/// How a search ranks chunks: by the words of the query ([`SearchMode::Fulltext`]), by the
/// similarity of embeddings ([`SearchMode::Semantic`]), or both, fused by reciprocal rank
/// ([`SearchMode::Hybrid`]). Without a mode, a collection with an embedding model is searched in
/// hybrid mode and one without in full-text mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    #[default]
    Fulltext,
    Semantic,
    Hybrid,
}

impl SearchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Fulltext => "fulltext",
            SearchMode::Semantic => "semantic",
            SearchMode::Hybrid => "hybrid",
        }
    }

    /// A mode by name: `fulltext`, `semantic` or `hybrid` (ignoring case).
    ///
    /// # Errors
    /// [`SearchError::Invalid`] naming the choices.
    pub fn from_name(name: &str) -> Result<Self, SearchError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "fulltext" | "full-text" | "full_text" => Ok(SearchMode::Fulltext),
            "semantic" => Ok(SearchMode::Semantic),
            "hybrid" => Ok(SearchMode::Hybrid),
            _ => Err(SearchError::Invalid(format!(
                "mode: must be fulltext, semantic or hybrid, not '{}'",
                cut(name, 40)
            ))),
        }
    }
}

impl std::fmt::Display for SearchMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a document's or collection's chunks are embedded with its model, after an operation
/// that embeds: `embedded` chunks have a vector, `pending` do not yet (a re-index embeds them), and
/// `error` says why the embedding model could not be used this time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EmbeddingReport {
    pub model: String,
    pub embedded: u64,
    pub pending: u64,
    pub error: Option<String>,
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
    /// Chunks with a vector from the current embedding model.
    pub embedded_chunk_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// After a change of model or a re-index: how the embedding went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingReport>,
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
    /// After adding or re-indexing in a collection with an embedding model: how the embedding went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<EmbeddingReport>,
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
#[derive(Clone, Debug, Default, Serialize)]
pub struct SearchHit {
    pub chunk_id: i64,
    pub document_id: Uuid,
    pub seq: i32,
    /// Higher is better; comparable only within one search. Full-text mode: the database's rank
    /// (bm25 on SQLite, ts_rank_cd on PostgreSQL); semantic: the cosine similarity; hybrid: the
    /// reciprocal rank fusion score, Σ 1 / (60 + rank).
    pub score: f64,
    /// The full-text rank score, when the words of the query matched this chunk.
    pub fulltext_score: Option<f64>,
    /// The cosine similarity of the chunk's embedding to the query's (semantic and hybrid modes).
    pub semantic_score: Option<f64>,
    /// The matching passage as HTML: the text escaped, the matched words in `<mark>`.
    pub snippet: String,
    pub title: String,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub token_count: i32,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SearchResults {
    pub collection_id: Uuid,
    /// The words searched for.
    pub terms: Vec<String>,
    pub hits: Vec<SearchHit>,
    /// The ranking these hits come from: the mode asked for, or `fulltext` when degraded.
    pub mode: SearchMode,
    /// Why a semantic or hybrid search fell back to full text (the embedding model failed), or
    /// `None` when it did not.
    pub degraded: Option<String>,
    /// Chunks searched by words only because they have no vector of the model yet (semantic and
    /// hybrid modes; a re-index embeds them).
    pub pending_vectors: u64,
}

struct DocMeta {
    title: String,
    source: Option<String>,
    tags: Vec<String>,
    chunk_count: i64,
}

/// Collections, documents and search over one database. Cheap to create: it holds the connection
/// pool and, for semantic search, an [`Embedder`] (the gateway, on behalf of the caller). Without
/// one, collections with an embedding model are searched by words, and say so.
#[derive(Clone, Debug)]
pub struct SearchService {
    db: DatabaseConnection,
    embedder: Option<Arc<dyn Embedder>>,
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
        embedding: None,
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
        Self { db, embedder: None }
    }

    /// This service, embedding texts with `embedder`.
    #[must_use]
    pub fn with_embedder(mut self, embedder: Arc<dyn Embedder>) -> Self {
        self.embedder = Some(embedder);
        self
    }

    /// This service, embedding through the gateway on behalf of `caller` (whose budgets and
    /// request log then count the embeddings).
    #[must_use]
    pub fn with_gateway(self, gateway: Arc<crate::gateway::Gateway>, caller: crate::gateway::Caller) -> Self {
        self.with_embedder(Arc::new(GatewayEmbedder::new(gateway, caller)))
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

    /// Per collection: documents, chunks, and chunks with a vector of the collection's model.
    async fn counts(&self, only: Option<Uuid>) -> Result<HashMap<Uuid, Counts>, SearchError> {
        let backend = self.db.get_database_backend();
        let mut sql = "SELECT collection_id, COUNT(*) AS documents, COALESCE(SUM(chunk_count), 0) AS chunks \
                       FROM search_documents"
            .to_string();
        let mut vector_sql = "SELECT v.collection_id, COUNT(*) AS vectors FROM search_chunk_vectors v \
                              JOIN search_collections c ON c.id = v.collection_id AND c.embedding_model = v.model"
            .to_string();
        let mut values: Vec<Value> = Vec::new();
        if let Some(id) = only {
            let mark = if backend == DatabaseBackend::Postgres { "$1" } else { "?" };
            sql.push_str(&format!(" WHERE collection_id = {mark}"));
            vector_sql.push_str(&format!(" WHERE v.collection_id = {mark}"));
            values.push(id.into());
        }
        sql.push_str(" GROUP BY collection_id");
        vector_sql.push_str(" GROUP BY v.collection_id");
        let rows =
            self.db.query_all_raw(Statement::from_sql_and_values(backend, sql, values.clone())).await?;
        let mut out: HashMap<Uuid, Counts> = HashMap::new();
        for r in rows {
            let id: Uuid = r.try_get("", "collection_id")?;
            let c = out.entry(id).or_default();
            c.documents = r.try_get::<i64>("", "documents")?;
            c.chunks = r.try_get::<i64>("", "chunks")?;
        }
        let rows = self.db.query_all_raw(Statement::from_sql_and_values(backend, vector_sql, values)).await?;
        for r in rows {
            let id: Uuid = r.try_get("", "collection_id")?;
            out.entry(id).or_default().vectors = r.try_get::<i64>("", "vectors")?;
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

    /// Renames a collection or changes its settings. A new embedding model drops the old model's
    /// vectors and embeds every chunk again (what could not be embedded is reported in
    /// [`CollectionView::embedding`] and waits for a re-index).
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
        let mut model = current.embedding_model.clone();
        if let Some(m) = &changes.embedding_model {
            model = optional("embedding_model", m.as_deref(), 192)?;
            row.embedding_model = Set(model.clone());
        }
        row.updated_at = Set(Utc::now());
        let model_changed = model != current.embedding_model;
        let txn = self.db.begin().await?;
        let row = row.update(&txn).await.map_err(|e| unique_name(e, &name))?;
        if model_changed {
            // The old model's vectors cannot be compared with the new one's queries.
            search_chunk_vectors::Entity::delete_many()
                .filter(search_chunk_vectors::Column::CollectionId.eq(id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        let report = match (&model, model_changed) {
            (Some(m), true) => Some(self.embed_pending(id, m).await?),
            _ => None,
        };
        let counts = self.counts(Some(id)).await?;
        let mut out = view(row, &counts);
        out.embedding = report;
        Ok(out)
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
        search_chunk_vectors::Entity::delete_many()
            .filter(search_chunk_vectors::Column::CollectionId.eq(id))
            .exec(&txn)
            .await?;
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

    /// Adds a document: extracts its text, cuts it into chunks with the collection's settings,
    /// embeds them when the collection has an embedding model, and stores all of it in one
    /// transaction, so a refused or failed document leaves nothing behind. A failing embedding
    /// model does not refuse the document: its chunks are stored without vectors, and
    /// [`DocumentSummary::embedding`] says why.
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
        let (vectors, report) = self.embed_pieces(&collection, &pieces, &HashMap::new(), true).await;
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
        if let Some(model) = &collection.embedding_model {
            insert_vectors(&txn, &row, model, &vectors).await?;
        }
        txn.commit().await?;
        let content = row.content.clone();
        let mut document = summary(row);
        document.embedding = report;
        Ok(DocumentView { document, content, chunks })
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

    /// Deletes a document with its chunks and their vectors.
    ///
    /// # Errors
    /// [`SearchError::NotFound`]; database errors.
    #[tracing::instrument(skip_all, fields(%collection_id, %id), err)]
    pub async fn delete_document(&self, collection_id: Uuid, id: Uuid) -> Result<(), SearchError> {
        self.find_document(collection_id, id).await?;
        let txn = self.db.begin().await?;
        search_chunk_vectors::Entity::delete_many()
            .filter(search_chunk_vectors::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        search_chunks::Entity::delete_many()
            .filter(search_chunks::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        search_documents::Entity::delete_by_id(id).exec(&txn).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Cuts a document's stored text again with the collection's current settings, replacing its
    /// chunks (and their vectors) in one transaction. Chunks whose text is unchanged keep their
    /// vectors; the others are embedded when the collection has an embedding model.
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
        self.reindex(&collection, doc, true).await
    }

    async fn reindex(
        &self,
        collection: &search_collections::Model,
        doc: search_documents::Model,
        try_embedder: bool,
    ) -> Result<DocumentSummary, SearchError> {
        let id = doc.id;
        let pieces = chunks_of(&doc.content, collection).await?;
        let known = match &collection.embedding_model {
            Some(model) => self.stored_vectors(id, model).await?,
            None => HashMap::new(),
        };
        let (vectors, report) = self.embed_pieces(collection, &pieces, &known, try_embedder).await;
        let txn = self.db.begin().await?;
        search_chunk_vectors::Entity::delete_many()
            .filter(search_chunk_vectors::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        search_chunks::Entity::delete_many()
            .filter(search_chunks::Column::DocumentId.eq(id))
            .exec(&txn)
            .await?;
        insert_chunks(&txn, &doc, &pieces).await?;
        if let Some(model) = &collection.embedding_model {
            insert_vectors(&txn, &doc, model, &vectors).await?;
        }
        let mut row: search_documents::ActiveModel = doc.into();
        row.chunk_count = Set(pieces.len() as i32);
        row.updated_at = Set(Utc::now());
        let row = row.update(&txn).await?;
        txn.commit().await?;
        let mut out = summary(row);
        out.embedding = report;
        Ok(out)
    }

    /// Re-indexes every document of a collection with its current settings (after a change of
    /// chunk size or overlap), each document in its own transaction, and embeds the chunks that
    /// have no vector yet. Once the embedding model fails, the remaining documents are cut without
    /// calling it again, and [`CollectionView::embedding`] says why.
    ///
    /// # Errors
    /// [`SearchError::NotFound`]; database errors (documents done before one stay done).
    #[tracing::instrument(skip_all, fields(%collection_id), err)]
    pub async fn reindex_collection(&self, collection_id: Uuid) -> Result<CollectionView, SearchError> {
        let collection = search_collections::Entity::find_by_id(collection_id)
            .one(&self.db)
            .await?
            .ok_or_else(|| not_found_collection(collection_id))?;
        let ids: Vec<Uuid> = search_documents::Entity::find()
            .select_only()
            .column(search_documents::Column::Id)
            .filter(search_documents::Column::CollectionId.eq(collection_id))
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut error: Option<String> = None;
        for id in ids {
            let doc = match self.find_document(collection_id, id).await {
                Ok(doc) => doc,
                // Deleted meanwhile.
                Err(SearchError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let done = self.reindex(&collection, doc, error.is_none()).await?;
            if error.is_none() {
                error = done.embedding.and_then(|r| r.error);
            }
        }
        let report = match &collection.embedding_model {
            Some(model) => {
                let mut report = self.embedding_report(collection_id, model).await?;
                report.error = error;
                Some(report)
            }
            None => None,
        };
        let mut out = self.collection(&collection_id.to_string()).await?;
        out.embedding = report;
        Ok(out)
    }

    /// Embeds the chunks of a collection that have no vector of `model` yet, in pages, and says
    /// how far it got.
    ///
    /// # Errors
    /// Database errors; a failing embedding model is reported, not an error.
    #[tracing::instrument(skip(self), err)]
    pub async fn embed_pending(
        &self,
        collection_id: Uuid,
        model: &str,
    ) -> Result<EmbeddingReport, SearchError> {
        let mut error = None;
        match &self.embedder {
            None => error = Some(NO_EMBEDDER.to_owned()),
            Some(embedder) => {
                let backend = self.db.get_database_backend();
                let mut after = i64::MIN;
                loop {
                    let stmt = Statement::from_sql_and_values(
                        backend,
                        marks(
                            backend,
                            "SELECT c.id, c.document_id, c.text, c.token_count FROM search_chunks c \
                             WHERE c.collection_id = ? AND c.id > ? AND NOT EXISTS \
                             (SELECT 1 FROM search_chunk_vectors v WHERE v.chunk_id = c.id AND v.model = ?) \
                             ORDER BY c.id LIMIT 256",
                        ),
                        [Value::from(collection_id), Value::from(after), Value::from(model)],
                    );
                    let rows = self.db.query_all_raw(stmt).await?;
                    if rows.is_empty() {
                        break;
                    }
                    let mut ids = Vec::with_capacity(rows.len());
                    let mut texts = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let id: i64 = r.try_get("", "id")?;
                        let document_id: Uuid = r.try_get("", "document_id")?;
                        let tokens: i32 = r.try_get("", "token_count")?;
                        ids.push((id, document_id));
                        texts.push((r.try_get::<String>("", "text")?, tokens.max(0) as usize));
                        after = id;
                    }
                    match vector::embed_batched(embedder.as_ref(), model, &texts).await {
                        Ok(vectors) => {
                            let rows =
                                ids.into_iter().zip(vectors).map(|((chunk_id, document_id), mut v)| {
                                    vector::normalise(&mut v);
                                    vector_row(chunk_id, collection_id, document_id, model, &v)
                                });
                            search_chunk_vectors::Entity::insert_many(rows)
                                .on_conflict(
                                    sea_orm::sea_query::OnConflict::column(
                                        search_chunk_vectors::Column::ChunkId,
                                    )
                                    .update_columns([
                                        search_chunk_vectors::Column::Model,
                                        search_chunk_vectors::Column::Dims,
                                        search_chunk_vectors::Column::Vector,
                                    ])
                                    .to_owned(),
                                )
                                .exec_without_returning(&self.db)
                                .await?;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, %collection_id, "chunks could not be embedded");
                            error = Some(e.0);
                            break;
                        }
                    }
                }
            }
        }
        let mut report = self.embedding_report(collection_id, model).await?;
        report.error = error;
        Ok(report)
    }

    /// How many of a collection's chunks have a vector of `model`, and how many do not.
    async fn embedding_report(
        &self,
        collection_id: Uuid,
        model: &str,
    ) -> Result<EmbeddingReport, SearchError> {
        let embedded = search_chunk_vectors::Entity::find()
            .filter(search_chunk_vectors::Column::CollectionId.eq(collection_id))
            .filter(search_chunk_vectors::Column::Model.eq(model))
            .count(&self.db)
            .await?;
        let chunks = search_chunks::Entity::find()
            .filter(search_chunks::Column::CollectionId.eq(collection_id))
            .count(&self.db)
            .await?;
        Ok(EmbeddingReport {
            model: model.to_owned(),
            embedded,
            pending: chunks.saturating_sub(embedded),
            error: None,
        })
    }

    /// A document's stored vectors of `model`, by the text of their chunk (for re-use when the
    /// document is cut again).
    async fn stored_vectors(
        &self,
        document_id: Uuid,
        model: &str,
    ) -> Result<HashMap<String, Vec<u8>>, SearchError> {
        let backend = self.db.get_database_backend();
        let stmt = Statement::from_sql_and_values(
            backend,
            marks(
                backend,
                "SELECT c.text, v.vector FROM search_chunks c JOIN search_chunk_vectors v ON v.chunk_id = c.id \
                 WHERE c.document_id = ? AND v.model = ?",
            ),
            [Value::from(document_id), Value::from(model)],
        );
        let mut out = HashMap::new();
        for r in self.db.query_all_raw(stmt).await? {
            out.insert(r.try_get::<String>("", "text")?, r.try_get::<Vec<u8>>("", "vector")?);
        }
        Ok(out)
    }

    /// Vectors for `pieces` (encoded, `None` where there is none) and the report, when the
    /// collection has an embedding model: from `known` by text, else from the embedder (when
    /// `try_embedder`). Never fails: what could not be embedded is pending.
    async fn embed_pieces(
        &self,
        collection: &search_collections::Model,
        pieces: &[chunk::Piece],
        known: &HashMap<String, Vec<u8>>,
        try_embedder: bool,
    ) -> (Vec<Option<Vec<u8>>>, Option<EmbeddingReport>) {
        let Some(model) = &collection.embedding_model else { return (vec![None; pieces.len()], None) };
        let mut out: Vec<Option<Vec<u8>>> = pieces.iter().map(|p| known.get(&p.text).cloned()).collect();
        let missing: Vec<usize> = (0..pieces.len()).filter(|i| out[*i].is_none()).collect();
        let mut error = None;
        if !missing.is_empty() {
            match (&self.embedder, try_embedder) {
                (Some(embedder), true) => {
                    let texts: Vec<(String, usize)> =
                        missing.iter().map(|i| (pieces[*i].text.clone(), pieces[*i].tokens)).collect();
                    match vector::embed_batched(embedder.as_ref(), model, &texts).await {
                        Ok(vectors) => {
                            for (i, mut v) in missing.iter().zip(vectors) {
                                vector::normalise(&mut v);
                                out[*i] = Some(vector::encode(&v));
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, collection = %collection.id, "chunks could not be embedded");
                            error = Some(e.0);
                        }
                    }
                }
                (None, _) => error = Some(NO_EMBEDDER.to_owned()),
                (Some(_), false) => {}
            }
        }
        let embedded = out.iter().filter(|v| v.is_some()).count() as u64;
        let report = EmbeddingReport {
            model: model.clone(),
            embedded,
            pending: pieces.len() as u64 - embedded,
            error,
        };
        (out, Some(report))
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

    /// The `k` chunks of a collection that best match the query, with snippets, in the
    /// collection's default mode (see [`SearchMode`]).
    ///
    /// # Errors
    /// As [`SearchService::search_with`].
    pub async fn search(&self, req: SearchRequest) -> Result<SearchResults, SearchError> {
        self.search_with(req, None).await
    }

    /// The `k` chunks of a collection that best match the query in `mode` (its default when
    /// `None`), with snippets. A semantic or hybrid search embeds the query once; when that
    /// fails, it answers with the full-text ranking and says why in [`SearchResults::degraded`].
    ///
    /// # Errors
    /// [`SearchError::Invalid`] for an empty or overlong query, a query without words, `k` out of
    /// range, or a semantic or hybrid mode in a collection without an embedding model;
    /// [`SearchError::NotFound`] for the collection; database errors.
    #[tracing::instrument(skip_all, fields(collection = %req.collection, k = req.k, mode = ?mode), err)]
    pub async fn search_with(
        &self,
        req: SearchRequest,
        mode: Option<SearchMode>,
    ) -> Result<SearchResults, SearchError> {
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
        let mode = match (mode, collection.embedding_model.as_deref()) {
            (Some(SearchMode::Fulltext), _) | (None, None) => SearchMode::Fulltext,
            (None, Some(_)) => SearchMode::Hybrid,
            (Some(m), Some(_)) => m,
            (Some(m), None) => {
                return Err(SearchError::Invalid(format!(
                    "mode: {m} search needs an embedding model, and the collection '{}' has none; \
                     set its embedding_model, or search in fulltext mode",
                    cut(&collection.name, 80)
                )));
            }
        };
        // Documents' metadata (not their text): for the filters and for the results.
        let docs: HashMap<Uuid, DocMeta> = search_documents::Entity::find()
            .select_only()
            .columns([
                search_documents::Column::Id,
                search_documents::Column::Title,
                search_documents::Column::Source,
            ])
            .columns([search_documents::Column::Tags, search_documents::Column::ChunkCount])
            .filter(search_documents::Column::CollectionId.eq(collection.id))
            .into_tuple::<(Uuid, String, Option<String>, serde_json::Value, i32)>()
            .all(&self.db)
            .await?
            .into_iter()
            .map(|(id, title, source, tags, chunks)| {
                (id, DocMeta { title, source, tags: tags_of(&tags), chunk_count: i64::from(chunks) })
            })
            .collect();
        let mut results =
            SearchResults { collection_id: collection.id, terms, mode, ..SearchResults::default() };
        let only: Option<Vec<Uuid>> = if req.filters.is_empty() {
            None
        } else {
            let ids: Vec<Uuid> =
                docs.iter().filter(|(_, d)| req.filters.accepts(d)).map(|(id, _)| *id).collect();
            if ids.is_empty() {
                return Ok(results);
            }
            Some(ids)
        };
        let k = req.k as usize;
        // Hybrid fuses deeper lists than it shows.
        let depth = if mode == SearchMode::Hybrid { (k * 4).clamp(20, 200) } else { k };
        let mut semantic: Vec<(i64, f64)> = Vec::new();
        if let (SearchMode::Semantic | SearchMode::Hybrid, Some(model)) = (mode, &collection.embedding_model)
        {
            match self.embed_query(model, query).await {
                Ok(q) => {
                    let accept: Option<HashSet<Uuid>> =
                        only.as_ref().map(|ids| ids.iter().copied().collect());
                    let (list, compared) =
                        self.semantic_ranking(collection.id, model, &q, depth, accept.as_ref()).await?;
                    let chunks: i64 = docs
                        .iter()
                        .filter(|(id, _)| accept.as_ref().is_none_or(|a| a.contains(*id)))
                        .map(|(_, d)| d.chunk_count)
                        .sum();
                    results.pending_vectors = (chunks.max(0) as u64).saturating_sub(compared);
                    semantic = list;
                }
                Err(reason) => {
                    if self.embedder.is_some() {
                        tracing::warn!(%reason, collection = %collection.id, "a {mode} search fell back to full text");
                    }
                    results.degraded = Some(format!("{mode} search fell back to full text: {reason}"));
                    results.mode = SearchMode::Fulltext;
                }
            }
        }
        let backend = self.db.get_database_backend();
        match results.mode {
            SearchMode::Fulltext => {
                let stmt = ranked_statement(backend, collection.id, &results.terms, req.k, only.as_deref());
                let rows = self.db.query_all_raw(stmt).await?;
                for r in rows {
                    let document_id: Uuid = r.try_get("", "document_id")?;
                    let Some(meta) = docs.get(&document_id) else { continue };
                    let snippet: String = r.try_get("", "snippet")?;
                    let score: f64 = r.try_get("", "score")?;
                    results.hits.push(SearchHit {
                        chunk_id: r.try_get("", "id")?,
                        document_id,
                        seq: r.try_get("", "seq")?,
                        score,
                        fulltext_score: Some(score),
                        semantic_score: None,
                        snippet: fts::highlight(&snippet),
                        title: meta.title.clone(),
                        source: meta.source.clone(),
                        tags: meta.tags.clone(),
                        token_count: r.try_get("", "token_count")?,
                    });
                }
            }
            SearchMode::Semantic => {
                let sem: HashMap<i64, f64> = semantic.iter().copied().collect();
                results.hits = self.hits_for(&semantic, &HashMap::new(), &sem, &results.terms, &docs).await?;
            }
            SearchMode::Hybrid => {
                let stmt =
                    ranked_ids_statement(backend, collection.id, &results.terms, depth, only.as_deref());
                let mut words: Vec<(i64, f64)> = Vec::new();
                for r in self.db.query_all_raw(stmt).await? {
                    words.push((r.try_get("", "id")?, r.try_get("", "score")?));
                }
                let word_ids: Vec<i64> = words.iter().map(|(id, _)| *id).collect();
                let meaning_ids: Vec<i64> = semantic.iter().map(|(id, _)| *id).collect();
                let mut fused = vector::rrf(&[&word_ids, &meaning_ids]);
                fused.truncate(k);
                let fts: HashMap<i64, f64> = words.into_iter().collect();
                let sem: HashMap<i64, f64> = semantic.into_iter().collect();
                results.hits = self.hits_for(&fused, &fts, &sem, &results.terms, &docs).await?;
            }
        }
        Ok(results)
    }

    /// The query's unit vector, or why there is none.
    async fn embed_query(&self, model: &str, query: &str) -> Result<Vec<f32>, String> {
        let Some(embedder) = &self.embedder else { return Err(NO_EMBEDDER.to_owned()) };
        let mut vectors = embedder.embed(model, &[query.to_owned()]).await.map_err(|e| e.0)?;
        match vectors.pop() {
            Some(mut v) if vectors.is_empty() && !v.is_empty() => {
                vector::normalise(&mut v);
                Ok(v)
            }
            _ => Err(format!("the embedding model '{}' answered no embedding for the query", cut(model, 80))),
        }
    }

    /// The `depth` chunks most similar to `query` (cosine above 0), best first, and how many
    /// vectors were compared. Reads the collection's vectors of `model` page by page.
    async fn semantic_ranking(
        &self,
        collection_id: Uuid,
        model: &str,
        query: &[f32],
        depth: usize,
        accept: Option<&HashSet<Uuid>>,
    ) -> Result<(Vec<(i64, f64)>, u64), SearchError> {
        const PAGE: usize = 2048;
        let backend = self.db.get_database_backend();
        let mut after = i64::MIN;
        let mut scored: Vec<(i64, f64)> = Vec::new();
        let mut compared = 0u64;
        loop {
            let stmt = Statement::from_sql_and_values(
                backend,
                marks(
                    backend,
                    "SELECT chunk_id, document_id, vector FROM search_chunk_vectors \
                     WHERE collection_id = ? AND model = ? AND dims = ? AND chunk_id > ? \
                     ORDER BY chunk_id LIMIT ?",
                ),
                [
                    Value::from(collection_id),
                    Value::from(model),
                    Value::from(query.len() as i32),
                    Value::from(after),
                    Value::from(PAGE as i64),
                ],
            );
            let rows = self.db.query_all_raw(stmt).await?;
            let page = rows.len();
            for r in rows {
                let id: i64 = r.try_get("", "chunk_id")?;
                after = id;
                let document_id: Uuid = r.try_get("", "document_id")?;
                if accept.is_some_and(|a| !a.contains(&document_id)) {
                    continue;
                }
                let bytes: Vec<u8> = r.try_get("", "vector")?;
                if let Some(similarity) = vector::dot(&bytes, query) {
                    compared += 1;
                    if similarity > 0.0 {
                        scored.push((id, f64::from(similarity)));
                    }
                }
            }
            if page < PAGE {
                break;
            }
            if scored.len() > 4 * PAGE {
                scored = vector::top(scored, depth);
            }
        }
        Ok((vector::top(scored, depth), compared))
    }

    /// Hits for ranked chunk ids: their rows, the database's snippets for chunks the words
    /// matched (`fts`), a window of the text for the others.
    async fn hits_for(
        &self,
        ranked: &[(i64, f64)],
        fts: &HashMap<i64, f64>,
        sem: &HashMap<i64, f64>,
        terms: &[String],
        docs: &HashMap<Uuid, DocMeta>,
    ) -> Result<Vec<SearchHit>, SearchError> {
        if ranked.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
        let chunks: HashMap<i64, search_chunks::Model> = search_chunks::Entity::find()
            .filter(search_chunks::Column::Id.is_in(ids.clone()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        let matched: Vec<i64> = ids.iter().copied().filter(|id| fts.contains_key(id)).collect();
        let mut snippets: HashMap<i64, String> = HashMap::new();
        if !matched.is_empty() {
            let stmt = snippet_statement(self.db.get_database_backend(), terms, &matched);
            for r in self.db.query_all_raw(stmt).await? {
                snippets.insert(r.try_get("", "id")?, r.try_get("", "snippet")?);
            }
        }
        let mut hits = Vec::with_capacity(ranked.len());
        for (id, score) in ranked {
            // Deleted since it was ranked.
            let Some(c) = chunks.get(id) else { continue };
            let Some(meta) = docs.get(&c.document_id) else { continue };
            let raw = snippets.remove(id).unwrap_or_else(|| vector::snippet(&c.text, terms, 32));
            hits.push(SearchHit {
                chunk_id: c.id,
                document_id: c.document_id,
                seq: c.seq,
                score: *score,
                fulltext_score: fts.get(id).copied(),
                semantic_score: sem.get(id).copied(),
                snippet: fts::highlight(&raw),
                title: meta.title.clone(),
                source: meta.source.clone(),
                tags: meta.tags.clone(),
                token_count: c.token_count,
            });
        }
        Ok(hits)
    }
}

/// Why semantic search is not available from a service built without an embedder.
const NO_EMBEDDER: &str = "no embedding client is configured for this search service";

/// `sql` with each `?` numbered `$1, $2, ...` for PostgreSQL (the statements here hold no `?`
/// other than placeholders).
fn marks(backend: DatabaseBackend, sql: &str) -> String {
    if backend != DatabaseBackend::Postgres {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

fn vector_row(
    chunk_id: i64,
    collection_id: Uuid,
    document_id: Uuid,
    model: &str,
    v: &[f32],
) -> search_chunk_vectors::ActiveModel {
    search_chunk_vectors::ActiveModel {
        chunk_id: Set(chunk_id),
        collection_id: Set(collection_id),
        document_id: Set(document_id),
        model: Set(model.to_owned()),
        dims: Set(v.len() as i32),
        vector: Set(vector::encode(v)),
    }
}

/// Stores a document's chunk vectors (encoded, by chunk position) after its chunks were inserted
/// in `txn`.
async fn insert_vectors(
    txn: &impl ConnectionTrait,
    doc: &search_documents::Model,
    model: &str,
    vectors: &[Option<Vec<u8>>],
) -> Result<(), SearchError> {
    if vectors.iter().all(Option::is_none) {
        return Ok(());
    }
    let ids: HashMap<i32, i64> = search_chunks::Entity::find()
        .select_only()
        .columns([search_chunks::Column::Seq, search_chunks::Column::Id])
        .filter(search_chunks::Column::DocumentId.eq(doc.id))
        .into_tuple::<(i32, i64)>()
        .all(txn)
        .await?
        .into_iter()
        .collect();
    let rows: Vec<search_chunk_vectors::ActiveModel> = vectors
        .iter()
        .enumerate()
        .filter_map(|(seq, v)| {
            let bytes = v.as_ref()?;
            let chunk_id = *ids.get(&(seq as i32))?;
            Some(search_chunk_vectors::ActiveModel {
                chunk_id: Set(chunk_id),
                collection_id: Set(doc.collection_id),
                document_id: Set(doc.id),
                model: Set(model.to_owned()),
                dims: Set((bytes.len() / 4) as i32),
                vector: Set(bytes.clone()),
            })
        })
        .collect();
    for batch in rows.chunks(100) {
        search_chunk_vectors::Entity::insert_many(batch.to_vec()).exec_without_returning(txn).await?;
    }
    Ok(())
}

/// What a collection holds: documents, chunks, and chunks with a vector of its model.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    documents: i64,
    chunks: i64,
    vectors: i64,
}

fn view(c: search_collections::Model, counts: &HashMap<Uuid, Counts>) -> CollectionView {
    let Counts { documents: document_count, chunks: chunk_count, vectors } =
        counts.get(&c.id).copied().unwrap_or_default();
    CollectionView {
        id: c.id,
        name: c.name,
        description: c.description,
        chunk_size: c.chunk_size,
        chunk_overlap: c.chunk_overlap,
        embedding_model: c.embedding_model,
        document_count,
        chunk_count,
        embedded_chunk_count: vectors,
        created_at: c.created_at,
        updated_at: c.updated_at,
        embedding: None,
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
            let options = headline_options();
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
            // CROSS JOIN keeps the full-text index as the outer loop. Left to itself, SQLite walks
            // every chunk of the collection and looks each up in the index, which grows with the
            // collection instead of with the matches (25 ms at 2,000 chunks).
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
                 FROM search_chunks_fts CROSS JOIN search_chunks c ON c.id = search_chunks_fts.rowid \
                 WHERE search_chunks_fts MATCH ? AND c.collection_id = ?{filter} \
                 ORDER BY bm25(search_chunks_fts), c.id LIMIT ?"
            );
            Statement::from_sql_and_values(backend, sql, values)
        }
    }
}

/// `ts_headline` options: the snippet markers, two fragments of 15 to 40 words.
fn headline_options() -> String {
    format!(
        "StartSel={}, StopSel={}, MaxWords=40, MinWords=15, MaxFragments=2, FragmentDelimiter=\" … \"",
        fts::MARK_START,
        fts::MARK_END
    )
}

/// The full-text ranking alone (chunk ids and scores, best first, at most `limit`), for fusion.
fn ranked_ids_statement(
    backend: DatabaseBackend,
    collection: Uuid,
    terms: &[String],
    limit: usize,
    only: Option<&[Uuid]>,
) -> Statement {
    let mut values: Vec<Value> = Vec::new();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            values.push(fts::websearch(terms).into());
            values.push(collection.into());
            values.push((limit as i64).into());
            let mut filter = String::new();
            if let Some(ids) = only {
                let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 4)).collect();
                filter = format!(" AND c.document_id IN ({})", marks.join(", "));
                values.extend(ids.iter().map(|id| Value::from(*id)));
            }
            format!(
                "SELECT c.id, ts_rank_cd(c.tsv, q.q)::float8 AS score \
                 FROM search_chunks c, (SELECT websearch_to_tsquery('english', $1) AS q) q \
                 WHERE c.collection_id = $2 AND c.tsv @@ q.q{filter} ORDER BY score DESC, c.id LIMIT $3"
            )
        }
        _ => {
            values.push(fts::fts5_match(terms).into());
            values.push(collection.into());
            let mut filter = String::new();
            if let Some(ids) = only {
                filter = format!(" AND c.document_id IN ({})", vec!["?"; ids.len()].join(", "));
                values.extend(ids.iter().map(|id| Value::from(*id)));
            }
            values.push((limit as i64).into());
            format!(
                "SELECT c.id, -bm25(search_chunks_fts) AS score \
                 FROM search_chunks_fts CROSS JOIN search_chunks c ON c.id = search_chunks_fts.rowid \
                 WHERE search_chunks_fts MATCH ? AND c.collection_id = ?{filter} \
                 ORDER BY bm25(search_chunks_fts), c.id LIMIT ?"
            )
        }
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The database's snippets (`id`, `snippet`) of the chunks `ids` that the terms match.
fn snippet_statement(backend: DatabaseBackend, terms: &[String], ids: &[i64]) -> Statement {
    let mut values: Vec<Value> = Vec::new();
    let sql = match backend {
        DatabaseBackend::Postgres => {
            values.push(fts::websearch(terms).into());
            let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
            values.extend(ids.iter().map(|id| Value::from(*id)));
            format!(
                "SELECT c.id, ts_headline('english', c.text, q.q, '{}') AS snippet \
                 FROM search_chunks c, (SELECT websearch_to_tsquery('english', $1) AS q) q \
                 WHERE c.id IN ({}) AND c.tsv @@ q.q",
                headline_options(),
                marks.join(", ")
            )
        }
        _ => {
            values.push(fts::fts5_match(terms).into());
            values.extend(ids.iter().map(|id| Value::from(*id)));
            format!(
                "SELECT rowid AS id, snippet(search_chunks_fts, 0, char(1), char(2), ' … ', 32) AS snippet \
                 FROM search_chunks_fts WHERE search_chunks_fts MATCH ? AND rowid IN ({})",
                vec!["?"; ids.len()].join(", ")
            )
        }
    };
    Statement::from_sql_and_values(backend, sql, values)
}
