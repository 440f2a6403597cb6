//! The frame of every page: skip link, header with the product name and navigation, main area, footer.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::server_fns::auth::{SignOut, current_user};

/// Navigation entries. An entry is added here when its page exists, so there are no dead links.
const NAV: &[(&str, &str)] =
    &[("/", "Home"), ("/chat", "Chat"), ("/tasks", "Tasks"), ("/search", "Search"), ("/account", "Account")];

#[component]
pub fn Layout(children: Children) -> impl IntoView {
    // Becomes true once the wasm bundle has hydrated the page; browser tests and styles can rely on it.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    let me = Resource::new(|| (), |_| current_user());
    let sign_out = ServerAction::<SignOut>::new();

    view! {
        <div class="flex min-h-screen flex-col" data-hydrated=move || hydrated.get().to_string()>
            <a
                href="#main"
                class="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:rounded focus:bg-white focus:px-3 focus:py-2"
            >
                "Skip to content"
            </a>
            <header class="border-b border-slate-800 bg-slate-900 text-white">
                <div class="mx-auto flex max-w-6xl items-center justify-between gap-6 px-4 py-3">
                    <a href="/" class="flex items-center gap-2 text-lg font-bold tracking-tight">
                        <img src="/favicon.svg" alt="" width="28" height="28" />
                        <span>"Goblin Assistant"</span>
                    </a>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            me.await
                                .ok()
                                .flatten()
                                .map(|u| {
                                    view! {
                                        <div class="order-last flex items-center gap-3 text-sm">
                                            {(u.role == "admin").then(|| view! {
                                                <a href="/admin" class="rounded px-3 py-1.5 font-medium text-slate-200 hover:bg-slate-700">"Admin"</a>
                                            })}
                                            <span data-testid="signed-in-as" title=u.username.clone()>
                                                {u.display_name.clone()}
                                                <span class="ml-1 rounded bg-slate-700 px-1.5 py-0.5 text-xs">{u.role.clone()}</span>
                                            </span>
                                            <ActionForm action=sign_out>
                                                <button
                                                    type="submit"
                                                    class="rounded border border-slate-500 px-2 py-1 hover:bg-slate-700"
                                                >
                                                    "Sign out"
                                                </button>
                                            </ActionForm>
                                        </div>
                                    }
                                })
                        })}
                    </Transition>
                    <nav aria-label="Main" class="flex-1">
                        <ul class="flex gap-1">
                            {NAV
                                .iter()
                                .map(|(href, label)| {
                                    view! {
                                        <li>
                                            <A
                                                href=*href
                                                exact=true
                                                attr:class="rounded px-3 py-1.5 text-sm font-medium text-slate-200 hover:bg-slate-700 hover:text-white aria-[current=page]:bg-slate-700 aria-[current=page]:text-white"
                                            >
                                                {*label}
                                            </A>
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    </nav>
                </div>
            </header>
            <main id="main" class="mx-auto w-full max-w-6xl flex-1 px-4 py-8">
                {children()}
            </main>
            <footer class="border-t border-slate-200 py-4 text-center text-xs text-slate-600">
                "Goblin Assistant " {env!("CARGO_PKG_VERSION")}
            </footer>
        </div>
    }
}
