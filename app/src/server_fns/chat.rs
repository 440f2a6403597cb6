//! Chat for any signed-in person: the models to choose from, their conversations and turns, sending a
//! message and stopping an answer. The answer itself streams from `/api/chat/streams/{id}/events`.
//!
//! Sending works as a plain form too: without JavaScript the server runs the turn to its end and
//! redirects to the conversation, which shows the answer.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What the message form offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelChoices {
    /// Aliases, `provider/model` and bare models, sorted.
    pub chat: Vec<String>,
    /// The speech model answers are read aloud with; `None` when no provider offers speech.
    pub speech: Option<String>,
    /// The one to preselect: the conversation's latest choice, when it is still offered.
    pub chosen: Option<String>,
    /// Search collections a message can be sent with: `(id, name)`, by name.
    pub collections: Vec<(String, String)>,
    /// The collection to preselect: the one the conversation's latest turn had.
    pub chosen_collection: Option<String>,
}

/// A numbered source of a turn's prompt, as its citations link to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRow {
    pub n: u32,
    pub title: String,
    /// The chunk on its document's page: `/search/collections/{c}/documents/{d}#chunk-{seq}`.
    pub href: String,
}

/// One conversation in the list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRow {
    pub id: String,
    pub title: String,
    pub turns: i64,
    /// `YYYY-MM-DD HH:MM UTC` of its newest turn.
    pub last_at: String,
}

/// One turn: the message and the answer as far as it goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnRow {
    pub stream_id: String,
    pub prompt: String,
    pub requested_model: Option<String>,
    /// `provider / model`, once known.
    pub answered_by: Option<String>,
    /// `streaming`, `done`, `error` or `cancelled`.
    pub status: String,
    /// The answer's markdown (rendered with [`crate::markdown::render`]).
    pub text: String,
    /// The last chunk in `text`; following the stream resumes after it.
    pub last_seq: i32,
    pub tokens_in: i64,
    pub tokens_out: i64,
    /// US dollars, e.g. `0.000123`.
    pub cost: String,
    pub error: Option<String>,
    /// The sources its prompt held (a collection was attached), in number order.
    pub sources: Vec<SourceRow>,
}

/// A turn that has started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnStartedView {
    pub stream_id: String,
    pub conversation_id: String,
}

#[cfg(feature = "ssr")]
mod ssr {
    use goblin_core::chat::{ChatError, Turn};

    use super::*;

    pub fn map_err(e: ChatError) -> AppError {
        match e {
            ChatError::NotFound(m) => AppError::NotFound(m).respond(),
            ChatError::Invalid(m) => AppError::Refused(m).respond(),
            ChatError::Db(e) => AppError::internal(e),
        }
    }

    /// An id from a form or URL; anything else is "not found" (an unknown id, as the person sees it).
    pub fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, AppError> {
        uuid::Uuid::parse_str(raw.trim()).map_err(|_| {
            AppError::NotFound(format!(
                "there is no {what} with id '{}'",
                raw.chars().take(40).collect::<String>()
            ))
            .respond()
        })
    }

    /// A plain form post from a browser without JavaScript (it asks for HTML back).
    pub fn plain_form_post() -> bool {
        use_context::<axum::http::request::Parts>().is_some_and(|p| {
            p.method == axum::http::Method::POST
                && p.headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("text/html"))
        })
    }

    pub fn turn_row(t: Turn) -> TurnRow {
        let answered_by = match (t.provider, t.model) {
            (Some(p), Some(m)) => Some(format!("{p} / {m}")),
            (None, Some(m)) => Some(m),
            _ => None,
        };
        TurnRow {
            stream_id: t.stream_id.to_string(),
            prompt: t.prompt,
            requested_model: t.requested_model,
            answered_by,
            status: t.status,
            text: t.text,
            last_seq: t.last_seq,
            tokens_in: t.tokens_in,
            tokens_out: t.tokens_out,
            cost: goblin_core::providers::format_usd_micros(t.cost_micros),
            error: t.error,
            sources: t
                .sources
                .iter()
                .map(|s| SourceRow { n: s.n, title: s.title.clone(), href: s.href() })
                .collect(),
        }
    }
}

#[cfg(feature = "ssr")]
use crate::server_fns::auth::ssr::require_user;
#[cfg(feature = "ssr")]
use ssr::*;

