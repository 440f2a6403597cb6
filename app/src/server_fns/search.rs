//! The Search page: collections, their documents, and searching one. Every signed-in person may list,
//! read and search; changing collections and documents is for operators and admins (the JSON API's
//! rule, `server/src/routes/search.rs`). Uploads are not here: a file goes to the upload routes as
//! multipart (the JSON one with JavaScript on, for its progress; the page's form route without).
//!
//! A search result's snippet crosses the wire as text parts, each marked or not, never as HTML: the
//! page renders them as text, so a document's own markup can never become the page's.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// A collection with how much it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionRow {
    pub id: String,
    pub name: String,
    pub description: String,
    pub chunk_size: i32,
    pub chunk_overlap: i32,
    pub embedding_model: Option<String>,
    pub document_count: i64,
    pub chunk_count: i64,
}

/// A document without its text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentRow {
    pub id: String,
    pub title: String,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub content_type: String,
    pub chunk_count: i32,
    /// `YYYY-MM-DD HH:MM UTC`.
    pub created_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRow {
    pub seq: i32,
    pub token_count: i32,
    pub text: String,
}

/// A document's page: its collection, itself and its chunks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentPage {
    pub collection: CollectionRow,
    pub document: DocumentRow,
    pub chunks: Vec<ChunkRow>,
}

/// A piece of a snippet: text, matched (`mark`) or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnippetPart {
    pub text: String,
    pub mark: bool,
}

/// One result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HitRow {
    pub document_id: String,
    pub seq: i32,
    pub title: String,
    pub source: Option<String>,
    pub score: f64,
    pub snippet: Vec<SnippetPart>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchOutcome {
    /// The words searched for.
    pub terms: Vec<String>,
    pub hits: Vec<HitRow>,
}

/// Splits a snippet made by `goblin_core::search::fts::highlight` (text escaped, matches in
/// `<mark>`) back into text parts. Only the `<mark>` tags it writes and the five entities it escapes
/// are read; anything else stays literal text.
pub fn snippet_parts(html: &str) -> Vec<SnippetPart> {
    fn unescape(s: &str) -> String {
        s.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }
    let mut parts = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        match rest.find("<mark>") {
            Some(start) => {
                if start > 0 {
                    parts.push(SnippetPart { text: unescape(&rest[..start]), mark: false });
                }
                let after = &rest[start + "<mark>".len()..];
                let end = after.find("</mark>").unwrap_or(after.len());
                parts.push(SnippetPart { text: unescape(&after[..end]), mark: true });
                rest = after.get(end + "</mark>".len()..).unwrap_or("");
            }
            None => {
                parts.push(SnippetPart { text: unescape(rest), mark: false });
                rest = "";
            }
        }
    }
    parts
}

#[cfg(feature = "ssr")]
mod ssr {
    use goblin_core::{
        entities::users,
        search::{CollectionView, DocumentSummary, SearchError, SearchService},
    };

    use super::*;
    use crate::state::AppState;

    pub fn map_err(e: SearchError) -> AppError {
        match e {
            SearchError::NotFound(m) => AppError::NotFound(m).respond(),
            SearchError::Db(e) => AppError::internal(e),
            other => AppError::Refused(other.to_string()).respond(),
        }
    }

    pub fn service(state: &AppState) -> SearchService {
        SearchService::new(state.db.clone())
    }

    /// The service embedding through the gateway as `user` (for collections with an embedding
    /// model: adding, re-indexing and searching).
    pub fn service_as(state: &AppState, user: &users::Model) -> SearchService {
        let caller = goblin_core::gateway::Caller { user_id: Some(user.id), token_id: None };
        service(state).with_gateway(state.gateway.clone(), caller)
    }

    /// Operators and admins may change collections and documents.
    pub fn require_writer(user: &users::Model) -> Result<(), AppError> {
        match user.role.as_str() {
            "admin" | "operator" => Ok(()),
            _ => Err(AppError::Forbidden.respond()),
        }
    }

    pub fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, AppError> {
        uuid::Uuid::parse_str(raw.trim()).map_err(|_| {
            AppError::NotFound(format!(
                "there is no {what} with id '{}'",
                raw.chars().take(40).collect::<String>()
            ))
            .respond()
        })
    }

