//! Sign in with a passkey: pick one (usernameless), or type a username first.

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn SignInPage() -> impl IntoView {
    let message = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let username = RwSignal::new(String::new());

    let start = move |name: Option<String>| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        message.set(None);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            use crate::{server_fns::auth, webauthn_client};
            let result = async {
                let (ceremony, options) = auth::signin_start(name).await.map_err(|e| e.to_string())?;
                let credential = webauthn_client::get(options).await?;
                auth::signin_finish(ceremony, credential).await.map_err(|e| e.to_string())
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
        let _ = name;
    };

    view! {
        <Title text="Sign in" />
        <section aria-labelledby="signin-heading" class="mx-auto max-w-md space-y-6 py-8">
            <h1 id="signin-heading" class="text-2xl font-bold">"Sign in"</h1>
            <noscript>
                <p class="rounded border border-amber-300 bg-amber-50 p-3 text-amber-900">
                    "Signing in with a passkey needs JavaScript: your browser talks to your passkey for you."
                </p>
            </noscript>
            <button
                type="button"
                data-testid="signin-passkey"
                class="w-full rounded bg-slate-900 px-4 py-2 font-medium text-white hover:bg-slate-700 disabled:opacity-50"
                disabled=move || busy.get()
                on:click=move |_| start(None)
            >
                "Sign in with a passkey"
            </button>
            <form
                class="space-y-2"
                on:submit=move |ev| {
                    ev.prevent_default();
                    start(Some(username.get_untracked()));
                }
            >
                <label for="signin-username" class="block text-sm font-medium">
                    "Or type your username first"
                </label>
                <div class="flex gap-2">
                    <input
                        id="signin-username"
                        name="username"
                        autocomplete="username webauthn"
                        class="flex-1 rounded border border-slate-400 px-3 py-2"
                        bind:value=username
                    />
                    <button
                        type="submit"
                        class="rounded border border-slate-900 px-4 py-2 font-medium hover:bg-slate-100 disabled:opacity-50"
                        disabled=move || busy.get()
                    >
                        "Continue"
                    </button>
                </div>
            </form>
            <p role="alert" data-testid="signin-message" class="text-sm text-rose-800">
                {move || message.get()}
            </p>
            <p class="text-sm text-slate-700">
                "No account yet? Ask an admin for an invite link. On a new server, open the setup link that "
                <code>"goblin serve"</code>
                " printed, or run "
                <code>"goblin admin setup-link"</code>
                "."
            </p>
        </section>
    }
}
