//! Search: collections of documents, cut into chunks and indexed, and a query box over one of them.
//!
//! - `/search`: the collections, a form to create one, and delete (with a confirmation box).
//! - `/search/collections/{id}`: one collection: its settings (rename, chunk size and overlap,
//!   embedding model), a query box (`?q=`) with ranked results (title, highlighted snippet, score),
//!   adding documents by upload (.txt, .md, .html, .pdf) or pasted text, and its documents (view,
//!   re-index, delete).
//! - `/search/collections/{id}/documents/{doc}`: a document's chunks; `#chunk-{n}` highlights one
//!   (chat citations link there).
//!
//! Everything works as plain forms without JavaScript: the query box is a GET form, the upload form
//! posts multipart to `/search/collections/{id}/upload`, which redirects back with the outcome. With
//! JavaScript on, an upload goes to the JSON API with XMLHttpRequest and shows its progress.
//!
//! Document text is shown as text everywhere, snippets included (they arrive as text parts, with the
//! matched words marked): a document's own HTML never becomes the page's.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    components::ui::{BUTTON, CARD, DANGER, INPUT, LABEL},
    error::AppError,
    server_fns::search::{
        CollectionRow, CreateSearchCollection, DeleteSearchCollection, DeleteSearchDocument, DocumentRow,
        HitRow, PasteSearchDocument, ReindexSearchDocument, SearchOutcome, UpdateSearchCollection,
        run_search, search_collection, search_collections, search_document, search_documents,
    },
};

/// Matches the server's limit (`goblin_core::search::MAX_DOCUMENT_BYTES`, 20 MiB).
#[cfg(feature = "hydrate")]
const MAX_DOCUMENT_BYTES: f64 = 20.0 * 1024.0 * 1024.0;
/// The file types an upload takes.
const ACCEPT: &str = ".txt,.md,.markdown,.html,.htm,.pdf";

