//! The signed-in person's own account: passkeys (add, rename, delete), sessions (end any), and API
//! tokens (create, revoke). Everything but adding a passkey and seeing a new token works as plain forms.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::server_fns::account::{
    CreateToken, DeletePasskey, EndSession, RenamePasskey, RevokeToken, my_passkeys, my_sessions, my_tokens,
};

const CARD: &str = "rounded-lg border border-slate-200 bg-white p-4 shadow-sm space-y-3";
const BUTTON: &str = "rounded border border-slate-900 px-3 py-1 text-sm font-medium hover:bg-slate-100";
const INPUT: &str = "rounded border border-slate-400 px-2 py-1 text-sm";

#[component]
pub fn AccountPage() -> impl IntoView {
    view! {
        <Title text="Account" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold">"Your account"</h1>
            <Passkeys />
            <Sessions />
            <Tokens />
        </div>
    }
}

fn error_text<T>(v: Option<Result<T, crate::error::AppError>>) -> Option<String> {
    match v {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

#[component]
fn Passkeys() -> impl IntoView {
    let rename = ServerAction::<RenamePasskey>::new();
    let delete = ServerAction::<DeletePasskey>::new();
    let added = RwSignal::new(0u32);
    let list = Resource::new(
        move || (rename.version().get(), delete.version().get(), added.get()),
        |_| my_passkeys(),
    );
    let message = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let new_name = RwSignal::new("Another passkey".to_string());

    let add = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        message.set(None);
        let name = new_name.get_untracked();
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::{server_fns::account, webauthn_client};
            let result = async {
                let (ceremony, options) = account::add_passkey_start().await.map_err(|e| e.to_string())?;
                let credential = webauthn_client::create(options).await?;
                account::add_passkey_finish(ceremony, credential, name).await.map_err(|e| e.to_string())
            }
            .await;
            match result {
                Ok(()) => {
                    message.set(Some("Passkey added.".into()));
                    added.update(|n| *n += 1);
                }
                Err(e) => message.set(Some(e)),
            }
            busy.set(false);
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = name;
    };

    view! {
        <section aria-labelledby="passkeys-heading" class=CARD>
            <h2 id="passkeys-heading" class="text-lg font-semibold">"Passkeys"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    list.await.map(|keys| {
                        view! {
                            <ul class="divide-y divide-slate-200" data-testid="passkey-list">
                                {keys
                                    .into_iter()
                                    .map(|k| {
                                        let id_r = k.id.clone();
                                        let id_d = k.id.clone();
                                        let delete_label = format!("Delete passkey {}", k.name);
                                        view! {
                                            <li class="flex flex-wrap items-center gap-3 py-2">
                                                <ActionForm action=rename attr:class="flex items-center gap-2">
                                                    <input type="hidden" name="id" value=id_r />
                                                    <label class="sr-only" for=format!("pk-{}", k.id)>"Passkey name"</label>
                                                    <input id=format!("pk-{}", k.id) name="name" class=INPUT value=k.name.clone() />
                                                    <button type="submit" class=BUTTON>"Rename"</button>
                                                </ActionForm>
                                                <span class="text-xs text-slate-600">
                                                    "added " {k.created_at.clone()} " · last used "
                                                    {k.last_used_at.clone().unwrap_or_else(|| "never".into())}
                                                </span>
                                                <ActionForm action=delete>
                                                    <input type="hidden" name="id" value=id_d />
                                                    <button type="submit" class=BUTTON aria-label=delete_label>
                                                        "Delete"
                                                    </button>
                                                </ActionForm>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                    })
                })}
            </Transition>
            <p role="alert" class="text-sm text-rose-800">
                {move || error_text(rename.value().get()).or_else(|| error_text(delete.value().get()))}
            </p>
            <form class="flex flex-wrap items-center gap-2" on:submit=add>
                <label for="new-passkey-name" class="text-sm font-medium">"New passkey name"</label>
                <input id="new-passkey-name" class=INPUT bind:value=new_name />
                <button type="submit" data-testid="add-passkey" class=BUTTON disabled=move || busy.get()>
                    "Add a passkey"
                </button>
                <noscript><span class="text-sm">"(needs JavaScript)"</span></noscript>
            </form>
            <p role="status" data-testid="passkey-message" class="text-sm">{move || message.get()}</p>
        </section>
    }
}

#[component]
fn Sessions() -> impl IntoView {
    let end = ServerAction::<EndSession>::new();
    let list = Resource::new(move || end.version().get(), |_| my_sessions());
    view! {
        <section aria-labelledby="sessions-heading" class=CARD>
            <h2 id="sessions-heading" class="text-lg font-semibold">"Signed-in sessions"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    list.await.map(|sessions| {
                        view! {
                            <ul class="divide-y divide-slate-200" data-testid="session-list">
                                {sessions
                                    .into_iter()
                                    .map(|s| {
                                        view! {
                                            <li class="flex flex-wrap items-center gap-3 py-2 text-sm">
                                                <span class="font-mono">{s.handle.clone()}</span>
                                                <span>"signed in " {s.signed_in_at.clone().unwrap_or_default()}</span>
                                                <span class="text-slate-600">"expires " {s.expires_at.clone()}</span>
                                                {s.current.then(|| view! { <strong>"this browser"</strong> })}
                                                <ActionForm action=end>
                                                    <input type="hidden" name="handle" value=s.handle.clone() />
                                                    <button type="submit" class=BUTTON>"End"</button>
                                                </ActionForm>
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                    })
                })}
            </Transition>
            <p role="alert" class="text-sm text-rose-800">{move || error_text(end.value().get())}</p>
        </section>
    }
}

#[component]
fn Tokens() -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let list = Resource::new(move || (create.version().get(), revoke.version().get()), |_| my_tokens());
    view! {
        <section aria-labelledby="tokens-heading" class=CARD>
            <h2 id="tokens-heading" class="text-lg font-semibold">"API tokens"</h2>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    list.await.map(|tokens| {
                        view! {
                            <ul class="divide-y divide-slate-200" data-testid="token-list">
                                {tokens
                                    .into_iter()
                                    .map(|t| {
                                        view! {
                                            <li class="flex flex-wrap items-center gap-3 py-2 text-sm">
                                                <span class="font-medium">{t.name.clone()}</span>
                                                <span>{t.scopes.join(", ")}</span>
                                                <span class="text-slate-600">"expires " {t.expires_at.clone()}</span>
                                                {if t.revoked {
                                                    view! { <span class="text-rose-800">"revoked"</span> }.into_any()
                                                } else {
                                                    view! {
                                                        <ActionForm action=revoke>
                                                            <input type="hidden" name="id" value=t.id.clone() />
                                                            <button type="submit" class=BUTTON>"Revoke"</button>
                                                        </ActionForm>
                                                    }
                                                        .into_any()
                                                }}
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                    })
                })}
            </Transition>
            <ActionForm action=create attr:class="flex flex-wrap items-end gap-3">
                <div class="flex flex-col">
                    <label for="token-name" class="text-sm font-medium">"Name"</label>
                    <input id="token-name" name="name" required class=INPUT />
                </div>
                <div class="flex flex-col">
                    <label for="token-days" class="text-sm font-medium">"Days valid"</label>
                    <input id="token-days" name="ttl_days" type="number" min="1" max="3650" value="30" class=INPUT />
                </div>
                <div class="flex flex-col">
                    <label for="token-budget" class="text-sm font-medium">"Budget, US dollars (optional)"</label>
                    <input id="token-budget" name="budget" inputmode="decimal" placeholder="e.g. 10" class=INPUT />
                </div>
                <div class="flex flex-col">
                    <label for="token-budget-period" class="text-sm font-medium">"per"</label>
                    <select id="token-budget-period" name="budget_period" class=INPUT>
                        <option value="day">"day"</option>
                        <option value="week">"week"</option>
                        <option value="month" selected>"month"</option>
                    </select>
                </div>
                <fieldset class="flex gap-3 text-sm">
                    <legend class="sr-only">"Scopes"</legend>
                    <label><input type="checkbox" name="chat" checked /> " chat"</label>
                    <label><input type="checkbox" name="tasks_run" /> " tasks:run"</label>
                    <label><input type="checkbox" name="search" /> " search"</label>
                    <label><input type="checkbox" name="admin" /> " admin"</label>
                </fieldset>
                <button type="submit" class=BUTTON>"Create token"</button>
            </ActionForm>
            {move || match create.value().get() {
                Some(Ok(t)) => {
                    view! {
                        <div role="status" class="rounded border border-emerald-300 bg-emerald-50 p-3 text-sm">
                            <p>"Copy it now: it is shown only this once."</p>
                            <code data-testid="new-token" class="block break-all">{t.token}</code>
                        </div>
                    }
                        .into_any()
                }
                Some(Err(e)) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                None => ().into_any(),
            }}
            <p role="alert" class="text-sm text-rose-800">{move || error_text(revoke.value().get())}</p>
        </section>
    }
}
