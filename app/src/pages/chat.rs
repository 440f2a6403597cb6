//! Chat: choose a model or alias, send a message, and read the answer as it comes in, rendered as
//! markdown (the model's own HTML is shown as text: see `crate::markdown`). The person's
//! conversations are listed newest first, and every answer shows who answered, its tokens and cost.
//!
//! Without JavaScript the message form is a plain post: the server runs the turn to its end and
//! redirects to the conversation, which shows the answer. Once hydrated the form sends in place, the
//! answer streams in over an EventSource (a reconnect resumes after the last chunk seen), a Stop
//! button ends it early, and a Play button reads a finished answer aloud when a speech model exists.
//!
//! A message can be sent with a search collection: its prompt then holds numbered sources, and the
//! answer's citations (`[1]`, `[2]` …) link to the chunks they name, listed under the answer.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::{
    components::ui::{BUTTON, CARD, DANGER, INPUT, LABEL},
    error::AppError,
    markdown,
    server_fns::chat::{
        ModelChoices, SendChatMessage, SourceRow, StopChatTurn, TurnRow, chat_conversations, chat_models,
        chat_turns,
    },
};

/// Matches the server's limit (`goblin_core::chat::MAX_MESSAGE_CHARS`).
const MAX_MESSAGE_CHARS: usize = 32_000;

/// Class names for a rendered answer: the markdown's elements, styled without a typography plugin.
const ANSWER: &str = "space-y-2 break-words text-sm leading-relaxed [&_a]:text-sky-800 [&_a]:underline \
     [&_code]:rounded [&_code]:bg-slate-100 [&_code]:px-1 [&_code]:font-mono [&_h1]:text-lg [&_h1]:font-bold \
     [&_h2]:font-bold [&_h3]:font-semibold [&_ol]:list-decimal [&_ol]:pl-6 [&_pre]:overflow-x-auto \
     [&_pre]:rounded [&_pre]:bg-slate-100 [&_pre]:p-2 [&_table]:border-collapse [&_td]:border \
     [&_td]:border-slate-300 [&_td]:px-2 [&_th]:border [&_th]:border-slate-300 [&_th]:px-2 [&_ul]:list-disc \
     [&_ul]:pl-6 [&_blockquote]:border-l-4 [&_blockquote]:border-slate-300 [&_blockquote]:pl-3";

