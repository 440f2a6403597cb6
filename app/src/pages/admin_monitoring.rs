//! Admin → Monitoring: Raptor (start and stop it, its samples as a chart, the end of its log by
//! level), a button that raises the demo error, and the traced exceptions with their context and
//! backtrace. Every form works without JavaScript: start, stop and the demo are form posts, and the
//! log's level is a GET form whose query the page reads. Hydrated, the page refreshes every 2 s
//! while Raptor runs.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    components::{
        charts::{BarLineChart, BarPoint},
        ui::{BUTTON, CARD, DANGER, INPUT, LABEL},
    },
    error::AppError,
    pages::admin::AdminNav,
    server_fns::monitoring::{
        ExceptionRow, RaptorDemo, RaptorStart, RaptorStop, RaptorView, exception_list, raptor_log,
        raptor_status,
    },
};

const LEVELS: [&str; 5] = ["all", "error", "warn", "info", "debug"];

fn failure<T>(v: Option<Result<T, AppError>>) -> Option<String> {
    match v {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    }
}

#[component]
pub fn AdminMonitoringPage() -> impl IntoView {
    let start = ServerAction::<RaptorStart>::new();
    let stop = ServerAction::<RaptorStop>::new();
    let demo = ServerAction::<RaptorDemo>::new();
    let tick = RwSignal::new(0u32);
    let changes = move || (start.version().get(), stop.version().get(), demo.version().get(), tick.get());
    let status = Resource::new(changes, |_| raptor_status());
    let query = use_query_map();
    let level = Memo::new(move |_| query.with(|q| q.get("level").unwrap_or_else(|| "all".into())));
    let log = Resource::new(move || (level.get(), changes()), |(l, _)| raptor_log(Some(l)));
    let exceptions = Resource::new(changes, |_| exception_list());

    #[cfg(feature = "hydrate")]
    {
        if let Ok(handle) = set_interval_with_handle(
            move || {
                if status.get_untracked().and_then(Result::ok).is_some_and(|s| s.running) {
                    tick.update(|n| *n += 1);
                }
            },
            std::time::Duration::from_millis(2_000),
        ) {
            on_cleanup(move || handle.clear());
        }
    }

    view! {
        <Title text="Monitoring" />
        <div class="space-y-8">
            <h1 class="text-2xl font-bold">"Monitoring"</h1>
            <AdminNav current="/admin/monitoring" />

            <section aria-labelledby="raptor-heading" class=CARD>
                <h2 id="raptor-heading" class="text-lg font-semibold">"Raptor"</h2>
                <p class="text-sm text-slate-700">
                    "Raptor samples this server's CPU and memory and the machine's while it runs, and writes the samples "
                    "with every warning and error to its log. Each server instance has its own."
                </p>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move { status.await.map(|s| view! { <RaptorStatus s /> }) })}
                </Transition>
                <div class="flex flex-wrap items-end gap-3">
                    <ActionForm action=start attr:class="flex flex-wrap items-end gap-2" attr:data-testid="raptor-start-form">
                        <label class="flex flex-col">
                            <span class=LABEL>"Sample every (ms)"</span>
                            <input name="sample_rate_ms" type="number" min="100" max="3600000" placeholder="configured" class=INPUT />
                        </label>
                        <button type="submit" class=BUTTON data-testid="raptor-start">"Start Raptor"</button>
                    </ActionForm>
                    <ActionForm action=stop>
                        <button type="submit" class=DANGER data-testid="raptor-stop">"Stop Raptor"</button>
                    </ActionForm>
                </div>
                <p role="alert" class="text-sm text-rose-800">
                    {move || failure(start.value().get()).or_else(|| failure(stop.value().get()))}
                </p>
            </section>

            <section aria-labelledby="log-heading" class=CARD>
                <h2 id="log-heading" class="text-lg font-semibold">"Raptor log"</h2>
                <form method="get" action="/admin/monitoring" class="flex flex-wrap items-end gap-2">
                    <label class="flex flex-col">
                        <span class=LABEL>"At least"</span>
                        <select name="level" class=INPUT data-testid="log-level">
                            {move || {
                                let current = level.get();
                                LEVELS.into_iter().map(|l| view! { <option value=l selected=current == l>{l}</option> }).collect_view()
                            }}
                        </select>
                    </label>
                    <button type="submit" class=BUTTON>"Show"</button>
                </form>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        log.await.map(|lines| {
                            if lines.is_empty() {
                                view! { <p data-testid="log-empty" class="text-sm text-slate-600">"No lines at this level yet."</p> }.into_any()
                            } else {
                                view! {
                                    <pre data-testid="log-tail" class="max-h-96 overflow-auto rounded bg-slate-900 p-3 text-xs text-slate-100">
                                        {lines.join("\n")}
                                    </pre>
                                }.into_any()
                            }
                        })
                    })}
                </Transition>
            </section>

            <section aria-labelledby="exceptions-heading" class=CARD>
                <h2 id="exceptions-heading" class="text-lg font-semibold">"Exceptions"</h2>
                <p class="text-sm text-slate-700">
                    "Every error and panic, grouped by where it happened and the shape of its message, with the newest "
                    "occurrence's request, route, person and backtrace."
                </p>
                <ActionForm action=demo>
                    <button type="submit" class=BUTTON data-testid="raptor-demo">"Raise the demo error"</button>
                </ActionForm>
                <p role="status" class="text-sm text-slate-700" data-testid="demo-result">
                    {move || match demo.value().get() {
                        Some(Ok(m)) => Some(m),
                        other => failure(other),
                    }}
                </p>
                <Transition fallback=|| view! { <p>"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        exceptions.await.map(|rows| {
                            if rows.is_empty() {
                                view! { <p data-testid="no-exceptions">"No exceptions recorded."</p> }.into_any()
                            } else {
                                view! {
                                    <ul class="divide-y divide-slate-200" data-testid="exceptions">
                                        {rows.into_iter().map(|e| view! { <ExceptionItem e /> }).collect_view()}
                                    </ul>
                                }.into_any()
                            }
                        })
                    })}
                </Transition>
            </section>
        </div>
    }
}

