//! One task (`/tasks/{id}`): its goblin and text, status, exit code, duration, who ran it and when,
//! its output (stdout, stderr and the runner's own notes told apart by a label, not only by colour),
//! and Cancel and Re-run.
//!
//! Without JavaScript the page shows the output so far; while the task runs it has a Refresh link
//! and reloads itself every two seconds (a `<noscript>` refresh). Once hydrated, the output of a
//! task that has not ended streams in over an EventSource (a reconnect resumes after the last line
//! seen) and the status, exit code and duration change in place when it ends. Cancel and Re-run
//! are plain forms: a re-run opens the new task's page.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};

use crate::{
    components::ui::{BUTTON, CARD, DANGER},
    error::AppError,
    pages::tasks::{duration, status_class, status_label, when},
    server_fns::tasks::{CancelTask, RerunTask, TaskDetailView, task_detail},
};

/// How often a page without JavaScript reloads itself while its task runs.
const NO_SCRIPT_REFRESH_S: u32 = 2;

#[component]
pub fn TaskPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|p| p.get("id").unwrap_or_default()));
    let detail = Resource::new(move || id.get(), task_detail);

    view! {
        <Title text="Task" />
        <div class="space-y-6">
            <p class="text-sm"><a class="underline" href="/tasks">"← All tasks"</a></p>
            <Transition fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match detail.await {
                        Ok(d) => view! { <TaskDetail detail=d /> }.into_any(),
                        Err(AppError::NotFound(m)) => view! {
                            <h1 class="text-2xl font-bold">"Task not found"</h1>
                            <p role="alert" class="text-sm text-rose-800" data-testid="task-missing">
                                {m} ". " <a class="underline" href="/tasks">"See all tasks"</a>
                            </p>
                        }.into_any(),
                        Err(e) => view! { <p role="alert" class="text-sm text-rose-800">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

fn stream_class(stream: &str) -> &'static str {
    match stream {
        "stderr" => "text-rose-300",
        "system" => "italic text-sky-200",
        _ => "text-slate-100",
    }
}

/// The label in an output line's margin: stdout has none, the others say what they are.
fn stream_tag(stream: &str) -> &'static str {
    match stream {
        "stderr" => "err",
        "system" => "note",
        _ => "",
    }
}

fn or_dash(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".to_string())
}

#[component]
fn TaskDetail(detail: TaskDetailView) -> impl IntoView {
    let d = detail;
    let id = d.task.id.clone();
    let task = RwSignal::new(d.task.clone());
    let lines = RwSignal::new(d.output.clone());
    let lost = RwSignal::new(None::<String>);
    // The Refresh link gives way to "following live" once the page has hydrated.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let cancel = ServerAction::<CancelTask>::new();
    let rerun = ServerAction::<RerunTask>::new();

    // A cancel answered in place: the task as it is now (the live output also ends with it).
    Effect::new(move |_| {
        if let Some(Ok(now)) = cancel.value().get() {
            task.set(now);
        }
    });
    // A re-run started in place: open the new task's page.
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(started)) = rerun.value().get() {
            navigate(&format!("/tasks/{}", started.id), Default::default());
        }
    });

    #[cfg(feature = "hydrate")]
    if !d.task.finished {
        use std::{cell::Cell, rc::Rc};
        // Dropped (closing the connection) when the task leaves the page.
        let follow = StoredValue::new_local(None::<crate::tasks_client::Follow>);
        let seen = Rc::new(Cell::new(d.output.last().map_or(0, |l| l.seq)));
        let follow_id = id.clone();
        Effect::new(move |_| {
            let seen = seen.clone();
            let opened = crate::tasks_client::follow(
                &follow_id,
                seen.get(),
                move |status| {
                    task.try_update(|t| t.status = status);
                },
                move |line: crate::server_fns::tasks::LineRow| {
                    if line.seq > seen.get() {
                        seen.set(line.seq);
                        lines.try_update(|l| l.push(line));
                    }
                },
                move |ended: crate::server_fns::tasks::TaskRow| {
                    task.try_set(ended);
                },
                move |m| {
                    lost.try_set(Some(m));
                },
            );
            match opened {
                Ok(f) => follow.set_value(Some(f)),
                Err(e) => lost.set(Some(e)),
            }
        });
        on_cleanup(move || {
            follow.try_update_value(|f| *f = None);
        });
    }

    let t = d.task.clone();
    let name = t.goblin_name.clone().unwrap_or_else(|| t.goblin_id.clone());
    let kind = t.kind.clone().unwrap_or_else(|| "no longer in the registry".to_string());
    let here = format!("/tasks/{id}");
    let (cancel_id, rerun_id) = (id.clone(), id.clone());
    let (can_cancel, can_rerun, needs_confirm) = (d.can_cancel, d.can_rerun, d.rerun_needs_confirm);
    let running = move || task.with(|t| !t.finished);
    let rerun_label = if t.dry_run { "Dry run again" } else { "Re-run" };

    view! {
        <article class="space-y-6" data-testid="task" data-id=id.clone() data-status=move || task.with(|t| t.status.clone())>
            <header class="space-y-1">
                <h1 class="flex flex-wrap items-center gap-3 text-2xl font-bold">
                    <span>{name}</span>
                    <span
                        class=move || task.with(|t| format!("inline-flex rounded-full px-2 py-0.5 text-sm font-semibold ring-1 ring-inset {}", status_class(&t.status)))
                        data-testid="task-status"
                        data-status=move || task.with(|t| t.status.clone())
                    >
                        {move || task.with(|t| status_label(&t.status, t.finished))}
                    </span>
                </h1>
                <p class="text-sm text-slate-600">
                    <span class="font-mono">{t.goblin_id.clone()}</span> " · " {kind}
                    {t.dry_run.then_some(" · dry run: nothing was executed")}
                </p>
            </header>

            <section aria-labelledby="facts-heading" class=CARD>
                <h2 id="facts-heading" class="sr-only">"Facts"</h2>
                <dl class="grid grid-cols-[max-content_1fr] gap-x-6 gap-y-1 text-sm sm:grid-cols-[max-content_1fr_max-content_1fr]">
                    <dt class="font-medium">"Exit code"</dt>
                    <dd data-testid="exit-code">{move || task.with(|t| t.exit_code.map_or_else(|| "—".to_string(), |c| c.to_string()))}</dd>
                    <dt class="font-medium">"Duration"</dt>
                    <dd data-testid="duration">{move || task.with(|t| t.duration_ms.map_or_else(|| "—".to_string(), duration))}</dd>
                    <dt class="font-medium">"Run by"</dt>
                    <dd data-testid="run-by">{or_dash(t.created_by_name.clone())}</dd>
                    <dt class="font-medium">"Worker"</dt>
                    <dd class="font-mono text-xs">{move || task.with(|t| or_dash(t.worker_id.clone()))}</dd>
                    <dt class="font-medium">"Queued"</dt>
                    <dd>{when(&t.created_at)}</dd>
                    <dt class="font-medium">"Started"</dt>
                    <dd>{move || task.with(|t| or_dash(t.started_at.as_deref().map(when)))}</dd>
                    <dt class="font-medium">"Finished"</dt>
                    <dd data-testid="finished-at">{move || task.with(|t| or_dash(t.finished_at.as_deref().map(when)))}</dd>
                </dl>
                <p role="alert" class="text-sm text-rose-800" data-testid="task-error">{move || task.with(|t| t.error.clone())}</p>
                <div>
                    <h3 class="text-sm font-medium">"Task"</h3>
                    {if t.task.is_empty() {
                        view! { <p class="text-sm text-slate-600" data-testid="task-text">"(none)"</p> }.into_any()
                    } else {
                        view! { <pre class="whitespace-pre-wrap break-words rounded bg-slate-100 p-2 text-sm" data-testid="task-text">{t.task.clone()}</pre> }.into_any()
                    }}
                </div>
                {d.code.clone().map(|code| view! {
                    <div>
                        <h3 class="text-sm font-medium">"Script"</h3>
                        <pre class="overflow-x-auto rounded bg-slate-100 p-2 font-mono text-xs" data-testid="task-code">{code}</pre>
                    </div>
                })}
                {d.agent.clone().map(|a| {
                    let by = match (a.provider, a.model) {
                        (Some(p), Some(m)) => format!("{p} / {m}"),
                        (p, m) => p.or(m).unwrap_or_else(|| "—".to_string()),
                    };
                    view! {
                        <p class="text-sm" data-testid="agent-usage">
                            "Answered by " {by} " · " {format!("{} tokens in · {} out · ${}", a.tokens_in, a.tokens_out, a.cost)}
                        </p>
                    }
                })}
                <div class="flex flex-wrap items-start gap-3">
                    {move || (can_cancel && running() && task.with(|t| t.status != "cancelled")).then(|| {
                        let id = cancel_id.clone();
                        view! {
                            <ActionForm action=cancel attr:data-testid="cancel-form">
                                <input type="hidden" name="id" value=id />
                                <button type="submit" class=DANGER data-testid="cancel" disabled=move || cancel.pending().get()>"Cancel"</button>
                            </ActionForm>
                        }
                    })}
                    {can_rerun.then(|| view! {
                        <ActionForm action=rerun attr:class="flex flex-wrap items-center gap-3" attr:data-testid="rerun-form">
                            <input type="hidden" name="id" value=rerun_id.clone() />
                            {needs_confirm.then(|| view! {
                                <label class="text-sm">
                                    <input type="checkbox" name="confirm" value="yes" required data-testid="rerun-confirm" />
                                    " I confirm: run this unsafe goblin again"
                                </label>
                            })}
                            <button type="submit" class=BUTTON data-testid="rerun" disabled=move || rerun.pending().get()>{rerun_label}</button>
                        </ActionForm>
                    })}
                </div>
                <p role="alert" class="text-sm text-rose-800" data-testid="action-error">
                    {move || match (cancel.value().get(), rerun.value().get()) {
                        (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e.to_string()),
                        _ => None,
                    }}
                </p>
            </section>

            <section aria-labelledby="output-heading" class="space-y-2">
                <div class="flex flex-wrap items-baseline justify-between gap-3">
                    <h2 id="output-heading" class="text-lg font-semibold">"Output"</h2>
                    <p class="text-xs text-slate-600">
                        "Lines marked err came on stderr; lines marked note are the runner's own (dry runs, timeouts, cancelling)."
                    </p>
                </div>
                {(!t.finished).then(|| view! {
                    <noscript inner_html=format!(r#"<meta http-equiv="refresh" content="{NO_SCRIPT_REFRESH_S}">"#)></noscript>
                })}
                {move || running().then(|| {
                    let here = here.clone();
                    view! {
                        <p class="text-sm text-slate-700" data-testid="live">
                            {move || if hydrated.get() {
                                "The output appears as the task writes it.".into_any()
                            } else {
                                view! {
                                    "This page reloads itself while the task runs. "
                                    <a class="underline" href=here.clone() data-testid="refresh">"Refresh"</a>
                                }.into_any()
                            }}
                        </p>
                    }
                })}
                <p role="alert" class="text-sm text-rose-800">{move || lost.get()}</p>
                <ol class="max-h-[32rem] overflow-auto rounded-lg bg-slate-900 p-3 font-mono text-xs leading-relaxed" data-testid="output">
                    <For each=move || lines.get() key=|l| l.seq let:l>
                        <li class=format!("flex gap-3 {}", stream_class(&l.stream)) data-testid="output-line" data-stream=l.stream.clone()>
                            <span class="w-8 shrink-0 select-none text-right text-slate-400">{stream_tag(&l.stream)}</span>
                            <span class="whitespace-pre-wrap break-all">{l.line.clone()}</span>
                        </li>
                    </For>
                </ol>
                {move || lines.with(Vec::is_empty).then(|| view! {
                    <p class="text-sm text-slate-700" data-testid="no-output">
                        {move || if running() { "No output yet." } else { "No output." }}
                    </p>
                })}
                {d.truncated.then(|| view! {
                    <p class="text-sm text-amber-800" data-testid="truncated">
                        "Output past the tasks.max_output_bytes setting was dropped; the command went on."
                    </p>
                })}
                {(!d.output_complete).then(|| {
                    let api = format!("/api/tasks/{id}/output?after={}", d.output.last().map_or(0, |l| l.seq));
                    view! {
                        <p class="text-sm" data-testid="more-output">
                            "The page shows the first 5 000 lines. The rest: " <a class="underline" href=api.clone()>{api.clone()}</a>
                        </p>
                    }
                })}
            </section>
        </article>
    }
}
