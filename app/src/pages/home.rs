//! Home: the live health of the server's components (from the same service as `/health`), then the
//! dashboard: providers healthy, tasks running and queued, spend today and this month, and charts of
//! requests and p95 latency per hour, spend per provider per day, and task success per day.
//!
//! Without JavaScript the page is complete as served (the charts are SVG drawn on the server), and
//! "Refresh" is a plain form that reloads it. Once hydrated, "Refresh" re-checks in place and the
//! page refreshes itself every 15 seconds. Health and the dashboard load separately, so a database
//! outage still shows the health report.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    components::{
        charts::{BarLineChart, BarPoint, Series, StackedChart},
        status::StatusBadge,
        ui::CARD,
    },
    server_fns::{
        health::{HealthView, get_health},
        monitoring::{DashboardView, dashboard, usd},
    },
};

const AUTO_REFRESH_MS: u64 = 15_000;

#[component]
pub fn HomePage() -> impl IntoView {
    let health = Resource::new(|| (), |_| get_health());
    let board = Resource::new(|| (), |_| dashboard());

    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) = set_interval_with_handle(
            move || {
                health.refetch();
                board.refetch();
            },
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
                        board.refetch();
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
        <section aria-labelledby="dashboard-heading" class="mt-8 space-y-6">
            <h2 id="dashboard-heading" class="text-xl font-bold">"Activity"</h2>
            <ErrorBoundary fallback=|errors| {
                view! {
                    <div role="alert" class="rounded border border-rose-300 bg-rose-50 p-4 text-rose-900">
                        <p class="font-semibold">"The dashboard could not be loaded."</p>
                        <ul class="mt-2 list-disc pl-5 text-sm">
                            {move || errors.get().into_iter().map(|(_, e)| view! { <li>{e.to_string()}</li> }).collect_view()}
                        </ul>
                    </div>
                }
            }>
                <Transition fallback=|| view! { <p class="text-slate-700">"Loading the dashboard…"</p> }>
                    {move || Suspend::new(async move { board.await.map(|d| view! { <Dashboard d /> }) })}
                </Transition>
            </ErrorBoundary>
        </section>
    }
}

#[component]
fn Dashboard(d: DashboardView) -> impl IntoView {
    let rate = |ok: i64, failed: i64| {
        if ok + failed == 0 { None } else { Some(ok as f64 * 100.0 / (ok + failed) as f64) }
    };
    let requests: Vec<BarPoint> = d
        .hours
        .iter()
        .map(|h| BarPoint {
            label: h.label.clone(),
            bar: h.requests as f64,
            line: h.p95_ms.map(f64::from),
            title: format!(
                "{} requests, {} errors, p95 {} at {} UTC",
                h.requests,
                h.errors,
                h.p95_ms.map_or_else(|| "—".to_string(), |p| format!("{p} ms")),
                h.label
            ),
        })
        .collect();
    let total_requests: i64 = d.hours.iter().map(|h| h.requests).sum();
    let spend: Vec<Series> = d
        .spend
        .iter()
        .map(|s| Series {
            name: s.provider.clone(),
            values: s.days.iter().map(|m| *m as f64).collect(),
            total: usd(s.days.iter().sum()),
        })
        .collect();
    let tasks: Vec<BarPoint> = d
        .task_days
        .iter()
        .map(|t| {
            let r = rate(t.succeeded, t.failed);
            BarPoint {
                label: t.day.clone(),
                bar: r.unwrap_or(0.0),
                line: None,
                title: match r {
                    Some(r) => format!(
                        "{}: {} of {} succeeded ({r:.0}%)",
                        t.day,
                        t.succeeded,
                        t.succeeded + t.failed
                    ),
                    None => format!("{}: no finished tasks", t.day),
                },
            }
        })
        .collect();
    let (ok, failed) = d.task_days.iter().fold((0, 0), |(a, b), t| (a + t.succeeded, b + t.failed));
    let overall = rate(ok, failed)
        .map_or_else(|| "no finished tasks".to_string(), |r| format!("{r:.0}% of {} succeeded", ok + failed));
    view! {
        <ul class="grid gap-4 sm:grid-cols-3" aria-label="Dashboard">
            <li class=CARD data-testid="card-providers">
                <h3 class="font-semibold">"Providers healthy"</h3>
                <p class="text-2xl font-bold" data-testid="providers-healthy">{format!("{} of {}", d.providers_healthy, d.providers_total)}</p>
                <p class="text-sm text-slate-700">"Enabled providers whose last check passed and that are not failing now."</p>
            </li>
            <li class=CARD data-testid="card-tasks">
                <h3 class="font-semibold">"Tasks"</h3>
                <p class="text-2xl font-bold">
                    <span data-testid="tasks-running">{d.tasks_running}</span>" running · "
                    <span data-testid="tasks-queued">{d.tasks_queued}</span>" queued"
                </p>
            </li>
            <li class=CARD data-testid="card-spend">
                <h3 class="font-semibold">"Spend"</h3>
                <p class="text-2xl font-bold"><span data-testid="spend-today">{d.spend_today.clone()}</span>" today"</p>
                <p class="text-sm text-slate-700"><span data-testid="spend-month">{d.spend_month.clone()}</span>" this month (UTC)"</p>
            </li>
        </ul>
        <div class=CARD data-testid="chart-requests">
            <h3 class="font-semibold">"Requests per hour and p95 latency, last 24 hours (UTC)"</h3>
            <p class="text-sm text-slate-700">"Bars: gateway requests. Line: the hour's highest per-minute p95 latency."</p>
            <BarLineChart
                points=requests
                summary=format!("{total_requests} gateway requests in the last 24 hours")
                empty_message="No requests in the last 24 hours."
            />
        </div>
        <div class=CARD data-testid="chart-spend">
            <h3 class="font-semibold">"Spend per provider per day, last 30 days (UTC)"</h3>
            <StackedChart
                labels=d.spend_days.clone()
                series=spend
                summary="Spend per provider per day".to_string()
                empty_message="No spend in the last 30 days."
                format=|v| usd(v as i64)
            />
        </div>
        <div class=CARD data-testid="chart-tasks">
            <h3 class="font-semibold">"Task success rate per day, last 14 days"</h3>
            <p class="text-sm text-slate-700">{overall}</p>
            <BarLineChart
                points=tasks
                summary="Share of finished tasks that succeeded, per day".to_string()
                empty_message="No finished tasks in the last 14 days."
                label_every=2
            />
        </div>
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
            <li class="rounded-lg border border-slate-200 bg-white p-4 shadow-sm" data-testid="card-api">
                <div class="flex items-center justify-between">
                    <h2 class="font-semibold">"API"</h2>
                    <StatusBadge up=true />
                </div>
                <p class="mt-3 text-sm text-slate-700">"Version " {report.version.clone()}</p>
            </li>
            {(!report.components.iter().any(|c| c.name == "redis")).then(|| view! {
                <li class="rounded-lg border border-slate-200 bg-white p-4 shadow-sm" data-testid="card-redis">
                    <h2 class="font-semibold">"Redis"</h2>
                    <p class="mt-3 text-sm text-slate-700">
                        "Not configured: sign-in challenges, sessions and limits are kept by this server alone."
                    </p>
                </li>
            })}
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
