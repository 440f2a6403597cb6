//! Home: the live health of the server's components, from the same service as `/health`.
//!
//! Without JavaScript the page is complete as served, and "Refresh" is a plain form that reloads it.
//! Once hydrated, "Refresh" re-checks in place and the report refreshes itself every 15 seconds.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    components::status::StatusBadge,
    server_fns::health::{HealthView, get_health},
};

const AUTO_REFRESH_MS: u64 = 15_000;

#[component]
pub fn HomePage() -> impl IntoView {
    let health = Resource::new(|| (), |_| get_health());

    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) = set_interval_with_handle(
            move || health.refetch(),
            std::time::Duration::from_millis(AUTO_REFRESH_MS),
        ) {
            on_cleanup(move || handle.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = AUTO_REFRESH_MS;

    view! {
        <Title text="Home" />
        <section aria-labelledby="health-heading" class="space-y-6">
            <div class="flex flex-wrap items-end justify-between gap-4">
                <div>
                    <h1 id="health-heading" class="text-2xl font-bold">"System health"</h1>
                    <p class="mt-1 text-sm text-slate-700">
                        "The components this server depends on, checked live."
                    </p>
                </div>
                <form
                    method="get"
                    action="/"
                    on:submit=move |ev| {
                        ev.prevent_default();
                        health.refetch();
                    }
                >
                    <button
                        type="submit"
                        data-testid="refresh"
                        class="rounded bg-slate-900 px-4 py-2 text-sm font-medium text-white hover:bg-slate-700 focus:outline-none focus-visible:ring-2 focus-visible:ring-slate-900 focus-visible:ring-offset-2"
                    >
                        "Refresh"
                    </button>
                </form>
            </div>
            <ErrorBoundary fallback=|errors| {
                view! {
                    <div role="alert" class="rounded border border-rose-300 bg-rose-50 p-4 text-rose-900">
                        <p class="font-semibold">"The health report could not be loaded."</p>
                        <ul class="mt-2 list-disc pl-5 text-sm">
                            {move || {
                                errors
                                    .get()
                                    .into_iter()
                                    .map(|(_, e)| view! { <li>{e.to_string()}</li> })
                                    .collect_view()
                            }}
                        </ul>
                    </div>
                }
            }>
                <Transition fallback=|| {
                    view! { <p class="text-slate-700">"Checking components…"</p> }
                }>
                    {move || Suspend::new(async move {
                        health.await.map(|report| view! { <HealthReport report /> })
                    })}
                </Transition>
            </ErrorBoundary>
        </section>
    }
}

#[component]
fn HealthReport(report: HealthView) -> impl IntoView {
    let (banner_class, banner_text) = if report.healthy {
        ("border-emerald-300 bg-emerald-50 text-emerald-900", "All required components are up.")
    } else {
        ("border-rose-300 bg-rose-50 text-rose-900", "Some required components are down.")
    };
    view! {
        <div
            data-testid="overall"
            data-healthy=report.healthy.to_string()
            role="status"
            class=format!("rounded border p-4 font-medium {banner_class}")
        >
            {banner_text}
        </div>
        <ul class="grid gap-4 sm:grid-cols-2 lg:grid-cols-3" aria-label="Components">
            {report
                .components
                .into_iter()
                .map(|c| {
                    let heading_id = format!("component-{}-name", c.name);
                    let labelled_by = heading_id.clone();
                    view! {
                        <li
                            class="rounded-lg border border-slate-200 bg-white p-4 shadow-sm"
                            data-testid=format!("component-{}", c.name)
                            aria-labelledby=labelled_by
                        >
                            <div class="flex items-center justify-between">
                                <h2 id=heading_id class="font-semibold capitalize">{c.name.clone()}</h2>
                                <StatusBadge up=c.up />
                            </div>
                            <dl class="mt-3 space-y-1 text-sm text-slate-700">
                                {c
                                    .latency_ms
                                    .map(|ms| {
                                        view! {
                                            <div class="flex justify-between">
                                                <dt>"Latency"</dt>
                                                <dd>{format!("{ms:.2} ms")}</dd>
                                            </div>
                                        }
                                    })}
                                {c
                                    .detail
                                    .map(|d| {
                                        view! {
                                            <div class="flex justify-between gap-2">
                                                <dt>{if c.up { "Backend" } else { "Problem" }}</dt>
                                                <dd class="text-right">{d}</dd>
                                            </div>
                                        }
                                    })}
                                {c
                                    .migration
                                    .map(|m| {
                                        view! {
                                            <div class="flex justify-between gap-2">
                                                <dt>"Schema"</dt>
                                                <dd class="truncate font-mono text-xs" title=m.clone()>{m.clone()}</dd>
                                            </div>
                                        }
                                    })}
                            </dl>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
        <p class="text-xs text-slate-600">
            "Version " {report.version} " · checked at "
            <time data-testid="checked-at" datetime=report.checked_at.clone()>{report.checked_at.clone()}</time>
        </p>
    }
}
