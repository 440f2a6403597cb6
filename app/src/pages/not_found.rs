//! The page for any path that matches no route; answered with status 404.

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(axum::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Not found" />
        <section aria-labelledby="nf-heading" class="mx-auto max-w-lg py-16 text-center">
            <p class="text-sm font-semibold text-slate-600">"404"</p>
            <h1 id="nf-heading" class="mt-2 text-3xl font-bold">"Page not found"</h1>
            <p class="mt-4 text-slate-700">"Nothing lives at this address."</p>
            <a href="/" class="mt-6 inline-block rounded bg-slate-900 px-4 py-2 text-white hover:bg-slate-700">
                "Back to home"
            </a>
        </section>
    }
}
