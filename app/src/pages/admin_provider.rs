//! Admin → one provider: edit it, its keys (masked; add, replace, disable, delete), its models (sync,
//! add, edit, delete), "test connection" per provider and per key, and its recent checks.
//! Deleting anything asks first: a box must be ticked, with or without JavaScript.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::{
    components::ui::{BUTTON, CARD, DANGER, INPUT, LABEL},
    error::AppError,
    pages::{admin::AdminNav, admin_providers::check_summary},
    server_fns::providers::{
        AddKey, CheckRow, DeleteKey, DeleteModel, DeleteProvider, ModelRow, ProviderPage, ReplaceKey,
        SaveModel, SyncModels, TestConnection, UpdateKey, UpdateProvider, get_provider, provider_kinds,
    },
};

fn failure<T>(v: Option<Result<T, AppError>>) -> Option<String> {
    match v {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

#[component]
fn CheckResult(check: CheckRow) -> impl IntoView {
    let class = if check.ok {
        "rounded border border-emerald-300 bg-emerald-50 p-2 text-sm"
    } else {
        "rounded border border-rose-300 bg-rose-50 p-2 text-sm"
    };
    view! {
        <p role="status" class=class data-testid="check-result" data-ok=check.ok.to_string()>
            {if check.ok { "Connection works: " } else { "Connection failed: " }}
            {check.message.clone()} " (" {check.latency_ms} " ms"
            {check.status_code.map(|s| format!(", HTTP {s}"))} ")"
        </p>
    }
}

#[component]
pub fn AdminProviderPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();

    let update = ServerAction::<UpdateProvider>::new();
    let delete = ServerAction::<DeleteProvider>::new();
    let add_key = ServerAction::<AddKey>::new();
    let replace_key = ServerAction::<ReplaceKey>::new();
    let update_key = ServerAction::<UpdateKey>::new();
    let delete_key = ServerAction::<DeleteKey>::new();
    let test = ServerAction::<TestConnection>::new();
    let sync = ServerAction::<SyncModels>::new();
    let save_model = ServerAction::<SaveModel>::new();
    let delete_model = ServerAction::<DeleteModel>::new();

    let page = Resource::new(
        move || {
            (
                id(),
                update.version().get(),
                add_key.version().get() + replace_key.version().get() + update_key.version().get(),
                delete_key.version().get() + test.version().get() + sync.version().get(),
                save_model.version().get() + delete_model.version().get(),
            )
        },
        |(id, ..)| get_provider(id),
    );
    let kinds = Resource::new(|| (), |_| provider_kinds());

    let errors = move || {
        [
            failure(update.value().get()),
            failure(delete.value().get()),
            failure(replace_key.value().get()),
            failure(update_key.value().get()),
            failure(delete_key.value().get()),
            failure(delete_model.value().get()),
        ]
        .into_iter()
        .flatten()
        .next()
    };

    view! {
        <Title text="Provider" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold"><a href="/admin/providers" class="underline">"Providers"</a> " / provider"</h1>
            <AdminNav current="/admin/providers" />
            <p role="alert" class="text-sm text-rose-800" data-testid="page-error">{errors}</p>
            {move || (delete.value().get() == Some(Ok(()))).then(|| view! {
                <p role="status" class="text-sm">"Provider deleted. " <a class="underline" href="/admin/providers">"Back to providers"</a></p>
            })}
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(p) => view! {
                            <ProviderSections
                                page=p kinds=kinds
                                update=update delete=delete add_key=add_key replace_key=replace_key
                                update_key=update_key delete_key=delete_key test=test sync=sync
                                save_model=save_model delete_model=delete_model
                            />
                        }.into_any(),
                        Err(AppError::NotFound(_)) => view! {
                            <p data-testid="provider-missing">"There is no such provider (it may have been deleted). " <a class="underline" href="/admin/providers">"Back to providers"</a></p>
                        }.into_any(),
                        Err(e) => view! { <p role="alert" class="text-rose-800">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
#[allow(clippy::too_many_arguments)]
fn ProviderSections(
    page: ProviderPage,
    kinds: Resource<Result<Vec<crate::server_fns::providers::KindOption>, AppError>>,
    update: ServerAction<UpdateProvider>,
    delete: ServerAction<DeleteProvider>,
    add_key: ServerAction<AddKey>,
    replace_key: ServerAction<ReplaceKey>,
    update_key: ServerAction<UpdateKey>,
    delete_key: ServerAction<DeleteKey>,
    test: ServerAction<TestConnection>,
    sync: ServerAction<SyncModels>,
    save_model: ServerAction<SaveModel>,
    delete_model: ServerAction<DeleteModel>,
) -> impl IntoView {
    let p = page.provider;
    let pid = p.id.clone();
    let _ = &pid;
    let (pid_test, pid_keys, pid_add_key, pid_sync, pid_models, pid_add_model, pid_update, pid_delete) = (
        pid.clone(),
        pid.clone(),
        pid.clone(),
        pid.clone(),
        pid.clone(),
        pid.clone(),
        pid.clone(),
        pid.clone(),
    );
    let kind_now = p.kind.clone();
    let has_cap = |c: &str| p.capabilities.iter().any(|x| x == c);
    let (cap_chat, cap_emb, cap_speech) = (has_cap("chat"), has_cap("embeddings"), has_cap("speech"));

    view! {
        <section aria-labelledby="provider-heading" class=CARD data-testid="provider-summary">
            <h2 id="provider-heading" class="text-lg font-semibold">{p.name.clone()}</h2>
            <p class="text-sm text-slate-700">{p.kind_label.clone()} " · " {p.base_url.clone()} " · " {if p.enabled { "enabled" } else { "disabled" }}</p>
            <p class="text-sm" data-testid="last-check">
                "Last check: " {p.last_check.as_ref().map_or_else(|| "never".to_string(), check_summary)}
            </p>
            <ActionForm action=test attr:class="flex items-center gap-2">
                <input type="hidden" name="provider_id" value=pid_test />
                <button type="submit" class=BUTTON data-testid="test-connection">"Test connection"</button>
            </ActionForm>
            {move || match test.value().get() {
                Some(Ok(c)) => view! { <CheckResult check=c /> }.into_any(),
                Some(Err(e)) => view! { <p role="alert" class="text-sm text-rose-800" data-testid="check-error">{e.to_string()}</p> }.into_any(),
                None => ().into_any(),
            }}
        </section>

        <section aria-labelledby="keys-heading" class=CARD>
            <h2 id="keys-heading" class="text-lg font-semibold">"Keys"</h2>
            <p class="text-sm text-slate-600">"Stored encrypted; only a mask is ever shown. Calls use the enabled, unexpired key used least recently."</p>
            {if page.keys.is_empty() {
                view! { <p data-testid="no-keys">"No keys yet."</p> }.into_any()
            } else {
                view! {
                    <ul class="divide-y divide-slate-200" data-testid="key-list">
                        {page.keys.into_iter().map(|k| {
                            let (id1, id2, id3, id4) = (k.id.clone(), k.id.clone(), k.id.clone(), k.id.clone());
                            let pid = pid_keys.clone();
                            let testid = format!("key-{}", k.label);
                            let (label1, label2) = (k.label.clone(), k.label.clone());
                            view! {
                                <li class="space-y-2 py-3" data-testid=testid>
                                    <div class="flex flex-wrap items-center gap-3 text-sm">
                                        <code data-testid="key-mask">{k.masked.clone()}</code>
                                        <span>{label1}</span>
                                        <span>{if !k.enabled { "disabled" } else if k.expired { "expired" } else { "enabled" }}</span>
                                        <span class="text-slate-600">"last used " {k.last_used.clone().unwrap_or_else(|| "never".into())}</span>
                                        <ActionForm action=test attr:class="inline">
                                            <input type="hidden" name="provider_id" value=pid />
                                            <input type="hidden" name="key_id" value=id1 />
                                            <button type="submit" class=BUTTON>"Test this key"</button>
                                        </ActionForm>
                                    </div>
                                    <ActionForm action=update_key attr:class="flex flex-wrap items-end gap-2">
                                        <input type="hidden" name="id" value=id2 />
                                        <label class="flex flex-col text-xs">"Label"<input name="label" value=label2 required maxlength="64" class=INPUT /></label>
                                        <label class="flex flex-col text-xs">"Expires"<input name="expires" type="date" value=k.expires.clone() class=INPUT /></label>
                                        <label class="text-sm"><input type="checkbox" name="enabled" value="on" checked=k.enabled />" enabled"</label>
                                        <button type="submit" class=BUTTON>"Save key"</button>
                                    </ActionForm>
                                    <ActionForm action=replace_key attr:class="flex flex-wrap items-end gap-2">
                                        <input type="hidden" name="id" value=id3 />
                                        <label class="flex flex-col text-xs">"New value"<input name="key" type="password" autocomplete="off" required class=INPUT /></label>
                                        <button type="submit" class=BUTTON>"Replace key"</button>
                                    </ActionForm>
                                    <ActionForm action=delete_key attr:class="flex items-center gap-2">
                                        <input type="hidden" name="id" value=id4 />
                                        <label class="text-sm"><input type="checkbox" name="confirm" value="yes" required />" yes, delete this key"</label>
                                        <button type="submit" class=DANGER>"Delete key"</button>
                                    </ActionForm>
                                </li>
                            }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <ActionForm action=add_key attr:class="flex flex-wrap items-end gap-3" attr:data-testid="add-key-form">
                <input type="hidden" name="provider_id" value=pid_add_key />
                <label class="flex flex-col text-sm">"Label"<input name="label" value="default" required maxlength="64" class=INPUT /></label>
                <label class="flex flex-col text-sm">"API key"<input name="key" type="password" autocomplete="off" required class=INPUT /></label>
                <label class="flex flex-col text-sm">"Expires (optional)"<input name="expires" type="date" class=INPUT /></label>
                <button type="submit" class=BUTTON data-testid="add-key">"Add key"</button>
            </ActionForm>
            {move || match add_key.value().get() {
                Some(Ok(k)) => view! { <p role="status" class="text-sm text-emerald-800">"Key added: " <code>{k.masked}</code></p> }.into_any(),
                Some(Err(e)) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                None => ().into_any(),
            }}
        </section>

        <section aria-labelledby="models-heading" class=CARD>
            <h2 id="models-heading" class="text-lg font-semibold">"Models"</h2>
            <ActionForm action=sync attr:class="flex items-center gap-2">
                <input type="hidden" name="provider_id" value=pid_sync />
                <button type="submit" class=BUTTON data-testid="sync-models">"Sync models"</button>
                <span class="text-xs text-slate-600">"Adds models the provider lists; models already here are left as they are."</span>
            </ActionForm>
            {move || match sync.value().get() {
                Some(Ok(r)) => view! { <p role="status" class="text-sm">{format!("{} added, {} already configured.", r.added.len(), r.kept)}</p> }.into_any(),
                Some(Err(e)) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                None => ().into_any(),
            }}
            <ul class="divide-y divide-slate-200" data-testid="model-list">
                {page.models.into_iter().map(|m| {
                    let mid = m.id.clone();
                    let pid = pid_models.clone();
                    let testid = format!("model-{}", m.model_id);
                    view! {
                        <li class="py-2 text-sm" data-testid=testid>
                            <details>
                                <summary class="cursor-pointer">
                                    <span class="font-mono">{m.model_id.clone()}</span> " · " {m.display_name.clone()} " · "
                                    {m.capabilities.join(", ")}
                                    {m.context_window.map(|c| format!(" · {c} tokens"))}
                                    {format!(" · ${} / ${} per 1M tokens", m.price_in, m.price_out)}
                                    {m.is_default.then_some(" · default")}
                                    {(!m.edited).then_some(" · from sync")}
                                </summary>
                                <ModelForm action=save_model provider_id=pid model=Some(m.clone()) />
                                <ActionForm action=delete_model attr:class="mt-2 flex items-center gap-2">
                                    <input type="hidden" name="id" value=mid />
                                    <label><input type="checkbox" name="confirm" value="yes" required />" yes, delete this model"</label>
                                    <button type="submit" class=DANGER>"Delete model"</button>
                                </ActionForm>
                            </details>
                        </li>
                    }
                }).collect_view()}
            </ul>
            <details>
                <summary class="cursor-pointer text-sm font-medium">"Add a model by hand"</summary>
                <ModelForm action=save_model provider_id=pid_add_model model=None />
            </details>
            {move || failure(save_model.value().get()).map(|e| view! { <p role="alert" class="text-sm text-rose-800">{e}</p> })}
        </section>

        <section aria-labelledby="edit-heading" class=CARD>
            <h2 id="edit-heading" class="text-lg font-semibold">"Settings"</h2>
            <ActionForm action=update attr:class="grid gap-3 sm:grid-cols-2">
                <input type="hidden" name="id" value=pid_update />
                <label class="flex flex-col"><span class=LABEL>"Name"</span><input name="name" value=p.name.clone() required maxlength="64" class=INPUT /></label>
                <label class="flex flex-col"><span class=LABEL>"Kind"</span>
                    <select name="kind" class=INPUT>
                        <Suspense fallback=move || view! { <option value=kind_now.clone()>{kind_now.clone()}</option> }>
                            {move || {
                                let current = p.kind.clone();
                                Suspend::new(async move {
                                    kinds.await.map(|ks| ks.into_iter().map(|k| {
                                        let selected = k.value == current;
                                        view! { <option value=k.value.clone() selected=selected>{k.label.clone()}</option> }
                                    }).collect_view())
                                })
                            }}
                        </Suspense>
                    </select>
                </label>
                <label class="flex flex-col"><span class=LABEL>"Base URL (blank for the default)"</span><input name="base_url" type="url" value=p.base_url_override.clone() class=INPUT /></label>
                <label class="flex flex-col"><span class=LABEL>"Priority"</span><input name="priority" type="number" min="0" max="10000" value=p.priority.to_string() class=INPUT /></label>
                <div class="flex flex-wrap gap-3">
                    <label class="flex flex-col"><span class=LABEL>"Budget in US dollars (blank for none)"</span><input name="budget" inputmode="decimal" value=p.budget.clone() placeholder="e.g. 50" class=INPUT /></label>
                    <label class="flex flex-col"><span class=LABEL>"per"</span>
                        <select name="budget_period" class=INPUT>
                            {["day", "week", "month"].into_iter().map(|per| view! { <option value=per selected=p.budget_period == per>{per}</option> }).collect_view()}
                        </select>
                    </label>
                </div>
                <fieldset class="flex flex-wrap gap-3 text-sm">
                    <legend class=LABEL>"Capabilities"</legend>
                    <label><input type="checkbox" name="cap_chat" value="on" checked=cap_chat />" chat"</label>
                    <label><input type="checkbox" name="cap_embeddings" value="on" checked=cap_emb />" embeddings"</label>
                    <label><input type="checkbox" name="cap_speech" value="on" checked=cap_speech />" speech"</label>
                </fieldset>
                <label class="text-sm"><input type="checkbox" name="enabled" value="on" checked=p.enabled />" enabled"</label>
                <div><button type="submit" class=BUTTON>"Save provider"</button></div>
            </ActionForm>
        </section>

        <section aria-labelledby="checks-heading" class=CARD>
            <h2 id="checks-heading" class="text-lg font-semibold">"Recent checks"</h2>
            <ul class="text-sm" data-testid="check-list">
                {page.checks.into_iter().map(|c| view! {
                    <li class=if c.ok { "text-emerald-800" } else { "text-rose-800" }>{check_summary(&c)}</li>
                }).collect_view()}
            </ul>
        </section>

        <section aria-labelledby="delete-heading" class=CARD>
            <h2 id="delete-heading" class="text-lg font-semibold">"Delete"</h2>
            <ActionForm action=delete attr:class="flex items-center gap-2">
                <input type="hidden" name="id" value=pid_delete />
                <label class="text-sm"><input type="checkbox" name="confirm" value="yes" required />" yes, delete this provider with its keys and models"</label>
                <button type="submit" class=DANGER>"Delete provider"</button>
            </ActionForm>
        </section>
    }
}

#[component]
fn ModelForm(action: ServerAction<SaveModel>, provider_id: String, model: Option<ModelRow>) -> impl IntoView {
    let m = model.clone().unwrap_or(ModelRow {
        id: String::new(),
        model_id: String::new(),
        display_name: String::new(),
        capabilities: vec![],
        context_window: None,
        price_in: String::new(),
        price_out: String::new(),
        default_params: String::new(),
        is_default: false,
        edited: true,
    });
    let has = |c: &str| m.capabilities.iter().any(|x| x == c);
    let (chat, emb, speech) = (has("chat"), has("embeddings"), has("speech"));
    view! {
        <ActionForm action=action attr:class="mt-2 grid gap-2 sm:grid-cols-3">
            <input type="hidden" name="provider_id" value=provider_id />
            <input type="hidden" name="id" value=m.id.clone() />
            <label class="flex flex-col text-xs">"Model id"<input name="model_id" value=m.model_id.clone() required maxlength="128" class=INPUT /></label>
            <label class="flex flex-col text-xs">"Display name"<input name="display_name" value=m.display_name.clone() maxlength="128" class=INPUT /></label>
            <label class="flex flex-col text-xs">"Context window (tokens)"<input name="context_window" type="number" min="1" value=m.context_window.map(|c| c.to_string()).unwrap_or_default() class=INPUT /></label>
            <label class="flex flex-col text-xs">"Input $ per 1M tokens"<input name="price_in" inputmode="decimal" value=m.price_in.clone() class=INPUT /></label>
            <label class="flex flex-col text-xs">"Output $ per 1M tokens"<input name="price_out" inputmode="decimal" value=m.price_out.clone() class=INPUT /></label>
            <label class="flex flex-col text-xs">"Default parameters (JSON)"<input name="default_params" value=m.default_params.clone() placeholder="{\"temperature\": 0.2}" class=INPUT /></label>
            <fieldset class="flex flex-wrap gap-2 text-xs">
                <legend>"Capabilities"</legend>
                <label><input type="checkbox" name="cap_chat" value="on" checked=chat />" chat"</label>
                <label><input type="checkbox" name="cap_embeddings" value="on" checked=emb />" embeddings"</label>
                <label><input type="checkbox" name="cap_speech" value="on" checked=speech />" speech"</label>
            </fieldset>
            <label class="text-xs"><input type="checkbox" name="is_default" value="on" checked=m.is_default />" default model"</label>
            <div><button type="submit" class=BUTTON>{if model.is_some() { "Save model" } else { "Add model" }}</button></div>
        </ActionForm>
    }
}