fn error_text(e: &Option<Result<impl Sized, AppError>>) -> Option<String> {
    match e {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

fn collection_href(id: &str) -> String {
    format!("/search/collections/{id}")
}

#[component]
pub fn SearchPage() -> impl IntoView {
    let create = ServerAction::<CreateSearchCollection>::new();
    let delete = ServerAction::<DeleteSearchCollection>::new();
    let collections =
        Resource::new(move || (create.version().get(), delete.version().get()), |_| search_collections());

    view! {
        <Title text="Search" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold">"Search"</h1>
            <section aria-labelledby="collections-heading" class=CARD>
                <h2 id="collections-heading" class="text-lg font-semibold">"Collections"</h2>
                <p class="text-sm text-slate-700">
                    "A collection holds documents, cut into chunks of a number of tokens (with some overlap) and "
                    "indexed for full-text search. Chat can search one and cite what it found."
                </p>
                <p role="alert" class="text-sm text-rose-800" data-testid="delete-collection-error">
                    {move || error_text(&delete.value().get())}
                </p>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match collections.await {
                            Ok(list) if list.is_empty() => view! {
                                <p class="text-sm text-slate-700" data-testid="no-collections">"No collections yet."</p>
                            }.into_any(),
                            Ok(list) => view! {
                                <ul class="divide-y divide-slate-200" data-testid="collections">
                                    {list.into_iter().map(|c| view! { <CollectionItem c=c delete=delete /> }).collect_view()}
                                </ul>
                            }.into_any(),
                            Err(e) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Transition>
            </section>

            <section aria-labelledby="create-heading" class=CARD>
                <h2 id="create-heading" class="text-lg font-semibold">"New collection"</h2>
                <ActionForm action=create attr:class="grid gap-3 sm:grid-cols-2" attr:data-testid="create-collection-form">
                    <label class="flex flex-col gap-1">
                        <span class=LABEL>"Name"</span>
                        <input name="name" required maxlength="128" class=INPUT data-testid="collection-name-input" />
                    </label>
                    <label class="flex flex-col gap-1">
                        <span class=LABEL>"Description"</span>
                        <input name="description" maxlength="2000" class=INPUT />
                    </label>
                    <label class="flex flex-col gap-1">
                        <span class=LABEL>"Chunk size (tokens)"</span>
                        <input name="chunk_size" type="number" min="32" max="8192" placeholder="512" class=INPUT />
                    </label>
                    <label class="flex flex-col gap-1">
                        <span class=LABEL>"Chunk overlap (tokens)"</span>
                        <input name="chunk_overlap" type="number" min="0" placeholder="64" class=INPUT />
                    </label>
                    <label class="flex flex-col gap-1 sm:col-span-2">
                        <span class=LABEL>"Embedding model (optional)"</span>
                        <input name="embedding_model" maxlength="192" placeholder="e.g. openai/text-embedding-3-small" class=INPUT />
                    </label>
                    <div class="sm:col-span-2">
                        <button type="submit" class=BUTTON data-testid="create-collection">"Create collection"</button>
                    </div>
                    <p role="alert" class="text-sm text-rose-800 sm:col-span-2" data-testid="create-collection-error">
                        {move || error_text(&create.value().get())}
                    </p>
                </ActionForm>
            </section>
        </div>
    }
}

#[component]
fn CollectionItem(c: CollectionRow, delete: ServerAction<DeleteSearchCollection>) -> impl IntoView {
    let plural = |n: i64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    view! {
        <li class="flex flex-wrap items-center justify-between gap-3 py-2" data-testid="collection">
            <div>
                <a href=collection_href(&c.id) class="font-medium text-sky-800 underline" data-testid="collection-link">
                    {c.name.clone()}
                </a>
                <p class="text-xs text-slate-600">
                    {format!(
                        "{} · {} · chunks of {} tokens, {} overlap{}",
                        plural(c.document_count, "document"),
                        plural(c.chunk_count, "chunk"),
                        c.chunk_size,
                        c.chunk_overlap,
                        c.embedding_model.as_deref().map(|m| format!(" · embeddings: {m}")).unwrap_or_default()
                    )}
                </p>
                {(!c.description.is_empty()).then(|| view! { <p class="text-sm text-slate-700">{c.description.clone()}</p> })}
            </div>
            <ActionForm action=delete attr:class="flex items-center gap-2">
                <input type="hidden" name="id" value=c.id.clone() />
                <label class="text-sm">
                    <input type="checkbox" name="confirm" value="yes" required data-testid="confirm-delete-collection" />
                    " yes, delete it with its documents"
                </label>
                <button type="submit" class=DANGER data-testid="delete-collection">"Delete"</button>
            </ActionForm>
        </li>
    }
}

#[component]
pub fn SearchCollectionPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let q = Memo::new(move |_| query.with(|m| m.get("q")));
    let uploaded = Memo::new(move |_| query.with(|m| m.get("uploaded")));
    let upload_refused = Memo::new(move |_| query.with(|m| m.get("upload_error")));
    let update = ServerAction::<UpdateSearchCollection>::new();
    let paste = ServerAction::<PasteSearchDocument>::new();
    let delete_doc = ServerAction::<DeleteSearchDocument>::new();
    let reindex = ServerAction::<ReindexSearchDocument>::new();
    // Bumped when an upload sent in place has added a document.
    let uploads = RwSignal::new(0u32);
    let changed = move || {
        (
            id.get(),
            update.version().get(),
            paste.version().get(),
            delete_doc.version().get(),
            reindex.version().get(),
            uploads.get(),
        )
    };
    let collection = Resource::new(changed, |(id, ..)| search_collection(id));
    let documents = Resource::new(changed, |(id, ..)| search_documents(id));
    let results = Resource::new(
        move || (id.get(), q.get()),
        |(id, q)| async move {
            match q {
                None => Ok(None),
                Some(q) => run_search(id, q).await.map(Some),
            }
        },
    );

    // Each part is type-erased (`into_any`): as one view type the page is too deep for the compiler.
    let header = view! {
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match collection.await {
                        Ok(c) => view! { <CollectionHeader c=c update=update /> }.into_any(),
                        Err(e) => view! {
                            <p role="alert" class="text-sm text-rose-800" data-testid="collection-missing">{e.to_string()}</p>
                        }.into_any(),
                    }
                })}
            </Transition>
    }
    .into_any();
    let query_section = view! {
            <section aria-labelledby="query-heading" class=CARD>
                <h2 id="query-heading" class="text-lg font-semibold">"Search this collection"</h2>
                <form method="get" action=move || collection_href(&id.get()) class="flex flex-wrap gap-2" data-testid="search-form">
                    <input
                        type="search"
                        name="q"
                        maxlength="1000"
                        aria-label="Query"
                        placeholder="Words to look for"
                        class=format!("{INPUT} min-w-0 flex-1")
                        value=move || q.get().unwrap_or_default()
                        data-testid="search-query"
                    />
                    <button type="submit" class=BUTTON data-testid="search-submit">"Search"</button>
                </form>
                <Transition fallback=|| view! { <p>"Searching…"</p> }>
                    {move || Suspend::new(async move {
                        let id = id.get();
                        match results.await {
                            Ok(None) => ().into_any(),
                            Ok(Some(outcome)) => view! { <Results outcome=outcome collection_id=id /> }.into_any(),
                            Err(e) => view! {
                                <p role="alert" class="text-sm text-rose-800" data-testid="search-error">{e.to_string()}</p>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
    }
    .into_any();
    let add_section = view! {
            <section aria-labelledby="add-heading" class=CARD>
                <h2 id="add-heading" class="text-lg font-semibold">"Add a document"</h2>
                {move || view! { <UploadForm collection_id=id.get() uploads=uploads uploaded=uploaded refused=upload_refused /> }}
                <details class="space-y-2">
                    <summary class="cursor-pointer text-sm font-medium">"Or paste text"</summary>
                    <ActionForm action=paste attr:class="flex flex-col gap-3" attr:data-testid="paste-form">
                        <input type="hidden" name="collection_id" value=move || id.get() />
                        <DocumentFields />
                        <label class="flex flex-col gap-1">
                            <span class=LABEL>"Format"</span>
                            <select name="format" class=INPUT>
                                <option value="text">"Plain text"</option>
                                <option value="markdown">"Markdown"</option>
                                <option value="html">"HTML"</option>
                            </select>
                        </label>
                        <label class="flex flex-col gap-1">
                            <span class=LABEL>"Text"</span>
                            <textarea name="content" required rows="6" class=INPUT data-testid="paste-content"></textarea>
                        </label>
                        <div><button type="submit" class=BUTTON data-testid="paste-submit">"Add text"</button></div>
                        <p role="alert" class="text-sm text-rose-800" data-testid="paste-error">
                            {move || error_text(&paste.value().get())}
                        </p>
                    </ActionForm>
                </details>
            </section>
    }
    .into_any();
    let documents_section = view! {
            <section aria-labelledby="documents-heading" class=CARD>
                <h2 id="documents-heading" class="text-lg font-semibold">"Documents"</h2>
                <p role="alert" class="text-sm text-rose-800" data-testid="document-action-error">
                    {move || error_text(&delete_doc.value().get()).or_else(|| error_text(&reindex.value().get()))}
                </p>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        let cid = id.get();
                        match documents.await {
                            Ok(list) if list.is_empty() => view! {
                                <p class="text-sm text-slate-700" data-testid="no-documents">"No documents yet."</p>
                            }.into_any(),
                            Ok(list) => view! {
                                <ul class="divide-y divide-slate-200" data-testid="documents">
                                    {list.into_iter().map(|d| view! {
                                        <DocumentItem d=d collection_id=cid.clone() delete=delete_doc reindex=reindex />
                                    }).collect_view()}
                                </ul>
                            }.into_any(),
                            Err(_) => ().into_any(),
                        }
                    })}
                </Transition>
            </section>
    }
    .into_any();
    view! {
        <Title text="Search collection" />
        <div class="space-y-6">
            <p><a href="/search" class="text-sm text-sky-800 underline">"All collections"</a></p>
            {header}
            {query_section}
            {add_section}
            {documents_section}
        </div>
    }
}

#[component]
fn CollectionHeader(c: CollectionRow, update: ServerAction<UpdateSearchCollection>) -> impl IntoView {
    view! {
        <div class="space-y-1">
            <h1 class="text-2xl font-bold" data-testid="collection-name">{c.name.clone()}</h1>
            <p class="text-sm text-slate-700" data-testid="collection-counts">
                {format!("{} documents · {} chunks", c.document_count, c.chunk_count)}
            </p>
            {(!c.description.is_empty()).then(|| view! { <p class="text-sm text-slate-700">{c.description.clone()}</p> })}
        </div>
        <details class=CARD>
            <summary class="cursor-pointer text-sm font-medium">"Rename or change settings"</summary>
            <ActionForm action=update attr:class="grid gap-3 sm:grid-cols-2" attr:data-testid="collection-settings-form">
                <input type="hidden" name="id" value=c.id.clone() />
                <label class="flex flex-col gap-1">
                    <span class=LABEL>"Name"</span>
                    <input name="name" required maxlength="128" value=c.name.clone() class=INPUT data-testid="rename-input" />
                </label>
                <label class="flex flex-col gap-1">
                    <span class=LABEL>"Description"</span>
                    <input name="description" maxlength="2000" value=c.description.clone() class=INPUT />
                </label>
                <label class="flex flex-col gap-1">
                    <span class=LABEL>"Chunk size (tokens)"</span>
                    <input name="chunk_size" type="number" min="32" max="8192" value=c.chunk_size.to_string() class=INPUT />
                </label>
                <label class="flex flex-col gap-1">
                    <span class=LABEL>"Chunk overlap (tokens)"</span>
                    <input name="chunk_overlap" type="number" min="0" value=c.chunk_overlap.to_string() class=INPUT />
                </label>
                <label class="flex flex-col gap-1 sm:col-span-2">
                    <span class=LABEL>"Embedding model (empty for none)"</span>
                    <input name="embedding_model" maxlength="192" value=c.embedding_model.clone().unwrap_or_default() class=INPUT />
                </label>
                <p class="text-xs text-slate-600 sm:col-span-2">
                    "New chunk settings apply to documents added or re-indexed afterwards."
                </p>
                <div><button type="submit" class=BUTTON data-testid="save-collection">"Save"</button></div>
                <p role="alert" class="text-sm text-rose-800 sm:col-span-2">{move || error_text(&update.value().get())}</p>
            </ActionForm>
        </details>
    }
}

/// Title, source and tags: the metadata fields of both ways to add a document.
#[component]
fn DocumentFields() -> impl IntoView {
    view! {
        <div class="grid gap-3 sm:grid-cols-3">
            <label class="flex flex-col gap-1">
                <span class=LABEL>"Title (optional)"</span>
                <input name="title" maxlength="256" class=INPUT data-testid="document-title" />
            </label>
            <label class="flex flex-col gap-1">
                <span class=LABEL>"Source (optional)"</span>
                <input name="source" maxlength="512" placeholder="a URL or where it came from" class=INPUT />
            </label>
            <label class="flex flex-col gap-1">
                <span class=LABEL>"Tags (comma-separated)"</span>
                <input name="tags" class=INPUT data-testid="document-tags" />
            </label>
        </div>
    }
}

/// The upload form: a plain multipart post without JavaScript; with it, sent in place with progress.
#[component]
fn UploadForm(
    collection_id: String,
    uploads: RwSignal<u32>,
    uploaded: Memo<Option<String>>,
    refused: Memo<Option<String>>,
) -> impl IntoView {
    let percent = RwSignal::new(None::<u32>);
    // The outcome of an upload sent in place: the new document's title, or the refusal.
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let form_action = format!("/search/collections/{collection_id}/upload");
    #[cfg(feature = "hydrate")]
    let inflight = StoredValue::new_local(None::<crate::search_client::Upload>);
    #[cfg(feature = "hydrate")]
    let api = format!("/api/search/collections/{collection_id}/documents/upload");
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let Some(form) = ev.target().and_then(|t| t.dyn_into::<web_sys::HtmlFormElement>().ok()) else {
                return;
            };
            ev.prevent_default();
            outcome.set(None);
            percent.set(None);
            let sent = form.clone();
            let started = crate::search_client::upload(
                &form,
                &api,
                MAX_DOCUMENT_BYTES,
                move |p| {
                    percent.try_set(Some(p));
                },
                move |r| {
                    if r.is_ok() {
                        sent.reset();
                        uploads.try_update(|n| *n += 1);
                    }
                    outcome.try_set(Some(r));
                },
            );
            match started {
                Ok(u) => inflight.set_value(Some(u)),
                Err(m) => outcome.set(Some(Err(m))),
            }
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (ev, uploads);
    };
    let error = move || match outcome.get() {
        Some(Err(m)) => Some(m),
        Some(Ok(_)) => None,
        None => refused.get(),
    };
    let added = move || match outcome.get() {
        Some(Ok(title)) => Some(format!("Added '{title}'.")),
        Some(Err(_)) => None,
        None => uploaded.get().map(|_| "Added the document.".to_string()),
    };
    view! {
        <form
            method="post"
            enctype="multipart/form-data"
            action=form_action
            class="flex flex-col gap-3"
            data-testid="upload-form"
            on:submit=on_submit
        >
            <label class="flex flex-col gap-1">
                <span class=LABEL>"File (.txt, .md, .html or .pdf, up to 20 MiB)"</span>
                <input type="file" name="file" required accept=ACCEPT class=INPUT data-testid="upload-file" />
            </label>
            <DocumentFields />
            <div class="flex flex-wrap items-center gap-3">
                <button type="submit" class=BUTTON data-testid="upload-submit">"Upload"</button>
                {move || percent.get().map(|p| view! {
                    <progress max="100" value=p.to_string() class="w-48" data-testid="upload-progress">{format!("{p}%")}</progress>
                    <span class="text-sm tabular-nums" data-testid="upload-percent">{format!("{p}%")}</span>
                })}
            </div>
            <p role="alert" class="text-sm text-rose-800" data-testid="upload-error">{error}</p>
            <p role="status" class="text-sm text-emerald-800" data-testid="upload-done">{added}</p>
        </form>
    }
}