/// The answer's markdown with each citation of a known source (`[n]`, not already a link) made a
/// link to the source's chunk. The links are relative, which the markdown renderer keeps.
fn link_citations(text: &str, sources: &[SourceRow]) -> String {
    if sources.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let closes = digits > 0 && after.as_bytes().get(digits) == Some(&b']');
        let next = after.as_bytes().get(digits + 1).copied();
        let source = closes
            .then(|| after[..digits].parse::<u32>().ok())
            .flatten()
            .and_then(|n| sources.iter().find(|s| s.n == n));
        match source {
            Some(s) if !matches!(next, Some(b'(' | b':')) => {
                out.push_str(&format!("[\\[{}\\]]({})", s.n, s.href));
                rest = &after[digits + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn status_label(status: &str) -> &'static str {
    match status {
        "streaming" => "answering…",
        "done" => "done",
        "cancelled" => "stopped",
        _ => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_of_known_sources_become_links() {
        let sources = vec![SourceRow {
            n: 1,
            title: "Lanterns".into(),
            href: "/search/collections/c/documents/d#chunk-0".into(),
        }];
        assert_eq!(
            link_citations("Goblins love lanterns [1]. See [2], [1](x) and [a].", &sources),
            "Goblins love lanterns [\\[1\\]](/search/collections/c/documents/d#chunk-0). See [2], [1](x) and [a]."
        );
        let html = markdown::render(&link_citations("It glows [1].", &sources));
        assert!(html.contains(r##"<a href="/search/collections/c/documents/d#chunk-0""##), "{html}");
        assert!(html.contains(">[1]</a>"), "{html}");
        assert_eq!(link_citations("[1]", &[]), "[1]");
    }
}

#[component]
pub fn ChatPage() -> impl IntoView {
    let params = use_params_map();
    let conversation = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let send = ServerAction::<SendChatMessage>::new();
    let stop = ServerAction::<StopChatTurn>::new();
    // Per conversation (its latest choice is preselected), not per message: the form stays as it is
    // while answers come in.
    let models = Resource::new(move || conversation.get(), chat_models);
    let conversations = Resource::new(move || send.version().get(), |_| chat_conversations());
    let turns = Resource::new(
        move || (conversation.get(), send.version().get()),
        |(id, _)| async move { if id.is_empty() { Ok(Vec::new()) } else { chat_turns(id).await } },
    );
    let message_box = NodeRef::<leptos::html::Textarea>::new();

    // A message sent in place: clear the box, and open the new conversation's own page.
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(started)) = send.value().get() {
            #[cfg(feature = "hydrate")]
            if let Some(el) = message_box.get_untracked() {
                el.set_value("");
            }
            if started.conversation_id != conversation.get_untracked() {
                navigate(&format!("/chat/{}", started.conversation_id), Default::default());
            }
        }
    });

    view! {
        <Title text="Chat" />
        <div class="grid gap-6 md:grid-cols-[16rem_minmax(0,1fr)]">
            <aside aria-labelledby="conversations-heading" class=format!("{CARD} self-start")>
                <h2 id="conversations-heading" class="text-lg font-semibold">"Conversations"</h2>
                <a href="/chat" class=BUTTON data-testid="new-conversation">"New conversation"</a>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let current = conversation.get();
                        conversations.await.map(|list| {
                            if list.is_empty() {
                                return view! { <p class="text-sm text-slate-700" data-testid="no-conversations">"No conversations yet."</p> }.into_any();
                            }
                            view! {
                                <ul class="space-y-1 text-sm" data-testid="conversation-list">
                                    {list.into_iter().map(|c| {
                                        let here = c.id == current;
                                        view! {
                                            <li>
                                                <a
                                                    href=format!("/chat/{}", c.id)
                                                    aria-current=here.then_some("page")
                                                    class="block rounded px-2 py-1 hover:bg-slate-100 aria-[current=page]:bg-slate-200"
                                                    data-testid="conversation-link"
                                                >
                                                    <span class="block truncate font-medium">{c.title.clone()}</span>
                                                    <span class="block text-xs text-slate-600">
                                                        {format!("{} turn{} · {}", c.turns, if c.turns == 1 { "" } else { "s" }, c.last_at)}
                                                    </span>
                                                </a>
                                            </li>
                                        }
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        })
                    })}
                </Transition>
            </aside>

            <section aria-labelledby="chat-heading" class="min-w-0 space-y-4">
                <h1 id="chat-heading" class="text-2xl font-bold">"Chat"</h1>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let speech = models.await.ok().and_then(|m| m.speech);
                        match turns.await {
                            Ok(list) if list.is_empty() => view! {
                                <p class="text-sm text-slate-700" data-testid="no-turns">
                                    "Choose a model, write a message, and the answer appears here as it is written."
                                </p>
                            }.into_any(),
                            Ok(list) => view! {
                                <ol class="space-y-4" data-testid="turns">
                                    {list.into_iter().map(|t| view! { <TurnView turn=t speech=speech.clone() stop=stop /> }).collect_view()}
                                </ol>
                            }.into_any(),
                            Err(AppError::NotFound(m)) => view! {
                                <p role="alert" class="text-sm text-rose-800" data-testid="conversation-missing">
                                    {m} ". " <a class="underline" href="/chat">"Start a new conversation"</a>
                                </p>
                            }.into_any(),
                            Err(e) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Transition>
                <p role="alert" class="text-sm text-rose-800" data-testid="stop-error">
                    {move || match stop.value().get() {
                        Some(Err(e)) => Some(e.to_string()),
                        _ => None,
                    }}
                </p>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match models.await {
                            Ok(m) => view! { <MessageForm models=m conversation=conversation send=send message_box=message_box /> }.into_any(),
                            Err(e) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Transition>
            </section>
        </div>
    }
}

#[component]
fn MessageForm(
    models: ModelChoices,
    conversation: Memo<String>,
    send: ServerAction<SendChatMessage>,
    message_box: NodeRef<leptos::html::Textarea>,
) -> impl IntoView {
    if models.chat.is_empty() {
        return view! {
            <p class=CARD data-testid="no-models">
                "No chat model is available yet: an admin adds a provider with a key under Admin → Providers."
            </p>
        }
        .into_any();
    }
    let chosen = models.chosen.clone().unwrap_or_else(|| models.chat[0].clone());
    let chosen_collection = models.chosen_collection.clone().unwrap_or_default();
    let collections = models.collections.clone();
    let pending = send.pending();
    view! {
        <ActionForm action=send attr:class=format!("{CARD} flex flex-col gap-3") attr:data-testid="message-form">
            <input type="hidden" name="conversation_id" value=move || conversation.get() />
            <label class="flex flex-col gap-1">
                <span class=LABEL>"Model"</span>
                <select name="model" required class=INPUT data-testid="model">
                    {models.chat.into_iter().map(|m| {
                        let selected = m == chosen;
                        view! { <option value=m.clone() selected=selected>{m.clone()}</option> }
                    }).collect_view()}
                </select>
            </label>
            <label class="flex flex-col gap-1">
                <span class=LABEL>"Search collection"</span>
                <select name="collection_id" class=INPUT data-testid="collection">
                    <option value="" selected=chosen_collection.is_empty()>"None"</option>
                    {collections.into_iter().map(|(id, name)| {
                        let selected = id == chosen_collection;
                        view! { <option value=id selected=selected>{name}</option> }
                    }).collect_view()}
                </select>
                <span class="text-xs text-slate-600">
                    "With a collection, the best passages for your message go to the model as numbered sources it cites."
                </span>
            </label>
            <label class="flex flex-col gap-1">
                <span class=LABEL>"Message"</span>
                <textarea
                    name="message"
                    required
                    rows="4"
                    maxlength=MAX_MESSAGE_CHARS.to_string()
                    class=INPUT
                    data-testid="message"
                    node_ref=message_box
                ></textarea>
            </label>
            <div class="flex items-center gap-3">
                <button type="submit" class=BUTTON data-testid="send" disabled=move || pending.get()>"Send"</button>
                <span class="text-xs text-slate-600">{format!("Up to {MAX_MESSAGE_CHARS} characters.")}</span>
            </div>
            <p role="alert" class="text-sm text-rose-800" data-testid="send-error">
                {move || match send.value().get() {
                    Some(Err(e)) => Some(e.to_string()),
                    _ => None,
                }}
            </p>
        </ActionForm>
    }
    .into_any()
}

/// One turn: the message, and the answer, followed live while it is coming in.
#[component]
fn TurnView(turn: TurnRow, speech: Option<String>, stop: ServerAction<StopChatTurn>) -> impl IntoView {
    let text = RwSignal::new(turn.text.clone());
    let status = RwSignal::new(turn.status.clone());
    let answered_by = RwSignal::new(turn.answered_by.clone());
    let usage = RwSignal::new((turn.tokens_in, turn.tokens_out, turn.cost.clone()));
    let error = RwSignal::new(turn.error.clone());
    let lost = RwSignal::new(None::<String>);
    // Play needs JavaScript: it appears once the page has hydrated.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    #[cfg(feature = "hydrate")]
    if turn.status == "streaming" {
        use std::{cell::Cell, rc::Rc};
        // Dropped (closing the connection) when the turn leaves the page.
        let follow = StoredValue::new_local(None::<crate::chat_client::Follow>);
        let stream_id = turn.stream_id.clone();
        let seen = Rc::new(Cell::new(turn.last_seq));
        Effect::new(move |_| {
            let seen = seen.clone();
            let opened = crate::chat_client::follow(
                &stream_id,
                seen.get(),
                move |c| {
                    if c.seq > seen.get() {
                        seen.set(c.seq);
                        text.try_update(|t| t.push_str(&c.text));
                    }
                },
                move |end| {
                    status.try_set(end.status);
                    usage.try_set((end.tokens_in, end.tokens_out, end.cost));
                    answered_by.try_set(match (end.provider, end.model) {
                        (Some(p), Some(m)) => Some(format!("{p} / {m}")),
                        (None, m) => m,
                        (Some(p), None) => Some(p),
                    });
                    error.try_set(end.error);
                },
                move |m| {
                    lost.try_set(Some(m));
                },
            );
            match opened {
                Ok(f) => follow.set_value(Some(f)),
                Err(e) => lost.set(Some(e)),
            }
        });
        on_cleanup(move || {
            follow.try_update_value(|f| *f = None);
        });
    }

    let stream_id = turn.stream_id.clone();
    let stop_id = turn.stream_id.clone();
    let has_speech = speech.is_some();
    let play_error = RwSignal::new(None::<String>);
    let playing = RwSignal::new(false);
    let play = move |_| {
        let Some(model) = speech.clone() else { return };
        let words = markdown::plain_text(&text.get_untracked());
        if words.is_empty() || playing.get_untracked() {
            return;
        }
        playing.set(true);
        play_error.set(None);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            if let Err(e) = crate::chat_client::speak(&model, &words).await {
                play_error.try_set(Some(e));
            }
            playing.try_set(false);
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (model, words);
    };
    let requested = turn.requested_model.clone();
    let sources = turn.sources.clone();
    let cited = sources.clone();

    view! {
        <li class="space-y-2" data-testid="turn" data-stream=stream_id.clone() data-status=move || status.get()>
            <div class="ml-auto max-w-[85%] rounded-lg bg-slate-800 px-3 py-2 text-sm text-white">
                <p class="whitespace-pre-wrap break-words" data-testid="prompt">{turn.prompt.clone()}</p>
            </div>
            <div class="rounded-lg border border-slate-200 bg-white px-3 py-2 shadow-sm">
                <div
                    class=ANSWER
                    data-testid="answer"
                    inner_html=move || markdown::render(&link_citations(&text.get(), &cited))
                ></div>
                // The links load the document's page in full (rel="external"), so the cited chunk is
                // the page's :target and shows highlighted.
                {(!sources.is_empty()).then(|| view! {
                    <div class="mt-2 border-t border-slate-200 pt-2">
                        <p class="text-xs font-semibold text-slate-700">"Sources"</p>
                        <ol class="space-y-0.5 text-sm" data-testid="sources">
                            {sources.iter().map(|s| view! {
                                <li>
                                    <a class="text-sky-800 underline" href=s.href.clone() rel="external" data-testid="source-link">
                                        {format!("[{}] {}", s.n, s.title)}
                                    </a>
                                </li>
                            }).collect_view()}
                        </ol>
                    </div>
                })}
                <p class="mt-2 flex flex-wrap items-center gap-x-3 gap-y-1 text-xs text-slate-600" data-testid="turn-usage">
                    <span data-testid="turn-status">{move || status_label(&status.get())}</span>
                    <span>{move || answered_by.get().or_else(|| requested.clone()).unwrap_or_default()}</span>
                    <span data-testid="turn-tokens">{move || { let (i, o, _) = usage.get(); format!("{i} tokens in · {o} out") }}</span>
                    <span data-testid="turn-cost">{move || format!("${}", usage.get().2)}</span>
                </p>
                <p role="alert" class="text-sm text-rose-800" data-testid="turn-error">
                    {move || error.get().or_else(|| lost.get())}
                </p>
                <div class="mt-2 flex gap-2">
                    {move || {
                        let id = stop_id.clone();
                        (status.get() == "streaming").then(move || view! {
                        <ActionForm action=stop>
                            <input type="hidden" name="stream_id" value=id />
                            <button type="submit" class=DANGER data-testid="stop">"Stop"</button>
                        </ActionForm>
                    })}}
                    {move || (has_speech && hydrated.get() && status.get() != "streaming" && !text.get().is_empty()).then(|| view! {
                        <button type="button" class=BUTTON data-testid="play" on:click=play.clone() disabled=move || playing.get()>
                            {move || if playing.get() { "Playing…" } else { "Play" }}
                        </button>
                    })}
                </div>
                <p role="alert" class="text-sm text-rose-800">{move || play_error.get()}</p>
            </div>
        </li>
    }
}
