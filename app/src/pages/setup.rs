//! One-time links: the first-run setup link lets the first person register a passkey and become
//! admin; an admin's invite link lets one person register with the invite's role.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn SetupPage(
    /// An invite link rather than the first-run setup link.
    #[prop(optional)]
    invite: bool,
) -> impl IntoView {
    let query = use_query_map();
    let token = move || query.with(|q| q.get("token").unwrap_or_default());
    let username = RwSignal::new(String::new());
    let display_name = RwSignal::new(String::new());
    let passkey_name = RwSignal::new("My passkey".to_string());
    let message = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        message.set(None);
        let (t, u, d, p) =
            (token(), username.get_untracked(), display_name.get_untracked(), passkey_name.get_untracked());
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::{server_fns::auth, webauthn_client};
            let result = async {
                let (ceremony, options) = auth::setup_start(t, u, d).await.map_err(|e| e.to_string())?;
                let credential = webauthn_client::create(options).await?;
                auth::setup_finish(ceremony, credential, p).await.map_err(|e| e.to_string())
            }
            .await;
            match result {
                Ok(()) => webauthn_client::go_to("/"),
                Err(e) => {
                    message.set(Some(e));
                    busy.set(false);
                }
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (t, u, d, p);
    };

    let field = "w-full rounded border border-slate-400 px-3 py-2";
    view! {
        <Title text=if invite { "Accept invite" } else { "Set up" } />
        <section aria-labelledby="setup-heading" class="mx-auto max-w-md space-y-6 py-8">
            <h1 id="setup-heading" class="text-2xl font-bold">
                {if invite { "Create your account" } else { "Create the first admin" }}
            </h1>
            <p class="text-slate-700">
                {if invite {
                    "You were invited to this Goblin Assistant. You sign in with a passkey: there is no password."
                } else {
                    "This one-time link makes you the administrator of this Goblin Assistant. You sign in with a passkey: there is no password."
                }}
            </p>
            <noscript>
                <p class="rounded border border-amber-300 bg-amber-50 p-3 text-amber-900">
                    "Registering a passkey needs JavaScript: your browser talks to your passkey for you."
                </p>
            </noscript>
            <form class="space-y-4" on:submit=submit>
                <div class="space-y-1">
                    <label for="setup-username" class="block text-sm font-medium">"Username"</label>
                    <input id="setup-username" name="username" required autocomplete="username" class=field bind:value=username />
                </div>
                <div class="space-y-1">
                    <label for="setup-display" class="block text-sm font-medium">"Display name"</label>
                    <input id="setup-display" name="display_name" required autocomplete="name" class=field bind:value=display_name />
                </div>
                <div class="space-y-1">
                    <label for="setup-passkey" class="block text-sm font-medium">"Passkey name"</label>
                    <input id="setup-passkey" name="passkey_name" class=field bind:value=passkey_name />
                </div>
                <button
                    type="submit"
                    data-testid="setup-submit"
                    class="w-full rounded bg-slate-900 px-4 py-2 font-medium text-white hover:bg-slate-700 disabled:opacity-50"
                    disabled=move || busy.get()
                >
                    "Create account with a passkey"
                </button>
            </form>
            <p role="alert" data-testid="setup-message" class="text-sm text-rose-800">{move || message.get()}</p>
        </section>
    }
}