    /// A whole number from a form field; empty is `None`.
    pub fn number(field: &str, raw: &str) -> Result<Option<i64>, AppError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse::<i64>().map(Some).map_err(|_| {
            AppError::Refused(format!(
                "{field}: must be a whole number, not '{}'",
                raw.chars().take(20).collect::<String>()
            ))
            .respond()
        })
    }

    /// The confirmation box of a delete form.
    pub fn confirmed(confirm: Option<String>, what: &str) -> Result<(), AppError> {
        if confirm.as_deref() == Some("yes") {
            Ok(())
        } else {
            Err(AppError::Refused(format!("tick the box to confirm deleting this {what}")).respond())
        }
    }

    pub fn collection_row(c: CollectionView) -> CollectionRow {
        CollectionRow {
            id: c.id.to_string(),
            name: c.name,
            description: c.description,
            chunk_size: c.chunk_size,
            chunk_overlap: c.chunk_overlap,
            embedding_model: c.embedding_model,
            document_count: c.document_count,
            chunk_count: c.chunk_count,
        }
    }

    pub fn document_row(d: DocumentSummary) -> DocumentRow {
        DocumentRow {
            id: d.id.to_string(),
            title: d.title,
            source: d.source,
            tags: d.tags,
            content_type: d.content_type,
            chunk_count: d.chunk_count,
            created_at: d.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }
}

#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::require_user;
#[cfg(feature = "ssr")]
use ssr::*;

/// Every collection, by name, with its counts.
///
/// # Errors
/// Not signed in.
#[server(prefix = "/fn", endpoint = "search/collections")]
pub async fn search_collections() -> Result<Vec<CollectionRow>, AppError> {
    let (state, _, _) = require_user().await?;
    Ok(service(&state).collections().await.map_err(map_err)?.into_iter().map(collection_row).collect())
}

/// One collection.
///
/// # Errors
/// Not signed in; an unknown collection (404).
#[server(prefix = "/fn", endpoint = "search/collection")]
pub async fn search_collection(id: String) -> Result<CollectionRow, AppError> {
    let (state, _, _) = require_user().await?;
    let id = parse_id(&id, "search collection")?;
    Ok(collection_row(service(&state).collection(&id.to_string()).await.map_err(map_err)?))
}

/// Creates a collection; empty settings take their defaults (512-token chunks, 64 overlap).
///
/// # Errors
/// Not signed in; a viewer (403); a bad field or a name in use (400, naming it).
#[server(prefix = "/fn", endpoint = "search/collection-create")]
pub async fn create_search_collection(
    name: String,
    description: String,
    chunk_size: String,
    chunk_overlap: String,
    embedding_model: String,
) -> Result<CollectionRow, AppError> {
    let (state, _, user) = require_user().await?;
    require_writer(&user)?;
    let new = goblin_core::search::NewCollection {
        name,
        description: Some(description),
        chunk_size: number("chunk_size", &chunk_size)?,
        chunk_overlap: number("chunk_overlap", &chunk_overlap)?,
        embedding_model: Some(embedding_model),
    };
    let view = service(&state).create_collection(Some(user.id), new).await.map_err(map_err)?;
    Ok(collection_row(view))
}

/// Renames a collection or changes its settings (an empty embedding model clears it). New chunk
/// settings apply to documents added or re-indexed afterwards.
///
/// # Errors
/// Not signed in; a viewer (403); an unknown collection (404); a bad field or a name in use (400).
#[server(prefix = "/fn", endpoint = "search/collection-update")]
pub async fn update_search_collection(
    id: String,
    name: String,
    description: String,
    chunk_size: String,
    chunk_overlap: String,
    embedding_model: String,
) -> Result<CollectionRow, AppError> {
    let (state, _, user) = require_user().await?;
    require_writer(&user)?;
    let id = parse_id(&id, "search collection")?;
    let model = embedding_model.trim();
    let changes = goblin_core::search::CollectionChanges {
        name: Some(name),
        description: Some(description),
        chunk_size: number("chunk_size", &chunk_size)?,
        chunk_overlap: number("chunk_overlap", &chunk_overlap)?,
        embedding_model: Some((!model.is_empty()).then(|| model.to_owned())),
    };
    Ok(collection_row(service(&state).update_collection(id, changes).await.map_err(map_err)?))
}

/// Deletes a collection with its documents and chunks, once confirmed (`confirm=yes`).
///
/// # Errors
/// Not signed in; a viewer (403); not confirmed (400); an unknown collection (404).
#[server(prefix = "/fn", endpoint = "search/collection-delete")]
pub async fn delete_search_collection(id: String, confirm: Option<String>) -> Result<(), AppError> {
    let (state, _, user) = require_user().await?;
    require_writer(&user)?;
    let id = parse_id(&id, "search collection")?;
    confirmed(confirm, "collection with its documents")?;
    service(&state).delete_collection(id).await.map_err(map_err)?;
    Ok(())
}

/// A collection's documents, newest first.
///
/// # Errors
/// Not signed in; an unknown collection (404).
#[server(prefix = "/fn", endpoint = "search/documents")]
pub async fn search_documents(collection_id: String) -> Result<Vec<DocumentRow>, AppError> {
    let (state, _, _) = require_user().await?;
    let id = parse_id(&collection_id, "search collection")?;
    Ok(service(&state).documents(id).await.map_err(map_err)?.into_iter().map(document_row).collect())
}