#[component]
fn Results(outcome: SearchOutcome, collection_id: String) -> impl IntoView {
    if outcome.hits.is_empty() {
        return view! {
            <p class="text-sm text-slate-700" data-testid="no-results">
                {format!("Nothing matches {}.", outcome.terms.join(", "))}
            </p>
        }
        .into_any();
    }
    view! {
        <ol class="space-y-3" data-testid="search-results">
            {outcome.hits.into_iter().map(|h| view! { <Hit h=h collection_id=collection_id.clone() /> }).collect_view()}
        </ol>
    }
    .into_any()
}

/// One result. Its link loads the document's page in full (`rel="external"`, not the router's
/// in-page navigation), so the chunk is the page's `:target` and shows highlighted.
#[component]
fn Hit(h: HitRow, collection_id: String) -> impl IntoView {
    let href = format!("/search/collections/{collection_id}/documents/{}#chunk-{}", h.document_id, h.seq);
    view! {
        <li class="rounded border border-slate-200 p-3" data-testid="hit">
            <div class="flex flex-wrap items-baseline justify-between gap-2">
                <a href=href rel="external" class="font-medium text-sky-800 underline" data-testid="hit-title">{h.title.clone()}</a>
                <span class="text-xs tabular-nums text-slate-600" data-testid="hit-score">{format!("score {:.3}", h.score)}</span>
            </div>
            <p class="mt-1 text-sm text-slate-800 [&_mark]:bg-amber-200" data-testid="hit-snippet">
                {h.snippet.into_iter().map(|p| if p.mark {
                    view! { <mark>{p.text}</mark> }.into_any()
                } else {
                    view! { <span>{p.text}</span> }.into_any()
                }).collect_view()}
            </p>
            <p class="text-xs text-slate-600">
                {format!("part {}", h.seq + 1)}
                {h.source.map(|s| format!(" · {s}"))}
            </p>
        </li>
    }
}

