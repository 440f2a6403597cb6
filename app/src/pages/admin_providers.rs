//! Admin → Providers: every provider in routing order with its health and last check; add, enable or
//! disable, and reorder. Each provider's own page has its keys, models and "test connection".

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    components::ui::{BUTTON, CARD, INPUT, LABEL},
    pages::admin::AdminNav,
    server_fns::providers::{
        CheckRow, CreateProvider, MoveProvider, SetProviderEnabled, list_providers, provider_kinds,
    },
};

/// A check as one short line: "ok · 120 ms · connected; 3 models listed".
pub fn check_summary(c: &CheckRow) -> String {
    format!("{} · {} ms · {} · {}", if c.ok { "ok" } else { "failed" }, c.latency_ms, c.message, c.at)
}

#[component]
pub fn AdminProvidersPage() -> impl IntoView {
    let create = ServerAction::<CreateProvider>::new();
    let toggle = ServerAction::<SetProviderEnabled>::new();
    let reorder = ServerAction::<MoveProvider>::new();
    let providers = Resource::new(
        move || (create.version().get(), toggle.version().get(), reorder.version().get()),
        |_| list_providers(),
    );
    let kinds = Resource::new(|| (), |_| provider_kinds());

    view! {
        <Title text="Providers" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold">"Providers"</h1>
            <AdminNav current="/admin/providers" />
            <section aria-labelledby="providers-heading" class=CARD>
                <h2 id="providers-heading" class="text-lg font-semibold">"In routing order"</h2>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        providers.await.map(|rows| {
                            if rows.is_empty() {
                                return view! { <p data-testid="no-providers">"No providers yet. Add one below, or start the server with OPENAI_API_KEY (or another provider's key) set."</p> }.into_any();
                            }
                            view! {
                                <table class="w-full text-left text-sm" data-testid="provider-table">
                                    <thead><tr><th>"Order"</th><th>"Provider"</th><th>"Keys"</th><th>"Models"</th><th>"Last check"</th><th>"State"</th></tr></thead>
                                    <tbody>
                                        {rows.into_iter().map(|p| {
                                            let (id_up, id_down, id_toggle) = (p.id.clone(), p.id.clone(), p.id.clone());
                                            let testid = format!("provider-{}", p.name);
                                            let (up_label, down_label) = (format!("Move {} up", p.name), format!("Move {} down", p.name));
                                            let href = format!("/admin/providers/{}", p.id);
                                            let health = match &p.last_check {
                                                Some(c) if c.ok => ("text-emerald-800", check_summary(c)),
                                                Some(c) => ("text-rose-800", check_summary(c)),
                                                None => ("text-slate-600", "never checked".to_string()),
                                            };
                                            view! {
                                                <tr class="border-t border-slate-200 align-top" data-testid=testid>
                                                    <td class="py-2 whitespace-nowrap">
                                                        <span class="mr-2">{p.priority}</span>
                                                        <ActionForm action=reorder attr:class="inline">
                                                            <input type="hidden" name="id" value=id_up />
                                                            <input type="hidden" name="direction" value="up" />
                                                            <button type="submit" class="px-1" aria-label=up_label>"↑"</button>
                                                        </ActionForm>
                                                        <ActionForm action=reorder attr:class="inline">
                                                            <input type="hidden" name="id" value=id_down />
                                                            <input type="hidden" name="direction" value="down" />
                                                            <button type="submit" class="px-1" aria-label=down_label>"↓"</button>
                                                        </ActionForm>
                                                    </td>
                                                    <td class="py-2">
                                                        <a class="font-medium underline" href=href>{p.name.clone()}</a>
                                                        <div class="text-xs text-slate-600">{p.kind_label.clone()} " · " {p.base_url.clone()}</div>
                                                        <div class="text-xs text-slate-600">{p.capabilities.join(", ")}</div>
                                                    </td>
                                                    <td class="py-2">{p.enabled_keys} " of " {p.keys} " enabled"</td>
                                                    <td class="py-2">{p.models}</td>
                                                    <td class=format!("py-2 text-xs {}", health.0) data-testid="last-check">{health.1}</td>
                                                    <td class="py-2">
                                                        <ActionForm action=toggle attr:class="flex items-center gap-2">
                                                            <input type="hidden" name="id" value=id_toggle />
                                                            <input type="hidden" name="enabled" value=if p.enabled { "false" } else { "true" } />
                                                            <span>{if p.enabled { "enabled" } else { "disabled" }}</span>
                                                            <button type="submit" class=BUTTON>{if p.enabled { "Disable" } else { "Enable" }}</button>
                                                        </ActionForm>
                                                    </td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        })
                    })}
                </Transition>
                <p role="alert" class="text-sm text-rose-800">
                    {move || match (toggle.value().get(), reorder.value().get()) {
                        (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e.to_string()),
                        _ => None,
                    }}
                </p>
            </section>

            <section aria-labelledby="add-provider-heading" class=CARD>
                <h2 id="add-provider-heading" class="text-lg font-semibold">"Add a provider"</h2>
                <ActionForm action=create attr:class="grid gap-3 sm:grid-cols-2" attr:data-testid="add-provider-form">
                    <div class="flex flex-col">
                        <label for="p-name" class=LABEL>"Name"</label>
                        <input id="p-name" name="name" required maxlength="64" class=INPUT placeholder="openai-main" />
                    </div>
                    <div class="flex flex-col">
                        <label for="p-kind" class=LABEL>"Kind"</label>
                        <select id="p-kind" name="kind" class=INPUT>
                            <Suspense fallback=|| view! { <option value="openai">"OpenAI"</option> }>
                                {move || Suspend::new(async move {
                                    kinds.await.map(|ks| ks.into_iter().map(|k| view! { <option value=k.value.clone()>{k.label.clone()}</option> }).collect_view())
                                })}
                            </Suspense>
                        </select>
                    </div>
                    <div class="flex flex-col">
                        <label for="p-base" class=LABEL>"Base URL (blank for the kind's default)"</label>
                        <input id="p-base" name="base_url" type="url" class=INPUT placeholder="http://localhost:11434/v1" />
                    </div>
                    <div class="flex flex-col">
                        <label for="p-priority" class=LABEL>"Priority (lower goes first)"</label>
                        <input id="p-priority" name="priority" type="number" min="0" max="10000" value="100" class=INPUT />
                    </div>
                    <fieldset class="flex flex-wrap gap-3 text-sm">
                        <legend class=LABEL>"Capabilities (none ticked: the kind's defaults)"</legend>
                        <label><input type="checkbox" name="cap_chat" value="on" />" chat"</label>
                        <label><input type="checkbox" name="cap_embeddings" value="on" />" embeddings"</label>
                        <label><input type="checkbox" name="cap_speech" value="on" />" speech"</label>
                    </fieldset>
                    <div class="flex flex-col">
                        <label for="p-key" class=LABEL>"API key (optional; stored encrypted, shown masked)"</label>
                        <input id="p-key" name="key" type="password" autocomplete="off" class=INPUT />
                    </div>
                    <div>
                        <button type="submit" class=BUTTON data-testid="add-provider">"Add provider"</button>
                    </div>
                </ActionForm>
                {move || match create.value().get() {
                    Some(Ok(id)) => view! {
                        <p role="status" class="text-sm text-emerald-800">
                            "Provider added. " <a class="underline" href=format!("/admin/providers/{id}") data-testid="new-provider-link">"Open it to test the connection"</a>
                        </p>
                    }.into_any(),
                    Some(Err(e)) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                    None => ().into_any(),
                }}
            </section>
        </div>
    }
}