/// One document with its chunks, for its page.
///
/// # Errors
/// Not signed in; an unknown collection or document (404).
#[server(prefix = "/fn", endpoint = "search/document")]
pub async fn search_document(collection_id: String, document_id: String) -> Result<DocumentPage, AppError> {
    let (state, _, _) = require_user().await?;
    let cid = parse_id(&collection_id, "search collection")?;
    let did = parse_id(&document_id, "document")?;
    let svc = service(&state);
    let view = svc.document(cid, did).await.map_err(map_err)?;
    let collection = collection_row(svc.collection(&cid.to_string()).await.map_err(map_err)?);
    Ok(DocumentPage {
        collection,
        document: document_row(view.document),
        chunks: view
            .chunks
            .into_iter()
            .map(|c| ChunkRow { seq: c.seq, token_count: c.token_count, text: c.text })
            .collect(),
    })
}

/// Adds a document from pasted text (`format`: text, markdown or html).
///
/// # Errors
/// Not signed in; a viewer (403); an unknown collection (404); a bad field, an empty or oversize text
/// (400, naming it). A refused document leaves nothing stored.
#[server(prefix = "/fn", endpoint = "search/document-paste")]
pub async fn paste_search_document(
    collection_id: String,
    title: String,
    source: String,
    tags: String,
    format: String,
    content: String,
) -> Result<DocumentRow, AppError> {
    let (state, _, user) = require_user().await?;
    require_writer(&user)?;
    let id = parse_id(&collection_id, "search collection")?;
    let doc = goblin_core::search::NewDocument {
        title: Some(title),
        source: Some(source),
        tags: tags.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        format: goblin_core::search::Format::from_name(&format).map_err(map_err)?,
        file_name: None,
        bytes: content.into_bytes(),
    };
    Ok(document_row(service_as(&state, &user).add_document(id, doc).await.map_err(map_err)?.document))
}

/// Deletes a document and its chunks, once confirmed (`confirm=yes`).
///
/// # Errors
/// Not signed in; a viewer (403); not confirmed (400); an unknown collection or document (404).
#[server(prefix = "/fn", endpoint = "search/document-delete")]
pub async fn delete_search_document(
    collection_id: String,
    document_id: String,
    confirm: Option<String>,
) -> Result<(), AppError> {
    let (state, _, user) = require_user().await?;
    require_writer(&user)?;
    let cid = parse_id(&collection_id, "search collection")?;
    let did = parse_id(&document_id, "document")?;
    confirmed(confirm, "document")?;
    service(&state).delete_document(cid, did).await.map_err(map_err)
}

/// Cuts a document again with its collection's current chunk settings.
///
/// # Errors
/// Not signed in; a viewer (403); an unknown collection or document (404).
#[server(prefix = "/fn", endpoint = "search/document-reindex")]
pub async fn reindex_search_document(
    collection_id: String,
    document_id: String,
) -> Result<DocumentRow, AppError> {
    let (state, _, user) = require_user().await?;
    require_writer(&user)?;
    let cid = parse_id(&collection_id, "search collection")?;
    let did = parse_id(&document_id, "document")?;
    Ok(document_row(service_as(&state, &user).reindex_document(cid, did).await.map_err(map_err)?))
}

/// The best chunks of a collection for `query`, with highlighted snippets and scores.
///
/// # Errors
/// Not signed in; an unknown collection (404); an empty or overlong query, or one without words
/// (400, saying so).
#[server(prefix = "/fn", endpoint = "search/query")]
pub async fn run_search(collection_id: String, query: String) -> Result<SearchOutcome, AppError> {
    let (state, _, user) = require_user().await?;
    let id = parse_id(&collection_id, "search collection")?;
    let request = goblin_core::search::SearchRequest {
        collection: id.to_string(),
        query,
        k: 10,
        filters: goblin_core::search::Filters::default(),
    };
    let results = service_as(&state, &user).search(request).await.map_err(map_err)?;
    Ok(SearchOutcome {
        terms: results.terms,
        hits: results
            .hits
            .into_iter()
            .map(|h| HitRow {
                document_id: h.document_id.to_string(),
                seq: h.seq,
                title: h.title,
                source: h.source,
                score: h.score,
                snippet: snippet_parts(&h.snippet),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_come_back_as_text_parts() {
        let html =
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp;lt; <mark>goblins</mark> &quot;here&quot;";
        let parts = snippet_parts(html);
        assert_eq!(
            parts,
            vec![
                SnippetPart { text: "<script>alert('x')</script> &lt; ".into(), mark: false },
                SnippetPart { text: "goblins".into(), mark: true },
                SnippetPart { text: " \"here\"".into(), mark: false },
            ]
        );
        assert_eq!(snippet_parts("<mark>open"), vec![SnippetPart { text: "open".into(), mark: true }]);
        assert!(snippet_parts("").is_empty());
    }
}