#[component]
fn DocumentItem(
    d: DocumentRow,
    collection_id: String,
    delete: ServerAction<DeleteSearchDocument>,
    reindex: ServerAction<ReindexSearchDocument>,
) -> impl IntoView {
    let href = format!("/search/collections/{collection_id}/documents/{}", d.id);
    let tags = d.tags.join(", ");
    // One copy of each id per form (a form's fields are built in its own closure).
    let (cid_reindex, cid_delete) = (collection_id.clone(), collection_id);
    let (did_reindex, did_delete) = (d.id.clone(), d.id.clone());
    view! {
        <li class="flex flex-wrap items-center justify-between gap-3 py-2" data-testid="document">
            <div>
                <a href=href class="font-medium text-sky-800 underline" data-testid="document-link">{d.title.clone()}</a>
                <p class="text-xs text-slate-600">
                    {format!("{} · {} chunks · added {}", d.content_type, d.chunk_count, d.created_at)}
                    {d.source.clone().map(|s| format!(" · {s}"))}
                    {(!tags.is_empty()).then(|| format!(" · tags: {tags}"))}
                </p>
            </div>
            <div class="flex flex-wrap items-center gap-3">
                <ActionForm action=reindex>
                    <input type="hidden" name="collection_id" value=cid_reindex />
                    <input type="hidden" name="document_id" value=did_reindex />
                    <button type="submit" class=BUTTON data-testid="reindex-document">"Re-index"</button>
                </ActionForm>
                <ActionForm action=delete attr:class="flex items-center gap-2">
                    <input type="hidden" name="collection_id" value=cid_delete />
                    <input type="hidden" name="document_id" value=did_delete />
                    <label class="text-sm">
                        <input type="checkbox" name="confirm" value="yes" required data-testid="confirm-delete-document" />
                        " yes, delete"
                    </label>
                    <button type="submit" class=DANGER data-testid="delete-document">"Delete"</button>
                </ActionForm>
            </div>
        </li>
    }
}