#[component]
fn RaptorStatus(s: RaptorView) -> impl IntoView {
    let points: Vec<BarPoint> = s
        .samples
        .iter()
        .map(|x| BarPoint {
            label: x.at.clone(),
            bar: f64::from(x.process_cpu_percent.unwrap_or(0.0)),
            line: x.process_memory_mb,
            title: format!(
                "{}: process CPU {}, memory {}",
                x.at,
                x.process_cpu_percent.map_or_else(|| "—".into(), |c| format!("{c:.1}%")),
                x.process_memory_mb.map_or_else(|| "—".into(), |m| format!("{m:.1} MB"))
            ),
        })
        .collect();
    let latest = s.samples.last().cloned();
    let count = s.samples.len();
    view! {
        <dl class="grid gap-2 text-sm sm:grid-cols-4">
            <div><dt class="text-slate-600">"State"</dt>
                <dd data-testid="raptor-state" data-running=s.running.to_string() class="font-semibold">
                    {if s.running { "running" } else { "stopped" }}
                </dd></div>
            <div><dt class="text-slate-600">"Sample every"</dt><dd>{format!("{} ms", s.sample_rate_ms)}</dd></div>
            <div><dt class="text-slate-600">"Samples taken"</dt><dd data-testid="samples-taken">{s.samples_taken}</dd></div>
            <div><dt class="text-slate-600">"Log"</dt><dd class="break-all font-mono text-xs">{s.log_file.clone()} " (" {s.level.clone()} " and up)"</dd></div>
        </dl>
        {latest.map(|x| view! {
            <p class="text-sm" data-testid="latest-sample">
                "Latest, " {x.at.clone()} " UTC: process CPU "
                {x.process_cpu_percent.map_or_else(|| "—".into(), |c| format!("{c:.1}%"))}
                ", memory " {x.process_memory_mb.map_or_else(|| "—".into(), |m| format!("{m:.1} MB"))}
                "; machine CPU " {x.system_cpu_percent.map_or_else(|| "—".into(), |c| format!("{c:.1}%"))}
                ", memory used " {x.system_memory_used_mb.map_or_else(|| "—".into(), |m| format!("{m:.0} MB"))}
            </p>
        })}
        <div data-testid="raptor-samples" data-count=count.to_string()>
            <BarLineChart
                points=points
                summary=format!("{count} samples: bars are process CPU, the line is process memory")
                empty_message="No samples yet: start Raptor."
                label_every=20
            />
        </div>
    }
}

#[component]
fn ExceptionItem(e: ExceptionRow) -> impl IntoView {
    let context: Vec<(&'static str, Option<String>)> = vec![
        ("Request id", e.request_id.clone()),
        ("Route", e.route.clone().map(|r| format!("{} {r}", e.method.clone().unwrap_or_default()))),
        ("User", e.user_id.clone()),
        (
            "Task",
            e.task_id.clone().map(|t| match &e.goblin_id {
                Some(g) => format!("{t} (goblin {g})"),
                None => t,
            }),
        ),
        ("Where", Some(e.location.clone())),
        ("Spans", (!e.spans.is_empty()).then(|| e.spans.join(" › "))),
        ("First seen", Some(e.first_seen.clone())),
    ];
    view! {
        <li class="py-2" data-testid="exception-row" data-kind=e.kind.clone()>
            <details>
                <summary class="cursor-pointer">
                    <span class="rounded bg-rose-100 px-1.5 py-0.5 text-xs font-semibold text-rose-900">{e.kind.clone()}</span>
                    " " <span data-testid="exception-message">{e.message.clone()}</span>
                    " " <span class="text-xs text-slate-600">{format!("× {} · last {}", e.count, e.last_seen)}</span>
                </summary>
                <dl class="mt-2 grid gap-1 text-sm sm:grid-cols-[10rem_1fr]">
                    {context.into_iter().filter_map(|(k, v)| v.map(|v| view! {
                        <dt class="text-slate-600">{k}</dt><dd class="break-all font-mono text-xs">{v}</dd>
                    })).collect_view()}
                    {e.fields.into_iter().map(|f| view! {
                        <dt class="text-slate-600">"Field"</dt><dd class="break-all font-mono text-xs">{f}</dd>
                    }).collect_view()}
                </dl>
                {e.backtrace.map(|b| view! {
                    <pre class="mt-2 max-h-64 overflow-auto rounded bg-slate-100 p-2 text-xs">{b}</pre>
                })}
            </details>
        </li>
    }
}