/// The chat models the person may choose, the speech model, if any, and the one to preselect for
/// `conversation_id` (empty for a new conversation).
///
/// # Errors
/// Not signed in.
#[server(prefix = "/fn", endpoint = "chat/models")]
pub async fn chat_models(conversation_id: String) -> Result<ModelChoices, AppError> {
    let (state, _, user) = require_user().await?;
    let chat = state.chat.chat_models();
    let (chosen, chosen_collection) = match uuid::Uuid::parse_str(conversation_id.trim()) {
        Ok(c) => (
            state.chat.last_model(user.id, c).await.map_err(map_err)?,
            state.chat.last_collection(user.id, c).await.map_err(map_err)?.map(|id| id.to_string()),
        ),
        Err(_) => (None, None),
    };
    let chosen = chosen.filter(|m| chat.contains(m));
    let collections: Vec<(String, String)> = goblin_core::search::SearchService::new(state.db.clone())
        .collections()
        .await
        .map_err(AppError::internal)?
        .into_iter()
        .map(|c| (c.id.to_string(), c.name))
        .collect();
    let chosen_collection = chosen_collection.filter(|c| collections.iter().any(|(id, _)| id == c));
    Ok(ModelChoices { chat, speech: state.chat.speech_model(), chosen, collections, chosen_collection })
}

/// The person's conversations, newest first.
///
/// # Errors
/// Not signed in.
#[server(prefix = "/fn", endpoint = "chat/conversations")]
pub async fn chat_conversations() -> Result<Vec<ConversationRow>, AppError> {
    let (state, _, user) = require_user().await?;
    let list = state.chat.conversations(user.id).await.map_err(map_err)?;
    Ok(list
        .into_iter()
        .map(|c| ConversationRow {
            id: c.id.to_string(),
            title: c.title,
            turns: c.turns,
            last_at: c.last_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        })
        .collect())
}

/// A conversation's turns, oldest first.
///
/// # Errors
/// Not signed in, or no conversation of the person's with that id (404).
#[server(prefix = "/fn", endpoint = "chat/turns")]
pub async fn chat_turns(conversation_id: String) -> Result<Vec<TurnRow>, AppError> {
    let (state, _, user) = require_user().await?;
    let id = parse_id(&conversation_id, "conversation")?;
    let turns = state.chat.turns(user.id, id).await.map_err(map_err)?;
    Ok(turns.into_iter().map(turn_row).collect())
}

/// Sends a message: a new conversation when `conversation_id` is empty. With `collection_id` (a search
/// collection's id; empty or absent for none) the message is searched in the collection and the best
/// chunks go into the prompt as numbered sources to cite. Returns at once with the turn to follow; a
/// plain form post (no JavaScript) instead waits for the answer and is redirected to the conversation.
///
/// # Errors
/// Not signed in; an empty, oversize or unprintable message, a model the person cannot use, or an
/// unknown collection (400, naming the field); a conversation that is not theirs (404).
#[server(prefix = "/fn", endpoint = "chat/send")]
pub async fn send_chat_message(
    conversation_id: String,
    model: String,
    message: String,
    collection_id: Option<String>,
) -> Result<TurnStartedView, AppError> {
    let (state, _, user) = require_user().await?;
    let conversation = match conversation_id.trim() {
        "" => None,
        raw => Some(parse_id(raw, "conversation")?),
    };
    let collection = match collection_id.as_deref().map(str::trim).unwrap_or_default() {
        "" => None,
        raw => Some(uuid::Uuid::parse_str(raw).map_err(|_| {
            AppError::Refused(format!(
                "collection: there is no search collection '{}'",
                raw.chars().take(40).collect::<String>()
            ))
            .respond()
        })?),
    };
    let started =
        state.chat.start_with(user.id, conversation, &model, &message, collection).await.map_err(map_err)?;
    if plain_form_post() {
        // The page that follows shows the answer, so it has to be there first. A turn that outlives
        // this wait keeps going; the page then shows it as far as it has come.
        let waited = state.chat.wait(started.stream_id, std::time::Duration::from_secs(300)).await;
        if let Err(e) = waited {
            tracing::warn!(error = %e, "could not wait for a chat answer");
        }
        leptos_axum::redirect(&format!("/chat/{}", started.conversation_id));
    }
    Ok(TurnStartedView {
        stream_id: started.stream_id.to_string(),
        conversation_id: started.conversation_id.to_string(),
    })
}

/// Stops an answer that is still coming in; the text so far is kept. Returns the turn's status.
///
/// # Errors
/// Not signed in, or no answer of the person's with that id (404).
#[server(prefix = "/fn", endpoint = "chat/stop")]
pub async fn stop_chat_turn(stream_id: String) -> Result<String, AppError> {
    let (state, _, user) = require_user().await?;
    let id = parse_id(&stream_id, "chat answer")?;
    state.chat.stop(user.id, id).await.map_err(map_err)
}