#[component]
pub fn SearchDocumentPage() -> impl IntoView {
    let params = use_params_map();
    let ids = Memo::new(move |_| {
        params.with(|p| (p.get("id").unwrap_or_default(), p.get("doc").unwrap_or_default()))
    });
    let page = Resource::new(move || ids.get(), |(c, d)| search_document(c, d));
    view! {
        <Title text="Search document" />
        <Transition fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(p) => view! {
                        <div class="space-y-4">
                            <p>
                                <a href=collection_href(&p.collection.id) class="text-sm text-sky-800 underline" data-testid="back-to-collection">
                                    {format!("Collection: {}", p.collection.name)}
                                </a>
                            </p>
                            <h1 class="text-2xl font-bold" data-testid="document-heading">{p.document.title.clone()}</h1>
                            <p class="text-sm text-slate-700">
                                {format!("{} · {} chunks · added {}", p.document.content_type, p.document.chunk_count, p.document.created_at)}
                                {p.document.source.clone().map(|s| format!(" · source: {s}"))}
                                {(!p.document.tags.is_empty()).then(|| format!(" · tags: {}", p.document.tags.join(", ")))}
                            </p>
                            <ol class="space-y-3" data-testid="chunks">
                                {p.chunks.into_iter().map(|c| view! {
                                    <li
                                        id=format!("chunk-{}", c.seq)
                                        class="scroll-mt-4 rounded border border-slate-200 bg-white p-3 target:border-amber-500 target:bg-amber-50 target:ring-2 target:ring-amber-400"
                                        data-testid="chunk"
                                        data-seq=c.seq.to_string()
                                    >
                                        <p class="text-xs text-slate-600">{format!("Part {} · {} tokens", c.seq + 1, c.token_count)}</p>
                                        <p class="whitespace-pre-wrap break-words text-sm">{c.text}</p>
                                    </li>
                                }).collect_view()}
                            </ol>
                        </div>
                    }.into_any(),
                    Err(e) => view! {
                        <p role="alert" class="text-sm text-rose-800" data-testid="document-missing">{e.to_string()}</p>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}
